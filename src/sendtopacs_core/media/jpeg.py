"""JPEG marker inspection and pass-through preparation (ISO/IEC 10918-1, Annex B).

This module reads the marker structure of a JPEG interchange-format stream without decoding
it. It answers three questions for the converter:

* what the frame is (:func:`parse_jpeg` returns a :class:`JpegInfo`),
* whether the stream may be encapsulated as-is under JPEG Baseline
  (:func:`pass_through_refusal`) and with which Photometric Interpretation
  (:func:`photometric_for`),
* which bytes to encapsulate (:func:`strip_jpeg`: the coding segments byte-identical, the
  metadata segments that can carry PHI removed).

The rules are those of the conversion reference, section 6.1 (same logic as dcm4che
``JPEGParser`` and DCMTK ``i2djpgs.cc``). Malformed input raises :class:`JpegFormatError`, a
:class:`ValueError`; :mod:`sendtopacs_core.media.image` turns it into
:class:`~sendtopacs_core.errors.CorruptMediaError`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from typing import Final

import attrs

__all__ = [
    "JpegInfo",
    "is_lossless_process",
    "parse_jpeg",
    "pass_through_refusal",
    "photometric_for",
    "strip_jpeg",
]

_SOI: Final = 0xD8
_EOI: Final = 0xD9
_SOS: Final = 0xDA
_APP0: Final = 0xE0
_APP1: Final = 0xE1
_APP2: Final = 0xE2
_APP14: Final = 0xEE
# SOFn: every 0xC0-0xCF except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and RST0-RST7 (SOI and EOI are handled on their own).
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})
# Segments strip_jpeg keeps unconditionally: SOFn, DHT, DAC, DQT, DNL, DRI, DHP, EXP, SOS.
_CODING_MARKERS: Final = _SOF_MARKERS | {0xC4, 0xCC, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, _SOS}

_ARITHMETIC: Final = frozenset({9, 10, 11, 13, 14, 15})
_HIERARCHICAL: Final = frozenset({5, 6, 7, 13, 14, 15})
_LOSSLESS: Final = frozenset({3, 7, 11, 15})
_ORIENTATION_TAG: Final = 0x0112
_ROTATING_ORIENTATIONS: Final = frozenset(range(2, 9))
_XMP_ORIENTATION: Final = re.compile(rb'tiff:Orientation(?:="|>)([0-9])')
_XMP_PREFIX: Final = b"http://ns.adobe.com/xap/1.0/\x00"
_ADOBE_SEGMENT_LENGTH: Final = 12  # "Adobe", version, flags0, flags1, transform


class JpegFormatError(ValueError):
    """The bytes are not a well-formed JPEG stream; the message says why."""


_optional_int: Final = attrs.validators.optional(attrs.validators.instance_of(int))
_tuple_of_ints: Final = attrs.validators.deep_iterable(
    attrs.validators.instance_of(int), attrs.validators.instance_of(tuple)
)
_tuple_of_pairs: Final = attrs.validators.deep_iterable(
    attrs.validators.instance_of(tuple), attrs.validators.instance_of(tuple)
)


@attrs.frozen(kw_only=True)
class JpegInfo:
    """What the markers of a JPEG stream say, read up to the first SOS.

    Attributes
    ----------
    sof
        The ``n`` of the first SOFn marker: 0 baseline, 1 extended sequential, 2 progressive,
        3 lossless, 5-7 hierarchical, 9-15 arithmetic-coded.
    precision
        Sample precision in bits (8 or 12 for lossy, 2-16 for lossless).
    rows, columns
        The frame size (Y and X of the SOF segment).
    components
        Number of image components (1 grey, 3 colour, 4 CMYK/YCCK).
    component_ids
        The component identifiers, in frame order (1, 2, 3 for JFIF; ``R``, ``G``, ``B``
        for RGB written by libjpeg).
    sampling
        ``(horizontal, vertical)`` sampling factors of each component.
    has_jfif
        Whether an APP0 ``JFIF`` segment is present.
    adobe_transform
        The transform byte of an APP14 ``Adobe`` segment (0 none/RGB or CMYK, 1 YCbCr,
        2 YCCK), or ``None`` without one.
    exif_orientation
        The Orientation (0112) of the APP1 Exif IFD0, or failing that the XMP
        ``tiff:Orientation`` (both are what Pillow's ``ImageOps.exif_transpose`` reads);
        ``None`` when absent or unreadable.
    """

    sof: int = attrs.field(validator=attrs.validators.in_(range(16)))
    precision: int = attrs.field(validator=attrs.validators.in_(range(2, 17)))
    rows: int = attrs.field(validator=attrs.validators.in_(range(1, 0x10000)))
    columns: int = attrs.field(validator=attrs.validators.in_(range(1, 0x10000)))
    components: int = attrs.field(validator=attrs.validators.in_(range(1, 256)))
    component_ids: tuple[int, ...] = attrs.field(validator=_tuple_of_ints)
    sampling: tuple[tuple[int, int], ...] = attrs.field(validator=_tuple_of_pairs)
    has_jfif: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    adobe_transform: int | None = attrs.field(validator=_optional_int)
    exif_orientation: int | None = attrs.field(validator=_optional_int)


@attrs.frozen
class _Segment:
    """A marker segment (``start`` at its 0xFF) or, for ``marker`` None, entropy-coded data."""

    marker: int | None
    start: int
    end: int


def _walk(data: bytes) -> Iterator[_Segment]:
    """Yield the segments of ``data`` from SOI to the first EOI (inclusive).

    Fill bytes (0xFF) before a marker are skipped. After each SOS, the entropy-coded data is
    yielded as one segment running to the next marker that is not RSTn; stuffed bytes
    (0xFF00) and restart markers stay inside it.
    """
    if data[:2] != b"\xff\xd8":
        raise JpegFormatError("not a JPEG file: no SOI marker")
    yield _Segment(_SOI, 0, 2)
    pos = 2
    while True:
        start, marker, pos = _next_marker(data, pos)
        if marker == _EOI or marker in _STANDALONE:
            yield _Segment(marker, pos - 2, pos)
            if marker == _EOI:
                return
            continue
        if marker in (0x00, _SOI):
            raise JpegFormatError(f"unexpected marker 0xFF{marker:02X} at offset {start}")
        end = _segment_end(data, start, marker, pos)
        yield _Segment(marker, pos - 2, end)
        pos = end
        if marker == _SOS:
            pos = _scan_end(data, pos)
            yield _Segment(None, end, pos)


def _next_marker(data: bytes, pos: int) -> tuple[int, int, int]:
    """Read the marker at ``pos``: return its offset, its code and the offset after it."""
    size = len(data)
    if pos >= size:
        raise JpegFormatError("truncated JPEG: data ends before EOI")
    if data[pos] != 0xFF:
        raise JpegFormatError(f"expected a marker at offset {pos}, found 0x{data[pos]:02X}")
    start = pos
    while pos < size and data[pos] == 0xFF:  # fill bytes
        pos += 1
    if pos >= size:
        raise JpegFormatError("truncated JPEG: data ends before EOI")
    return start, data[pos], pos + 1


def _segment_end(data: bytes, start: int, marker: int, pos: int) -> int:
    """Return the end offset of the segment whose length field is at ``pos``."""
    size = len(data)
    if pos + 2 > size:
        raise JpegFormatError(f"truncated JPEG: marker 0xFF{marker:02X} has no length")
    length = int.from_bytes(data[pos : pos + 2], "big")
    if length < 2:
        raise JpegFormatError(
            f"marker 0xFF{marker:02X} at offset {start} has invalid length {length}"
        )
    if pos + length > size:
        raise JpegFormatError(
            f"truncated JPEG: segment 0xFF{marker:02X} at offset {start} declares "
            f"{length} bytes, only {size - pos} remain"
        )
    return pos + length


#: A marker inside entropy-coded data: 0xFF followed by a code that is neither a stuffed zero,
#: RSTn nor another 0xFF (a fill byte). A pattern that starts with a literal lets the regex
#: engine skip ahead at C speed, about 5x faster than a find() loop over the stuffed bytes.
_SCAN_MARKER: Final = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")


def _scan_end(data: bytes, pos: int) -> int:
    """Return the offset of the marker (its first 0xFF, fill included) ending a scan."""
    match = _SCAN_MARKER.search(data, pos)
    if match is None:
        raise JpegFormatError("truncated JPEG: image data ends before EOI")
    start = match.start()
    while start > pos and data[start - 1] == 0xFF:  # fill bytes belong to the marker
        start -= 1
    return start


def parse_jpeg(data: bytes) -> JpegInfo:
    """Read the frame header and metadata markers of a JPEG stream.

    The whole stream is walked to the first EOI, so a truncated scan is detected.

    Parameters
    ----------
    data
        The JPEG file contents. Bytes after the first EOI (an MPO's second image, a vendor
        trailer) are ignored.

    Returns
    -------
    JpegInfo
        The first frame's header and the JFIF, Adobe and Exif facts.

    Raises
    ------
    JpegFormatError
        No SOI, a truncated or malformed segment, no SOF or SOS, or no EOI.
    """
    return _info(data, list(_walk(data)))


def analyse_jpeg(data: bytes) -> tuple[JpegInfo, bytes]:
    """:func:`parse_jpeg` and :func:`strip_jpeg` in one walk over the stream."""
    segments = list(_walk(data))
    return _info(data, segments), _strip(data, segments)


def _info(data: bytes, segments: list[_Segment]) -> JpegInfo:
    sof: tuple[int, bytes] | None = None
    facts = _AppFacts()
    seen_sos = False
    for seg in segments:
        marker = seg.marker
        if marker in _SOF_MARKERS and sof is None:
            sof = (marker - 0xC0, data[seg.start + 4 : seg.end])
        elif marker == _SOS:
            if sof is None:
                raise JpegFormatError("no SOF marker before the first SOS")
            seen_sos = True
        elif marker in (_APP0, _APP1, _APP14):
            facts.read(marker, data[seg.start + 4 : seg.end])
    if sof is None:
        raise JpegFormatError("no SOF marker (frame header)")
    if not seen_sos:
        raise JpegFormatError("no SOS marker (no image data)")
    n, payload = sof
    orientation = facts.exif_orientation
    return _frame_info(
        n,
        payload,
        has_jfif=facts.has_jfif,
        adobe_transform=facts.adobe_transform,
        exif_orientation=orientation if orientation is not None else facts.xmp_orientation,
    )


@attrs.define
class _AppFacts:
    """What the APP0, APP1 and APP14 segments say; the first occurrence of each wins."""

    has_jfif: bool = False
    adobe_transform: int | None = None
    exif_orientation: int | None = None
    xmp_orientation: int | None = None

    def read(self, marker: int, payload: bytes) -> None:
        if marker == _APP0 and payload.startswith(b"JFIF\x00"):
            self.has_jfif = True
        elif marker == _APP14 and payload.startswith(b"Adobe"):
            if len(payload) >= _ADOBE_SEGMENT_LENGTH and self.adobe_transform is None:
                self.adobe_transform = payload[11]
        elif marker == _APP1 and payload.startswith(b"Exif\x00\x00"):
            if self.exif_orientation is None:
                self.exif_orientation = _exif_orientation(payload[6:])
        elif marker == _APP1 and payload.startswith(_XMP_PREFIX):
            found = _XMP_ORIENTATION.search(payload)
            if found is not None and self.xmp_orientation is None:
                self.xmp_orientation = int(found[1])


def _frame_info(
    n: int,
    payload: bytes,
    *,
    has_jfif: bool,
    adobe_transform: int | None,
    exif_orientation: int | None,
) -> JpegInfo:
    if len(payload) < 6:
        raise JpegFormatError(f"SOF{n} segment too short ({len(payload)} bytes)")
    precision, rows, columns, components = struct.unpack_from(">BHHB", payload)
    if len(payload) != 6 + 3 * components:
        raise JpegFormatError(
            f"SOF{n} segment length {len(payload) + 2} does not match its "
            f"{components} components (expected {8 + 3 * components})"
        )
    if components == 0:
        raise JpegFormatError(f"SOF{n} declares 0 components")
    if rows == 0 or columns == 0:
        raise JpegFormatError(
            f"SOF{n} declares a {columns}x{rows} frame (a DNL-defined height is not supported)"
        )
    ids = tuple(payload[6 + 3 * i] for i in range(components))
    sampling = tuple(
        (payload[7 + 3 * i] >> 4, payload[7 + 3 * i] & 0x0F) for i in range(components)
    )
    return JpegInfo(
        sof=n,
        precision=precision,
        rows=rows,
        columns=columns,
        components=components,
        component_ids=ids,
        sampling=sampling,
        has_jfif=has_jfif,
        adobe_transform=adobe_transform,
        exif_orientation=exif_orientation,
    )


def _exif_orientation(tiff: bytes) -> int | None:
    """Return Orientation (0112) from IFD0 of an Exif TIFF structure, tolerating damage."""
    if tiff[:4] == b"II*\x00":
        order = "<"
    elif tiff[:4] == b"MM\x00*":
        order = ">"
    else:
        return None
    try:
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for i in range(count):
            tag, kind, n = struct.unpack_from(order + "HHI", tiff, ifd + 2 + 12 * i)
            if tag != _ORIENTATION_TAG:
                continue
            if kind == 3 and n >= 1:  # SHORT, stored left-justified in the value field
                return int(struct.unpack_from(order + "H", tiff, ifd + 10 + 12 * i)[0])
            if kind == 4 and n >= 1:  # LONG, seen from some writers
                return int(struct.unpack_from(order + "I", tiff, ifd + 10 + 12 * i)[0])
            return None
    except struct.error:
        return None
    return None


def strip_jpeg(data: bytes) -> bytes:
    """Return the bytes of ``data`` to encapsulate for JPEG pass-through.

    Kept byte-identical, in their order: SOI, every coding segment (DQT, SOFn, DHT, DAC,
    DRI, DNL, DHP, EXP, SOS) and the entropy-coded data of each scan (with its RSTn and
    stuffing), APP2 ``ICC_PROFILE`` segments and APP14 ``Adobe`` (without it an RGB JPEG
    decodes as YCbCr), then EOI. Dropped: APP0 (JFIF), APP1 (Exif/XMP: GPS, serial numbers
    and times can be PHI), APP13 (IPTC), every other APPn, COM, JPGn, TEM, fill bytes between
    segments and anything after the first EOI (an MPO's second image, vendor trailers).

    Raises
    ------
    JpegFormatError
        ``data`` is not a complete JPEG stream.
    """
    return _strip(data, _walk(data))


def _strip(data: bytes, segments: Iterable[_Segment]) -> bytes:
    view = memoryview(data)
    kept: list[memoryview] = []
    for seg in segments:
        marker = seg.marker
        keep = (
            marker is None
            or marker in (_SOI, _EOI)
            or marker in _CODING_MARKERS
            or (marker == _APP2 and data.startswith(b"ICC_PROFILE\x00", seg.start + 4, seg.end))
            or (marker == _APP14 and data.startswith(b"Adobe", seg.start + 4, seg.end))
        )
        if keep:
            kept.append(view[seg.start : seg.end])
    return b"".join(kept)  # one copy: the scan data is most of the file


def pass_through_refusal(info: JpegInfo) -> str | None:
    """Say why a JPEG may not be encapsulated as-is under JPEG Baseline, or ``None``.

    Pass-through is allowed only for SOF0 (baseline, 8-bit), 1 or 3 components, and no EXIF
    rotation (Orientation absent, 1, or a value outside 2-8, which defines no rotation).
    A 3-component stream whose JFIF segment contradicts an Adobe transform 0 or ``R``,
    ``G``, ``B`` component IDs is refused too: libjpeg decodes it as YCbCr because of the
    JFIF segment, which :func:`strip_jpeg` removes. The first failing rule is reported.
    """
    n = info.sof
    rules = (
        (n in _ARITHMETIC, f"arithmetic-coded JPEG (SOF{n}) cannot pass through"),
        (n in _HIERARCHICAL, f"hierarchical JPEG (SOF{n}) cannot pass through"),
        (n == 2, "progressive JPEG (SOF2) cannot pass through"),
        (n in _LOSSLESS, f"lossless JPEG (SOF{n}) cannot pass through as baseline"),
        (info.precision != 8, f"{info.precision}-bit JPEG (SOF{n}) cannot pass through"),
        (n != 0, f"extended sequential JPEG (SOF{n}) cannot pass through as baseline"),
        (info.components == 4, "4-component (CMYK/YCCK) JPEG cannot pass through"),
        (info.components not in (1, 3), f"{info.components}-component JPEG cannot pass through"),
        (
            info.components == 3 and _contradicts_jfif(info),
            "JPEG with both JFIF (YCbCr) and RGB markers cannot pass through",
        ),
        (
            info.exif_orientation in _ROTATING_ORIENTATIONS,
            f"EXIF orientation {info.exif_orientation}: the image must be rotated",
        ),
    )
    return next((reason for refused, reason in rules if refused), None)


def photometric_for(info: JpegInfo) -> str:
    """Return the Photometric Interpretation of a JPEG passed through under JPEG Baseline.

    ``MONOCHROME2`` for one component. For three: ``RGB`` when an Adobe APP14 says transform
    0, or, without an APP14, when the component IDs are ``R``, ``G``, ``B`` and there is no
    JFIF; otherwise ``YBR_FULL_422``, whatever the actual chroma subsampling (PS3.5 Table
    8.2.1-1, CP-1654). This is how libjpeg reads the stream once :func:`strip_jpeg` has
    removed the JFIF segment; files whose JFIF contradicts an RGB marker are refused by
    :func:`pass_through_refusal`.
    """
    if info.components == 1:
        return "MONOCHROME2"
    if info.adobe_transform is not None:
        return "RGB" if info.adobe_transform == 0 else "YBR_FULL_422"
    if _has_rgb_ids(info) and not info.has_jfif:
        return "RGB"
    return "YBR_FULL_422"


def _has_rgb_ids(info: JpegInfo) -> bool:
    return info.component_ids == (ord("R"), ord("G"), ord("B"))


def _contradicts_jfif(info: JpegInfo) -> bool:
    """JFIF (YCbCr) beside an RGB marker: libjpeg honours JFIF, but stripping removes it."""
    return info.has_jfif and (info.adobe_transform == 0 or _has_rgb_ids(info))


def is_lossless_process(info: JpegInfo) -> bool:
    """Whether the frame uses a lossless process (SOF3, 7, 11, 15)."""
    return info.sof in _LOSSLESS
