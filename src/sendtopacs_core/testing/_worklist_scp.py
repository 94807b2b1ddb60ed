"""An in-process Modality Worklist and Query/Retrieve C-FIND SCP built on a pynetdicom ``AE``.

`WorklistSCP` answers Modality Worklist Information Model FIND requests from a list of worklist
items, and Patient Root / Study Root / Patient Study Only Query/Retrieve FIND requests at the
PATIENT and STUDY levels from a list of datasets. Matching follows PS3.4 C.2.2.2: single value,
wildcard, range, universal and (one level deep) sequence matching. Like `StorageSCP` it can
misbehave on demand (delays, a peer that never answers, failure statuses, rejected associations)
and records the queries it received. It does not import pytest.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from io import BytesIO
from typing import Final

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, VerificationPresentationContexts, evt
from pynetdicom.dsutils import decode, encode
from pynetdicom.events import Event, EventHandlerType

from sendtopacs_core.testing._listener import ListeningSCP
from sendtopacs_core.testing._storage_scp import Rejection

__all__ = [
    "MODALITY_WORKLIST_FIND",
    "PATIENT_ROOT_FIND",
    "PATIENT_STUDY_ONLY_FIND",
    "STUDY_ROOT_FIND",
    "WorklistSCP",
    "matches",
    "select_keys",
]

LOGGER = logging.getLogger(__name__)

#: Modality Worklist Information Model - FIND.
MODALITY_WORKLIST_FIND: Final = "1.2.840.10008.5.1.4.31"
#: Patient Root Query/Retrieve Information Model - FIND.
PATIENT_ROOT_FIND: Final = "1.2.840.10008.5.1.4.1.2.1.1"
#: Study Root Query/Retrieve Information Model - FIND.
STUDY_ROOT_FIND: Final = "1.2.840.10008.5.1.4.1.2.2.1"
#: Patient/Study Only Query/Retrieve Information Model - FIND (retired, still in use).
PATIENT_STUDY_ONLY_FIND: Final = "1.2.840.10008.5.1.4.1.2.3.1"

#: The query levels we answer per Q/R information model.
_QR_LEVELS: Final[dict[str, tuple[str, ...]]] = {
    PATIENT_ROOT_FIND: ("PATIENT", "STUDY"),
    STUDY_ROOT_FIND: ("STUDY",),
    PATIENT_STUDY_ONLY_FIND: ("PATIENT", "STUDY"),
}
#: The unique key of each level: records are told apart by it.
_LEVEL_KEYS: Final = {"PATIENT": 0x00100020, "STUDY": 0x0020000D}
_TRANSFER_SYNTAXES: Final = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian]

_SPECIFIC_CHARACTER_SET: Final = 0x00080005
_QUERY_RETRIEVE_LEVEL: Final = 0x00080052
#: Keys that select nothing: the character set and the Q/R level are not matched on.
_NOT_MATCHED: Final = frozenset({_SPECIFIC_CHARACTER_SET, _QUERY_RETRIEVE_LEVEL})
#: VRs on which ``*`` and ``?`` are wildcards (PS3.4 C.2.2.2.4).
_WILDCARD_VRS: Final = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_RANGE_VRS: Final = frozenset({"DA", "TM", "DT"})

_PENDING: Final = 0xFF00
_CANCEL: Final = 0xFE00
_IDENTIFIER_DOES_NOT_MATCH: Final = 0xA900


def _is_failure(status: int) -> bool:
    """Return whether `status` is a C-FIND failure (PS3.4 C.4.1.1.4, PS3.7 C)."""
    return status in {0x0122, 0x0124} or status >> 8 in {0xA7, 0xA9} or status >> 12 == 0xC


# -- matching (PS3.4 C.2.2.2) --------------------------------------------------------------------


def _is_universal(elem: DataElement) -> bool:
    """Return whether the query key `elem` is empty (universal matching)."""
    if elem.VR == "SQ":
        return not elem.value or all(_is_universal(e) for e in elem.value[0])
    value = elem.value
    if value is None:
        return True
    if isinstance(value, MultiValue):
        return all(str(v).strip() == "" for v in value)
    return str(value).strip() == ""


def _values(elem: DataElement) -> list[str]:
    """Return the values of `elem` as stripped strings (one per value multiplicity)."""
    value = elem.value
    if value is None:
        return []
    if isinstance(value, MultiValue):
        return [str(v).strip() for v in value]
    return [str(value).strip()]


def _wildcard(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """Return a regular expression for a ``*``/``?`` wildcard `pattern`."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _in_range(vr: str, query: str, value: str) -> bool:
    """Return whether date/time `value` lies in the range `query` (``A-B``, ``A-``, ``-B``)."""
    low, _, high = query.partition("-")
    if vr == "TM":
        value, low, high = (v.replace(":", "") for v in (value, low, high))
    value = value.split(".")[0] if vr == "TM" else value
    width = max(len(value), len(low), len(high))
    value = value.ljust(width, "0")
    return (not low or value >= low.ljust(width, "0")) and (
        not high or value <= high.ljust(width, "9")
    )


def _value_matches(vr: str, query: str, value: str) -> bool:
    """Return whether one stored `value` matches the single query value `query`."""
    if vr in _RANGE_VRS and "-" in query:
        return bool(value) and _in_range(vr, query, value)
    candidates = [value]
    if vr == "PN":  # match the whole name or any of its component groups
        candidates += value.split("=")
    if vr in _WILDCARD_VRS and ("*" in query or "?" in query):
        regex = _wildcard(query, ignore_case=vr == "PN")
        return any(regex.fullmatch(c) for c in candidates)
    if vr == "PN":
        return any(c.casefold() == query.casefold() for c in candidates)
    return value == query


def _element_matches(query: DataElement, item: Dataset) -> bool:
    """Return whether `item` matches the query key `query`."""
    if _is_universal(query):
        return True
    if query.tag not in item:
        return False
    stored = item[query.tag]
    if query.VR == "SQ":
        sub_query = query.value[0]
        return any(matches(sub_item, sub_query) for sub_item in stored.value or ())
    wanted = [v for v in _values(query) if v]  # several values: list of UID matching
    return any(_value_matches(query.VR, q, v) for q in wanted for v in _values(stored))


def matches(item: Dataset, query: Dataset) -> bool:
    """Return whether `item` matches every key of `query` (PS3.4 C.2.2.2).

    Empty keys match everything; ``*`` and ``?`` are wildcards on string keys; ``A-B``,
    ``A-`` and ``-B`` are ranges on DA, TM and DT keys; several values of a key (UID list)
    match any of them; Person Names match case-insensitively, against the whole value or any
    component group; a sequence key with a non-empty item matches if one item of the stored
    sequence matches that item's keys. Specific Character Set and Query/Retrieve Level are
    not matched on.
    """
    for elem in query:
        if elem.tag in _NOT_MATCHED or elem.tag.element == 0:
            continue
        if not _element_matches(elem, item):
            return False
    return True


def select_keys(item: Dataset, query: Dataset, *, character_set: bool = True) -> Dataset:
    """Return a response identifier: the keys of `query`, with their values from `item`.

    Keys `item` lacks are returned empty; sequence keys with an item return the matching
    stored items, each with only the keys asked for. Specific Character Set (0008,0005) of
    `item` is added if it has one and `character_set` is true.
    """
    response = Dataset()
    if character_set and _SPECIFIC_CHARACTER_SET in item:
        response[_SPECIFIC_CHARACTER_SET] = copy.deepcopy(item[_SPECIFIC_CHARACTER_SET])
    for elem in query:
        tag = elem.tag
        if tag == _SPECIFIC_CHARACTER_SET or tag.element == 0:
            continue
        if tag not in item:
            response[tag] = DataElement(tag, elem.VR, DicomSequence() if elem.VR == "SQ" else None)
            continue
        stored = item[tag]
        if elem.VR == "SQ" and elem.value:
            sub_query = elem.value[0]
            chosen = [select_keys(i, sub_query, character_set=False) for i in stored.value or ()]
            kept = [
                c for i, c in zip(stored.value or (), chosen, strict=True) if matches(i, sub_query)
            ]
            response[tag] = DataElement(tag, "SQ", DicomSequence(kept))
        else:
            response[tag] = copy.deepcopy(stored)
    return response


# -- the SCP -------------------------------------------------------------------------------------


class WorklistSCP(ListeningSCP):
    """A Modality Worklist (and Query/Retrieve FIND) SCP on a local port, for tests and demos.

    Use it as a context manager or call `start` and `stop` (both idempotent). It runs side by
    side with a `StorageSCP` on another port.

    Parameters
    ----------
    items : Sequence[Dataset]
        The worklist items (Modality Worklist Information Model FIND). Each keeps its own
        Specific Character Set: items in different character sets can be mixed.
    ae_title : str
        Our AE title. Called AE titles are not checked.
    host : str
        The address to listen on.
    port : int
        The port to listen on; ``0`` lets the OS pick a free one (see `port`).
    character_set_in_responses : bool
        Send each item's Specific Character Set (0008,0005) in its responses. If false, the
        values keep the item's encoding but the response does not say which it is (as some
        worklist servers do).
    delay_s : float
        Seconds to wait before each response (each pending one and the final one).
    never_answer : bool
        Never answer a C-FIND (a hung peer); `stop` aborts those associations.
    failure_status : int or None
        Answer every C-FIND with this failure status (e.g. ``0xC000``) and no matches.
    reject : Rejection or None
        Reject every association with this result, source and reason.
    qr_datasets : Sequence[Dataset]
        What Q/R FIND requests search (PATIENT level: one record per Patient ID; STUDY level:
        one record per Study Instance UID, the first dataset of each wins).

    Raises
    ------
    ValueError
        If `delay_s` is negative or `failure_status` is not a C-FIND failure status.
    """

    _label = "worklist SCP"

    def __init__(
        self,
        items: Sequence[Dataset] = (),
        *,
        ae_title: str = "TESTMWL",
        host: str = "127.0.0.1",
        port: int = 0,
        character_set_in_responses: bool = True,
        delay_s: float = 0.0,
        never_answer: bool = False,
        failure_status: int | None = None,
        reject: Rejection | None = None,
        qr_datasets: Sequence[Dataset] = (),
    ) -> None:
        if delay_s < 0:
            msg = f"invalid delay_s: {delay_s} (expected >= 0)"
            raise ValueError(msg)
        if failure_status is not None and not _is_failure(failure_status):
            msg = f"invalid failure_status: 0x{failure_status:04X} (expected a failure status)"
            raise ValueError(msg)
        self._items = list(items)
        self._qr_datasets = list(qr_datasets)
        self._ae_title = ae_title
        self._host = host
        self._requested_port = port
        self._character_set_in_responses = character_set_in_responses
        self._delay_s = delay_s
        self._never_answer = never_answer
        self._failure_status = failure_status
        self._reject = reject
        self._lock = threading.Lock()
        self._queries: list[Dataset] = []
        self._cancelled = 0
        self._associations = 0
        self._init_listener()
        self._ae = AE(ae_title=ae_title)
        for sop_class in (MODALITY_WORKLIST_FIND, *_QR_LEVELS):
            self._ae.add_supported_context(sop_class, _TRANSFER_SYNTAXES)
        for cx in VerificationPresentationContexts:
            self._ae.add_supported_context(str(cx.abstract_syntax), cx.transfer_syntax)

    # -- lifecycle -------------------------------------------------------------------------------

    def _handlers(self) -> list[EventHandlerType]:
        return [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_C_ECHO, self._on_c_echo),
            (evt.EVT_C_FIND, self._on_c_find),
        ]

    @property
    def items(self) -> list[Dataset]:
        """The worklist items served (the list itself: edit it to change what is served)."""
        return self._items

    @property
    def queries(self) -> list[Dataset]:
        """Copies of the C-FIND identifiers received, in order (all information models)."""
        with self._lock:
            return list(self._queries)

    @property
    def cancelled(self) -> int:
        """Number of C-FIND requests ended by a C-CANCEL."""
        with self._lock:
            return self._cancelled

    @property
    def associations(self) -> int:
        """Number of associations accepted so far."""
        with self._lock:
            return self._associations

    # -- event handlers (run on pynetdicom's association threads) --------------------------------

    def _on_requested(self, event: Event) -> None:
        """Reject the association if asked to (before pynetdicom negotiates it)."""
        if self._reject is None:
            return
        rejection = self._reject
        event.assoc.acse.send_reject(rejection.result, rejection.source, rejection.reason)
        event.assoc.kill()

    def _on_established(self, event: Event) -> None:
        with self._lock:
            self._associations += 1

    def _on_c_echo(self, event: Event) -> int:
        return 0x0000

    def _records(self, sop_class: str, query: Dataset) -> list[Dataset] | None:
        """Return what `query` searches for `sop_class`, or ``None`` for an invalid level."""
        if sop_class == MODALITY_WORKLIST_FIND:
            return self._items
        level = str(query.get("QueryRetrieveLevel", "")).strip().upper()
        if level not in _QR_LEVELS.get(sop_class, ()):
            return None
        key = _LEVEL_KEYS[level]
        records: dict[str, Dataset] = {}
        for ds in self._qr_datasets:
            if key in ds:
                records.setdefault(str(ds[key].value), ds)
        return list(records.values())

    def _wait(self, event: Event) -> bool:
        """Wait `delay_s`; return ``False`` (after aborting) if we are stopping."""
        if self._delay_s and self._stopping.wait(self._delay_s):
            event.assoc.abort()
            return False
        return True

    def _respond(self, event: Event, identifier: Dataset) -> Dataset:
        """Return `identifier` to send; without its character set if asked (values raw)."""
        if self._character_set_in_responses or _SPECIFIC_CHARACTER_SET not in identifier:
            return identifier
        syntax = event.context.transfer_syntax
        implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
        encoded = encode(identifier, implicit, little)
        if encoded is None:  # pragma: no cover - pydicom could not encode our own dataset
            msg = "could not encode a response identifier"
            raise ValueError(msg)
        raw = decode(BytesIO(encoded), implicit, little)  # elements stay undecoded
        del raw[_SPECIFIC_CHARACTER_SET]
        # Else pydicom sees a changed character set and decodes and re-encodes every value.
        raw.set_original_encoding(implicit, little, raw._character_set)
        return raw

    def _on_c_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        """Match the identifier against the items or Q/R records and yield the responses."""
        query = event.identifier
        sop_class = str(event.context.abstract_syntax)
        with self._lock:
            self._queries.append(copy.deepcopy(query))
        if self._never_answer:
            self._stopping.wait()
            event.assoc.abort()
            return
        if self._failure_status is not None:
            if self._wait(event):
                yield self._failure_status, None
            return
        records = self._records(sop_class, query)
        if records is None:
            yield _IDENTIFIER_DOES_NOT_MATCH, None
            return
        level = query.get(_QUERY_RETRIEVE_LEVEL)
        for record in records:
            if not matches(record, query):
                continue
            identifier = select_keys(record, query)
            if level is not None:
                identifier[_QUERY_RETRIEVE_LEVEL] = copy.deepcopy(level)
            if not self._wait(event):
                return
            if event.is_cancelled:
                with self._lock:
                    self._cancelled += 1
                yield _CANCEL, None
                return
            yield _PENDING, self._respond(event, identifier)
        if not self._wait(event):
            return
        if event.is_cancelled:
            with self._lock:
                self._cancelled += 1
            yield _CANCEL, None
