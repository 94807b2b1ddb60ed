"""What every benchmark shares: like-for-like comparisons, measured process trees, one report.

A *comparison* sets one side of ours against one side of the best peer doing the same work:

- the same number of processes (or associations) on both sides: 1 against 1, or N parallel
  processes against N parallel peer processes, each on its own slice of the input;
- the same state: cold (every run starts fresh processes, start-up included) or warm (both
  sides are processes that are already running and have done the work once);
- ``--runs`` runs (default 5), interleaved A B A B, so that the load of the machine (shared
  with other work) hits both sides alike; the ratio is the median of the per-run ratios of
  each pair (its range is printed too), the times are medians;
- the peak RSS of each side's process tree (:func:`run_streams`).

Every report prints one *ratio row* per comparison (:func:`comparison_table`), in the same
format in every benchmark, so that ``tests/test_benchmarks.py`` can check them all.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final, Literal

#: Where the DCMTK system packages put their tools; pynetdicom's scripts shadow some on PATH.
DCMTK_DIRS: Final = (Path("/usr/bin"), Path("/usr/local/bin"))
#: GNU time: the peak RSS of each measured stream (``%M``).
TIME: Final = Path("/usr/bin/time")
DEFAULT_RUNS: Final = 5
CALLED_AET: Final = "STORESCP"
CALLING_AET: Final = "SENDTOPACS"
NO_SETTINGS: Final = "no-settings.json"  # a settings file that does not exist means defaults

Kind = Literal["rate", "time"]
State = Literal["cold", "warm"]


class BenchmarkError(Exception):
    """The benchmark cannot run or a measured command failed."""


# --- measuring ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sample:
    """One run of one side: its wall time and the peak RSS of its process tree (KiB)."""

    wall_s: float
    rss_kib: int


def require_time() -> Path:
    if not (TIME.is_file() and os.access(TIME, os.X_OK)):
        raise BenchmarkError("GNU time (/usr/bin/time) is missing: apt-get install time")
    return TIME


def _tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n  ".join(text)


def run_streams(
    streams: Sequence[Sequence[str]],
    log_dir: Path,
    name: str,
    *,
    env: dict[str, str] | None = None,
) -> Sample:
    """Start every stream at once, wait for all; the wall time and the tree's peak RSS.

    Each stream runs under GNU time, a small C process that reports ``%M``, the peak RSS of
    the largest process of the stream it waited for (the processes of a stream run one after
    the other, so that is the stream's own peak). The side's peak is the sum over its
    streams, an upper bound of its process tree at any moment. GNU time is in between because
    ``os.wait4`` of a child of this (large) Python process would count the address space it
    replaced at ``exec``.
    """
    time_binary = require_time()
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = [log_dir / f"{name}-{index}.log" for index in range(len(streams))]
    rss_files = [log.with_suffix(".rss") for log in logs]
    procs: list[subprocess.Popen[bytes]] = []
    outs = [log.open("wb") for log in logs]
    try:
        start = time.perf_counter()
        for argv, out, rss in zip(streams, outs, rss_files, strict=True):
            procs.append(
                subprocess.Popen(
                    [str(time_binary), "-f", "%M", "-o", str(rss), *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    env=env,
                )
            )
        codes = [proc.wait() for proc in procs]
        wall_s = time.perf_counter() - start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for out in outs:
            out.close()
    for argv, code, log in zip(streams, codes, logs, strict=True):
        if code != 0:
            raise BenchmarkError(
                f"{Path(argv[0]).name} {' '.join(argv[1:5])} ... failed with exit status "
                f"{code}:\n  {_tail(log)}"
            )
    peak = sum(int(rss.read_text(encoding="ascii").split()[-1]) for rss in rss_files)
    return Sample(wall_s, peak)


def slices(items: Sequence[Path], count: int) -> list[list[Path]]:
    """``items`` in ``count`` contiguous slices of (nearly) equal size."""
    size, extra = divmod(len(items), count)
    out, begin = [], 0
    for index in range(count):
        end = begin + size + (1 if index < extra else 0)
        out.append(list(items[begin:end]))
        begin = end
    return [part for part in out if part]


def vm_hwm_kib(pid: int) -> int:
    """The peak RSS so far of a running process (``VmHWM``), in KiB; 0 if unknown."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants that are alive now."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text(encoding="ascii").split()
                todo.extend(int(child) for child in children)
    return found


# --- comparing ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Side:
    """One side of a comparison: what runs, how many processes (and associations) at once."""

    label: str
    processes: int
    run: Callable[[int], Sample]  # the run's index -> its sample
    associations: int | None = None
    prepare: Callable[[int], None] | None = None  # before each run, not timed
    check: Callable[[int], None] | None = None  # after each run, not timed (output complete?)

    @property
    def shape(self) -> str:
        text = f"{self.processes} proc"
        if self.associations is not None:
            text += f", {self.associations} assoc"
        return text


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The runs of ours and of the peer, paired by run."""

    name: str
    ours: Side
    peer: Side
    state: State
    kind: Kind  # rate: ours/peer items per second (higher is better); time: ours/peer s
    amount: float  # items done by each run (files, MB, items...)
    unit: str
    ours_samples: tuple[Sample, ...]
    peer_samples: tuple[Sample, ...]
    goal: float | None = None  # rate: ratio >= goal; time: ratio <= goal

    @property
    def paired(self) -> list[float]:
        pairs = zip(self.ours_samples, self.peer_samples, strict=True)
        if self.kind == "rate":
            return [peer.wall_s / ours.wall_s for ours, peer in pairs]
        return [ours.wall_s / peer.wall_s for ours, peer in pairs]

    @property
    def ratio(self) -> float:
        return statistics.median(self.paired)

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.ratio >= self.goal if self.kind == "rate" else self.ratio <= self.goal

    def median_s(self, side: Literal["ours", "peer"]) -> float:
        samples = self.ours_samples if side == "ours" else self.peer_samples
        return statistics.median(sample.wall_s for sample in samples)

    def peak_mib(self, side: Literal["ours", "peer"]) -> float:
        samples = self.ours_samples if side == "ours" else self.peer_samples
        return max(sample.rss_kib for sample in samples) / 1024


def compare(
    name: str,
    ours: Side,
    peer: Side,
    *,
    runs: int,
    state: State,
    kind: Kind,
    amount: float,
    unit: str,
    goal: float | None = None,
) -> Comparison:
    """Run ours and the peer ``runs`` times each, interleaved: ours, peer, ours, peer..."""
    same_associations = ours.associations is not None and ours.associations == peer.associations
    if ours.processes != peer.processes and not same_associations:
        raise BenchmarkError(f"{name}: unequal sides ({ours.shape} against {peer.shape})")
    print(f"{name} ({state}; {ours.shape} / {peer.shape}; {runs} run(s), interleaved):", flush=True)
    ours_samples: list[Sample] = []
    peer_samples: list[Sample] = []
    for index in range(runs):
        for side, samples in ((ours, ours_samples), (peer, peer_samples)):
            if side.prepare is not None:
                side.prepare(index)
            sample = side.run(index)
            if side.check is not None:
                side.check(index)
            samples.append(sample)
        print(
            f"    run {index + 1}: ours {ours_samples[-1].wall_s:.3f} s "
            f"({ours_samples[-1].rss_kib / 1024:.0f} MiB), peer {peer_samples[-1].wall_s:.3f} s "
            f"({peer_samples[-1].rss_kib / 1024:.0f} MiB)",
            flush=True,
        )
    return Comparison(
        name,
        ours,
        peer,
        state,
        kind,
        amount,
        unit,
        tuple(ours_samples),
        tuple(peer_samples),
        goal,
    )


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "NOT met")


def comparison_table(comparisons: Sequence[Comparison]) -> list[str]:
    """The ratio rows: one per comparison, the same columns in every benchmark."""
    lines = [
        "| comparison | ours | peer | each side | state | runs | ours s (median) "
        "| peer s (median) | ours / peer rate | ratio (median of pairs) | pairs range "
        "| peak RSS ours / peer (MiB) | goal |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in comparisons:
        ours_s, peer_s = c.median_s("ours"), c.median_s("peer")
        paired = c.paired
        shape = c.ours.shape if c.ours.shape == c.peer.shape else f"{c.ours.shape} / {c.peer.shape}"
        goal = "-"
        if c.goal is not None:
            sign = ">=" if c.kind == "rate" else "<="
            goal = f"{sign} {c.goal:g}x: {_verdict(c.met)}"
        lines.append(
            f"| {c.name} | {c.ours.label} | {c.peer.label} | {shape} | {c.state} "
            f"| {len(paired)} | {ours_s:.3f} | {peer_s:.3f} "
            f"| {c.amount / ours_s:.1f} / {c.amount / peer_s:.1f} {c.unit}/s "
            f"| {c.ratio:.2f}x {c.kind} | {min(paired):.2f}-{max(paired):.2f} "
            f"| {c.peak_mib('ours'):.1f} / {c.peak_mib('peer'):.1f} | {goal} |"
        )
    return [
        *lines,
        "",
        "Ratio: *rate* is ours/peer items per second (higher is better), *time* is ours/peer "
        "wall time (lower is better); each run pairs one run of ours with the peer's next run. "
        "Peak RSS: the highest run; for N streams the sum of their peaks.",
        "",
    ]


def all_met(comparisons: Sequence[Comparison]) -> bool:
    return all(c.met is not False for c in comparisons)


# --- peers ----------------------------------------------------------------------------------


def find_dcmtk(tool: str) -> Path:
    """A DCMTK tool by its ``--version`` output (pynetdicom's scripts shadow some on PATH)."""
    for directory in DCMTK_DIRS:
        candidate = directory / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            version = subprocess.run(
                [str(candidate), "--version"], capture_output=True, text=True, check=False
            )
            if "dcmtk" in (version.stdout + version.stderr).lower():
                return candidate
    raise BenchmarkError(f"DCMTK's {tool} was not found: install it with apt-get install dcmtk")


def dcmtk_version(tool: Path) -> str:
    out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=False)
    first = next((line.strip(" $") for line in out.stdout.splitlines() if line.strip(" $")), "?")
    return first.replace("dcmtk: ", "DCMTK ")  # "$dcmtk: img2dcm v3.6.7 2022-04-22 $"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def nodelay_env(on: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "TCP_NODELAY"}
    if on:
        env["TCP_NODELAY"] = "1"
    return env


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it does not end in ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def storescp(work: Path, *extra: str) -> Iterator[int]:
    """``TCP_NODELAY=1 storescp --ignore --fork`` on a free loopback port; yields the port."""
    binary, echoscu = find_dcmtk("storescp"), find_dcmtk("echoscu")
    received = work / "received"  # --ignore writes nothing; its -od must exist
    received.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        str(binary), "--fork", "--ignore", *extra, "-aet", CALLED_AET, "-od", str(received),
        str(port),
    ]  # fmt: skip
    with (work / "storescp.log").open("wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=nodelay_env(True)
        )
    try:
        deadline = time.monotonic() + 15
        echo = [str(echoscu), "-aec", CALLED_AET, "-to", "2", "127.0.0.1", str(port)]
        while subprocess.run(echo, capture_output=True, check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"storescp did not start: see {work / 'storescp.log'}")
            time.sleep(0.1)
        yield port
    finally:
        stop(proc)


def sendtopacs_argv(*args: str) -> list[str]:
    """The CLI in this interpreter (``python -m sendtopacs_adapters``)."""
    return [sys.executable, "-m", "sendtopacs_adapters", *args]


def check_cli(command: str) -> None:
    """Fail clearly if ``sendtopacs COMMAND`` cannot run in this interpreter."""
    probe = subprocess.run(
        sendtopacs_argv(command, "--help"),
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if probe.returncode != 0:
        tail = "\n  ".join((probe.stderr or probe.stdout).splitlines()[-10:])
        raise BenchmarkError(
            f"`sendtopacs {command} --help` failed (exit status {probe.returncode}); install "
            f"the project (`python -m pip install .` or `nox -s benchmark`):\n  {tail}"
        )


# --- the command line and the report --------------------------------------------------------


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        help=f"runs of each side of each comparison, interleaved (median; default {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="the smallest mode: a tiny input, 1 run (a check)"
    )
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the report here")
    parser.add_argument(
        "--workdir", type=Path, metavar="DIR", help="keep inputs here (reused when present)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is not met")


def check_runs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.smoke:
        args.runs = 1
    if args.runs < 1:
        parser.error("--runs must be at least 1")


def machine_line(extra: str = "") -> str:
    load = os.getloadavg()
    return (
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs (shared with other work during "
        f"the run; load average {load[0]:.2f} at the end), Python {platform.python_version()}"
        + (f"; {extra}" if extra else "")
    )


def finish(args: argparse.Namespace, lines: Sequence[str], met: bool) -> int:
    """Print the report (and write it to ``--markdown``); the exit status."""
    report = "\n".join(lines).rstrip() + "\n"
    print()
    print(report)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report, encoding="utf-8")
        print(f"written to {args.markdown}")
    return 1 if args.check and not met else 0


def run_in_workdir(
    run: Callable[[argparse.Namespace, Path], int], args: argparse.Namespace, name: str
) -> int:
    """Run a benchmark in ``args.workdir`` (created; its inputs are reused) or in a temporary
    folder; a :class:`BenchmarkError` is printed as one line and gives exit status 2."""
    try:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            return run(args, args.workdir)
        with tempfile.TemporaryDirectory(prefix=f"sendtopacs-{name}-") as temp:
            return run(args, Path(temp))
    except BenchmarkError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
