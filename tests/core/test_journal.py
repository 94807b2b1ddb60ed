"""The journal: transitions, persistence, crash safety (kill -9), a state-machine model, WAL."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from sendtopacs_core.errors import ConfigError
from sendtopacs_core.identity import Assignment
from sendtopacs_core.journal import FileState, Journal, JournalEntry

M: Final = "endo"
P: Final = "2024/a.jpg"
REPO: Final = Path(__file__).resolve().parents[2]


@pytest.fixture
def journal() -> Iterator[Journal]:
    with Journal.in_memory() as opened:
        yield opened


def _seen(journal: Journal, path: str = P, *, size: int = 10, mtime: int = 1) -> JournalEntry:
    return journal.seen(M, path, size=size, mtime_ns=mtime, now=100.0)


def _bring_to(journal: Journal, state: FileState, path: str = P) -> JournalEntry:
    """Create an entry and move it to ``state`` through valid transitions."""
    entry = _seen(journal, path)
    if state is FileState.HELD:
        entry = journal.hold(M, path, reason="no worklist match", now=101.0)
    if state in {FileState.SENDING, FileState.SENT, FileState.DONE, FileState.FAILED}:
        entry = journal.begin_attempt(M, path, now=101.0, uids=["1.2.3"])
    if state in {FileState.SENT, FileState.DONE}:
        entry = journal.mark_sent(M, path, uids=["1.2.3"], now=102.0)
    if state is FileState.DONE:
        entry = journal.mark_done(M, path, now=103.0)
    if state is FileState.FAILED:
        entry = journal.mark_failed(M, path, error="A900", now=103.0)
    assert entry.state is state
    return entry


# -- seen --------------------------------------------------------------------------------------


def test_seen_records_a_new_file_as_pending(journal: Journal) -> None:
    entry = _seen(journal)
    assert entry == JournalEntry(
        monitor=M,
        path=P,
        size=10,
        mtime_ns=1,
        state=FileState.PENDING,
        attempts=0,
        next_attempt=0.0,
        last_error=None,
        uids=(),
        first_seen=100.0,
        updated=100.0,
    )
    assert journal.get(M, P) == entry


def test_seen_with_the_same_size_and_mtime_changes_nothing(journal: Journal) -> None:
    before = _bring_to(journal, FileState.SENT)
    assert journal.seen(M, P, size=10, mtime_ns=1, now=500.0) == before
    assert journal.get(M, P) == before


@pytest.mark.parametrize("state", [FileState.DONE, FileState.FAILED])
def test_seen_changed_after_the_end_starts_a_new_cycle(journal: Journal, state: FileState) -> None:
    _bring_to(journal, state)
    entry = journal.seen(M, P, size=11, mtime_ns=1, now=500.0)
    assert (entry.state, entry.attempts, entry.uids, entry.last_error) == (
        FileState.PENDING,
        0,
        (),
        None,
    )
    assert (entry.size, entry.first_seen, entry.updated, entry.next_attempt) == (11, 500, 500, 0)


@pytest.mark.parametrize(
    "state", [FileState.PENDING, FileState.HELD, FileState.SENDING, FileState.SENT]
)
def test_seen_changed_otherwise_updates_size_and_mtime_only(
    journal: Journal, state: FileState
) -> None:
    before = _bring_to(journal, state)
    entry = journal.seen(M, P, size=10, mtime_ns=2, now=500.0)
    assert entry.state is state
    assert (entry.size, entry.mtime_ns, entry.updated) == (10, 2, 500.0)
    assert (entry.attempts, entry.uids, entry.last_error) == (
        before.attempts,
        before.uids,
        before.last_error,
    )
    assert journal.get(M, P) == entry


@pytest.mark.parametrize("path", ["", "/abs.jpg", "a//b", "a/../b", "./a", "a/", "a\x00b"])
def test_seen_rejects_a_path_that_is_not_relative(journal: Journal, path: str) -> None:
    with pytest.raises(ValueError, match="invalid journal path"):
        journal.seen(M, path, size=1, mtime_ns=1, now=1.0)


def test_seen_rejects_a_negative_size(journal: Journal) -> None:
    with pytest.raises(ValueError, match="'size' must be >= 0"):
        journal.seen(M, P, size=-1, mtime_ns=1, now=1.0)
    assert journal.entries() == []


# -- transitions -------------------------------------------------------------------------------

Call = Callable[[Journal, str], JournalEntry]
CALLS: Final[dict[str, Call]] = {
    "begin_attempt": lambda j, p: j.begin_attempt(M, p, now=200.0),
    "retry_later": lambda j, p: j.retry_later(M, p, error="A700", next_attempt=260.0, now=200.0),
    "mark_sent": lambda j, p: j.mark_sent(M, p, uids=["1.2.9"], now=200.0),
    "mark_failed": lambda j, p: j.mark_failed(M, p, error="C000", now=200.0),
    "mark_done": lambda j, p: j.mark_done(M, p, now=200.0),
    "hold": lambda j, p: j.hold(M, p, reason="auto-forward off", now=200.0),
    "release": lambda j, p: j.release(M, p, now=200.0),
}
P_, SENDING, SENT, FAILED, DONE, HELD = (
    FileState.PENDING,
    FileState.SENDING,
    FileState.SENT,
    FileState.FAILED,
    FileState.DONE,
    FileState.HELD,
)
#: method -> (allowed source states, resulting state); every other source state is refused.
TRANSITIONS: Final = {
    "begin_attempt": ({P_}, SENDING),
    "retry_later": ({P_, SENDING}, P_),
    "mark_sent": ({P_, SENDING}, SENT),
    "mark_failed": ({P_, SENDING, HELD, SENT}, FAILED),
    "mark_done": ({SENT}, DONE),
    "hold": ({P_, SENDING, HELD}, HELD),
    "release": ({HELD}, P_),
}
CASES: Final = [(method, state) for method in TRANSITIONS for state in FileState]


@pytest.mark.parametrize(("method", "source"), CASES)
def test_every_transition_is_allowed_or_refused_as_documented(
    journal: Journal, method: str, source: FileState
) -> None:
    before = _bring_to(journal, source)
    allowed, target = TRANSITIONS[method]
    if source in allowed:
        entry = CALLS[method](journal, P)
        assert entry.state is target
        assert entry.updated == 200.0
        assert journal.get(M, P) == entry
    else:
        with pytest.raises(ValueError, match=rf"cannot .* it is {source.value} \(expected "):
            CALLS[method](journal, P)
        assert journal.get(M, P) == before


def test_mark_done_without_a_recorded_success_says_why(journal: Journal) -> None:
    _bring_to(journal, FileState.SENDING)
    with pytest.raises(ValueError, match=r"cannot mark as done .* it is sending \(expected sent\)"):
        journal.mark_done(M, P, now=1.0)


@pytest.mark.parametrize("method", sorted(CALLS))
def test_an_unknown_file_raises_key_error(journal: Journal, method: str) -> None:
    _seen(journal, "other.jpg")
    with pytest.raises(KeyError, match=r"no entry for '2024/a.jpg' of monitor 'endo'"):
        CALLS[method](journal, P)


def test_forget_removes_the_entry_and_unknown_raises(journal: Journal) -> None:
    _bring_to(journal, FileState.SENT)
    journal.forget(M, P)
    assert journal.get(M, P) is None
    with pytest.raises(KeyError, match="no entry for"):
        journal.forget(M, P)


def test_attempts_uids_errors_and_times_follow_the_calls(journal: Journal) -> None:
    _seen(journal)
    entry = journal.begin_attempt(M, P, now=101.0, uids=["1.2.3", "1.2.4"])
    assert (entry.attempts, entry.uids) == (1, ("1.2.3", "1.2.4"))
    entry = journal.retry_later(M, P, error="A700 out of resources", next_attempt=160.0, now=102)
    assert (entry.state, entry.last_error, entry.next_attempt) == (P_, "A700 out of resources", 160)
    entry = journal.begin_attempt(M, P, now=160.0)  # no UIDs given: the stored ones are kept
    assert (entry.attempts, entry.uids, entry.last_error) == (
        2,
        ("1.2.3", "1.2.4"),
        "A700 out of resources",
    )
    entry = journal.mark_sent(M, P, uids=[], now=161.0)
    assert (entry.uids, entry.last_error) == (("1.2.3", "1.2.4"), None)
    entry = journal.mark_done(M, P, now=162.0)
    assert (entry.state, entry.attempts, entry.first_seen, entry.updated) == (DONE, 2, 100, 162)


def test_mark_sent_from_pending_for_send_pending(journal: Journal) -> None:
    _seen(journal)
    entry = journal.mark_sent(M, P, uids=["1.2.5"], now=150.0)
    assert (entry.state, entry.uids, entry.attempts) == (SENT, ("1.2.5",), 0)


def test_hold_keeps_the_reason_and_release_clears_it(journal: Journal) -> None:
    _seen(journal)
    journal.retry_later(M, P, error="x", next_attempt=999.0, now=101.0)
    held = journal.hold(M, P, reason="worklist-only: no matching item", now=102.0)
    assert (held.state, held.last_error) == (HELD, "worklist-only: no matching item")
    released = journal.release(M, P, now=103.0)
    assert (released.state, released.last_error, released.next_attempt) == (P_, None, 0.0)


# -- queries -----------------------------------------------------------------------------------


def test_due_lists_pending_entries_due_now_oldest_first(journal: Journal) -> None:
    journal.seen(M, "c.jpg", size=1, mtime_ns=1, now=30.0)
    journal.seen(M, "a.jpg", size=1, mtime_ns=1, now=10.0)
    journal.seen(M, "b.jpg", size=1, mtime_ns=1, now=20.0)
    journal.seen(M, "d.jpg", size=1, mtime_ns=1, now=5.0)
    journal.seen("other", "e.jpg", size=1, mtime_ns=1, now=1.0)
    journal.retry_later(M, "b.jpg", error="A700", next_attempt=100.0, now=40.0)
    journal.hold(M, "d.jpg", reason="held", now=40.0)
    assert [e.path for e in journal.due(M, now=50.0)] == ["a.jpg", "c.jpg"]
    assert [e.path for e in journal.due(M, now=100.0)] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [e.path for e in journal.due(M, now=100.0, limit=2)] == ["a.jpg", "b.jpg"]
    assert journal.due(M, now=100.0, limit=0) == []
    assert journal.due("nobody", now=100.0) == []
    with pytest.raises(ValueError, match="invalid limit -1"):
        journal.due(M, now=1.0, limit=-1)


def test_entries_and_counts_filter_by_monitor_and_state(journal: Journal) -> None:
    for state in FileState:
        _bring_to(journal, state, path=f"{state.value}.jpg")
    journal.seen("other", "x.jpg", size=1, mtime_ns=1, now=1.0)
    assert len(journal.entries()) == 7
    assert [e.path for e in journal.entries(M, [SENT, DONE])] == [
        "done.jpg",
        "sent.jpg",
    ]  # same first_seen: by path
    assert [e.monitor for e in journal.entries(states=[P_])] == ["other", M]
    assert journal.entries(M, []) == []
    assert journal.counts(M) == dict.fromkeys(FileState, 1)
    assert journal.counts() == {**dict.fromkeys(FileState, 1), P_: 2}
    assert journal.counts("nobody") == dict.fromkeys(FileState, 0)
    assert list(journal.counts()) == list(FileState)


def test_closed_journal_refuses_work(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.close()
    journal.close()
    with pytest.raises(ValueError, match="is closed"):
        journal.get(M, P)
    with pytest.raises(ValueError, match="is closed"):
        journal.seen(M, P, size=1, mtime_ns=1, now=1.0)


# -- persistence and recovery ------------------------------------------------------------------


def test_state_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "journal.sqlite"
    with Journal(path) as journal:
        entries = [_bring_to(journal, state, path=f"{state.value}.jpg") for state in FileState]
    assert path.is_file()
    with Journal(path) as journal:
        assert journal.entries() == sorted(entries, key=lambda e: (e.first_seen, e.path))
        assert journal.integrity_ok()


def test_recover_turns_sending_into_pending_and_keeps_sent(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        for state in FileState:
            _bring_to(journal, state, path=f"{state.value}.jpg")
        journal.seen(M, "late.jpg", size=1, mtime_ns=1, now=150.0)
        journal.begin_attempt(M, "late.jpg", now=151.0)
    with Journal(path) as journal:
        recovered = journal.recover(now=300.0)
        assert [(e.path, e.state, e.next_attempt, e.updated) for e in recovered] == [
            ("sending.jpg", P_, 0.0, 300.0),
            ("late.jpg", P_, 0.0, 300.0),
        ]
        assert recovered[0].uids == ("1.2.3",)
        assert recovered[0].attempts == 1
        assert recovered[0].last_error is not None
        assert "interrupted" in recovered[0].last_error
        assert journal.get(M, "sending.jpg") == recovered[0]
        assert journal.get(M, "sent.jpg").state is SENT  # type: ignore[union-attr]
        assert journal.counts()[SENDING] == 0
        assert journal.recover(now=301.0) == []


# -- unusable files ----------------------------------------------------------------------------


def test_a_file_that_is_not_sqlite_raises_config_error_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    content = b"this is a settings file, not a database\n" * 200
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="not a database") as raised:
        Journal(path)
    assert raised.value.path == path
    assert str(path) in str(raised.value)
    assert path.read_bytes() == content


def test_a_corrupt_journal_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        for number in range(400):
            journal.seen(M, f"{number:04}.jpg", size=number, mtime_ns=1, now=float(number))
            journal.mark_failed(M, f"{number:04}.jpg", error="x" * 200, now=float(number))
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096
    data[4096 : len(data) - 4096] = random.Random(7).randbytes(len(data) - 8192)  # noqa: S311
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"(malformed|corrupt)") as raised:
        Journal(path)
    assert raised.value.path == path


def test_a_newer_schema_version_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute(f"PRAGMA user_version = {Journal.SCHEMA_VERSION + 1}")
    newer, known = Journal.SCHEMA_VERSION + 1, Journal.SCHEMA_VERSION
    with pytest.raises(
        ConfigError, match=rf"newer sendtopacs \(schema version {newer}; .* up to {known}\)"
    ):
        Journal(path)


def test_a_version_1_journal_is_upgraded_and_keeps_its_entries(tmp_path: Path) -> None:
    """Version 1 had no ``assigned`` column: opening it adds the column, entries stay."""
    path = tmp_path / "journal.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute(
            "CREATE TABLE entries (monitor TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT "
            "NULL, mtime_ns INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, "
            "next_attempt REAL NOT NULL, last_error TEXT, uids TEXT NOT NULL, first_seen REAL "
            "NOT NULL, updated REAL NOT NULL, PRIMARY KEY (monitor, path)) WITHOUT ROWID"
        )
        raw.execute(
            "INSERT INTO entries VALUES ('m', 'a.jpg', 3, 4, 'pending', 1, 0, 'x', '[]', 5, 6)"
        )
        raw.execute("PRAGMA user_version = 1")
        raw.commit()
    with Journal(path) as journal:
        entry = journal.get("m", "a.jpg")
        assert entry is not None
        assert (entry.size, entry.attempts, entry.last_error, entry.assigned) == (3, 1, "x", None)
        assigned = Assignment(day=dt.date(2026, 3, 1), instance_number=7)
        assert journal.assign("m", "a.jpg", assigned, now=7.0).assigned == assigned
    with contextlib.closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (Journal.SCHEMA_VERSION,)
    with Journal(path) as journal:
        entry = journal.get("m", "a.jpg")
        assert entry is not None
        assert entry.assigned == assigned


def test_the_first_assignment_is_kept_until_the_content_changes(tmp_path: Path) -> None:
    first = Assignment(day=dt.date(2026, 3, 1), instance_number=2)
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.seen("m", "a.jpg", size=1, mtime_ns=1, now=1.0)
        journal.assign("m", "a.jpg", first, now=2.0)
        later = Assignment(day=dt.date(2026, 3, 2), instance_number=1)
        assert journal.assign("m", "a.jpg", later, now=3.0).assigned == first
        journal.begin_attempt("m", "a.jpg", now=4.0)
        journal.retry_later("m", "a.jpg", error="A700", next_attempt=5.0, now=4.5)
        kept = journal.get("m", "a.jpg")
        assert kept is not None
        assert kept.assigned == first
        # Other content under the same name: new objects, nothing assigned yet.
        assert journal.seen("m", "a.jpg", size=2, mtime_ns=2, now=6.0).assigned is None
        with pytest.raises(KeyError, match="no entry"):
            journal.assign("m", "b.jpg", first, now=7.0)


def test_another_sqlite_database_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute("CREATE TABLE patients (name TEXT)")
    with pytest.raises(ConfigError, match=r"not a sendtopacs journal .*\['patients'\]"):
        Journal(path)


def test_a_path_that_cannot_hold_a_journal_raises_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot create the journal's folder"):
        Journal(blocker / "journal.sqlite")
    with pytest.raises(
        ConfigError, match=r"cannot open the journal: unable to open database file"
    ) as raised:
        Journal(tmp_path)
    assert raised.value.path == tmp_path


# -- concurrency (WAL) -------------------------------------------------------------------------


def test_readers_on_other_connections_see_committed_states(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as writer, Journal(path) as reader:
        _seen(writer)
        assert reader.get(M, P) == writer.get(M, P)
        writer.begin_attempt(M, P, now=101.0, uids=["1.2.3"])
        assert reader.get(M, P).state is SENDING  # type: ignore[union-attr]
        assert reader.counts()[SENDING] == 1


def test_an_open_read_transaction_does_not_block_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as writer:
        _seen(writer)
        with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=0.1)) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            raw.execute("BEGIN")
            assert raw.execute("SELECT state FROM entries").fetchall() == [("pending",)]
            writer.begin_attempt(M, P, now=101.0)  # would wait for the reader without WAL
            writer.mark_sent(M, P, uids=["1.2.3"], now=102.0)
            assert raw.execute("SELECT state FROM entries").fetchall() == [("pending",)]
            raw.execute("COMMIT")
            assert raw.execute("SELECT state FROM entries").fetchall() == [("sent",)]


def test_one_writer_thread_and_reader_threads_share_a_journal(journal: Journal) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                counted = sum(journal.counts().values())  # the writer only adds entries
                listed = journal.entries()
                assert counted <= len(listed)
                assert all(entry.state in FileState for entry in listed)
        except BaseException as exc:  # handed to the main thread below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for number in range(200):
        name = f"{number}.jpg"
        journal.seen(M, name, size=1, mtime_ns=1, now=float(number))
        journal.begin_attempt(M, name, now=float(number))
        journal.mark_sent(M, name, uids=[f"1.2.{number}"], now=float(number))
        journal.mark_done(M, name, now=float(number))
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert journal.counts()[DONE] == 200


# -- kill -9 -----------------------------------------------------------------------------------

#: What the child does with entry n, by n % 4: (call, resulting state, resulting attempts).
SCRIPTS: Final = (
    (("seen", "pending", 0), ("begin", "sending", 1), ("sent", "sent", 1), ("done", "done", 1)),
    (
        ("seen", "pending", 0),
        ("begin", "sending", 1),
        ("retry", "pending", 1),
        ("begin", "sending", 2),
        ("sent", "sent", 2),
        ("done", "done", 2),
    ),
    (("seen", "pending", 0), ("begin", "sending", 1), ("failed", "failed", 1)),
    (
        ("seen", "pending", 0),
        ("hold", "held", 0),
        ("release", "pending", 0),
        ("begin", "sending", 1),
        ("sent", "sent", 1),
        ("done", "done", 1),
    ),
)

CHILD: Final = """
import sys
from sendtopacs_core.journal import Journal

SCRIPTS = {scripts!r}
journal = Journal(sys.argv[1])
run = sys.argv[2]
journal.recover(now=0.0)
print("ready", flush=True)
m, n = "mon", 0
while True:
    p = f"{{run}}/{{n}}.dcm"
    for step, (call, _, _) in enumerate(SCRIPTS[n % len(SCRIPTS)]):
        t = n * 10.0 + step
        if call == "seen":
            journal.seen(m, p, size=n, mtime_ns=n, now=t)
        elif call == "begin":
            journal.begin_attempt(m, p, now=t, uids=[f"1.2.{{n}}"])
        elif call == "retry":
            journal.retry_later(m, p, error="A700", next_attempt=0.0, now=t)
        elif call == "sent":
            journal.mark_sent(m, p, uids=[f"1.2.{{n}}"], now=t)
        elif call == "done":
            journal.mark_done(m, p, now=t)
        elif call == "failed":
            journal.mark_failed(m, p, error="C000", now=t)
        elif call == "hold":
            journal.hold(m, p, reason="held", now=t)
        elif call == "release":
            journal.release(m, p, now=t)
        print(f"ok {{n}} {{step}}", flush=True)
    n += 1
"""


def _run_and_kill(path: Path, run: str, delay_s: float) -> dict[int, int]:
    """Run the child, SIGKILL it after ``delay_s``; return the last step printed per entry."""
    code = CHILD.format(scripts=SCRIPTS)
    with subprocess.Popen(
        [sys.executable, "-c", code, str(path), run],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        first = child.stdout.readline()
        if first != "ready\n":
            _, err = child.communicate(timeout=30)
            pytest.fail(f"the child did not start: {first!r} {err}")
        time.sleep(delay_s)
        child.kill()
        assert child.stderr is not None
        # read through the same buffered stream: readline() may hold lines read ahead
        out, err = child.stdout.read(), child.stderr.read()
        assert child.wait(timeout=30) == -9, err
    printed: dict[int, int] = {}
    for line in out.splitlines():
        word, number, step = line.split()
        assert word == "ok"
        printed[int(number)] = int(step)
    return printed


def test_kill_9_at_random_moments_loses_no_returned_transition(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    rng = random.Random(20240131)  # noqa: S311 (seeded: a reproducible run)
    expected: dict[str, int] = {}  # entry path -> last step the child reported
    for run in range(10):
        printed = _run_and_kill(path, f"r{run}", rng.uniform(0.0, 0.2))
        expected.update({f"r{run}/{n}.dcm": step for n, step in printed.items()})
        with Journal(path) as journal:
            assert journal.integrity_ok()
            found = {entry.path: entry for entry in journal.entries("mon")}
        ahead = 0
        for name, entry in found.items():
            number = int(name.split("/")[1].removesuffix(".dcm"))
            reported = expected.get(name, -1)
            window = [(s, a) for _, s, a in SCRIPTS[number % len(SCRIPTS)]][
                max(reported, 0) : reported + 2
            ]
            if not name.startswith(f"r{run}/"):  # the next child's recover() ran since
                window += [("pending", a) for s, a in window if s == "sending"]
            here = (entry.state.value, entry.attempts)
            # the entry is where the child said, or one step further (the call in flight)
            assert here in window, (name, here, reported)
            if name.startswith(f"r{run}/") and (reported < 0 or here != window[0]):
                ahead += 1
            assert entry.uids in {(), (f"1.2.{number}",)}
        assert ahead <= 1
        assert set(expected) <= set(found), "a returned transition was lost"
    with Journal(path) as journal:
        journal.recover(now=1e9)
        assert journal.counts()[SENDING] == 0
        assert journal.integrity_ok()


# -- a model of the states ---------------------------------------------------------------------

KEYS: Final = [(monitor, path) for monitor in ("a", "b") for path in ("x.jpg", "d/y.jpg")]


class JournalMachine(RuleBasedStateMachine):
    """Drive a file journal with random calls and compare it with a dictionary model."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.path = Path(self.folder.name) / "journal.sqlite"
        self.journal = Journal(self.path)
        self.model: dict[tuple[str, str], dict[str, object]] = {}
        self.sent_recorded: set[tuple[str, str]] = set()
        self.now = 0.0

    def teardown(self) -> None:
        self.journal.close()
        self.folder.cleanup()

    def tick(self) -> float:
        self.now += 1.0
        return self.now

    def state_of(self, key: tuple[str, str]) -> FileState | None:
        return None if key not in self.model else FileState(str(self.model[key]["state"]))

    def attempt(
        self,
        key: tuple[str, str],
        allowed: set[FileState],
        call: Callable[[], JournalEntry],
        **changes: object,
    ) -> None:
        state = self.state_of(key)
        if state is None:
            with pytest.raises(KeyError):
                call()
        elif state not in allowed:
            with pytest.raises(ValueError, match="cannot"):
                call()
        else:
            entry = call()
            self.model[key].update(changes)
            assert entry.state.value == self.model[key]["state"]

    @initialize()
    def start(self) -> None:
        assert self.journal.entries() == []

    @rule(key=st.sampled_from(KEYS), size=st.integers(0, 2), mtime=st.integers(0, 2))
    def seen(self, key: tuple[str, str], size: int, mtime: int) -> None:
        entry = self.journal.seen(*key, size=size, mtime_ns=mtime, now=self.tick())
        old = self.model.get(key)
        new = {"state": "pending", "attempts": 0, "uids": (), "size": size, "mtime": mtime}
        if old is None or (
            (old["size"], old["mtime"]) != (size, mtime) and old["state"] in {"done", "failed"}
        ):
            self.model[key] = new
            self.sent_recorded.discard(key)
        else:
            old.update(size=size, mtime=mtime)
        assert entry.state.value == self.model[key]["state"]

    @rule(key=st.sampled_from(KEYS), uids=st.lists(st.sampled_from(["1.2.1", "1.2.2"]), max_size=2))
    def begin_attempt(self, key: tuple[str, str], uids: list[str]) -> None:
        model = self.model.get(key, {})
        attempts, kept = model.get("attempts", 0), model.get("uids", ())
        assert isinstance(attempts, int)
        self.attempt(
            key,
            {P_},
            lambda: self.journal.begin_attempt(*key, now=self.tick(), uids=uids),
            state="sending",
            attempts=attempts + 1,
            uids=tuple(uids) or kept,
        )

    @rule(key=st.sampled_from(KEYS))
    def retry_later(self, key: tuple[str, str]) -> None:
        now = self.tick()
        self.attempt(
            key,
            {P_, SENDING},
            lambda: self.journal.retry_later(*key, error="A700", next_attempt=now + 5, now=now),
            state="pending",
        )

    @rule(key=st.sampled_from(KEYS), uids=st.lists(st.sampled_from(["1.2.1", "1.2.3"]), max_size=2))
    def mark_sent(self, key: tuple[str, str], uids: list[str]) -> None:
        kept = self.model.get(key, {}).get("uids", ())
        if self.state_of(key) in {P_, SENDING}:
            self.sent_recorded.add(key)
        self.attempt(
            key,
            {P_, SENDING},
            lambda: self.journal.mark_sent(*key, uids=uids, now=self.tick()),
            state="sent",
            uids=tuple(uids) or kept,
        )

    @rule(key=st.sampled_from(KEYS))
    def mark_failed(self, key: tuple[str, str]) -> None:
        self.attempt(
            key,
            {P_, SENDING, HELD, SENT},
            lambda: self.journal.mark_failed(*key, error="C000", now=self.tick()),
            state="failed",
        )

    @rule(key=st.sampled_from(KEYS))
    def mark_done(self, key: tuple[str, str]) -> None:
        if self.state_of(key) is SENT:
            assert key in self.sent_recorded
        self.attempt(
            key, {SENT}, lambda: self.journal.mark_done(*key, now=self.tick()), state="done"
        )

    @rule(key=st.sampled_from(KEYS))
    def hold(self, key: tuple[str, str]) -> None:
        self.attempt(
            key,
            {P_, SENDING, HELD},
            lambda: self.journal.hold(*key, reason="held", now=self.tick()),
            state="held",
        )

    @rule(key=st.sampled_from(KEYS))
    def release(self, key: tuple[str, str]) -> None:
        self.attempt(
            key, {HELD}, lambda: self.journal.release(*key, now=self.tick()), state="pending"
        )

    @rule(key=st.sampled_from(KEYS))
    def forget(self, key: tuple[str, str]) -> None:
        if key not in self.model:
            with pytest.raises(KeyError):
                self.journal.forget(*key)
            return
        self.journal.forget(*key)
        del self.model[key]
        self.sent_recorded.discard(key)

    @rule()
    def recover(self) -> None:
        recovered = self.journal.recover(now=self.tick())
        sending = {key for key in self.model if self.model[key]["state"] == "sending"}
        assert {(entry.monitor, entry.path) for entry in recovered} == sending
        for key in sending:
            self.model[key]["state"] = "pending"

    @precondition(lambda self: self.now > 0)
    @rule()
    def reopen(self) -> None:
        self.journal.close()
        self.journal = Journal(self.path)

    @invariant()
    def matches_the_model(self) -> None:
        entries = {(entry.monitor, entry.path): entry for entry in self.journal.entries()}
        assert set(entries) == set(self.model), "an entry was lost or invented"
        for key, entry in entries.items():
            model = self.model[key]
            assert entry.state.value == model["state"]
            assert (entry.attempts, entry.uids) == (model["attempts"], model["uids"])
            assert (entry.size, entry.mtime_ns) == (model["size"], model["mtime"])
            if entry.state in {SENT, DONE}:
                assert key in self.sent_recorded, "done or sent without a recorded success"
        counts = self.journal.counts()
        assert sum(counts.values()) == len(self.model)
        for state in FileState:
            assert counts[state] == sum(1 for m in self.model.values() if m["state"] == state)


JournalMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
test_journal_state_machine = JournalMachine.TestCase
