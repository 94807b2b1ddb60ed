"""The worklist and query peers answer DCMTK ``findscu``: wlmscpfs, Orthanc, dcmqrscp, ours.

These prove the peers the ``Querier`` tests rely on, and record how each one handles character
sets: wlmscpfs (``-csk``) returns each file's own Specific Character Set and bytes; Orthanc
1.10.1 converts every answer to its ``DefaultEncoding`` and says so in (0008,0005).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from sendtopacs_core.testing import WorklistSCP
from tests._netpeers import WORKLIST_CHARACTER_SETS, BlackHolePeer, write_worklist_item
from tests._peers import dcmtk_env, require_tool
from tests.network.conftest import (
    DcmtkQRSCPFactory,
    DcmtkWorklistFactory,
    OrthancWorklistFactory,
)

#: Patient names per key of WORKLIST_CHARACTER_SETS.
NAMES = {
    "latin1": "Müller^Jürgen",
    "utf8": "Łukasz^Żółć=山田^太郎",
    "cyrillic": "Иванов^Иван",
    "japanese": "Yamada^Tarou=山田^太郎=やまだ^たろう",
}
RETURN_KEYS = ("PatientName", "PatientID", "SpecificCharacterSet", "AccessionNumber")


def findscu(
    port: int,
    ae_title: str,
    out: Path,
    *keys: str,
    model: str = "-W",
    extra: tuple[str, ...] = (),
    timeout: float = 30,
) -> tuple[subprocess.CompletedProcess[str], list[Dataset]]:
    """Run DCMTK findscu with ``-k`` `keys`; return the run and the responses (``-X``)."""
    out.mkdir(parents=True, exist_ok=True)
    args = [str(require_tool("findscu")), model, "-aec", ae_title, "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    args += [*extra, "127.0.0.1", str(port)]
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        env=dcmtk_env(),
    )
    responses: list[Dataset] = [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]
    return proc, responses


def by_patient_id(responses: list[Dataset]) -> dict[str, Dataset]:
    return {str(ds.PatientID): ds for ds in responses}


def write_charset_items(folder: Path) -> None:
    """Write one CT item per character set of NAMES (Patient IDs ``C-<key>``)."""
    for key, name in NAMES.items():
        write_worklist_item(
            folder / f"{key}.wl",
            patient_name=name,
            patient_id=f"C-{key}",
            accession_number=f"ACC-{key}",
            start_date="20240115",
            character_set=WORKLIST_CHARACTER_SETS[key],
        )


def test_wlmscpfs_answers_ct_items_and_ignores_incomplete_files(
    tmp_path: Path, dcmtk_worklist_factory: DcmtkWorklistFactory
) -> None:
    items = tmp_path / "items"
    for n, modality in enumerate(("CT", "CT", "MR", "CT", "CT")):
        write_worklist_item(
            items / f"item{n}.wl",
            patient_name=f"Patient^{n}",
            patient_id=f"P{n}",
            accession_number=f"A{n}",
            start_date=f"2024011{n}",
            modality=modality,
            implicit_vr=n == 1,
        )
    write_worklist_item(  # no Scheduled Station AE Title: incomplete, ignored by wlmscpfs
        items / "incomplete.wl",
        patient_name="Incomplete^Item",
        patient_id="P9",
        accession_number="A9",
        start_date="20240110",
        scheduled_ae="",
    )
    scp = dcmtk_worklist_factory(items)
    proc, responses = findscu(
        scp.port,
        scp.ae_title,
        tmp_path / "out",
        *RETURN_KEYS,
        "ScheduledProcedureStepSequence[0].Modality=CT",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=",
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(by_patient_id(responses)) == ["P0", "P1", "P3", "P4"]
    assert all(ds.ScheduledProcedureStepSequence[0].Modality == "CT" for ds in responses)
    assert 'incomplete.wl" is incomplete, file will be ignored' in scp.log

    proc, responses = findscu(
        scp.port,
        scp.ae_title,
        tmp_path / "range",
        "PatientID",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20240111-20240113",
    )
    assert sorted(by_patient_id(responses)) == ["P1", "P2", "P3"]


def test_wlmscpfs_returns_each_file_in_its_own_character_set(
    tmp_path: Path, dcmtk_worklist_factory: DcmtkWorklistFactory
) -> None:
    write_charset_items(tmp_path / "items")
    scp = dcmtk_worklist_factory(tmp_path / "items", character_set="keep")
    proc, responses = findscu(scp.port, scp.ae_title, tmp_path / "out", *RETURN_KEYS)
    assert proc.returncode == 0, proc.stderr
    found = by_patient_id(responses)
    for key, name in NAMES.items():
        ds = found[f"C-{key}"]
        expected = WORKLIST_CHARACTER_SETS[key]
        assert ds.SpecificCharacterSet == expected
        assert str(ds.PatientName) == name


def test_wlmscpfs_without_character_set_sends_the_file_bytes(
    tmp_path: Path, dcmtk_worklist_factory: DcmtkWorklistFactory
) -> None:
    write_charset_items(tmp_path / "items")
    scp = dcmtk_worklist_factory(tmp_path / "items", character_set="none")
    proc, responses = findscu(scp.port, scp.ae_title, tmp_path / "out", "PatientName", "PatientID")
    assert proc.returncode == 0, proc.stderr
    latin1 = by_patient_id(responses)["C-latin1"]
    assert "SpecificCharacterSet" not in latin1
    assert latin1.get_item(0x00100010).value.rstrip(b" ") == NAMES["latin1"].encode("latin-1")


def test_orthanc_worklist_converts_every_item_to_its_default_encoding(
    tmp_path: Path, orthanc_worklist_factory: OrthancWorklistFactory
) -> None:
    database = tmp_path / "worklists"
    write_charset_items(database)
    orthanc = orthanc_worklist_factory(database, default_encoding="Utf8")
    proc, responses = findscu(orthanc.port, orthanc.ae_title, tmp_path / "utf8", *RETURN_KEYS)
    assert proc.returncode == 0, proc.stderr
    found = by_patient_id(responses)
    assert sorted(found) == sorted(f"C-{key}" for key in NAMES)
    for key, name in NAMES.items():
        ds = found[f"C-{key}"]
        assert ds.SpecificCharacterSet == "ISO_IR 192"  # not the file's character set
        assert str(ds.PatientName) == name


def test_orthanc_worklist_default_latin1_loses_other_scripts(
    tmp_path: Path, orthanc_worklist_factory: OrthancWorklistFactory
) -> None:
    database = tmp_path / "worklists"
    write_charset_items(database)
    orthanc = orthanc_worklist_factory(database)  # DefaultEncoding Latin1
    proc, responses = findscu(orthanc.port, orthanc.ae_title, tmp_path / "out", *RETURN_KEYS)
    assert proc.returncode == 0, proc.stderr
    found = by_patient_id(responses)
    assert all(ds.SpecificCharacterSet == "ISO_IR 100" for ds in responses)
    assert str(found["C-latin1"].PatientName) == NAMES["latin1"]
    # Characters Latin-1 cannot hold are dropped silently (1.10.1): "Иванов^Иван" -> "^".
    assert str(found["C-cyrillic"].PatientName).strip() == "^"


def qr_instance(patient_id: str, name: str, study_uid: str, study_date: str) -> Dataset:
    """A tiny Secondary Capture instance (no pixels) for dcmqrscp's index."""
    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = uid
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = study_date
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = f"ACC-{study_date}"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Modality = "OT"
    return ds


def test_dcmqrscp_answers_study_and_patient_level_queries(
    tmp_path: Path, dcmtk_qrscp_factory: DcmtkQRSCPFactory
) -> None:
    study_a, study_b, study_c = generate_uid(), generate_uid(), generate_uid()
    instances = [
        qr_instance("Q1", "Alpha^Anna", study_a, "20230101"),
        qr_instance("Q1", "Alpha^Anna", study_a, "20230101"),
        qr_instance("Q1", "Alpha^Anna", study_b, "20230601"),
        qr_instance("Q2", "Beta^Bert", study_c, "20240101"),
    ]
    scp = dcmtk_qrscp_factory(instances)
    proc, studies = findscu(
        scp.port,
        scp.ae_title,
        tmp_path / "studies",
        "QueryRetrieveLevel=STUDY",
        "StudyInstanceUID",
        "PatientID",
        "StudyDate=20230301-",
        model="-S",
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(str(ds.StudyInstanceUID) for ds in studies) == sorted([study_b, study_c])

    proc, patients = findscu(
        scp.port,
        scp.ae_title,
        tmp_path / "patients",
        "QueryRetrieveLevel=PATIENT",
        "PatientID",
        "PatientName",
        model="-P",
    )
    assert proc.returncode == 0, proc.stderr
    assert {str(ds.PatientID): str(ds.PatientName) for ds in patients} == {
        "Q1": "Alpha^Anna",
        "Q2": "Beta^Bert",
    }


def test_black_hole_makes_findscu_time_out(tmp_path: Path, black_hole: BlackHolePeer) -> None:
    started = time.monotonic()
    proc, responses = findscu(
        black_hole.port, "ANY", tmp_path / "out", "PatientName", extra=("-ta", "1", "-to", "1")
    )
    elapsed = time.monotonic() - started
    assert proc.returncode != 0
    assert responses == []
    assert elapsed < 10
    assert black_hole.connections == 1
    assert black_hole.received > 0  # the A-ASSOCIATE-RQ, never answered


@pytest.mark.interop
def test_our_worklist_scp_answers_findscu_in_each_items_character_set(tmp_path: Path) -> None:
    items = []
    for key, name in NAMES.items():
        item = Dataset()
        item.SpecificCharacterSet = WORKLIST_CHARACTER_SETS[key]
        item.PatientName = name
        item.PatientID = f"C-{key}"
        item.AccessionNumber = f"ACC-{key}"
        items.append(item)
    with WorklistSCP(items) as scp:
        proc, responses = findscu(scp.port, scp.ae_title, tmp_path / "out", *RETURN_KEYS)
    assert proc.returncode == 0, proc.stderr
    found = by_patient_id(responses)
    for key, name in NAMES.items():
        assert found[f"C-{key}"].SpecificCharacterSet == WORKLIST_CHARACTER_SETS[key]
        assert str(found[f"C-{key}"].PatientName) == name
