"""Read a PDF for encapsulation: check it with pypdf, take its title and creation date."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import struct
import warnings
import zlib
from pathlib import Path
from typing import Final

import attrs
import pypdf
from pypdf import DocumentInformation
from pypdf.errors import DependencyError, PyPdfError

from sendtopacs_core.errors import CorruptMediaError, UnsupportedMediaError

__all__ = ["PdfDocument", "read_pdf"]

#: Document Title (0042,0010) is ST: at most 1024 characters.
_MAX_TITLE: Final = 1024
#: Encapsulated Document (0042,0011) is one OB value: at most 2**32 - 2 bytes.
_MAX_BYTES: Final = 2**32 - 2
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")
#: What pypdf raises on a damaged file besides its own errors (a cut stream, a bad object).
_PYPDF_ERRORS: Final = (
    PyPdfError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    RecursionError,
    OverflowError,
    ZeroDivisionError,
    struct.error,
    zlib.error,
)


@attrs.frozen(kw_only=True)
class PdfDocument:
    """A PDF that pypdf could open.

    Attributes
    ----------
    data
        The file's bytes, unchanged.
    title
        The /Title of the document information (cleaned), or ``None``.
    creation_date
        The /CreationDate, or ``None`` when absent or malformed.
    pages
        The number of pages.
    """

    data: bytes = attrs.field(repr=False)
    title: str | None
    creation_date: dt.datetime | None
    pages: int


def read_pdf(path: str | os.PathLike[str]) -> PdfDocument:
    """Read and check a PDF that a viewer would open; its bytes are kept unchanged.

    Encrypted PDFs that open without a password (the usual "restricted editing" PDF: RC4 or
    AES with an empty user password) are accepted and encapsulated as they are; so are PDFs
    with a damaged cross-reference table that pypdf rebuilds.

    Raises
    ------
    CorruptMediaError
        The file is empty, unreadable, not a PDF, has no pages, or pypdf cannot parse it.
    UnsupportedMediaError
        The PDF needs a password to open, uses an encryption this installation cannot open
        (a certificate, an unknown method, or AES without the ``cryptography`` package), or
        is too large for one DICOM value.
    """
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > _MAX_BYTES:
            raise UnsupportedMediaError(
                file, f"{size} bytes; an Encapsulated PDF holds at most {_MAX_BYTES}"
            )
        data = file.read_bytes()
    except OSError as exc:
        raise CorruptMediaError(file, f"cannot read the file: {exc.strerror or exc}") from exc
    if not data:
        raise CorruptMediaError(file, "empty file (0 bytes)")
    if b"%PDF-" not in data[:1024]:
        raise CorruptMediaError(file, "not a PDF: no %PDF- header at the start of the file")
    # pypdf reports recoverable oddities as warnings; the checks below decide what matters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _parse(file, data)


def _parse(file: Path, data: bytes) -> PdfDocument:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnsupportedMediaError(
                file, "the PDF is protected by a password; open it and save it without one"
            )
        pages = len(reader.pages)
        metadata = reader.metadata
        title = _clean_title(metadata.title) if metadata is not None else None
        creation = _creation_date(metadata)
    except UnsupportedMediaError:
        raise
    except DependencyError as exc:
        raise UnsupportedMediaError(
            file,
            "the PDF is encrypted with AES and this installation lacks the module that opens "
            f"it (the Python package cryptography; install sendtopacs again): {exc}",
        ) from exc
    except NotImplementedError as exc:
        raise UnsupportedMediaError(
            file,
            "the PDF is protected with an encryption this program cannot open (a certificate "
            f"or an unusual method: {exc}); open it and save it without protection",
        ) from exc
    except _PYPDF_ERRORS as exc:
        raise CorruptMediaError(file, f"not a readable PDF (damaged): {exc}") from exc
    if pages == 0:
        raise CorruptMediaError(file, "the PDF has no pages: there is nothing to show")
    return PdfDocument(data=data, title=title, creation_date=creation, pages=pages)


def _creation_date(metadata: DocumentInformation | None) -> dt.datetime | None:
    if metadata is None:
        return None
    try:
        return metadata.creation_date
    except (ValueError, TypeError):  # a malformed date is no reason to refuse the document
        return None


def _clean_title(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = _CONTROL.sub(" ", value).replace("\\", "/").strip()
    text = " ".join(text.split())
    return text[:_MAX_TITLE] or None
