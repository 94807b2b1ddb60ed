"""What our own listeners share: the test SCPs of ``testing/`` and the storage commitment
report listener. pynetdicom's association server on a thread of our own, TCP_NODELAY on every
accepted socket, and a stop that ends in milliseconds."""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
import time

from pynetdicom import AE, evt
from pynetdicom.events import EventHandlerType
from pynetdicom.transport import ThreadedAssociationServer

__all__ = ["FastServer", "no_delay", "serve", "stop_server"]


class FastServer(ThreadedAssociationServer):
    """pynetdicom's threaded association server, made to stop in milliseconds.

    ``AE.start_server`` runs ``serve_forever`` with socketserver's default 0.5 s shutdown poll,
    so every stop took half a second; we run the server on our own thread instead, which also
    keeps it out of the AE's server list that ``ThreadedAssociationServer.shutdown`` edits.
    """

    def serve_forever(self, poll_interval: float = 0.02) -> None:
        super().serve_forever(poll_interval)

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and close the listening socket."""
        socketserver.BaseServer.shutdown(self)
        self.server_close()


def no_delay(event: evt.Event) -> None:
    """EVT_CONN_OPEN: turn Nagle's algorithm off on the association's socket (finding 5)."""
    transport = event.assoc.dul.socket
    sock = getattr(transport, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def serve(
    ae: AE,
    address: tuple[str, int],
    handlers: list[EventHandlerType],
    *,
    name: str,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[FastServer, threading.Thread]:
    """Listen on ``address`` with ``handlers`` (TCP_NODELAY added) on a daemon thread.

    Raises
    ------
    OSError
        The address cannot be listened on.
    """
    server = ae.make_server(
        address,
        ssl_context=ssl_context,
        evt_handlers=[(evt.EVT_CONN_OPEN, no_delay), *handlers],
        server_class=FastServer,
    )
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return server, thread  # type: ignore[return-value]  # make_server returns server_class


def stop_server(
    ae: AE, server: FastServer, thread: threading.Thread, *, grace_s: float, join_s: float
) -> None:
    """Stop accepting; let open associations end within ``grace_s``, abort the rest, and wait
    up to ``join_s`` for the threads."""
    server.shutdown()  # first, so that no association starts after the aborts
    associations = [assoc for assoc in ae.active_associations if assoc.is_acceptor]
    deadline = time.monotonic() + grace_s
    for assoc in associations:
        if grace_s > 0:
            assoc.join(max(0.0, deadline - time.monotonic()))
        if assoc.is_alive():
            assoc.abort()
    deadline = time.monotonic() + join_s
    thread.join(join_s)
    for assoc in associations:
        assoc.join(max(0.0, deadline - time.monotonic()))
