"""sendtopacs_core: turn clinic files into valid DICOM and deliver them to PACS."""

import logging as _logging

from sendtopacs_core._results import (
    ConversionAction,
    ConversionFailure,
    ConversionReport,
    ConvertedFile,
)
from sendtopacs_core._version import __version__
from sendtopacs_core.convert import Converter
from sendtopacs_core.errors import (
    AssociationAbortedError,
    AssociationFailedError,
    AssociationRejectedError,
    ConfigError,
    ContextNotAcceptedError,
    ConversionError,
    CorruptMediaError,
    DicomNetworkError,
    InvalidValueError,
    PeerUnreachableError,
    QueryFailedError,
    SendToPacsError,
    SendToPacsWarning,
    StoreFailedError,
    UnsupportedMediaError,
    WorklistMatchError,
)
from sendtopacs_core.forward import Forwarder, ForwardEvent
from sendtopacs_core.identity import Assignment
from sendtopacs_core.journal import FileState, Journal, JournalEntry
from sendtopacs_core.logfilter import PatientDataFilter
from sendtopacs_core.logfilter import install as _install_patient_data_filter
from sendtopacs_core.media.samples import make_sample_files
from sendtopacs_core.model import (
    Code,
    ConversionType,
    Device,
    FillMode,
    ImageTransferSyntax,
    PatientSex,
    QueryLevel,
    QueryModel,
    SopClassRule,
    Study,
    TagPattern,
    Timeouts,
    TlsOptions,
    VideoFormat,
    WorklistDevice,
)
from sendtopacs_core.monitor import MonitorRule, WatchMode
from sendtopacs_core.net._outcome import CommitmentState, FileOutcome, SendReport
from sendtopacs_core.net._status import SendState
from sendtopacs_core.net.commitment import CommitmentResult
from sendtopacs_core.net.matching import match_file_names, pick_worklist_study
from sendtopacs_core.net.querier import (
    Querier,
    QueryResult,
    StudyQuery,
    WorklistItem,
    WorklistQuery,
)
from sendtopacs_core.net.sender import Sender
from sendtopacs_core.passwords import hash_password, password_problems, verify_password
from sendtopacs_core.settings import (
    ApiSettings,
    DicomSettings,
    MainSettings,
    NonDicomSettings,
    SettingExplanation,
    Settings,
)

# A library logs, it does not print: without a handler of the application, nothing shows.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
# pynetdicom and pydicom log data set dumps (patient data) at INFO: make them DEBUG records.
_install_patient_data_filter()

__all__ = [
    "ApiSettings",
    "Assignment",
    "AssociationAbortedError",
    "AssociationFailedError",
    "AssociationRejectedError",
    "Code",
    "CommitmentResult",
    "CommitmentState",
    "ConfigError",
    "ContextNotAcceptedError",
    "ConversionAction",
    "ConversionError",
    "ConversionFailure",
    "ConversionReport",
    "ConversionType",
    "ConvertedFile",
    "Converter",
    "CorruptMediaError",
    "Device",
    "DicomNetworkError",
    "DicomSettings",
    "FileOutcome",
    "FileState",
    "FillMode",
    "ForwardEvent",
    "Forwarder",
    "ImageTransferSyntax",
    "InvalidValueError",
    "Journal",
    "JournalEntry",
    "MainSettings",
    "MonitorRule",
    "NonDicomSettings",
    "PatientDataFilter",
    "PatientSex",
    "PeerUnreachableError",
    "Querier",
    "QueryFailedError",
    "QueryLevel",
    "QueryModel",
    "QueryResult",
    "SendReport",
    "SendState",
    "SendToPacsError",
    "SendToPacsWarning",
    "Sender",
    "SettingExplanation",
    "Settings",
    "SopClassRule",
    "StoreFailedError",
    "Study",
    "StudyQuery",
    "TagPattern",
    "Timeouts",
    "TlsOptions",
    "UnsupportedMediaError",
    "VideoFormat",
    "WatchMode",
    "WorklistDevice",
    "WorklistItem",
    "WorklistMatchError",
    "WorklistQuery",
    "__version__",
    "hash_password",
    "make_sample_files",
    "match_file_names",
    "password_problems",
    "pick_worklist_study",
    "verify_password",
]
