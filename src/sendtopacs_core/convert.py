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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from sendtopacs_core._failure import crashed_worker_failure, failure_for
from sendtopacs_core._job import SERIES_NUMBER, Batch, Job, Progress, content_digest, run_job
from sendtopacs_core._results import (
    ConversionAction,
    ConversionFailure,
    ConversionReport,
    ConvertedFile,
)
from sendtopacs_core._version import __version__
from sendtopacs_core.errors import (
    ConfigError,
    ConversionError,
    CorruptMediaError,
    UnsupportedMediaError,
    WorklistMatchError,
)
from sendtopacs_core.identity import is_days_study, resolved_study_date, study_values
from sendtopacs_core.media.image import count_pages
from sendtopacs_core.media.kind import IMAGE_EXTENSIONS, MediaKind, sniff
from sendtopacs_core.model import Study
from sendtopacs_core.rules import choose_iod
from sendtopacs_core.settings import Settings
from sendtopacs_core.uids import RECIPE_VERSION, derive_uid

if TYPE_CHECKING:
    from sendtopacs_core.net.querier import Querier

__all__ = [
    "ConversionAction",
    "ConversionFailure",
    "ConversionReport",
    "ConvertedFile",
    "Converter",
]

_LOGGER = logging.getLogger(__name__)
#: What one job gives: its files, or its failure.
_Outcome: TypeAlias = list[ConvertedFile] | ConversionFailure
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
    querier
        The worklist for ``non_dicom.parse_file_name``; by default the settings' default
        worklist device (see :func:`~sendtopacs_core.net.matching.worklist_querier`).

    Raises
    ------
    ValueError
        ``workers`` is below 1.

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
        querier: Querier | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1 (found {workers})")
        self._settings = settings if settings is not None else Settings()
        self._workers = workers
        self._clock = clock
        self._querier = querier

    def convert(
        self,
        paths: Sequence[str | os.PathLike[str]],
        study: Study | None = None,
        *,
        out_dir: str | os.PathLike[str],
        progress: Progress | None = None,
        day: dt.date | None = None,
        instance_numbers: Mapping[Path, int] | None = None,
    ) -> ConversionReport:
        """Convert ``paths`` for ``study`` into DICOM files in ``out_dir``.

        All inputs of one call share one study: the given Study Instance UID, or one derived
        from the study data (and the day, for a day's study), or from the inputs' contents when
        no study data is given. Objects go into one series per SOP class and modality of the
        study; instance numbers follow the input order. Every value written into an object is
        part of its identity (:mod:`sendtopacs_core.identity`): converting the same file with
        the same study, settings and instance number on the same day gives the same SOP
        Instance UID (the PACS sees a duplicate, not a new object); another day, study, setting
        or number gives new UIDs. An input whose content equals an earlier one's is converted
        once.

        ``progress``, when given, is called with an input and the fraction done (0 to 1)
        while a video is transcoded; videos are converted in this process.

        With ``non_dicom.parse_file_name`` on and a worklist (the ``querier``, or the default
        worklist device of the settings), each file's name finds its worklist item, whose study
        it is converted into (one study per item); a file without exactly one matching item
        fails with the candidates listed. A ``study`` that comes from a worklist item
        (``from_worklist``) is used as it is.

        ``day`` and ``instance_numbers`` (the first Instance Number of an input, by path) replace
        what the call would assign: a retry passes what the first attempt assigned (each
        :class:`ConvertedFile` reports its ``day`` and ``instance_number``), so that it makes the
        same objects.

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
        querier = self._file_name_querier(study)
        if querier is not None:
            return self._convert_matched(
                querier,
                [Path(raw) for raw in paths],
                out_dir=out_dir,
                progress=progress,
                day=day,
                instance_numbers=instance_numbers,
            )
        if self._settings.non_dicom.worklist_only and not study.from_worklist and paths:
            raise ConfigError(
                "non_dicom.worklist_only is on: the patient and study must come from a worklist "
                "item, not be typed in"
            )
        return self._convert_study(
            paths,
            study,
            out=Path(out_dir),
            progress=progress,
            day=day,
            instance_numbers=instance_numbers or {},
        )

    def _convert_study(
        self,
        paths: Sequence[str | os.PathLike[str]],
        study: Study,
        *,
        out: Path,
        progress: Progress | None,
        day: dt.date | None,
        instance_numbers: Mapping[Path, int],
    ) -> ConversionReport:
        """Convert ``paths`` into one study (see :meth:`convert`)."""
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
            except Exception as exc:  # the input's failure domain: reported
                failures[index] = failure_for(path, exc)
        while True:  # an input the plan cannot read (gone, unreadable) fails alone
            try:
                planned, batch = self._plan(
                    inspected, study, out, day=day, instance_numbers=instance_numbers
                )
                break
            except ConversionError as exc:
                culprit = next((item for item in inspected if item.path == exc.path), None)
                if culprit is None:
                    raise
                failures[culprit.index] = ConversionFailure(source=culprit.path, error=exc)
                inspected.remove(culprit)
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
                if entry.same_as is not None and isinstance(error, ConversionError):
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

    def _file_name_querier(self, study: Study) -> Querier | None:
        """The worklist that file names are matched in, if the settings ask for it."""
        settings = self._settings
        if not settings.non_dicom.parse_file_name or study.from_worklist:
            return None
        if self._querier is not None:
            return self._querier
        from sendtopacs_core.net.matching import worklist_querier  # noqa: PLC0415 (pynetdicom)

        worklist = settings.worklist_device() if settings.worklist_devices else None
        return worklist_querier(
            worklist, parse_file_name=True, parse_dicom=False, ae_title=settings.main.ae_title
        )

    def _convert_matched(
        self,
        querier: Querier,
        paths: list[Path],
        *,
        out_dir: str | os.PathLike[str],
        progress: Progress | None,
        day: dt.date | None,
        instance_numbers: Mapping[Path, int] | None,
    ) -> ConversionReport:
        """Each file into the study of the worklist item its name finds (one call per item)."""
        from sendtopacs_core.net.matching import match_file_names  # noqa: PLC0415 (pynetdicom)

        pattern = self._settings.non_dicom.file_name_pattern
        groups, unmatched = match_file_names(querier, paths, pattern)
        order = {path: index for index, path in enumerate(paths)}
        files: list[ConvertedFile] = []
        failures = [
            ConversionFailure(source=path, error=WorklistMatchError(why))
            for path, why in unmatched.items()
        ]
        studies: list[str] = []
        for matched, members in groups.items():
            report = self.convert(
                members,
                matched,
                out_dir=out_dir,
                progress=progress,
                day=day,
                instance_numbers=instance_numbers,
            )
            studies.append(report.study_instance_uid)
            files += report.files
            failures += report.failures
        files.sort(key=lambda converted: (order[converted.source], converted.page))
        failures.sort(key=lambda failure: order[failure.source])
        return ConversionReport(
            study_instance_uid=studies[0] if len(studies) == 1 else "",
            files=tuple(files),
            failures=tuple(failures),
        )

    # -- planning ---------------------------------------------------------------------------

    def _plan(
        self,
        inspected: list[_Inspected],
        study: Study,
        out: Path,
        *,
        day: dt.date | None,
        instance_numbers: Mapping[Path, int],
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
        now = self._clock()
        day = day or now.date()
        patterns = self._settings.dicom.update_tags
        parts = study_values(study)
        digests: dict[int, str] = {}
        if not parts and study.study_instance_uid is None:
            digests = {item.index: content_digest(item.path) for item in inspected}
            parts = ["content", *sorted(digests.values())]
        else:
            sizes = Counter(item.size for item in inspected)
            digests = {
                item.index: content_digest(item.path) for item in inspected if sizes[item.size] > 1
            }
        parts += [f"pattern={pattern!r}" for pattern in patterns]
        if is_days_study(study):
            parts.append(f"day={day.isoformat()}")
        study_uid = study.study_instance_uid or derive_uid("study", parts)
        main = self._settings.main
        equipment = [main.institution_name or "", main.station_name or "", __version__]
        series = {
            choice.sop_class_uid: derive_uid(
                "series",
                [
                    study_uid,
                    choice.sop_class_uid,
                    choice.modality or modality,
                    str(SERIES_NUMBER[choice.kind]),
                    *equipment,
                    *study_values(study, patterns),
                    RECIPE_VERSION,
                ],
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
            first = instance_numbers.get(item.path, next_number.get(choice.sop_class_uid, 1))
            targets: tuple[Path, ...] = ()
            if same_as is None:
                if digest:
                    seen[(digest, choice.sop_class_uid)] = item.index
                next_number[choice.sop_class_uid] = max(
                    next_number.get(choice.sop_class_uid, 1), first + item.pages
                )
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
            day=day,
            study_date=resolved_study_date(study, day),
            timezone=now.tzinfo,
        )
        return planned, batch

    # -- running ----------------------------------------------------------------------------

    def _run(self, batch: Batch, jobs: Sequence[Job]) -> dict[int, _Outcome]:
        """Run the jobs here, or in worker processes when the batch is large enough.

        A job never raises (:func:`run_job`). A worker process that dies (a decoder crash, the
        system's out-of-memory killer) or a result that cannot come back loses no input: the
        jobs without an outcome run again one at a time, each in a fresh process, so that the
        input that kills its process fails alone and every other one is converted.
        """
        workers = min(self._workers, len(jobs) // _MIN_JOBS_PER_WORKER)
        if workers <= 1:
            return {job.index: run_job(batch, job) for job in jobs}
        context = multiprocessing.get_context(
            "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"
        )
        outcomes: dict[int, _Outcome] = {}
        size = _chunk(len(jobs), workers)
        chunks = [list(jobs[start : start + size]) for start in range(0, len(jobs), size)]
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_set_worker_batch,
            initargs=(batch,),
        ) as pool:
            futures = [(chunk, pool.submit(_run_in_worker, chunk)) for chunk in chunks]
            for chunk, future in futures:
                try:
                    results = future.result()
                except Exception as exc:  # the chunk's jobs are run again below
                    _LOGGER.debug("a worker lost %d job(s): %r", len(chunk), exc)
                    continue
                outcomes.update(zip((job.index for job in chunk), results, strict=True))
        missing = [job for job in jobs if job.index not in outcomes]
        if missing:
            _LOGGER.warning(
                "%d input(s) converted again one by one after a worker failed", len(missing)
            )
            outcomes.update(_run_isolated(batch, missing, context))
        return outcomes


def _run_isolated(
    batch: Batch, jobs: Sequence[Job], context: multiprocessing.context.BaseContext
) -> dict[int, _Outcome]:
    """Run each job alone in a worker process; one that kills its process fails by itself."""
    outcomes: dict[int, _Outcome] = {}
    pool: ProcessPoolExecutor | None = None
    try:
        for job in jobs:
            if pool is None:
                pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=context,
                    initializer=_set_worker_batch,
                    initargs=(batch,),
                )
            try:
                (outcomes[job.index],) = pool.submit(_run_in_worker, [job]).result()
            except BrokenProcessPool:
                outcomes[job.index] = crashed_worker_failure(job.path)
                pool.shutdown(wait=True)
                pool = None
            except Exception as exc:  # a result that cannot come back
                outcomes[job.index] = failure_for(job.path, exc)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return outcomes


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


def _run_in_worker(jobs: list[Job]) -> list[_Outcome]:
    if _worker_batch is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("worker started without its batch")
    batch = _worker_batch
    return [run_job(batch, job) for job in jobs]


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
