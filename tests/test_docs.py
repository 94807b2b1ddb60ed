"""The documentation: every public name has a docstring and its entry in the API reference.

The API reference (docs/reference.md) has one ``::: sendtopacs_core.NAME`` directive per public
name; ``mkdocs build --strict`` (``nox -s docs``) renders them and its hook fails the build when
a name of ``__all__`` has no anchor in the page. These tests need no docs dependencies: they
read the directives of the page and run the hook's settings reference generator.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from docs import hooks

import sendtopacs_core
from sendtopacs_core.settings import DESCRIPTIONS, Settings

DOCS = Path(__file__).parents[1] / "docs"
_DIRECTIVE = re.compile(r"^::: sendtopacs_core\.(\w+)\s*$", re.MULTILINE)


def _reference_names() -> list[str]:
    return _DIRECTIVE.findall((DOCS / hooks.REFERENCE_PAGE).read_text(encoding="utf-8"))


def test_reference_documents_every_public_name_once() -> None:
    names = _reference_names()
    assert sorted(names) == sorted(sendtopacs_core.__all__)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(set(sendtopacs_core.__all__) - {"__version__"}))
def test_public_name_has_its_own_docstring(name: str) -> None:
    obj = getattr(sendtopacs_core, name)
    assert inspect.isclass(obj) or inspect.isfunction(obj), f"{name}: not a class or function"
    # The object's own docstring, not one inherited (classes) or generated (enums, tuples).
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert doc, f"sendtopacs_core.{name} has no docstring"
    assert doc.strip() != "An enumeration."
    assert not doc.startswith(f"{name}("), f"{name}: only the generated namedtuple docstring"


def test_version_is_documented() -> None:
    """``__version__`` is a string (no docstring of its own): the reference page explains it."""
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", sendtopacs_core.__version__)  # PEP 440-like
    text = (DOCS / hooks.REFERENCE_PAGE).read_text(encoding="utf-8")
    assert "::: sendtopacs_core.__version__" in text
    assert "`__version__`" in text


def test_reference_check_finds_a_missing_name() -> None:
    every = "".join(f'<h3 id="sendtopacs_core.{name}">' for name in sendtopacs_core.__all__)
    assert hooks.missing_reference_names(every) == []
    without = every.replace('id="sendtopacs_core.Sender"', "")
    assert hooks.missing_reference_names(without) == ["Sender"]


def test_settings_reference_covers_every_key() -> None:
    keys = [row.key_path for row in hooks.settings_rows()]
    assert len(keys) == len(set(keys))
    # Every described key is in the reference, and every key that holds a value is described.
    assert set(DESCRIPTIONS) <= set(keys)
    leaves = {
        row.key_path for row in hooks.settings_rows() if not row.type.startswith("list of object")
    }
    assert {key for key in leaves if not DESCRIPTIONS.get(key)} == set()
    # The keys config show explains (one item in each list) are the keys that hold a value.
    explained = {re.sub(r"\[\d+\]", "[]", row.key_path) for row in _full_settings().explain()}
    assert explained == leaves


def test_settings_reference_is_generated_into_the_page() -> None:
    page = (DOCS / "guides" / "settings.md").read_text(encoding="utf-8")
    assert page.count(hooks.MARKER) == 1
    rendered = hooks.on_page_markdown(page)
    assert hooks.MARKER not in rendered
    for row in hooks.settings_rows():
        assert f"| `{row.key_path}` |" in rendered
    assert '| `main.ae_title` | string | `"SENDTOPACS"` |' in rendered
    assert "| `devices[].port` | integer | `required` |" in rendered


def _full_settings() -> Settings:
    """Settings with one item in every list, so that ``explain`` shows the items' keys."""
    tags = [{"tag": "Modality", "value": "OT"}]
    peer = {"ae_title": "PEER", "host": "127.0.0.1", "port": 104}
    return Settings.from_dict(
        {
            "dicom": {"update_tags": tags},
            "devices": [{"name": "pacs", **peer}],
            "worklist_devices": [{"name": "mwl", **peer}],
            "monitors": [
                {
                    "name": "inbox",
                    "directory": str(Path.cwd().resolve() / "inbox"),
                    "update_tags": tags,
                    "study": {"procedure_codes": [{"value": "1", "scheme": "L", "meaning": "m"}]},
                }
            ],
        }
    )
