"""Every command of ``sendtopacs`` has ``--help`` with examples; errors are one line without
``--debug`` and come with a traceback with it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from sendtopacs_adapters.cli import build_parser, main

#: The commands the issue names; the parser must have at least these (and every one it has is
#: checked below).
EXPECTED_COMMANDS = {
    ("convert",),
    ("send",),
    ("echo",),
    ("worklist",),
    ("find",),
    ("watch",),
    ("serve",),
    ("demo",),
    ("config",),
    ("config", "init"),
    ("config", "show"),
    ("config", "check"),
    ("config", "set-api-password"),
}


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every command and subcommand of ``parser``, as argument lists."""
    found: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += _commands(sub, (*prefix, name))
    return found


ALL_COMMANDS = _commands(build_parser())


def test_every_named_command_exists() -> None:
    assert set(ALL_COMMANDS) >= EXPECTED_COMMANDS


@pytest.mark.parametrize("command", [(), *ALL_COMMANDS], ids=lambda c: " ".join(c) or "sendtopacs")
def test_help_has_examples(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "\nexamples:\n" in out
    examples = out.split("\nexamples:\n", 1)[1]
    assert examples.startswith("  sendtopacs ")
    # The examples show the command they document.
    assert f"sendtopacs {' '.join(command)}".strip() in examples


def _bad_device(settings: Path, *extra: str) -> list[str]:
    return ["--settings", str(settings), *extra, "send", str(settings), "--to", "no-such-pacs"]


def _unwritable(settings: Path, *extra: str) -> list[str]:
    del settings
    return ["--settings", "/proc/no-such-folder/settings.json", *extra, "config", "init"]


def _broken_settings(settings: Path, *extra: str) -> list[str]:
    settings.write_text('{"main": {"ae_title": 5}}', encoding="utf-8")
    return ["--settings", str(settings), *extra, "convert", str(settings), "-o", "out"]


@pytest.mark.parametrize("make_argv", [_bad_device, _unwritable, _broken_settings])
def test_an_error_is_one_line_and_debug_adds_the_traceback(
    make_argv: Callable[..., list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "settings.json"

    status = main(make_argv(settings))
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sendtopacs: ")
    assert "Traceback" not in captured.err

    assert main(make_argv(settings, "--debug")) == 2
    debug_err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in debug_err
    assert debug_err.splitlines()[-1] == lines[0]  # the same one-line message, last


def test_an_error_with_json_is_one_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_bad_device(tmp_path / "settings.json", "--json")) == 2
    captured = capsys.readouterr()
    assert '"ok": false' in captured.out
    assert "no-such-pacs" in captured.out
    assert "Traceback" not in captured.err
