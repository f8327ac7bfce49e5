"""The local ingest API, exercised over real loopback HTTP connections."""

from __future__ import annotations

import http.client
import importlib.util
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.snapshots import counting_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copilot.core.conversation import Conversation
from copilot.core.feedback import FeedbackAction
from copilot.core.pipeline import Snapshot
from copilot.services.engine import HeadlessEngine
from copilot.services.ingest_server import (
    MAX_BODY_BYTES,
    IngestServer,
    RateLimiter,
    ensure_token,
    rotate_token,
)
from copilot.services.secrets import INGEST_TOKEN, SERVICE, SecretStore

TOKEN = "test-token-" + "x" * 32
ALLOWED_ORIGIN = "chrome-extension://copilot-helper"


class FakeAnalyser:
    """Snapshots that only count the turns: the HTTP tests are about HTTP, not the pipeline."""

    def analyse(
        self, conversation: Conversation, *, generation: int = 0, channel: str | None = None
    ) -> Snapshot:
        return counting_snapshot(
            conversation, generation, query=" ".join(t.text for t in conversation.turns)
        )


class ListSink:
    def __init__(self) -> None:
        self.actions: list[FeedbackAction] = []
        self.threads: set[str] = set()

    def record(self, action: FeedbackAction) -> None:
        self.threads.add(threading.current_thread().name)
        self.actions.append(action)


class Api:
    """A running engine + server and a raw HTTP client for it."""

    def __init__(self, engine: HeadlessEngine, server: IngestServer) -> None:
        self.engine = engine
        self.server = server

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | Any = None,
        *,
        headers: dict[str, str] | None = None,
        token: str | None = TOKEN,
        content_type: str | None = "application/json",
        host: str | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """Send exactly the headers given (plus Content-Length for a body); decode JSON."""
        if body is not None and not isinstance(body, bytes | str):
            body = json.dumps(body)
        data = body.encode("utf-8") if isinstance(body, str) else body
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", host if host is not None else self.host)
            if token is not None:
                connection.putheader("Authorization", f"Bearer {token}")
            if data is not None and content_type is not None:
                connection.putheader("Content-Type", content_type)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            if data is not None and "Content-Length" not in (headers or {}):
                connection.putheader("Content-Length", str(len(data)))
            connection.endheaders(data)
            response = connection.getresponse()
            raw = response.read()
            payload = json.loads(raw) if raw else None
            return response.status, dict(response.getheaders()), payload
        finally:
            connection.close()

    def post_turns(self, events: Any, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
        return self.request("POST", "/v1/turns", events, **kwargs)

    def snapshot(self, conversation_id: str) -> tuple[int, dict[str, str], Any]:
        return self.request("GET", f"/v1/conversations/{conversation_id}/snapshot")

    def wait_snapshot(
        self, conversation_id: str, ready: Callable[[Any], bool] = bool, timeout: float = 10.0
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _, body = self.snapshot(conversation_id)
            if status == 200 and ready(body):
                return body
            time.sleep(0.02)
        raise AssertionError(f"no snapshot of {conversation_id} within {timeout} s")


def _our_threads(before: set[int | None]) -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t.is_alive()
        and t.ident not in before
        and (t.name.startswith("copilot-") or "process_request" in t.name)
    ]


def _wait_no_threads(before: set[int | None], timeout: float = 3.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while _our_threads(before) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _our_threads(before)


def start_api(
    analyser: Any = None, *, feedback: Any = None, **server_options: Any
) -> tuple[HeadlessEngine, IngestServer]:
    engine = HeadlessEngine(analyser or FakeAnalyser(), feedback=feedback)
    engine.start()
    server = IngestServer(engine, TOKEN, port=0, **server_options)
    try:
        server.start()
    except BaseException:
        engine.stop()
        raise
    return engine, server


def stop_api(engine: HeadlessEngine, server: IngestServer) -> None:
    server.stop()
    engine.stop()


@pytest.fixture
def make_api() -> Iterator[Callable[..., Api]]:
    """Start engine + server with the given options; both stopped (threads joined) after."""
    started: list[tuple[HeadlessEngine, IngestServer]] = []
    before = {t.ident for t in threading.enumerate()}

    def make(analyser: Any = None, **options: Any) -> Api:
        engine, server = start_api(analyser, allowed_origins=(ALLOWED_ORIGIN,), **options)
        started.append((engine, server))
        return Api(engine, server)

    yield make
    for engine, server in started:
        stop_api(engine, server)
    leaked = _wait_no_threads(before)
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api(feedback=ListSink())


def turn(conversation: str, turn_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "conversation_id": conversation,
        "turn_id": turn_id,
        "role": "customer",
        "text": text,
        **extra,
    }


# --- security -------------------------------------------------------------------------------


def test_the_server_listens_on_loopback_only(api: Api) -> None:
    assert api.server.url == f"http://127.0.0.1:{api.server.port}"
    assert api.server._httpd is not None
    assert api.server._httpd.server_address[0] == "127.0.0.1"


def test_health_needs_no_token_and_reveals_no_data(api: Api) -> None:
    api.post_turns(turn("c-health", "t1", "my name is Ada"))
    status, _, body = api.request("GET", "/v1/health", token=None)
    assert status == 200
    assert body["status"] == "ok"
    assert "c-health" not in json.dumps(body) and "Ada" not in json.dumps(body)


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x", TOKEN[:-1]])
def test_a_missing_or_wrong_token_is_refused_with_401(api: Api, token: str | None) -> None:
    status, headers, body = api.post_turns(turn("c-auth", "t1", "hello"), token=token)
    assert status == 401
    assert body == {"error": "missing or wrong token"}
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert api.engine.conversation("c-auth") is None
    status, _, _ = api.request("GET", "/v1/conversations/c-auth/snapshot", token=token)
    assert status == 401


def test_a_token_with_another_scheme_is_refused(api: Api) -> None:
    status, _, _ = api.post_turns(
        turn("c-auth", "t1", "hello"), token=None, headers={"Authorization": f"Basic {TOKEN}"}
    )
    assert status == 401


@pytest.mark.parametrize(
    "host", ["evil.example:80", "127.0.0.1", "localhost:1", "attacker.test", ""]
)
def test_a_foreign_host_header_is_refused_with_403(api: Api, host: str) -> None:
    status, _, body = api.post_turns(turn("c-host", "t1", "hello"), host=host)
    assert status == 403
    assert body["error"] == "forbidden host"
    assert api.engine.conversation("c-host") is None


def test_localhost_host_header_is_accepted(api: Api) -> None:
    status, _, _ = api.post_turns(
        turn("c-localhost", "t1", "hello"), host=f"localhost:{api.server.port}"
    )
    assert status == 200


def test_a_foreign_origin_is_refused_with_403_even_with_the_token(api: Api) -> None:
    for origin in ("https://evil.example", "null", ALLOWED_ORIGIN + "x"):
        status, headers, body = api.post_turns(
            turn("c-origin", "t1", "hello"), headers={"Origin": origin}
        )
        assert status == 403, origin
        assert body["error"] == "forbidden origin"
        assert "Access-Control-Allow-Origin" not in headers
    assert api.engine.conversation("c-origin") is None


def test_an_allowed_origin_gets_cors_headers_and_a_preflight(api: Api) -> None:
    status, headers, _ = api.post_turns(
        turn("c-cors", "t1", "hello"), headers={"Origin": ALLOWED_ORIGIN}
    )
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    status, headers, _ = api.request(
        "OPTIONS", "/v1/turns", token=None, headers={"Origin": ALLOWED_ORIGIN}
    )
    assert status == 204
    assert "Authorization" in headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_content_is_refused_with_415(
    api: Api, content_type: str | None
) -> None:
    status, _, body = api.post_turns(turn("c-type", "t1", "hello"), content_type=content_type)
    assert status == 415
    assert "application/json" in body["error"]


def test_json_with_a_charset_is_accepted(api: Api) -> None:
    status, _, _ = api.post_turns(
        turn("c-charset", "t1", "hello"), content_type="application/json; charset=utf-8"
    )
    assert status == 200


def test_a_body_over_64_kb_is_refused_with_413_without_being_read(api: Api) -> None:
    # Announce a huge body but send none: the server must answer at once, not wait for it.
    started = time.monotonic()
    status, _, body = api.request(
        "POST", "/v1/turns", b"", headers={"Content-Length": str(50 * 1024 * 1024)}
    )
    assert status == 413
    assert "larger than" in body["error"]
    assert time.monotonic() - started < 2
    big = json.dumps(turn("c-big", "t1", "a" * MAX_BODY_BYTES))
    status, _, _ = api.post_turns(big)
    assert status == 413
    assert api.engine.conversation("c-big") is None


def test_a_missing_content_length_is_refused_with_411(api: Api) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", api.server.port, timeout=5)
    try:
        connection.putrequest("POST", "/v1/turns", skip_host=True)
        connection.putheader("Host", api.host)
        connection.putheader("Authorization", f"Bearer {TOKEN}")
        connection.putheader("Content-Type", "application/json")
        connection.endheaders()
        assert connection.getresponse().status == 411
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"turn_id": "t1", "role": "customer", "text": "hi"}, "conversation_id"),
        (turn("c-bad", "t1", "hi", role="robot"), "role"),
        (turn("c-bad", "t1", 42), "text"),
        (turn("c-bad", "t1", "hi", is_final="yes"), "is_final"),
        (turn("c-bad", "t1", "hi", ts="yesterday"), "ts"),
        (turn("c-bad", "t1", "hi", channel="fax"), "channel"),
        (json.dumps("just a string"), "event"),
        ([], "events"),
    ],
)
def test_an_invalid_event_is_refused_with_400_naming_the_field(
    api: Api, event: Any, field: str
) -> None:
    status, _, body = api.post_turns(event)
    assert status == 400
    assert body["field"] == field
    assert body["reason"]
    assert body["error"]
    assert api.engine.conversation("c-bad") is None


def test_a_batch_with_one_bad_event_is_refused_whole(api: Api) -> None:
    events = [turn("c-batch", "t1", "hello"), turn("c-batch", "t2", "hi", role="robot")]
    status, _, body = api.post_turns(events)
    assert status == 400
    assert body["index"] == 1 and body["field"] == "role"
    assert api.engine.conversation("c-batch") is None


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", b"[" * 40000, b"NaN", b""])
def test_a_body_that_is_not_json_is_refused_with_400(api: Api, raw: bytes) -> None:
    status, _, body = api.post_turns(raw)
    assert status == 400
    assert body["field"] == "body" and body["reason"]


def test_the_rate_limit_answers_429_with_retry_after(make_api: Callable[..., Api]) -> None:
    api = make_api(rate=0.5, burst=2)
    statuses = [api.request("GET", "/v1/health", token=None)[0] for _ in range(2)]
    assert statuses == [200, 200]
    status, headers, body = api.request("GET", "/v1/health", token=None)
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    assert body["error"] == "too many requests"
    # Guessing tokens is limited too: a wrong token costs a request of the budget.
    assert api.post_turns(turn("c-rate", "t1", "hi"), token="guess")[0] == 429


def test_the_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    assert limiter.take("a") == 0 and limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0  # each client has its own budget
    now[0] += 0.5
    assert limiter.take("a") == 0


def test_unknown_paths_and_methods_are_4xx(api: Api) -> None:
    assert api.request("GET", "/v1/nothing")[0] == 404
    assert api.request("GET", "/v1/turns")[0] == 405
    assert api.request("DELETE", "/v1/turns")[0] == 405
    assert api.request("BREW", "/v1/turns")[0] == 405
    assert api.request("POST", "/v1/conversations/c/snapshot", {})[0] == 405
    assert api.request("GET", "/v1/conversations/%ff%fe/snapshot")[0] == 404


# --- turns and snapshots ------------------------------------------------------------------------


def test_a_snapshot_is_available_after_a_post(api: Api) -> None:
    status, _, body = api.post_turns([turn("c-snap", "t1", "hello"), turn("c-snap", "t2", "bye")])
    assert status == 200
    assert [r["status"] for r in body["results"]] == ["applied", "applied"]
    snapshot = api.wait_snapshot("c-snap", lambda s: s["turn_count"] == 2)
    assert snapshot["conversation_id"] == "c-snap"
    assert snapshot["last_turn_id"] == "t2"


def test_an_unknown_conversation_is_404(api: Api) -> None:
    status, _, body = api.snapshot("never-seen")
    assert status == 404
    assert body["error"] == "unknown conversation"


def test_repeated_events_are_idempotent(api: Api) -> None:
    event = turn("c-repeat", "t1", "my router is down")
    assert api.post_turns(event)[2]["results"][0]["status"] == "applied"
    api.wait_snapshot("c-repeat")
    assert api.engine.wait_idle(5)
    analyses = api.engine.analyses
    for _ in range(3):
        assert api.post_turns(event)[2]["results"][0]["status"] == "duplicate"
    assert api.engine.wait_idle(5)
    assert api.engine.analyses == analyses  # a repeat costs no analysis
    conversation = api.engine.conversation("c-repeat")
    assert conversation is not None and len(conversation.turns) == 1


def test_partial_turns_are_replaced_until_the_final_arrives(api: Api) -> None:
    for text in ("my", "my router", "my router keeps"):
        status, _, body = api.post_turns(turn("c-partial", "t1", text, is_final=False))
        assert body["results"][0]["status"] == "partial"
    conversation = api.engine.conversation("c-partial")
    assert conversation is not None
    assert [p.text for p in conversation.pending] == ["my router keeps"]
    assert conversation.turns == ()
    status, _, body = api.snapshot("c-partial")
    assert status == 404 and body.get("pending") is True
    final = turn("c-partial", "t1", "my router keeps dropping")
    assert api.post_turns(final)[2]["results"][0]["status"] == "applied"
    snapshot = api.wait_snapshot("c-partial")
    assert snapshot["turn_count"] == 1
    assert snapshot["query"] == "my router keeps dropping"
    # A late partial of a final turn changes nothing.
    late = turn("c-partial", "t1", "my", is_final=False)
    assert api.post_turns(late)[2]["results"][0]["status"] == "duplicate"
    conversation = api.engine.conversation("c-partial")
    assert conversation is not None and conversation.pending == ()


def test_card_numbers_are_redacted_before_they_are_kept(api: Api) -> None:
    api.post_turns(turn("c-card", "t1", "my card is 4111 1111 1111 1111"))
    snapshot = api.wait_snapshot("c-card")
    assert "4111 1111" not in json.dumps(snapshot)
    assert "1111" in snapshot["query"]  # the last four digits stay visible in the placeholder


# --- feedback ---------------------------------------------------------------------------------


def test_feedback_is_recorded_on_the_engine_thread_and_redacted(
    make_api: Callable[..., Api],
) -> None:
    sink = ListSink()
    api = make_api(feedback=sink)
    event = {
        "kind": "edit",
        "conversation_id": "c-fb",
        "suggestion_id": "s1",
        "item_id": "tpl-refund",
        "shown_text": "I can refund that.",
        "sent_text": "I can refund that to card 4111 1111 1111 1111.",
        "rank": 1,
        "queue": "billing",
    }
    status, _, body = api.request("POST", "/v1/feedback", event)
    assert status == 200 and body["recorded"] is True
    [action] = sink.actions
    assert action.kind.value == "edit" and action.action_id == body["action_id"]
    assert action.sent_text is not None and "4111 1111" not in action.sent_text
    assert action.edit_distance is not None and action.edit_distance > 0
    assert action.queue == "billing"
    assert sink.threads == {"copilot-engine"}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"kind": "like", "conversation_id": "c", "suggestion_id": "s", "item_id": "i"}, "kind"),
        ({"kind": "accept", "conversation_id": "c", "suggestion_id": "s", "item_id": "i"},
         "sent_text"),
        ({"kind": "discard", "conversation_id": "c", "suggestion_id": "s"}, "item_id"),
        ({"kind": "discard", "conversation_id": "c", "suggestion_id": "s", "item_id": "i",
          "reason": "boring"}, "reason"),
        ({"kind": "discard", "conversation_id": "c", "suggestion_id": "s", "item_id": "i",
          "rank": 0}, "rank"),
    ],
)  # fmt: skip
def test_invalid_feedback_is_refused_with_400(api: Api, event: Any, field: str) -> None:
    status, _, body = api.request("POST", "/v1/feedback", event)
    assert status == 400
    assert body["field"] == field


def test_feedback_without_a_sink_is_refused_with_409(make_api: Callable[..., Api]) -> None:
    api = make_api()
    event = {"kind": "discard", "conversation_id": "c", "suggestion_id": "s", "item_id": "i"}
    assert api.request("POST", "/v1/feedback", event)[0] == 409


# --- the token ----------------------------------------------------------------------------------


def test_the_token_is_created_once_and_kept_in_the_keyring(memory_keyring: Any) -> None:
    store = SecretStore()
    token, saved = ensure_token(store)
    assert saved is True
    assert len(token) >= 43  # 32 random bytes, base64url
    assert memory_keyring.passwords[(SERVICE, INGEST_TOKEN)] == token
    assert ensure_token(SecretStore()) == (token, True)
    rotated, _ = rotate_token(store)
    assert rotated != token
    assert ensure_token(SecretStore())[0] == rotated


def test_without_a_keyring_the_token_lives_in_memory_only() -> None:
    store = SecretStore()
    token, saved = ensure_token(store)
    assert saved is False
    assert ensure_token(store) == (token, False)


def test_a_short_token_is_refused() -> None:
    engine = HeadlessEngine(FakeAnalyser())
    with pytest.raises(ValueError, match="too short"):
        IngestServer(engine, "abc")


# --- the real pipeline --------------------------------------------------------------------------


def test_the_real_assistant_answers_through_the_api(
    make_api: Callable[..., Api], hashing_backend: Any
) -> None:
    api = make_api(hashing_backend.assistant)
    events = [
        turn("api-real-1", "t1", "Hi, my broadband has been dropping every evening this week"),
        {**turn("api-real-1", "a1", "Sorry to hear that, let me check."), "role": "agent"},
        turn("api-real-1", "t2", "It's really frustrating, I work from home"),
    ]
    assert api.post_turns(events)[0] == 200
    snapshot = api.wait_snapshot("api-real-1", lambda s: s["turn_count"] == 3)
    assert snapshot["knowledge"], "the pack's articles are retrieved"
    assert snapshot["summary"] is not None
    assert not snapshot["errors"]


# --- fuzzing ------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["conversation_id", "turn_id", "role", "text", "ts", "is_final", "kind",
                         "suggestion_id", "item_id", "sent_text", "reason", "rank", "channel"])
        | st.text(max_size=10),
        children,
        max_size=8,
    ),
    max_leaves=20,
)  # fmt: skip
_header_value = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
    str.strip
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "OPTIONS", "DELETE"]),
    path=st.sampled_from(
        ["/v1/turns", "/v1/feedback", "/v1/health", "/v1/conversations/c-fuzz/snapshot",
         "/v1/conversations//snapshot", "/", "/v1/conversations/%zz/snapshot", "/v1/stream",
         "/v1/stream?conversation=", "/v1/stream?conversation=%ff"]
    ),
    body=st.one_of(
        st.none(),
        _json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
    ),
    token=st.sampled_from([TOKEN, None, "nope"]),
    content_type=st.sampled_from(["application/json", "text/plain", None, "application/json;x"]),
    extra=st.dictionaries(
        st.sampled_from(["Origin", "X-Anything", "Transfer-Encoding", "Expect"]),
        _header_value,
        max_size=2,
    ),
    # Lengths the server refuses or can read at once (a longer one than sent would only make
    # it wait for the socket timeout).
    length=st.sampled_from([None, "abc", "-1", "+5", "0", "1", "99999999", " 3 "]),
)  # fmt: skip
def test_random_requests_never_get_a_5xx(
    fuzz_api: Api,
    method: str,
    path: str,
    body: bytes | None,
    token: str | None,
    content_type: str | None,
    extra: dict[str, str],
    length: str | None,
) -> None:
    if length is not None:
        body = body or b""
        if not length.strip().isdigit() or int(length) <= len(body) or int(length) > 65536:
            extra = {**extra, "Content-Length": length}
    try:
        status, _, _ = fuzz_api.request(
            method, path, body, token=token, content_type=content_type, headers=extra
        )
    except (http.client.HTTPException, ConnectionError, TimeoutError):
        # A wrong Content-Length can make the server close the connection first; that is fine.
        # What must never happen is an error status or the server falling over (checked below).
        status = 400
    assert status < 500
    assert fuzz_api.request("GET", "/v1/health", token=None)[0] == 200


@pytest.fixture(scope="module")
def fuzz_api() -> Iterator[Api]:
    engine, server = start_api(allowed_origins=(ALLOWED_ORIGIN,), rate=1e6, burst=10**6)
    yield Api(engine, server)
    stop_api(engine, server)


# --- the documentation ----------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_the_openapi_document_describes_every_endpoint() -> None:
    spec = yaml.safe_load((DOCS / "api" / "openapi.yaml").read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {
        "/v1/health",
        "/v1/turns",
        "/v1/conversations/{conversation_id}/snapshot",
        "/v1/feedback",
        "/v1/stream",
    }
    assert spec["paths"]["/v1/health"]["get"]["security"] == []
    stream = spec["paths"]["/v1/stream"]["get"]
    assert {"101", "401", "403", "429"} <= set(stream["responses"])
    assert "bearer.<token>" in stream["description"]


def test_the_replay_connector_example_drives_the_api(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "replay_to_api", DOCS / "connectors" / "replay_to_api.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    transcript = tmp_path / "chat.jsonl"
    lines = [
        json.dumps(turn("c-replay", "t1", "hello")),
        "{not json",
        json.dumps(turn("c-replay", "t2", "hi", role="robot")),
        json.dumps(turn("c-replay", "t3", "my card is 4111 1111 1111 1111")),
    ]
    transcript.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert module.main([str(transcript), "--url", api.server.url, "--token", TOKEN]) == 0
    captured = capsys.readouterr()
    assert "chat.jsonl:2: skipped, not JSON" in captured.err
    assert "chat.jsonl:3: skipped, 400 role:" in captured.err
    snapshot = json.loads(captured.out.strip().splitlines()[-1])
    assert snapshot["conversation_id"] == "c-replay" and snapshot["turn_count"] == 2
    assert "4111 1111" not in captured.out


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"\x00\xff\r\n\r\n",
        b"GET /v1/health HTTP/9.9\r\nHost: {host}\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"GET /v1/health HTTP/1.1\r\nHost: {host}\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
        b"GET /v1/health HTTP/1.1\r\nHost: {host}\r\n"
        + b"".join(b"X%d: 1\r\n" % i for i in range(200))
        + b"\r\n",
    ],
    ids=["garbage", "binary", "http-9.9", "long-line", "long-header", "many-headers"],
)
def test_malformed_http_gets_a_4xx_json_reply(api: Api, request_bytes: bytes) -> None:
    with socket.create_connection(("127.0.0.1", api.server.port), timeout=5) as connection:
        connection.sendall(request_bytes.replace(b"{host}", api.host.encode()))
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.0 4"), status_line
    assert "error" in json.loads(rest.partition(b"\r\n\r\n")[2])
