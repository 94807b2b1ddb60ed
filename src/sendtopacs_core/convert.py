"""The Converter: NON-DICOM files (images, PDFs) to DICOM files.

Data flow for one call: inspect each input (content sniffing, SHA-256) -> rules (SOP class) ->
media (decode or pass through) -> iods (datasets) -> tag patterns and character set -> files
written atomically into the output folder. Every input succeeds or fails on its own; the report
lists both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Final

import attrs
from pydicom import dcmwrite
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import UID

from sendtopacs_core._vr import parse_tag, tag_label
from sendtopacs_core.charset import apply_charset
from sendtopacs_core.errors import (
    ConversionError,
    CorruptMediaError,
    InvalidValueError,
    UnsupportedMediaError,
)
from sendtopacs_core.iods._modules import ObjectContext
from sendtopacs_core.iods.encapsulated_pdf import build_encapsulated_pdf
from sendtopacs_core.iods.secondary_capture import build_secondary_capture
from sendtopacs_core.media.image import JpegImage, RasterImage, encode_baseline_jpeg, read_image
from sendtopacs_core.media.kind import IMAGE_EXTENSIONS, MediaKind, sniff
from sendtopacs_core.media.pdf import read_pdf
from sendtopacs_core.model import ImageTransferSyntax, Study
from sendtopacs_core.rules import IodChoice, choose_iod
from sendtopacs_core.settings import Settings
from sendtopacs_core.tags import apply_tag_patterns
from sendtopacs_core.uids import RECIPE_VERSION, derive_uid

__all__ = [
    "ConversionAction",
    "ConversionFailure",
    "ConversionReport",
    "ConvertedFile",
    "Converter",
]

_LOGGER = logging.getLogger(__name__)
_SERIES_NUMBER: Final = {MediaKind.IMAGE: 1, MediaKind.PDF: 2, MediaKind.VIDEO: 3}


class ConversionAction(StrEnum):
    """What was done to the content of an input."""

    PASSED_THROUGH = "passed-through"
    """The compressed data was stored unchanged (baseline JPEG)."""
    DECODED = "decoded"
    """The input was decoded and its pixels stored without further loss."""
    ENCODED = "encoded"
    """The pixels were encoded anew (baseline JPEG at the configured quality)."""
    ENCAPSULATED = "encapsulated"
    """The document was stored byte for byte (PDF)."""


@attrs.frozen(kw_only=True)
class ConvertedFile:
    """One DICOM file written for an input (a multi-page input gives several)."""

    source: Path
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    action: ConversionAction
    reason: str
    page: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def sop_class_name(self) -> str:
        """The SOP class's name (``Secondary Capture Image Storage``), or its UID if unknown."""
        return _uid_name(self.sop_class_uid)

    @property
    def transfer_syntax_name(self) -> str:
        """The transfer syntax's name (``JPEG Baseline (Process 1)``)."""
        return _uid_name(self.transfer_syntax_uid)


@attrs.frozen(kw_only=True)
class ConversionFailure:
    """An input that could not be converted, and why."""

    source: Path
    error: ConversionError


@attrs.frozen(kw_only=True)
class ConversionReport:
    """The outcome of :meth:`Converter.convert`: the files written and the inputs that failed.

    Iterating over a report yields the :class:`ConvertedFile` entries.
    """

    study_instance_uid: str
    files: tuple[ConvertedFile, ...]
    failures: tuple[ConversionFailure, ...]

    @property
    def ok(self) -> bool:
        """Whether every input was converted."""
        return not self.failures

    def __iter__(self) -> Iterator[ConvertedFile]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def raise_for_failures(self) -> None:
        """Raise the first failure's :class:`ConversionError`, if any input failed."""
        if self.failures:
            raise self.failures[0].error


@attrs.frozen(kw_only=True)
class _Input:
    index: int
    path: Path
    digest: str
    choice: IodChoice


def _uid_name(uid: str) -> str:
    name = UID(uid).name
    return name if name != uid else uid


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()


class Converter:
    """Converts images and PDFs into DICOM files according to the settings.

    Parameters
    ----------
    settings
        The settings (``main``, ``non_dicom`` and ``dicom`` sections are used); defaults when
        ``None``.
    clock
        Returns the current time (with time zone); injected by tests.

    Examples
    --------
    >>> from sendtopacs_core import Converter, Study
    >>> report = Converter().convert(["photo.jpg"], Study(patient_id="123"), out_dir="out")
    ... # doctest: +SKIP
    """

    def __init__(
        self, settings: Settings | None = None, *, clock: Callable[[], dt.datetime] = _now
    ) -> None:
        self._settings = settings if settings is not None else Settings()
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
        and settings always give the same UIDs.

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
        now = self._clock()
        inputs: list[_Input] = []
        failures: dict[int, ConversionFailure] = {}
        for index, raw in enumerate(paths):
            path = Path(raw)
            try:
                inputs.append(self._inspect(index, path))
            except ConversionError as exc:
                failures[index] = ConversionFailure(source=path, error=exc)
        study_uid = study.study_instance_uid or _derive_study_uid(study, inputs)
        series = _series_uids(study_uid, inputs)
        numbers: dict[str, int] = {}
        names: set[str] = set()
        done: dict[tuple[str, str], list[ConvertedFile]] = {}
        files: list[ConvertedFile] = []
        for item in inputs:
            key = (item.digest, item.choice.sop_class_uid)
            if key in done:
                files.extend(_duplicate(previous, item.path) for previous in done[key])
                continue
            try:
                written = self._convert_one(
                    item, study, study_uid, series, numbers, names, out, now
                )
            except ConversionError as exc:
                failures[item.index] = ConversionFailure(source=item.path, error=exc)
                continue
            done[key] = written
            files.extend(written)
        ordered = [failures[k] for k in sorted(failures)]
        _LOGGER.info("converted %d file(s), %d failed", len(files), len(ordered))
        return ConversionReport(
            study_instance_uid=study_uid, files=tuple(files), failures=tuple(ordered)
        )

    # -- steps ------------------------------------------------------------------------------

    def _inspect(self, index: int, path: Path) -> _Input:
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
                kind = MediaKind.PDF  # read_pdf says why it is not one
            elif extension in IMAGE_EXTENSIONS:
                kind = MediaKind.IMAGE  # the image reader says why it is not one
            else:
                raise UnsupportedMediaError(
                    path, f"unknown kind of file ({'.' + extension if extension else 'no extension'}"
                    "): not an image, a PDF or a video"
                )
        if kind is MediaKind.DICOM:
            raise UnsupportedMediaError(path, "already a DICOM file: send it as it is")
        if kind is MediaKind.VIDEO:
            raise UnsupportedMediaError(path, "video conversion is not supported yet")
        rule = self._settings.non_dicom.rule_for(extension)
        return _Input(
            index=index, path=path, digest=digest.hexdigest(), choice=choose_iod(path, kind, rule)
        )

    def _convert_one(
        self,
        item: _Input,
        study: Study,
        study_uid: str,
        series: dict[str, str],
        numbers: dict[str, int],
        names: set[str],
        out: Path,
        now: dt.datetime,
    ) -> list[ConvertedFile]:
        non_dicom = self._settings.non_dicom
        choice = item.choice
        series_uid = series[choice.sop_class_uid]
        base_warnings = (choice.warning,) if choice.warning else ()
        recipe = f"{RECIPE_VERSION}:{non_dicom.image_transfer_syntax}:{non_dicom.jpeg_quality}"
        results: list[ConvertedFile] = []
        for page, (dataset_for, action, reason, warns) in enumerate(self._contents(item)):
            numbers[series_uid] = numbers.get(series_uid, 0) + 1
            sop_uid = derive_uid("instance", [series_uid, item.digest, str(page), recipe])
            context = ObjectContext(
                study=study,
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                series_number=_SERIES_NUMBER[choice.kind],
                instance_number=numbers[series_uid],
                sop_class_uid=choice.sop_class_uid,
                sop_instance_uid=sop_uid,
                modality=study.modality or non_dicom.default_modality,
                conversion_type=choice.rule.conversion_type,
                burned_in_annotation=choice.rule.burned_in_annotation,
                institution_name=self._settings.main.institution_name,
                station_name=self._settings.main.station_name,
                source_ae_title=self._settings.main.ae_title,
                now=now,
            )
            try:
                dataset = dataset_for(context)
                self._finish(dataset, study)
            except (InvalidValueError, ValueError) as exc:
                raise ConversionError(item.path, str(exc)) from exc
            target = _output_path(out, item.path, page, names)
            _write(dataset, target, item.path)
            results.append(
                ConvertedFile(
                    source=item.path,
                    path=target,
                    sop_class_uid=choice.sop_class_uid,
                    sop_instance_uid=sop_uid,
                    study_instance_uid=study_uid,
                    series_instance_uid=series_uid,
                    transfer_syntax_uid=str(dataset.file_meta.TransferSyntaxUID),
                    action=action,
                    reason=reason,
                    page=page,
                    warnings=base_warnings + warns,
                )
            )
            _LOGGER.debug("converted %s page %d to %s", item.path, page, target)
        return results

    def _contents(
        self, item: _Input
    ) -> Iterator[
        tuple[Callable[[ObjectContext], Dataset], ConversionAction, str, tuple[str, ...]]
    ]:
        """For each object an input gives: its builder, what was done and why, warnings."""
        if item.choice.kind is MediaKind.PDF:
            document = read_pdf(item.path)
            title = document.title or item.path.stem

            def build_pdf(context: ObjectContext) -> Dataset:
                return build_encapsulated_pdf(document, context=context, title=title)

            pages = "page" if document.pages == 1 else "pages"
            yield build_pdf, ConversionAction.ENCAPSULATED, (
                f"PDF of {document.pages} {pages} encapsulated unchanged"
            ), ()
            return
        mode = self._settings.non_dicom.image_transfer_syntax
        quality = self._settings.non_dicom.jpeg_quality
        for image in read_image(item.path, pass_through=mode is not ImageTransferSyntax.EXPLICIT_LE):
            yield self._image_content(image, mode, quality)

    @staticmethod
    def _image_content(
        image: JpegImage | RasterImage, mode: ImageTransferSyntax, quality: int
    ) -> tuple[Callable[[ObjectContext], Dataset], ConversionAction, str, tuple[str, ...]]:
        if isinstance(image, JpegImage):

            def build_jpeg(context: ObjectContext) -> Dataset:
                return build_secondary_capture(image, context=context)

            return build_jpeg, ConversionAction.PASSED_THROUGH, image.note, ()
        if mode is ImageTransferSyntax.JPEG_BASELINE:
            try:
                encoded = encode_baseline_jpeg(image, quality=quality)
            except ValueError as exc:
                warning = f"kept uncompressed: {exc}"
            else:
                history = image.lossy
                methods = [history.method] if history and history.method else []
                ratios = [history.ratio] if history and history.method and history.ratio else []

                def build_encoded(context: ObjectContext) -> Dataset:
                    return build_secondary_capture(
                        encoded,
                        context=context,
                        source_lossy=(methods, ratios, history is not None),
                    )

                reason = f"{image.note}; {encoded.note}" if image.note else encoded.note
                return build_encoded, ConversionAction.ENCODED, reason, ()

            def build_kept(context: ObjectContext) -> Dataset:
                return build_secondary_capture(image, context=context)

            return build_kept, ConversionAction.DECODED, image.note, (warning,)

        def build_raster(context: ObjectContext) -> Dataset:
            return build_secondary_capture(image, context=context)

        return build_raster, ConversionAction.DECODED, image.note, ()

    def _finish(self, dataset: Dataset, study: Study) -> None:
        """Additional info tag, update-tag patterns, then the character set."""
        non_dicom = self._settings.non_dicom
        info = study.additional_info or non_dicom.additional_info_default
        if non_dicom.additional_info_tag and info:
            tag = parse_tag(non_dicom.additional_info_tag, "additional info tag")
            dataset.add_new(tag, dictionary_VR(tag), info)
            _check_value(dataset, tag)
        apply_tag_patterns(dataset, self._settings.dicom.update_tags)
        apply_charset(dataset, non_dicom.charset)


def _check_value(dataset: Dataset, tag: int) -> None:
    from pydicom import config  # noqa: PLC0415
    from pydicom.valuerep import validate_value  # noqa: PLC0415

    element = dataset[tag]
    try:
        validate_value(element.VR, element.value, config.RAISE)
    except ValueError as exc:
        raise InvalidValueError(tag_label(element.tag), element.value, str(exc)) from exc


def _derive_study_uid(study: Study, inputs: Sequence[_Input]) -> str:
    parts = study.identifying_parts()
    if not parts:
        parts = ["content", *sorted(item.digest for item in inputs)]
    return derive_uid("study", parts)


def _series_uids(study_uid: str, inputs: Sequence[_Input]) -> dict[str, str]:
    by_class: dict[str, list[str]] = {}
    for item in inputs:
        by_class.setdefault(item.choice.sop_class_uid, []).append(item.digest)
    return {
        sop_class: derive_uid("series", [study_uid, sop_class, *digests])
        for sop_class, digests in by_class.items()
    }


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
    candidates = [f"{stem}.dcm", f"{source.name}.dcm"] if page == 0 else []
    candidates.append(f"{stem}-p{page + 1:03d}.dcm" if page else f"{stem}-1.dcm")
    name = next((c for c in candidates if c not in used), None)
    counter = 2
    while name is None or name in used:
        name = f"{stem}-{counter}.dcm" if page == 0 else f"{stem}-p{page + 1:03d}-{counter}.dcm"
        counter += 1
    used.add(name)
    return out / name


def _write(dataset: Dataset, target: Path, source: Path) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        dcmwrite(temporary, dataset, enforce_file_format=True)
        os.replace(temporary, target)
    except (OSError, ValueError) as exc:
        temporary.unlink(missing_ok=True)
        raise ConversionError(source, f"cannot write {target}: {exc}") from exc

