"""What a conversion reports: per-file results, failures and the batch report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import attrs
from pydicom.uid import UID

from sendtopacs_core.errors import ConversionError

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


@attrs.frozen(kw_only=True)
class ConversionFailure:
    """An input that could not be converted, and why."""

    source: Path
    error: ConversionError


@attrs.frozen(kw_only=True)
class ConversionReport:
    """The outcome of :meth:`Converter.convert`: the files written and the inputs that failed.

    Iterating over a report yields the :class:`ConvertedFile` entries, in input order.
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
