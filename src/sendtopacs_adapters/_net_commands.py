"""``sendtopacs echo``, ``send`` and ``demo``: the commands that talk to a PACS.

Each builds a :class:`~sendtopacs_core.Device` (named in the settings, or given with
``--host/--port/--called-aet``), calls the core's :class:`~sendtopacs_core.Sender` and prints
the outcome: one line per file and a summary, or one JSON document with ``--json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Final, Never

import attrs
from tqdm import tqdm

from sendtopacs_adapters._common import (
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_PARTIAL,
    Context,
    UsageError,
    connection,
    study_from,
)
from sendtopacs_adapters._query_commands import study_from_worklist
from sendtopacs_core import (
    ConfigError,
    ConversionReport,
    Converter,
    Device,
    DicomNetworkError,
    FileOutcome,
    Querier,
    Sender,
    SendReport,
    Settings,
    Study,
    WorklistDevice,
    WorklistItem,
    WorklistQuery,
    make_sample_files,
)
from sendtopacs_core.testing import StorageSCP, WorklistSCP, make_worklist_item

__all__ = ["add_connection_options", "cmd_demo", "cmd_echo", "cmd_send"]

DEMO_STUDY: Final = Study(
    patient_id="DEMO-0001",
    patient_name="Demo^Patient",
    patient_sex="O",
    accession_number="DEMO1",
    study_description="sendtopacs demo",
)
_STUDY_FIELDS: Final = frozenset(field.name for field in attrs.fields(Study))


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """``--host/--port/--called-aet`` and TLS options for a device not in the settings."""
    group = parser.add_argument_group("connection (instead of a device from the settings)")
    group.add_argument("--host", metavar="HOST", help="host name or IP address of the PACS")
    group.add_argument("--port", type=int, metavar="PORT", help="its DICOM port")
    group.add_argument("--called-aet", metavar="AET", help="its AE title (default: ANY-SCP)")
    group.add_argument("--tls", action="store_true", help="connect with DICOM TLS")
    group.add_argument("--ca-file", type=Path, metavar="PEM", help="authorities to trust (TLS)")
    group.add_argument("--cert-file", type=Path, metavar="PEM", help="our certificate (TLS)")
    group.add_argument("--key-file", type=Path, metavar="PEM", help="its key (TLS)")
    group.add_argument(
        "--timeout", type=float, metavar="S", help="seconds to wait for the PACS (each step)"
    )


def _device(settings: Settings, args: argparse.Namespace, name: str | None) -> Device:
    fields = connection(args)
    if fields is not None:
        if name:
            raise UsageError("name a device or give --host and --port, not both")
        try:
            return Device(**fields)
        except ValueError as exc:
            raise UsageError(f"invalid connection option: {exc}") from exc
    try:
        return settings.device(name)
    except ConfigError as exc:
        raise UsageError(f"{exc}; or give --host, --port and --called-aet") from exc


def _where(device: Device) -> str:
    return f"{device.ae_title}@{device.host}:{device.port}"


# -- echo -----------------------------------------------------------------------------------


def cmd_echo(context: Context) -> int:
    """C-ECHO a device: 0 when it answers, 3 when it cannot be reached or refuses us."""
    args = context.args
    settings = context.load_settings()
    device = _device(settings, args, args.name)
    sender = Sender(device, settings=settings)
    try:
        seconds = sender.echo()
    except DicomNetworkError as exc:
        if args.json:
            context.emit_json({"ok": False, "device": device.name, "error": str(exc)})
        else:
            context.err.write(f"sendtopacs: echo {_where(device)} failed: {exc}\n")
        return EXIT_NETWORK
    if args.json:
        context.emit_json(
            {"ok": True, "device": device.name, "address": _where(device), "seconds": seconds}
        )
    else:
        context.out.write(f"{_where(device)} answered the C-ECHO in {seconds * 1000:.0f} ms\n")
    return EXIT_OK


# -- send -----------------------------------------------------------------------------------


def cmd_send(context: Context) -> int:
    """Send files and folders: 0 all sent (and committed, when the device asks for storage
    commitment), 1 some failed or were not committed, 3 the PACS could not be reached."""
    args = context.args
    if args.pending:
        if args.files:
            raise UsageError("--pending sends the monitors' held files; name no files with it")
        from sendtopacs_adapters.watch import cmd_watch  # noqa: PLC0415 (watchdog loads slowly)

        args.send_pending, args.list, args.once = True, False, False
        return cmd_watch(context)
    if not args.files:
        raise UsageError("name the files or folders to send (or --pending)")
    if args.journal is not None:
        raise UsageError("--journal goes with --pending")
    settings = context.working_settings()
    device = _device(settings, args, args.to)
    changes: dict[str, Any] = {}
    if args.files_per_association is not None:
        changes["files_per_association"] = args.files_per_association
    if args.associations is not None:
        changes["parallel_associations"] = args.associations
    try:
        device = attrs.evolve(device, **changes)
    except ValueError as exc:
        raise UsageError(f"invalid option: {exc}") from exc
    given = any(getattr(args, name, None) for name in _STUDY_FIELDS)
    study = study_from(args) if given else None
    from_worklist = study_from_worklist(context, settings, study or Study())
    study = from_worklist or study
    # Worklist matching (file names, DICOM headers) is the core's, from the settings.
    sender = Sender(device, settings=settings, decompress=args.decompress)
    show_bar = not args.json and args.quiet == 0 and sys.stderr.isatty()
    with _SendBar(enabled=show_bar) as bar:
        report = sender.send(args.files, study=study, progress=bar.update)
    if args.json:
        context.emit_json(report.to_dict())
    else:
        _print_send_report(context, report, device)
    if report.unreachable:
        return EXIT_NETWORK
    return EXIT_OK if report.ok else EXIT_PARTIAL


class _SendBar:
    """A progress bar on stderr counting the files done; nothing on stdout."""

    def __init__(self, *, enabled: bool) -> None:
        self._bar: tqdm[Never] | None = (
            tqdm(desc="sending", unit=" files", leave=False) if enabled else None
        )

    def __enter__(self) -> _SendBar:
        return self

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, _outcome: FileOutcome) -> None:
        if self._bar is not None:
            self._bar.update(1)


def _print_send_report(context: Context, report: SendReport, device: Device) -> None:
    width = max((len(str(outcome.state)) for outcome in report), default=4)
    for outcome in report:
        commitment = "" if outcome.commitment is None else f"; {outcome.commitment_message}"
        context.out.write(
            f"{outcome.state!s:<{width}}  {outcome.source}: {outcome.message}{commitment}\n"
        )
    # stderr is a log: states and status codes only; file names and causes are on stdout.
    if report.failed:
        states = sorted({str(outcome.state) for outcome in report.failed})
        codes = sorted({o.status_text for o in report.failed if o.status is not None})
        status = f", status {', '.join(codes)}" if codes else ""
        context.err.write(
            f"sendtopacs: error: {len(report.failed)} file(s) not sent ({', '.join(states)}"
            f"{status}; listed on stdout)\n"
        )
    if report.uncommitted:
        states = sorted({str(outcome.commitment) for outcome in report.uncommitted})
        context.err.write(
            f"sendtopacs: error: {len(report.uncommitted)} file(s) sent but not committed "
            f"({', '.join(states)}; listed on stdout)\n"
        )
    skipped = len(report) - len(report.sent) - len(report.failed)
    extra = f", {skipped} skipped" if skipped else ""
    if report.uncommitted:
        extra += f", {len(report.uncommitted)} of them not committed"
    context.out.write(
        f"{len(report.sent)} of {len(report.sent) + len(report.failed)} file(s) sent to "
        f"{device.name} ({_where(device)}){extra}\n"
    )
    if report.kept_temp_dir is not None:
        context.out.write(f"temporary copies kept in {report.kept_temp_dir}\n")


# -- demo -----------------------------------------------------------------------------------


def cmd_demo(context: Context) -> int:
    """Start a local test PACS and worklist, find the demo patient, convert, send, verify."""
    keep: Path | None = context.args.keep
    settings = context.load_settings()
    scheduled = make_worklist_item(
        patient_name=DEMO_STUDY.patient_name or "",
        patient_id=DEMO_STUDY.patient_id or "",
        patient_sex=DEMO_STUDY.patient_sex or "",
        accession_number=DEMO_STUDY.accession_number or "",
        requested_procedure_description="sendtopacs demo",
    )
    with tempfile.TemporaryDirectory(prefix="sendtopacs-demo-") as scratch:
        folder = keep if keep is not None else Path(scratch)
        samples = make_sample_files(folder / "samples")
        with (
            WorklistSCP([scheduled], ae_title="TESTMWL") as mwl,
            StorageSCP(ae_title="TESTPACS", storage_dir=folder / "pacs") as pacs,
        ):
            worklist = WorklistDevice(
                name="demo worklist", ae_title="TESTMWL", host="127.0.0.1", port=mwl.port
            )
            items = Querier(worklist, calling_ae_title=settings.main.ae_title).find_worklist(
                WorklistQuery(patient_id=DEMO_STUDY.patient_id)
            )
            study = items[0].to_study() if len(items) == 1 else DEMO_STUDY
            converted = Converter(settings).convert(samples, study, out_dir=folder / "dicom")
            device = Device(name="demo PACS", ae_title="TESTPACS", host="127.0.0.1", port=pacs.port)
            work = attrs.evolve(settings.main, temp_dir=Path(scratch).resolve())
            sender = Sender(device, settings=attrs.evolve(settings, main=work))
            sent = sender.send([item.path for item in converted.files])
            received = pacs.received
        expected = {item.sop_instance_uid for item in converted.files}
        arrived = {item.sop_instance_uid for item in received}
        verified = (
            len(items) == 1
            and bool(expected)
            and expected <= arrived
            and sent.ok
            and converted.ok
            and converted.study_instance_uid == scheduled.StudyInstanceUID
        )
        _print_demo(
            context,
            _Demo(worklist=items, converted=converted, sent=sent, device=device),
            folder,
            verified=verified,
            kept=keep,
        )
    return EXIT_OK if verified else EXIT_PARTIAL


@attrs.frozen
class _Demo:
    worklist: list[WorklistItem]
    converted: ConversionReport
    sent: SendReport
    device: Device


def _print_demo(
    context: Context, demo: _Demo, folder: Path, *, verified: bool, kept: Path | None
) -> None:
    converted, sent, device = demo.converted, demo.sent, demo.device
    if context.args.json:
        context.emit_json(
            {
                "ok": verified,
                "worklist": [
                    {
                        "patient_name": item.patient_name,
                        "patient_id": item.patient_id,
                        "accession_number": item.accession_number,
                        "study_instance_uid": item.study_instance_uid,
                    }
                    for item in demo.worklist
                ],
                "convert": converted.to_dict(),
                "send": sent.to_dict(),
                "verified": verified,
                "folder": str(folder) if kept is not None else None,
            }
        )
        return
    out = context.out
    out.write(
        f"sendtopacs demo: a local test worklist and test PACS ({_where(device)}) were started\n"
    )
    found = ", ".join(
        f"{item.patient_name} ({item.patient_id}), accession {item.accession_number}"
        for item in demo.worklist
    )
    out.write(f"1. found the demo patient in the worklist: {found or 'NOT found'}\n")
    out.write(f"2. converted {len(converted.files)} DICOM file(s) from sample files:\n")
    for item in converted.files:
        out.write(f"   {item.source.name} -> {item.sop_class_name}, {item.transfer_syntax_name}\n")
    for failure in converted.failures:
        context.err.write(f"sendtopacs: error: {failure.error}\n")
    out.write(f"3. sent them: {len(sent.sent)} of {len(sent)} accepted\n")
    for outcome in sent:
        out.write(f"   {outcome.source.name}: {outcome.message}\n")
    verdict = "every object arrived" if verified else "NOT every object arrived"
    out.write(f"4. checked what the test PACS received: {verdict}, in the worklist's study\n")
    if kept is not None:
        out.write(f"files: samples, dicom and what the PACS stored (pacs) in {folder}\n")
    else:
        out.write("the test PACS was stopped and its files removed (use --keep DIR to keep them)\n")
