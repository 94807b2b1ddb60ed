"""The gate in front of the HTTP API: an ASGI middleware that runs before routing.

Every HTTP request, the OpenAPI schema and the docs page included, passes these checks in
this order, and the first that fails answers with ``{"ok": false, "error": "..."}``:

1. the peer address (``scope["client"]``, never ``X-Forwarded-For``) is in ``api.allowlist``
   (403);
2. the ``Host`` header names this service by an address, ``localhost`` or the bind address,
   with the right port, so that a DNS-rebinding page cannot reach it (421);
3. a present ``Origin`` is our own origin, and ``Sec-Fetch-Site`` is not ``cross-site`` or
   ``same-site`` (403: cross-site requests and form posts);
4. the client is not locked out after ``api.auth_failures_per_minute`` failed logins in a
   sliding minute (429 with ``Retry-After``);
5. exactly one ``Authorization: Basic <base64 of UTF-8 user:password>`` header whose user
   matches (``hmac.compare_digest``) and whose password matches the stored scrypt hash
   (``verify_password``, constant time) (401);
6. the body is not encoded (415) and not larger than ``api.max_upload_mb``: a larger
   ``Content-Length`` is refused before anything is read, a streamed body is cut at the limit
   (413).

An exception that escapes the application is logged at DEBUG only (its text may hold
patient data) and, if nothing was sent yet, answered with a generic 500.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import logging
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sendtopacs_core import ApiSettings, verify_password

__all__ = ["BodyTooLargeError", "SecurityMiddleware", "error_body"]

_log = logging.getLogger(__name__)

#: The longest ``Authorization`` header looked at (a user name and password of a few hundred
#: characters fit); longer ones fail without being decoded.
MAX_AUTHORIZATION_BYTES: Final = 1024
LOCKOUT_S: Final = 60.0
_WINDOW_S: Final = 60.0
#: Clients whose failures are remembered at once; the oldest are forgotten beyond this.
_MAX_TRACKED_CLIENTS: Final = 10_000
_NO_USER_MESSAGE: Final = (
    "the API has no user yet: run 'sendtopacs config set-api-password' and restart the service"
)
_EXTRA_HEADERS: Final = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def error_body(message: str) -> bytes:
    """The JSON body of every error answer."""
    return json.dumps({"ok": False, "error": message}).encode("utf-8")


class BodyTooLargeError(HTTPException):
    """The request body went past the upload limit while it was being read."""

    def __init__(self, limit_mb: int) -> None:
        super().__init__(413, f"the request is larger than the limit of {limit_mb} MB")


class _FailureCounter:
    """Failed logins per client address in a sliding minute, and the resulting lockouts."""

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds the client must still wait, or ``None`` when it is not locked out."""
        with self._lock:
            until = self._locked_until.get(client)
            now = self._clock()
            if until is None:
                return None
            if now >= until:
                del self._locked_until[client]
                self._failures.pop(client, None)
                return None
            return max(1, math.ceil(until - now))

    def record_failure(self, client: str) -> None:
        with self._lock:
            now = self._clock()
            failures = self._failures.pop(client, deque())
            while failures and now - failures[0] >= _WINDOW_S:
                failures.popleft()
            failures.append(now)
            self._failures[client] = failures  # re-inserted: the dict stays oldest-first
            if len(failures) >= self._limit:
                self._locked_until[client] = now + LOCKOUT_S
            while len(self._failures) > _MAX_TRACKED_CLIENTS:
                del self._failures[next(iter(self._failures))]


def _credentials(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """The user and password of the one ``Authorization: Basic`` header, or ``None``."""
    values = [value for name, value in headers if name == b"authorization"]
    if len(values) != 1 or len(values[0]) > MAX_AUTHORIZATION_BYTES:
        return None
    value = values[0]
    if not value.startswith(b"Basic ") or value.count(b" ") != 1:
        return None
    try:
        decoded = base64.b64decode(value[6:], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    if not colon or not user or any(ord(ch) < 32 or ord(ch) == 127 for ch in decoded):
        return None
    return user, password


def _allowed_hosts(settings: ApiSettings) -> tuple[frozenset[str], bool]:
    """The accepted ``Host`` values (lower case, with the port), and whether any IP is."""
    names = {"localhost", "127.0.0.1", "[::1]"}
    for literal in (settings.bind, *settings.allowlist):
        try:
            address = ipaddress.ip_address(literal)
        except ValueError:
            continue  # a CIDR range, not one address
        names.add(f"[{address}]" if address.version == 6 else str(address))
    hosts = {f"{name}:{settings.port}" for name in names}
    any_address = ipaddress.ip_address(settings.bind).is_unspecified
    return frozenset(hosts), any_address


def _is_ip_host(host: str, port: int) -> bool:
    """``host`` is ``<IP literal>:<port>`` (an address cannot be DNS-rebound)."""
    name, _, found_port = host.rpartition(":")
    if found_port != str(port):
        return False
    try:
        ipaddress.ip_address(name[1:-1] if name.startswith("[") and name.endswith("]") else name)
    except ValueError:
        return False
    return True


class SecurityMiddleware:
    """The checks of the module docstring, around the whole application.

    Parameters
    ----------
    app
        The application (routing included) the checks protect.
    settings
        The ``api`` section: allowlist, host, user, password hash, limits.
    clock
        Monotonic seconds, for the failure counter (tests pass a fake one).
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: ApiSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._app = app
        self._settings = settings
        self._networks = tuple(
            ipaddress.ip_network(item, strict=False) for item in settings.allowlist
        )
        self._hosts, self._any_ip_host = _allowed_hosts(settings)
        self._failures = _FailureCounter(settings.auth_failures_per_minute, clock)
        self._limit_bytes = settings.max_upload_mb * 1024 * 1024
        self._key = secrets.token_bytes(32)
        self._accepted: set[bytes] = set()  # keyed digests of verified headers (skip scrypt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        refusal = await self._check(scope)
        if refusal is not None:
            status, message, headers = refusal
            await _answer(send, status, message, headers)
            return
        await self._run(scope, self._limited(receive), send)

    async def _check(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        client = scope.get("client")
        address = self._client_address(client[0] if client else None)
        if address is None:
            return 403, "this client address is not allowed (see api.allowlist)", []
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        problem = self._check_site(scope, headers)
        if problem is not None:
            return problem
        wait = self._failures.retry_after(address)
        if wait is not None:
            retry = [(b"retry-after", str(wait).encode("ascii"))]
            return 429, f"too many failed logins; try again in {wait} s", retry
        if self._settings.username is None or self._settings.password_hash is None:
            return 401, _NO_USER_MESSAGE, []
        if not await self._authenticated(headers):
            self._failures.record_failure(address)
            challenge = [(b"www-authenticate", b'Basic realm="sendtopacs", charset="UTF-8"')]
            return 401, "authentication required (HTTP Basic)", challenge
        return self._check_body(headers)

    def _client_address(self, host: str | None) -> str | None:
        if host is None:
            return None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self._networks):
            return str(address)
        return None

    def _check_site(
        self, scope: Scope, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        hosts = [value for name, value in headers if name == b"host"]
        host = hosts[0].decode("latin-1").lower() if len(hosts) == 1 else ""
        if not self._host_allowed(host, scope.get("scheme", "http")):
            return 421, "this service is not reachable under that host name", []
        origins = [value for name, value in headers if name == b"origin"]
        if origins:
            expected = f"{scope.get('scheme', 'http')}://{host}"
            if len(origins) != 1 or origins[0].decode("latin-1").lower() != expected:
                return 403, "cross-origin requests are not accepted", []
        for name, value in headers:
            if name == b"sec-fetch-site" and value.lower() in {b"cross-site", b"same-site"}:
                return 403, "cross-site requests are not accepted", []
        return None

    def _host_allowed(self, host: str, scheme: str) -> bool:
        if not host:
            return False
        default_port = {"http": 80, "https": 443}.get(scheme)
        if ":" not in host.rpartition("]")[2] and default_port == self._settings.port:
            host = f"{host}:{default_port}"
        if host in self._hosts:
            return True
        return self._any_ip_host and _is_ip_host(host, self._settings.port)

    async def _authenticated(self, headers: list[tuple[bytes, bytes]]) -> bool:
        credentials = _credentials(headers)
        if credentials is None:
            return False
        raw = next(value for name, value in headers if name == b"authorization")
        digest = hmac.new(self._key, raw, "sha256").digest()
        if digest in self._accepted:
            return True
        user, password = credentials
        expected_user = self._settings.username or ""
        stored = self._settings.password_hash or ""
        user_ok = hmac.compare_digest(user.encode("utf-8"), expected_user.encode("utf-8"))
        # The hash is checked whatever the user name, so timing does not tell names apart.
        password_ok = await run_in_threadpool(verify_password, password, stored)
        if user_ok and password_ok:
            if len(self._accepted) < 16:
                self._accepted.add(digest)
            return True
        return False

    def _check_body(
        self, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        for name, value in headers:
            if name == b"content-encoding" and value.strip().lower() not in {b"", b"identity"}:
                return 415, "encoded (compressed) request bodies are not accepted", []
        lengths = [value for name, value in headers if name == b"content-length"]
        if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
            return 400, "invalid Content-Length", []
        if lengths and int(lengths[0]) > self._limit_bytes:
            return 413, self._too_large(), []
        return None

    def _too_large(self) -> str:
        return f"the request is larger than the limit of {self._settings.max_upload_mb} MB"

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit, limit_mb = self._limit_bytes, self._settings.max_upload_mb

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLargeError(limit_mb)
            return message

        return limited_receive

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *_EXTRA_HEADERS]}
            await send(message)

        try:
            await self._app(scope, receive, guarded_send)
        except BodyTooLargeError:
            if not started:
                await _answer(send, 413, self._too_large(), [])
        except Exception:  # the boundary: nothing escapes to the server's log unfiltered
            _log.debug("request failed", exc_info=True)
            if not started:
                await _answer(send, 500, "internal error (see the service log at debug)", [])


async def _answer(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = error_body(message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                *_EXTRA_HEADERS,
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
