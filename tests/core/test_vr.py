"""The VR checks of ``_vr.py``: each accepts what PS3.5 allows and names what it rejects."""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.tag import Tag

from sendtopacs_core._vr import (
    CHARSETS,
    check_ae_title,
    check_charset,
    check_cs,
    check_da,
    check_lo,
    check_pn,
    check_sh,
    check_tag,
    check_tm,
    check_ui,
    parse_tag,
    tag_label,
    validator,
)
from sendtopacs_core.errors import InvalidValueError

#: Printable ASCII an AE title may hold (no backslash).
AE_CHARACTERS = "".join(c for c in string.printable if c not in "\\\t\n\r\x0b\x0c")

ae_titles = st.text(alphabet=AE_CHARACTERS, min_size=1, max_size=16).filter(
    lambda text: text.strip(" ") != ""
)
code_strings = st.from_regex(r"[A-Z0-9_ ]{0,16}", fullmatch=True)
uid_components = st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,8}", fullmatch=True))
uids = st.lists(uid_components, min_size=1, max_size=7).map(".".join)


def rejects(check: Callable[[object, str], Any], value: object, reason: str) -> None:
    """``check`` raises InvalidValueError naming the field and value, with ``reason``."""
    with pytest.raises(InvalidValueError, match=re.escape(reason)) as caught:
        check(value, "the_field")
    assert caught.value.field == "the_field"
    assert caught.value.value == value
    assert "the_field" in str(caught.value)


# -- AE ----------------------------------------------------------------------------------------


@given(ae_titles)
def test_valid_ae_titles_pass_unchanged(title: str) -> None:
    assert check_ae_title(title) == title


@given(st.text(alphabet=AE_CHARACTERS, min_size=17, max_size=40))
def test_ae_titles_over_16_characters_are_rejected(title: str) -> None:
    rejects(check_ae_title, title, f"{len(title)} characters; at most 16 are allowed")


@pytest.mark.parametrize(
    ("title", "reason"),
    [
        ("PACS\\1", "a backslash is not allowed"),
        ("PACS\n", "control characters are not allowed"),
        ("PA\x1bCS", "control characters are not allowed"),
        ("PACS\x7f", "control characters are not allowed"),
        ("", "cannot be empty or only spaces"),
        ("    ", "cannot be empty or only spaces"),
        ("PÄCS", "only ASCII characters are allowed"),
        (104, "expected a string"),
    ],
)
def test_bad_ae_titles_are_rejected(title: object, reason: str) -> None:
    rejects(check_ae_title, title, reason)


def test_ae_title_of_exactly_16_characters_passes() -> None:
    assert check_ae_title("A" * 16) == "A" * 16


# -- CS, LO, SH --------------------------------------------------------------------------------


@given(code_strings)
def test_code_strings_pass(value: str) -> None:
    assert check_cs(value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ot", "only upper-case letters, digits, space and underscore"),
        ("O-T", "only upper-case letters, digits, space and underscore"),
        ("A" * 17, "17 characters; at most 16"),
        ("OT\\XC", "a backslash is not allowed"),
    ],
)
def test_bad_code_strings_are_rejected(value: str, reason: str) -> None:
    rejects(check_cs, value, reason)


def test_long_and_short_strings_have_their_limits() -> None:
    assert check_lo("Ä" * 64) == "Ä" * 64
    rejects(check_lo, "x" * 65, "65 characters; at most 64")
    assert check_sh("x" * 16) == "x" * 16
    rejects(check_sh, "x" * 17, "17 characters; at most 16")
    rejects(check_lo, "a\tb", "control characters are not allowed")


# -- PN ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Müller^Anna",
        "Family^Given^Middle^Prefix^Suffix",
        "Yamada^Tarou=山田^太郎=やまだ^たろう",
        "",
        "^Anna",
        "\x1b$BVfEDEDO:\x1b(B^\x1b$BB@O:\x1b(B",  # ISO 2022 escapes are allowed in PN
    ],
)
def test_person_names_pass(name: str) -> None:
    assert check_pn(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("A=B=C=D", "4 component groups; at most 3"),
        ("A^B^C^D^E^F", "more than 5 components"),
        ("x" * 65, "a component group has 65 characters; at most 64"),
        ("Doe^John=" + "y" * 65, "a component group has 65 characters"),
        ("Doe\\John", "a backslash is not allowed"),
        ("Doe\r^John", "control characters are not allowed"),
        (None, "expected a string"),
    ],
)
def test_bad_person_names_are_rejected(name: object, reason: str) -> None:
    rejects(check_pn, name, reason)


@given(st.lists(st.text(alphabet=string.ascii_letters, max_size=10), min_size=1, max_size=5))
def test_up_to_five_components_pass(components: list[str]) -> None:
    name = "^".join(components)
    assert check_pn(name) == name


# -- DA and TM ---------------------------------------------------------------------------------


@given(st.dates(min_value=dt.date(1, 1, 1)))
def test_real_calendar_dates_pass(date: dt.date) -> None:
    text = f"{date.year:04d}{date.month:02d}{date.day:02d}"
    assert check_da(text) == text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("20230229", "not a calendar date"),
        ("20241301", "not a calendar date"),
        ("20240431", "not a calendar date"),
        ("00000101", "not a calendar date"),
        ("2024-01-01", "expected a date as YYYYMMDD"),
        ("240101", "expected a date as YYYYMMDD"),
        ("2024010a", "expected a date as YYYYMMDD"),
        (20240101, "expected a date as YYYYMMDD"),
    ],
)
def test_bad_dates_are_rejected(value: object, reason: str) -> None:
    rejects(check_da, value, reason)


def test_leap_day_passes() -> None:
    assert check_da("20240229") == "20240229"


@given(st.times())
def test_times_pass_in_every_precision(time: dt.time) -> None:
    full = f"{time.hour:02d}{time.minute:02d}{time.second:02d}.{time.microsecond:06d}"
    for text in (full[:2], full[:4], full[:6], full[:8], full):
        assert check_tm(text) == text


@pytest.mark.parametrize(
    "value", ["24", "2400", "1261", "12:30", "123", "120000.", "120000.1234567", "", 1200]
)
def test_bad_times_are_rejected(value: object) -> None:
    rejects(check_tm, value, "expected a time as HHMMSS")


# -- UI ----------------------------------------------------------------------------------------


@given(uids.filter(lambda uid: len(uid) <= 64))
def test_uids_pass(uid: str) -> None:
    assert check_ui(uid) == uid


@pytest.mark.parametrize("uid", ["1.02", "01.2", "1.2.003", "1..2", ".1", "1.", "1.2a", "", "1,2"])
def test_malformed_uids_are_rejected(uid: str) -> None:
    rejects(check_ui, uid, "without leading zeros")


def test_uid_length_is_at_most_64() -> None:
    uid = "1." + "2" * 62
    assert check_ui(uid) == uid
    rejects(check_ui, uid + "3", "65 characters; at most 64")


def test_a_zero_component_is_not_a_leading_zero() -> None:
    assert check_ui("1.2.0.3") == "1.2.0.3"


# -- Specific Character Set --------------------------------------------------------------------


@pytest.mark.parametrize("term", sorted(CHARSETS))
def test_every_defined_term_passes_alone(term: str) -> None:
    assert check_charset(term) == term


@pytest.mark.parametrize(
    "value",
    [
        "ISO 2022 IR 6\\ISO 2022 IR 87",
        "\\ISO 2022 IR 87",
        "ISO 2022 IR 13\\ISO 2022 IR 87\\ISO 2022 IR 159",
        "\\ISO 2022 IR 149",
    ],
)
def test_iso_2022_sets_combine(value: str) -> None:
    assert check_charset(value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ISO_IR 100\\ISO_IR 192", "several values are allowed only for ISO 2022"),
        ("ISO 2022 IR 6\\ISO_IR 100", "several values are allowed only for ISO 2022"),
        ("UTF-8", "'UTF-8' is not a defined term"),
        ("iso_ir 100", "'iso_ir 100' is not a defined term"),
        ("ISO 2022 IR 6\\KOI8", "'KOI8' is not a defined term"),
        ("", "expected at least one defined term"),
        ("\\", "expected at least one defined term"),
        (192, "expected a string"),
    ],
)
def test_bad_charsets_are_rejected(value: object, reason: str) -> None:
    rejects(check_charset, value, reason)


# -- tags --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Modality", 0x00080060),
        (" PatientName ", 0x00100010),
        ("0008,0060", 0x00080060),
        ("(0008,0060)", 0x00080060),
        ("( 0020 , 4000 )", 0x00204000),
        ("0020,4000", 0x00204000),
        ("7fe0,0010", 0x7FE00010),
        ("0009,1001", 0x00091001),  # private: not in the dictionary, still allowed
    ],
)
def test_tags_parse_by_keyword_and_number(text: str, number: int) -> None:
    assert parse_tag(text) == Tag(number)
    assert check_tag(text) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Modalty", "not a DICOM keyword"),
        ("modality", "not a DICOM keyword"),
        ("", "not a DICOM keyword"),  # pydicom maps "" to (300A,0782)
        ("   ", "not a DICOM keyword"),
        ("00080060", "not a DICOM keyword"),
        ("0008,ZZZZ", "not a DICOM keyword"),
        ("0008,0060,0001", "not a DICOM keyword"),
        ("{Modality}", "not a DICOM keyword"),
        ("0008,9999", "not a tag of the DICOM data dictionary"),
        ("0000,0000", "a command or item delimitation tag"),
        ("FFFE,E000", "a command or item delimitation tag"),
        ("Item", "a command or item delimitation tag"),
        (0x00080060, "expected a keyword or gggg,eeee"),
    ],
)
def test_nonsense_tags_are_rejected(text: object, reason: str) -> None:
    rejects(check_tag, text, reason)


@given(st.text(max_size=20))
def test_parse_tag_either_returns_a_tag_or_raises_invalid_value(text: str) -> None:
    try:
        tag = parse_tag(text)
    except InvalidValueError as exc:
        assert exc.value == text
    else:
        assert 0 <= int(tag) <= 0xFFFFFFFF


def test_tag_label_names_number_and_keyword() -> None:
    assert tag_label(Tag(0x00080060)) == "(0008,0060) Modality"
    assert tag_label(Tag(0x00091001)) == "(0009,1001)"


# -- the attrs adapter -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Node:
    ae_title: str | None = attrs.field(default=None, validator=validator(check_ae_title))


def test_validator_names_the_attribute_and_skips_none() -> None:
    assert _Node().ae_title is None
    assert _Node(ae_title="STORESCP").ae_title == "STORESCP"
    with pytest.raises(
        InvalidValueError, match=r"invalid ae_title 'A\\\\B': a backslash"
    ) as caught:
        _Node(ae_title="A\\B")
    assert caught.value.field == "ae_title"
