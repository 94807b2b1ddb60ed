"""The exception tree of sendtopacs.

Every error the library raises on purpose derives from :class:`SendToPacsError`::

    SendToPacsError
    ├── ConfigError                                   settings.json and options
    ├── InvalidValueError(SendToPacsError, ValueError) domain / VR validation
    ├── WorklistMatchError                            no worklist item, or several, match a file
    ├── ConversionError                               a file that cannot become DICOM
    │   ├── UnsupportedMediaError                     a kind of file we do not convert
    │   └── CorruptMediaError                         a file that claims a kind but is broken
    └── DicomNetworkError                             talking to a peer failed
        └── AssociationFailedError                    no association: refused, timed out,
                                                      rejected (with the reason) or aborted

Errors keep their context in attributes (``path``, ``key_path``, ``value``) and format it in
``__str__``: *what failed: why (the value found; the value expected)*.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "AssociationFailedError",
    "ConfigError",
    "ConversionError",
    "CorruptMediaError",
    "DicomNetworkError",
    "InvalidValueError",
    "SendToPacsError",
    "SendToPacsWarning",
    "UnsupportedMediaError",
    "WorklistMatchError",
]


class SendToPacsError(Exception):
    """Root of every error raised by sendtopacs."""


class SendToPacsWarning(UserWarning):
    """A recoverable oddity: the work was done, but the user should know something."""


class ConfigError(SendToPacsError):
    """A settings file or option is invalid.

    Parameters
    ----------
    message
        What is wrong, ideally naming the key path (``$.non_dicom.modalities[0]``) and value.
    path
        The settings file, when the error comes from one.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        return f"{self.path}: {self.message}"


class InvalidValueError(SendToPacsError, ValueError):
    """A value does not meet its DICOM value representation or domain rule.

    Parameters
    ----------
    field
        The name of the field or attribute (``patient_name``, ``AE title``).
    value
        The value found.
    reason
        Why it is invalid, stating what is expected.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {field} {value!r}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class ConversionError(SendToPacsError):
    """A file could not be converted to DICOM.

    Parameters
    ----------
    path
        The input file.
    reason
        The cause, in words.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"cannot convert {os.fspath(path)}: {reason}")
        self.path = Path(path)
        self.reason = reason

    def __reduce__(self) -> tuple[type[ConversionError], tuple[Path, str]]:
        return (type(self), (self.path, self.reason))


class UnsupportedMediaError(ConversionError):
    """The file is of a kind sendtopacs does not convert (unknown extension or format)."""


class CorruptMediaError(ConversionError):
    """The file claims to be of a supported kind but cannot be read (truncated, fake, empty)."""


class DicomNetworkError(SendToPacsError):
    """Talking to a DICOM peer failed."""


class AssociationFailedError(DicomNetworkError):
    """No association could be established with the device; the message says why.

    Attributes
    ----------
    transient
        Whether trying again later may help (refused connection, timeout, transient
        rejection); a permanent rejection (unknown AE title) will not go away by itself.
    rejection
        ``(result, source, reason)`` of an A-ASSOCIATE-RJ, else ``None``.
    """

    def __init__(
        self, message: str, *, transient: bool, rejection: tuple[int, int, int] | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.rejection = rejection


class WorklistMatchError(SendToPacsError):
    """No worklist item, or several, match a file; the message lists the candidates.

    Attributes
    ----------
    candidates
        The matching :class:`~sendtopacs_core.WorklistItem` objects when there were several.
    """

    def __init__(self, message: str, candidates: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.candidates = candidates
