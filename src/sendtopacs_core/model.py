# size: the domain objects and their checks in one place, as STYLE.md section 1 lays out
"""Domain objects: what a user says about patients, studies, conversion rules and devices.

All are frozen attrs classes whose fields are validated on creation; change one with
:func:`attrs.evolve`. None of them holds a pydicom ``Dataset``: mapping to DICOM lives in
``iods/``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import attrs

from sendtopacs_core._vr import (
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
    validator,
)
from sendtopacs_core.errors import InvalidValueError
from sendtopacs_core.tags import parse_template

__all__ = [
    "MAX_CONTEXTS",
    "Code",
    "ConversionType",
    "Device",
    "FillMode",
    "ImageTransferSyntax",
    "PatientSex",
    "QueryLevel",
    "QueryModel",
    "SopClassRule",
    "Study",
    "TagPattern",
    "Timeouts",
    "TlsOptions",
    "VideoFormat",
    "WorklistDevice",
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


def _is_bool(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidValueError(attribute.name, value, "true or false")


def _check_code_part(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidValueError(attribute.name, value, "expected text")
    if attribute.name != "meaning" and not value:
        raise InvalidValueError(attribute.name, value, "a code needs a value and a scheme")
    check_lo(value, attribute.name) if attribute.name == "meaning" else check_sh(
        value, attribute.name
    )


@attrs.frozen(kw_only=True)
class Code:
    """A coded concept (PS3.3 8.8): Code Value, Coding Scheme Designator, Code Meaning.

    Examples
    --------
    >>> Code(value="CTHEAD", scheme="99LOCAL", meaning="CT Head").value
    'CTHEAD'
    """

    value: str = attrs.field(converter=_strip, validator=_check_code_part)
    scheme: str = attrs.field(converter=_strip, validator=_check_code_part)
    meaning: str = attrs.field(default="", converter=_strip, validator=_check_code_part)


def _to_codes(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def _check_codes(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(code, Code) for code in value):
        raise InvalidValueError(attribute.name, value, "expected a list of codes")


@attrs.frozen(kw_only=True)
class Study:
    """The patient and study (and requested procedure) that new objects belong to.

    Every field is optional; ``None`` means unknown, and the Type 2 attributes are then written
    empty. When ``study_instance_uid`` is ``None`` one is derived from every other field (and
    the day, without an accession number or study date; see :mod:`sendtopacs_core.identity`),
    so the same study data always gives the same Study Instance UID.

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
    procedure_codes: tuple[Code, ...] = attrs.field(
        default=(), converter=_to_codes, validator=_check_codes
    )
    modality: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_cs)
    )
    additional_info: str | None = attrs.field(
        default=None,
        converter=_strip_or_none,
        validator=attrs.validators.optional(attrs.validators.max_len(1024)),
    )
    from_worklist: bool = attrs.field(default=False, validator=_is_bool)
    """Whether the data came from a worklist item (``non_dicom.worklist_only`` requires it)."""


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


# -- devices (the ``devices`` settings) ------------------------------------------------------------

#: Presentation contexts one association may carry (PS3.8 9.3.2.2: IDs 1-255, odd only).
MAX_CONTEXTS: Final = 128
_MAX_PARALLEL: Final = 16


def _to_path(value: Any) -> Any:
    return Path(value) if isinstance(value, str) and value else value


def _check_name(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidValueError(attribute.name, value, "a name is required")
    if len(value) > 64 or not value.isprintable():
        raise InvalidValueError(
            attribute.name, value, "at most 64 printable characters are allowed"
        )


def _check_host(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidValueError(attribute.name, value, "a host name or IP address is required")
    if any(c.isspace() or not c.isprintable() for c in value) or len(value) > 253:
        raise InvalidValueError(attribute.name, value, "not a host name or IP address")


def _check_port(_instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidValueError(attribute.name, value, "a TCP port is 1 to 65535")


def _check_count(low: int, high: int | None) -> Any:
    def check(_instance: Any, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValueError(attribute.name, value, "a whole number is required")
        if value < low or (high is not None and value > high):
            upper = f" to {high}" if high is not None else " or more"
            raise InvalidValueError(attribute.name, value, f"must be {low}{upper}")

    return check


def _check_seconds(_instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86_400:
        raise InvalidValueError(attribute.name, value, "seconds: more than 0, at most 86400")


def _to_float(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _to_enum(kind: type[StrEnum], value: Any) -> Any:
    """Text to the enum member; anything else is left for the validator to name."""
    try:
        return kind(value)
    except ValueError:
        return value


def _is_enum(kind: type[StrEnum]) -> Any:
    def check(_instance: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, kind):
            choices = ", ".join(member.value for member in kind)
            raise InvalidValueError(attribute.name, value, f"one of {choices}")

    return check


def _check_file(_instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and not isinstance(value, Path):
        raise InvalidValueError(attribute.name, value, "a file path is required")


@attrs.frozen(kw_only=True)
class Timeouts:
    """Network timeouts in seconds (pynetdicom's connection, ACSE, DIMSE and network).

    Parameters
    ----------
    connect_s
        Opening the TCP connection (and the TLS handshake).
    acse_s
        Waiting for the association to be accepted, rejected or released.
    dimse_s
        Waiting for the answer to a request (C-ECHO, C-STORE...).
    network_s
        Silence on an open association before it is aborted.
    """

    connect_s: float = attrs.field(default=10.0, converter=_to_float, validator=_check_seconds)
    acse_s: float = attrs.field(default=30.0, converter=_to_float, validator=_check_seconds)
    dimse_s: float = attrs.field(default=60.0, converter=_to_float, validator=_check_seconds)
    network_s: float = attrs.field(default=60.0, converter=_to_float, validator=_check_seconds)


def _check_tls(instance: Any, attribute: Any, value: Any) -> None:
    if (instance.cert_file is None) != (instance.key_file is None):
        raise InvalidValueError(
            attribute.name, value, "a client certificate needs both cert_file and key_file"
        )


@attrs.frozen(kw_only=True)
class TlsOptions:
    """DICOM TLS (PS3.15 B.1) towards a device.

    Parameters
    ----------
    enabled
        Connect with TLS.
    ca_file
        PEM file of the certificate authorities that may sign the server's certificate;
        ``None`` uses the system's trusted authorities.
    cert_file, key_file
        PEM files of our client certificate and its key, when the server asks for one.
    verify
        Check the server's certificate and its host name (on by default; turning it off
        allows any server to pose as the PACS).
    server_name
        The name the server's certificate must carry, when it is not ``host``.
    """

    enabled: bool = attrs.field(default=False, validator=_is_bool)
    ca_file: Path | None = attrs.field(default=None, converter=_to_path, validator=_check_file)
    cert_file: Path | None = attrs.field(default=None, converter=_to_path, validator=_check_file)
    key_file: Path | None = attrs.field(
        default=None, converter=_to_path, validator=[_check_file, _check_tls]
    )
    verify: bool = attrs.field(default=True, validator=_is_bool)
    server_name: str | None = attrs.field(default=None, converter=_strip)


@attrs.frozen(kw_only=True)
class Device:
    """A PACS or other storage SCP we send to.

    Parameters
    ----------
    name
        Unique name; what ``--to NAME`` and monitors refer to.
    ae_title
        The device's AE title (our calling AE title is ``main.ae_title``).
    host, port
        Where it listens.
    description
        Free text shown beside the name in lists of devices (:attr:`label`).
    charset
        Specific Character Set (0008,0005) the copies we send are encoded in (e.g. ``ISO_IR
        192``); ``None`` keeps each file's own.
    decompress
        Always send uncompressed (Explicit VR Little Endian), decompressing lossy sources too.
    default
        The device used when none is named; at most one device is the default.
    files_per_association
        Files sent over one association before it is released and a new one opened (the
        "File send count"); 0 means no limit.
    parallel_associations
        Associations used at the same time for one send (1 to 16).
    tls
        DICOM TLS options.
    timeouts
        Network timeouts.
    storage_commitment
        Ask the device for Storage Commitment (PS3.4 J) after sending, and treat a file as
        kept only when the device commits to it (a C-STORE Success alone is no proof).
    commitment_timeout_s
        Seconds to wait for the storage commitment report (N-EVENT-REPORT).
    """

    name: str = attrs.field(converter=_strip, validator=_check_name)
    ae_title: str = attrs.field(converter=_strip, validator=validator(check_ae_title))
    host: str = attrs.field(converter=_strip, validator=_check_host)
    port: int = attrs.field(validator=_check_port)
    description: str = attrs.field(default="", converter=_strip)
    charset: str | None = attrs.field(
        default=None, converter=_strip, validator=validator(check_charset)
    )
    decompress: bool = attrs.field(default=False, validator=_is_bool)
    default: bool = attrs.field(default=False, validator=_is_bool)
    files_per_association: int = attrs.field(default=0, validator=_check_count(0, None))
    parallel_associations: int = attrs.field(default=1, validator=_check_count(1, _MAX_PARALLEL))
    tls: TlsOptions = attrs.field(factory=TlsOptions)
    timeouts: Timeouts = attrs.field(factory=Timeouts)
    storage_commitment: bool = attrs.field(default=False, validator=_is_bool)
    commitment_timeout_s: float = attrs.field(
        default=60.0, converter=_to_float, validator=_check_seconds
    )

    @property
    def label(self) -> str:
        """The name as lists of devices show it: with the description, when there is one."""
        return f"{self.name} ({self.description})" if self.description else self.name


class QueryModel(StrEnum):
    """Which C-FIND information model a worklist device is searched with."""

    WORKLIST = "worklist"
    """Modality Worklist Information Model - FIND (PS3.4 K)."""
    PATIENT = "patient"
    """Patient Root Query/Retrieve Information Model - FIND."""
    STUDY = "study"
    """Study Root Query/Retrieve Information Model - FIND."""
    PATIENT_STUDY = "patient_study"
    """Patient/Study Only Query/Retrieve Information Model - FIND (retired, still served)."""


class QueryLevel(StrEnum):
    """The Query/Retrieve Level of a Q/R search."""

    PATIENT = "patient"
    STUDY = "study"


class FillMode(StrEnum):
    """How a search key is filled from what is known (a file's header, a typed value)."""

    OFF = "off"
    """Not used."""
    EXACT = "exact"
    """Matched as it is."""
    WILDCARD = "wildcard"
    """Matched as a prefix (``value*``)."""


def _to_query_model(value: Any) -> Any:
    return _to_enum(QueryModel, value)


def _to_query_level(value: Any) -> Any:
    return _to_enum(QueryLevel, value)


def _to_fill_mode(value: Any) -> Any:
    return _to_enum(FillMode, value)


@attrs.frozen(kw_only=True)
class WorklistDevice:
    """A Modality Worklist or Query/Retrieve provider, with its default search parameters.

    Parameters
    ----------
    name, ae_title, host, port, description, default, tls, timeouts
        As for :class:`Device`.
    charset
        The character set of answers that carry no Specific Character Set (0008,0005): some
        servers omit it and send Latin-1 or UTF-8 anyway; ``None`` guesses (UTF-8 if the bytes
        are valid UTF-8, else Latin-1).
    modality
        Default Modality key of worklist searches (e.g. ``ES``); ``None``: any.
    scheduled_ae_title
        Default Scheduled Station AE Title key; ``None``: any.
    root_model
        The information model searched: worklist, patient, study or patient_study.
    model_level
        The Q/R level (patient or study) when the model is not the worklist.
    fill_patient_id, fill_patient_name
        How a DICOM file's Patient ID / Patient's Name become search keys (off, exact,
        wildcard) when a worklist item is looked up for it.
    use_today
        Search the worklist for today's scheduled steps unless a date is given.
    """

    name: str = attrs.field(converter=_strip, validator=_check_name)
    ae_title: str = attrs.field(converter=_strip, validator=validator(check_ae_title))
    host: str = attrs.field(converter=_strip, validator=_check_host)
    port: int = attrs.field(validator=_check_port)
    description: str = attrs.field(default="", converter=_strip)
    charset: str | None = attrs.field(
        default=None, converter=_strip, validator=validator(check_charset)
    )
    default: bool = attrs.field(default=False, validator=_is_bool)
    modality: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_cs)
    )
    scheduled_ae_title: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_ae_title)
    )
    root_model: QueryModel = attrs.field(
        default=QueryModel.WORKLIST, converter=_to_query_model, validator=_is_enum(QueryModel)
    )
    model_level: QueryLevel = attrs.field(
        default=QueryLevel.STUDY, converter=_to_query_level, validator=_is_enum(QueryLevel)
    )
    fill_patient_id: FillMode = attrs.field(
        default=FillMode.EXACT, converter=_to_fill_mode, validator=_is_enum(FillMode)
    )
    fill_patient_name: FillMode = attrs.field(
        default=FillMode.OFF, converter=_to_fill_mode, validator=_is_enum(FillMode)
    )
    use_today: bool = attrs.field(default=True, validator=_is_bool)
    tls: TlsOptions = attrs.field(factory=TlsOptions)
    timeouts: Timeouts = attrs.field(factory=Timeouts)

    @property
    def label(self) -> str:
        """The name as lists of devices show it: with the description, when there is one."""
        return f"{self.name} ({self.description})" if self.description else self.name
