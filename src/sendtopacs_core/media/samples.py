"""Sample inputs for ``sendtopacs demo`` and for users' own trials: no patient data."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["make_sample_files"]


def _picture(width: int, height: int) -> Image.Image:
    from PIL import Image, ImageDraw  # noqa: PLC0415 (kept out of the library's import time)

    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    red = Image.linear_gradient("L").rotate(90).resize((width, height))
    image = Image.merge("RGB", (red, image.getchannel("G"), image.getchannel("B")))
    draw = ImageDraw.Draw(image)
    draw.ellipse(
        (width // 4, height // 4, width * 3 // 4, height * 3 // 4), outline=(255, 255, 255), width=4
    )
    draw.text((10, 10), "sendtopacs sample", fill=(255, 255, 255))
    return image


def make_sample_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Write a JPEG photo, a PNG screenshot and a one-page PDF into ``folder``; return them."""
    from pypdf import PdfWriter  # noqa: PLC0415 (kept out of the library's import time)

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    photo = target / "sample-photo.jpg"
    _picture(640, 480).save(photo, "JPEG", quality=90)
    screenshot = target / "sample-screenshot.png"
    _picture(800, 600).convert("RGBA").save(screenshot, "PNG")
    document = target / "sample-report.pdf"
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": "sendtopacs sample report"})
    buffer = io.BytesIO()
    writer.write(buffer)
    document.write_bytes(buffer.getvalue())
    return [photo, screenshot, document]
