"""The Converter: NON-DICOM files (images, PDFs) to DICOM files.

Data flow for one call: plan (inspect each input: content sniffing, SHA-256, rules -> SOP
class; derive the study and series UIDs; assign instance numbers and output names) -> run one
job per input (:mod:`sendtopacs_core._job`: media -> iods -> tag patterns and character set ->
atomic write), sequentially or in worker processes -> one report. Every input succeeds or fails
on its own.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Final

import attrs

from sendtopacs_core._job import Batch, Job, Progress, content_digest, run_job
from sendtopacs_core._results import (
    ConversionAction,
    ConversionFailure,
    ConversionReport,
    ConvertedFile,
)
from sendtopacs_core.errors import (
    ConfigError,
    ConversionError,
    CorruptMediaError,
    UnsupportedMediaError,
)
from sendtopacs_core.media.image import count_pages
from sendtopacs_core.media.kind import IMAGE_EXTENSIONS, MediaKind, sniff
from sendtopacs_core.model import Study
from sendtopacs_core.rules import choose_iod
from sendtopacs_core.settings import Settings
from sendtopacs_core.uids import RECIPE_VERSION, derive_uid

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
        progress: Progress | None = None,
    ) -> ConversionReport:
        """Convert ``paths`` for ``study`` into DICOM files in ``out_dir``.

        All inputs of one call share one study: the given Study Instance UID, or one derived
        from the study data, or from the inputs' contents when no study data is given. Objects
        go into one series per SOP class and modality of the study; instance numbers follow the
        input order. UIDs depend only on the study, the settings and each input's content, so
        converting a file again, alone or in another batch, gives the same SOP Instance UID and
        the PACS sees a duplicate, not a new object. An input whose content equals an earlier
        one's is converted once.

        ``progress``, when given, is called with an input and the fraction done (0 to 1)
        while a video is transcoded; videos are converted in this process.

        Returns
        -------
        ConversionReport
            The files written and, for each input that failed, its :class:`ConversionError`.

        Raises
        ------
        ConversionError
            The output folder cannot be created (no input is converted then).
        ConfigError
            ``non_dicom.worklist_only`` is on and the study does not come from a worklist
            item (typed patient data is refused then).
        InvalidValueError
            The study's additional info is not one of ``non_dicom.additional_info_values``
            (when that list is not empty); no input is converted then.
        """
        study = study if study is not None else Study()
        # A typed value outside the offered ones is refused before any file is converted.
        self._settings.non_dicom.check_additional_info(study.additional_info)
        if self._settings.non_dicom.worklist_only and not study.from_worklist and paths:
            raise ConfigError(
                "non_dicom.worklist_only is on: the patient and study must come from a worklist "
                "item, not be typed in"
            )
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConversionError(out, f"cannot create the output folder: {exc}") from exc
        failures: dict[int, ConversionFailure] = {}
        inspected: list[_Inspected] = []
        for index, raw in enumerate(paths):
            path = Path(raw)
            try:
                inspected.append(_inspect(index, path))
            except ConversionError as exc:
                failures[index] = ConversionFailure(source=path, error=exc)
        planned, batch = self._plan(inspected, study, out)
        jobs = [entry.job for entry in planned if entry.same_as is None]
        outcomes = self._run(batch, [job for job in jobs if job.choice.kind is not MediaKind.VIDEO])
        outcomes.update(
            (job.index, run_job(batch, job, progress))
            for job in jobs
            if job.choice.kind is MediaKind.VIDEO
        )
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
        self, inspected: list[_Inspected], study: Study, out: Path
    ) -> tuple[list[_Planned], Batch]:
        """UIDs, instance numbers and output names, decided before any job runs.

        Contents are hashed here only where the plan needs them: for the study UID when no
        study data is given, and to tell inputs of the same size apart (same content twice).
        Every other input is hashed by its job.
        """
        non_dicom = self._settings.non_dicom
        modality = study.modality or non_dicom.default_modality
        choices = [
            choose_iod(item.path, item.kind, non_dicom.rule_for(item.path.suffix), modality)
            for item in inspected
        ]
        parts = study.identifying_parts()
        digests: dict[int, str] = {}
        if not parts and study.study_instance_uid is None:
            digests = {item.index: content_digest(item.path) for item in inspected}
            parts = ["content", *sorted(digests.values())]
        else:
            sizes = Counter(item.size for item in inspected)
            digests = {
                item.index: content_digest(item.path) for item in inspected if sizes[item.size] > 1
            }
        study_uid = study.study_instance_uid or derive_uid("study", parts)
        series = {
            choice.sop_class_uid: derive_uid(
                "series",
                [study_uid, choice.sop_class_uid, choice.modality or modality, RECIPE_VERSION],
            )
            for choice in choices
        }
        next_number: dict[str, int] = {}
        seen: dict[tuple[str, str], int] = {}
        used_names: set[str] = set()
        planned: list[_Planned] = []
        for item, choice in zip(inspected, choices, strict=True):
            digest = digests.get(item.index)
            same_as = seen.get((digest, choice.sop_class_uid)) if digest else None
            first = next_number.get(choice.sop_class_uid, 1)
            targets: tuple[Path, ...] = ()
            if same_as is None:
                if digest:
                    seen[(digest, choice.sop_class_uid)] = item.index
                next_number[choice.sop_class_uid] = first + item.pages
                targets = tuple(
                    _output_path(out, item.path, page, used_names) for page in range(item.pages)
                )
            job = Job(
                index=item.index,
                path=item.path,
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

    def _run(
        self, batch: Batch, jobs: Sequence[Job]
    ) -> dict[int, list[ConvertedFile] | ConversionFailure]:
        """Run the jobs here, or in worker processes when the batch is large enough."""
        workers = min(self._workers, len(jobs) // _MIN_JOBS_PER_WORKER)
        if workers <= 1:
            return {job.index: run_job(batch, job) for job in jobs}
        method = "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context(method),
            initializer=_set_worker_batch,
            initargs=(batch,),
        ) as pool:
            outcomes = pool.map(_run_in_worker, jobs, chunksize=_chunk(len(jobs), workers))
            return {job.index: outcome for job, outcome in zip(jobs, outcomes, strict=True)}


@attrs.frozen(kw_only=True)
class _Inspected:
    index: int
    path: Path
    kind: MediaKind
    size: int
    pages: int


_worker_batch: Batch | None = None


def _set_worker_batch(batch: Batch) -> None:
    """Worker initializer: the batch travels once per worker, not once per job."""
    global _worker_batch  # noqa: PLW0603 (per-process state of a worker, set once)
    _worker_batch = batch


def _run_in_worker(job: Job) -> list[ConvertedFile] | ConversionFailure:
    if _worker_batch is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("worker started without its batch")
    return run_job(_worker_batch, job)


def _inspect(index: int, path: Path) -> _Inspected:
    """What the plan needs of a file: its kind, size and page count (no full read)."""
    extension = path.suffix.lower().lstrip(".")
    try:
        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            head = stream.read(4096)
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
    pages = count_pages(path) if head.startswith(_TIFF_MAGIC) else 1
    return _Inspected(index=index, path=path, kind=kind, size=size, pages=pages)


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
