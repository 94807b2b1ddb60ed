"""The ``sendtopacs`` command: parse, build core objects, call the core, print.

Exit status: 0 all done, 1 some files failed, 2 usage or settings error, 3 network error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Never, NoReturn

import attrs
from tqdm import tqdm

from sendtopacs_adapters import _logging
from sendtopacs_adapters._common import (
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    Context,
    Parser,
    UsageError,
    global_options,
    study_from,
    study_options,
)
from sendtopacs_adapters._config_commands import add_config_command
from sendtopacs_adapters._net_commands import add_connection_options, cmd_demo, cmd_echo, cmd_send
from sendtopacs_adapters._query_commands import (
    add_query_keys,
    add_worklist_choice,
    cmd_find,
    cmd_worklist,
    study_from_worklist,
)
from sendtopacs_adapters._serve_command import add_serve_command
from sendtopacs_adapters.watch import cmd_watch
from sendtopacs_core import (
    ConfigError,
    ConversionReport,
    Converter,
    DicomNetworkError,
    ImageTransferSyntax,
    SendToPacsError,
    Settings,
    SopClassRule,
    VideoFormat,
    __version__,
)

__all__ = ["main", "run"]

_EPILOG_MAIN: Final = """\
examples:
  sendtopacs demo                   installation check: convert and send to a local test PACS
  sendtopacs config init            a settings.json with every key and its default
  sendtopacs echo pacs              does the PACS answer?
  sendtopacs send photo.jpg report.pdf --patient-id 12345 --patient-name "Müller^Anna"
  sendtopacs --debug send study/    a traceback with any error

Run 'sendtopacs COMMAND --help' for a command's options and examples.
Exit status: 0 all done, 1 some files failed, 2 usage or settings error, 3 network error.
"""
_EPILOG_CONVERT: Final = """\
examples:
  sendtopacs convert photo.jpg report.pdf -o out/ --patient-id 12345 \\
      --patient-name "Müller^Anna" --study-description "Wound photo"
  sendtopacs --json convert scans/*.tif -o out/ --accession-number A123
  sendtopacs convert screenshot.png -o out/ --image-transfer-syntax jpeg-baseline
"""
_EPILOG_ECHO: Final = """\
examples:
  sendtopacs echo                   the default device of the settings
  sendtopacs echo pacs
  sendtopacs echo --host 10.0.0.5 --port 104 --called-aet PACS
"""
_EPILOG_SEND: Final = """\
examples:
  sendtopacs send study/ --to pacs
  sendtopacs send *.dcm --host 10.0.0.5 --port 104 --called-aet PACS --decompress
  sendtopacs send photo.jpg report.pdf --patient-id 12345 --patient-name "Müller^Anna"
  sendtopacs --json send study/ > report.json
"""
_EPILOG_WORKLIST: Final = """\
examples:
  sendtopacs worklist                         today's steps on the default worklist device
  sendtopacs worklist --modality ES --date 20261127-20261130
  sendtopacs worklist --patient-name "Mül*" --all-dates --json
  sendtopacs convert photo.jpg -o out/ --worklist default --pick 2
"""
_EPILOG_FIND: Final = """\
examples:
  sendtopacs find --patient-id 12345
  sendtopacs find --model patient --level patient --patient-name "Mül*"
  sendtopacs find --study-date 20260101-20261231 --modality ES --json
"""
_EPILOG_WATCH: Final = """\
examples:
  sendtopacs watch                  run every monitor until stopped
  sendtopacs watch --once           for cron: process what is there, then exit
  sendtopacs watch --list           the files waiting (auto_forward off, or retrying)
  sendtopacs watch --send-pending   send the files held because auto_forward is off
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sendtopacs``."""
    parser = Parser(
        prog="sendtopacs",
        description="Convert clinic files (images, PDFs, videos) to DICOM and send them to PACS.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG_MAIN,
    )
    parser.add_argument("--version", action="version", version=f"sendtopacs {__version__}")
    global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    convert = commands.add_parser(
        "convert",
        help="convert images and PDFs into DICOM files",
        description="Convert images and PDFs into DICOM files in an output folder.",
        epilog=_EPILOG_CONVERT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(convert, suppress=True)
    convert.add_argument("files", nargs="+", type=Path, metavar="FILE", help="input files")
    convert.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="DIR",
        help="output folder (created if missing; receives only DICOM files)",
    )
    convert.add_argument("--sop-class", metavar="UID", help="SOP Class UID for every file")
    convert.add_argument(
        "--image-transfer-syntax",
        choices=[str(v) for v in ImageTransferSyntax],
        help="auto: pass JPEG through, else uncompressed; explicit-le; jpeg-baseline",
    )
    convert.add_argument("--jpeg-quality", type=int, metavar="1-100", help="for jpeg-baseline")
    convert.add_argument(
        "--video-format", choices=[str(v) for v in VideoFormat], help="for video inputs"
    )
    convert.add_argument("--charset", metavar="CHARSET", help="Specific Character Set or auto")
    convert.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes converting in parallel (default: the number of CPUs, at most 4)",
    )
    study_options(convert)
    add_worklist_choice(convert)
    convert.set_defaults(handler=_cmd_convert)

    _add_network_commands(commands)
    _add_search_commands(commands)
    _add_watch_command(commands)
    add_serve_command(commands)

    add_config_command(commands)
    return parser


def _add_network_commands(commands: Any) -> None:
    """echo, send and demo."""
    echo = commands.add_parser(
        "echo",
        help="check that a PACS answers (C-ECHO)",
        description="Check that a PACS answers a C-ECHO and accepts our AE title.",
        epilog=_EPILOG_ECHO,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(echo, suppress=True)
    echo.add_argument("name", nargs="?", metavar="NAME", help="a device of the settings")
    add_connection_options(echo)
    echo.set_defaults(handler=cmd_echo)

    send = commands.add_parser(
        "send",
        help="send DICOM files (and convert other files) to a PACS",
        description=(
            "Send files and folders to a PACS. DICOM files are recognised by their content "
            "and sent as they are (or decompressed when the PACS accepts only uncompressed "
            "data); other files are converted first with the study options. Every file gets "
            "the PACS's answer. Exit status: 0 all sent, 1 some failed, 3 the PACS could not "
            "be reached or refused the association."
        ),
        epilog=_EPILOG_SEND,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(send, suppress=True)
    send.add_argument("files", nargs="*", type=Path, metavar="FILE|DIR", help="files, folders")
    send.add_argument(
        "--pending",
        action="store_true",
        help="send the files the monitors hold (auto_forward off), as watch --send-pending",
    )
    send.add_argument(
        "--journal", type=Path, metavar="FILE", help="with --pending: the watcher's journal"
    )
    send.add_argument("--to", metavar="NAME", help="a device of the settings (default: default)")
    add_connection_options(send)
    send.add_argument(
        "--decompress",
        action="store_true",
        help="also decompress lossy images when the PACS accepts only uncompressed data",
    )
    send.add_argument(
        "--files-per-association", type=int, metavar="N", help="files per association (0: all)"
    )
    send.add_argument(
        "--associations", type=int, metavar="N", help="associations used in parallel (1-16)"
    )
    study_options(send)
    add_worklist_choice(send)
    send.set_defaults(handler=cmd_send)

    demo = commands.add_parser(
        "demo",
        help="installation check: a local test PACS, convert, send, verify",
        description=(
            "Installation check: start a local test PACS on a free loopback port, make sample "
            "files (a JPEG photo, a PNG screenshot, a PDF), convert them for a demo patient, "
            "send them, check what the test PACS received, and stop it."
        ),
        epilog="examples:\n  sendtopacs demo\n  sendtopacs demo --keep demo-output/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(demo, suppress=True)
    demo.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep the samples, DICOM files and received files"
    )
    demo.set_defaults(handler=cmd_demo)


def _add_watch_command(commands: Any) -> None:
    watch = commands.add_parser(
        "watch",
        help="watch the monitors' folders and forward their files",
        description=(
            "Watch the folders of the monitors section and send the files that arrive, "
            "without losing or doubling any: a file is taken once it stops changing, sent, "
            "retried, and removed or moved only after the PACS accepted it; failures go to "
            "the failed folder with a reason file. One watcher per settings file; SIGTERM "
            "or Ctrl-C stop it gracefully. stderr (the log) shows states, counts and status "
            "codes; file names and messages only with -v. With --json, one JSON event per "
            "line on stdout: the events carry file names and messages (patient data)."
        ),
        epilog=_EPILOG_WATCH,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(watch, suppress=True)
    watch.add_argument("--once", action="store_true", help="process what is there, then exit")
    watch.add_argument(
        "--list",
        action="store_true",
        help="list the pending files and the sent ones (unless "
        "main.clean_sent_files_from_list), then exit",
    )
    watch.add_argument(
        "--send-pending", action="store_true", help="send the held files now, then exit"
    )
    watch.add_argument("--journal", type=Path, metavar="FILE", help="the journal (SQLite) file")
    watch.set_defaults(handler=cmd_watch)


def _add_search_commands(commands: Any) -> None:
    """worklist and find."""
    worklist = commands.add_parser(
        "worklist",
        help="search the Modality Worklist",
        description=(
            "Search a Modality Worklist server (a worklist device of the settings, or "
            "--host/--port/--called-aet) and list the scheduled procedure steps."
        ),
        epilog=_EPILOG_WORKLIST,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(worklist, suppress=True)
    worklist.add_argument("--device", metavar="NAME", help="a worklist device of the settings")
    add_connection_options(worklist)
    add_query_keys(worklist, worklist=True)
    worklist.set_defaults(handler=cmd_worklist)

    find = commands.add_parser(
        "find",
        help="search patients or studies (Query/Retrieve C-FIND)",
        description="Search a Query/Retrieve server for patients or studies.",
        epilog=_EPILOG_FIND,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(find, suppress=True)
    find.add_argument("--device", metavar="NAME", help="a worklist device of the settings")
    add_connection_options(find)
    add_query_keys(find, worklist=False)
    find.set_defaults(handler=cmd_find)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sendtopacs`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    out, err = sys.stdout, sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    debug: bool = args.debug
    _logging.configure(2 if debug else args.verbose - args.quiet)
    handler: Callable[[Context], int] | None = getattr(args, "handler", None)
    if handler is None:
        help_parser: argparse.ArgumentParser = getattr(args, "help_parser", parser)
        help_parser.print_help(err)
        return EXIT_USAGE
    context = Context(args=args, out=out, err=err)
    try:
        return handler(context)
    except (ConfigError, UsageError, DicomNetworkError, SendToPacsError) as exc:
        return _fail(context, _failure_text(exc), _failure_status(exc), exc)
    except OSError as exc:  # a file or folder the command could not use: one line, too
        return _fail(context, f"error: {exc}", EXIT_PARTIAL, exc)


def _failure_status(exc: BaseException) -> int:
    if isinstance(exc, ConfigError | UsageError):
        return EXIT_USAGE
    if isinstance(exc, DicomNetworkError):
        return EXIT_NETWORK
    return EXIT_PARTIAL


def _failure_text(exc: BaseException) -> str:
    return f"settings error: {exc}" if isinstance(exc, ConfigError) else str(exc)


def run() -> NoReturn:
    """The console entry point: :func:`main`, then exit without tearing the interpreter down.

    Every command closes what it opened (files, worker processes, temporary folders) before
    :func:`main` returns, so the interpreter's own teardown of pydicom, numpy and Pillow
    (about 50 ms, a fifth of a small command's time) is skipped: output is flushed, logging
    is shut down, and the process exits with the status.
    """
    try:
        status = main()
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader of our output went away (`sendtopacs ... | head`)
        status = EXIT_PARTIAL
    logging.shutdown()
    os._exit(status)


def _fail(context: Context, message: str, status: int, exc: BaseException) -> int:
    if context.args.debug:
        import traceback  # noqa: PLC0415

        traceback.print_exception(exc, file=context.err)
    if context.args.json:
        context.emit_json({"ok": False, "error": message})
    else:
        context.err.write(f"sendtopacs: {message}\n")
    return status


# -- convert --------------------------------------------------------------------------------


def _settings_for_convert(settings: Settings, args: argparse.Namespace) -> Settings:
    non_dicom = settings.non_dicom
    changes: dict[str, Any] = {}
    if args.image_transfer_syntax:
        changes["image_transfer_syntax"] = ImageTransferSyntax(args.image_transfer_syntax)
    if args.jpeg_quality is not None:
        changes["jpeg_quality"] = args.jpeg_quality
    if args.video_format:
        changes["video_format"] = VideoFormat(args.video_format)
    if args.charset:
        changes["charset"] = args.charset
    if args.sop_class:
        changes["sop_class_rules"] = (
            SopClassRule(name="--sop-class", uid=args.sop_class, extensions=("*",), default=True),
        )
    if args.modality and args.modality not in non_dicom.modalities:
        changes["modalities"] = (*non_dicom.modalities, args.modality)
    try:
        return attrs.evolve(settings, non_dicom=attrs.evolve(non_dicom, **changes))
    except ValueError as exc:
        raise UsageError(f"invalid option: {exc}") from exc


def _cmd_convert(context: Context) -> int:
    args = context.args
    settings = _settings_for_convert(context.load_settings(), args)
    study = study_from(args)
    picked = study_from_worklist(context, settings, study)
    workers: int = args.workers if args.workers is not None else min(os.cpu_count() or 1, 4)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1 (found {workers})")
    # Files matched to worklist items by name (non_dicom.parse_file_name): the core's.
    with _ProgressBars(enabled=not args.json and args.quiet == 0) as bars:
        report = Converter(settings, workers=workers).convert(
            args.files, picked or study, out_dir=args.output, progress=bars.update
        )
    if args.json:
        context.emit_json(report.to_dict())
    else:
        _print_report(context, report, args.files)
        if report.failures:
            # stderr is a log: counts only; the file names and causes are on stdout.
            context.err.write(
                f"sendtopacs: error: {len(report.failures)} input(s) not converted "
                "(listed on stdout)\n"
            )
    return EXIT_OK if report.ok else EXIT_PARTIAL


class _ProgressBars:
    """One progress bar on stderr per long job (a video transcode); nothing on stdout."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled and sys.stderr.isatty()
        self._bars: dict[Path, tqdm[Never]] = {}

    def __enter__(self) -> _ProgressBars:
        return self

    def __exit__(self, *_: object) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()

    def update(self, source: Path, fraction: float) -> None:
        if not self._enabled:
            return
        if source not in self._bars:
            self._bars[source] = tqdm(
                total=100, desc=f"transcoding {source.name}", unit="%", leave=False
            )
        bar = self._bars[source]
        bar.n = round(fraction * 100)
        bar.refresh()
        if fraction >= 1:
            bar.close()
            del self._bars[source]


def _print_report(context: Context, report: ConversionReport, sources: Sequence[Path]) -> None:
    for item in report.files:
        context.out.write(
            f"{item.source} -> {item.path}: {item.sop_class_name}, {item.transfer_syntax_name}, "
            f"{item.action} ({item.reason})\n"
        )
        for warning in item.warnings:
            context.out.write(f"warning: {warning}\n")
    for failure in report.failures:
        context.out.write(f"error: {failure.error}\n")
    studies = report.study_instance_uids
    which = f"study {studies[0]}" if len(studies) == 1 else f"{len(studies)} studies"
    context.out.write(
        f"{len(report.files)} DICOM file(s) written from {len(sources) - len(report.failures)} "
        f"of {len(sources)} input(s); {which}\n"
    )


if __name__ == "__main__":  # pragma: no cover
    run()
