"""The network peers of ``tests/_netpeers.py`` work, checked with DCMTK's own clients.

DCMTK's ``storescu`` proposes uncompressed transfer syntaxes only unless told otherwise, so the
JPEG cases pass ``-xy`` (propose JPEG Baseline as well); when the peer accepts only the
uncompressed contexts, storescu cannot convert the JPEG data set and fails with
"unable to convert dataset from 'JPEG Baseline' transfer syntax".
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
from pathlib import Path

import pydicom
import pytest

from tests._netpeers import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    UNCOMPRESSED_TRANSFER_SYNTAXES,
    DcmtkStoreSCP,
    OrthancFactory,
    PeerStartError,
    StoreSCPFactory,
    TlsFiles,
    dcmtk_tls_client_args,
    free_port,
    write_secondary_capture,
)
from tests._peers import dcmtk_env, require_tool

_CLIENT_TIMEOUT_S = 30


@dataclasses.dataclass(frozen=True)
class ClientResult:
    returncode: int
    output: str


def _run(tool: str, *args: str) -> ClientResult:
    proc = subprocess.run(
        [str(require_tool(tool)), "-to", "5", "-ta", "5", "-td", "10", *args],
        capture_output=True,
        timeout=_CLIENT_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
        env=dcmtk_env(),
    )
    return ClientResult(proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace"))


def storescu(port: int, path: Path, *options: str, called: str = "ANY-SCP") -> ClientResult:
    return _run("storescu", *options, "-aec", called, "127.0.0.1", str(port), str(path))


def echoscu(port: int, *options: str, called: str = "ANY-SCP") -> ClientResult:
    return _run("echoscu", *options, "-aec", called, "127.0.0.1", str(port))


def _dataset_bytes(path: Path) -> bytes:
    """The bytes after the file meta information (preamble, ``DICM``, group 0002)."""
    data = path.read_bytes()
    assert data[128:132] == b"DICM"
    assert data[132:136] == b"\x02\x00\x00\x00", "file meta must start with its group length"
    group_length = int.from_bytes(data[140:144], "little")
    return data[144 + group_length :]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.interop
def test_storescp_stops_at_exit_and_reports_a_failed_start(tmp_path: Path) -> None:
    require_tool("storescp")
    with DcmtkStoreSCP(tmp_path / "ok") as peer:
        assert peer.is_running()
        port = peer.port
    assert not peer.is_running()
    result = echoscu(port)
    assert result.returncode != 0
    with (
        pytest.raises(PeerStartError, match=r"(?s)storescp exited .*--- storescp log ---") as info,
        DcmtkStoreSCP(tmp_path / "bad", extra_args=["--no-such-option"]),
    ):
        pass
    assert "no-such-option" in str(info.value)


# --------------------------------------------------------------------------------------------
# DCMTK storescp
# --------------------------------------------------------------------------------------------


def test_storescp_receives_a_file_byte_exact(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    peer = dcmtk_storescp_factory(ae_title="RECEIVER")
    source = tmp_path / "sc.dcm"
    uid = write_secondary_capture(source)
    result = storescu(peer.port, source, called="RECEIVER")
    assert result.returncode == 0, result.output
    [received] = peer.received_files()
    assert received.parent == peer.output_dir
    assert pydicom.dcmread(received).SOPInstanceUID == uid
    assert _dataset_bytes(received) == _dataset_bytes(source)  # +B: bit preserving
    assert "Received Store Request" in peer.log


def test_storescp_default_accepts_uncompressed_only(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    jpeg = tmp_path / "jpeg.dcm"
    write_secondary_capture(jpeg, jpeg=True)
    default = dcmtk_storescp_factory(extra_args=["+v"])
    refused = storescu(default.port, jpeg, "-xy", "-R")
    assert refused.returncode != 0
    assert "unable to convert dataset from 'JPEG Baseline'" in refused.output
    assert "Transfer Syntaxes Not Supported" in default.log
    assert default.received_files() == []

    accept_all = dcmtk_storescp_factory(accept_all=True)
    accepted = storescu(accept_all.port, jpeg, "-xy", "-R")
    assert accepted.returncode == 0, accepted.output
    [received] = accept_all.received_files()
    assert pydicom.dcmread(received).file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit


def test_storescp_uncompressed_only_profile(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    peer = dcmtk_storescp_factory(uncompressed_only=True, extra_args=["+v"])
    assert peer.transfer_syntaxes == UNCOMPRESSED_TRANSFER_SYNTAXES
    config = (peer.directory / "storescp.cfg").read_text(encoding="ascii")
    assert "1.2.840.10008.5.1.4.1.1.104.1\\Restricted" in config

    jpeg = tmp_path / "jpeg.dcm"
    write_secondary_capture(jpeg, jpeg=True)
    refused = storescu(peer.port, jpeg, "-xy", "-R")
    assert refused.returncode != 0
    assert "unable to convert dataset from 'JPEG Baseline'" in refused.output
    assert peer.received_files() == []

    explicit = tmp_path / "explicit.dcm"
    implicit = tmp_path / "implicit.dcm"
    write_secondary_capture(explicit)
    write_secondary_capture(implicit, implicit_vr=True)
    # "-R": propose only the file's SOP class; without it storescu proposes every storage class.
    for path, transfer_syntax, options in (
        (explicit, EXPLICIT_VR_LITTLE_ENDIAN, ["-R"]),
        (implicit, IMPLICIT_VR_LITTLE_ENDIAN, []),
    ):
        result = storescu(peer.port, path, *options)
        assert result.returncode == 0, result.output
        assert any(
            pydicom.dcmread(f).file_meta.TransferSyntaxUID == transfer_syntax
            for f in peer.received_files()
        )
    assert len(peer.received_files()) == 2

    # The SOP classes outside the profile, which storescu proposed without -R, were refused.
    assert "Abstract Syntax Not Supported" in peer.log


def test_storescp_tls(
    dcmtk_storescp_factory: StoreSCPFactory, tls_files: TlsFiles, tmp_path: Path
) -> None:
    peer = dcmtk_storescp_factory(tls=tls_files)
    source = tmp_path / "sc.dcm"
    write_secondary_capture(source)

    secure = storescu(peer.port, source, *dcmtk_tls_client_args(tls_files))
    assert secure.returncode == 0, secure.output
    assert len(peer.received_files()) == 1

    plain = storescu(peer.port, source)
    assert plain.returncode != 0
    assert len(peer.received_files()) == 1
    assert peer.is_running(), "a failed plain connection must not stop the TLS peer"


def test_storescp_tls_requires_a_client_certificate(
    dcmtk_storescp_factory: StoreSCPFactory, tls_files: TlsFiles
) -> None:
    peer = dcmtk_storescp_factory(tls=tls_files)
    anonymous = echoscu(peer.port, "+tla", "+cf", str(tls_files.ca_cert))
    assert anonymous.returncode != 0
    lenient = dcmtk_storescp_factory(tls=tls_files, require_client_cert=False)
    accepted = echoscu(lenient.port, "+tla", "+cf", str(tls_files.ca_cert))
    assert accepted.returncode == 0, accepted.output


def test_storescp_fault_flags(dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path) -> None:
    source = tmp_path / "sc.dcm"
    write_secondary_capture(source)
    refusing = dcmtk_storescp_factory(extra_args=["--refuse"])
    refused = storescu(refusing.port, source)
    assert refused.returncode != 0
    assert "Association Rejected" in refused.output
    aborting = dcmtk_storescp_factory(extra_args=["--abort-after"])
    aborted = storescu(aborting.port, source)
    assert aborted.returncode != 0


# --------------------------------------------------------------------------------------------
# Orthanc
# --------------------------------------------------------------------------------------------


def test_orthanc_receives_a_file(orthanc_factory: OrthancFactory, tmp_path: Path) -> None:
    orthanc = orthanc_factory(ae_title="PACS")
    source = tmp_path / "sc.dcm"
    uid = write_secondary_capture(source, patient_name="Müller^Jürgen", character_set="ISO_IR 100")
    assert echoscu(orthanc.port, called="PACS").returncode == 0
    result = storescu(orthanc.port, source, called="PACS")
    assert result.returncode == 0, result.output

    assert orthanc.count() == 1
    assert orthanc.sop_instance_uids() == [uid]
    instance = orthanc.instance_id(uid)
    assert orthanc.transfer_syntax(instance) == EXPLICIT_VR_LITTLE_ENDIAN
    # The raw value as stored: ISO 8859-1 bytes, padded to an even length with a space.
    assert orthanc.raw_tag(instance, "0010-0010") == "Müller^Jürgen ".encode("latin-1")
    assert orthanc.instance_tags(instance)["PatientName"] == "Müller^Jürgen"
    assert _dataset_bytes_from(orthanc.file(instance)) == _dataset_bytes(source)


def _dataset_bytes_from(data: bytes) -> bytes:
    group_length = int.from_bytes(data[140:144], "little")
    return data[144 + group_length :]


def test_orthanc_rejects_unknown_callers(orthanc_factory: OrthancFactory, tmp_path: Path) -> None:
    orthanc = orthanc_factory(
        always_allow_echo=False,
        always_allow_store=False,
        always_allow_find=False,
        always_allow_find_worklist=False,
        always_allow_get=False,
        always_allow_move=False,
    )
    echo = echoscu(orthanc.port)
    assert echo.returncode != 0
    assert "Association Rejected" in echo.output
    source = tmp_path / "sc.dcm"
    write_secondary_capture(source)
    store = storescu(orthanc.port, source)
    assert store.returncode != 0
    assert "Association Rejected" in store.output
    assert orthanc.count() == 0


def test_orthanc_known_modality_is_accepted(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory(
        always_allow_echo=False,
        always_allow_store=False,
        modalities={"sender": ("STORESCU", "127.0.0.1", 104)},
    )
    source = tmp_path / "sc.dcm"
    write_secondary_capture(source)
    result = storescu(orthanc.port, source)  # calling AE title STORESCU
    assert result.returncode == 0, result.output
    assert orthanc.count() == 1


def test_orthanc_refuses_store_when_not_allowed(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory(always_allow_echo=True, always_allow_store=False)
    assert echoscu(orthanc.port).returncode == 0
    source = tmp_path / "sc.dcm"
    write_secondary_capture(source)
    store = storescu(orthanc.port, source)
    assert store.returncode != 0
    assert orthanc.count() == 0


def test_orthanc_accepted_transfer_syntaxes(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory(accepted_transfer_syntaxes=UNCOMPRESSED_TRANSFER_SYNTAXES)
    jpeg = tmp_path / "jpeg.dcm"
    write_secondary_capture(jpeg, jpeg=True)
    refused = storescu(orthanc.port, jpeg, "-xy", "-R")
    assert refused.returncode != 0
    assert "unable to convert dataset from 'JPEG Baseline'" in refused.output
    assert orthanc.count() == 0

    explicit = tmp_path / "explicit.dcm"
    write_secondary_capture(explicit)
    accepted = storescu(orthanc.port, explicit)
    assert accepted.returncode == 0, accepted.output
    assert orthanc.count() == 1
