"""sendtopacs_core: turn clinic files into valid DICOM and deliver them to PACS."""

from sendtopacs_core._results import (
    ConversionAction,
    ConversionFailure,
    ConversionReport,
    ConvertedFile,
)
from sendtopacs_core._version import __version__
from sendtopacs_core.convert import Converter
from sendtopacs_core.errors import (
    ConfigError,
    ConversionError,
    CorruptMediaError,
    DicomNetworkError,
    InvalidValueError,
    SendToPacsError,
    SendToPacsWarning,
    UnsupportedMediaError,
)
from sendtopacs_core.media.samples import make_sample_files
from sendtopacs_core.model import (
    ConversionType,
    ImageTransferSyntax,
    PatientSex,
    SopClassRule,
    Study,
    TagPattern,
    VideoFormat,
)
from sendtopacs_core.settings import (
    DicomSettings,
    MainSettings,
    NonDicomSettings,
    SettingExplanation,
    Settings,
)

__all__ = [
    "ConfigError",
    "ConversionAction",
    "ConversionError",
    "ConversionFailure",
    "ConversionReport",
    "ConversionType",
    "ConvertedFile",
    "Converter",
    "CorruptMediaError",
    "DicomNetworkError",
    "DicomSettings",
    "ImageTransferSyntax",
    "InvalidValueError",
    "MainSettings",
    "NonDicomSettings",
    "PatientSex",
    "SendToPacsError",
    "SendToPacsWarning",
    "SettingExplanation",
    "Settings",
    "SopClassRule",
    "Study",
    "TagPattern",
    "UnsupportedMediaError",
    "VideoFormat",
    "__version__",
    "make_sample_files",
]
