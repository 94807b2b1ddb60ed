"""The HTTP API (``sendtopacs serve``): security tests S1-S6 and S10, and the routes' work.

Requests go through ``httpx.ASGITransport`` with an explicit client address, so that the
allow-list sees a real peer address; network peers are the in-process test SCPs.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import httpx
import pydicom
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sendtopacs_core as stp
from sendtopacs_adapters import api
from sendtopacs_adapters._api_models import ConversionReportModel, SendReportModel
from sendtopacs_adapters._api_uploads import safe_upload_name
from sendtopacs_adapters.cli import main
from sendtopacs_core.testing import StorageSCP, WorklistSCP, make_worklist_item
from tests._netpeers import free_port

T = TypeVar("T")

PASSWORD: Final = "k7#Vq9!mZ2@pLx"  # noqa: S105 (the test password)
USER: Final = "admin"
HASH: Final = stp.hash_password(PASSWORD)
BASE: Final = "http://127.0.0.1:8043"
LOCAL: Final = ("127.0.0.1", 1234)
GOOD: Final = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
AUTH: Final = {"Authorization": GOOD}
PHI_NAME: Final = "PHISENTINEL^ZQX"
PHI_ID: Final = "PHI-7731"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_settings(tmp_path: Path, **api_changes: Any) -> stp.Settings:
    api_settings = stp.ApiSettings(username=USER, password_hash=HASH, **api_changes)
    return stp.Settings(
        main=attrs.evolve(stp.Settings().main, temp_dir=tmp_path / "temp"),
        devices=(stp.Device(name="pacs", ae_title="TESTPACS", host="127.0.0.1", port=free_port()),),
        api=api_settings,
    )


def with_devices(
    settings: stp.Settings, *, pacs: StorageSCP | None = None, mwl: WorklistSCP | None = None
) -> stp.Settings:
    changes: dict[str, Any] = {}
    if pacs is not None:
        changes["devices"] = (
            stp.Device(name="pacs", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.port),
        )
    if mwl is not None:
        changes["worklist_devices"] = (
            stp.WorklistDevice(name="mwl", ae_title="TESTMWL", host="127.0.0.1", port=mwl.port),
        )
    return attrs.evolve(settings, **changes)


def call(
    app: Any,
    work: Callable[[httpx.AsyncClient], Awaitable[T]],
    *,
    client: tuple[str, int] = LOCAL,
    base_url: str = BASE,
) -> T:
    """Run ``work`` with a client talking to ``app`` from the address ``client``."""

    async def run() -> T:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            return await work(http)

    return asyncio.run(run())


def request(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    client = kwargs.pop("client", LOCAL)

    async def work(http: httpx.AsyncClient) -> httpx.Response:
        return await http.request(method, url, **kwargs)

    return call(app, work, client=client)


@pytest.fixture
def settings_(tmp_path: Path) -> stp.Settings:
    return make_settings(tmp_path, auth_failures_per_minute=1_000_000)


@pytest.fixture
def samples(tmp_path: Path) -> list[Path]:
    return stp.make_sample_files(tmp_path / "samples")


def files_of(paths: Sequence[Path]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (path.name, path.read_bytes())) for path in paths]


def leftovers(settings: stp.Settings) -> list[Path]:
    """What is left in the temporary folder (every request cleans up after itself)."""
    folder = settings.main.temp_dir
    assert folder is not None
    return list(folder.iterdir()) if folder.exists() else []


def error_of(response: httpx.Response) -> str:
    document = response.json()
    assert document["ok"] is False
    assert isinstance(document["error"], str)
    return document["error"]


# -- S1: authentication ----------------------------------------------------------------------

PATHS: Final = (
    "/api/v1/health",
    "/api/v1/echo/pacs",
    "/api/v1/worklist/mwl",
    "/api/v1/find/mwl",
    "/api/v1/convert",
    "/api/v1/send/pacs",
    "/api/v1/jobs/send/pacs",
    "/api/v1/jobs/abc",
    "/openapi.json",
    "/docs",
    "/",
    "/api/v1/nowhere",
)
METHODS: Final = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


_A: Final = b"Authorization"
_CREDENTIALS: Final = f"{USER}:{PASSWORD}".encode()

BAD_HEADERS: Final[dict[str, list[tuple[bytes, bytes]]]] = {
    "none": [],
    "wrong user": [(b"Authorization", f"Basic {_b64(f'root:{PASSWORD}'.encode())}".encode())],
    "wrong password": [(b"Authorization", f"Basic {_b64(f'{USER}:nope'.encode())}".encode())],
    "empty": [(b"Authorization", b"")],
    "empty basic": [(b"Authorization", b"Basic ")],
    "empty credentials": [(b"Authorization", f"Basic {_b64(b':')}".encode())],
    "malformed base64": [(b"Authorization", b"Basic !!!not-base64!!!")],
    "unpadded base64": [(_A, b"Basic " + _b64(_CREDENTIALS).rstrip("=").encode())],
    "non-UTF-8": [(b"Authorization", b"Basic " + _b64(b"admin:\xff\xfe\xfd").encode())],
    "10 KB header": [(b"Authorization", b"Basic " + _b64(b"a" * 7_700).encode())],
    "no space": [(b"Authorization", GOOD.replace("Basic ", "Basic").encode())],
    "lowercase scheme": [(b"Authorization", GOOD.replace("Basic ", "basic ").encode())],
    "two headers": [(b"Authorization", GOOD.encode()), (b"Authorization", GOOD.encode())],
    "bearer": [(b"Authorization", b"Bearer " + _b64(f"{USER}:{PASSWORD}".encode()).encode())],
    "double space": [(b"Authorization", GOOD.replace("Basic ", "Basic  ").encode())],
    "password suffix": [(_A, f"Basic {_b64(_CREDENTIALS + b'x')}".encode())],
}  # fmt: skip


def test_the_right_password_works(settings_: stp.Settings) -> None:
    app = api.create_app(settings_)
    response = request(app, "GET", "/api/v1/health", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "version": stp.__version__}
    assert response.headers["cache-control"] == "no-store"
    assert request(app, "GET", "/openapi.json", headers=AUTH).status_code == 200
    assert request(app, "GET", "/docs", headers=AUTH).status_code == 200


def test_s1_matrix_every_route_every_bad_header(settings_: stp.Settings) -> None:
    app = api.create_app(settings_)

    async def work(http: httpx.AsyncClient) -> list[tuple[str, str, str, int]]:
        results = []
        for path in PATHS:
            for method in METHODS:
                for case, headers in BAD_HEADERS.items():
                    response = await http.request(method, path, headers=headers)
                    results.append((path, method, case, response.status_code))
        return results

    results = call(app, work)
    successes = [r for r in results if r[3] < 400]
    assert len(results) == len(PATHS) * len(METHODS) * len(BAD_HEADERS)
    # S1 asks for about 2,000 unauthorised requests: this matrix (1,152 today) and the
    # generated headers below (150 examples x 12 requests), each test asserting its own.
    assert len(results) >= 1_000
    assert successes == []
    assert {r[3] for r in results} == {401}


_header_values = st.one_of(
    st.binary(max_size=200).map(lambda raw: b"Basic " + base64.b64encode(raw)),
    st.builds(
        lambda user, password: b"Basic " + base64.b64encode(f"{user}:{password}".encode()),
        st.text(max_size=20),
        st.text(max_size=30),
    ),
    st.binary(max_size=300).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"")),
    st.text(
        alphabet="Basic =+/:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", max_size=80
    ).map(str.encode),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(_header_values, min_size=1, max_size=2))
def test_s1_generated_headers_never_pass(settings_: stp.Settings, values: list[bytes]) -> None:
    app = api.create_app(settings_)
    headers = [(b"Authorization", value.strip()) for value in values]
    assume(headers != [(b"Authorization", GOOD.encode())])  # the one good header

    async def work(http: httpx.AsyncClient) -> list[int]:
        codes = []
        for path in ("/api/v1/health", "/openapi.json", "/api/v1/send/pacs"):
            for method in ("GET", "POST", "HEAD", "OPTIONS"):
                response = await http.request(method, path, headers=headers)
                codes.append(response.status_code)
        return codes

    codes = call(app, work)
    assert len(codes) == 12
    assert all(code == 401 for code in codes), codes


def test_s1_eleventh_failure_is_429_for_60_s(tmp_path: Path) -> None:
    clock = FakeClock()
    app = api.create_app(make_settings(tmp_path, auth_failures_per_minute=10), clock=clock)
    wrong = {"Authorization": "Basic " + _b64(f"{USER}:wrong".encode())}
    codes = [request(app, "GET", "/api/v1/health", headers=wrong).status_code for _ in range(10)]
    assert codes == [401] * 10
    locked = request(app, "GET", "/api/v1/health", headers=AUTH)
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "60"
    assert "too many failed logins" in error_of(locked)
    other = request(app, "GET", "/api/v1/health", headers=AUTH, client=("::1", 4321))
    assert other.status_code == 200  # another client is not locked out
    clock.now += 59
    assert request(app, "GET", "/api/v1/health", headers=AUTH).status_code == 429
    clock.now += 2
    assert request(app, "GET", "/api/v1/health", headers=AUTH).status_code == 200


def test_s1_failures_outside_the_minute_do_not_count(tmp_path: Path) -> None:
    clock = FakeClock()
    app = api.create_app(make_settings(tmp_path, auth_failures_per_minute=3), clock=clock)
    wrong = {"Authorization": "Basic " + _b64(b"admin:x")}
    for _ in range(4):
        assert request(app, "GET", "/api/v1/health", headers=wrong).status_code == 401
        clock.now += 31  # at most two failures in any minute
    assert request(app, "GET", "/api/v1/health", headers=AUTH).status_code == 200


def test_no_configured_password_refuses_everything(tmp_path: Path) -> None:
    settings_ = attrs.evolve(make_settings(tmp_path), api=stp.ApiSettings())
    app = api.create_app(settings_)
    for path in ("/api/v1/health", "/openapi.json", "/docs"):
        response = request(app, "GET", path, headers=AUTH)
        assert response.status_code == 401
        assert "sendtopacs config set-api-password" in error_of(response)


# -- S2: allow-list and bind -------------------------------------------------------------------


def test_s2_client_outside_the_allowlist_is_403(settings_: stp.Settings) -> None:
    app = api.create_app(settings_)
    outside = ("127.0.0.2", 5555)
    for headers in (AUTH, {**AUTH, "X-Forwarded-For": "127.0.0.1"}, {"X-Real-IP": "127.0.0.1"}):
        for path in ("/api/v1/health", "/openapi.json", "/docs"):
            response = request(app, "GET", path, headers=headers, client=outside)
            assert response.status_code == 403
            assert "allowlist" in error_of(response)
    assert request(app, "GET", "/api/v1/health", headers=AUTH, client=("::1", 1)).status_code == 200


def test_s2_cidr_allowlist(tmp_path: Path) -> None:
    app = api.create_app(make_settings(tmp_path, allowlist=("10.1.0.0/16",)))
    ok = request(app, "GET", "/api/v1/health", headers=AUTH, client=("10.1.2.3", 1))
    assert ok.status_code == 200
    assert request(app, "GET", "/api/v1/health", headers=AUTH).status_code == 403


def _settings_file(tmp_path: Path, api_section: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"api": api_section or {}}), encoding="utf-8")
    return path


def test_s2_serve_refuses_a_public_bind_without_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[dict[str, Any]] = []
    monkeypatch.setattr(api, "run_server", lambda app, **kwargs: ran.append(kwargs))
    path = _settings_file(tmp_path)
    assert main(["--settings", str(path), "serve", "--host", "0.0.0.0"]) == 2  # noqa: S104
    assert "without HTTPS" in capsys.readouterr().err
    assert ran == []
    assert main(["--settings", str(path), "serve", "--host", "::"]) == 2
    assert main(["--settings", str(path), "serve", "--host", "not-an-ip"]) == 2
    assert ran == []


def test_serve_runs_uvicorn_on_loopback_or_when_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[dict[str, Any]] = []
    monkeypatch.setattr(api, "run_server", lambda app, **kwargs: ran.append(kwargs))
    path = _settings_file(tmp_path)
    assert main(["--settings", str(path), "serve", "--port", "9123"]) == 0
    assert ran[-1]["host"] == "127.0.0.1"
    assert ran[-1]["port"] == 9123
    assert "set-api-password" in capsys.readouterr().err  # no user yet: warned
    assert main(["--settings", str(path), "serve", "--host", "0.0.0.0", "--insecure-bind"]) == 0  # noqa: S104
    assert ran[-1]["host"] == "0.0.0.0"  # noqa: S104
    tls = {"tls_cert_file": str(tmp_path / "c.pem"), "tls_key_file": str(tmp_path / "k.pem")}
    path = _settings_file(tmp_path, tls)
    assert main(["--settings", str(path), "serve", "--host", "0.0.0.0"]) == 0  # noqa: S104
    assert ran[-1]["ssl_certfile"] == tmp_path / "c.pem"


# -- S3: DNS rebinding and cross-site requests ------------------------------------------------


def test_s3_foreign_host_is_421(settings_: stp.Settings) -> None:
    app = api.create_app(settings_)
    for host in ("attacker.example", "attacker.example:8043", "127.0.0.1:9999", "localhost.evil"):
        response = request(app, "GET", "/api/v1/health", headers={**AUTH, "Host": host})
        assert response.status_code == 421, host
    for host in ("localhost:8043", "127.0.0.1:8043", "[::1]:8043"):
        response = request(app, "GET", "/api/v1/health", headers={**AUTH, "Host": host})
        assert response.status_code == 200, host


def test_s3_cross_origin_is_403(settings_: stp.Settings, samples: list[Path]) -> None:
    app = api.create_app(settings_)
    for origin in (
        "http://attacker.example",
        "null",
        "http://127.0.0.1:9999",
        "https://127.0.0.1:8043",
    ):
        response = request(app, "GET", "/api/v1/health", headers={**AUTH, "Origin": origin})
        assert response.status_code == 403, origin
    same = request(app, "GET", "/api/v1/health", headers={**AUTH, "Origin": BASE})
    assert same.status_code == 200
    form = request(
        app,
        "POST",
        "/api/v1/send/pacs",
        headers={**AUTH, "Sec-Fetch-Site": "cross-site"},
        data={"patient_id": "1"},
    )
    assert form.status_code == 403


def test_s3_an_unspecified_bind_accepts_ip_hosts_only(tmp_path: Path) -> None:
    app = api.create_app(make_settings(tmp_path, bind="0.0.0.0", allow_insecure_bind=True))  # noqa: S104
    ok = request(app, "GET", "/api/v1/health", headers={**AUTH, "Host": "192.168.1.5:8043"})
    assert ok.status_code == 200
    bad = request(app, "GET", "/api/v1/health", headers={**AUTH, "Host": "rebind.example:8043"})
    assert bad.status_code == 421


# -- S4: path-like upload names -----------------------------------------------------------------

TRAVERSAL_NAMES: Final = (
    "../../etc/passwd",
    "../canary/owned.jpg",
    "/etc/passwd",
    "/tmp/absolute.jpg",  # noqa: S108
    "a\x00b.jpg",
    "%2e%2e/%2e%2e/x.jpg",
    "..%2f..%2fx.jpg",
    "C:\\Windows\\x.jpg",
    "\\\\host\\share\\x.jpg",
    "..",
    ".",
    "...",
    "x" * 300 + ".jpg",
    "./.hidden",
    "..\\..\\canary\\y.jpg",
)


def _tree(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def test_s4_upload_names_never_write_outside(
    tmp_path: Path, settings_: stp.Settings, samples: list[Path]
) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret.txt").write_text("CANARY-8812", encoding="utf-8")
    before = _tree(tmp_path)
    app = api.create_app(settings_)
    photo = samples[0].read_bytes()
    files = [("files", (name, photo)) for name in TRAVERSAL_NAMES]
    response = request(app, "POST", "/api/v1/convert", headers=AUTH, files=files)
    assert response.status_code == 200, response.text
    assert "CANARY-8812" not in response.text
    document = response.json()
    for entry in document["files"]:
        assert "/" not in entry["source"]
        assert "\\" not in entry["source"]
    after = _tree(tmp_path)
    temp = tmp_path / "temp"
    assert {p for p in after - before if not p.is_relative_to(temp)} == set()
    assert list(temp.iterdir()) == []  # the request's folder was removed
    assert (canary / "secret.txt").read_text(encoding="utf-8") == "CANARY-8812"
    assert not Path("/tmp/absolute.jpg").exists()  # noqa: S108
    no_name = request(app, "POST", "/api/v1/convert", headers=AUTH, files=[("files", ("", photo))])
    assert no_name.status_code == 400  # a part without a file name is not an upload


@given(st.text(max_size=300))
def test_safe_upload_name_is_a_plain_base_name(name: str) -> None:
    safe = safe_upload_name(name)
    assert safe
    assert "/" not in safe
    assert "\\" not in safe
    assert "\x00" not in safe
    assert not safe.startswith(".")
    assert safe not in {".", ".."}
    assert len(safe.encode("utf-8")) <= 120


# -- S5: body limits ---------------------------------------------------------------------------


def test_s5_content_length_over_the_limit_is_413(tmp_path: Path) -> None:
    app = api.create_app(make_settings(tmp_path, max_upload_mb=1))
    files = [("files", ("big.jpg", b"\xff" * (2 * 1024 * 1024)))]
    response = request(app, "POST", "/api/v1/send/pacs", headers=AUTH, files=files)
    assert response.status_code == 413
    assert "1 MB" in error_of(response)


def test_s5_streamed_body_is_cut_at_the_limit(tmp_path: Path) -> None:
    app = api.create_app(make_settings(tmp_path, max_upload_mb=1))
    chunks_read = 0

    async def chunks() -> Any:
        nonlocal chunks_read
        yield b'--abc\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n'
        for _ in range(64):  # 16 MB in 256 KB chunks, no Content-Length
            chunks_read += 1
            yield b"x" * (256 * 1024)

    headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=abc"}
    response = request(app, "POST", "/api/v1/send/pacs", headers=headers, content=chunks())
    assert response.status_code == 413
    assert "1 MB" in error_of(response)
    assert chunks_read < 64


def test_malformed_multipart_is_a_json_400(settings_: stp.Settings) -> None:
    app = api.create_app(settings_)
    headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=abc"}
    response = request(app, "POST", "/api/v1/send/pacs", headers=headers, content=b"x" * 100)
    assert response.status_code == 400
    assert "multipart" in error_of(response)


def test_s5_encoded_bodies_are_refused(settings_: stp.Settings) -> None:
    app = api.create_app(settings_)
    headers = {**AUTH, "Content-Encoding": "gzip"}
    response = request(app, "POST", "/api/v1/send/pacs", headers=headers, content=b"x")
    assert response.status_code == 415


# -- S6: no SSRF: named devices only, no extra fields -------------------------------------------


def test_s6_extra_fields_are_400(settings_: stp.Settings, samples: list[Path]) -> None:
    app = api.create_app(settings_)
    for field in ("host", "port", "ae_title", "called_ae_title", "path", "out_dir"):
        for url in ("/api/v1/send/pacs", "/api/v1/convert", "/api/v1/jobs/send/pacs"):
            response = request(
                app,
                "POST",
                url,
                headers=AUTH,
                data={field: "10.0.0.1"},
                files=files_of(samples[:1]),
            )
            assert response.status_code == 400, (field, url, response.text)
            assert field in error_of(response)
        response = request(app, "GET", "/api/v1/worklist/mwl", headers=AUTH, params={field: "x"})
        assert response.status_code == 400
        response = request(app, "POST", "/api/v1/echo/pacs", headers=AUTH, params={field: "x"})
        assert response.status_code == 400
        response = request(
            app,
            "POST",
            "/api/v1/send/pacs",
            headers=AUTH,
            params={field: "x"},
            files=files_of(samples[:1]),
        )
        assert response.status_code == 400
    body = request(app, "POST", "/api/v1/echo/pacs", headers=AUTH, json={"host": "10.0.0.1"})
    assert body.status_code == 400


def test_s6_unknown_device_is_404_naming_the_known_ones(
    settings_: stp.Settings, samples: list[Path]
) -> None:
    app = api.create_app(settings_)
    response = request(app, "POST", "/api/v1/echo/elsewhere", headers=AUTH)
    assert response.status_code == 404
    assert "pacs" in error_of(response)
    response = request(app, "POST", "/api/v1/send/x", headers=AUTH, files=files_of(samples[:1]))
    assert response.status_code == 404
    assert request(app, "GET", "/api/v1/worklist/x", headers=AUTH).status_code == 404
    assert leftovers(settings_) == []


# -- S10: no patient data or tracebacks in errors ----------------------------------------------


def test_s10_errors_carry_no_patient_data(settings_: stp.Settings, samples: list[Path]) -> None:
    app = api.create_app(settings_)
    data = {"patient_name": PHI_NAME, "patient_id": PHI_ID, "patient_birth_date": PHI_ID}
    response = request(
        app, "POST", "/api/v1/convert", headers=AUTH, data=data, files=files_of(samples[:1])
    )
    assert response.status_code == 400
    assert "patient_birth_date" in error_of(response)
    assert PHI_ID not in response.text
    assert PHI_NAME not in response.text
    assert "Traceback" not in response.text


def test_an_unexpected_error_is_a_generic_500(
    settings_: stp.Settings, samples: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"boom {PHI_NAME}")

    monkeypatch.setattr(stp.Converter, "convert", explode)
    app = api.create_app(settings_)
    response = request(app, "POST", "/api/v1/convert", headers=AUTH, files=files_of(samples[:1]))
    assert response.status_code == 500
    assert PHI_NAME not in response.text
    assert "internal error" in error_of(response)
    assert leftovers(settings_) == []


# -- functional ----------------------------------------------------------------------------


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[StorageSCP]:
    with StorageSCP(storage_dir=tmp_path / "pacs") as scp:
        yield scp


def test_echo(settings_: stp.Settings, pacs: StorageSCP) -> None:
    app = api.create_app(with_devices(settings_, pacs=pacs))
    response = request(app, "POST", "/api/v1/echo/pacs", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["ok"] is True
    down = api.create_app(settings_)  # its port has nobody listening
    response = request(down, "POST", "/api/v1/echo/pacs", headers=AUTH)
    assert response.status_code == 502
    assert "echo pacs failed" in error_of(response)


def test_convert_returns_dicom(settings_: stp.Settings, samples: list[Path]) -> None:
    app = api.create_app(settings_)
    photo, _, pdf = samples
    data = {"patient_id": "12345", "patient_name": "Muster^Anna", "accession_number": "A1"}
    response = request(
        app, "POST", "/api/v1/convert", headers=AUTH, data=data, files=files_of([photo, pdf])
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["ok"] is True
    assert [entry["source"] for entry in document["files"]] == [photo.name, pdf.name]
    ConversionReportModel.model_validate(document)  # what /openapi.json says it returns
    # The written file by its name only: no server-side folder.
    assert [entry["path"] for entry in document["files"]] == [
        f"{photo.stem}.dcm",
        f"{pdf.stem}.dcm",
    ]
    classes = []
    for entry in document["files"]:
        dataset = pydicom.dcmread(io.BytesIO(base64.b64decode(entry["data"])))
        assert dataset.PatientID == "12345"
        assert dataset.SOPInstanceUID == entry["sop_instance_uid"]
        classes.append(dataset.SOPClassUID.name)
    assert classes == ["Secondary Capture Image Storage", "Encapsulated PDF Storage"]
    assert leftovers(settings_) == []


def test_send_reports_each_file(
    settings_: stp.Settings, pacs: StorageSCP, samples: list[Path]
) -> None:
    app = api.create_app(with_devices(settings_, pacs=pacs))
    data = {"patient_id": "12345", "patient_name": "Muster^Anna"}
    response = request(
        app, "POST", "/api/v1/send/pacs", headers=AUTH, data=data, files=files_of(samples)
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["ok"] is True
    assert document["sent"] == 3
    assert [entry["status"] for entry in document["files"]] == [0, 0, 0]
    assert {entry["source"] for entry in document["files"]} == {path.name for path in samples}
    SendReportModel.model_validate(document)
    assert [entry["commitment"] for entry in document["files"]] == [None, None, None]
    assert len(pacs.received) == 3
    assert leftovers(settings_) == []


def test_send_job_completes(settings_: stp.Settings, pacs: StorageSCP, samples: list[Path]) -> None:
    app = api.create_app(with_devices(settings_, pacs=pacs))

    async def work(http: httpx.AsyncClient) -> dict[str, Any]:
        started = await http.post(
            "/api/v1/jobs/send/pacs",
            headers=AUTH,
            data={"patient_id": "1"},
            files=files_of(samples[:2]),
        )
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        for _ in range(300):
            status = (await http.get(f"/api/v1/jobs/{job_id}", headers=AUTH)).json()
            if status["state"] in {"done", "failed"}:
                return dict(status)
            await asyncio.sleep(0.05)
        raise AssertionError("the job did not finish")

    status = call(app, work)
    assert status["state"] == "done", status
    assert status["ok"] is True
    assert status["result"]["sent"] == 2
    assert len(pacs.received) == 2
    assert leftovers(settings_) == []
    assert request(app, "GET", "/api/v1/jobs/unknown", headers=AUTH).status_code == 404


def test_worklist_search_and_convert_from_the_worklist(
    settings_: stp.Settings, samples: list[Path]
) -> None:
    item = make_worklist_item(patient_name="Muster^Anna", patient_id="W-1", accession_number="ACC9")
    other = make_worklist_item(patient_name="Other^Bob", patient_id="W-2", accession_number="ACC8")
    with WorklistSCP([item, other]) as mwl:
        app = api.create_app(with_devices(settings_, mwl=mwl))
        response = request(
            app,
            "GET",
            "/api/v1/worklist/mwl",
            headers=AUTH,
            params={"patient_id": "W-1", "date": ""},
        )
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert [entry["accession_number"] for entry in items] == ["ACC9"]
        data = {"worklist_device": "mwl", "accession_number": "ACC9"}
        response = request(
            app, "POST", "/api/v1/convert", headers=AUTH, data=data, files=files_of(samples[:1])
        )
        assert response.status_code == 200, response.text
        assert response.json()["study_instance_uid"] == item.StudyInstanceUID
        ambiguous = request(
            app,
            "POST",
            "/api/v1/convert",
            headers=AUTH,
            data={"worklist_device": "mwl"},
            files=files_of(samples[:1]),
        )
        assert ambiguous.status_code == 422
        assert "2 worklist items match" in error_of(ambiguous)


def test_openapi_lists_the_routes(settings_: stp.Settings) -> None:
    app = api.create_app(settings_)
    schema = request(app, "GET", "/openapi.json", headers=AUTH).json()
    assert set(schema["paths"]) >= {
        "/api/v1/health",
        "/api/v1/echo/{device}",
        "/api/v1/worklist/{device}",
        "/api/v1/find/{device}",
        "/api/v1/convert",
        "/api/v1/send/{device}",
        "/api/v1/jobs/send/{device}",
        "/api/v1/jobs/{job_id}",
    }
