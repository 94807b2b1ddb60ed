"""C-FIND keys without a network: dates, file name patterns, header keys, the query charset."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from sendtopacs_core import InvalidValueError, Querier, StudyQuery, WorklistDevice, WorklistQuery
from sendtopacs_core.net._query import (
    WORKLIST_PATIENT_KEYS,
    WORKLIST_STEP_KEYS,
    check_key,
    date_key,
    query_charset,
)
from sendtopacs_core.net.matching import WorklistMatchError, dicom_query, file_name_query

TODAY = dt.date(2026, 11, 27)


def device(**options: object) -> WorklistDevice:
    return WorklistDevice(name="mwl", ae_title="MWL", host="127.0.0.1", port=104, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("", ""),
        ("  ", ""),
        ("today", "20261127"),
        ("TODAY", "20261127"),
        ("20240229", "20240229"),
        ("20240101-20240131", "20240101-20240131"),
        ("20240101-20240101", "20240101-20240101"),
        ("20240101-", "20240101-"),
        ("-20240131", "-20240131"),
        (" 20240101 ", "20240101"),
    ],
)
def test_date_key_forms(value: str | None, expected: str) -> None:
    assert date_key(value, TODAY) == expected


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2024-01-01",
        "2024011",
        "202401011",
        "-",
        "20240131-20240101",
        "20230229",
        "20241301",
        "20240132",
        "20240101--20240102",
        "20240101-2024",
    ],
)
def test_date_key_refuses_invalid_dates(value: str) -> None:
    with pytest.raises(InvalidValueError, match="date"):
        date_key(value, TODAY)


def test_identifier_has_every_k6122_return_key() -> None:
    querier = Querier(device(use_today=False))
    identifier = querier.worklist_identifier(WorklistQuery())
    top = {
        "AccessionNumber", "ReferringPhysicianName", "PatientName", "PatientID",
        "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "OtherPatientIDs", "PatientWeight",
        "PatientSize", "AdmissionID", "StudyInstanceUID", "RequestedProcedureDescription",
        "RequestedProcedureID", "RequestedProcedurePriority", "RequestingPhysician",
        "ReasonForTheRequestedProcedure", "RequestedProcedureCodeSequence",
        "ScheduledProcedureStepSequence",
    }  # fmt: skip
    step = {
        "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime", "Modality", "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepDescription", "ScheduledStationName",
        "ScheduledProcedureStepLocation", "ScheduledProcedureStepID",
        "ScheduledProtocolCodeSequence",
    }  # fmt: skip
    assert top <= set(identifier.dir())
    assert set(WORKLIST_PATIENT_KEYS) | {"RequestedProcedureCodeSequence"} <= set(identifier.dir())
    [item] = identifier.ScheduledProcedureStepSequence
    assert step <= set(item.dir())
    assert set(WORKLIST_STEP_KEYS) <= set(item.dir())
    assert all(not identifier[k].value for k in WORKLIST_PATIENT_KEYS)  # universal matching
    assert "SpecificCharacterSet" not in identifier


def test_identifier_uses_query_then_device_defaults() -> None:
    querier = Querier(device(modality="ES", scheduled_ae_title="ENDO1"), today=lambda: TODAY)
    identifier = querier.worklist_identifier(WorklistQuery(patient_id="P*"))
    [step] = identifier.ScheduledProcedureStepSequence
    assert identifier.PatientID == "P*"
    assert (step.Modality, step.ScheduledStationAETitle) == ("ES", "ENDO1")
    assert step.ScheduledProcedureStepStartDate == "20261127"  # use_today
    explicit = querier.worklist_identifier(
        WorklistQuery(modality="CT", scheduled_ae_title="CT1", date="")
    )
    [step] = explicit.ScheduledProcedureStepSequence
    assert (step.Modality, step.ScheduledStationAETitle) == ("CT", "CT1")
    assert step.ScheduledProcedureStepStartDate == ""
    with pytest.raises(InvalidValueError):
        querier.worklist_identifier(WorklistQuery(date="20261399"))


def test_query_charset_only_for_non_ascii_keys() -> None:
    ascii_only = Dataset()
    ascii_only.PatientName = "Muller*"
    query_charset(ascii_only, None)
    assert "SpecificCharacterSet" not in ascii_only

    nested = Dataset()
    nested.PatientName = ""
    step = Dataset()
    step.ScheduledProcedureStepDescription = "Gastroskopie Müller"
    nested.ScheduledProcedureStepSequence = [step]
    query_charset(nested, None)
    assert nested.SpecificCharacterSet == "ISO_IR 192"

    configured = Dataset()
    configured.PatientName = "Müller*"
    query_charset(configured, "ISO_IR 100")
    assert configured.SpecificCharacterSet == "ISO_IR 100"


PATTERN = "{patient_id}_{accession_number}_*"


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("PID1_ACC7_photo.jpg", PATTERN, {"patient_id": "PID1", "accession_number": "ACC7"}),
        ("PID1_photo.jpg", "{patient_id}_*", {"patient_id": "PID1"}),
        ("Müller^Hans_x.png", "{patient_name}_*", {"patient_name": "Müller^Hans"}),
        ("Müller, Hans_x.png", "{patient_name}_*", {"patient_name": "Müller^Hans"}),
        ("P9-20240115.pdf", "{patient_id}-{date}", {"patient_id": "P9", "date": "20240115"}),
        ("RP5 scan.jpg", "{requested_procedure_id} *", {"requested_procedure_id": "RP5"}),
    ],
)
def test_file_name_query(name: str, pattern: str, expected: dict[str, str]) -> None:
    query = file_name_query(Path("/in") / name, pattern)
    found = {
        key: getattr(query, key if key != "date" else "date")
        for key in ("patient_id", "accession_number", "patient_name", "date",
                    "requested_procedure_id")
        if getattr(query, key)
    }  # fmt: skip
    assert found == expected
    if "date" not in expected:
        assert query.date == ""  # any date: the name says nothing about it


@pytest.mark.parametrize("name", ["PID1_ACC7.jpg", "PID1_ACC7_photo 2.jpg", "PID1_ACC7.final.jpg"])
def test_field_followed_by_a_wildcard_takes_the_whole_part(name: str) -> None:
    query = file_name_query(Path(name), "{patient_id}_{accession_number}*")
    assert (query.patient_id, query.accession_number) == ("PID1", "ACC7")


@pytest.mark.parametrize("name", ["photo.jpg", "PID1.jpg", "PID1_ACC7.jpg"])
def test_file_name_that_does_not_fit(name: str) -> None:
    with pytest.raises(WorklistMatchError, match="does not fit"):
        file_name_query(Path(name), PATTERN)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{nope}_*", "unknown field"),
        ("{patient_id}_{patient_id}", "only once"),
        ("photo_*", "no field"),
    ],
)
def test_invalid_file_name_patterns(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        file_name_query(Path("PID1_photo.jpg"), pattern)


def header(**values: str) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    ("fill_id", "fill_name", "expected_id", "expected_name"),
    [
        ("exact", "off", "P1", None),
        ("wildcard", "off", "P1*", None),
        ("off", "exact", None, "Doe^John"),
        ("exact", "wildcard", "P1", "Doe^John*"),
    ],
)
def test_dicom_query_fill_modes(
    fill_id: str, fill_name: str, expected_id: str | None, expected_name: str | None
) -> None:
    query = dicom_query(
        header(PatientID="P1", PatientName="Doe^John", AccessionNumber="A1"),
        device(fill_patient_id=fill_id, fill_patient_name=fill_name),
    )
    assert (query.patient_id, query.patient_name) == (expected_id, expected_name)
    assert query.accession_number == "A1"
    assert query.date == ""


def test_dicom_query_without_keys_is_an_error() -> None:
    with pytest.raises(WorklistMatchError, match="no Patient ID"):
        dicom_query(header(PatientName="Doe^John"), device(fill_patient_name="off"))


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("PatientName", "Mül*"),
        ("PatientName", "M?ller^A*"),
        ("Modality", "E*"),
        ("Modality", "ES\\XC"),
        ("StudyDate", "20260101-20261231"),
        ("StudyDate", "-20261231"),
        ("StudyInstanceUID", "1.2.3\\1.2.4"),
        ("AccessionNumber", "ACC*"),
    ],
)
def test_valid_search_keys_pass(keyword: str, value: str) -> None:
    check_key(keyword, value)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("PatientID", "x" * 65),
        ("StudyInstanceUID", "db"),
        ("StudyInstanceUID", "1.2.*"),
        ("PatientBirthDate", "±"),
        ("Modality", "abc"),
        ("AccessionNumber", "A" * 17),
    ],
)
def test_invalid_search_keys_are_refused_before_pydicom_sees_them(keyword: str, value: str) -> None:
    with pytest.raises(InvalidValueError, match="not a valid DICOM"):
        check_key(keyword, value)


def test_querier_refuses_an_invalid_key_without_a_pydicom_warning() -> None:
    device = WorklistDevice(name="mwl", ae_title="MWL", host="127.0.0.1", port=104)
    with pytest.raises(InvalidValueError, match="Modality"):
        Querier(device).worklist_identifier(WorklistQuery(modality="abc"))
    with pytest.raises(InvalidValueError, match="StudyInstanceUID"):
        Querier(device).find(StudyQuery(study_instance_uid="not a uid"))
