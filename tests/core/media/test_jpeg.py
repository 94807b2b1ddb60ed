"""Tests for sendtopacs_core.media.jpeg: marker parsing, stripping and pass-through rules.

Every JPEG is generated here with Pillow (or cjpeg for arithmetic coding); the 12-bit one is
the single fragment of pydicom's bundled ``JPGExtended.dcm``.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import pytest
from PIL import Image, ImageCms

from sendtopacs_core.media.jpeg import (
    JpegFormatError,
    JpegInfo,
    is_lossless_process,
    parse_jpeg,
    pass_through_refusal,
    photometric_for,
    strip_jpeg,
)

WIDTH, HEIGHT = 48, 32


def _pattern_rgb() -> Image.Image:
    """A deterministic colour image with smooth and sharp content."""
    y, x = np.indices((HEIGHT, WIDTH))
    rgb = np.dstack([(x * 5) % 256, (y * 7) % 256, ((x + y) * 3) % 256]).astype(np.uint8)
    rgb[8:16, 8:24] = (250, 20, 20)
    return Image.fromarray(rgb)


def _jpeg(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **params)
    return buffer.getvalue()


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _markers(data: bytes) -> list[int]:
    """The marker codes of ``data`` up to the first SOS (an independent, minimal walk)."""
    found = []
    pos = 2
    while True:
        marker = data[pos + 1]
        found.append(marker)
        if marker == 0xDA:
            return found
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length


def _scan_data(data: bytes) -> bytes:
    """The entropy-coded data of a single-scan JPEG: after the SOS header, before EOI."""
    pos = 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    (length,) = struct.unpack_from(">H", data, pos + 2)
    start = pos + 2 + length
    return data[start : data.index(b"\xff\xd9", start)]


def _exif_app1(orientation: int, *, big_endian: bool) -> bytes:
    order = ">" if big_endian else "<"
    tiff = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(order + "I", 8)
    tiff += struct.pack(order + "H", 1)
    tiff += struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(order + "I", 0)
    return _segment(0xE1, b"Exif\x00\x00" + tiff)


def _insert_after_soi(data: bytes, segment: bytes) -> bytes:
    return data[:2] + segment + data[2:]


@pytest.fixture
def baseline_420() -> bytes:
    return _jpeg(_pattern_rgb(), subsampling=2)


# --- parse_jpeg ----------------------------------------------------------------------------


def test_parse_baseline_ycbcr_420(baseline_420: bytes) -> None:
    info = parse_jpeg(baseline_420)
    assert info == JpegInfo(
        sof=0,
        precision=8,
        rows=HEIGHT,
        columns=WIDTH,
        components=3,
        component_ids=(1, 2, 3),
        sampling=((2, 2), (1, 1), (1, 1)),
        has_jfif=True,
        adobe_transform=None,
        exif_orientation=None,
    )
    assert pass_through_refusal(info) is None
    assert photometric_for(info) == "YBR_FULL_422"


def test_parse_baseline_ycbcr_444_is_still_ybr_full_422() -> None:
    info = parse_jpeg(_jpeg(_pattern_rgb(), subsampling=0))
    assert info.sampling == ((1, 1), (1, 1), (1, 1))
    assert pass_through_refusal(info) is None
    assert photometric_for(info) == "YBR_FULL_422"


def test_parse_greyscale() -> None:
    info = parse_jpeg(_jpeg(_pattern_rgb().convert("L")))
    assert (info.components, info.component_ids, info.sampling) == (1, (1,), ((1, 1),))
    assert pass_through_refusal(info) is None
    assert photometric_for(info) == "MONOCHROME2"


def test_parse_adobe_rgb_written_without_colour_conversion() -> None:
    # keep_rgb makes libjpeg write RGB samples, component IDs 'R','G','B', APP14 transform 0.
    info = parse_jpeg(_jpeg(_pattern_rgb(), keep_rgb=True))
    assert info.adobe_transform == 0
    assert info.component_ids == (ord("R"), ord("G"), ord("B"))
    assert not info.has_jfif
    assert pass_through_refusal(info) is None
    assert photometric_for(info) == "RGB"


def test_photometric_rgb_component_ids_need_absent_jfif() -> None:
    info = parse_jpeg(_jpeg(_pattern_rgb(), keep_rgb=True))
    no_adobe = attrs.evolve(info, adobe_transform=None)
    assert photometric_for(no_adobe) == "RGB"
    assert photometric_for(attrs.evolve(no_adobe, has_jfif=True)) == "YBR_FULL_422"
    # An APP14 decides before the component IDs, as in libjpeg.
    assert photometric_for(attrs.evolve(info, adobe_transform=1)) == "YBR_FULL_422"


def test_rgb_ids_without_app14_decode_as_rgb_after_stripping() -> None:
    source = _jpeg(_pattern_rgb(), keep_rgb=True)
    without_adobe = _without_segment(source, 0xEE)
    info = parse_jpeg(without_adobe)
    assert info.adobe_transform is None
    assert photometric_for(info) == "RGB"
    assert pass_through_refusal(info) is None
    stripped = strip_jpeg(without_adobe)
    with Image.open(io.BytesIO(stripped)) as im, Image.open(io.BytesIO(source)) as original:
        assert np.array_equal(np.asarray(im), np.asarray(original))


@pytest.mark.parametrize("remove_adobe", [False, True], ids=["adobe-0", "rgb-ids"])
def test_jfif_contradicting_rgb_markers_is_refused(remove_adobe: bool) -> None:
    # libjpeg decodes these as YCbCr because of JFIF; stripping JFIF would turn them RGB.
    source = _jpeg(_pattern_rgb(), keep_rgb=True)
    if remove_adobe:
        source = _without_segment(source, 0xEE)
    jfif = _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    info = parse_jpeg(_insert_after_soi(source, jfif))
    assert info.has_jfif
    assert pass_through_refusal(info) == (
        "JPEG with both JFIF (YCbCr) and RGB markers cannot pass through"
    )


def test_parse_progressive_is_refused() -> None:
    info = parse_jpeg(_jpeg(_pattern_rgb(), progressive=True))
    assert info.sof == 2
    assert pass_through_refusal(info) == "progressive JPEG (SOF2) cannot pass through"


def test_parse_cmyk_is_refused() -> None:
    info = parse_jpeg(_jpeg(_pattern_rgb().convert("CMYK")))
    assert info.components == 4
    assert info.adobe_transform is not None  # libjpeg marks CMYK with APP14 Adobe
    assert pass_through_refusal(info) == "4-component (CMYK/YCCK) JPEG cannot pass through"


@pytest.mark.parametrize("big_endian", [False, True], ids=["II", "MM"])
def test_parse_exif_orientation_both_byte_orders(big_endian: bool) -> None:
    data = _insert_after_soi(_jpeg(_pattern_rgb()), _exif_app1(6, big_endian=big_endian))
    info = parse_jpeg(data)
    assert info.exif_orientation == 6
    assert pass_through_refusal(info) == "EXIF orientation 6: the image must be rotated"
    with Image.open(io.BytesIO(data)) as im:  # Pillow reads the same value
        assert im.getexif()[0x0112] == 6


def test_parse_exif_written_by_pillow() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    exif[0x010F] = "Camera maker"
    assert parse_jpeg(_jpeg(_pattern_rgb(), exif=exif)).exif_orientation == 8


@pytest.mark.parametrize("orientation", [1, 0, 9])
def test_orientation_without_rotation_may_pass_through(orientation: int) -> None:
    data = _insert_after_soi(_jpeg(_pattern_rgb()), _exif_app1(orientation, big_endian=False))
    info = parse_jpeg(data)
    assert info.exif_orientation == orientation
    assert pass_through_refusal(info) is None


def test_parse_xmp_orientation_when_exif_has_none() -> None:
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="3"/></x:xmpmeta>'
    info = parse_jpeg(_jpeg(_pattern_rgb(), xmp=xmp))
    assert info.exif_orientation == 3
    assert pass_through_refusal(info) == "EXIF orientation 3: the image must be rotated"


def test_parse_damaged_exif_is_ignored() -> None:
    damaged = _segment(0xE1, b"Exif\x00\x00II*\x00" + struct.pack("<I", 4000))
    info = parse_jpeg(_insert_after_soi(_jpeg(_pattern_rgb()), damaged))
    assert info.exif_orientation is None


def test_parse_arithmetic_coded(tmp_path: Path) -> None:
    data = arithmetic_jpeg(tmp_path)
    info = parse_jpeg(data)
    assert info.sof == 9
    assert pass_through_refusal(info) == "arithmetic-coded JPEG (SOF9) cannot pass through"


def arithmetic_jpeg(tmp_path: Path) -> bytes:
    """An arithmetic-coded JPEG from cjpeg (Debian libjpeg-turbo-progs)."""
    cjpeg = shutil.which("cjpeg")
    if cjpeg is None:
        reason = "cjpeg (Debian libjpeg-turbo-progs) is needed to write arithmetic-coded JPEG"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}, and CI must not skip")
        pytest.skip(reason)
    source = tmp_path / "source.ppm"
    _pattern_rgb().save(source)
    done = subprocess.run(
        [cjpeg, "-arithmetic", "-quality", "90", str(source)],
        capture_output=True,
        check=True,
    )
    return done.stdout


def twelve_bit_jpeg() -> bytes:
    """The JPEG Extended (SOF1) 12-bit greyscale fragment of pydicom's ``JPGExtended.dcm``.

    ``JPEG-lossy.dcm`` holds the same image but its SOS says Se=0, which libjpeg rejects
    (see test_image.py); ``JPGExtended.dcm`` is the corrected copy.
    """
    import pydicom  # a dependency: never skipped, a missing one fails
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    path = get_testdata_file("JPGExtended.dcm")
    assert path is not None
    dataset = pydicom.dcmread(path)
    return bytes(next(generate_frames(dataset.PixelData, number_of_frames=1)))


def test_parse_12_bit_extended() -> None:
    info = parse_jpeg(twelve_bit_jpeg())  # the fragment is padded with 0xFF after EOI
    assert (info.sof, info.precision, info.components) == (1, 12, 1)
    assert (info.rows, info.columns) == (1024, 256)
    assert pass_through_refusal(info) == "12-bit JPEG (SOF1) cannot pass through"


def test_parse_ignores_fill_bytes_and_standalone_markers(baseline_420: bytes) -> None:
    # Fill bytes before a marker and a TEM marker (no length) are legal between segments.
    data = baseline_420[:2] + b"\xff\xff\xff\x01" + b"\xff\xff" + baseline_420[2:]
    assert parse_jpeg(data) == parse_jpeg(baseline_420)


def test_parse_restart_intervals() -> None:
    data = _jpeg(_pattern_rgb(), restart_marker_blocks=1)
    assert 0xDD in _markers(data)  # DRI
    assert any(data.find(bytes((0xFF, rst))) > 0 for rst in range(0xD0, 0xD8))
    assert pass_through_refusal(parse_jpeg(data)) is None


# --- pass_through_refusal for the processes Pillow cannot write ----------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda info: attrs.evolve(info, sof=1),
            "extended sequential JPEG (SOF1) cannot pass through as baseline",
        ),
        (
            lambda info: attrs.evolve(info, sof=3),
            "lossless JPEG (SOF3) cannot pass through as baseline",
        ),
        (lambda info: attrs.evolve(info, sof=5), "hierarchical JPEG (SOF5) cannot pass through"),
        (
            lambda info: attrs.evolve(info, sof=10),
            "arithmetic-coded JPEG (SOF10) cannot pass through",
        ),
        (
            lambda info: attrs.evolve(info, precision=12),
            "12-bit JPEG (SOF0) cannot pass through",
        ),
        (
            lambda info: attrs.evolve(info, components=2),
            "2-component JPEG cannot pass through",
        ),
    ],
)
def test_refusal_reasons(
    baseline_420: bytes, change: Callable[[JpegInfo], JpegInfo], reason: str
) -> None:
    assert pass_through_refusal(change(parse_jpeg(baseline_420))) == reason


def test_is_lossless_process(baseline_420: bytes) -> None:
    info = parse_jpeg(baseline_420)
    assert not is_lossless_process(info)
    assert all(is_lossless_process(attrs.evolve(info, sof=n)) for n in (3, 7, 11, 15))


# --- strip_jpeg ----------------------------------------------------------------------------


def test_strip_keeps_coding_segments_and_drops_metadata() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x0131] = "Software with a serial number"
    extra = _segment(0xED, b"Photoshop 3.0\x00IPTC") + _segment(0xE5, b"vendor data")
    source = _jpeg(
        _pattern_rgb(),
        icc_profile=icc,
        exif=exif,
        comment=b"patient name in a comment",
        xmp=b"<x:xmpmeta/>",
        extra=extra,
    )
    markers = _markers(source)
    assert {0xE0, 0xE1, 0xE2, 0xED, 0xE5, 0xFE} <= set(markers)

    stripped = strip_jpeg(source)

    kept = _markers(stripped)
    assert set(kept) == {0xDB, 0xC0, 0xC4, 0xDA, 0xE2}
    assert b"patient name" not in stripped
    assert b"serial number" not in stripped
    assert stripped.startswith(b"\xff\xd8")
    assert stripped.endswith(b"\xff\xd9")
    assert _scan_data(stripped) == _scan_data(source)
    with Image.open(io.BytesIO(stripped)) as im, Image.open(io.BytesIO(source)) as original:
        assert im.info["icc_profile"] == icc
        assert np.array_equal(np.asarray(im), np.asarray(original))


def test_strip_keeps_adobe_app14_so_rgb_still_decodes_as_rgb() -> None:
    source = _jpeg(_pattern_rgb(), keep_rgb=True)
    stripped = strip_jpeg(source)
    assert 0xEE in _markers(stripped)
    assert parse_jpeg(stripped).adobe_transform == 0
    with Image.open(io.BytesIO(stripped)) as im, Image.open(io.BytesIO(source)) as original:
        assert np.array_equal(np.asarray(im), np.asarray(original))


def test_strip_drops_everything_after_the_first_eoi(baseline_420: bytes) -> None:
    trailer = b"\xff\xd8 second image of an MPO or a vendor trailer \xff\xd9"
    stripped = strip_jpeg(baseline_420 + trailer)
    assert stripped == strip_jpeg(baseline_420)
    assert stripped.endswith(b"\xff\xd9")
    assert b"vendor" not in stripped


def test_strip_keeps_restart_markers_and_dri() -> None:
    source = _jpeg(_pattern_rgb(), restart_marker_blocks=2)
    stripped = strip_jpeg(source)
    assert 0xDD in _markers(stripped)
    assert _scan_data(stripped) == _scan_data(source)


def test_strip_keeps_every_scan_of_a_progressive_jpeg() -> None:
    source = _jpeg(_pattern_rgb(), progressive=True)
    stripped = strip_jpeg(source)
    assert stripped.count(b"\xff\xda") == source.count(b"\xff\xda") > 1
    with Image.open(io.BytesIO(stripped)) as im, Image.open(io.BytesIO(source)) as original:
        assert np.array_equal(np.asarray(im), np.asarray(original))


def test_strip_drops_fill_bytes_between_segments(baseline_420: bytes) -> None:
    padded = baseline_420[:2] + b"\xff\xff" + baseline_420[2:]
    assert strip_jpeg(padded) == strip_jpeg(baseline_420)


# --- malformed input -----------------------------------------------------------------------


def _without_segment(data: bytes, marker: int) -> bytes:
    pos = 2
    while data[pos + 1] != marker:
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    (length,) = struct.unpack_from(">H", data, pos + 2)
    return data[:pos] + data[pos + 2 + length :]


def _first_sos(data: bytes) -> int:
    pos = 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    return pos


@pytest.mark.parametrize("function", [parse_jpeg, strip_jpeg])
def test_malformed_input_raises(function: object, baseline_420: bytes) -> None:
    assert callable(function)
    sos = _first_sos(baseline_420)
    cases = {
        b"GIF89a": "not a JPEG file: no SOI marker",
        b"": "not a JPEG file: no SOI marker",
        b"\xff\xd8" + b"garbage that is no marker": "expected a marker at offset 2, found 0x67",
        baseline_420[: (sos + len(baseline_420)) // 2]: (
            "truncated JPEG: image data ends before EOI"
        ),
        baseline_420[:30]: r"truncated JPEG: segment 0xFFDB at offset \d+ declares 67 bytes",
        b"\xff\xd8\xff\xdb\x00\x01": "marker 0xFFDB at offset 2 has invalid length 1",
        b"\xff\xd8\xff": "truncated JPEG: data ends before EOI",
        b"\xff\xd8\xff\xd8": "unexpected marker 0xFFD8 at offset 2",
    }
    for data, reason in cases.items():
        with pytest.raises(JpegFormatError, match=reason):
            function(data)


def test_parse_without_sof_or_sos_raises(baseline_420: bytes) -> None:
    sos = _first_sos(baseline_420)
    with pytest.raises(JpegFormatError, match="no SOS marker"):
        parse_jpeg(baseline_420[:sos] + b"\xff\xd9")
    with pytest.raises(JpegFormatError, match="no SOF marker before the first SOS"):
        parse_jpeg(_without_segment(baseline_420, 0xC0))
    with pytest.raises(JpegFormatError, match="no SOF marker"):
        parse_jpeg(b"\xff\xd8\xff\xd9")


def test_parse_rejects_impossible_frame_headers(baseline_420: bytes) -> None:
    sof = baseline_420.index(b"\xff\xc0")
    zero_rows = bytearray(baseline_420)
    zero_rows[sof + 5 : sof + 7] = b"\x00\x00"
    with pytest.raises(JpegFormatError, match=r"SOF0 declares a 48x0 frame"):
        parse_jpeg(bytes(zero_rows))
    wrong_count = bytearray(baseline_420)
    wrong_count[sof + 9] = 4
    with pytest.raises(JpegFormatError, match="does not match its 4 components"):
        parse_jpeg(bytes(wrong_count))
