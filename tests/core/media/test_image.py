"""Tests for sendtopacs_core.media.image: pass-through, decoding, normalisation, hostile files.

Every input is generated in tmp_path with Pillow/numpy (cjpeg for arithmetic coding; the
12-bit JPEG is the fragment of a pydicom test file). Lossless paths are checked pixel for
pixel against Pillow's own decode after the same mode normalisation.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from sendtopacs_core.errors import CorruptMediaError, UnsupportedMediaError
from sendtopacs_core.media.image import (
    JpegImage,
    LossyHistory,
    RasterImage,
    encode_baseline_jpeg,
    read_image,
)
from sendtopacs_core.media.jpeg import parse_jpeg, strip_jpeg

WIDTH, HEIGHT = 64, 40


def _pattern(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A deterministic RGB array with gradients and a sharp block."""
    y, x = np.indices((height, width))
    rgb = np.dstack([(x * 4) % 256, (y * 6) % 256, ((x + y) * 3) % 256]).astype(np.uint8)
    rgb[4:12, 8:30] = (250, 20, 20)
    return rgb


def _rgb(width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    return Image.fromarray(_pattern(width, height))


def _save(tmp_path: Path, name: str, image: Image.Image, **params: Any) -> Path:
    """Save with Pillow; ``params`` are Pillow's writer options (untyped in Pillow too)."""
    path = tmp_path / name
    image.save(path, **params)
    return path


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _decoded(path: Path, convert: Callable[[Image.Image], Image.Image] | None = None) -> bytes:
    """Pillow's decode of ``path`` (first frame), EXIF-transposed and optionally converted."""
    with Image.open(path) as im:
        upright = ImageOps.exif_transpose(im)
        return (convert(upright) if convert else upright).tobytes()


def _on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _only(images: list[JpegImage | RasterImage]) -> RasterImage:
    assert len(images) == 1
    image = images[0]
    assert isinstance(image, RasterImage)
    return image


def _only_jpeg(images: list[JpegImage | RasterImage]) -> JpegImage:
    assert len(images) == 1
    image = images[0]
    assert isinstance(image, JpegImage)
    return image


def _scan_data(data: bytes) -> bytes:
    """The entropy-coded data of a single-scan JPEG: after the SOS header, before EOI."""
    pos = 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    (length,) = struct.unpack_from(">H", data, pos + 2)
    start = pos + 2 + length
    return data[start : data.index(b"\xff\xd9", start)]


def _error(path: Path, cause: str) -> str:
    """A ``match=`` pattern naming the file and the cause."""
    return re.escape(f"cannot convert {path}: ") + cause


# --- JPEG pass-through -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mode", "params", "photometric"),
    [
        ("ycbcr420.jpg", "RGB", {"subsampling": 2}, "YBR_FULL_422"),
        ("ycbcr444.jpg", "RGB", {"subsampling": 0}, "YBR_FULL_422"),
        ("grey.jpg", "L", {}, "MONOCHROME2"),
        ("adobe-rgb.jpg", "RGB", {"keep_rgb": True}, "RGB"),
    ],
)
def test_baseline_jpeg_passes_through(
    tmp_path: Path, name: str, mode: str, params: dict[str, object], photometric: str
) -> None:
    samples = len(mode)
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x0131] = "camera serial 1234"
    path = _save(
        tmp_path, name, _rgb().convert(mode), quality=90, exif=exif, comment=b"a comment", **params
    )
    source = path.read_bytes()

    image = _only_jpeg(read_image(path))

    assert (image.rows, image.columns, image.samples_per_pixel) == (HEIGHT, WIDTH, samples)
    assert image.photometric == photometric
    assert image.note == "baseline JPEG passed through"
    assert image.ratio == pytest.approx(HEIGHT * WIDTH * samples / len(image.data))
    assert image.data == strip_jpeg(source)
    assert _scan_data(image.data) == _scan_data(source)
    assert b"camera serial" not in image.data
    assert b"a comment" not in image.data
    info = parse_jpeg(image.data)
    assert (info.sof, info.has_jfif, info.exif_orientation) == (0, False, None)
    with Image.open(io.BytesIO(image.data)) as im:
        assert im.tobytes() == _decoded(path)


def test_pass_through_disabled_decodes_with_lossy_history(tmp_path: Path) -> None:
    path = _save(tmp_path, "photo.jpg", _rgb(), quality=90)
    image = _only(read_image(path, pass_through=False))
    assert image.note == "pass-through disabled: JPEG decoded"
    assert (image.photometric, image.bits_allocated) == ("RGB", 8)
    assert image.pixels == _decoded(path)
    stripped = strip_jpeg(path.read_bytes())
    assert isinstance(image.lossy, LossyHistory)
    assert image.lossy.method == "ISO_10918_1"
    assert image.lossy.ratio == pytest.approx(WIDTH * HEIGHT * 3 / len(stripped))


def test_jpeg_detected_by_content_not_extension(tmp_path: Path) -> None:
    path = _save(tmp_path, "scan.png", _rgb(), format="JPEG")
    assert isinstance(_only_jpeg(read_image(path)), JpegImage)


def test_mpo_passes_through_its_first_image(tmp_path: Path) -> None:
    second = _rgb().transpose(Image.Transpose.ROTATE_180)
    path = _save(tmp_path, "stereo.mpo", _rgb(), format="MPO", save_all=True,
                 append_images=[second])  # fmt: skip
    source = path.read_bytes()
    image = _only_jpeg(read_image(path))
    assert image.data.count(b"\xff\xd8") == 1
    assert _scan_data(image.data) == _scan_data(source)
    with Image.open(io.BytesIO(image.data)) as im:
        assert im.tobytes() == _decoded(path)

    decoded = _only(read_image(path, pass_through=False))
    assert decoded.pixels == _decoded(path)
    assert "MPO: first of 2 images kept" in decoded.note


def test_vendor_trailer_after_eoi_is_dropped(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    _rgb().save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    path = _write(tmp_path, "trailer.jpg", jpeg + b"VENDOR-TRAILER\x00" * 20 + jpeg)
    image = _only_jpeg(read_image(path))
    assert image.data == strip_jpeg(jpeg)
    assert b"VENDOR" not in image.data


# --- JPEG that must be decoded ---------------------------------------------------------------


def test_progressive_jpeg_is_decoded(tmp_path: Path) -> None:
    path = _save(tmp_path, "progressive.jpg", _rgb(), progressive=True)
    image = _only(read_image(path))
    assert image.note == "progressive JPEG (SOF2) cannot pass through: decoded"
    assert image.pixels == _decoded(path)
    assert image.lossy is not None
    assert image.lossy.method == "ISO_10918_1"


def test_cmyk_jpeg_is_decoded_to_rgb(tmp_path: Path) -> None:
    path = _save(tmp_path, "cmyk.jpg", _rgb().convert("CMYK"))
    image = _only(read_image(path))
    assert image.note == (
        "4-component (CMYK/YCCK) JPEG cannot pass through: decoded; CMYK converted to RGB"
    )
    assert (image.samples_per_pixel, image.photometric) == (3, "RGB")
    assert image.pixels == _decoded(path, lambda im: im.convert("RGB"))


def test_exif_rotated_jpeg_is_decoded_upright(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(tmp_path, "rotated.jpg", _rgb(), exif=exif)
    image = _only(read_image(path))
    assert (image.rows, image.columns) == (WIDTH, HEIGHT)
    assert image.note == (
        "EXIF orientation 6: the image must be rotated: decoded; EXIF orientation 6 applied"
    )
    with Image.open(path) as im:
        assert image.pixels == ImageOps.exif_transpose(im).tobytes()


def test_big_endian_exif_orientation_is_applied(tmp_path: Path) -> None:
    tiff = b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 8, 0)
    payload = b"Exif\x00\x00" + tiff + b"\x00\x00\x00\x00"
    buffer = io.BytesIO()
    _rgb().save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    data = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]
    path = _write(tmp_path, "rotated-mm.jpg", data)
    image = _only(read_image(path))
    assert (image.rows, image.columns) == (WIDTH, HEIGHT)
    assert "EXIF orientation 8 applied" in image.note
    with Image.open(path) as im:
        assert image.pixels == im.transpose(Image.Transpose.ROTATE_90).tobytes()


def test_arithmetic_coded_jpeg_is_decoded(tmp_path: Path) -> None:
    cjpeg = shutil.which("cjpeg")
    if cjpeg is None:
        reason = "cjpeg (Debian libjpeg-turbo-progs) is needed to write arithmetic-coded JPEG"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}, and CI must not skip")
        pytest.skip(reason)
    source = _save(tmp_path, "source.ppm", _rgb())
    path = tmp_path / "arithmetic.jpg"
    with path.open("wb") as out:
        subprocess.run([cjpeg, "-arithmetic", str(source)], stdout=out, check=True)
    image = _only(read_image(path))
    assert image.note == "arithmetic-coded JPEG (SOF9) cannot pass through: decoded"
    assert image.pixels == _decoded(path)
    assert image.lossy is not None
    assert image.lossy.method == "ISO_10918_1"


def _dicom_fragment(name: str) -> bytes:
    import pydicom  # a dependency: never skipped, a missing one fails
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    path = get_testdata_file(name)
    assert path is not None
    return bytes(next(generate_frames(pydicom.dcmread(path).PixelData, number_of_frames=1)))


def test_12_bit_jpeg_is_decoded_to_16_bit_grey(tmp_path: Path) -> None:
    import pydicom  # a dependency: never skipped, a missing one fails
    from pydicom.data import get_testdata_file

    # JPGExtended.dcm: JPEG Extended (SOF1), 12-bit, 1024x256, one fragment.
    path = _write(tmp_path, "twelve.jpg", _dicom_fragment("JPGExtended.dcm"))
    image = _only(read_image(path))
    assert (image.rows, image.columns, image.bits_allocated) == (1024, 256, 16)
    assert (image.samples_per_pixel, image.photometric) == (1, "MONOCHROME2")
    assert image.note == "12-bit JPEG (SOF1) cannot pass through: decoded"
    source = get_testdata_file("JPGExtended.dcm")
    assert isinstance(source, str), "pydicom's test file JPGExtended.dcm is missing"
    reference = pydicom.dcmread(source).pixel_array
    assert image.pixels == reference.astype("<u2").tobytes()
    assert image.lossy is not None
    assert image.lossy.method == "ISO_10918_1"


def test_12_bit_jpeg_libjpeg_rejects_is_corrupt(tmp_path: Path) -> None:
    # JPEG-lossy.dcm holds the same image, but its SOS says Se=0 (must be 63): libjpeg refuses.
    path = _write(tmp_path, "twelve-bad.jpg", _dicom_fragment("JPEG-lossy.dcm"))
    cause = r"12-bit JPEG \(SOF1\) cannot be decoded by libjpeg: .*scan stop must be 63"
    with pytest.raises(CorruptMediaError, match=_error(path, cause)):
        read_image(path)


def test_12_bit_colour_jpeg_is_unsupported(tmp_path: Path) -> None:
    sof1 = b"\xff\xc1\x00\x11\x0c\x00\x10\x00\x10\x03" + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    sos = b"\xff\xda\x00\x0c\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00"
    path = _write(tmp_path, "colour12.jpg", b"\xff\xd8" + sof1 + sos + b"\x12\x34\xff\xd9")
    cause = r"12-bit JPEG \(SOF1\) with 3 components cannot be decoded"
    with pytest.raises(UnsupportedMediaError, match=_error(path, cause)):
        read_image(path)


# --- PNG, BMP, GIF, TIFF, WebP -----------------------------------------------------------------


def test_png_8_bit_grey(tmp_path: Path) -> None:
    path = _save(tmp_path, "grey.png", _rgb().convert("L"))
    image = _only(read_image(path))
    assert (image.samples_per_pixel, image.bits_allocated, image.photometric) == (
        1,
        8,
        "MONOCHROME2",
    )
    assert (image.lossy, image.note) == (None, "PNG decoded")
    assert image.pixels == np.asarray(Image.open(path).convert("L")).tobytes()


def test_png_16_bit_grey(tmp_path: Path) -> None:
    values = (np.arange(WIDTH * HEIGHT, dtype=np.uint16) * 25).reshape(HEIGHT, WIDTH)
    path = _save(tmp_path, "grey16.png", Image.fromarray(values))
    image = _only(read_image(path))
    assert (image.bits_allocated, image.photometric) == (16, "MONOCHROME2")
    assert image.pixels == values.astype("<u2").tobytes()
    with Image.open(path) as im:
        assert image.pixels == np.asarray(im).astype("<u2").tobytes()


def test_png_rgb_and_bmp(tmp_path: Path) -> None:
    for name in ("rgb.png", "rgb.bmp"):
        path = _save(tmp_path, name, _rgb())
        image = _only(read_image(path))
        assert (image.samples_per_pixel, image.photometric, image.lossy) == (3, "RGB", None)
        assert image.pixels == _pattern().tobytes()
        assert image.pixels == _decoded(path)


def test_png_rgba_is_flattened_onto_white(tmp_path: Path) -> None:
    rgba = np.dstack([_pattern(), (np.indices((HEIGHT, WIDTH))[1] * 4).astype(np.uint8)])
    path = _save(tmp_path, "rgba.png", Image.fromarray(rgba))
    image = _only(read_image(path))
    assert image.note == "PNG decoded; RGBA flattened onto white"
    assert image.pixels == _decoded(path, _on_white)
    assert image.pixels[:3] == b"\xff\xff\xff"  # alpha 0 in column 0 gives white


def test_png_grey_with_alpha_is_flattened_to_grey(tmp_path: Path) -> None:
    path = _save(tmp_path, "la.png", _rgb().convert("LA"))
    image = _only(read_image(path))
    assert image.photometric == "MONOCHROME2"
    assert image.pixels == _decoded(path, lambda im: _on_white(im).convert("L"))


def test_png_colour_palette_becomes_rgb(tmp_path: Path) -> None:
    path = _save(tmp_path, "palette.png", _rgb().quantize(colors=16))
    image = _only(read_image(path))
    assert image.photometric == "RGB"
    assert image.note == "PNG decoded; palette expanded to RGB"
    assert image.pixels == _decoded(path, lambda im: im.convert("RGB"))


def test_png_grey_palette_becomes_monochrome(tmp_path: Path) -> None:
    grey = _rgb().convert("L").convert("P")  # Pillow gives L->P a grey palette
    path = _save(tmp_path, "grey-palette.png", grey)
    image = _only(read_image(path))
    assert (image.samples_per_pixel, image.photometric) == (1, "MONOCHROME2")
    assert image.note == "PNG decoded; grey palette expanded to L"
    assert image.pixels == _decoded(path, lambda im: im.convert("L"))


def test_png_palette_with_transparency_is_flattened(tmp_path: Path) -> None:
    path = _save(tmp_path, "palette-alpha.png", _rgb().quantize(colors=16), transparency=0)
    image = _only(read_image(path))
    assert image.note == "PNG decoded; palette with transparency flattened onto white as RGB"
    assert image.pixels == _decoded(path, _on_white)


def test_one_bit_becomes_0_and_255(tmp_path: Path) -> None:
    path = _save(tmp_path, "bilevel.png", _rgb().convert("1"))
    image = _only(read_image(path))
    assert set(image.pixels) <= {0, 255}
    assert image.pixels == _decoded(path, lambda im: im.convert("L"))


def test_png_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 3
    path = _save(tmp_path, "rotated.png", _rgb(), exif=exif)
    image = _only(read_image(path))
    assert image.note == "PNG decoded; EXIF orientation 3 applied"
    assert image.pixels == _rgb().transpose(Image.Transpose.ROTATE_180).tobytes()


def test_animated_gif_keeps_the_first_frame(tmp_path: Path) -> None:
    colours = [(0, 0, 255), (0, 200, 0)]
    frames = [_rgb(), *(Image.new("RGB", (WIDTH, HEIGHT), colour) for colour in colours)]
    path = _save(tmp_path, "anim.gif", frames[0], save_all=True, append_images=frames[1:])
    with Image.open(path) as im:
        assert getattr(im, "n_frames", 1) == 3
    image = _only(read_image(path))
    assert image.note.startswith("GIF decoded: first of 3 frames kept, 2 dropped")
    assert image.pixels == _decoded(path, lambda im: im.convert(image_mode(image)))


def image_mode(image: RasterImage) -> str:
    return "RGB" if image.samples_per_pixel == 3 else "L"


def test_multi_page_tiff_gives_one_image_per_page(tmp_path: Path) -> None:
    pages = [_rgb(), _rgb(32, 16).convert("L"), _rgb().transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
    path = _save(tmp_path, "pages.tif", pages[0], save_all=True, append_images=pages[1:])
    images = read_image(path)
    assert len(images) == 3
    for number, (image, page) in enumerate(zip(images, pages, strict=True), start=1):
        assert isinstance(image, RasterImage)
        assert image.note == f"TIFF page {number} of 3 decoded"
        assert (image.columns, image.rows) == page.size
        assert image.pixels == page.tobytes()
        assert image.lossy is None


def test_jpeg_compressed_tiff_carries_lossy_history(tmp_path: Path) -> None:
    path = _save(tmp_path, "jpeg.tif", _rgb(), compression="jpeg")
    image = _only(read_image(path))
    assert image.lossy is not None
    assert image.lossy.method == "ISO_10918_1"
    assert image.lossy.ratio is not None
    assert image.lossy.ratio > 1
    assert image.pixels == _decoded(path)


def test_lzw_tiff_is_lossless(tmp_path: Path) -> None:
    path = _save(tmp_path, "lzw.tif", _rgb(), compression="tiff_lzw")
    image = _only(read_image(path))
    assert image.lossy is None
    assert image.pixels == _pattern().tobytes()


def test_cmyk_tiff_becomes_rgb(tmp_path: Path) -> None:
    path = _save(tmp_path, "cmyk.tif", _rgb().convert("CMYK"))
    image = _only(read_image(path))
    assert "CMYK converted to RGB" in image.note
    assert image.pixels == _decoded(path, lambda im: im.convert("RGB"))


def test_32_bit_integer_tiff_fitting_16_bits(tmp_path: Path) -> None:
    values = (np.arange(WIDTH * HEIGHT, dtype=np.int32) * 20).reshape(HEIGHT, WIDTH)
    path = _save(tmp_path, "int32.tif", Image.fromarray(values))
    image = _only(read_image(path))
    assert image.bits_allocated == 16
    assert image.pixels == values.astype("<u2").tobytes()


def test_32_bit_integer_tiff_out_of_range_is_unsupported(tmp_path: Path) -> None:
    values = np.full((4, 4), 70000, dtype=np.int32)
    path = _save(tmp_path, "int32-big.tif", Image.fromarray(values))
    cause = r"32-bit integer image with values 70000\.\.70000 does not fit 16-bit grey"
    with pytest.raises(UnsupportedMediaError, match=_error(path, cause)):
        read_image(path)


def test_float_tiff_is_unsupported(tmp_path: Path) -> None:
    path = _save(tmp_path, "float.tif", Image.fromarray(np.zeros((4, 4), dtype=np.float32)))
    cause = "32-bit floating-point images are not supported"
    with pytest.raises(UnsupportedMediaError, match=_error(path, cause)):
        read_image(path)


@pytest.mark.parametrize("save_all", [False, True], ids=["still", "animated"])
def test_webp_lossy_and_lossless(tmp_path: Path, save_all: bool) -> None:
    extra: dict[str, object] = {"save_all": True, "append_images": [_rgb()]} if save_all else {}
    lossy = _save(tmp_path, "lossy.webp", _rgb(), quality=80, **extra)
    lossless = _save(tmp_path, "lossless.webp", _rgb(), lossless=True, **extra)

    lossy_image = _only(read_image(lossy))
    assert lossy_image.lossy is not None
    assert lossy_image.lossy.method is None  # DICOM has no defined term for WebP
    assert lossy_image.lossy.ratio == pytest.approx(WIDTH * HEIGHT * 3 / lossy.stat().st_size)
    assert lossy_image.pixels == _decoded(lossy, lambda im: im.convert("RGB"))

    lossless_image = _only(read_image(lossless))
    assert lossless_image.lossy is None
    assert lossless_image.pixels == _pattern().tobytes()


def test_format_pillow_reads_but_we_do_not_convert(tmp_path: Path) -> None:
    path = _save(tmp_path, "old.pcx", _rgb())
    cause = r"PCX images are not converted \(supported formats: PNG, JPEG"
    with pytest.raises(UnsupportedMediaError, match=_error(path, cause)):
        read_image(path)


# --- hostile and unreadable files --------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "empty.png", b"")
    with pytest.raises(CorruptMediaError, match=_error(path, r"empty file \(0 bytes\)")):
        read_image(path)


def test_text_named_png(tmp_path: Path) -> None:
    path = _write(tmp_path, "notes.png", b"Patient called, will bring the films on Monday.\n")
    with pytest.raises(CorruptMediaError, match=_error(path, "not an image Pillow can read")):
        read_image(path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    _rgb(256, 192).save(buffer, format="JPEG")
    data = buffer.getvalue()
    path = _write(tmp_path, "cut.jpg", data[: int(len(data) * 0.6)])
    cause = "truncated JPEG: image data ends before EOI"
    with pytest.raises(CorruptMediaError, match=_error(path, cause)):
        read_image(path)
    with pytest.raises(CorruptMediaError, match=_error(path, cause)):
        read_image(path, pass_through=False)


def test_fake_jpeg(tmp_path: Path) -> None:
    path = _write(tmp_path, "fake.jpg", b"\xff\xd8" + b"this is not a JPEG at all" * 10)
    cause = "expected a marker at offset 2, found 0x74"
    with pytest.raises(CorruptMediaError, match=_error(path, cause)):
        read_image(path)


def test_truncated_png(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    _rgb(256, 192).save(buffer, format="PNG")
    data = buffer.getvalue()
    path = _write(tmp_path, "cut.png", data[: int(len(data) * 0.6)])
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(CorruptMediaError, match=_error(path, "PNG data cannot be decoded: ")):
        read_image(path)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _bilevel_png(width: int, height: int) -> bytes:
    """A complete, all-black 1-bit PNG, compressed row by row to keep memory low."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("factor", [1.5, 2.5], ids=["warning-regime", "error-regime"])
def test_png_decompression_bomb(tmp_path: Path, factor: float) -> None:
    # Pillow only warns between 1x and 2x Image.MAX_IMAGE_PIXELS and raises above 2x.
    limit = Image.MAX_IMAGE_PIXELS
    assert limit is not None
    side = math.isqrt(int(factor * limit)) + 1
    pixels = side * side
    assert limit < pixels
    assert (pixels > 2 * limit) == (factor > 2)
    path = _write(tmp_path, "bomb.png", _bilevel_png(side, side))
    cause = f"image of {side}x{side} pixels exceeds the decompression-bomb limit of {limit} pixels"
    with pytest.raises(CorruptMediaError, match=_error(path, cause)):
        read_image(path)
    assert limit == Image.MAX_IMAGE_PIXELS
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_jpeg_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    _rgb().save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    path = _write(tmp_path, "bomb.jpg", bytes(data))
    limit = Image.MAX_IMAGE_PIXELS
    cause = f"image of 60000x60000 pixels exceeds the decompression-bomb limit of {limit}"
    with pytest.raises(CorruptMediaError, match=_error(path, cause)):
        read_image(path)


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "photos.jpg"
    path.mkdir()
    with pytest.raises(CorruptMediaError, match=_error(path, "cannot read the file: Is a dir")):
        read_image(path)


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root reads any file: test a path that cannot be opened instead
        path = tmp_path / "no-such-folder" / "photo.png"
        cause = "cannot read the file: No such file or directory"
    else:
        path = _save(tmp_path, "secret.png", _rgb())
        path.chmod(0)
        cause = "cannot read the file: Permission denied"
    with pytest.raises(CorruptMediaError, match=_error(path, cause)):
        read_image(path)


# --- encode_baseline_jpeg and validation ---------------------------------------------------------


def test_encode_rgb_as_baseline_ybr(tmp_path: Path) -> None:
    raster = _only(read_image(_save(tmp_path, "rgb.png", _rgb())))
    jpeg = encode_baseline_jpeg(raster, quality=90)
    info = parse_jpeg(jpeg.data)
    assert (info.sof, info.precision, info.components, info.has_jfif) == (0, 8, 3, False)
    assert (jpeg.photometric, jpeg.samples_per_pixel) == ("YBR_FULL_422", 3)
    assert (jpeg.rows, jpeg.columns) == (HEIGHT, WIDTH)
    assert jpeg.note == "encoded as baseline JPEG at quality 90"
    assert jpeg.ratio == pytest.approx(WIDTH * HEIGHT * 3 / len(jpeg.data))
    with Image.open(io.BytesIO(jpeg.data)) as im:
        error = np.abs(np.asarray(im, dtype=int) - _pattern().astype(int))
        assert error.mean() < 4


def test_encode_grey_as_baseline_monochrome(tmp_path: Path) -> None:
    raster = _only(read_image(_save(tmp_path, "grey.png", _rgb().convert("L"))))
    jpeg = encode_baseline_jpeg(raster, quality=75)
    assert (jpeg.photometric, jpeg.samples_per_pixel) == ("MONOCHROME2", 1)
    assert parse_jpeg(jpeg.data).components == 1


def test_encode_refuses_16_bit_and_bad_quality(tmp_path: Path) -> None:
    values = np.zeros((4, 4), dtype=np.uint16)
    raster = _only(read_image(_save(tmp_path, "grey16.png", Image.fromarray(values))))
    message = "a 16-bit image cannot be stored as 8-bit baseline JPEG without losing depth"
    with pytest.raises(ValueError, match=message):
        encode_baseline_jpeg(raster, quality=90)
    grey = _only(read_image(_save(tmp_path, "grey.png", _rgb().convert("L"))))
    with pytest.raises(ValueError, match="JPEG quality must be between 1 and 100, got 0"):
        encode_baseline_jpeg(grey, quality=0)


def test_raster_image_is_valid_by_construction() -> None:
    with pytest.raises(ValueError, match="pixels hold 3 bytes, expected 4"):
        RasterImage(
            rows=2,
            columns=2,
            samples_per_pixel=1,
            bits_allocated=8,
            photometric="MONOCHROME2",
            pixels=b"abc",
            lossy=None,
            note="",
        )
    with pytest.raises(ValueError, match="photometric RGB does not match 1 samples"):
        RasterImage(
            rows=1,
            columns=1,
            samples_per_pixel=1,
            bits_allocated=8,
            photometric="RGB",
            pixels=b"a",
            lossy=None,
            note="",
        )


def test_tiff_whose_pages_cannot_be_counted_is_corrupt(tmp_path: Path) -> None:
    from sendtopacs_core.media.image import count_pages
    from tests._hostile import tiff_with_a_damaged_second_page

    path = _write(tmp_path, "bad-page-2.tif", tiff_with_a_damaged_second_page())
    with Image.open(path) as im, pytest.raises(KeyError):  # what Pillow itself does
        _ = im.n_frames  # type: ignore[attr-defined]
    assert count_pages(path) == 1  # reading it says why
    cause = r"TIFF data cannot be decoded: a required entry is missing or damaged \(13569\)"
    with pytest.raises(CorruptMediaError, match=_error(path, cause)):
        read_image(path)
