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

#: (offset, bytes, kind): magic numbers at fixed offsets, checked in order.
_MAGIC: Final = (
    (128, b"DICM", MediaKind.DICOM),
    (0, b"\xff\xd8\xff", MediaKind.IMAGE),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n", MediaKind.IMAGE),
    (0, b"GIF87a", MediaKind.IMAGE),
    (0, b"GIF89a", MediaKind.IMAGE),
    (0, b"BM", MediaKind.IMAGE),
    (0, b"II*\x00", MediaKind.IMAGE),  # TIFF, little endian
    (0, b"MM\x00*", MediaKind.IMAGE),  # TIFF, big endian
    (8, b"WEBP", MediaKind.IMAGE),  # RIFF....WEBP
    (8, b"AVI ", MediaKind.VIDEO),  # RIFF....AVI
    (4, b"ftyp", MediaKind.VIDEO),  # MP4, MOV, 3GP
    (4, b"moov", MediaKind.VIDEO),
    (4, b"mdat", MediaKind.VIDEO),
    (4, b"free", MediaKind.VIDEO),
    (4, b"wide", MediaKind.VIDEO),
    (0, b"\x1a\x45\xdf\xa3", MediaKind.VIDEO),  # Matroska, WebM
    (0, b"\x00\x00\x01\xba", MediaKind.VIDEO),  # MPEG program stream
    (0, b"\x00\x00\x01\xb3", MediaKind.VIDEO),  # MPEG-1/2 video
    (0, bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"), MediaKind.VIDEO),  # ASF, WMV
)


def sniff(head: bytes, path: str | os.PathLike[str]) -> MediaKind | None:
    """Return the kind of a file from its first bytes (at least 1 KiB), or ``None``.

    The extension of ``path`` only settles the container formats that have no reliable magic
    number (MPEG transport streams).
    """
    for offset, magic, kind in _MAGIC:
        if head.startswith(magic, offset) and (offset != 8 or head.startswith(b"RIFF")):
            return kind
    if b"%PDF-" in head[:1024]:
        return MediaKind.PDF
    extension = os.fspath(path).rsplit(".", 1)[-1].lower()
    if head[:1] == b"\x47" and extension in VIDEO_EXTENSIONS:
        return MediaKind.VIDEO  # MPEG-TS sync byte
    return None
