"""What a conversion reports: per-file results, failures and the batch report.

Each turns into JSON-ready data with ``to_dict()``: the one schema of ``sendtopacs --json
convert`` and of the HTTP API's convert (docs/guides/convert.md, "The JSON report").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import attrs
from pydicom.uid import UID

from sendtopacs_core.errors import ConversionError, WorklistMatchError

__all__ = ["ConversionAction", "ConversionFailure", "ConversionReport", "ConvertedFile"]


class ConversionAction(StrEnum):
    """What was done to the content of an input."""

    PASSED_THROUGH = "passed-through"
    """The compressed data was stored unchanged (baseline JPEG, a conforming video file)."""
    DECODED = "decoded"
    """The input was decoded and its pixels stored without further loss."""
    ENCODED = "encoded"
    """The pixels were encoded anew (baseline JPEG at the configured quality)."""
    ENCAPSULATED = "encapsulated"
    """The document was stored byte for byte (PDF)."""
    REMUXED = "remuxed"
    """The video stream was stored unchanged in another container (MP4), or without audio."""
    TRANSCODED = "transcoded"
    """The video was decoded and encoded anew to meet a video transfer syntax."""


def _same(text: str) -> str:
    return text


def _uid_name(uid: str) -> str:
    name = UID(uid).name
    return name if name != uid else uid


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
    instance_number: int | None = None
    """The object's Instance Number."""
    day: dt.date | None = None
    """The day of the conversion written into the object (see :mod:`sendtopacs_core.identity`)."""

    @property
    def sop_class_name(self) -> str:
        """The SOP class's name (``Secondary Capture Image Storage``), or its UID if unknown."""
        return _uid_name(self.sop_class_uid)

    @property
    def transfer_syntax_name(self) -> str:
        """The transfer syntax's name (``JPEG Baseline (Process 1)``)."""
        return _uid_name(self.transfer_syntax_uid)

    def to_dict(
        self, *, path: Callable[[Path], str] = str, text: Callable[[str], str] = _same
    ) -> dict[str, Any]:
        """The file as JSON-ready data (``page`` counts from 1; names beside the UIDs).

        ``path`` turns the source's and the output's paths into the text shown, ``text`` is
        applied to the reason and the warnings (the HTTP API shows upload names only).
        """
        return {
            "source": path(self.source),
            "path": path(self.path),
            "page": self.page + 1,
            "sop_class_uid": self.sop_class_uid,
            "sop_class": self.sop_class_name,
            "sop_instance_uid": self.sop_instance_uid,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "transfer_syntax_uid": self.transfer_syntax_uid,
            "transfer_syntax": self.transfer_syntax_name,
            "action": str(self.action),
            "reason": text(self.reason),
            "warnings": [text(warning) for warning in self.warnings],
            "instance_number": self.instance_number,
            "day": None if self.day is None else self.day.isoformat(),
        }


@attrs.frozen(kw_only=True)
class ConversionFailure:
    """An input that could not be converted, and why.

    ``error`` is a :class:`ConversionError`, or a :class:`WorklistMatchError` when the file's
    name found no worklist item, or several (``non_dicom.parse_file_name``).
    """

    source: Path
    error: ConversionError | WorklistMatchError

    def to_dict(
        self, *, path: Callable[[Path], str] = str, text: Callable[[str], str] = _same
    ) -> dict[str, Any]:
        """The failure as JSON-ready data: the input, the error in words and its kind."""
        return {
            "source": path(self.source),
            "error": text(str(self.error)),
            "error_type": type(self.error).__name__,
        }


@attrs.frozen(kw_only=True)
class ConversionReport:
    """The outcome of :meth:`Converter.convert`: the files written and the inputs that failed.

    Iterating over a report yields the :class:`ConvertedFile` entries, in input order.
    """

    study_instance_uid: str
    """The study of the call; empty when file names matched several worklist items (or none):
    then each file names its own, and :attr:`study_instance_uids` lists them."""
    files: tuple[ConvertedFile, ...]
    failures: tuple[ConversionFailure, ...]

    @property
    def study_instance_uids(self) -> tuple[str, ...]:
        """The studies of the files written, each once, in input order."""
        return tuple(dict.fromkeys(converted.study_instance_uid for converted in self.files))

    @property
    def ok(self) -> bool:
        """Whether every input was converted."""
        return not self.failures

    def __iter__(self) -> Iterator[ConvertedFile]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def to_dict(
        self, *, path: Callable[[Path], str] = str, text: Callable[[str], str] = _same
    ) -> dict[str, Any]:
        """The report as JSON-ready data (the schema of docs/guides/convert.md).

        ``path`` and ``text`` are applied as by :meth:`ConvertedFile.to_dict`.
        """
        return {
            "ok": self.ok,
            "study_instance_uid": self.study_instance_uid or None,
            "study_instance_uids": list(self.study_instance_uids),
            "converted": len(self.files),
            "failed": len(self.failures),
            "files": [item.to_dict(path=path, text=text) for item in self.files],
            "failures": [failure.to_dict(path=path, text=text) for failure in self.failures],
        }

    def raise_for_failures(self) -> None:
        """Raise the first failure's error, if any input failed."""
        if self.failures:
            raise self.failures[0].error
