"""The distribution as users get it: ``python -m build`` makes an sdist and a wheel (the wheel
built from the sdist, so the sdist is complete), and the wheel installed with ``pip`` into a
fresh virtual environment runs ``sendtopacs --help``, ``--version``, ``python -m
sendtopacs_adapters`` and ``sendtopacs demo``, with its data files and ``py.typed`` markers.

The build and the environment are made once for the module. Dependencies come from the package
index through pip's cache, as in CI. Without the ``build`` package the tests are skipped, except
under ``CI=true``, where they fail.
"""

from __future__ import annotations

import email.parser
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs
import pytest

from tests._peers import missing_tool

pytestmark = pytest.mark.slow

ROOT: Final = Path(__file__).parents[1]
_BUILD_TIMEOUT_S: Final = 300
_INSTALL_TIMEOUT_S: Final = 600
_RUN_TIMEOUT_S: Final = 120


@attrs.frozen
class Installed:
    wheel: Path
    sdist: Path
    version: str
    venv: Path
    work: Path  # the working folder of the commands: outside the repository

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def script(self) -> Path:
        return self.venv / "bin" / "sendtopacs"

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        return _run([*argv], cwd=self.work, timeout=_RUN_TIMEOUT_S)


def _clean_env() -> dict[str, str]:
    """This environment without what would let the repository or our venv leak in."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(
    argv: Sequence[str | Path], *, cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, (
        f"{what}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    if importlib.util.find_spec("build") is None:
        missing_tool("the 'build' package is not installed (dependency group 'test')")
    base = tmp_path_factory.mktemp("packaging")
    dist = base / "dist"
    built = _run(
        [sys.executable, "-m", "build", "--outdir", dist, ROOT], cwd=base, timeout=_BUILD_TIMEOUT_S
    )
    _check(built, "python -m build")
    wheels = sorted(dist.glob("sendtopacs-*-py3-none-any.whl"))
    sdists = sorted(dist.glob("sendtopacs-*.tar.gz"))
    assert len(wheels) == 1, built.stdout
    assert len(sdists) == 1, built.stdout
    version = wheels[0].name.split("-")[1]
    assert sdists[0].name == f"sendtopacs-{version}.tar.gz"

    venv = base / "venv"
    _check(_run([sys.executable, "-m", "venv", venv], cwd=base, timeout=_RUN_TIMEOUT_S), "venv")
    pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip", "install", "--no-input"]
    pip += ["--progress-bar", "off"]
    _check(_run([*pip, wheels[0]], cwd=base, timeout=_INSTALL_TIMEOUT_S), "pip install")
    work = base / "work"
    work.mkdir()
    return Installed(wheel=wheels[0], sdist=sdists[0], version=version, venv=venv, work=work)


def test_the_version_comes_from_one_place(installed: Installed) -> None:
    """The wheel's name, the installed metadata, ``__version__`` and ``--version`` agree."""
    assert re.fullmatch(
        r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[\w.]+)?", installed.version
    )
    result = installed.run(installed.script, "--version")
    _check(result, "sendtopacs --version")
    assert result.stdout.strip() == f"sendtopacs {installed.version}"
    probe = installed.run(
        installed.python,
        "-c",
        "import importlib.metadata as m, sendtopacs_core as c; "
        "print(m.version('sendtopacs')); print(c.__version__)",
    )
    _check(probe, "version probe")
    assert probe.stdout.split() == [installed.version, installed.version]


def test_help_from_the_console_script_and_python_dash_m(installed: Installed) -> None:
    for argv in (
        (installed.script, "--help"),
        (installed.python, "-m", "sendtopacs_adapters", "--help"),
    ):
        result = installed.run(*argv)
        _check(result, " ".join(map(str, argv)))
        assert result.stdout.startswith("usage: sendtopacs")
        assert "examples:" in result.stdout
        assert "demo" in result.stdout


def test_demo_runs_from_the_installed_wheel(installed: Installed) -> None:
    result = installed.run(installed.script, "--settings", installed.work / "settings.json", "demo")
    _check(result, "sendtopacs demo")
    assert "every object arrived" in result.stdout
    assert "3 of 3 accepted" in result.stdout
    assert "Traceback" not in result.stderr


def test_the_installed_package_has_its_data_and_type_markers(installed: Installed) -> None:
    probe = installed.run(
        installed.python,
        "-c",
        "import importlib.resources as r, sendtopacs_core, sendtopacs_adapters\n"
        "core = r.files('sendtopacs_core')\n"
        "print(sendtopacs_core.__file__)\n"
        "print(len(core.joinpath('data/common_passwords.txt').read_text('utf-8').split()))\n"
        "print(core.joinpath('py.typed').is_file())\n"
        "print(r.files('sendtopacs_adapters').joinpath('py.typed').is_file())\n",
    )
    _check(probe, "package data probe")
    location, passwords, core_typed, adapters_typed = probe.stdout.split("\n")[:4]
    assert Path(location).is_relative_to(installed.venv), "imported from outside the venv"
    assert int(passwords) > 10_000
    assert core_typed == adapters_typed == "True"


def test_wheel_and_sdist_contents(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        info = f"sendtopacs-{installed.version}.dist-info"
        metadata = email.parser.Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    for name in (
        "sendtopacs_core/__init__.py",
        "sendtopacs_core/_version.py",
        "sendtopacs_core/py.typed",
        "sendtopacs_core/data/common_passwords.txt",
        "sendtopacs_core/testing/__init__.py",
        "sendtopacs_adapters/__main__.py",
        "sendtopacs_adapters/py.typed",
        f"{info}/licenses/LICENSE",
    ):
        assert name in names, f"{name} missing from the wheel"
    assert not [n for n in names if n.startswith(("tests/", "docs/", "notebooks/"))]
    assert "sendtopacs = sendtopacs_adapters.cli:run" in entry_points
    assert metadata["Name"] == "sendtopacs"
    assert metadata["Version"] == installed.version
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = set(metadata.get_all("Classifier") or [])
    assert {
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Healthcare Industry",
        "Intended Audience :: Developers",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
        "Typing :: Typed",
    } <= classifiers
    # PEP 639: the license is the License-Expression; License classifiers are deprecated.
    assert not [c for c in classifiers if c.startswith("License ::")]
    with tarfile.open(installed.sdist) as sdist:
        members = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for name in (
        "PKG-INFO",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "src/sendtopacs_core/_version.py",
        "src/sendtopacs_core/data/common_passwords.txt",
        "src/sendtopacs_core/py.typed",
        "src/sendtopacs_adapters/py.typed",
    ):
        assert name in members, f"{name} missing from the sdist"
