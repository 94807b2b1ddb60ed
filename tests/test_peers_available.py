"""The external peers the interop tests rely on are installed and are the right programs.

Under ``CI=true`` a missing tool fails here, loudly, instead of silently skipping every interop
test; elsewhere these tests skip with the install command.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests._peers import Dciodvfy, Dcmdump, DcmdumpError, find_dcmtk, is_dcmtk, require_tool

pytestmark = pytest.mark.interop


def test_dcmdump_is_dcmtk() -> None:
    path = require_tool("dcmdump")
    assert is_dcmtk(path)
    version = subprocess.run(
        [str(path), "--version"], capture_output=True, text=True, check=True, timeout=15
    ).stdout
    assert "dcmtk" in version.lower()


@pytest.mark.parametrize("name", ["storescp", "storescu", "echoscu", "findscu"])
def test_dcmtk_network_tools_are_not_pynetdicom_apps(name: str) -> None:
    # pynetdicom installs scripts with these names ahead of DCMTK's on PATH.
    path = require_tool(name)
    assert is_dcmtk(path), f"{path} is not DCMTK's {name}"


def test_find_dcmtk_rejects_unknown_names() -> None:
    assert find_dcmtk("no-such-dcmtk-tool") is None


def test_dcmdump_reads_a_file(tmp_path: Path, img2dcm_path: Path, dcmdump: Dcmdump) -> None:
    dicom = _tiny_dicom(tmp_path, img2dcm_path)
    dump = dcmdump(dicom)
    assert "(0008,0016) UI =SecondaryCaptureImageStorage" in dump


def test_dcmdump_raises_on_a_broken_file(tmp_path: Path, dcmdump: Dcmdump) -> None:
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not dicom at all")
    with pytest.raises(DcmdumpError, match=r"dcmdump .*broken\.dcm failed"):
        dcmdump(broken)


def test_dciodvfy_runs_and_reports(tmp_path: Path, img2dcm_path: Path, dciodvfy: Dciodvfy) -> None:
    dicom = _tiny_dicom(tmp_path, img2dcm_path)
    result = dciodvfy(dicom)
    # dciodvfy names the IOD it recognised; img2dcm's output is a Secondary Capture image.
    assert "SCImage" in result.output
    assert all(line.startswith("Error") for line in result.errors)
    assert all(line.startswith("Warning") for line in result.warnings)


def test_dciodvfy_reports_errors_for_garbage(tmp_path: Path, dciodvfy: Dciodvfy) -> None:
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\0" * 256)
    assert dciodvfy(garbage).errors


def _tiny_dicom(tmp_path: Path, img2dcm: Path) -> Path:
    from PIL import Image

    jpeg = tmp_path / "tiny.jpg"
    Image.new("RGB", (16, 8), (200, 30, 10)).save(jpeg, quality=90)
    out = tmp_path / "tiny.dcm"
    subprocess.run([str(img2dcm), str(jpeg), str(out)], check=True, capture_output=True, timeout=60)
    return out


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_tool_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no-such-peer-tool not found"):
        require_tool("no-such-peer-tool")
