"""One function per PS3.3 module, shared by the IOD builders.

Type 1 attributes get a value or the builder raises; Type 2 attributes are always written
(empty when unknown); Type 3 attributes only when known.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

from sendtopacs_core._version import __version__
from sendtopacs_core.model import ConversionType, Study
from sendtopacs_core.request_items import code_items, request_attributes_item
from sendtopacs_core.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = [
    "MANUFACTURER",
    "ObjectContext",
    "add_file_meta",
    "add_general_equipment_module",
    "add_general_study_module",
    "add_lossy_compression",
    "add_patient_module",
    "add_request_attributes",
    "add_sc_equipment_module",
    "add_sop_common_module",
    "da",
    "format_ds",
    "local",
    "tm",
]

MANUFACTURER = "sendtopacs"


@attrs.frozen(kw_only=True)
class ObjectContext:
    """What one new object needs besides its content: identity, study, series and equipment."""

    study: Study
    study_instance_uid: str
    series_instance_uid: str
    series_number: int
    instance_number: int
    sop_class_uid: str
    sop_instance_uid: str
    modality: str
    conversion_type: ConversionType
    burned_in_annotation: bool | None
    institution_name: str | None
    station_name: str | None
    source_ae_title: str | None
    day: dt.date
    """The day of the conversion: the only value the clock gives (see :mod:`..identity`)."""
    study_date: str
    """The Study Date written: typed, the day for a day's study, or empty."""
    timezone: dt.tzinfo | None = None
    """The conversion's time zone, for times the source records with another one."""
    source_time: dt.datetime | None = None
    """When the input file was last written (its modification time, local), for objects that
    need a content time the source does not record."""


def da(value: dt.date) -> str:
    return value.strftime("%Y%m%d")


def tm(value: dt.datetime) -> str:
    return value.strftime("%H%M%S")


def local(value: dt.datetime, timezone: dt.tzinfo | None) -> dt.datetime:
    """A recorded time in the conversion's time zone (as recorded when it has none)."""
    if value.tzinfo is None:
        return value
    if timezone is not None:
        return value.astimezone(timezone)
    return value.astimezone().replace(tzinfo=None)


def format_ds(value: float) -> str:
    """A Decimal String of at most 16 characters."""
    text = f"{value:.6g}"
    if "e" in text:
        text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text[:16]


def add_file_meta(dataset: Dataset, context: ObjectContext, transfer_syntax: UID) -> None:
    """File Meta Information (PS3.10 §7.1); the media UIDs equal the SOP UIDs."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(context.sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(context.sop_instance_uid)
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if context.source_ae_title:
        meta.SourceApplicationEntityTitle = context.source_ae_title
    dataset.file_meta = meta


def add_patient_module(dataset: Dataset, study: Study) -> None:
    """Patient Module (PS3.3 C.7.1.1)."""
    dataset.PatientName = study.patient_name or ""
    dataset.PatientID = study.patient_id or ""
    dataset.PatientBirthDate = study.patient_birth_date or ""
    dataset.PatientSex = study.patient_sex or ""


def add_general_study_module(dataset: Dataset, context: ObjectContext) -> None:
    """General Study Module (PS3.3 C.7.2.1); the date of a day's study is the conversion's.

    The Study Time is written only when typed: a day's study holds the files of a whole day.
    """
    study = context.study
    dataset.StudyInstanceUID = context.study_instance_uid
    dataset.StudyDate = context.study_date
    dataset.StudyTime = study.study_time or ""
    dataset.ReferringPhysicianName = study.referring_physician_name or ""
    dataset.StudyID = study.study_id or ""
    dataset.AccessionNumber = study.accession_number or ""
    if study.study_description:
        dataset.StudyDescription = study.study_description
    if study.procedure_codes:
        dataset.ProcedureCodeSequence = code_items(study.procedure_codes)


def add_request_attributes(dataset: Dataset, study: Study) -> None:
    """Request Attributes Sequence (0040,0275) of the General Series Module (PS3.3 C.7.3.1),
    when the study comes from a worklist item (IHE RAD TF-2 Appendix A)."""
    item = request_attributes_item(study)
    if item is not None:
        dataset.RequestAttributesSequence = [item]


def add_general_equipment_module(dataset: Dataset, context: ObjectContext) -> None:
    """General Equipment Module (PS3.3 C.7.5.1)."""
    dataset.Manufacturer = MANUFACTURER
    if context.institution_name:
        dataset.InstitutionName = context.institution_name
    if context.station_name:
        dataset.StationName = context.station_name
    dataset.SoftwareVersions = __version__


def add_sc_equipment_module(dataset: Dataset, context: ObjectContext) -> None:
    """SC Equipment Module (PS3.3 C.8.6.1)."""
    dataset.ConversionType = str(context.conversion_type)
    dataset.Modality = context.modality
    dataset.SecondaryCaptureDeviceManufacturer = MANUFACTURER
    dataset.SecondaryCaptureDeviceManufacturerModelName = "sendtopacs"
    dataset.SecondaryCaptureDeviceSoftwareVersions = __version__


def add_lossy_compression(
    dataset: Dataset, *, methods: Sequence[str], ratios: Sequence[float], lossy: bool
) -> None:
    """Lossy Image Compression attributes (PS3.3 C.7.6.1.1.5): ``01`` once lossy, ever after."""
    dataset.LossyImageCompression = "01" if lossy else "00"
    if methods:
        dataset.LossyImageCompressionMethod = list(methods) if len(methods) > 1 else methods[0]
    if ratios:
        texts = [format_ds(ratio) for ratio in ratios]
        dataset.LossyImageCompressionRatio = texts if len(texts) > 1 else texts[0]


def add_sop_common_module(dataset: Dataset, context: ObjectContext) -> None:
    """SOP Common Module (PS3.3 C.12.1); Specific Character Set is set by the charset step."""
    dataset.SOPClassUID = context.sop_class_uid
    dataset.SOPInstanceUID = context.sop_instance_uid
    dataset.InstanceCreationDate = da(context.day)
