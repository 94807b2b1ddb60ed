"""The ``api`` section of ``settings.json``: the HTTP service, locked down by default."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import attrs

from sendtopacs_core.errors import InvalidValueError

__all__ = ["ApiSettings"]


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _strip_or_none(value: Any) -> Any:
    value = _strip(value)
    return None if value == "" else value


def _to_stripped_tuple(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_strip(item) for item in value)
    return value


def _to_path(value: Any) -> Any:
    return Path(value) if isinstance(value, str) and value else value


def _is_bool(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidValueError(attribute.name, value, "true or false")


def _check_address(_instance: Any, attribute: Any, value: Any) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise InvalidValueError(attribute.name, value, "expected an IP address") from exc


def _check_allowlist(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple):
        raise InvalidValueError(attribute.name, value, "expected a list of addresses")
    for index, item in enumerate(value):
        try:
            ipaddress.ip_network(item, strict=False)
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(
                f"{attribute.name}[{index}]", item, "expected an IP address or a CIDR range"
            ) from exc


def _check_api_port(_instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidValueError(attribute.name, value, "a TCP port is 1 to 65535")


def _check_positive_int(_instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(attribute.name, value, "a whole number of 1 or more")


def _check_tls_pair(instance: Any, attribute: Any, value: Any) -> None:
    if (instance.tls_cert_file is None) != (value is None):
        raise InvalidValueError(
            attribute.name, value, "HTTPS needs both tls_cert_file and tls_key_file"
        )


@attrs.frozen(kw_only=True)
class ApiSettings:
    """The ``api`` section: the HTTP service (``sendtopacs serve``), locked down by default.

    Parameters
    ----------
    bind
        The address listened on; a non-loopback address needs HTTPS (or
        ``allow_insecure_bind``).
    port
        The TCP port.
    username
        The one user; ``None`` until ``sendtopacs config set-api-password`` is run (the
        service refuses every request until then).
    password_hash
        The password as a salted scrypt hash (never the password itself).
    allowlist
        Client addresses or CIDR ranges allowed to connect (the peer address, never
        X-Forwarded-For).
    max_upload_mb
        The largest request body accepted.
    tls_cert_file, tls_key_file
        PEM files for HTTPS.
    allow_insecure_bind
        Allow a non-loopback bind without HTTPS (credentials then cross the network readable).
    auth_failures_per_minute
        Failed logins from one client per minute before it is refused (429) for a minute.
    """

    bind: str = attrs.field(default="127.0.0.1", converter=_strip, validator=_check_address)
    port: int = attrs.field(default=8043, validator=_check_api_port)
    username: str | None = attrs.field(default=None, converter=_strip_or_none)
    password_hash: str | None = attrs.field(default=None, converter=_strip_or_none)
    allowlist: tuple[str, ...] = attrs.field(
        default=("127.0.0.1", "::1"), converter=_to_stripped_tuple, validator=_check_allowlist
    )
    max_upload_mb: int = attrs.field(default=256, validator=_check_positive_int)
    tls_cert_file: Path | None = attrs.field(default=None, converter=_to_path)
    tls_key_file: Path | None = attrs.field(
        default=None, converter=_to_path, validator=_check_tls_pair
    )
    allow_insecure_bind: bool = attrs.field(default=False, validator=_is_bool)
    auth_failures_per_minute: int = attrs.field(default=10, validator=_check_positive_int)
