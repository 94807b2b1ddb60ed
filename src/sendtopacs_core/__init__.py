"""sendtopacs_core: turn clinic files into valid DICOM and deliver them to PACS."""

from sendtopacs_core._version import __version__
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
from sendtopacs_core.model import (
    ConversionType,
    ImageTransferSyntax,
    PatientSex,
    SopClassRule,
    Study,
    TagPattern,
    VideoFormat,
)

__all__ = [
    "ConfigError",
    "ConversionError",
    "ConversionType",
    "CorruptMediaError",
    "DicomNetworkError",
    "ImageTransferSyntax",
    "InvalidValueError",
    "PatientSex",
    "SendToPacsError",
    "SendToPacsWarning",
    "SopClassRule",
    "Study",
    "TagPattern",
    "UnsupportedMediaError",
    "VideoFormat",
    "__version__",
]
