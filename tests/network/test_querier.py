"""``Querier`` against real peers: our worklist SCP, Orthanc, wlmscpfs, dcmqrscp, a black hole."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from sendtopacs_core import (
    AssociationFailedError,
    Code,
    DicomNetworkError,
    Querier,
    QueryLevel,
    QueryModel,
    StudyQuery,
    Timeouts,
    WorklistDevice,
    WorklistQuery,
)
from sendtopacs_core.testing import Rejection, WorklistSCP
from sendtopacs_core.testing.plugin import WorklistSCPFactory
from tests._netpeers import WORKLIST_CHARACTER_SETS, BlackHolePeer, write_worklist_item
from tests.network.conftest import (
    DcmtkQRSCPFactory,
    DcmtkWorklistFactory,
    OrthancWorklistFactory,
)

TODAY = dt.date(2024, 1, 15)


def mwl_item(
    patient_id: str,
    name: str = "Doe^John",
    *,
    accession: str | None = None,
    modality: str = "CT",
    station: str = "CT01",
    date: str = "20240115",
    character_set: str | list[str] | None = None,
    description: str = "CT Head",
) -> Dataset:
    """A worklist item as a server stores it (one Scheduled Procedure Step, one code)."""
    ds = Dataset()
    if character_set is not None:
        ds.SpecificCharacterSet = character_set
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.AccessionNumber = accession or f"ACC-{patient_id}"
    ds.ReferringPhysicianName = "Referrer^Rita"
    ds.StudyInstanceUID = generate_uid()
    ds.RequestedProcedureID = f"RP-{patient_id}"
    ds.RequestedProcedureDescription = description
    code = Dataset()
    code.CodeValue = "CTHEAD"
    code.CodingSchemeDesignator = "99TEST"
    code.CodeMeaning = description
    ds.RequestedProcedureCodeSequence = [code]
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = date
    step.ScheduledProcedureStepStartTime = "080000"
    step.ScheduledProcedureStepID = f"SPS-{patient_id}"
    step.ScheduledProcedureStepDescription = description
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def device_for(ae_title: str, port: int, **options: Any) -> WorklistDevice:
    options.setdefault("use_today", False)
    return WorklistDevice(name="mwl", ae_title=ae_title, host="127.0.0.1", port=port, **options)


def querier_for(scp: WorklistSCP, **options: Any) -> Querier:
    return Querier(device_for(scp.ae_title, scp.port, **options), today=lambda: TODAY)


ITEMS = (
    mwl_item("P1", "Doe^John", date="20240115"),
    mwl_item("P2", "Doe^Jane", date="20240116", modality="MR", station="MR01"),
    mwl_item("P3", "Smith^Anna", date="20240120"),
    mwl_item("P4", "Dole^Bob", date="20240110", modality="ES"),
)


def ids(items: list[Any]) -> list[str]:
    return sorted(str(item.patient_id) for item in items)


# -- our worklist SCP ----------------------------------------------------------------------------


def test_every_return_key_is_asked_and_the_item_is_mapped(
    worklist_scp_factory: WorklistSCPFactory,
) -> None:
    item = ITEMS[0]
    scp = worklist_scp_factory([item])
    [found] = querier_for(scp).find_worklist(WorklistQuery(patient_id="P1"))
    [query] = scp.queries
    assert "ScheduledProcedureStepSequence" in query
    assert "ScheduledProtocolCodeSequence" in query.ScheduledProcedureStepSequence[0]
    assert query.PatientID == "P1"
    assert found.patient_name == "Doe^John"
    assert found.study_instance_uid == item.StudyInstanceUID
    assert found.accession_number == "ACC-P1"
    assert (found.modality, found.scheduled_station_ae_title) == ("CT", "CT01")
    assert (found.scheduled_start_date, found.scheduled_start_time) == ("20240115", "080000")
    assert found.requested_procedure_codes == (
        Code(value="CTHEAD", scheme="99TEST", meaning="CT Head"),
    )
    study = found.to_study()
    assert study.from_worklist
    assert study.study_instance_uid == item.StudyInstanceUID
    assert study.accession_number == "ACC-P1"
    assert study.requested_procedure_id == "RP-P1"
    assert study.scheduled_procedure_step_id == "SPS-P1"
    assert study.study_description == "CT Head"
    assert study.referring_physician_name == "Referrer^Rita"
    assert study.procedure_codes == found.requested_procedure_codes
    assert study.modality == "CT"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (WorklistQuery(patient_name="Do*"), ["P1", "P2", "P4"]),
        (WorklistQuery(patient_name="Doe^J??n"), ["P1"]),
        (WorklistQuery(patient_id="P?"), ["P1", "P2", "P3", "P4"]),
        (WorklistQuery(modality="CT"), ["P1", "P3"]),
        (WorklistQuery(scheduled_ae_title="MR01"), ["P2"]),
        (WorklistQuery(date="20240115-20240116"), ["P1", "P2"]),
        (WorklistQuery(date="20240116-"), ["P2", "P3"]),
        (WorklistQuery(date="-20240110"), ["P4"]),
        (WorklistQuery(date="today"), ["P1"]),
        (WorklistQuery(accession_number="ACC-P3"), ["P3"]),
        (WorklistQuery(patient_id="nobody"), []),
    ],
)
def test_keys_wildcards_and_dates(
    worklist_scp_factory: WorklistSCPFactory, query: WorklistQuery, expected: list[str]
) -> None:
    scp = worklist_scp_factory(list(ITEMS))
    assert ids(querier_for(scp).find_worklist(query)) == expected


def test_use_today_and_device_defaults(worklist_scp_factory: WorklistSCPFactory) -> None:
    scp = worklist_scp_factory(list(ITEMS))
    querier = querier_for(scp, use_today=True, modality="MR")
    assert ids(querier.find_worklist()) == []  # today (20240115) no MR step
    assert ids(querier.find_worklist(WorklistQuery(date=""))) == ["P2"]
    [query] = scp.queries[:1]
    assert query.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate == "20240115"


def test_limit_cancels_the_search(worklist_scp_factory: WorklistSCPFactory) -> None:
    items = [mwl_item(f"L{n}") for n in range(10)]
    scp = worklist_scp_factory(items, delay_s=0.05)
    found = querier_for(scp).find_worklist(limit=2)
    assert len(found) == 2
    deadline = time.monotonic() + 5
    while scp.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert scp.cancelled == 1


def test_failure_status_is_an_error_with_its_code(
    worklist_scp_factory: WorklistSCPFactory,
) -> None:
    scp = worklist_scp_factory(list(ITEMS), failure_status=0xC001)
    with pytest.raises(DicomNetworkError, match="0xC001"):
        querier_for(scp).find_worklist()
    scp = worklist_scp_factory(list(ITEMS), failure_status=0xA700)
    with pytest.raises(DicomNetworkError, match="0xA700 Refused: Out of Resources"):
        querier_for(scp).find_worklist()


def test_rejection_is_an_association_error(worklist_scp_factory: WorklistSCPFactory) -> None:
    scp = worklist_scp_factory(list(ITEMS), reject=Rejection(result=1, source=1, reason=3))
    with pytest.raises(AssociationFailedError):
        querier_for(scp).find_worklist()


def test_silent_server_is_an_error_not_an_empty_list(
    worklist_scp_factory: WorklistSCPFactory,
) -> None:
    scp = worklist_scp_factory(list(ITEMS), never_answer=True)
    querier = querier_for(scp, timeouts=Timeouts(dimse_s=1, acse_s=2, network_s=5))
    started = time.monotonic()
    with pytest.raises(DicomNetworkError, match="stopped answering"):
        querier.find_worklist()
    assert time.monotonic() - started < 10


def test_unreachable_server_is_an_error(worklist_scp_factory: WorklistSCPFactory) -> None:
    scp = worklist_scp_factory([])
    port = scp.port
    scp.stop()
    with pytest.raises(AssociationFailedError):
        Querier(device_for("X", port, timeouts=Timeouts(connect_s=2))).find_worklist()


def test_black_hole_times_out(black_hole: BlackHolePeer) -> None:
    querier = Querier(device_for("HOLE", black_hole.port, timeouts=Timeouts(connect_s=1, acse_s=1)))
    started = time.monotonic()
    with pytest.raises(DicomNetworkError):
        querier.find_worklist()
    assert time.monotonic() - started < 10
    assert black_hole.connections == 1


def test_non_ascii_key_carries_the_character_set(
    worklist_scp_factory: WorklistSCPFactory,
) -> None:
    items = [mwl_item("M1", "Müller^Jürgen", character_set="ISO_IR 100"), ITEMS[0]]
    scp = worklist_scp_factory(items)
    found = querier_for(scp).find_worklist(WorklistQuery(patient_name="Müller*"))
    assert [item.patient_name for item in found] == ["Müller^Jürgen"]
    [query] = scp.queries
    assert query.SpecificCharacterSet == "ISO_IR 192"
    assert str(query.PatientName) == "Müller*"
    querier_for(scp, charset="ISO_IR 100").find_worklist(WorklistQuery(patient_name="Mü*"))
    assert scp.queries[-1].SpecificCharacterSet == "ISO_IR 100"
    querier_for(scp).find_worklist(WorklistQuery(patient_name="Doe*"))
    assert "SpecificCharacterSet" not in scp.queries[-1]


def test_each_answer_in_its_own_character_set(worklist_scp_factory: WorklistSCPFactory) -> None:
    names = {
        "latin1": "Müller^Jürgen",
        "utf8": "Łukasz^Żółć",
        "cyrillic": "Иванов^Иван",
        "japanese": "Yamada^Tarou=山田^太郎=やまだ^たろう",
    }
    items = [
        mwl_item(key, name, character_set=WORKLIST_CHARACTER_SETS[key])
        for key, name in names.items()
    ]
    scp = worklist_scp_factory(items)
    found = querier_for(scp).find_worklist()
    assert {item.patient_id: item.patient_name for item in found} == names


@pytest.mark.parametrize(
    ("fallback", "expected"),
    [
        (None, {"L": "Müller^Jürgen", "U": "Łukasz^Żółć"}),  # guessed per answer
        ("ISO_IR 100", {"L": "Müller^Jürgen", "U": "Å\x81ukasz^Å»Ã³Å\x82Ä\x87"}),
    ],
)
def test_answers_without_character_set(
    worklist_scp_factory: WorklistSCPFactory, fallback: str | None, expected: dict[str, str]
) -> None:
    items = [
        mwl_item("L", "Müller^Jürgen", character_set="ISO_IR 100", description="Kopf groß"),
        mwl_item("U", "Łukasz^Żółć", character_set="ISO_IR 192", description="Kopf groß"),
    ]
    scp = worklist_scp_factory(items, character_set_in_responses=False)
    found = querier_for(scp, charset=fallback).find_worklist()
    assert {item.patient_id: item.patient_name for item in found} == expected
    latin1 = next(item for item in found if item.patient_id == "L")
    assert latin1.requested_procedure_description == "Kopf groß"
    if fallback is None:
        assert {item.requested_procedure_description for item in found} == {"Kopf groß"}


def test_device_fallback_for_a_latin1_server(worklist_scp_factory: WorklistSCPFactory) -> None:
    # "Müller" in Latin-1 is not valid UTF-8, but short Latin-1 text can be: "Ã©" is.
    item = mwl_item("X", "MÃ©ller^Jo", character_set="ISO_IR 100")
    scp = worklist_scp_factory([item], character_set_in_responses=False)
    [guessed] = querier_for(scp).find_worklist()
    [configured] = querier_for(scp, charset="ISO_IR 100").find_worklist()
    assert guessed.patient_name == "Méller^Jo"  # valid UTF-8: guessed so
    assert configured.patient_name == "MÃ©ller^Jo"  # the device says Latin-1


# -- Q/R on our SCP and dcmqrscp -----------------------------------------------------------------


def qr_instance(patient_id: str, name: str, study_uid: str, study_date: str) -> Dataset:
    """A tiny Secondary Capture instance (no pixels) for a Q/R index."""
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
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "M"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = study_date
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = f"ACC-{study_date}"
    ds.StudyDescription = f"Study {study_date}"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Modality = "OT"
    return ds


@pytest.fixture(scope="module")
def qr_set() -> tuple[list[Dataset], dict[str, str]]:
    uids = {key: str(generate_uid()) for key in "abc"}
    instances = [
        qr_instance("Q1", "Alpha^Anna", uids["a"], "20230101"),
        qr_instance("Q1", "Alpha^Anna", uids["a"], "20230101"),
        qr_instance("Q1", "Alpha^Anna", uids["b"], "20230601"),
        qr_instance("Q2", "Beta^Bert", uids["c"], "20240101"),
    ]
    return instances, uids


@pytest.mark.parametrize("model", [QueryModel.PATIENT, QueryModel.STUDY, QueryModel.PATIENT_STUDY])
def test_dcmqrscp_study_level(
    dcmtk_qrscp_factory: DcmtkQRSCPFactory,
    qr_set: tuple[list[Dataset], dict[str, str]],
    model: QueryModel,
) -> None:
    instances, uids = qr_set
    scp = dcmtk_qrscp_factory(instances)
    querier = Querier(device_for(scp.ae_title, scp.port, root_model=model))
    studies = querier.find(StudyQuery(study_date="20230301-"), level=QueryLevel.STUDY)
    assert sorted(str(s.study_instance_uid) for s in studies) == sorted([uids["b"], uids["c"]])
    by_uid = {s.study_instance_uid: s for s in studies}
    b = by_uid[uids["b"]]
    assert (b.patient_id, b.patient_name, b.accession_number) == (
        "Q1",
        "Alpha^Anna",
        "ACC-20230601",
    )
    assert b.level is QueryLevel.STUDY
    study = b.to_study()
    assert (study.study_instance_uid, study.patient_id) == (uids["b"], "Q1")
    q1 = querier.find(StudyQuery(patient_id="Q1"), level=QueryLevel.STUDY)
    assert sorted(str(s.study_instance_uid) for s in q1) == sorted([uids["a"], uids["b"]])


@pytest.mark.parametrize("model", [QueryModel.PATIENT, QueryModel.PATIENT_STUDY])
def test_dcmqrscp_patient_level(
    dcmtk_qrscp_factory: DcmtkQRSCPFactory,
    qr_set: tuple[list[Dataset], dict[str, str]],
    model: QueryModel,
) -> None:
    instances, _uids = qr_set
    scp = dcmtk_qrscp_factory(instances)
    querier = Querier(device_for(scp.ae_title, scp.port))
    patients = querier.find(model=model, level=QueryLevel.PATIENT)
    assert {p.patient_id: p.patient_name for p in patients} == {
        "Q1": "Alpha^Anna",
        "Q2": "Beta^Bert",
    }
    [beta] = querier.find(StudyQuery(patient_name="Bet*"), model=model, level=QueryLevel.PATIENT)
    study = beta.to_study()
    assert (study.patient_id, study.study_instance_uid) == ("Q2", None)


def test_study_root_at_patient_level_is_an_error_not_empty(
    dcmtk_qrscp_factory: DcmtkQRSCPFactory, qr_set: tuple[list[Dataset], dict[str, str]]
) -> None:
    instances, _uids = qr_set
    scp = dcmtk_qrscp_factory(instances)
    querier = Querier(device_for(scp.ae_title, scp.port))
    with pytest.raises(DicomNetworkError, match="0x"):
        querier.find(model=QueryModel.STUDY, level=QueryLevel.PATIENT)


def test_qr_on_our_scp_models_and_levels(
    worklist_scp_factory: WorklistSCPFactory, qr_set: tuple[list[Dataset], dict[str, str]]
) -> None:
    instances, uids = qr_set
    scp = worklist_scp_factory([], qr_datasets=instances)
    querier = querier_for(scp)
    for model in (QueryModel.PATIENT, QueryModel.STUDY, QueryModel.PATIENT_STUDY):
        studies = querier.find(model=model, level=QueryLevel.STUDY)
        assert sorted(str(s.study_instance_uid) for s in studies) == sorted(uids.values())
    patients = querier.find(model=QueryModel.PATIENT, level=QueryLevel.PATIENT)
    assert ids(patients) == ["Q1", "Q2"]
    levels = [str(q.QueryRetrieveLevel) for q in scp.queries]
    assert levels == ["STUDY", "STUDY", "STUDY", "PATIENT"]
    assert "ModalitiesInStudy" in scp.queries[1]  # Study Root
    assert "ModalitiesInStudy" not in scp.queries[2]  # Patient/Study Only


# -- wlmscpfs and Orthanc ------------------------------------------------------------------------


def test_wlmscpfs_ct_query(tmp_path: Path, dcmtk_worklist_factory: DcmtkWorklistFactory) -> None:
    items = tmp_path / "items"
    for n, modality in enumerate(("CT", "MR", "CT", "CT", "US", "CT")):
        write_worklist_item(
            items / f"item{n}.wl",
            patient_name=f"Patient^{n}",
            patient_id=f"W{n}",
            accession_number=f"A{n}",
            start_date=f"2024011{n}",
            modality=modality,
        )
    scp = dcmtk_worklist_factory(items)
    querier = Querier(device_for(scp.ae_title, scp.port))
    found = querier.find_worklist(WorklistQuery(modality="CT"))
    assert ids(found) == ["W0", "W2", "W3", "W5"]
    assert all(item.modality == "CT" for item in found)
    ranged = querier.find_worklist(WorklistQuery(date="20240111-20240113"))
    assert ids(ranged) == ["W1", "W2", "W3"]
    [one] = querier.find_worklist(WorklistQuery(accession_number="A3"))
    assert one.requested_procedure_codes[0].scheme == "99TEST"


NAMES = {
    "latin1": "Müller^Jürgen",
    "utf8": "Łukasz^Żółć",
    "cyrillic": "Иванов^Иван",
    "japanese": "Yamada^Tarou=山田^太郎=やまだ^たろう",
}


def write_charset_items(folder: Path) -> None:
    for key, name in NAMES.items():
        write_worklist_item(
            folder / f"{key}.wl",
            patient_name=name,
            patient_id=f"C-{key}",
            accession_number=f"ACC-{key}",
            start_date="20240115",
            character_set=WORKLIST_CHARACTER_SETS[key],
        )


def test_wlmscpfs_answers_in_each_files_character_set(
    tmp_path: Path, dcmtk_worklist_factory: DcmtkWorklistFactory
) -> None:
    write_charset_items(tmp_path / "items")
    scp = dcmtk_worklist_factory(tmp_path / "items", character_set="keep")
    found = Querier(device_for(scp.ae_title, scp.port)).find_worklist()
    assert {item.patient_id: item.patient_name for item in found} == {
        f"C-{key}": name for key, name in NAMES.items()
    }


@pytest.mark.parametrize(
    ("encoding", "key", "character_set"),
    [
        ("Latin1", "latin1", "ISO_IR 100"),
        ("Utf8", "utf8", "ISO_IR 192"),
        ("Cyrillic", "cyrillic", "ISO_IR 144"),
        ("JapaneseKanji", "japanese", "ISO 2022 IR 87"),
    ],
)
def test_orthanc_worklist_names_decode_exactly(
    tmp_path: Path,
    orthanc_worklist_factory: OrthancWorklistFactory,
    encoding: str,
    key: str,
    character_set: str,
) -> None:
    """Orthanc answers in its DefaultEncoding: each of the four on the wire, decoded."""
    write_charset_items(tmp_path / "worklists")
    orthanc = orthanc_worklist_factory(tmp_path / "worklists", default_encoding=encoding)
    querier = Querier(device_for(orthanc.ae_title, orthanc.port))
    [item] = querier.find_worklist(WorklistQuery(patient_id=f"C-{key}"))
    assert item.patient_name == NAMES[key]
    assert item.accession_number == f"ACC-{key}"
    said = item.identifier.SpecificCharacterSet
    assert character_set in ([said] if isinstance(said, str) else list(said))
    if encoding == "Utf8":  # every script survives UTF-8
        everyone = querier.find_worklist()
        assert {i.patient_id: i.patient_name for i in everyone} == {
            f"C-{k}": name for k, name in NAMES.items()
        }
