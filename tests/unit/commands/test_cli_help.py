"""Every CLI command documents itself (the sqlite-utils habit)."""

from __future__ import annotations

import argparse

import pytest

from copilot.cli import build_parser


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"'copilot {' '.join((*prefix, name))}' has no help text"
                found.append((*prefix, name))
                found.extend(_commands(sub, (*prefix, name)))
    return found


COMMANDS = _commands(build_parser())


def test_the_documented_commands_exist() -> None:
    names = {" ".join(c) for c in COMMANDS}
    for expected in (
        "index", "search", "replay", "model export", "eval retrieval", "eval pii",
        "eval sentiment", "eval intents", "eval summary", "bench search", "bench turn",
    ):  # fmt: skip
        assert expected in names


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_for_every_command(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: copilot")
    assert len(out.splitlines()) > 3
