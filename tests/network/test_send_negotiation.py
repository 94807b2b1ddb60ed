"""R7: presentation contexts, transfer syntaxes, decompression and association packing.

Peers: DCMTK ``storescp`` (uncompressed only by default), the in-process ``StorageSCP``
(everything accepted by default).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG4HP41,
    UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)
from pynetdicom import AllStoragePresentationContexts

from sendtopacs_core import Device, Sender, SendState
from sendtopacs_core.testing import StorageSCP
from sendtopacs_core.testing.plugin import StorageSCPFactory
from tests._netpeers import (
    DcmtkStoreSCP,
    StoreSCPFactory,
    device_to,
    write_secondary_capture,
    write_tiny_instance,
)
from tests._peers import missing_tool

VIDEO_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1.1"


def _testdata(name: str, target: Path) -> Path:
    """A copy of one of pydicom's bundled test files (never downloaded)."""
    source = get_testdata_file(name, download=False)
    if source is None:
        missing_tool(f"pydicom's test file {name} is not installed")  # CI=true: a failure
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(str(source), target)
    return target


def _storescp_sender(peer: DcmtkStoreSCP, **options: object) -> Sender:
    return Sender(device_to(peer.ae_title, peer.port, **options))


def _received(peer: DcmtkStoreSCP) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(path) for path in peer.received_files()]


def write_fake_video(path: Path) -> str:
    """A Video Endoscopic object in MPEG-4 AVC/H.264 (a few fake bytes of "stream")."""
    uid = generate_uid()
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(VIDEO_ENDOSCOPIC)
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = MPEG4HP41
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = VIDEO_ENDOSCOPIC
    ds.SOPInstanceUID = uid
    ds.PatientName = "Video^Fake"
    ds.PatientID = "VID1"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "ES"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.Rows = 16
    ds.Columns = 16
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = 1
    ds.PixelData = encapsulate([b"\x00\x00\x00\x01\x67" + bytes(27)])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return str(uid)


# -- lossy sources against an uncompressed-only peer ---------------------------------------------


def test_lossy_jpeg_is_not_decompressed_silently(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    peer = dcmtk_storescp_factory()
    jpeg = tmp_path / "lossy.dcm"
    write_secondary_capture(jpeg, jpeg=True)
    report = _storescp_sender(peer).send([jpeg])
    [outcome] = report.outcomes
    assert outcome.state is SendState.FAILED
    assert "JPEG Baseline" in outcome.message  # what we have (and offered)
    assert "Explicit VR Little Endian" in outcome.message  # what the peer accepted
    assert "decompress" in outcome.message
    assert not outcome.decompressed
    assert peer.received_files() == []
    assert not report.unreachable


@pytest.mark.parametrize("how", ["sender", "device"])
def test_lossy_jpeg_is_decompressed_when_asked(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path, how: str
) -> None:
    peer = dcmtk_storescp_factory()
    jpeg = tmp_path / "lossy.dcm"
    uid = write_secondary_capture(jpeg, jpeg=True)
    before = jpeg.read_bytes()
    if how == "sender":
        sender = _storescp_sender(peer, decompress=False)
        sender = Sender(sender.device, decompress=True)
    else:
        sender = _storescp_sender(peer, decompress=True)
    [outcome] = sender.send([jpeg]).outcomes
    assert outcome.state is SendState.SENT
    assert outcome.decompressed
    assert outcome.transfer_syntax_uid == ExplicitVRLittleEndian
    assert "decompressed" in outcome.message
    [received] = _received(peer)
    assert received.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert received.SOPInstanceUID == uid
    assert received.file_meta.MediaStorageSOPInstanceUID == uid
    assert received.pixel_array.shape == (16, 16)
    assert jpeg.read_bytes() == before


@pytest.mark.parametrize(
    ("name", "syntax"),
    [("MR_small_RLE.dcm", RLELossless), ("MR_small_jpeg_ls_lossless.dcm", JPEGLSLossless)],
)
def test_lossless_source_is_decompressed_by_default(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path, name: str, syntax: str
) -> None:
    """Also a file with Data Set Trailing Padding after its encapsulated Pixel Data."""
    peer = dcmtk_storescp_factory(uncompressed_only=True)
    source = _testdata(name, tmp_path / name)
    original = pydicom.dcmread(source)
    assert original.file_meta.TransferSyntaxUID == syntax
    [outcome] = _storescp_sender(peer).send([source]).outcomes
    assert outcome.state is SendState.SENT, outcome.message
    assert outcome.decompressed
    [received] = _received(peer)
    assert received.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert received.SOPInstanceUID == original.SOPInstanceUID
    assert np.array_equal(received.pixel_array, original.pixel_array)


def test_compressed_files_go_as_they_are_when_accepted(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    jpeg = tmp_path / "lossy.dcm"
    write_secondary_capture(jpeg, jpeg=True)
    rle = _testdata("MR_small_RLE.dcm", tmp_path / "rle.dcm")
    video = tmp_path / "video.dcm"
    write_fake_video(video)
    report = Sender(device_to(storage_scp.ae_title, storage_scp.port)).send([jpeg, rle, video])
    assert report.ok, [o.message for o in report]
    assert [o.transfer_syntax_uid for o in report] == [JPEGBaseline8Bit, RLELossless, MPEG4HP41]
    assert not any(o.decompressed for o in report)
    assert [r.transfer_syntax_uid for r in storage_scp.received] == [
        JPEGBaseline8Bit,
        RLELossless,
        MPEG4HP41,
    ]


def test_device_decompress_sends_uncompressed_even_if_accepted(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    jpeg = tmp_path / "lossy.dcm"
    write_secondary_capture(jpeg, jpeg=True)
    device = device_to(storage_scp.ae_title, storage_scp.port, decompress=True)
    [outcome] = Sender(device).send([jpeg]).outcomes
    assert outcome.state is SendState.SENT
    assert outcome.decompressed
    [received] = storage_scp.received
    assert received.transfer_syntax_uid == ExplicitVRLittleEndian


def test_video_to_uncompressed_only_peer_fails_naming_the_syntaxes(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    peer = dcmtk_storescp_factory(uncompressed_only=True)
    video = tmp_path / "video.dcm"
    write_fake_video(video)
    good = tmp_path / "good.dcm"
    write_secondary_capture(good)
    for decompress in (False, True):
        report = _storescp_sender(peer, decompress=decompress).send([video, good])
        failed, sent = report.outcomes
        assert failed.state is SendState.FAILED
        assert "offered MPEG-4 AVC/H.264 High Profile / Level 4.1" in failed.message
        assert "accepted Explicit VR Little Endian, Implicit VR Little Endian" in failed.message
        assert sent.state is SendState.SENT
    # the good file (sent twice, stored under one name); never the video
    assert [path.name.split(".")[0] for path in peer.received_files()] == ["SC"]


# -- association packing ---------------------------------------------------------------------


def test_more_than_128_contexts_use_several_associations(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    classes = sorted({str(cx.abstract_syntax) for cx in AllStoragePresentationContexts})[:140]
    assert len(classes) == 140
    paths = []
    for number, sop_class in enumerate(classes):
        path = tmp_path / f"{number:03d}.dcm"
        write_tiny_instance(path, sop_class)
        paths.append(path)
    scp = storage_scp_factory()
    report = Sender(device_to(scp.ae_title, scp.port)).send(paths)
    assert report.ok, {o.message for o in report.failed}
    assert len(scp.received) == 140
    assert {r.sop_class_uid for r in scp.received} == set(classes)
    # two contexts (explicit, implicit VR) per SOP class, at most 128 per association
    assert scp.associations >= 3
    assert scp.duplicates() == {}


def test_files_per_association(storage_scp_factory: StorageSCPFactory, tmp_path: Path) -> None:
    paths = [tmp_path / f"{n}.dcm" for n in range(7)]
    for path in paths:
        write_secondary_capture(path)
    scp = storage_scp_factory()
    device = device_to(scp.ae_title, scp.port, files_per_association=3)
    report = Sender(device).send(paths)
    assert report.ok
    assert scp.associations == 3
    assert len(scp.received) == 7


def test_parallel_associations_send_each_file_once(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    paths = [tmp_path / f"{n:02d}.dcm" for n in range(12)]
    uids = [write_secondary_capture(path) for path in paths]
    scp = storage_scp_factory(delay_s=0.02)
    device: Device = device_to(
        scp.ae_title, scp.port, files_per_association=2, parallel_associations=3
    )
    report = Sender(device).send(paths)
    assert report.ok
    assert [o.sop_instance_uid for o in report] == uids  # input order kept
    assert [o.source for o in report] == paths
    assert sorted(r.sop_instance_uid for r in scp.received) == sorted(uids)
    assert scp.duplicates() == {}
    assert scp.associations == 6


def test_parallel_associations_share_the_files_out_without_a_file_count(
    storage_scp_factory: StorageSCPFactory, tmp_path: Path
) -> None:
    paths = [tmp_path / f"{n:02d}.dcm" for n in range(7)]
    uids = [write_secondary_capture(path) for path in paths]
    scp = storage_scp_factory()
    report = Sender(device_to(scp.ae_title, scp.port, parallel_associations=3)).send(paths)
    assert report.ok
    assert [o.sop_instance_uid for o in report] == uids
    assert scp.associations == 3  # 3 + 3 + 1 files
    assert scp.duplicates() == {}
