"""The sections of ``settings.json`` (``main``, ``non_dicom``, ``dicom``) and their checks.

Each section is a frozen attrs class whose attribute names are the keys of its JSON object.
Its converters normalise what the JSON gives (text stripped, lists made tuples, paths made
:class:`~pathlib.Path`) and its validators reject invalid values with an
:class:`~sendtopacs_core.errors.InvalidValueError` naming the key. Reading and writing JSON,
and the wording of errors, belong to :mod:`sendtopacs_core.settings`, which re-exports every
name here; this module does not know cattrs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
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
    Device,
    ImageTransferSyntax,
    SopClassRule,
    TagPattern,
    VideoFormat,
    WorklistDevice,
)
from sendtopacs_core.monitor import MonitorRule
from sendtopacs_core.tags import compile_file_name_pattern

__all__ = [
    "DEFAULT_SOP_CLASS_RULES",
    "VIDEO_EXTENSIONS",
    "DicomSettings",
    "MainSettings",
    "NonDicomSettings",
    "check_devices",
    "check_monitors",
    "pick_device",
    "to_devices",
    "to_monitors",
    "to_worklist_devices",
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
        follow_modality=True,
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


def _check_optional_port(_instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidValueError(attribute.name, value, "a TCP port is 1 to 65535, or null")


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


def _check_file_name_pattern(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidValueError(attribute.name, value, "expected text")
    try:
        compile_file_name_pattern(value)
    except ValueError as exc:
        raise InvalidValueError(attribute.name, value, str(exc)) from exc


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
        Leave successfully sent files out of the file list (``sendtopacs watch --list``, and
        the web app's list); off, they are listed as sent until the journal forgets them.
    listen_port
        Our port for incoming associations such as storage commitment reports; ``None``: none.
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
    listen_port: int | None = attrs.field(default=None, validator=_check_optional_port)


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
        The values offered for the additional info; a typed value not in the list is refused
        (:meth:`check_additional_info`, at the start of every conversion). Empty means free
        text.
    additional_info_default
        The additional info used when none is given (one of the values, if any are set).
    worklist_only
        Take patient and study data only from a worklist, never typed in.
    parse_file_name
        Search the worklist with what the file name says (e.g. the patient ID).
    file_name_pattern
        How a file name is read when ``parse_file_name`` is on: text with the fields
        ``{patient_id}``, ``{accession_number}``, ``{patient_name}``, ``{date}``,
        ``{requested_procedure_id}``, and ``*`` for anything (e.g. ``{patient_id}_*``).
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
    file_name_pattern: str = attrs.field(
        default="{patient_id}_*", converter=_strip, validator=_check_file_name_pattern
    )

    def check_additional_info(self, value: str | None) -> None:
        """Refuse a typed additional info that is not one of ``additional_info_values``.

        Empty ``additional_info_values`` means free text: every value passes, as does none.

        Raises
        ------
        InvalidValueError
            ``value`` is not in the list (the error names it and the allowed values).
        """
        if value is None or not self.additional_info_values:
            return
        if value not in self.additional_info_values:
            allowed = ", ".join(repr(item) for item in self.additional_info_values)
            raise InvalidValueError(
                "additional info",
                value,
                f"not one of the values of non_dicom.additional_info_values: {allowed}",
            )

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


# -- devices and monitors (their checks across the whole settings) --------------------------

_AnyDevice = TypeVar("_AnyDevice", Device, WorklistDevice)


def to_devices(value: Iterable[Device]) -> tuple[Device, ...]:
    return tuple(value)


def to_worklist_devices(value: Iterable[WorklistDevice]) -> tuple[WorklistDevice, ...]:
    return tuple(value)


def pick_device(
    devices: tuple[_AnyDevice, ...], name: str | None, what: str, section: str
) -> _AnyDevice:
    if name is not None:
        for device in devices:
            if device.name == name:
                return device
        known = ", ".join(device.label for device in devices) or "none configured"
        raise ConfigError(f"no {what} named {name!r} ({section}: {known})")
    defaults = [device for device in devices if device.default]
    if defaults:
        return defaults[0]
    if len(devices) == 1:
        return devices[0]
    if not devices:
        raise ConfigError(f"no {what} is configured (add one to the {section} section)")
    raise ConfigError(f"no {what} is the default: name one, or mark one with default: true")


def to_monitors(value: Iterable[MonitorRule]) -> tuple[MonitorRule, ...]:
    return tuple(value)


def check_monitors(instance: Any, attribute: Any, value: Any) -> None:
    names: set[str] = set()
    devices = {device.name for device in instance.devices}
    for index, monitor in enumerate(value):
        if not isinstance(monitor, MonitorRule):
            raise InvalidValueError(f"{attribute.name}[{index}]", monitor, "expected a monitor")
        if monitor.name in names:
            raise InvalidValueError(
                f"{attribute.name}[{index}].name", monitor.name, "another monitor has this name"
            )
        names.add(monitor.name)
        if monitor.device is not None and monitor.device not in devices:
            known = ", ".join(sorted(devices)) or "none configured"
            raise InvalidValueError(
                f"{attribute.name}[{index}].device",
                monitor.device,
                f"no device has this name (devices: {known})",
            )


def check_devices(_instance: Any, attribute: Any, value: Any) -> None:
    names: set[str] = set()
    defaults = 0
    for index, device in enumerate(value):
        if not isinstance(device, Device | WorklistDevice):
            raise InvalidValueError(f"{attribute.name}[{index}]", device, "expected a device")
        if device.name in names:
            raise InvalidValueError(
                f"{attribute.name}[{index}].name", device.name, "another device has this name"
            )
        names.add(device.name)
        defaults += device.default
        if defaults > 1:
            raise InvalidValueError(
                f"{attribute.name}[{index}].default", True, "only one device can be the default"
            )
