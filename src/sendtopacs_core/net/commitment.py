"""Storage Commitment Push Model SCU (PS3.4 Annex J): does the PACS really keep what we sent?

A C-STORE Success is no proof of storage: Orthanc with a Lua filter that drops an instance still
answers Success (reliability.md, finding 1). Storage Commitment makes the receiver take
responsibility: we send an N-ACTION (Action Type 1) naming the instances, under a Transaction
UID, and the PACS answers with an N-EVENT-REPORT listing the instances it keeps (Referenced SOP
Sequence) and those it does not (Failed SOP Sequence, with a Failure Reason each).

The report usually comes on a new association from the PACS to us (Orthanc always does this),
so :func:`request_commitment` listens on ``listen_address`` for as long as it waits; some PACS
send it on the association that carried the request, so that one stays open until the report
comes or the wait ends. Peer problems (no association, a refused request, no report) are
described in :attr:`CommitmentResult.error`, never raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

import attrs
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StorageCommitmentPushModel,
    Verification,
)
from pynetdicom.status import STORAGE_COMMITMENT_SERVICE_CLASS_STATUS

from sendtopacs_core._vr import check_ae_title, check_ui
from sendtopacs_core.errors import DicomNetworkError
from sendtopacs_core.model import Device
from sendtopacs_core.net._association import Context, open_association
from sendtopacs_core.net._server import serve, stop_server
from sendtopacs_core.net._status import succeeded

__all__ = [
    "FAILURE_REASONS",
    "CommitmentResult",
    "failure_reason_meaning",
    "not_requested",
    "request_commitment",
]

LOGGER = logging.getLogger(__name__)

#: The well-known Storage Commitment Push Model SOP Instance (PS3.6 Annex A; pydicom names it
#: only in its private UID dictionary).
_PUSH_MODEL_INSTANCE: Final = "1.2.840.10008.1.20.1.1"
#: Action Type ID of "Request Storage Commitment" (PS3.4 J.3.2.1.1).
_REQUEST_COMMITMENT: Final = 1
#: Event Type IDs of the report (PS3.4 J.3.3.1): all committed / some failed.
_EVENT_TYPES: Final = frozenset({1, 2})
_TRANSFER_SYNTAXES: Final = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)

#: Failure Reason (0008,1197) values (PS3.3 C.14.1.1).
FAILURE_REASONS: Final[Mapping[int, str]] = MappingProxyType(
    {
        0x0110: "Processing failure",
        0x0112: "No such object instance",
        0x0119: "Class / Instance conflict",
        0x0122: "Referenced SOP Class not supported",
        0x0131: "Duplicate transaction UID",
        0x0213: "Resource limitation",
    }
)
#: The reason given for a failed instance whose item carries no Failure Reason.
_UNKNOWN_REASON: Final = 0x0110

#: Associations the report listener serves at once.
_MAX_REPORT_ASSOCIATIONS: Final = 4
#: How long, once the report is in, the PACS gets to take our answer and release.
_ANSWER_GRACE_S: Final = 2.0
_POLL_S: Final = 0.0001


def failure_reason_meaning(reason: int) -> str:
    """The standard's name of a Failure Reason (``0x0112`` -> ``No such object instance``)."""
    return FAILURE_REASONS.get(reason, "unknown failure reason")


def _to_frozenset(value: Any) -> Any:
    return frozenset(value) if isinstance(value, set | frozenset | list | tuple) else value


def _to_mapping(value: Any) -> Any:
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else value


def _check_uid_set(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, frozenset) or not all(isinstance(uid, str) for uid in value):
        raise TypeError(f"{attribute.name}: expected a frozenset of UIDs, got {value!r}")


def _check_failed(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, Mapping) or not all(
        isinstance(uid, str) and isinstance(reason, int) for uid, reason in value.items()
    ):
        raise TypeError(f"{attribute.name}: expected a mapping UID -> reason, got {value!r}")


@attrs.frozen(kw_only=True)
class CommitmentResult:
    """What the PACS committed to, for one storage commitment request.

    Parameters
    ----------
    transaction_uid
        Transaction UID (0008,1195) of the request.
    committed
        SOP Instance UIDs the PACS says it keeps (Referenced SOP Sequence of the report).
    failed
        SOP Instance UID -> Failure Reason (e.g. ``0x0112``, No such object instance) for the
        instances the PACS does not keep (Failed SOP Sequence).
    missing
        Instances asked for that are in neither list: all of them when no report came.
    error
        Why there is no complete report, in words; ``None`` when every instance is accounted
        for.
    """

    transaction_uid: str = attrs.field(validator=attrs.validators.instance_of(str))
    committed: frozenset[str] = attrs.field(converter=_to_frozenset, validator=_check_uid_set)
    failed: Mapping[str, int] = attrs.field(converter=_to_mapping, validator=_check_failed)
    missing: frozenset[str] = attrs.field(converter=_to_frozenset, validator=_check_uid_set)
    error: str | None = attrs.field(
        validator=attrs.validators.optional(attrs.validators.instance_of(str))
    )

    @property
    def is_complete(self) -> bool:
        """Whether every instance asked for was committed."""
        return self.error is None and not self.failed and not self.missing


def not_requested(references: Sequence[tuple[str, str]], error: str) -> CommitmentResult:
    """The result of a request that could not be made (e.g. no port to listen on): every
    instance of ``references`` is missing, ``error`` says why, the transaction UID is empty."""
    return CommitmentResult(
        transaction_uid="",
        committed=frozenset(),
        failed={},
        missing=frozenset(uid for _sop_class, uid in references),
        error=error,
    )


class _Report:
    """The report of one transaction, filled in by pynetdicom's threads, read by ours."""

    def __init__(self, transaction_uid: str, asked: Mapping[str, str]) -> None:
        self.transaction_uid = transaction_uid
        self.asked = asked
        self.arrived = threading.Event()
        self._lock = threading.Lock()
        self._committed: set[str] = set()
        self._failed: dict[str, int] = {}
        self.carrier: Association | None = None

    def on_event_report(self, event: evt.Event) -> tuple[int, Dataset | None]:
        """EVT_N_EVENT_REPORT: take the report if it is ours; answer it."""
        request: Any = event.request
        event_type = int(request.EventTypeID or 0)
        if str(request.AffectedSOPClassUID) != StorageCommitmentPushModel:
            return 0x0118, None  # No such SOP Class
        if event_type not in _EVENT_TYPES:
            return 0x0113, None  # No such event type
        try:
            info = event.event_information
            transaction_uid = _text(info.get("TransactionUID"))
            committed = _instances(info.get("ReferencedSOPSequence"))
            failed = _failures(info.get("FailedSOPSequence"))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            LOGGER.warning("unreadable storage commitment report: %s", exc)
            return 0x0110, None  # Processing failure
        if transaction_uid != self.transaction_uid:
            # A report for a request that gave up waiting: nobody waits for it any more.
            LOGGER.warning(
                "storage commitment report for another transaction (%s) ignored", transaction_uid
            )
            return 0x0000, None
        unasked = (set(committed) | set(failed)) - set(self.asked)
        if unasked:
            LOGGER.debug("report names %d instances not asked for: ignored", len(unasked))
        with self._lock:
            self._failed.update({uid: r for uid, r in failed.items() if uid in self.asked})
            self._committed.update(uid for uid in committed if uid in self.asked)
            if self.carrier is None:
                self.carrier = event.assoc
        LOGGER.debug(
            "storage commitment report %s (event type %d): %d committed, %d failed",
            transaction_uid,
            event_type,
            len(committed),
            len(failed),
        )
        self.arrived.set()
        return 0x0000, None

    def result(self, error: str | None) -> CommitmentResult:
        with self._lock:
            failed = dict(self._failed)
            committed = frozenset(self._committed) - set(failed)  # failed wins: be safe
        missing = frozenset(self.asked) - committed - set(failed)
        if error is None and missing:
            error = (
                f"the storage commitment report left out {len(missing)} of the "
                f"{len(self.asked)} instances"
            )
        return CommitmentResult(
            transaction_uid=self.transaction_uid,
            committed=committed,
            failed=failed,
            missing=missing,
            error=error,
        )


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip("\0 ")


def _instances(sequence: Any) -> list[str]:
    return [uid for item in sequence or () if (uid := _text(item.get("ReferencedSOPInstanceUID")))]


def _failures(sequence: Any) -> dict[str, int]:
    failed: dict[str, int] = {}
    for item in sequence or ():
        uid = _text(item.get("ReferencedSOPInstanceUID"))
        if uid:
            reason = item.get("FailureReason")
            failed[uid] = int(reason) if reason is not None else _UNKNOWN_REASON
    return failed


class _Listener:
    """A temporary SCP for the N-EVENT-REPORT, listening on ``address`` until :meth:`stop`."""

    def __init__(
        self, ae_title: str, address: tuple[str, int], device: Device, report: _Report
    ) -> None:
        ae = AE(ae_title=ae_title)
        ae.require_called_aet = True
        ae.maximum_associations = _MAX_REPORT_ASSOCIATIONS
        timeouts = device.timeouts
        ae.acse_timeout = timeouts.acse_s
        ae.dimse_timeout = timeouts.dimse_s
        ae.network_timeout = timeouts.network_s
        # The PACS opens the association as the Storage Commitment SCP: accept the SCP/SCU Role
        # Selection it proposes (PS3.4 J.3.3), and the default roles when it proposes none.
        ae.add_supported_context(
            StorageCommitmentPushModel, list(_TRANSFER_SYNTAXES), scu_role=True, scp_role=True
        )
        ae.add_supported_context(Verification, list(_TRANSFER_SYNTAXES))
        self._ae = ae
        self._server, self._thread = serve(
            ae,
            address,
            [(evt.EVT_N_EVENT_REPORT, report.on_event_report)],
            name=f"commitment-{ae_title}",
        )

    def stop(self) -> None:
        """Stop listening; give the report associations a moment to end, then abort them."""
        stop_server(
            self._ae, self._server, self._thread, grace_s=_ANSWER_GRACE_S, join_s=_ANSWER_GRACE_S
        )


def _check_references(references: Sequence[tuple[str, str]]) -> dict[str, str]:
    """SOP Instance UID -> SOP Class UID, in order, duplicates dropped."""
    if not references:
        raise ValueError("references: at least one (SOP Class UID, SOP Instance UID) is needed")
    asked: dict[str, str] = {}
    for sop_class, sop_instance in references:
        check_ui(sop_class, "SOP Class UID")
        check_ui(sop_instance, "SOP Instance UID")
        asked.setdefault(sop_instance, sop_class)
    return asked


def _action_information(asked: Mapping[str, str], transaction_uid: str) -> Dataset:
    """The N-ACTION's Action Information (PS3.4 Table J.3-1)."""
    info = Dataset()
    info.TransactionUID = transaction_uid
    items = []
    for sop_instance, sop_class in asked.items():
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        items.append(item)
    info.ReferencedSOPSequence = items
    return info


def _status_meaning(status: int) -> str:
    entry = STORAGE_COMMITMENT_SERVICE_CLASS_STATUS.get(status)
    return entry[1] or entry[0] if entry is not None else "unknown status"


def _wait_answered(assoc: Association) -> None:
    """Wait until pynetdicom has sent our answer to a report received on ``assoc``.

    The report handler runs inside pynetdicom's service class, which keeps ``_is_paused`` set
    until the answer is queued; releasing before that could send the A-RELEASE-RQ first.
    """
    deadline = time.monotonic() + _ANSWER_GRACE_S
    while assoc.is_established and assoc._is_paused and time.monotonic() < deadline:
        time.sleep(_POLL_S)


def _send_action(
    assoc: Association, device: Device, calling_ae_title: str, report: _Report
) -> str | None:
    """Send the N-ACTION; return why the request was not accepted, in words, or ``None``."""
    where = f"{device.ae_title}@{device.host}:{device.port}"
    started = time.monotonic()
    try:
        status, _reply = assoc.send_n_action(
            _action_information(report.asked, report.transaction_uid),
            _REQUEST_COMMITMENT,
            StorageCommitmentPushModel,
            _PUSH_MODEL_INSTANCE,
        )
    except RuntimeError:  # pynetdicom: the association ended (the peer aborted) meanwhile
        return f"the association with {where} ended before the storage commitment request"
    code = getattr(status, "Status", None)
    if code is None:
        if time.monotonic() - started < device.timeouts.dimse_s:
            return (
                f"{where} aborted the association instead of answering the storage "
                f"commitment request (does it know our AE title {calling_ae_title}?)"
            )
        return (
            f"no answer from {where} to the storage commitment request within "
            f"{device.timeouts.dimse_s:g} s"
        )
    if not succeeded(int(code)):  # a Warning (PS3.7 Annex C) is an accepted request
        return (
            f"{where} refused the storage commitment request: status 0x{int(code):04X} "
            f"({_status_meaning(int(code))})"
        )
    LOGGER.debug("storage commitment %s requested from %s", report.transaction_uid, where)
    return None


def _request(
    device: Device,
    calling_ae_title: str,
    report: _Report,
    timeout_s: float,
) -> str | None:
    """Send the request and wait for the report; return what went wrong, in words."""
    contexts = [Context(StorageCommitmentPushModel, _TRANSFER_SYNTAXES)]
    with open_association(device, calling_ae_title, contexts) as assoc:
        accepted = {cx.abstract_syntax for cx in assoc.accepted_contexts}
        if StorageCommitmentPushModel not in accepted:
            return (
                f"{device.ae_title}@{device.host}:{device.port} does not accept storage "
                "commitment requests (the Storage Commitment Push Model context was not "
                "accepted)"
            )
        # Some PACS report on this association: keep it open while waiting, and answer there.
        assoc.bind(evt.EVT_N_EVENT_REPORT, report.on_event_report)
        problem = _send_action(assoc, device, calling_ae_title, report)
        if problem is not None:
            return problem
        if not report.arrived.wait(timeout_s):
            return f"no storage commitment report within {timeout_s:g} s"
        if report.carrier is assoc:
            _wait_answered(assoc)
    return None


def request_commitment(
    device: Device,
    calling_ae_title: str,
    references: Sequence[tuple[str, str]],
    *,
    listen_address: tuple[str, int],
    timeout_s: float = 60.0,
) -> CommitmentResult:
    """Ask ``device`` to commit to keeping ``references``; wait for its report.

    Listens on ``listen_address`` as ``calling_ae_title`` for the report (the PACS must know
    that AE title at this address), sends the request (N-ACTION) on an association of its own
    and waits up to ``timeout_s`` after the request was accepted. The report may also come on
    that association, which stays open meanwhile. The listener is always stopped.

    Parameters
    ----------
    device
        The PACS (the Storage Commitment SCP).
    calling_ae_title
        Our AE title, both when asking and when the PACS calls back.
    references
        ``(SOP Class UID, SOP Instance UID)`` of each instance; duplicates count once.
    listen_address
        ``(host, port)`` to listen on for the report, e.g. ``("0.0.0.0", 11113)``.
    timeout_s
        Seconds to wait for the report once the request was accepted.

    Returns
    -------
    CommitmentResult
        What was committed, what failed and why; with ``error`` set and everything
        ``missing`` when no association, no accepted request or no report came about.

    Raises
    ------
    ValueError
        ``references`` is empty, a UID or the AE title is not valid, or ``timeout_s`` is not
        positive (programming errors; peer problems are reported in the result).
    """
    check_ae_title(calling_ae_title, "calling_ae_title")
    asked = _check_references(references)
    if not timeout_s > 0:  # NaN included
        raise ValueError(f"timeout_s: expected a positive number of seconds, got {timeout_s!r}")
    report = _Report(generate_uid(), asked)
    host, port = listen_address
    try:
        listener = _Listener(calling_ae_title, (host, port), device, report)
    except OSError as exc:
        return report.result(
            f"cannot listen for the storage commitment report on {host}:{port}: "
            f"{exc.strerror or exc}"
        )
    try:
        error = _request(device, calling_ae_title, report, timeout_s)
    except DicomNetworkError as exc:  # no association (or unreadable TLS files)
        error = f"storage commitment request not sent: {exc}"
    finally:
        listener.stop()
    return report.result(error)
