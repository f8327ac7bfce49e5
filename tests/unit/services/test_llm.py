"""The chat-completions client against a real HTTP server on loopback (tests/fixtures)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures.fake_chat_server import FakeChatServer, polite_answer

from copilot.core.generative import ANSWER_SCHEMA
from copilot.services.llm import ChatClient, LlmError, LlmErrorKind, client_from_settings
from copilot.services.secrets import LLM_API_KEY, SecretStore
from copilot.services.settings import LlmSettings

MESSAGES = [
    {"role": "system", "content": "You are a test."},
    {"role": "user", "content": '{"id": "S1", "article": "KB-BIL-001", "text": "..."}'},
]


@pytest.fixture
def server() -> Iterator[FakeChatServer]:
    with FakeChatServer() as running:
        running.behave(content=polite_answer)
        yield running


def client(server: FakeChatServer, **kwargs: Any) -> ChatClient:
    return ChatClient(server.url, "fake-model", **{"timeout_s": 5.0, **kwargs})


def test_a_streamed_answer_is_read_from_server_sent_events(server: FakeChatServer) -> None:
    with client(server) as chat:
        reply = chat.complete(MESSAGES, schema=ANSWER_SCHEMA)
    assert reply.streamed and reply.model == "fake-model"
    assert json.loads(reply.content)["drafts"][0]["citations"] == ["S1"]
    sent = server.requests[0]
    assert sent["stream"] is True and sent["model"] == "fake-model"
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["summary", "drafts"]
    assert sent["messages"] == MESSAGES


def test_an_endpoint_that_ignores_stream_is_read_as_one_body(server: FakeChatServer) -> None:
    server.behave(content=polite_answer, stream_supported=False)
    with client(server) as chat:
        reply = chat.complete(MESSAGES, schema=ANSWER_SCHEMA)
    assert not reply.streamed and "drafts" in json.loads(reply.content)


def test_rejected_options_are_dropped_and_remembered(server: FakeChatServer) -> None:
    server.behave(
        content=polite_answer, reject_stream=True, reject_formats=frozenset({"json_schema"})
    )
    with client(server) as chat:
        first = chat.complete(MESSAGES, schema=ANSWER_SCHEMA)
        assert not chat.streaming and chat.response_format == "json_object"
        sent_before = len(server.requests)
        second = chat.complete(MESSAGES, schema=ANSWER_SCHEMA)
    assert first.content == second.content and second.response_format == "json_object"
    assert len(server.requests) == sent_before + 1  # learned: one request, no probing again
    last = server.requests[-1]
    assert last["stream"] is False and last["response_format"] == {"type": "json_object"}


def test_unsupported_parameters_are_renamed_or_left_out(server: FakeChatServer) -> None:
    server.behave(content=polite_answer, reject_params=frozenset({"max_tokens", "temperature"}))
    with client(server) as chat:
        reply = chat.complete(MESSAGES, schema=ANSWER_SCHEMA)
    assert json.loads(reply.content)["drafts"]
    last = server.requests[-1]
    assert last["max_completion_tokens"] == 1200 and "temperature" not in last
    assert "max_tokens" not in last and last["response_format"]["type"] == "json_schema"


def test_an_endpoint_without_json_modes_gets_none(server: FakeChatServer) -> None:
    server.behave(content="{}", reject_formats=frozenset({"json_schema", "json_object"}))
    with client(server) as chat:
        reply = chat.complete(MESSAGES, schema=ANSWER_SCHEMA)
    assert reply.response_format is None and "response_format" not in server.requests[-1]


@pytest.mark.parametrize("stream", [True, False])
def test_a_slow_answer_past_the_timeout_is_a_timeout(server: FakeChatServer, stream: bool) -> None:
    server.behave(content=polite_answer, delay_s=1.5)
    started = time.monotonic()
    with client(server, timeout_s=0.3, stream=stream) as chat, pytest.raises(LlmError) as err:
        chat.complete(MESSAGES, schema=ANSWER_SCHEMA)
    assert err.value.kind is LlmErrorKind.TIMEOUT and "0.3 s" in err.value.message
    assert time.monotonic() - started < 1.2


def test_a_stream_dripping_past_the_deadline_is_cut_off(server: FakeChatServer) -> None:
    server.behave(content=polite_answer, drip_s=0.15, chunks=20)
    started = time.monotonic()
    with client(server, timeout_s=0.5) as chat, pytest.raises(LlmError) as err:
        chat.complete(MESSAGES, schema=ANSWER_SCHEMA)
    assert err.value.kind is LlmErrorKind.TIMEOUT
    assert time.monotonic() - started < 1.5  # not the 3 s the whole stream would take


def test_a_cancelled_request_stops_between_chunks(server: FakeChatServer) -> None:
    server.behave(content=polite_answer, drip_s=0.1, chunks=30)
    cancel = threading.Event()
    threading.Timer(0.25, cancel.set).start()
    started = time.monotonic()
    with client(server) as chat, pytest.raises(LlmError) as err:
        chat.complete(MESSAGES, schema=ANSWER_SCHEMA, cancelled=cancel.is_set)
    assert err.value.kind is LlmErrorKind.CANCELLED
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (401, LlmErrorKind.UNAUTHORIZED, "API key"),
        (403, LlmErrorKind.UNAUTHORIZED, "API key"),
        (429, LlmErrorKind.RATE_LIMITED, "rate-limiting"),
        (500, LlmErrorKind.HTTP, "HTTP 500"),
        (503, LlmErrorKind.HTTP, "HTTP 503"),
        (404, LlmErrorKind.HTTP, "model name"),
    ],
)
def test_error_statuses_are_typed_failures(
    server: FakeChatServer, status: int, kind: LlmErrorKind, words: str
) -> None:
    server.behave(status=status)
    with client(server) as chat, pytest.raises(LlmError) as err:
        chat.complete(MESSAGES, schema=ANSWER_SCHEMA)
    assert err.value.kind is kind and err.value.status == status
    assert words in err.value.message


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"choices": []}',
        b'{"choices": [{"message": {"content": ""}}]}',
        b"[1, 2, 3]",
    ],
)
def test_a_malformed_body_is_a_malformed_failure(server: FakeChatServer, body: bytes) -> None:
    server.behave(raw_body=body)
    with client(server) as chat, pytest.raises(LlmError) as err:
        chat.complete(MESSAGES, schema=ANSWER_SCHEMA)
    assert err.value.kind is LlmErrorKind.MALFORMED


@pytest.mark.parametrize("stream", [True, False])
def test_a_refusal_is_a_refused_failure(server: FakeChatServer, stream: bool) -> None:
    server.behave(refusal="I can't help with that request.")
    with client(server, stream=stream) as chat, pytest.raises(LlmError) as err:
        chat.complete(MESSAGES, schema=ANSWER_SCHEMA)
    assert err.value.kind is LlmErrorKind.REFUSED and "can't help" in err.value.message


def test_a_server_that_is_not_running_is_a_connection_failure() -> None:
    with FakeChatServer() as gone:
        url = gone.url
    with ChatClient(url, "m", timeout_s=2.0) as chat, pytest.raises(LlmError) as err:
        chat.check()
    assert err.value.kind is LlmErrorKind.CONNECT and "is the server running" in err.value.message


@pytest.mark.parametrize(
    ("endpoint", "model"), [("", "m"), ("ftp://host/v1", "m"), ("http://x", "")]
)
def test_missing_settings_fail_before_any_request(endpoint: str, model: str) -> None:
    with ChatClient(endpoint, model) as chat, pytest.raises(LlmError) as err:
        chat.complete(MESSAGES)
    assert err.value.kind is LlmErrorKind.NOT_CONFIGURED


def test_the_key_comes_from_the_keyring_and_never_appears_in_a_message(
    server: FakeChatServer, memory_keyring: Any
) -> None:
    key = "sk-test-6f1d2c9a"
    server.behave(content=polite_answer, api_key=key)
    settings = LlmSettings(enabled=True, endpoint=server.url, model="fake-model", timeout_s=5)
    secrets = SecretStore()
    with client_from_settings(settings, secrets) as chat, pytest.raises(LlmError) as err:
        chat.complete(MESSAGES)
    assert err.value.kind is LlmErrorKind.UNAUTHORIZED  # no key yet
    secrets.set(LLM_API_KEY, "sk-wrong-key")
    with client_from_settings(settings, secrets) as chat, pytest.raises(LlmError) as err:
        chat.complete(MESSAGES)
    assert "sk-wrong-key" not in err.value.message
    secrets.set(LLM_API_KEY, key)
    with client_from_settings(settings, secrets) as chat:
        reply = chat.check()
    assert reply.model == "fake-model"
    assert server.headers[-1]["Authorization"] == f"Bearer {key}"


def test_the_check_is_one_small_unstreamed_request(server: FakeChatServer) -> None:
    with client(server) as chat:
        reply = chat.check()
        assert chat.streaming  # the check does not change what later requests ask for
    sent = server.requests[-1]
    assert sent["stream"] is False and sent["max_tokens"] == 5 and "response_format" not in sent
    assert reply.elapsed_ms > 0


def test_models_are_listed(server: FakeChatServer) -> None:
    with client(server) as chat:
        assert chat.list_models() == ["fake-model"]
