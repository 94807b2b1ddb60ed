"""Finding and running the external tools the tests compare against.

The tests check our output with real tools: DCMTK (``dcmdump``, ``storescp``, ``img2dcm``...),
dicom3tools (``dciodvfy``) and Orthanc. They are system packages (``apt-get install dcmtk
dicom3tools orthanc``) that ``.ci/run`` installs.

pynetdicom installs scripts of its own named ``storescp``, ``storescu``, ``echoscu``,
``findscu``... into the virtual environment, ahead of DCMTK's on ``PATH``, so DCMTK tools are
looked up explicitly (:func:`find_dcmtk`) and recognised by their ``--version`` output.

Policy for a missing tool (:func:`require_tool`): under ``CI=true`` the test fails, because
CI installs every peer and a skip there would hide a broken install; elsewhere it is skipped
with a reason that says how to install the tool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NoReturn, Protocol

import pytest

__all__ = [
    "DCMTK_TOOLS",
    "Dciodvfy",
    "DciodvfyResult",
    "Dcmdump",
    "DcmdumpError",
    "dcmtk_env",
    "find_dcmtk",
    "find_tool",
    "in_ci",
    "is_dcmtk",
    "missing_tool",
    "pydicom_writes_raise",
    "require_tool",
    "run_dciodvfy",
    "run_dcmdump",
]

#: Directories searched for DCMTK before ``PATH`` (where the system packages put them).
_DCMTK_DIRS: Final = (Path("/usr/bin"), Path("/usr/local/bin"))

#: Extra directories searched for other tools (Debian puts ``Orthanc`` in ``/usr/sbin``).
_EXTRA_DIRS: Final = (Path("/usr/sbin"), Path("/usr/local/sbin"))

#: Tool names that belong to DCMTK; :func:`require_tool` looks these up with :func:`find_dcmtk`.
DCMTK_TOOLS: Final = frozenset(
    {
        "dcmcjpeg",
        "dcmconv",
        "dcmdjpeg",
        "dcmdump",
        "dcmodify",
        "dcmqridx",
        "dcmqrscp",
        "dcmrecv",
        "dcmsend",
        "dump2dcm",
        "echoscu",
        "findscu",
        "getscu",
        "img2dcm",
        "movescu",
        "storescp",
        "storescu",
        "wlmscpfs",
    }
)

#: The Debian package that provides a tool, for the skip/fail message.
_PACKAGES: Final = {
    "dciodvfy": "dicom3tools",
    "Orthanc": "orthanc",
    "cjpeg": "libjpeg-turbo-progs",
    "djpeg": "libjpeg-turbo-progs",
    "jpegtran": "libjpeg-turbo-progs",
}

_VERSION_TIMEOUT_S: Final = 15.0
_RUN_TIMEOUT_S: Final = 120.0


def in_ci() -> bool:
    """Whether the tests run under CI (``CI`` set to ``true``, ``1`` or ``yes``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@functools.cache
def is_dcmtk(path: Path) -> bool:
    """Whether the program at ``path`` is a DCMTK tool (its ``--version`` names DCMTK/OFFIS)."""
    try:
        proc = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            timeout=_VERSION_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    text = (proc.stdout + proc.stderr).decode("utf-8", errors="replace").lower()
    return "dcmtk" in text or "offis" in text


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _path_dirs() -> list[Path]:
    return [Path(entry) for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]


@functools.cache
def find_dcmtk(name: str) -> Path | None:
    """Find DCMTK's ``name`` (``dcmdump``, ``storescp``...), never pynetdicom's namesake.

    ``/usr/bin`` and ``/usr/local/bin`` are searched first, then ``PATH``; a candidate counts
    only if its ``--version`` output mentions DCMTK or OFFIS.
    """
    seen: set[Path] = set()
    for directory in (*_DCMTK_DIRS, *_path_dirs()):
        candidate = directory / name
        if candidate in seen or not _executable(candidate):
            continue
        seen.add(candidate)
        if is_dcmtk(candidate):
            return candidate
    return None


@functools.cache
def find_tool(name: str) -> Path | None:
    """Find a non-DCMTK tool (``dciodvfy``, ``Orthanc``, ``cjpeg``) on ``PATH`` or in sbin."""
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    for directory in _EXTRA_DIRS:
        candidate = directory / name
        if _executable(candidate):
            return candidate
    return None


def missing_tool(reason: str) -> NoReturn:
    """Fail (under CI) or skip (elsewhere) the current test because a peer is missing."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing peer is a failure)", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str) -> Path:
    """The path of tool ``name``; fails the test under CI and skips it elsewhere if missing.

    DCMTK tools (:data:`DCMTK_TOOLS`) are found with :func:`find_dcmtk`, others with
    :func:`find_tool`.
    """
    if name in DCMTK_TOOLS:
        path = find_dcmtk(name)
        package = "dcmtk"
    else:
        path = find_tool(name)
        package = _PACKAGES.get(name, name)
    if path is None:
        missing_tool(f"{name} not found; install it with: apt-get install {package}")
    return path


def dcmtk_env() -> dict[str, str]:
    """The environment to start DCMTK peers with (``TCP_NODELAY=1``, no Nagle delays)."""
    return {**os.environ, "TCP_NODELAY": "1"}


@dataclasses.dataclass(frozen=True)
class DciodvfyResult:
    """What ``dciodvfy`` said about one file.

    Attributes
    ----------
    errors
        The lines starting with ``Error``.
    warnings
        The lines starting with ``Warning``.
    output
        Everything it printed (stdout, then stderr).
    """

    errors: list[str]
    warnings: list[str]
    output: str


def run_dciodvfy(executable: Path, path: str | os.PathLike[str]) -> DciodvfyResult:
    """Run ``dciodvfy`` on ``path`` and sort its messages (its exit status means nothing)."""
    proc = subprocess.run(
        [str(executable), os.fspath(path)],
        capture_output=True,
        timeout=_RUN_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    output = (proc.stdout + proc.stderr).decode("utf-8", errors="replace")
    lines = [line.strip() for line in output.splitlines()]
    return DciodvfyResult(
        errors=[line for line in lines if line.startswith("Error")],
        warnings=[line for line in lines if line.startswith("Warning")],
        output=output,
    )


class Dciodvfy(Protocol):
    """The ``dciodvfy`` fixture: ``dciodvfy(path) -> DciodvfyResult``."""

    def __call__(self, path: str | os.PathLike[str], /) -> DciodvfyResult: ...


class Dcmdump(Protocol):
    """The ``dcmdump`` fixture: ``dcmdump(path, *options) -> str`` (raises on any error)."""

    def __call__(self, path: str | os.PathLike[str], /, *options: str) -> str: ...


class DcmdumpError(AssertionError):
    """``dcmdump`` could not read a file cleanly (non-zero exit or an ``E:`` line)."""


def run_dcmdump(executable: Path, path: str | os.PathLike[str], *options: str) -> str:
    """Run DCMTK's ``dcmdump`` on ``path`` and return its dump.

    Raises
    ------
    DcmdumpError
        If it exits with a non-zero status or reports an error (a line starting with ``E:``).
    """
    proc = subprocess.run(
        [str(executable), *options, os.fspath(path)],
        capture_output=True,
        timeout=_RUN_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    stdout = proc.stdout.decode("utf-8", errors="replace")
    stderr = proc.stderr.decode("utf-8", errors="replace")
    errors = [
        line for line in (stdout + "\n" + stderr).splitlines() if line.lstrip().startswith("E:")
    ]
    if proc.returncode != 0 or errors:
        raise DcmdumpError(
            f"dcmdump {os.fspath(path)} failed: exit status {proc.returncode}\n"
            + "\n".join(errors or stderr.splitlines()[-20:])
        )
    return stdout


@contextlib.contextmanager
def pydicom_writes_raise() -> Iterator[None]:
    """pydicom raises on an invalid value set or written inside the block, instead of
    warning; the modes before are restored afterwards.

    ``writing_validation_mode = RAISE`` covers what pydicom checks when it encodes (person
    names, character sets, unknown tags); pydicom 3 checks a value *set* on a data set with
    ``reading_validation_mode``, so that is RAISE too (only objects are made in the block).
    """
    import pydicom.config  # (pydicom loads slowly; not every test needs it)

    settings = pydicom.config.settings
    writing, reading = settings.writing_validation_mode, settings.reading_validation_mode
    settings.writing_validation_mode = pydicom.config.RAISE
    settings.reading_validation_mode = pydicom.config.RAISE
    try:
        yield
    finally:
        settings.writing_validation_mode = writing
        settings.reading_validation_mode = reading
