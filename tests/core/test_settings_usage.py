"""Every settings key is read by code that acts on it (issue 12, item 6).

The test walks the settings model (``Settings`` and every attrs class reachable from its
fields) and looks for each key's attribute name read as ``.name`` in ``src/``: outside the
settings modules (which define, validate, load and explain every key, so they say nothing
about use), or as ``self.name`` inside them (a method of the settings class that acts on it,
e.g. ``NonDicomSettings.rule_for``). A key found nowhere is a setting that does nothing:
make code act on it, or remove it.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import attrs
import pytest

from sendtopacs_core import ConfigError, Settings

SRC: Final = Path(__file__).resolve().parents[2] / "src"
#: The modules that define, validate, load, dump and explain the keys.
SETTINGS_MODULES: Final = frozenset(
    {"settings.py", "_settings_sections.py", "_settings_api.py", "_settings_help.py"}
)
#: Keys read through ``getattr`` (their name is computed, so no ``.name`` shows it), with the
#: place that reads them. Keep it empty unless such a read exists; never list a key here to
#: silence the test.
READ_THROUGH_GETATTR: Final[dict[str, str]] = {}


def _classes(annotation: Any) -> Iterator[type]:
    """The attrs classes in a field's annotation (``X``, ``X | None``, ``tuple[X, ...]``)."""
    if isinstance(annotation, type) and attrs.has(annotation):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _classes(argument)


def settings_keys() -> list[tuple[str, str]]:
    """(key path, attribute name) for every key of the model, depth first."""
    keys: list[tuple[str, str]] = []

    def walk(cls: type, prefix: str, path: tuple[type, ...]) -> None:
        hints = typing.get_type_hints(cls)
        for field in attrs.fields(cls):
            keys.append((prefix + field.name, field.name))
            for nested in _classes(hints[field.name]):
                if nested not in path:  # no model nests itself today; never loop if one does
                    walk(nested, f"{prefix}{field.name}.", (*path, nested))

    walk(Settings, "", (Settings,))
    return keys


def _sources() -> tuple[str, str]:
    """(the code outside the settings modules, the code of the settings modules)."""
    outside: list[str] = []
    inside: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        (inside if path.name in SETTINGS_MODULES else outside).append(
            path.read_text(encoding="utf-8")
        )
    return "\n".join(outside), "\n".join(inside)


def is_read(name: str, outside: str, inside: str) -> bool:
    """Whether attribute ``name`` is read (``.name`` not followed by a single ``=``)."""
    read = re.compile(rf"\.{re.escape(name)}\b(?!\s*=[^=])")
    own = re.compile(rf"\bself\.{re.escape(name)}\b(?!\s*=[^=])")
    return bool(read.search(outside) or own.search(inside))


def test_every_settings_key_is_read_by_code() -> None:
    outside, inside = _sources()
    unused = [
        key
        for key, name in settings_keys()
        if key not in READ_THROUGH_GETATTR and not is_read(name, outside, inside)
    ]
    assert unused == [], f"settings keys that no code reads (act on them or remove them): {unused}"


def test_the_walk_covers_every_section_and_nested_model() -> None:
    keys = {key for key, _name in settings_keys()}
    for key in (
        "main.clean_sent_files_from_list",
        "non_dicom.additional_info_values",
        "non_dicom.sop_class_rules.extensions",
        "dicom.update_tags.only_if_empty",
        "devices.tls.ca_file",
        "worklist_devices.timeouts.dimse_s",
        "monitors.study.procedure_codes.scheme",
        "api.auth_failures_per_minute",
    ):
        assert key in keys
    assert len(keys) > 100


def test_the_scan_finds_reads_and_misses_what_is_not_read() -> None:
    outside = "if settings.main.clean_sent_files_from_list:\n    rule.retry_count == 3\n"
    inside = "        return [r for r in self.sop_class_rules]\n        self.other = 1\n"
    assert is_read("clean_sent_files_from_list", outside, inside)
    assert is_read("retry_count", outside, inside)  # a comparison is a read
    assert is_read("sop_class_rules", outside, inside)
    assert not is_read("other", outside, inside)  # an assignment is no read
    assert not is_read("never_read_key", outside, inside)
    assert not is_read("sop_class_rules", "", "instance.sop_class_rules")  # a validator's


def test_the_allow_list_names_real_keys() -> None:
    keys = {key for key, _name in settings_keys()}
    assert set(READ_THROUGH_GETATTR) <= keys
    assert all(READ_THROUGH_GETATTR.values())  # each names the place that reads it


def test_device_description_is_shown_beside_the_name_in_device_lists() -> None:
    """``devices[].description`` acts: lists of devices show it (e.g. an unknown name)."""
    settings = Settings.from_dict(
        {
            "devices": [
                {"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 104,
                 "description": "main archive"},
                {"name": "lab", "ae_title": "LAB", "host": "127.0.0.1", "port": 105},
            ],
            "worklist_devices": [
                {"name": "mwl", "ae_title": "MWL", "host": "127.0.0.1", "port": 106,
                 "description": "radiology RIS"},
            ],
        }
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"\(devices: pacs \(main archive\), lab\)"):
        settings.device("nope")
    with pytest.raises(ConfigError, match=r"\(worklist_devices: mwl \(radiology RIS\)\)"):
        settings.worklist_device("nope")
    assert settings.worklist_devices[0].label == "mwl (radiology RIS)"
    assert settings.devices[1].label == "lab"
