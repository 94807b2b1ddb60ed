"""The in-process storage SCP (``sendtopacs_core.testing``), driven by pynetdicom as the SCU."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pynetdicom import AE, VerificationPresentationContexts
from pynetdicom.association import Association

from sendtopacs_core.testing import ReceivedInstance, Rejection, StorageSCP
from sendtopacs_core.testing._storage_scp import safe_filename
from sendtopacs_core.testing.plugin import (  # noqa: F401
    StorageSCPFactory,
    storage_scp,
    storage_scp_factory,
)
from tests._peers import missing_tool

VERIFICATION = str(VerificationPresentationContexts[0].abstract_syntax)


def make_dataset(
    transfer_syntax: str = ExplicitVRLittleEndian, *, sop_instance_uid: str | None = None
) -> Dataset:
    """Return a tiny Secondary Capture image with file meta, in `transfer_syntax`."""
    uid = UID(sop_instance_uid) if sop_instance_uid else generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Müller^Jürgen"
    ds.PatientID = "12345"
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 2
    ds.Columns = 2
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = b"\x00\x40\x80\xff"
    return ds


def make_scu(*, dimse_timeout: float = 5.0) -> AE:
    """Return an SCU proposing Secondary Capture (Explicit/Implicit VR LE) and Verification."""
    ae = AE(ae_title="TESTSCU")
    ae.acse_timeout = 5
    ae.dimse_timeout = dimse_timeout
    ae.network_timeout = 5
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(SecondaryCaptureImageStorage, ImplicitVRLittleEndian)
    ae.add_requested_context(VERIFICATION)
    return ae


def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll `predicate` until true or `timeout` (pynetdicom updates state on its threads)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def associate(
    scp: StorageSCP,
    ae: AE | None = None,
    *,
    tls_args: tuple[ssl.SSLContext, str] | None = None,
) -> Association:
    """Open an association from `ae` (default `make_scu()`) to `scp`."""
    scu = ae or make_scu()
    host, port = scp.address
    return scu.associate(host, port, ae_title=scp.ae_title, tls_args=tls_args)


@pytest.fixture
def scu_assoc(storage_scp: StorageSCP) -> Iterator[Association]:  # noqa: F811
    assoc = associate(storage_scp)
    assert assoc.is_established
    yield assoc
    if assoc.is_established:
        assoc.release()


# -- storing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_store_records_instance_and_writes_file(
    storage_scp: StorageSCP,  # noqa: F811
    transfer_syntax: str,
) -> None:
    ds = make_dataset(transfer_syntax)
    assoc = associate(storage_scp)
    status = assoc.send_c_store(ds)
    assoc.release()

    assert status.Status == 0x0000
    assert storage_scp.wait_for(1)
    [item] = storage_scp.received
    assert item.sop_class_uid == SecondaryCaptureImageStorage
    assert item.sop_instance_uid == ds.SOPInstanceUID
    assert item.transfer_syntax_uid == transfer_syntax
    assert item.calling_ae_title == "TESTSCU"
    assert item.called_ae_title == "TESTPACS"
    assert item.status == 0x0000
    assert item.patient_name_bytes == "Müller^Jürgen ".encode()  # as sent: padded to even
    assert item.character_set == "ISO_IR 192"
    assert item.size > len(ds.PixelData)
    assert item.path is not None
    assert item.path.name == f"{ds.SOPInstanceUID}.dcm"

    written = pydicom.dcmread(item.path)
    assert written.file_meta.TransferSyntaxUID == transfer_syntax
    assert written.SOPInstanceUID == ds.SOPInstanceUID
    assert written.PatientName == "Müller^Jürgen"
    assert written.PixelData == ds.PixelData
    assert storage_scp.associations == 1
    assert storage_scp.c_store_count == 1
    assert storage_scp.duplicates() == {}


def test_echo_is_answered(scu_assoc: Association) -> None:
    assert scu_assoc.send_c_echo().Status == 0x0000


def test_duplicates_are_counted(storage_scp: StorageSCP, scu_assoc: Association) -> None:  # noqa: F811
    ds = make_dataset()
    other = make_dataset()
    for dataset in (ds, other, ds, ds):
        assert scu_assoc.send_c_store(dataset).Status == 0x0000
    assert storage_scp.duplicates() == {ds.SOPInstanceUID: 3}
    assert storage_scp.c_store_count == 4


def test_without_storage_dir_nothing_is_written(
    storage_scp_factory: StorageSCPFactory,  # noqa: F811
) -> None:
    scp = storage_scp_factory()
    assoc = associate(scp)
    assert assoc.send_c_store(make_dataset()).Status == 0x0000
    assoc.release()
    assert [item.path for item in scp.received] == [None]


def test_wait_for_times_out(storage_scp: StorageSCP) -> None:  # noqa: F811
    started = time.monotonic()
    assert not storage_scp.wait_for(1, timeout=0.05)
    assert time.monotonic() - started < 1.0


# -- scripted behaviour --------------------------------------------------------------------------


def test_scripted_statuses_in_order_with_error_comment(
    storage_scp_factory: StorageSCPFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    scp = storage_scp_factory(
        statuses=[0xB000, 0xA700], error_comment="Out of cheese", storage_dir=tmp_path
    )
    assoc = associate(scp)
    answers = [assoc.send_c_store(make_dataset()) for _ in range(3)]
    assoc.release()

    assert [a.Status for a in answers] == [0xB000, 0xA700, 0x0000]
    assert answers[0].ErrorComment == "Out of cheese"
    assert answers[1].ErrorComment == "Out of cheese"
    assert "ErrorComment" not in answers[2]
    received = scp.received
    assert [r.status for r in received] == [0xB000, 0xA700, 0x0000]
    # stored with a warning or success: written; a failure: not
    assert [r.path is not None for r in received] == [True, False, True]


def test_status_for_overrides_statuses(storage_scp_factory: StorageSCPFactory) -> None:  # noqa: F811
    seen: list[ReceivedInstance] = []

    def status_for(item: ReceivedInstance) -> int:
        seen.append(item)
        return 0xC000 if item.patient_name_bytes else 0x0000

    scp = storage_scp_factory(statuses=[0xB000], status_for=status_for)
    assoc = associate(scp)
    assert assoc.send_c_store(make_dataset()).Status == 0xC000
    assoc.release()
    assert [s.status for s in seen] == [0x0000]
    assert [r.status for r in scp.received] == [0xC000]


def test_abort_after_aborts_without_answer(storage_scp_factory: StorageSCPFactory) -> None:  # noqa: F811
    scp = storage_scp_factory(abort_after=2)
    assoc = associate(scp)
    assert assoc.send_c_store(make_dataset()).Status == 0x0000
    second = assoc.send_c_store(make_dataset())
    assert "Status" not in second
    assert eventually(lambda: assoc.is_aborted)

    again = associate(scp)
    assert again.send_c_store(make_dataset()).Status == 0x0000
    again.release()
    assert scp.c_store_count == 3
    assert len(scp.received) == 2
    assert scp.associations == 2


def test_delay_s_delays_the_answer(storage_scp_factory: StorageSCPFactory) -> None:  # noqa: F811
    scp = storage_scp_factory(delay_s=0.3)
    assoc = associate(scp)
    started = time.monotonic()
    assert assoc.send_c_store(make_dataset()).Status == 0x0000
    assert time.monotonic() - started >= 0.3
    assoc.release()


def test_never_answer_times_out_the_scu(storage_scp_factory: StorageSCPFactory) -> None:  # noqa: F811
    scp = storage_scp_factory(never_answer=True)
    assoc = associate(scp, make_scu(dimse_timeout=0.3))
    status = assoc.send_c_store(make_dataset())
    assert "Status" not in status
    assert eventually(lambda: assoc.is_aborted)
    assert scp.c_store_count == 1
    assert scp.received == []


def test_stop_returns_quickly_while_a_store_hangs() -> None:
    scp = StorageSCP(never_answer=True).start()
    assoc = associate(scp, make_scu(dimse_timeout=30))
    answers: list[Dataset] = []
    sender = threading.Thread(target=lambda: answers.append(assoc.send_c_store(make_dataset())))
    sender.start()
    deadline = time.monotonic() + 5
    while scp.c_store_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scp.c_store_count == 1

    started = time.monotonic()
    scp.stop()
    assert time.monotonic() - started < 2.0
    sender.join(timeout=5)
    assert not sender.is_alive()
    assert ["Status" in a for a in answers] == [False]
    assert eventually(lambda: assoc.is_aborted)
    scp.stop()  # idempotent


# -- association negotiation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "rejection",
    [Rejection(result=1, source=1, reason=3), Rejection(result=2, source=3, reason=1)],
)
def test_reject_sends_the_triple(
    storage_scp_factory: StorageSCPFactory,  # noqa: F811
    rejection: Rejection,
) -> None:
    scp = storage_scp_factory(reject=rejection)
    assoc = associate(scp)
    assert assoc.is_rejected
    assert not assoc.is_established
    rsp = assoc.acceptor.primitive
    assert rsp is not None
    assert (rsp.result, rsp.result_source, rsp.diagnostic) == (
        rejection.result,
        rejection.source,
        rejection.reason,
    )
    assert scp.associations == 0


def test_rejection_checks_reason_for_source() -> None:
    with pytest.raises(ValueError, match="invalid reason for source 3: 3"):
        Rejection(result=1, source=3, reason=3)
    with pytest.raises(ValueError, match="result"):
        Rejection(result=0, source=1, reason=1)


def test_restricted_transfer_syntaxes_reject_other_contexts(
    storage_scp_factory: StorageSCPFactory,  # noqa: F811
) -> None:
    scp = storage_scp_factory(transfer_syntaxes=[ExplicitVRLittleEndian])
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(SecondaryCaptureImageStorage, JPEGBaseline8Bit)
    ae.add_requested_context(SecondaryCaptureImageStorage, ImplicitVRLittleEndian)
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(VERIFICATION)
    assoc = associate(scp, ae)
    assert assoc.is_established
    accepted = {
        (cx.abstract_syntax, cx.transfer_syntax[0])
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == SecondaryCaptureImageStorage
    }
    assert accepted == {(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)}
    assert {cx.transfer_syntax[0] for cx in assoc.rejected_contexts} == {
        JPEGBaseline8Bit,
        ImplicitVRLittleEndian,
    }
    assoc.release()


def test_jpeg_only_proposal_is_not_accepted(
    storage_scp_factory: StorageSCPFactory,  # noqa: F811
) -> None:
    scp = storage_scp_factory(transfer_syntaxes=[ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(SecondaryCaptureImageStorage, JPEGBaseline8Bit)
    assoc = associate(scp, ae)
    assert not assoc.is_established
    assert assoc.accepted_contexts == []


def test_sop_classes_restricts_abstract_syntaxes(
    storage_scp_factory: StorageSCPFactory,  # noqa: F811
) -> None:
    scp = storage_scp_factory(sop_classes=["1.2.840.10008.5.1.4.1.1.104.1"])
    assoc = associate(scp)
    assert assoc.is_established
    assert {cx.abstract_syntax for cx in assoc.accepted_contexts} == {VERIFICATION}
    assoc.release()


def test_maximum_associations(storage_scp_factory: StorageSCPFactory) -> None:  # noqa: F811
    scp = storage_scp_factory(maximum_associations=1)
    first = associate(scp)
    assert first.is_established
    second = associate(scp)
    assert second.is_rejected
    rsp = second.acceptor.primitive
    assert rsp is not None
    assert (rsp.result, rsp.result_source, rsp.diagnostic) == (2, 3, 2)
    first.release()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"delay_s": -1.0}, "invalid delay_s: -1.0"),
        ({"abort_after": 0}, "invalid abort_after: 0"),
        ({"maximum_associations": 0}, "invalid maximum_associations: 0"),
        ({"error_comment": "x" * 65}, "invalid error_comment: 65 characters"),
    ],
)
def test_invalid_options_raise(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StorageSCP(**options)  # type: ignore[arg-type]


def test_start_stop_idempotent_and_address() -> None:
    scp = StorageSCP(ae_title="OTHERAE")
    with pytest.raises(RuntimeError, match="not running"):
        _ = scp.port
    scp.stop()
    with scp:
        assert scp.start() is scp
        host, port = scp.address
        assert host == "127.0.0.1"
        assert port == scp.port > 0
        assert scp.ae_title == "OTHERAE"
    scp.stop()
    with scp:  # restartable
        assoc = associate(scp)
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
        assert scp.associations == 1


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Return (certificate, key) of a self-signed cert for 127.0.0.1, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing_tool("openssl is not installed")  # CI=true: a failure, not a skip
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_round_trip(
    storage_scp_factory: StorageSCPFactory,  # noqa: F811
    self_signed_cert: tuple[Path, Path],
) -> None:
    cert, key = self_signed_cert
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))

    scp = storage_scp_factory(tls=server_context)
    assoc = associate(scp, tls_args=(client_context, "127.0.0.1"))
    assert assoc.is_established
    assert assoc.send_c_store(make_dataset()).Status == 0x0000
    assoc.release()
    assert len(scp.received) == 1


# -- file names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "expected"),
    [
        ("1.2.3.4", "1.2.3.4.dcm"),
        ("../../evil", "_.._evil.dcm"),
        ("/etc/passwd", "_etc_passwd.dcm"),
        ("..", "unnamed.dcm"),
        ("", "unnamed.dcm"),
        ("a\\b\x00c", "a_b_c.dcm"),
    ],
)
def test_safe_filename(uid: str, expected: str) -> None:
    assert safe_filename(uid) == expected


def test_hostile_uid_is_written_inside_storage_dir(
    storage_scp_factory: StorageSCPFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    storage = tmp_path / "deep" / "store"
    scp = storage_scp_factory(storage_dir=storage)
    assoc = associate(scp)
    # pydicom warns about the invalid UID on our side; pynetdicom still sends it
    with pytest.warns(UserWarning, match="Invalid value for VR UI"):
        status = assoc.send_c_store(make_dataset(sop_instance_uid="../../evil"))
    assoc.release()
    assert status.Status == 0x0000
    [item] = scp.received
    assert item.path is not None
    assert item.path.parent == storage.resolve()
    assert item.path.name == "_.._evil.dcm"
    assert not (tmp_path / "evil.dcm").exists()
    assert sorted(p.name for p in tmp_path.rglob("*.dcm")) == ["_.._evil.dcm"]
