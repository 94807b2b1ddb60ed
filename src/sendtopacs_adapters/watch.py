"""``sendtopacs watch``: discover files in the monitors' folders and hand them to the core.

The adapter only finds files: operating-system events through watchdog (``native``) or
scans (``polling``, and a rescan at the interval in native mode too, for what events miss).
Taking, sending, retrying and disposing are the core's :class:`~sendtopacs_core.Forwarder`.

- One watcher per settings file: a lock file beside the journal names the process that holds
  it; a second watcher refuses to start and says which; a lock left by a dead process is
  taken over.
- SIGTERM and SIGINT stop it gracefully (the file in flight finishes or stays pending).
- ``--list`` shows the files waiting and the sent ones, or only the waiting ones with
  ``main.clean_sent_files_from_list`` on.
- ``--once`` processes what is there (waiting for files still settling) and exits.
- stderr (the log under a service manager) carries states, counts and status codes only;
  file names and messages (patient data) only with ``-v``. ``--json`` events on stdout, the
  user's explicit output, carry them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import queue
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Final

import platformdirs
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from sendtopacs_adapters._common import EXIT_OK, EXIT_PARTIAL, Context, UsageError
from sendtopacs_core import (
    FileState,
    Forwarder,
    ForwardEvent,
    Journal,
    JournalEntry,
    MonitorRule,
    Settings,
    WatchMode,
)

__all__ = ["cmd_watch", "journal_path", "watcher_lock"]

_TICK_S: Final = 0.2
_STATUS_EVERY_S: Final = 60.0
#: A DIMSE status code in an event's message (``0xA900``): no patient data, shown by default.
_STATUS_CODE: Final = re.compile(r"\b0x[0-9A-Fa-f]{4}\b")


def journal_path(settings_path: Path) -> Path:
    """The journal of a settings file (one per settings file, in the user's state folder)."""
    key = hashlib.sha256(str(settings_path.resolve()).encode()).hexdigest()[:16]
    return platformdirs.user_state_path("sendtopacs") / f"journal-{key}.sqlite"


@contextlib.contextmanager
def watcher_lock(journal: Path) -> Iterator[None]:
    """Hold the one-watcher lock of a journal; refuse when another live process holds it.

    Raises
    ------
    UsageError
        Another watcher runs on the same settings (its PID is named).
    """
    lock_path = journal.with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UsageError(
                f"another sendtopacs watch runs on these settings (process {holder}; lock "
                f"{lock_path})"
            ) from exc
        # The kernel drops a dead process's lock, so a stale file is simply taken over.
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


class _Events(FileSystemEventHandler):
    """watchdog callbacks (in its thread) -> paths on a queue for the main loop."""

    def __init__(self, paths: queue.Queue[Path]) -> None:
        self._paths = paths

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                text = raw.decode() if isinstance(raw, bytes) else raw
                self._paths.put(Path(text))


class _Monitor:
    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self.rule: MonitorRule = forwarder.monitor
        self.paths: queue.Queue[Path] = queue.Queue()
        self.next_scan = 0.0
        self.observer: BaseObserver | None = None

    def start(self) -> None:
        self.rule.directory.mkdir(parents=True, exist_ok=True)
        if self.rule.mode is WatchMode.NATIVE:
            observer = Observer()
            observer.schedule(_Events(self.paths), str(self.rule.directory), recursive=True)
            observer.daemon = True
            observer.start()
            self.observer = observer

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)

    def poll(self, now: float) -> list[ForwardEvent]:
        while True:
            try:
                self.forwarder.observe(self.paths.get_nowait())
            except queue.Empty:
                break
        if now >= self.next_scan:
            self.forwarder.scan()
            self.next_scan = now + self.rule.interval_s
        return self.forwarder.step()


def _forwarders(settings: Settings, journal: Journal) -> list[Forwarder]:
    # Worklist matching (file names, DICOM headers) is the core's, from the settings.
    return [Forwarder(settings, monitor, journal) for monitor in settings.monitors]


def cmd_watch(context: Context) -> int:
    """Run every monitor until a signal (or once with ``--once``); ``--list`` shows pending."""
    args = context.args
    settings = context.working_settings()
    if not settings.monitors:
        raise UsageError("no monitor is configured (add one to the monitors section)")
    journal_file: Path = args.journal or journal_path(context.settings_path)
    if args.list:
        with Journal(journal_file) as journal:
            return _list(context, journal, clean_sent=settings.main.clean_sent_files_from_list)
    with watcher_lock(journal_file), Journal(journal_file) as journal:
        recovered = journal.recover(now=time.time())
        monitors = [_Monitor(forwarder) for forwarder in _forwarders(settings, journal)]
        if args.send_pending:
            for monitor in monitors:
                _emit(context, monitor.forwarder.send_pending())
            return EXIT_OK
        context.err.write(
            f"sendtopacs watch: {len(monitors)} monitor(s); journal {journal_file}"
            + (
                f"; {len(recovered)} file(s) in flight at the last stop are pending again"
                if recovered
                else ""
            )
            + "\n"
        )
        if args.once:
            return _once(context, monitors, journal)
        return _run(context, monitors, journal)


def _run(context: Context, monitors: list[_Monitor], journal: Journal) -> int:
    stop = threading.Event()

    def on_signal(_number: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    for monitor in monitors:
        monitor.start()
    next_status = time.monotonic() + _STATUS_EVERY_S
    try:
        while not stop.is_set():
            now = time.time()
            for monitor in monitors:
                _emit(context, monitor.poll(now))
            if time.monotonic() >= next_status:
                _status(context, journal)
                next_status = time.monotonic() + _STATUS_EVERY_S
            stop.wait(_TICK_S)
    finally:
        for monitor in monitors:
            monitor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _status(context, journal)
    return EXIT_OK


def _once(context: Context, monitors: list[_Monitor], journal: Journal) -> int:
    """Scan, wait for what is settling, send everything due now; retries wait for the next run."""
    for monitor in monitors:
        monitor.forwarder.scan()
    deadline = time.time() + max(m.rule.settle_s for m in monitors) + 1
    failed = False  # in this run: earlier runs' failures are in the journal too
    while True:
        for monitor in monitors:
            events = monitor.forwarder.step()
            failed = failed or any(event.kind == "failed" for event in events)
            _emit(context, events)
        settling = any(m.forwarder.settling for m in monitors)
        if not settling or time.time() > deadline:
            break
        time.sleep(_TICK_S)
        for monitor in monitors:
            monitor.forwarder.scan()
    _status(context, journal)
    return EXIT_PARTIAL if failed and not context.args.json else EXIT_OK


_PENDING_STATES: Final = (FileState.PENDING, FileState.HELD, FileState.SENDING)
_SENT_STATES: Final = (FileState.SENT, FileState.DONE)


def _list(context: Context, journal: Journal, *, clean_sent: bool) -> int:
    """The files waiting and, unless ``main.clean_sent_files_from_list``, the sent ones."""
    pending = journal.entries(states=_PENDING_STATES)
    sent = [] if clean_sent else journal.entries(states=_SENT_STATES)
    if context.args.json:
        context.emit_json(
            {
                "pending": [_entry_document(entry) for entry in pending],
                "sent": [_entry_document(entry) for entry in sent],
            }
        )
    else:
        for entry in (*pending, *sent):
            why = f" ({entry.last_error})" if entry.last_error else ""
            context.out.write(f"{entry.monitor}: {entry.path} [{entry.state}]{why}\n")
        shown = "" if clean_sent else f"; {len(sent)} sent"
        context.out.write(f"{len(pending)} file(s) pending{shown}\n")
    return EXIT_OK


def _entry_document(entry: JournalEntry) -> dict[str, Any]:
    return {
        "monitor": entry.monitor,
        "path": entry.path,
        "state": str(entry.state),
        "attempts": entry.attempts,
        "last_error": entry.last_error,
    }


def _emit(context: Context, events: list[ForwardEvent]) -> None:
    for event in events:
        if context.args.json:
            context.emit_json_line(
                {
                    "event": event.kind,
                    "monitor": event.monitor,
                    "path": event.path,
                    "message": event.message,
                    "time": event.time,
                }
            )
        elif context.args.verbose:
            context.err.write(f"{event.monitor}: {event.kind}: {event.path}: {event.message}\n")
        elif event.kind in ("failed", "retry"):
            # stderr is the service's log: the state and the status code, never the file's
            # name or the message (either may name the patient); -v shows them.
            codes = sorted(set(_STATUS_CODE.findall(event.message)))
            status = f" (status {', '.join(codes)})" if codes else ""
            context.err.write(f"{event.monitor}: {event.kind}{status}; -v names the file\n")


def _status(context: Context, journal: Journal) -> None:
    counts: dict[Any, int] = journal.counts()
    text = ", ".join(f"{state}: {count}" for state, count in counts.items() if count)
    if context.args.json:
        context.emit_json_line({"event": "status", **{str(k): v for k, v in counts.items()}})
    else:
        context.err.write(f"sendtopacs watch: {text or 'nothing yet'}\n")
