# size: the ledger, its SQL and the state machine it enforces belong together
"""A durable per-file ledger for the folder watcher, kept in SQLite.

The :class:`Journal` records every file a monitor discovers and what became of it, so that after
``kill -9`` at any instant a restart loses nothing, removes or moves no source before its success
was recorded, and repeats at most the file in flight, with the same instance UIDs (stored
before the first send), so the PACS sees a duplicate rather than a new object.

States and transitions (:class:`FileState`)::

                   +------------ retry_later, recover ------------+
                   v                                              |
    seen (new) -> PENDING ------------ begin_attempt ---------> SENDING
                   | |  ^                                         |  |
                   | |  +--- release --- HELD <------ hold -------+  | mark_sent
                   | +---------- hold ----^                          v
                   +--------- mark_sent (send --pending) -------->  SENT -- mark_done --> DONE

    mark_failed:           PENDING, SENDING, HELD, SENT --> FAILED  (SENT: commitment refused)
    seen (size or mtime changed):          DONE, FAILED --> PENDING  (a new file, same name)
    forget:                                   any state --> no entry

``recover`` runs at start-up only: a SENDING entry then means the process died mid-send. SENT
stays SENT: its disposition (remove or move) is done again. Any other transition raises
:class:`ValueError`, and a file the journal does not know raises :class:`KeyError`.

Durability: write-ahead log with ``synchronous=NORMAL``; every change is one transaction
committed before the method returns, so it survives ``kill -9`` at any instant. A power cut may
lose the last changes, which only makes a file be sent again: a source is removed only after
the PACS answered success. (``FULL`` fsyncs every change: half the watcher's rate.) One
connection, guarded by a lock, serves one writer thread and any number of reader threads;
other processes may open the same file and read (WAL readers never block the writer).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, ClassVar, Final, Self, TypeAlias

import attrs

from sendtopacs_core.errors import ConfigError
from sendtopacs_core.identity import Assignment

__all__ = ["FileState", "Journal", "JournalEntry"]

_MEMORY: Final = ":memory:"
_BUSY_TIMEOUT_S: Final = 10.0
_INTERRUPTED: Final = "attempt interrupted: the process stopped while sending"


class _Keep(Enum):
    KEEP = "keep"  # a sentinel: keep the stored value


class FileState(StrEnum):
    """Where a discovered file stands; see the module docstring for the transitions."""

    PENDING = "pending"
    """Discovered, waiting to be sent (or retried at ``next_attempt``)."""
    SENDING = "sending"
    """An attempt is under way (found at start-up: the process died mid-send)."""
    SENT = "sent"
    """The PACS accepted it; the source's disposition (remove or move) is not done yet."""
    FAILED = "failed"
    """Given up: moved to the failed folder with a reason file (or about to be)."""
    DONE = "done"
    """Sent and its source removed or moved: finished."""
    HELD = "held"
    """Not sent on purpose, waiting for the user (no auto-forward, or no worklist match)."""


_FINISHED: Final = frozenset({FileState.DONE, FileState.FAILED})
_FROM_PENDING: Final = frozenset({FileState.PENDING})
_FROM_SENDING: Final = frozenset({FileState.SENDING})
_HOLDABLE: Final = frozenset({FileState.PENDING, FileState.SENDING, FileState.HELD})
_INT: Final = attrs.validators.instance_of(int)
_STR: Final = attrs.validators.instance_of(str)
_NUMBER: Final = attrs.validators.instance_of((int, float))


@attrs.frozen(kw_only=True)
class JournalEntry:
    """One file of one monitor, as the journal last recorded it.

    Attributes: ``monitor`` (its name); ``path`` (relative to the monitor's folder,
    ``/``-separated); ``size`` and ``mtime_ns`` (bytes and modification time in nanoseconds,
    when the file was last seen); ``state``; ``attempts`` (send attempts begun in this cycle);
    ``next_attempt`` (when a PENDING file is due, epoch seconds, 0 = now); ``last_error`` (the
    last failure or the reason for a hold, else ``None``); ``uids`` (the SOP Instance UIDs sent
    or to be sent, derived before the first send); ``first_seen`` (when this cycle of the file
    was discovered) and ``updated`` (when the entry last changed), both in epoch seconds;
    ``assigned`` (what the first conversion of a non-DICOM file assigned to it: the day and
    Instance Number, reused by every retry so that it makes the same objects; else ``None``).
    """

    monitor: str = attrs.field(validator=_STR)
    path: str = attrs.field(validator=_STR)
    size: int = attrs.field(validator=[_INT, attrs.validators.ge(0)])
    mtime_ns: int = attrs.field(validator=_INT)
    state: FileState = attrs.field(validator=attrs.validators.instance_of(FileState))
    attempts: int = attrs.field(validator=[_INT, attrs.validators.ge(0)])
    next_attempt: float = attrs.field(validator=_NUMBER)
    last_error: str | None = attrs.field(validator=attrs.validators.optional(_STR))
    uids: tuple[str, ...] = attrs.field(
        validator=attrs.validators.deep_iterable(_STR, attrs.validators.instance_of(tuple))
    )
    first_seen: float = attrs.field(validator=_NUMBER)
    updated: float = attrs.field(validator=_NUMBER)
    assigned: Assignment | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Assignment))
    )


_COLUMNS: Final = tuple(attrs.fields_dict(JournalEntry))
_KEY: Final = " WHERE monitor = ? AND path = ?"
_DELETE: Final = "DELETE FROM entries" + _KEY  # noqa: S608
_COUNT: Final = "SELECT state, COUNT(*) FROM entries"
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM entries"  # noqa: S608
_WRITE: Final = (
    f"INSERT OR REPLACE INTO entries ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_RECOVER: Final = (
    "UPDATE entries SET state = ?, next_attempt = 0, last_error = ?, updated = ? "  # noqa: S608
    f"WHERE state = ? RETURNING {', '.join(_COLUMNS)}"
)
_ORDER: Final = " ORDER BY first_seen, monitor, path"
_STATE_LIST: Final = ", ".join(f"'{state.value}'" for state in FileState)

#: Schema version 2. ``WITHOUT ROWID``: the key is the natural one, (monitor, path). Version 1
#: had no ``assigned`` column; it is added when a version 1 journal is opened.
_SCHEMA: Final = (
    f"""
    CREATE TABLE entries (
        monitor      TEXT    NOT NULL,
        path         TEXT    NOT NULL,
        size         INTEGER NOT NULL CHECK (size >= 0),
        mtime_ns     INTEGER NOT NULL,
        state        TEXT    NOT NULL CHECK (state IN ({_STATE_LIST})),
        attempts     INTEGER NOT NULL CHECK (attempts >= 0),
        next_attempt REAL    NOT NULL,
        last_error   TEXT,
        uids         TEXT    NOT NULL,
        first_seen   REAL    NOT NULL,
        updated      REAL    NOT NULL,
        assigned     TEXT,
        PRIMARY KEY (monitor, path)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX entries_by_state ON entries (monitor, state, first_seen)",
)

#: A row as sqlite3 returns it: raw column values.
_Row: TypeAlias = tuple[Any, ...]


def _to_row(entry: JournalEntry) -> _Row:
    values = attrs.asdict(entry, recurse=False)
    assigned = entry.assigned
    values.update(
        state=entry.state.value,
        uids=json.dumps(list(entry.uids)),
        assigned=None
        if assigned is None
        else json.dumps(
            {"day": assigned.day.isoformat(), "instance_number": assigned.instance_number}
        ),
    )
    return tuple(values[column] for column in _COLUMNS)


def _assignment(text: str | None) -> Assignment | None:
    if text is None:
        return None
    value = json.loads(text)
    return Assignment(
        day=dt.date.fromisoformat(value["day"]), instance_number=int(value["instance_number"])
    )


def _from_row(row: _Row) -> JournalEntry:
    values = dict(zip(_COLUMNS, row, strict=True))
    values.update(
        state=FileState(values["state"]),
        uids=tuple(json.loads(values["uids"])),
        assigned=_assignment(values["assigned"]),
    )
    for column in ("next_attempt", "first_seen", "updated"):  # RETURNING gives 1 for 1.0
        values[column] = float(values[column])
    return JournalEntry(**values)


def _describe(monitor: str, path: str) -> str:
    return f"{path!r} of monitor {monitor!r}"


def _check_path(path: str) -> None:
    parts = path.split("/")
    if not path or path.startswith("/") or "\x00" in path or {"", ".", ".."} & set(parts):
        msg = f"invalid journal path {path!r}: expected relative, '/'-separated, no ''/./.. parts"
        raise ValueError(msg)


class Journal:
    """The durable ledger of the files the monitors discovered (SQLite, write-ahead log).

    Parameters
    ----------
    path
        The database file; its folder and the file are created when missing.

    Raises
    ------
    ConfigError
        The file cannot be created or opened, is not a sendtopacs journal (or not a SQLite
        database), is corrupt, has a newer schema version, or cannot use write-ahead logging.

    Notes
    -----
    Any method may raise :class:`sqlite3.OperationalError` for a transient condition (disk
    full, I/O error, locked past the busy timeout by another process): nothing changed, and the
    call can be repeated. Corruption found later raises :class:`ConfigError`.

    Examples
    --------
    >>> with Journal.in_memory() as journal:
    ...     entry = journal.seen("endo", "a.jpg", size=10, mtime_ns=1, now=100.0)
    ...     entry = journal.begin_attempt("endo", "a.jpg", now=101.0, uids=["1.2.3"])
    ...     entry = journal.mark_sent("endo", "a.jpg", uids=["1.2.3"], now=102.0)
    ...     journal.mark_done("endo", "a.jpg", now=103.0).state
    <FileState.DONE: 'done'>
    """

    SCHEMA_VERSION: ClassVar[int] = 2

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._lock = threading.RLock()
        self._path = os.fspath(path)
        self._closed = False
        is_memory = self._path == _MEMORY
        if not is_memory:
            try:
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the journal's folder: {exc}", path=path) from exc
        try:
            self._conn = sqlite3.connect(
                self._path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the journal: {exc}", path=path) from exc
        try:
            self._configure(is_memory=is_memory)
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.Error):
                raise ConfigError(f"unusable journal: {exc}", path=path) from exc
            raise

    @classmethod
    def in_memory(cls) -> Journal:
        """Return a journal kept in memory only (for tests); it vanishes when closed."""
        return cls(_MEMORY)

    def close(self) -> None:
        """Close the database connection; closing twice does nothing."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def seen(
        self, monitor: str, path: str, *, size: int, mtime_ns: int, now: float
    ) -> JournalEntry:
        """Record that a file is present, with its size (bytes) and modification time (ns).

        ``path`` is relative to the monitor's folder and ``/``-separated; ``now`` (here and in
        the other methods) is the current time in seconds since the epoch.

        Returns
        -------
        JournalEntry
            A new file is PENDING. A known file with the same size and modification time is
            unchanged. A changed file that was DONE or FAILED (a new file with the same name)
            starts a new cycle: PENDING, no attempts, UIDs or error. Any other changed file
            keeps its state, with the new size and modification time (and no assignment).

        Raises
        ------
        ValueError
            ``path`` is empty or absolute, or has empty, ``.`` or ``..`` parts.
        """
        _check_path(path)
        with self._transaction():
            current = self._select(monitor, path)
            if current is not None and (current.size, current.mtime_ns) == (size, mtime_ns):
                return current
            if current is not None and current.state not in _FINISHED:
                # New content makes new objects: what a conversion assigned goes with the old.
                entry = attrs.evolve(
                    current, size=size, mtime_ns=mtime_ns, updated=now, assigned=None
                )
                self._write(entry)
                return entry
            entry = JournalEntry(
                monitor=monitor, path=path, size=size, mtime_ns=mtime_ns,
                state=FileState.PENDING, attempts=0, next_attempt=0.0, last_error=None, uids=(),
                first_seen=now, updated=now,
            )  # fmt: skip
            self._write(entry)
            return entry

    def begin_attempt(
        self, monitor: str, path: str, *, now: float, uids: Sequence[str] = ()
    ) -> JournalEntry:
        """Record that a send attempt begins: PENDING -> SENDING, ``attempts`` + 1.

        ``uids``, the SOP Instance UIDs about to be sent, are stored when given (else kept):
        store them before the first send, so that a repeat after a crash sends the same ones.

        Raises
        ------
        KeyError, ValueError
            The file is unknown; it is not PENDING.
        """
        return self._transition(
            monitor, path, "begin an attempt for", _FROM_PENDING, now=now, uids=uids,
            state=FileState.SENDING, count_attempt=True,
        )  # fmt: skip

    def assign(self, monitor: str, path: str, assigned: Assignment, *, now: float) -> JournalEntry:
        """Record what the first conversion of the file assigned (kept while the entry lives).

        An assignment already recorded is kept: retries reuse the first one.

        Raises
        ------
        KeyError
            The file is unknown.
        """
        with self._transaction():
            current = self._select(monitor, path)
            if current is None:
                raise KeyError(f"the journal has no entry for {_describe(monitor, path)}")
            if current.assigned is not None:
                return current
            entry = attrs.evolve(current, assigned=assigned, updated=now)
            self._write(entry)
            return entry

    def retry_later(
        self, monitor: str, path: str, *, error: str, next_attempt: float, now: float
    ) -> JournalEntry:
        """Record a failed attempt: PENDING or SENDING -> PENDING, due again at ``next_attempt``.

        Raises
        ------
        KeyError, ValueError
            The file is unknown; it is neither PENDING nor SENDING.
        """
        return self._transition(
            monitor, path, "schedule a retry of", _FROM_PENDING | _FROM_SENDING, now=now,
            state=FileState.PENDING, last_error=error, next_attempt=next_attempt,
        )  # fmt: skip

    def mark_sent(
        self, monitor: str, path: str, *, uids: Sequence[str], now: float
    ) -> JournalEntry:
        """Record that the PACS accepted the file: SENDING (or PENDING) -> SENT.

        PENDING -> SENT is for a file sent by ``sendtopacs send --pending``. ``uids`` replace
        the stored UIDs when given (else those are kept); ``last_error`` is cleared.

        Raises
        ------
        KeyError, ValueError
            The file is unknown; it is neither SENDING nor PENDING.
        """
        return self._transition(
            monitor, path, "mark as sent", _FROM_PENDING | _FROM_SENDING, now=now, uids=uids,
            state=FileState.SENT, last_error=None,
        )  # fmt: skip

    def mark_failed(self, monitor: str, path: str, *, error: str, now: float) -> JournalEntry:
        """Record that the file is given up: PENDING, SENDING, HELD or SENT -> FAILED.

        SENT -> FAILED: the PACS accepted the file but its storage commitment says it does
        not keep it.

        Raises
        ------
        KeyError, ValueError
            The file is unknown; it is DONE or FAILED.
        """
        return self._transition(
            monitor, path, "mark as failed", _HOLDABLE | {FileState.SENT}, now=now,
            state=FileState.FAILED, last_error=error,
        )  # fmt: skip

    def mark_done(self, monitor: str, path: str, *, now: float) -> JournalEntry:
        """Record that a sent file's source was removed or moved: SENT -> DONE.

        Raises
        ------
        KeyError, ValueError
            The file is unknown; it is not SENT (a source goes only after a recorded success).
        """
        return self._transition(
            monitor, path, "mark as done", frozenset({FileState.SENT}), now=now,
            state=FileState.DONE,
        )  # fmt: skip

    def hold(self, monitor: str, path: str, *, reason: str, now: float) -> JournalEntry:
        """Keep the file for the user: PENDING, SENDING or HELD -> HELD, with the reason.

        Raises
        ------
        KeyError, ValueError
            The file is unknown; it is SENT, DONE or FAILED.
        """
        return self._transition(
            monitor, path, "hold", _HOLDABLE, now=now, state=FileState.HELD, last_error=reason
        )

    def release(self, monitor: str, path: str, *, now: float) -> JournalEntry:
        """Let a held file be sent: HELD -> PENDING, due at once, the reason cleared.

        Raises
        ------
        KeyError, ValueError
            The file is unknown; it is not HELD.
        """
        return self._transition(
            monitor, path, "release", frozenset({FileState.HELD}), now=now,
            state=FileState.PENDING, next_attempt=0.0, last_error=None,
        )  # fmt: skip

    def forget(self, monitor: str, path: str) -> None:
        """Remove the file's entry, whatever its state (the file vanished).

        Raises
        ------
        KeyError
            The file is unknown.
        """
        with self._transaction():
            if self._conn.execute(_DELETE, (monitor, path)).rowcount == 0:
                raise KeyError(f"the journal has no entry for {_describe(monitor, path)}")

    def recover(self, *, now: float) -> list[JournalEntry]:
        """Make every interrupted attempt due again: SENDING -> PENDING; call at start-up only.

        The entries keep their UIDs (a repeat sends the same instances) and get a
        ``last_error`` saying the attempt was interrupted. SENT entries stay SENT.

        Returns
        -------
        list of JournalEntry
            The entries made PENDING, first discovered first.
        """
        with self._transaction():
            parameters = (FileState.PENDING.value, _INTERRUPTED, now, FileState.SENDING.value)
            rows = self._conn.execute(_RECOVER, parameters).fetchall()
        return sorted(map(_from_row, rows), key=lambda e: (e.first_seen, e.monitor, e.path))

    def get(self, monitor: str, path: str) -> JournalEntry | None:
        """Return the file's entry, or ``None`` when the journal does not know it."""
        with self._reading():
            return self._select(monitor, path)

    def due(self, monitor: str, *, now: float, limit: int | None = None) -> list[JournalEntry]:
        """Return the monitor's PENDING entries whose ``next_attempt`` is not after ``now``.

        First discovered first, at most ``limit`` of them (all when ``None``).

        Raises
        ------
        ValueError
            ``limit`` is negative.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"invalid limit {limit}: expected None or a number >= 0")
        with self._reading():
            rows = self._conn.execute(
                f"{_SELECT} WHERE monitor = ? AND state = ? AND next_attempt <= ?{_ORDER} LIMIT ?",
                (monitor, FileState.PENDING.value, now, -1 if limit is None else limit),
            ).fetchall()
        return [_from_row(row) for row in rows]

    def entries(
        self, monitor: str | None = None, states: Iterable[FileState] | None = None
    ) -> list[JournalEntry]:
        """Return the entries of one monitor (or all), in some states (or all), oldest first."""
        clauses: list[str] = []
        parameters: list[str] = []
        if monitor is not None:
            clauses.append("monitor = ?")
            parameters.append(monitor)
        if states is not None:
            wanted = sorted({FileState(state).value for state in states})
            if not wanted:
                return []
            clauses.append(f"state IN ({', '.join('?' * len(wanted))})")
            parameters.extend(wanted)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reading():
            rows = self._conn.execute(f"{_SELECT}{where}{_ORDER}", parameters).fetchall()
        return [_from_row(row) for row in rows]

    def counts(self, monitor: str | None = None) -> dict[FileState, int]:
        """Return how many entries are in each state; every state is a key."""
        where, parameters = ("", ()) if monitor is None else (" WHERE monitor = ?", (monitor,))
        with self._reading():
            rows = self._conn.execute(f"{_COUNT}{where} GROUP BY state", parameters).fetchall()
        counts = dict.fromkeys(FileState, 0)
        for state, count in rows:
            counts[FileState(state)] = int(count)
        return counts

    def integrity_ok(self) -> bool:
        """Return whether SQLite's ``PRAGMA integrity_check`` finds the database intact."""
        with self._lock:
            self._check_open()
            try:
                rows = self._conn.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.DatabaseError:
                return False
        return [tuple(row) for row in rows] == [("ok",)]

    def _configure(self, *, is_memory: bool) -> None:
        """Set the pragmas and create or check the schema (raises sqlite3 errors as they come)."""
        conn = self._conn
        if not is_memory:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                msg = (
                    f"write-ahead logging impossible here (journal mode {mode!r}); use a local disk"
                )
                raise ConfigError(msg, path=self._path)
        conn.execute("PRAGMA synchronous = NORMAL")
        version = self._user_version()
        if version == 0:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._user_version()  # another process may have won the race
                if version == 0:
                    self._create_schema()
                    version = self.SCHEMA_VERSION
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if version == 1:
            self._upgrade_from_v1()
            version = self.SCHEMA_VERSION
        if version > self.SCHEMA_VERSION:
            msg = (
                f"the journal was written by a newer sendtopacs (schema version {version}; "
                f"this version reads up to {self.SCHEMA_VERSION})"
            )
            raise ConfigError(msg, path=self._path)
        columns = [row[1] for row in conn.execute("PRAGMA table_info(entries)").fetchall()]
        if tuple(columns) != _COLUMNS:
            msg = f"not a sendtopacs journal (table 'entries' has columns {columns})"
            raise ConfigError(msg, path=self._path)
        (check,) = conn.execute("PRAGMA quick_check(1)").fetchone()
        if check != "ok":
            raise ConfigError(f"the journal is corrupt: {check}", path=self._path)

    def _create_schema(self) -> None:
        query = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        if names := [str(name) for (name,) in self._conn.execute(query).fetchall()]:
            msg = f"not a sendtopacs journal (a SQLite database with the tables {names})"
            raise ConfigError(msg, path=self._path)
        for statement in _SCHEMA:
            self._conn.execute(statement)
        self._conn.execute(f"PRAGMA user_version = {int(self.SCHEMA_VERSION)}")

    def _upgrade_from_v1(self) -> None:
        """Version 1 -> 2: the ``assigned`` column (empty for the entries already there)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self._user_version() == 1:  # another process may have upgraded it meanwhile
                conn.execute("ALTER TABLE entries ADD COLUMN assigned TEXT")
                conn.execute(f"PRAGMA user_version = {int(self.SCHEMA_VERSION)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _user_version(self) -> int:
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        return int(version)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the journal {self._path!r} is closed")

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Hold the lock for a read, turning corruption into ConfigError."""
        with self._lock:
            self._check_open()
            try:
                yield
            except sqlite3.DatabaseError as exc:
                if type(exc) is not sqlite3.DatabaseError:  # locked, disk full: transient
                    raise
                raise ConfigError(f"unusable journal: {exc}", path=self._path) from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Hold the lock and run one write transaction, committed on success, else rolled back."""
        with self._reading():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _select(self, monitor: str, path: str) -> JournalEntry | None:
        row = self._conn.execute(f"{_SELECT}{_KEY}", (monitor, path)).fetchone()
        return None if row is None else _from_row(row)

    def _write(self, entry: JournalEntry) -> None:
        self._conn.execute(_WRITE, _to_row(entry))

    def _transition(
        self, monitor: str, path: str, action: str, allowed: frozenset[FileState], *,
        now: float, state: FileState, uids: Sequence[str] = (), count_attempt: bool = False,
        last_error: str | _Keep | None = _Keep.KEEP, next_attempt: float | None = None,
    ) -> JournalEntry:  # fmt: skip
        """Move one entry from one of the ``allowed`` states to ``state``, in one transaction."""
        with self._transaction():
            current = self._select(monitor, path)
            if current is None:
                raise KeyError(f"the journal has no entry for {_describe(monitor, path)}")
            if current.state not in allowed:
                expected = " or ".join(sorted(allowed))
                msg = (
                    f"cannot {action} {_describe(monitor, path)}: it is {current.state} "
                    f"(expected {expected})"
                )
                raise ValueError(msg)
            entry = attrs.evolve(
                current,
                state=state,
                attempts=current.attempts + count_attempt,
                uids=tuple(uids) or current.uids,
                last_error=current.last_error if last_error is _Keep.KEEP else last_error,
                next_attempt=current.next_attempt if next_attempt is None else next_attempt,
                updated=now,
            )
            self._write(entry)
            return entry
