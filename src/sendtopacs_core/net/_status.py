"""What a C-STORE status means for the file it answers (PS3.4 B.2.3, PS3.7 C).

Only 0000 is a plain success; B000, B006 and B007 are successes with a warning (the PACS kept
the object but changed or doubted something); A7xx (out of resources) may succeed later and is
retryable; everything else, unknown codes included, is a failure. No answer at all (a timeout
or an aborted association) is never a success.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS

__all__ = ["SendState", "classify", "status_meaning"]


class SendState(StrEnum):
    """The outcome of sending one file."""

    SENT = "sent"
    """The PACS answered 0000 (Success)."""
    SENT_WITH_WARNING = "sent-with-warning"
    """The PACS kept the object and answered a warning (B000, B006, B007)."""
    RETRYABLE = "retryable"
    """Not stored, but it may work later: A7xx (out of resources), no answer, no connection."""
    FAILED = "failed"
    """Not stored, and sending it again will not help (refused, invalid, not supported)."""
    SKIPPED = "skipped"
    """Not sent on purpose (a DICOMDIR)."""


_WARNINGS: Final = frozenset({0xB000, 0xB006, 0xB007})


def status_meaning(status: int) -> str:
    """The standard's name for a C-STORE status, or ``unknown status``."""
    if status == 0x0000:
        return "Success"
    entry = STORAGE_SERVICE_CLASS_STATUS.get(status)
    if entry is None:
        return "unknown status"
    return entry[1] or entry[0]


def classify(status: int) -> SendState:
    """The :class:`SendState` of a C-STORE status."""
    if status == 0x0000:
        return SendState.SENT
    if status in _WARNINGS:
        return SendState.SENT_WITH_WARNING
    if 0xA700 <= status <= 0xA7FF or status == 0x0213:  # out of resources, resource limitation
        return SendState.RETRYABLE
    return SendState.FAILED
