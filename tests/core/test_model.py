"""Domain objects validate on creation: Study, SopClassRule, TagPattern and the enums."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendtopacs_core.errors import InvalidValueError
from sendtopacs_core.model import (
    ConversionType,
    ImageTransferSyntax,
    PatientSex,
    SopClassRule,
    Study,
    TagPattern,
    VideoFormat,
)

# -- Study -------------------------------------------------------------------------------------


def test_study_keeps_valid_values() -> None:
    study = Study(
        patient_id="12345",
        patient_name="Müller^Anna",
        patient_birth_date="19800229",
        patient_sex="F",
        study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        study_date="20240131",
        study_time="101500",
        accession_number="ACC-1",
        modality="XC",
    )
    assert study.patient_name == "Müller^Anna"
    assert study.patient_sex == "F"
    assert study.modality == "XC"


def test_study_strips_text_and_treats_empty_as_unknown() -> None:
    study = Study(patient_id="  12345 ", patient_name="", accession_number="   ")
    assert study.patient_id == "12345"
    assert study.patient_name is None
    assert study.accession_number is None


def test_study_sex_is_normalised_to_upper_case() -> None:
    assert Study(patient_sex=" m ").patient_sex == "M"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("patient_sex", "X", r"invalid patient_sex 'X': expected M, F or O"),
        ("patient_name", "A=B=C=D", r"invalid patient_name 'A=B=C=D': 4 component groups"),
        ("patient_birth_date", "19800230", r"invalid patient_birth_date '19800230': not a"),
        ("study_date", "2024-01-31", r"invalid study_date '2024-01-31': expected a date"),
        ("study_time", "2500", r"invalid study_time '2500': expected a time"),
        ("study_instance_uid", "1.02.3", r"invalid study_instance_uid '1.02.3': expected digits"),
        ("accession_number", "A" * 17, r"invalid accession_number 'A{17}': 17 characters"),
        ("patient_id", "x" * 65, r"invalid patient_id 'x{65}': 65 characters"),
        ("modality", "xc", r"invalid modality 'xc': only upper-case"),
        ("referring_physician_name", "Dr\\Who", r"a backslash is not allowed"),
    ],
)
def test_study_rejects_invalid_fields_naming_them(field: str, value: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message) as caught:
        Study(**{field: value})  # type: ignore[arg-type]  # every field given as text
    assert caught.value.field == field


def test_study_additional_info_is_limited() -> None:
    assert Study(additional_info="x" * 1024).additional_info == "x" * 1024
    with pytest.raises(ValueError, match="1024"):
        Study(additional_info="x" * 1025)


def test_study_is_frozen_and_changed_with_evolve() -> None:
    study = Study(patient_id="1")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        study.patient_id = "2"  # type: ignore[misc]
    assert attrs.evolve(study, patient_id="2").patient_id == "2"
    with pytest.raises(InvalidValueError, match="patient_sex"):
        attrs.evolve(study, patient_sex="Q")


# -- SopClassRule ------------------------------------------------------------------------------


def test_rule_normalises_extensions() -> None:
    rule = SopClassRule(name="Images", uid="1.2.3", extensions=" .JPG, png ,,TIFF")
    assert rule.extensions == ("jpg", "png", "tiff")
    assert SopClassRule(name="x", uid="1.2", extensions=[".PDF"]).extensions == ("pdf",)


def test_rule_matches_only_named_extensions() -> None:
    rule = SopClassRule(name="PDF", uid="1.2.3", extensions=("pdf",))
    assert rule.matches("pdf")
    assert rule.matches(".PDF")
    assert not rule.matches("png")
    everything = SopClassRule(name="all", uid="1.2.3", default=True)
    assert everything.extensions == ("*",)
    assert not everything.matches("png")


def test_default_rule_needs_star() -> None:
    with pytest.raises(
        InvalidValueError,
        match=r"invalid default True: only a rule for all files \('\*'\) can be the default "
        r"\(rule 'PDF' names pdf\)",
    ) as caught:
        SopClassRule(name="PDF", uid="1.2.3", extensions=("pdf",), default=True)
    assert caught.value.field == "default"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "a rule needs a name"),
        ({"name": "   "}, "name", "a rule needs a name"),
        ({"uid": "1.2.03"}, "uid", "without leading zeros"),
        ({"uid": "1." + "1" * 64}, "uid", "at most 64"),
        ({"extensions": ()}, "extensions", "at least one extension"),
        ({"extensions": ",,"}, "extensions", "at least one extension"),
        ({"extensions": ("p/df",)}, "extensions", "letters and digits"),
        ({"extensions": ("tar.gz",)}, "extensions", "letters and digits"),
    ],
)
def test_rule_rejects_bad_fields(changes: dict[str, object], field: str, message: str) -> None:
    values: dict[str, object] = {"name": "Rule", "uid": "1.2.3", "extensions": ("pdf",)}
    values.update(changes)
    with pytest.raises(InvalidValueError, match=message) as caught:
        SopClassRule(**values)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_rule_conversion_type_accepts_its_code() -> None:
    rule = SopClassRule(name="Scan", uid="1.2.3", conversion_type="SD")
    assert rule.conversion_type is ConversionType.SD
    with pytest.raises(ValueError, match="XX"):
        SopClassRule(name="Scan", uid="1.2.3", conversion_type="XX")


def test_rule_burned_in_annotation_is_bool_or_none() -> None:
    assert SopClassRule(name="a", uid="1.2").burned_in_annotation is None
    assert SopClassRule(name="a", uid="1.2", burned_in_annotation=True).burned_in_annotation
    with pytest.raises(TypeError, match="burned_in_annotation"):
        SopClassRule(name="a", uid="1.2", burned_in_annotation="YES")  # type: ignore[arg-type]


@given(st.lists(st.from_regex(r"[A-Za-z0-9]{1,6}", fullmatch=True), min_size=1, max_size=5))
def test_rule_extensions_round_trip_as_lower_case(extensions: list[str]) -> None:
    rule = SopClassRule(name="r", uid="1.2", extensions=[f".{e}" for e in extensions])
    assert rule.extensions == tuple(e.lower() for e in extensions)
    assert all(rule.matches(e.upper()) for e in extensions)


# -- TagPattern --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        ("Modality", "{Modality} - test"),
        ("0008,0060", "{0008,0060} - test"),
        ("InstitutionName", "Clinic {{north}}"),
        ("(0020,4000)", "{PatientID}/{StudyDate}"),
        ("StudyDescription", ""),
    ],
)
def test_tag_patterns_pass(tag: str, value: str) -> None:
    pattern = TagPattern(tag=tag, value=value)
    assert pattern.value == value
    assert not pattern.only_if_empty
    assert not pattern.create_if_missing


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"value": "{Modality - test"}, "value", "a '{' without its '}'"),
        ({"value": "Modality} - test"}, "value", "a '}' without its '{'"),
        ({"value": "{Modalty} - test"}, "value", "not a DICOM keyword"),
        ({"value": "{0008,9999}"}, "value", "not a tag of the DICOM data dictionary"),
        ({"value": "{}"}, "value", "not a DICOM keyword"),
        ({"tag": "Modalty"}, "tag", "not a DICOM keyword"),
        ({"tag": "  "}, "tag", "not a DICOM keyword"),
        ({"tag": "0008,ZZZZ"}, "tag", "not a DICOM keyword"),
    ],
)
def test_tag_patterns_reject_bad_tags_and_templates(
    changes: dict[str, str], field: str, message: str
) -> None:
    values: dict[str, Any] = {"tag": "Modality", "value": "OT"}
    values.update(changes)
    with pytest.raises(InvalidValueError, match=message) as caught:
        TagPattern(**values)
    assert caught.value.field == field


def test_tag_pattern_flags_are_bools() -> None:
    with pytest.raises(TypeError, match="only_if_empty"):
        TagPattern(tag="Modality", value="OT", only_if_empty="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value"):
        TagPattern(tag="Modality", value=5)  # type: ignore[arg-type]


# -- enums -------------------------------------------------------------------------------------


def test_enums_are_plain_strings_with_dicom_codes() -> None:
    assert [m.value for m in PatientSex] == ["M", "F", "O"]
    assert ConversionType("WSD") is ConversionType.WSD
    assert [m.value for m in VideoFormat] == [
        "auto",
        "mpeg2-main",
        "mpeg2-high",
        "h264-high",
        "h264-bd",
    ]
    assert [m.value for m in ImageTransferSyntax] == ["auto", "explicit-le", "jpeg-baseline"]
    assert f"{VideoFormat.H264_HIGH}" == "h264-high"
