"""R14 (reduced): hostile inputs in a watched folder. Each one is sent or failed with a reason
file, quickly; the Forwarder never raises; nothing is written outside the configured folders."""

from __future__ import annotations

import io
import re
import time
import zlib
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from sendtopacs_core import Device, Forwarder, Journal, MonitorRule, Settings, Study
from sendtopacs_core.testing import StorageSCP
from tests._netpeers import write_secondary_capture


def _deflate_bomb(path: Path, inflated_mb: int) -> None:
    """A small file whose deflated data set inflates to ``inflated_mb`` MiB."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    header = DicomBytesIO()
    header.write(b"\0" * 128 + b"DICM")
    pydicom.filewriter.write_file_meta_info(header, meta, enforce_standard=True)
    # Explicit VR LE element (0009,0010)... a private OB element of zeros, then deflated.
    length = inflated_mb << 20
    element = b"\x09\x00\x10\x10OB\x00\x00" + length.to_bytes(4, "little")
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = compressor.compress(element)
    zeros = b"\0" * (1 << 20)
    for _ in range(inflated_mb):
        body += compressor.compress(zeros)
    body += compressor.flush()
    path.write_bytes(header.getvalue() + body)


def _nested(path: Path, depth: int) -> None:
    write_secondary_capture(path)
    ds = pydicom.dcmread(path)
    item = Dataset()
    item.CodeValue = "X"
    for _ in range(depth):
        outer = Dataset()
        outer.ContentSequence = Sequence([item])
        item = outer
    ds.ContentSequence = Sequence([item])
    ds.save_as(path, enforce_file_format=True)


def _hostile(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True)
    files: dict[str, Path] = {}
    files["empty"] = folder / "empty.dcm"
    files["empty"].write_bytes(b"")
    files["text"] = folder / "notes.dcm"
    files["text"].write_text("not DICOM at all\n" * 50, encoding="utf-8")
    files["fake_dicm"] = folder / "fake.dcm"
    files["fake_dicm"].write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    files["bomb"] = folder / "bomb.dcm"
    _deflate_bomb(files["bomb"], 300)
    files["nested"] = folder / "nested.dcm"
    _nested(files["nested"], 8)
    good = folder / "good.dcm"
    write_secondary_capture(good)
    files["good"] = good
    data = good.read_bytes()
    for cut in (0.1, 0.3, 0.7, 0.95):
        name = f"cut{int(cut * 100)}"
        files[name] = folder / f"{name}.dcm"
        files[name].write_bytes(data[: int(len(data) * cut)])
    return files


def test_every_hostile_input_is_sent_or_failed_with_a_reason(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    files = _hostile(tmp_path / "in")
    device = Device(
        name="pacs", ae_title=storage_scp.ae_title, host="127.0.0.1", port=storage_scp.port
    )
    monitor = MonitorRule(
        name="m",
        directory=tmp_path / "in",
        failed_dir=tmp_path / "failed",
        success_dir=tmp_path / "ok",
        settle_s=0,
        retry_count=0,
        study=Study(patient_id="P1"),
    )
    settings = Settings(devices=(device,), monitors=(monitor,))
    forwarder = Forwarder(settings, monitor, Journal.in_memory())
    start = time.monotonic()
    forwarder.scan()
    events = forwarder.step()
    elapsed = time.monotonic() - start
    assert elapsed < 10, elapsed
    outcome = {event.path: event.kind for event in events if event.kind in ("sent", "failed")}
    assert set(outcome) == {path.name for path in files.values()}
    for name, path in files.items():
        if outcome[path.name] == "sent":
            assert (tmp_path / "ok" / path.name).exists(), name
        else:
            reasons = list((tmp_path / "failed").rglob(f"{path.name}_reason.txt"))
            assert len(reasons) == 1, name
            assert reasons[0].with_name(path.name).exists(), name
    assert outcome["good.dcm"] == "sent"
    assert outcome["nested.dcm"] == "sent"
    for name in ("empty", "text", "fake_dicm", "bomb", "cut10", "cut30", "cut70", "cut95"):
        assert outcome[files[name].name] == "failed", name
    bomb_reason = next((tmp_path / "failed").rglob("bomb.dcm_reason.txt")).read_text("utf-8")
    assert "decompression bomb" in bomb_reason
    assert not list((tmp_path / "in").rglob("*"))  # every input went somewhere
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()}
    assert written <= {"in", "failed", "ok", "storage_scp"}


def _element_boundaries(path: Path) -> list[int]:
    """The offsets where a top-level element of an explicit VR little endian file ends
    (before the Pixel Data), found by pydicom's element generator."""
    data = path.read_bytes()
    stream = io.BytesIO(data)
    pydicom.filereader.read_preamble(stream, False)
    pydicom.filereader.read_dataset(stream, False, True, stop_when=lambda t, _v, _l: t.group != 2)
    ends = [stream.tell()]
    for raw in pydicom.filereader.data_element_generator(stream, False, True):
        if raw.tag == 0x7FE00010:
            break
        assert isinstance(raw, pydicom.dataelem.RawDataElement)
        ends.append(raw.value_tell + raw.length)
    return ends


def test_a_file_cut_at_any_element_boundary_is_failed_and_kept(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    """Cut exactly between two elements, a file looks complete to pydicom; walked to its
    end it is an image without Pixel Data (or without its UIDs): never sent, never deleted."""
    folder = tmp_path / "in"
    folder.mkdir()
    whole = tmp_path / "whole.dcm"
    write_secondary_capture(whole)
    data = whole.read_bytes()
    boundaries = _element_boundaries(whole)
    assert len(boundaries) > 15
    for end in boundaries:
        (folder / f"cut{end:05d}.dcm").write_bytes(data[:end])
    seq = Dataset()
    seq.CodeValue = "X"
    sequence_file = folder / "seqlen.dcm"
    write_secondary_capture(sequence_file)
    ds = pydicom.dcmread(sequence_file)
    ds.ContentSequence = Sequence([seq])
    ds.save_as(sequence_file, enforce_file_format=True)
    raw = bytearray(sequence_file.read_bytes())
    at = bytes(raw).index(b"\x40\x00\x30\xa7SQ\x00\x00") + 8  # (0040,A730) its length
    raw[at : at + 4] = (int.from_bytes(raw[at : at + 4], "little") + 4).to_bytes(4, "little")
    sequence_file.write_bytes(bytes(raw))
    monitor = MonitorRule(
        name="m",
        directory=folder,
        failed_dir=tmp_path / "failed",
        success_dir=tmp_path / "ok",
        settle_s=0,
        retry_count=0,
        study=Study(patient_id="P1"),
    )
    device = Device(
        name="pacs", ae_title=storage_scp.ae_title, host="127.0.0.1", port=storage_scp.port
    )
    forwarder = Forwarder(
        Settings(devices=(device,), monitors=(monitor,)), monitor, Journal.in_memory()
    )
    forwarder.scan()
    events = forwarder.step()
    outcome = {event.path: event.kind for event in events if event.kind in ("sent", "failed")}
    names = sorted(path.name for path in folder.iterdir()) if folder.exists() else []
    assert names == []  # every input went somewhere...
    assert set(outcome) == {f"cut{end:05d}.dcm" for end in boundaries} | {"seqlen.dcm"}
    assert set(outcome.values()) == {"failed"}  # ...to the failed folder, kept
    for name in outcome:
        [kept] = (tmp_path / "failed").rglob(name)
        reason = kept.with_name(f"{name}_reason.txt").read_text("utf-8")
        assert re.search(r"offset \d+|\([0-9A-F]{4},[0-9A-F]{4}\)", reason), reason
    assert "(0040,A730)" in next((tmp_path / "failed").rglob("seqlen.dcm_reason.txt")).read_text(
        "utf-8"
    )
    assert storage_scp.c_store_count == 0
