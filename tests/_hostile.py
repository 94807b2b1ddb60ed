"""Hostile inputs for the failure-domain tests: every layer of the converter raises on one.

Pillow (a TIFF whose page count cannot be read, garbage TIFF, PNG with a bad CRC, a
decompression bomb), pypdf (no xref, a user password, a certificate handler, no pages, no PDF),
PyAV (garbage video) and the pixel decoders (a 12-bit JPEG libjpeg refuses, a cut
arithmetic-coded JPEG); and good inputs of every kind. All generated, no patient data.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import attrs
import pydicom
from PIL import Image
from pypdf import PdfWriter

from sendtopacs_core import ConversionError, CorruptMediaError, UnsupportedMediaError
from tests import _clips, _corpus

_COMPRESSION = 259  # the TIFF tag


@attrs.frozen
class Bad:
    path: Path
    error: type[ConversionError]
    cause: str
    """A regular expression the failure's reason must match."""


def pdf(*, pages: int = 1, user: str | None = None, algorithm: str = "AES-128") -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    if user is not None:
        writer.encrypt(user_password=user, owner_password="owner-secret", algorithm=algorithm)  # noqa: S106 (test data)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _twelve_bit_jpeg() -> bytes:
    """The 12-bit (SOF1) greyscale JPEG fragment of pydicom's ``JPGExtended.dcm``."""
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    path = get_testdata_file("JPGExtended.dcm")
    assert path is not None
    return bytes(next(generate_frames(pydicom.dcmread(path).PixelData, number_of_frames=1)))


def tiff_pages() -> bytes:
    pages = [_corpus.photo(32, 24, seed=s) for s in (21, 22, 23)]
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def tiff_with_a_damaged_second_page() -> bytes:
    """A 3-page TIFF whose second directory names compression 13569: counting its pages makes
    Pillow raise KeyError (the first page alone opens)."""
    data = bytearray(tiff_pages())
    (first,) = struct.unpack_from("<I", data, 4)
    entries = struct.unpack_from("<H", data, first)[0]
    (second,) = struct.unpack_from("<I", data, first + 2 + 12 * entries)
    for number in range(struct.unpack_from("<H", data, second)[0]):
        entry = second + 2 + 12 * number
        if struct.unpack_from("<H", data, entry)[0] == _COMPRESSION:
            struct.pack_into("<H", data, entry + 8, 13569)
            return bytes(data)
    raise AssertionError("no Compression tag in the second directory")


def bad_inputs(folder: Path) -> list[Bad]:
    """Inputs that make Pillow, pypdf, PyAV and the pixel decoders raise."""
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    tiff = tiff_pages()
    png = io.BytesIO()
    _corpus.photo(16, 16).save(png, "PNG")
    bad_crc = bytearray(png.getvalue())
    bad_crc[29] ^= 0xFF  # the IHDR chunk's CRC
    twelve = _twelve_bit_jpeg()
    scan = twelve.index(b"\xff\xda")
    arithmetic = folder / "arithmetic-source.jpg"
    assert _corpus.arithmetic_jpeg(arithmetic), "cjpeg (libjpeg-turbo-progs) is needed"
    coded = arithmetic.read_bytes()
    arithmetic.unlink()
    bomb = folder / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)
    # an RC4-encrypted PDF whose handler is not /Standard, as a certificate-protected one
    certificate = pdf(user="", algorithm="RC4-128").replace(
        b"/Filter /Standard", b"/Filter /PubSecXX"
    )
    garbage_tiff = b"II*\x00" + struct.pack("<IH", 8, 2) + b"\xff" * 24 + bytes(4)
    broken_twelve = twelve[: scan + 20] + bytes(range(256)) * 8 + b"\xff\xd9"
    corrupt, unsupported = CorruptMediaError, UnsupportedMediaError
    locked = pdf(user="open-sesame", algorithm="AES-256")
    needs_one = r"protected by a password; open it and save it without one"
    return [
        # Pillow: the TIFF whose page count cannot be read (it raised TypeError)
        Bad(write("cut-pages.tif", tiff[: len(tiff) * 2 // 3]), corrupt, r"TIFF"),
        Bad(write("garbage.tif", garbage_tiff), corrupt, r"damaged TIFF file"),
        Bad(write("bad-page-2.tif", tiff_with_a_damaged_second_page()), corrupt, r"TIFF data"),
        Bad(write("bad-crc.png", bytes(bad_crc)), corrupt, r"damaged PNG file: .*checksum"),
        Bad(bomb, corrupt, r"decompression-bomb limit"),
        # pypdf
        Bad(write("no-xref.pdf", b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF"), corrupt, r"readable"),
        Bad(write("locked.pdf", locked), unsupported, needs_one),
        Bad(write("certificate.pdf", certificate), unsupported, r"encryption .* cannot open"),
        Bad(write("no-pages.pdf", pdf(pages=0)), corrupt, r"no pages"),
        Bad(write("fake.pdf", b"%PDF-1.4\nnot really a pdf\n"), corrupt, r"PDF"),
        # PyAV
        Bad(write("garbage.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(256) * 20), corrupt, "video"),
        # pixel decoders: libjpeg on a damaged 12-bit scan; a cut arithmetic-coded JPEG
        Bad(write("twelve-bit.jpg", broken_twelve), corrupt, r"12-bit JPEG \(SOF1\) .* libjpeg"),
        Bad(write("arithmetic.jpg", coded[: len(coded) // 2]), corrupt, r"truncated"),
        Bad(write("unknown.xyz", b"\x00\x01 binary " * 10), unsupported, r"unknown"),
    ]


def good_inputs(folder: Path, count: int = 3) -> list[Path]:
    """Good files of every kind: photos, a multi-page TIFF, PDFs (AES, RC4), a video."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"photo{number:02d}.{'jpg' if number % 2 else 'png'}"
        _corpus.photo(24, 16, seed=200 + number).save(path, quality=90)
        paths.append(path)
    tiff = folder / "pages.tif"
    tiff.write_bytes(tiff_pages())
    aes = folder / "restricted-aes.pdf"
    aes.write_bytes(pdf(user="", algorithm="AES-128"))
    rc4 = folder / "restricted-rc4.pdf"
    rc4.write_bytes(pdf(pages=2, user="", algorithm="RC4-128"))
    video = folder / "clip.mp4"
    _clips.write_clip(video, width=64, height=48, frames=5)
    return [*paths, tiff, aes, rc4, video]


def interleave(good: list[Path], bad: list[Bad]) -> list[Path]:
    paths: list[Path] = []
    for number in range(max(len(good), len(bad))):
        paths.extend(good[number : number + 1])
        paths.extend(item.path for item in bad[number : number + 1])
    return paths
