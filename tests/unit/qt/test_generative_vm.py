"""The generative view-model: asks only when on, after the offline snapshot, and newest wins."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fixtures.fake_chat_server import FakeChatServer, polite_answer
from pytestqt.qtbot import QtBot

from copilot.qt.conversations_vm import ConversationsViewModel
from copilot.qt.generative_vm import GENERATED, UNAVAILABLE, GenerativeViewModel
from copilot.qt.tasks import LLM, TaskRunner
from copilot.services.llm import ChatClient
from copilot.services.settings import LlmSettings
from copilot.services.transcripts import read_events

pytestmark = pytest.mark.gui

DEMO = next((Path(__file__).resolve().parents[3] / "knowledge" / "demos").glob("02-*.jsonl"))
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeChatServer]:
    with FakeChatServer() as running:
        yield running


@pytest.fixture
def runner(qapp: Any) -> Iterator[TaskRunner]:
    runner = TaskRunner()
    yield runner
    runner.shutdown(wait=True)


def settings(server: FakeChatServer, **changes: Any) -> LlmSettings:
    return LlmSettings(
        **{
            "enabled": True,
            "endpoint": server.url,
            "model": "fake-model",
            "timeout_s": 5,
            **changes,
        }
    )


def make(runner: TaskRunner, backend: Any, llm: LlmSettings) -> tuple[Any, GenerativeViewModel]:
    conversations = ConversationsViewModel(runner, debounce_ms=5)
    conversations.set_backend(backend)
    generative = GenerativeViewModel(
        conversations,
        runner,
        settings=llm,
        client_factory=lambda s: ChatClient(s.endpoint, s.model, timeout_s=s.timeout_s),
    )
    return conversations, generative


def replay(conversations: ConversationsViewModel, turns: int) -> str:
    conversation_id = f"gen-{next(_ids)}"
    for event in list(read_events(DEMO))[:turns]:
        conversations.apply_event(replace(event, conversation_id=conversation_id))
    return conversation_id


def test_the_llm_has_a_lane_of_its_own(runner: TaskRunner) -> None:
    assert LLM in runner.lanes


def test_nothing_is_sent_while_the_backend_is_off(
    qtbot: QtBot, runner: TaskRunner, hashing_backend: Any, server: FakeChatServer
) -> None:
    server.behave(content=polite_answer)
    conversations, generative = make(runner, hashing_backend, settings(server, enabled=False))
    sent = len(server.requests)
    cid = replay(conversations, 3)
    qtbot.waitUntil(lambda: conversations.snapshot(cid) is not None, timeout=5000)
    qtbot.wait(200)
    assert len(server.requests) == sent and generative.status(cid) is None
    # Switched on in the settings: the next offline snapshot is the first to be sent.
    generative.set_settings(settings(server))
    conversations.refresh(cid)
    qtbot.waitUntil(
        lambda: getattr(generative.status(cid), "status", "") == GENERATED, timeout=5000
    )
    assert len(server.requests) == sent + 1
    generative.shutdown()


def test_the_same_turns_analysed_again_reuse_the_answer(
    qtbot: QtBot, runner: TaskRunner, hashing_backend: Any, server: FakeChatServer
) -> None:
    server.behave(content=polite_answer)
    conversations, generative = make(runner, hashing_backend, settings(server))
    cid = replay(conversations, 3)
    qtbot.waitUntil(
        lambda: getattr(generative.status(cid), "status", "") == GENERATED, timeout=5000
    )
    sent = len(server.requests)
    conversations.refresh(cid)  # e.g. the content pack was reloaded: same turns, same passages
    qtbot.waitUntil(
        lambda: (
            conversations.snapshot(cid).generation > 1
            and getattr(generative.status(cid), "status", "") == GENERATED
        ),
        timeout=5000,
    )
    assert len(server.requests) == sent
    assert any(s.generated for s in conversations.snapshot(cid).suggestions)
    generative.shutdown()


def test_a_failure_is_a_status_not_an_error(
    qtbot: QtBot, runner: TaskRunner, hashing_backend: Any, server: FakeChatServer
) -> None:
    server.behave(status=429)
    conversations, generative = make(runner, hashing_backend, settings(server))
    errors: list[str] = []
    conversations.sig_error.connect(errors.append)
    runner.sig_task_failed.connect(errors.append)
    cid = replay(conversations, 3)
    qtbot.waitUntil(
        lambda: getattr(generative.status(cid), "status", "") == UNAVAILABLE, timeout=5000
    )
    status = generative.status(cid)
    assert status is not None and "429" in status.detail
    assert errors == []  # the agent sees the small label only, no error message
    generative.shutdown()


def test_an_answer_arriving_after_the_conversation_ended_is_dropped_quietly(
    qtbot: QtBot, runner: TaskRunner, hashing_backend: Any, server: FakeChatServer
) -> None:
    server.behave(content=polite_answer, delay_s=0.3)
    conversations, generative = make(runner, hashing_backend, settings(server))
    errors: list[str] = []
    runner.sig_task_failed.connect(errors.append)
    conversations.sig_error.connect(errors.append)
    screened: list[Any] = []
    generative.sig_answer_screened.connect(lambda cid, answer: screened.append(cid))
    sent = len(server.requests)
    cid = replay(conversations, 3)
    qtbot.waitUntil(lambda: len(server.requests) == sent + 1, timeout=5000)  # in flight
    conversations.end_conversation(cid)
    qtbot.wait(700)  # the answer comes back meanwhile
    assert cid not in conversations.conversation_ids()
    assert screened == [] and errors == []
    generative.shutdown()
