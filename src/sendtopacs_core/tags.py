"""Tag update patterns: ``{Modality} - test`` templates and their application to a dataset."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import attrs
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from sendtopacs_core._vr import parse_tag, tag_label
from sendtopacs_core.errors import InvalidValueError

if TYPE_CHECKING:
    from sendtopacs_core.model import TagPattern

__all__ = [
    "FILE_NAME_FIELDS",
    "Template",
    "apply_tag_patterns",
    "compile_file_name_pattern",
    "parse_template",
]

#: VRs whose value a text template can set.
_TEXT_VRS: Final = frozenset(
    {
        "AE",
        "AS",
        "CS",
        "DA",
        "DS",
        "DT",
        "IS",
        "LO",
        "LT",
        "PN",
        "SH",
        "ST",
        "TM",
        "UC",
        "UI",
        "UR",
        "UT",
    }
)


@attrs.frozen
class Template:
    """A parsed template: literal text and tags, in order."""

    parts: tuple[str | BaseTag, ...]

    def render(self, dataset: Dataset) -> str:
        """The text with each placeholder replaced by the dataset's value (empty if absent)."""
        return "".join(
            part if isinstance(part, str) else _value_text(dataset, part) for part in self.parts
        )


def _value_text(dataset: Dataset, tag: BaseTag) -> str:
    if tag not in dataset:
        return ""
    value = dataset[tag].value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


def parse_template(text: object, field: str = "value") -> Template:
    """Parse a template such as ``{Modality} - test`` or ``{0008,0060} - test``."""
    if not isinstance(text, str):
        raise InvalidValueError(field, text, "expected a text template")
    parts: list[str | BaseTag] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "{}" and text[i : i + 2] in ("{{", "}}"):
            literal.append(char)
            i += 2
            continue
        if char == "}":
            raise InvalidValueError(field, text, "a '}' without its '{' (write '}}' for a brace)")
        if char == "{":
            end = text.find("}", i)
            if end < 0:
                raise InvalidValueError(field, text, "a '{' without its '}'")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(parse_tag(text[i + 1 : end], field))
            i = end + 1
            continue
        literal.append(char)
        i += 1
    if literal:
        parts.append("".join(literal))
    return Template(tuple(parts))


def apply_tag_patterns(dataset: Dataset, patterns: Iterable[TagPattern]) -> list[str]:
    """Apply update patterns in order; return a line for each attribute changed.

    Placeholders read the values as they were *before* any pattern was applied, so the order
    of patterns does not change what a template sees.

    Raises
    ------
    InvalidValueError
        When a pattern targets an attribute that cannot hold text (a sequence, pixel data) or
        the rendered value is not valid for the attribute's VR.
    """
    original = Dataset()
    original.update(dataset)
    changes: list[str] = []
    for pattern in patterns:
        tag = parse_tag(pattern.tag)
        label = tag_label(tag)
        present = tag in dataset
        if not present and not pattern.create_if_missing:
            continue
        current = _value_text(dataset, tag) if present else ""
        if pattern.only_if_empty and current:
            continue
        vr = dataset[tag].VR if present else _dictionary_vr(tag, label)
        if vr not in _TEXT_VRS:
            raise InvalidValueError(
                "tag pattern", pattern.tag, f"{label} has VR {vr}; only text attributes can be set"
            )
        value = parse_template(pattern.value).render(original)
        _check_rendered(vr, value, label)
        if "\\" in value and vr not in ("LT", "ST", "UT"):
            dataset.add_new(tag, vr, value.split("\\"))
        else:
            dataset.add_new(tag, vr, value)
        changes.append(f"{label} set by pattern")
    return changes


def _dictionary_vr(tag: BaseTag, label: str) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError as exc:
        raise InvalidValueError(
            "tag pattern", label, "a private tag must exist in the object to be updated"
        ) from exc


def _check_rendered(vr: str, value: str, label: str) -> None:
    from pydicom import config  # noqa: PLC0415
    from pydicom.valuerep import validate_value  # noqa: PLC0415

    for single in value.split("\\") if vr not in ("LT", "ST", "UT") else [value]:
        try:
            validate_value(vr, single, config.RAISE)
        except ValueError as exc:
            raise InvalidValueError(label, value, f"not a valid {vr} value: {exc}") from exc


#: The fields a file name pattern may name (``non_dicom.file_name_pattern``).
FILE_NAME_FIELDS: Final = (
    "patient_id",
    "accession_number",
    "patient_name",
    "date",
    "requested_procedure_id",
)
_FILE_NAME_FIELD: Final = re.compile(r"\{(\w+)\}")


def compile_file_name_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a file name pattern (matched against the name's stem).

    Raises
    ------
    ValueError
        An unknown field, a field named twice, or no field at all.
    """
    fields = _FILE_NAME_FIELD.findall(pattern)
    unknown = sorted(set(fields) - set(FILE_NAME_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown field {{{unknown[0]}}} (fields: "
            + ", ".join(f"{{{name}}}" for name in FILE_NAME_FIELDS)
            + ")"
        )
    if len(fields) != len(set(fields)):
        raise ValueError("a field may appear only once")
    if not fields:
        raise ValueError("the pattern names no field, e.g. {patient_id}_*")
    parts: list[str] = []
    position = 0
    for match in _FILE_NAME_FIELD.finditer(pattern):
        parts.append(_literal(pattern[position : match.start()]))
        following = pattern[match.end() : match.end() + 1]
        if match.group(1) == "date":
            body = r"\d{8}"
        elif following in ("", "*"):
            # Nothing fixed follows: the field runs to the next _ or . (greedy), so that
            # "{accession_number}*" reads "ACC7_photo" as ACC7, not as A.
            body = r"[^_.]+"
        else:
            body = ".+?"  # up to the text that follows it
        parts.append(f"(?P<{match.group(1)}>{body})")
        position = match.end()
    parts.append(_literal(pattern[position:]))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _literal(text: str) -> str:
    return ".*".join(re.escape(piece) for piece in text.split("*"))
