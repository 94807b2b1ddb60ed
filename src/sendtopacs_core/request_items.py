"""The worklist request in an object: Request Attributes Sequence and coded procedures.

One mapping (IHE RAD TF-2 Appendix A) for both uses: objects we create (``iods``) and DICOM
files whose patient data a worklist item replaces (``net.matching``).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataset import Dataset

from sendtopacs_core.model import Code, Study

__all__ = ["code_items", "request_attributes_item"]


def code_items(codes: Iterable[Code]) -> list[Dataset]:
    """Code Sequence items (PS3.3 8.8): value, scheme, meaning (the value when none)."""
    items = []
    for code in codes:
        item = Dataset()
        item.CodeValue = code.value
        item.CodingSchemeDesignator = code.scheme
        item.CodeMeaning = code.meaning or code.value
        items.append(item)
    return items


def request_attributes_item(study: Study) -> Dataset | None:
    """The Request Attributes Sequence (0040,0275) item of a study that came from a worklist
    item, or ``None`` when the study names no requested procedure or scheduled step."""
    if not (study.requested_procedure_id or study.scheduled_procedure_step_id):
        return None
    item = Dataset()
    if study.accession_number:
        item.AccessionNumber = study.accession_number
    if study.study_instance_uid:
        item.StudyInstanceUID = study.study_instance_uid
    item.RequestedProcedureID = study.requested_procedure_id or ""
    if study.requested_procedure_description:
        item.RequestedProcedureDescription = study.requested_procedure_description
    if study.procedure_codes:
        item.RequestedProcedureCodeSequence = code_items(study.procedure_codes[:1])
    item.ScheduledProcedureStepID = study.scheduled_procedure_step_id or ""
    return item
