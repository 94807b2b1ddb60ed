"""R9 through the Forwarder: sources are removed only after Orthanc commits to keep them.

Orthanc with a Lua filter that drops PatientID ``REJECTME`` answers C-STORE Success for every
file; its storage commitment report names the dropped ones as failed (0x0112). The Forwarder
removes the committed files, moves the others to the failed folder with the reason, and keeps
every file when no report comes. The commitment is the Sender's (one request per batch); the
Forwarder asks again, through ``Sender.commit``, about files left sent (a missing report, or a
restart), here against the in-process storage commitment SCP.
"""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import pydicom
import pytest

from sendtopacs_core import (
    Device,
    FileState,
    Forwarder,
    Journal,
    MainSettings,
    MonitorRule,
    Sender,
    Settings,
    Timeouts,
)
from sendtopacs_core.testing.plugin import StorageSCPFactory
from tests._netpeers import OrthancFactory, device_to, free_port
from tests.network.test_commitment import OUR_AE, REJECT_LUA, _files

FAST = Timeouts(connect_s=3, acse_s=3, dimse_s=5, network_s=10)


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _forwarder(tmp_path: Path, port: int, listen_port: int, timeout_s: float) -> Forwarder:
    device = Device(
        name="pacs",
        ae_title="PACS",
        host="127.0.0.1",
        port=port,
        storage_commitment=True,
        commitment_timeout_s=timeout_s,
        timeouts=FAST,
    )
    monitor = MonitorRule(
        name="m",
        directory=tmp_path / "in",
        failed_dir=tmp_path / "failed",
        remove_sent=True,
        settle_s=0,
        retry_timeout_s=30,
    )
    settings = Settings(
        main=MainSettings(ae_title=OUR_AE, listen_port=listen_port),
        devices=(device,),
        monitors=(monitor,),
    )
    return Forwarder(settings, monitor, Journal.in_memory(), clock=_Clock())


def test_only_committed_files_are_removed(orthanc_factory: OrthancFactory, tmp_path: Path) -> None:
    listen_port = free_port()
    lua = tmp_path / "reject.lua"
    lua.write_text(REJECT_LUA, encoding="utf-8")
    orthanc = orthanc_factory(
        ae_title="PACS",
        modalities={"us": (OUR_AE, "127.0.0.1", listen_port)},
        extra_config={"LuaScripts": [str(lua)]},
    )
    good = _files(tmp_path / "in", 5)
    bad = _files(tmp_path / "in" / "sub", 2, patient_id="REJECTME")
    forwarder = _forwarder(tmp_path, orthanc.port, listen_port, timeout_s=20)
    forwarder.scan()
    events = forwarder.step()
    kinds = sorted(event.kind for event in events)
    assert kinds.count("sent") == 7  # C-STORE answered success for all seven
    assert kinds.count("committed") == 5
    assert kinds.count("failed") == 2
    assert not any(path.exists() for path in good)  # committed: removed
    assert orthanc.count() == 5
    failed = sorted((tmp_path / "failed").rglob("*_reason.txt"))
    assert len(failed) == 2
    for reason in failed:
        text = reason.read_text(encoding="utf-8")
        assert "storage commitment failed: 0x0112" in text
        assert reason.with_name(reason.name.removesuffix("_reason.txt")).exists()
    assert not any(path.exists() for path in bad)  # moved to failed/, not deleted
    counts = forwarder.journal.counts()
    assert (counts[FileState.DONE], counts[FileState.FAILED]) == (5, 2)


def test_no_report_keeps_every_file(
    orthanc_factory: OrthancFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    listen_port = free_port()
    nobody = free_port()  # Orthanc calls back a port where nobody listens
    orthanc = orthanc_factory(ae_title="PACS", modalities={"us": (OUR_AE, "127.0.0.1", nobody)})
    paths = _files(tmp_path / "in", 3)
    forwarder = _forwarder(tmp_path, orthanc.port, listen_port, timeout_s=2)
    forwarder.scan()
    with caplog.at_level(logging.ERROR, logger="sendtopacs_core.forward"):
        events = forwarder.step()
        assert [event.kind for event in events].count("sent") == 3
        assert all(path.exists() for path in paths)  # no commitment: nothing removed
        assert forwarder.journal.counts()[FileState.SENT] == 3
        forwarder.step()  # before the retry timeout: not asked again, not logged again
    errors = [r for r in caplog.records if "no storage commitment" in r.getMessage()]
    assert len(errors) == 1
    assert "no storage commitment report within 2 s" in errors[0].getMessage()
    assert orthanc.count() == 3


def test_without_a_listen_port_files_are_kept(
    orthanc_factory: OrthancFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    orthanc = orthanc_factory(ae_title="PACS")
    paths = _files(tmp_path / "in", 2)
    forwarder = _forwarder(tmp_path, orthanc.port, free_port(), timeout_s=2)
    settings = attrs.evolve(
        forwarder.settings, main=attrs.evolve(forwarder.settings.main, listen_port=None)
    )
    forwarder = Forwarder(settings, forwarder.monitor, Journal.in_memory(), clock=_Clock())
    forwarder.scan()
    with caplog.at_level(logging.ERROR, logger="sendtopacs_core.forward"):
        forwarder.step()
    assert all(path.exists() for path in paths)
    assert any("needs main.listen_port" in r.getMessage() for r in caplog.records)


# -- the Forwarder takes the Sender's verdicts (in-process storage commitment SCP) ---------------


def _scp_forwarder(
    tmp_path: Path, scp_port: int, journal: Journal, clock: _Clock, timeout_s: float = 10
) -> Forwarder:
    forwarder = _forwarder(tmp_path, scp_port, free_port(), timeout_s=timeout_s)
    device = attrs.evolve(forwarder.settings.devices[0], ae_title="TESTPACS")
    settings = attrs.evolve(forwarder.settings, devices=(device,))
    return Forwarder(settings, forwarder.monitor, journal, clock=clock)


def test_a_failed_commitment_moves_the_file_with_the_reason(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    paths = _files(tmp_path / "in", 2)
    lost = str(pydicom.dcmread(paths[0], stop_before_pixels=True).SOPInstanceUID)
    scp = storage_scp_factory(
        storage_commitment=True, commitment_failure_for=lambda uid: 0x0110 if uid == lost else None
    )
    forwarder = _scp_forwarder(tmp_path, scp.port, Journal.in_memory(), _Clock())
    forwarder.scan()
    kinds = sorted(event.kind for event in forwarder.step())
    assert kinds == ["committed", "failed", "sent", "sent", "taken", "taken"]
    assert not any(path.exists() for path in paths)
    (reason,) = (tmp_path / "failed").rglob("*_reason.txt")
    assert "storage commitment failed: 0x0110 Processing failure" in reason.read_text("utf-8")
    assert reason.name == f"{paths[0].name}_reason.txt"
    assert len(scp.commitment_requests) == 1  # one request for the batch, by the Sender


def test_a_missing_report_is_asked_again_after_the_retry_timeout(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    paths = _files(tmp_path / "in", 2)
    silent = storage_scp_factory(storage_commitment=True, commitment_silent=True)
    clock = _Clock()
    journal = Journal.in_memory()
    forwarder = _scp_forwarder(tmp_path, silent.port, journal, clock, timeout_s=1)
    forwarder.scan()
    forwarder.step()
    assert all(path.exists() for path in paths)
    assert journal.counts()[FileState.SENT] == 2
    assert len(silent.commitment_requests) == 1
    forwarder.step()  # before the retry timeout: not asked again
    assert len(silent.commitment_requests) == 1
    clock.now += 31
    forwarder.step()  # asked again (about the journal's instances, nothing sent again)
    assert len(silent.commitment_requests) == 2
    assert silent.commitment_requests[1] == silent.commitment_requests[0]
    assert len(silent.received) == 2


def test_after_a_restart_sent_files_are_asked_about_not_sent_again(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    """A journal left with SENT files (no report before the stop): a new Forwarder asks the
    PACS about them through ``Sender.commit`` and removes them once committed."""
    paths = _files(tmp_path / "in", 2)
    uids = frozenset(str(pydicom.dcmread(path).SOPInstanceUID) for path in paths)
    silent = storage_scp_factory(storage_commitment=True, commitment_silent=True)
    reporting = storage_scp_factory(storage_commitment=True)
    assert Sender(device_to("TESTPACS", reporting.port), calling_ae_title=OUR_AE).send(paths).ok
    journal_file = tmp_path / "journal.sqlite"
    clock = _Clock()
    with Journal(journal_file) as journal:
        forwarder = _scp_forwarder(tmp_path, silent.port, journal, clock, timeout_s=1)
        forwarder.scan()
        forwarder.step()
        assert journal.counts()[FileState.SENT] == 2
    with Journal(journal_file) as journal:
        forwarder = _scp_forwarder(tmp_path, reporting.port, journal, clock)
        events = forwarder.step()
        assert sorted(event.kind for event in events) == ["committed", "committed"]
        assert journal.counts()[FileState.DONE] == 2
    assert not any(path.exists() for path in paths)
    assert len(reporting.received) == 2  # only the first send: nothing sent again
    assert reporting.commitment_requests == [uids]
