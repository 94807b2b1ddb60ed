"""The import rules of STYLE.md section 1, checked on the source with ``ast``.

Rules (A <- B means B may import A):

- Adapters (``sendtopacs_adapters``) use the core only through ``sendtopacs_core`` itself and
  only the names in its ``__all__``; never a submodule such as ``sendtopacs_core.model``, except
  the public ``sendtopacs_core.testing``.
- Third-party packages stay where they belong: Pillow (``PIL``), ``av`` and ``pypdf`` only in
  ``sendtopacs_core/media/``; ``pynetdicom`` only in ``sendtopacs_core/net/`` and
  ``sendtopacs_core/testing/``; ``cattrs`` only in ``sendtopacs_core/settings.py``;
  ``platformdirs`` only in ``sendtopacs_adapters``; ``watchdog`` only in
  ``sendtopacs_adapters/watch.py``; ``fastapi``, ``starlette`` and ``uvicorn`` only in
  ``sendtopacs_adapters/api.py`` and ``sendtopacs_adapters/_api_security.py``.
- ``sendtopacs_core/media/`` never imports ``pydicom`` (it probes and decodes inputs only).
- The core never imports the adapters. The upper layers are used only from above: ``convert``
  by ``forward``/``journal``/``testing``; ``net`` by ``forward``/``journal``/``testing``;
  ``journal`` by ``forward``/``testing``; ``forward`` by ``testing`` (the package
  ``__init__`` may re-export any of them).
- ``net/`` uses from the core only ``errors``, ``_vr``, ``_version``, ``model``, ``uids``,
  ``identity``, ``charset``, ``tags`` and ``request_items``; except ``net/sender.py``, which
  orchestrates one send and may also use ``settings`` and ``convert`` (non-DICOM inputs are
  converted on the fly).
- A module over 600 lines says why in a ``# size: <reason>`` comment in its first 5 lines.

Every ``import`` counts, including those inside functions and ``if TYPE_CHECKING:`` blocks, and
``importlib.import_module("...")`` calls with a literal name.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import pytest

SRC: Final = Path(__file__).resolve().parents[1] / "src"
CORE: Final = "sendtopacs_core"
ADAPTERS: Final = "sendtopacs_adapters"
MAX_LINES: Final = 600
_SIZE_REASON: Final = re.compile(r"^\s*#\s*size:\s*\S")

#: Third-party top-level packages and the only places that may import them.
CONFINED: Final[dict[str, tuple[str, ...]]] = {
    "PIL": (f"{CORE}.media",),
    "av": (f"{CORE}.media",),
    "pypdf": (f"{CORE}.media",),
    "pynetdicom": (f"{CORE}.net", f"{CORE}.testing"),
    "cattrs": (f"{CORE}.settings",),
    "platformdirs": (ADAPTERS,),
    "watchdog": (f"{ADAPTERS}.watch",),
    # The HTTP API's web stack stays in the API modules (cli.py imports the API lazily).
    **dict.fromkeys(
        ("fastapi", "starlette", "uvicorn"), (f"{ADAPTERS}.api", f"{ADAPTERS}._api_security")
    ),
}

#: Packages a part of the core must never import, whatever the table above says.
FORBIDDEN: Final[dict[str, tuple[str, ...]]] = {
    f"{CORE}.media": ("pydicom",),
}

#: Upper layers of the core and the core modules that may import them (besides the package
#: ``__init__`` and the layer itself).
UPPER_LAYERS: Final[dict[str, tuple[str, ...]]] = {
    f"{CORE}.convert": (
        f"{CORE}.forward",
        f"{CORE}.journal",
        f"{CORE}.testing",
        f"{CORE}.net.sender",
    ),
    f"{CORE}.net": (f"{CORE}.forward", f"{CORE}.journal", f"{CORE}.testing"),
    f"{CORE}.journal": (f"{CORE}.forward", f"{CORE}.testing"),
    f"{CORE}.forward": (f"{CORE}.testing",),
    f"{CORE}.testing": (),
}

#: What ``net/`` may use from the core.
NET_MAY_USE: Final = tuple(
    f"{CORE}.{name}"
    for name in (
        "errors",
        "_vr",
        "_version",
        "model",
        "uids",
        "identity",
        "charset",
        "tags",
        "request_items",
    )
)
#: What ``net/sender.py`` may use besides: it converts non-DICOM inputs before sending them.
SENDER_MAY_USE: Final = (f"{CORE}.settings", f"{CORE}.convert")


@dataclasses.dataclass(frozen=True)
class Module:
    name: str
    path: Path
    source: str

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


@dataclasses.dataclass(frozen=True)
class Import:
    """One import: the module named, the names taken from it (``from m import a, b``)."""

    line: int
    module: str
    names: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Violation:
    module: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.message}"


def within(module: str, prefix: str) -> bool:
    """Whether ``module`` is ``prefix`` or inside it."""
    return module == prefix or module.startswith(prefix + ".")


def iter_modules(src: Path = SRC) -> Iterator[Module]:
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield Module(".".join(parts), path, path.read_text(encoding="utf-8"))


def _resolve_relative(module: Module, level: int, name: str | None) -> str:
    package = module.name.split(".")
    if not module.is_package:
        package = package[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, name] if name else base)


def _import_module_call(node: ast.Call) -> str | None:
    """``importlib.import_module("x")`` / ``import_module("x")`` / ``__import__("x")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in {"import_module", "__import__"} or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def iter_imports(module: Module, tree: ast.Module) -> Iterator[Import]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = (
                _resolve_relative(module, node.level, node.module)
                if node.level
                else node.module or ""
            )
            names = tuple(alias.name for alias in node.names)
            yield Import(node.lineno, target, names)
            # ``from pkg import sub`` may import the submodule ``pkg.sub``.
            if target.startswith((CORE, ADAPTERS)):
                for name in names:
                    yield Import(node.lineno, f"{target}.{name}")
        elif isinstance(node, ast.Call) and (called := _import_module_call(node)):
            yield Import(node.lineno, called)


def core_all(src: Path = SRC) -> frozenset[str]:
    """``sendtopacs_core.__all__``, read from the source without importing it."""
    tree = ast.parse((src / CORE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign) and node.value is not None
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            assert isinstance(node, ast.Assign | ast.AnnAssign)
            assert node.value is not None
            return frozenset(ast.literal_eval(node.value))
    raise AssertionError("sendtopacs_core/__init__.py has no literal __all__")


#: Public subpackages of the core that adapters may import (``sendtopacs demo`` starts the
#: test PACS of the testing plugin).
PUBLIC_SUBPACKAGES: Final = (f"{CORE}.testing",)


def _core_submodule(name: str) -> bool:
    return name.startswith(CORE + ".")


def _private_core_submodule(name: str) -> bool:
    return _core_submodule(name) and name not in PUBLIC_SUBPACKAGES


def _check_adapter(module: Module, tree: ast.Module, exported: frozenset[str]) -> list[Violation]:
    found: list[Violation] = []
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _private_core_submodule(alias.name):
                    found.append(
                        Violation(
                            module.name,
                            node.lineno,
                            f"adapters import only {CORE}, not its submodule {alias.name}",
                        )
                    )
                elif alias.name == CORE:
                    aliases.add(alias.asname or CORE)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            if node.module and _private_core_submodule(node.module):
                found.append(
                    Violation(
                        module.name,
                        node.lineno,
                        f"adapters import only {CORE}, not its submodule {node.module}",
                    )
                )
            elif node.module == CORE:
                found.extend(
                    Violation(
                        module.name,
                        node.lineno,
                        f"{alias.name} is not in {CORE}.__all__ (adapters use only the public API)",
                    )
                    for alias in node.names
                    if alias.name not in exported
                )
        elif (
            isinstance(node, ast.Call)
            and (called := _import_module_call(node))
            and _private_core_submodule(called)
        ):
            found.append(
                Violation(
                    module.name,
                    node.lineno,
                    f"adapters import only {CORE}, not its submodule {called}",
                )
            )
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr not in exported
        ):
            found.append(
                Violation(
                    module.name,
                    node.lineno,
                    f"{node.value.id}.{node.attr}: {node.attr} is not in {CORE}.__all__",
                )
            )
    return found


def _check_import(module: Module, imp: Import) -> Iterator[str]:
    top = imp.module.split(".")[0]
    allowed = CONFINED.get(top)
    if allowed is not None and not any(within(module.name, place) for place in allowed):
        yield f"{top} may be imported only in {', '.join(allowed)} (found {imp.module})"
    for place, packages in FORBIDDEN.items():
        if within(module.name, place) and top in packages:
            yield f"{place} never imports {top} (found {imp.module})"
    if within(module.name, CORE) and top == ADAPTERS:
        yield f"the core never imports the adapters (found {imp.module})"
    if within(module.name, CORE) and module.name != CORE:
        for layer, users in UPPER_LAYERS.items():
            if (
                within(imp.module, layer)
                and not within(module.name, layer)
                and not any(within(module.name, user) for user in users)
            ):
                who = ", ".join(users) or "nothing else in the core"
                yield f"{layer} is used only by {who} (found {imp.module})"
    if (
        within(module.name, f"{CORE}.net")
        and _core_submodule(imp.module)
        and not within(imp.module, f"{CORE}.net")
        and not any(within(imp.module, ok) for ok in NET_MAY_USE)
        and not (
            module.name == f"{CORE}.net.sender"
            and any(within(imp.module, ok) for ok in SENDER_MAY_USE)
        )
    ):
        yield f"{CORE}.net uses only {', '.join(NET_MAY_USE)} (found {imp.module})"


def _check_size(module: Module) -> list[Violation]:
    lines = module.source.splitlines()
    if len(lines) <= MAX_LINES or any(_SIZE_REASON.match(line) for line in lines[:5]):
        return []
    return [
        Violation(
            module.name,
            1,
            f"{len(lines)} lines (over {MAX_LINES}) without a '# size: <reason>' comment "
            "in its first 5 lines",
        )
    ]


def check_module(module: Module, exported: frozenset[str]) -> list[Violation]:
    """All rule violations in one module."""
    tree = ast.parse(module.source, filename=str(module.path))
    found = _check_size(module)
    for imp in iter_imports(module, tree):
        found.extend(Violation(module.name, imp.line, msg) for msg in _check_import(module, imp))
    if within(module.name, ADAPTERS):
        found.extend(_check_adapter(module, tree, exported))
    return sorted(set(found), key=lambda v: (v.module, v.line, v.message))


def check_source(
    name: str, source: str, *, is_package: bool = False, exported: Sequence[str] = ()
) -> list[str]:
    """Check a source string as if it were module ``name`` (for testing the checker)."""
    path = Path(*name.split("."), "__init__.py" if is_package else "")
    if not is_package:
        path = path.with_suffix(".py")
    module = Module(name, path, source)
    return [v.message for v in check_module(module, frozenset(exported))]


# --- the real tree -------------------------------------------------------------------------


def test_source_tree_is_found() -> None:
    names = {module.name for module in iter_modules()}
    assert CORE in names
    assert ADAPTERS in {name.split(".")[0] for name in names} or (SRC / ADAPTERS).is_dir()


def test_source_tree_follows_the_import_rules() -> None:
    exported = core_all()
    violations = [str(v) for module in iter_modules() for v in check_module(module, exported)]
    assert violations == [], "\n".join(violations)


# --- the checker itself ---------------------------------------------------------------------

EXPORTED: Final = ("Converter", "Study")


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("sendtopacs_adapters.cli", "from sendtopacs_core.model import Study\n", "submodule"),
        ("sendtopacs_adapters.cli", "import sendtopacs_core.convert\n", "submodule"),
        ("sendtopacs_adapters.cli", "from sendtopacs_core import _vr\n", "not in"),
        ("sendtopacs_adapters.cli", "from sendtopacs_core import Hidden\n", "not in"),
        (
            "sendtopacs_adapters.cli",
            "import sendtopacs_core as stp\nstp.model.Study()\n",
            "not in",
        ),
        (
            "sendtopacs_adapters.cli",
            "import importlib\nimportlib.import_module('sendtopacs_core.uids')\n",
            "submodule",
        ),
        ("sendtopacs_core.media.image", "import pydicom\n", "never imports pydicom"),
        (
            "sendtopacs_core.media.image",
            "def f():\n    from pydicom.uid import UID\n",
            "never imports pydicom",
        ),
        ("sendtopacs_core.iods.secondary_capture", "from PIL import Image\n", "PIL may be"),
        ("sendtopacs_core.convert", "import av\n", "av may be"),
        ("sendtopacs_core.iods.encapsulated_pdf", "import pypdf\n", "pypdf may be"),
        ("sendtopacs_core.convert", "from pynetdicom import AE\n", "pynetdicom may be"),
        ("sendtopacs_core.model", "import cattrs\n", "cattrs may be"),
        ("sendtopacs_core.settings", "import platformdirs\n", "platformdirs may be"),
        ("sendtopacs_core.convert", "import sendtopacs_adapters.cli\n", "never imports"),
        ("sendtopacs_core.media.image", "from sendtopacs_core import convert\n", "used only"),
        ("sendtopacs_core.iods._modules", "from ..net import sender\n", "used only"),
        ("sendtopacs_core.net._plan", "from sendtopacs_core.settings import S\n", "uses only"),
        (
            "sendtopacs_core.model",
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from sendtopacs_core.net.sender import Sender\n",
            "used only",
        ),
        ("sendtopacs_core.big", "x = 1\n" * 601, "601 lines"),
        ("sendtopacs_adapters.cli", "import fastapi\n", "fastapi may be"),
        ("sendtopacs_adapters._api_jobs", "from starlette import status\n", "starlette may be"),
        ("sendtopacs_core.net.sender", "import uvicorn\n", "uvicorn may be"),
    ],
)
def test_checker_finds_violations(name: str, source: str, expected: str) -> None:
    messages = check_source(name, source, exported=EXPORTED)
    assert any(expected in message for message in messages), messages


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("sendtopacs_adapters.cli", "from sendtopacs_core import Converter, Study\n"),
        ("sendtopacs_adapters.cli", "import sendtopacs_core as stp\nstp.Study()\n"),
        ("sendtopacs_adapters.cli", "import platformdirs\n"),
        ("sendtopacs_adapters.cli", "from sendtopacs_core.testing import StorageSCP\n"),
        ("sendtopacs_core.media.image", "from PIL import Image\nimport av\nimport pypdf\n"),
        ("sendtopacs_core.media.image", "from sendtopacs_core.errors import CorruptMediaError\n"),
        ("sendtopacs_core.net.sender", "import pynetdicom\nfrom sendtopacs_core import model\n"),
        ("sendtopacs_core.net.sender", "from ._association import open_association\n"),
        ("sendtopacs_core.net.sender", "from sendtopacs_core.convert import Converter\n"),
        ("sendtopacs_core.net.sender", "from sendtopacs_core.settings import Settings\n"),
        ("sendtopacs_core.testing.plugin", "from pynetdicom import AE, evt\n"),
        ("sendtopacs_core.settings", "import cattrs\n"),
        ("sendtopacs_core.forward", "from sendtopacs_core.convert import Converter\n"),
        ("sendtopacs_core.forward", "from sendtopacs_core.net.sender import Sender\n"),
        ("sendtopacs_core.iods.secondary_capture", "import pydicom\n"),
        ("sendtopacs_core.big", "# size: one table per PS3.3 module\n" + "x = 1\n" * 700),
        ("sendtopacs_core.ok", "x = 1\n" * 600),
        (
            "sendtopacs_adapters.api",
            "import fastapi\nimport uvicorn\n",
        ),
        ("sendtopacs_adapters._api_security", "from starlette.types import ASGIApp\n"),
    ],
)
def test_checker_accepts_allowed_imports(name: str, source: str) -> None:
    assert check_source(name, source, exported=EXPORTED) == []


def test_checker_resolves_relative_imports_in_packages() -> None:
    messages = check_source(
        "sendtopacs_core.media", "from ..net import sender\n", is_package=True, exported=EXPORTED
    )
    assert any("sendtopacs_core.net" in message for message in messages), messages


def test_core_all_is_read_from_source() -> None:
    assert "Study" in core_all()
