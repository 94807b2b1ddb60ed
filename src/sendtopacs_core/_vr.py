"""Checks of DICOM value representations (PS3.5 §6.2) used by the domain objects.

Each ``check_*`` function returns the value unchanged when it is valid and raises
:class:`~sendtopacs_core.errors.InvalidValueError` naming the field, the value and what is
expected otherwise. ``validator(check)`` adapts one of them to an attrs validator; optional fields
are ``None`` or a valid value.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from typing import Any, Final

from pydicom.datadict import dictionary_has_tag, keyword_for_tag, tag_for_keyword
from pydicom.tag import BaseTag, Tag

from sendtopacs_core.errors import InvalidValueError

__all__ = [
    "check_ae_title",
    "check_charset",
    "check_cs",
    "check_da",
    "check_lo",
    "check_pn",
    "check_sh",
    "check_tag",
    "check_tm",
    "check_ui",
    "parse_tag",
    "validator",
]

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_ESC: Final = re.compile(r"[\x00-\x1a\x1c-\x1f\x7f]")
_CS: Final = re.compile(r"[A-Z0-9_ ]*")
_UI: Final = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_TM: Final = re.compile(r"([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9](\.[0-9]{1,6})?)?)?")
_TAG_NUMBER: Final = re.compile(r"\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?")

#: Defined terms of Specific Character Set (PS3.3 C.12.1.1.2) that pydicom 3 can encode.
CHARSETS: Final = frozenset(
    {
        "ISO_IR 6",
        "ISO_IR 100",
        "ISO_IR 101",
        "ISO_IR 109",
        "ISO_IR 110",
        "ISO_IR 144",
        "ISO_IR 127",
        "ISO_IR 126",
        "ISO_IR 138",
        "ISO_IR 148",
        "ISO_IR 166",
        "ISO_IR 13",
        "ISO_IR 192",
        "GB18030",
        "GBK",
        "ISO 2022 IR 6",
        "ISO 2022 IR 100",
        "ISO 2022 IR 101",
        "ISO 2022 IR 109",
        "ISO 2022 IR 110",
        "ISO 2022 IR 144",
        "ISO 2022 IR 127",
        "ISO 2022 IR 126",
        "ISO 2022 IR 138",
        "ISO 2022 IR 148",
        "ISO 2022 IR 13",
        "ISO 2022 IR 166",
        "ISO 2022 IR 87",
        "ISO 2022 IR 159",
        "ISO 2022 IR 149",
        "ISO 2022 IR 58",
    }
)


def _text(field: str, value: object, *, max_len: int, allow_backslash: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(field, value, "expected a string")
    if len(value) > max_len:
        raise InvalidValueError(
            field, value, f"{len(value)} characters; at most {max_len} are allowed"
        )
    if _CONTROL_BUT_ESC.search(value):
        raise InvalidValueError(field, value, "control characters are not allowed")
    if not allow_backslash and "\\" in value:
        raise InvalidValueError(field, value, "a backslash is not allowed (it separates values)")
    return value


def check_ae_title(value: object, field: str = "AE title") -> str:
    """An Application Entity title: 1-16 characters, no backslash or control characters."""
    text = _text(field, value, max_len=16)
    if _CONTROL.search(text):
        raise InvalidValueError(field, value, "control characters are not allowed")
    if not text.strip(" "):
        raise InvalidValueError(field, value, "an AE title cannot be empty or only spaces")
    if not text.isascii():
        raise InvalidValueError(field, value, "only ASCII characters are allowed")
    return text


def check_cs(value: object, field: str = "code string") -> str:
    """A Code String: up to 16 of ``A-Z 0-9 _`` and space."""
    text = _text(field, value, max_len=16)
    if not _CS.fullmatch(text):
        raise InvalidValueError(
            field, value, "only upper-case letters, digits, space and underscore are allowed"
        )
    return text


def check_lo(value: object, field: str = "long string") -> str:
    """A Long String: up to 64 characters, no backslash or control characters."""
    return _text(field, value, max_len=64)


def check_sh(value: object, field: str = "short string") -> str:
    """A Short String: up to 16 characters, no backslash or control characters."""
    return _text(field, value, max_len=16)


def check_pn(value: object, field: str = "person name") -> str:
    """A Person Name: ``Family^Given^Middle^Prefix^Suffix``, up to three ``=`` groups of
    at most 64 characters each, at most five components per group."""
    if not isinstance(value, str):
        raise InvalidValueError(field, value, "expected a string")
    if _CONTROL_BUT_ESC.search(value):
        raise InvalidValueError(field, value, "control characters are not allowed")
    if "\\" in value:
        raise InvalidValueError(field, value, "a backslash is not allowed (it separates values)")
    groups = value.split("=")
    if len(groups) > 3:
        raise InvalidValueError(
            field, value, f"{len(groups)} component groups; at most 3 are allowed"
        )
    for group in groups:
        if len(group) > 64:
            raise InvalidValueError(
                field, value, f"a component group has {len(group)} characters; at most 64"
            )
        if group.count("^") > 4:
            raise InvalidValueError(
                field, value, "more than 5 components (Family^Given^Middle^Prefix^Suffix)"
            )
    return value


def check_ui(value: object, field: str = "UID") -> str:
    """A UID: up to 64 characters, digits and dots, no leading zero in a component."""
    if not isinstance(value, str):
        raise InvalidValueError(field, value, "expected a string")
    if len(value) > 64:
        raise InvalidValueError(field, value, f"{len(value)} characters; at most 64 are allowed")
    if not _UI.fullmatch(value):
        raise InvalidValueError(
            field,
            value,
            "expected digits separated by dots, without leading zeros (e.g. 1.2.840.10008)",
        )
    return value


def check_da(value: object, field: str = "date") -> str:
    """A Date: ``YYYYMMDD``, a real calendar date."""
    if not isinstance(value, str) or len(value) != 8 or not value.isdigit():
        raise InvalidValueError(field, value, "expected a date as YYYYMMDD")
    try:
        _dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError as exc:
        raise InvalidValueError(field, value, f"not a calendar date ({exc})") from exc
    return value


def check_tm(value: object, field: str = "time") -> str:
    """A Time: ``HH``, ``HHMM``, ``HHMMSS`` or ``HHMMSS.FFFFFF``."""
    if not isinstance(value, str) or not _TM.fullmatch(value):
        raise InvalidValueError(field, value, "expected a time as HHMMSS (or HHMMSS.FFFFFF)")
    return value


def check_charset(value: object, field: str = "character set") -> str:
    """A Specific Character Set: one defined term, or several separated by ``\\``."""
    if not isinstance(value, str):
        raise InvalidValueError(field, value, "expected a string")
    terms = value.split("\\")
    for term in terms:
        if term and term not in CHARSETS:
            raise InvalidValueError(
                field,
                value,
                f"{term!r} is not a defined term (e.g. ISO_IR 100, ISO_IR 192, ISO 2022 IR 87)",
            )
    if len(terms) > 1 and any(t and not t.startswith("ISO 2022") for t in terms):
        raise InvalidValueError(
            field, value, "several values are allowed only for ISO 2022 (code extension) sets"
        )
    if not any(terms):
        raise InvalidValueError(field, value, "expected at least one defined term")
    return value


def parse_tag(value: object, field: str = "tag") -> BaseTag:
    """A data element tag from a keyword (``Modality``) or a number (``0008,0060``)."""
    if not isinstance(value, str):
        raise InvalidValueError(field, value, "expected a keyword or gggg,eeee")
    match = _TAG_NUMBER.fullmatch(value.strip())
    if match:
        tag = Tag(int(match.group(1), 16), int(match.group(2), 16))
        if not tag.is_private and not dictionary_has_tag(tag):
            raise InvalidValueError(field, value, "not a tag of the DICOM data dictionary")
    else:
        # pydicom maps the empty keyword to a real tag, so blank text is refused here.
        number = tag_for_keyword(value.strip()) if value.strip() else None
        if number is None:
            raise InvalidValueError(
                field, value, "not a DICOM keyword (e.g. Modality) or tag number (e.g. 0008,0060)"
            )
        tag = Tag(number)
    if tag.group in (0x0000, 0xFFFE):
        raise InvalidValueError(
            field, value, "a command or item delimitation tag, not a data element"
        )
    return tag


def check_tag(value: object, field: str = "tag") -> str:
    """A tag written as a keyword or ``gggg,eeee``; returned as written."""
    parse_tag(value, field)
    return str(value)


def tag_label(tag: BaseTag) -> str:
    """``(0008,0060) Modality`` for messages."""
    keyword = keyword_for_tag(tag)
    return f"({tag.group:04X},{tag.element:04X}){' ' + keyword if keyword else ''}"


def validator(check: Callable[[object, str], Any]) -> Callable[[Any, Any, Any], None]:
    """An attrs validator that runs ``check`` on non-``None`` values, naming the field."""

    def _validate(_instance: Any, attribute: Any, value: Any) -> None:
        if value is not None:
            check(value, attribute.name)

    return _validate
