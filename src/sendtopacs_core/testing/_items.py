"""Worklist items for tests and the demo: a Scheduled Procedure Step as a worklist server
stores it (PS3.4 K.6.1.2)."""

from __future__ import annotations

import datetime as dt

from pydicom.dataset import Dataset

from sendtopacs_core.uids import derive_uid

__all__ = ["make_worklist_item"]


def make_worklist_item(
    *,
    patient_name: str,
    patient_id: str,
    accession_number: str,
    study_instance_uid: str | None = None,
    modality: str = "OT",
    scheduled_ae_title: str = "",
    start: dt.datetime | None = None,
    patient_birth_date: str = "",
    patient_sex: str = "",
    requested_procedure_id: str = "RP1",
    requested_procedure_description: str = "",
    scheduled_procedure_step_id: str = "SPS1",
    referring_physician_name: str = "",
    character_set: str | None = None,
) -> Dataset:
    """One worklist item (top-level keys and one Scheduled Procedure Step Sequence item).

    ``start`` defaults to now; ``character_set`` is written as Specific Character Set when
    given (else ISO_IR 192 when a value is not ASCII); ``study_instance_uid`` defaults to one
    derived from the patient ID and accession number (the same on every call).
    """
    when = start or dt.datetime.now(dt.UTC).astimezone()  # local time, as schedules are
    item = Dataset()
    texts = (patient_name, requested_procedure_description, referring_physician_name)
    charset = character_set or (None if all(t.isascii() for t in texts) else "ISO_IR 192")
    if charset:
        item.SpecificCharacterSet = charset
    item.AccessionNumber = accession_number
    item.ReferringPhysicianName = referring_physician_name
    item.PatientName = patient_name
    item.PatientID = patient_id
    item.PatientBirthDate = patient_birth_date
    item.PatientSex = patient_sex
    item.StudyInstanceUID = study_instance_uid or derive_uid(
        "study", ["worklist", patient_id, accession_number]
    )
    item.RequestedProcedureID = requested_procedure_id
    item.RequestedProcedureDescription = requested_procedure_description
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = scheduled_ae_title
    step.ScheduledProcedureStepStartDate = when.strftime("%Y%m%d")
    step.ScheduledProcedureStepStartTime = when.strftime("%H%M%S")
    step.ScheduledPerformingPhysicianName = ""
    step.ScheduledProcedureStepDescription = requested_procedure_description
    step.ScheduledProcedureStepID = scheduled_procedure_step_id
    item.ScheduledProcedureStepSequence = [step]
    return item
