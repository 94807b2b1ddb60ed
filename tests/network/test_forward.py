"""R3, R4, R6, R10, R16, R17: the :class:`Forwarder` policy, in-process, with a fake clock.

The PACS is the in-process ``StorageSCP``; the clock is a small mutable object, so settle
windows, retry timeouts and midnight roll-overs cost no wall time.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pydicom
import pytest
from hypothesis import HealthCheck, settings, strategies
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from PIL import Image

from sendtopacs_core import (
    Device,
    FileState,
    Forwarder,
    ForwardEvent,
    Journal,
    MonitorRule,
    Sender,
    Settings,
    Study,
    Timeouts,
)
from sendtopacs_core.testing import StorageSCP
from sendtopacs_core.testing.plugin import StorageSCPFactory
from tests._netpeers import free_port, refused_socket_leak_ignored, write_secondary_capture

pytestmark = refused_socket_leak_ignored()

_FAST: Timeouts = Timeouts(connect_s=3, acse_s=3, dimse_s=3, network_s=3)


class FakeClock:
    """A clock the test moves by hand (seconds since the epoch)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.define
class Rig:
    directory: Path
    forwarder: Forwarder
    journal: Journal
    clock: FakeClock

    @property
    def monitor(self) -> MonitorRule:
        return self.forwarder.monitor

    def step(self) -> list[ForwardEvent]:
        self.forwarder.scan()
        return self.forwarder.step()

    def state(self, path: str) -> FileState | None:
        entry = self.journal.get(self.monitor.name, path)
        return None if entry is None else entry.state


def _settings(port: int, monitor: MonitorRule) -> Settings:
    device = Device(name="pacs", ae_title="TESTPACS", host="127.0.0.1", port=port, timeouts=_FAST)
    return Settings(devices=(device,), monitors=(monitor,))


def _rig(
    tmp_path: Path,
    port: int,
    *,
    journal: Journal | None = None,
    clock: FakeClock | None = None,
    sender: Callable[[Device, Settings], Sender] | None = None,
    **options: Any,
) -> Rig:
    directory = tmp_path / "in"
    directory.mkdir(exist_ok=True)
    options.setdefault("settle_s", 0)
    monitor = MonitorRule(name="m", directory=directory, **options)
    clock = clock or FakeClock()
    journal = journal or Journal.in_memory()
    forwarder = Forwarder(_settings(port, monitor), monitor, journal, clock=clock, sender=sender)
    return Rig(directory, forwarder, journal, clock)


def _kinds(events: list[ForwardEvent]) -> list[tuple[str, str]]:
    return [(event.path, event.kind) for event in events]


def _failed_files(folder: Path) -> list[str]:
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and not path.name.endswith("_reason.txt")
    )


def _day(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d")


def _reason(target: Path) -> str:
    return target.with_name(target.name + "_reason.txt").read_text(encoding="utf-8")


# -- 1. settle (R3) ------------------------------------------------------------------------------


def test_a_growing_file_is_taken_only_after_the_settle_window(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    rig = _rig(tmp_path, storage_scp.port, settle_s=2, remove_sent=True)
    path = rig.directory / "a.dcm"
    uid = write_secondary_capture(path)
    data = path.read_bytes()
    path.write_bytes(data[:500])  # the copy has begun
    rig.forwarder.observe(path)
    rig.clock.advance(1.5)
    assert rig.step() == []
    with path.open("ab") as stream:  # more arrives
        stream.write(data[500:])
    rig.forwarder.observe(path)
    rig.clock.advance(1.5)  # 3 s since first seen, 1.5 s since the last change
    assert rig.step() == []
    assert rig.forwarder.settling == 1
    assert rig.state("a.dcm") is None
    rig.clock.advance(0.6)
    assert _kinds(rig.step()) == [("a.dcm", "taken"), ("a.dcm", "sent")]
    assert [item.sop_instance_uid for item in storage_scp.received] == [uid]
    assert not path.exists()


def test_an_old_file_found_by_a_scan_is_taken_at_once(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    rig = _rig(tmp_path, storage_scp.port, settle_s=30, remove_sent=True)
    old = rig.directory / "old.dcm"
    new = rig.directory / "new.dcm"
    write_secondary_capture(old)
    write_secondary_capture(new)
    os.utime(old, (rig.clock.now - 60, rig.clock.now - 60))
    assert _kinds(rig.step()) == [("old.dcm", "taken"), ("old.dcm", "sent")]
    assert rig.forwarder.settling == 1  # new.dcm waits
    assert new.exists()


def test_temporary_and_hidden_names_are_never_taken(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    rig = _rig(tmp_path, storage_scp.port, remove_sent=True)
    names = ["x.part", "x.tmp", "~$x.doc", ".hidden.dcm", ".hidden/inside.dcm", "sub/.h/deep.dcm"]
    for name in names:
        (rig.directory / name).parent.mkdir(parents=True, exist_ok=True)
        write_secondary_capture(rig.directory / name)
    for name in names:
        rig.forwarder.observe(rig.directory / name)
        assert rig.forwarder.relative(rig.directory / name) is None
    for _ in range(3):
        rig.clock.advance(100)
        assert rig.step() == []
    assert rig.journal.entries() == []
    assert storage_scp.c_store_count == 0
    assert all((rig.directory / name).exists() for name in names)


# -- 2. success --------------------------------------------------------------------------------


def test_remove_sent_removes_and_prunes_but_keeps_the_watched_folder(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    rig = _rig(tmp_path, storage_scp.port, remove_sent=True)
    (rig.directory / "a" / "b").mkdir(parents=True)
    uids = {
        write_secondary_capture(rig.directory / "a" / "b" / "1.dcm"),
        write_secondary_capture(rig.directory / "top.dcm"),
    }
    events = rig.step()
    assert sorted(_kinds(events)) == [
        ("a/b/1.dcm", "sent"),
        ("a/b/1.dcm", "taken"),
        ("top.dcm", "sent"),
        ("top.dcm", "taken"),
    ]
    assert {item.sop_instance_uid for item in storage_scp.received} == uids
    assert rig.directory.is_dir()
    assert list(rig.directory.iterdir()) == []
    assert rig.journal.counts()[FileState.DONE] == 2


def test_success_dir_keeps_the_relative_path_and_never_overwrites(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    done = tmp_path / "done"
    rig = _rig(tmp_path, storage_scp.port, success_dir=done)
    (rig.directory / "s").mkdir()
    write_secondary_capture(rig.directory / "s" / "a.dcm")
    rig.step()
    first = (done / "s" / "a.dcm").read_bytes()
    assert not (rig.directory / "s").exists()
    (rig.directory / "s").mkdir()
    write_secondary_capture(rig.directory / "s" / "a.dcm")
    rig.clock.advance(1)
    assert _kinds(rig.step()) == [("s/a.dcm", "taken"), ("s/a.dcm", "sent")]
    assert sorted(p.name for p in (done / "s").iterdir()) == ["a (2).dcm", "a.dcm"]
    assert (done / "s" / "a.dcm").read_bytes() == first
    assert storage_scp.c_store_count == 2
    assert rig.directory.is_dir()


def test_without_a_disposition_files_stay_and_are_not_sent_again(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    rig = _rig(tmp_path, storage_scp.port)
    path = rig.directory / "a.dcm"
    write_secondary_capture(path)
    assert _kinds(rig.step()) == [("a.dcm", "taken"), ("a.dcm", "sent")]
    for _ in range(3):
        rig.clock.advance(600)
        assert rig.step() == []
    assert path.exists()
    assert rig.state("a.dcm") is FileState.DONE
    assert storage_scp.c_store_count == 1
    # New content under the same name is a new file.
    uid = write_secondary_capture(path, patient_name="Other^Content^Longer")
    rig.clock.advance(1)
    assert _kinds(rig.step()) == [("a.dcm", "taken"), ("a.dcm", "sent")]
    assert storage_scp.received[-1].sop_instance_uid == uid
    assert storage_scp.c_store_count == 2


def test_a_file_arriving_again_with_its_old_time_is_sent_again(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    """``cp -p``/``rsync -t``/``mv`` back from the failed folder keep size and mtime: with
    remove_sent, a file present again under a DONE name is a new arrival."""
    rig = _rig(tmp_path, storage_scp.port, remove_sent=True)
    keep = tmp_path / "keep.dcm"
    write_secondary_capture(keep)
    shutil.copy2(keep, rig.directory / "a.dcm")
    rig.step()
    assert rig.state("a.dcm") is FileState.DONE
    shutil.copy2(keep, rig.directory / "a.dcm")  # same size, same mtime
    rig.clock.advance(5)
    assert _kinds(rig.step()) == [("a.dcm", "taken"), ("a.dcm", "sent")]
    assert storage_scp.c_store_count == 2
    assert not (rig.directory / "a.dcm").exists()


def test_a_failed_file_moved_back_is_tried_again(
    tmp_path: Path, storage_scp_factory: StorageSCPFactory
) -> None:
    scp = storage_scp_factory(statuses=[0xA900])
    rig = _rig(tmp_path, scp.port, remove_sent=True)
    write_secondary_capture(rig.directory / "a.dcm")
    assert _kinds(rig.step())[-1] == ("a.dcm", "failed")
    [moved] = rig.monitor.failed_folder.rglob("a.dcm")
    shutil.move(moved, rig.directory / "a.dcm")  # the user fixed the cause
    rig.clock.advance(5)
    assert _kinds(rig.step()) == [("a.dcm", "taken"), ("a.dcm", "sent")]
    assert [item.status for item in scp.received] == [0xA900, 0x0000]


# -- 3. failures (R6) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "meaning"),
    [(0xA900, "Data Set Does Not Match SOP Class"), (0xC000, ""), (0x0122, "SOP Class")],
)
def test_a_permanent_status_fails_at_once_with_a_reason_file(
    tmp_path: Path, storage_scp_factory: StorageSCPFactory, status: int, meaning: str
) -> None:
    scp = storage_scp_factory(statuses=[status])
    rig = _rig(tmp_path, scp.port, remove_sent=True, retry_count=5)
    (rig.directory / "sub").mkdir()
    write_secondary_capture(rig.directory / "sub" / "a.dcm")
    assert _kinds(rig.step()) == [("sub/a.dcm", "taken"), ("sub/a.dcm", "failed")]
    target = rig.monitor.failed_folder / _day(rig.clock.now) / "sub" / "a.dcm"
    assert target.is_file()
    reason = _reason(target)
    assert f"0x{status:04X}" in reason
    assert meaning in reason
    assert "attempts: 1" in reason
    assert dt.datetime.fromtimestamp(rig.clock.now).astimezone().isoformat()[:16] in reason
    assert rig.state("sub/a.dcm") is FileState.FAILED
    assert scp.c_store_count == 1
    assert not (rig.directory / "sub").exists()
    assert rig.directory.is_dir()


def test_a_retryable_status_is_retried_then_failed(
    tmp_path: Path, storage_scp_factory: StorageSCPFactory
) -> None:
    scp = storage_scp_factory(status_for=lambda _instance: 0xA700)
    rig = _rig(tmp_path, scp.port, remove_sent=True, retry_count=2, retry_timeout_s=30)
    path = rig.directory / "a.dcm"
    write_secondary_capture(path)
    assert _kinds(rig.step()) == [("a.dcm", "taken"), ("a.dcm", "retry")]
    rig.clock.advance(10)
    assert rig.step() == []  # not due yet
    assert scp.c_store_count == 1
    rig.clock.advance(20)
    assert _kinds(rig.step()) == [("a.dcm", "retry")]
    assert path.exists()
    rig.clock.advance(30)
    assert _kinds(rig.step()) == [("a.dcm", "failed")]
    assert not path.exists()
    assert scp.c_store_count == 3
    target = rig.monitor.failed_folder / _day(rig.clock.now) / "a.dcm"
    reason = _reason(target)
    assert "attempts: 3" in reason
    assert "0xA700" in reason
    rig.clock.advance(300)
    assert rig.step() == []
    assert scp.c_store_count == 3


@pytest.mark.parametrize("status", [0x0001, 0x0107, 0x0116, 0xB000, 0xB123, 0xBFFF])
def test_a_warning_status_is_a_delivery(
    tmp_path: Path, storage_scp_factory: StorageSCPFactory, status: int
) -> None:
    """PS3.7 Annex C: a Warning means stored; the source goes, nothing is failed or resent."""
    scp = storage_scp_factory(statuses=[status])
    rig = _rig(tmp_path, scp.port, remove_sent=True, retry_count=5)
    path = rig.directory / "a.dcm"
    uid = write_secondary_capture(path)
    assert _kinds(rig.step()) == [("a.dcm", "taken"), ("a.dcm", "sent")]
    assert not path.exists()
    assert rig.state("a.dcm") is FileState.DONE
    failed = rig.monitor.failed_folder
    assert not failed.exists() or _failed_files(failed) == []
    rig.clock.advance(3600)
    assert rig.step() == []
    assert [item.sop_instance_uid for item in scp.received] == [uid]
    assert scp.c_store_count == 1


def test_invalid_files_fail_at_once_naming_the_cause(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    rig = _rig(tmp_path, storage_scp.port, remove_sent=True)
    (rig.directory / "garbage.dcm").write_bytes(b"not dicom at all " * 20)
    write_secondary_capture(rig.directory / "cut.dcm")
    data = (rig.directory / "cut.dcm").read_bytes()
    (rig.directory / "cut.dcm").write_bytes(data[: len(data) - 100])  # inside the pixel data
    events = rig.step()
    assert sorted(e for e in _kinds(events) if e[1] != "taken") == [
        ("cut.dcm", "failed"),
        ("garbage.dcm", "failed"),
    ]
    day = rig.monitor.failed_folder / _day(rig.clock.now)
    assert "unknown kind of file" in _reason(day / "garbage.dcm")
    assert "truncated" in _reason(day / "cut.dcm")
    assert storage_scp.c_store_count == 0


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.7])
def test_a_dicom_file_truncated_in_its_header_fails(
    tmp_path: Path, storage_scp: StorageSCP, fraction: float
) -> None:
    rig = _rig(tmp_path, storage_scp.port, remove_sent=True)
    path = rig.directory / "cut.dcm"
    write_secondary_capture(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    events = rig.step()
    assert _kinds(events)[-1] == ("cut.dcm", "failed")
    assert storage_scp.c_store_count == 0
    day = rig.monitor.failed_folder / _day(rig.clock.now)
    assert "truncated" in _reason(day / "cut.dcm")


def test_a_dicom_file_cut_between_elements_before_the_image_is_refused_and_kept(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    """Cut exactly between two elements, the file looks complete to pydicom (and DCMTK's
    storescu sends it); walked to its end, it is an image SOP class without Pixel Data."""
    rig = _rig(tmp_path, storage_scp.port, remove_sent=True)
    path = rig.directory / "cut.dcm"
    write_secondary_capture(path)
    data = path.read_bytes()
    whole = pydicom.dcmread(path)
    boundary = _element_end(data, whole, "PatientID")
    path.write_bytes(data[:boundary])  # right after (0010,0020)
    assert _kinds(rig.step())[-1] == ("cut.dcm", "failed")
    assert storage_scp.c_store_count == 0
    day = rig.monitor.failed_folder / _day(rig.clock.now)
    reason = _reason(day / "cut.dcm")
    assert "no Pixel Data (7FE0,0010)" in reason
    assert (day / "cut.dcm").read_bytes() == data[:boundary]  # kept, not deleted


def _element_end(data: bytes, dataset: pydicom.Dataset, keyword: str) -> int:
    """Where the element ``keyword`` of an explicit VR little endian file ends."""
    element = dataset[keyword]
    value = element.value.encode("ascii")
    value += b" " * (len(value) % 2)
    header = element.tag.group.to_bytes(2, "little") + element.tag.element.to_bytes(2, "little")
    start = data.index(header + element.VR.encode("ascii"))
    return start + 8 + len(value)


def test_a_non_dicom_image_is_converted_with_the_monitor_study(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    study = Study(patient_id="P-17", patient_name="Photo^Anna")
    rig = _rig(tmp_path, storage_scp.port, remove_sent=True, study=study)
    Image.new("RGB", (32, 24), (200, 10, 10)).save(rig.directory / "photo.jpg", quality=90)
    assert _kinds(rig.step()) == [("photo.jpg", "taken"), ("photo.jpg", "sent")]
    [received] = storage_scp.received
    assert received.sop_class_uid.startswith("1.2.840.10008.5.1.4.1.1.7")
    assert not (rig.directory / "photo.jpg").exists()
    [entry] = rig.journal.entries()
    assert entry.uids == (received.sop_instance_uid,)


def test_a_retry_on_another_day_makes_the_objects_the_first_attempt_made(
    tmp_path: Path, storage_scp_factory: StorageSCPFactory
) -> None:
    """The journal keeps the day and Instance Number of the first conversion: a retry the next
    day, alone in its batch, sends the same object under the same UID (never a duplicate)."""
    noon = dt.datetime(2026, 5, 4, 12, 0).astimezone()  # local time, as the day is
    scp = storage_scp_factory(statuses=[0x0000, 0xA700], storage_dir=tmp_path / "pacs")
    study = Study(patient_id="P-18", patient_name="Retry^Ben")  # a day's study
    clock = FakeClock(noon.timestamp())
    rig = _rig(tmp_path, scp.port, clock=clock, remove_sent=True, retry_timeout_s=10, study=study)
    Image.new("RGB", (32, 24), (200, 10, 10)).save(rig.directory / "a.jpg", quality=90)
    Image.new("RGB", (24, 32), (10, 200, 10)).save(rig.directory / "b.jpg", quality=90)
    assert _kinds(rig.step())[-2:] == [("a.jpg", "sent"), ("b.jpg", "retry")]
    entry = rig.journal.get("m", "b.jpg")
    assert entry is not None
    assert entry.assigned is not None
    assert (entry.assigned.day, entry.assigned.instance_number) == (noon.date(), 2)
    rig.clock.advance(13 * 3600)  # past midnight
    assert _kinds(rig.step()) == [("b.jpg", "sent")]
    first, refused, retried = scp.received
    assert refused.status == 0xA700
    assert retried.sop_instance_uid == refused.sop_instance_uid != first.sop_instance_uid
    assert retried.path is not None
    assert first.path is not None
    stored = pydicom.dcmread(retried.path)
    assert (stored.StudyDate, stored.InstanceNumber) == ("20260504", 2)
    assert stored.StudyInstanceUID == pydicom.dcmread(first.path).StudyInstanceUID
    # A new drop the next day is the next day's study.
    Image.new("RGB", (16, 16), (1, 2, 3)).save(rig.directory / "c.jpg", quality=90)
    assert _kinds(rig.step())[-1] == ("c.jpg", "sent")
    new = scp.received[-1]
    assert new.path is not None
    assert pydicom.dcmread(new.path).StudyDate == "20260505"


# -- 4. PACS down, then back (R4) ---------------------------------------------------------------


def test_pacs_down_then_back(tmp_path: Path, storage_scp_factory: StorageSCPFactory) -> None:
    port = free_port()
    rig = _rig(tmp_path, port, remove_sent=True, retry_count=5, retry_timeout_s=15)
    path = rig.directory / "a.dcm"
    uid = write_secondary_capture(path)
    assert _kinds(rig.step()) == [("a.dcm", "taken"), ("a.dcm", "retry")]
    rig.clock.advance(15)
    assert _kinds(rig.step()) == [("a.dcm", "retry")]
    assert path.exists()
    entry = rig.journal.get("m", "a.dcm")
    assert entry is not None
    assert entry.state is FileState.PENDING
    assert entry.attempts == 2
    assert entry.last_error
    scp = storage_scp_factory(port=port)
    rig.clock.advance(15)
    assert _kinds(rig.step()) == [("a.dcm", "sent")]
    assert [item.sop_instance_uid for item in scp.received] == [uid]
    assert not path.exists()
    assert rig.state("a.dcm") is FileState.DONE
    assert not rig.monitor.failed_folder.exists()


# -- 5. disk problems (R10-lite) ----------------------------------------------------------------


def test_an_unwritable_failed_folder_loses_nothing_and_logs_once(
    tmp_path: Path, storage_scp_factory: StorageSCPFactory, caplog: pytest.LogCaptureFixture
) -> None:
    scp = storage_scp_factory(status_for=lambda _instance: 0xA900)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    rig = _rig(
        tmp_path, scp.port, remove_sent=True, failed_dir=blocker / "failed", retry_timeout_s=10
    )
    path = rig.directory / "a.dcm"
    write_secondary_capture(path)
    with caplog.at_level(logging.ERROR, logger="sendtopacs_core.forward"):
        for _ in range(4):
            rig.step()
            assert path.exists()
            assert rig.state("a.dcm") is FileState.PENDING
            rig.clock.advance(10)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    blocker.unlink()
    blocker.mkdir()
    events = rig.step()
    assert _kinds(events) == [("a.dcm", "failed")]
    assert not path.exists()
    target = blocker / "failed" / _day(rig.clock.now) / "a.dcm"
    assert target.is_file()
    assert "0xA900" in _reason(target)
    assert rig.state("a.dcm") is FileState.FAILED


# -- 6. held and vanished -----------------------------------------------------------------------


def test_without_auto_forward_files_are_held_until_send_pending(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    rig = _rig(tmp_path, storage_scp.port, remove_sent=True, auto_forward=False)
    write_secondary_capture(rig.directory / "a.dcm")
    write_secondary_capture(rig.directory / "b.dcm")
    assert sorted(_kinds(rig.step())) == [("a.dcm", "held"), ("b.dcm", "held")]
    rig.clock.advance(600)
    assert rig.step() == []
    assert storage_scp.c_store_count == 0
    assert rig.journal.counts()[FileState.HELD] == 2
    events = rig.forwarder.send_pending()
    assert sorted(_kinds(events)) == [("a.dcm", "sent"), ("b.dcm", "sent")]
    assert storage_scp.c_store_count == 2
    assert list(rig.directory.iterdir()) == []
    assert rig.journal.counts()[FileState.DONE] == 2


def test_a_file_removed_before_sending_vanishes(tmp_path: Path, storage_scp: StorageSCP) -> None:
    rig = _rig(tmp_path, storage_scp.port, remove_sent=True)
    path = rig.directory / "a.dcm"
    write_secondary_capture(path)
    rig.forwarder.scan()
    assert _kinds(rig.forwarder.settle()) == [("a.dcm", "taken")]
    path.unlink()
    assert _kinds(rig.forwarder.step()) == [("a.dcm", "vanished")]
    assert rig.journal.get("m", "a.dcm") is None
    assert storage_scp.c_store_count == 0


# -- 7. crash recovery --------------------------------------------------------------------------


def _record(journal: Journal, rig_dir: Path, name: str, now: float) -> None:
    info = (rig_dir / name).stat()
    journal.seen("m", name, size=info.st_size, mtime_ns=info.st_mtime_ns, now=now)


def test_an_interrupted_attempt_is_sent_again_once(tmp_path: Path, storage_scp: StorageSCP) -> None:
    journal_file = tmp_path / "journal.sqlite"
    folder = tmp_path / "in"
    folder.mkdir()
    uid = write_secondary_capture(folder / "a.dcm")
    clock = FakeClock()
    with Journal(journal_file) as journal:
        _record(journal, folder, "a.dcm", clock.now)
        journal.begin_attempt("m", "a.dcm", now=clock.now)
    with Journal(journal_file) as journal:
        assert [e.path for e in journal.recover(now=clock.now)] == ["a.dcm"]
        rig = _rig(tmp_path, storage_scp.port, journal=journal, clock=clock, remove_sent=True)
        assert _kinds(rig.step()) == [("a.dcm", "sent")]
        rig.clock.advance(100)
        assert rig.step() == []
        assert [item.sop_instance_uid for item in storage_scp.received] == [uid]
        assert rig.state("a.dcm") is FileState.DONE
        assert not (folder / "a.dcm").exists()


def test_a_recorded_success_only_has_its_disposition_redone(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    journal_file = tmp_path / "journal.sqlite"
    folder = tmp_path / "in"
    (folder / "s").mkdir(parents=True)
    write_secondary_capture(folder / "s" / "a.dcm")
    clock = FakeClock()
    with Journal(journal_file) as journal:
        _record(journal, folder, "s/a.dcm", clock.now)
        journal.begin_attempt("m", "s/a.dcm", now=clock.now)
        journal.mark_sent("m", "s/a.dcm", uids=["1.2.3"], now=clock.now)
    with Journal(journal_file) as journal:
        assert journal.recover(now=clock.now) == []
        done = tmp_path / "done"
        rig = _rig(tmp_path, storage_scp.port, journal=journal, clock=clock, success_dir=done)
        rig.step()
        assert (done / "s" / "a.dcm").is_file()
        assert not (folder / "s").exists()
        assert rig.state("s/a.dcm") is FileState.DONE
        assert storage_scp.c_store_count == 0


# -- 8. R17: dates and names of failed files ----------------------------------------------------


def _local_time(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    zone = dt.datetime.now().astimezone().tzinfo
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=zone).timestamp()


def test_failures_around_midnight_land_in_two_dated_folders(
    tmp_path: Path, storage_scp_factory: StorageSCPFactory
) -> None:
    scp = storage_scp_factory(status_for=lambda _instance: 0xA900)
    clock = FakeClock(_local_time(2024, 3, 9, 23, 59, 59))
    rig = _rig(tmp_path, scp.port, clock=clock, remove_sent=True)
    write_secondary_capture(rig.directory / "a.dcm")
    rig.step()
    clock.now = _local_time(2024, 3, 10, 0, 0, 1)
    write_secondary_capture(rig.directory / "b.dcm")
    rig.step()
    assert _failed_files(rig.monitor.failed_folder) == ["2024-03-09/a.dcm", "2024-03-10/b.dcm"]


def test_failed_names_never_collide(tmp_path: Path, storage_scp_factory: StorageSCPFactory) -> None:
    scp = storage_scp_factory(status_for=lambda _instance: 0xA900)
    rig = _rig(tmp_path, scp.port, remove_sent=True)
    for sub in ("x", "y"):
        (rig.directory / sub).mkdir()
        write_secondary_capture(rig.directory / sub / "a.dcm")
    rig.step()
    (rig.directory / "x").mkdir()
    write_secondary_capture(rig.directory / "x" / "a.dcm", patient_name="Second^Failure")
    rig.clock.advance(1)
    rig.step()
    day = _day(rig.clock.now)
    assert _failed_files(rig.monitor.failed_folder) == [
        f"{day}/x/a (2).dcm",
        f"{day}/x/a.dcm",
        f"{day}/y/a.dcm",
    ]
    folder = rig.monitor.failed_folder / day / "x"
    assert "attempts: 1" in _reason(folder / "a (2).dcm")
    assert b"Second^Failure" in (folder / "a (2).dcm").read_bytes()


# -- 9. model-based test (R16-lite) -------------------------------------------------------------

_RETRY_COUNT = 2


class ForwarderMachine(RuleBasedStateMachine):
    """Files dropped and rewritten, the PACS up, refusing or busy, the clock moving."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="forward-machine-"))
        self.good = StorageSCP().start()
        self.busy = StorageSCP(status_for=lambda _instance: 0xA700).start()
        self.refused = free_port()
        self.port = self.good.port
        self.expected: dict[str, str] = {}  # relative path -> latest SOP Instance UID
        self.counter = 0

        def sender(device: Device, settings: Settings) -> Sender:
            return Sender(attrs.evolve(device, port=self.port), settings=settings)

        self.rig = _rig(
            self.root,
            self.good.port,
            sender=sender,
            remove_sent=True,
            settle_s=2,
            retry_count=_RETRY_COUNT,
            retry_timeout_s=10,
        )

    def teardown(self) -> None:
        self.good.stop()
        self.busy.stop()
        self.rig.journal.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(sub=strategies.sampled_from(["", "s/", "s/t/"]))
    def drop_file(self, sub: str) -> None:
        self.counter += 1
        name = f"{sub}f{self.counter}.dcm"
        path = self.rig.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.expected[name] = write_secondary_capture(path)
        self.rig.forwarder.observe(path)

    @rule(data=strategies.data())
    def rewrite_file(self, data: strategies.DataObject) -> None:
        present = sorted(n for n in self.expected if (self.rig.directory / n).exists())
        if not present:
            return
        name = data.draw(strategies.sampled_from(present))
        path = self.rig.directory / name
        self.counter += 1
        self.expected[name] = write_secondary_capture(path, patient_name=f"W^{self.counter}")
        self.rig.forwarder.observe(path)

    @rule(seconds=strategies.sampled_from([0.5, 1.0, 2.5, 10.0, 30.0]))
    def advance_clock(self, seconds: float) -> None:
        self.rig.clock.advance(seconds)

    @rule(mode=strategies.sampled_from(["up", "refused", "busy"]))
    def pacs(self, mode: str) -> None:
        self.port = {"up": self.good.port, "refused": self.refused, "busy": self.busy.port}[mode]

    @rule()
    def step(self) -> None:
        self.rig.step()

    @invariant()
    def every_file_is_somewhere_once(self) -> None:
        received = {item.sop_instance_uid for item in self.good.received if item.status == 0}
        failed = self.rig.monitor.failed_folder
        failed_files = _failed_files(failed) if failed.exists() else []
        failed_names = {name.split("/", 1)[1] for name in failed_files}
        for name, uid in self.expected.items():
            present = (self.rig.directory / name).exists()
            is_failed = name in failed_names
            delivered = not present and not is_failed and uid in received
            assert [present, is_failed, delivered].count(True) == 1, (name, present, is_failed)
            if not present and not is_failed:
                assert uid in received, f"{name} removed without a success"
        for path in failed_files:
            target = failed / path
            assert target.with_name(target.name + "_reason.txt").is_file()

    @invariant()
    def attempts_are_bounded(self) -> None:
        for entry in self.rig.journal.entries():
            assert entry.attempts <= _RETRY_COUNT + 1


TestForwarderMachine = ForwarderMachine.TestCase
TestForwarderMachine.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
