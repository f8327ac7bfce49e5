"""``copilot llm check``: the model and round-trip time, or what is wrong, in words."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.fake_chat_server import FakeChatServer

from copilot.cli import main
from copilot.services.secrets import LLM_API_KEY, SecretStore
from copilot.services.settings import LlmSettings, Settings, save_settings


@pytest.fixture
def server() -> Iterator[FakeChatServer]:
    with FakeChatServer() as running:
        running.behave(content="OK", model="llama3.1:8b")
        yield running


def check(*args: str) -> int:
    return main(["llm", "check", *args])


def test_a_working_endpoint_prints_the_model_and_round_trip_time(
    server: FakeChatServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check("--endpoint", server.url, "--model", "llama3.1:8b") == 0
    out = capsys.readouterr().out
    assert f"OK: {server.url} answered with model llama3.1:8b in " in out and " ms" in out
    assert "turned off in the settings" in out  # the check works before switching it on


def test_the_settings_and_the_keyring_are_used(
    server: FakeChatServer, data_dir: Path, memory_keyring: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    server.behave(content="OK", model="llama3.1:8b", api_key="sk-local")
    llm = LlmSettings(enabled=True, endpoint=server.url, model="llama3.1:8b", timeout_s=5)
    save_settings(data_dir, Settings(llm=llm))
    SecretStore().set(LLM_API_KEY, "sk-local")
    assert check("--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["model"] == "llama3.1:8b" and report["enabled"] is True
    assert report["round_trip_ms"] > 0
    assert server.headers[-1]["Authorization"] == "Bearer sk-local"


def test_a_refused_key_says_so(server: FakeChatServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.behave(content="OK", api_key="sk-right")
    assert check("--endpoint", server.url, "--model", "m") == 1
    assert "refused the API key (HTTP 401)" in capsys.readouterr().err


def test_a_refused_connection_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeChatServer() as gone:
        url = gone.url
    assert check("--endpoint", url, "--model", "m", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "endpoint": url,
        "enabled": False,
        "ok": False,
        "error": "connect",
        "status": None,
        "message": f"Could not connect to {url} (connection refused): is the server running?",
    }


def test_a_timeout_says_so(server: FakeChatServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.behave(content="OK", delay_s=1.0)
    assert check("--endpoint", server.url, "--model", "m", "--timeout", "0.2") == 1
    assert "No complete answer within 0.2 s" in capsys.readouterr().err


def test_no_endpoint_or_no_model_is_a_readable_error(
    server: FakeChatServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check("--endpoint", "") == 2
    assert "no LLM endpoint is set" in capsys.readouterr().err
    assert check("--endpoint", server.url, "--model", "") == 1
    err = capsys.readouterr().err
    assert "No LLM model name is set" in err and "the endpoint offers: llama3.1:8b" in err
    assert check("--endpoint", "ftp://example.com") == 2
    assert "http:// or https://" in capsys.readouterr().err
