"""Automatic worklist matching: ``match_one``, ``fill_from_item`` and the Sender's matching.

Peers: the in-process worklist SCP and storage SCP.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from sendtopacs_core import (
    ConfigError,
    Converter,
    DicomSettings,
    MainSettings,
    NonDicomSettings,
    Querier,
    Sender,
    SendState,
    Settings,
    Study,
    WorklistItem,
    WorklistQuery,
)
from sendtopacs_core.net.matching import WorklistMatchError, fill_from_item, match_one
from sendtopacs_core.testing import StorageSCP
from sendtopacs_core.testing.plugin import WorklistSCPFactory
from tests import _corpus
from tests._netpeers import device_to, write_secondary_capture
from tests.network.test_querier import device_for, mwl_item

ITEMS = (
    mwl_item("PID1", "Doe^John", accession="ACC1"),
    mwl_item("PID2", "Roe^Jane", accession="ACC2"),
    mwl_item("PID2", "Roe^Jane", accession="ACC3"),
)


def querier(scp_port: int, scp_ae: str) -> Querier:
    return Querier(device_for(scp_ae, scp_port))


def test_match_one_exactly_one(worklist_scp_factory: WorklistSCPFactory) -> None:
    scp = worklist_scp_factory(list(ITEMS))
    item = match_one(querier(scp.port, scp.ae_title), WorklistQuery(patient_id="PID1"), "x.jpg")
    assert item.accession_number == "ACC1"
    assert item.study_instance_uid == ITEMS[0].StudyInstanceUID


def test_match_one_none_or_several_lists_candidates(
    worklist_scp_factory: WorklistSCPFactory,
) -> None:
    scp = worklist_scp_factory(list(ITEMS))
    q = querier(scp.port, scp.ae_title)
    with pytest.raises(WorklistMatchError, match="no worklist item matches") as none:
        match_one(q, WorklistQuery(patient_id="PID9"), "a.jpg")
    assert none.value.candidates == ()
    assert "PID9" in str(none.value)
    with pytest.raises(WorklistMatchError, match="2 worklist items match") as several:
        match_one(q, WorklistQuery(patient_id="PID2"), "b.jpg")
    message = str(several.value)
    assert "ACC2" in message and "ACC3" in message and "Roe^Jane" in message
    candidates = several.value.candidates
    accessions = {c.accession_number for c in candidates if isinstance(c, WorklistItem)}
    assert accessions == {"ACC2", "ACC3"}


def test_fill_from_item_fills_or_replaces(worklist_scp_factory: WorklistSCPFactory) -> None:
    scp = worklist_scp_factory([ITEMS[0]])
    [item] = querier(scp.port, scp.ae_title).find_worklist(WorklistQuery(patient_id="PID1"))
    header = Dataset()
    header.PatientID = "PID1"
    header.PatientName = "Typed^Name"
    header.StudyInstanceUID = "1.2.3"
    assert fill_from_item(header, item, replace=False)
    assert header.PatientName == "Typed^Name"  # kept
    assert header.StudyInstanceUID == "1.2.3"  # kept
    assert header.AccessionNumber == "ACC1"  # was missing
    [request] = header.RequestAttributesSequence
    assert request.RequestedProcedureID == "RP-PID1"
    assert request.ScheduledProcedureStepID == "SPS-PID1"
    assert request.RequestedProcedureCodeSequence[0].CodeValue == "CTHEAD"
    assert fill_from_item(header, item, replace=True)
    assert header.PatientName == "Doe^John"
    assert header.StudyInstanceUID == ITEMS[0].StudyInstanceUID
    assert not fill_from_item(header, item, replace=False)  # nothing left to change


def _settings(tmp_path: Path, **sections: object) -> Settings:
    temp = tmp_path / "temp"
    temp.mkdir(exist_ok=True)
    return Settings(main=MainSettings(temp_dir=temp), **sections)  # type: ignore[arg-type]


def test_sender_matches_file_names(
    tmp_path: Path, worklist_scp_factory: WorklistSCPFactory, storage_scp: StorageSCP
) -> None:
    scp = worklist_scp_factory(list(ITEMS))
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("PID1_photo.jpg", "PID2_photo.jpg", "PID9_photo.jpg", "nomatch.jpg"):
        _corpus.photo().save(photos / name, "JPEG")
    settings = _settings(tmp_path, non_dicom=NonDicomSettings(parse_file_name=True))
    sender = Sender(
        device_to(storage_scp.ae_title, storage_scp.port),
        settings=settings,
        querier=querier(scp.port, scp.ae_title),
    )
    report = sender.send([photos])
    states = {o.source.name: o for o in report.outcomes}
    assert states["PID1_photo.jpg"].state is SendState.SENT
    for name in ("PID2_photo.jpg", "PID9_photo.jpg", "nomatch.jpg"):
        assert states[name].state is SendState.FAILED, name
    assert "ACC2" in states["PID2_photo.jpg"].message  # the candidates are listed
    assert "does not fit" in states["nomatch.jpg"].message
    [received] = storage_scp.received
    assert received.path is not None
    sent = pydicom.dcmread(received.path)
    assert sent.StudyInstanceUID == ITEMS[0].StudyInstanceUID
    assert sent.AccessionNumber == "ACC1"
    assert sent.PatientID == "PID1"
    assert sent.RequestAttributesSequence[0].RequestedProcedureID == "RP-PID1"


def test_sender_matches_dicom_headers(
    tmp_path: Path, worklist_scp_factory: WorklistSCPFactory, storage_scp: StorageSCP
) -> None:
    scp = worklist_scp_factory(list(ITEMS))
    source = tmp_path / "a.dcm"
    write_secondary_capture(source)
    ds = pydicom.dcmread(source)
    ds.PatientID = "PID1"
    ds.AccessionNumber = ""
    ds.save_as(source)
    settings = _settings(tmp_path, dicom=DicomSettings(parse_dicom_for_worklist=True))
    sender = Sender(
        device_to(storage_scp.ae_title, storage_scp.port),
        settings=settings,
        querier=querier(scp.port, scp.ae_title),
    )
    report = sender.send([source])
    assert [o.state for o in report.outcomes] == [SendState.SENT]
    [received] = storage_scp.received
    assert received.path is not None
    sent = pydicom.dcmread(received.path)
    assert sent.AccessionNumber == "ACC1"  # was empty: filled
    assert "RequestAttributesSequence" in sent
    assert pydicom.dcmread(source).AccessionNumber == ""  # the source is untouched


def test_worklist_only_refuses_typed_data(
    tmp_path: Path, worklist_scp_factory: WorklistSCPFactory
) -> None:
    photo = tmp_path / "photo.jpg"
    _corpus.photo().save(photo, "JPEG")
    settings = _settings(tmp_path, non_dicom=NonDicomSettings(worklist_only=True))
    converter = Converter(settings)
    with pytest.raises(ConfigError, match="worklist_only"):
        converter.convert(
            [photo], Study(patient_id="T1", patient_name="Typed^Tom"), out_dir=tmp_path / "o"
        )
    scp = worklist_scp_factory([ITEMS[0]])
    [item] = querier(scp.port, scp.ae_title).find_worklist()
    report = converter.convert([photo], item.to_study(), out_dir=tmp_path / "out")
    [converted] = report.files
    assert pydicom.dcmread(converted.path).StudyInstanceUID == ITEMS[0].StudyInstanceUID
