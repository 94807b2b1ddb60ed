"""What is checked in a DICOM file before any byte of it is sent, and what is sent (issue 12).

Damaged files (cut at every byte, wrong item and sequence lengths, an image without Pixel
Data, UIDs missing or disagreeing with the File Meta, Pixel Data of the wrong length) are
refused with the element or offset named, and the SCP receives nothing of them. Valid objects
that DCMTK sends are sent: non-image objects with Rows and Columns but no pixels, data sets
without preamble and File Meta. Decoded copies for an uncompressed-only peer (DCMTK storescp)
have the Pixel Data their attributes imply (1-bit, 12-bit in 16).

Peers: the in-process ``StorageSCP``, DCMTK ``storescp`` (uncompressed only by default, every
syntax with ``+xa``).
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.pixels.utils import pack_bits
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from sendtopacs_core import DicomSettings, Sender, SendState, Settings, TagPattern
from sendtopacs_core.testing import StorageSCP
from tests._netpeers import StoreSCPFactory, device_to, write_secondary_capture

#: An element or an offset named in a refusal.
NAMED = re.compile(r"offset \d+|\([0-9A-F]{4},[0-9A-F]{4}\)")
MR_SPECTROSCOPY = "1.2.840.10008.5.1.4.1.1.4.2"
SINGLE_BIT_SC = "1.2.840.10008.5.1.4.1.1.7.1"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def _sender(scp: StorageSCP, **settings: object) -> Sender:
    return Sender(device_to(scp.ae_title, scp.port), settings=Settings(**settings))  # type: ignore[arg-type]


def _base(sop_class: str = SecondaryCaptureImageStorage) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "Check^Walk"
    ds.PatientID = "WALK1"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    return ds


def _image(ds: Dataset, rows: int = 4, columns: int = 6) -> Dataset:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(rows * columns))
    return ds


def _with_sequence(ds: Dataset) -> Dataset:
    """Two nested sequences, so that cuts land inside items and sequences too."""
    inner = Dataset()
    inner.CodeValue = "121322"
    inner.CodingSchemeDesignator = "DCM"
    inner.CodeMeaning = "Source image for image processing operation"
    item = Dataset()
    item.ReferencedSOPClassUID = SecondaryCaptureImageStorage
    item.ReferencedSOPInstanceUID = generate_uid()
    inner.is_undefined_length_sequence_item = True
    item.PurposeOfReferenceCodeSequence = Sequence([inner])
    item["PurposeOfReferenceCodeSequence"].is_undefined_length = True
    ds.SourceImageSequence = Sequence([item])  # defined lengths, the inner one undefined
    return ds


def _write(path: Path, ds: Dataset, syntax: UID) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ds.SOPClassUID)
    meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    meta.TransferSyntaxUID = syntax
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _cuts(source: Path, folder: Path) -> list[Path]:
    """``source`` cut at every byte from the end of its preamble and ``DICM`` on."""
    data = source.read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for size in range(132, len(data)):
        path = folder / f"{size:05d}.dcm"
        path.write_bytes(data[:size])
        paths.append(path)
    return paths


# -- 1. damaged files: cut anywhere, wrong lengths -------------------------------------------------


@pytest.mark.parametrize(
    "syntax",
    [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian],
    ids=["explicit", "implicit", "big-endian"],
)
def test_a_file_cut_at_any_byte_is_refused_naming_where(
    storage_scp: StorageSCP, tmp_path: Path, syntax: UID
) -> None:
    source = _write(tmp_path / "whole.dcm", _with_sequence(_image(_base())), syntax)
    cuts = _cuts(source, tmp_path / "cut")
    report = _sender(storage_scp).send([source, *cuts])
    whole, *cut = report.outcomes
    assert whole.state is SendState.SENT, whole.message
    refused = [o for o in cut if o.state is SendState.FAILED]
    assert [o.source for o in refused] == cuts, [o.message for o in cut if o not in refused]
    unnamed = [o.message for o in refused if not NAMED.search(o.message)]
    assert unnamed == []
    assert storage_scp.c_store_count == 1  # only the whole file went out


def test_encapsulated_pixel_data_cut_anywhere_is_refused(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    source = tmp_path / "jpeg.dcm"
    write_secondary_capture(source, jpeg=True)
    data = source.read_bytes()
    pixel = data.rindex(b"\xe0\x7f\x10\x00OB")
    cuts = []
    for size in range(pixel, len(data)):  # every byte of the Pixel Data element
        path = tmp_path / "cut" / f"{size:05d}.dcm"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data[:size])
        cuts.append(path)
    report = _sender(storage_scp).send([source, *cuts])
    whole, *cut = report.outcomes
    assert whole.state is SendState.SENT, whole.message
    assert all(o.state is SendState.FAILED for o in cut)
    assert [o.message for o in cut if not NAMED.search(o.message)] == []
    inside = [o for o in cut if "the encapsulated Pixel Data (7FE0,0010)" in o.message]
    assert len(inside) > len(cut) // 2  # the fragments are walked, not only the element
    assert storage_scp.c_store_count == 1


@pytest.mark.parametrize(
    ("which", "delta", "words"),
    [
        ("item", 2, "item"),
        ("item", -2, ""),
        ("sequence", 2, ""),
        ("sequence", -2, ""),
        ("sequence", 0x10000, "(0008,2112)"),
    ],
)
def test_wrong_item_or_sequence_lengths_are_refused(
    storage_scp: StorageSCP, tmp_path: Path, which: str, delta: int, words: str
) -> None:
    good = _write(tmp_path / "good.dcm", _with_sequence(_image(_base())), ExplicitVRLittleEndian)
    rebuilt = good.read_bytes()
    start = rebuilt.index(b"\x08\x00\x12\x21SQ\x00\x00")  # Source Image Sequence
    assert rebuilt[start + 12 : start + 16] == b"\xfe\xff\x00\xe0"  # its item
    at = start + 16 if which == "item" else start + 8
    (length,) = struct.unpack_from("<I", rebuilt, at)
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(rebuilt[:at] + struct.pack("<I", length + delta) + rebuilt[at + 4 :])
    assert pydicom.dcmread(good).SourceImageSequence[0].PurposeOfReferenceCodeSequence
    report = _sender(storage_scp).send([good, bad])
    sent, refused = report.outcomes
    assert sent.state is SendState.SENT, sent.message
    assert refused.state is SendState.FAILED
    assert NAMED.search(refused.message), refused.message
    assert words in refused.message
    assert storage_scp.c_store_count == 1


def test_an_image_without_pixel_data_is_refused_a_non_image_with_rows_is_sent(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    image = _image(_base())
    del image.PixelData
    no_pixels = _write(tmp_path / "sc.dcm", image, ExplicitVRLittleEndian)
    spectroscopy = _base(MR_SPECTROSCOPY)
    spectroscopy.Rows = spectroscopy.Columns = 1
    spectroscopy.SpectroscopyData = np.zeros(8, dtype=np.float32).tobytes()
    mrs = _write(tmp_path / "mrs.dcm", spectroscopy, ExplicitVRLittleEndian)
    report_ds = _base(COMPREHENSIVE_SR)
    report_ds.Rows = report_ds.Columns = 16  # odd but harmless: no pixels in an SR
    sr = _write(tmp_path / "sr.dcm", report_ds, ImplicitVRLittleEndian)
    report = _sender(storage_scp).send([no_pixels, mrs, sr])
    refused, *sent = report.outcomes
    assert refused.state is SendState.FAILED
    assert "(7FE0,0010)" in refused.message
    assert "Secondary Capture Image Storage" in refused.message
    assert [o.state for o in sent] == [SendState.SENT, SendState.SENT], [o.message for o in sent]
    assert {r.sop_class_uid for r in storage_scp.received} == {MR_SPECTROSCOPY, COMPREHENSIVE_SR}


def test_pixel_data_of_the_wrong_length_is_refused(storage_scp: StorageSCP, tmp_path: Path) -> None:
    ds = _image(_base(), rows=4, columns=6)
    ds.PixelData = bytes(20)  # 24 implied
    short = _write(tmp_path / "short.dcm", ds, ExplicitVRLittleEndian)
    ds = _image(_base(), rows=4, columns=6)
    ds.NumberOfFrames = 2
    ds.PixelData = bytes(48 * 8)  # one byte a pixel for Bits Allocated 1: 8 times too long
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    unpacked = _write(tmp_path / "unpacked.dcm", ds, ExplicitVRLittleEndian)
    ds = _image(_base(), rows=4, columns=6)
    ds.PixelData = bytes(24 + 16)  # trailing padding under a frame: read as pydicom reads it
    padded = _write(tmp_path / "padded.dcm", ds, ExplicitVRLittleEndian)
    report = _sender(storage_scp).send([short, unpacked, padded])
    short_outcome, unpacked_outcome, padded_outcome = report.outcomes
    assert short_outcome.state is SendState.FAILED
    assert "(7FE0,0010) holds 20 bytes" in short_outcome.message
    assert "imply 24" in short_outcome.message
    assert unpacked_outcome.state is SendState.FAILED
    assert "holds 384 bytes" in unpacked_outcome.message
    assert "imply 6" in unpacked_outcome.message
    assert padded_outcome.state is SendState.SENT, padded_outcome.message
    assert storage_scp.c_store_count == 1


def test_a_file_meta_group_length_that_disagrees_is_refused(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    path = _write(tmp_path / "a.dcm", _image(_base()), ExplicitVRLittleEndian)
    data = bytearray(path.read_bytes())
    assert data[132:140] == b"\x02\x00\x00\x00UL\x04\x00"
    (length,) = struct.unpack_from("<I", data, 140)
    struct.pack_into("<I", data, 140, length - 2)
    path.write_bytes(bytes(data))
    [outcome] = _sender(storage_scp).send([path]).outcomes
    assert outcome.state is SendState.FAILED
    assert f"(0002,0000) says {length - 2} bytes, its elements take {length}" in outcome.message
    assert storage_scp.associations == 0


# -- 2. the UIDs: present, agreeing, and those the report names ------------------------------------


def test_uids_missing_or_disagreeing_with_the_file_meta_are_refused(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    no_instance = _image(_base())
    meta_uid = no_instance.SOPInstanceUID
    path_missing = _write(tmp_path / "missing.dcm", no_instance, ExplicitVRLittleEndian)
    ds = pydicom.dcmread(path_missing)
    del ds.SOPInstanceUID
    ds.save_as(path_missing, enforce_file_format=True)
    other = _image(_base())
    path_other = _write(tmp_path / "other.dcm", other, ExplicitVRLittleEndian)
    in_meta = str(other.SOPInstanceUID)
    in_data_set = in_meta[:-1] + ("1" if in_meta[-1] != "1" else "2")  # same length
    data = path_other.read_bytes()
    at = data.rindex(in_meta.encode("ascii"))  # the data set's (0008,0018), after the meta
    path_other.write_bytes(data[:at] + in_data_set.encode("ascii") + data[at + len(in_meta) :])
    missing, disagreeing = _sender(storage_scp).send([path_missing, path_other]).outcomes
    assert missing.state is SendState.FAILED
    assert "no SOPInstanceUID (0008,0018)" in missing.message
    assert meta_uid not in missing.message
    assert disagreeing.state is SendState.FAILED
    assert in_data_set in disagreeing.message
    assert in_meta in disagreeing.message  # the File Meta's
    assert storage_scp.associations == 0


def test_the_outcome_names_the_uid_sent_when_a_tag_pattern_changes_it(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    source = _write(tmp_path / "a.dcm", _image(_base()), ExplicitVRLittleEndian)
    new_uid = generate_uid()
    settings = DicomSettings(update_tags=(TagPattern(tag="SOPInstanceUID", value=new_uid),))
    [outcome] = _sender(storage_scp, dicom=settings).send([source]).outcomes
    assert outcome.state is SendState.SENT, outcome.message
    [received] = storage_scp.received
    assert received.sop_instance_uid == new_uid
    assert outcome.sop_instance_uid == new_uid
    assert received.path is not None
    assert pydicom.dcmread(received.path).SOPInstanceUID == new_uid


# -- 3. valid DICOM that DCMTK sends: data sets without File Meta ---------------------------------


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_a_data_set_without_preamble_and_file_meta_is_sent(
    storage_scp: StorageSCP, tmp_path: Path, implicit: bool
) -> None:
    ds = _with_sequence(_image(_base()))
    ds.SpecificCharacterSet = "ISO_IR 100"  # (0008,0005): the data set starts with group 0008
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = implicit
    write_dataset(buffer, ds)
    raw = tmp_path / "raw.dat"
    raw.write_bytes(buffer.getvalue())
    [outcome] = _sender(storage_scp).send([raw]).outcomes
    assert outcome.state is SendState.SENT, outcome.message
    assert not outcome.converted
    [received] = storage_scp.received
    assert received.sop_instance_uid == ds.SOPInstanceUID
    assert received.path is not None
    stored = pydicom.dcmread(received.path)
    assert stored.PixelData == ds.PixelData
    assert stored.SourceImageSequence[0].ReferencedSOPInstanceUID == (
        ds.SourceImageSequence[0].ReferencedSOPInstanceUID
    )
    cut = tmp_path / "raw-cut.dat"
    cut.write_bytes(buffer.getvalue()[:-7])
    [refused] = _sender(storage_scp).send([cut]).outcomes
    assert refused.state is SendState.FAILED
    assert "(7FE0,0010)" in refused.message
    assert storage_scp.c_store_count == 1


# -- 4. decoded copies for an uncompressed-only peer ---------------------------------------------


def test_a_1_bit_image_decoded_for_an_uncompressed_only_pacs_is_packed(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    openjpeg = pytest.importorskip("openjpeg")
    bits = (np.arange(2 * 64 * 64).reshape(2, 64, 64) % 3 == 0).astype(np.uint8)
    ds = _base(SINGLE_BIT_SC)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 64
    ds.NumberOfFrames = 2
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelRepresentation = 0
    frames = [
        openjpeg.encode(frame, bits_stored=1, photometric_interpretation=2, use_mct=False)
        for frame in bits
    ]
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    source = _write(tmp_path / "seg.dcm", ds, JPEG2000Lossless)
    peer = dcmtk_storescp_factory()
    [outcome] = Sender(device_to(peer.ae_title, peer.port)).send([source]).outcomes
    assert outcome.state is SendState.SENT, outcome.message
    assert outcome.decompressed
    [received] = peer.received_files()
    stored = pydicom.dcmread(received)
    assert stored.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    assert stored.BitsAllocated == 1
    assert len(stored.PixelData) == 2 * 64 * 64 // 8
    assert stored.PixelData == pack_bits(bits)


def test_a_12_bit_rle_image_decoded_for_an_uncompressed_only_pacs(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    values = (np.arange(3 * 10 * 7, dtype=np.uint16).reshape(3, 10, 7) * 19) % 4096
    ds = _base()
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = 10, 7
    ds.NumberOfFrames = 3
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = values.astype("<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.compress(RLELossless, generate_instance_uid=False)
    source = _write(tmp_path / "rle.dcm", ds, RLELossless)
    peer = dcmtk_storescp_factory()
    [outcome] = Sender(device_to(peer.ae_title, peer.port)).send([source]).outcomes
    assert outcome.state is SendState.SENT, outcome.message
    assert outcome.decompressed
    [received] = peer.received_files()
    stored = pydicom.dcmread(received)
    assert len(stored.PixelData) == 3 * 10 * 7 * 2
    assert np.array_equal(stored.pixel_array, values)


def test_a_compressed_syntax_object_without_pixels_is_sent_uncompressed(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    """Defect 10: the decompression path crashed on a compressed-syntax file without Pixel
    Data (a presentation state or report written in a JPEG syntax)."""
    ds = _base(COMPREHENSIVE_SR)
    source = _write(tmp_path / "sr-jpeg-syntax.dcm", ds, RLELossless)
    peer = dcmtk_storescp_factory()
    sender = Sender(device_to(peer.ae_title, peer.port, decompress=True))
    [outcome] = sender.send([source]).outcomes
    assert outcome.state is SendState.SENT, outcome.message
    assert not outcome.decompressed
    [received] = peer.received_files()
    assert pydicom.dcmread(received).SOPInstanceUID == ds.SOPInstanceUID


def test_whatever_a_decoder_raises_fails_that_file_only(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    ds = _image(_base(), rows=8, columns=8)
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(40)])  # a J2K header, then nothing
    ds["PixelData"].VR = "OB"
    broken = _write(tmp_path / "broken.dcm", ds, JPEG2000Lossless)
    good = tmp_path / "good.dcm"
    write_secondary_capture(good)
    peer = dcmtk_storescp_factory()
    failed, sent = Sender(device_to(peer.ae_title, peer.port)).send([broken, good]).outcomes
    assert failed.state is SendState.FAILED
    assert "cannot prepare the copy" in failed.message
    assert "Traceback" not in failed.message
    assert sent.state is SendState.SENT
    assert len(peer.received_files()) == 1


# -- 5. deterministic failures are not retryable ---------------------------------------------------


def _odd_deflated(path: Path) -> str:
    """A Deflated Explicit VR Little Endian file whose deflated body has an odd length
    (PS3.5 A.5 asks for a pad byte, which some writers leave out)."""
    for extra in range(64):
        ds = _image(_base())
        ds.StudyDescription = "x" * (2 * extra)
        buffer = DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, False
        write_dataset(buffer, ds)
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = compressor.compress(buffer.getvalue()) + compressor.flush()
        if len(body) % 2:
            break
    else:  # pragma: no cover - 64 tries always give an odd length
        raise AssertionError("no odd deflated length")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ds.SOPClassUID)
    meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    head = DicomBytesIO()
    head.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    path.write_bytes(head.getvalue() + body)
    return str(ds.SOPInstanceUID)


def test_a_deflated_data_set_of_odd_length_is_padded_not_retried(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    source = tmp_path / "deflated.dcm"
    uid = _odd_deflated(source)
    before = source.read_bytes()
    peer = dcmtk_storescp_factory(accept_all=True)
    [outcome] = Sender(device_to(peer.ae_title, peer.port)).send([source]).outcomes
    assert outcome.state is SendState.SENT, outcome.message
    assert outcome.transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    [received] = peer.received_files()
    assert pydicom.dcmread(received).SOPInstanceUID == uid
    assert source.read_bytes() == before


def test_a_decoder_failure_prints_no_traceback_at_default_verbosity(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    """Defect 16: pydicom's decoders log each failing plugin with its traceback
    (``LOGGER.exception``); on the command line that reached stderr."""
    ds = _image(_base(), rows=8, columns=8)
    ds.PatientName = "Sentinel^Tracey"
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(40)])
    ds["PixelData"].VR = "OB"
    broken = _write(tmp_path / "broken.dcm", ds, JPEG2000Lossless)
    peer = dcmtk_storescp_factory()
    command = [sys.executable, "-m", "sendtopacs_adapters", "send", "--host", "127.0.0.1"]
    command += ["--port", str(peer.port), "--called-aet", peer.ae_title, str(broken)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    assert "cannot prepare the copy" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "openjpeg" not in done.stderr.lower()
    assert "Sentinel" not in done.stderr
    assert peer.received_files() == []


def test_pydicom_warnings_about_a_value_stay_off_stderr(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    """pydicom warns of an invalid value by quoting it; at default verbosity the command
    line shows neither the warning nor the value, and the file is sent as DCMTK sends it."""
    odd_uid = "1.2.826.0.1.3680043.9999.7x"  # "x": not a valid UI, still the object's name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of the value here too
        ds = _image(_base())
        ds.SOPInstanceUID = odd_uid
        ds.PatientName = "Sentinel^Valerie"
        ds.PatientBirthDate = "19990231"  # no such day
        source = _write(tmp_path / "odd.dcm", ds, ExplicitVRLittleEndian)
    settings = tmp_path / "settings.json"
    settings.write_text(
        '{"dicom": {"update_tags": [{"tag": "InstitutionName", "value": "{PatientName} '
        '{PatientBirthDate}", "create_if_missing": true}]}}',
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "sendtopacs_adapters", "--settings", str(settings), "send"]
    peer = dcmtk_storescp_factory()
    command += ["--host", "127.0.0.1", "--port", str(peer.port)]
    command += ["--called-aet", peer.ae_title, str(source)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stderr, done.stderr
    assert odd_uid not in done.stderr
    assert "Sentinel" not in done.stderr
    [received] = peer.received_files()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stored = pydicom.dcmread(received)
        assert stored.SOPInstanceUID == odd_uid
        assert stored.InstitutionName == "Sentinel^Valerie 19990231"


def test_tolerated_oddities_that_dcmtk_reads_are_sent(
    dcmtk_storescp_factory: StoreSCPFactory, tmp_path: Path
) -> None:
    """Trailing NUL padding (files copied from disc sectors), and an Explicit VR file written
    in Implicit VR (pydicom and DCMTK read both) are whole files: walked, then sent."""
    padded = _write(tmp_path / "padded.dcm", _image(_base()), ExplicitVRLittleEndian)
    padded.write_bytes(padded.read_bytes() + bytes(512))
    ds = _with_sequence(_image(_base()))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ds.SOPClassUID)
    meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    head = DicomBytesIO()
    head.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, True
    write_dataset(body, ds)
    mislabelled = tmp_path / "mislabelled.dcm"
    mislabelled.write_bytes(head.getvalue() + body.getvalue())
    garbage = tmp_path / "garbage-after-zeros.dcm"
    garbage.write_bytes(padded.read_bytes() + b"\x08\x00\x20\x00DA\x08\x0020240101")
    peer = dcmtk_storescp_factory()
    report = Sender(device_to(peer.ae_title, peer.port)).send([padded, mislabelled, garbage])
    sent_padded, sent_mislabelled, refused = report.outcomes
    assert sent_padded.state is SendState.SENT, sent_padded.message
    assert sent_mislabelled.state is SendState.SENT, sent_mislabelled.message
    assert refused.state is SendState.FAILED
    assert "NUL bytes at offset" in refused.message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of the mislabelled VR, as expected
        stored = {str(pydicom.dcmread(path).SOPInstanceUID) for path in peer.received_files()}
    assert stored == {sent_padded.sop_instance_uid, ds.SOPInstanceUID}
