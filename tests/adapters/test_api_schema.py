"""The HTTP API against its own OpenAPI schema: generated requests never get a 500, and
every answer is one the schema documents.

schemathesis loads ``/openapi.json`` from the app (in process, authenticated) and sends
generated requests (valid and invalid) to every operation. Each answer is checked for a
documented status code, content type and headers, and validated against the documented
response schema (errors: ``ErrorDocument``). Devices point at free ports with
nothing listening and a short connection timeout, so that echo and send fail with a
deliberate 502 (an upstream error), and 503 is the jobs queue being full: a 500, an
unhandled error, fails a case, as does any answer that does not conform to the schema.
The app is wrapped so that the peer address is ``127.0.0.1`` (schemathesis' ASGI client
says ``testclient``, which the allowlist refuses).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Final

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.types import ASGIApp, Receive, Scope, Send

import sendtopacs_core as stp
from sendtopacs_adapters import api
from tests._netpeers import free_port

PASSWORD: Final = "s3#Hm!vQ8@zLr1"  # noqa: S105 (the test password)
USER: Final = "admin"
BASE_URL: Final = "http://127.0.0.1:8043"
AUTH: Final = {
    "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode("ascii")
}
#: Everything but 500: 502 (device unreachable) and 503 (jobs queue full) are deliberate.
ACCEPTED_STATUSES: Final = ["2xx", "3xx", "4xx", *(str(code) for code in range(501, 600))]
MAX_EXAMPLES: Final = 25

_FAST: Final = stp.Timeouts(connect_s=0.5, acse_s=1, dimse_s=1, network_s=1)


def _settings() -> stp.Settings:
    api_settings = stp.ApiSettings(
        username=USER,
        password_hash=stp.hash_password(PASSWORD),
        auth_failures_per_minute=1_000_000,  # invalid headers are generated too
    )
    return stp.Settings(
        main=stp.Settings().main,
        devices=(
            stp.Device(
                name="pacs", ae_title="PACS", host="127.0.0.1", port=free_port(), timeouts=_FAST
            ),
        ),
        worklist_devices=(
            stp.WorklistDevice(
                name="mwl", ae_title="MWL", host="127.0.0.1", port=free_port(), timeouts=_FAST
            ),
        ),
        api=api_settings,
    )


class FromLoopback:
    """The app, seen from ``127.0.0.1`` (an address of the default allowlist)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"}:
            scope = {**scope, "client": ("127.0.0.1", 50000)}
        await self.app(scope, receive, send)


CONFIG: Final = schemathesis.Config.from_dict(
    {
        "base-url": BASE_URL,
        "headers": AUTH,
        "seed": 20240601,
        "generation": {"max-examples": MAX_EXAMPLES, "mode": "all"},
        # Known device names half of the time, so that the routes get past the 404.
        "dictionaries": {
            "devices": {"values": ["pacs"]},
            "worklists": {"values": ["mwl"]},
        },
        "operations": [
            {
                "include-path-regex": "/(echo|send|jobs/send)/",
                "parameters": {"path.device": {"dictionary": "devices", "probability": 0.5}},
            },
            {
                "include-path-regex": "/(worklist|find)/",
                "parameters": {"path.device": {"dictionary": "worklists", "probability": 0.5}},
            },
        ],
        "checks": {"not_a_server_error": {"expected-statuses": ACCEPTED_STATUSES}},
    }
)

APP: Final = FromLoopback(api.create_app(_settings()))
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", APP, config=CONFIG, headers={**AUTH, "Host": "127.0.0.1:8043"}
)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_answers_conform_to_the_schema_and_never_a_server_error(case: Any) -> None:
    case.call_and_validate(
        base_url=BASE_URL,
        headers=AUTH,
        checks=[
            schemathesis.checks.not_a_server_error,
            schemathesis.checks.status_code_conformance,
            schemathesis.checks.content_type_conformance,
            schemathesis.checks.response_headers_conformance,
            schemathesis.checks.response_schema_conformance,
        ],
    )


def test_reports_are_described_by_their_models() -> None:
    """The send, convert and job answers name their models (the core's to_dict() schema)."""

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=APP)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            return await http.get("/openapi.json", headers=AUTH)

    response = asyncio.run(fetch())
    assert response.status_code == 200, response.text
    openapi = response.json()
    paths = openapi["paths"]

    def model(path: str, method: str, status: str) -> str:
        content = paths[path][method]["responses"][status]["content"]["application/json"]
        return str(content["schema"]["$ref"]).rsplit("/", 1)[-1]

    prefix = api.API_PREFIX
    assert model(f"{prefix}/send/{{device}}", "post", "200") == "SendReportModel"
    assert model(f"{prefix}/send/{{device}}", "post", "502") == "SendReportModel"
    assert model(f"{prefix}/convert", "post", "200") == "ConversionReportModel"
    assert model(f"{prefix}/jobs/send/{{device}}", "post", "202") == "JobModel"
    assert model(f"{prefix}/jobs/{{job_id}}", "get", "200") == "JobModel"
    outcome = openapi["components"]["schemas"]["FileOutcomeModel"]
    assert {"commitment", "commitment_failure_reason_hex", "status_hex"} <= set(
        outcome["properties"]
    )
