"""``non_dicom.additional_info_values`` is enforced for typed values (issue 12, item 6).

A value not in the list (when the list is not empty) is refused with an
:class:`InvalidValueError` naming the value and the allowed ones, before any file is
converted: in the core (``Converter``, ``Sender``), through the CLI and through the API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import attrs
import pydicom
import pydicom.config
import pytest

import sendtopacs_core as stp
from sendtopacs_adapters import api
from sendtopacs_adapters.cli import main
from sendtopacs_core.testing import StorageSCP
from tests._netpeers import write_secondary_capture
from tests.adapters.test_api import AUTH, error_of, files_of, make_settings, request

OFFERED: Final = ("left", "right")
STUDY: Final[dict[str, str]] = {"patient_name": "Doe^Jane", "patient_id": "P1"}


def _non_dicom() -> stp.NonDicomSettings:
    return stp.NonDicomSettings(additional_info_tag="0020,4000", additional_info_values=OFFERED)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    photo, _screenshot, _pdf = stp.make_sample_files(tmp_path / "samples")
    return photo


def test_check_accepts_offered_values_and_free_text() -> None:
    _non_dicom().check_additional_info("left")
    _non_dicom().check_additional_info(None)
    stp.NonDicomSettings().check_additional_info("anything")  # no list: free text
    with pytest.raises(stp.InvalidValueError, match=r"'LEFT'.*'left', 'right'"):
        _non_dicom().check_additional_info("LEFT")


def test_converter_refuses_before_converting(photo: Path, tmp_path: Path) -> None:
    settings = stp.Settings(non_dicom=_non_dicom())
    out = tmp_path / "out"
    study = stp.Study(patient_name="Doe^Jane", patient_id="P1", additional_info="middle")
    with pytest.raises(
        stp.InvalidValueError,
        match=r"invalid additional info 'middle': .*additional_info_values: 'left', 'right'",
    ):
        stp.Converter(settings).convert([photo], study, out_dir=out)
    assert not out.exists() or list(out.iterdir()) == []
    report = stp.Converter(settings).convert(
        [photo], attrs.evolve(study, additional_info="right"), out_dir=out
    )
    assert report.ok
    assert pydicom.dcmread(report.files[0].path).ImageComments == "right"


def test_sender_refuses_and_sends_nothing(
    photo: Path, tmp_path: Path, storage_scp: StorageSCP
) -> None:
    device = stp.Device(
        name="pacs", ae_title=storage_scp.ae_title, host="127.0.0.1", port=storage_scp.port
    )
    settings = stp.Settings(
        main=attrs.evolve(stp.Settings().main, temp_dir=tmp_path), non_dicom=_non_dicom()
    )
    study = stp.Study(patient_name="Doe^Jane", patient_id="P1", additional_info="middle")
    report = stp.Sender(device, settings=settings).send([photo], study=study)
    assert not report.ok
    [outcome] = report.outcomes
    assert outcome.state is stp.SendState.FAILED
    assert "'middle'" in outcome.message and "'left', 'right'" in outcome.message
    assert storage_scp.c_store_count == 0


def test_cli_convert_and_send_refuse(
    photo: Path, tmp_path: Path, storage_scp: StorageSCP, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "non_dicom": {
                    "additional_info_tag": "0020,4000",
                    "additional_info_values": OFFERED,
                },
                "devices": [
                    {
                        "name": "pacs",
                        "ae_title": storage_scp.ae_title,
                        "host": "127.0.0.1",
                        "port": storage_scp.port,
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    typed = ["--patient-name", "Doe^Jane", "--patient-id", "P1", "--additional-info", "middle"]
    out = tmp_path / "out"
    status = main(["--settings", str(settings), "convert", str(photo), "-o", str(out), *typed])
    captured = capsys.readouterr()
    assert status == 1
    assert "invalid additional info 'middle'" in captured.err
    assert "'left', 'right'" in captured.err
    assert not out.exists() or list(out.iterdir()) == []
    status = main(["--settings", str(settings), "--json", "send", str(photo), *typed])
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["files"][0]["ok"] is False
    assert "'middle'" in document["files"][0]["message"]
    assert storage_scp.c_store_count == 0


def test_api_convert_refuses(photo: Path, tmp_path: Path) -> None:
    settings = attrs.evolve(make_settings(tmp_path), non_dicom=_non_dicom())
    app = api.create_app(settings)
    data = {**STUDY, "additional_info": "middle"}
    response = request(
        app, "POST", "/api/v1/convert", headers=AUTH, data=data, files=files_of([photo])
    )
    assert response.status_code == 400
    # The API leaves the value out (it may be patient data) and names the allowed ones.
    assert "additional info" in error_of(response)
    assert "'left', 'right'" in error_of(response)
    good = request(
        app,
        "POST",
        "/api/v1/convert",
        headers=AUTH,
        data={**STUDY, "additional_info": "left"},
        files=files_of([photo]),
    )
    assert good.status_code == 200, good.text


def test_conversion_tests_write_under_raise(tmp_path: Path) -> None:
    """The conftest puts this module's writes (and the test helpers') under RAISE."""
    assert pydicom.config.settings.writing_validation_mode == pydicom.config.RAISE
    with pytest.raises(ValueError, match="exceeds the maximum length of 64"):
        pydicom.Dataset().PatientID = "P" * 65
    with pytest.raises(ValueError, match="PN"):
        write_secondary_capture(tmp_path / "bad.dcm", patient_name="A" * 70)
