"""Generated inputs for the converter tests: every kind of still image and PDF we accept.

Everything is made from fixed seeds, so runs are repeatable; nothing here is patient data.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image
from pypdf import PdfWriter

from tests._peers import in_ci, missing_tool


def photo(width: int = 64, height: int = 48, seed: int = 1) -> Image.Image:
    """A photo-like RGB image: gradients plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1
    )
    noise = rng.integers(-20, 21, size=(height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def grey16(width: int = 40, height: int = 30) -> Image.Image:
    """A 16-bit grey ramp using the whole range."""
    values = np.linspace(0, 65535, width * height, dtype=np.uint32).reshape(height, width)
    return Image.fromarray(values.astype(np.uint16))


def exif_rotated_jpeg(path: Path) -> None:
    """A JPEG whose EXIF orientation (6) says: rotate 90° clockwise to display."""
    exif = Image.Exif()
    exif[0x0112] = 6
    photo(40, 24, seed=7).save(path, "JPEG", quality=90, exif=exif.tobytes())


def pdf(path: Path, *, title: str | None = None, pages: int = 1) -> None:
    """A PDF with blank pages and an optional /Title."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    if title is not None:
        writer.add_metadata({"/Title": title})
    buffer = io.BytesIO()
    writer.write(buffer)
    path.write_bytes(buffer.getvalue())


def arithmetic_jpeg(path: Path) -> bool:
    """An arithmetic-coded JPEG made with libjpeg-turbo's cjpeg; False without cjpeg."""
    cjpeg = shutil.which("cjpeg")
    if cjpeg is None:
        return False
    source = path.with_suffix(".ppm")
    photo(32, 32, seed=3).save(source)
    with path.open("wb") as out:
        subprocess.run([cjpeg, "-arithmetic", str(source)], stdout=out, check=True)
    source.unlink()
    return True


def make_corpus(folder: Path) -> dict[str, Path]:
    """Write one file of every accepted kind into ``folder``; return them by name."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def add(name: str) -> Path:
        files[name] = folder / name
        return files[name]

    rgb = photo()
    rgb.save(add("baseline.jpg"), "JPEG", quality=90)
    rgb.save(add("baseline444.jpg"), "JPEG", quality=90, subsampling=0)
    rgb.convert("L").save(add("grey.jpg"), "JPEG", quality=90)
    rgb.save(add("progressive.jpg"), "JPEG", quality=90, progressive=True)
    rgb.convert("CMYK").save(add("cmyk.jpg"), "JPEG", quality=90)
    exif_rotated_jpeg(add("exif6.jpg"))
    rgb.convert("L").save(add("grey8.png"))
    grey16().save(add("grey16.png"))
    rgb.save(add("rgb.png"))
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    rgba.save(add("rgba.png"))
    rgb.quantize(colors=16).save(add("palette.png"))
    rgb.save(add("image.bmp"))
    rgb.quantize(colors=32).save(add("image.gif"))
    pages = [photo(32, 24, seed=s) for s in (11, 12, 13)]
    pages[0].save(add("pages.tiff"), save_all=True, append_images=pages[1:])
    rgb.save(add("lossy.webp"), "WEBP", quality=80)
    rgb.save(add("lossless.webp"), "WEBP", lossless=True)
    pdf(add("report.pdf"), title="Befund Müller")
    pdf(add("untitled.pdf"), pages=2)
    if not arithmetic_jpeg(folder / "arithmetic.jpg"):
        if in_ci():  # CI=true: a missing tool fails, never shrinks the corpus silently
            missing_tool("cjpeg (Debian libjpeg-turbo-progs) is needed for arithmetic.jpg")
        files.pop("arithmetic.jpg", None)
    else:
        files["arithmetic.jpg"] = folder / "arithmetic.jpg"
    return files


def bad_inputs(folder: Path) -> dict[str, Path]:
    """Hostile inputs, each of which must fail on its own with a clear error."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "empty": folder / "empty.jpg",
        "truncated": folder / "truncated.jpg",
        "fake_jpeg": folder / "fake.jpg",
        "text_png": folder / "notes.png",
        "fake_pdf": folder / "fake.pdf",
        "unknown": folder / "data.xyz",
        "bomb": folder / "bomb.png",
        "missing": folder / "missing" / "gone.png",
        "folder": folder / "a_folder.png",
    }
    files["empty"].write_bytes(b"")
    buffer = io.BytesIO()
    photo(200, 150).save(buffer, "JPEG", quality=90)
    files["truncated"].write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 6 // 10])
    files["fake_jpeg"].write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    files["text_png"].write_text("this is not an image\n", encoding="utf-8")
    files["fake_pdf"].write_text("%PDF-1.4\nnot really a pdf\n", encoding="utf-8")
    files["unknown"].write_bytes(b"\x00\x01\x02 some binary data " * 10)
    Image.new("1", (20000, 20000)).save(files["bomb"])  # 400 Mpixel: over twice Pillow's limit
    files["folder"].mkdir()
    return files
