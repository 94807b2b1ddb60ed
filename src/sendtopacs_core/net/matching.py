"""Automatic worklist matching: a file's name or a DICOM file's header becomes a search.

- A non-DICOM file's name is read with the ``non_dicom.file_name_pattern`` setting: text with
  named fields in braces, ``*`` for anything (``{patient_id}_{accession_number}*``). Fields:
  ``patient_id``, ``accession_number``, ``patient_name`` (``^`` or ``,`` between family and given
  name), ``date`` (``YYYYMMDD``, the scheduled date), ``requested_procedure_id``.
- A DICOM file's Patient ID, Patient's Name and Accession Number become keys as the worklist
  device's ``fill_patient_id`` / ``fill_patient_name`` say (exact, or as a prefix ``value*``).

Exactly one item is a match; none or several is a :class:`WorklistMatchError` that lists the
candidates, so that nobody's images end up with another patient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import attrs
from pydicom.dataset import Dataset

from sendtopacs_core.errors import DicomNetworkError, InvalidValueError, WorklistMatchError
from sendtopacs_core.model import FillMode, Study, WorklistDevice
from sendtopacs_core.net.querier import Querier, WorklistItem, WorklistQuery
from sendtopacs_core.request_items import request_attributes_item
from sendtopacs_core.tags import compile_file_name_pattern

__all__ = [
    "WorklistMatchError",
    "dicom_query",
    "file_name_query",
    "fill_from_item",
    "match_file_names",
    "match_one",
    "pick_worklist_study",
    "worklist_querier",
]


def worklist_querier(
    worklist: WorklistDevice | None, *, parse_file_name: bool, parse_dicom: bool, ae_title: str
) -> Querier | None:
    """The querier automatic matching uses, or ``None`` when no matching is asked for.

    ``worklist`` is the settings' default worklist device (``None`` without one); the flags are
    ``non_dicom.parse_file_name`` and ``dicom.parse_dicom_for_worklist``. Every adapter gets its
    matching through :class:`Sender`, :class:`Converter` and :class:`Forwarder`, which call this
    with their settings, so the CLI, the watcher and the API match alike.
    """
    if worklist is None or not (parse_file_name or parse_dicom):
        return None
    return Querier(worklist, calling_ae_title=ae_title)


def pick_worklist_study(
    querier: Querier, typed: Study, *, pick: int | None = None
) -> tuple[Study, WorklistItem]:
    """The study of the worklist item that the typed patient and accession number find.

    The typed Patient ID, Patient's Name and Accession Number are the search keys; exactly one
    item, or the ``pick``-th (from 1), gives the study, which keeps the typed additional info.
    This is the one place where a study is picked from a worklist (``--worklist NAME --pick N``
    of the CLI, ``worklist_device`` and ``pick`` of the API).

    Raises
    ------
    WorklistMatchError
        No item matches, several match and no ``pick`` is given (the candidates are listed,
        and kept in ``candidates``), or ``pick`` is out of range.
    DicomNetworkError
        The worklist cannot be searched.
    InvalidValueError
        The item holds a value that a study cannot take.
    """
    query = WorklistQuery(
        patient_id=typed.patient_id,
        patient_name=typed.patient_name,
        accession_number=typed.accession_number,
    )
    device = querier.device.name
    if pick is None:
        item = match_one(querier, query, f"worklist {device}")
    else:
        items = querier.find_worklist(query)
        if not 1 <= pick <= len(items):
            raise WorklistMatchError(
                f"pick {pick}: the worklist {device} gave {len(items)} item(s)", tuple(items)
            )
        item = items[pick - 1]
    try:
        study = attrs.evolve(item.to_study(), additional_info=typed.additional_info)
    except ValueError as exc:
        raise InvalidValueError("worklist item", item.patient_id, str(exc)) from exc
    return study, item


def file_name_query(path: Path, pattern: str) -> WorklistQuery:
    """The worklist search a file name gives under ``pattern``.

    Raises
    ------
    WorklistMatchError
        The name does not fit the pattern.
    ValueError
        The pattern is invalid.
    """
    regex = compile_file_name_pattern(pattern)
    match = regex.fullmatch(path.stem) or regex.fullmatch(path.name)
    if match is None:
        raise WorklistMatchError(f"{path.name}: the file name does not fit the pattern {pattern!r}")
    found = {name: value.strip() for name, value in match.groupdict().items() if value}
    name = found.get("patient_name")
    if name is not None:
        name = re.sub(r"\s*[,^]\s*", "^", name, count=1)
    return WorklistQuery(
        patient_id=found.get("patient_id"),
        patient_name=name,
        accession_number=found.get("accession_number"),
        requested_procedure_id=found.get("requested_procedure_id"),
        date=found.get("date") or "",
    )


def match_file_names(
    querier: Querier, paths: Iterable[Path], pattern: str
) -> tuple[dict[Study, list[Path]], dict[Path, str]]:
    """Find each file's worklist item by its name; group the files by the item's study.

    Returns the groups (in the order their first file came) and, for each file without
    exactly one matching item, why.
    """
    groups: dict[Study, list[Path]] = {}
    unmatched: dict[Path, str] = {}
    for path in paths:
        try:
            item = match_one(querier, file_name_query(path, pattern), path.name)
            groups.setdefault(item.to_study(), []).append(path)
        except (WorklistMatchError, DicomNetworkError, InvalidValueError) as exc:
            unmatched[path] = str(exc)
    return groups, unmatched


def _fill(value: str | None, mode: FillMode) -> str | None:
    if not value or mode is FillMode.OFF:
        return None
    return f"{value}*" if mode is FillMode.WILDCARD else value


def dicom_query(header: Dataset, device: WorklistDevice) -> WorklistQuery:
    """The worklist search a DICOM file's header gives (any date).

    Raises
    ------
    WorklistMatchError
        The header gives no key to search with.
    """
    patient_id = str(header.get("PatientID") or "").strip() or None
    patient_name = str(header.get("PatientName") or "").strip() or None
    accession = str(header.get("AccessionNumber") or "").strip() or None
    query = WorklistQuery(
        patient_id=_fill(patient_id, device.fill_patient_id),
        patient_name=_fill(patient_name, device.fill_patient_name),
        accession_number=accession,
        date="",
    )
    if not (query.patient_id or query.patient_name or query.accession_number):
        raise WorklistMatchError(
            "the file has no Patient ID, Patient's Name or Accession Number to search with "
            f"(the worklist device {device.name} uses: patient ID {device.fill_patient_id}, "
            f"name {device.fill_patient_name})"
        )
    return query


def match_one(querier: Querier, query: WorklistQuery, what: str) -> WorklistItem:
    """The one worklist item that matches ``query``.

    Raises
    ------
    WorklistMatchError
        None or several match (the candidates are listed).
    DicomNetworkError
        The worklist cannot be searched.
    """
    items = querier.find_worklist(query)
    if len(items) == 1:
        return items[0]
    if not items:
        raise WorklistMatchError(f"{what}: no worklist item matches ({_keys(query)})")
    listing = "; ".join(
        f"{item.patient_name or '?'} ({item.patient_id or '?'}), accession "
        f"{item.accession_number or '-'}, {item.scheduled_start_date or '-'}"
        for item in items[:10]
    )
    more = f" and {len(items) - 10} more" if len(items) > 10 else ""
    raise WorklistMatchError(
        f"{what}: {len(items)} worklist items match ({_keys(query)}): {listing}{more}",
        tuple(items),
    )


def _keys(query: WorklistQuery) -> str:
    keys = {
        "patient ID": query.patient_id,
        "name": query.patient_name,
        "accession": query.accession_number,
        "procedure": query.requested_procedure_id,
        "date": query.date,
    }
    return ", ".join(f"{key} {value}" for key, value in keys.items() if value) or "no keys"


def fill_from_item(header: Dataset, item: WorklistItem, *, replace: bool) -> bool:
    """Put the item's patient and study attributes into ``header``; return whether it changed.

    With ``replace`` ("replace full worklist info") every attribute the item has overwrites
    the header's; otherwise only empty or missing ones are filled. The Request Attributes
    Sequence is added when the header has none (or replaced).

    Raises
    ------
    InvalidValueError
        The item holds a value that is not valid for its attribute.
    """
    study = item.to_study()
    values = {
        "PatientName": study.patient_name,
        "PatientID": study.patient_id,
        "PatientBirthDate": study.patient_birth_date,
        "PatientSex": study.patient_sex,
        "AccessionNumber": study.accession_number,
        "ReferringPhysicianName": study.referring_physician_name,
        "StudyInstanceUID": study.study_instance_uid,
    }
    changed = False
    for keyword, value in values.items():
        if value is None:
            continue
        current = str(header.get(keyword) or "")
        if (replace or not current) and current != value:
            setattr(header, keyword, value)
            changed = True
    request = request_attributes_item(study)
    if request is not None and (replace or "RequestAttributesSequence" not in header):
        header.RequestAttributesSequence = [request]
        changed = True
    return changed
