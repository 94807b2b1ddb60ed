"""The outcome of a send: :class:`FileOutcome` per file and the :class:`SendReport`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from sendtopacs_core.identity import Assignment
from sendtopacs_core.net._status import SendState

__all__ = ["FileOutcome", "SendProgress", "SendReport"]


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

    @property
    def ok(self) -> bool:
        """Whether the PACS answered success (with or without a warning)."""
        return self.state in (SendState.SENT, SendState.SENT_WITH_WARNING)

    @property
    def status_text(self) -> str:
        """The status in hex (``0xA700``), or ``-`` when there was none."""
        return "-" if self.status is None else f"0x{self.status:04X}"


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
        """Whether every file was sent (skipped files aside)."""
        return all(o.ok or o.state is SendState.SKIPPED for o in self.outcomes)

    @property
    def sent(self) -> list[FileOutcome]:
        """The outcomes of the files the PACS kept (with or without a warning)."""
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[FileOutcome]:
        """The outcomes of the files not sent (skipped files aside)."""
        return [o for o in self.outcomes if not o.ok and o.state is not SendState.SKIPPED]
