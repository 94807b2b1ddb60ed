"""Encapsulated PDF (PS3.3 A.45.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from sendtopacs_core.iods._modules import (
    ObjectContext,
    add_file_meta,
    add_general_equipment_module,
    add_general_study_module,
    add_patient_module,
    add_request_attributes,
    add_sc_equipment_module,
    add_sop_common_module,
    da,
    local,
    tm,
)

if TYPE_CHECKING:
    from sendtopacs_core.media.pdf import PdfDocument

__all__ = ["build_encapsulated_pdf"]


def build_encapsulated_pdf(document: PdfDocument, *, context: ObjectContext, title: str) -> Dataset:
    """Build an Encapsulated PDF dataset with its file meta.

    The Modality is always ``DOC``; Burned In Annotation is ``YES`` unless the rule says the
    document shows no identifiers. Content Date/Time and Acquisition DateTime come from the
    PDF's creation date when it has one, else from the conversion time.
    """
    dataset = Dataset()
    add_file_meta(dataset, context, ExplicitVRLittleEndian)
    add_patient_module(dataset, context.study)
    add_general_study_module(dataset, context)
    # Encapsulated Document Series (PS3.3 C.24.1)
    dataset.Modality = "DOC"
    dataset.SeriesInstanceUID = context.series_instance_uid
    add_request_attributes(dataset, context.study)
    dataset.SeriesNumber = context.series_number
    add_general_equipment_module(dataset, context)
    add_sc_equipment_module(dataset, context)
    dataset.Modality = "DOC"
    # Encapsulated Document (PS3.3 C.24.2)
    created = document.creation_date
    content = local(created, context.timezone) if created else None
    dataset.InstanceNumber = context.instance_number
    # Type 2: the document's own creation time, else the day of the conversion and no time.
    dataset.ContentDate = da(content or context.day)
    dataset.ContentTime = tm(content) if content else ""
    dataset.AcquisitionDateTime = content.strftime("%Y%m%d%H%M%S") if content else ""
    dataset.BurnedInAnnotation = "NO" if context.burned_in_annotation is False else "YES"
    dataset.DocumentTitle = title
    dataset.ConceptNameCodeSequence = []
    dataset.MIMETypeOfEncapsulatedDocument = "application/pdf"
    dataset.EncapsulatedDocument = document.data
    dataset.EncapsulatedDocumentLength = len(document.data)
    add_sop_common_module(dataset, context)
    return dataset
