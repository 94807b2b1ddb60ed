"""The public API of ``sendtopacs_core``: a sorted, complete, documented ``__all__``.

Like httpx ``tests/test_exported_members.py``: what users reach through ``import
sendtopacs_core as stp`` is exactly ``__all__``, every name there exists and is documented,
every exception of the tree is exported, and the classes that appear in public signatures are
exported too (a user must be able to name what they pass and get back).
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Iterator
from typing import Any

import pytest

import sendtopacs_core
from sendtopacs_core import SendToPacsError, SendToPacsWarning, errors

PACKAGE = sendtopacs_core.__name__


def _exported() -> list[tuple[str, Any]]:
    return [(name, getattr(sendtopacs_core, name)) for name in sendtopacs_core.__all__]


def _ours(obj: object) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _public_members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties defined in ``cls`` itself (not inherited, not dunder)."""
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, classmethod | staticmethod):
            yield name, member.__func__
        elif isinstance(member, property):
            yield name, member.fget
        elif inspect.isfunction(member):
            yield name, member


def _all_subclasses(cls: type) -> Iterator[type]:
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        yield sub
        yield from _all_subclasses(sub)


def test_all_is_sorted() -> None:
    assert list(sendtopacs_core.__all__) == sorted(sendtopacs_core.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(set(sendtopacs_core.__all__)) == len(sendtopacs_core.__all__)


def test_every_name_in_all_exists() -> None:
    missing = [name for name in sendtopacs_core.__all__ if not hasattr(sendtopacs_core, name)]
    assert missing == []


def test_version_is_exported() -> None:
    assert "__version__" in sendtopacs_core.__all__
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", sendtopacs_core.__version__)  # PEP 440-like


def test_module_has_a_docstring() -> None:
    assert (sendtopacs_core.__doc__ or "").strip()


@pytest.mark.parametrize(
    ("name", "obj"),
    [(n, o) for n, o in _exported() if inspect.isclass(o) or inspect.isfunction(o)],
)
def test_public_classes_and_functions_are_documented(name: str, obj: Any) -> None:
    assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
    if inspect.isclass(obj):
        undocumented = [
            f"{name}.{member_name}"
            for member_name, member in _public_members(obj)
            if member is not None and not (member.__doc__ or "").strip()
        ]
        assert undocumented == [], f"public members without a docstring: {undocumented}"


def test_every_exception_of_the_tree_is_exported() -> None:
    # STYLE.md section 8: errors.py holds the whole tree; subclasses defined elsewhere and
    # loaded by importing the package count too.
    exported = set(sendtopacs_core.__all__)
    classes = {
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, SendToPacsError | SendToPacsWarning)
    }
    classes |= set(_all_subclasses(SendToPacsError)) | set(_all_subclasses(SendToPacsWarning))
    missing = sorted(
        cls.__name__
        for cls in classes
        if _ours(cls) and not cls.__name__.startswith("_") and cls.__name__ not in exported
    )
    assert missing == [], f"exceptions/warnings not in sendtopacs_core.__all__: {missing}"


def _hints(obj: Any) -> dict[str, Any]:
    """Resolved annotations of ``obj``; names the module hides behind TYPE_CHECKING are
    looked up in the package namespace; what still cannot be resolved is left out."""
    try:
        return typing.get_type_hints(obj)
    except NameError:
        pass
    try:
        return typing.get_type_hints(obj, localns=vars(sendtopacs_core))
    except NameError:
        return {}


def _classes_in(annotation: Any) -> Iterator[type]:
    if isinstance(annotation, type):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _classes_in(arg)


def _signature_objects() -> Iterator[tuple[str, Any]]:
    for name, obj in _exported():
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj) and _ours(obj):
            yield name, obj
            init = vars(obj).get("__init__")
            if inspect.isfunction(init):
                yield f"{name}.__init__", init
            for member_name, member in _public_members(obj):
                if member is not None:
                    yield f"{name}.{member_name}", member


def test_classes_in_public_signatures_are_exported() -> None:
    exported = set(sendtopacs_core.__all__)
    missing: set[str] = set()
    for where, obj in _signature_objects():
        for annotation in _hints(obj).values():
            missing.update(
                f"{cls.__module__}.{cls.__qualname__} (used by {where})"
                for cls in _classes_in(annotation)
                if _ours(cls) and not cls.__name__.startswith("_") and cls.__name__ not in exported
            )
    assert sorted(missing) == []
