"""The OpenAPI response models of the HTTP API's reports: what ``to_dict()`` returns.

The documents are made by the core (``SendReport.to_dict()``, ``ConversionReport.to_dict()``);
these models only describe them in ``/openapi.json``. They forbid unknown keys, so that a test
validating a real document against them fails when the core's schema and its description
drift apart (docs/guides/send.md and convert.md, "The JSON report").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ConversionFailureModel",
    "ConversionReportModel",
    "ConvertedFileModel",
    "FileOutcomeModel",
    "JobModel",
    "SendReportModel",
]


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssignmentModel(_Document):
    """What a conversion assigned to a file (``FileOutcome.assigned``)."""

    day: str = Field(description="the day written into the object, YYYY-MM-DD")
    instance_number: int = Field(ge=1)


class FileOutcomeModel(_Document):
    """What happened to one file (``FileOutcome.to_dict()``)."""

    source: str = Field(description="the uploaded file's name")
    ok: bool = Field(description="delivered: sent, and committed when commitment was asked")
    sent: bool = Field(description="the PACS answered success to the C-STORE")
    state: str = Field(description="sent, sent-with-warning, retryable, failed or skipped")
    status: int | None = Field(description="the C-STORE status as an integer")
    status_hex: str | None = Field(description='the C-STORE status in hex, e.g. "0xA700"')
    message: str
    error_comment: str | None
    sop_class_uid: str | None
    sop_instance_uid: str | None
    transfer_syntax_uid: str | None
    decompressed: bool
    converted: bool
    commitment: str | None = Field(
        description="committed, failed or no-report; null when no commitment was asked for"
    )
    commitment_failure_reason: int | None
    commitment_failure_reason_hex: str | None = Field(description='e.g. "0x0112"')
    commitment_message: str | None
    assigned: AssignmentModel | None = Field(
        description="for a converted file: the day and Instance Number its conversion assigned"
    )


class SendReportModel(_Document):
    """The outcome of a send (``SendReport.to_dict()``)."""

    ok: bool
    device: str
    sent: int
    failed: int
    uncommitted: int
    skipped: int
    unreachable: bool
    kept_temp_dir: str | None
    files: list[FileOutcomeModel]


class ConvertedFileModel(_Document):
    """One DICOM file written (``ConvertedFile.to_dict()``), with its data."""

    source: str
    path: str = Field(description="the DICOM file's name")
    page: int = Field(ge=1)
    sop_class_uid: str
    sop_class: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    transfer_syntax: str
    action: str
    reason: str
    warnings: list[str]
    instance_number: int | None
    day: str | None = Field(description="the day written into the object, YYYY-MM-DD")
    data: str = Field(description="the DICOM file, base64-encoded")


class ConversionFailureModel(_Document):
    """An input that could not be converted (``ConversionFailure.to_dict()``)."""

    source: str
    error: str
    error_type: str


class ConversionReportModel(_Document):
    """The outcome of a conversion (``ConversionReport.to_dict()``)."""

    ok: bool
    study_instance_uid: str | None
    study_instance_uids: list[str]
    converted: int
    failed: int
    files: list[ConvertedFileModel]
    failures: list[ConversionFailureModel]


class JobModel(_Document):
    """A background job; ``result`` is the send's report once it is done."""

    ok: bool
    id: str
    kind: str
    device: str
    state: str = Field(description="queued, running, done or failed")
    result: SendReportModel | None
    error: str | None
