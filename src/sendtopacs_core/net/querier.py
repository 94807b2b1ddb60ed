"""Find the patient: :class:`Querier` (Modality Worklist and Query/Retrieve C-FIND).

A worklist search asks for every return key of PS3.4 K.6.1.2 and gives one
:class:`WorklistItem` per Scheduled Procedure Step; a Q/R search gives one
:class:`QueryResult` per patient or study. Both map to a :class:`~sendtopacs_core.model.Study`
(IHE RAD TF-2 Appendix A) for the objects we then create. A server that cannot be reached,
rejects us, answers with a failure or stops answering is an error naming the cause, never an
empty list.

Examples
--------
>>> from sendtopacs_core import Querier, WorklistDevice, WorklistQuery
>>> mwl = WorklistDevice(name="mwl", ae_title="MWL", host="127.0.0.1", port=4242)
>>> items = Querier(mwl).find_worklist(WorklistQuery(modality="ES"))  # doctest: +SKIP
>>> study = items[0].to_study()  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any, Final

import attrs
from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.status import QR_FIND_SERVICE_CLASS_STATUS

from sendtopacs_core.errors import AssociationAbortedError, QueryFailedError
from sendtopacs_core.model import Code, QueryLevel, QueryModel, Study, WorklistDevice
from sendtopacs_core.net._association import (
    Context,
    open_association,
    peer_name,
    sync_identifier_logging,
)
from sendtopacs_core.net._query import (
    WORKLIST_PATIENT_KEYS,
    WORKLIST_STEP_KEYS,
    check_key,
    date_key,
    decode_identifier,
    query_charset,
)
from sendtopacs_core.net._status import StatusCategory, category, retryable, status_meaning

__all__ = ["Querier", "QueryResult", "StudyQuery", "WorklistItem", "WorklistQuery"]

_MODELS: Final = {
    QueryModel.WORKLIST: "1.2.840.10008.5.1.4.31",
    QueryModel.PATIENT: "1.2.840.10008.5.1.4.1.2.1.1",
    QueryModel.STUDY: "1.2.840.10008.5.1.4.1.2.2.1",
    QueryModel.PATIENT_STUDY: "1.2.840.10008.5.1.4.1.2.3.1",
}
_SYNTAXES: Final = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
#: Final statuses after which the answers received are the result (PS3.7 Annex C categories).
_ENDS: Final = frozenset({StatusCategory.SUCCESS, StatusCategory.WARNING, StatusCategory.CANCEL})


@attrs.frozen(kw_only=True)
class WorklistQuery:
    """What to search the worklist for; ``None`` keys match anything.

    ``date`` is ``today``, ``YYYYMMDD``, or a range (``A-B``, ``A-``, ``-B``); without it the
    device's ``use_today`` decides. ``modality`` and ``scheduled_ae_title`` default to the
    device's. Text keys may use the wildcards ``*`` and ``?``.
    """

    patient_id: str | None = None
    patient_name: str | None = None
    accession_number: str | None = None
    modality: str | None = None
    scheduled_ae_title: str | None = None
    date: str | None = None
    requested_procedure_id: str | None = None
    study_instance_uid: str | None = None


@attrs.frozen(kw_only=True)
class StudyQuery:
    """What to search with Query/Retrieve; ``None`` keys match anything."""

    patient_id: str | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    accession_number: str | None = None
    study_instance_uid: str | None = None
    study_date: str | None = None
    study_description: str | None = None
    modalities_in_study: str | None = None


def _text(dataset: Dataset, keyword: str) -> str | None:
    value = dataset.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _codes(dataset: Dataset, keyword: str) -> tuple[Code, ...]:
    codes = []
    for item in dataset.get(keyword) or ():
        value, scheme = _text(item, "CodeValue"), _text(item, "CodingSchemeDesignator")
        if value and scheme:
            codes.append(Code(value=value, scheme=scheme, meaning=_text(item, "CodeMeaning") or ""))
    return tuple(codes)


@attrs.frozen(kw_only=True)
class WorklistItem:
    """One Scheduled Procedure Step of the worklist, as the server answered it."""

    patient_name: str | None
    patient_id: str | None
    patient_birth_date: str | None
    patient_sex: str | None
    accession_number: str | None
    referring_physician_name: str | None
    study_instance_uid: str | None
    requested_procedure_id: str | None
    requested_procedure_description: str | None
    requested_procedure_codes: tuple[Code, ...]
    scheduled_procedure_step_id: str | None
    scheduled_procedure_step_description: str | None
    modality: str | None
    scheduled_station_ae_title: str | None
    scheduled_start_date: str | None
    scheduled_start_time: str | None
    scheduled_performing_physician_name: str | None
    identifier: Dataset = attrs.field(eq=False, repr=False)
    """The decoded answer, for keys this class does not name."""

    @classmethod
    def from_identifier(cls, identifier: Dataset) -> WorklistItem:
        """Map a decoded worklist answer (its first Scheduled Procedure Step)."""
        steps = identifier.get("ScheduledProcedureStepSequence") or [Dataset()]
        step = steps[0]
        return cls(
            patient_name=_text(identifier, "PatientName"),
            patient_id=_text(identifier, "PatientID"),
            patient_birth_date=_text(identifier, "PatientBirthDate"),
            patient_sex=_text(identifier, "PatientSex"),
            accession_number=_text(identifier, "AccessionNumber"),
            referring_physician_name=_text(identifier, "ReferringPhysicianName"),
            study_instance_uid=_text(identifier, "StudyInstanceUID"),
            requested_procedure_id=_text(identifier, "RequestedProcedureID"),
            requested_procedure_description=_text(identifier, "RequestedProcedureDescription"),
            requested_procedure_codes=_codes(identifier, "RequestedProcedureCodeSequence"),
            scheduled_procedure_step_id=_text(step, "ScheduledProcedureStepID"),
            scheduled_procedure_step_description=_text(step, "ScheduledProcedureStepDescription"),
            modality=_text(step, "Modality"),
            scheduled_station_ae_title=_text(step, "ScheduledStationAETitle"),
            scheduled_start_date=_text(step, "ScheduledProcedureStepStartDate"),
            scheduled_start_time=_text(step, "ScheduledProcedureStepStartTime"),
            scheduled_performing_physician_name=_text(step, "ScheduledPerformingPhysicianName"),
            identifier=identifier,
        )

    def to_study(self) -> Study:
        """The study of the objects made for this step (IHE RAD TF-2 Appendix A).

        Study Instance UID, Accession Number, Requested Procedure ID and Description (also
        the Study Description), Scheduled Procedure Step ID, Referring Physician, the patient,
        the procedure codes and the scheduled Modality.

        Raises
        ------
        InvalidValueError
            The server sent a value that is not valid for its attribute.
        """
        return Study(
            patient_id=self.patient_id,
            patient_name=self.patient_name,
            patient_birth_date=self.patient_birth_date,
            patient_sex=self.patient_sex,
            study_instance_uid=self.study_instance_uid,
            accession_number=self.accession_number,
            referring_physician_name=self.referring_physician_name,
            study_description=self.requested_procedure_description,
            requested_procedure_id=self.requested_procedure_id,
            requested_procedure_description=self.requested_procedure_description,
            scheduled_procedure_step_id=self.scheduled_procedure_step_id,
            procedure_codes=self.requested_procedure_codes,
            modality=self.modality,
            from_worklist=True,
        )


@attrs.frozen(kw_only=True)
class QueryResult:
    """One patient or study found with Query/Retrieve."""

    level: QueryLevel
    patient_name: str | None
    patient_id: str | None
    patient_birth_date: str | None
    patient_sex: str | None
    study_instance_uid: str | None
    study_date: str | None
    study_time: str | None
    accession_number: str | None
    study_id: str | None
    study_description: str | None
    referring_physician_name: str | None
    modalities_in_study: str | None
    identifier: Dataset = attrs.field(eq=False, repr=False)

    @classmethod
    def from_identifier(cls, identifier: Dataset, level: QueryLevel) -> QueryResult:
        """Map a decoded Q/R answer."""
        modalities = identifier.get("ModalitiesInStudy")
        return cls(
            level=level,
            patient_name=_text(identifier, "PatientName"),
            patient_id=_text(identifier, "PatientID"),
            patient_birth_date=_text(identifier, "PatientBirthDate"),
            patient_sex=_text(identifier, "PatientSex"),
            study_instance_uid=_text(identifier, "StudyInstanceUID"),
            study_date=_text(identifier, "StudyDate"),
            study_time=_text(identifier, "StudyTime"),
            accession_number=_text(identifier, "AccessionNumber"),
            study_id=_text(identifier, "StudyID"),
            study_description=_text(identifier, "StudyDescription"),
            referring_physician_name=_text(identifier, "ReferringPhysicianName"),
            modalities_in_study="\\".join(modalities)
            if isinstance(modalities, list)
            else (str(modalities) if modalities else None),
            identifier=identifier,
        )

    def to_study(self) -> Study:
        """The study for new objects: the patient, and at study level the study itself.

        Raises
        ------
        InvalidValueError
            The server sent a value that is not valid for its attribute.
        """
        study_level = self.level is QueryLevel.STUDY
        return Study(
            patient_id=self.patient_id,
            patient_name=self.patient_name,
            patient_birth_date=self.patient_birth_date,
            patient_sex=self.patient_sex,
            study_instance_uid=self.study_instance_uid if study_level else None,
            study_date=self.study_date if study_level else None,
            study_time=self.study_time if study_level else None,
            accession_number=self.accession_number if study_level else None,
            study_id=self.study_id if study_level else None,
            study_description=self.study_description if study_level else None,
            referring_physician_name=self.referring_physician_name if study_level else None,
            from_worklist=True,
        )


class Querier:
    """Searches one worklist or Q/R server.

    Parameters
    ----------
    device
        The server and its default search parameters.
    calling_ae_title
        Our AE title; the server must know it.
    today
        Gives today's date (for ``date="today"`` and ``use_today``); for tests.
    """

    def __init__(
        self,
        device: WorklistDevice,
        *,
        calling_ae_title: str = "SENDTOPACS",
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.device = device
        self.calling_ae_title = calling_ae_title
        self._today = today

    def worklist_identifier(self, query: WorklistQuery) -> Dataset:
        """The C-FIND identifier of a worklist search (every return key, the query's values).

        Raises
        ------
        InvalidValueError
            An invalid date or date range.
        """
        device = self.device
        identifier = Dataset()
        values = {
            "PatientID": query.patient_id,
            "PatientName": query.patient_name,
            "AccessionNumber": query.accession_number,
            "RequestedProcedureID": query.requested_procedure_id,
            "StudyInstanceUID": query.study_instance_uid,
        }
        for keyword, value in values.items():
            check_key(keyword, value)
        for keyword in WORKLIST_PATIENT_KEYS:
            setattr(identifier, keyword, values.get(keyword) or "")
        date = query.date if query.date is not None else ("today" if device.use_today else None)
        step_values = {
            "Modality": query.modality or device.modality,
            "ScheduledStationAETitle": query.scheduled_ae_title or device.scheduled_ae_title,
            "ScheduledProcedureStepStartDate": date_key(date, self._today()),
        }
        for keyword in ("Modality", "ScheduledStationAETitle"):
            check_key(keyword, step_values[keyword])
        step = Dataset()
        for keyword in WORKLIST_STEP_KEYS:
            setattr(step, keyword, step_values.get(keyword) or "")
        step.ScheduledProtocolCodeSequence = []
        identifier.ScheduledProcedureStepSequence = [step]
        identifier.RequestedProcedureCodeSequence = []
        query_charset(identifier, device.charset)
        return identifier

    def find_worklist(
        self, query: WorklistQuery | None = None, *, limit: int | None = None
    ) -> list[WorklistItem]:
        """Search the worklist; ``limit`` cancels the search (C-CANCEL) after that many items.

        Every error but :class:`~sendtopacs_core.errors.InvalidValueError` is a
        :class:`~sendtopacs_core.errors.DicomNetworkError` naming the server (``peer``); the
        first three are :class:`~sendtopacs_core.errors.AssociationFailedError`.

        Raises
        ------
        PeerUnreachableError
            The server cannot be reached (connection refused, timed out, TLS handshake).
        AssociationRejectedError
            The server rejects the association (``rejection``: result, source, reason).
        AssociationAbortedError
            The server aborts the association or stops answering the search.
        ContextNotAcceptedError
            The server does not offer the worklist (or Q/R) information model to us.
        QueryFailedError
            The server answers with a failure status (``status``); the message gives it in
            hex, its meaning and the Error Comment.
        InvalidValueError
            An invalid key, date or date range.
        """
        identifier = self.worklist_identifier(query or WorklistQuery())
        answers = self._find(QueryModel.WORKLIST, identifier, limit)
        return [WorklistItem.from_identifier(answer) for answer in answers]

    def find(
        self,
        query: StudyQuery | None = None,
        *,
        model: QueryModel | None = None,
        level: QueryLevel | None = None,
        limit: int | None = None,
    ) -> list[QueryResult]:
        """Search with Query/Retrieve (the device's model and level unless given).

        The worklist model (``QueryModel.WORKLIST``), as the model or the device's root
        model, searches Study Root (use :meth:`find_worklist` for the worklist).

        Raises
        ------
        PeerUnreachableError, AssociationRejectedError, AssociationAbortedError
            As :meth:`find_worklist`.
        ContextNotAcceptedError
            The server does not offer the Q/R information model to us.
        QueryFailedError
            The server answers with a failure status (``status``).
        InvalidValueError
            An invalid key, date or date range.
        """
        model = model or self.device.root_model
        if model is QueryModel.WORKLIST:
            model = QueryModel.STUDY
        level = level or self.device.model_level
        identifier = _qr_identifier(query or StudyQuery(), level, model, self._today())
        query_charset(identifier, self.device.charset)
        answers = self._find(model, identifier, limit)
        return [QueryResult.from_identifier(answer, level) for answer in answers]

    def _find(self, model: QueryModel, identifier: Dataset, limit: int | None) -> list[Dataset]:
        uid = _MODELS[model]
        sync_identifier_logging()
        with open_association(
            self.device, self.calling_ae_title, [Context(uid, _SYNTAXES)]
        ) as assoc:
            return list(self._answers(assoc, uid, identifier, limit))

    def _answers(
        self, assoc: Association, uid: str, identifier: Dataset, limit: int | None
    ) -> Iterator[Dataset]:
        where = peer_name(self.device)
        found = 0
        responses = assoc.send_c_find(identifier, uid, msg_id=1)
        for status, answer in responses:
            code = status.get("Status")  # an empty Dataset: no answer came
            if code is None:
                raise AssociationAbortedError(
                    f"{where} stopped answering the search (no answer within "
                    f"{self.device.timeouts.dimse_s:g} s, or the association was aborted)",
                    peer=where,
                )
            code = int(code)
            kind = category(code)
            if kind is StatusCategory.PENDING:
                if answer is not None:
                    found += 1
                    yield decode_identifier(answer, self.device.charset)
                if limit is not None and found >= limit:
                    assoc.send_c_cancel(1, query_model=uid)
                    for _rest in responses:  # drain until the final status
                        pass
                    return
                continue
            if kind in _ENDS:  # a Warning ends the search too: the answers stand
                return
            meaning = status_meaning(code, QR_FIND_SERVICE_CLASS_STATUS)
            comment = status.get("ErrorComment")
            detail = f": {comment}" if comment else ""
            raise QueryFailedError(
                f"{where} answered the search with 0x{code:04X} {meaning}{detail}",
                peer=where,
                status=code,
                transient=retryable(code),
            )


def _qr_identifier(
    query: StudyQuery, level: QueryLevel, model: QueryModel, today: dt.date
) -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = str(level).upper()
    patient: dict[str, Any] = {
        "PatientName": query.patient_name,
        "PatientID": query.patient_id,
        "PatientBirthDate": query.patient_birth_date,
        "PatientSex": None,
    }
    for keyword, value in patient.items():
        check_key(keyword, value)
        setattr(identifier, keyword, value or "")
    if level is QueryLevel.STUDY:
        study = {
            "StudyInstanceUID": query.study_instance_uid,
            "StudyDate": date_key(query.study_date, today),
            "StudyTime": None,
            "AccessionNumber": query.accession_number,
            "StudyID": None,
            "StudyDescription": query.study_description,
            "ReferringPhysicianName": None,
        }
        if model is not QueryModel.PATIENT_STUDY:
            study["ModalitiesInStudy"] = query.modalities_in_study
        for keyword, value in study.items():
            check_key(keyword, value)
            setattr(identifier, keyword, value or "")
    return identifier
