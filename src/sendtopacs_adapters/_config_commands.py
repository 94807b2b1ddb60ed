"""``sendtopacs config``: create, show or check the settings file; set the API password."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, Final

import attrs

from sendtopacs_adapters._common import (
    EXIT_OK,
    EXIT_USAGE,
    Context,
    Parser,
    UsageError,
    global_options,
)
from sendtopacs_core import Settings, hash_password, password_problems

__all__ = ["DEFAULT_API_USERNAME", "add_config_command"]

#: The API user name when neither ``--username`` nor the settings give one.
DEFAULT_API_USERNAME: Final = "sendtopacs"

_EPILOG_CONFIG: Final = """\
examples:
  sendtopacs config init            write a settings.json with every key and its default
  sendtopacs config show            every key, its value and what it does
  sendtopacs --settings s.json config check
  sendtopacs config set-api-password --username alice
"""
_EPILOG_INIT: Final = """\
examples:
  sendtopacs config init                      at the default place (see --settings)
  sendtopacs --settings site.json config init
  sendtopacs config init --force              overwrite an existing file with the defaults
"""
_EPILOG_SHOW: Final = """\
examples:
  sendtopacs config show                      key = value, then what the key does
  sendtopacs --settings site.json config show
  sendtopacs --json config show               the settings and every key's explanation
"""
_EPILOG_CHECK: Final = """\
examples:
  sendtopacs config check                     exit 0 if valid, 2 with the first bad key
  sendtopacs --settings site.json config check
"""
_EPILOG_API_LOGIN: Final = """\
The password needs at least 12 characters with upper- and lower-case letters, digits and
special characters, and must not be a common or breached password (even with letters
swapped for look-alike digits, or digits and symbols added), a keyboard walk, a repeated
pattern, a word or season next to a year, or contain the user name. Only a salted scrypt
hash is stored (api.password_hash), never the password.

examples:
  sendtopacs config set-api-password                     asks twice (user: the current one)
  sendtopacs config set-api-password --username alice
  printf '%s\\n' "$PASSWORD" | sendtopacs config set-api-password --password-stdin
"""


def add_config_command(commands: Any) -> None:
    """The ``config`` command and its actions: init, show, check, set-api-password."""
    config = commands.add_parser(
        "config",
        help="create, show or check the settings file; set the API password",
        description="Create, show or check settings.json; set the HTTP API user and password.",
        epilog=_EPILOG_CONFIG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(config, suppress=True)
    config.set_defaults(help_parser=config)
    actions = config.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    init = actions.add_parser(
        "init",
        help="write a settings file with every default",
        description=(
            "Write a starting settings.json: every section with every key at its default. "
            "Refuses to overwrite an existing file unless --force is given."
        ),
        epilog=_EPILOG_INIT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(init, suppress=True)
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=_cmd_config_init)
    show = actions.add_parser(
        "show",
        help="every key, its value and what it does",
        description=(
            "Print every key of the settings with its value (from the settings file, or the "
            "default when the file or the key is missing) and what it does."
        ),
        epilog=_EPILOG_SHOW,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(show, suppress=True)
    show.set_defaults(handler=_cmd_config_show)
    check = actions.add_parser(
        "check",
        help="check the settings file",
        description=(
            "Load the settings file and report whether it is valid; an invalid file is "
            "reported with the key at fault (exit status 2). A missing file is valid: the "
            "defaults apply."
        ),
        epilog=_EPILOG_CHECK,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(check, suppress=True)
    check.set_defaults(handler=_cmd_config_check)
    password = actions.add_parser(
        "set-api-password",
        help="set the user and password of the HTTP API (sendtopacs serve)",
        description=(
            "Set the user name and password of the HTTP API (sendtopacs serve): stores\n"
            "api.username and a salted hash of the password (api.password_hash) in the\n"
            "settings file, which is created if missing."
        ),
        epilog=_EPILOG_API_LOGIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(password, suppress=True)
    password.add_argument(
        "--username",
        metavar="NAME",
        help=f"the API user (default: the current api.username, else {DEFAULT_API_USERNAME})",
    )
    password.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from one line of standard input instead of asking twice",
    )
    password.set_defaults(handler=_cmd_config_set_api_password)


def _cmd_config_init(context: Context) -> int:
    path = context.settings_path
    if path.exists() and not context.args.force:
        raise UsageError(f"{path} exists already; use --force to overwrite it")
    Settings().dump(path)
    if context.args.json:
        context.emit_json({"ok": True, "path": str(path)})
    else:
        context.out.write(f"wrote {path}\n")
    return EXIT_OK


def _cmd_config_show(context: Context) -> int:
    settings = context.load_settings()
    rows = settings.explain()
    if context.args.json:
        context.emit_json(
            {
                "path": str(context.settings_path),
                "exists": context.settings_path.exists(),
                "settings": settings.to_dict(),
                "keys": [{"key": k, "value": v, "description": d} for k, v, d in rows],
            }
        )
        return EXIT_OK
    origin = "" if context.settings_path.exists() else " (missing: defaults)"
    context.out.write(f"# {context.settings_path}{origin}\n")
    for key, value, description in rows:
        context.out.write(f"{key} = {value}\n    {description}\n")
    return EXIT_OK


def _cmd_config_check(context: Context) -> int:
    path = context.settings_path
    context.load_settings()
    state = "valid" if path.exists() else "missing (defaults apply)"
    if context.args.json:
        context.emit_json({"ok": True, "path": str(path), "exists": path.exists()})
    else:
        context.out.write(f"{path}: {state}\n")
    return EXIT_OK


def _cmd_config_set_api_password(context: Context) -> int:
    path = context.settings_path
    settings = context.load_settings()  # a broken file is reported before the password is asked
    username = _username(context.args.username or settings.api.username or DEFAULT_API_USERNAME)
    password = _read_password(context)
    problems = password_problems(password, username=username)
    if problems:
        if context.args.json:
            context.emit_json({"ok": False, "error": "password refused", "problems": problems})
        else:
            context.err.write(
                "sendtopacs: password refused:\n" + "".join(f"  {p}\n" for p in problems)
            )
        return EXIT_USAGE
    api = attrs.evolve(settings.api, username=username, password_hash=hash_password(password))
    attrs.evolve(settings, api=api).dump(path)
    if context.args.json:
        context.emit_json({"ok": True, "path": str(path), "username": username})
    else:
        context.out.write(f"API user {username!r}: password hash stored in {path}\n")
    return EXIT_OK


def _username(name: str) -> str:
    """The user name, stripped; HTTP Basic authentication allows no colon in it."""
    name = name.strip()
    if not name or ":" in name or not name.isprintable():
        raise UsageError(f"invalid user name {name!r}: printable characters, no colon")
    return name


def _read_password(context: Context) -> str:
    """One line of standard input (``--password-stdin``), or the same password typed twice."""
    if context.args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError("--password-stdin: nothing on standard input")
        return line.removesuffix("\n").removesuffix("\r")
    try:
        first = getpass.getpass("New API password: ")
        second = getpass.getpass("The same password again: ")
    except EOFError as exc:
        raise UsageError("no password given (use --password-stdin to pipe one in)") from exc
    if first != second:
        raise UsageError("the two passwords differ; nothing was changed")
    return first
