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

Like with like: one process and one association on each side, both cold (every run starts
the command: start-up included), ``--runs`` runs interleaved (ours, findscu, ours...).
Reported: the median wall times, the median of the per-run ratios ours/findscu and the peak
RSS (each command's, from GNU ``/usr/bin/time``; the highest of the runs). Goal (issue 5): at
most 1.2x findscu's time.

Run ``python benchmarks/bench_worklist.py [--items N] [--runs N] [--smoke] [--markdown PATH]
[--workdir DIR] [--check]``; it needs the project installed, DCMTK (``apt-get install
dcmtk``) and Orthanc with its worklist plugin (``apt-get install orthanc``; ``--no-orthanc``
skips it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import pydicom
import pynetdicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian

from _bench import (
    CALLING_AET,
    NO_SETTINGS,
    BenchmarkError,
    Comparison,
    Sample,
    Side,
    add_common_options,
    all_met,
    check_cli,
    check_runs,
    compare,
    comparison_table,
    dcmtk_version,
    find_dcmtk,
    finish,
    free_port,
    machine_line,
    run_in_workdir,
    run_streams,
    sendtopacs_argv,
    stop,
)
from sendtopacs_core import Querier, WorklistDevice, WorklistQuery

CALLED_AET: Final = "WLMSCP"
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
SMOKE_ITEMS: Final = 200
ORTHANC: Final = Path("/usr/sbin/Orthanc")
ORTHANC_WORKLIST_PLUGIN: Final = Path("/usr/share/orthanc/plugins/libModalityWorklists.so")
STARTUP_TIMEOUT_S: Final = 30.0
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


def _nodelay_env() -> dict[str, str]:
    return {**os.environ, "TCP_NODELAY": "1"}


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
    port = free_port()
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
        stop(proc)


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
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
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
        stop(proc)


# --- the clients ----------------------------------------------------------------------------


def ours_argv(server: Server, query: Query, work: Path) -> list[str]:
    keys = (
        ["--modality", query.modality] if query.modality else []
    ) + (["--date", query.date] if query.date else ["--all-dates"])  # fmt: skip
    return [
        *sendtopacs_argv("worklist"),
        "--settings", str(work / NO_SETTINGS), "--host", "127.0.0.1", "--port",
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


def measure(server: Server, query: Query, findscu: Path, work: Path, runs: int) -> Comparison:
    logs = work / "logs"
    stem = f"{server.name}_{query.name}".replace(" ", "_").replace("+", "_")

    def side(label: str, name: str, argv: list[str], count: Callable[[Path], int]) -> Side:
        def run(index: int) -> Sample:
            return run_streams([argv], logs, f"{stem}-{name}-{index}")

        def check(index: int) -> None:
            log = logs / f"{stem}-{name}-{index}-0.log"
            found = count(log)
            if found != query.expected:
                raise BenchmarkError(
                    f"{server.name}, {query.name}: {label} found {found} items, expected "
                    f"{query.expected} (see {log})"
                )

        return Side(label, 1, run, associations=1, check=check)

    return compare(
        f"{server.name}, {query.name}",
        side("sendtopacs worklist --json", "ours", ours_argv(server, query, work), count_ours),
        side(
            "findscu -W, TCP_NODELAY=1", "findscu", findscu_argv(findscu, server, query),
            count_findscu,
        ),
        runs=runs,
        state="cold",
        kind="time",
        amount=query.expected,
        unit="items",
        goal=TIME_GOAL,
    )  # fmt: skip


def _orthanc_version() -> str:
    out = subprocess.run([str(ORTHANC), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.split("\n", 1)[0].replace(str(ORTHANC), "Orthanc").strip()


# --- main -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> int:
    check_cli("worklist")
    findscu = find_dcmtk("findscu")
    database = work / "worklists"
    folder = database / CALLED_AET
    print(f"generating {args.items} worklist items in {folder} ...", flush=True)
    generate(folder, args.items)
    queries = [
        Query(f"{MODALITY} on {DATE}", MODALITY, DATE, expected_matches(args.items)),
        Query("all items", "", "", args.items),
    ]
    comparisons: list[Comparison] = []
    servers = [wlmscpfs(database, work)]
    if not args.no_orthanc:
        servers.append(orthanc(folder, work))
    for context in servers:
        with context as server:
            comparisons += [measure(server, query, findscu, work, args.runs) for query in queries]
    versions = dcmtk_version(findscu)
    if not args.no_orthanc:
        versions += f", {_orthanc_version()}"
    lines = [
        machine_line(
            f"pydicom {pydicom.__version__}, pynetdicom {pynetdicom.__version__}, {versions}; "
            f"a worklist of {args.items} `.wl` items served from files by `wlmscpfs -s` "
            "(TCP_NODELAY=1) and by Orthanc's worklist plugin on 127.0.0.1; "
            "`sendtopacs worklist ... --json` against `findscu -W` (TCP_NODELAY=1) with the "
            "same return keys; every run starts the command (cold: start-up included)"
        ),
        "",
        *comparison_table(comparisons),
        f"Goal (issue 5): at most {TIME_GOAL:g}x findscu's time on every query.",
    ]
    return finish(args, lines, all_met(comparisons))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--items", type=int, default=DEFAULT_ITEMS, help="worklist items (1 %% are ES on the date)"
    )
    parser.add_argument("--no-orthanc", action="store_true", help="measure wlmscpfs only")
    add_common_options(parser)
    args = parser.parse_args(argv)
    check_runs(parser, args)
    if args.smoke:
        args.items = SMOKE_ITEMS
    if args.items < 100:
        parser.error("--items must be at least 100")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_workdir(run, parse_args(argv), "bench_worklist")


if __name__ == "__main__":
    sys.exit(main())
