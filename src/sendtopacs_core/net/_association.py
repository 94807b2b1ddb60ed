# size: the pynetdicom requestor in one place (association, failures in words, C-STORE)
"""Associations with a device through pynetdicom: contexts, TLS, TCP_NODELAY, bounded sends.

- Every socket we open has Nagle's algorithm off (TCP_NODELAY): with it on, each small
  C-STORE waits for a delayed ACK (about 40 ms), which makes a sender of small files up to 40
  times slower (reliability.md, finding 5).
- Files are sent from disk in pieces, and the queue between our thread and pynetdicom's
  network thread is bounded, so a 2 GB file never sits in memory.
- A failed association is described in words: connection refused, timed out, rejected (with
  its result, source and reason, e.g. "calling AE title not recognised"), aborted.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import attrs
from pydicom.uid import UID
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import split_dataset
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AddressInformation, AssociationSocket

from sendtopacs_core.errors import (
    AssociationAbortedError,
    AssociationFailedError,
    AssociationRejectedError,
    ContextNotAcceptedError,
    DicomNetworkError,
    PeerUnreachableError,
)
from sendtopacs_core.model import Device, WorklistDevice
from sendtopacs_core.net._files import quiet_pydicom
from sendtopacs_core.net._server import no_delay

__all__ = [
    "AssociationFailedError",
    "Context",
    "StoreResult",
    "StoredFile",
    "echo",
    "open_association",
    "paused_reactor",
    "peer_name",
    "send_file",
    "ssl_context",
    "stored_file",
    "sync_identifier_logging",
]

#: A device we open associations with: a PACS we send to, or a worklist / Q/R server.
Peer = Device | WorklistDevice

#: P-DATA primitives waiting for pynetdicom's network thread (each at most one PDU).
_QUEUE_PDUS: Final = 64
#: Bytes of a PDV item besides its data: the item length, context ID and control header.
_PDV_OVERHEAD: Final = 6
#: How long pynetdicom's network thread sleeps when idle while we send (its default: 1 ms).
_BUSY_LOOP_DELAY: Final = 0.0001
#: Bytes of a file read and sent per ``sendmsg`` call (whole PDUs).
_SEND_BLOCK: Final = 1 << 20
#: The piece size when the peer sets no maximum PDU length.
_UNLIMITED_PIECE: Final = 1 << 20
#: How long the TLS diagnosis waits for the server to refuse us after the handshake.
_TLS_PROBE_S: Final = 0.5

_RESULTS: Final = {1: "rejected permanently", 2: "rejected transiently"}
_SOURCES: Final = {
    1: "by the service user",
    2: "by the service provider (ACSE)",
    3: "by the service provider (presentation)",
}
_REASONS: Final = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised",
    (1, 7): "called AE title not recognised",
    (2, 1): "no reason given",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}


def peer_name(device: Peer) -> str:
    """The device as errors name it: ``AE@host:port``."""
    return f"{device.ae_title}@{device.host}:{device.port}"


@attrs.frozen
class Context:
    """A presentation context to propose: an abstract syntax and its transfer syntaxes."""

    sop_class_uid: str
    transfer_syntaxes: tuple[str, ...]


@attrs.frozen(kw_only=True)
class StoreResult:
    """The answer to one C-STORE: its status, or ``None`` when none came (aborted)."""

    status: int | None
    error_comment: str | None = None
    problem: str | None = None
    """Why no status came, in words (``None`` when one came)."""


def ssl_context(device: Peer) -> ssl.SSLContext:
    """The client TLS context for ``device``: the server is verified unless turned off.

    Raises
    ------
    DicomNetworkError
        A certificate or key file cannot be loaded.
    """
    tls = device.tls
    try:
        context = ssl.create_default_context(
            cafile=str(tls.ca_file) if tls.ca_file is not None else None
        )
        if not tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if tls.cert_file is not None and tls.key_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise DicomNetworkError(
            f"{device.name}: cannot load the TLS files: {exc}", peer=peer_name(device)
        ) from exc
    return context


def _tls_args(device: Peer) -> tuple[ssl.SSLContext, str] | None:
    if not device.tls.enabled:
        return None
    return ssl_context(device), device.tls.server_name or device.host


def _no_delay(event: evt.Event, opened: threading.Event) -> None:
    """EVT_CONN_OPEN: turn Nagle's algorithm off on the association's socket; note it."""
    opened.set()
    no_delay(event)


class _Socket(AssociationSocket):
    """pynetdicom's socket, closed also when the connection was refused.

    pynetdicom 3.0.4 shuts a socket down and then closes it in one ``try``; a socket that never
    connected fails the shutdown (ENOTCONN) and stays open until the garbage collector
    finds it (with a ResourceWarning).
    """

    def _shutdown_socket(self) -> None:
        super()._shutdown_socket()
        if self.socket is not None:
            self.socket.close()


class _AE(AE):
    """pynetdicom's AE with :class:`_Socket` as its association socket."""

    def _create_socket(
        self,
        assoc: Association,
        address: AddressInformation,
        tls_args: tuple[ssl.SSLContext, str] | None,
    ) -> AssociationSocket:
        sock = _Socket(assoc, address=address)
        sock.tls_args = tls_args
        return sock


def _make_ae(calling_ae_title: str, device: Peer) -> AE:
    ae = _AE(ae_title=calling_ae_title)
    timeouts = device.timeouts
    ae.connection_timeout = timeouts.connect_s
    ae.acse_timeout = timeouts.acse_s
    ae.dimse_timeout = timeouts.dimse_s
    ae.network_timeout = timeouts.network_s
    return ae


def _describe_failure(
    assoc: Association, device: Peer, *, connected: bool
) -> AssociationFailedError | ContextNotAcceptedError:
    where = peer_name(device)
    if not connected:
        return PeerUnreachableError(_connection_problem(device), peer=where)
    if assoc.is_rejected:
        primitive: Any = assoc.acceptor.primitive
        result = int(primitive.result)
        source = int(primitive.result_source)
        reason = int(primitive.diagnostic)
        words = _REASONS.get((source, reason), f"reason {reason}")
        return AssociationRejectedError(
            f"association rejected by {where}: {words} ({_RESULTS.get(result, 'rejected')} "
            f"{_SOURCES.get(source, f'by source {source}')}; result {result}, source {source}, "
            f"reason {reason})",
            peer=where,
            rejection=(result, source, reason),
        )
    refused = [cx for cx in assoc.rejected_contexts if cx.abstract_syntax]
    if assoc.is_aborted and refused and not assoc.accepted_contexts:
        # pynetdicom aborts an association on which the peer accepted no context.
        syntaxes = tuple(dict.fromkeys(str(cx.abstract_syntax) for cx in refused))
        return ContextNotAcceptedError(
            f"{where} accepted none of the presentation contexts offered "
            f"({', '.join(_sop_name(uid) for uid in syntaxes)})",
            peer=where,
            sop_class_uids=syntaxes,
        )
    if assoc.is_aborted:
        return AssociationAbortedError(
            f"association aborted by {where} during the association negotiation", peer=where
        )
    return PeerUnreachableError(_connection_problem(device), peer=where)


def _sop_name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else uid


def _connection_problem(device: Peer) -> str:
    """Why no association came about, found by connecting once more ourselves."""
    where = f"{device.host}:{device.port}"
    tls_problem = ""
    try:
        with socket.create_connection(
            (device.host, device.port), timeout=device.timeouts.connect_s
        ) as sock:
            if device.tls.enabled:
                tls_problem = _tls_problem(device, sock)
    except TimeoutError:
        return f"cannot connect to {where}: timed out after {device.timeouts.connect_s:g} s"
    except ConnectionRefusedError:
        return f"cannot connect to {where}: connection refused (is the PACS running?)"
    except OSError as exc:
        return f"cannot connect to {where}: {exc.strerror or exc}"
    if device.tls.enabled:
        return (
            f"no association with {where}: the TLS handshake failed"
            f"{tls_problem or ' (see the certificates)'}"
        )
    return (
        f"no association with {where}: the peer did not answer the association request "
        f"within {device.timeouts.acse_s:g} s"
    )


def _tls_problem(device: Peer, sock: socket.socket) -> str:
    """``: <why>`` when a TLS handshake over ``sock`` fails as pynetdicom's did, else ``""``."""
    try:
        context = ssl_context(device)
        with context.wrap_socket(
            sock, server_hostname=device.tls.server_name or device.host
        ) as tls:
            tls.settimeout(_TLS_PROBE_S)
            tls.recv(1)  # TLS 1.3: a refused client certificate shows only when reading
    except TimeoutError:
        return ""
    except ssl.SSLCertVerificationError as exc:
        return f": the server's certificate was not accepted ({exc.verify_message})"
    except ssl.SSLError as exc:
        return f": {exc.reason or exc}"
    except OSError as exc:
        return f": {exc.strerror or exc} (does the PACS use TLS on this port?)"
    except DicomNetworkError as exc:
        return f": {exc}"
    return ""


@contextmanager
def open_association(
    device: Peer, calling_ae_title: str, contexts: Sequence[Context]
) -> Iterator[Association]:
    """An established association proposing ``contexts`` (at most 128); released at the end.

    Raises
    ------
    PeerUnreachableError
        Connection refused or timed out, no answer to the association request, or a failed
        TLS handshake.
    AssociationRejectedError
        The device rejected the association (``rejection`` gives result, source and reason).
    AssociationAbortedError
        The device aborted the association during the negotiation.
    ContextNotAcceptedError
        The device accepted none of ``contexts``.
    DicomNetworkError
        The TLS certificate or key files cannot be loaded.
    """
    ae = _make_ae(calling_ae_title, device)
    for context in contexts:
        ae.add_requested_context(context.sop_class_uid, list(context.transfer_syntaxes))
    opened = threading.Event()
    assoc = ae.associate(
        device.host,
        device.port,
        ae_title=device.ae_title,
        tls_args=_tls_args(device),
        evt_handlers=[(evt.EVT_CONN_OPEN, _no_delay, [opened])],
    )
    if not assoc.is_established:
        raise _describe_failure(assoc, device, connected=opened.is_set())
    _bound_send_queue(assoc)
    try:
        yield assoc
    finally:
        _close(assoc)


def _close(assoc: Association) -> None:
    """Release an established association; abort one left half-open."""
    if assoc.is_established:
        assoc.release()
    elif not (assoc.is_aborted or assoc.is_released):
        assoc.abort()


def _bound_send_queue(assoc: Association) -> None:
    """Replace pynetdicom's unbounded queue of outgoing primitives by a bounded one.

    pynetdicom's ``send_c_store`` puts every P-DATA piece of a file on this queue as fast as
    it reads the file, while its network thread sends them as fast as the peer reads: without
    a bound a large file would end up in memory. Called once the association is established,
    when the queue is empty.
    """
    dul = assoc.dul
    bounded: queue.Queue[Any] = queue.Queue(_QUEUE_PDUS)
    old = dul.to_provider_queue
    while True:
        try:
            bounded.put_nowait(old.get_nowait())
        except queue.Empty:
            break
    dul.to_provider_queue = bounded


@contextmanager
def paused_reactor(assoc: Association) -> Iterator[None]:
    """Hold pynetdicom's association reactor while we exchange messages ourselves.

    The reactor thread also takes DIMSE messages off the queue; pynetdicom's own ``send_*``
    methods pause it around each request so that it cannot take the response first. Pausing
    it once for a whole batch of C-STOREs instead of once per file saves about a millisecond
    per file (the reactor polls every millisecond). An abort from the peer still reaches us:
    pynetdicom puts an empty message on the queue. Meanwhile the network thread polls more
    often, so that answers are read sooner.
    """
    checkpoint: threading.Event = assoc._reactor_checkpoint
    checkpoint.clear()
    while not assoc._is_paused and assoc.is_established:
        time.sleep(0.0001)
    # The network thread sleeps this long whenever it finds nothing to do; an answer waits up
    # to that long before it is read. 0.1 ms instead of 1 ms while we send.
    dul = assoc.dul
    idle = dul._run_loop_delay
    dul._run_loop_delay = _BUSY_LOOP_DELAY
    try:
        yield
    finally:
        dul._run_loop_delay = idle
        checkpoint.set()


@attrs.frozen
class StoredFile:
    """What :func:`send_file` needs of a DICOM file: its UIDs and where its data set starts."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    data_offset: int


def stored_file(path: Path) -> StoredFile:
    """Read the File Meta Information of ``path``.

    Raises
    ------
    ValueError
        The File Meta Information lacks a UID.
    """
    file_meta, offset = split_dataset(path)
    values = [
        str(file_meta.get(keyword, "")).strip("\0 ")
        for keyword in (
            "MediaStorageSOPClassUID",
            "MediaStorageSOPInstanceUID",
            "TransferSyntaxUID",
        )
    ]
    if not all(values):
        raise ValueError(f"{path}: the File Meta Information lacks a UID")
    sop_class, sop_instance, syntax = values
    return StoredFile(sop_class, sop_instance, syntax, data_offset=offset)


def send_file(
    assoc: Association, path: Path, message_id: int, stored: StoredFile | None = None
) -> StoreResult:
    """C-STORE the DICOM file at ``path``, its data set streamed from disk in PDU-sized pieces.

    What pynetdicom's ``send_c_store`` does for a file when its module-wide
    ``STORE_SEND_CHUNKED_DATASET`` option is on, without changing that option (no global
    state, ours or pynetdicom's): the request names the file and the offset of its data set,
    and pynetdicom reads it while sending. The file's transfer syntax must be the one of an
    accepted context for its SOP class. Call it inside :func:`paused_reactor`. ``stored``
    saves reading the File Meta Information again when the caller has it.

    Raises
    ------
    ValueError
        No accepted context for the file's SOP class and transfer syntax, or its File Meta
        Information lacks a UID.
    RuntimeError
        The association is no longer established.
    """
    if not assoc.is_established:
        raise RuntimeError("the association is no longer established")
    stored = stored if stored is not None else stored_file(path)
    sop_class, sop_instance = stored.sop_class_uid, stored.sop_instance_uid
    syntax, offset = stored.transfer_syntax_uid, stored.data_offset
    context = next(
        (
            cx
            for cx in assoc.accepted_contexts
            if cx.abstract_syntax == sop_class and cx.transfer_syntax[0] == syntax
        ),
        None,
    )
    if context is None or context.context_id is None:
        raise ValueError(f"no accepted presentation context for {sop_class} in {syntax}")
    request = C_STORE()
    request.MessageID = message_id
    with quiet_pydicom():  # an invalid UID is warned of (quoted) as it is set: at DEBUG
        request.AffectedSOPClassUID = sop_class
        request.AffectedSOPInstanceUID = sop_instance
    request.Priority = 2  # low, as DCMTK storescu sends by default
    request._dataset_path = (path, offset)
    sock = getattr(assoc.dul.socket, "socket", None)
    if isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket):
        try:
            _write_c_store(assoc, sock, request, context.context_id, path, offset)
        except BaseException:
            assoc.abort()  # a message cut short leaves the association unusable
            raise
    else:  # TLS: an SSL socket must not be written by one thread while another reads it
        assoc.dimse.send_msg(request, context.context_id)
    _context_id, response = assoc.dimse.get_msg(block=True)
    if response is None:  # no answer within the DIMSE timeout, or the peer went away
        # The reactor is paused, so an abort from the peer is still waiting in the DUL.
        peer_aborted = assoc.acse.is_aborted()
        if assoc.is_established:
            assoc.abort()  # also marks it ended, so that nothing more is sent on it
        if peer_aborted:
            return StoreResult(
                status=None,
                problem="the PACS aborted the association (or closed the connection) "
                "without answering the C-STORE",
            )
        return StoreResult(
            status=None,
            problem=f"no answer to the C-STORE within {assoc.dimse_timeout:g} s: "
            "the association was aborted",
        )
    status = getattr(response, "Status", None)
    if status is None:
        return StoreResult(status=None, problem="the C-STORE answer had no status")
    comment = getattr(response, "ErrorComment", None)
    return StoreResult(status=int(status), error_comment=str(comment) if comment else None)


def _write_c_store(  # noqa: PLR0917 - one call site
    assoc: Association,
    sock: socket.socket,
    request: C_STORE,
    context_id: int,
    path: Path,
    offset: int,
) -> None:
    """Write the C-STORE-RQ's P-DATA-TF PDUs onto the socket ourselves (PS3.8 9.3.5).

    pynetdicom would read the file in PDU-sized pieces, queue each for its network thread and
    have that thread encode and send it: two threads handing over every 16 KB, which caps a
    send at a few hundred MB/s and adds milliseconds per file. Here the command set
    (:func:`c_store_command`) and then the data set go straight from our thread: the file's bytes
    are read a block at a time and every PDU of the block (header and data) goes out in one
    ``sendmsg`` call. The network thread keeps reading the answers; it writes nothing while we
    do, because nothing is on its queue. The peer's maximum PDU length is respected.
    """
    command = c_store_command(request)
    maximum = int(assoc.acceptor.maximum_length or 0)
    piece = maximum - _PDV_OVERHEAD if maximum > _PDV_OVERHEAD else _UNLIMITED_PIECE
    parts: list[bytes | memoryview] = []
    for start in range(0, len(command), piece):
        last = start + piece >= len(command)
        chunk = command[start : start + piece]
        parts += [_pdv_header(len(chunk), context_id, 0x03 if last else 0x01), chunk]
    # Read a block of whole pieces, then send every PDU of the block in one sendmsg call.
    block = memoryview(bytearray(piece * max(1, _SEND_BLOCK // piece)))
    with path.open("rb") as stream:
        stream.seek(offset)
        remaining = os.fstat(stream.fileno()).st_size - offset
        if remaining == 0:
            parts.append(_pdv_header(0, context_id, 0x02))
        while remaining > 0:
            count = stream.readinto(block[: min(len(block), remaining)])
            if not count:
                raise OSError(f"{path} ended early (the file changed while it was sent)")
            for start in range(0, count, piece):
                length = min(piece, count - start)
                last = remaining - start - length == 0
                parts += [
                    _pdv_header(length, context_id, 0x02 if last else 0x00),
                    block[start : start + length],
                ]
            _send_all(sock, parts)
            parts = []
            remaining -= count
    if parts:
        _send_all(sock, parts)


def _send_all(sock: socket.socket, parts: list[bytes | memoryview]) -> None:
    """``sendmsg`` until every byte of ``parts`` is sent (the kernel may take a part)."""
    while parts:
        sent = sock.sendmsg(parts)
        while parts and sent >= len(parts[0]):
            sent -= len(parts[0])
            parts.pop(0)
        if parts and sent:
            parts[0] = memoryview(parts[0])[sent:]


def c_store_command(request: C_STORE) -> bytes:
    """The C-STORE-RQ command set (PS3.7 9.3.1.1) in Implicit VR Little Endian.

    Written directly: pynetdicom builds a pydicom Dataset and encodes it twice (once for the
    group length), which costs more than everything else we do per small file.
    """
    elements = b"".join(
        (
            _implicit(0x0002, _uid_bytes(str(request.AffectedSOPClassUID))),
            _implicit(0x0100, struct.pack("<H", 0x0001)),  # C-STORE-RQ
            _implicit(0x0110, struct.pack("<H", int(request.MessageID or 0))),
            _implicit(0x0700, struct.pack("<H", int(request.Priority))),
            _implicit(0x0800, struct.pack("<H", 0x0001)),  # not 0x0101: a data set follows
            _implicit(0x1000, _uid_bytes(str(request.AffectedSOPInstanceUID))),
        )
    )
    return _implicit(0x0000, struct.pack("<I", len(elements))) + elements


def _implicit(element: int, value: bytes) -> bytes:
    """A group 0000 element in Implicit VR Little Endian."""
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


def _uid_bytes(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\0" if len(raw) % 2 else raw


def _pdv_header(length: int, context_id: int, control: int) -> bytes:
    """A P-DATA-TF PDU header with one PDV item of ``length`` bytes (after the control byte)."""
    return struct.pack(">BBIIBB", 0x04, 0x00, length + 6, length + 2, context_id, control)


def sync_identifier_logging() -> None:
    """Let pynetdicom format C-FIND identifiers for its log only when a log shows DEBUG.

    pynetdicom formats every identifier it sends or receives for its INFO log unless its
    options ``LOG_REQUEST_IDENTIFIERS`` / ``LOG_RESPONSE_IDENTIFIERS`` are off. The core makes
    those dumps DEBUG records (:class:`~sendtopacs_core.PatientDataFilter`), so formatting
    them when no log shows DEBUG is work thrown away (about 5 s per 10,000 answers). Called by
    the core before each search: nothing for an application to remember.
    """
    enabled = logging.getLogger("pynetdicom.association").isEnabledFor(logging.DEBUG)
    _config.LOG_REQUEST_IDENTIFIERS = enabled
    _config.LOG_RESPONSE_IDENTIFIERS = enabled


def accepted(assoc: Association) -> list[PresentationContext]:
    """The accepted presentation contexts of an association."""
    contexts: list[PresentationContext] = assoc.accepted_contexts
    return contexts


def echo(device: Peer, calling_ae_title: str) -> float:
    """C-ECHO ``device``; return the round trip in seconds.

    Raises
    ------
    AssociationFailedError
        No association (:class:`PeerUnreachableError`, :class:`AssociationRejectedError`,
        :class:`AssociationAbortedError`: the message says which), or no answer to the
        C-ECHO (:class:`AssociationAbortedError`: the association was aborted).
    ContextNotAcceptedError
        The device does not accept Verification from us.
    DicomNetworkError
        The device answered the C-ECHO with a status other than Success, or the TLS files
        cannot be loaded.
    """
    where = peer_name(device)
    start = time.perf_counter()
    with open_association(
        device, calling_ae_title, [Context(str(Verification), ("1.2.840.10008.1.2",))]
    ) as assoc:
        asked = time.perf_counter()
        status = assoc.send_c_echo()
        if "Status" not in status:
            if time.perf_counter() - asked < device.timeouts.dimse_s:
                raise AssociationAbortedError(
                    f"{where} aborted the association instead of answering the C-ECHO",
                    peer=where,
                )
            raise AssociationAbortedError(
                f"{where} did not answer the C-ECHO within {device.timeouts.dimse_s:g} s "
                "(the association was aborted)",
                peer=where,
            )
        if int(status.Status) != 0:
            raise DicomNetworkError(
                f"{where} answered the C-ECHO with status 0x{int(status.Status):04X}",
                peer=where,
            )
    return time.perf_counter() - start
