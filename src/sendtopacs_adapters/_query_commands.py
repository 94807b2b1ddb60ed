"""``sendtopacs worklist`` and ``find``, and ``--worklist NAME [--pick N]`` for convert/send.

The worklist device comes from the settings (``--device NAME`` or the default) or from
``--host/--port/--called-aet``; the answers print as a numbered table (``--pick N`` counts from
1, as the table shows) or as one JSON document with ``--json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Final, cast

import attrs

from sendtopacs_adapters._common import (
    EXIT_NETWORK,
    EXIT_OK,
    Context,
    UsageError,
    connection,
)
from sendtopacs_core import (
    ConfigError,
    DicomNetworkError,
    InvalidValueError,
    Querier,
    QueryLevel,
    QueryModel,
    QueryResult,
    Settings,
    Study,
    StudyQuery,
    WorklistDevice,
    WorklistItem,
    WorklistMatchError,
    WorklistQuery,
    pick_worklist_study,
)

__all__ = [
    "add_query_keys",
    "add_worklist_choice",
    "cmd_find",
    "cmd_worklist",
    "study_from_worklist",
]

_WORKLIST_COLUMNS: Final = (
    ("Patient", "patient_name"),
    ("ID", "patient_id"),
    ("Born", "patient_birth_date"),
    ("Sex", "patient_sex"),
    ("Accession", "accession_number"),
    ("Mod", "modality"),
    ("Date", "scheduled_start_date"),
    ("Time", "scheduled_start_time"),
    ("Procedure", "requested_procedure_description"),
)
_FIND_COLUMNS: Final = (
    ("Patient", "patient_name"),
    ("ID", "patient_id"),
    ("Born", "patient_birth_date"),
    ("Sex", "patient_sex"),
    ("Study date", "study_date"),
    ("Accession", "accession_number"),
    ("Modalities", "modalities_in_study"),
    ("Description", "study_description"),
)


def add_query_keys(parser: argparse.ArgumentParser, *, worklist: bool) -> None:
    """The search keys of ``worklist`` (``worklist=True``) or ``find``."""
    group = parser.add_argument_group("search keys (wildcards * and ? allowed)")
    group.add_argument("--patient-id", metavar="ID")
    group.add_argument("--patient-name", metavar="NAME", help="Family^Given, e.g. 'Mül*'")
    group.add_argument("--accession-number", metavar="NUMBER")
    if worklist:
        group.add_argument("--modality", metavar="CS", help="default: the device's")
        group.add_argument("--scheduled-aet", metavar="AET", help="default: the device's")
        group.add_argument(
            "--date", metavar="DATE", help="today, YYYYMMDD or YYYYMMDD-YYYYMMDD (default: today)"
        )
        group.add_argument("--all-dates", action="store_true", help="do not limit the date")
    else:
        group.add_argument("--birth-date", metavar="YYYYMMDD")
        group.add_argument("--study-date", metavar="DATE", help="YYYYMMDD or a range")
        group.add_argument("--study-description", metavar="TEXT")
        group.add_argument("--modality", metavar="CS", help="Modalities in Study")
        group.add_argument("--study-uid", metavar="UID")
        parser.add_argument("--model", choices=[str(m) for m in QueryModel if m != "worklist"])
        parser.add_argument("--level", choices=[str(level) for level in QueryLevel])
    parser.add_argument("--limit", type=int, metavar="N", help="stop after N answers")


def add_worklist_choice(parser: argparse.ArgumentParser) -> None:
    """``--worklist NAME [--pick N]`` for convert and send."""
    group = parser.add_argument_group("patient and study from the worklist")
    group.add_argument(
        "--worklist",
        metavar="NAME",
        help="fill the study from an item of this worklist device ('default' for the default); "
        "--patient-id, --patient-name and --accession-number become search keys",
    )
    group.add_argument("--pick", type=int, metavar="N", help="the N-th item (from 1)")


def _worklist_device(
    settings: Settings, args: argparse.Namespace, name: str | None
) -> WorklistDevice:
    fields = connection(args)
    if fields is not None:
        try:
            return WorklistDevice(**fields)
        except ValueError as exc:
            raise UsageError(f"invalid connection option: {exc}") from exc
    try:
        return settings.worklist_device(None if name in (None, "default") else name)
    except ConfigError as exc:
        raise UsageError(f"{exc}; or give --host, --port and --called-aet") from exc


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _table(rows: Sequence[object], columns: Sequence[tuple[str, str]]) -> list[str]:
    header = ["#", *(title for title, _ in columns)]
    body = [
        [str(number), *(_cell(getattr(row, field)) for _, field in columns)]
        for number, row in enumerate(rows, start=1)
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]


def _document(row: WorklistItem | QueryResult) -> dict[str, Any]:
    data = attrs.asdict(row, filter=lambda field, _value: field.name != "identifier")
    return {key: (str(value) if key == "level" else value) for key, value in data.items()}


def _worklist_query(args: argparse.Namespace) -> WorklistQuery:
    date = args.date
    if getattr(args, "all_dates", False):
        date = ""
    return WorklistQuery(
        patient_id=args.patient_id,
        patient_name=args.patient_name,
        accession_number=args.accession_number,
        modality=getattr(args, "modality", None),
        scheduled_ae_title=getattr(args, "scheduled_aet", None),
        date=date,
    )


def cmd_worklist(context: Context) -> int:
    """Search a worklist and print the items."""
    args = context.args
    settings = context.load_settings()
    device = _worklist_device(settings, args, args.device)
    querier = Querier(device, calling_ae_title=settings.main.ae_title)
    try:
        items = querier.find_worklist(_worklist_query(args), limit=args.limit)
    except InvalidValueError as exc:
        raise UsageError(str(exc)) from exc
    except DicomNetworkError as exc:
        return _network_error(context, device, exc)
    if args.json:
        context.emit_json(
            {"ok": True, "device": device.name, "items": [_document(item) for item in items]}
        )
    else:
        for line in _table(items, _WORKLIST_COLUMNS):
            context.out.write(line + "\n")
        context.out.write(f"{len(items)} item(s) from {device.name}\n")
    return EXIT_OK


def cmd_find(context: Context) -> int:
    """Search with Query/Retrieve and print the patients or studies."""
    args = context.args
    settings = context.load_settings()
    device = _worklist_device(settings, args, args.device)
    querier = Querier(device, calling_ae_title=settings.main.ae_title)
    query = StudyQuery(
        patient_id=args.patient_id,
        patient_name=args.patient_name,
        patient_birth_date=args.birth_date,
        accession_number=args.accession_number,
        study_instance_uid=args.study_uid,
        study_date=args.study_date,
        study_description=args.study_description,
        modalities_in_study=args.modality,
    )
    model = QueryModel(args.model) if args.model else None
    level = QueryLevel(args.level) if args.level else None
    try:
        results = querier.find(query, model=model, level=level, limit=args.limit)
    except InvalidValueError as exc:
        raise UsageError(str(exc)) from exc
    except DicomNetworkError as exc:
        return _network_error(context, device, exc)
    if args.json:
        context.emit_json(
            {"ok": True, "device": device.name, "results": [_document(r) for r in results]}
        )
    else:
        for line in _table(results, _FIND_COLUMNS):
            context.out.write(line + "\n")
        context.out.write(f"{len(results)} result(s) from {device.name}\n")
    return EXIT_OK


def _network_error(context: Context, device: WorklistDevice, exc: DicomNetworkError) -> int:
    if context.args.json:
        context.emit_json({"ok": False, "device": device.name, "error": str(exc)})
    else:
        context.err.write(f"sendtopacs: {device.name}: {exc}\n")
    return EXIT_NETWORK


def study_from_worklist(context: Context, settings: Settings, typed: Study) -> Study | None:
    """The study of the worklist item ``--worklist NAME [--pick N]`` chooses, if asked for.

    The typed patient ID, name and accession number are the search keys. Exactly one item
    (or the picked one) gives the study; none, or several without ``--pick``, is a usage
    error that lists the candidates.

    Raises
    ------
    UsageError
        No item, several items, a pick out of range.
    DicomNetworkError
        The worklist server could not be searched.
    """
    args = context.args
    if not args.worklist:
        if args.pick is not None:
            raise UsageError("--pick needs --worklist")
        return None
    device = _worklist_device(settings, argparse.Namespace(), args.worklist)
    querier = Querier(device, calling_ae_title=settings.main.ae_title)
    try:
        study, _ = pick_worklist_study(querier, typed, pick=args.pick)
    except WorklistMatchError as exc:
        items = cast("list[WorklistItem]", list(exc.candidates))
        if args.pick is not None:
            raise UsageError(
                f"--pick {args.pick}: the worklist {device.name} gave {len(items)} item(s)"
            ) from None
        # The candidates (patient data) go to stdout, the command's output, never to stderr:
        # in the JSON error document with --json, else as a table before the error.
        listing = "\n".join(_table(items, _WORKLIST_COLUMNS)) if items else ""
        what = "no item matches" if not items else f"{len(items)} items match; choose with --pick N"
        if args.json:
            raise UsageError(f"worklist {device.name}: {what}\n{listing}".rstrip()) from None
        if listing:
            context.out.write(listing + "\n")
            what += " (listed on stdout)"
        raise UsageError(f"worklist {device.name}: {what}") from None
    try:
        study, _ = pick_worklist_study(querier, typed, pick=args.pick)
    except WorklistMatchError as exc:
        items = cast("list[WorklistItem]", list(exc.candidates))
        listing = "\n".join(_table(items, _WORKLIST_COLUMNS)) if items else ""
        hint = "; choose with --pick N" if items and args.pick is None else ""
        raise UsageError(f"{exc}{hint}\n{listing}".rstrip()) from exc
    except InvalidValueError as exc:
        raise UsageError(f"worklist {device.name}: the item cannot be used: {exc}") from exc
    return study
