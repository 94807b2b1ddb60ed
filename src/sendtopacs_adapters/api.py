"""The HTTP API adapter (``sendtopacs serve``): the core's services over authenticated HTTP.

Routes, all under ``/api/v1`` and all answering JSON:

``GET /health``
    The version (authenticated like everything else).
``POST /echo/{device}``
    C-ECHO a device of the settings.
``GET /worklist/{device}`` and ``GET /find/{device}``
    Search a worklist device (Modality Worklist, Query/Retrieve) with the query's keys.
``POST /convert``
    Convert uploaded files (multipart ``files`` plus study fields, or ``worklist_device`` and
    ``pick`` to take the study from a worklist item): ``ConversionReport.to_dict()``, each
    file with its DICOM data base64-encoded in ``data``.
``POST /send/{device}``
    Send uploaded files (DICOM, or other files converted with the study fields):
    ``SendReport.to_dict()``, one outcome per file (with its storage commitment, when the
    device asks for it).
``POST /jobs/send/{device}`` and ``GET /jobs/{id}``
    The same send as a background job (202 and its id), and its state and result.

Destinations are names of devices in the settings: no request names a host, a port, an AE
title or a server-side path, and a request carrying any field it does not define is refused
(400). Uploads go to a private folder under the settings' temporary folder, under names
reduced to a plain base name, and are removed when the request (or job) ends; archives are
never extracted. Security checks run before routing, in :mod:`._api_security`.
"""

from __future__ import annotations

import base64
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, Final

import attrs
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from sendtopacs_adapters._api_errors import ERROR_RESPONSES
from sendtopacs_adapters._api_jobs import Jobs, JobsFullError
from sendtopacs_adapters._api_models import ConversionReportModel, JobModel, SendReportModel
from sendtopacs_adapters._api_query import query_key
from sendtopacs_adapters._api_security import SecurityMiddleware
from sendtopacs_adapters._api_uploads import (
    Upload,
    UploadError,
    new_workspace,
    safe_upload_name,
    save_uploads,
    scrub,
    workspace,
)
from sendtopacs_core import (
    ConfigError,
    Converter,
    Device,
    DicomNetworkError,
    InvalidValueError,
    Querier,
    QueryLevel,
    QueryModel,
    QueryResult,
    Sender,
    SendReport,
    SendToPacsError,
    Settings,
    Study,
    StudyQuery,
    WorklistDevice,
    WorklistItem,
    WorklistMatchError,
    WorklistQuery,
    __version__,
    pick_worklist_study,
)

__all__ = ["API_PREFIX", "create_app", "run_server", "safe_upload_name"]

API_PREFIX: Final = "/api/v1"
#: The most DICOM data one ``/convert`` answer carries (before base64).
MAX_RETURNED_BYTES: Final = 128 * 1024 * 1024

_log = logging.getLogger(__name__)


# -- request models: strict, so that an unknown field (host, port, path...) is a 400 ---------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class StudyFields(_Strict):
    """The study of converted files (DICOM keywords in snake case)."""

    patient_id: str | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    accession_number: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    study_id: str | None = None
    study_description: str | None = None
    referring_physician_name: str | None = None
    modality: str | None = None
    study_instance_uid: str | None = None
    additional_info: str | None = None
    worklist_device: str | None = Field(default=None, description="fill from this worklist")
    pick: int | None = Field(default=None, ge=1, description="the worklist item, from 1")


class ConvertForm(StudyFields):
    files: list[UploadFile]


class SendForm(StudyFields):
    files: list[UploadFile]
    decompress: bool = False


_LO: Final = query_key("LO")
_SH: Final = query_key("SH")
_PN: Final = query_key("PN")
_CS: Final = query_key("CS")
_UI: Final = query_key("UI")
_DA: Final = query_key("DA")


class WorklistParams(_Strict):
    patient_id: Annotated[str | None, _LO] = None
    patient_name: Annotated[str | None, _PN] = None
    accession_number: Annotated[str | None, _SH] = None
    modality: Annotated[str | None, _CS] = None
    date: str | None = Field(default=None, description="YYYYMMDD or a range; '' for any")
    limit: int | None = Field(default=None, ge=1, le=10_000)


class FindParams(_Strict):
    patient_id: Annotated[str | None, _LO] = None
    patient_name: Annotated[str | None, _PN] = None
    patient_birth_date: Annotated[str | None, _DA] = None
    accession_number: Annotated[str | None, _SH] = None
    study_instance_uid: Annotated[str | None, _UI] = None
    study_date: str | None = None
    study_description: Annotated[str | None, _LO] = None
    modalities_in_study: Annotated[str | None, _CS] = None
    model: QueryModel | None = None
    level: QueryLevel | None = None
    limit: int | None = Field(default=None, ge=1, le=10_000)


async def _bare(request: Request) -> None:
    """Routes without a query or body take none: no smuggled ``?host=`` or JSON body."""
    if request.query_params:
        raise HTTPException(400, "this request takes no query parameters")
    if request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers:
        raise HTTPException(400, "this request takes no body")


async def _no_query(request: Request) -> None:
    if request.query_params:
        raise HTTPException(400, "this request takes no query parameters")


# -- settings and devices -------------------------------------------------------------------


class _SettingsSource:
    """The settings; re-read when the file changes (devices), but ``api`` stays as started."""

    def __init__(self, settings: Settings, path: Path | None) -> None:
        self._settings = settings
        self._path = path
        self._stamp = self._mtime()
        self._lock = threading.Lock()

    def _mtime(self) -> int | None:
        try:
            return self._path.stat().st_mtime_ns if self._path is not None else None
        except OSError:
            return None

    def get(self) -> Settings:
        with self._lock:
            stamp = self._mtime()
            if self._path is not None and stamp is not None and stamp != self._stamp:
                try:
                    loaded = Settings.load(self._path)
                except ConfigError:
                    _log.warning("settings file changed but is invalid; keeping the old one")
                else:
                    self._settings = attrs.evolve(loaded, api=self._settings.api)
                self._stamp = stamp
            return self._settings


def _device(settings: Settings, name: str) -> Device:
    try:
        return settings.device(name)
    except ConfigError:
        known = ", ".join(device.label for device in settings.devices) or "none configured"
        raise HTTPException(404, f"no device named {name!r} (devices: {known})") from None


def _worklist_device(settings: Settings, name: str) -> WorklistDevice:
    try:
        return settings.worklist_device(name)
    except ConfigError:
        known = ", ".join(device.label for device in settings.worklist_devices)
        raise HTTPException(
            404, f"no worklist device named {name!r} (worklist_devices: {known or 'none'})"
        ) from None


def _study(fields: StudyFields, settings: Settings) -> Study | None:
    values = fields.model_dump(
        include=set(StudyFields.model_fields) - {"worklist_device", "pick"}, exclude_none=True
    )
    typed = Study(**values)
    if fields.worklist_device is None:
        if fields.pick is not None:
            raise HTTPException(400, "pick needs worklist_device")
        return typed if values else None
    device = _worklist_device(settings, fields.worklist_device)
    querier = Querier(device, calling_ae_title=settings.main.ae_title)
    try:
        study, _ = pick_worklist_study(querier, typed, pick=fields.pick)
    except WorklistMatchError as exc:
        # The core's message lists the candidates by name: an answer names no patient.
        found = len(exc.candidates)
        if fields.pick is not None:
            raise HTTPException(
                422, f"pick {fields.pick}: the worklist gave {found} item(s)"
            ) from None
        what = "no worklist item matches" if not found else f"{found} worklist items match"
        raise HTTPException(422, f"{what}; choose one with pick (from 1)") from None
    return study


def _in_workspace(settings: Settings, folder: Path) -> Settings:
    """The settings with the temporary folder inside the request's folder."""
    work = folder / "work"
    work.mkdir(exist_ok=True)
    return attrs.evolve(settings, main=attrs.evolve(settings.main, temp_dir=work))


def _shown(folder: Path, uploads: Sequence[Upload]) -> Callable[[Path], str]:
    """How the documents name a path: the upload's name, else the file's own name (never a
    server-side folder)."""
    names = {upload.path: upload.name for upload in uploads}
    return lambda path: names.get(path, path.name)


def _scrubbed(folder: Path, uploads: Sequence[Upload]) -> Callable[[str], str]:
    return lambda text: scrub(text, folder, uploads)


def _send_document(report: SendReport, folder: Path, uploads: Sequence[Upload]) -> dict[str, Any]:
    """``SendReport.to_dict()`` with upload names and scrubbed messages."""
    document = report.to_dict(path=_shown(folder, uploads), text=_scrubbed(folder, uploads))
    document["kept_temp_dir"] = None  # inside the request's folder, which is removed
    return document


def _send_work(
    settings: Settings, device: Device, form: SendForm, folder: Path, uploads: list[Upload]
) -> dict[str, Any]:
    """Blocking: pick the study, send, describe the outcome."""
    study = _study(form, settings)
    sender = Sender(device, settings=_in_workspace(settings, folder), decompress=form.decompress)
    report = sender.send([upload.path for upload in uploads], study=study)
    return _send_document(report, folder, uploads)


def _convert_work(
    settings: Settings, form: ConvertForm, folder: Path, uploads: list[Upload]
) -> dict[str, Any]:
    """Blocking: pick the study, convert, read the DICOM files back (within the size cap)."""
    study = _study(form, settings)
    report = Converter(_in_workspace(settings, folder)).convert(
        [upload.path for upload in uploads], study, out_dir=folder / "out"
    )
    total = sum(item.path.stat().st_size for item in report.files)
    if total > MAX_RETURNED_BYTES:
        raise HTTPException(
            413, f"the DICOM files ({total} bytes) exceed {MAX_RETURNED_BYTES} bytes; send fewer"
        )
    document = report.to_dict(path=_shown(folder, uploads), text=_scrubbed(folder, uploads))
    for entry, item in zip(document["files"], report.files, strict=True):
        entry["data"] = base64.b64encode(item.path.read_bytes()).decode("ascii")
    return document


def _row(row: WorklistItem | QueryResult) -> dict[str, Any]:
    data = attrs.asdict(row, filter=lambda field, _value: field.name != "identifier")
    return {key: (str(value) if key == "level" else value) for key, value in data.items()}


# -- errors ----------------------------------------------------------------------------------


def _error_text(exc: SendToPacsError) -> str:
    """A message without the offending value (it may be patient data)."""
    if isinstance(exc, InvalidValueError):
        return f"invalid {exc.field}: {exc.reason}"
    return str(exc)


def _describe(exc: Exception) -> str:
    """A failed job's error: the message of ours, a generic text for anything else."""
    if isinstance(exc, HTTPException):
        return str(exc.detail)
    if isinstance(exc, SendToPacsError):
        return _error_text(exc)
    return "internal error (see the service log at debug)"


def _json_error(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 (registered for it)
        return _json_error(exc.status_code, str(exc.detail), exc.headers)

    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 (registered for it)
        problems = [
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in exc.errors()
        ]  # never error["input"]: it may be patient data
        return _json_error(400, "invalid request: " + "; ".join(problems))

    async def core_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SendToPacsError)  # noqa: S101 (registered for it)
        if isinstance(exc, InvalidValueError):
            return _json_error(400, _error_text(exc))
        if isinstance(exc, DicomNetworkError):
            return _json_error(502, str(exc))
        if isinstance(exc, ConfigError):
            return _json_error(500, f"settings error: {exc}")
        return _json_error(422, str(exc))

    async def bad_upload(_request: Request, exc: Exception) -> JSONResponse:
        return _json_error(400, str(exc))

    async def busy(_request: Request, exc: Exception) -> JSONResponse:
        return _json_error(503, str(exc), {"Retry-After": "10"})

    async def internal_error(_request: Request, _exc: Exception) -> JSONResponse:
        return _json_error(500, "internal error (see the service log at debug)")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(SendToPacsError, core_error)
    app.add_exception_handler(UploadError, bad_upload)
    app.add_exception_handler(JobsFullError, busy)
    app.add_exception_handler(Exception, internal_error)


# -- the application -------------------------------------------------------------------------


def create_app(
    settings: Settings,
    *,
    settings_path: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ASGIApp:
    """The HTTP API as an ASGI application, behind the security middleware.

    Parameters
    ----------
    settings
        Devices, worklist devices, conversion settings and the ``api`` section.
    settings_path
        The file ``settings`` came from: re-read when it changes, so that edited devices
        apply without a restart (the ``api`` section applies only at start).
    clock
        Monotonic seconds for the login-failure counter and job expiry (tests fake it).
    """
    source = _SettingsSource(settings, settings_path)
    router = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)
    _add_query_routes(router, source)
    _add_upload_routes(router, source, Jobs(describe=_describe, clock=clock))
    app = FastAPI(
        title="sendtopacs",
        version=__version__,
        description="Convert clinic files to DICOM and send them to the configured PACS.",
        docs_url="/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.include_router(router)
    _install_error_handlers(app)
    return SecurityMiddleware(app, settings.api, clock=clock)


_BARE: Final = [Depends(_bare)]
_NO_QUERY: Final = [Depends(_no_query)]
#: Upload forms: described in the OpenAPI schema as ``multipart/form-data`` (a plain ``Form()``
#: model would be documented as url-encoded, which cannot carry files).
_MULTIPART: Final = Form(media_type="multipart/form-data")


def _add_query_routes(router: APIRouter, source: _SettingsSource) -> None:
    """health, echo, worklist, find."""

    @router.get("/health", dependencies=_BARE)
    async def health() -> dict[str, Any]:
        """The service answers; its version."""
        return {"ok": True, "version": __version__}

    @router.post("/echo/{device}", dependencies=_BARE)
    async def echo(device: str) -> dict[str, Any]:
        """C-ECHO a device of the settings."""
        current = source.get()
        target = _device(current, device)
        try:
            seconds = await run_in_threadpool(Sender(target, settings=current).echo)
        except DicomNetworkError as exc:
            raise HTTPException(502, f"echo {target.name} failed: {exc}") from None
        return {"ok": True, "device": target.name, "seconds": seconds}

    @router.get("/worklist/{device}")
    async def worklist(device: str, params: Annotated[WorklistParams, Query()]) -> dict[str, Any]:
        """Search a worklist device's Modality Worklist."""
        current = source.get()
        target = _worklist_device(current, device)
        query = WorklistQuery(**params.model_dump(exclude={"limit"}))
        querier = Querier(target, calling_ae_title=current.main.ae_title)
        items = await run_in_threadpool(querier.find_worklist, query, limit=params.limit)
        return {"ok": True, "device": target.name, "items": [_row(item) for item in items]}

    @router.get("/find/{device}")
    async def find(device: str, params: Annotated[FindParams, Query()]) -> dict[str, Any]:
        """Search patients or studies on a worklist device (Query/Retrieve C-FIND)."""
        current = source.get()
        target = _worklist_device(current, device)
        query = StudyQuery(**params.model_dump(exclude={"model", "level", "limit"}))
        querier = Querier(target, calling_ae_title=current.main.ae_title)
        results = await run_in_threadpool(
            querier.find, query, model=params.model, level=params.level, limit=params.limit
        )
        return {"ok": True, "device": target.name, "results": [_row(row) for row in results]}


def _add_upload_routes(router: APIRouter, source: _SettingsSource, jobs: Jobs) -> None:
    """convert, send, jobs."""

    @router.post(
        "/convert",
        dependencies=_NO_QUERY,
        responses={
            200: {"model": ConversionReportModel},
            422: {"model": ConversionReportModel, "description": "no input was converted"},
        },
    )
    async def convert(form: Annotated[ConvertForm, _MULTIPART]) -> JSONResponse:
        """Convert uploaded files; the DICOM files come back base64-encoded in ``data``."""
        current = source.get()
        with workspace(current) as folder:
            uploads = await save_uploads(form.files, folder)
            document = await run_in_threadpool(_convert_work, current, form, folder, uploads)
        return JSONResponse(document, status_code=200 if document["files"] else 422)

    @router.post(
        "/send/{device}",
        dependencies=_NO_QUERY,
        responses={
            200: {"model": SendReportModel},
            502: {"model": SendReportModel, "description": "the device could not be reached"},
        },
    )
    async def send(device: str, form: Annotated[SendForm, _MULTIPART]) -> JSONResponse:
        """Send uploaded files to a device of the settings; one outcome per file."""
        current = source.get()
        target = _device(current, device)
        with workspace(current) as folder:
            uploads = await save_uploads(form.files, folder)
            document = await run_in_threadpool(_send_work, current, target, form, folder, uploads)
        return JSONResponse(document, status_code=502 if document["unreachable"] else 200)

    @router.post(
        "/jobs/send/{device}",
        dependencies=_NO_QUERY,
        status_code=202,
        responses={202: {"model": JobModel}},
    )
    async def send_job(device: str, form: Annotated[SendForm, _MULTIPART]) -> JSONResponse:
        """Send uploaded files in the background; poll ``GET /jobs/{id}``."""
        current = source.get()
        target = _device(current, device)
        folder = new_workspace(current)
        try:
            uploads = await save_uploads(form.files, folder)
            job = jobs.start(
                "send",
                target.name,
                lambda: _send_work(current, target, form, folder, uploads),
                lambda: shutil.rmtree(folder, ignore_errors=True),
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JSONResponse(job.document(), status_code=202)

    @router.get("/jobs/{job_id}", dependencies=_BARE, responses={200: {"model": JobModel}})
    async def job_status(job_id: str) -> dict[str, Any]:
        """A job's state (queued, running, done, failed) and, when done, its result."""
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job (finished jobs expire after an hour)")
        return job.document()


class _Server(uvicorn.Server):
    """uvicorn's server, except that SIGTERM is a clean stop (exit status 0).

    uvicorn raises a caught signal again once it has shut down, so that the process dies of
    it (status -15); a service manager stopping us is not a failure.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM:
            self.should_exit = True
            return
        super().handle_exit(sig, frame)


def run_server(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
) -> None:
    """Serve ``app`` with uvicorn until SIGINT or SIGTERM (after SIGTERM, return normally)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="off",
        timeout_keep_alive=5,
        limit_concurrency=64,
    )
    _Server(config).run()
