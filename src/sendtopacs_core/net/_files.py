"""Which inputs are DICOM files, and what their headers say, read without the pixel data.

A DICOM file is recognised by its content, never by its extension: the 128-byte preamble
followed by ``DICM``, or (as DCMTK's ``storescu +f`` accepts) a bare data set in Implicit or
Explicit VR Little Endian starting with a group 0008 element. Directories are walked in
sorted order; DICOMDIR files are skipped.

Before anything is sent, the data set is walked to its end (``_walk.py``: every element
header, every value length, sequences, items and fragments), so a truncated or inconsistent
file, which pydicom reads without complaint, is refused with the element and offset named.
Then the header is read up to the Pixel Data, and what it says is checked: the UIDs of the
data set against the File Meta, Pixel Data present for image SOP classes, native Pixel Data
of the length its attributes imply.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Final

import attrs
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_preamble
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from sendtopacs_core.net._walk import (
    DataSetShape,
    InvalidDicomFileError,
    is_known_vr,
    tag_text,
    walk_data_set,
    walk_file_meta,
)
from sendtopacs_core.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = [
    "DicomFile",
    "InputFile",
    "InvalidDicomFileError",
    "discover",
    "expected_pixel_length",
    "first_line",
    "is_dicom_file",
    "is_image_storage",
    "quiet_pydicom",
    "read_dicom_file",
    "tag_text",
]

_LOGGER = logging.getLogger(__name__)
MEDIA_STORAGE_DIRECTORY: Final = "1.2.840.10008.1.3.10"


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` starts with a DICOM preamble and ``DICM``, or with a bare data set."""
    try:
        with path.open("rb") as stream:
            head = stream.read(132)
    except OSError:
        return False
    if len(head) == 132 and head[128:] == b"DICM":
        return True
    return _raw_data_set_syntax(head) is not None


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
    """The data set without Pixel Data (values over 64 KiB deferred), with its File Meta."""
    data_offset: int
    """Offset of the data set (after the File Meta Information; 0 without one)."""
    pixel_offset: int
    """Offset of the Pixel Data element (the file size when there is none)."""
    is_part10: bool = True
    """Whether the file has the preamble and File Meta; without them, ``header.file_meta`` is
    made for the copy from the data set's UIDs and the transfer syntax its content shows."""
    needs_rewrite: bool = False
    """Whether it must be written anew before it is sent: a deflated data set of odd length
    (PS3.5 A.5 asks for a pad byte; a PACS aborts the association on an odd fragment)."""

    @property
    def is_dicomdir(self) -> bool:
        return self.sop_class_uid == MEDIA_STORAGE_DIRECTORY


def is_image_storage(sop_class_uid: str) -> bool:
    """Whether the SOP class stores an image, which must have Pixel Data (PS3.4 B.5).

    The image storage SOP classes are those named "... Image Storage" in PS3.6 (retired ones
    included) and the image IODs named otherwise (segmentations, parametric and thickness
    maps, volumes). Other objects (presentation states, structured reports, MR Spectroscopy,
    RT plans, waveforms, documents) may carry Rows and Columns without any pixels.
    """
    if sop_class_uid in _OTHER_IMAGE_STORAGE:
        return True
    uid = UID(sop_class_uid)
    return uid.type == "SOP Class" and "Image Storage" in uid.name


#: Image storage SOP classes whose names do not say "Image Storage".
_OTHER_IMAGE_STORAGE: Final = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume Storage
        "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map Storage
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.66.8",  # Height Map Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.77.1.5.8",  # Ophthalmic OCT B-scan Volume Analysis Storage
        "1.2.840.10008.5.1.4.1.1.81.1",  # Ophthalmic Thickness Map Storage
        "1.2.840.10008.5.1.4.1.1.82.1",  # Corneal Topography Map Storage
    }
)


def read_dicom_file(path: Path, *, exact_pixels: bool = False) -> DicomFile:
    """Walk a DICOM file to its end, read its header, and check what it says.

    ``exact_pixels``: native Pixel Data must have exactly the length its attributes imply
    (for the copies we write); otherwise (a file given) trailing padding shorter than one
    frame is allowed, as pydicom and viewers allow it.

    The file is refused when any element is cut or runs past what holds it (see
    :func:`~sendtopacs_core.net._walk.walk_data_set`), when the File Meta Information is
    incomplete or its group length is wrong, when the data set lacks the SOP Class or
    Instance UID or they differ from the File Meta's, when an image SOP class has no Pixel
    Data (a file cut between two elements), or when native Pixel Data does not have the
    length its attributes imply. A data set without preamble and File Meta (as DCMTK's
    ``storescu +f`` sends) is recognised by its content and given a File Meta.

    Raises
    ------
    InvalidDicomFileError
        What is wrong, naming the element and its offset.
    OSError
        The file cannot be read.
    """
    size = path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(132)
        is_part10 = len(head) == 132 and head[128:] == b"DICM"
        meta: Dataset | None = None
        if is_part10:
            with quiet_pydicom():  # a value read may be warned of, quoted
                meta, data_offset = _read_meta(stream, size)
            syntax = UID(str(meta.TransferSyntaxUID).strip("\0 "))
        else:
            raw = _raw_data_set_syntax(head)
            if raw is None:
                raise InvalidDicomFileError("not a DICOM file (no DICM prefix, no data set)")
            syntax, data_offset = UID(raw), 0
        if not syntax.is_transfer_syntax:
            raise InvalidDicomFileError(
                f"unknown transfer syntax {syntax} in (0002,0010): cannot read the data set"
            )
        shape = walk_data_set(
            stream,
            start=data_offset,
            size=size,
            little=syntax.is_little_endian,
            implicit=syntax.is_implicit_VR,
            deflated=syntax.is_deflated,
            inflate_limit=size * _MAX_INFLATION + _INFLATION_MARGIN,
        )
        stream.seek(0)
        header, pixel_offset = _read_header(stream, force=not is_part10)
    if meta is None:
        header.file_meta = _made_meta(header, syntax)
        meta = header.file_meta
    with quiet_pydicom():  # reading a value may warn, quoting it
        sop_class, sop_instance = _check_uids(header, meta)
        _check_pixels(header, shape, sop_class, syntax, exact=exact_pixels)
    return DicomFile(
        path=path,
        size=size,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        transfer_syntax_uid=str(syntax),
        header=header,
        data_offset=data_offset,
        pixel_offset=pixel_offset if shape.pixel_tag is not None else size,
        is_part10=is_part10,
        needs_rewrite=syntax.is_deflated and (size - data_offset) % 2 == 1,
    )


#: A deflated data set may inflate to at most this many times its size (plus a margin):
#: pydicom inflates it whole in memory, and a 306 KB file can claim 300 MiB (a "bomb").
_MAX_INFLATION: Final = 20
_INFLATION_MARGIN: Final = 64 << 20


def _raw_data_set_syntax(head: bytes) -> str | None:
    """The transfer syntax of a data set without preamble and File Meta, or ``None``.

    Such a data set is recognised as DCMTK recognises it: Implicit or Explicit VR Little
    Endian, starting with an element of group 0008.
    """
    if len(head) < 8 or head[:2] != b"\x08\x00":
        return None
    if is_known_vr(head[4:6]):
        return str(ExplicitVRLittleEndian)
    return str(ImplicitVRLittleEndian)


def _read_meta(stream: BinaryIO, size: int) -> tuple[Dataset, int]:
    """The File Meta Information and where the data set starts; checked for completeness."""
    data_offset = walk_file_meta(stream, size)
    stream.seek(0)
    try:
        with quiet_pydicom():
            meta = read_file_meta_info_from(stream)
    except (InvalidDicomError, ValueError, EOFError, struct.error, KeyError, TypeError) as exc:
        raise InvalidDicomFileError(
            f"cannot read the File Meta Information (up to offset {data_offset}): {first_line(exc)}"
        ) from exc
    group_length = meta.get("FileMetaInformationGroupLength")
    if group_length is not None:
        # 128 + 4 + the group length element itself (12 bytes) + its value
        said = 132 + 12 + int(group_length)
        if said > size:
            raise InvalidDicomFileError(
                f"truncated: the file ends at offset {size}, inside its File Meta Information "
                f"(its group length (0002,0000) says it ends at {said})"
            )
        if said != data_offset:
            raise InvalidDicomFileError(
                f"damaged: the File Meta Information Group Length (0002,0000) says "
                f"{int(group_length)} bytes, its elements take {data_offset - 144}"
            )
    missing = [
        f"{keyword} {_tag_of(keyword)}"
        for keyword in (
            "MediaStorageSOPClassUID",
            "MediaStorageSOPInstanceUID",
            "TransferSyntaxUID",
        )
        if not str(meta.get(keyword, "")).strip("\0 ")
    ]
    if missing:
        raise InvalidDicomFileError(
            f"the File Meta Information (which ends at offset {data_offset}) lacks "
            + ", ".join(missing)
        )
    return meta, data_offset


def _read_header(stream: BinaryIO, *, force: bool) -> tuple[Dataset, int]:
    """The data set up to its Pixel Data (pydicom), and the offset where it stopped."""
    try:
        with quiet_pydicom():
            header = dcmread(stream, stop_before_pixels=True, defer_size="64 KB", force=force)
    except (InvalidDicomError, ValueError, EOFError, struct.error, KeyError, TypeError) as exc:
        raise InvalidDicomFileError(f"cannot read the DICOM header: {first_line(exc)}") from exc
    return header, stream.tell()


def _made_meta(header: Dataset, syntax: UID) -> FileMetaDataset:
    """A File Meta for a data set that came without one (the copy sent carries it)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(str(header.get("SOPClassUID", "")).strip("\0 "))
    meta.MediaStorageSOPInstanceUID = UID(str(header.get("SOPInstanceUID", "")).strip("\0 "))
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def _check_uids(header: Dataset, meta: Dataset) -> tuple[str, str]:
    """The data set's SOP Class and Instance UIDs: present, and those of the File Meta.

    The C-STORE names the UIDs of the File Meta, and the PACS stores those of the data set:
    if they differ, the report would name another object than the one stored.
    """
    found: list[str] = []
    for keyword, meta_keyword in (
        ("SOPClassUID", "MediaStorageSOPClassUID"),
        ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
    ):
        try:
            value = str(header.get(keyword, "") or "").strip("\0 ")
        except (ValueError, TypeError) as exc:
            raise InvalidDicomFileError(
                f"cannot read {keyword} of the data set: {first_line(exc)}"
            ) from exc
        if not value:
            raise InvalidDicomFileError(
                f"the data set has no {keyword} {_tag_of(keyword)}: a PACS cannot store it"
            )
        in_meta = str(meta.get(meta_keyword, "")).strip("\0 ")
        if value != in_meta:
            raise InvalidDicomFileError(
                f"{keyword} {_tag_of(keyword)} of the data set is {value}, but "
                f"{meta_keyword} {_tag_of(meta_keyword)} of the File Meta is {in_meta}: the "
                "C-STORE would name another object than the one stored"
            )
        found.append(value)
    return found[0], found[1]


def _tag_of(keyword: str) -> str:
    return tag_text(int(Tag(keyword)))


def _check_pixels(
    header: Dataset, shape: DataSetShape, sop_class: str, syntax: UID, *, exact: bool
) -> None:
    """An image has Pixel Data; native Pixel Data has the length its attributes imply."""
    if shape.pixel_tag is None:
        if is_image_storage(sop_class):
            raise InvalidDicomFileError(
                f"truncated or incomplete: {_name(sop_class)} is an image, but the data set "
                f"has no Pixel Data (7FE0,0010); it ends after the element at offset "
                f"{shape.last_offset}"
            )
        return
    if shape.pixel_length is None or syntax.is_encapsulated:
        return  # encapsulated: its fragments were checked by the walk
    try:
        expected = expected_pixel_length(header, shape.pixel_tag)
        frames = max(1, int(header.get("NumberOfFrames", 1) or 1))
    except (ValueError, TypeError) as exc:
        raise InvalidDicomFileError(
            f"the Image Pixel attributes cannot be read: {first_line(exc)}"
        ) from exc
    if expected is None:
        return
    # The pad byte to an even length; for a file given, trailing padding under one frame
    # (which pydicom reads as "excess padding"); never a frame's worth or more.
    slack = expected % 2 if exact else max(1, expected // frames - 1)
    if not expected <= shape.pixel_length <= expected + slack:
        raise InvalidDicomFileError(
            f"damaged: {tag_text(shape.pixel_tag)} holds {shape.pixel_length} bytes, but Rows, "
            f"Columns, Samples per Pixel, Number of Frames and Bits Allocated imply {expected}"
        )


def expected_pixel_length(dataset: Dataset, pixel_tag: int = 0x7FE00010) -> int | None:
    """The length native pixel data must have (unpadded), or ``None`` if it cannot be told.

    Rows x Columns x Samples per Pixel x Number of Frames x Bits Allocated / 8, with Bits
    Allocated 1 packed bit-wise over all the frames (PS3.5 8.1.1), YBR_FULL_422 and
    YBR_PARTIAL_422 holding two samples a pixel (PS3.3 C.7.6.3.1.2), and Float or Double
    Float Pixel Data 32 or 64 bits a sample.
    """
    rows, columns = dataset.get("Rows"), dataset.get("Columns")
    if rows is None or columns is None:
        return None
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    if pixel_tag == 0x7FE00008:
        bits = 32
    elif pixel_tag == 0x7FE00009:
        bits = 64
    else:
        allocated = dataset.get("BitsAllocated")
        if allocated is None:
            return None
        bits = int(allocated)
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
    if photometric in ("YBR_FULL_422", "YBR_PARTIAL_422") and samples == 3:
        samples = 2
    total_bits = int(rows) * int(columns) * samples * frames * bits
    return (total_bits + 7) // 8


def _name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else uid


def first_line(exc: BaseException) -> str:
    """An exception's message without the traceback pydicom adds to some (``With tag``)."""
    text = str(exc).strip()
    for marker in ("\nTraceback", "Traceback (most recent"):
        if marker in text:
            text = text[: text.index(marker)].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and lines[0].endswith(":"):  # "raised by all available plugins:" ...
        return lines[0] + " " + "; ".join(lines[1:4])
    return lines[0]


_QUIET = threading.RLock()


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Keep pydicom's and the pixel decoders' warnings off stderr: logged at DEBUG instead.

    pydicom warns (``warnings.warn``) of oddities of the files it reads, and a warning may
    quote a value (a patient's name). The warnings of the block are recorded and logged at
    DEBUG. :func:`warnings.catch_warnings` changes process-wide state, so the blocks are
    serialised by a lock (re-entrant: blocks may nest), and a warning another thread emits
    meanwhile is logged at DEBUG too.
    """
    with _QUIET, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                _LOGGER.debug("pydicom: %s", warning.message)


def read_file_meta_info_from(stream: BinaryIO) -> Dataset:
    """The File Meta Information of an open DICOM file; the stream is left after it."""
    read_preamble(stream, False)
    meta: Dataset = read_dataset(
        stream, False, True, stop_when=lambda tag, _vr, _length: tag.group != 2
    )
    return meta
