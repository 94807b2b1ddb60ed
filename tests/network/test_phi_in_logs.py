"""S10: no patient data in any default output but the one the user asked for (stdout).

A sentinel patient (a unique name and ID) is put in file names, DICOM headers, worklist and
Query/Retrieve answers (the in-process WorklistSCP) and error messages (a PACS that refuses
with an error comment naming the patient, files named after the patient that cannot be
read). It goes through the core (``logging`` records) and the adapters run as a user runs
them (``sendtopacs convert``, ``send``, ``worklist``, ``find``, ``watch --once``, ``serve``
with requests, each in a subprocess). Nothing at INFO or above, and nothing on stderr at the
default verbosity, may show it; the positive controls (stdout, ``-v``, ``-vv``, DEBUG records)
show that the sentinel did go through, so every check here can fail.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pydicom
import pytest

from sendtopacs_core import (
    Device,
    Forwarder,
    Journal,
    MonitorRule,
    PatientDataFilter,
    Querier,
    Sender,
    Settings,
    Study,
    WorklistDevice,
    WorklistQuery,
    hash_password,
)
from sendtopacs_core.testing import StorageSCP, WorklistSCP, make_worklist_item
from sendtopacs_core.testing.plugin import StorageSCPFactory
from tests._netpeers import free_port, write_secondary_capture
from tests.network.test_querier import qr_instance

NAME: Final = "PHISENTINEL^ZQX"
PATIENT_ID: Final = "PHI-7731"
SENTINELS: Final = ("PHISENTINEL", "PHI-7731")
#: A file named after the patient.
FILE_STEM: Final = "PHISENTINEL_PHI-7731"
#: The error comment of a refusing PACS names the patient.
COMMENT: Final = "PHISENTINEL^ZQX refused"
PASSWORD: Final = "o9!Tz#4qWm@Lx2"  # noqa: S105 (the test password)
_RUN_S: Final = 120


def _sentinel_file(path: Path) -> Path:
    write_secondary_capture(path)
    ds = pydicom.dcmread(path)
    ds.PatientName = NAME
    ds.PatientID = PATIENT_ID
    ds.save_as(path, enforce_file_format=True)
    return path


def _broken_file(path: Path) -> Path:
    """A file named after the patient that no reader accepts (refused with its name)."""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return path


def _items() -> list[Any]:
    return [
        make_worklist_item(patient_name=NAME, patient_id=PATIENT_ID, accession_number=f"A{n}")
        for n in range(2)
    ]


def _has_sentinel(text: str) -> bool:
    return any(sentinel in text for sentinel in SENTINELS)


def _assert_clean(caplog: pytest.LogCaptureFixture) -> None:
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert shown, "the test should have produced some INFO records"
    for record in shown:
        text = record.getMessage()
        assert not _has_sentinel(text), (record.name, text)


# -- the core: logging records ----------------------------------------------------------------


def test_watcher_send_and_fail_keep_patient_data_out_of_info_logs(
    tmp_path: Path, storage_scp_factory: StorageSCPFactory, caplog: pytest.LogCaptureFixture
) -> None:
    refusing = storage_scp_factory(status_for=lambda _instance: 0xA900, error_comment=COMMENT)
    folder = tmp_path / "in"
    folder.mkdir()
    _sentinel_file(folder / f"{FILE_STEM}.dcm")
    device = Device(name="pacs", ae_title=refusing.ae_title, host="127.0.0.1", port=refusing.port)
    monitor = MonitorRule(
        name="m", directory=folder, failed_dir=tmp_path / "failed", settle_s=0, retry_count=0
    )
    settings = Settings(devices=(device,), monitors=(monitor,))
    with caplog.at_level(logging.DEBUG):
        forwarder = Forwarder(settings, monitor, Journal.in_memory())
        forwarder.scan()
        events = forwarder.step()
    assert [event.kind for event in events][-1] == "failed"
    assert "PHISENTINEL" in events[-1].path  # the event (the user's output) names the file
    # At DEBUG the core says which file: the sentinel does go through the logs...
    assert any(_has_sentinel(r.getMessage()) for r in caplog.records if r.levelno == logging.DEBUG)
    _assert_clean(caplog)  # ... never above it


def test_matching_candidates_stay_out_of_info_logs(
    tmp_path: Path, storage_scp: StorageSCP, caplog: pytest.LogCaptureFixture
) -> None:
    """No switch to remember: the core keeps pynetdicom's identifier dumps at DEBUG."""
    path = _sentinel_file(tmp_path / f"{PATIENT_ID}_photo.dcm")
    with WorklistSCP(_items()) as mwl, caplog.at_level(logging.INFO):
        querier = Querier(
            WorklistDevice(name="mwl", ae_title=mwl.ae_title, host="127.0.0.1", port=mwl.port)
        )
        settings = Settings.from_dict({"dicom": {"parse_dicom_for_worklist": True}})
        device = Device(
            name="pacs", ae_title=storage_scp.ae_title, host="127.0.0.1", port=storage_scp.port
        )
        report = Sender(device, settings=settings, querier=querier).send([path], study=Study())
    assert not report.ok  # two candidates: refused, listing them in the outcome only
    assert "PHISENTINEL" in report.outcomes[0].message
    _assert_clean(caplog)


def test_identifier_dumps_are_debug_records(caplog: pytest.LogCaptureFixture) -> None:
    """At DEBUG pynetdicom's dumps of the worklist answers show (as DEBUG records only)."""
    with WorklistSCP(_items()) as mwl, caplog.at_level(logging.DEBUG):
        device = WorklistDevice(name="mwl", ae_title=mwl.ae_title, host="127.0.0.1", port=mwl.port)
        items = Querier(device).find_worklist(WorklistQuery(patient_id=PATIENT_ID))
    assert [item.patient_id for item in items] == [PATIENT_ID, PATIENT_ID]
    dumps = [
        r for r in caplog.records if r.name.startswith("pynetdicom") and NAME in r.getMessage()
    ]
    assert dumps, "pynetdicom should have dumped the answers at DEBUG"
    assert {r.levelno for r in dumps} == {logging.DEBUG}
    _assert_clean(caplog)


@pytest.mark.parametrize(
    ("logger", "message"),
    [
        ("pynetdicom.association", "(0010,0010) PN [PHISENTINEL^ZQX]   # 1 PatientName"),
        ("pynetdicom.association", "# Response Identifier"),
        ("pynetdicom.service_class", "  (0010,0020) LO [PHI-7731]   # 1 PatientID"),
        ("pydicom", "(0010,0010) Patient's Name                      PN: 'PHISENTINEL^ZQX'"),
        ("py.warnings", "x.py:1: UserWarning: Invalid value for VR DA: 'PHI-7731'."),
    ],
)
def test_filter_demotes_data_set_dumps(
    logger: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        logging.getLogger(logger).warning("%s", message)
        logging.getLogger(logger).warning("association rejected by 127.0.0.1")
    dump, plain = caplog.records[-2:]
    assert (dump.levelno, dump.levelname) == (logging.DEBUG, "DEBUG")
    assert (plain.levelno, plain.levelname) == (logging.WARNING, "WARNING")


def test_filter_on_a_handler_drops_demoted_records() -> None:
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Collect(logging.INFO)
    handler.addFilter(PatientDataFilter(logging.INFO))
    logger = logging.getLogger("an_application")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("(0010,0020) LO [PHI-7731]  # 1 PatientID")
        logger.info("sent 3 files")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    assert [record.getMessage() for record in seen] == ["sent 3 files"]


# -- the adapters: stderr of the commands -------------------------------------------------------


@pytest.fixture
def refusing_pacs(storage_scp_factory: StorageSCPFactory) -> StorageSCP:
    """A PACS refusing every object with 0xA900 and an error comment naming the patient."""
    return storage_scp_factory(status_for=lambda _instance: 0xA900, error_comment=COMMENT)


@pytest.fixture
def mwl() -> Iterator[WorklistSCP]:
    """A worklist and Query/Retrieve server whose answers are the sentinel patient's."""
    studies = [qr_instance(PATIENT_ID, NAME, "1.2.826.0.1.3680043.2.77", "20240101")]
    with WorklistSCP(_items(), qr_datasets=studies) as scp:
        yield scp


class Commands:
    """``sendtopacs`` with one settings file, run in subprocesses."""

    def __init__(self, tmp_path: Path, pacs: StorageSCP, mwl: WorklistSCP) -> None:
        self.tmp_path = tmp_path
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir()
        self.api_port = free_port()
        self.settings = tmp_path / "settings.json"
        document = {
            "main": {"temp_dir": str(tmp_path / "temp")},
            "devices": [
                {"name": "pacs", "ae_title": pacs.ae_title, "host": "127.0.0.1", "port": pacs.port}
            ],
            "worklist_devices": [
                {
                    "name": "mwl",
                    "ae_title": mwl.ae_title,
                    "host": "127.0.0.1",
                    "port": mwl.port,
                    "use_today": False,
                }
            ],
            "monitors": [
                {
                    "name": "inbox",
                    "directory": str(self.inbox),
                    "failed_dir": str(tmp_path / "failed"),
                    "mode": "polling",
                    "settle_s": 0.1,
                    "retry_count": 0,
                }
            ],
            "api": {
                "port": self.api_port,
                "username": "admin",
                "password_hash": hash_password(PASSWORD),
            },
        }
        (tmp_path / "temp").mkdir()
        self.settings.write_text(json.dumps(document), encoding="utf-8")

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "sendtopacs_adapters",
            "--settings",
            str(self.settings),
            *args,
        ]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), capture_output=True, text=True, timeout=_RUN_S, check=False
        )


@pytest.fixture
def commands(tmp_path: Path, refusing_pacs: StorageSCP, mwl: WorklistSCP) -> Commands:
    return Commands(tmp_path, refusing_pacs, mwl)


def _assert_stderr_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert not _has_sentinel(result.stderr), result.stderr


def test_convert_names_refused_patient_files_on_stdout_only(
    commands: Commands, tmp_path: Path
) -> None:
    broken = _broken_file(tmp_path / f"{FILE_STEM}.png")
    result = commands.run(
        "convert", str(broken), "-o", str(tmp_path / "out"), "--patient-name", NAME,
        "--patient-id", PATIENT_ID,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert FILE_STEM in result.stdout  # the refusal names the file, in the report
    assert "1 input(s) not converted" in result.stderr
    _assert_stderr_clean(result)


def test_convert_worklist_candidates_on_stdout_only(commands: Commands, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"")  # never read: the worklist refuses first
    result = commands.run(
        "convert", str(photo), "-o", str(tmp_path / "out"), "--worklist", "mwl",
        "--patient-id", PATIENT_ID,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert NAME in result.stdout  # the candidates, listed for the user
    assert "2 items match" in result.stderr
    _assert_stderr_clean(result)


def test_send_refusal_with_patient_comment_stays_off_stderr(
    commands: Commands, tmp_path: Path, refusing_pacs: StorageSCP
) -> None:
    dicom = _sentinel_file(tmp_path / f"{FILE_STEM}.dcm")
    broken = _broken_file(tmp_path / f"{FILE_STEM}_scan.png")
    result = commands.run(
        "send", str(dicom), str(broken), "--patient-name", NAME, "--patient-id", PATIENT_ID
    )
    assert result.returncode == 1, result.stderr
    assert refusing_pacs.c_store_count >= 1  # the header went to the PACS and was refused
    assert COMMENT in result.stdout and f"{FILE_STEM}_scan.png" in result.stdout
    assert "0xA900" in result.stderr  # status codes are no patient data
    _assert_stderr_clean(result)
    verbose = commands.run("-v", "send", str(dicom))
    assert verbose.returncode == 1
    _assert_stderr_clean(verbose)


@pytest.mark.parametrize(
    "args",
    [
        ("worklist", "--device", "mwl", "--patient-id", PATIENT_ID),
        ("find", "--device", "mwl", "--patient-id", PATIENT_ID),
    ],
)
def test_searches_show_answers_on_stdout_only(commands: Commands, args: tuple[str, ...]) -> None:
    result = commands.run(*args)
    assert result.returncode == 0, result.stderr
    assert NAME in result.stdout
    _assert_stderr_clean(result)
    verbose = commands.run("-v", *args)  # pynetdicom's INFO log, without the dumps
    assert verbose.returncode == 0
    assert "pynetdicom" in verbose.stderr
    _assert_stderr_clean(verbose)
    debug = commands.run("-vv", *args)  # debug output is patient data, as its help says
    assert debug.returncode == 0
    assert NAME in debug.stderr


def test_watch_once_stderr_has_states_and_codes_only(commands: Commands) -> None:
    _sentinel_file(commands.inbox / f"{FILE_STEM}.dcm")
    _broken_file(commands.inbox / f"{FILE_STEM}_scan.png")
    journal = commands.tmp_path / "journal.sqlite"
    result = commands.run("watch", "--once", "--journal", str(journal))
    assert result.returncode == 1, result.stderr
    assert "inbox: failed (status 0xA900)" in result.stderr
    assert "failed: 2" in result.stderr  # the status line: counts
    _assert_stderr_clean(result)
    as_json = commands.run("--json", "watch", "--list", "--journal", str(journal))
    assert as_json.returncode == 0
    _assert_stderr_clean(as_json)
    # -v names the files (and the PACS's comment): the same check fails on it.
    _sentinel_file(commands.inbox / f"{FILE_STEM}_2.dcm")
    verbose = commands.run("-v", "watch", "--once", "--journal", str(journal))
    assert f"{FILE_STEM}_2.dcm" in verbose.stderr
    assert COMMENT in verbose.stderr


def test_watch_json_events_carry_file_names_on_stdout(commands: Commands) -> None:
    _sentinel_file(commands.inbox / f"{FILE_STEM}.dcm")
    result = commands.run(
        "--json", "watch", "--once", "--journal", str(commands.tmp_path / "j.sqlite")
    )
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(FILE_STEM in (event.get("path") or "") for event in events)
    _assert_stderr_clean(result)


def _wait_for_health(process: subprocess.Popen[str], base: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sendtopacs serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            answer = httpx.get(f"{base}/api/v1/health", auth=("admin", PASSWORD), timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert answer.status_code == 200, answer.text
        return
    pytest.fail(f"sendtopacs serve did not answer within 30 s:\n{log.read_text()}")


def test_serve_stderr_stays_clean_through_requests(commands: Commands, tmp_path: Path) -> None:
    log = tmp_path / "serve.stderr"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("w", encoding="utf-8") as err:
        process = subprocess.Popen(
            commands.argv("serve"), stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
            text=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{commands.api_port}"
    dicom = _sentinel_file(tmp_path / f"{FILE_STEM}.dcm")
    broken = _broken_file(tmp_path / f"{FILE_STEM}_scan.png")
    study = {"patient_name": NAME, "patient_id": PATIENT_ID}
    try:
        _wait_for_health(process, base, log)
        with httpx.Client(base_url=base, auth=("admin", PASSWORD), timeout=60) as http:
            found = http.get("/api/v1/worklist/mwl", params={"patient_id": PATIENT_ID})
            assert found.status_code == 200, found.text
            assert NAME in found.text
            studies = http.get("/api/v1/find/mwl", params={"patient_id": PATIENT_ID})
            assert studies.status_code == 200, studies.text
            assert NAME in studies.text
            files = [("files", (path.name, path.read_bytes())) for path in (dicom, broken)]
            sent = http.post("/api/v1/send/pacs", data=study, files=files)
            assert COMMENT in sent.text and f"{FILE_STEM}_scan.png" in sent.text, sent.text
            converted = http.post("/api/v1/convert", data=study, files=files[1:])
            assert f"{FILE_STEM}_scan.png" in converted.text, converted.text
            bad = http.get("/api/v1/worklist/mwl", params={"patient_name": "PHISENTINEL^" * 30})
            assert bad.status_code == 400, bad.text  # refused naming the value: to the client
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    text = log.read_text(encoding="utf-8")
    assert code == 0, text
    assert "serving http://" in text
    assert not _has_sentinel(text), text
