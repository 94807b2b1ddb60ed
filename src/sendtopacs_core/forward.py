"""The unattended policy: :class:`Forwarder` takes settled files from a monitor, sends them,
retries, and disposes of them only after the outcome is recorded.

The watch adapter only discovers files (events or scans) and calls :meth:`Forwarder.observe`
and :meth:`Forwarder.step`; everything else is here, so that the HTTP API and tests use the
same policy:

1. A file is taken only after its size and modification time have stayed the same for the
   monitor's settle window (a file still being copied is waited for); temporary names
   (``*.part``, ``*.tmp``, ``*.crdownload``, ``~$*``, hidden files) are ignored.
2. Each taken file is recorded in the :class:`~sendtopacs_core.journal.Journal` before it is
   sent; each outcome is recorded as soon as the PACS answers (so that after ``kill -9`` at
   most the file in flight is sent again).
3. A success is disposed of (removed, moved to the success folder, or left) only after it is
   recorded as sent, and, when the device asks for storage commitment, only after the PACS's
   commitment report says it keeps the file (the :class:`~sendtopacs_core.net.sender.Sender`
   asks; a failed report moves the file to the failed folder with the Failure Reason, a
   missing one keeps it and asks again after the retry timeout). A
   failure that may pass (no connection, A7xx, no answer) is retried after the retry
   timeout, up to the retry count; then, or at once for a permanent failure, the file moves to
   ``<failed>/YYYY-MM-DD/<relative path>`` with ``<name>_reason.txt`` beside it.
4. A problem with the folder itself (disk full, permission denied) is logged once per cause,
   not per pass, and the work resumes when it clears.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Final

import attrs

from sendtopacs_core.identity import by_assigned_day
from sendtopacs_core.journal import FileState, Journal, JournalEntry
from sendtopacs_core.model import Device
from sendtopacs_core.monitor import MonitorRule
from sendtopacs_core.net._outcome import CommitmentState, FileOutcome
from sendtopacs_core.net._status import SendState
from sendtopacs_core.net.querier import Querier
from sendtopacs_core.net.sender import Sender, commitment_of
from sendtopacs_core.settings import Settings

__all__ = ["ForwardEvent", "Forwarder"]

_LOGGER = logging.getLogger(__name__)
_SECONDARY_CAPTURE: Final = "1.2.840.10008.5.1.4.1.1.7"

#: Names never taken: partial downloads, editors' lock files, hidden files.
IGNORED_NAMES: Final = ("*.part", "*.tmp", "*.crdownload", "*.partial", "~$*", ".*")


@attrs.frozen(kw_only=True)
class ForwardEvent:
    """Something that happened to a file (for the adapter's log, status line and ``--json``)."""

    monitor: str
    path: str
    """Relative to the monitor's folder."""
    kind: str
    """``taken``, ``sent``, ``committed``, ``retry``, ``failed``, ``held``, ``vanished``,
    ``problem``."""
    message: str
    time: float


@attrs.define
class _Candidate:
    size: int
    mtime_ns: int
    stable_since: float


class Forwarder:
    """Forwards one monitor's files to its device.

    Parameters
    ----------
    settings
        The whole settings (devices, the ``dicom`` tag updates, worklist matching, temp dir).
    monitor
        The folder and its policy.
    journal
        The durable ledger (shared by the monitors of one settings file).
    clock
        Seconds since the epoch (injected by tests).
    sender
        Makes the :class:`~sendtopacs_core.net.sender.Sender` for a device (tests inject one).
    querier
        The worklist for automatic matching; by default the settings' (see :class:`Sender`).
    """

    def __init__(
        self,
        settings: Settings,
        monitor: MonitorRule,
        journal: Journal,
        *,
        clock: Callable[[], float] = time.time,
        sender: Callable[[Device, Settings], Sender] | None = None,
        querier: Querier | None = None,
    ) -> None:
        self.settings = settings
        self.monitor = monitor
        self.journal = journal
        self._clock = clock
        self._querier = querier
        self._make_sender = sender or (
            lambda device, s: Sender(device, settings=s, querier=self._querier)
        )
        self._candidates: dict[str, _Candidate] = {}
        self._next_commit = 0.0
        self._problems: dict[str, str] = {}  # cause -> message logged once
        dicom = settings.dicom
        self._send_settings = attrs.evolve(
            settings, dicom=attrs.evolve(dicom, update_tags=dicom.update_tags + monitor.update_tags)
        )

    # -- discovery ------------------------------------------------------------------------------

    def relative(self, path: Path) -> str | None:
        """``path`` relative to the monitor's folder ('/'-separated), or None if outside it or
        a name that is never taken."""
        try:
            relative = path.relative_to(self.monitor.directory)
        except ValueError:
            return None
        if any(fnmatch(part, pattern) for part in relative.parts for pattern in IGNORED_NAMES):
            return None
        return relative.as_posix()

    def observe(self, path: Path) -> None:
        """Note a file seen by an event or a scan (its size and time start the settle clock)."""
        relative = self.relative(path)
        if relative is None:
            return
        try:
            info = path.stat()
        except FileNotFoundError:
            self._candidates.pop(relative, None)
            return
        except OSError as exc:
            _LOGGER.debug("%s: cannot read %s: %s", self.monitor.name, path, exc)
            self._problem("stat", f"cannot read files of the folder ({exc.strerror or exc})")
            return
        if not path.is_file():
            return
        now = self._clock()
        known = self._candidates.get(relative)
        if known is None or (known.size, known.mtime_ns) != (info.st_size, info.st_mtime_ns):
            # A file already old when first seen (found by a scan after a restart) is stable.
            quiet_since = min(now, info.st_mtime_ns / 1e9)
            since = quiet_since if known is None else now
            self._candidates[relative] = _Candidate(info.st_size, info.st_mtime_ns, since)

    def scan(self) -> int:
        """Observe every file of the folder (at most ``scan_count`` new ones); return how many."""
        seen = 0
        limit = self.monitor.scan_count or None
        for path in self._walk(self.monitor.directory):
            self.observe(path)
            seen += 1
            if limit is not None and seen >= limit:
                break
        return seen

    def _walk(self, folder: Path) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except FileNotFoundError:
            self._problem("folder", f"the folder {folder} does not exist")
            return
        except OSError as exc:
            self._problem("folder", f"cannot list {folder}: {exc.strerror or exc}")
            return
        self._solved("folder")
        for entry in entries:
            if any(fnmatch(entry.name, pattern) for pattern in IGNORED_NAMES):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield Path(entry.path)

    def settle(self) -> list[ForwardEvent]:
        """Record the files that stayed unchanged for the settle window; they become pending."""
        now = self._clock()
        events = []
        for relative, candidate in list(self._candidates.items()):
            if now - candidate.stable_since < self.monitor.settle_s:
                continue
            del self._candidates[relative]
            entry = self.journal.seen(
                self.monitor.name,
                relative,
                size=candidate.size,
                mtime_ns=candidate.mtime_ns,
                now=now,
            )
            if self._moved_away(entry.state):
                # Its source was removed or moved when it finished, so a file present again
                # is a new arrival, even with the old size and time (``cp -p``, ``rsync -t``,
                # moved back from the failed folder).
                self.journal.forget(self.monitor.name, relative)
                entry = self.journal.seen(
                    self.monitor.name,
                    relative,
                    size=candidate.size,
                    mtime_ns=candidate.mtime_ns,
                    now=now,
                )
            if entry.state is FileState.PENDING and entry.attempts == 0:
                if not self.monitor.auto_forward:
                    self.journal.hold(
                        self.monitor.name, relative, reason="auto-forward is off", now=now
                    )
                    events.append(self._event(relative, "held", "waiting: auto-forward is off"))
                else:
                    events.append(self._event(relative, "taken", "settled; pending"))
        return events

    def _moved_away(self, state: FileState) -> bool:
        """Whether a file in ``state`` no longer is in the folder (removed or moved)."""
        if state is FileState.FAILED:
            return True
        disposes = self.monitor.remove_sent or self.monitor.success_dir is not None
        return state is FileState.DONE and disposes

    @property
    def settling(self) -> int:
        """Files seen but not yet settled."""
        return len(self._candidates)

    # -- sending --------------------------------------------------------------------------------

    def step(self, *, limit: int | None = None) -> list[ForwardEvent]:
        """Settle, then send what is due (and redo dispositions of recorded successes)."""
        events = self.settle()
        events += self._redo_dispositions()
        due = self.journal.due(self.monitor.name, now=self._clock(), limit=limit)
        if due:
            events += self._send(due)
        return events

    def send_pending(self) -> list[ForwardEvent]:
        """Release the held files (no auto-forward) and send them now."""
        now = self._clock()
        for entry in self.journal.entries(self.monitor.name, [FileState.HELD]):
            self.journal.release(self.monitor.name, entry.path, now=now)
        return self.step()

    def _send(self, due: list[JournalEntry]) -> list[ForwardEvent]:
        events: list[ForwardEvent] = []
        batch: dict[Path, JournalEntry] = {}
        for entry in due:
            path = self.monitor.directory / entry.path
            try:
                info = path.stat()
            except FileNotFoundError:
                self.journal.forget(self.monitor.name, entry.path)
                events.append(self._event(entry.path, "vanished", "removed before it was sent"))
                continue
            except OSError as exc:
                _LOGGER.debug("%s: cannot read %s: %s", self.monitor.name, path, exc)
                self._problem("stat", f"cannot read files of the folder ({exc.strerror or exc})")
                continue
            if (info.st_size, info.st_mtime_ns) != (entry.size, entry.mtime_ns):
                self.observe(path)  # changed since it settled: settle again
                continue
            batch[path] = self.journal.begin_attempt(
                self.monitor.name, entry.path, now=self._clock()
            )
        if not batch:
            return events
        try:
            device = self.settings.device(self.monitor.device)
        except Exception as exc:
            self._problem("device", f"monitor {self.monitor.name}: {exc}")
            for entry in batch.values():
                self._retry_or_fail(entry, f"no device: {exc}", permanent=False, events=events)
            return events
        sender = self._make_sender(device, self._send_settings)
        answered: set[Path] = set()

        def on_outcome(outcome: FileOutcome) -> None:
            entry = batch.get(outcome.source)
            if entry is None or outcome.source in answered:
                return
            answered.add(outcome.source)
            events.extend(self._record(entry, outcome))

        today = dt.datetime.fromtimestamp(self._clock(), dt.UTC).astimezone().date()
        assigned = {path: entry.assigned for path, entry in batch.items()}
        for paths, day, numbers in by_assigned_day(assigned, today):
            report = sender.send(
                paths,
                study=self.monitor.study,
                progress=on_outcome,
                day=day,
                instance_numbers=numbers,
            )
            for outcome in report:  # outcomes the progress callback did not see
                if outcome.source not in answered and outcome.source in batch:
                    answered.add(outcome.source)
                    events.extend(self._record(batch[outcome.source], outcome))
        for path, entry in batch.items():
            if path not in answered:
                self._retry_or_fail(
                    entry, "no outcome was reported", permanent=False, events=events
                )
        verdicts = [
            (batch[outcome.source].path, outcome.commitment, outcome.commitment_message or "")
            for outcome in report
            if outcome.ok and outcome.source in batch and outcome.commitment is not None
        ]
        events += self._apply_commitment(verdicts)
        return events

    def _record(self, entry: JournalEntry, outcome: FileOutcome) -> list[ForwardEvent]:
        events: list[ForwardEvent] = []
        if outcome.assigned is not None and entry.assigned is None:
            entry = self.journal.assign(
                self.monitor.name, entry.path, outcome.assigned, now=self._clock()
            )
        if outcome.ok:
            uids = (outcome.sop_instance_uid,) if outcome.sop_instance_uid else ()
            sent = self.journal.mark_sent(
                self.monitor.name, entry.path, uids=uids, now=self._clock()
            )
            events.append(self._event(entry.path, "sent", outcome.message))
            if outcome.commitment is None:
                events += self._dispose(sent)
            # else: disposed of once the Sender's commitment verdict is in (_apply_commitment)
        else:
            permanent = outcome.state is SendState.FAILED
            self._retry_or_fail(entry, outcome.message, permanent=permanent, events=events)
        return events

    def _retry_or_fail(
        self, entry: JournalEntry, error: str, *, permanent: bool, events: list[ForwardEvent]
    ) -> None:
        now = self._clock()
        attempts = entry.attempts
        if not permanent and attempts <= self.monitor.retry_count:
            self.journal.retry_later(
                self.monitor.name,
                entry.path,
                error=error,
                next_attempt=now + self.monitor.retry_timeout_s,
                now=now,
            )
            events.append(self._event(entry.path, "retry", f"attempt {attempts} failed: {error}"))
            return
        events += self._fail(entry, error)

    # -- dispositions ---------------------------------------------------------------------------

    def _redo_dispositions(self) -> list[ForwardEvent]:
        """Recorded successes not yet disposed of (after a crash, or an uncommitted report)."""
        events: list[ForwardEvent] = []
        sent = self.journal.entries(self.monitor.name, [FileState.SENT])
        device = self._commitment_device()
        if device is None:
            for entry in sent:
                events += self._dispose(entry)
            return events
        if not sent or self._clock() < self._next_commit:
            return events
        return self._commit_again(device, sent)

    # -- storage commitment ---------------------------------------------------------------------

    def _commitment_device(self) -> Device | None:
        try:
            device = self.settings.device(self.monitor.device)
        except Exception:
            return None
        return device if device.storage_commitment else None

    def _sop_class_of(self, entry: JournalEntry) -> str:
        """The SOP class of a sent file known only from the journal (after a restart)."""
        from sendtopacs_core.net._files import read_dicom_file  # noqa: PLC0415

        try:
            return read_dicom_file(self.monitor.directory / entry.path).sop_class_uid
        except (OSError, ValueError):
            return _SECONDARY_CAPTURE  # a converted file: what the default rule makes

    def _commit_again(self, device: Device, sent: list[JournalEntry]) -> list[ForwardEvent]:
        """Ask the PACS again about files recorded as sent but not committed (a missing
        report, or a restart between the C-STORE and the report)."""
        asked = [entry for entry in sent if entry.uids]
        if not asked:
            return []
        sender = self._make_sender(device, self._send_settings)
        result = sender.commit([(self._sop_class_of(entry), entry.uids[0]) for entry in asked])
        verdicts = []
        for entry in asked:
            state, _reason, message = commitment_of(entry.uids[0], result)
            verdicts.append((entry.path, state, message))
        return self._apply_commitment(verdicts)

    def _apply_commitment(
        self, verdicts: Sequence[tuple[str, CommitmentState, str]]
    ) -> list[ForwardEvent]:
        """Dispose of the files the PACS commits to keeping (PS3.4 J).

        A file the report says failed moves to the failed folder with the Failure Reason; a
        file without a verdict (no report in time, or the report does not name it) stays,
        and is asked about again after the retry timeout.
        """
        events: list[ForwardEvent] = []
        kept: list[str] = []
        for path, state, message in verdicts:
            entry = self.journal.get(self.monitor.name, path)
            if entry is None or entry.state is not FileState.SENT:
                continue
            if state is CommitmentState.COMMITTED:
                events.append(self._event(path, "committed", "the PACS keeps it"))
                events += self._dispose(entry)
            elif state is CommitmentState.FAILED:
                events += self._fail(entry, message)
            else:
                kept.append(message)
        if kept:
            self._next_commit = self._clock() + self.monitor.retry_timeout_s
            self._problem(
                "commitment",
                f"no storage commitment for {len(kept)} sent file(s), which are kept: {kept[0]}",
            )
        elif verdicts:
            self._solved("commitment")
        return events

    def _dispose(self, entry: JournalEntry) -> list[ForwardEvent]:
        """Remove or move a recorded success (or leave it); then mark it done."""
        source = self.monitor.directory / entry.path
        try:
            if self.monitor.remove_sent:
                source.unlink(missing_ok=True)
                _prune(source.parent, self.monitor.directory)
            elif self.monitor.success_dir is not None and source.exists():
                target = _free_name(self.monitor.success_dir / entry.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.move(source, target)
                except OSError:
                    if source.exists():
                        target.unlink(missing_ok=True)  # no half copy beside the source
                    raise
                _prune(source.parent, self.monitor.directory)
        except OSError as exc:
            self._problem(
                "dispose",
                f"cannot remove or move sent files ({exc.strerror or exc}); they stay and "
                "are retried",
            )
            return []
        self._solved("dispose")
        self.journal.mark_done(self.monitor.name, entry.path, now=self._clock())
        return []

    def _fail(self, entry: JournalEntry, error: str) -> list[ForwardEvent]:
        """Move a failed file to the failed folder with its reason file; then record it."""
        now = self._clock()
        source = self.monitor.directory / entry.path
        day = dt.datetime.fromtimestamp(now).astimezone().strftime("%Y-%m-%d")
        try:
            if source.exists():
                _move_with_reason(
                    source,
                    _free_name(self.monitor.failed_folder / day / entry.path),
                    _reason_text(entry, error, now),
                )
                _prune(source.parent, self.monitor.directory)
        except OSError as exc:
            self._problem(
                "fail",
                f"cannot move failed files to {self.monitor.failed_folder} "
                f"({exc.strerror or exc}); they stay and are retried",
            )
            if entry.state is not FileState.SENT:  # a SENT file is asked about again
                self.journal.retry_later(
                    self.monitor.name,
                    entry.path,
                    error=error,
                    next_attempt=now + self.monitor.retry_timeout_s,
                    now=now,
                )
            return []
        self._solved("fail")
        self.journal.mark_failed(self.monitor.name, entry.path, error=error, now=now)
        return [self._event(entry.path, "failed", error)]

    # -- helpers --------------------------------------------------------------------------------

    def _event(self, path: str, kind: str, message: str) -> ForwardEvent:
        event = ForwardEvent(
            monitor=self.monitor.name, path=path, kind=kind, message=message, time=self._clock()
        )
        # Paths and messages may name the patient (file names, worklist candidates): DEBUG.
        _LOGGER.info("%s: %s", self.monitor.name, kind)
        _LOGGER.debug("%s: %s %s: %s", self.monitor.name, kind, path, message)
        return event

    def _problem(self, cause: str, message: str) -> None:
        """Log a problem once per cause (no log flood), until it is solved."""
        if self._problems.get(cause) != message:
            self._problems[cause] = message
            _LOGGER.error("%s: %s", self.monitor.name, message)

    def _solved(self, cause: str) -> None:
        if self._problems.pop(cause, None) is not None:
            _LOGGER.info("%s: solved: %s", self.monitor.name, cause)


def _move_with_reason(source: Path, target: Path, reason: str) -> None:
    """Move ``source`` to ``target`` with ``<name>_reason.txt`` beside it, or leave nothing.

    The reason is written under a temporary name first; a failure (a full disk) removes the
    temporary and any partial copy of the file, so that no empty reason file or half file is
    left and the source stays where it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    final = target.with_name(target.name + "_reason.txt")
    partial = target.with_name(f".{final.name}.part")
    try:
        partial.write_text(reason, encoding="utf-8")
        shutil.move(source, target)
    except OSError:
        partial.unlink(missing_ok=True)
        if source.exists():
            target.unlink(missing_ok=True)  # a partial copy to another file system
        raise
    os.replace(partial, final)


def _free_name(target: Path) -> Path:
    """``target``, or ``name (2).ext``... when it exists: nothing is ever overwritten."""
    if not target.exists() and not target.with_name(target.name + "_reason.txt").exists():
        return target
    for number in range(2, 100_000):
        candidate = target.with_name(f"{target.stem} ({number}){target.suffix}")
        if (
            not candidate.exists()
            and not candidate.with_name(candidate.name + "_reason.txt").exists()
        ):
            return candidate
    raise FileExistsError(f"no free name for {target}")


def _prune(folder: Path, root: Path) -> None:
    """Remove empty sub-folders left behind, up to (not including) the watched folder."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _local(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def _reason_text(entry: JournalEntry, error: str, now: float) -> str:
    """The reason file: what failed, when, after how many attempts, and the last error (which
    starts with the PACS's status code and its meaning when it answered one)."""
    return (
        f"file: {entry.path}\n"
        f"failed: {_local(now)}\n"
        f"attempts: {entry.attempts}\n"
        f"last error: {error}\n"
        f"first seen: {_local(entry.first_seen)}\n"
    )
