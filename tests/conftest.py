"""Shared fixtures: external validators (dciodvfy, dcmdump, img2dcm) and pydicom strictness.

Helpers for finding tools live in ``tests/_peers.py``: ``from tests._peers import require_tool``,
and the fixture types for annotations: ``from tests._peers import Dciodvfy, Dcmdump``. (Import
them as ``tests._peers`` only, never as ``_peers``, so that there is one module and one
``DcmdumpError`` class.) A test that uses an external-tool fixture is marked ``interop``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pydicom.config
import pytest

from tests._peers import (
    Dciodvfy,
    DciodvfyResult,
    Dcmdump,
    pydicom_writes_raise,
    require_tool,
    run_dciodvfy,
    run_dcmdump,
)

#: Fixtures that run an external tool; tests using them get the ``interop`` marker.
INTEROP_FIXTURES: Final = frozenset({"dciodvfy", "dcmdump", "img2dcm_path"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use an external-tool fixture as ``interop``."""
    for item in items:
        if INTEROP_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session")
def dciodvfy() -> Dciodvfy:
    """Validate a file with dicom3tools' ``dciodvfy``; look at ``.errors`` and ``.warnings``."""
    executable = require_tool("dciodvfy")

    def run(path: str | os.PathLike[str], /) -> DciodvfyResult:
        return run_dciodvfy(executable, path)

    return run


@pytest.fixture(scope="session")
def dcmdump() -> Dcmdump:
    """Dump a file with DCMTK's ``dcmdump``; raises ``DcmdumpError`` if DCMTK reports errors."""
    executable = require_tool("dcmdump")

    def run(path: str | os.PathLike[str], /, *options: str) -> str:
        return run_dcmdump(executable, path, *options)

    return run


@pytest.fixture(scope="session")
def img2dcm_path() -> Path:
    """The path of DCMTK's ``img2dcm``."""
    return require_tool("img2dcm")


@pytest.fixture
def pydicom_raise() -> Iterator[None]:
    """Make pydicom raise on invalid values when reading and writing; restore afterwards."""
    settings = pydicom.config.settings
    writing, reading = settings.writing_validation_mode, settings.reading_validation_mode
    settings.writing_validation_mode = pydicom.config.RAISE
    settings.reading_validation_mode = pydicom.config.RAISE
    try:
        yield
    finally:
        settings.writing_validation_mode = writing
        settings.reading_validation_mode = reading


#: The conversion tests: every Secondary Capture and PDF object they make (the core's, and
#: the test helpers') is written with pydicom raising on an invalid value.
CONVERSION_TEST_MODULES: Final = frozenset(
    {
        "tests/core/test_convert.py",
        "tests/core/test_video_iod.py",
        "tests/adapters/test_cli.py",
        "tests/network/test_additional_info_values.py",
    }
)


@pytest.fixture
def pydicom_write_raise() -> Iterator[None]:
    """pydicom raises on an invalid value set or written (``pydicom_writes_raise``)."""
    with pydicom_writes_raise():
        yield


@pytest.fixture(autouse=True)
def _conversion_tests_write_under_raise(request: pytest.FixtureRequest) -> Iterator[None]:
    """Apply :func:`pydicom_write_raise` to the tests of :data:`CONVERSION_TEST_MODULES`."""
    module = Path(str(request.node.path)).resolve()
    root = Path(__file__).resolve().parent.parent
    if module.is_relative_to(root) and module.relative_to(root).as_posix() in (
        CONVERSION_TEST_MODULES
    ):
        with pydicom_writes_raise():
            yield
    else:
        yield


#: Loggers whose level the command's logging set-up changes (tests call ``main`` in-process).
_CONFIGURED_LOGGERS: Final = ("pynetdicom", "pydicom", "pylibjpeg", "openjpeg", "rle", "pypdf")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what ``sendtopacs_adapters._logging.configure`` did in a test: logger levels, the
    root handlers and level, and warnings capture, so that no test depends on another's."""
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in _CONFIGURED_LOGGERS}
    handlers, root_level = list(root.handlers), root.level
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(root_level)
    logging.captureWarnings(False)
