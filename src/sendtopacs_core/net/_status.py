"""What a DIMSE status means: its category by the standard, and for a C-STORE the file's fate.

The category of a status comes from the ranges of PS3.7 Annex C, for every service (C-STORE,
C-FIND, N-ACTION, C-ECHO):

========  ==================================================================================
Success   0000
Warning   0001, 0107, 0116, B000 to BFFF
Failure   A000 to AFFF, C000 to CFFF, 0100 to 01FF and 0200 to 02FF (other than the warnings)
Cancel    FE00
Pending   FF00, FF01
========  ==================================================================================

Any other code is unknown, and an unknown code counts as a failure: only a status the standard
calls Success or Warning means the operation was done. pynetdicom's status dictionaries give
the words (``0xB007 Data Set Does Not Match SOP Class``), never the category.

For a C-STORE, a Warning means the PACS stored the object (it coerced, discarded or doubted
something): the file is *sent with a warning*, not failed and not sent again. No answer at all
(a timeout, an aborted association) is never a success.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS

__all__ = [
    "SendState",
    "StatusCategory",
    "category",
    "classify",
    "retryable",
    "status_meaning",
    "succeeded",
]

StatusTable = dict[int, tuple[str, str]]


class SendState(StrEnum):
    """The outcome of sending one file."""

    SENT = "sent"
    """The PACS answered 0000 (Success)."""
    SENT_WITH_WARNING = "sent-with-warning"
    """The PACS stored the object and answered a Warning (0001, 0107, 0116, B000 to BFFF)."""
    RETRYABLE = "retryable"
    """Not stored, but it may work later: A7xx (out of resources), 0213 (resource
    limitation), no answer, no connection."""
    FAILED = "failed"
    """Not stored, and sending it again will not help (refused, invalid, not supported)."""
    SKIPPED = "skipped"
    """Not sent on purpose (a DICOMDIR)."""


class StatusCategory(StrEnum):
    """The category of a DIMSE status (PS3.7 Annex C); ``UNKNOWN`` for codes outside them."""

    SUCCESS = "Success"
    WARNING = "Warning"
    FAILURE = "Failure"
    CANCEL = "Cancel"
    PENDING = "Pending"
    UNKNOWN = "Unknown"


_SINGLE_WARNINGS: Final = frozenset({0x0001, 0x0107, 0x0116})
_PENDING: Final = frozenset({0xFF00, 0xFF01})


def category(status: int) -> StatusCategory:
    """The PS3.7 Annex C category of ``status``."""
    if status == 0x0000:
        return StatusCategory.SUCCESS
    if status in _SINGLE_WARNINGS or 0xB000 <= status <= 0xBFFF:
        return StatusCategory.WARNING
    if 0xA000 <= status <= 0xAFFF or 0xC000 <= status <= 0xCFFF or 0x0100 <= status <= 0x02FF:
        return StatusCategory.FAILURE
    if status == 0xFE00:
        return StatusCategory.CANCEL
    if status in _PENDING:
        return StatusCategory.PENDING
    return StatusCategory.UNKNOWN


def succeeded(status: int) -> bool:
    """Whether the operation was done: Success or Warning."""
    return category(status) in (StatusCategory.SUCCESS, StatusCategory.WARNING)


def retryable(status: int) -> bool:
    """Whether the same request may succeed later, unchanged, against the same peer.

    Only two statuses say that the peer lacked something it may have later:

    - A700 to A7FF, *Refused: Out of Resources* (PS3.4 B.2.3, C.4.1.1.4): disk or memory.
    - 0213, *Resource Limitation* (PS3.7 C): the peer is busy.

    Every other failure is not retried, for these reasons:

    - A900 to A9FF (*Data Set Does Not Match SOP Class*), C000 to CFFF (*Cannot Understand*),
      0105, 0106, 0117, 0120, 0121 (attribute and instance errors): the object itself is at
      fault; the same bytes fail again.
    - 0122 (*SOP Class Not Supported*), 0118, 0119, 0123, 0124 (*Not Authorised*): the peer's
      configuration refuses it; a retry fails until someone changes it, which the failed
      folder and its reason make visible.
    - 0110 (*Processing Failure*), 0111 (*Duplicate SOP Instance*), 0210 to 0212 (protocol
      errors) and any other code the standard does not define: nothing says a retry helps,
      and retrying a deterministic failure would retry forever.
    """
    return 0xA700 <= status <= 0xA7FF or status == 0x0213


def status_meaning(status: int, table: StatusTable | None = None) -> str:
    """The standard's words for ``status``, from ``table`` (pynetdicom's C-STORE one by default).

    A code the table does not name gets its category (``Warning``, ``Failure``) or
    ``unknown status``.
    """
    if status == 0x0000:
        return "Success"
    entry = (STORAGE_SERVICE_CLASS_STATUS if table is None else table).get(status)
    if entry is not None and (entry[1] or entry[0]):
        return entry[1] or entry[0]
    kind = category(status)
    return "unknown status" if kind is StatusCategory.UNKNOWN else str(kind)


def classify(status: int) -> SendState:
    """The :class:`SendState` of a C-STORE answered with ``status``.

    Success is sent, Warning sent with a warning (the object was stored); a failure is
    retryable when :func:`retryable` says so, else failed. Cancel and Pending are not final
    C-STORE statuses (PS3.4 B.2.3) and, like unknown codes, are failures: the object was not
    stored, so far as we can tell.
    """
    kind = category(status)
    if kind is StatusCategory.SUCCESS:
        return SendState.SENT
    if kind is StatusCategory.WARNING:
        return SendState.SENT_WITH_WARNING
    if retryable(status):
        return SendState.RETRYABLE
    return SendState.FAILED
