"""``copilot bench turn --llm-endpoint``: the offline path measured with the backend running."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fixtures.fake_chat_server import FakeChatServer, polite_answer

from copilot.cli import main


@pytest.fixture
def server() -> Iterator[FakeChatServer]:
    with FakeChatServer() as running:
        running.behave(content=polite_answer, delay_s=0.02)
        yield running


@pytest.mark.slow
def test_the_bench_runs_the_backend_beside_the_pipeline(
    server: FakeChatServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "turn", "--repeat", "1", "--llm-endpoint", server.url, "--pause-ms", "60"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    llm = report["llm"]
    assert report["turns"] > 100 and report["stage_errors"] == 0
    # Debounced (150 ms): fewer requests than turns, yet many; none fails.
    assert 30 <= llm["requests"] < report["turns"] and llm["failed"] == 0
    # Paced turns: most answers arrive before a newer request supersedes them, and pass.
    assert llm["applied"] >= llm["requests"] // 2
    assert llm["screen"]["p50_ms"] < 20 and llm["round_trip"]["p50_ms"] > 0
    assert report["total_thread_cpu"]["p50_ms"] > 0
    assert len(server.requests) >= llm["applied"]
