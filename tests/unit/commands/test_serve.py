"""``copilot serve`` and ``copilot token``."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from copilot.cli import build_parser, main
from copilot.commands import serve as serve_command
from copilot.services.secrets import INGEST_TOKEN, SERVICE


def test_token_is_shown_then_rotated(
    memory_keyring: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token"]) == 0
    first = capsys.readouterr().out.strip()
    assert memory_keyring.passwords[(SERVICE, INGEST_TOKEN)] == first
    assert main(["token"]) == 0
    assert capsys.readouterr().out.strip() == first
    assert main(["token", "--rotate", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["rotated"] is True and payload["saved"] is True
    assert payload["token"] != first
    assert memory_keyring.passwords[(SERVICE, INGEST_TOKEN)] == payload["token"]


def _request(url: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.mark.slow  # loads the sample pack (~3 s)
def test_serve_answers_with_the_keyring_token_and_stops_cleanly(
    memory_keyring: Any,
    data_dir: Path,
    sample_content: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from copilot.services.embedders import HashingEmbedder

    transcript = data_dir / "live.jsonl"
    transcript.write_text(
        json.dumps({"conversation_id": "serve-tail", "turn_id": "t1", "role": "customer",
                    "text": "I want to cancel my contract"}) + "\nnot json\n"
    )  # fmt: skip
    args = build_parser().parse_args(
        ["--data-dir", str(data_dir), "serve", "--port", "0", "--content", str(sample_content),
         "--tail", str(transcript)]
    )  # fmt: skip
    stop = threading.Event()
    started = threading.Event()
    servers: list[Any] = []
    result: list[int] = []

    def ready(server: Any) -> None:
        servers.append(server)
        started.set()

    thread = threading.Thread(
        target=lambda: result.append(
            serve_command.serve(args, stop, ready=ready, embedder=HashingEmbedder())
        )
    )
    thread.start()
    try:
        assert started.wait(60), "the server did not start"
        url = servers[0].url
        token = memory_keyring.passwords[(SERVICE, INGEST_TOKEN)]
        event = {"conversation_id": "serve-1", "turn_id": "t1", "role": "customer",
                 "text": "my internet keeps dropping out"}  # fmt: skip
        assert _request(f"{url}/v1/turns", None, event)[0] == 401
        status, body = _request(f"{url}/v1/turns", token, event)
        assert status == 200 and body["results"][0]["status"] == "applied"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, snapshot = _request(f"{url}/v1/conversations/serve-1/snapshot", token)
            if status == 200:
                break
            time.sleep(0.05)
        assert status == 200 and snapshot["turn_count"] == 1
        # The tailed transcript feeds the same engine.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, snapshot = _request(f"{url}/v1/conversations/serve-tail/snapshot", token)
            if status == 200:
                break
            time.sleep(0.05)
        assert status == 200 and snapshot["turn_count"] == 1
        feedback = {"kind": "discard", "conversation_id": "serve-1", "suggestion_id": "s1",
                    "item_id": "tpl", "reason": "wrong_topic"}  # fmt: skip
        status, body = _request(f"{url}/v1/feedback", token, feedback)
        assert status == 200 and body["recorded"] is True
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert result == [0]
    captured = capsys.readouterr()
    out = captured.out
    assert f"{transcript}:2: not valid JSON" in captured.err
    assert "listening on http://127.0.0.1:" in out
    assert "copilot token" in out
    assert token not in out  # with a keyring the token is never printed by serve
    assert (data_dir / "feedback.sqlite3").exists()
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("copilot-")]
    assert not leaked


def test_serve_refuses_a_port_out_of_range(data_dir: Path) -> None:
    from copilot.cli import UserError

    args = build_parser().parse_args(["--data-dir", str(data_dir), "serve", "--port", "70000"])
    with pytest.raises(UserError, match="between 0 and 65535"):
        serve_command.serve(args, threading.Event())
