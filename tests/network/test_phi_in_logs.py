"""S10 (reduced): no patient data in logs at INFO and above, whatever happens to the file.

A sentinel patient (name and ID in the file, in its file name, and in worklist candidates)
goes through sending, failing, matching and the watcher; nothing at INFO or above may show it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from sendtopacs_core import (
    Device,
    Forwarder,
    Journal,
    MonitorRule,
    Querier,
    Sender,
    Settings,
    Study,
    WorklistDevice,
    log_dicom_identifiers,
)
from sendtopacs_core.testing import StorageSCP, WorklistSCP, make_worklist_item
from sendtopacs_core.testing.plugin import StorageSCPFactory
from tests._netpeers import write_secondary_capture

SENTINELS = ("PHISENTINEL", "PHI-7731")


def _sentinel_file(path: Path) -> None:
    write_secondary_capture(path)
    ds = pydicom.dcmread(path)
    ds.PatientName = "PHISENTINEL^ZQX"
    ds.PatientID = "PHI-7731"
    ds.save_as(path, enforce_file_format=True)


def _assert_clean(caplog: pytest.LogCaptureFixture) -> None:
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert shown, "the test should have produced some INFO records"
    for record in shown:
        text = record.getMessage()
        assert not any(sentinel in text for sentinel in SENTINELS), (record.name, text)


def test_watcher_send_and_fail_keep_patient_data_out_of_info_logs(
    tmp_path: Path, storage_scp_factory: StorageSCPFactory, caplog: pytest.LogCaptureFixture
) -> None:
    refusing = storage_scp_factory(status_for=lambda _instance: 0xA900)
    folder = tmp_path / "in"
    folder.mkdir()
    _sentinel_file(folder / "PHISENTINEL_PHI-7731.dcm")
    device = Device(name="pacs", ae_title=refusing.ae_title, host="127.0.0.1", port=refusing.port)
    monitor = MonitorRule(
        name="m", directory=folder, failed_dir=tmp_path / "failed", settle_s=0, retry_count=0
    )
    settings = Settings(devices=(device,), monitors=(monitor,))
    with caplog.at_level(logging.INFO):
        forwarder = Forwarder(settings, monitor, Journal.in_memory())
        forwarder.scan()
        events = forwarder.step()
    assert [event.kind for event in events][-1] == "failed"
    _assert_clean(caplog)


@pytest.fixture
def identifiers_not_logged() -> Iterator[None]:
    """What an application does (the command does it): pynetdicom keeps C-FIND identifiers
    out of its INFO logs (it logs them by default, a process-wide option of pynetdicom)."""
    log_dicom_identifiers(enabled=False)
    try:
        yield
    finally:
        log_dicom_identifiers(enabled=True)


@pytest.mark.usefixtures("identifiers_not_logged")
def test_matching_candidates_stay_out_of_info_logs(
    tmp_path: Path, storage_scp: StorageSCP, caplog: pytest.LogCaptureFixture
) -> None:
    items = [
        make_worklist_item(
            patient_name="PHISENTINEL^ZQX", patient_id="PHI-7731", accession_number=f"A{n}"
        )
        for n in range(2)
    ]
    path = tmp_path / "PHI-7731_photo.dcm"
    _sentinel_file(path)
    with WorklistSCP(items) as mwl, caplog.at_level(logging.INFO):
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
