"""Uploads of the HTTP API: safe names, a private folder per request, removed afterwards.

Framework-free: an upload is anything with a ``filename`` and an async ``read(size)``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final, Protocol

import attrs

from sendtopacs_core import Settings

__all__ = [
    "MAX_FILES",
    "Upload",
    "UploadError",
    "safe_upload_name",
    "save_uploads",
    "scrub",
    "workspace",
]

MAX_FILES: Final = 100
_UNSAFE_CHARACTERS: Final = frozenset('<>:"|?*')
_MAX_NAME_BYTES: Final = 120
_CHUNK: Final = 1024 * 1024


class UploadError(ValueError):
    """The uploads cannot be accepted (none, too many); the message says why."""


class _Readable(Protocol):
    @property
    def filename(self) -> str | None: ...

    async def read(self, size: int = -1, /) -> bytes: ...


@attrs.frozen
class Upload:
    """An upload as stored: the server-side ``path`` and the ``name`` shown to the client."""

    path: Path
    name: str


def safe_upload_name(filename: str | None) -> str:
    """The base name an upload is stored under: no folders, ``..``, NUL or control characters.

    Backslashes count as separators, leading and trailing dots and spaces go, characters that
    are unsafe on some file systems are dropped, and long names are shortened (keeping the
    extension). An empty result becomes ``upload``.
    """
    text = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if ch.isprintable() and ch not in _UNSAFE_CHARACTERS)
    text = text.strip(" .")
    if len(text.encode("utf-8")) > _MAX_NAME_BYTES:
        stem, dot, suffix = text.rpartition(".")
        suffix = suffix[:16] if dot and stem else ""
        keep = _MAX_NAME_BYTES - len(suffix.encode("utf-8")) - 1
        stem = (stem if suffix else text).encode("utf-8")[:keep].decode("utf-8", "ignore")
        text = f"{stem}.{suffix}" if suffix else stem
    return text or "upload"


def new_workspace(settings: Settings) -> Path:
    """A new private folder (0700) under the settings' temporary folder (or the system's)."""
    root = settings.main.temp_dir
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="sendtopacs-api-", dir=root)).resolve()


@contextmanager
def workspace(settings: Settings) -> Iterator[Path]:
    """:func:`new_workspace`, removed at the end, errors included."""
    folder = new_workspace(settings)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def save_uploads(files: Sequence[_Readable], folder: Path) -> list[Upload]:
    """Write the uploads into ``folder/in/<n>/<safe name>``; never outside ``folder``.

    Raises
    ------
    UploadError
        No files, or more than ``MAX_FILES``.
    """
    if not files:
        raise UploadError("no files were uploaded (multipart field 'files')")
    if len(files) > MAX_FILES:
        raise UploadError(f"at most {MAX_FILES} files per request (found {len(files)})")
    saved: list[Upload] = []
    for number, upload in enumerate(files, start=1):
        name = safe_upload_name(upload.filename)
        parent = folder / "in" / str(number)
        parent.mkdir(parents=True)
        target = parent / name
        if target.resolve().parent != parent.resolve() or not parent.resolve().is_relative_to(
            folder
        ):  # cannot happen with a safe name; checked all the same
            raise UploadError("invalid file name")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(target, flags, 0o600), "wb") as out:
            while chunk := await upload.read(_CHUNK):
                out.write(chunk)
        saved.append(Upload(path=target, name=name))
    return saved


def scrub(text: str, folder: Path, uploads: Sequence[Upload]) -> str:
    """``text`` with our server-side paths replaced by the names the client sent."""
    for upload in uploads:
        text = text.replace(str(upload.path), upload.name)
    return text.replace(str(folder), "<upload>")
