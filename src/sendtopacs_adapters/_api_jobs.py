"""Background jobs of the HTTP API, kept in memory: bounded in number, expiring when done.

Framework-free: a job is a function returning a JSON-able document; its failure becomes the
job's ``error`` (described by the caller's ``describe``), never a crash of the service.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import attrs

__all__ = ["JOB_TTL_S", "MAX_JOBS_KEPT", "MAX_JOBS_RUNNING", "Job", "Jobs", "JobsFullError"]

MAX_JOBS_KEPT: Final = 100
MAX_JOBS_RUNNING: Final = 4
JOB_TTL_S: Final = 3600.0

_log = logging.getLogger(__name__)


class JobsFullError(Exception):
    """Too many jobs are running or kept; try again later."""


@attrs.define
class Job:
    """One job: ``state`` is ``queued``, ``running``, ``done`` or ``failed``."""

    id: str
    kind: str
    device: str
    created: float
    state: str = "queued"
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    def document(self) -> dict[str, Any]:
        ok = self.state == "done" and bool(self.result and self.result.get("ok"))
        return {
            "ok": ok,
            "id": self.id,
            "kind": self.kind,
            "device": self.device,
            "state": self.state,
            "result": self.result,
            "error": self.error,
        }


class Jobs:
    """The jobs of one service: at most ``MAX_JOBS_KEPT``, finished ones expire.

    Parameters
    ----------
    describe
        The message of a job's exception (without tracebacks or patient data).
    clock
        Monotonic seconds (tests fake it).
    """

    def __init__(
        self,
        *,
        describe: Callable[[Exception], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._describe = describe
        self._clock = clock
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def _expire(self) -> None:
        now = self._clock()
        for job in list(self._jobs.values()):
            if job.finished is not None and now - job.finished > JOB_TTL_S:
                del self._jobs[job.id]
        finished = sorted(
            (job for job in self._jobs.values() if job.finished is not None),
            key=lambda job: job.finished or 0.0,
        )
        while len(self._jobs) >= MAX_JOBS_KEPT and finished:
            del self._jobs[finished.pop(0).id]

    def start(
        self,
        kind: str,
        device: str,
        work: Callable[[], dict[str, Any]],
        cleanup: Callable[[], None],
    ) -> Job:
        """Run ``work`` in a thread, then ``cleanup`` (always).

        Raises
        ------
        JobsFullError
            ``MAX_JOBS_RUNNING`` are running, or ``MAX_JOBS_KEPT`` are kept and none finished.
        """
        with self._lock:
            self._expire()
            running = sum(job.finished is None for job in self._jobs.values())
            if running >= MAX_JOBS_RUNNING or len(self._jobs) >= MAX_JOBS_KEPT:
                raise JobsFullError("too many jobs; try again when some have finished")
            job = Job(id=secrets.token_urlsafe(16), kind=kind, device=device, created=self._clock())
            self._jobs[job.id] = job
        thread = threading.Thread(
            target=self._run, args=(job, work, cleanup), name="sendtopacs-api-job", daemon=True
        )
        thread.start()
        return job

    def _run(
        self, job: Job, work: Callable[[], dict[str, Any]], cleanup: Callable[[], None]
    ) -> None:
        job.state = "running"
        result: dict[str, Any] | None = None
        error: str | None = None
        try:
            result = work()
        except Exception as exc:  # the job boundary: a failure is the job's state, not a crash
            _log.debug("job failed", exc_info=True)
            error = self._describe(exc)
        finally:
            cleanup()
        with self._lock:
            job.result, job.error = result, error
            job.finished = self._clock()
            job.state = "failed" if error is not None else "done"

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            self._expire()
            return self._jobs.get(job_id)
