"""Storage Commitment Push Model SCU (PS3.4 J) against Orthanc and scripted pynetdicom peers.

R9 (reduced): a C-STORE Success is no proof of storage. Orthanc with a Lua
``ReceivedInstanceFilter`` that drops PatientID ``REJECTME`` answers Success to the C-STORE and
keeps nothing; only the storage commitment report says so (Failure Reason 0x0112).
Orthanc 1.10.1 sends its report on a new association to the modality registered under our AE
title (``DicomModalities``), without SCP/SCU role selection.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import SecondaryCaptureImageStorage, generate_uid
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from sendtopacs_core import (
    ConfigError,
    Device,
    InvalidValueError,
    MainSettings,
    Sender,
    SendState,
    Settings,
    Timeouts,
)
from sendtopacs_core.net.commitment import (
    CommitmentResult,
    failure_reason_meaning,
    request_commitment,
)
from tests._netpeers import (
    OrthancFactory,
    OrthancPeer,
    device_to,
    free_port,
    write_secondary_capture,
)

OUR_AE = "SENDTOPACS"
FAST = Timeouts(connect_s=3, acse_s=3, dimse_s=5, network_s=10)
PUSH_MODEL_INSTANCE = "1.2.840.10008.1.20.1.1"
NO_SUCH_OBJECT_INSTANCE = 0x0112
REJECT_LUA = """
function ReceivedInstanceFilter(dicom, origin, info)
  if dicom.PatientID == 'REJECTME' then
    return false
  end
  return true
end
"""


def _files(folder: Path, count: int, *, patient_id: str = "OK1") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for _ in range(count):
        path = folder / f"{generate_uid()}.dcm"
        write_secondary_capture(path)
        ds = pydicom.dcmread(path)
        ds.PatientID = patient_id
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _references(paths: list[Path]) -> list[tuple[str, str]]:
    references = []
    for path in paths:
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        references.append((str(meta.MediaStorageSOPClassUID), str(meta.MediaStorageSOPInstanceUID)))
    return references


def _orthanc_calling_back(
    orthanc_factory: OrthancFactory,
    *,
    listen_port: int,
    extra_config: Mapping[str, object] | None = None,
) -> OrthancPeer:
    """Orthanc that knows us as ``OUR_AE`` on 127.0.0.1:``listen_port``."""
    return orthanc_factory(
        ae_title="PACS",
        modalities={"us": (OUR_AE, "127.0.0.1", listen_port)},
        extra_config=extra_config,
    )


def _send(orthanc: OrthancPeer, paths: list[Path]) -> list[SendState]:
    sender = Sender(device_to(orthanc.ae_title, orthanc.port), calling_ae_title=OUR_AE)
    return [outcome.state for outcome in sender.send(paths)]


# -- Orthanc ---------------------------------------------------------------------------------


def test_orthanc_commits_what_it_keeps(orthanc_factory: OrthancFactory, tmp_path: Path) -> None:
    listen_port = free_port()
    orthanc = _orthanc_calling_back(orthanc_factory, listen_port=listen_port)
    paths = _files(tmp_path / "in", 10)
    assert _send(orthanc, paths) == [SendState.SENT] * 10
    stored = _references(paths)
    never_sent = [(str(SecondaryCaptureImageStorage), str(generate_uid())) for _ in range(2)]

    started = time.monotonic()
    result = request_commitment(
        device_to(orthanc.ae_title, orthanc.port),
        OUR_AE,
        stored + never_sent,
        listen_address=("127.0.0.1", listen_port),
        timeout_s=20,
    )

    assert time.monotonic() - started < 5
    assert result.error is None
    assert result.committed == {uid for _cls, uid in stored}
    assert dict(result.failed) == dict.fromkeys(
        (uid for _cls, uid in never_sent), NO_SUCH_OBJECT_INSTANCE
    )
    assert result.missing == frozenset()
    assert not result.is_complete
    assert failure_reason_meaning(NO_SUCH_OBJECT_INSTANCE) == "No such object instance"
    # The report came on Orthanc's own association to us, not on the request's.
    assert f'to AET "{OUR_AE}" on host 127.0.0.1:{listen_port}' in orthanc.log


def test_lua_filter_drop_is_success_for_c_store_but_not_committed(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    """R9 reduced: 5 kept + 2 dropped by the Lua filter -> 5 committed, 2 failed (0x0112)."""
    lua = tmp_path / "reject.lua"
    lua.write_text(REJECT_LUA, encoding="utf-8")
    listen_port = free_port()
    orthanc = _orthanc_calling_back(
        orthanc_factory, listen_port=listen_port, extra_config={"LuaScripts": [str(lua)]}
    )
    good = _files(tmp_path / "good", 5)
    rejected = _files(tmp_path / "rejected", 2, patient_id="REJECTME")

    assert _send(orthanc, good + rejected) == [SendState.SENT] * 7  # C-STORE Success for all
    assert orthanc.count() == 5

    result = request_commitment(
        device_to(orthanc.ae_title, orthanc.port),
        OUR_AE,
        _references(good + rejected),
        listen_address=("127.0.0.1", listen_port),
        timeout_s=20,
    )

    assert result.error is None
    assert result.committed == {uid for _cls, uid in _references(good)}
    assert dict(result.failed) == dict.fromkeys(
        (uid for _cls, uid in _references(rejected)), NO_SUCH_OBJECT_INSTANCE
    )
    assert result.missing == frozenset()


def test_no_report_in_time_commits_nothing(orthanc_factory: OrthancFactory, tmp_path: Path) -> None:
    """Orthanc accepts the request but calls us back where nobody listens."""
    orthanc = _orthanc_calling_back(orthanc_factory, listen_port=free_port())
    paths = _files(tmp_path / "in", 2)
    assert _send(orthanc, paths) == [SendState.SENT] * 2
    references = _references(paths)

    started = time.monotonic()
    result = request_commitment(
        device_to(orthanc.ae_title, orthanc.port),
        OUR_AE,
        references,
        listen_address=("127.0.0.1", free_port()),
        timeout_s=1.5,
    )

    assert 1.5 <= time.monotonic() - started < 6
    assert result.error == "no storage commitment report within 1.5 s"
    assert result.committed == frozenset()
    assert dict(result.failed) == {}
    assert result.missing == {uid for _cls, uid in references}


def test_orthanc_without_our_modality_gives_an_error(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    """Orthanc does not know our AE title: it aborts on the N-ACTION."""
    orthanc = orthanc_factory(ae_title="PACS")
    references = [(SecondaryCaptureImageStorage, generate_uid())]

    result = request_commitment(
        device_to(orthanc.ae_title, orthanc.port, timeouts=FAST),
        OUR_AE,
        references,
        listen_address=("127.0.0.1", free_port()),
        timeout_s=1.5,
    )

    # Orthanc 1.10.1 aborts the association: "This AET is not listed in DicomModalities".
    assert result.error == (
        f"PACS@127.0.0.1:{orthanc.port} aborted the association instead of answering the "
        f"storage commitment request (does it know our AE title {OUR_AE}?)"
    )
    assert result.committed == frozenset()
    assert result.missing == {references[0][1]}


# -- no peer, bad input ------------------------------------------------------------------------


def test_unreachable_device_gives_an_error_not_an_exception() -> None:
    references = [(SecondaryCaptureImageStorage, generate_uid())]

    result = request_commitment(
        device_to("PACS", free_port(), timeouts=FAST),
        OUR_AE,
        references,
        listen_address=("127.0.0.1", free_port()),
        timeout_s=1,
    )

    assert result.error is not None
    assert "connection refused" in result.error
    assert result.missing == {references[0][1]}
    assert result.committed == frozenset()


def test_busy_listen_port_gives_an_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = request_commitment(
            device_to("PACS", free_port(), timeouts=FAST),
            OUR_AE,
            [(SecondaryCaptureImageStorage, generate_uid())],
            listen_address=("127.0.0.1", port),
        )
    assert result.error is not None
    assert result.error.startswith(
        f"cannot listen for the storage commitment report on 127.0.0.1:{port}"
    )


@pytest.mark.parametrize(
    ("references", "ae_title", "timeout_s", "match"),
    [
        ([], OUR_AE, 1.0, "at least one"),
        ([(SecondaryCaptureImageStorage, "1.2.3.abc")], OUR_AE, 1.0, "SOP Instance UID"),
        ([(SecondaryCaptureImageStorage, "1.2.3")], "", 1.0, "calling_ae_title"),
        ([(SecondaryCaptureImageStorage, "1.2.3")], OUR_AE, 0.0, "timeout_s"),
    ],
)
def test_programming_errors_raise(
    references: list[tuple[str, str]], ae_title: str, timeout_s: float, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        request_commitment(
            device_to("PACS", 104),
            ae_title,
            references,
            listen_address=("127.0.0.1", 0),
            timeout_s=timeout_s,
        )


def test_invalid_uid_is_an_invalid_value_error() -> None:
    with pytest.raises(InvalidValueError):
        request_commitment(
            device_to("PACS", 104),
            OUR_AE,
            [("not a uid", "1.2.3")],
            listen_address=("127.0.0.1", 0),
        )


def test_result_is_frozen_and_read_only() -> None:
    result = CommitmentResult(
        transaction_uid="1.2.3",
        committed={"1.2.3.4"},
        failed={"1.2.3.5": 0x0112},
        missing=set(),
        error=None,
    )
    assert result.committed == frozenset({"1.2.3.4"})
    with pytest.raises(TypeError):
        result.failed["1.2.3.6"] = 0x0110  # type: ignore[index]


def test_settings_carry_the_commitment_options(tmp_path: Path) -> None:
    device = Device(
        name="pacs",
        ae_title="PACS",
        host="pacs.example",
        port=104,
        storage_commitment=True,
        commitment_timeout_s=30,
    )
    settings = Settings(main=MainSettings(listen_port=11113), devices=(device,))
    path = tmp_path / "settings.json"
    settings.dump(path)
    assert Settings.load(path) == settings
    assert Settings().main.listen_port is None
    assert Device(name="p", ae_title="P", host="h", port=1).storage_commitment is False
    with pytest.raises(InvalidValueError, match="commitment_timeout_s"):
        Device(name="p", ae_title="P", host="h", port=1, commitment_timeout_s=0)
    with pytest.raises(InvalidValueError, match="listen_port"):
        MainSettings(listen_port=70000)
    path.write_text('{"main": {"listen_port": "x"}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="listen_port"):
        Settings.load(path)


# -- a scripted SCP that reports on the request's own association ------------------------------


class _ScriptedSCP:
    """Answers the N-ACTION with ``status``; then reports on the same association.

    With ``decoy`` it first sends a report for another transaction (which must be ignored).
    """

    def __init__(self, *, status: int = 0x0000, decoy: bool = False) -> None:
        self.status = status
        self.decoy = decoy
        self.answers: list[int] = []
        self.threads: list[threading.Thread] = []
        ae = AE(ae_title="SCRIPTED")
        ae.add_supported_context(StorageCommitmentPushModel)
        server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_N_ACTION, self._on_action)]
        )
        assert server is not None
        self.server: ThreadedAssociationServer = server
        self.port = int(self.server.server_address[1])

    def _on_action(self, event: Event) -> tuple[int, Dataset | None]:
        if self.status == 0x0000:
            info = event.action_information
            thread = threading.Thread(target=self._report, args=(event, info), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self.status, None

    def _report(self, event: Event, info: Dataset) -> None:
        time.sleep(0.05)  # after the N-ACTION response
        if self.decoy:
            decoy = Dataset()
            decoy.TransactionUID = generate_uid()
            decoy.ReferencedSOPSequence = []
            self._send(event, decoy, 1)
        report = Dataset()
        report.TransactionUID = info.TransactionUID
        items = list(info.ReferencedSOPSequence)
        report.ReferencedSOPSequence = items[:-1]
        failed = Dataset()
        failed.ReferencedSOPClassUID = items[-1].ReferencedSOPClassUID
        failed.ReferencedSOPInstanceUID = items[-1].ReferencedSOPInstanceUID
        failed.FailureReason = 0x0110
        report.FailedSOPSequence = [failed]
        self._send(event, report, 2)

    def _send(self, event: Event, report: Dataset, event_type: int) -> None:
        status, _reply = event.assoc.send_n_event_report(
            report, event_type, StorageCommitmentPushModel, PUSH_MODEL_INSTANCE
        )
        self.answers.append(int(status.Status) if "Status" in status else -1)

    def close(self) -> None:
        for thread in self.threads:
            thread.join(5)
        self.server.shutdown()


@pytest.fixture
def scripted() -> Iterator[type[_ScriptedSCP]]:
    made: list[_ScriptedSCP] = []

    class Made(_ScriptedSCP):
        def __init__(self, **options: object) -> None:
            super().__init__(**options)  # type: ignore[arg-type]
            made.append(self)

    try:
        yield Made
    finally:
        for scp in made:
            scp.close()


def test_report_on_the_same_association(scripted: type[_ScriptedSCP]) -> None:
    scp = scripted(decoy=True)
    references = [(SecondaryCaptureImageStorage, generate_uid()) for _ in range(3)]

    result = request_commitment(
        device_to("SCRIPTED", scp.port, timeouts=FAST),
        OUR_AE,
        references,
        listen_address=("127.0.0.1", free_port()),
        timeout_s=5,
    )

    assert result.error is None
    assert result.committed == {uid for _cls, uid in references[:2]}
    assert dict(result.failed) == {references[2][1]: 0x0110}
    scp.threads[0].join(5)
    assert scp.answers == [0x0000, 0x0000]  # the decoy is acknowledged, then ignored


def test_refused_request_gives_an_error(scripted: type[_ScriptedSCP]) -> None:
    scp = scripted(status=0x0110)
    references = [(SecondaryCaptureImageStorage, generate_uid())]

    started = time.monotonic()
    result = request_commitment(
        device_to("SCRIPTED", scp.port, timeouts=FAST),
        OUR_AE,
        references,
        listen_address=("127.0.0.1", free_port()),
        timeout_s=30,
    )

    assert time.monotonic() - started < 5
    assert result.error == (
        f"SCRIPTED@127.0.0.1:{scp.port} refused the storage commitment request: "
        "status 0x0110 (Processing Failure)"
    )
    assert result.missing == {references[0][1]}
