"""The Converter: NON-DICOM files (images, PDFs) to DICOM files.

Data flow for one call: plan (inspect each input: content sniffing, SHA-256, rules -> SOP
class; derive the study and series UIDs; assign instance numbers and output names) -> run one
job per input (:mod:`sendtopacs_core._job`: media -> iods -> tag patterns and character set ->
atomic write), sequentially or in worker processes -> one report. Every input succeeds or fails
on its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs

from sendtopacs_core._job import Batch, Job, run_job
from sendtopacs_core._results import (
    ConversionAction,
    ConversionFailure,
    ConversionReport,
    ConvertedFile,
)
from sendtopacs_core.errors import ConversionError, CorruptMediaError, UnsupportedMediaError
from sendtopacs_core.media.image import count_pages
from sendtopacs_core.media.kind import IMAGE_EXTENSIONS, MediaKind, sniff
from sendtopacs_core.model import Study
from sendtopacs_core.rules import choose_iod
from sendtopacs_core.settings import Settings
from sendtopacs_core.uids import derive_uid

__all__ = [
    "ConversionAction",
    "ConversionFailure",
    "ConversionReport",
    "ConvertedFile",
    "Converter",
]

_LOGGER = logging.getLogger(__name__)
_TIFF_MAGIC: Final = (b"II*\x00", b"MM\x00*")
#: Below this many inputs per worker, starting workers costs more than it saves.
_MIN_JOBS_PER_WORKER: Final = 8
_T = TypeVar("_T")


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()


@attrs.frozen(kw_only=True)
class _Planned:
    """An input after inspection: its job, or the earlier input with the same content."""

    job: Job
    same_as: int | None


class Converter:
    """Converts images and PDFs into DICOM files according to the settings.

    Parameters
    ----------
    settings
        The settings (``main``, ``non_dicom`` and ``dicom`` sections are used); defaults when
        ``None``.
    workers
        How many processes convert a large batch in parallel (1: all in this process). Worker
        processes are forked on Linux when this process runs no other threads; elsewhere they
        are spawned.
    clock
        Returns the current time (with time zone); injected by tests.

    Examples
    --------
    >>> from sendtopacs_core import Converter, Study
    >>> report = Converter().convert(["photo.jpg"], Study(patient_id="123"), out_dir="out")
    ... # doctest: +SKIP
    >>> [(f.path.name, f.action) for f in report]  # doctest: +SKIP
    [('photo.dcm', <ConversionAction.PASSED_THROUGH: 'passed-through'>)]
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        workers: int = 1,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1 (found {workers})")
        self._settings = settings if settings is not None else Settings()
        self._workers = workers
        self._clock = clock

    def convert(
        self,
        paths: Sequence[str | os.PathLike[str]],
        study: Study | None = None,
        *,
        out_dir: str | os.PathLike[str],
    ) -> ConversionReport:
        """Convert ``paths`` for ``study`` into DICOM files in ``out_dir``.

        All inputs of one call share one study (the given Study Instance UID, or one derived
        from the study data, or from the inputs when no study data is given) and one series per
        SOP class; instance numbers follow the input order. The same inputs with the same study
        and settings always give the same UIDs. An input whose content equals an earlier one's
        is converted once.

        Returns
        -------
        ConversionReport
            The files written and, for each input that failed, its :class:`ConversionError`.

        Raises
        ------
        ConversionError
            The output folder cannot be created (no input is converted then).
        """
        study = study if study is not None else Study()
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConversionError(out, f"cannot create the output folder: {exc}") from exc
        failures: dict[int, ConversionFailure] = {}
        inspected: list[tuple[int, Path, str, MediaKind, int]] = []
        sources = [Path(raw) for raw in paths]
        with self._executor(len(sources)) as pool:
            for index, (path, facts) in enumerate(
                zip(
                    sources,
                    pool.map(_inspect, sources, chunksize=_chunk(len(sources), self._workers)),
                    strict=True,
                )
            ):
                if isinstance(facts, ConversionError):
                    failures[index] = ConversionFailure(source=path, error=facts)
                else:
                    inspected.append((index, path, *facts))
            planned, batch = self._plan(inspected, study, out)
            jobs = [p.job for p in planned if p.same_as is None]
            outcomes = {
                job.index: outcome
                for job, outcome in zip(
                    jobs,
                    pool.map(
                        run_job,
                        [batch] * len(jobs),
                        jobs,
                        chunksize=_chunk(len(jobs), self._workers),
                    ),
                    strict=True,
                )
            }
        files: list[ConvertedFile] = []
        for entry in planned:
            job = entry.job
            outcome = outcomes[job.index if entry.same_as is None else entry.same_as]
            if isinstance(outcome, ConversionFailure):
                error = outcome.error
                if entry.same_as is not None:
                    error = type(error)(job.path, error.reason)
                failures[job.index] = ConversionFailure(source=job.path, error=error)
            elif entry.same_as is None:
                files.extend(outcome)
            else:
                files.extend(_duplicate(previous, job.path) for previous in outcome)
        ordered = tuple(failures[index] for index in sorted(failures))
        _LOGGER.info("converted %d file(s), %d input(s) failed", len(files), len(ordered))
        return ConversionReport(
            study_instance_uid=batch.study_instance_uid, files=tuple(files), failures=ordered
        )

    # -- planning ---------------------------------------------------------------------------

    def _plan(
        self, inspected: list[tuple[int, Path, str, MediaKind, int]], study: Study, out: Path
    ) -> tuple[list[_Planned], Batch]:
        """UIDs, instance numbers and output names, decided before any job runs."""
        non_dicom = self._settings.non_dicom
        choices = [
            choose_iod(path, kind, non_dicom.rule_for(path.suffix))
            for _, path, _, kind, _ in inspected
        ]
        parts = study.identifying_parts() or [
            "content",
            *sorted(digest for _, _, digest, _, _ in inspected),
        ]
        study_uid = study.study_instance_uid or derive_uid("study", parts)
        digests_by_class: dict[str, list[str]] = {}
        for (_, _, digest, _, _), choice in zip(inspected, choices, strict=True):
            digests_by_class.setdefault(choice.sop_class_uid, []).append(digest)
        series = {
            sop_class: derive_uid("series", [study_uid, sop_class, *digests])
            for sop_class, digests in digests_by_class.items()
        }
        next_number: dict[str, int] = {}
        seen: dict[tuple[str, str], int] = {}
        used_names: set[str] = set()
        planned: list[_Planned] = []
        for (index, path, digest, _, pages), choice in zip(inspected, choices, strict=True):
            key = (digest, choice.sop_class_uid)
            same_as = seen.get(key)
            first = next_number.get(choice.sop_class_uid, 1)
            if same_as is None:
                seen[key] = index
                next_number[choice.sop_class_uid] = first + pages
                targets = tuple(_output_path(out, path, page, used_names) for page in range(pages))
            else:
                targets = ()
            job = Job(
                index=index,
                path=path,
                digest=digest,
                choice=choice,
                first_instance_number=first,
                targets=targets,
            )
            planned.append(_Planned(job=job, same_as=same_as))
        batch = Batch(
            settings=self._settings,
            study=study,
            study_instance_uid=study_uid,
            series_instance_uids=series,
            now=self._clock(),
        )
        return planned, batch

    # -- running ----------------------------------------------------------------------------

    def _executor(self, inputs: int) -> Executor:
        """Worker processes for a large batch; this process alone for a small one."""
        workers = min(self._workers, inputs // _MIN_JOBS_PER_WORKER)
        if workers <= 1:
            return _InProcess()
        method = "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context(method)
        )


class _InProcess(Executor):
    """An executor that runs everything at once in the calling thread."""

    def map(self, fn: Callable[..., _T], *iterables: Iterable[Any], **_: Any) -> Iterator[_T]:
        return iter([fn(*args) for args in zip(*iterables, strict=True)])


def _inspect(path: Path) -> tuple[str, MediaKind, int] | ConversionError:
    """The content's SHA-256, its kind and its page count, or the error naming the cause."""
    try:
        return _facts(path)
    except ConversionError as exc:
        return exc


def _facts(path: Path) -> tuple[str, MediaKind, int]:
    extension = path.suffix.lower().lstrip(".")
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            head = stream.read(4096)
            digest.update(head)
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except IsADirectoryError as exc:
        raise CorruptMediaError(path, "it is a folder, not a file") from exc
    except OSError as exc:
        raise CorruptMediaError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    if not head:
        raise CorruptMediaError(path, "empty file (0 bytes)")
    kind = sniff(head, path)
    if kind is None:
        if extension == "pdf":
            kind = MediaKind.PDF  # reading it says why it is not one
        elif extension in IMAGE_EXTENSIONS:
            kind = MediaKind.IMAGE  # reading it says why it is not one
        else:
            shown = f".{extension}" if extension else "no extension"
            raise UnsupportedMediaError(
                path, f"unknown kind of file ({shown}): not an image, a PDF or a video"
            )
    if kind is MediaKind.DICOM:
        raise UnsupportedMediaError(path, "already a DICOM file: send it as it is")
    if kind is MediaKind.VIDEO:
        raise UnsupportedMediaError(path, "video conversion is not supported yet")
    pages = count_pages(path) if head.startswith(_TIFF_MAGIC) else 1
    return digest.hexdigest(), kind, pages


def _chunk(tasks: int, workers: int) -> int:
    """Tasks per message to a worker: few round trips, yet an even spread at the end."""
    return max(1, tasks // (workers * 4))


def _duplicate(previous: ConvertedFile, source: Path) -> ConvertedFile:
    return attrs.evolve(
        previous,
        source=source,
        warnings=(
            *previous.warnings,
            f"same content as {previous.source.name}: converted once, to {previous.path.name}",
        ),
    )


def _output_path(out: Path, source: Path, page: int, used: set[str]) -> Path:
    """``<stem>.dcm`` (``<stem>-p002.dcm`` for later pages); unique within one call."""
    stem = source.stem or "file"
    if page == 0:
        candidates = [f"{stem}.dcm", f"{source.name}.dcm"]
    else:
        candidates = [f"{stem}-p{page + 1:03d}.dcm", f"{source.name}-p{page + 1:03d}.dcm"]
    name = next((c for c in candidates if c not in used), None)
    counter = 2
    while name is None:
        candidate = f"{candidates[0][:-4]}-{counter}.dcm"
        name = candidate if candidate not in used else None
        counter += 1
    used.add(name)
    return out / name
