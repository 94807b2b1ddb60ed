"""The Sender against real peers: Orthanc (access control, syntaxes, character sets), DCMTK
storescp with TLS, and peers that die in the middle of a send (R5, R8, R12, S7).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from sendtopacs_core import AssociationFailedError, Sender, SendState, Timeouts, TlsOptions
from sendtopacs_core.testing import ReceivedInstance, StorageSCP
from sendtopacs_core.testing.plugin import StorageSCPFactory
from tests._netpeers import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    UNCOMPRESSED_TRANSFER_SYNTAXES,
    OrthancFactory,
    StoreSCPFactory,
    TlsFiles,
    device_to,
    refused_socket_leak_ignored,
    write_secondary_capture,
)

FAST = Timeouts(connect_s=3, acse_s=3, dimse_s=10, network_s=10)


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [folder / f"{n}.dcm" for n in range(5)]
    for path in paths:
        write_secondary_capture(path)
    return paths


# -- Orthanc -------------------------------------------------------------------------------------


def test_orthanc_rejects_unknown_calling_ae(
    orthanc_factory: OrthancFactory, files: list[Path]
) -> None:
    orthanc = orthanc_factory(always_allow_echo=False, always_allow_store=False)
    sender = Sender(device_to(orthanc.ae_title, orthanc.port), calling_ae_title="STRANGER")
    report = sender.send(files[:2])
    assert [o.state for o in report] == [SendState.FAILED] * 2
    assert all("calling AE title not recognised" in o.message for o in report)
    assert all("result 1, source 1, reason 3" in o.message for o in report)
    assert report.unreachable
    with pytest.raises(AssociationFailedError, match="calling AE title not recognised"):
        sender.echo()
    assert orthanc.count() == 0


def test_orthanc_refusing_store_is_not_reported_sent(
    orthanc_factory: OrthancFactory, files: list[Path]
) -> None:
    """Association accepted (C-ECHO works) but Orthanc aborts on the C-STORE."""
    orthanc = orthanc_factory(always_allow_store=False)
    sender = Sender(device_to(orthanc.ae_title, orthanc.port, timeouts=FAST))
    assert 0 < sender.echo() < FAST.dimse_s  # a round trip, answered within the timeout
    report = sender.send(files[:2])
    assert not report.ok
    for outcome in report:
        assert not outcome.ok
        assert outcome.status is None
        assert "aborted" in outcome.message
        assert "Success" not in outcome.message
        assert "sent" not in outcome.message.lower()
    assert orthanc.count() == 0


def test_orthanc_uncompressed_only_receives_lossless_decompressed(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory(accepted_transfer_syntaxes=list(UNCOMPRESSED_TRANSFER_SYNTAXES))
    source_path = get_testdata_file("MR_small_RLE.dcm", download=False)
    assert source_path is not None
    rle = tmp_path / "rle.dcm"
    shutil.copyfile(str(source_path), rle)
    uid = str(pydicom.dcmread(rle).SOPInstanceUID)
    [outcome] = Sender(device_to(orthanc.ae_title, orthanc.port)).send([rle]).outcomes
    assert outcome.state is SendState.SENT, outcome.message
    assert outcome.decompressed
    assert orthanc.sop_instance_uids() == [uid]
    assert orthanc.transfer_syntax(orthanc.instance_id(uid)) == EXPLICIT_VR_LITTLE_ENDIAN


def test_orthanc_receives_utf8_from_latin1_source(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory()
    source = tmp_path / "latin1.dcm"
    uid = write_secondary_capture(source, patient_name="Müller^Jürgen", character_set="ISO_IR 100")
    before = source.read_bytes()
    assert "Müller".encode("latin-1") in before
    device = device_to(orthanc.ae_title, orthanc.port, charset="ISO_IR 192")
    [outcome] = Sender(device).send([source]).outcomes
    assert outcome.state is SendState.SENT, outcome.message
    instance = orthanc.instance_id(uid)
    assert orthanc.raw_tag(instance, "0010-0010").rstrip(b" ") == "Müller^Jürgen".encode()
    assert orthanc.raw_tag(instance, "0008-0005").rstrip(b" ") == b"ISO_IR 192"
    assert source.read_bytes() == before  # the source keeps its Latin-1


# -- TLS (DCMTK storescp +tls) -------------------------------------------------------------------


def _tls(tls_files: TlsFiles, **options: object) -> TlsOptions:
    values: dict[str, object] = {
        "enabled": True,
        "ca_file": tls_files.ca_cert,
        "cert_file": tls_files.client_cert,
        "key_file": tls_files.client_key,
    }
    values.update(options)
    return TlsOptions(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("server_name", [None, "localhost"])
def test_tls_send_with_verified_server(
    dcmtk_storescp_factory: StoreSCPFactory,
    tls_files: TlsFiles,
    files: list[Path],
    server_name: str | None,
) -> None:
    """127.0.0.1 matches the certificate's IP SAN; ``localhost`` its DNS SAN."""
    peer = dcmtk_storescp_factory(tls=tls_files)
    device = device_to(
        peer.ae_title, peer.port, tls=_tls(tls_files, server_name=server_name), timeouts=FAST
    )
    sender = Sender(device)
    assert 0 < sender.echo() < FAST.dimse_s  # a round trip, answered within the timeout
    report = sender.send(files[:2])
    assert report.ok, [o.message for o in report]
    assert len(peer.received_files()) == 2


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"ca_file": None}, "certificate"),  # system CAs do not know our test CA
        ({"server_name": "pacs.example.org"}, "certificate"),  # hostname mismatch
    ],
    ids=["system-cas", "wrong-server-name"],
)
def test_tls_untrusted_server_fails_clearly(
    dcmtk_storescp_factory: StoreSCPFactory,
    tls_files: TlsFiles,
    files: list[Path],
    options: dict[str, object],
    expected: str,
) -> None:
    peer = dcmtk_storescp_factory(tls=tls_files)
    device = device_to(peer.ae_title, peer.port, tls=_tls(tls_files, **options), timeouts=FAST)
    report = Sender(device).send(files[:1])
    [outcome] = report.outcomes
    assert not outcome.ok
    assert "TLS" in outcome.message
    assert expected in outcome.message
    assert report.unreachable
    assert peer.received_files() == []
    with pytest.raises(AssociationFailedError, match="TLS"):
        Sender(device).echo()


def test_tls_device_against_plain_peer(
    dcmtk_storescp_factory: StoreSCPFactory, tls_files: TlsFiles, files: list[Path]
) -> None:
    peer = dcmtk_storescp_factory()
    device = device_to(peer.ae_title, peer.port, tls=_tls(tls_files), timeouts=FAST)
    start = time.monotonic()
    report = Sender(device).send(files[:1])
    [outcome] = report.outcomes
    assert not outcome.ok
    assert "TLS handshake failed" in outcome.message
    assert report.unreachable
    assert peer.received_files() == []
    assert time.monotonic() - start < FAST.connect_s + FAST.acse_s + 2


# -- peers that die in the middle ----------------------------------------------------------------


def test_storescp_abort_after_store_is_never_sent(
    dcmtk_storescp_factory: StoreSCPFactory, files: list[Path]
) -> None:
    """storescp --abort-after: the data set arrives but the answer never does."""
    peer = dcmtk_storescp_factory(extra_args=["--abort-after"])
    report = Sender(device_to(peer.ae_title, peer.port, timeouts=FAST)).send(files[:3])
    assert [o.state for o in report] == [SendState.RETRYABLE] * 3
    assert all(o.status is None and "aborted" in o.message for o in report)
    assert report.sent == []


@refused_socket_leak_ignored()
def test_storage_scp_stopped_in_the_middle(
    storage_scp_factory: StorageSCPFactory, files: list[Path]
) -> None:
    holder: dict[str, StorageSCP] = {}
    calls = 0

    def stop_on_third(_instance: ReceivedInstance) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            threading.Thread(target=holder["scp"].stop).start()
            time.sleep(0.3)  # the association is aborted before we answer
        return 0x0000

    scp = storage_scp_factory(status_for=stop_on_third)
    holder["scp"] = scp
    report = Sender(device_to(scp.ae_title, scp.port, timeouts=FAST)).send(files)
    states = [o.state for o in report]
    assert states[:2] == [SendState.SENT, SendState.SENT]
    assert states[2:] == [SendState.RETRYABLE] * 3
    assert "aborted" in report.outcomes[2].message
    assert all("connection refused" in o.message for o in report.outcomes[3:])
    assert report.unreachable
    assert len(report.sent) == 2
    assert {o.sop_instance_uid for o in report.sent} <= {r.sop_instance_uid for r in scp.received}
