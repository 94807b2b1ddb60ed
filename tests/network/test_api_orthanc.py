"""The HTTP API end to end: uploads through ``/api/v1`` land in Orthanc.

In process (``httpx.ASGITransport`` with a loopback client address) and once through a real
``sendtopacs serve`` (uvicorn) on a free port, stopped with SIGTERM. Orthanc's REST API is the
judge: the instances it stores, and their patient.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

import attrs
import httpx
import pytest

import sendtopacs_core as stp
from sendtopacs_adapters import api
from tests._netpeers import OrthancFactory, OrthancPeer, free_port, write_secondary_capture

PASSWORD: Final = "o9!Tz#4qWm@Lx2"  # noqa: S105 (the test password)
USER: Final = "admin"
AUTH_HEADER: Final = {
    "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode("ascii")
}
LOCAL: Final = ("127.0.0.1", 1234)
PATIENT_ID: Final = "API-4711"
STUDY: Final = {"patient_id": PATIENT_ID, "patient_name": "Muster^Anna", "accession_number": "A9"}
SUCCESS: Final = 0x0000


def make_settings(tmp_path: Path, orthanc: OrthancPeer, **api_changes: Any) -> stp.Settings:
    return stp.Settings(
        main=attrs.evolve(stp.Settings().main, temp_dir=tmp_path / "temp"),
        devices=(
            stp.Device(name="pacs", ae_title=orthanc.ae_title, host="127.0.0.1", port=orthanc.port),
        ),
        api=stp.ApiSettings(
            username=USER, password_hash=stp.hash_password(PASSWORD), **api_changes
        ),
    )


def inputs(tmp_path: Path) -> list[Path]:
    """A JPEG photo, a PDF and a DICOM file (a Secondary Capture of another patient)."""
    photo, _screenshot, pdf = stp.make_sample_files(tmp_path / "samples")
    dicom = tmp_path / "samples" / "existing.dcm"
    write_secondary_capture(dicom, patient_name="Doe^Jane")
    return [photo, pdf, dicom]


def files_of(paths: list[Path]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (path.name, path.read_bytes())) for path in paths]


def post(app: Any, url: str, **kwargs: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=LOCAL)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8043", timeout=60
        ) as http:
            return await http.post(url, headers=AUTH_HEADER, **kwargs)

    return asyncio.run(run())


def check_send(document: dict[str, Any], names: list[str]) -> dict[str, dict[str, Any]]:
    """Every file sent with status 0x0000; the outcomes by source name."""
    assert document["ok"] is True, document
    assert document["sent"] == len(names)
    assert document["failed"] == 0
    outcomes = {entry["source"]: entry for entry in document["files"]}
    assert set(outcomes) == set(names)
    for entry in outcomes.values():
        assert entry["status"] == SUCCESS, entry
        assert entry["status_hex"] == "0x0000", entry
    return outcomes


def check_orthanc(
    orthanc: OrthancPeer, outcomes: dict[str, dict[str, Any]], converted: list[str]
) -> None:
    """Orthanc holds exactly the sent instances; the converted ones with our patient ID."""
    stored = {item["MainDicomTags"]["SOPInstanceUID"]: item for item in orthanc.instances()}
    assert set(stored) == {entry["sop_instance_uid"] for entry in outcomes.values()}
    for name in converted:
        instance = stored[outcomes[name]["sop_instance_uid"]]
        tags = orthanc.instance_tags(instance["ID"])
        assert tags["PatientID"] == PATIENT_ID
        assert tags["PatientName"] == "Muster^Anna"
        assert tags["AccessionNumber"] == "A9"


def test_send_jpeg_pdf_and_dicom_to_orthanc(
    tmp_path: Path, orthanc_factory: OrthancFactory
) -> None:
    orthanc = orthanc_factory()
    settings = make_settings(tmp_path, orthanc)
    paths = inputs(tmp_path)
    app = api.create_app(settings)
    response = post(app, "/api/v1/send/pacs", data=STUDY, files=files_of(paths))
    assert response.status_code == 200, response.text
    outcomes = check_send(response.json(), [path.name for path in paths])
    photo, pdf, dicom = paths
    assert outcomes[photo.name]["converted"] is True
    assert outcomes[pdf.name]["converted"] is True
    assert outcomes[dicom.name]["converted"] is False
    assert orthanc.count() == 3
    check_orthanc(orthanc, outcomes, [photo.name, pdf.name])
    classes = {
        item["MainDicomTags"]["SOPInstanceUID"]: orthanc.instance_tags(item["ID"])["SOPClassUID"]
        for item in orthanc.instances()
    }
    assert classes[outcomes[photo.name]["sop_instance_uid"]] == "1.2.840.10008.5.1.4.1.1.7"
    assert classes[outcomes[pdf.name]["sop_instance_uid"]] == "1.2.840.10008.5.1.4.1.1.104.1"
    temp = settings.main.temp_dir
    assert temp is not None
    assert list(temp.iterdir()) == []  # the request's upload folder is gone


def test_converted_dicom_is_accepted_by_orthanc(
    tmp_path: Path, orthanc_factory: OrthancFactory
) -> None:
    orthanc = orthanc_factory()
    app = api.create_app(make_settings(tmp_path, orthanc))
    photo, pdf, _dicom = inputs(tmp_path)
    response = post(app, "/api/v1/convert", data=STUDY, files=files_of([photo, pdf]))
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["ok"] is True
    assert document["failures"] == []
    converted = tmp_path / "converted"
    converted.mkdir()
    paths = []
    for entry in document["files"]:
        path = converted / entry["path"]
        path.write_bytes(base64.b64decode(entry["data"]))
        paths.append(path)
    assert orthanc.count() == 0
    response = post(app, "/api/v1/send/pacs", files=files_of(paths))  # no study: DICOM as is
    assert response.status_code == 200, response.text
    outcomes = check_send(response.json(), [path.name for path in paths])
    assert all(entry["converted"] is False for entry in outcomes.values())
    assert {entry["sop_instance_uid"] for entry in outcomes.values()} == {
        entry["sop_instance_uid"] for entry in document["files"]
    }
    check_orthanc(orthanc, outcomes, [path.name for path in paths])
    assert {
        orthanc.instance_tags(item["ID"])["StudyInstanceUID"] for item in orthanc.instances()
    } == {document["study_instance_uid"]}


# -- a real server ---------------------------------------------------------------------------


def _wait_for_health(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sendtopacs serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            answer = httpx.get(f"{base}/api/v1/health", auth=(USER, PASSWORD), timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert answer.status_code == 200, answer.text
        return
    pytest.fail(f"sendtopacs serve did not answer within 30 s:\n{log.read_text()}")


def test_through_a_real_server(tmp_path: Path, orthanc_factory: OrthancFactory) -> None:
    orthanc = orthanc_factory()
    port = free_port()
    settings_path = tmp_path / "settings.json"
    make_settings(tmp_path, orthanc, port=port).dump(settings_path)
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "sendtopacs_adapters", "--settings", str(settings_path)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*argv, "serve"], stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(process, base, log)
        paths = inputs(tmp_path)
        with httpx.Client(base_url=base, auth=(USER, PASSWORD), timeout=60) as http:
            assert http.post("/api/v1/echo/pacs").json()["ok"] is True
            response = http.post("/api/v1/send/pacs", data=STUDY, files=files_of(paths))
            assert response.status_code == 200, response.text
            outcomes = check_send(response.json(), [path.name for path in paths])
            photo, pdf, _dicom = paths
            check_orthanc(orthanc, outcomes, [photo.name, pdf.name])
            assert orthanc.count() == 3
            refused = httpx.get(f"{base}/api/v1/health", auth=(USER, "wrong"), timeout=10)
            assert refused.status_code == 401
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert code == 0, log.read_text()
