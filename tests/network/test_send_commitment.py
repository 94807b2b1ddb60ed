"""Storage commitment through the core ``Sender``, ``sendtopacs send`` and the HTTP API.

With a device's ``storage_commitment`` on, the Sender names the files the PACS stored in one
Storage Commitment request after the C-STOREs and waits for the report; each outcome says
committed, failed (with the Failure Reason) or no report. ``send`` exits 1 unless every file
is committed. Peers: the in-process ``StorageSCP`` acting as a storage commitment SCP (report
on the request's association) and Orthanc (report on a new association to
``main.listen_port``), with a Lua filter that drops an instance after answering Success.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import attrs
import httpx
import pydicom
import pytest

import sendtopacs_core as stp
from sendtopacs_adapters import api
from sendtopacs_adapters._api_models import JobModel, SendReportModel
from sendtopacs_adapters.cli import main
from sendtopacs_core.testing.plugin import StorageSCPFactory
from tests._netpeers import OrthancFactory, free_port
from tests.network.test_commitment import OUR_AE, REJECT_LUA, _files

FAST: Final = stp.Timeouts(connect_s=3, acse_s=3, dimse_s=5, network_s=10)
PROCESSING_FAILURE: Final = 0x0110
NO_SUCH_OBJECT_INSTANCE: Final = 0x0112
PASSWORD: Final = "c0mm!T#9qWz@Lx"  # noqa: S105 (the test password)
AUTH: Final = {"Authorization": "Basic " + base64.b64encode(f"api:{PASSWORD}".encode()).decode()}


def _uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _device(port: int, *, ae_title: str = "TESTPACS", timeout_s: float = 10) -> stp.Device:
    return stp.Device(
        name="pacs",
        ae_title=ae_title,
        host="127.0.0.1",
        port=port,
        storage_commitment=True,
        commitment_timeout_s=timeout_s,
        timeouts=FAST,
    )


def _settings(tmp_path: Path, device: stp.Device, *, listen: bool = True) -> stp.Settings:
    (tmp_path / "temp").mkdir(exist_ok=True)
    return stp.Settings(
        main=stp.MainSettings(
            ae_title=OUR_AE,
            listen_port=free_port() if listen else None,
            temp_dir=tmp_path / "temp",
        ),
        devices=(device,),
        api=stp.ApiSettings(username="api", password_hash=stp.hash_password(PASSWORD)),
    )


def _failing(uids: set[str], reason: int) -> Callable[[str], int | None]:
    return lambda uid: reason if uid in uids else None


# -- Sender, in-process SCP --------------------------------------------------------------------


def test_each_outcome_says_committed_or_failed_with_the_reason(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    paths = _files(tmp_path / "in", 3)
    lost = _uid(paths[1])
    scp = storage_scp_factory(
        storage_commitment=True, commitment_failure_for=_failing({lost}, PROCESSING_FAILURE)
    )
    device = _device(scp.port)
    seen: list[stp.FileOutcome] = []

    report = stp.Sender(device, settings=_settings(tmp_path, device)).send(
        paths, progress=seen.append
    )

    assert [o.commitment for o in seen] == [stp.CommitmentState.PENDING] * 3
    assert [o.state for o in report] == [stp.SendState.SENT] * 3  # C-STORE success for all
    assert [o.commitment for o in report] == [
        stp.CommitmentState.COMMITTED,
        stp.CommitmentState.FAILED,
        stp.CommitmentState.COMMITTED,
    ]
    failed = report.outcomes[1]
    assert failed.commitment_failure_reason == PROCESSING_FAILURE
    assert failed.commitment_message == (
        "C-STORE answered success, but storage commitment failed: 0x0110 Processing failure"
    )
    assert not failed.delivered
    assert report.outcomes[0].delivered
    assert report.ok is False
    assert report.uncommitted == [failed]
    assert len(report.sent) == 3
    assert scp.commitment_requests == [frozenset(_uid(path) for path in paths)]


def test_all_committed_is_a_delivery(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    paths = _files(tmp_path / "in", 2)
    scp = storage_scp_factory(storage_commitment=True)
    device = _device(scp.port)

    report = stp.Sender(device, settings=_settings(tmp_path, device)).send(paths)

    assert report.ok is True
    assert [o.commitment for o in report] == [stp.CommitmentState.COMMITTED] * 2
    assert all(o.commitment_failure_reason is None for o in report)
    assert report.uncommitted == []


def test_no_report_in_time(storage_scp_factory: StorageSCPFactory, tmp_path: Path) -> None:
    paths = _files(tmp_path / "in", 2)
    scp = storage_scp_factory(storage_commitment=True, commitment_silent=True)
    device = _device(scp.port, timeout_s=1)

    started = time.monotonic()
    report = stp.Sender(device, settings=_settings(tmp_path, device)).send(paths)

    assert 1 <= time.monotonic() - started < 6
    assert [o.commitment for o in report] == [stp.CommitmentState.NO_REPORT] * 2
    assert {o.commitment_message for o in report} == {"no storage commitment report within 1 s"}
    assert report.ok is False
    assert len(scp.commitment_requests) == 1
    assert len(scp.received) == 2


def test_without_a_listen_port_nothing_is_asked_and_the_outcome_says_why(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    paths = _files(tmp_path / "in", 1)
    scp = storage_scp_factory(storage_commitment=True)
    device = _device(scp.port)

    report = stp.Sender(device, settings=_settings(tmp_path, device, listen=False)).send(paths)

    (outcome,) = report
    assert outcome.state is stp.SendState.SENT
    assert outcome.commitment is stp.CommitmentState.NO_REPORT
    assert outcome.commitment_message is not None
    assert "needs main.listen_port" in outcome.commitment_message
    assert report.ok is False
    assert scp.commitment_requests == []


def test_a_device_without_commitment_asks_nothing(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    paths = _files(tmp_path / "in", 2)
    scp = storage_scp_factory(storage_commitment=True)
    device = attrs.evolve(_device(scp.port), storage_commitment=False)

    report = stp.Sender(device, settings=_settings(tmp_path, device)).send(paths)

    assert report.ok is True
    assert [o.commitment for o in report] == [None, None]
    assert scp.commitment_requests == []


def test_only_stored_files_are_asked_about(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    paths = _files(tmp_path / "in", 2)
    scp = storage_scp_factory(storage_commitment=True, statuses=[0xA900])  # the first fails
    device = _device(scp.port)

    report = stp.Sender(device, settings=_settings(tmp_path, device)).send(paths)

    refused, stored = report
    assert refused.state is stp.SendState.FAILED
    assert refused.commitment is None
    assert stored.commitment is stp.CommitmentState.COMMITTED
    assert scp.commitment_requests == [frozenset({_uid(paths[1])})]
    assert report.failed == [refused]
    assert report.uncommitted == []


def test_sends_sharing_the_listen_port_take_turns(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    """Two sends of one process (API jobs, monitors) with one main.listen_port: the second
    waits for the first's report instead of failing to listen on the port."""
    silent = storage_scp_factory(storage_commitment=True, commitment_silent=True)
    reporting = storage_scp_factory(storage_commitment=True)
    slow = _device(silent.port, timeout_s=1.5)
    settings = _settings(tmp_path, slow)
    first: list[stp.SendReport] = []
    thread = threading.Thread(
        target=lambda: first.append(
            stp.Sender(slow, settings=settings).send(_files(tmp_path / "a", 1))
        )
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not silent.commitment_requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert silent.commitment_requests, "the first send did not ask for commitment"
        second = stp.Sender(_device(reporting.port), settings=settings).send(
            _files(tmp_path / "b", 1)
        )
    finally:
        thread.join(15)
    assert [o.commitment for o in second] == [stp.CommitmentState.COMMITTED]
    assert [o.commitment for o in first[0]] == [stp.CommitmentState.NO_REPORT]


def test_commit_asks_without_sending(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    """Sender.commit (what the watcher uses after a restart): never-stored instances fail."""
    paths = _files(tmp_path / "in", 1)
    scp = storage_scp_factory(storage_commitment=True)
    device = _device(scp.port)
    sender = stp.Sender(device, settings=_settings(tmp_path, device))
    assert sender.send(paths).ok
    stored = (str(pydicom.uid.SecondaryCaptureImageStorage), _uid(paths[0]))
    never = (str(pydicom.uid.SecondaryCaptureImageStorage), pydicom.uid.generate_uid())

    result = sender.commit([stored, never, ("1.2.840.10008.5.1.4.1.1.7", "1.2.3.abc")])

    assert result.committed == {stored[1]}
    assert dict(result.failed) == {never[1]: NO_SUCH_OBJECT_INSTANCE}
    assert result.missing == {"1.2.3.abc"}  # an invalid UID is not asked about
    assert scp.commitment_requests[-1] == {stored[1], never[1]}


def test_the_report_as_json(storage_scp_factory: StorageSCPFactory, tmp_path: Path) -> None:
    paths = _files(tmp_path / "in", 2)
    scp = storage_scp_factory(
        storage_commitment=True,
        commitment_failure_for=_failing({_uid(paths[0])}, NO_SUCH_OBJECT_INSTANCE),
    )
    device = _device(scp.port)

    document = json.loads(
        json.dumps(stp.Sender(device, settings=_settings(tmp_path, device)).send(paths).to_dict())
    )

    assert (document["ok"], document["sent"], document["uncommitted"]) == (False, 2, 1)
    lost, kept = document["files"]
    assert (lost["ok"], lost["sent"], lost["commitment"]) == (False, True, "failed")
    assert lost["commitment_failure_reason"] == NO_SUCH_OBJECT_INSTANCE
    assert lost["commitment_failure_reason_hex"] == "0x0112"
    assert "No such object instance" in lost["commitment_message"]
    assert (kept["ok"], kept["commitment"], kept["commitment_failure_reason"]) == (
        True,
        "committed",
        None,
    )
    assert kept["status"] == 0
    assert kept["status_hex"] == "0x0000"
    assert kept["source"] == str(paths[1])


# -- Sender, Orthanc -------------------------------------------------------------------------


def test_orthanc_report_through_the_sender(orthanc_factory: OrthancFactory, tmp_path: Path) -> None:
    """R9 through ``Sender.send``: Orthanc's Lua filter drops two of five after Success."""
    lua = tmp_path / "reject.lua"
    lua.write_text(REJECT_LUA, encoding="utf-8")
    settings = _settings(tmp_path, _device(free_port()))
    listen_port = settings.main.listen_port
    assert listen_port is not None
    orthanc = orthanc_factory(
        ae_title="PACS",
        modalities={"us": (OUR_AE, "127.0.0.1", listen_port)},
        extra_config={"LuaScripts": [str(lua)]},
    )
    device = _device(orthanc.port, ae_title="PACS", timeout_s=20)
    good = _files(tmp_path / "good", 3)
    dropped = _files(tmp_path / "dropped", 2, patient_id="REJECTME")

    report = stp.Sender(device, settings=attrs.evolve(settings, devices=(device,))).send(
        good + dropped
    )

    assert [o.state for o in report] == [stp.SendState.SENT] * 5
    assert [o.commitment for o in report] == [stp.CommitmentState.COMMITTED] * 3 + [
        stp.CommitmentState.FAILED
    ] * 2
    assert {o.commitment_failure_reason for o in report.uncommitted} == {NO_SUCH_OBJECT_INSTANCE}
    assert orthanc.count() == 3
    assert report.ok is False
    # The report came on Orthanc's own association to main.listen_port.
    assert f'to AET "{OUR_AE}" on host 127.0.0.1:{listen_port}' in orthanc.log


# -- sendtopacs send ---------------------------------------------------------------------------


def _settings_file(tmp_path: Path, settings: stp.Settings) -> Path:
    path = tmp_path / "settings.json"
    settings.dump(path)
    return path


def test_cli_send_exits_1_when_a_commitment_failed(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _files(tmp_path / "in", 2)
    scp = storage_scp_factory(
        storage_commitment=True,
        commitment_failure_for=_failing({_uid(paths[1])}, NO_SUCH_OBJECT_INSTANCE),
    )
    settings = _settings_file(tmp_path, _settings(tmp_path, _device(scp.port)))

    assert main(["--settings", str(settings), "send", *map(str, paths), "--to", "pacs"]) == 1

    captured = capsys.readouterr()
    assert f"{paths[0]}: 0x0000 Success; committed" in captured.out
    assert (
        f"{paths[1]}: 0x0000 Success; C-STORE answered success, but storage commitment "
        "failed: 0x0112 No such object instance"
    ) in captured.out
    assert "1 file(s) sent but not committed (failed; listed on stdout)" in captured.err
    assert str(paths[1]) not in captured.err
    assert "2 of 2 file(s) sent to pacs" in captured.out
    assert "1 of them not committed" in captured.out

    assert main(["--settings", str(settings), "--json", "send", str(paths[0])]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert [f["commitment"] for f in document["files"]] == ["committed"]


def test_cli_send_exits_1_without_a_report(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _files(tmp_path / "in", 1)
    scp = storage_scp_factory(storage_commitment=True, commitment_silent=True)
    settings = _settings_file(tmp_path, _settings(tmp_path, _device(scp.port, timeout_s=1)))

    assert main(["--settings", str(settings), "--json", "send", str(paths[0])]) == 1

    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False
    (entry,) = document["files"]
    assert (entry["sent"], entry["commitment"]) == (True, "no-report")
    assert entry["commitment_message"] == "no storage commitment report within 1 s"


def test_cli_send_against_orthanc_exit_status(
    orthanc_factory: OrthancFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lua = tmp_path / "reject.lua"
    lua.write_text(REJECT_LUA, encoding="utf-8")
    settings = _settings(tmp_path, _device(free_port()))
    assert settings.main.listen_port is not None
    orthanc = orthanc_factory(
        ae_title="PACS",
        modalities={"us": (OUR_AE, "127.0.0.1", settings.main.listen_port)},
        extra_config={"LuaScripts": [str(lua)]},
    )
    device = _device(orthanc.port, ae_title="PACS", timeout_s=20)
    path = _settings_file(tmp_path, attrs.evolve(settings, devices=(device,)))
    good = _files(tmp_path / "good", 1)
    dropped = _files(tmp_path / "dropped", 1, patient_id="REJECTME")

    assert main(["--settings", str(path), "--json", "send", str(good[0])]) == 0
    assert json.loads(capsys.readouterr().out)["files"][0]["commitment"] == "committed"
    assert main(["--settings", str(path), "--json", "send", str(dropped[0])]) == 1
    (entry,) = json.loads(capsys.readouterr().out)["files"]
    assert (entry["status_hex"], entry["commitment"]) == ("0x0000", "failed")
    assert entry["commitment_failure_reason_hex"] == "0x0112"


# -- the HTTP API --------------------------------------------------------------------------------


def _call(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1234))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8043", timeout=60
        ) as http:
            return await http.request(method, url, headers=AUTH, **kwargs)

    return asyncio.run(run())


def _uploads(paths: list[Path]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (path.name, path.read_bytes())) for path in paths]


def _job_result(app: Any, paths: list[Path]) -> dict[str, Any]:
    started = _call(app, "POST", "/api/v1/jobs/send/pacs", files=_uploads(paths))
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    for _ in range(400):
        status: dict[str, Any] = _call(app, "GET", f"/api/v1/jobs/{job_id}").json()
        if status["state"] in {"done", "failed"}:
            return status
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def test_api_send_and_jobs_report_the_commitment(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    paths = _files(tmp_path / "in", 2)
    scp = storage_scp_factory(
        storage_commitment=True,
        commitment_failure_for=_failing({_uid(paths[1])}, NO_SUCH_OBJECT_INSTANCE),
    )
    app = api.create_app(_settings(tmp_path, _device(scp.port)))

    response = _call(app, "POST", "/api/v1/send/pacs", files=_uploads(paths))

    assert response.status_code == 200, response.text
    document = response.json()
    assert (document["ok"], document["sent"], document["uncommitted"]) == (False, 2, 1)
    by_name = {entry["source"]: entry for entry in document["files"]}
    assert set(by_name) == {paths[0].name, paths[1].name}
    assert by_name[paths[0].name]["commitment"] == "committed"
    assert by_name[paths[1].name]["commitment"] == "failed"
    assert by_name[paths[1].name]["commitment_failure_reason_hex"] == "0x0112"
    assert str(tmp_path) not in response.text  # no server-side path in the answer
    SendReportModel.model_validate(document)  # what /openapi.json says it returns

    job = _job_result(app, paths[:1])
    JobModel.model_validate(job)
    assert (job["state"], job["ok"]) == ("done", True)
    assert [entry["commitment"] for entry in job["result"]["files"]] == ["committed"]
    job = _job_result(app, paths[1:])
    assert (job["state"], job["ok"]) == ("done", False)
    assert [entry["commitment"] for entry in job["result"]["files"]] == ["failed"]
    assert len(scp.commitment_requests) == 3


def test_api_send_against_orthanc(orthanc_factory: OrthancFactory, tmp_path: Path) -> None:
    settings = _settings(tmp_path, _device(free_port()))
    assert settings.main.listen_port is not None
    orthanc = orthanc_factory(
        ae_title="PACS", modalities={"us": (OUR_AE, "127.0.0.1", settings.main.listen_port)}
    )
    device = _device(orthanc.port, ae_title="PACS", timeout_s=20)
    app = api.create_app(attrs.evolve(settings, devices=(device,)))
    paths = _files(tmp_path / "in", 2)

    response = _call(app, "POST", "/api/v1/send/pacs", files=_uploads(paths))

    assert response.status_code == 200, response.text
    document = response.json()
    assert document["ok"] is True, document
    assert [entry["commitment"] for entry in document["files"]] == ["committed"] * 2
    assert orthanc.count() == 2
