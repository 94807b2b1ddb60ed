"""Deliver files to a PACS: :class:`Sender` (C-ECHO, C-STORE) and its :class:`SendReport`.

A send takes files and folders. DICOM files (recognised by content) are sent as they are, or
as a copy when the ``dicom`` settings' update-tag patterns or the device's character set change
their header, or when the PACS accepts only uncompressed data; other files are converted first
(:class:`~sendtopacs_core.convert.Converter`) with the study given. Every file gets one
:class:`FileOutcome`: the status the PACS answered, in hex and in words, or why nothing was
sent. Nothing counts as sent without a success status.

With the device's ``storage_commitment`` on, the files stored are then named in one Storage
Commitment request (PS3.4 J, :mod:`sendtopacs_core.net.commitment`); the PACS's report comes
to ``main.listen_port`` (or on the request's association) within the device's
``commitment_timeout_s``, and each outcome says whether the file is committed, failed (with the
Failure Reason) or got no report. A file counts as delivered only when committed.

Examples
--------
>>> from sendtopacs_core import Device, Sender
>>> pacs = Device(name="pacs", ae_title="ORTHANC", host="127.0.0.1", port=4242)
>>> sender = Sender(pacs, calling_ae_title="SENDTOPACS")
>>> report = sender.send(["study/"])  # doctest: +SKIP
>>> report.ok  # doctest: +SKIP
True
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

from sendtopacs_core._vr import check_ui
from sendtopacs_core.errors import (
    ConfigError,
    ConversionError,
    DicomNetworkError,
    InvalidValueError,
)
from sendtopacs_core.identity import Assignment
from sendtopacs_core.model import Device, Study
from sendtopacs_core.net._association import echo
from sendtopacs_core.net._files import (
    InvalidDicomFileError,
    discover,
    first_line,
    read_dicom_file,
)
from sendtopacs_core.net._outcome import (
    CommitmentState,
    FileOutcome,
    SendProgress,
    SendReport,
)
from sendtopacs_core.net._plan import Delivery, plan_associations, send_group
from sendtopacs_core.net._status import SendState
from sendtopacs_core.net.commitment import (
    CommitmentResult,
    failure_reason_meaning,
    not_requested,
    request_commitment,
)
from sendtopacs_core.net.matching import (
    WorklistMatchError,
    dicom_query,
    match_one,
    worklist_querier,
)
from sendtopacs_core.net.querier import Querier
from sendtopacs_core.settings import Settings

if TYPE_CHECKING:
    from sendtopacs_core.convert import ConvertedFile

__all__ = [
    "CommitmentState",
    "FileOutcome",
    "SendProgress",
    "SendReport",
    "SendState",
    "Sender",
]

_LOGGER = logging.getLogger(__name__)
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
#: One storage commitment wait at a time per listen port in this process (API jobs, several
#: monitors): a second listener on the port could not bind, and its report would be lost.
_PORT_LOCKS: dict[int, threading.Lock] = {}
_PORT_LOCKS_GUARD: Final = threading.Lock()


def _port_lock(port: int) -> threading.Lock:
    with _PORT_LOCKS_GUARD:
        return _PORT_LOCKS.setdefault(port, threading.Lock())


class Sender:
    """Sends files to one device and checks that it answers.

    Parameters
    ----------
    device
        Where to send.
    calling_ae_title
        Our AE title (settings ``main.ae_title``); the PACS must know it.
    settings
        For files converted on the fly (``non_dicom``), the header changes of DICOM files
        (``dicom.update_tags``) and the temporary folder (``main``). Defaults if not given.
    decompress
        Also decode lossy sources when the PACS accepts only uncompressed data (the device's
        ``decompress`` always sends uncompressed).
    querier
        The worklist for automatic matching (by default the settings' default worklist device,
        when ``non_dicom.parse_file_name`` or ``dicom.parse_dicom_for_worklist`` is on): with
        ``non_dicom.parse_file_name`` each non-DICOM file's name finds its worklist item (and
        study); with ``dicom.parse_dicom_for_worklist``
        each DICOM file's header does, and the item fills the copy's empty patient and study
        attributes (all of them with ``dicom.replace_with_worklist``). A file without exactly
        one matching item is not sent, and its outcome lists the candidates.
    """

    def __init__(
        self,
        device: Device,
        *,
        calling_ae_title: str | None = None,
        settings: Settings | None = None,
        decompress: bool = False,
        querier: Querier | None = None,
    ) -> None:
        self.device = device
        self.settings = settings if settings is not None else Settings()
        self.calling_ae_title = calling_ae_title or self.settings.main.ae_title
        self.decompress = decompress
        if querier is None:
            settings = self.settings
            worklist = settings.worklist_device() if settings.worklist_devices else None
            querier = worklist_querier(
                worklist,
                parse_file_name=settings.non_dicom.parse_file_name,
                parse_dicom=settings.dicom.parse_dicom_for_worklist,
                ae_title=self.calling_ae_title,
            )
        self.querier = querier

    def echo(self) -> float:
        """C-ECHO the device; return the round trip in seconds.

        Raises
        ------
        PeerUnreachableError
            The device cannot be reached (connection refused, timed out, TLS handshake).
        AssociationRejectedError
            The device rejects us (the message gives the reason in words; ``rejection``
            the result, source and reason).
        AssociationAbortedError
            The device aborts the association or does not answer the C-ECHO.
        ContextNotAcceptedError
            The device does not accept Verification.
        DicomNetworkError
            The device answers the C-ECHO with a status other than Success, or the TLS
            files cannot be loaded. Every error here is one; each names the ``peer``.
        """
        return echo(self.device, self.calling_ae_title)

    def send(
        self,
        items: Iterable[str | os.PathLike[str]],
        *,
        study: Study | None = None,
        progress: SendProgress | None = None,
        day: dt.date | None = None,
        instance_numbers: Mapping[Path, int] | None = None,
    ) -> SendReport:
        """Send files and folders; return one outcome per file, in input order.

        Non-DICOM files are converted first with ``study`` (without a study they fail);
        ``day`` and ``instance_numbers`` are passed to :meth:`Converter.convert` (a retry
        gives back what the first attempt assigned: each converted file's outcome has it in
        ``assigned``).
        Nothing raises for a single file: a bad file, a refused object or an unreachable
        device are outcomes. With the device's ``storage_commitment`` on, the files stored
        are then asked about (:meth:`commit`) and each outcome's ``commitment`` says what the
        PACS answered (``progress`` sees them before, as ``pending``). The temporary copies
        are removed at the end unless the settings keep them (``main.clean_temp_on_exit``
        false).
        """
        main = self.settings.main
        temp = Path(tempfile.mkdtemp(prefix="sendtopacs-send-", dir=main.temp_dir))
        keep = not main.clean_temp_on_exit
        lock = threading.Lock()
        outcomes: dict[tuple[int, int], FileOutcome] = {}
        assign = _Assign(day=day, instance_numbers=instance_numbers or {})

        def record(key: tuple[int, int], outcome: FileOutcome) -> None:
            if outcome.converted and key in assign.made:
                outcome = attrs.evolve(outcome, assigned=assign.made[key])
            if self.device.storage_commitment and outcome.ok:
                outcome = attrs.evolve(outcome, commitment=CommitmentState.PENDING)
            with lock:
                outcomes[key] = outcome
            # INFO, failures too: they are in the report, which the caller shows or acts on.
            # File names and messages may name the patient: only at DEBUG.
            _LOGGER.info("%s (%s)", outcome.state, outcome.status_text)
            _LOGGER.debug("%s: %s: %s", outcome.source, outcome.state, outcome.message)
            if progress is not None:
                progress(outcome)

        try:
            deliveries = self._deliveries(items, study, temp, record, assign)
            unreachable = self._deliver(deliveries, temp, record)
        finally:
            if not keep:
                shutil.rmtree(temp, ignore_errors=True)
        ordered = tuple(outcomes[key] for key in sorted(outcomes))
        if self.device.storage_commitment:
            ordered = self._with_commitment(ordered)
        return SendReport(
            device=self.device.name,
            outcomes=ordered,
            unreachable=unreachable,
            kept_temp_dir=temp if keep else None,
        )

    # -- storage commitment ---------------------------------------------------------------------

    def commit(self, references: Sequence[tuple[str, str]]) -> CommitmentResult:
        """Ask the device to commit to keeping instances it stored (PS3.4 J); wait for its report.

        The report is awaited on ``main.listen_port`` (on loopback when the device is local,
        else on every interface) and on the request's association, for the device's
        ``commitment_timeout_s``; requests of this process that share the port take turns.
        Nothing raises: without ``main.listen_port``, with an
        invalid UID, an unreachable device or no report in time, the instances are
        ``missing`` and ``error`` says why in words.

        Parameters
        ----------
        references
            ``(SOP Class UID, SOP Instance UID)`` of each instance.
        """
        usable: list[tuple[str, str]] = []
        invalid: list[tuple[str, str]] = []
        for reference in references:
            try:
                check_ui(reference[0], "SOP Class UID")
                check_ui(reference[1], "SOP Instance UID")
            except ValueError:
                invalid.append(reference)
            else:
                usable.append(reference)
        if invalid:
            _LOGGER.warning("%d instance(s) with an invalid UID: no commitment asked", len(invalid))
        if not usable:
            return not_requested(references, "no valid SOP Instance UID to ask about")
        port = self.settings.main.listen_port
        if port is None:
            return not_requested(
                references,
                "storage commitment needs main.listen_port (where the PACS sends its report)",
            )
        host = "127.0.0.1" if self.device.host in _LOOPBACK else "0.0.0.0"  # noqa: S104
        with _port_lock(port):
            result = request_commitment(
                self.device,
                self.calling_ae_title,
                usable,
                listen_address=(host, port),
                timeout_s=self.device.commitment_timeout_s,
            )
        if invalid:
            result = attrs.evolve(result, missing=result.missing | {uid for _cls, uid in invalid})
        return result

    def _with_commitment(self, outcomes: tuple[FileOutcome, ...]) -> tuple[FileOutcome, ...]:
        """Ask about the files stored; each of their outcomes gets what the PACS said."""
        references = {
            outcome.sop_instance_uid: outcome.sop_class_uid or ""
            for outcome in outcomes
            if outcome.ok and outcome.sop_instance_uid
        }
        if not references:
            return outcomes
        result = self.commit([(cls, uid) for uid, cls in references.items()])
        _LOGGER.info(
            "storage commitment: %d committed, %d failed, %d without a report",
            len(result.committed),
            len(result.failed),
            len(result.missing),
        )
        return tuple(_committed(outcome, result) for outcome in outcomes)

    # -- inputs ---------------------------------------------------------------------------------

    def _deliveries(
        self,
        items: Iterable[str | os.PathLike[str]],
        study: Study | None,
        temp: Path,
        record: Callable[[tuple[int, int], FileOutcome], None],
        assign: _Assign,
    ) -> list[Delivery]:
        """Read every DICOM input's header and convert the others; failures are recorded."""
        deliveries: list[Delivery] = []
        to_convert: list[tuple[int, Path]] = []
        for index, found in enumerate(discover(items)):
            if isinstance(found, OSError):
                name = Path(str(found.filename or "?"))
                record((index, 0), _failed(name, f"cannot read: {found.strerror or found}"))
            elif not found.is_dicom:
                to_convert.append((index, found.path))
            else:
                delivery = self._dicom_delivery(index, found.path, record)
                if delivery is not None:
                    deliveries.append(delivery)
        if to_convert:
            deliveries += self._convert(to_convert, study, temp, record, assign)
        deliveries.sort(key=lambda delivery: (delivery.index, delivery.page))
        return deliveries

    def _dicom_delivery(
        self, index: int, path: Path, record: Callable[[tuple[int, int], FileOutcome], None]
    ) -> Delivery | None:
        try:
            dicom = read_dicom_file(path)
        except (InvalidDicomFileError, OSError) as exc:
            record((index, 0), _failed(path, f"not sent: {exc}"))
            return None
        except Exception as exc:  # whatever pydicom raises for one file is that file's outcome
            record(
                (index, 0),
                _failed(path, f"not sent: cannot read it: {type(exc).__name__}: {first_line(exc)}"),
            )
            return None
        if dicom.is_dicomdir:
            record(
                (index, 0), FileOutcome(source=path, state=SendState.SKIPPED, message="DICOMDIR")
            )
            return None
        item = None
        if self.querier is not None and self.settings.dicom.parse_dicom_for_worklist:
            try:
                query = dicom_query(dicom.header, self.querier.device)
                item = match_one(self.querier, query, path.name)
            except (WorklistMatchError, DicomNetworkError, InvalidValueError) as exc:
                # A worklist down or out of resources for a while: the file can wait.
                transient = isinstance(exc, DicomNetworkError) and exc.transient
                state = SendState.RETRYABLE if transient else SendState.FAILED
                record(
                    (index, 0), FileOutcome(source=path, state=state, message=f"not sent: {exc}")
                )
                return None
        return Delivery(
            index=index,
            source=path,
            dicom=dicom,
            patterns=self.settings.dicom.update_tags,
            charset=self.device.charset,
            worklist_item=item,
            replace_with_worklist=self.settings.dicom.replace_with_worklist,
        )

    def _convert(
        self,
        inputs: Sequence[tuple[int, Path]],
        study: Study | None,
        temp: Path,
        record: Callable[[tuple[int, int], FileOutcome], None],
        assign: _Assign,
    ) -> list[Delivery]:
        if study is None and self._name_querier() is None:
            for index, path in inputs:
                record(
                    (index, 0),
                    _failed(path, "not DICOM: converting it needs patient and study data"),
                )
            return []
        return self._convert_for(inputs, study, temp / "converted", record, assign)

    def _name_querier(self) -> Querier | None:
        """The worklist file names are matched in (``non_dicom.parse_file_name``), if any."""
        return self.querier if self.settings.non_dicom.parse_file_name else None

    def _convert_for(
        self,
        inputs: Sequence[tuple[int, Path]],
        study: Study | None,
        out_dir: Path,
        record: Callable[[tuple[int, int], FileOutcome], None],
        assign: _Assign,
    ) -> list[Delivery]:
        from sendtopacs_core.convert import Converter  # noqa: PLC0415 (loads media libraries)

        indexes = {path: index for index, path in inputs}
        try:
            report = Converter(self.settings, querier=self._name_querier()).convert(
                [path for _, path in inputs],
                study,
                out_dir=out_dir,
                day=assign.day,
                instance_numbers=assign.instance_numbers,
            )
        except (ConfigError, ConversionError, InvalidValueError) as exc:
            # worklist-only, no output folder, or a typed value not among the offered ones
            for index, path in inputs:
                record((index, 0), _failed(path, f"not converted: {exc}"))
            return []
        for failure in report.failures:
            why = failure.error
            message = f"not converted: {why}" if isinstance(why, WorklistMatchError) else str(why)
            record((indexes[failure.source], 0), _failed(failure.source, message))
        deliveries = []
        for converted in report.files:
            if (made := _assigned(converted)) is not None:
                assign.made[(indexes[converted.source], converted.page)] = made
            try:
                dicom = read_dicom_file(converted.path)
            except (InvalidDicomFileError, OSError) as exc:  # pragma: no cover - our own file
                record(
                    (indexes[converted.source], converted.page), _failed(converted.source, str(exc))
                )
                continue
            deliveries.append(
                Delivery(
                    index=indexes[converted.source],
                    source=converted.source,
                    dicom=dicom,
                    patterns=(),
                    charset=self.device.charset,
                    converted=True,
                    page=converted.page,
                )
            )
        return deliveries

    # -- sending --------------------------------------------------------------------------------

    def _deliver(
        self,
        deliveries: list[Delivery],
        temp: Path,
        record: Callable[[tuple[int, int], FileOutcome], None],
    ) -> bool:
        """Send every delivery; return whether some could not reach the device."""
        groups = plan_associations(
            deliveries,
            device=self.device,
            decompress_lossy=self.decompress or self.device.decompress,
        )
        workers = min(self.device.parallel_associations, len(groups))
        unreachable = threading.Event()
        pending = list(enumerate(groups))
        take = threading.Lock()

        def work() -> None:
            while True:
                with take:
                    if not pending:
                        return
                    number, group = pending.pop(0)
                scratch = temp / f"copies-{number}"
                scratch.mkdir(exist_ok=True)
                if not send_group(
                    group,
                    device=self.device,
                    calling_ae_title=self.calling_ae_title,
                    scratch=scratch,
                    clean_each=self.settings.main.clean_unused_temp,
                    record=lambda delivery, outcome: record(
                        (delivery.index, delivery.page), outcome
                    ),
                ):
                    unreachable.set()

        if workers <= 1:
            work()
        else:
            threads = [
                threading.Thread(target=work, name=f"sendtopacs-send-{n}") for n in range(workers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return unreachable.is_set()


@attrs.frozen(kw_only=True)
class _Assign:
    """What the caller gives back of an earlier conversion (see :meth:`Sender.send`)."""

    day: dt.date | None
    instance_numbers: Mapping[Path, int]
    made: dict[tuple[int, int], Assignment] = attrs.field(factory=dict)
    """What the conversions of this send assigned, by (input index, page)."""


def _assigned(converted: ConvertedFile) -> Assignment | None:
    """The day and Instance Number a conversion gave its input (first page's number)."""
    if converted.day is None or converted.instance_number is None:
        return None
    return Assignment(day=converted.day, instance_number=converted.instance_number - converted.page)


def commitment_of(
    uid: str | None, result: CommitmentResult
) -> tuple[CommitmentState, int | None, str]:
    """What ``result`` says of instance ``uid``: its state, Failure Reason and words."""
    failed: Mapping[str, int] = result.failed
    if uid is not None and uid in result.committed:
        return CommitmentState.COMMITTED, None, "committed: the PACS commits to keeping it"
    if uid is not None and uid in failed:
        code = failed[uid]
        return (
            CommitmentState.FAILED,
            code,
            f"C-STORE answered success, but storage commitment failed: 0x{code:04X} "
            f"{failure_reason_meaning(code)}",
        )
    return (
        CommitmentState.NO_REPORT,
        None,
        result.error or "the storage commitment report did not name it",
    )


def _committed(outcome: FileOutcome, result: CommitmentResult) -> FileOutcome:
    """``outcome`` with what the commitment report says of its instance."""
    if not outcome.ok:
        return outcome
    state, reason, message = commitment_of(outcome.sop_instance_uid, result)
    return attrs.evolve(
        outcome,
        commitment=state,
        commitment_failure_reason=reason,
        commitment_message=message,
    )


def _failed(path: Path, message: str) -> FileOutcome:
    return FileOutcome(source=path, state=SendState.FAILED, message=message)
