"""Recognise what a file is from its first bytes (and its extension only as a hint)."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Final

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "MediaKind", "sniff"]


class MediaKind(StrEnum):
    """The kinds of input a converter distinguishes."""

    IMAGE = "image"
    PDF = "pdf"
    VIDEO = "video"
    DICOM = "dicom"


IMAGE_EXTENSIONS: Final = frozenset(
    {"jpg", "jpeg", "jpe", "jfif", "mpo", "png", "bmp", "dib", "gif", "tif", "tiff", "webp"}
)
VIDEO_EXTENSIONS: Final = frozenset(
    {
        "mp4",
        "m4v",
        "mov",
        "mpg",
        "mpeg",
        "m2v",
        "ts",
        "m2ts",
        "mts",
        "avi",
        "mkv",
        "webm",
        "wmv",
        "3gp",
        "vob",
        "h264",
        "264",
    }
)

_IMAGE_MAGIC: Final = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF little endian
    b"MM\x00*",  # TIFF big endian
)
_VIDEO_BRANDS: Final = (b"ftyp", b"moov", b"mdat", b"free", b"wide")


def sniff(head: bytes, path: str | os.PathLike[str]) -> MediaKind | None:
    """Return the kind of a file from its first bytes (at least 1 KiB), or ``None``.

    The extension of ``path`` only settles the container formats that have no reliable magic
    number (MPEG program and transport streams).
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return MediaKind.DICOM
    if b"%PDF-" in head[:1024]:
        return MediaKind.PDF
    if head.startswith(_IMAGE_MAGIC):
        return MediaKind.IMAGE
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return MediaKind.IMAGE
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return MediaKind.VIDEO
    if head[4:8] in _VIDEO_BRANDS:
        return MediaKind.VIDEO
    if head[:4] in (b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return MediaKind.VIDEO  # Matroska/WebM, MPEG-PS, MPEG-1/2 video
    if head[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"):
        return MediaKind.VIDEO  # ASF/WMV
    extension = os.fspath(path).rsplit(".", 1)[-1].lower()
    if head[:1] == b"\x47" and extension in VIDEO_EXTENSIONS:
        return MediaKind.VIDEO  # MPEG-TS sync byte
    return None
