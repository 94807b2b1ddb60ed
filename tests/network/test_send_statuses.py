"""R6, R8: what the Sender makes of each C-STORE status, of silence, aborts and rejections.

Peers: the in-process ``StorageSCP`` (scripted statuses, ``never_answer``, ``abort_after``,
``reject``, ``maximum_associations``) and a free port with nothing listening.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from sendtopacs_core import (
    AssociationAbortedError,
    AssociationFailedError,
    AssociationRejectedError,
    DicomSettings,
    FileOutcome,
    PeerUnreachableError,
    Querier,
    Sender,
    SendState,
    Settings,
    Timeouts,
    WorklistDevice,
)
from sendtopacs_core.testing import ReceivedInstance, Rejection, StorageSCP
from sendtopacs_core.testing.plugin import StorageSCPFactory, WorklistSCPFactory
from tests._netpeers import (
    StoreSCPFactory,
    device_to,
    free_port,
    refused_socket_leak_ignored,
    write_secondary_capture,
)

COMMENT = "scripted by the test"


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [folder / f"{n}.dcm" for n in range(4)]
    for path in paths:
        write_secondary_capture(path)
    return paths


def _sender(scp: StorageSCP, **options: object) -> Sender:
    return Sender(device_to(scp.ae_title, scp.port, **options), calling_ae_title="SENDTOPACS")


#: Warning statuses of PS3.7 Annex C: 0001, 0107, 0116 and B000 to BFFF (the object was stored).
WARNINGS = [0x0001, 0x0107, 0x0116, 0xB000, 0xB006, 0xB007, 0xB001, 0xB123, 0xBFFF]


@pytest.mark.parametrize("status", WARNINGS, ids=lambda s: f"{s:04X}")
def test_warning_status_is_sent_with_warning(
    storage_scp_factory: StorageSCPFactory, files: list[Path], status: int
) -> None:
    scp = storage_scp_factory(statuses=[status], error_comment=COMMENT)
    report = _sender(scp).send(files[:2])
    first, second = report.outcomes
    assert first.state is SendState.SENT_WITH_WARNING
    assert first.ok
    assert first.status == status
    assert f"0x{status:04X}" in first.message
    assert COMMENT in first.message
    assert first.error_comment == COMMENT
    assert second.state is SendState.SENT
    assert second.message.startswith("0x0000")
    assert report.ok


@pytest.mark.parametrize("status", [0xA700, 0xA7FF, 0x0213], ids=lambda s: f"{s:04X}")
def test_out_of_resources_is_retryable(
    storage_scp_factory: StorageSCPFactory, files: list[Path], status: int
) -> None:
    scp = storage_scp_factory(statuses=[status], error_comment=COMMENT)
    report = _sender(scp).send(files[:2])
    first, second = report.outcomes
    assert first.state is SendState.RETRYABLE
    assert not first.ok
    assert first.status == status
    assert f"0x{status:04X}" in first.message
    assert COMMENT in first.message
    assert second.state is SendState.SENT
    assert not report.ok
    assert report.failed == [first]
    assert report.sent == [second]


@pytest.mark.parametrize(
    "status",
    [
        *(0xA900, 0xC000, 0x0122, 0x0124, 0x0211, 0x0212, 0xFFF0),
        # the rest of Annex C's Failure ranges (01xx but 0107 and 0116, 02xx, Axxx, Cxxx) ...
        *(0x0100, 0x0106, 0x0110, 0x0117, 0x01FF, 0x0210, 0x02FF, 0xA000, 0xAFFF, 0xCFFF),
        # ... and codes that are no final C-STORE status, or in no range: not stored
        *(0xFE00, 0x0002, 0x0300, 0xD000),
    ],
    ids=lambda s: f"{s:04X}",
)
def test_failure_status_is_failed_with_code_and_comment(
    storage_scp_factory: StorageSCPFactory, files: list[Path], status: int
) -> None:
    scp = storage_scp_factory(statuses=[status], error_comment=COMMENT)
    report = _sender(scp).send(files[:2])
    first, second = report.outcomes
    assert first.state is SendState.FAILED
    assert not first.ok
    assert first.status == status
    assert first.status_text == f"0x{status:04X}"
    assert first.message.startswith(f"0x{status:04X} ")
    assert first.message.endswith(COMMENT)
    if status in (0xFFF0, 0x0002, 0x0300, 0xD000):
        assert "unknown status" in first.message
    assert second.ok
    assert not report.ok
    assert not report.unreachable


def test_success_without_comment(storage_scp: StorageSCP, files: list[Path]) -> None:
    seen: list[FileOutcome] = []
    report = _sender(storage_scp).send(files, progress=seen.append)
    assert report.ok
    assert [o.state for o in report] == [SendState.SENT] * 4
    assert all(o.status == 0 and o.error_comment is None for o in report)
    assert seen == list(report.outcomes)
    assert [r.sop_instance_uid for r in storage_scp.received] == [
        o.sop_instance_uid for o in report
    ]
    assert storage_scp.associations == 1
    assert {r.calling_ae_title for r in storage_scp.received} == {"SENDTOPACS"}


def test_no_answer_times_out_and_the_rest_go_on_a_new_association(
    storage_scp_factory: StorageSCPFactory, files: list[Path]
) -> None:
    """The first C-STORE is answered too late; the others must still be sent."""
    calls = 0
    lock = threading.Lock()

    def slow_first(_instance: ReceivedInstance) -> int:
        nonlocal calls
        with lock:
            calls += 1
            first = calls == 1
        if first:
            time.sleep(2.0)  # longer than the sender's DIMSE timeout
        return 0x0000

    scp = storage_scp_factory(status_for=slow_first)
    start = time.monotonic()
    report = _sender(scp, timeouts=Timeouts(dimse_s=0.5)).send(files)
    elapsed = time.monotonic() - start
    first, *rest = report.outcomes
    assert first.state is SendState.RETRYABLE
    assert first.status is None
    assert "no answer" in first.message
    assert "0.5 s" in first.message
    assert [o.state for o in rest] == [SendState.SENT] * 3
    assert scp.associations >= 2
    assert not report.ok
    assert elapsed < 10


def test_never_answer_fails_every_file_without_status(
    storage_scp_factory: StorageSCPFactory, files: list[Path]
) -> None:
    scp = storage_scp_factory(never_answer=True)
    report = _sender(scp, timeouts=Timeouts(dimse_s=0.3)).send(files[:2])
    assert [o.state for o in report] == [SendState.RETRYABLE] * 2
    assert all(o.status is None and not o.ok for o in report)
    # each file was tried, each on its own association (the hung one was aborted)
    assert scp.c_store_count == 2
    assert scp.associations == 2
    assert scp.received == []


def test_abort_during_one_store(storage_scp_factory: StorageSCPFactory, files: list[Path]) -> None:
    scp = storage_scp_factory(abort_after=2)
    report = _sender(scp).send(files)
    states = [o.state for o in report]
    assert states == [SendState.SENT, SendState.RETRYABLE, SendState.SENT, SendState.SENT]
    aborted = report.outcomes[1]
    assert aborted.status is None
    assert "aborted" in aborted.message
    assert "Success" not in aborted.message
    received = {r.sop_instance_uid for r in scp.received}
    assert aborted.sop_instance_uid not in received
    assert received == {o.sop_instance_uid for o in report.sent}
    assert scp.associations == 2
    assert scp.duplicates() == {}
    assert not report.ok


# -- association rejection (R8) -------------------------------------------------------------


def test_permanent_rejection_fails_every_file(
    storage_scp_factory: StorageSCPFactory, files: list[Path]
) -> None:
    scp = storage_scp_factory(reject=Rejection(result=1, source=1, reason=3))
    sender = _sender(scp)
    report = sender.send(files)
    assert [o.state for o in report] == [SendState.FAILED] * 4
    for outcome in report:
        assert "calling AE title not recognised" in outcome.message
        assert "result 1, source 1, reason 3" in outcome.message
        assert outcome.status is None
    assert report.unreachable
    assert not report.ok
    with pytest.raises(AssociationFailedError, match="calling AE title not recognised") as info:
        sender.echo()
    assert isinstance(info.value, AssociationRejectedError)
    assert info.value.rejection == (1, 1, 3)
    assert not info.value.transient
    assert scp.c_store_count == 0


def test_transient_rejection_is_retryable(
    storage_scp_factory: StorageSCPFactory, files: list[Path]
) -> None:
    scp = storage_scp_factory(reject=Rejection(result=2, source=3, reason=1))
    sender = _sender(scp)
    report = sender.send(files[:2])
    assert [o.state for o in report] == [SendState.RETRYABLE] * 2
    assert all("temporary congestion" in o.message for o in report)
    assert all("result 2, source 3, reason 1" in o.message for o in report)
    assert report.unreachable
    with pytest.raises(AssociationFailedError, match="temporary congestion") as info:
        sender.echo()
    assert info.value.transient


def test_saturated_peer_rejects_transiently(
    storage_scp_factory: StorageSCPFactory, files: list[Path]
) -> None:
    """maximum_associations=1 and one association held open: ours is rejected (2, 3, 2)."""
    from pynetdicom import AE

    scp = storage_scp_factory(maximum_associations=1)
    holder = AE(ae_title="HOLDER")
    holder.add_requested_context("1.2.840.10008.1.1")
    held = holder.associate("127.0.0.1", scp.port, ae_title=scp.ae_title)
    assert held.is_established
    try:
        report = _sender(scp).send(files[:1])
    finally:
        held.release()
    [outcome] = report.outcomes
    assert outcome.state is SendState.RETRYABLE
    assert "local limit exceeded" in outcome.message
    assert "result 2, source 3, reason 2" in outcome.message
    assert report.unreachable
    assert scp.received == []
    # once the peer is free again, the same file goes out
    assert _sender(scp).send(files[:1]).ok


@refused_socket_leak_ignored()
def test_connection_refused(files: list[Path]) -> None:
    device = device_to("NOBODY", free_port(), timeouts=Timeouts(connect_s=2))
    sender = Sender(device)
    report = sender.send(files[:2])
    assert [o.state for o in report] == [SendState.RETRYABLE] * 2
    assert all("connection refused" in o.message for o in report)
    assert report.unreachable
    assert not report.ok
    with pytest.raises(AssociationFailedError, match="connection refused") as info:
        sender.echo()
    assert isinstance(info.value, PeerUnreachableError)
    assert info.value.transient


def test_echo_round_trip(storage_scp: StorageSCP) -> None:
    assert 0 < _sender(storage_scp).echo() < 5


# -- no presentation context accepted ------------------------------------------------------


def test_no_accepted_context_fails_every_file(
    storage_scp_factory: StorageSCPFactory, files: list[Path]
) -> None:
    """A PACS that takes no Secondary Capture: permanent, so failed, not retried forever."""
    scp = storage_scp_factory(sop_classes=[CTImageStorage])
    report = _sender(scp).send(files[:2])
    assert [o.state for o in report] == [SendState.FAILED] * 2
    for outcome in report:
        assert "accepted none of the presentation contexts" in outcome.message
        assert "Secondary Capture Image Storage" in outcome.message
        assert outcome.status is None
    assert report.unreachable
    assert scp.c_store_count == 0


def test_no_accepted_context_at_dcmtk_storescp(
    dcmtk_storescp_factory: StoreSCPFactory, files: list[Path]
) -> None:
    scp = dcmtk_storescp_factory(sop_classes=[CTImageStorage], uncompressed_only=True)
    report = Sender(device_to(scp.ae_title, scp.port)).send(files[:1])
    [outcome] = report.outcomes
    assert outcome.state is SendState.FAILED
    assert f"{scp.ae_title}@127.0.0.1:{scp.port} accepted none" in outcome.message
    assert scp.received_files() == []


# -- the leaves of the error tree ----------------------------------------------------------


def test_association_errors_name_their_leaf_and_peer(
    storage_scp_factory: StorageSCPFactory,
) -> None:
    rejecting = storage_scp_factory(reject=Rejection(result=1, source=1, reason=7))
    with pytest.raises(AssociationRejectedError, match="called AE title not recognised") as info:
        _sender(rejecting).echo()
    assert info.value.peer == f"{rejecting.ae_title}@127.0.0.1:{rejecting.port}"
    assert info.value.rejection == (1, 1, 7)
    assert not isinstance(info.value, (PeerUnreachableError, AssociationAbortedError))


# -- a worklist that cannot answer (dicom.parse_dicom_for_worklist) ------------------------


def _matching_sender(scp: StorageSCP, worklist_port: int) -> Sender:
    worklist = WorklistDevice(
        name="mwl",
        ae_title="MWL",
        host="127.0.0.1",
        port=worklist_port,
        use_today=False,
        timeouts=Timeouts(connect_s=2),
    )
    settings = Settings(dicom=DicomSettings(parse_dicom_for_worklist=True))
    return Sender(device_to(scp.ae_title, scp.port), settings=settings, querier=Querier(worklist))


@refused_socket_leak_ignored()
def test_worklist_down_is_retryable_not_failed(storage_scp: StorageSCP, files: list[Path]) -> None:
    report = _matching_sender(storage_scp, free_port()).send(files[:1])
    [outcome] = report.outcomes
    assert outcome.state is SendState.RETRYABLE
    assert "connection refused" in outcome.message
    assert storage_scp.received == []


@pytest.mark.parametrize(
    ("status", "state"),
    [(0xA700, SendState.RETRYABLE), (0xA7FF, SendState.RETRYABLE), (0xC001, SendState.FAILED)],
    ids=lambda v: f"{v:04X}" if isinstance(v, int) else str(v),
)
def test_worklist_failure_status_decides_retry(
    storage_scp: StorageSCP,
    worklist_scp_factory: WorklistSCPFactory,
    files: list[Path],
    status: int,
    state: SendState,
) -> None:
    worklist = worklist_scp_factory([], failure_status=status)
    report = _matching_sender(storage_scp, worklist.port).send(files[:1])
    [outcome] = report.outcomes
    assert outcome.state is state
    assert f"0x{status:04X}" in outcome.message
    assert storage_scp.received == []
