"""Still images: probe, pass through or decode the files a clinic has (JPEG, PNG, TIFF, ...).

:func:`read_image` turns a file into one entry per page: a :class:`JpegImage` when a
baseline JPEG may be encapsulated as-is (conversion reference 6.1), otherwise a
:class:`RasterImage` with native pixels ready for an uncompressed Pixel Data (reference 6.2).
:func:`encode_baseline_jpeg` re-encodes a raster for JPEG Baseline.

The format is detected from the content, never from the file name. This module never imports
pydicom: the IOD builders in :mod:`sendtopacs_core.iods` map these objects to DICOM.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from typing import Final

import attrs
import numpy as np
from PIL import Image

from sendtopacs_core.errors import CorruptMediaError, UnsupportedMediaError
from sendtopacs_core.media import _pillow
from sendtopacs_core.media.jpeg import (
    JpegFormatError,
    JpegInfo,
    analyse_jpeg,
    is_lossless_process,
    pass_through_refusal,
    photometric_for,
    strip_jpeg,
)

__all__ = [
    "JpegImage",
    "LossyHistory",
    "RasterImage",
    "encode_baseline_jpeg",
    "read_image",
]

#: LossyImageCompressionMethod (0028,2114) for JPEG lossy (ISO/IEC 10918-1).
ISO_10918_1: Final = "ISO_10918_1"
_JPEG_PHOTOMETRICS: Final = frozenset({"MONOCHROME2", "RGB", "YBR_FULL_422"})
_RASTER_PHOTOMETRICS: Final = {1: "MONOCHROME2", 3: "RGB"}
_LOSSY_TIFF_COMPRESSIONS: Final = {"jpeg": ISO_10918_1, "tiff_jpeg": ISO_10918_1}
_JPEG_FORMATS: Final = ("JPEG",)  # Pillow opens MPO through its JPEG plugin
# SOFn that Pillow's libjpeg(-turbo) decodes at 8 bits; the rest go to pylibjpeg-libjpeg.
_PILLOW_JPEG_PROCESSES: Final = frozenset({0, 1, 2, 9, 10})
_WEBP_HEADER_BYTES: Final = 12
_WEBP_ANMF_HEADER_BYTES: Final = 16
_HIGH_BIT_DEPTH: Final = (
    "a 16-bit image cannot be stored as 8-bit baseline JPEG without losing depth"
)


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value}")


def _optional_positive_ratio(
    _instance: object, _attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"ratio must be positive, got {value}")


@attrs.frozen(kw_only=True)
class LossyHistory:
    """A lossy compression the pixels went through before they reached us.

    Attributes
    ----------
    method
        The LossyImageCompressionMethod (0028,2114) defined term, e.g. ``ISO_10918_1``;
        ``None`` when DICOM defines none (lossy WebP).
    ratio
        The LossyImageCompressionRatio (0028,2112): uncompressed bytes over compressed
        bytes, or ``None`` when unknown.
    """

    method: str | None = attrs.field(
        validator=attrs.validators.optional(attrs.validators.min_len(1))
    )
    ratio: float | None = attrs.field(validator=_optional_positive_ratio)


@attrs.frozen(kw_only=True)
class JpegImage:
    """A baseline JPEG ready to be encapsulated under JPEG Baseline (1.2.840.10008.1.2.4.50).

    Attributes
    ----------
    data
        The stream from SOI to EOI with the metadata segments removed (:func:`strip_jpeg`).
    rows, columns
        The frame size.
    samples_per_pixel
        1 or 3.
    photometric
        ``MONOCHROME2``, ``YBR_FULL_422`` or ``RGB``.
    ratio
        ``rows * columns * samples_per_pixel / len(data)``.
    note
        What was done, e.g. ``baseline JPEG passed through``.
    """

    data: bytes = attrs.field(validator=attrs.validators.min_len(4))
    rows: int = attrs.field(validator=_positive)
    columns: int = attrs.field(validator=_positive)
    samples_per_pixel: int = attrs.field(validator=attrs.validators.in_((1, 3)))
    photometric: str = attrs.field(validator=attrs.validators.in_(_JPEG_PHOTOMETRICS))
    ratio: float = attrs.field(validator=attrs.validators.gt(0))
    note: str = attrs.field(validator=attrs.validators.instance_of(str))

    @photometric.validator
    def _check_photometric(self, _attribute: attrs.Attribute[str], value: str) -> None:
        expected = "MONOCHROME2" if self.samples_per_pixel == 1 else "YBR_FULL_422 or RGB"
        if (value == "MONOCHROME2") != (self.samples_per_pixel == 1):
            raise ValueError(
                f"photometric {value} does not match {self.samples_per_pixel} samples per "
                f"pixel (expected {expected})"
            )


@attrs.frozen(kw_only=True)
class RasterImage:
    """Native pixels for an uncompressed Pixel Data.

    Attributes
    ----------
    rows, columns
        The image size after any EXIF rotation.
    samples_per_pixel
        1 (``MONOCHROME2``) or 3 (``RGB``, interleaved, PlanarConfiguration 0).
    bits_allocated
        8 or 16; BitsStored is the same, PixelRepresentation 0.
    photometric
        ``MONOCHROME2`` or ``RGB``.
    pixels
        Row-major samples; 16-bit samples little-endian.
    lossy
        The lossy compression the source went through (JPEG, lossy WebP, JPEG-compressed
        TIFF), or ``None`` for a lossless source.
    note
        Why and how the file was decoded, e.g. ``EXIF orientation 6 applied``.
    """

    rows: int = attrs.field(validator=_positive)
    columns: int = attrs.field(validator=_positive)
    samples_per_pixel: int = attrs.field(validator=attrs.validators.in_((1, 3)))
    bits_allocated: int = attrs.field(validator=attrs.validators.in_((8, 16)))
    photometric: str = attrs.field(validator=attrs.validators.in_(("MONOCHROME2", "RGB")))
    pixels: bytes = attrs.field(validator=attrs.validators.instance_of(bytes))
    lossy: LossyHistory | None = attrs.field(
        validator=attrs.validators.optional(attrs.validators.instance_of(LossyHistory))
    )
    note: str = attrs.field(validator=attrs.validators.instance_of(str))

    @pixels.validator
    def _check_pixels(self, _attribute: attrs.Attribute[bytes], value: bytes) -> None:
        expected = self.rows * self.columns * self.samples_per_pixel * self.bits_allocated // 8
        if len(value) != expected:
            raise ValueError(
                f"pixels hold {len(value)} bytes, expected {expected} for {self.columns}x"
                f"{self.rows}x{self.samples_per_pixel} at {self.bits_allocated} bits"
            )
        if self.photometric != _RASTER_PHOTOMETRICS[self.samples_per_pixel]:
            raise ValueError(
                f"photometric {self.photometric} does not match {self.samples_per_pixel} "
                f"samples per pixel (expected {_RASTER_PHOTOMETRICS[self.samples_per_pixel]})"
            )

    @property
    def uncompressed_size(self) -> int:
        """The size of :attr:`pixels` in bytes."""
        return len(self.pixels)


def read_image(
    path: str | os.PathLike[str], *, pass_through: bool = True
) -> list[JpegImage | RasterImage]:
    """Read a still image file: one entry per page.

    A JPEG (or MPO) that meets the pass-through rules (SOF0, 8-bit, 1 or 3 components, no
    EXIF rotation) gives a :class:`JpegImage` when ``pass_through`` is true. Everything else
    is decoded with Pillow (12-bit and lossless JPEG with pylibjpeg-libjpeg), EXIF-transposed
    and normalised to 8-bit grey, 16-bit grey or 8-bit RGB. A multi-page TIFF gives one entry
    per page; other multi-frame files (animated GIF, WebP, PNG; MPO) give their first frame.

    Parameters
    ----------
    path
        The file. Its format is detected from the content, not the name.
    pass_through
        Whether a qualifying baseline JPEG is passed through instead of being decoded.

    Returns
    -------
    list[JpegImage | RasterImage]
        One entry per page kept.

    Raises
    ------
    CorruptMediaError
        The file cannot be read, is empty, is not an image, is truncated or damaged, or
        exceeds Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``).
    UnsupportedMediaError
        An image format or pixel kind we do not convert (EPS, floating-point TIFF, 12-bit
        colour JPEG, ...).
    """
    data = _read_bytes(path)
    if data[:2] == b"\xff\xd8":
        return [_read_jpeg(path, data, pass_through=pass_through)]
    decoded = _pillow.decode(path, data)
    lossy_webp = decoded.format == "WEBP" and _webp_is_lossy(data)
    images: list[JpegImage | RasterImage] = []
    for number, page in enumerate(decoded.pages, start=1):
        if decoded.format == "TIFF" and decoded.frame_count > 1:
            what = f"TIFF page {number} of {decoded.frame_count} decoded"
        elif decoded.frame_count > 1:
            dropped = decoded.frame_count - 1
            what = (
                f"{decoded.format} decoded: first of {decoded.frame_count} frames kept, "
                f"{dropped} dropped"
            )
        else:
            what = f"{decoded.format} decoded"
        raster = _raster(page, lossy=None, notes=(what, *page.notes))
        lossy: LossyHistory | None = None
        if lossy_webp:
            lossy = LossyHistory(method=None, ratio=raster.uncompressed_size / len(data))
        elif page.compression in _LOSSY_TIFF_COMPRESSIONS:
            ratio = (
                raster.uncompressed_size / page.compressed_size if page.compressed_size else None
            )
            lossy = LossyHistory(method=_LOSSY_TIFF_COMPRESSIONS[page.compression], ratio=ratio)
        images.append(attrs.evolve(raster, lossy=lossy))
    return images


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise CorruptMediaError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    if not data:
        raise CorruptMediaError(path, "empty file (0 bytes)")
    return data


def _read_jpeg(
    path: str | os.PathLike[str], data: bytes, *, pass_through: bool
) -> JpegImage | RasterImage:
    try:
        info, stripped = analyse_jpeg(data)
    except JpegFormatError as exc:
        raise CorruptMediaError(path, str(exc)) from exc
    _pillow.check_pixel_limit(path, info.columns, info.rows)
    refusal = pass_through_refusal(info)
    if pass_through and refusal is None:
        samples = info.components
        return JpegImage(
            data=stripped,
            rows=info.rows,
            columns=info.columns,
            samples_per_pixel=samples,
            photometric=photometric_for(info),
            ratio=info.rows * info.columns * samples / len(stripped),
            note="baseline JPEG passed through",
        )
    why = f"{refusal}: decoded" if refusal is not None else "pass-through disabled: JPEG decoded"
    if info.precision == 8 and info.sof in _PILLOW_JPEG_PROCESSES:
        decoded = _pillow.decode(path, data, formats=_JPEG_FORMATS)
        page = decoded.pages[0]
        notes = [why, *page.notes]
        if decoded.frame_count > 1:
            notes.append(f"{decoded.format}: first of {decoded.frame_count} images kept")
        raster = _raster(page, lossy=None, notes=tuple(notes))
    else:
        raster = _decode_with_libjpeg(path, stripped, info, why)
    if is_lossless_process(info):
        return raster
    history = LossyHistory(method=ISO_10918_1, ratio=raster.uncompressed_size / len(stripped))
    return attrs.evolve(raster, lossy=history)


def _decode_with_libjpeg(
    path: str | os.PathLike[str], stripped: bytes, info: JpegInfo, why: str
) -> RasterImage:
    """Decode a JPEG Pillow cannot (12-bit, lossless, hierarchical) with libjpeg; grey only."""
    kind = f"{info.precision}-bit JPEG (SOF{info.sof})"
    if info.components != 1:
        raise UnsupportedMediaError(
            path,
            f"{kind} with {info.components} components cannot be decoded: beyond 8-bit "
            "baseline only greyscale (1 component) is supported",
        )
    try:
        from libjpeg.utils import decode as libjpeg_decode  # noqa: PLC0415 (rarely needed)

        values = libjpeg_decode(stripped)
    except RuntimeError as exc:
        raise CorruptMediaError(path, f"{kind} cannot be decoded by libjpeg: {exc}") from exc
    bits = 8 if values.dtype == np.uint8 else 16
    values = np.ascontiguousarray(values, dtype="u1" if bits == 8 else "<u2")
    notes = [why]
    mode = "L" if bits == 8 else "I;16"
    with Image.frombytes(mode, (values.shape[1], values.shape[0]), values.tobytes()) as im:
        if info.exif_orientation in range(2, 9):
            notes.append(f"EXIF orientation {info.exif_orientation} applied")
        with _pillow.transpose_for_orientation(im, info.exif_orientation) as upright:
            width, height = upright.size
            pixels = upright.tobytes()
    return RasterImage(
        rows=height,
        columns=width,
        samples_per_pixel=1,
        bits_allocated=bits,
        photometric="MONOCHROME2",
        pixels=pixels,
        lossy=None,
        note="; ".join(notes),
    )


def _raster(
    page: _pillow.Page, *, lossy: LossyHistory | None, notes: tuple[str, ...]
) -> RasterImage:
    samples = 3 if page.mode == "RGB" else 1
    return RasterImage(
        rows=page.height,
        columns=page.width,
        samples_per_pixel=samples,
        bits_allocated=16 if page.mode == "I;16" else 8,
        photometric=_RASTER_PHOTOMETRICS[samples],
        pixels=page.pixels,
        lossy=lossy,
        note="; ".join(notes),
    )


def _webp_is_lossy(data: bytes) -> bool:
    """Whether the (first) image of a WebP file is a lossy ``VP8`` bitstream, not ``VP8L``.

    Walks the RIFF chunks; an animation's first ``ANMF`` frame is searched the same way.
    """
    return _riff_first_bitstream(data, _WEBP_HEADER_BYTES, len(data)) == b"VP8 "


def _riff_first_bitstream(data: bytes, pos: int, end: int) -> bytes | None:
    while pos + 8 <= end:
        fourcc = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if fourcc in (b"VP8 ", b"VP8L"):
            return fourcc
        if fourcc == b"ANMF":
            return _riff_first_bitstream(
                data, body + _WEBP_ANMF_HEADER_BYTES, min(body + size, end)
            )
        pos = body + size + (size & 1)
    return None


def encode_baseline_jpeg(image: RasterImage, *, quality: int) -> JpegImage:
    """Encode an 8-bit raster as a baseline (SOF0) JPEG for JPEG Baseline pass-through.

    Pillow writes the stream (YCbCr 4:2:0 for colour, standard Huffman tables); the JFIF
    segment is then removed with :func:`strip_jpeg`. Colour is labelled ``YBR_FULL_422``,
    grey ``MONOCHROME2``.

    Parameters
    ----------
    image
        The raster to encode.
    quality
        The libjpeg quality, 1 to 100.

    Returns
    -------
    JpegImage
        The encoded stream; its ``note`` says only how it was encoded (``image.note`` and
        ``image.lossy`` describe the steps before).

    Raises
    ------
    ValueError
        ``image`` is 16-bit (depth would be lost) or ``quality`` is outside 1 to 100.
    """
    if image.bits_allocated != 8:
        raise ValueError(_HIGH_BIT_DEPTH)
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be between 1 and 100, got {quality}")
    mode = "L" if image.samples_per_pixel == 1 else "RGB"
    buffer = io.BytesIO()
    with Image.frombytes(mode, (image.columns, image.rows), image.pixels) as im:
        im.save(buffer, format="JPEG", quality=quality, progressive=False, optimize=False)
    data = strip_jpeg(buffer.getvalue())
    return JpegImage(
        data=data,
        rows=image.rows,
        columns=image.columns,
        samples_per_pixel=image.samples_per_pixel,
        photometric="MONOCHROME2" if image.samples_per_pixel == 1 else "YBR_FULL_422",
        ratio=image.uncompressed_size / len(data),
        note=f"encoded as baseline JPEG at quality {quality}",
    )


def count_pages(path: str | os.PathLike[str]) -> int:
    """How many entries :func:`read_image` gives for ``path``: a TIFF's pages, else 1.

    Only the headers are read. A file whose pages cannot be counted (not an image, a damaged
    directory chain, a bomb) counts as 1 page; reading it then reports the cause.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return int(getattr(im, "n_frames", 1)) if im.format == "TIFF" else 1
    except (*_pillow.PILLOW_ERRORS, Image.DecompressionBombError, MemoryError):
        return 1
