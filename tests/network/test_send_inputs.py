"""What the Sender takes as input: folders, DICOMDIR, broken files, non-DICOM files converted
with a study; sources never modified; the temporary folder; header updates; progress.

Peer: the in-process ``StorageSCP`` storing what it receives.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from sendtopacs_core import (
    DicomSettings,
    FileOutcome,
    MainSettings,
    Sender,
    SendState,
    Settings,
    Study,
    TagPattern,
    make_sample_files,
)
from sendtopacs_core.testing import StorageSCP
from tests._netpeers import device_to, sha256_of, write_secondary_capture, write_tiny_instance

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
STUDY = Study(patient_id="CONV-1", patient_name="Converted^Paula")


def _settings(tmp_path: Path, **main: object) -> Settings:
    temp = tmp_path / "temp"
    temp.mkdir(exist_ok=True)
    return Settings(main=MainSettings(temp_dir=temp, **main))  # type: ignore[arg-type]


def _sender(scp: StorageSCP, settings: Settings) -> Sender:
    return Sender(device_to(scp.ae_title, scp.port), settings=settings)


def _tree(tmp_path: Path) -> dict[str, Path]:
    """in/a.dcm, in/sub/b.dcm, in/sub/deeper/c.dcm, in/DICOMDIR, in/notdicom.dcm, in/cut.dcm."""
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    paths = {
        "a": root / "a.dcm",
        "b": root / "sub" / "b.dcm",
        "c": root / "sub" / "deeper" / "c.dcm",
        "notdicom": root / "notdicom.dcm",
        "cut": root / "sub" / "cut.dcm",
    }
    for key in ("a", "b", "c"):
        write_secondary_capture(paths[key])
    paths["notdicom"].write_text("this is not DICOM\n", encoding="ascii")
    whole = tmp_path / "whole.dcm"
    write_secondary_capture(whole)
    data = whole.read_bytes()
    paths["cut"].write_bytes(data[: len(data) - 100])  # 100 bytes of Pixel Data missing
    write_tiny_instance(root / "DICOMDIR", MEDIA_STORAGE_DIRECTORY)
    return paths


def test_folder_walk_skips_dicomdir_and_refuses_broken_files(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    paths = _tree(tmp_path)
    hashes = {key: sha256_of(path) for key, path in paths.items()}
    report = _sender(storage_scp, _settings(tmp_path)).send([tmp_path / "in"])
    by_source = {o.source: o for o in report}
    assert set(by_source) == set(paths.values())  # the folder's DICOMDIR is not even listed
    for key in ("a", "b", "c"):
        assert by_source[paths[key]].state is SendState.SENT
    cut = by_source[paths["cut"]]
    assert cut.state is SendState.FAILED
    assert "truncated" in cut.message
    assert by_source[paths["notdicom"]].state is SendState.FAILED
    assert "not DICOM" in by_source[paths["notdicom"]].message
    assert len(storage_scp.received) == 3
    assert storage_scp.c_store_count == 3  # nothing of the broken files went out
    assert not report.ok
    assert {key: sha256_of(path) for key, path in paths.items()} == hashes


def test_dicomdir_given_by_name_is_skipped(storage_scp: StorageSCP, tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    dicomdir = tmp_path / "in" / "DICOMDIR"
    report = _sender(storage_scp, _settings(tmp_path)).send([dicomdir, paths["a"]])
    skipped, sent = report.outcomes
    assert skipped.state is SendState.SKIPPED
    assert "DICOMDIR" in skipped.message
    assert sent.state is SendState.SENT
    assert report.ok  # skipped files aside
    assert len(storage_scp.received) == 1


def test_missing_input_is_failed(storage_scp: StorageSCP, tmp_path: Path) -> None:
    report = _sender(storage_scp, _settings(tmp_path)).send([tmp_path / "nope.dcm"])
    [outcome] = report.outcomes
    assert outcome.state is SendState.FAILED
    assert "no such file" in outcome.message
    assert storage_scp.associations == 0


def test_non_dicom_inputs_are_converted_with_a_study(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    samples = make_sample_files(tmp_path / "samples")
    hashes = [sha256_of(path) for path in samples]
    settings = _settings(tmp_path)
    report = _sender(storage_scp, settings).send(samples, study=STUDY)
    assert report.ok, [o.message for o in report]
    assert all(o.converted for o in report)
    assert {o.source for o in report} == set(samples)
    assert len(storage_scp.received) == len(report)
    assert {r.sop_instance_uid for r in storage_scp.received} == {
        o.sop_instance_uid for o in report
    }
    stored = [pydicom.dcmread(r.path) for r in storage_scp.received if r.path is not None]
    assert {str(ds.PatientID) for ds in stored} == {"CONV-1"}
    assert {str(ds.PatientName) for ds in stored} == {"Converted^Paula"}
    assert "1.2.840.10008.5.1.4.1.1.104.1" in {ds.SOPClassUID for ds in stored}  # the PDF
    assert [sha256_of(path) for path in samples] == hashes
    assert list((tmp_path / "temp").iterdir()) == []


def test_non_dicom_without_study_fails_clearly(storage_scp: StorageSCP, tmp_path: Path) -> None:
    samples = make_sample_files(tmp_path / "samples")
    good = tmp_path / "good.dcm"
    write_secondary_capture(good)
    report = _sender(storage_scp, _settings(tmp_path)).send([*samples, good])
    *failed, sent = report.outcomes
    assert all(o.state is SendState.FAILED for o in failed)
    assert all("not DICOM" in o.message and "patient" in o.message for o in failed)
    assert sent.state is SendState.SENT
    assert len(storage_scp.received) == 1


@pytest.mark.parametrize("keep", [False, True])
def test_temporary_folder_removed_unless_kept(
    storage_scp: StorageSCP, tmp_path: Path, keep: bool
) -> None:
    source = tmp_path / "a.dcm"
    write_secondary_capture(source)
    jpeg = tmp_path / "photo.jpg"
    make_sample_files(tmp_path / "samples")[0].rename(jpeg)
    settings = _settings(tmp_path, clean_temp_on_exit=not keep)
    report = _sender(storage_scp, settings).send([source, jpeg], study=STUDY)
    assert report.ok
    temp = tmp_path / "temp"
    if keep:
        assert report.kept_temp_dir is not None
        assert report.kept_temp_dir.parent == temp
        assert any(path.is_file() for path in report.kept_temp_dir.rglob("*"))
    else:
        assert report.kept_temp_dir is None
        assert list(temp.iterdir()) == []


def test_update_tags_change_the_copy_not_the_source(
    storage_scp: StorageSCP, tmp_path: Path
) -> None:
    source = tmp_path / "a.dcm"
    uid = write_secondary_capture(source)
    before = sha256_of(source)
    settings = Settings(
        main=_settings(tmp_path).main,
        dicom=DicomSettings(
            update_tags=(
                TagPattern(
                    tag="InstitutionName", value="Clinic {Modality}", create_if_missing=True
                ),
                TagPattern(tag="PatientID", value="{PatientID}-X"),
            )
        ),
    )
    seen: list[FileOutcome] = []
    report = _sender(storage_scp, settings).send([source], progress=seen.append)
    [outcome] = report.outcomes
    assert outcome.state is SendState.SENT
    assert seen == [outcome]
    [received] = storage_scp.received
    assert received.sop_instance_uid == uid
    assert received.path is not None
    stored = pydicom.dcmread(received.path)
    assert stored.InstitutionName == "Clinic OT"
    assert stored.PatientID == "NETPEER1-X"
    assert stored.PixelData == pydicom.dcmread(source).PixelData
    assert sha256_of(source) == before
    assert "InstitutionName" not in pydicom.dcmread(source)


def test_progress_called_once_per_file(storage_scp: StorageSCP, tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    seen: list[FileOutcome] = []
    report = _sender(storage_scp, _settings(tmp_path)).send([tmp_path / "in"], progress=seen.append)
    assert len(seen) == len(report) == len(paths)
    assert sorted(str(o.source) for o in seen) == sorted(str(o.source) for o in report)
