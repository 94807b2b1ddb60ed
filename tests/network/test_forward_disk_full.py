"""R10 (reduced): the failed folder on a full 2 MB tmpfs. The file is not lost, the cause is
logged once however many passes run, and the file moves once space is freed."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sendtopacs_core import FileState
from sendtopacs_core.testing.plugin import StorageSCPFactory
from tests._netpeers import write_secondary_capture
from tests._peers import missing_tool
from tests.network.test_forward import FakeClock, _rig


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (needs root: CI runs as root)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0:
        missing_tool("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        missing_tool(f"cannot mount a tmpfs: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler.bin"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_failed_folder_on_a_full_disk(
    tmp_path: Path,
    small_tmpfs: Path,
    storage_scp_factory: StorageSCPFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scp = storage_scp_factory(status_for=lambda _instance: 0xA900)  # always refused
    clock = FakeClock()
    rig = _rig(
        tmp_path,
        scp.port,
        clock=clock,
        failed_dir=small_tmpfs / "failed",
        retry_timeout_s=10,
    )
    path = rig.directory / "refused.dcm"
    write_secondary_capture(path)
    filler = _fill(small_tmpfs)
    with caplog.at_level(logging.ERROR, logger="sendtopacs_core.forward"):
        for _ in range(4):
            rig.step()
            assert path.exists()  # never lost
            assert rig.state("refused.dcm") is FileState.PENDING
            clock.now += 11
    errors = [r for r in caplog.records if "cannot move failed files" in r.getMessage()]
    assert len(errors) == 1  # no log flood
    filler.unlink()
    rig.step()
    assert not path.exists()
    reasons = list((small_tmpfs / "failed").rglob("refused.dcm_reason.txt"))
    assert len(reasons) == 1
    assert "0xA900" in reasons[0].read_text(encoding="utf-8")
    assert rig.state("refused.dcm") is FileState.FAILED
