"""The Storage Commitment Push Model SCP side of :class:`StorageSCP` (PS3.4 J.3).

It answers the N-ACTION (Request Storage Commitment) with Success and then sends the
N-EVENT-REPORT on the same association: the instances the SCP stored are committed, unless
``failure_for`` gives a Failure Reason for one; the instances it never stored fail with 0x0112
(No such object instance). ``silent`` accepts the request and never reports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from pydicom.dataset import Dataset
from pynetdicom.events import Event
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

__all__ = ["CommitmentService"]

LOGGER = logging.getLogger("sendtopacs_core.testing")

_PUSH_MODEL_INSTANCE: Final = "1.2.840.10008.1.20.1.1"
_REQUEST_COMMITMENT: Final = 1
_NO_SUCH_OBJECT_INSTANCE: Final = 0x0112
#: Seconds between our N-ACTION response and the report (the response goes out first).
_REPORT_DELAY_S: Final = 0.05


class CommitmentService:
    """Answers storage commitment requests for a :class:`StorageSCP`.

    Parameters
    ----------
    stored
        The SOP Instance UID -> SOP Class UID of the instances stored so far.
    failure_for
        A Failure Reason for a stored instance that is not to be committed, or ``None``.
    silent
        Accept requests but never report.
    stopping
        Set when the SCP stops (no report is sent after that).
    """

    def __init__(
        self,
        *,
        stored: Callable[[], dict[str, str]],
        failure_for: Callable[[str], int | None] | None,
        silent: bool,
        stopping: threading.Event,
    ) -> None:
        self._stored = stored
        self._failure_for = failure_for
        self._silent = silent
        self._stopping = stopping
        self._lock = threading.Lock()
        self._requests: list[frozenset[str]] = []

    @property
    def requests(self) -> list[frozenset[str]]:
        """The SOP Instance UIDs of each request received, in order."""
        with self._lock:
            return list(self._requests)

    def on_n_action(self, event: Event) -> tuple[int, Dataset | None]:
        """EVT_N_ACTION: accept a storage commitment request, report it soon after."""
        request: Any = event.request
        if str(request.RequestedSOPClassUID) != StorageCommitmentPushModel:
            return 0x0118, None  # No such SOP Class
        if int(request.ActionTypeID or 0) != _REQUEST_COMMITMENT:
            return 0x0123, None  # No such action
        try:
            info = event.action_information
            transaction_uid = str(info.TransactionUID)
            asked = [
                (str(item.ReferencedSOPClassUID), str(item.ReferencedSOPInstanceUID))
                for item in info.ReferencedSOPSequence
            ]
        except (AttributeError, KeyError, TypeError, ValueError):
            return 0x0110, None  # Processing failure
        with self._lock:
            self._requests.append(frozenset(uid for _cls, uid in asked))
        if not self._silent:
            threading.Thread(
                target=self._report,
                args=(event, transaction_uid, asked),
                name="testing-commitment-report",
                daemon=True,
            ).start()
        return 0x0000, None

    def _report(self, event: Event, transaction_uid: str, asked: list[tuple[str, str]]) -> None:
        if self._stopping.wait(_REPORT_DELAY_S):
            return
        stored = self._stored()
        committed: list[Dataset] = []
        failed: list[Dataset] = []
        for sop_class, uid in asked:
            item = Dataset()
            item.ReferencedSOPClassUID = sop_class
            item.ReferencedSOPInstanceUID = uid
            reason = _NO_SUCH_OBJECT_INSTANCE if uid not in stored else None
            if reason is None and self._failure_for is not None:
                reason = self._failure_for(uid)
            if reason is None:
                committed.append(item)
            else:
                item.FailureReason = reason
                failed.append(item)
        report = Dataset()
        report.TransactionUID = transaction_uid
        if committed:
            report.ReferencedSOPSequence = committed
        if failed:
            report.FailedSOPSequence = failed
        assoc = event.assoc
        if not assoc.is_established:
            return
        try:
            assoc.send_n_event_report(
                report, 2 if failed else 1, StorageCommitmentPushModel, _PUSH_MODEL_INSTANCE
            )
        except (RuntimeError, ValueError) as exc:  # the association ended meanwhile
            LOGGER.debug("storage commitment report not sent: %s", exc)
