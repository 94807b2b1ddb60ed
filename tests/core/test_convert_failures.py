"""Each input is its own failure domain: one batch in which every layer raises.

The inputs of ``tests/_hostile.py`` (Pillow, pypdf, PyAV and the pixel decoders raise on
them) each fail with their file named and the cause in words, while the good inputs of the same
batch, in this process and in worker processes, are converted and pass dciodvfy. A worker
process that dies, and an exception of no caught kind, cost no other input.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Final

import pydicom
import pytest
from PIL import Image

from sendtopacs_core import ConversionError, CorruptMediaError, Study, _job
from sendtopacs_core._failure import unexpected_error
from sendtopacs_core.convert import ConversionReport, Converter
from tests import _corpus
from tests._hostile import Bad, bad_inputs, good_inputs, interleave, pdf, tiff_pages
from tests._peers import Dciodvfy

NOW: Final = dt.datetime(2026, 11, 27, 10, 30, 0, tzinfo=dt.UTC)
STUDY: Final = Study(patient_id="PID-0001", patient_name="Test^Patient", accession_number="A1")


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
    paths = interleave(good, bad)
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
    paths = interleave(good, bad)
    alone = Converter(clock=lambda: NOW).convert(paths, STUDY, out_dir=tmp_path / "one")
    parallel = Converter(workers=2, clock=lambda: NOW).convert(
        paths, STUDY, out_dir=tmp_path / "two"
    )
    _check(paths, good, bad, parallel)
    assert [(f.source, f.sop_instance_uid) for f in parallel] == [
        (f.source, f.sop_instance_uid) for f in alone
    ]
    assert [str(f.error) for f in parallel.failures] == [str(f.error) for f in alone.failures]


_CRASH_SCRIPT: Final = """
import os, sys, threading
from pathlib import Path
from sendtopacs_core import Converter, Study, _job

real_convert = _job._convert

def crashing(batch, job, progress):
    # stands in for a decoder that crashes its process (a segmentation fault) or the
    # system's out-of-memory killer: no Python exception, the worker process is gone
    if job.path.name == "kills-its-process.png":
        os._exit(70)
    return real_convert(batch, job, progress)

_job._convert = crashing  # forked workers inherit it
assert threading.active_count() == 1  # so the workers are forked
paths = [Path(line) for line in sys.stdin.read().splitlines()]
report = Converter(workers=2).convert(paths, Study(patient_id="P1"), out_dir=sys.argv[1])
for failure in report.failures:
    print("failed", failure.source.name, type(failure.error).__name__, failure.error.reason)
for item in report:
    print("converted", item.source.name, item.path.name)
"""


def test_a_crashed_worker_process_loses_no_other_input(tmp_path: Path) -> None:
    """Run in a fresh interpreter (one thread, so workers are forked with the crash in them)."""
    good = good_inputs(tmp_path / "good", count=20)[:20]  # the photos
    crash = tmp_path / "bad" / "kills-its-process.png"
    crash.parent.mkdir()
    _corpus.photo(8, 8, seed=5).save(crash)
    paths = [*good[:7], crash, *good[7:]]
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, str(out)],
        input="\n".join(map(str, paths)),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "failed kills-its-process.png CorruptMediaError the conversion process stopped abruptly "
        "while reading it (a decoder crashed on the file, or the system ran out of memory)"
    )
    assert lines[1:] == [f"converted {p.name} {p.stem}.dcm" for p in good]
    numbers = [pydicom.dcmread(out / f"{p.stem}.dcm").InstanceNumber for p in good]
    assert len(set(numbers)) == len(good)


def test_an_unexpected_exception_is_the_inputs_failure_with_the_traceback_at_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sendtopacs_core.media import pdf as pdf_media

    good = good_inputs(tmp_path / "good", count=2)
    odd = tmp_path / "odd.pdf"
    odd.write_bytes(pdf())
    original = pdf_media.read_pdf

    def read_pdf(path: str | os.PathLike[str]) -> pdf_media.PdfDocument:
        if Path(path).name == odd.name:
            raise LookupError("an exception of no caught kind")
        return original(path)

    monkeypatch.setattr(pdf_media, "read_pdf", read_pdf)
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
    tiff = tiff_pages()
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


_MEMORY_SCRIPT: Final = """
import resource, sys
from pathlib import Path
from sendtopacs_core import Converter, Study
import sendtopacs_core._job, sendtopacs_core.iods.secondary_capture, sendtopacs_core.media.image
# what is mapped now plus 300 MiB: the big image's decoded copies cannot all fit
mapped = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (mapped + (300 << 20), resource.RLIM_INFINITY))
report = Converter().convert([Path(sys.argv[1]), Path(sys.argv[2])], Study(), out_dir=sys.argv[3])
for failure in report.failures:
    print("failed", failure.source.name, type(failure.error).__name__, failure.error.reason)
for item in report:
    print("converted", item.source.name)
"""


def test_running_out_of_memory_on_one_input_costs_no_other(tmp_path: Path) -> None:
    """A real MemoryError (address space capped): a compact PNG of 81 Mpixel, under the bomb
    limit, needs more than 300 MiB to decode and convert; the small photo after it is done."""
    big = tmp_path / "huge.png"
    Image.new("RGB", (9000, 9000), (10, 200, 30)).save(big)
    assert big.stat().st_size < 1 << 20
    small = tmp_path / "small.png"
    _corpus.photo(16, 16).save(small)
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(big), str(small), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [
        "failed huge.png CorruptMediaError it needs more memory than is free to convert (an "
        "image, page or video far larger than it looks, or a damaged size in the file)",
        "converted small.png",
    ]


def test_an_input_that_vanishes_before_the_plan_reads_it_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without study data the plan hashes every input; one removed after its inspection (a
    watcher's neighbour, a network share) fails with the cause, the others are converted."""
    from sendtopacs_core import convert as convert_module

    good = good_inputs(tmp_path / "good", count=3)[:3]
    gone = tmp_path / "gone.png"
    _corpus.photo(8, 8, seed=9).save(gone)
    real_digest = _job.content_digest  # what convert imports

    def digest_after_removal(path: Path, **options: object) -> str:
        if path == gone:
            gone.unlink()  # removed between inspection and planning
        return real_digest(path, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(convert_module, "content_digest", digest_after_removal)
    report = Converter(clock=lambda: NOW).convert(
        [good[0], gone, *good[1:]], Study(), out_dir=tmp_path / "out"
    )
    (failure,) = report.failures
    assert failure.source == gone
    assert isinstance(failure.error, CorruptMediaError)
    assert "gone.png" in str(failure.error)
    assert "cannot read the file" in failure.error.reason
    assert [f.source for f in report] == good
    numbers = [pydicom.dcmread(f.path).InstanceNumber for f in report]
    assert numbers == [1, 2, 3]
