"""sendtopacs config set-api-password: only a verifiable hash reaches the settings file."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sendtopacs_adapters.cli import main
from sendtopacs_core import Settings, verify_password

STRONG = "k7#Vq9!mZ2@pLx"


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "conf" / "settings.json"


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def _typed(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    prompts: list[str] = []
    replies: Iterator[str] = iter(answers)

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return next(replies)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    return prompts


def test_password_stdin_stores_a_verifiable_hash_only(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, STRONG + "\nsecond line ignored\n")
    status = main(
        ["--settings", str(settings_file), "config", "set-api-password", "--password-stdin"]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert str(settings_file) in out
    assert STRONG not in out
    text = settings_file.read_text(encoding="utf-8")
    assert STRONG not in text
    api = Settings.load(settings_file).api
    assert api.username == "sendtopacs"
    assert api.password_hash is not None
    assert verify_password(STRONG, api.password_hash)
    assert not verify_password(STRONG + "x", api.password_hash)


def test_keeps_other_settings_and_current_user(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_file.parent.mkdir()
    settings_file.write_text(json.dumps({"api": {"port": 9001, "username": "alice"}}), "utf-8")
    _stdin(monkeypatch, "Tr4v!s-Quoll-93x\r\n")
    args = ["--settings", str(settings_file), "--json", "config", "set-api-password"]
    assert main([*args, "--password-stdin"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == {"ok": True, "path": str(settings_file), "username": "alice"}
    api = Settings.load(settings_file).api
    assert (api.port, api.username) == (9001, "alice")
    assert api.password_hash is not None
    assert verify_password("Tr4v!s-Quoll-93x", api.password_hash)


def test_username_option(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, STRONG + "\n")
    args = ["--settings", str(settings_file), "config", "set-api-password", "--password-stdin"]
    assert main([*args, "--username", " bob "]) == 0
    assert Settings.load(settings_file).api.username == "bob"
    _stdin(monkeypatch, STRONG + "\n")
    assert main([*args, "--username", "a:b"]) == 2
    assert "no colon" in capsys.readouterr().err


def test_weak_password_exits_2_with_reasons(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, "Summer2024!!\n")
    status = main(
        ["--settings", str(settings_file), "config", "set-api-password", "--password-stdin"]
    )
    assert status == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0] == "sendtopacs: password refused:"
    assert any("common or breached" in line for line in lines[1:])
    assert any("next to a year" in line for line in lines[1:])
    assert "Summer2024" not in err
    assert not settings_file.exists()


def test_weak_password_json(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, "short\n")
    args = ["--settings", str(settings_file), "--json", "config", "set-api-password"]
    assert main([*args, "--password-stdin"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False
    assert any("shorter than 12" in p for p in document["problems"])


def test_empty_stdin_is_a_usage_error(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, "")
    status = main(
        ["--settings", str(settings_file), "config", "set-api-password", "--password-stdin"]
    )
    assert status == 2
    assert "standard input" in capsys.readouterr().err
    assert not settings_file.exists()


def test_prompts_twice_and_stores(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = _typed(monkeypatch, STRONG, STRONG)
    assert main(["--settings", str(settings_file), "config", "set-api-password"]) == 0
    assert len(prompts) == 2
    stored = Settings.load(settings_file).api.password_hash
    assert stored is not None
    assert verify_password(STRONG, stored)
    assert STRONG not in capsys.readouterr().out


def test_mismatched_prompts_exit_2(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _typed(monkeypatch, STRONG, STRONG + "!")
    assert main(["--settings", str(settings_file), "config", "set-api-password"]) == 2
    err = capsys.readouterr().err
    assert "differ" in err
    assert STRONG not in err
    assert not settings_file.exists()


def test_broken_settings_file_reported_before_asking(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_file.parent.mkdir()
    settings_file.write_text("{not json", encoding="utf-8")
    prompts = _typed(monkeypatch, STRONG, STRONG)
    assert main(["--settings", str(settings_file), "config", "set-api-password"]) == 2
    assert prompts == []
    assert "settings error" in capsys.readouterr().err
    assert settings_file.read_text(encoding="utf-8") == "{not json"


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["config", "set-api-password", "--help"])
    out = capsys.readouterr().out
    assert "--password-stdin" in out
    assert "examples:" in out
