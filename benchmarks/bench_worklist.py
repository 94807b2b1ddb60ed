"""Worklist query latency of ``sendtopacs worklist`` against DCMTK ``findscu``.

In one run, a worklist of ``--items`` (default 10,000) ``.wl`` files is served by two servers on
127.0.0.1, each started on free ports:

- DCMTK ``wlmscpfs`` (``-s``, single process, ``TCP_NODELAY=1``), which reads the files at
  every query;
- Orthanc with its Modality Worklists plugin (``Worklists.Database``, also read at every query).

Against each, two queries: Modality ES on 20261127 (1 % of the items, 100 of 10,000) and every
item (no modality, no date). Each is run as a child process by ``sendtopacs worklist ... --json``
(stdout to a file) and by DCMTK ``findscu -W`` with ``TCP_NODELAY=1`` and the same keys: every
return key of PS3.4 K.6.1.2 that our query asks for (``WORKLIST_PATIENT_KEYS``, the Scheduled
Procedure Step Sequence item with ``WORKLIST_STEP_KEYS`` and an empty Scheduled Protocol Code
Sequence, an empty Requested Procedure Code Sequence), its responses dumped to a file (as it does
without ``-X``). Both must return the same number of items.

Reported: the median wall time of ``--runs`` runs of each command, the ratio of ours to
findscu's and the peak RSS (each command's own, from ``os.wait4`` through GNU ``/usr/bin/time``;
the highest of the runs). Goal (the issue): at most 1.2x findscu's time.

Run ``python benchmarks/bench_worklist.py [--items N] [--runs N] [--markdown PATH]
[--workdir DIR]``; it needs the project installed, DCMTK (``apt-get install dcmtk``) and Orthanc
with its worklist plugin (``apt-get install orthanc``; ``--no-orthanc`` skips it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import pydicom
import pynetdicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian

from bench_convert import DCMTK_DIRS, BenchmarkError, run_in_workdir, run_measured
from sendtopacs_core import Querier, WorklistDevice, WorklistQuery

CALLED_AET: Final = "WLMSCP"
CALLING_AET: Final = "SENDTOPACS"
DEFAULT_ITEMS: Final = 10_000
MODALITY: Final = "ES"
DATE: Final = "20261127"
#: Modalities and dates of the other items; none of them is ES on DATE.
OTHER_MODALITIES: Final = ("CT", "MR", "US", "CR", "DX", "XA", "MG", "ES")
OTHER_DATES: Final = tuple(f"202611{day:02d}" for day in range(1, 31) if day != 27)
UID_PREFIX: Final = "1.2.826.0.1.3680043.10.1234.7."
#: DCMTK's private "generic file" SOP class, which ``dump2dcm -g`` puts in ``.wl`` file meta.
GENERIC_FILE_SOP_CLASS: Final = "1.2.276.0.7230010.3.1.0.1"
TIME_GOAL: Final = 1.2  # our time <= 1.2 x findscu's
ORTHANC: Final = Path("/usr/sbin/Orthanc")
ORTHANC_WORKLIST_PLUGIN: Final = Path("/usr/share/orthanc/plugins/libModalityWorklists.so")
TIME: Final = Path("/usr/bin/time")
STARTUP_TIMEOUT_S: Final = 30.0
_NO_SETTINGS: Final = "no-settings.json"
_MARKER: Final = "worklist.json"


@dataclasses.dataclass(frozen=True)
class Query:
    name: str
    modality: str  # empty: any
    date: str  # empty: any
    expected: int


@dataclasses.dataclass(frozen=True)
class Server:
    name: str
    port: int
    called_aet: str


@dataclasses.dataclass(frozen=True)
class Result:
    """The medians of some runs of our command and of findscu, for one server and query."""

    server: str
    query: str
    items: int
    ours_s: float
    findscu_s: float
    ours_rss_kib: int
    findscu_rss_kib: int
    runs: int

    @property
    def ratio(self) -> float:
        return self.ours_s / self.findscu_s

    @property
    def met(self) -> bool:
        return self.ratio <= TIME_GOAL


# --- the worklist ---------------------------------------------------------------------------


def _template() -> Dataset:
    """A worklist item like DCMTK's ``wlistdb`` samples (as ``tests/_netpeers.py`` writes)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(GENERIC_FILE_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = UID(UID_PREFIX + "0")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = "Referrer^Rita"
    ds.PatientName = ""
    ds.PatientID = ""
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = ""
    ds.ReferencedStudySequence = []
    ds.ReferencedPatientSequence = []
    ds.RequestedProcedureDescription = "Benchmark procedure"
    code = Dataset()
    code.CodeValue = "RP0001"
    code.CodingSchemeDesignator = "99BENCH"
    code.CodeMeaning = "Benchmark procedure"
    ds.RequestedProcedureCodeSequence = [code]
    ds.RequestedProcedureID = "RP0001"
    step = Dataset()
    step.Modality = ""
    step.ScheduledStationAETitle = "STATION1"
    step.ScheduledProcedureStepStartDate = ""
    step.ScheduledProcedureStepStartTime = "080000"
    step.ScheduledPerformingPhysicianName = "Performer^Paul"
    step.ScheduledProcedureStepDescription = "Benchmark step"
    step.ScheduledProcedureStepID = "SPS0001"
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def _item_values(index: int) -> tuple[str, str]:
    """Modality and date of item ``index``: every 100th is ES on DATE, no other one."""
    if index % 100 == 0:
        return MODALITY, DATE
    modality = OTHER_MODALITIES[index % len(OTHER_MODALITIES)]
    return modality, OTHER_DATES[(index + index // 100) % len(OTHER_DATES)]


def expected_matches(count: int) -> int:
    return sum(1 for index in range(count) if _item_values(index) == (MODALITY, DATE))


def generate(folder: Path, count: int) -> None:
    """Write ``count`` ``.wl`` files and the ``lockfile`` unless ``folder`` holds them."""
    marker = folder / _MARKER
    wanted = {"items": count, "format": 1}
    if (
        marker.is_file()
        and json.loads(marker.read_text(encoding="utf-8")) == wanted
        and sum(1 for _ in folder.glob("*.wl")) == count
    ):
        return
    folder.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    for path in folder.glob("*.wl"):
        path.unlink()
    (folder / "lockfile").touch()
    ds = _template()
    step = ds.ScheduledProcedureStepSequence[0]
    for index in range(count):
        modality, date = _item_values(index)
        ds.file_meta.MediaStorageSOPInstanceUID = UID(f"{UID_PREFIX}1.{index + 1}")
        ds.PatientName = f"Bench^Patient{index:05d}"
        ds.PatientID = f"BWL{index:05d}"
        ds.AccessionNumber = f"ACC{index:06d}"
        ds.StudyInstanceUID = f"{UID_PREFIX}2.{index + 1}"
        step.Modality = modality
        step.ScheduledProcedureStepStartDate = date
        dcmwrite(folder / f"item{index:05d}.wl", ds, enforce_file_format=True)
    marker.write_text(json.dumps(wanted), encoding="utf-8")


# --- the servers ----------------------------------------------------------------------------


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _nodelay_env() -> dict[str, str]:
    return {**os.environ, "TCP_NODELAY": "1"}


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_echo(
    proc: subprocess.Popen[bytes], name: str, port: int, called_aet: str, log: Path
) -> None:
    echoscu = find_dcmtk("echoscu")
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    echo = [str(echoscu), "-aec", called_aet, "-to", "2", "-ta", "2", "127.0.0.1", str(port)]
    while True:
        if subprocess.run(echo, capture_output=True, check=False).returncode == 0:
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchmarkError(f"{name} did not start: see {log}")
        time.sleep(0.2)


@contextlib.contextmanager
def wlmscpfs(database: Path, work: Path) -> Iterator[Server]:
    """``TCP_NODELAY=1 wlmscpfs -s`` serving ``database/CALLED_AET/*.wl``."""
    binary = find_dcmtk("wlmscpfs")
    port = _free_port()
    log = work / "wlmscpfs.log"
    argv = [str(binary), "-s", "-dhl", "-dfp", str(database), "-efr", "-csk", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=_nodelay_env()
        )
    try:
        _wait_echo(proc, "wlmscpfs", port, CALLED_AET, log)
        yield Server("DCMTK wlmscpfs", port, CALLED_AET)
    finally:
        _stop(proc)


@contextlib.contextmanager
def orthanc(folder: Path, work: Path) -> Iterator[Server]:
    """Orthanc with its worklist plugin serving ``folder/*.wl``, on free ports."""
    if not ORTHANC.is_file() or not ORTHANC_WORKLIST_PLUGIN.is_file():
        raise BenchmarkError(
            "Orthanc or its worklist plugin was not found: apt-get install orthanc, or pass "
            "--no-orthanc"
        )
    directory = work / "orthanc"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    http_port, dicom_port = _free_port(), _free_port()
    while dicom_port == http_port:
        dicom_port = _free_port()
    config = {
        "Name": "sendtopacs-bench",
        "StorageDirectory": str(directory / "storage"),
        "IndexDirectory": str(directory / "storage"),
        "Plugins": [str(ORTHANC_WORKLIST_PLUGIN)],
        "Worklists": {"Enable": True, "Database": str(folder)},
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowFindWorklist": True,
        "DicomAssociationCloseDelay": 0,
        "DicomScpTimeout": 30,
        "SaveJobs": False,
        "ExecuteLuaEnabled": False,
    }
    config_path = directory / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    log = directory / "orthanc.log"
    argv = [str(ORTHANC), f"--logfile={log}", "--no-jobs", str(config_path)]
    with (directory / "orthanc.out").open("wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=directory
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:  # its DICOM server starts before its HTTP server
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{http_port}/system"
                with urllib.request.urlopen(url, timeout=1) as answer:
                    answer.read()
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"Orthanc did not start: see {log}")
            time.sleep(0.2)
        yield Server("Orthanc worklist plugin", dicom_port, "ORTHANC")
    finally:
        _stop(proc)


# --- the clients ----------------------------------------------------------------------------


def ours_argv(server: Server, query: Query, work: Path) -> list[str]:
    keys = (
        ["--modality", query.modality] if query.modality else []
    ) + (["--date", query.date] if query.date else ["--all-dates"])  # fmt: skip
    return [
        sys.executable, "-m", "sendtopacs_adapters", "worklist",
        "--settings", str(work / _NO_SETTINGS), "--host", "127.0.0.1", "--port",
        str(server.port), "--called-aet", server.called_aet, *keys, "--json", "-q",
    ]  # fmt: skip


def our_identifier(server: Server, query: Query) -> Dataset:
    """The C-FIND identifier ``sendtopacs worklist`` sends for ``query``."""
    device = WorklistDevice(
        name="bench", ae_title=server.called_aet, host="127.0.0.1", port=server.port
    )
    return Querier(device).worklist_identifier(
        WorklistQuery(modality=query.modality or None, date=query.date)
    )


def findscu_keys(identifier: Dataset, prefix: str = "") -> list[str]:
    """``-k`` options that make findscu send ``identifier`` (keys, values, sequence items).

    Keys are written as ``(gggg,eeee)``: DCMTK's dictionary names differ from pydicom's
    keywords for some (``OtherPatientIDs`` is ``RETIRED_OtherPatientIDs`` in DCMTK 3.6.7).
    """
    keys: list[str] = []
    for element in identifier:
        path = f"{prefix}({element.tag.group:04X},{element.tag.element:04X})"
        if element.VR == "SQ" and len(element.value):
            for number, item in enumerate(element.value):
                keys += findscu_keys(item, f"{path}[{number}].")
        elif element.VR == "SQ" or element.is_empty:
            keys += ["-k", path]
        else:
            keys += ["-k", f"{path}={element.value}"]
    return keys


def findscu_argv(findscu: Path, server: Server, query: Query) -> list[str]:
    keys = findscu_keys(our_identifier(server, query))
    # env(1) execs findscu in the same process, so wait4 still measures findscu itself.
    return [
        "/usr/bin/env", "TCP_NODELAY=1", str(findscu), "-W", "-aet", CALLING_AET,
        "-aec", server.called_aet, *keys, "127.0.0.1", str(server.port),
    ]  # fmt: skip


def _run(argv: Sequence[str], log: Path) -> tuple[float, int]:
    """Wall time (s) and the command's own peak RSS (KiB); stdout and stderr to ``log``.

    As in ``bench_send``: GNU time in between, so that the peak is not this process's (Linux
    keeps the replaced address space's RSS in the child's peak at ``exec``).
    """
    if not TIME.is_file():
        return run_measured(argv, log=log)
    rss_file = log.with_suffix(".rss")
    wall, _ = run_measured([str(TIME), "-f", "%M", "-o", str(rss_file), *argv], log=log)
    return wall, int(rss_file.read_text(encoding="ascii").split()[-1])


def count_ours(log: Path) -> int:
    text = log.read_text(encoding="utf-8", errors="replace")
    try:
        document: Any = json.loads(text)
    except ValueError as exc:
        raise BenchmarkError(
            f"sendtopacs worklist printed no JSON document:\n{text[-2000:]}"
        ) from exc
    return len(document["items"])


def count_findscu(log: Path) -> int:
    """Responses dumped by findscu: one ``Find Response: N (Pending)`` line each."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return sum(1 for line in text.splitlines() if "(Pending)" in line)


def measure(server: Server, query: Query, findscu: Path, work: Path, runs: int) -> Result:
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    stem = f"{server.name}_{query.name}".replace(" ", "_").replace("+", "_")
    ours_log, dcmtk_log = logs / f"{stem}_sendtopacs.json", logs / f"{stem}_findscu.log"
    ours_walls: list[float] = []
    dcmtk_walls: list[float] = []
    ours_rss = dcmtk_rss = 0
    for _ in range(runs):  # alternate, so that background load hits both alike
        wall, rss = _run(ours_argv(server, query, work), ours_log)
        ours_walls.append(wall)
        ours_rss = max(ours_rss, rss)
        ours_items = count_ours(ours_log)
        wall, rss = _run(findscu_argv(findscu, server, query), dcmtk_log)
        dcmtk_walls.append(wall)
        dcmtk_rss = max(dcmtk_rss, rss)
        dcmtk_items = count_findscu(dcmtk_log)
        print(
            f"    sendtopacs {ours_walls[-1]:.3f} s ({ours_items} items), findscu "
            f"{dcmtk_walls[-1]:.3f} s ({dcmtk_items} items)",
            flush=True,
        )
        if ours_items != dcmtk_items or ours_items != query.expected:
            raise BenchmarkError(
                f"{server.name}, {query.name}: sendtopacs found {ours_items} items, findscu "
                f"{dcmtk_items}, expected {query.expected} (see {ours_log}, {dcmtk_log})"
            )
    return Result(
        server.name,
        query.name,
        query.expected,
        statistics.median(ours_walls),
        statistics.median(dcmtk_walls),
        ours_rss,
        dcmtk_rss,
        runs,
    )


# --- report ---------------------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def table(results: Sequence[Result]) -> list[str]:
    lines = [
        "| server | query | items | sendtopacs s | findscu s | ratio | goal <= "
        f"{TIME_GOAL}x | peak RSS sendtopacs / findscu (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.server} | {r.query} | {r.items} | {r.ours_s:.3f} | {r.findscu_s:.3f} "
            f"| {r.ratio:.2f}x | {_verdict(r.met)} | {r.ours_rss_kib / 1024:.1f} / "
            f"{r.findscu_rss_kib / 1024:.1f} |"
        )
    return [*lines, ""]


def _dcmtk_version(tool: Path) -> str:
    out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=False)
    first = next((line.strip(" $") for line in out.stdout.splitlines() if line.strip(" $")), "?")
    return first.replace("dcmtk: ", "DCMTK ")


def _orthanc_version() -> str:
    out = subprocess.run([str(ORTHANC), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.split("\n", 1)[0].replace(str(ORTHANC), "Orthanc").strip()


# --- main -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> int:
    findscu = find_dcmtk("findscu")
    database = work / "worklists"
    folder = database / CALLED_AET
    print(f"generating {args.items} worklist items in {folder} ...", flush=True)
    generate(folder, args.items)
    queries = [
        Query(f"{MODALITY} on {DATE}", MODALITY, DATE, expected_matches(args.items)),
        Query("all items", "", "", args.items),
    ]
    results: list[Result] = []
    servers = [wlmscpfs(database, work)]
    if not args.no_orthanc:
        servers.append(orthanc(folder, work))
    for context in servers:
        with context as server:
            for query in queries:
                print(f"{server.name}, {query.name} ({query.expected} items):", flush=True)
                results.append(measure(server, query, findscu, work, args.runs))
    versions = f"{_dcmtk_version(findscu)}"
    if not args.no_orthanc:
        versions += f", {_orthanc_version()}"
    lines = [
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, pydicom {pydicom.__version__}, pynetdicom "
        f"{pynetdicom.__version__}, {versions}. A worklist of {args.items} `.wl` items served "
        f"from files by `wlmscpfs -s` (TCP_NODELAY=1) and by Orthanc's worklist plugin on "
        f"127.0.0.1; `sendtopacs worklist ... --json` against `findscu -W` (TCP_NODELAY=1) "
        "with the same return keys, each a child process (start-up included). Median of "
        f"{args.runs} run(s); peak RSS: the highest.",
        "",
        *table(results),
    ]
    all_met = all(result.met for result in results)
    lines.append(f"Goal (at most {TIME_GOAL}x findscu's time on every query): {_verdict(all_met)}.")
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report, encoding="utf-8")
        print(f"written to {args.markdown}")
    return 1 if args.check and not all_met else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--items", type=int, default=DEFAULT_ITEMS, help="worklist items (1 %% are ES on the date)"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (median)")
    parser.add_argument("--no-orthanc", action="store_true", help="measure wlmscpfs only")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the report here")
    parser.add_argument(
        "--workdir", type=Path, metavar="DIR", help="keep the worklist here (reused when present)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is not met")
    args = parser.parse_args(argv)
    if args.items < 100 or args.runs < 1:
        parser.error("--items must be at least 100, --runs at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_in_workdir(run, args, "bench_worklist")


if __name__ == "__main__":
    sys.exit(main())
