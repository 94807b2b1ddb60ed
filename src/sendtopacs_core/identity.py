"""The identity of the objects we create: one UID names one object.

Every value written into a created object is part of its identity, so the same input with the
same study and settings always gives the same UIDs (a re-send is a duplicate the PACS
recognises, never a second object), and anything different gives new ones:

- **Study Instance UID**: the typed one, else derived from every patient and study value of
  the :class:`~sendtopacs_core.Study` (all of its fields), the update-tag patterns, and, when the
  study is *the day's* (no typed Study Instance UID, Accession Number or Study Date), the day
  of the conversion. Two files of one patient on one day share a study; on two days they do not.
  A study identified by its accession number (or typed UID) spans days, so its Study Date is
  written only when typed.
- **Series Instance UID**: the study, the SOP class, modality and series number, the
  equipment values written (institution, station, software version), the update-tag patterns and
  the conversion recipe.
- **SOP Instance UID**: the series, a digest of *every attribute written into the object* (the
  header after tag patterns and character set, except the SOP Instance UID itself and the bulk
  data), the SHA-256 of the input's content (which fixes the bulk data), the page and the recipe.

The clock enters an object only as a date (the day of the conversion), never as a time of day:
times come from the source (a PDF's creation date, a recording's start) or stay empty. So the
same file converted twice on one day has one identity, and on two days two. A retry of the same
input reuses the day (and instance number) first assigned: the watch folder's journal records
them and hands them back as an :class:`Assignment`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

import attrs
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from sendtopacs_core.model import Study, TagPattern

__all__ = [
    "Assignment",
    "by_assigned_day",
    "dataset_digest",
    "is_days_study",
    "resolved_study_date",
    "study_values",
]

#: Left out of the header digest: the SOP Instance UID (derived from the digest) and bulk data
#: (fixed by the content digest): Pixel Data, Float / Double Float Pixel Data, Encapsulated
#: Document.
_NOT_DIGESTED: Final = frozenset({0x00080018, 0x7FE00010, 0x7FE00008, 0x7FE00009, 0x00420011})


@attrs.frozen(kw_only=True)
class Assignment:
    """What a conversion assigned to an input that is not derived from it: kept for retries.

    Attributes
    ----------
    day
        The day of the first conversion (the Study Date of a day's study, Content and Instance
        Creation Dates).
    instance_number
        The Instance Number given to the input's first object (later pages follow).
    """

    day: dt.date
    instance_number: int = attrs.field(validator=attrs.validators.ge(1))


def by_assigned_day(
    assigned: Mapping[Path, Assignment | None], today: dt.date
) -> list[tuple[list[Path], dt.date, dict[Path, int]]]:
    """Files by the day their first conversion assigned (``today`` for those not converted
    yet), with the Instance Numbers assigned: one send per day, since a day's study is the
    day's, each making the objects the first attempt made.
    """
    by_day: dict[dt.date, list[Path]] = {}
    for path, made in assigned.items():
        by_day.setdefault(made.day if made else today, []).append(path)
    return [
        (
            paths,
            day,
            {path: made.instance_number for path in paths if (made := assigned[path]) is not None},
        )
        for day, paths in by_day.items()
    ]


def is_days_study(study: Study) -> bool:
    """Whether the study is the day's: no typed Study Instance UID, Accession Number or date."""
    return (
        study.study_instance_uid is None
        and study.accession_number is None
        and study.study_date is None
    )


def resolved_study_date(study: Study, day: dt.date) -> str:
    """The Study Date written: typed, else the day for a day's study, else empty."""
    if study.study_date:
        return study.study_date
    return day.strftime("%Y%m%d") if is_days_study(study) else ""


def study_values(study: Study, patterns: Iterable[TagPattern] = ()) -> list[str]:
    """Every value of ``study`` written into an object, and the patterns that may change them.

    Empty when the study has no data at all (nor patterns): the caller then identifies the
    study by the contents of its inputs.
    """
    values = [
        f"{field.name}={getattr(study, field.name)!r}"
        for field in attrs.fields(Study)
        if field.name not in ("study_instance_uid", "from_worklist")
        and getattr(study, field.name) not in (None, ())
    ]
    values += [f"pattern={pattern!r}" for pattern in patterns]
    return values


def dataset_digest(dataset: Dataset) -> str:
    """A SHA-256 over every attribute of ``dataset`` but the SOP Instance UID and bulk data.

    Tags, VRs and values in tag order, sequences item by item; binary values by their own
    digest. Two datasets with the same digest write the same header.
    """
    digest = hashlib.sha256()
    _feed(digest, dataset)
    return digest.hexdigest()


def _feed(digest: hashlib._Hash, dataset: Dataset) -> None:
    for element in dataset:
        tag = BaseTag(element.tag)
        if tag in _NOT_DIGESTED:
            continue
        digest.update(f"({tag:08X},{element.VR})".encode("ascii"))
        value = element.value
        if element.VR == "SQ":
            for item in value or ():
                digest.update(b"<item>")
                _feed(digest, item)
            digest.update(b"</sq>")
        elif isinstance(value, bytes | bytearray | memoryview):
            digest.update(b"bytes:" + hashlib.sha256(value).digest())
        else:
            digest.update(repr(value).encode("utf-8", "surrogateescape"))
        digest.update(b"\x00")
