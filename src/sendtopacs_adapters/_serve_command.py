"""``sendtopacs serve``: run the HTTP API (``sendtopacs_adapters.api``) with uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

import attrs

from sendtopacs_adapters._common import EXIT_OK, Context, UsageError, global_options

__all__ = ["add_serve_command", "cmd_serve"]

_EPILOG_SERVE = """\
examples:
  sendtopacs config set-api-password   first: the API user and password
  sendtopacs serve                     https://127.0.0.1:8043/docs (http without TLS files)
  sendtopacs serve --port 9000
  sendtopacs serve --host 0.0.0.0      needs api.tls_cert_file and api.tls_key_file
"""


def add_serve_command(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the HTTP API",
        description=(
            "Run the HTTP API (OpenAPI docs at /docs): convert, send, echo and worklist "
            "searches on the devices of the settings. Every request needs the API user and "
            "password and must come from an address of api.allowlist. A non-loopback address "
            "needs HTTPS (api.tls_cert_file, api.tls_key_file) unless forced. SIGTERM or "
            "Ctrl-C stop it."
        ),
        epilog=_EPILOG_SERVE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(serve, suppress=True)
    serve.add_argument("--host", metavar="ADDR", help="address to listen on (default: api.bind)")
    serve.add_argument("--port", type=int, metavar="N", help="port (default: api.port)")
    serve.add_argument(
        "--insecure-bind",
        action="store_true",
        help="allow a non-loopback address without HTTPS (passwords cross the network readable)",
    )
    serve.set_defaults(handler=cmd_serve)


def cmd_serve(context: Context) -> int:
    """Check the bind, then serve until stopped."""
    args = context.args
    settings = context.working_settings()
    changes: dict[str, Any] = {}
    if args.host is not None:
        changes["bind"] = args.host
    if args.port is not None:
        changes["port"] = args.port
    try:
        api_settings = attrs.evolve(settings.api, **changes)
    except ValueError as exc:
        raise UsageError(f"invalid option: {exc}") from exc
    settings = attrs.evolve(settings, api=api_settings)
    tls = api_settings.tls_cert_file is not None and api_settings.tls_key_file is not None
    loopback = ipaddress.ip_address(api_settings.bind).is_loopback
    if not (loopback or tls or api_settings.allow_insecure_bind or args.insecure_bind):
        raise UsageError(
            f"refusing to listen on {api_settings.bind} without HTTPS: set api.tls_cert_file "
            "and api.tls_key_file, or force it with --insecure-bind (the password would "
            "cross the network readable)"
        )
    if api_settings.username is None or api_settings.password_hash is None:
        context.err.write(
            "sendtopacs: warning: no API user yet; every request is refused until "
            "'sendtopacs config set-api-password' is run\n"
        )
    from sendtopacs_adapters import api  # noqa: PLC0415 (FastAPI loads slowly; serve only)

    app = api.create_app(settings, settings_path=context.settings_path)
    host = f"[{api_settings.bind}]" if ":" in api_settings.bind else api_settings.bind
    scheme = "https" if tls else "http"
    context.err.write(
        f"sendtopacs: serving {scheme}://{host}:{api_settings.port}{api.API_PREFIX} "
        f"(docs: /docs); Ctrl-C stops\n"
    )
    api.run_server(
        app,
        host=api_settings.bind,
        port=api_settings.port,
        ssl_certfile=api_settings.tls_cert_file,
        ssl_keyfile=api_settings.tls_key_file,
    )
    return EXIT_OK
