"""Which inputs are DICOM files, and what their headers say, read without the pixel data.

A DICOM file is recognised by its content (the 128-byte preamble followed by ``DICM``), never
by its extension. Directories are walked in sorted order; DICOMDIR files are skipped. The
header is read up to the Pixel Data, whose framing is then checked against the file's size, so
a truncated file (which pydicom reads without complaint) is refused before it is sent.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

import attrs
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_preamble
from pydicom.uid import UID

__all__ = ["DicomFile", "InputFile", "discover", "is_dicom_file", "read_dicom_file"]

MEDIA_STORAGE_DIRECTORY: Final = "1.2.840.10008.1.3.10"
#: Pixel Data, Float Pixel Data, Double Float Pixel Data.
_PIXEL_TAGS: Final = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_ITEM: Final = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER: Final = (0xFFFE, 0xE0DD)
_LONG_VRS: Final = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UC", b"UR", b"UT"}


class InvalidDicomFileError(ValueError):
    """A file that starts like DICOM but cannot be sent (missing meta, truncated...)."""


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` starts with a DICOM preamble and the ``DICM`` prefix."""
    try:
        with path.open("rb") as stream:
            head = stream.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


@attrs.frozen(kw_only=True)
class InputFile:
    """One file found among the inputs, and whether it is DICOM."""

    path: Path
    is_dicom: bool


def discover(items: Iterable[str | os.PathLike[str]]) -> Iterator[InputFile | OSError]:
    """Every file of ``items`` (folders walked in name order); an unreadable item is an error.

    Yields the :class:`OSError` (with its filename) for an input that does not exist or a
    folder that cannot be listed, so that the caller reports it and goes on.
    """
    for item in items:
        path = Path(item)
        if path.is_dir():
            yield from _walk(path)
        elif path.is_file():
            yield InputFile(path=path, is_dicom=is_dicom_file(path))
        else:
            yield FileNotFoundError(2, "no such file or folder", str(path))


def _walk(folder: Path) -> Iterator[InputFile | OSError]:
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except OSError as exc:
        yield exc
        return
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)
        elif entry.is_file():
            if entry.name.upper() == "DICOMDIR":
                continue
            yield InputFile(path=entry, is_dicom=is_dicom_file(entry))


@attrs.frozen(kw_only=True)
class DicomFile:
    """What a DICOM file's header says, and where its data set and Pixel Data begin."""

    path: Path
    size: int
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    header: Dataset = attrs.field(eq=False, repr=False)
    """The data set without Pixel Data (values over 64 KiB deferred)."""
    data_offset: int
    """Offset of the data set (after the File Meta Information)."""
    pixel_offset: int
    """Offset of the Pixel Data element (the file size when there is none)."""

    @property
    def is_dicomdir(self) -> bool:
        return self.sop_class_uid == MEDIA_STORAGE_DIRECTORY


def read_dicom_file(path: Path) -> DicomFile:
    """Read the header of a DICOM file and check that its Pixel Data is complete.

    Raises
    ------
    InvalidDicomFileError
        The file meta lacks the SOP Class, SOP Instance or Transfer Syntax UID, the header
        cannot be parsed, or the file is shorter than its Pixel Data says.
    OSError
        The file cannot be read.
    """
    size = path.stat().st_size
    with path.open("rb") as stream:
        _refuse_deflate_bomb(stream, size)
        try:
            header = dcmread(stream, stop_before_pixels=True, defer_size="64 KB")
        # UserWarning: pydicom warns of a damaged file, raised where warnings are errors.
        except (InvalidDicomError, ValueError, EOFError, struct.error, UserWarning) as exc:
            raise InvalidDicomFileError(f"cannot read the DICOM header: {exc}") from exc
        pixel_offset = stream.tell()
        meta = header.file_meta
        missing = [
            keyword
            for keyword in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID")
            if not str(meta.get(keyword, "")).strip("\0 ")
        ]
        if "TransferSyntaxUID" not in meta:
            missing.append("TransferSyntaxUID")
        if missing:
            raise InvalidDicomFileError("the file meta information lacks " + ", ".join(missing))
        transfer_syntax = UID(str(meta.TransferSyntaxUID).strip("\0 "))
        data_offset = _data_offset(stream, meta)
        if data_offset > size:
            raise InvalidDicomFileError("truncated: the file ends inside its File Meta Information")
        if pixel_offset < size and not transfer_syntax.is_deflated:
            _check_pixel_data(stream, pixel_offset, size, transfer_syntax)
        elif not transfer_syntax.is_deflated:
            _check_complete(header, size)
    return DicomFile(
        path=path,
        size=size,
        sop_class_uid=str(meta.MediaStorageSOPClassUID).strip("\0 "),
        sop_instance_uid=str(meta.MediaStorageSOPInstanceUID).strip("\0 "),
        transfer_syntax_uid=str(transfer_syntax),
        header=header,
        data_offset=data_offset,
        pixel_offset=pixel_offset if pixel_offset < size else size,
    )


#: A deflated data set may inflate to at most this many times its size (plus a margin):
#: pydicom inflates it whole in memory, and a 306 KB file can claim 300 MiB (a "bomb").
_MAX_INFLATION: Final = 20
_INFLATION_MARGIN: Final = 64 << 20


def _refuse_deflate_bomb(stream: BinaryIO, size: int) -> None:
    """Inflate a Deflated Explicit VR Little Endian data set in pieces, up to a limit.

    Raises
    ------
    InvalidDicomFileError
        It inflates beyond the limit, or is not valid deflate data.
    """
    try:
        meta = read_file_meta_info_from(stream)
    except (InvalidDicomError, ValueError, EOFError, struct.error):
        stream.seek(0)
        return  # dcmread reports it
    deflated = str(meta.get("TransferSyntaxUID", "")).strip("\0 ") == "1.2.840.10008.1.2.1.99"
    try:
        if not deflated:
            return
        limit = size * _MAX_INFLATION + _INFLATION_MARGIN
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        while chunk := stream.read(1 << 16):
            try:
                total += len(inflater.decompress(chunk, 1 << 20))
                while inflater.unconsumed_tail:
                    total += len(inflater.decompress(inflater.unconsumed_tail, 1 << 20))
                    if total > limit:
                        break
            except zlib.error as exc:
                raise InvalidDicomFileError(f"the deflated data set is damaged: {exc}") from exc
            if total > limit:
                raise InvalidDicomFileError(
                    f"refused: the deflated data set inflates to more than {limit} bytes "
                    f"from {size} (a decompression bomb?)"
                )
    finally:
        stream.seek(0)


def read_file_meta_info_from(stream: BinaryIO) -> Dataset:
    """The File Meta Information of an open DICOM file; the stream is left after it."""
    read_preamble(stream, False)
    meta: Dataset = read_dataset(
        stream, False, True, stop_when=lambda tag, _vr, _length: tag.group != 2
    )
    return meta


def _check_complete(header: Dataset, size: int) -> None:
    """A file without Pixel Data: its last values must be whole, and an image must have pixels.

    pydicom reads a file cut inside a value without complaint, with the value short; a file
    cut at the boundary of an element cannot be told from a complete one, except when it
    describes an image (Rows, Columns) and has no pixel data.
    """
    for tag in list(header.keys()):  # the tags; iterating a Dataset would read every value
        raw: Any = header.get_item(tag)  # a RawDataElement while nobody has read it
        if not isinstance(raw, RawDataElement) or raw.length == 0xFFFFFFFF:
            continue
        if raw.value is None:  # deferred: not read, only its place is known
            if raw.value_tell + raw.length > size:
                raise InvalidDicomFileError(f"truncated: the file ends inside {tag_text(tag)}")
        elif len(raw.value) < raw.length:
            raise InvalidDicomFileError(f"truncated: the file ends inside {tag_text(tag)}")
    if (
        "Rows" in header
        and "Columns" in header
        and not any(
            keyword in header for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
        )
    ):
        raise InvalidDicomFileError("truncated: an image without its Pixel Data")


def tag_text(tag: int) -> str:
    """``(gggg,eeee)``."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _data_offset(stream: BinaryIO, meta: Dataset) -> int:
    """Offset of the data set: after the preamble, ``DICM`` and the group 0002 elements."""
    group_length = meta.get("FileMetaInformationGroupLength")
    if group_length is not None:
        # 128 + 4 + the group length element itself (12 bytes) + its value
        return 132 + 12 + int(group_length)

    stream.seek(0)
    read_preamble(stream, False)
    read_dataset(stream, False, True, stop_when=lambda tag, _vr, _len: tag.group != 2)
    return stream.tell()


def _check_pixel_data(stream: BinaryIO, offset: int, size: int, syntax: UID) -> None:
    """The Pixel Data element must end within the file (or its encapsulation be closed)."""
    stream.seek(offset)
    head = stream.read(12)
    if len(head) < 8:
        raise InvalidDicomFileError(f"truncated: the file ends inside the element at {offset}")
    little = syntax.is_little_endian
    fmt = "<" if little else ">"
    if struct.unpack(fmt + "HH", head[:4]) not in _PIXEL_TAGS:
        return  # not Pixel Data after all: nothing to check cheaply
    if syntax.is_implicit_VR:
        (length,) = struct.unpack(fmt + "I", head[4:8])
        value_offset = offset + 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            raise InvalidDicomFileError("truncated: the file ends inside the Pixel Data header")
        (length,) = struct.unpack(fmt + "I", head[8:12])
        value_offset = offset + 12
    else:
        (length,) = struct.unpack(fmt + "H", head[6:8])
        value_offset = offset + 8
    if length == 0xFFFFFFFF:
        _check_fragments(stream, value_offset, size, fmt)
    elif value_offset + length > size:
        raise InvalidDicomFileError(
            f"truncated: the Pixel Data needs {length} bytes, the file holds "
            f"{max(0, size - value_offset)}"
        )


def _check_fragments(stream: BinaryIO, offset: int, size: int, fmt: str) -> None:
    """Encapsulated Pixel Data: its items must end within the file, then its delimiter.

    The items are walked by their lengths (a seek each, nothing read but their headers), so
    elements after the Pixel Data (Data Set Trailing Padding, signatures) are allowed.
    """
    position = offset
    while True:
        stream.seek(position)
        head = stream.read(8)
        if len(head) < 8:
            raise InvalidDicomFileError(
                "truncated: the encapsulated Pixel Data has no Sequence Delimitation Item "
                f"(the file ends at {size})"
            )
        group, element, length = struct.unpack(fmt + "HHI", head)
        if (group, element) == _SEQUENCE_DELIMITER:
            return
        if (group, element) != _ITEM or length == 0xFFFFFFFF:
            raise InvalidDicomFileError(
                f"the encapsulated Pixel Data is malformed: ({group:04X},{element:04X}) at "
                f"{position} is not an item"
            )
        position += 8 + length
        if position > size:
            raise InvalidDicomFileError(
                f"truncated: a Pixel Data fragment needs {position - size} more bytes than "
                "the file holds"
            )
