"""The sendtopacs command, called in-process through main() (plus one ``python -m`` run)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

from sendtopacs_adapters.cli import main
from tests import _corpus, _hostile


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    photo = folder / "photo.jpg"
    _corpus.photo().save(photo, "JPEG", quality=90)
    scan = folder / "scan.png"
    _corpus.photo(seed=5).save(scan)
    report = folder / "report.pdf"
    _corpus.pdf(report, title="Report")
    broken = folder / "broken.png"
    broken.write_text("not an image", encoding="utf-8")
    return {"photo": photo, "scan": scan, "report": report, "broken": broken}


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "settings.json"


def test_convert_json_reports_each_input(
    inputs: dict[str, Path], tmp_path: Path, settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "out"
    status = main(
        [
            "--settings",
            str(settings_file),
            "--json",
            "convert",
            str(inputs["photo"]),
            str(inputs["report"]),
            str(inputs["broken"]),
            "-o",
            str(out),
            "--patient-id",
            "12345",
            "--patient-name",
            "Müller^Anna",
            "--study-description",
            "Wound photo",
            "--sex",
            "F",
        ]
    )
    captured = capsys.readouterr()
    assert status == 1
    document = json.loads(captured.out)
    assert document["ok"] is False
    # The one schema of ConversionReport.to_dict(): the files written, then the failures.
    assert (document["converted"], document["failed"]) == (2, 1)
    assert [f["source"] for f in document["files"]] == [str(inputs["photo"]), str(inputs["report"])]
    output, report = document["files"]
    assert output["action"] == "passed-through"
    assert output["page"] == 1
    assert output["transfer_syntax_uid"] == "1.2.840.10008.1.2.4.50"
    assert output["sop_class"] == "Secondary Capture Image Storage"
    assert output["study_instance_uid"] == document["study_instance_uid"]
    assert report["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.104.1"
    (broken,) = document["failures"]
    assert broken["source"] == str(inputs["broken"])
    assert "broken.png" in broken["error"]
    assert broken["error_type"] in {"CorruptMediaError", "UnsupportedMediaError"}
    ds = pydicom.dcmread(output["path"])
    assert str(ds.PatientName) == "Müller^Anna"
    assert ds.PatientSex == "F"
    assert sorted(p.name for p in out.iterdir()) == ["photo.dcm", "report.dcm"]


def test_convert_human_output_and_exit_zero(
    inputs: dict[str, Path], tmp_path: Path, settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "convert",
            str(inputs["scan"]),
            "-o",
            str(tmp_path / "out"),
            "--settings",
            str(settings_file),
        ]
    )
    captured = capsys.readouterr()
    assert status == 0
    assert "scan.png" in captured.out
    assert "Explicit VR Little Endian" in captured.out
    assert "1 DICOM file(s) written" in captured.out


def test_convert_failure_is_named_on_stdout_and_counted_on_stderr(
    inputs: dict[str, Path], tmp_path: Path, settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "--settings",
            str(settings_file),
            "convert",
            str(inputs["broken"]),
            "-o",
            str(tmp_path / "o"),
        ]
    )
    captured = capsys.readouterr()
    assert status == 1
    # stderr is a log (no file names: they may name the patient); the report on stdout says
    # which file failed and why.
    assert "broken.png" in captured.out
    assert "broken.png" not in captured.err
    assert "1 input(s) not converted" in captured.err
    assert "Traceback" not in captured.err


def test_invalid_study_option_is_a_usage_error(
    inputs: dict[str, Path], tmp_path: Path, settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "--settings",
            str(settings_file),
            "convert",
            str(inputs["scan"]),
            "-o",
            str(tmp_path / "o"),
            "--birth-date",
            "20230231",
        ]
    )
    assert status == 2
    assert "20230231" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert"]) == 2
    assert main(["no-such-command"]) == 2
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_image_transfer_syntax_option(
    inputs: dict[str, Path], tmp_path: Path, settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "convert",
            str(inputs["scan"]),
            "-o",
            str(tmp_path / "o"),
            "--json",
            "--settings",
            str(settings_file),
            "--image-transfer-syntax",
            "jpeg-baseline",
            "--jpeg-quality",
            "75",
        ]
    )
    assert status == 0
    output = json.loads(capsys.readouterr().out)["files"][0]
    assert output["action"] == "encoded"
    assert output["transfer_syntax_uid"] == "1.2.840.10008.1.2.4.50"


def test_config_init_show_check(settings_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--settings", str(settings_file), "config", "check"]) == 0
    assert "defaults" in capsys.readouterr().out
    assert main(["--settings", str(settings_file), "config", "init"]) == 0
    written = json.loads(settings_file.read_text(encoding="utf-8"))
    assert set(written) >= {"main", "non_dicom", "dicom"}
    assert written["main"]["ae_title"] == "SENDTOPACS"
    assert main(["--settings", str(settings_file), "config", "init"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["config", "show", "--settings", str(settings_file)]) == 0
    shown = capsys.readouterr().out
    assert "main.ae_title" in shown
    assert "SENDTOPACS" in shown
    assert main(["--json", "config", "check", "--settings", str(settings_file)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_bad_settings_file_names_the_key(
    settings_file: Path, tmp_path: Path, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    settings_file.write_text(
        json.dumps({"main": {"ae_title": "THIS-AE-TITLE-IS-TOO-LONG"}}), encoding="utf-8"
    )
    assert main(["--settings", str(settings_file), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "main.ae_title" in err
    assert "THIS-AE-TITLE-IS-TOO-LONG" in err
    status = main(
        [
            "--settings",
            str(settings_file),
            "convert",
            str(inputs["scan"]),
            "-o",
            str(tmp_path / "o"),
        ]
    )
    assert status == 2


def test_python_dash_m_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sendtopacs_adapters", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "convert" in result.stdout


def test_demo_converts_sample_files(
    tmp_path: Path,
    settings_file: Path,
    capsys: pytest.CaptureFixture[str],
    dciodvfy: Callable[[Path], Any],
) -> None:
    keep = tmp_path / "demo"
    status = main(["--settings", str(settings_file), "--json", "demo", "--keep", str(keep)])
    assert status == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert document["verified"] is True
    assert [item["patient_id"] for item in document["worklist"]] == ["DEMO-0001"]
    assert len(document["convert"]["files"]) == 3
    assert document["send"]["sent"] == 3
    assert [f["status"] for f in document["send"]["files"]] == [0, 0, 0]
    received = sorted((keep / "pacs").iterdir())
    converted = document["convert"]["files"]
    assert {p.stem for p in received} == {c["sop_instance_uid"] for c in converted}
    written = sorted((keep / "dicom").iterdir())
    assert [p.name for p in written] == [
        "sample-photo.dcm",
        "sample-report.dcm",
        "sample-screenshot.dcm",
    ]
    for path in written:
        assert dciodvfy(path).errors == []
        dataset = pydicom.dcmread(path)
        assert dataset.PatientID == "DEMO-0001"
        assert dataset.StudyInstanceUID == document["worklist"][0]["study_instance_uid"]
        assert dataset.RequestAttributesSequence[0].AccessionNumber == "DEMO1"


def test_demo_cleans_up_after_itself(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--settings", str(settings_file), "demo"]) == 0
    out = capsys.readouterr().out
    assert "found the demo patient in the worklist: Demo^Patient (DEMO-0001)" in out
    assert "converted 3 DICOM file(s)" in out
    assert "sent them: 3 of 3 accepted" in out
    assert "every object arrived" in out
    assert "the test PACS was stopped and its files removed" in out


def test_console_script_exits_with_the_status(tmp_path: Path, inputs: dict[str, Path]) -> None:
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "sendtopacs_adapters",
            "--settings",
            str(tmp_path / "s.json"),
            "--json",
            "convert",
            str(inputs["scan"]),
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["converted"] == 1
    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sendtopacs_adapters",
            "--settings",
            str(tmp_path / "s.json"),
            "convert",
            str(inputs["broken"]),
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 1
    assert "broken.png" in failed.stdout
    assert "1 input(s) not converted" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_convert_of_a_hostile_batch_reports_every_input(
    tmp_path: Path, settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One bad input of any kind costs no other input; the JSON names every one."""
    good = _hostile.good_inputs(tmp_path / "good", count=2)
    bad = _hostile.bad_inputs(tmp_path / "bad")
    paths = _hostile.interleave(good, bad)
    common = ["--settings", str(settings_file)]
    options = ["-o", str(tmp_path / "out"), "--patient-id", "12345"]
    status = main([*common, "--json", "convert", *map(str, paths), *options])
    captured = capsys.readouterr()
    assert status == 1
    assert "Traceback" not in captured.err
    document = json.loads(captured.out)
    assert document["ok"] is False
    failures = {Path(entry["source"]): entry for entry in document["failures"]}
    written: dict[Path, list[dict[str, object]]] = {}
    for entry in document["files"]:
        written.setdefault(Path(entry["source"]), []).append(entry)
    assert set(failures) | set(written) == set(paths)  # every input is in the report
    assert [p for p in paths if p in failures] == [Path(f["source"]) for f in document["failures"]]
    for item in bad:
        entry = failures[item.path]
        assert item.path not in written
        assert entry["error"].startswith(f"cannot convert {item.path}: ")
        assert entry["error_type"] == item.error.__name__
    for path in good:
        assert path not in failures
        assert written[path], path.name
    assert document["failed"] == len(bad)
    assert document["converted"] == sum(len(written[p]) for p in good)

    status = main([*common, "convert", *map(str, paths), *options[:1], str(tmp_path / "o2")])
    captured = capsys.readouterr()
    assert status == 1
    errors = [line for line in captured.out.splitlines() if line.startswith("error:")]
    assert len(errors) == len(bad)  # one line per failed file, in input order, on stdout
    for line, item in zip(errors, bad, strict=True):
        assert line.startswith(f"error: cannot convert {item.path}: ")
    assert f"{len(bad)} input(s) not converted" in captured.err
    assert not any(str(item.path) in captured.err for item in bad)
    assert f"from {len(good)} of {len(paths)} input(s)" in captured.out


def test_convert_in_a_process_survives_the_tiff_that_crashed_it(tmp_path: Path) -> None:
    """The found defect: a TIFF whose page count cannot be read ended convert with a traceback."""
    tiff = _hostile.tiff_pages()
    cut = tmp_path / "cut-pages.tif"
    cut.write_bytes(tiff[: len(tiff) * 2 // 3])
    photo = tmp_path / "photo.png"
    _corpus.photo().save(photo)
    done = subprocess.run(
        [sys.executable, "-m", "sendtopacs_adapters", "--settings", str(tmp_path / "s.json"),
         "--json", "convert", str(cut), str(photo), "-o", str(tmp_path / "out")],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    document = json.loads(done.stdout)
    (first,) = document["failures"]
    assert first["source"] == str(cut)
    assert first["error_type"] == "CorruptMediaError"
    assert "TIFF" in first["error"]
    assert [entry["source"] for entry in document["files"]] != []
    assert str(cut) not in [entry["source"] for entry in document["files"]]
