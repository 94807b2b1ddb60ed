"""Converting one input: media -> iods -> tag patterns and character set -> an atomic write.

A job carries everything it needs (planned by :mod:`sendtopacs_core.convert`: UIDs, instance
numbers, output names), so jobs can run in any order and in worker processes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
from pydicom import config as pydicom_config
from pydicom import dcmwrite
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pydicom.valuerep import validate_value

from sendtopacs_core._failure import failure_for
from sendtopacs_core._results import ConversionAction, ConversionFailure, ConvertedFile
from sendtopacs_core._vr import parse_tag, tag_label
from sendtopacs_core.charset import apply_charset
from sendtopacs_core.errors import ConversionError, CorruptMediaError, InvalidValueError
from sendtopacs_core.identity import dataset_digest
from sendtopacs_core.iods._modules import ObjectContext
from sendtopacs_core.iods.encapsulated_pdf import build_encapsulated_pdf
from sendtopacs_core.iods.secondary_capture import build_secondary_capture
from sendtopacs_core.media.image import JpegImage, RasterImage, encode_baseline_jpeg, read_image
from sendtopacs_core.media.kind import MediaKind
from sendtopacs_core.model import ImageTransferSyntax, Study
from sendtopacs_core.rules import IodChoice
from sendtopacs_core.settings import Settings
from sendtopacs_core.tags import apply_tag_patterns
from sendtopacs_core.uids import RECIPE_VERSION, derive_uid

__all__ = ["Batch", "Content", "Job", "Progress", "Writer", "content_digest", "run_job"]

#: Called with the input and the fraction done (0 to 1) during long work (transcoding).
Progress = Callable[[Path, float], None]

_LOGGER = logging.getLogger(__name__)

#: Series Number of each kind of object in a converted study.
SERIES_NUMBER = {MediaKind.IMAGE: 1, MediaKind.PDF: 2, MediaKind.VIDEO: 3}

#: Files larger than this are hashed in pieces of this size, in parallel.
_TREE_PIECE = 64 << 20
_READ_BLOCK = 1 << 20
_EMPTY = hashlib.sha256(b"").hexdigest()

#: Stands for the SOP Instance UID while the object is built: the UID is derived from what
#: was written, then set.
_PLACEHOLDER_UID = "2.25.0"

#: Writes a built dataset to its target path; the third argument is the source (for errors).
Writer = Callable[[Dataset, Path, Path], None]


@attrs.frozen
class Content:
    """One object an input gives: how to build it, what was done and why, how to write it."""

    build: Callable[[ObjectContext], Dataset]
    action: ConversionAction
    reason: str
    warnings: tuple[str, ...] = ()
    write: Writer | None = None  # None: encoded in memory, written atomically
    digest: Callable[[], str] | None = None  # the input's content digest, if already under way


@attrs.frozen(kw_only=True)
class Batch:
    """What every job of one :meth:`Converter.convert` call shares."""

    settings: Settings
    study: Study
    study_instance_uid: str
    series_instance_uids: Mapping[str, str]
    day: dt.date
    """The day of the conversion (assigned before, for a retry)."""
    study_date: str
    """The Study Date written (typed, the day for a day's study, or empty)."""
    timezone: dt.tzinfo | None = None


@attrs.frozen(kw_only=True)
class Job:
    """One input to convert, with its planned instance numbers and output paths."""

    index: int
    path: Path
    digest: str | None
    """The content's SHA-256 when the plan needed it; else the job takes it."""
    choice: IodChoice
    first_instance_number: int
    targets: tuple[Path, ...]


def run_job(
    batch: Batch, job: Job, progress: Progress | None = None
) -> list[ConvertedFile] | ConversionFailure:
    """Convert one input; whatever it raises becomes its failure, never a crash.

    A :class:`ConversionError` is the failure as it is; any other exception (a library's,
    ``MemoryError``, a bug) becomes one naming the file and the cause in words, with the
    traceback at DEBUG (:func:`~sendtopacs_core._failure.failure_for`).
    """
    try:
        return _convert(batch, job, progress)
    except Exception as exc:  # the input's failure domain: reported, not lost
        return failure_for(job.path, exc)


def content_digest(path: Path, *, stop: threading.Event | None = None) -> str:
    """A SHA-256 digest of a file's content; ``stop`` abandons it (returns "").

    Files up to 64 MiB: the SHA-256 of the content. Larger files (recordings): the SHA-256 of
    the SHA-256 digests of their 64 MiB pieces, taken in parallel threads (hashlib releases
    the GIL), so that a gigabyte is hashed in a fraction of the time; prefixed ``tree-``.
    """
    try:
        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size <= _TREE_PIECE:
                return _piece_digest(stream.fileno(), 0, size, stop).hex() if size else _EMPTY
            offsets = range(0, size, _TREE_PIECE)
            workers = min(len(offsets), os.cpu_count() or 1, 8)
            with ThreadPoolExecutor(workers, thread_name_prefix="sendtopacs-hash") as pool:
                pieces = list(
                    pool.map(
                        lambda start: _piece_digest(
                            stream.fileno(), start, min(_TREE_PIECE, size - start), stop
                        ),
                        offsets,
                    )
                )
    except OSError as exc:
        raise CorruptMediaError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    if stop is not None and stop.is_set():
        return ""
    return "tree-" + hashlib.sha256(b"".join(pieces)).hexdigest()


def _piece_digest(fd: int, start: int, length: int, stop: threading.Event | None) -> bytes:
    digest = hashlib.sha256()
    done = 0
    while done < length:
        if stop is not None and stop.is_set():
            return b""
        block = os.pread(fd, min(_READ_BLOCK, length - done), start + done)
        if not block:
            break  # the file shrank: the digest differs, which is what it should do
        digest.update(block)
        done += len(block)
    return digest.digest()


def _convert(batch: Batch, job: Job, progress: Progress | None) -> list[ConvertedFile]:
    digest = job.digest
    settings = batch.settings
    non_dicom = settings.non_dicom
    choice = job.choice
    series_uid = batch.series_instance_uids[choice.sop_class_uid]
    base_warnings = (choice.warning,) if choice.warning else ()
    if choice.kind is MediaKind.VIDEO:
        recipe = f"{RECIPE_VERSION}:video:{non_dicom.video_format}"
    else:
        recipe = f"{RECIPE_VERSION}:{non_dicom.image_transfer_syntax}:{non_dicom.jpeg_quality}"
    results: list[ConvertedFile] = []
    source_time = _modified(job.path, batch.timezone)
    for page, content in enumerate(_contents(settings, job, progress)):
        if page >= len(job.targets):
            raise ConversionError(job.path, "the file changed while it was being converted")
        if digest is None:  # taken once the content is known to be convertible
            digest = content.digest() if content.digest else content_digest(job.path)
        context = ObjectContext(
            study=batch.study,
            study_instance_uid=batch.study_instance_uid,
            series_instance_uid=series_uid,
            series_number=SERIES_NUMBER[choice.kind],
            instance_number=job.first_instance_number + page,
            sop_class_uid=choice.sop_class_uid,
            sop_instance_uid=_PLACEHOLDER_UID,
            modality=choice.modality or batch.study.modality or non_dicom.default_modality,
            conversion_type=choice.rule.conversion_type,
            burned_in_annotation=choice.rule.burned_in_annotation,
            institution_name=settings.main.institution_name,
            station_name=settings.main.station_name,
            source_ae_title=settings.main.ae_title,
            day=batch.day,
            study_date=batch.study_date,
            timezone=batch.timezone,
            source_time=source_time,
        )
        try:
            dataset = content.build(context)
            _finish(settings, dataset, batch.study)
        except ValueError as exc:  # InvalidValueError included
            raise ConversionError(job.path, str(exc)) from exc
        # Every value written is part of the identity (sendtopacs_core.identity).
        sop_uid = derive_uid(
            "instance", [series_uid, dataset_digest(dataset), digest, str(page), recipe]
        )
        dataset.SOPInstanceUID = sop_uid
        dataset.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
        target = job.targets[page]
        (content.write or _write)(dataset, target, job.path)
        results.append(
            ConvertedFile(
                source=job.path,
                path=target,
                sop_class_uid=choice.sop_class_uid,
                sop_instance_uid=sop_uid,
                study_instance_uid=batch.study_instance_uid,
                series_instance_uid=series_uid,
                transfer_syntax_uid=str(dataset.file_meta.TransferSyntaxUID),
                action=content.action,
                reason=content.reason,
                page=page,
                warnings=base_warnings + content.warnings,
                instance_number=context.instance_number,
                day=batch.day,
            )
        )
        _LOGGER.debug("converted %s page %d to %s", job.path, page, target)
    return results


def _modified(path: Path, timezone: dt.tzinfo | None) -> dt.datetime | None:
    """When ``path`` was last written, in the conversion's time zone; ``None`` if unknown."""
    try:
        seconds = path.stat().st_mtime
    except OSError:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).astimezone(timezone)


def _contents(settings: Settings, job: Job, progress: Progress | None) -> Iterator[Content]:
    """For each object an input gives: its builder, what was done and why, warnings."""
    if job.choice.kind is MediaKind.VIDEO:
        from sendtopacs_core._video import video_contents  # noqa: PLC0415 (PyAV loads slowly)

        yield from video_contents(settings, job.path, progress)
        return
    if job.choice.kind is MediaKind.PDF:
        from sendtopacs_core.media.pdf import read_pdf  # noqa: PLC0415 (pypdf loads slowly)

        document = read_pdf(job.path)
        title = document.title or job.path.stem

        def build_pdf(context: ObjectContext) -> Dataset:
            return build_encapsulated_pdf(document, context=context, title=title)

        pages = "page" if document.pages == 1 else "pages"
        reason = f"PDF of {document.pages} {pages} encapsulated unchanged"
        yield Content(build_pdf, ConversionAction.ENCAPSULATED, reason)
        return
    mode = settings.non_dicom.image_transfer_syntax
    quality = settings.non_dicom.jpeg_quality
    for image in read_image(job.path, pass_through=mode is not ImageTransferSyntax.EXPLICIT_LE):
        yield _image_content(image, mode, quality)


def _image_content(
    image: JpegImage | RasterImage, mode: ImageTransferSyntax, quality: int
) -> Content:
    def build_as_is(context: ObjectContext) -> Dataset:
        return build_secondary_capture(image, context=context)

    if isinstance(image, JpegImage):
        return Content(build_as_is, ConversionAction.PASSED_THROUGH, image.note)
    if mode is not ImageTransferSyntax.JPEG_BASELINE:
        return Content(build_as_is, ConversionAction.DECODED, image.note)
    try:
        encoded = encode_baseline_jpeg(image, quality=quality)
    except ValueError as exc:
        return Content(
            build_as_is, ConversionAction.DECODED, image.note, (f"kept uncompressed: {exc}",)
        )
    history = image.lossy
    methods = [history.method] if history and history.method else []
    ratios = [history.ratio] if history and history.method and history.ratio else []

    def build_encoded(context: ObjectContext) -> Dataset:
        return build_secondary_capture(
            encoded, context=context, source_lossy=(methods, ratios, history is not None)
        )

    reason = f"{image.note}; {encoded.note}" if image.note else encoded.note
    return Content(build_encoded, ConversionAction.ENCODED, reason)


def _finish(settings: Settings, dataset: Dataset, study: Study) -> None:
    """Additional info tag, update-tag patterns, then the character set."""
    non_dicom = settings.non_dicom
    info = study.additional_info or non_dicom.additional_info_default
    if non_dicom.additional_info_tag and info:
        tag = parse_tag(non_dicom.additional_info_tag, "additional info tag")
        dataset.add_new(tag, dictionary_VR(tag), info)
        element = dataset[tag]
        try:
            validate_value(element.VR, element.value, pydicom_config.RAISE)
        except ValueError as exc:
            raise InvalidValueError(tag_label(element.tag), element.value, str(exc)) from exc
    if settings.dicom.update_tags:
        apply_tag_patterns(dataset, settings.dicom.update_tags)
    apply_charset(dataset, non_dicom.charset)


def _write(dataset: Dataset, target: Path, source: Path) -> None:
    """Write atomically: encode in memory, write a temporary file in the folder, rename it."""
    buffer = io.BytesIO()
    try:
        dcmwrite(buffer, dataset, enforce_file_format=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConversionError(source, f"cannot encode the DICOM object: {exc}") from exc
    temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with temporary.open("wb") as stream:
            stream.write(buffer.getbuffer())
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConversionError(source, f"cannot write {target}: {exc.strerror or exc}") from exc
