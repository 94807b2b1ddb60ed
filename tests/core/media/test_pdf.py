"""Tests for sendtopacs_core.media.pdf: PDFs viewers open are accepted, unchanged; refusals say why.

Every PDF is generated here with pypdf (encrypted with an owner password only, as "restricted
editing" PDFs are; or with a user password), and damaged by editing its bytes.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pydicom
import pytest
from pypdf import PdfReader, PdfWriter

from sendtopacs_core import Study
from sendtopacs_core.convert import ConversionAction, Converter
from sendtopacs_core.errors import CorruptMediaError, UnsupportedMediaError
from sendtopacs_core.media.pdf import read_pdf
from tests._peers import Dciodvfy

NOW = dt.datetime(2026, 11, 27, 10, 30, 0, tzinfo=dt.UTC)
OWNER = "owner-secret"


def _pdf(*, pages: int = 1, user: str | None = None, algorithm: str = "AES-128") -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=300, height=200)
    writer.add_metadata({"/Title": "Befund"})
    if user is not None:
        writer.encrypt(user_password=user, owner_password=OWNER, algorithm=algorithm)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _error(path: Path, cause: str) -> str:
    return re.escape(f"cannot convert {path}: ") + cause


@pytest.mark.parametrize("algorithm", ["AES-128", "AES-256", "RC4-128", "RC4-40"])
def test_restricted_editing_pdf_is_encapsulated_unchanged(
    tmp_path: Path, algorithm: str, dciodvfy: Dciodvfy
) -> None:
    data = _pdf(pages=2, user="", algorithm=algorithm)
    assert PdfReader(io.BytesIO(data)).is_encrypted
    path = _write(tmp_path, f"restricted-{algorithm}.pdf", data)
    document = read_pdf(path)
    assert document.data == data
    assert document.pages == 2
    assert document.title == "Befund"  # the encrypted /Title string was decrypted
    (item,) = Converter(clock=lambda: NOW).convert(
        [path], Study(patient_id="P1"), out_dir=tmp_path / "out"
    )
    assert item.action is ConversionAction.ENCAPSULATED
    result = dciodvfy(item.path)
    assert result.errors == [], result.output
    ds = pydicom.dcmread(item.path)
    assert ds.EncapsulatedDocument[: ds.EncapsulatedDocumentLength] == data
    assert ds.DocumentTitle == "Befund"


def _shift_objects(data: bytes, by: int) -> bytes:
    """Insert ``by`` bytes after the header: every xref offset now points ``by`` bytes early."""
    header_end = data.index(b"\n", data.index(b"%PDF-")) + 1
    return data[:header_end] + b"%" + b"x" * (by - 2) + b"\n" + data[header_end:]


def _bad_startxref(data: bytes) -> bytes:
    position = data.rindex(b"startxref")
    return data[:position] + b"startxref\n999999\n%%EOF\n"


def _without_xref_table(data: bytes) -> bytes:
    """Cut the cross-reference table out; the trailer and startxref stay."""
    table = data.rindex(b"\nxref") + 1
    return data[:table] + data[data.index(b"trailer", table) :]


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("startxref.pdf", _bad_startxref),
        ("shifted.pdf", lambda data: _shift_objects(data, 37)),
        ("no-xref-table.pdf", _without_xref_table),
    ],
)
def test_damaged_xref_that_pypdf_repairs_is_encapsulated_unchanged(
    tmp_path: Path, name: str, damage: object, dciodvfy: Dciodvfy
) -> None:
    original = _pdf(pages=3)
    data = damage(original)  # type: ignore[operator]
    assert data != original
    path = _write(tmp_path, name, data)
    document = read_pdf(path)
    assert document.data == data
    assert document.pages == 3
    (item,) = Converter(clock=lambda: NOW).convert(
        [path], Study(patient_id="P1"), out_dir=tmp_path / "out"
    )
    assert dciodvfy(item.path).errors == []
    ds = pydicom.dcmread(item.path)
    assert ds.EncapsulatedDocument[: ds.EncapsulatedDocumentLength] == data


@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128", "RC4-128"])
def test_pdf_with_a_user_password_is_refused_in_words(tmp_path: Path, algorithm: str) -> None:
    path = _write(tmp_path, "locked.pdf", _pdf(user="open-sesame", algorithm=algorithm))
    cause = re.escape("the PDF is protected by a password; open it and save it without one")
    with pytest.raises(UnsupportedMediaError, match=_error(path, cause)):
        read_pdf(path)


def test_pdf_with_an_encryption_we_cannot_open_is_refused_in_words(tmp_path: Path) -> None:
    certificate = _pdf(user="", algorithm="RC4-128").replace(
        b"/Filter /Standard", b"/Filter /PubSecXX"
    )
    path = _write(tmp_path, "certificate.pdf", certificate)
    cause = (
        r"the PDF is protected with an encryption this program cannot open \(a certificate "
        r"or an unusual method: .*\); open it and save it without protection"
    )
    with pytest.raises(UnsupportedMediaError, match=_error(path, cause)):
        read_pdf(path)


@pytest.mark.parametrize(
    ("name", "data", "cause"),
    [
        ("no-pages.pdf", _pdf(pages=0), "the PDF has no pages: there is nothing to show"),
        ("letter.pdf", b"Dear colleague,\n", "not a PDF: no %PDF- header at the start"),
        ("empty.pdf", b"", "empty file (0 bytes)"),
        ("cut.pdf", b"%PDF-1.7\n1 0 obj << /Type", "not a readable PDF (damaged): "),
    ],
)
def test_pdf_that_is_no_document_is_refused_in_words(
    tmp_path: Path, name: str, data: bytes, cause: str
) -> None:
    path = _write(tmp_path, name, data)
    with pytest.raises(CorruptMediaError, match=_error(path, re.escape(cause))):
        read_pdf(path)


def test_aes_pdf_without_the_cryptography_package_is_refused_in_words(tmp_path: Path) -> None:
    """Where cryptography is missing (an installation without our dependencies), say so."""
    path = _write(tmp_path, "restricted.pdf", _pdf(user="", algorithm="AES-256"))
    script = textwrap.dedent(
        """
        import sys
        sys.modules["cryptography"] = None  # as if it were not installed
        sys.modules["Crypto"] = None  # nor pycryptodome, pypdf's other provider
        from sendtopacs_core.errors import UnsupportedMediaError
        from sendtopacs_core.media.pdf import read_pdf
        try:
            read_pdf(sys.argv[1])
        except UnsupportedMediaError as exc:
            print(exc)
        else:
            print("read")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert done.stdout.startswith(f"cannot convert {path}: the PDF is encrypted with AES")
    assert "the Python package cryptography" in done.stdout
    assert "Traceback" not in done.stderr
