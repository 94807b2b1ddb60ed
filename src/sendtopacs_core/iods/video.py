"""Video Endoscopic / Microscopic / Photographic Image (PS3.3 A.32.5, A.32.7, A.32.6).

The Pixel Data is the whole container file (MP4, or an MPEG-2 stream) as one fragment after
an empty Basic Offset Table (PS3.5 A.4, §8.2.5-8.2.11). :func:`build_video` makes the dataset
without it; :func:`write_video` streams the file's bytes into the DICOM file, so a recording is
never held in memory.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import struct
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Final

import attrs
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID

from sendtopacs_core.iods._modules import (
    ObjectContext,
    add_file_meta,
    add_general_equipment_module,
    add_general_study_module,
    add_lossy_compression,
    add_patient_module,
    add_request_attributes,
    add_sop_common_module,
    da,
    format_ds,
    local,
    tm,
)

__all__ = [
    "DEFAULT_ANATOMIC_REGION",
    "MAX_FRAGMENT_BYTES",
    "VIDEO_ENDOSCOPIC",
    "VIDEO_MICROSCOPIC",
    "VIDEO_PHOTOGRAPHIC",
    "VideoStream",
    "build_video",
    "write_video",
]

VIDEO_ENDOSCOPIC: Final = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
VIDEO_MICROSCOPIC: Final = "1.2.840.10008.5.1.4.1.1.77.1.2.1"
VIDEO_PHOTOGRAPHIC: Final = "1.2.840.10008.5.1.4.1.1.77.1.4.1"

#: The Modality each video SOP Class requires (dciodvfy enumerates it).
_MODALITY: Final = {VIDEO_ENDOSCOPIC: "ES", VIDEO_MICROSCOPIC: "GM", VIDEO_PHOTOGRAPHIC: "XC"}

_PIXEL_DATA: Final = Tag(0x7FE0, 0x0010)
#: (7FE0,0010) OB with undefined length, and the item tags, in Explicit VR Little Endian.
_PIXEL_DATA_HEADER: Final = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
_ITEM: Final = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER: Final = b"\xfe\xff\xdd\xe0"
_COPY_BLOCK: Final = 4 << 20
_NO_KERNEL_COPY: Final = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM}
)

#: Lossy Image Compression Method (PS3.3 C.7.6.1.1.5.1) of each codec.
_METHOD: Final = {"h264": "ISO_14496_10", "mpeg2video": "ISO_13818_2", "hevc": "ISO_23008_2"}

#: The Anatomic Region written when the caller knows none: (code value, scheme, meaning).
#: dciodvfy requires exactly one item on every multi-frame VL object; "Entire body" is
#: unpaired, so Laterality can be left out (PS3.3 C.7.3.1: only for paired structures).
DEFAULT_ANATOMIC_REGION: Final = ("38266002", "SCT", "Entire body")

#: Regions known (to PS3.16 and dciodvfy) to be unpaired structures; for any other region the
#: side is unknown and Laterality is written empty (Type 2C).
_UNPAIRED_REGIONS: Final = frozenset(
    {
        ("38266002", "SCT"),  # Entire body
        ("71854001", "SCT"),  # Colon
        ("69695003", "SCT"),  # Stomach
        ("32849002", "SCT"),  # Esophagus
        ("30315005", "SCT"),  # Small intestine
        ("34402009", "SCT"),  # Rectum
        ("38848004", "SCT"),  # Duodenum
    }
)

#: The largest even fragment a non-fragmentable transfer syntax allows (PS3.5 A.4).
MAX_FRAGMENT_BYTES: Final = 0xFFFFFFFE

_FRAME_TIME: Final = Tag(0x0018, 0x1063)


@attrs.frozen(kw_only=True)
class VideoStream:
    """The video stream to store: the file whose bytes become the single fragment.

    ``path`` is the source itself for pass-through, or the remuxed or transcoded temporary
    file; ``width`` and ``height`` are the displayed (cropped) size.
    """

    path: Path
    size_bytes: int
    transfer_syntax_uid: str
    width: int
    height: int
    frame_count: int
    frame_rate: Fraction
    codec: str
    content_datetime: dt.datetime | None


def build_video(
    stream: VideoStream,
    *,
    context: ObjectContext,
    anatomic_region: tuple[str, str, str] | None = None,
) -> Dataset:
    """Build a video dataset with its file meta, without the Pixel Data.

    Parameters
    ----------
    stream
        The stream to be stored by :func:`write_video`.
    context
        Identity, study, series and equipment of the new object.
    anatomic_region
        (code value, coding scheme designator, code meaning) of the region imaged, e.g.
        ``("71854001", "SCT", "Colon")``; :data:`DEFAULT_ANATOMIC_REGION` when ``None``.

    Raises
    ------
    ValueError
        The modality does not fit the video SOP Class, the codec is unknown, or the stream
        has no frames or a non-positive size or frame rate (the message gives found and
        expected values).
    """
    expected = _MODALITY.get(context.sop_class_uid)
    if expected is not None and context.modality != expected:
        raise ValueError(
            f"modality {context.modality} for SOP Class {context.sop_class_uid}; "
            f"expected {expected}"
        )
    method = _METHOD.get(stream.codec)
    if method is None:
        raise ValueError(f"codec {stream.codec}; expected one of {', '.join(sorted(_METHOD))}")
    if stream.frame_count < 1 or stream.frame_rate <= 0:
        raise ValueError(
            f"{stream.frame_count} frames at {stream.frame_rate} fps; "
            "expected at least one frame at a positive rate"
        )
    if stream.width < 1 or stream.height < 1:
        raise ValueError(f"{stream.width}x{stream.height} pixels; expected a positive size")
    region = anatomic_region or DEFAULT_ANATOMIC_REGION
    content = _content_datetime(stream.content_datetime, context)

    dataset = Dataset()
    add_file_meta(dataset, context, UID(stream.transfer_syntax_uid))
    add_patient_module(dataset, context.study)
    add_general_study_module(dataset, context)
    # General Series (PS3.3 C.7.3.1)
    dataset.Modality = context.modality
    dataset.SeriesInstanceUID = context.series_instance_uid
    add_request_attributes(dataset, context.study)
    dataset.SeriesNumber = context.series_number
    if (region[0], region[1]) not in _UNPAIRED_REGIONS:
        dataset.Laterality = ""  # 2C: the region may be paired and the side is not known
    add_general_equipment_module(dataset, context)
    # General Acquisition (PS3.3 C.7.10.1): all Type 3
    dataset.AcquisitionDateTime = content.strftime("%Y%m%d%H%M%S")
    # General Image (PS3.3 C.7.6.1)
    dataset.InstanceNumber = context.instance_number
    dataset.PatientOrientation = ""
    dataset.ContentDate = da(content)
    dataset.ContentTime = tm(content)
    dataset.ImageType = ["ORIGINAL", "PRIMARY"]
    # Endoscopy overlays often burn in the patient's name: YES unless known otherwise.
    dataset.BurnedInAnnotation = "NO" if context.burned_in_annotation is False else "YES"
    add_lossy_compression(dataset, methods=[method], ratios=[], lossy=True)
    _add_cine_and_multi_frame_modules(dataset, stream)
    _add_image_pixel_module(dataset, stream)
    # Acquisition Context (PS3.3 C.7.6.14): Type 2, empty
    dataset.AcquisitionContextSequence = Sequence()
    # VL Image (PS3.3 C.8.12.1): AnatomicRegionSequence 1C, one item (dciodvfy: multi-frame)
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = region
    dataset.AnatomicRegionSequence = Sequence([item])
    add_sop_common_module(dataset, context)
    return dataset


def write_video(dataset: Dataset, stream: VideoStream, target: Path) -> None:
    """Write ``dataset`` to ``target`` with ``stream.path`` as its Pixel Data.

    The file is streamed in chunks into one fragment (padded to even length with 0x00) after
    an empty Basic Offset Table, with undefined length and a Sequence Delimitation Item
    (PS3.5 A.4). The file appears atomically: it is written to a hidden ``.<name>.<pid>.part``
    in the target's folder and renamed; the temporary is removed on any failure.
    ``dataset`` is left without Pixel Data.

    Raises
    ------
    ValueError
        The stream is larger than one fragment can hold, its size differs from
        ``stream.size_bytes``, or the dataset already has Pixel Data.
    OSError
        Reading the stream or writing the target failed.
    """
    size = stream.path.stat().st_size
    if size != stream.size_bytes:
        raise ValueError(f"{stream.path} has {size} bytes; expected {stream.size_bytes}")
    if size > MAX_FRAGMENT_BYTES:
        raise ValueError(
            f"{stream.path} has {size} bytes and exceeds the 4 GiB a single fragment can hold "
            f"(at most {MAX_FRAGMENT_BYTES}); the fragmentable transfer syntaxes are not "
            "supported"
        )
    if "PixelData" in dataset:
        raise ValueError("the dataset already has Pixel Data; expected none")
    if any(element.tag > _PIXEL_DATA for element in dataset):
        raise ValueError("the dataset has elements after Pixel Data; expected none")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with stream.path.open("rb") as source, temporary.open("wb") as output:
            dcmwrite(output, dataset, enforce_file_format=True)
            _write_encapsulated(output, source, size)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_encapsulated(output: BinaryIO, source: BinaryIO, size: int) -> None:
    """Append Pixel Data (OB, undefined length) holding ``source`` as one fragment.

    The framing of PS3.5 A.4 in Explicit VR Little Endian (all video transfer syntaxes are):
    the element header, an empty Basic Offset Table item, one item of even length with the
    bytes, then the Sequence Delimitation Item. The bytes are copied by the kernel where it
    can (``os.copy_file_range``), else in large blocks: pydicom's own buffered write reads
    8 KiB at a time, which halves the throughput on a recording of a gigabyte.
    """
    padded = size + (size & 1)
    output.write(_PIXEL_DATA_HEADER)
    output.write(_ITEM + struct.pack("<I", 0))
    output.write(_ITEM + struct.pack("<I", padded))
    output.flush()
    start = output.tell()
    copied = _kernel_copy(source, output, start, size)
    if copied is None:
        copied = 0
        while block := source.read(_COPY_BLOCK):
            copied += len(block)
            output.write(block)
    else:
        output.seek(start + copied)
    if copied != size:
        raise ValueError(f"{copied} bytes read; expected {size} (the file changed)")
    if padded != size:
        output.write(b"\x00")
    output.write(_SEQUENCE_DELIMITER + struct.pack("<I", 0))


def _kernel_copy(source: BinaryIO, output: BinaryIO, start: int, size: int) -> int | None:
    """Copy all of ``source`` to ``output`` at ``start`` in the kernel; None: not possible here.

    One byte more than ``size`` is asked for, so that a file still growing is noticed.
    """
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is None:
        return None
    copied = 0
    while copied <= size:
        try:
            count = copy_range(
                source.fileno(), output.fileno(), size + 1 - copied, copied, start + copied
            )
        except OSError as exc:
            if copied == 0 and exc.errno in _NO_KERNEL_COPY:
                return None  # another file system, or one that cannot: copy in user space
            raise
        if count == 0:
            break
        copied += count
    return copied


def _add_cine_and_multi_frame_modules(dataset: Dataset, stream: VideoStream) -> None:
    """Cine (PS3.3 C.7.6.5) and Multi-frame (PS3.3 C.7.6.6) Modules for a constant rate."""
    frame_ms = 1000 / stream.frame_rate
    rate = max(1, round(stream.frame_rate))
    dataset.FrameTime = format_ds(float(frame_ms))
    dataset.CineRate = rate
    dataset.RecommendedDisplayFrameRate = rate
    dataset.StartTrim = 1
    dataset.StopTrim = stream.frame_count
    dataset.ActualFrameDuration = max(1, round(frame_ms))
    dataset.NumberOfFrames = stream.frame_count
    dataset.FrameIncrementPointer = _FRAME_TIME


def _add_image_pixel_module(dataset: Dataset, stream: VideoStream) -> None:
    """Image Pixel Module (PS3.3 C.7.6.3) as PS3.5 §8.2.5-8.2.11 require; no Pixel Aspect Ratio."""
    dataset.SamplesPerPixel = 3
    dataset.PhotometricInterpretation = "YBR_PARTIAL_420"
    dataset.PlanarConfiguration = 0
    dataset.Rows = stream.height
    dataset.Columns = stream.width
    dataset.BitsAllocated = 8
    dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0


def _content_datetime(recorded: dt.datetime | None, context: ObjectContext) -> dt.datetime:
    """The recording's start in the conversion's time zone (Content Date and Time are Type 1).

    Without one in the container: when the file was last written, else midnight of the day of
    the conversion. Never the clock's time of day, so that the object's identity holds for the
    day (see :mod:`sendtopacs_core.identity`).
    """
    if recorded is not None:
        return local(recorded, context.timezone)
    if context.source_time is not None:
        return local(context.source_time, context.timezone)
    return dt.datetime.combine(context.day, dt.time())
