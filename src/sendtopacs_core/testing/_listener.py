"""The lifecycle the test SCPs share: start, stop, context manager, the address listened on."""

from __future__ import annotations

import logging
import ssl
import threading
from types import TracebackType
from typing import ClassVar, Final, Self

from pynetdicom import AE
from pynetdicom.events import EventHandlerType

from sendtopacs_core.net._server import FastServer, serve, stop_server

__all__ = ["ListeningSCP"]

LOGGER = logging.getLogger("sendtopacs_core.testing")
_JOIN_TIMEOUT_S: Final = 2.0


class ListeningSCP:
    """Base of :class:`StorageSCP` and :class:`WorklistSCP`: a pynetdicom AE listening on a
    (by default OS-chosen) loopback port, started and stopped in milliseconds.

    Subclasses set ``_ae``, ``_ae_title``, ``_host``, ``_requested_port`` and call
    ``_init_listener()`` in ``__init__``, and give their event handlers in ``_handlers``.
    """

    _label: ClassVar[str] = "SCP"
    _ae: AE
    _ae_title: str
    _host: str
    _requested_port: int

    def _init_listener(self) -> None:
        self._stopping = threading.Event()
        self._server: FastServer | None = None
        self._thread: threading.Thread | None = None

    def _handlers(self) -> list[EventHandlerType]:
        raise NotImplementedError

    def _before_start(self) -> None:
        """Called by :meth:`start` before listening (e.g. to make a storage folder)."""

    def _ssl_context(self) -> ssl.SSLContext | None:
        return None

    def start(self) -> Self:
        """Start listening (no-op if running) and return self."""
        if self._server is not None:
            return self
        self._before_start()
        self._stopping.clear()
        self._server, self._thread = serve(
            self._ae,
            (self._host, self._requested_port),
            self._handlers(),
            name=f"{type(self).__name__}-{self._ae_title}",
            ssl_context=self._ssl_context(),
        )
        LOGGER.debug("%s %s listening on %s:%d", self._label, self._ae_title, *self.address)
        return self

    def stop(self) -> None:
        """Abort open associations, shut the server down and wait for its threads."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # releases handlers waiting in never_answer / delay_s
        stop_server(self._ae, server, thread, grace_s=0, join_s=_JOIN_TIMEOUT_S)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def ae_title(self) -> str:
        """Our AE title."""
        return self._ae_title

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) we listen on; raises `RuntimeError` before `start`."""
        if self._server is None:
            msg = f"the {self._label} is not running: call start() first"
            raise RuntimeError(msg)
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        """The port we listen on (the OS-chosen one if created with ``port=0``)."""
        return self.address[1]
