"""What the commands of ``sendtopacs`` share: exit statuses, usage errors, options, context."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Final, NoReturn, TextIO

import attrs
import platformdirs

from sendtopacs_core import Settings, Study, Timeouts, TlsOptions

__all__ = [
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "Context",
    "Parser",
    "UsageError",
    "connection",
    "default_settings_path",
    "global_options",
    "study_from",
    "study_options",
]

EXIT_OK: Final = 0
EXIT_PARTIAL: Final = 1
EXIT_USAGE: Final = 2
EXIT_NETWORK: Final = 3


class UsageError(Exception):
    """Bad command-line usage (exit status 2)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def default_settings_path() -> Path:
    """Where settings.json lives unless ``--settings`` says otherwise."""
    return platformdirs.user_config_path("sendtopacs") / "settings.json"


def global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--settings",
        type=Path,
        default=default,
        metavar="FILE",
        help=f"settings file (default: {default_settings_path()})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print one JSON document on stdout and nothing else there",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS if suppress else 0,
        help="more log output (repeat for debug; debug output may contain patient data)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=argparse.SUPPRESS if suppress else 0,
        help="less log output",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="show tracebacks and debug logs",
    )


def study_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("study options")
    for flag, dest, text in (
        ("--patient-id", "patient_id", "Patient ID (0010,0020)"),
        ("--patient-name", "patient_name", "Patient's Name (0010,0010), Family^Given^Middle"),
        ("--birth-date", "patient_birth_date", "Patient's Birth Date, YYYYMMDD"),
        ("--sex", "patient_sex", "Patient's Sex: M, F or O"),
        ("--accession-number", "accession_number", "Accession Number (0008,0050)"),
        ("--study-date", "study_date", "Study Date, YYYYMMDD (default: today)"),
        ("--study-time", "study_time", "Study Time, HHMMSS (default: now)"),
        ("--study-id", "study_id", "Study ID (0020,0010)"),
        ("--study-description", "study_description", "Study Description (0008,1030)"),
        ("--referring-physician", "referring_physician_name", "Referring Physician's Name"),
        ("--modality", "modality", "Modality (default: non_dicom.default_modality, OT)"),
        ("--study-uid", "study_instance_uid", "Study Instance UID (default: derived)"),
        ("--additional-info", "additional_info", "value of non_dicom.additional_info_tag"),
    ):
        group.add_argument(flag, dest=dest, metavar="VALUE", help=text)


@attrs.frozen
class Context:
    args: argparse.Namespace
    out: TextIO
    err: TextIO

    @property
    def settings_path(self) -> Path:
        path: Path | None = self.args.settings
        return path if path is not None else default_settings_path()

    def load_settings(self) -> Settings:
        return Settings.load(self.settings_path)

    def working_settings(self) -> Settings:
        """The settings for commands that work on files (send, watch, serve): the temporary
        folder defaults to the platform's cache folder (the file itself is not changed)."""
        settings = self.load_settings()
        if settings.main.temp_dir is not None:
            return settings
        temp = platformdirs.user_cache_path("sendtopacs") / "temp"
        temp.mkdir(parents=True, exist_ok=True)
        return attrs.evolve(settings, main=attrs.evolve(settings.main, temp_dir=temp.resolve()))

    def emit_json(self, document: object) -> None:
        json.dump(document, self.out, indent=2, ensure_ascii=False)
        self.out.write("\n")

    def emit_json_line(self, document: object) -> None:
        """One JSON document on one line (the event stream of long-running commands)."""
        self.out.write(json.dumps(document, ensure_ascii=False) + "\n")
        self.out.flush()


def study_from(args: argparse.Namespace) -> Study:
    fields = {field.name for field in attrs.fields(Study)}
    values = {name: getattr(args, name) for name in fields if getattr(args, name, None)}
    try:
        return Study(**values)
    except ValueError as exc:
        raise UsageError(f"invalid study option: {exc}") from exc


def connection(args: argparse.Namespace) -> dict[str, Any] | None:
    """The fields of a device given with ``--host/--port/--called-aet`` and the TLS options;
    ``None`` when no host or port is given.

    Raises
    ------
    UsageError
        Only one of ``--host`` and ``--port``, or an invalid value.
    """
    if not (getattr(args, "host", None) or getattr(args, "port", None)):
        return None
    if not (args.host and args.port):
        raise UsageError("--host and --port go together")
    try:
        timeouts = Timeouts()
        if args.timeout is not None:
            timeouts = Timeouts(
                connect_s=args.timeout,
                acse_s=args.timeout,
                dimse_s=args.timeout,
                network_s=args.timeout,
            )
        tls = TlsOptions(
            enabled=args.tls, ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file
        )
    except ValueError as exc:
        raise UsageError(f"invalid connection option: {exc}") from exc
    return {
        "name": "command line",
        "ae_title": args.called_aet or "ANY-SCP",
        "host": args.host,
        "port": args.port,
        "tls": tls,
        "timeouts": timeouts,
    }
