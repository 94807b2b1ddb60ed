"""The in-process worklist SCP (``sendtopacs_core.testing.WorklistSCP``), driven by pynetdicom."""

# The fixture imported from the plugin is redefined as a parameter of every test using it.
# ruff: noqa: F811

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from pynetdicom import AE, VerificationPresentationContexts
from pynetdicom.association import Association

from sendtopacs_core.testing import Rejection, StorageSCP, WorklistSCP
from sendtopacs_core.testing._worklist_scp import (
    MODALITY_WORKLIST_FIND,
    PATIENT_ROOT_FIND,
    PATIENT_STUDY_ONLY_FIND,
    STUDY_ROOT_FIND,
    matches,
)
from sendtopacs_core.testing.plugin import (  # noqa: F401
    WorklistSCPFactory,
    worklist_scp_factory,
)

VERIFICATION = str(VerificationPresentationContexts[0].abstract_syntax)
FIND_MODELS = (MODALITY_WORKLIST_FIND, PATIENT_ROOT_FIND, STUDY_ROOT_FIND, PATIENT_STUDY_ONLY_FIND)


def mwl_item(
    name: str,
    patient_id: str,
    *,
    modality: str = "CT",
    station: str = "CT01",
    date: str = "20240115",
    time_: str = "080000",
    character_set: str | list[str] | None = None,
) -> Dataset:
    """Return a worklist item with one scheduled procedure step."""
    ds = Dataset()
    if character_set is not None:
        ds.SpecificCharacterSet = character_set
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.AccessionNumber = f"ACC{patient_id}"
    ds.StudyInstanceUID = generate_uid()
    ds.RequestedProcedureID = f"RP{patient_id}"
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = date
    step.ScheduledProcedureStepStartTime = time_
    step.ScheduledProcedureStepID = f"SPS{patient_id}"
    ds.ScheduledProcedureStepSequence = DicomSequence([step])
    return ds


def mwl_query(**step_keys: str) -> Dataset:
    """Return a worklist query with the usual return keys and these step keys."""
    query = Dataset()
    query.PatientName = ""
    query.PatientID = ""
    query.AccessionNumber = ""
    step = Dataset()
    step.Modality = ""
    step.ScheduledStationAETitle = ""
    step.ScheduledProcedureStepStartDate = ""
    for keyword, value in step_keys.items():
        setattr(step, keyword, value)
    query.ScheduledProcedureStepSequence = DicomSequence([step])
    return query


ITEMS = (
    mwl_item("Doe^John", "P1", modality="CT", date="20240115"),
    mwl_item("Doe^Jane", "P2", modality="MR", station="MR01", date="20240116"),
    mwl_item("Smith^Anna", "P3", modality="CT", station="CT02", date="20240120"),
)


@pytest.fixture
def ae() -> AE:
    ae = AE(ae_title="FINDSCU")
    for model in FIND_MODELS:
        ae.add_requested_context(model)
    ae.add_requested_context(VERIFICATION)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    return ae


def associate(ae: AE, scp: WorklistSCP) -> Association:
    assoc = ae.associate(*scp.address, ae_title=scp.ae_title)
    assert assoc.is_established
    return assoc


def find(
    ae: AE, scp: WorklistSCP, query: Dataset, model: str = MODALITY_WORKLIST_FIND
) -> tuple[list[Dataset], int]:
    """Return the pending identifiers and the final status of one C-FIND."""
    assoc = associate(ae, scp)
    try:
        pending: list[Dataset] = []
        final = -1
        for status, identifier in assoc.send_c_find(query, model):
            if status.Status == 0xFF00:
                assert identifier is not None
                pending.append(identifier)
            else:
                final = status.Status
        return pending, final
    finally:
        assoc.release()


def ids(identifiers: list[Dataset]) -> list[str]:
    return sorted(str(ds.PatientID) for ds in identifiers)


@pytest.fixture
def scp(worklist_scp_factory: WorklistSCPFactory) -> Iterator[WorklistSCP]:
    yield worklist_scp_factory(ITEMS)


def test_universal_query_returns_every_item_with_only_the_asked_keys(
    ae: AE, scp: WorklistSCP
) -> None:
    pending, final = find(ae, scp, mwl_query())
    assert final == 0x0000
    assert ids(pending) == ["P1", "P2", "P3"]
    for identifier in pending:
        assert "StudyInstanceUID" not in identifier
        assert "RequestedProcedureID" not in identifier
        [step] = identifier.ScheduledProcedureStepSequence
        assert "ScheduledProcedureStepID" not in step
        assert step.Modality in {"CT", "MR"}
    [query] = scp.queries
    assert "ScheduledProcedureStepSequence" in query


@pytest.mark.parametrize(
    ("keys", "step_keys", "expected"),
    [
        ({"PatientName": "Doe*"}, {}, ["P1", "P2"]),
        ({"PatientName": "doe^j*"}, {}, ["P1", "P2"]),
        ({"PatientName": "DOE^JA?E"}, {}, ["P2"]),
        ({"PatientName": "Doe^Jane"}, {}, ["P2"]),
        ({"PatientID": "P3"}, {}, ["P3"]),
        ({}, {"Modality": "CT"}, ["P1", "P3"]),
        ({}, {"ScheduledStationAETitle": "CT0?"}, ["P1", "P3"]),
        ({}, {"ScheduledProcedureStepStartDate": "20240115-20240116"}, ["P1", "P2"]),
        ({}, {"ScheduledProcedureStepStartDate": "20240116-"}, ["P2", "P3"]),
        ({}, {"ScheduledProcedureStepStartDate": "-20240115"}, ["P1"]),
        ({}, {"Modality": "CT", "ScheduledProcedureStepStartDate": "20240116-"}, ["P3"]),
        ({"AccessionNumber": "NOPE"}, {}, []),
    ],
)
def test_matching(
    ae: AE,
    scp: WorklistSCP,
    keys: dict[str, str],
    step_keys: dict[str, str],
    expected: list[str],
) -> None:
    query = mwl_query(**step_keys)
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    pending, final = find(ae, scp, query)
    assert final == 0x0000
    assert ids(pending) == expected


def test_time_range_and_uid_list_matching() -> None:
    item = mwl_item("A^B", "P1", time_="0930")
    step = Dataset()
    step.ScheduledProcedureStepStartTime = "0900-1000"
    query = Dataset()
    query.ScheduledProcedureStepSequence = DicomSequence([step])
    assert matches(item, query)
    step.ScheduledProcedureStepStartTime = "100000-"
    assert not matches(item, query)
    uid_query = Dataset()
    uid_query.StudyInstanceUID = [generate_uid(), item.StudyInstanceUID]
    assert matches(item, uid_query)
    uid_query.StudyInstanceUID = generate_uid()
    assert not matches(item, uid_query)


@pytest.mark.parametrize("in_responses", [True, False])
def test_items_keep_their_character_sets(
    ae: AE, worklist_scp_factory: WorklistSCPFactory, in_responses: bool
) -> None:
    latin1 = mwl_item("Müller^Jürgen", "L1", character_set="ISO_IR 100")
    utf8 = mwl_item("Yamada^Tarou=山田^太郎=やまだ^たろう", "U1", character_set="ISO_IR 192")
    ascii_ = mwl_item("Plain^Ascii", "A1")
    scp = worklist_scp_factory([latin1, utf8, ascii_], character_set_in_responses=in_responses)
    pending, final = find(ae, scp, mwl_query())
    assert final == 0x0000
    by_id = {str(ds.PatientID): ds for ds in pending}
    expected = {
        "L1": ("ISO_IR 100", "Müller^Jürgen".encode("latin-1")),
        "U1": ("ISO_IR 192", "Yamada^Tarou=山田^太郎=やまだ^たろう".encode()),
        "A1": (None, b"Plain^Ascii"),
    }
    for patient_id, (charset, raw) in expected.items():
        identifier = by_id[patient_id]
        # pynetdicom decodes the identifier (to log it); the PersonName keeps the raw bytes
        name = identifier.get_item(0x00100010).value
        name = getattr(name, "original_string", name)
        assert isinstance(name, bytes)
        assert name.rstrip(b" ") == raw
        if in_responses and charset is not None:
            assert identifier.SpecificCharacterSet == charset
            assert str(identifier.PatientName) == raw.decode(
                "latin-1" if "100" in charset else "utf-8"
            )
        else:
            assert "SpecificCharacterSet" not in identifier


def test_query_in_another_character_set_matches_decoded_names(
    ae: AE, worklist_scp_factory: WorklistSCPFactory
) -> None:
    scp = worklist_scp_factory([mwl_item("Müller^Jürgen", "L1", character_set="ISO_IR 100")])
    query = mwl_query()
    query.SpecificCharacterSet = "ISO_IR 192"
    query.PatientName = "Mü*"
    pending, _final = find(ae, scp, query)
    assert ids(pending) == ["L1"]
    assert pending[0].SpecificCharacterSet == "ISO_IR 100"


def test_cancel(ae: AE, worklist_scp_factory: WorklistSCPFactory) -> None:
    items = [mwl_item(f"Many^{n}", f"M{n}") for n in range(5)]
    scp = worklist_scp_factory(items, delay_s=0.1)
    assoc = associate(ae, scp)
    try:
        statuses = []
        for status, _identifier in assoc.send_c_find(mwl_query(), MODALITY_WORKLIST_FIND, msg_id=7):
            statuses.append(status.Status)
            if len(statuses) == 1:
                assoc.send_c_cancel(7, query_model=MODALITY_WORKLIST_FIND)
    finally:
        assoc.release()
    assert statuses[0] == 0xFF00
    assert statuses[-1] == 0xFE00
    assert len(statuses) < 5
    assert scp.cancelled == 1


def test_never_answer_times_out_and_stops_fast(
    ae: AE, worklist_scp_factory: WorklistSCPFactory
) -> None:
    scp = worklist_scp_factory(ITEMS, never_answer=True)
    ae.dimse_timeout = 0.3
    assoc = associate(ae, scp)
    responses = list(assoc.send_c_find(mwl_query(), MODALITY_WORKLIST_FIND))
    assert [(status, identifier) for status, identifier in responses] == [(Dataset(), None)]
    assert assoc.is_aborted
    assert len(scp.queries) == 1
    started = time.monotonic()
    scp.stop()
    assert time.monotonic() - started < 1.5


def test_failure_status(ae: AE, worklist_scp_factory: WorklistSCPFactory) -> None:
    scp = worklist_scp_factory(ITEMS, failure_status=0xC001)
    pending, final = find(ae, scp, mwl_query())
    assert (pending, final) == ([], 0xC001)


def test_invalid_failure_status_is_refused() -> None:
    with pytest.raises(ValueError, match="failure_status"):
        WorklistSCP(ITEMS, failure_status=0xFF00)
    with pytest.raises(ValueError, match="delay_s"):
        WorklistSCP(ITEMS, delay_s=-1)


def test_rejection(ae: AE, worklist_scp_factory: WorklistSCPFactory) -> None:
    scp = worklist_scp_factory(ITEMS, reject=Rejection(result=1, source=1, reason=7))
    assoc = ae.associate(*scp.address, ae_title=scp.ae_title)
    assert assoc.is_rejected
    assert scp.associations == 0


def qr_dataset(patient_id: str, name: str, study_date: str) -> Dataset:
    ds = Dataset()
    ds.PatientID = patient_id
    ds.PatientName = name
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = study_date
    ds.StudyDescription = f"Study of {name}"
    return ds


QR_DATASETS = (
    qr_dataset("Q1", "Alpha^A", "20230101"),
    qr_dataset("Q1", "Alpha^A", "20230601"),
    qr_dataset("Q2", "Beta^B", "20240101"),
)


def qr_query(level: str, **keys: str) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = level
    query.PatientID = ""
    query.PatientName = ""
    if level == "STUDY":
        query.StudyInstanceUID = ""
        query.StudyDate = ""
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return query


@pytest.mark.parametrize(
    ("model", "query", "expected"),
    [
        (PATIENT_ROOT_FIND, qr_query("PATIENT"), ["Q1", "Q2"]),
        (PATIENT_STUDY_ONLY_FIND, qr_query("PATIENT", PatientName="B*"), ["Q2"]),
        (PATIENT_ROOT_FIND, qr_query("STUDY", PatientID="Q1"), ["Q1", "Q1"]),
        (STUDY_ROOT_FIND, qr_query("STUDY"), ["Q1", "Q1", "Q2"]),
        (STUDY_ROOT_FIND, qr_query("STUDY", StudyDate="20230501-"), ["Q1", "Q2"]),
    ],
)
def test_query_retrieve_levels(
    ae: AE,
    worklist_scp_factory: WorklistSCPFactory,
    model: str,
    query: Dataset,
    expected: list[str],
) -> None:
    scp = worklist_scp_factory((), qr_datasets=QR_DATASETS)
    pending, final = find(ae, scp, query, model)
    assert final == 0x0000
    assert ids(pending) == expected
    level = query.QueryRetrieveLevel
    assert all(ds.QueryRetrieveLevel == level for ds in pending)
    assert all("StudyDescription" not in ds for ds in pending)


def test_query_retrieve_level_not_supported(
    ae: AE, worklist_scp_factory: WorklistSCPFactory
) -> None:
    scp = worklist_scp_factory((), qr_datasets=QR_DATASETS)
    assert find(ae, scp, qr_query("PATIENT"), STUDY_ROOT_FIND) == ([], 0xA900)
    assert find(ae, scp, qr_query("SERIES"), PATIENT_ROOT_FIND) == ([], 0xA900)


def test_runs_beside_a_storage_scp(ae: AE, worklist_scp_factory: WorklistSCPFactory) -> None:
    worklist = worklist_scp_factory(ITEMS)
    with StorageSCP() as storage:
        assert storage.port != worklist.port
        for scp_address, title in ((storage.address, storage.ae_title), (worklist.address, "X")):
            assoc = ae.associate(*scp_address, ae_title=title)
            assert assoc.is_established
            assert assoc.send_c_echo().Status == 0x0000
            assoc.release()
    pending, _final = find(ae, worklist, mwl_query(Modality="MR"))
    assert ids(pending) == ["P2"]
