"""The outcome of a send: :class:`FileOutcome` per file and the :class:`SendReport`.

Both turn into JSON-ready data with ``to_dict()``: the one schema of ``sendtopacs --json send``
and of the HTTP API's send and jobs (docs/guides/send.md, "The JSON report"). Statuses are
given twice: as an integer (``status``, ``42752``) and in hex (``status_hex``, ``"0xA700"``),
``null`` when there was none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import attrs

from sendtopacs_core.identity import Assignment
from sendtopacs_core.net._status import SendState

__all__ = ["CommitmentState", "FileOutcome", "SendProgress", "SendReport"]


class CommitmentState(StrEnum):
    """What the PACS said about keeping a file it stored (Storage Commitment, PS3.4 J)."""

    PENDING = "pending"
    """Stored; the commitment is still to be asked for (only seen by a progress callback)."""
    COMMITTED = "committed"
    """The PACS's report says it keeps the object."""
    FAILED = "failed"
    """The PACS's report says it does not keep the object (with a Failure Reason)."""
    NO_REPORT = "no-report"
    """No report named the object in time (or it could not be asked for): nobody knows."""


def _hex(code: int | None) -> str | None:
    return None if code is None else f"0x{code:04X}"


def _same(text: str) -> str:
    return text


@attrs.frozen(kw_only=True)
class FileOutcome:
    """What happened to one input file.

    Attributes
    ----------
    source
        The input file.
    state
        Sent, sent with a warning, retryable, failed or skipped.
    message
        In words: the status and its meaning, or why nothing was sent.
    status
        The C-STORE status the PACS answered; ``None`` when it answered none.
    error_comment
        The Error Comment (0000,0902) that came with the status.
    sop_class_uid, sop_instance_uid
        Of the object sent (for a converted file, of the object made from it).
    transfer_syntax_uid
        The transfer syntax the object was sent in.
    decompressed
        Whether the pixel data was decoded because the PACS did not accept it compressed.
    converted
        Whether the input was not DICOM and was converted first.
    commitment
        With the device's ``storage_commitment`` on, for a file the PACS stored: committed,
        failed or no report (``pending`` while the request is still to come); ``None`` when
        no commitment was asked for (the device does not ask, or the file was not stored).
    commitment_failure_reason
        The Failure Reason (0008,1197) of a failed commitment (``0x0112``: No such object
        instance).
    commitment_message
        The commitment in words: the Failure Reason and its meaning, or why no report came.
    """

    source: Path
    state: SendState
    message: str
    status: int | None = None
    error_comment: str | None = None
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    transfer_syntax_uid: str | None = None
    decompressed: bool = False
    converted: bool = False
    assigned: Assignment | None = None
    """For a converted file: the day and Instance Number its conversion assigned (a retry
    passes them back to :meth:`Sender.send` to make the same objects)."""
    commitment: CommitmentState | None = None
    commitment_failure_reason: int | None = None
    commitment_message: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the PACS answered success (with or without a warning) to the C-STORE."""
        return self.state in (SendState.SENT, SendState.SENT_WITH_WARNING)

    @property
    def delivered(self) -> bool:
        """Whether the file is delivered: stored and, when commitment was asked, committed."""
        return self.ok and self.commitment in (None, CommitmentState.COMMITTED)

    @property
    def status_text(self) -> str:
        """The status in hex (``0xA700``), or ``-`` when there was none."""
        return "-" if self.status is None else f"0x{self.status:04X}"

    def to_dict(
        self,
        *,
        path: Callable[[Path], str] = str,
        text: Callable[[str], str] = _same,
    ) -> dict[str, Any]:
        """The outcome as JSON-ready data (the schema of docs/guides/send.md).

        ``ok`` is :attr:`delivered`; ``sent`` is :attr:`ok` (the C-STORE's success).

        Parameters
        ----------
        path
            Turns the source's path into the text shown (the HTTP API shows the uploaded name).
        text
            Applied to every message (the HTTP API removes its private folder from them).
        """
        return {
            "source": path(self.source),
            "ok": self.delivered,
            "sent": self.ok,
            "state": str(self.state),
            "status": self.status,
            "status_hex": _hex(self.status),
            "message": text(self.message),
            "error_comment": self.error_comment,
            "sop_class_uid": self.sop_class_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "transfer_syntax_uid": self.transfer_syntax_uid,
            "decompressed": self.decompressed,
            "converted": self.converted,
            "commitment": None if self.commitment is None else str(self.commitment),
            "commitment_failure_reason": self.commitment_failure_reason,
            "commitment_failure_reason_hex": _hex(self.commitment_failure_reason),
            "commitment_message": (
                None if self.commitment_message is None else text(self.commitment_message)
            ),
            "assigned": None
            if self.assigned is None
            else {
                "day": self.assigned.day.isoformat(),
                "instance_number": self.assigned.instance_number,
            },
        }


#: Called after each file with its outcome.
SendProgress = Callable[[FileOutcome], None]


@attrs.frozen(kw_only=True)
class SendReport:
    """The outcome of :meth:`Sender.send`: one :class:`FileOutcome` per input file.

    Iterating over a report yields the outcomes in input order.
    """

    device: str
    outcomes: tuple[FileOutcome, ...]
    unreachable: bool
    """Whether some files were not sent because no association could be established."""
    kept_temp_dir: Path | None = None
    """The folder of converted and changed copies, when the settings keep it."""

    def __iter__(self) -> Iterator[FileOutcome]:
        return iter(self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    @property
    def ok(self) -> bool:
        """Whether every file was delivered (sent and, when asked, committed; skipped aside)."""
        return all(o.delivered or o.state is SendState.SKIPPED for o in self.outcomes)

    @property
    def sent(self) -> list[FileOutcome]:
        """The outcomes of the files the PACS stored (with or without a warning)."""
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[FileOutcome]:
        """The outcomes of the files not sent (skipped files aside)."""
        return [o for o in self.outcomes if not o.ok and o.state is not SendState.SKIPPED]

    @property
    def uncommitted(self) -> list[FileOutcome]:
        """The outcomes of files stored but not committed (commitment failed or no report)."""
        return [o for o in self.outcomes if o.ok and not o.delivered]

    def to_dict(
        self,
        *,
        path: Callable[[Path], str] = str,
        text: Callable[[str], str] = _same,
    ) -> dict[str, Any]:
        """The report as JSON-ready data (the schema of docs/guides/send.md).

        ``path`` and ``text`` are applied as by :meth:`FileOutcome.to_dict`; ``path`` also to
        ``kept_temp_dir``.
        """
        return {
            "ok": self.ok,
            "device": self.device,
            "sent": len(self.sent),
            "failed": len(self.failed),
            "uncommitted": len(self.uncommitted),
            "skipped": sum(o.state is SendState.SKIPPED for o in self.outcomes),
            "unreachable": self.unreachable,
            "kept_temp_dir": None if self.kept_temp_dir is None else path(self.kept_temp_dir),
            "files": [outcome.to_dict(path=path, text=text) for outcome in self.outcomes],
        }
