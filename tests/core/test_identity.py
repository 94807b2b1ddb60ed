"""One UID names one object: every value written enters the identity, the clock only as a day.

The invariant is checked from outside: over many conversions of the same inputs with other
days, times, studies and settings, no SOP Instance UID ever names two different data sets, and
each change of a written value gives new UIDs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pydicom
import pytest
from pydicom.dataset import Dataset

from sendtopacs_core import Converter, Settings, Study, TagPattern
from sendtopacs_core.model import ImageTransferSyntax
from tests import _corpus

ZONE = dt.timezone(dt.timedelta(hours=1))
MORNING = dt.datetime(2026, 3, 2, 8, 15, 0, tzinfo=ZONE)
PATIENT = Study(patient_id="ID-7", patient_name="Day^Study", patient_birth_date="19700101")


def convert(
    inputs: list[Path],
    study: Study,
    out: Path,
    *,
    when: dt.datetime = MORNING,
    settings: Settings | None = None,
) -> list[Any]:
    report = Converter(settings, clock=lambda: when).convert(inputs, study, out_dir=out)
    assert not report.failures, report.failures
    return list(report.files)


def dataset(path: Path) -> Dataset:
    """The object as a PACS receives it: the data set without the File Meta."""
    ds = pydicom.dcmread(path)
    del ds.file_meta
    return ds


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("identity-inputs")
    photo, scan = folder / "photo.jpg", folder / "scan.png"
    _corpus.photo(48, 32, seed=3).save(photo, quality=90)
    _corpus.photo(40, 24, seed=4).save(scan)
    report = folder / "report.pdf"
    _corpus.pdf(report, title="Report")
    return [photo, scan, report]


def _with(settings: Settings, section: str, **changes: Any) -> Settings:
    return attrs.evolve(settings, **{section: attrs.evolve(getattr(settings, section), **changes)})


BASE = Settings()
#: One change of a value the object carries, each: (name, study, settings, clock).
VARIANTS: list[tuple[str, Study, Settings, dt.datetime]] = [
    ("baseline", PATIENT, BASE, MORNING),
    ("next day", PATIENT, BASE, MORNING + dt.timedelta(days=1)),
    ("other patient", attrs.evolve(PATIENT, patient_id="ID-8"), BASE, MORNING),
    ("sex", attrs.evolve(PATIENT, patient_sex="F"), BASE, MORNING),
    ("referring", attrs.evolve(PATIENT, referring_physician_name="Who^Dr"), BASE, MORNING),
    ("description", attrs.evolve(PATIENT, study_description="Wound"), BASE, MORNING),
    ("study time", attrs.evolve(PATIENT, study_time="101500"), BASE, MORNING),
    (
        "modality",
        attrs.evolve(PATIENT, modality="XC"),
        _with(BASE, "non_dicom", modalities=("OT", "XC")),
        MORNING,
    ),
    ("institution", PATIENT, _with(BASE, "main", institution_name="Klinik Nord"), MORNING),
    ("station", PATIENT, _with(BASE, "main", station_name="CAPTURE2"), MORNING),
    ("charset", PATIENT, _with(BASE, "non_dicom", charset="ISO_IR 192"), MORNING),
    (
        "additional info",
        attrs.evolve(PATIENT, additional_info="left"),
        _with(BASE, "non_dicom", additional_info_tag="0020,4000"),
        MORNING,
    ),
    (
        "update-tag pattern",
        PATIENT,
        _with(BASE, "dicom", update_tags=(TagPattern(tag="StationName", value="ROOM 3"),)),
        MORNING,
    ),
    (
        "uncompressed",
        PATIENT,
        _with(BASE, "non_dicom", image_transfer_syntax=ImageTransferSyntax.EXPLICIT_LE),
        MORNING,
    ),
]  # fmt: skip


def test_no_uid_ever_names_two_different_objects(inputs: list[Path], tmp_path: Path) -> None:
    by_uid: dict[str, Dataset] = {}
    uids_of: dict[str, set[str]] = {}
    for number, (name, study, settings, when) in enumerate(VARIANTS):
        files = convert(inputs, study, tmp_path / str(number), when=when, settings=settings)
        uids_of[name] = {f.sop_instance_uid for f in files}
        for converted in files:
            written = dataset(converted.path)
            assert written.SOPInstanceUID == converted.sop_instance_uid
            earlier = by_uid.setdefault(converted.sop_instance_uid, written)
            assert earlier == written, f"{name}: {converted.sop_instance_uid} names two objects"
    baseline = uids_of.pop("baseline")
    for name, uids in uids_of.items():
        assert not uids & baseline, f"{name}: a changed object kept its UID"


def test_one_day_one_identity_two_days_two(inputs: list[Path], tmp_path: Path) -> None:
    morning = convert(inputs, PATIENT, tmp_path / "morning")
    evening = convert(inputs, PATIENT, tmp_path / "evening", when=MORNING.replace(hour=19))
    tomorrow = convert(inputs, PATIENT, tmp_path / "tomorrow", when=MORNING + dt.timedelta(1))
    assert [f.sop_instance_uid for f in morning] == [f.sop_instance_uid for f in evening]
    for first, second in zip(morning, evening, strict=True):
        assert first.path.read_bytes() == second.path.read_bytes()  # no time of day inside
    assert {f.study_instance_uid for f in morning} != {f.study_instance_uid for f in tomorrow}
    assert not {f.sop_instance_uid for f in morning} & {f.sop_instance_uid for f in tomorrow}
    written = dataset(morning[0].path)
    assert (written.StudyDate, written.StudyTime) == ("20260302", "")
    assert dataset(tomorrow[0].path).StudyDate == "20260303"


def test_two_files_of_one_patient_on_one_day_share_the_days_study(
    inputs: list[Path], tmp_path: Path
) -> None:
    (photo,) = convert(inputs[:1], PATIENT, tmp_path / "a")
    (scan,) = convert(inputs[1:2], PATIENT, tmp_path / "b", when=MORNING.replace(hour=17))
    (later,) = convert(inputs[1:2], PATIENT, tmp_path / "c", when=MORNING + dt.timedelta(60))
    assert photo.study_instance_uid == scan.study_instance_uid != later.study_instance_uid
    assert dataset(photo.path).StudyDate == dataset(scan.path).StudyDate == "20260302"
    assert dataset(later.path).StudyDate == "20260501"


@pytest.mark.parametrize(
    "anchor",
    [{"accession_number": "ACC-9"}, {"study_instance_uid": "1.2.826.0.1.3680043.10.1.9"}],
    ids=["accession number", "study uid"],
)
def test_a_study_named_by_its_accession_or_uid_spans_days_without_a_date(
    inputs: list[Path], tmp_path: Path, anchor: dict[str, Any]
) -> None:
    study = attrs.evolve(PATIENT, **anchor)
    first = convert(inputs[:1], study, tmp_path / "a")
    second = convert(inputs[:1], study, tmp_path / "b", when=MORNING + dt.timedelta(days=9))
    assert first[0].study_instance_uid == second[0].study_instance_uid
    # No Study Date from the clock: the study is not the day's, so its date would conflict.
    assert dataset(first[0].path).StudyDate == dataset(second[0].path).StudyDate == ""
    # Each object is its conversion's (its Content Date is the day's): two objects.
    assert first[0].sop_instance_uid != second[0].sop_instance_uid


def test_a_typed_study_date_is_written_and_the_day_stays_in_the_objects(
    inputs: list[Path], tmp_path: Path
) -> None:
    study = attrs.evolve(PATIENT, study_date="20260101")
    first = convert(inputs[:1], study, tmp_path / "a")
    second = convert(inputs[:1], study, tmp_path / "b", when=MORNING + dt.timedelta(days=2))
    assert first[0].study_instance_uid == second[0].study_instance_uid
    one, two = dataset(first[0].path), dataset(second[0].path)
    assert one.StudyDate == two.StudyDate == "20260101"
    assert (one.ContentDate, two.ContentDate) == ("20260302", "20260304")
    assert first[0].sop_instance_uid != second[0].sop_instance_uid


def test_a_retry_with_the_assignment_makes_the_same_objects(
    inputs: list[Path], tmp_path: Path
) -> None:
    first = convert(inputs, PATIENT, tmp_path / "first")
    scan = next(f for f in first if f.source == inputs[1])
    report = Converter(clock=lambda: MORNING + dt.timedelta(days=3)).convert(
        [inputs[1]],
        PATIENT,
        out_dir=tmp_path / "retry",
        day=scan.day,
        instance_numbers={inputs[1]: scan.instance_number},
    )
    (retried,) = report.files
    assert (retried.day, retried.instance_number) == (dt.date(2026, 3, 2), 2)
    assert retried.sop_instance_uid == scan.sop_instance_uid
    assert retried.path.read_bytes() == scan.path.read_bytes()


def test_objects_of_a_days_study_pass_dciodvfy(
    inputs: list[Path], tmp_path: Path, dciodvfy: Callable[[Path], Any]
) -> None:
    for converted in convert(inputs, PATIENT, tmp_path):
        result = dciodvfy(converted.path)
        assert result.errors == [], result.output
