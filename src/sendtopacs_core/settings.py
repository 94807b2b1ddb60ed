# size: one module by design: the settings.json schema, its checks and the only cattrs converter
# (cattrs is confined here); the later sections (devices, monitors, api) may move out.
"""Settings: the whole ``settings.json``, loaded and written through one cattrs converter.

The file is UTF-8 JSON with one object per section (``main``, ``non_dicom``, ``dicom``); every
section and every key is optional, and a missing file means the defaults. Keys are the attribute
names of the section classes. Anything wrong (unreadable file, invalid JSON, a wrong type, an
unknown key, an invalid value) raises :class:`~sendtopacs_core.errors.ConfigError` naming the key
path and the value, e.g.::

    settings.json: invalid value 'XXXXXXXXXXXXXXXXXXXX' @ $.main.ae_title: 20 characters; at most
    16 are allowed

Later sections (``devices``, ``worklist_devices``, ``monitors``, ``api``) are added as further
attrs fields of :class:`Settings`; the converter and :meth:`Settings.explain` handle any frozen
attrs class, so a new section needs only its class, its field and its entries in
:data:`DESCRIPTIONS`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NamedTuple, Self

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.errors import (
    AttributeValidationNote,
    BaseValidationError,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn
from cattrs.preconf.json import make_converter as _make_json_converter
from pydicom.uid import (
    EncapsulatedPDFStorage,
    SecondaryCaptureImageStorage,
    VideoPhotographicImageStorage,
)

from sendtopacs_core._vr import (
    check_ae_title,
    check_charset,
    check_cs,
    check_lo,
    check_sh,
    check_tag,
    validator,
)
from sendtopacs_core.errors import ConfigError, InvalidValueError
from sendtopacs_core.model import (
    ConversionType,
    ImageTransferSyntax,
    SopClassRule,
    TagPattern,
    VideoFormat,
)

__all__ = [
    "DEFAULT_SOP_CLASS_RULES",
    "DESCRIPTIONS",
    "VIDEO_EXTENSIONS",
    "DicomSettings",
    "MainSettings",
    "NonDicomSettings",
    "SettingExplanation",
    "Settings",
    "make_converter",
]

#: Extensions the default video rule names.
VIDEO_EXTENSIONS: Final = (
    "mp4",
    "m4v",
    "mov",
    "mpg",
    "mpeg",
    "m2v",
    "ts",
    "m2ts",
    "mts",
    "avi",
    "mkv",
    "webm",
    "wmv",
    "3gp",
)

#: The SOP class rules of a new installation: Secondary Capture for every file (the default),
#: Encapsulated PDF for ``pdf`` and Video Photographic for the usual video extensions.
DEFAULT_SOP_CLASS_RULES: Final = (
    SopClassRule(
        name=SecondaryCaptureImageStorage.name,
        uid=str(SecondaryCaptureImageStorage),
        extensions=("*",),
        default=True,
    ),
    SopClassRule(
        name=EncapsulatedPDFStorage.name,
        uid=str(EncapsulatedPDFStorage),
        extensions=("pdf",),
        conversion_type=ConversionType.WSD,
    ),
    SopClassRule(
        name=VideoPhotographicImageStorage.name,
        uid=str(VideoPhotographicImageStorage),
        extensions=VIDEO_EXTENSIONS,
    ),
)

# -- normalising converters and validators ---------------------------------------------------


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _strip_or_none(value: Any) -> Any:
    """Strip text; an empty string means "not given"."""
    if isinstance(value, str):
        return value.strip() or None
    return value


def _to_tuple(value: Any) -> Any:
    """Accept a list where a tuple is declared (a string stays a string and is rejected)."""
    return tuple(value) if isinstance(value, list) else value


def _to_stripped_tuple(value: Any) -> Any:
    """A list or tuple of texts, each stripped (other items are left for the validator)."""
    value = _to_tuple(value)
    if isinstance(value, tuple):
        return tuple(_strip(item) for item in value)
    return value


def _to_path(value: Any) -> Any:
    return Path(value) if isinstance(value, str) and value else value


_is_bool: Final = attrs.validators.instance_of(bool)


def _check_temp_dir(_instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Path):
        raise InvalidValueError(attribute.name, value, "expected a folder path")
    if not value.is_absolute():
        raise InvalidValueError(
            attribute.name, str(value), "expected an absolute folder path (or null)"
        )


def _check_tuple(value: Any, field: str) -> tuple[Any, ...]:
    if not isinstance(value, tuple):
        raise InvalidValueError(field, value, "expected a list")
    return value


def _first_duplicate(values: tuple[str, ...]) -> tuple[int, int] | None:
    """Indices (first, repeat) of the first value that occurs twice (case-insensitive)."""
    seen: dict[str, int] = {}
    for index, value in enumerate(values):
        key = value.casefold()
        if key in seen:
            return seen[key], index
        seen[key] = index
    return None


def _check_modalities(_instance: Any, attribute: Any, value: Any) -> None:
    modalities = _check_tuple(value, attribute.name)
    if not modalities:
        raise InvalidValueError(attribute.name, [], "at least one modality (e.g. OT)")
    for index, modality in enumerate(modalities):
        field = f"{attribute.name}[{index}]"
        check_cs(modality, field)
        if not modality.strip():
            raise InvalidValueError(field, modality, "a modality cannot be empty")
    duplicate = _first_duplicate(modalities)
    if duplicate is not None:
        first, repeat = duplicate
        raise InvalidValueError(
            f"{attribute.name}[{repeat}]",
            modalities[repeat],
            f"listed twice (also {attribute.name}[{first}])",
        )


def _check_default_modality(instance: Any, attribute: Any, value: Any) -> None:
    check_cs(value, attribute.name)
    modalities = getattr(instance, "modalities", ())
    if isinstance(modalities, tuple) and value not in modalities:
        raise InvalidValueError(
            attribute.name, value, f"must be one of the modalities ({', '.join(modalities)})"
        )


def _check_rules(_instance: Any, attribute: Any, value: Any) -> None:
    name = attribute.name
    rules = _check_tuple(value, name)
    for index, rule in enumerate(rules):
        if not isinstance(rule, SopClassRule):
            raise InvalidValueError(f"{name}[{index}]", rule, "expected a SopClassRule")
    if not rules:
        raise InvalidValueError(name, [], "at least one rule, the default for '*'")
    defaults = [index for index, rule in enumerate(rules) if rule.default]
    if not defaults:
        raise InvalidValueError(
            name,
            [rule.name for rule in rules],
            "no rule is the default; set default: true on the rule for '*'",
        )
    if len(defaults) > 1:
        raise InvalidValueError(
            f"{name}[{defaults[1]}].default",
            True,
            f"only one rule can be the default ({name}[{defaults[0]}] is)",
        )
    duplicate = _first_duplicate(tuple(rule.name for rule in rules))
    if duplicate is not None:
        first, repeat = duplicate
        raise InvalidValueError(
            f"{name}[{repeat}].name",
            rules[repeat].name,
            f"rule names must be unique (also {name}[{first}])",
        )
    owner: dict[str, int] = {}
    for index, rule in enumerate(rules):
        for extension in rule.extensions:
            if extension in owner:
                raise InvalidValueError(
                    f"{name}[{index}].extensions",
                    extension,
                    f"already named by {name}[{owner[extension]}] ({rules[owner[extension]].name})",
                )
            owner[extension] = index


def _check_charset_setting(_instance: Any, attribute: Any, value: Any) -> None:
    if value != "auto":
        check_charset(value, attribute.name)


def _check_jpeg_quality(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidValueError(attribute.name, value, "expected a whole number from 1 to 100")
    if not 1 <= value <= 100:
        raise InvalidValueError(attribute.name, value, "expected a whole number from 1 to 100")


def _check_info_values(_instance: Any, attribute: Any, value: Any) -> None:
    values = _check_tuple(value, attribute.name)
    for index, text in enumerate(values):
        field = f"{attribute.name}[{index}]"
        check_lo(text, field)
        if not text.strip():
            raise InvalidValueError(field, text, "a value cannot be empty")
    duplicate = _first_duplicate(values)
    if duplicate is not None:
        first, repeat = duplicate
        raise InvalidValueError(
            f"{attribute.name}[{repeat}]",
            values[repeat],
            f"listed twice (also {attribute.name}[{first}])",
        )


def _check_info_default(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    check_lo(value, attribute.name)
    values = getattr(instance, "additional_info_values", ())
    if isinstance(values, tuple) and values and value not in values:
        raise InvalidValueError(
            attribute.name, value, "must be one of additional_info_values (or null)"
        )


def _check_info_tag(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        check_tag(value, attribute.name)
        return
    if getattr(instance, "additional_info_values", ()) or (
        getattr(instance, "additional_info_default", None) is not None
    ):
        raise InvalidValueError(
            attribute.name,
            None,
            "a tag is needed when additional_info_values or additional_info_default is set",
        )


def _check_tag_patterns(_instance: Any, attribute: Any, value: Any) -> None:
    for index, pattern in enumerate(_check_tuple(value, attribute.name)):
        if not isinstance(pattern, TagPattern):
            raise InvalidValueError(f"{attribute.name}[{index}]", pattern, "expected a TagPattern")


# -- sections --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MainSettings:
    """The ``main`` section: who we are on the network and how temporary files are kept.

    Parameters
    ----------
    institution_name
        Institution Name (0008,0080) of converted objects; ``None`` leaves it out.
    station_name
        Station Name (0008,1010) of converted objects; ``None`` leaves it out.
    ae_title
        Our AE title when sending and querying (the PACS must know it).
    temp_dir
        An absolute folder for temporary files; ``None`` means the platform default, chosen by
        the adapters.
    clean_temp_on_exit
        Remove our temporary files when the program ends.
    clean_unused_temp
        Remove each temporary file as soon as it is no longer used.
    clean_sent_files_from_list
        Drop successfully sent files from the file list.
    """

    institution_name: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_lo)
    )
    station_name: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=validator(check_sh)
    )
    ae_title: str = attrs.field(
        default="SENDTOPACS", converter=_strip, validator=validator(check_ae_title)
    )
    temp_dir: Path | None = attrs.field(default=None, converter=_to_path, validator=_check_temp_dir)
    clean_temp_on_exit: bool = attrs.field(default=True, validator=_is_bool)
    clean_unused_temp: bool = attrs.field(default=False, validator=_is_bool)
    clean_sent_files_from_list: bool = attrs.field(default=False, validator=_is_bool)


@attrs.frozen(kw_only=True)
class NonDicomSettings:
    """The ``non_dicom`` section: how photos, scans, PDFs and videos become DICOM.

    Parameters
    ----------
    modalities
        The modalities offered (each a code string such as ``OT``, ``ES``, ``XC``).
    default_modality
        The modality used when none is given; one of ``modalities``.
    sop_class_rules
        Which SOP class a file becomes, by extension; exactly one rule, for ``*``, is the
        default, and no extension is named by two rules.
    video_format
        The transfer syntax of converted videos.
    image_transfer_syntax
        How still images are stored.
    jpeg_quality
        Quality (1-100) when an image is encoded as JPEG.
    charset
        Specific Character Set of converted objects: ``auto`` (chosen from the text) or a
        defined term such as ``ISO_IR 192`` (several ``\\``-separated ISO 2022 terms allowed).
    additional_info_tag
        The attribute (keyword or ``gggg,eeee``) that receives the study's additional info.
    additional_info_values
        The values offered for the additional info; empty means free text.
    additional_info_default
        The additional info used when none is given (one of the values, if any are set).
    worklist_only
        Take patient and study data only from a worklist, never typed in.
    parse_file_name
        Search the worklist with what the file name says (e.g. the patient ID).
    """

    modalities: tuple[str, ...] = attrs.field(
        default=("OT",), converter=_to_stripped_tuple, validator=_check_modalities
    )
    default_modality: str = attrs.field(
        default="OT", converter=_strip, validator=_check_default_modality
    )
    sop_class_rules: tuple[SopClassRule, ...] = attrs.field(
        default=DEFAULT_SOP_CLASS_RULES, converter=_to_tuple, validator=_check_rules
    )
    video_format: VideoFormat = attrs.field(
        default=VideoFormat.AUTO,
        converter=VideoFormat,
        validator=attrs.validators.instance_of(VideoFormat),
    )
    image_transfer_syntax: ImageTransferSyntax = attrs.field(
        default=ImageTransferSyntax.AUTO,
        converter=ImageTransferSyntax,
        validator=attrs.validators.instance_of(ImageTransferSyntax),
    )
    jpeg_quality: int = attrs.field(default=90, validator=_check_jpeg_quality)
    charset: str = attrs.field(default="auto", converter=_strip, validator=_check_charset_setting)
    additional_info_tag: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=_check_info_tag
    )
    additional_info_values: tuple[str, ...] = attrs.field(
        default=(), converter=_to_stripped_tuple, validator=_check_info_values
    )
    additional_info_default: str | None = attrs.field(
        default=None, converter=_strip_or_none, validator=_check_info_default
    )
    worklist_only: bool = attrs.field(default=False, validator=_is_bool)
    parse_file_name: bool = attrs.field(default=False, validator=_is_bool)

    def rule_for(self, extension: str) -> SopClassRule:
        """The rule for files with ``extension`` (``pdf``, ``.PDF``, or ``""`` for none).

        A rule that names the extension wins; otherwise the default rule applies.

        Examples
        --------
        >>> NonDicomSettings().rule_for(".PDF").name
        'Encapsulated PDF Storage'
        >>> NonDicomSettings().rule_for("png").name
        'Secondary Capture Image Storage'
        """
        for rule in self.sop_class_rules:
            if rule.matches(extension):
                return rule
        return next(rule for rule in self.sop_class_rules if rule.default)


@attrs.frozen(kw_only=True)
class DicomSettings:
    """The ``dicom`` section: what happens to DICOM files before they are sent.

    Parameters
    ----------
    update_tags
        Attribute updates applied in order (see :class:`~sendtopacs_core.model.TagPattern`).
    replace_with_worklist
        Replace the patient and study data of a DICOM file with a worklist item.
    parse_dicom_for_worklist
        Search the worklist with the patient and study data read from each DICOM file.
    """

    update_tags: tuple[TagPattern, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_check_tag_patterns
    )
    replace_with_worklist: bool = attrs.field(default=False, validator=_is_bool)
    parse_dicom_for_worklist: bool = attrs.field(default=False, validator=_is_bool)


class SettingExplanation(NamedTuple):
    """One row of :meth:`Settings.explain`."""

    key_path: str
    """``main.ae_title``, ``non_dicom.sop_class_rules[0].uid``..."""
    value: str
    """The current value as JSON text."""
    description: str
    """What the key does, in one line."""


@attrs.frozen(kw_only=True)
class Settings:
    """The whole ``settings.json``.

    Examples
    --------
    >>> Settings().main.ae_title
    'SENDTOPACS'
    >>> Settings.from_dict({"main": {"ae_title": "CLINIC_A"}}).main.ae_title
    'CLINIC_A'
    """

    main: MainSettings = attrs.field(
        factory=MainSettings, validator=attrs.validators.instance_of(MainSettings)
    )
    non_dicom: NonDicomSettings = attrs.field(
        factory=NonDicomSettings, validator=attrs.validators.instance_of(NonDicomSettings)
    )
    dicom: DicomSettings = attrs.field(
        factory=DicomSettings, validator=attrs.validators.instance_of(DicomSettings)
    )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a settings file; a missing file means the defaults.

        Raises
        ------
        ConfigError
            When the file cannot be read, is not UTF-8 JSON, or holds a wrong type, an unknown
            key or an invalid value; the message names each key path and value.
        """
        file = Path(path)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the settings file: {exc.strerror or exc}", path=file
            ) from exc
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"not UTF-8 text (byte {exc.start} is {data[exc.start : exc.start + 1]!r})",
                path=file,
            ) from exc
        if not text.strip():
            raise ConfigError("the file is empty (write {} for the defaults)", path=file)
        try:
            obj = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=file
            ) from exc
        except _DuplicateKeyError as exc:
            raise ConfigError(str(exc), path=file) from exc
        except RecursionError as exc:
            raise ConfigError("invalid JSON: nested too deeply", path=file) from exc
        return cls._structure(obj, file)

    @classmethod
    def from_dict(cls, obj: object) -> Self:
        """Build settings from parsed JSON (a mapping of sections).

        Raises
        ------
        ConfigError
            As :meth:`load` does, without a file.
        """
        return cls._structure(obj, None)

    @classmethod
    def _structure(cls, obj: object, path: Path | None) -> Self:
        try:
            return _converter().structure(obj, cls)
        except (BaseValidationError, _UnexpectedTypeError) as exc:
            lines = _error_lines(exc, "$")
            message = (
                lines[0]
                if len(lines) == 1
                else f"{len(lines)} problems:\n" + "\n".join(f"  {line}" for line in lines)
            )
            raise ConfigError(message, path=path) from exc

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data, every key present (defaults included)."""
        data: dict[str, Any] = _converter().unstructure(self)
        return data

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write every key to ``path`` as pretty UTF-8 JSON, atomically.

        The text goes to a temporary file in the same folder, which then replaces ``path``, so
        a reader sees the old file or the new one, never a half-written one.

        Raises
        ------
        ConfigError
            When the file cannot be written.
        """
        file = Path(path)
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                dir=file.parent, prefix=f".{file.name}.", suffix=".tmp"
            )
            try:
                with os.fdopen(handle, "wb") as stream:
                    stream.write(text.encode("utf-8"))
                    stream.flush()
                    os.fsync(stream.fileno())
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(temporary, stat.S_IMODE(file.stat().st_mode))
                os.replace(temporary, file)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as exc:
            raise ConfigError(
                f"cannot write the settings file: {exc.strerror or exc}", path=file
            ) from exc

    def explain(self) -> list[SettingExplanation]:
        """Every key with its current value (JSON text) and what it does, in file order.

        Lists of objects are expanded per item (``non_dicom.sop_class_rules[0].uid``); an
        empty list is one row.
        """
        rows: list[SettingExplanation] = []
        _explain(self.to_dict(), "", "", rows)
        return rows


# -- descriptions ------------------------------------------------------------------------------

#: One line per key path saying what the key does; ``[]`` stands for any item of a list.
DESCRIPTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "main.institution_name": "Institution Name (0008,0080) of converted objects; "
        "null leaves it out.",
        "main.station_name": "Station Name (0008,1010) of converted objects; null leaves it out.",
        "main.ae_title": "Our AE title when sending and querying; the PACS must know it.",
        "main.temp_dir": "Absolute folder for temporary files; null uses the platform default.",
        "main.clean_temp_on_exit": "Remove our temporary files when the program ends.",
        "main.clean_unused_temp": "Remove each temporary file as soon as it is no longer used.",
        "main.clean_sent_files_from_list": "Drop successfully sent files from the file list.",
        "non_dicom.modalities": "Modalities offered for converted files (code strings: OT, ES, "
        "XC...).",
        "non_dicom.default_modality": "Modality used when none is given; one of modalities.",
        "non_dicom.sop_class_rules[].name": "A label for the rule; unique.",
        "non_dicom.sop_class_rules[].uid": "SOP Class UID of the objects the rule creates.",
        "non_dicom.sop_class_rules[].extensions": "Extensions without the dot the rule applies "
        "to; '*' means every file.",
        "non_dicom.sop_class_rules[].default": "Used for every extension no other rule names; "
        "needs '*'.",
        "non_dicom.sop_class_rules[].conversion_type": "Conversion Type (0008,0064): WSD "
        "screenshot/export, SD scanned document, SI scanned image...",
        "non_dicom.sop_class_rules[].burned_in_annotation": "Whether the content shows patient "
        "identifiers; null means not known.",
        "non_dicom.video_format": "Video transfer syntax: auto, mpeg2-main, mpeg2-high, h264-high "
        "or h264-bd.",
        "non_dicom.image_transfer_syntax": "Still images: auto (JPEG passes through, else "
        "uncompressed), explicit-le or jpeg-baseline.",
        "non_dicom.jpeg_quality": "Quality (1-100) when an image is encoded as baseline JPEG.",
        "non_dicom.charset": "Specific Character Set: auto (chosen from the text) or a defined "
        "term such as ISO_IR 192.",
        "non_dicom.additional_info_tag": "Attribute (keyword or gggg,eeee) that receives the "
        "additional info; null: none.",
        "non_dicom.additional_info_values": "Values offered for the additional info; empty "
        "means free text.",
        "non_dicom.additional_info_default": "Additional info used when none is given; one of "
        "the values if any.",
        "non_dicom.worklist_only": "Take patient and study data only from a worklist, never "
        "typed in.",
        "non_dicom.parse_file_name": "Search the worklist with what the file name says (e.g. "
        "the patient ID).",
        "dicom.update_tags": "Attribute updates applied, in order, to DICOM files before sending.",
        "dicom.update_tags[].tag": "The attribute to set: keyword (Modality) or number "
        "(0008,0060).",
        "dicom.update_tags[].value": "The new value; {Keyword} or {gggg,eeee} insert current "
        "values, {{ and }} are braces.",
        "dicom.update_tags[].only_if_empty": "Change the attribute only when its value is empty.",
        "dicom.update_tags[].create_if_missing": "Add the attribute when the file lacks it.",
        "dicom.replace_with_worklist": "Replace patient and study data of DICOM files with the "
        "worklist item.",
        "dicom.parse_dicom_for_worklist": "Search the worklist with the patient and study data "
        "of each DICOM file.",
    }
)

_INDEX: Final = re.compile(r"\[\d+\]")


def _explain(value: Any, key_path: str, prefix: str, rows: list[SettingExplanation]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _explain(item, f"{prefix}{key}", f"{prefix}{key}.", rows)
        return
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            _explain(item, f"{key_path}[{index}]", f"{key_path}[{index}].", rows)
        return
    description = DESCRIPTIONS.get(_INDEX.sub("[]", key_path), "")
    rows.append(SettingExplanation(key_path, json.dumps(value, ensure_ascii=False), description))


# -- the converter -----------------------------------------------------------------------------


class _UnexpectedTypeError(TypeError):
    """A JSON value of the wrong type (``expected int ... (found "high")``)."""

    def __init__(self, expected: str, found: object) -> None:
        super().__init__(f"expected {expected}, found {found!r}")
        self.expected = expected
        self.found = found


class _DuplicateKeyError(ValueError):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(
                f"duplicate key {key!r} (a JSON object must name each key once)"
            )
        result[key] = value
    return result


def _structure_str(value: Any, _type: Any) -> str:
    if not isinstance(value, str):
        raise _UnexpectedTypeError("str", value)
    return value


def _structure_int(value: Any, _type: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _UnexpectedTypeError("int", value)
    return value


def _structure_bool(value: Any, _type: Any) -> bool:
    if not isinstance(value, bool):
        raise _UnexpectedTypeError("bool (true or false)", value)
    return value


def _structure_path(value: Any, _type: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise _UnexpectedTypeError("a path as a non-empty string", value)
    return Path(value)


def _structure_enum(value: Any, type_: type[StrEnum]) -> StrEnum:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return type_(value)
    choices = ", ".join(member.value for member in type_)
    raise _UnexpectedTypeError(f"one of {choices}", value)


def _is_homogeneous_tuple(type_: Any) -> bool:
    args: tuple[Any, ...] = getattr(type_, "__args__", ())
    return getattr(type_, "__origin__", None) is tuple and len(args) == 2 and args[1] is ...


def _tuple_hook_factory(
    type_: Any, converter: cattrs.Converter
) -> Callable[[Any, Any], tuple[Any, ...]]:
    structure_items = homogenous_tuple_structure_factory(type_, converter)

    def structure_tuple(value: Any, _type: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _UnexpectedTypeError("a list", value)
        result: tuple[Any, ...] = structure_items(value, type_)
        return result

    return structure_tuple


def _attrs_hook_factory(type_: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    attrs.resolve_types(type_)
    structure_fields = make_dict_structure_fn(type_, converter)

    def structure_object(value: Any, _type: Any) -> Any:
        if not isinstance(value, dict):
            raise _UnexpectedTypeError("an object", value)
        try:
            return structure_fields(value, type_)
        except ClassValidationError as exc:
            raise _with_field_errors(exc, converter, type_, value) from exc

    return structure_object


def _with_field_errors(
    exc: ClassValidationError, converter: cattrs.Converter, type_: Any, obj: dict[str, Any]
) -> ClassValidationError:
    """``exc`` plus an error for every field whose validator fails.

    attrs stops at the first failing validator, and cattrs does not construct the object at
    all when a field has the wrong type or a key is unknown; so every validator is run here on
    its own against the fields that could be structured, and all problems are reported.
    """
    named, plain = exc.group_exceptions()
    failed = {note.name for _sub, note in named}
    constructed = not named and not any(isinstance(e, ForbiddenExtraKeysError) for e in plain)
    errors = _field_errors(converter, type_, obj, failed)
    if constructed:
        # The class refused its well-typed fields: ``plain`` holds what __init__ raised, which
        # ``errors`` repeats with its key unless it came from a check across the whole object.
        return ClassValidationError(exc.message, errors or [_noted(plain[0], type_)], type_)
    return ClassValidationError(exc.message, [*exc.exceptions, *errors], type_)


class _UnavailableFieldError(Exception):
    """A validator read a field that could not be structured; its verdict is unknown."""


class _Fields:
    """Stands in for the instance while validators run one by one."""

    def __init__(self, values: Mapping[str, Any], failed: set[str]) -> None:
        self.__dict__.update(values)
        self._failed = failed  # shared: a field whose validator fails is added

    def fail(self, name: str) -> None:
        self.__dict__.pop(name, None)
        self._failed.add(name)

    def __getattr__(self, name: str) -> Any:
        if name in self._failed:
            raise _UnavailableFieldError(name)
        raise AttributeError(name)


def _field_errors(
    converter: cattrs.Converter, type_: Any, obj: Mapping[str, Any], failed: set[str]
) -> list[Exception]:
    fields = attrs.fields(type_)
    values: dict[str, Any] = {}
    errors: list[Exception] = []
    failed = set(failed)
    for field in fields:
        if field.name in failed:
            continue
        if field.name in obj:
            try:
                value = converter.structure(obj[field.name], field.type)
                if callable(field.converter):
                    value = field.converter(value)
            except (ValueError, TypeError) as exc:
                failed.add(field.name)
                errors.append(_as_invalid_value(exc, field.name, obj[field.name], type_))
                continue
        elif field.default is attrs.NOTHING:
            failed.add(field.name)
            continue
        else:
            factory = getattr(field.default, "factory", None)
            value = factory() if callable(factory) else field.default
        values[field.name] = value
    instance = _Fields(values, failed)
    for field in fields:
        if field.validator is None or field.name in failed:
            continue
        try:
            field.validator(instance, field, values[field.name])
        except _UnavailableFieldError:
            continue
        except (ValueError, TypeError) as exc:
            errors.append(_as_invalid_value(exc, field.name, values[field.name], type_))
            instance.fail(field.name)  # checks of later fields must not judge by this value
    return errors


def _as_invalid_value(exc: Exception, name: str, value: object, type_: Any) -> Exception:
    error = exc if isinstance(exc, InvalidValueError) else InvalidValueError(name, value, str(exc))
    return _noted(error, type_, name)


def _noted(exc: Exception, type_: Any, name: str | None = None) -> Exception:
    """Attach the key an :class:`InvalidValueError` is about, as cattrs does for fields."""
    key = name
    if isinstance(exc, InvalidValueError):
        names = {field.name for field in attrs.fields(type_)}
        head = re.split(r"[.\[]", exc.field, maxsplit=1)[0]
        if head in names and (name is None or head == name):
            key = exc.field
    if key is not None:
        exc.__notes__ = [
            *getattr(exc, "__notes__", []),
            AttributeValidationNote(f"Validating {type_.__qualname__} @ {key}", key, None),
        ]
    return exc


def make_converter() -> cattrs.Converter:
    """The converter between :class:`Settings` and JSON data (a new one on every call).

    It follows the cattrs json preconf recipe, forbids unknown keys, and is strict about JSON
    types: ``"90"`` is not an int, ``1`` is not a bool, a string is not a list. Paths are
    strings, enums their values, tuples lists. Objects whose validators fail are re-checked
    field by field, so that every invalid field is reported with its key.
    """
    converter = _make_json_converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(Path, _structure_path)
    converter.register_structure_hook(StrEnum, _structure_enum)
    converter.register_structure_hook_factory(_is_homogeneous_tuple, _tuple_hook_factory)
    converter.register_structure_hook_factory(attrs.has, _attrs_hook_factory)
    converter.register_unstructure_hook(Path, str)
    converter.register_unstructure_hook(StrEnum, lambda member: member.value)
    converter.register_unstructure_hook_factory(
        _is_homogeneous_tuple,
        lambda type_: _tuple_unstructure_hook(converter, type_.__args__[0]),
    )
    return converter


def _tuple_unstructure_hook(
    converter: cattrs.Converter, item_type: Any
) -> Callable[[tuple[Any, ...]], list[Any]]:
    def unstructure_tuple(value: tuple[Any, ...]) -> list[Any]:
        return [converter.unstructure(item, unstructure_as=item_type) for item in value]

    return unstructure_tuple


@functools.cache
def _converter() -> cattrs.Converter:
    return make_converter()


# -- error messages ----------------------------------------------------------------------------


def _error_lines(exc: BaseException, path: str) -> list[str]:
    """One ``what @ key path`` line per problem, walking the cattrs exception groups.

    This follows :func:`cattrs.transform_error` (``.name`` for attributes, ``[index]`` for list
    items) but words each line itself, and also places the errors raised by validators, which
    carry the key in a note added by ``_noted``.
    """
    lines: list[str] = []
    if isinstance(exc, IterableValidationError):
        indexed, plain = exc.group_exceptions()
        for sub, index_note in indexed:
            lines += _error_lines(sub, f"{path}[{index_note.index!r}]")
    elif isinstance(exc, ClassValidationError):
        named, plain = exc.group_exceptions()
        for sub, name_note in named:
            if isinstance(sub, KeyError):
                lines.append(f"missing key {name_note.name!r} @ {path}")
            else:
                lines += _error_lines(sub, f"{path}.{name_note.name}")
    else:
        return _leaf_lines(exc, path)
    for sub in plain:
        lines += _error_lines(sub, path)
    return lines


def _leaf_lines(exc: BaseException, path: str) -> list[str]:
    if isinstance(exc, ForbiddenExtraKeysError):
        return _unknown_key_lines(exc, path)
    if isinstance(exc, _UnexpectedTypeError):
        return [f"expected {exc.expected} @ {path} (found {_json(exc.found)})"]
    if isinstance(exc, InvalidValueError):
        return [f"invalid value {_show(exc.value)} @ {path}: {exc.reason}"]
    if isinstance(exc, KeyError):
        return [f"missing key {exc.args[0]!r} @ {path}"]
    return [f"invalid value @ {path}: {exc}"]


def _unknown_key_lines(exc: ForbiddenExtraKeysError, path: str) -> list[str]:
    import difflib  # noqa: PLC0415  (only needed for typos)

    known = [field.name for field in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
    lines = []
    for key in sorted(exc.extra_fields, key=str):
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        lines.append(f"unknown key {key!r} @ {path}{hint}")
    return lines


def _json(value: object) -> str:
    """A found value as JSON on one line (invisible characters escaped), shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    text = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
    return text if len(text) <= 80 else text[:77] + "..."


def _show(value: object) -> str:
    """A value as the user wrote it: text quoted, lists in brackets, JSON literals."""
    if isinstance(value, StrEnum):
        return repr(value.value)
    if isinstance(value, str | Path):
        return repr(str(value))
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return repr(value)
