"""The benchmarks do not rot: each one's smallest mode runs against the real peers and prints
its ratio rows; the comparison helpers pair runs, interleave them and refuse unequal sides.

The smoke runs measure nothing worth keeping (1 run on a tiny input); they check that every
benchmark still starts its peers, drives the current CLI and library, and reports a ratio for
each like-for-like comparison in the shared format of ``benchmarks/_bench.py``.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests._peers import require_tool

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"

#: One ratio row of ``_bench.comparison_table``: ... | ours s | peer s | rates | ratio | range |
RATIO_ROW = re.compile(
    r"^\| (?P<name>[^|]+) \| (?P<ours>[^|]+) \| (?P<peer>[^|]+) \| (?P<shape>[^|]+) "
    r"\| (?P<state>cold|warm) \| (?P<runs>\d+) "
    r"\| (?P<ours_s>\d+\.\d{3}) \| (?P<peer_s>\d+\.\d{3}) \| [^|]+ "
    r"\| (?P<ratio>\d+\.\d{2})x (?P<kind>rate|time) \| (?P<low>\d+\.\d{2})-(?P<high>\d+\.\d{2}) "
    r"\| (?P<ours_mib>\d+\.\d) / (?P<peer_mib>\d+\.\d) \| (?P<goal>[^|]+) \|$",
    re.MULTILINE,
)

#: benchmark -> (the peers it needs, the ratio rows its smoke mode prints, their states)
SMOKE: dict[str, tuple[tuple[str, ...], int, set[str]]] = {
    "convert": (("img2dcm",), 4, {"cold"}),
    # small: 1 vs 1, 2 vs 2 associations, 2 vs 2 processes, Nagle, pynetdicom; large (1 file): 3
    "send": (("storescp", "storescu", "echoscu"), 8, {"cold"}),
    "worklist": (("wlmscpfs", "findscu", "echoscu", "Orthanc"), 4, {"cold"}),
    "watch": (("storescp", "storescu", "echoscu"), 1, {"cold"}),
    "api": (("storescp", "echoscu"), 2, {"warm", "cold"}),
    "video": (("ffmpeg",), 2, {"cold"}),
}


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_smoke_mode_prints_its_ratio_rows(name: str, tmp_path: Path) -> None:
    tools, rows, states = SMOKE[name]
    for tool in (*tools, "time"):
        require_tool(tool)
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"bench_{name}.py"), "--smoke", "--workdir",
         str(tmp_path / "work"), "--markdown", str(tmp_path / "report.md")],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    found = list(RATIO_ROW.finditer(report))
    assert len(found) == rows, report
    assert {row["state"] for row in found} == states
    for row in found:
        assert row["runs"] == "1"  # --smoke: one run of each side
        ours_s, peer_s, ratio = float(row["ours_s"]), float(row["peer_s"]), float(row["ratio"])
        assert ours_s > 0 and peer_s > 0
        # One run: the paired ratio is the ratio of the two times, in the row's direction.
        expected = peer_s / ours_s if row["kind"] == "rate" else ours_s / peer_s
        assert ratio == pytest.approx(expected, rel=0.02, abs=0.011), row.group(0)
        assert row["low"] == row["high"] == row["ratio"]
        assert float(row["ours_mib"]) > 1 and float(row["peer_mib"]) > 0.5  # measured trees
    assert "shared with other work" in report  # the machine line says so


# --- the comparison helpers, without peers ------------------------------------------------


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("_bench")


def _side(bench: Any, label: str, walls: list[float], order: list[str], processes: int = 1) -> Any:
    def run(index: int) -> Any:
        order.append(f"{label}{index}")
        return bench.Sample(walls[index], 1024 * (index + 1))

    return bench.Side(label, processes, run)


def test_compare_interleaves_runs_and_takes_the_median_of_paired_ratios(bench: Any) -> None:
    order: list[str] = []
    # Ours is exactly twice as fast as the peer in every pair, while the machine's load
    # changes from run to run; the ratio of the medians would say otherwise (1.0 / 3.0).
    ours = _side(bench, "A", [1.0, 3.0, 0.5, 4.0, 1.5], order)
    peer = _side(bench, "B", [2.0, 6.0, 1.0, 8.0, 3.0], order)
    comparison = bench.compare(
        "t", ours, peer, runs=5, state="cold", kind="rate", amount=10, unit="files", goal=2.5
    )
    assert order == ["A0", "B0", "A1", "B1", "A2", "B2", "A3", "B3", "A4", "B4"]
    assert comparison.paired == [2.0] * 5
    assert comparison.ratio == 2.0
    assert comparison.met is False  # rate goal 2.5x
    assert comparison.peak_mib("ours") == 5.0  # the highest run, not the last
    rows = [line for line in bench.comparison_table([comparison]) if RATIO_ROW.match(line)]
    assert len(rows) == 1
    assert "| 2.00x rate | 2.00-2.00 |" in rows[0]
    assert "NOT met" in rows[0]


def test_time_ratio_and_goal_direction(bench: Any) -> None:
    order: list[str] = []
    ours = _side(bench, "A", [1.2, 1.4, 1.0], order)
    peer = _side(bench, "B", [1.0, 1.0, 1.0], order)
    comparison = bench.compare(
        "t", ours, peer, runs=3, state="warm", kind="time", amount=1, unit="files", goal=1.3
    )
    assert comparison.ratio == pytest.approx(1.2)
    assert comparison.met is True


def test_unequal_sides_are_refused(bench: Any) -> None:
    order: list[str] = []
    ours = _side(bench, "A", [1.0], order, processes=2)
    peer = _side(bench, "B", [1.0], order, processes=1)
    with pytest.raises(bench.BenchmarkError, match="unequal sides"):
        bench.compare("t", ours, peer, runs=1, state="cold", kind="rate", amount=1, unit="x")
    assert order == []  # refused before anything ran


def test_slices_cover_the_input_once_in_order(bench: Any) -> None:
    items = [Path(f"f{index}") for index in range(7)]
    parts = bench.slices(items, 3)
    assert [len(part) for part in parts] == [3, 2, 2]
    assert [item for part in parts for item in part] == items
    assert bench.slices(items[:1], 4) == [[items[0]]]
