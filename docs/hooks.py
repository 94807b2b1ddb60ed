"""MkDocs hooks (``hooks:`` in mkdocs.yml): generated pages and checks of the built site.

- The settings reference: the marker ``<!-- settings-reference -->`` in a page is replaced by
  one table per section of ``settings.json``, generated from the attrs classes of
  :class:`sendtopacs_core.Settings` (every key, its JSON type and default) and
  :data:`sendtopacs_core.settings.DESCRIPTIONS` (what it does). Nothing in it is typed by hand.
- The API reference: the built ``reference.md`` must document every name of
  ``sendtopacs_core.__all__``; a missing one is a warning, which ``mkdocs build --strict``
  turns into a failed build.

The hooks do not import mkdocs (its objects are only passed in), so the module type-checks
and its generator runs in the tests without the docs dependencies.
"""

from __future__ import annotations

import json
import logging
import pathlib
import types
import typing
from enum import Enum
from typing import Any, Final

import attrs

import sendtopacs_core
from sendtopacs_core.settings import DESCRIPTIONS, Settings, make_converter

__all__ = [
    "MARKER",
    "REFERENCE_PAGE",
    "SettingRow",
    "missing_reference_names",
    "on_page_content",
    "on_page_markdown",
    "settings_reference",
    "settings_rows",
]

#: Where a page gets the generated settings reference.
MARKER: Final = "<!-- settings-reference -->"
#: The page holding the API reference (``::: sendtopacs_core.NAME`` for each public name).
REFERENCE_PAGE: Final = "reference.md"

# MkDocs counts warnings of every logger under "mkdocs"; --strict fails the build on them.
_LOGGER = logging.getLogger("mkdocs.hooks.sendtopacs")


@attrs.frozen
class SettingRow:
    """One key of ``settings.json`` in the reference."""

    key_path: str
    """``main.ae_title``, ``devices[].tls.verify``: ``[]`` stands for any item of a list."""
    type: str
    """The JSON type, e.g. ``string or null``, ``list of object``."""
    default: str
    """The default as JSON text, or ``required`` (items of lists only)."""
    description: str
    """The line of ``DESCRIPTIONS`` for the key."""


#: JSON names of the scalar types of settings fields, most specific first (bool is an int).
_SCALARS: Final[tuple[tuple[type, str], ...]] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (pathlib.PurePath, "string (path)"),
    (str, "string"),
)


def _json_type(annotation: Any) -> str:
    """The JSON spelling of a field's (resolved) type annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [_json_type(arg) for arg in args if arg is not type(None)]
        nullable = " or null" if type(None) in args else ""
        return " or ".join(parts) + nullable
    if origin is tuple:
        return f"list of {_json_type(args[0])}"
    if not isinstance(annotation, type):
        return str(annotation)
    if issubclass(annotation, Enum):
        return "string: " + ", ".join(str(member.value) for member in annotation)
    if attrs.has(annotation):
        return "object"
    return next(
        (name for cls, name in _SCALARS if issubclass(annotation, cls)), annotation.__name__
    )


def _item_class(annotation: Any) -> type | None:
    """The attrs class of a field holding one object or a list of objects (else ``None``)."""
    if typing.get_origin(annotation) is tuple:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and attrs.has(annotation):
        return annotation
    return None


def _default(field: attrs.Attribute[Any]) -> Any:
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]  # Factory is a class
        return default.factory()
    return default


def _rows(cls: type, prefix: str, defaults: Any, rows: list[SettingRow]) -> None:
    """Append the rows of the attrs class ``cls``; ``defaults`` is its unstructured default."""
    attrs.resolve_types(cls)
    converter = make_converter()
    for field in attrs.fields(cls):
        key_path = f"{prefix}{field.name}"
        if isinstance(defaults, dict):
            value = defaults[field.name]
        else:
            default = _default(field)
            value = default if default is attrs.NOTHING else converter.unstructure(default)
        text = "required" if value is attrs.NOTHING else json.dumps(value, ensure_ascii=False)
        item = _item_class(field.type)
        is_list = typing.get_origin(field.type) is tuple
        if item is None or is_list:
            rows.append(
                SettingRow(key_path, _json_type(field.type), text, DESCRIPTIONS.get(key_path, ""))
            )
        if item is not None:
            nested_defaults = None if is_list or value is attrs.NOTHING else value
            _rows(item, f"{key_path}[]." if is_list else f"{key_path}.", nested_defaults, rows)


def settings_rows() -> list[SettingRow]:
    """Every key of ``settings.json`` in file order, with its type, default and description.

    A section is an object (``main``) or a list of objects (``devices``); the keys of a list's
    items are written ``devices[].host``, and their defaults are those of a new item.
    """
    rows: list[SettingRow] = []
    defaults = Settings().to_dict()
    attrs.resolve_types(Settings)
    for field in attrs.fields(Settings):
        item = _item_class(field.type)
        if item is None:
            raise TypeError(f"settings section {field.name} is not an attrs class")
        if typing.get_origin(field.type) is tuple:
            rows.append(
                SettingRow(
                    field.name,
                    _json_type(field.type),
                    json.dumps(defaults[field.name], ensure_ascii=False),
                    DESCRIPTIONS.get(field.name, ""),
                )
            )
            _rows(item, f"{field.name}[].", None, rows)
        else:
            _rows(item, f"{field.name}.", defaults[field.name], rows)
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


#: Defaults longer than this are shown in full after their table, not in it.
_LONG_DEFAULT: Final = 60


def settings_reference() -> str:
    """The Markdown of the settings reference: one section and table per settings section."""
    lines: list[str] = []
    long_defaults: list[SettingRow] = []
    section = ""

    def close_section() -> None:
        for row in long_defaults:
            text = json.dumps(json.loads(row.default), indent=2, ensure_ascii=False)
            lines.extend(["", f"Default of `{row.key_path}`:", "", "```json", text, "```"])
        long_defaults.clear()

    for row in settings_rows():
        name = row.key_path.split(".")[0].removesuffix("[]")
        if name != section:
            close_section()
            section = name
            lines += [
                "",
                f"### `{section}`",
                "",
                "| Key | Type | Default | Description |",
                "| --- | --- | --- | --- |",
            ]
        default = f"`{_cell(row.default)}`"
        if len(row.default) > _LONG_DEFAULT:
            long_defaults.append(row)
            default = "(below)"
        lines.append(
            f"| `{row.key_path}` | {_cell(row.type)} | {default} | {_cell(row.description)} |"
        )
    close_section()
    return "\n".join(lines).lstrip("\n") + "\n"


def missing_reference_names(html: str) -> list[str]:
    """The names of ``sendtopacs_core.__all__`` without their anchor in the reference's HTML."""
    return [name for name in sendtopacs_core.__all__ if f'id="sendtopacs_core.{name}"' not in html]


def on_page_markdown(markdown: str, /, **kwargs: Any) -> str:
    """MkDocs hook: put the generated settings reference where the marker stands."""
    if MARKER in markdown:
        return markdown.replace(MARKER, settings_reference())
    return markdown


def on_page_content(html: str, /, *, page: Any, **kwargs: Any) -> str:
    """MkDocs hook: warn (an error with ``--strict``) when the API reference misses a name."""
    if page.file.src_uri == REFERENCE_PAGE:
        for name in missing_reference_names(html):
            _LOGGER.warning("%s does not document sendtopacs_core.%s", REFERENCE_PAGE, name)
    return html
