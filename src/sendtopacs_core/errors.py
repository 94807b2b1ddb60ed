"""The exception tree of sendtopacs.

Every error the library raises on purpose derives from :class:`SendToPacsError`::

    SendToPacsError
    ├── ConfigError                                   settings.json and options
    ├── InvalidValueError(SendToPacsError, ValueError) domain / VR validation
    ├── WorklistMatchError                            no worklist item, or several, match a file
    ├── ConversionError                               a file that cannot become DICOM
    │   ├── UnsupportedMediaError                     a kind of file we do not convert
    │   └── CorruptMediaError                         a file that claims a kind but is broken
    └── DicomNetworkError(peer, transient)            talking to a peer failed
        ├── AssociationFailedError(rejection)         no association, or it was lost
        │   ├── PeerUnreachableError                  refused, timed out, TLS handshake failed
        │   ├── AssociationRejectedError              A-ASSOCIATE-RJ (result, source, reason)
        │   └── AssociationAbortedError               aborted, or no answer in time
        ├── ContextNotAcceptedError(sop_class_uids)   no proposed presentation context accepted
        ├── StoreFailedError(status, sop_instance_uid)  a C-STORE failure status
        └── QueryFailedError(status)                  a C-FIND failure status

Errors keep their context in attributes (``path``, ``field``, ``value``, ``peer``,
``status``...) and format it in ``__str__``: *what failed: why (the value found; the value
expected)*, with the peer written ``AE@host:port`` and statuses as ``0xA700``. Every network
error names its ``peer``, and ``transient`` says whether trying again later, unchanged, may
help. Catching :class:`AssociationFailedError` catches its three leaves.

A file the PACS refuses within a batch is not raised: it is that file's ``FileOutcome`` (its
status and message) in the ``SendReport``, so one bad file never hides the others; what stops
the whole batch (no association) raises. :class:`StoreFailedError` is the exception for a
single refused C-STORE where a caller needs one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "AssociationAbortedError",
    "AssociationFailedError",
    "AssociationRejectedError",
    "ConfigError",
    "ContextNotAcceptedError",
    "ConversionError",
    "CorruptMediaError",
    "DicomNetworkError",
    "InvalidValueError",
    "PeerUnreachableError",
    "QueryFailedError",
    "SendToPacsError",
    "SendToPacsWarning",
    "StoreFailedError",
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


def _restore(cls: type[DicomNetworkError], message: str, state: dict[str, Any]) -> Any:
    """Rebuild a network error from :meth:`DicomNetworkError.__reduce__` (pickle, processes)."""
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class DicomNetworkError(SendToPacsError):
    """Talking to a DICOM peer failed.

    Parameters
    ----------
    message
        What failed and why, naming the peer.
    peer
        The peer as ``AE@host:port`` (``None`` only when no peer is concerned).
    transient
        Whether the same request may succeed later, unchanged (see each subclass).

    Attributes
    ----------
    peer, transient
        As given.
    """

    def __init__(self, message: str, *, peer: str | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.peer = peer
        self.transient = transient

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, tuple[type[DicomNetworkError], str, dict[str, Any]]]:
        return (_restore, (type(self), self.message, dict(vars(self))))


class AssociationFailedError(DicomNetworkError):
    """No association with the device, or it was lost: the message says why.

    The parent of :class:`PeerUnreachableError`, :class:`AssociationRejectedError` and
    :class:`AssociationAbortedError`; catch it for any of them.

    Attributes
    ----------
    peer
        The device as ``AE@host:port``.
    transient
        Whether trying again later may help (refused connection, timeout, transient
        rejection, abort); a permanent rejection (unknown AE title) will not go away by itself.
    rejection
        ``(result, source, reason)`` of an A-ASSOCIATE-RJ, else ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        rejection: tuple[int, int, int] | None = None,
        peer: str | None = None,
    ) -> None:
        super().__init__(message, peer=peer, transient=transient)
        self.rejection = rejection


class PeerUnreachableError(AssociationFailedError):
    """The device could not be reached: connection refused or timed out, no answer to the
    association request, or a failed TLS handshake. Transient: it may be back later.
    """

    def __init__(self, message: str, *, peer: str, transient: bool = True) -> None:
        super().__init__(message, transient=transient, peer=peer)


class AssociationRejectedError(AssociationFailedError):
    """The device answered the association request with an A-ASSOCIATE-RJ.

    ``rejection`` holds its ``(result, source, reason)``; ``transient`` is true for result 2
    (rejected transiently, e.g. temporary congestion) and false for result 1 (rejected
    permanently, e.g. calling AE title not recognised).
    """

    def __init__(self, message: str, *, peer: str, rejection: tuple[int, int, int]) -> None:
        super().__init__(message, transient=rejection[0] == 2, rejection=rejection, peer=peer)


class AssociationAbortedError(AssociationFailedError):
    """The association was aborted (A-ABORT, a closed connection, or no answer in time).

    Transient: a new association may succeed.
    """

    def __init__(self, message: str, *, peer: str, transient: bool = True) -> None:
        super().__init__(message, transient=transient, peer=peer)


class ContextNotAcceptedError(DicomNetworkError):
    """The device accepted none of the presentation contexts proposed (SOP class and
    transfer syntaxes): it does not offer that service to us. Permanent until the device or
    our settings change.

    Attributes
    ----------
    peer
        The device as ``AE@host:port``.
    sop_class_uids
        The abstract syntaxes proposed and not accepted.
    """

    def __init__(self, message: str, *, peer: str, sop_class_uids: tuple[str, ...] = ()) -> None:
        super().__init__(message, peer=peer)
        self.sop_class_uids = sop_class_uids


class StoreFailedError(DicomNetworkError):
    """The device answered a C-STORE with a failure status: the object was not stored.

    Attributes
    ----------
    peer
        The device as ``AE@host:port``.
    status
        The C-STORE status (PS3.4 B.2.3, PS3.7 Annex C), e.g. ``0xA700``.
    sop_instance_uid
        The SOP Instance UID of the object sent.
    transient
        Whether the status says a retry may succeed (A7xx out of resources, 0213 resource
        limitation).
    """

    def __init__(
        self,
        message: str,
        *,
        peer: str,
        status: int,
        sop_instance_uid: str | None,
        transient: bool = False,
    ) -> None:
        super().__init__(message, peer=peer, transient=transient)
        self.status = status
        self.sop_instance_uid = sop_instance_uid


class QueryFailedError(DicomNetworkError):
    """The device answered a C-FIND (worklist or Query/Retrieve) with a failure status.

    Attributes
    ----------
    peer
        The device as ``AE@host:port``.
    status
        The final C-FIND status (PS3.4 C.4.1.1.4, K.4.1.1.4, PS3.7 Annex C), e.g. ``0xA700``.
    transient
        Whether the status says a retry may succeed (A7xx out of resources, 0213 resource
        limitation).
    """

    def __init__(self, message: str, *, peer: str, status: int, transient: bool = False) -> None:
        super().__init__(message, peer=peer, transient=transient)
        self.status = status


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
