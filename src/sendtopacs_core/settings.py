"""Settings: the whole ``settings.json``, loaded and written through one cattrs converter.

The file is UTF-8 JSON with one object per section (``main``, ``non_dicom``, ``dicom``) and the
``devices`` list; every section and every key is optional, and a missing file means the
defaults. Keys are the attribute names of the section classes. Anything wrong (unreadable
file, invalid JSON, a wrong type, an unknown key, an invalid value) raises
:class:`~sendtopacs_core.errors.ConfigError` naming the key path and the value, e.g.::

    settings.json: invalid value 'XXXXXXXXXXXXXXXXXXXX' @ $.main.ae_title: 20 characters; at most
    16 are allowed

Three modules share the work: ``_settings_sections`` holds the section classes and their
checks; this one holds :class:`Settings`, the converter between JSON and those classes (cattrs
is confined here) and the wording of its errors; ``_settings_help`` describes each key for
:meth:`Settings.explain`. Import the names from here: this module re-exports both.

Later sections (``worklist_devices``, ``monitors``, ``api``) are added as further
attrs fields of :class:`Settings`; the converter and :meth:`Settings.explain` handle any frozen
attrs class, so a new section needs only its class (in ``_settings_sections``), its field here
and its entries in :data:`DESCRIPTIONS` (in ``_settings_help``).
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
from typing import Any, Self

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

from sendtopacs_core._settings_api import ApiSettings
from sendtopacs_core._settings_help import DESCRIPTIONS, SettingExplanation, explain_rows
from sendtopacs_core._settings_sections import (
    DEFAULT_SOP_CLASS_RULES,
    VIDEO_EXTENSIONS,
    DicomSettings,
    MainSettings,
    NonDicomSettings,
    check_devices,
    check_monitors,
    pick_device,
    to_devices,
    to_monitors,
    to_worklist_devices,
)
from sendtopacs_core.errors import ConfigError, InvalidValueError
from sendtopacs_core.model import Device, WorklistDevice
from sendtopacs_core.monitor import MonitorRule

__all__ = [
    "DEFAULT_SOP_CLASS_RULES",
    "DESCRIPTIONS",
    "VIDEO_EXTENSIONS",
    "ApiSettings",
    "DicomSettings",
    "MainSettings",
    "NonDicomSettings",
    "SettingExplanation",
    "Settings",
    "make_converter",
]


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
    devices: tuple[Device, ...] = attrs.field(
        default=(), converter=to_devices, validator=check_devices
    )

    worklist_devices: tuple[WorklistDevice, ...] = attrs.field(
        default=(), converter=to_worklist_devices, validator=check_devices
    )
    monitors: tuple[MonitorRule, ...] = attrs.field(
        default=(), converter=to_monitors, validator=check_monitors
    )
    api: ApiSettings = attrs.field(
        factory=ApiSettings, validator=attrs.validators.instance_of(ApiSettings)
    )

    def device(self, name: str | None = None) -> Device:
        """The device called ``name``; without a name, the default device (or the only one).

        Raises
        ------
        ConfigError
            No device has that name, or no name was given and no device is the default.
        """
        return pick_device(self.devices, name, "device", "devices")

    def worklist_device(self, name: str | None = None) -> WorklistDevice:
        """The worklist device called ``name``; without a name, the default (or the only one).

        Raises
        ------
        ConfigError
            No worklist device has that name, or none was named and none is the default.
        """
        return pick_device(self.worklist_devices, name, "worklist device", "worklist_devices")

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
        return explain_rows(self.to_dict())


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
