"""Domain objects: what a user says about patients, studies and conversion rules.

All are frozen attrs classes whose fields are validated on creation; change one with
:func:`attrs.evolve`. None of them holds a pydicom ``Dataset``: mapping to DICOM lives in
``iods/``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import attrs

from sendtopacs_core._vr import (
    check_cs,
    check_da,
    check_lo,
    check_pn,
    check_sh,
    check_tag,
    check_tm,
    check_ui,
    validator,
)
from sendtopacs_core.errors import InvalidValueError
from sendtopacs_core.tags import parse_template

__all__ = [
    "ConversionType",
    "ImageTransferSyntax",
    "PatientSex",
    "SopClassRule",
    "Study",
    "TagPattern",
    "VideoFormat",
]


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _strip_or_none(value: Any) -> Any:
    """Strip text; an empty string means "not given"."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


class PatientSex(StrEnum):
    """Patient's Sex (0010,0040) enumerated values."""

    M = "M"
    F = "F"
    O = "O"  # noqa: E741


class ConversionType(StrEnum):
    """Conversion Type (0008,0064) defined terms (PS3.3 C.8.6.1)."""

    DV = "DV"
    DI = "DI"
    DF = "DF"
    WSD = "WSD"
    SD = "SD"
    SI = "SI"
    DRW = "DRW"
    SYN = "SYN"


class ImageTransferSyntax(StrEnum):
    """How still images are stored.

    ``auto`` passes a baseline JPEG through unchanged and stores everything else uncompressed;
    ``explicit-le`` always stores uncompressed pixels; ``jpeg-baseline`` always stores a baseline
    JPEG (a baseline JPEG input still passes through, others are encoded at the set quality).
    """

    AUTO = "auto"
    EXPLICIT_LE = "explicit-le"
    JPEG_BASELINE = "jpeg-baseline"


class VideoFormat(StrEnum):
    """The video format setting (PS3.5 transfer syntaxes .4.100 to .4.103)."""

    AUTO = "auto"
    MPEG2_MAIN = "mpeg2-main"
    MPEG2_HIGH = "mpeg2-high"
    H264_HIGH = "h264-high"
    H264_BD = "h264-bd"


def _normalise_sex(value: Any) -> Any:
    return _strip_or_none(value.upper() if isinstance(value, str) else value)


def _check_sex(_instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and value not in PatientSex.__members__:
        raise InvalidValueError(attribute.name, value, "expected M, F or O")


@attrs.frozen(kw_only=True)
class Study:
    """The patient and study (and requested procedure) that new objects belong to.

    Every field is optional; ``None`` means unknown, and the Type 2 attributes are then written
    empty. When ``study_instance_uid`` is ``None`` one is derived from the other fields, so the
    same study data always gives the same Study Instance UID.

    Examples
    --------
    >>> Study(patient_id="12345", patient_name="Müller^Anna").patient_name
    'Müller^Anna'
    """

    patient_id: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_lo)
    )
    patient_name: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_pn)
    )
    patient_birth_date: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_da)
    )
    patient_sex: str | None = attrs.field(
        default=None,
        converter=_normalise_sex,
        validator=_check_sex,
    )
    study_instance_uid: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_ui)
    )
    study_date: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_da)
    )
    study_time: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_tm)
    )
    accession_number: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_sh)
    )
    study_id: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_sh)
    )
    study_description: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_lo)
    )
    referring_physician_name: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_pn)
    )
    requested_procedure_id: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_sh)
    )
    requested_procedure_description: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_lo)
    )
    scheduled_procedure_step_id: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_sh)
    )
    modality: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_cs)
    )
    additional_info: str | None = attrs.field(
        default=None,
        converter=_strip_or_none,
        validator=attrs.validators.optional(attrs.validators.max_len(1024)),
    )

    def identifying_parts(self) -> list[str]:
        """The values that identify this study, for deriving its UID (empty when none)."""
        fields = (
            self.patient_id,
            self.patient_name,
            self.patient_birth_date,
            self.accession_number,
            self.study_id,
            self.study_date,
            self.study_time,
            self.study_description,
            self.requested_procedure_id,
        )
        if all(value is None for value in fields):
            return []
        return [value or "" for value in fields]


def _normalise_extensions(value: Any) -> Any:
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list | tuple):
        return tuple(str(v).strip().lower().lstrip(".") for v in value if str(v).strip())
    return value


def _check_rule_name(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidValueError(attribute.name, value, "a rule needs a name")


def _check_extensions(_instance: Any, attribute: Any, value: Any) -> None:
    if not value:
        raise InvalidValueError(attribute.name, value, "at least one extension (or '*')")
    for ext in value:
        if ext != "*" and not ext.replace("_", "").replace("-", "").isalnum():
            raise InvalidValueError(
                attribute.name, ext, "an extension is letters and digits (e.g. pdf) or '*'"
            )


@attrs.frozen(kw_only=True)
class SopClassRule:
    """Which SOP class a NON-DICOM file becomes, chosen by its extension.

    Parameters
    ----------
    name
        A label, e.g. ``Secondary Capture Image Storage``.
    uid
        The SOP Class UID written into the objects.
    extensions
        Extensions without the dot (``pdf``), or ``*`` for every file.
    default
        The rule used when no other rule names the extension (it must have ``*``).
    conversion_type
        Conversion Type (0008,0064): ``WSD`` for screenshots and exports, ``SD`` for scanned
        documents, ``SI`` for scanned images...
    burned_in_annotation
        Whether the content shows patient identifiers; ``None`` means not known (PDF documents
        then say ``YES``, the safe answer).
    follow_modality
        For video: choose the SOP class from the modality instead of ``uid`` (``ES`` Video
        Endoscopic, ``GM`` Video Microscopic, anything else Video Photographic with Modality
        ``XC``). The default video rule does this.
    """

    name: str = attrs.field(converter=_strip, validator=_check_rule_name)
    uid: str = attrs.field(converter=_strip, validator=validator(check_ui))
    extensions: tuple[str, ...] = attrs.field(
        default=("*",), converter=_normalise_extensions, validator=_check_extensions
    )
    default: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    conversion_type: ConversionType = attrs.field(
        default=ConversionType.WSD, converter=ConversionType
    )
    burned_in_annotation: bool | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(bool))
    )
    follow_modality: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        if self.default and "*" not in self.extensions:
            raise InvalidValueError(
                "default",
                self.default,
                "only a rule for all files ('*') can be the default"
                f" (rule {self.name!r} names {', '.join(self.extensions)})",
            )

    def matches(self, extension: str) -> bool:
        """Whether this rule names ``extension`` explicitly (not through ``*``)."""
        return extension.lower().lstrip(".") in self.extensions


def _check_template(_instance: Any, attribute: Any, value: Any) -> None:
    parse_template(value, attribute.name)


@attrs.frozen(kw_only=True)
class TagPattern:
    """An update of one attribute, applied to the objects we create or send.

    Parameters
    ----------
    tag
        A keyword (``Modality``) or a tag number (``0008,0060``).
    value
        A template: text with ``{Keyword}`` or ``{gggg,eeee}`` placeholders replaced by the
        current values of those attributes (``{Modality} - test``); ``{{`` and ``}}`` are
        literal braces.
    only_if_empty
        Change the attribute only when its current value is empty.
    create_if_missing
        Create the attribute when the object does not have it (otherwise it is left out).
    """

    tag: str = attrs.field(converter=_strip, validator=validator(check_tag))
    value: str = attrs.field(validator=[attrs.validators.instance_of(str), _check_template])
    only_if_empty: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    create_if_missing: bool = attrs.field(
        default=False, validator=attrs.validators.instance_of(bool)
    )
