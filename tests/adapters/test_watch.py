"""``sendtopacs watch`` in subprocesses against the in-process test PACS (R2-reduced, R3).

Each test writes a settings file with one device (a ``StorageSCP`` of this process) and one
monitor on a temporary folder, and passes ``--journal`` so that nothing is written to the
user's state folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sendtopacs_core import FileState, Journal
from sendtopacs_core.testing import StorageSCP
from sendtopacs_core.testing.plugin import StorageSCPFactory
from tests._netpeers import write_secondary_capture

_WAIT_S = 20.0


class Watch:
    """The paths of one watcher set-up and helpers to run the command on it."""

    def __init__(self, tmp_path: Path, scp: StorageSCP, **monitor: Any) -> None:
        self.folder = tmp_path / "in"
        self.folder.mkdir()
        self.journal = tmp_path / "state" / "journal.sqlite"
        self.settings = tmp_path / "settings.json"
        self.scp = scp
        rule = {
            "name": "inbox",
            "directory": str(self.folder),
            "mode": "polling",
            "interval_s": 0.2,
            "settle_s": 0.2,
            "remove_sent": True,
            **monitor,
        }
        device = {"name": "pacs", "ae_title": scp.ae_title, "host": "127.0.0.1", "port": scp.port}
        self.settings.write_text(
            json.dumps({"devices": [device], "monitors": [rule]}), encoding="utf-8"
        )

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "sendtopacs_adapters",
            "--settings",
            str(self.settings),
            "watch",
            "--journal",
            str(self.journal),
            *args,
        ]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), capture_output=True, text=True, timeout=60, check=False
        )

    def start(self, *args: str, stderr: Path) -> subprocess.Popen[str]:
        with stderr.open("w", encoding="utf-8") as err:
            return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=err, text=True)

    def drop(self, name: str) -> str:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")  # written under a temporary name
        uid = write_secondary_capture(part)
        part.rename(path)
        return uid

    def lock_is_free(self) -> bool:
        with self.journal.with_suffix(".lock").open("a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return True


def _wait_for(condition: Any, timeout: float = _WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def _wait_started(stderr: Path) -> None:
    assert _wait_for(lambda: "monitor(s)" in stderr.read_text(encoding="utf-8")), stderr.read_text(
        encoding="utf-8"
    )


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=15)
    return process.returncode, out


def _received(scp: StorageSCP) -> set[str]:
    return {item.sop_instance_uid for item in scp.received if item.status == 0}


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[str]]]:
    """Watchers started by a test; any still running at the end are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
        elif process.stdout is not None:
            process.stdout.close()


def test_once_sends_what_is_there_and_exits(tmp_path: Path, storage_scp: StorageSCP) -> None:
    watch = Watch(tmp_path, storage_scp)
    uids = {watch.drop("a.dcm"), watch.drop("sub/b.dcm"), watch.drop("sub/deeper/c")}
    result = watch.run("--once")
    assert result.returncode == 0, result.stderr
    assert _received(storage_scp) == uids
    assert list(watch.folder.iterdir()) == []
    assert "done: 3" in result.stderr


def test_once_json_prints_one_event_per_line(tmp_path: Path, storage_scp: StorageSCP) -> None:
    watch = Watch(tmp_path, storage_scp)
    watch.drop("a.dcm")
    watch.drop("b.dcm")
    result = watch.run("--once", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = Counter(event["event"] for event in events)
    assert kinds == {"taken": 2, "sent": 2, "status": 1}
    assert {e["path"] for e in events if e["event"] == "sent"} == {"a.dcm", "b.dcm"}
    assert all(e["monitor"] == "inbox" for e in events if e["event"] != "status")
    assert events[-1]["event"] == "status"
    assert events[-1]["done"] == 2


@pytest.mark.parametrize("mode", ["polling", "native"])
def test_running_watcher_picks_up_new_files_and_stops_on_sigterm(
    tmp_path: Path,
    storage_scp: StorageSCP,
    background: list[subprocess.Popen[str]],
    mode: str,
) -> None:
    # Native mode rescans only every interval_s: a long interval shows the events work.
    interval = 0.2 if mode == "polling" else 600
    watch = Watch(tmp_path, storage_scp, mode=mode, interval_s=interval)
    stderr = tmp_path / "stderr.txt"
    process = watch.start("--json", stderr=stderr)
    background.append(process)
    _wait_started(stderr)
    time.sleep(0.3)
    uids = {watch.drop("a.dcm"), watch.drop("sub/b.dcm")}
    assert _wait_for(lambda: _received(storage_scp) == uids), stderr.read_text(encoding="utf-8")
    assert _wait_for(lambda: not any(watch.folder.iterdir()))
    # A second watcher on the same settings refuses to start and names the first.
    second = watch.run("--once")
    assert second.returncode == 2
    assert str(process.pid) in second.stderr
    assert not watch.lock_is_free()
    code, out = _stop(process)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert {e["path"] for e in events if e["event"] == "sent"} == {"a.dcm", "sub/b.dcm"}
    assert events[-1]["event"] == "status"
    assert watch.lock_is_free()
    assert watch.run("--once").returncode == 0


def test_list_shows_held_files_and_send_pending_sends_them(
    tmp_path: Path, storage_scp: StorageSCP
) -> None:
    watch = Watch(tmp_path, storage_scp, auto_forward=False)
    uids = {watch.drop("a.dcm"), watch.drop("b.dcm")}
    assert watch.run("--once").returncode == 0
    assert storage_scp.c_store_count == 0
    listed = watch.run("--list")
    assert listed.returncode == 0, listed.stderr
    assert "inbox: a.dcm [held]" in listed.stdout
    assert "inbox: b.dcm [held]" in listed.stdout
    assert "2 file(s) pending" in listed.stdout
    as_json = json.loads(watch.run("--list", "--json").stdout)
    assert sorted(item["path"] for item in as_json["pending"]) == ["a.dcm", "b.dcm"]
    assert {item["state"] for item in as_json["pending"]} == {"held"}
    argv = watch.argv()
    send_pending = [
        *argv[: argv.index("watch")],
        "send",
        "--pending",
        *argv[argv.index("watch") + 1 :],
    ]
    sent = subprocess.run(send_pending, capture_output=True, text=True, timeout=60, check=False)
    assert sent.returncode == 0, sent.stderr
    assert _received(storage_scp) == uids
    assert list(watch.folder.iterdir()) == []
    # main.clean_sent_files_from_list off (the default): the sent files stay in the list.
    listed = watch.run("--list")
    assert "0 file(s) pending; 2 sent" in listed.stdout
    assert "inbox: a.dcm [done]" in listed.stdout
    as_json = json.loads(watch.run("--list", "--json").stdout)
    assert as_json["pending"] == []
    assert sorted(item["path"] for item in as_json["sent"]) == ["a.dcm", "b.dcm"]
    # On: they are left out.
    document = json.loads(watch.settings.read_text(encoding="utf-8"))
    document["main"] = {"clean_sent_files_from_list": True}
    watch.settings.write_text(json.dumps(document), encoding="utf-8")
    listed = watch.run("--list")
    assert listed.returncode == 0, listed.stderr
    assert "a.dcm" not in listed.stdout
    assert listed.stdout.splitlines()[-1] == "0 file(s) pending"
    assert json.loads(watch.run("--list", "--json").stdout)["sent"] == []


@pytest.mark.slow
def test_kill_9_loses_nothing(
    tmp_path: Path,
    storage_scp_factory: StorageSCPFactory,
    background: list[subprocess.Popen[str]],
) -> None:
    """R2, reduced: SIGKILL the watcher 5 times while 100 files flow; restart each time."""
    # A slow PACS (30 ms per C-STORE): the 100 files take 3 s, so the kills land mid-send.
    storage_scp = storage_scp_factory(delay_s=0.03)
    watch = Watch(tmp_path, storage_scp)
    sources: dict[Path, str] = {}
    for number in range(100):
        path = watch.folder / f"s{number % 4}" / f"f{number:03}.dcm"
        path.parent.mkdir(exist_ok=True)
        sources[path] = write_secondary_capture(path)
    chooser = random.Random(os.environ.get("PYTEST_XDIST_WORKER", "kill-9"))  # noqa: S311
    kills = 5

    def check_no_premature_removal() -> None:
        received = _received(storage_scp)
        for path, uid in sources.items():
            if not path.exists():
                assert uid in received, f"{path.name} removed but never received"

    for attempt in range(kills):
        stderr = tmp_path / f"stderr-{attempt}.txt"
        process = watch.start(stderr=stderr)
        background.append(process)
        _wait_started(stderr)
        time.sleep(chooser.uniform(0.2, 1.5))
        process.kill()
        process.communicate(timeout=10)
        check_no_premature_removal()
    for _ in range(10):
        if not any(path.exists() for path in sources):
            break
        result = watch.run("--once")
        assert result.returncode == 0, result.stderr
    check_no_premature_removal()
    assert not any(path.exists() for path in sources)
    assert _received(storage_scp) == set(sources.values())
    duplicates = sum(count - 1 for count in storage_scp.duplicates().values())
    assert duplicates <= kills
    assert not (tmp_path / "in.failed").exists()
    with Journal(watch.journal) as journal:
        assert journal.integrity_ok()
        assert journal.counts()[FileState.DONE] == 100


def test_once_exit_status_reflects_this_run_only(
    tmp_path: Path, storage_scp_factory: StorageSCPFactory
) -> None:
    scp = storage_scp_factory(statuses=[0xA900])
    watch = Watch(tmp_path, scp)
    watch.drop("bad.dcm")
    failed = watch.run("--once")
    assert failed.returncode == 1, failed.stderr
    assert "0xA900" in failed.stderr
    assert len(list((tmp_path / "in.failed").rglob("bad.dcm_reason.txt"))) == 1
    watch.drop("good.dcm")
    later = watch.run("--once")
    assert later.returncode == 0, later.stderr
    assert [item.status for item in scp.received] == [0xA900, 0x0000]
