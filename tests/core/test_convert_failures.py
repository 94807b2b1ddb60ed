"""Each input is its own failure domain: one batch in which every layer raises.

Pillow (a TIFF whose page count cannot be read, garbage TIFF, PNG with a bad CRC, a
decompression bomb), pypdf (no xref, a user password, a certificate handler, no pages), PyAV
(garbage video) and the pixel decoders (a 12-bit JPEG libjpeg refuses, a cut arithmetic-coded
JPEG) each fail with their file named and the cause in words, while the good inputs of the same
batch, in this process and in worker processes, are converted and pass dciodvfy.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
import struct
from pathlib import Path
from typing import Final

import attrs
import pydicom
import pytest
from PIL import Image
from pypdf import PdfWriter

from sendtopacs_core import (
    ConversionError,
    CorruptMediaError,
    Study,
    UnsupportedMediaError,
    _job,
)
from sendtopacs_core._failure import unexpected_error
from sendtopacs_core.convert import ConversionReport, Converter
from tests import _clips, _corpus
from tests._peers import Dciodvfy

NOW: Final = dt.datetime(2026, 11, 27, 10, 30, 0, tzinfo=dt.UTC)
STUDY: Final = Study(patient_id="PID-0001", patient_name="Test^Patient", accession_number="A1")


@attrs.frozen
class Bad:
    path: Path
    error: type[ConversionError]
    cause: str
    """A regular expression the failure's reason must match."""


def _pdf(*, pages: int = 1, user: str | None = None, algorithm: str = "AES-128") -> bytes:
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


def _tiff_pages() -> bytes:
    pages = [_corpus.photo(32, 24, seed=s) for s in (21, 22, 23)]
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def bad_inputs(folder: Path) -> list[Bad]:
    """Inputs that make Pillow, pypdf, PyAV and the pixel decoders raise."""
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    tiff = _tiff_pages()
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
    certificate = _pdf(user="", algorithm="RC4-128").replace(
        b"/Filter /Standard", b"/Filter /PubSecXX"
    )
    garbage_tiff = b"II*\x00" + struct.pack("<IH", 8, 2) + b"\xff" * 24 + bytes(4)
    broken_twelve = twelve[: scan + 20] + bytes(range(256)) * 8 + b"\xff\xd9"
    corrupt, unsupported = CorruptMediaError, UnsupportedMediaError
    locked = _pdf(user="open-sesame", algorithm="AES-256")
    needs_one = r"protected by a password; open it and save it without one"
    return [
        # Pillow: the TIFF whose page count cannot be read (it raised TypeError)
        Bad(write("cut-pages.tif", tiff[: len(tiff) * 2 // 3]), corrupt, r"TIFF"),
        Bad(write("garbage.tif", garbage_tiff), corrupt, r"damaged TIFF file"),
        Bad(write("bad-crc.png", bytes(bad_crc)), corrupt, r"damaged PNG file: .*checksum"),
        Bad(bomb, corrupt, r"decompression-bomb limit"),
        # pypdf
        Bad(write("no-xref.pdf", b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF"), corrupt, r"readable"),
        Bad(write("locked.pdf", locked), unsupported, needs_one),
        Bad(write("certificate.pdf", certificate), unsupported, r"encryption .* cannot open"),
        Bad(write("no-pages.pdf", _pdf(pages=0)), corrupt, r"no pages"),
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
    tiff.write_bytes(_tiff_pages())
    aes = folder / "restricted-aes.pdf"
    aes.write_bytes(_pdf(user="", algorithm="AES-128"))
    rc4 = folder / "restricted-rc4.pdf"
    rc4.write_bytes(_pdf(pages=2, user="", algorithm="RC4-128"))
    video = folder / "clip.mp4"
    _clips.write_clip(video, width=64, height=48, frames=5)
    return [*paths, tiff, aes, rc4, video]


def _interleave(good: list[Path], bad: list[Bad]) -> list[Path]:
    paths: list[Path] = []
    for number in range(max(len(good), len(bad))):
        paths.extend(good[number : number + 1])
        paths.extend(item.path for item in bad[number : number + 1])
    return paths


def _check(paths: list[Path], good: list[Path], bad: list[Bad], report: ConversionReport) -> None:
    failed = {failure.source: failure.error for failure in report.failures}
    assert set(failed) == {item.path for item in bad}
    for item in bad:
        error = failed[item.path]
        assert isinstance(error, item.error), f"{item.path.name}: {error!r}"
        assert item.path.name in str(error)
        assert re.search(item.cause, error.reason), f"{item.path.name}: {error.reason}"
    assert {f.source for f in report.files} == set(good)
    # the failures come in input order, the report is complete
    assert [f.source for f in report.failures] == [path for path in paths if path in failed]
    assert len(report.failures) + len({f.source for f in report.files}) == len(paths)


def test_one_batch_where_every_layer_raises(tmp_path: Path, dciodvfy: Dciodvfy) -> None:
    good = good_inputs(tmp_path / "good")
    bad = bad_inputs(tmp_path / "bad")
    paths = _interleave(good, bad)
    report = Converter(clock=lambda: NOW).convert(paths, STUDY, out_dir=tmp_path / "out")
    _check(paths, good, bad, report)
    # the TIFF gives 3 objects, the RC4 PDF one (a PDF is one object, whatever its pages)
    assert len(report.files) == len(good) + 2
    for item in report:
        result = dciodvfy(item.path)
        assert result.errors == [], f"{item.source.name}: {result.output}"
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(item.path.name for item in report)


def test_worker_processes_keep_every_input_of_a_hostile_batch(tmp_path: Path) -> None:
    good = good_inputs(tmp_path / "good", count=18)
    bad = bad_inputs(tmp_path / "bad")
    paths = _interleave(good, bad)
    alone = Converter(clock=lambda: NOW).convert(paths, STUDY, out_dir=tmp_path / "one")
    parallel = Converter(workers=2, clock=lambda: NOW).convert(
        paths, STUDY, out_dir=tmp_path / "two"
    )
    _check(paths, good, bad, parallel)
    assert [(f.source, f.sop_instance_uid) for f in parallel] == [
        (f.source, f.sop_instance_uid) for f in alone
    ]
    assert [str(f.error) for f in parallel.failures] == [str(f.error) for f in alone.failures]


_CRASH_NAME: Final = "kills-its-process.png"


def _crash_on(convert: object) -> object:
    """Wrap ``_job._convert``: the process converting the named file dies at once.

    This stands in for a decoder that crashes its process (a segmentation fault) or the
    system's out-of-memory killer; no Python exception is raised, the worker is gone.
    """

    def crashing(batch: object, job: _job.Job, progress: object) -> object:
        if job.path.name == _CRASH_NAME:
            os._exit(70)
        return convert(batch, job, progress)  # type: ignore[operator]

    return crashing


def test_a_crashed_worker_process_loses_no_other_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = good_inputs(tmp_path / "good", count=20)[:20]  # the photos
    crash = tmp_path / "bad" / _CRASH_NAME
    crash.parent.mkdir()
    _corpus.photo(8, 8, seed=5).save(crash)
    paths = [*good[:7], crash, *good[7:]]
    monkeypatch.setattr(_job, "_convert", _crash_on(_job._convert))
    report = Converter(workers=2, clock=lambda: NOW).convert(paths, STUDY, out_dir=tmp_path / "out")
    (failure,) = report.failures
    assert failure.source == crash
    assert isinstance(failure.error, CorruptMediaError)
    assert _CRASH_NAME in str(failure.error)
    assert "stopped abruptly" in failure.error.reason
    assert [f.source for f in report] == good
    numbers = [pydicom.dcmread(f.path).InstanceNumber for f in report]
    assert len(set(numbers)) == len(good)


def test_an_unexpected_exception_is_the_inputs_failure_with_the_traceback_at_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sendtopacs_core.media import pdf

    good = good_inputs(tmp_path / "good", count=2)
    odd = tmp_path / "odd.pdf"
    odd.write_bytes(_pdf())
    original = pdf.read_pdf

    def read_pdf(path: str | os.PathLike[str]) -> pdf.PdfDocument:
        if Path(path).name == odd.name:
            raise LookupError("an exception of no caught kind")
        return original(path)

    monkeypatch.setattr(pdf, "read_pdf", read_pdf)
    with caplog.at_level(logging.DEBUG, logger="sendtopacs_core"):
        report = Converter(clock=lambda: NOW).convert([*good, odd], STUDY, out_dir=tmp_path / "out")
    (failure,) = report.failures
    assert failure.source == odd
    assert type(failure.error) is ConversionError
    assert "odd.pdf" in str(failure.error)
    assert "LookupError: an exception of no caught kind" in failure.error.reason
    assert {f.source for f in report} == set(good)
    (record,) = [r for r in caplog.records if r.exc_info and r.exc_info[1] is not None]
    assert record.levelno == logging.DEBUG
    assert isinstance(record.exc_info[1], LookupError)  # type: ignore[index]
    assert all(r.levelno < logging.WARNING or not r.exc_info for r in caplog.records)


def test_an_exception_from_a_library_names_the_library(tmp_path: Path) -> None:
    tiff = _tiff_pages()
    path = tmp_path / "cut.tif"
    path.write_bytes(tiff[: len(tiff) * 2 // 3])
    raised: Exception | None = None
    try:
        with Image.open(path) as im:
            im.seek(int(getattr(im, "n_frames", 1)) - 1)
            im.load()
    except Exception as exc:  # whatever Pillow raises on it
        raised = exc
    assert raised is not None, "Pillow read the cut TIFF"
    error = unexpected_error(path, raised)
    assert isinstance(error, CorruptMediaError)
    assert error.reason.startswith("the image decoder (Pillow) could not read it (")
    assert type(raised).__name__ in error.reason
    assert "cut.tif" in str(error)


def test_running_out_of_memory_is_said_in_words(tmp_path: Path) -> None:
    error = unexpected_error(tmp_path / "huge.tif", MemoryError())
    assert isinstance(error, CorruptMediaError)
    assert "huge.tif" in str(error)
    assert "more memory than is free" in error.reason
