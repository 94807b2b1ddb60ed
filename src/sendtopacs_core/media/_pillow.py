"""The Pillow boundary for still images: open safely, normalise modes, translate errors.

Everything Pillow raises while identifying or decoding a file becomes a
:class:`~sendtopacs_core.errors.CorruptMediaError` or
:class:`~sendtopacs_core.errors.UnsupportedMediaError` here. Pillow's global settings
(``Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``) are read, never changed:
its decompression-bomb warning is turned into an error only inside
:func:`warnings.catch_warnings`.
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

import attrs
import numpy as np
from PIL import Image, ImageOps, TiffImagePlugin, UnidentifiedImageError

from sendtopacs_core.errors import CorruptMediaError, UnsupportedMediaError

#: Formats we open (an MPO opens as JPEG). Others (EPS runs Ghostscript, PSD, ICO, ...) are
#: refused by name.
SUPPORTED_FORMATS: Final = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
#: Formats whose every frame is a page of its own; other multi-frame files give frame 1 only.
_MULTI_PAGE_FORMATS: Final = frozenset({"TIFF"})
_ORIENTATION_TAG: Final = 0x0112
_STRIP_BYTE_COUNTS: Final = 279
_TILE_BYTE_COUNTS: Final = 325
_UINT16_MAX: Final = 0xFFFF
_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Mode -> (mode stored, what the note says); None when nothing worth saying was done.
_CONVERSIONS: Final[dict[str, tuple[str, str | None]]] = {
    "L": ("L", None),
    "RGB": ("RGB", None),
    "1": ("L", "1-bit image expanded to 8-bit grey (0/255)"),
    **{mode: ("RGB", f"{mode} converted to RGB") for mode in ("CMYK", "YCbCr", "LAB", "HSV")},
    "RGBX": ("RGB", None),
}
_WITH_ALPHA: Final = {"LA": "LA", "La": "LA", "RGBA": "RGBA", "RGBa": "RGBA"}
_GREY16: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
#: What Pillow raises on damaged input while opening, seeking or decoding (a TIFF whose tags
#: are missing or of the wrong type raises KeyError or TypeError; a zero size divides by 0).
PILLOW_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    RecursionError,
)


@attrs.frozen(kw_only=True)
class Page:
    """One decoded frame, normalised to ``L``, ``RGB`` or ``I;16`` (little-endian bytes)."""

    mode: str
    width: int
    height: int
    pixels: bytes
    notes: tuple[str, ...]
    compression: str | None
    compressed_size: int | None


@attrs.frozen(kw_only=True)
class Decoded:
    """A decoded file: its Pillow format name, how many frames it has, and the pages kept."""

    format: str
    frame_count: int
    pages: tuple[Page, ...]


def check_pixel_limit(path: str | os.PathLike[str], width: int, height: int) -> None:
    """Raise :class:`CorruptMediaError` when ``width * height`` exceeds Pillow's limit.

    Pillow only warns between one and two times ``Image.MAX_IMAGE_PIXELS``; we refuse both.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and max(1, width) * max(1, height) > limit:
        raise CorruptMediaError(path, _bomb_reason(f"{width}x{height} pixels", limit))


def _bomb_reason(size: str, limit: int | None) -> str:
    return f"image of {size} exceeds the decompression-bomb limit of {limit} pixels"


def decode(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    formats: Sequence[str] = SUPPORTED_FORMATS,
) -> Decoded:
    """Decode ``data`` (the contents of ``path``) with Pillow.

    Every page of a TIFF is decoded; other multi-frame files give their first frame only.
    Each page is fully loaded (so truncation is detected), EXIF-transposed and normalised.

    Raises
    ------
    CorruptMediaError
        Not an image Pillow can read, truncated or damaged data, or a decompression bomb.
    UnsupportedMediaError
        An image format or pixel mode we do not convert.
    """
    fmt = "image"
    with _bomb_guard(path, data):
        try:
            with Image.open(io.BytesIO(data), formats=list(formats)) as im:
                fmt = im.format or fmt
                count = int(getattr(im, "n_frames", 1))
                kept = range(count) if fmt in _MULTI_PAGE_FORMATS else range(1)
                pages = []
                for index in kept:
                    if index:
                        im.seek(index)
                    check_pixel_limit(path, im.width, im.height)
                    pages.append(_page(path, im))
        except UnidentifiedImageError as exc:
            raise _unidentified(path, data) from exc
        except PILLOW_ERRORS as exc:
            reason = _plugin_reason(exc)
            raise CorruptMediaError(path, f"{fmt} data cannot be decoded: {reason}") from exc
    return Decoded(format=fmt, frame_count=count, pages=tuple(pages))


@contextmanager
def _bomb_guard(path: str | os.PathLike[str], data: bytes) -> Iterator[None]:
    """Turn Pillow's decompression-bomb warning and error into :class:`CorruptMediaError`.

    Pillow's other warnings (corrupt EXIF data, a tag larger than the file) are notes about a
    file it still reads: they are recorded and dropped here, whatever the caller's warning
    filters say, so that a file gives the same outcome in every program (and under pytest's
    ``error`` filter). A file it cannot read fails with Pillow's error.
    """
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            size = _probe_size(data)
            if size is not None:
                described = f"{size[0]}x{size[1]} pixels"
            else:
                found = re.search(r"\((\d+) pixels\)", str(exc))
                described = f"{found[1]} pixels" if found else "unknown size"
            reason = _bomb_reason(described, Image.MAX_IMAGE_PIXELS)
            raise CorruptMediaError(path, reason) from exc


def _probe_size(data: bytes) -> tuple[int, int] | None:
    """Read the size from the header alone, as Pillow's plugin does before its bomb check."""
    prefix = data[:16]
    for fmt in SUPPORTED_FORMATS:
        entry = Image.OPEN.get(fmt)
        if entry is None:
            continue
        factory, accept = entry
        if accept is not None and accept(prefix) is not True:
            continue
        try:
            with factory(io.BytesIO(data), "") as im:
                return im.size
        except (*PILLOW_ERRORS, Image.DecompressionBombError, Image.DecompressionBombWarning):
            continue
    return None


def _unidentified(path: str | os.PathLike[str], data: bytes) -> Exception:
    """Say what is wrong with a file Pillow did not identify.

    A file that starts like a supported format but whose plugin fails (a PNG with a bad
    checksum, a TIFF whose first directory is damaged) is a damaged file of that format; a
    format Pillow knows but we do not convert is named; anything else is no image.
    """
    damaged = _damaged_format(data)
    if damaged is not None:
        fmt, exc = damaged
        return CorruptMediaError(path, f"damaged {fmt} file: {_plugin_reason(exc)}")
    supported = ", ".join(SUPPORTED_FORMATS)
    with warnings.catch_warnings(record=True):  # identification notes; we report the outcome
        try:
            with Image.open(io.BytesIO(data)) as im:
                other = im.format or "unknown"
        except (*PILLOW_ERRORS, Image.DecompressionBombError, Image.DecompressionBombWarning):
            return CorruptMediaError(
                path, f"not an image Pillow can read (the content is none of {supported})"
            )
    return UnsupportedMediaError(
        path, f"{other} images are not converted (supported formats: {supported})"
    )


def _damaged_format(data: bytes) -> tuple[str, Exception] | None:
    """The supported format whose signature ``data`` has, and why its plugin refused it."""
    prefix = data[:16]
    for fmt in SUPPORTED_FORMATS:
        entry = Image.OPEN.get(fmt)
        if entry is None:
            continue
        factory, accept = entry
        if accept is None or accept(prefix) is not True:
            continue
        try:
            with warnings.catch_warnings():  # its notes (corrupt EXIF): the refusal says it
                warnings.simplefilter("ignore")
                with factory(io.BytesIO(data), ""):  # the header only: no pixels are decoded
                    pass
        except PILLOW_ERRORS as exc:
            return fmt, exc
    return None


def _plugin_reason(exc: Exception) -> str:
    """Pillow's message, or what it means when the message alone says nothing (a tag number)."""
    message = " ".join(str(exc).split())[:200]
    if isinstance(exc, KeyError):
        return f"a required entry is missing or damaged ({message})"
    return message or type(exc).__name__


def _page(path: str | os.PathLike[str], im: Image.Image) -> Page:
    im.load()
    compression, compressed_size = _tiff_compression(im)
    notes: list[str] = []
    orientation = im.getexif().get(_ORIENTATION_TAG)
    if orientation in _TRANSPOSE:
        notes.append(f"EXIF orientation {orientation} applied")
    with ImageOps.exif_transpose(im) as upright, _normalise(path, upright, notes) as norm:
        pixels = norm.tobytes()
        mode, (width, height) = norm.mode, norm.size
    return Page(
        mode=mode,
        width=width,
        height=height,
        pixels=pixels,
        notes=tuple(notes),
        compression=compression,
        compressed_size=compressed_size,
    )


def _tiff_compression(im: Image.Image) -> tuple[str | None, int | None]:
    if not isinstance(im, TiffImagePlugin.TiffImageFile):
        return None, None
    compression = im.info.get("compression")
    counts = im.tag_v2.get(_STRIP_BYTE_COUNTS) or im.tag_v2.get(_TILE_BYTE_COUNTS)
    if isinstance(counts, int):
        counts = (counts,)
    size = sum(int(c) for c in counts) if isinstance(counts, tuple) and counts else None
    return (str(compression) if compression is not None else None), size


def _normalise(path: str | os.PathLike[str], im: Image.Image, notes: list[str]) -> Image.Image:
    """Return a new image in mode ``L``, ``RGB`` or ``I;16``; append what was done."""
    mode = im.mode
    if mode in _CONVERSIONS:
        target, note = _CONVERSIONS[mode]
        if note:
            notes.append(note)
        return im.convert(target)
    if mode in _WITH_ALPHA:
        notes.append(f"{mode} flattened onto white")
        return flatten_onto_white(im.convert(_WITH_ALPHA[mode]))
    if mode in ("P", "PA"):
        return _from_palette(im, notes)
    if mode in _GREY16 or mode == "I":
        return _grey16(path, im, notes)
    if mode == "F":
        raise UnsupportedMediaError(path, "32-bit floating-point images are not supported")
    raise UnsupportedMediaError(path, f"image mode {mode} is not supported")


def _from_palette(im: Image.Image, notes: list[str]) -> Image.Image:
    palette = im.getpalette() or []
    grey = all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette), 3))
    target = "L" if grey else "RGB"
    kind = "grey palette" if grey else "palette"
    if im.has_transparency_data:
        notes.append(f"{kind} with transparency flattened onto white as {target}")
        with flatten_onto_white(im.convert("RGBA")) as rgb:
            return rgb.convert(target)
    notes.append(f"{kind} expanded to {target}")
    return im.convert(target)


def flatten_onto_white(im: Image.Image) -> Image.Image:
    """Alpha-composite an ``LA`` or ``RGBA`` image onto opaque white; return ``L`` or ``RGB``."""
    with (
        Image.new(im.mode, im.size, (255,) * len(im.mode)) as white,
        Image.alpha_composite(white, im) as composite,
    ):
        return composite.convert(im.mode[:-1])


def _grey16(path: str | os.PathLike[str], im: Image.Image, notes: list[str]) -> Image.Image:
    """Return an ``I;16`` image from a 16-bit or 32-bit integer one whose values fit."""
    values = np.asarray(im)
    if im.mode == "I":
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if low < 0 or high > _UINT16_MAX:
            raise UnsupportedMediaError(
                path,
                f"32-bit integer image with values {low}..{high} does not fit 16-bit grey "
                "(expected 0..65535)",
            )
        notes.append("32-bit integer image stored as 16-bit grey")
    little = np.ascontiguousarray(values, dtype="<u2")
    return Image.frombytes("I;16", (little.shape[1], little.shape[0]), little.tobytes())


def transpose_for_orientation(im: Image.Image, orientation: int | None) -> Image.Image:
    """Apply EXIF ``orientation`` (2-8) to ``im`` as ``ImageOps.exif_transpose`` would."""
    method = _TRANSPOSE.get(orientation) if orientation is not None else None
    return im.copy() if method is None else im.transpose(method)
