"""The copy of a DICOM file that is sent: as it is, with a new header, or decoded.

The source file is never modified. A copy is written (in the send's temporary folder) only
when something must change:

- the header (update-tag patterns of the ``dicom`` settings, the device's character set): the
  new header is written, then the rest of the file (the Pixel Data) copied byte for byte, so
  the pixel data is never loaded;
- the transfer syntax (the PACS accepts only uncompressed data): the file is decoded with
  pydicom's pixel decoders (pylibjpeg and its plugins) into Explicit or Implicit VR Little
  Endian, keeping its SOP Instance UID.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Final

import numpy
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import pack_bits
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from sendtopacs_core.charset import apply_charset
from sendtopacs_core.model import TagPattern
from sendtopacs_core.net._files import DicomFile, quiet_pydicom
from sendtopacs_core.tags import apply_tag_patterns

__all__ = [
    "UNCOMPRESSED",
    "can_decode",
    "header_changes",
    "is_lossy",
    "is_uncompressed",
    "write_copy",
]

#: What a PACS that accepts nothing else is offered, best first.
UNCOMPRESSED: Final = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))
_NATIVE: Final = frozenset(
    {*UNCOMPRESSED, str(ExplicitVRBigEndian), str(DeflatedExplicitVRLittleEndian)}
)
#: Lossy compressed transfer syntaxes: decoding them is allowed only when asked for.
_LOSSY: Final = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline
        "1.2.840.10008.1.2.4.51",  # JPEG Extended
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.93",  # JPEG 2000 Part 2 multi-component
        "1.2.840.10008.1.2.4.203",  # HTJ2K
        "1.2.840.10008.1.2.4.111",  # JPEG XL
        "1.2.840.10008.1.2.4.112",  # JPEG XL JPEG recompression (lossy source)
    }
)
_COPY_BLOCK: Final = 4 << 20


def is_uncompressed(transfer_syntax: str) -> bool:
    """Native (not encapsulated) pixel data: decoding is not needed to change the syntax."""
    return transfer_syntax in _NATIVE


def is_lossy(transfer_syntax: str) -> bool:
    """Whether the syntax is lossy (video syntaxes included)."""
    return transfer_syntax in _LOSSY or UID(transfer_syntax).keyword.startswith(("MPEG", "HEVC"))


def can_decode(transfer_syntax: str) -> bool:
    """Whether the installed pixel decoders can turn this syntax into native pixel data."""
    if is_uncompressed(transfer_syntax):
        return True
    try:
        return bool(get_decoder(UID(transfer_syntax)).is_available)
    except NotImplementedError:
        return False


def header_changes(
    header: Dataset, patterns: tuple[TagPattern, ...], charset: str | None
) -> list[str]:
    """Apply the tag patterns and the character set to ``header`` in place; list the changes.

    Raises
    ------
    InvalidValueError
        A pattern gives an invalid value, or the text does not fit the character set.
    """
    changes = apply_tag_patterns(header, patterns) if patterns else []
    if charset is not None:
        current = header.get("SpecificCharacterSet")
        current_text = "\\".join(current) if isinstance(current, list) else str(current or "")
        if current_text != charset:
            header.decode()  # text as str, so that it is encoded anew in the new set
            apply_charset(header, charset)
            changes.append(f"character set {current_text or 'default'} -> {charset}")
    return changes


def write_copy(
    source: DicomFile,
    target: Path,
    *,
    header: Dataset | None,
    transfer_syntax: str,
) -> bool:
    """Write the copy to send at ``target``; return whether pixel data was decoded.

    ``header`` is the changed header (``None``: unchanged); ``transfer_syntax`` the one the
    PACS accepted for this file. Decoding happens only when the syntax differs from the
    source's and the source has compressed Pixel Data; a change between native syntaxes, or
    of a compressed-syntax object without pixels, re-encodes. A 1-bit image decoded is
    packed again bit by bit (PS3.5 8.1.1). The File Meta of the copy names the SOP Class and
    Instance UIDs of its data set. The caller checks the copy (:func:`read_dicom_file`)
    before sending it.

    Raises
    ------
    ValueError, NotImplementedError, OSError
        The pixel data cannot be decoded or the copy cannot be written.
    """
    same_syntax = transfer_syntax == source.transfer_syntax_uid
    deflated = source.transfer_syntax_uid == str(DeflatedExplicitVRLittleEndian)
    if same_syntax and header is not None and not deflated:
        _write_with_header(source, target, header)
        return False
    with quiet_pydicom():
        dataset = dcmread(source.path, force=not source.is_part10)
        if not source.is_part10:
            dataset.file_meta = copy.deepcopy(source.header.file_meta)
        if header is not None:
            for element in header:
                dataset[element.tag] = element
            if "SpecificCharacterSet" not in header and "SpecificCharacterSet" in dataset:
                del dataset.SpecificCharacterSet
        decoded = False
        has_pixels = any(tag in dataset for tag in _PIXEL_KEYWORDS)
        if not is_uncompressed(source.transfer_syntax_uid) and not same_syntax and has_pixels:
            _decompress(dataset)
            decoded = True
        dataset.file_meta.TransferSyntaxUID = UID(transfer_syntax)
        _name_own_uids(dataset)
        _drop_group_lengths(dataset)
        with target.open("wb") as output:
            dcmwrite(output, dataset, enforce_file_format=True)
    return decoded


_PIXEL_KEYWORDS: Final = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _decompress(dataset: Dataset) -> None:
    """Decode the Pixel Data in place (native, Explicit VR Little Endian).

    pydicom 3 gives a decompressed dataset a new SOP Instance UID unless told not to: the PACS
    must receive the same instance, not a new one. pydicom writes one byte a pixel for Bits
    Allocated 1, eight times what the attributes say: packed again here.
    """
    dataset.decompress(generate_instance_uid=False)
    if int(dataset.get("BitsAllocated", 0)) == 1:
        pixels = int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel", 1))
        pixels *= int(dataset.get("NumberOfFrames", 1) or 1)
        unpacked = numpy.frombuffer(dataset.PixelData, dtype=numpy.uint8)
        if unpacked.size in (pixels, pixels + pixels % 2):
            dataset.PixelData = pack_bits(unpacked[:pixels])
            dataset["PixelData"].VR = "OB"


def _name_own_uids(dataset: Dataset) -> None:
    """The File Meta names the data set's SOP Class and Instance UIDs (a tag pattern may
    have changed them), so that the C-STORE names the object stored."""
    for keyword, meta_keyword in (
        ("SOPClassUID", "MediaStorageSOPClassUID"),
        ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
    ):
        value = dataset.get(keyword)
        if value:
            dataset.file_meta[meta_keyword] = DataElement(
                Tag(meta_keyword), "UI", UID(str(value).strip("\0 "))
            )


def _drop_group_lengths(dataset: Dataset) -> None:
    for element in list(dataset):
        if element.tag.element == 0 and element.tag.group != 2:
            del dataset[element.tag]


def _write_with_header(source: DicomFile, target: Path, header: Dataset) -> None:
    """The new header, then the source's bytes from its Pixel Data on, copied unchanged."""
    _drop_group_lengths(header)
    with target.open("wb") as output:
        with quiet_pydicom():
            _name_own_uids(header)
            dcmwrite(output, header, enforce_file_format=True)
        with source.path.open("rb") as stream:
            stream.seek(source.pixel_offset)
            output.flush()
            if hasattr(os, "copy_file_range"):
                try:
                    _kernel_copy(stream, output, source.size - source.pixel_offset)
                except OSError:
                    stream.seek(source.pixel_offset)
                    shutil.copyfileobj(stream, output, _COPY_BLOCK)
            else:  # pragma: no cover - platforms without copy_file_range
                shutil.copyfileobj(stream, output, _COPY_BLOCK)


def _kernel_copy(stream: object, output: object, length: int) -> None:
    src = stream.fileno()  # type: ignore[attr-defined]
    dst = output.fileno()  # type: ignore[attr-defined]
    start_in = stream.tell()  # type: ignore[attr-defined]
    start_out = output.tell()  # type: ignore[attr-defined]
    done = 0
    while done < length:
        count = os.copy_file_range(src, dst, length - done, start_in + done, start_out + done)
        if count == 0:
            break
        done += count
    output.seek(start_out + done)  # type: ignore[attr-defined]
