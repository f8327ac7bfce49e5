"""``copilot bench ingest``: a short run against the real server, with the hashing pipeline."""

from __future__ import annotations

import json
from typing import Any

import pytest

from copilot.cli import main
from copilot.services.assistant import LoadReport


class _SharedIndex:
    """The session's index stays open for other tests."""

    def close(self) -> None:
        pass


class _BrokenAnalyser:
    def analyse(self, conversation: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the pipeline is broken")


def _use(monkeypatch: pytest.MonkeyPatch, assistant: Any) -> None:
    def build(*args: Any, **kwargs: Any) -> tuple[Any, Any, LoadReport]:
        return assistant, _SharedIndex(), LoadReport()

    monkeypatch.setattr("copilot.services.assistant.build_assistant", build)


@pytest.mark.slow  # two seconds of load plus the checks
@pytest.mark.parametrize("where", ["child process", "in-process"])
def test_a_short_run_applies_every_turn_once_and_reflects_it_in_a_snapshot(
    where: str,
    hashing_backend: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use(monkeypatch, hashing_backend.assistant)
    argv = ["bench", "ingest", "--json", "--backend", "hashing", "--seconds", "1"]
    argv += ["--conversations", "3", "--rate", "60"]
    if where == "in-process":
        argv.append("--in-process")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    report = json.loads(out)
    assert report["ok"] is True
    assert report["clients"] == where
    assert 55 <= report["turns_posted"] <= 61  # 60 turns/s for one second
    assert report["applied_once"] == report["turns_posted"]
    assert report["repeats_posted"] >= 3  # each client repeats its second turn
    assert report["repeats_answered_duplicate"] == report["repeats_posted"]
    assert report["turns_reflected"] == report["turns_posted"]
    assert report["http_snapshots_checked"] == report["conversations_total"] >= 3
    assert report["errors"] == 0 and report["http_snapshots_wrong"] == []
    latency = report["post_to_snapshot_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["max"]


@pytest.mark.slow
def test_turns_that_never_reach_a_snapshot_fail_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(monkeypatch, _BrokenAnalyser())
    argv = ["bench", "ingest", "--backend", "hashing", "--seconds", "0.5", "--conversations", "2"]
    assert main([*argv, "--rate", "20"]) == 1
    out = capsys.readouterr().out
    assert "reflected  0/" in out
    assert "engine error: RuntimeError: the pipeline is broken" in out
    assert "FAILED" in out


def test_nonsense_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "ingest", "--conversations", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
