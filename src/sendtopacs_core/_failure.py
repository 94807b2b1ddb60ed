"""Each input is its own failure domain: whatever converting one file raised, in words.

The media boundaries (:mod:`sendtopacs_core.media`) translate the errors they know into a
:class:`~sendtopacs_core.errors.ConversionError`. Anything else one input raises (a library's
unexpected exception, a ``MemoryError`` of a decompression bomb, a bug of ours) is turned into
that input's :class:`~sendtopacs_core.ConversionFailure` here, naming the file, the library
that stopped and its message; the traceback is logged at DEBUG only. Nothing is swallowed: every
exception caught becomes a failure in the report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Final

from sendtopacs_core._results import ConversionFailure
from sendtopacs_core.errors import ConversionError, CorruptMediaError

__all__ = ["crashed_worker_failure", "failure_for", "unexpected_error"]

_LOGGER = logging.getLogger(__name__)

#: Top-level packages whose exceptions mean "this library could not read the file", and how a
#: clinic would call them.
_LIBRARIES: Final = {
    "PIL": "the image decoder (Pillow)",
    "pypdf": "the PDF reader (pypdf)",
    "cryptography": "the PDF decryption (cryptography)",
    "av": "the video decoder (FFmpeg)",
    "libjpeg": "the JPEG decoder (libjpeg)",
    "openjpeg": "the JPEG 2000 decoder (OpenJPEG)",
    "rle": "the RLE decoder",
    "numpy": "the pixel processing (numpy)",
    "pydicom": "the DICOM encoder (pydicom)",
}
#: At most this many characters of a library's message are quoted.
_MAX_DETAIL: Final = 200


def failure_for(path: Path, exc: Exception) -> ConversionFailure:
    """The failure of input ``path`` for ``exc``, whatever its type."""
    if isinstance(exc, ConversionError):
        return ConversionFailure(source=path, error=exc)
    _LOGGER.debug("converting %s raised %s", path, type(exc).__name__, exc_info=exc)
    return ConversionFailure(source=path, error=unexpected_error(path, exc))


def unexpected_error(path: Path, exc: BaseException) -> ConversionError:
    """A :class:`ConversionError` naming ``path`` and, in words, what ``exc`` means."""
    detail = _detail(exc)
    if isinstance(exc, MemoryError):
        return CorruptMediaError(
            path,
            "it needs more memory than is free to convert (an image, page or video far larger "
            "than it looks, or a damaged size in the file)",
        )
    if isinstance(exc, RecursionError):
        return CorruptMediaError(
            path, "its structure is nested too deeply to be read (the file is probably damaged)"
        )
    library = _library(exc)
    if library is not None:
        return CorruptMediaError(
            path,
            f"{library} could not read it ({detail}); the file is damaged or of a variant that "
            "is not supported",
        )
    return ConversionError(
        path, f"an unexpected error stopped the conversion ({detail}); please report it"
    )


def crashed_worker_failure(path: Path) -> ConversionFailure:
    """The failure of an input whose conversion process stopped abruptly (a crash, no memory)."""
    return ConversionFailure(
        source=path,
        error=CorruptMediaError(
            path,
            "the conversion process stopped abruptly while reading it (a decoder crashed on "
            "the file, or the system ran out of memory)",
        ),
    )


def _detail(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    if len(message) > _MAX_DETAIL:
        message = message[: _MAX_DETAIL - 1] + "…"
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def _library(exc: BaseException) -> str | None:
    """The library the exception comes from: its innermost frame of a known package."""
    found = _LIBRARIES.get(type(exc).__module__.partition(".")[0])
    traceback: TracebackType | None = exc.__traceback__
    while traceback is not None:
        package = str(traceback.tb_frame.f_globals.get("__name__", "")).partition(".")[0]
        found = _LIBRARIES.get(package, found)
        traceback = traceback.tb_next
    return found
