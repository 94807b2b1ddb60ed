"""The answers of the HTTP API that are not a success, as its OpenAPI schema documents them."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["ERROR_RESPONSES", "ErrorDocument"]


class ErrorDocument(BaseModel):
    """Every answer that is not a success: ``ok`` false and, for an error, the reason in
    words. A request that was processed but failed as a whole (convert: nothing converted,
    422; send: the device unreachable, 502) answers its report instead, with ``ok`` false."""

    model_config = ConfigDict(extra="allow")

    ok: Literal[False]
    error: str | None = None


ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    status: {"model": ErrorDocument, "description": text}
    for status, text in (
        (400, "Invalid request (the message names the parameter and the rule)"),
        (401, "No or wrong user and password"),
        (403, "Address not in api.allowlist, or a cross-site request"),
        (404, "No such device, job or route"),
        (405, "Method not allowed"),
        (413, "Upload larger than api.max_upload_mb"),
        (422, "The request could not be processed (nothing converted, worklist pick)"),
        (429, "Too many failed logins (see Retry-After)"),
        (500, "Internal or settings error"),
        (502, "A device could not be reached or refused"),
        (503, "The jobs queue is full (see Retry-After)"),
    )
}
