"""``sendtopacs worklist``, ``find``, ``convert/send --worklist NAME [--pick N]`` and matching.

Peers: the in-process worklist SCP (also answering Q/R) and storage SCP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom
import pytest

from sendtopacs_adapters.cli import main
from sendtopacs_core.testing import StorageSCP, WorklistSCP
from sendtopacs_core.testing.plugin import WorklistSCPFactory
from tests import _corpus
from tests._netpeers import free_port
from tests._peers import Dciodvfy
from tests.network.test_querier import mwl_item, qr_instance

ITEMS = (
    mwl_item("PID1", "Müller^Jürgen", accession="ACC1", character_set="ISO_IR 100"),
    mwl_item("PID2", "Roe^Jane", accession="ACC2", date="20240116"),
    mwl_item("PID2", "Roe^Jane", accession="ACC3", date="20240117"),
)


def connection(scp: WorklistSCP) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(scp.port), "--called-aet", scp.ae_title]


def write_settings(path: Path, scp: WorklistSCP | None = None, **sections: Any) -> Path:
    document: dict[str, Any] = dict(sections)
    if scp is not None:
        document["worklist_devices"] = [
            {
                "name": "mwl",
                "ae_title": scp.ae_title,
                "host": "127.0.0.1",
                "port": scp.port,
                "use_today": False,
                "default": True,
            }
        ]
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "photo.jpg"
    path.parent.mkdir()
    _corpus.photo().save(path, "JPEG", quality=90)
    return path


def test_worklist_table_and_json(
    tmp_path: Path, worklist_scp_factory: WorklistSCPFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    scp = worklist_scp_factory(list(ITEMS))
    settings = ["--settings", str(write_settings(tmp_path / "s.json"))]
    assert main([*settings, "worklist", *connection(scp), "--all-dates"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["#", "Patient", "ID"]
    assert any("Müller^Jürgen" in line and "ACC1" in line for line in lines)
    assert lines[-1].startswith("3 item(s)")

    assert main([*settings, "--json", "worklist", *connection(scp), "--patient-id", "PID2",
                 "--date", "20240116-"]) == 0  # fmt: skip
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert sorted(i["accession_number"] for i in document["items"]) == ["ACC2", "ACC3"]
    assert document["items"][0]["requested_procedure_codes"][0]["value"] == "CTHEAD"


def test_worklist_unreachable_exit_3_and_bad_date_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = ["--settings", str(write_settings(tmp_path / "s.json"))]
    unreachable = ["--host", "127.0.0.1", "--port", str(free_port()), "--called-aet", "MWL"]
    assert main([*settings, "worklist", *unreachable, "--timeout", "2"]) == 3
    assert "command line" in capsys.readouterr().err
    assert main([*settings, "--json", "worklist", *unreachable, "--timeout", "2"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False and document["error"]
    assert main([*settings, "worklist", *unreachable, "--date", "20241399"]) == 2
    assert "date" in capsys.readouterr().err


def test_find_patients_and_studies(
    tmp_path: Path, worklist_scp_factory: WorklistSCPFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    instances = [
        qr_instance("Q1", "Alpha^Anna", "1.2.826.0.1.3680043.2.1", "20230101"),
        qr_instance("Q2", "Beta^Bert", "1.2.826.0.1.3680043.2.2", "20240101"),
    ]
    scp = worklist_scp_factory([], qr_datasets=instances)
    settings = ["--settings", str(write_settings(tmp_path / "s.json"))]
    assert main([*settings, "find", *connection(scp), "--study-date", "20231201-"]) == 0
    out = capsys.readouterr().out
    assert "Beta^Bert" in out and "Alpha^Anna" not in out
    assert out.splitlines()[-1].startswith("1 result(s)")
    assert main([*settings, "--json", "find", *connection(scp), "--model", "patient",
                 "--level", "patient"]) == 0  # fmt: skip
    document = json.loads(capsys.readouterr().out)
    assert {r["patient_id"]: r["level"] for r in document["results"]} == {
        "Q1": "patient",
        "Q2": "patient",
    }
    assert str(scp.queries[-1].QueryRetrieveLevel) == "PATIENT"


def test_convert_with_worklist_pick(
    tmp_path: Path,
    photo: Path,
    worklist_scp_factory: WorklistSCPFactory,
    dciodvfy: Dciodvfy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scp = worklist_scp_factory(list(ITEMS))
    settings = ["--settings", str(write_settings(tmp_path / "s.json", scp))]
    out = tmp_path / "out"
    convert = [*settings, "convert", str(photo), "-o", str(out), "--worklist", "mwl"]
    assert main([*convert, "--patient-id", "PID2"]) == 2  # two items, no --pick
    captured = capsys.readouterr()
    # The candidates are patient data: listed on stdout, the error on stderr names none.
    assert "2 items match" in captured.err
    assert "ACC2" in captured.out and "ACC3" in captured.out
    assert "ACC2" not in captured.err and "PID2" not in captured.err
    assert not out.exists() or not list(out.iterdir())
    assert main([*convert, "--patient-id", "PID2", "--pick", "3"]) == 2
    assert "pick 3: the worklist mwl gave 2 item(s)" in capsys.readouterr().err

    assert main([*convert, "--patient-id", "PID2", "--pick", "2"]) == 0
    [written] = out.glob("*.dcm")
    ds = pydicom.dcmread(written)
    chosen = ITEMS[2]
    assert ds.StudyInstanceUID == chosen.StudyInstanceUID
    assert ds.AccessionNumber == "ACC3"
    assert ds.PatientID == "PID2"
    [request] = ds.RequestAttributesSequence
    assert request.RequestedProcedureID == "RP-PID2"
    assert request.ScheduledProcedureStepID == "SPS-PID2"
    assert request.RequestedProcedureCodeSequence[0].CodeValue == "CTHEAD"
    result = dciodvfy(written)
    assert result.errors == [], result.errors


def test_convert_with_the_only_item_decodes_the_name(
    tmp_path: Path, photo: Path, worklist_scp_factory: WorklistSCPFactory
) -> None:
    scp = worklist_scp_factory(list(ITEMS))
    settings = ["--settings", str(write_settings(tmp_path / "s.json", scp))]
    out = tmp_path / "out"
    args = [*settings, "convert", str(photo), "-o", str(out), "--worklist", "default"]
    assert main([*args, "--patient-name", "Mül*"]) == 0
    [written] = out.glob("*.dcm")
    ds = pydicom.dcmread(written)
    assert str(ds.PatientName) == "Müller^Jürgen"
    assert ds.AccessionNumber == "ACC1"
    assert main([*args, "--patient-id", "NOBODY"]) == 2


def test_send_matches_file_names(
    tmp_path: Path,
    worklist_scp_factory: WorklistSCPFactory,
    storage_scp: StorageSCP,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scp = worklist_scp_factory(list(ITEMS))
    path = write_settings(
        tmp_path / "s.json",
        scp,
        main={"temp_dir": str(tmp_path)},
        non_dicom={"parse_file_name": True},
        devices=[
            {
                "name": "pacs",
                "ae_title": storage_scp.ae_title,
                "host": "127.0.0.1",
                "port": storage_scp.port,
                "default": True,
            }
        ],
    )
    folder = tmp_path / "in"
    folder.mkdir()
    _corpus.photo().save(folder / "PID1_photo.jpg", "JPEG")
    assert main(["--settings", str(path), "--json", "send", str(folder / "PID1_photo.jpg")]) == 0
    capsys.readouterr()
    [received] = storage_scp.received
    assert received.path is not None
    ds = pydicom.dcmread(received.path)
    assert ds.StudyInstanceUID == ITEMS[0].StudyInstanceUID
    assert ds.AccessionNumber == "ACC1"
    assert str(ds.PatientName) == "Müller^Jürgen"

    _corpus.photo(seed=3).save(folder / "PID2_photo.jpg", "JPEG")
    assert main(["--settings", str(path), "send", str(folder / "PID2_photo.jpg")]) == 1
    captured = capsys.readouterr()
    # The candidates are patient data: on stdout (the report), never on stderr (a log).
    assert "ACC2" in captured.out and "ACC3" in captured.out
    assert "ACC2" not in captured.err and "PID2" not in captured.err
    assert len(storage_scp.received) == 1


def test_worklist_only_refuses_typed_data(
    tmp_path: Path,
    photo: Path,
    worklist_scp_factory: WorklistSCPFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scp = worklist_scp_factory(list(ITEMS))
    settings = write_settings(tmp_path / "s.json", scp, non_dicom={"worklist_only": True})
    out = tmp_path / "out"
    base = ["--settings", str(settings), "convert", str(photo), "-o", str(out)]
    assert main([*base, "--patient-id", "T1", "--patient-name", "Typed^Tom"]) == 2
    assert "worklist_only" in capsys.readouterr().err
    assert not out.exists() or not list(out.glob("*.dcm"))
    assert main([*base, "--patient-id", "PID1", "--worklist", "mwl"]) == 0
    [written] = out.glob("*.dcm")
    assert pydicom.dcmread(written).AccessionNumber == "ACC1"
