"""``sendtopacs echo`` and ``sendtopacs send`` against the in-process test PACS."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from sendtopacs_adapters.cli import main
from sendtopacs_core.testing import Rejection, StorageSCP
from sendtopacs_core.testing.plugin import StorageSCPFactory
from tests import _corpus
from tests._netpeers import free_port, write_secondary_capture


def _connection(scp: StorageSCP) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(scp.port), "--called-aet", scp.ae_title]


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "settings.json"


@pytest.fixture
def dicom_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    (folder / "series").mkdir(parents=True)
    write_secondary_capture(folder / "a.dcm")
    write_secondary_capture(folder / "series" / "b")  # no extension: recognised by content
    return folder


def test_echo_answers(
    storage_scp: StorageSCP, settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--settings", str(settings_file), "--json", "echo", *_connection(storage_scp)])
    assert status == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert document["seconds"] > 0


def test_echo_a_device_of_the_settings(
    storage_scp: StorageSCP, settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_file.write_text(
        json.dumps(
            {
                "devices": [
                    {"name": "other", "ae_title": "X", "host": "127.0.0.1", "port": free_port()},
                    {
                        "name": "pacs",
                        "ae_title": storage_scp.ae_title,
                        "host": "127.0.0.1",
                        "port": storage_scp.port,
                        "default": True,
                    },
                ]
            }
        ),
        encoding="utf-8",
    )
    assert main(["--settings", str(settings_file), "echo"]) == 0
    assert "answered the C-ECHO" in capsys.readouterr().out
    assert main(["--settings", str(settings_file), "echo", "other"]) == 3
    assert "connection refused" in capsys.readouterr().err
    assert main(["--settings", str(settings_file), "echo", "nope"]) == 2
    assert "no device named 'nope'" in capsys.readouterr().err


def test_echo_rejected_says_why(
    storage_scp_factory: StorageSCPFactory,
    settings_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scp = storage_scp_factory(reject=Rejection(result=1, source=1, reason=3))
    assert main(["--settings", str(settings_file), "echo", *_connection(scp)]) == 3
    err = capsys.readouterr().err
    assert "rejected" in err
    assert "calling AE title not recognised" in err


def test_send_reports_every_file_and_exit_status(
    storage_scp: StorageSCP,
    settings_file: Path,
    dicom_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    photo = tmp_path / "photo.jpg"
    _corpus.photo().save(photo, "JPEG", quality=90)
    status = main(
        [
            "--settings",
            str(settings_file),
            "--json",
            "send",
            str(dicom_dir),
            str(photo),
            *_connection(storage_scp),
            "--patient-id",
            "P1",
            "--patient-name",
            "Test^Patient",
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert status == 0, document
    assert document["sent"] == 3
    assert document["failed"] == 0
    states = {Path(f["source"]).name: f for f in document["files"]}
    assert set(states) == {"a.dcm", "b", "photo.jpg"}
    assert states["photo.jpg"]["converted"] is True
    assert all(f["status_hex"] == "0x0000" for f in document["files"])
    received = {item.sop_instance_uid for item in storage_scp.received}
    assert received == {f["sop_instance_uid"] for f in document["files"]}
    converted = next(
        i
        for i in storage_scp.received
        if i.sop_instance_uid == states["photo.jpg"]["sop_instance_uid"]
    )
    assert converted.path is not None
    assert pydicom.dcmread(converted.path).PatientID == "P1"


def test_send_failure_statuses_exit_1(
    storage_scp_factory: StorageSCPFactory,
    settings_file: Path,
    dicom_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scp = storage_scp_factory(statuses=[0xA900, 0x0000], error_comment="bad SOP class")
    status = main(["--settings", str(settings_file), "send", str(dicom_dir), *_connection(scp)])
    captured = capsys.readouterr()
    assert status == 1
    assert "0xA900 Data Set Does Not Match SOP Class: bad SOP class" in captured.out
    assert "1 file(s) not sent (failed, status 0xA900" in captured.err
    assert "bad SOP class" not in captured.err  # the PACS's comment may name the patient
    assert "1 of 2 file(s) sent" in captured.out


@pytest.mark.parametrize("status", [0x0001, 0x0107, 0x0116, 0xB123], ids=lambda s: f"{s:04X}")
def test_send_warning_statuses_are_sent_exit_0(
    storage_scp_factory: StorageSCPFactory,
    settings_file: Path,
    dicom_dir: Path,
    capsys: pytest.CaptureFixture[str],
    status: int,
) -> None:
    """PS3.7 Annex C Warning: the PACS stored the object; the JSON report says so."""
    scp = storage_scp_factory(statuses=[status, status])
    code = main(
        ["--settings", str(settings_file), "--json", "send", str(dicom_dir), *_connection(scp)]
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["ok"] is True
    assert [f["state"] for f in document["files"]] == ["sent-with-warning"] * 2
    assert len(scp.received) == 2


def test_send_unreachable_exit_3(
    settings_file: Path, dicom_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = str(free_port())
    status = main(
        [
            "--settings",
            str(settings_file),
            "send",
            str(dicom_dir),
            "--host",
            "127.0.0.1",
            "--port",
            port,
        ]
    )
    captured = capsys.readouterr()
    assert status == 3
    assert "connection refused" in captured.out
    assert "2 file(s) not sent" in captured.err
    assert "0 of 2 file(s) sent" in captured.out


def test_non_dicom_without_study_options_fails_clearly(
    storage_scp: StorageSCP, settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "photo.jpg"
    _corpus.photo().save(photo, "JPEG", quality=90)
    status = main(["--settings", str(settings_file), "send", str(photo), *_connection(storage_scp)])
    assert status == 1
    assert "needs patient and study data" in capsys.readouterr().out
    assert storage_scp.received == []


@pytest.mark.parametrize(
    "args",
    [
        ["--host", "127.0.0.1"],
        ["--port", "104"],
        ["pacs", "--host", "127.0.0.1", "--port", "104"],
        ["--host", "127.0.0.1", "--port", "70000"],
    ],
)
def test_connection_usage_errors(
    settings_file: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--settings", str(settings_file), "echo", *args]) == 2
    assert capsys.readouterr().err.startswith("sendtopacs: ")


def test_send_without_any_device_is_a_usage_error(
    settings_file: Path, dicom_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--settings", str(settings_file), "send", str(dicom_dir)]) == 2
    assert "no device is configured" in capsys.readouterr().err
