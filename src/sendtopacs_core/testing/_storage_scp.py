"""An in-process Storage SCP ("test PACS") built on a pynetdicom ``AE``.

`StorageSCP` accepts associations on a free local port, answers C-ECHO and C-STORE, records
every instance it receives (`ReceivedInstance`) and can misbehave on demand: scripted statuses,
delays, a peer that never answers, aborts, rejected associations, restricted transfer syntaxes
and TLS; with ``storage_commitment`` it is also a Storage Commitment SCP that reports on the
request's association. It never touches pynetdicom's global configuration and does not
import pytest, so the ``sendtopacs demo`` command can use it as a local PACS.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

import attrs
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import (
    HEVCM10P51,
    HEVCMP51,
    JPEG2000,
    MPEG2MPHL,
    MPEG2MPML,
    MPEG4HP41,
    MPEG4HP41BD,
    MPEG4HP42STEREO,
    MPEG4HP422D,
    MPEG4HP423D,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import (
    AE,
    AllStoragePresentationContexts,
    VerificationPresentationContexts,
    evt,
)
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

from sendtopacs_core.testing._commitment import CommitmentService
from sendtopacs_core.testing._listener import ListeningSCP

__all__ = ["ReceivedInstance", "Rejection", "StorageSCP"]

LOGGER = logging.getLogger(__name__)

#: Transfer syntaxes accepted for every storage SOP class when none are given.
DEFAULT_TRANSFER_SYNTAXES: Final[tuple[str, ...]] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
    MPEG2MPML,
    MPEG2MPHL,
    MPEG4HP41,
    MPEG4HP41BD,
    MPEG4HP422D,
    MPEG4HP423D,
    MPEG4HP42STEREO,
    HEVCMP51,
    HEVCM10P51,
)

#: Valid A-ASSOCIATE-RJ reasons per source (PS3.8 Table 9-21).
_REASONS_BY_SOURCE: Final[dict[int, frozenset[int]]] = {
    1: frozenset({1, 2, 3, 7}),
    2: frozenset({1, 2}),
    3: frozenset({1, 2}),
}
#: Success and warning statuses after which the instance counts as stored (PS3.4 Annex B.2.3).
_STORED_STATUSES: Final = frozenset({0x0000, 0x0001, 0x0107, 0x0116})
_UNSAFE_FILENAME_CHARS: Final = re.compile(r"[^0-9A-Za-z._-]")


def _check_reason(instance: Rejection, attribute: attrs.Attribute[int], value: int) -> None:
    """Check that ``reason`` is valid for ``source`` (PS3.8 Table 9-21)."""
    allowed = _REASONS_BY_SOURCE.get(instance.source, frozenset())
    if value not in allowed:
        msg = (
            f"invalid {attribute.name} for source {instance.source}: {value} "
            f"(expected one of {sorted(allowed)})"
        )
        raise ValueError(msg)


@attrs.frozen(kw_only=True)
class Rejection:
    """How `StorageSCP` rejects every association (the A-ASSOCIATE-RJ fields, PS3.8 9.3.4).

    Parameters
    ----------
    result : int
        ``1`` rejected permanent, ``2`` rejected transient.
    source : int
        ``1`` service user, ``2`` service provider (ACSE), ``3`` service provider
        (presentation).
    reason : int
        The diagnostic; for source 1: ``1`` no reason, ``2`` application context not supported,
        ``3`` calling AE title not recognised, ``7`` called AE title not recognised; for
        source 2: ``1`` no reason, ``2`` protocol version not supported; for source 3: ``1``
        temporary congestion, ``2`` local limit exceeded.
    """

    result: int = attrs.field(validator=attrs.validators.in_((1, 2)))
    source: int = attrs.field(validator=attrs.validators.in_((1, 2, 3)))
    reason: int = attrs.field(validator=_check_reason)


@attrs.frozen(kw_only=True)
class ReceivedInstance:
    """One C-STORE request received by `StorageSCP`.

    Parameters
    ----------
    sop_class_uid, sop_instance_uid : str
        Affected SOP Class and Instance UIDs from the C-STORE request.
    transfer_syntax_uid : str
        The transfer syntax of the accepted presentation context.
    calling_ae_title, called_ae_title : str
        The AE titles of the association.
    status : int
        The status we answered.
    size : int
        Bytes of the encoded dataset (without file meta).
    path : Path or None
        The file written, if the SCP has a storage directory and the status stores.
    patient_name_bytes : bytes or None
        The raw value of Patient's Name (0010,0010) as received (undecoded, with any
        trailing padding), for character set checks.
    character_set : str or None
        Specific Character Set (0008,0005) as received (multiple values joined by ``\\``).
    """

    sop_class_uid: str = attrs.field(validator=attrs.validators.instance_of(str))
    sop_instance_uid: str = attrs.field(validator=attrs.validators.instance_of(str))
    transfer_syntax_uid: str = attrs.field(validator=attrs.validators.instance_of(str))
    calling_ae_title: str = attrs.field(validator=attrs.validators.instance_of(str))
    called_ae_title: str = attrs.field(validator=attrs.validators.instance_of(str))
    status: int = attrs.field(validator=attrs.validators.instance_of(int))
    size: int = attrs.field(validator=attrs.validators.ge(0))
    path: Path | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Path))
    )
    patient_name_bytes: bytes | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(bytes))
    )
    character_set: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str))
    )


def safe_filename(sop_instance_uid: str) -> str:
    """Return a file name for `sop_instance_uid` that cannot leave its directory.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``, and leading dots
    are dropped, so ``../../evil`` gives ``_.._evil.dcm``.
    """
    name = _UNSAFE_FILENAME_CHARS.sub("_", sop_instance_uid).lstrip(".")
    return f"{name or 'unnamed'}.dcm"


def _is_stored(status: int) -> bool:
    """Return whether a C-STORE answered with `status` leaves the instance stored."""
    return status in _STORED_STATUSES or status & 0xF000 == 0xB000


def _raw_value(ds: Dataset, tag: int) -> bytes | None:
    """Return the raw bytes of `tag` in `ds`, without decoding them, or ``None``."""
    if tag not in ds:
        return None
    # ``get_item`` returns the still-undecoded RawDataElement unless the value was accessed.
    elem: DataElement | RawDataElement = ds.get_item(tag)
    value: object = elem.value
    if isinstance(value, bytes):
        return value
    original = getattr(value, "original_string", None)
    return original if isinstance(original, bytes) else None


def _text_value(ds: Dataset, tag: int) -> str | None:
    r"""Return the value of `tag` as ASCII text (multiple values kept ``\``-separated)."""
    raw = _raw_value(ds, tag)
    if raw is not None:
        return raw.decode("ascii", errors="replace").strip(" \x00")
    if tag not in ds:
        return None
    value: object = ds[tag].value  # already decoded: str or MultiValue
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return "\\".join(str(v) for v in value)
    return None


class StorageSCP(ListeningSCP):
    """A Storage SCP on a local port that records what it receives, for tests and demos.

    Use it as a context manager or call `start` and `stop` (both idempotent).

    Parameters
    ----------
    ae_title : str
        Our AE title (the one peers call).
    host : str
        The address to listen on.
    port : int
        The port to listen on; ``0`` lets the OS pick a free one (see `port`).
    storage_dir : str or os.PathLike or None
        If given, every stored instance is written there as ``<SOP Instance UID>.dcm`` (file
        meta and dataset as received; the name sanitised).
    statuses : Sequence[int]
        Statuses to answer, in order, to the C-STORE requests we answer; ``0x0000`` afterwards.
    status_for : Callable[[ReceivedInstance], int] or None
        Chooses the status instead of `statuses`; it gets the instance with ``status=0``.
    error_comment : str or None
        Error Comment (0000,0902) sent with every non-success status.
    delay_s : float
        Seconds to wait before answering each C-STORE.
    never_answer : bool
        Never answer a C-STORE (a hung peer); `stop` aborts those associations.
    abort_after : int or None
        Abort the association, without answering, on C-STORE number `abort_after` (1-based,
        over the lifetime of the SCP).
    reject : Rejection or None
        Reject every association with this result, source and reason.
    maximum_associations : int
        Concurrent associations accepted; pynetdicom rejects more with (2, 3, 2).
    transfer_syntaxes : Sequence[str] or None
        Transfer syntaxes accepted for every SOP class; ``None`` for a wide list
        (`DEFAULT_TRANSFER_SYNTAXES`).
    sop_classes : Sequence[str] or None
        Storage SOP classes accepted; ``None`` for all of pynetdicom's storage classes.
    tls : ssl.SSLContext or None
        A server-side TLS context.
    storage_commitment : bool
        Also answer Storage Commitment requests (PS3.4 J): the report comes on the request's
        association; the instances stored are committed, the others fail with 0x0112 (No
        such object instance).
    commitment_failure_for : Callable[[str], int or None] or None
        A Failure Reason for a stored SOP Instance UID that is not to be committed (a PACS
        that lost it), or ``None`` to commit it.
    commitment_silent : bool
        Accept storage commitment requests but never send the report.

    Raises
    ------
    ValueError
        If `delay_s` is negative, `abort_after` or `maximum_associations` is below 1, or
        `error_comment` is longer than 64 characters (LO).
    """

    _label = "storage SCP"

    def __init__(
        self,
        *,
        ae_title: str = "TESTPACS",
        host: str = "127.0.0.1",
        port: int = 0,
        storage_dir: str | os.PathLike[str] | None = None,
        statuses: Sequence[int] = (),
        status_for: Callable[[ReceivedInstance], int] | None = None,
        error_comment: str | None = None,
        delay_s: float = 0.0,
        never_answer: bool = False,
        abort_after: int | None = None,
        reject: Rejection | None = None,
        maximum_associations: int = 10,
        transfer_syntaxes: Sequence[str] | None = None,
        sop_classes: Sequence[str] | None = None,
        tls: ssl.SSLContext | None = None,
        storage_commitment: bool = False,
        commitment_failure_for: Callable[[str], int | None] | None = None,
        commitment_silent: bool = False,
    ) -> None:
        if delay_s < 0:
            msg = f"invalid delay_s: {delay_s} (expected >= 0)"
            raise ValueError(msg)
        if abort_after is not None and abort_after < 1:
            msg = f"invalid abort_after: {abort_after} (expected >= 1)"
            raise ValueError(msg)
        if error_comment is not None and len(error_comment) > 64:
            msg = f"invalid error_comment: {len(error_comment)} characters (expected <= 64)"
            raise ValueError(msg)
        if maximum_associations < 1:
            msg = f"invalid maximum_associations: {maximum_associations} (expected >= 1)"
            raise ValueError(msg)
        self._ae_title = ae_title
        self._host = host
        self._requested_port = port
        self._storage_dir = None if storage_dir is None else Path(storage_dir)
        self._statuses: Iterator[int] = iter(tuple(statuses))
        self._status_for = status_for
        self._error_comment = error_comment
        self._delay_s = delay_s
        self._never_answer = never_answer
        self._abort_after = abort_after
        self._reject = reject
        self._tls = tls
        self._lock = threading.Lock()
        self._received: list[ReceivedInstance] = []
        self._associations = 0
        self._c_store_count = 0
        self._init_listener()
        self._ae = self._make_ae(
            maximum_associations=maximum_associations,
            transfer_syntaxes=transfer_syntaxes,
            sop_classes=sop_classes,
        )
        self._commitment: CommitmentService | None = None
        if storage_commitment:
            self._commitment = CommitmentService(
                stored=self._stored,
                failure_for=commitment_failure_for,
                silent=commitment_silent,
                stopping=self._stopping,
            )
            self._ae.add_supported_context(
                StorageCommitmentPushModel, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
            )

    def _make_ae(
        self,
        *,
        maximum_associations: int,
        transfer_syntaxes: Sequence[str] | None,
        sop_classes: Sequence[str] | None,
    ) -> AE:
        """Return the AE with its supported presentation contexts."""
        ae = AE(ae_title=self._ae_title)
        ae.maximum_associations = maximum_associations
        if transfer_syntaxes is None:
            transfer_syntaxes = DEFAULT_TRANSFER_SYNTAXES
        syntaxes = list(transfer_syntaxes)
        if sop_classes is None:
            classes = [str(cx.abstract_syntax) for cx in AllStoragePresentationContexts]
        else:
            classes = list(sop_classes)
        for sop_class in classes:
            ae.add_supported_context(sop_class, syntaxes)
        for cx in VerificationPresentationContexts:
            ae.add_supported_context(str(cx.abstract_syntax), cx.transfer_syntax)
        return ae

    # -- lifecycle -------------------------------------------------------------------------------

    def _handlers(self) -> list[EventHandlerType]:
        handlers: list[EventHandlerType] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_C_ECHO, self._on_c_echo),
            (evt.EVT_C_STORE, self._on_c_store),
        ]
        if self._commitment is not None:
            handlers.append((evt.EVT_N_ACTION, self._commitment.on_n_action))
        return handlers

    def _before_start(self) -> None:
        if self._storage_dir is not None:
            self._storage_dir.mkdir(parents=True, exist_ok=True)

    def _ssl_context(self) -> ssl.SSLContext | None:
        return self._tls

    @property
    def received(self) -> list[ReceivedInstance]:
        """A snapshot of the instances received and answered, in order."""
        with self._lock:
            return list(self._received)

    @property
    def commitment_requests(self) -> list[frozenset[str]]:
        """The SOP Instance UIDs of each storage commitment request received, in order."""
        return [] if self._commitment is None else self._commitment.requests

    def _stored(self) -> dict[str, str]:
        """SOP Instance UID -> SOP Class UID of the instances answered with a storing status."""
        with self._lock:
            return {
                item.sop_instance_uid: item.sop_class_uid
                for item in self._received
                if _is_stored(item.status)
            }

    @property
    def associations(self) -> int:
        """Number of associations accepted so far."""
        with self._lock:
            return self._associations

    @property
    def c_store_count(self) -> int:
        """Number of C-STORE requests received, including aborted and unanswered ones."""
        with self._lock:
            return self._c_store_count

    def duplicates(self) -> dict[str, int]:
        """Return SOP Instance UIDs received more than once, with their counts."""
        counts = Counter(item.sop_instance_uid for item in self.received)
        return {uid: n for uid, n in counts.items() if n > 1}

    def wait_for(self, count: int, *, timeout: float = 5.0) -> bool:
        """Wait until at least `count` instances were received; return whether they were."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self._received) >= count:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    # -- event handlers (run on pynetdicom's association threads) --------------------------------

    def _on_requested(self, event: Event) -> None:
        """Reject the association if asked to (before pynetdicom negotiates it)."""
        if self._reject is None:
            return
        rejection = self._reject
        assoc = event.assoc
        assoc.acse.send_reject(rejection.result, rejection.source, rejection.reason)
        # As pynetdicom does for its own rejections: wait until the A-ASSOCIATE-RJ is sent
        # and the peer closed the connection, so the socket is not shut down under it.
        assoc.kill()

    def _on_established(self, event: Event) -> None:
        with self._lock:
            self._associations += 1

    def _on_c_echo(self, event: Event) -> int:
        return 0x0000

    def _on_c_store(self, event: Event) -> int | Dataset:
        """Record the C-STORE request, then answer, delay, hang or abort as configured."""
        with self._lock:
            self._c_store_count += 1
            number = self._c_store_count
        if self._abort_after == number:
            event.assoc.abort()
            return 0xC000  # not sent: the association is no longer established
        if self._never_answer:
            self._stopping.wait()
            event.assoc.abort()
            return 0xC000
        if self._delay_s and self._stopping.wait(self._delay_s):
            event.assoc.abort()
            return 0xC000

        instance = self._describe(event)
        if self._status_for is not None:
            status = self._status_for(instance)
        else:
            with self._lock:
                status = next(self._statuses, 0x0000)
        path = self._write(event, instance.sop_instance_uid) if _is_stored(status) else None
        with self._lock:
            self._received.append(attrs.evolve(instance, status=status, path=path))
        if status == 0x0000 or self._error_comment is None:
            return status
        answer = Dataset()
        answer.Status = status
        answer.ErrorComment = self._error_comment
        return answer

    def _describe(self, event: Event) -> ReceivedInstance:
        """Return the received instance (with ``status=0``) from the request and dataset."""
        request = event.request
        if not isinstance(request, C_STORE):  # pragma: no cover - bound to EVT_C_STORE only
            msg = f"expected a C-STORE request, got {type(request).__name__}"
            raise TypeError(msg)
        ds = event.dataset
        assoc = event.assoc
        return ReceivedInstance(
            sop_class_uid=str(request.AffectedSOPClassUID),
            sop_instance_uid=str(request.AffectedSOPInstanceUID),
            transfer_syntax_uid=str(event.context.transfer_syntax),
            calling_ae_title=str(assoc.requestor.ae_title).strip(),
            called_ae_title=str(assoc.acceptor.ae_title).strip(),
            status=0x0000,
            size=len(event.encoded_dataset(include_meta=False)),
            patient_name_bytes=_raw_value(ds, 0x00100010),
            character_set=_text_value(ds, 0x00080005),
        )

    def _write(self, event: Event, sop_instance_uid: str) -> Path | None:
        """Write the received file under the storage directory; return its path."""
        if self._storage_dir is None:
            return None
        directory = self._storage_dir.resolve()
        path = directory / safe_filename(sop_instance_uid)
        if path.parent != directory:  # cannot happen with safe_filename; belt and braces
            msg = f"refusing to write {sop_instance_uid!r} outside {directory}"
            raise ValueError(msg)
        path.write_bytes(event.encoded_dataset())
        return path
