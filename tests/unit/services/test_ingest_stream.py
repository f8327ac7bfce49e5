"""The ingest API's WebSocket stream, exercised with a real WebSocket client over loopback."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fixtures.snapshots import counting_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from copilot.core.conversation import Conversation
from copilot.core.pipeline import Snapshot
from copilot.services.engine import HeadlessEngine
from copilot.services.ingest_server import (
    MAX_BODY_BYTES,
    STREAM_SUBPROTOCOL,
    IngestServer,
)

TOKEN = "stream-token-" + "y" * 32
ALLOWED_ORIGIN = "chrome-extension://copilot-helper"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class CountingAnalyser:
    """Snapshots that only count the turns: these tests are about the stream, not the pipeline."""

    def analyse(
        self, conversation: Conversation, *, generation: int = 0, channel: str | None = None
    ) -> Snapshot:
        return counting_snapshot(
            conversation, generation, query=" ".join(t.text for t in conversation.turns)
        )


class Api:
    def __init__(self, engine: HeadlessEngine, server: IngestServer) -> None:
        self.engine = engine
        self.server = server

    def url(self, query: str = "") -> str:
        return self.server.stream_url + query

    def connect(self, query: str = "", **kwargs: Any) -> ClientConnection:
        kwargs.setdefault("additional_headers", AUTH)
        kwargs.setdefault("open_timeout", 5)
        return connect(self.url(query), **kwargs)

    def post(self, events: Any) -> tuple[int, Any]:
        import http.client

        data = json.dumps(events).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            connection.request(
                "POST",
                "/v1/turns",
                data,
                {**AUTH, "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()


def _stream_threads(before: set[int | None]) -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t.is_alive() and t.ident not in before and "process_request" in t.name
    ]


@pytest.fixture
def make_api() -> Iterator[Callable[..., Api]]:
    """Engine + server on a free port; both stopped after, with no thread left behind."""
    started: list[tuple[HeadlessEngine, IngestServer]] = []
    before = {t.ident for t in threading.enumerate()}

    def make(**options: Any) -> Api:
        engine = HeadlessEngine(CountingAnalyser())
        engine.start()
        options.setdefault("allowed_origins", (ALLOWED_ORIGIN,))
        server = IngestServer(engine, TOKEN, port=0, **options)
        server.start()
        started.append((engine, server))
        return Api(engine, server)

    yield make
    for engine, server in started:
        server.stop()
        engine.stop()
    deadline = time.monotonic() + 3
    while _stream_threads(before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _stream_threads(before)


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


def turn(conversation: str, turn_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "conversation_id": conversation,
        "turn_id": turn_id,
        "role": "customer",
        "text": text,
        **extra,
    }


def recv_json(ws: ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(ws.recv(timeout=timeout))


def _is_reply(message: Any) -> bool:
    return "results" in message or "error" in message


def recv_snapshot(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next snapshot, skipping replies to messages sent."""
    deadline = time.monotonic() + timeout
    while True:
        message = recv_json(ws, max(0.01, deadline - time.monotonic()))
        if not _is_reply(message):
            return dict(message)


def recv_reply(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The answer to the last message sent, skipping snapshots pushed meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        message = recv_json(ws, max(0.01, deadline - time.monotonic()))
        if _is_reply(message):
            return dict(message)


# --- the handshake ----------------------------------------------------------------------------


def _status_of(fn: Callable[[], Any]) -> int:
    with pytest.raises(InvalidStatus) as refused:
        fn().close()
    return refused.value.response.status_code


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}]
)
def test_a_handshake_without_the_right_token_is_refused_with_401(
    api: Api, headers: dict[str, str]
) -> None:
    assert _status_of(lambda: api.connect(additional_headers=headers)) == 401
    assert api.server.stream_clients == 0


def test_a_wrong_bearer_subprotocol_is_refused_with_401(api: Api) -> None:
    status = _status_of(
        lambda: api.connect(
            additional_headers={}, subprotocols=[STREAM_SUBPROTOCOL, "bearer.wrong"]
        )
    )
    assert status == 401


def test_a_browser_authenticates_with_the_bearer_subprotocol(api: Api) -> None:
    # Browsers cannot set headers on a WebSocket: the token rides in Sec-WebSocket-Protocol,
    # and the server selects copilot.v1 so the token is not echoed back.
    with api.connect(
        additional_headers={},
        origin=ALLOWED_ORIGIN,
        subprotocols=[STREAM_SUBPROTOCOL, f"bearer.{TOKEN}"],
    ) as ws:
        assert ws.subprotocol == STREAM_SUBPROTOCOL
        ws.send(json.dumps(turn("c-browser", "t1", "hello")))
        assert recv_reply(ws)["results"][0]["status"] == "applied"


@pytest.mark.parametrize("origin", ["https://evil.example", "null", ALLOWED_ORIGIN + "x"])
def test_a_foreign_origin_is_refused_with_403_even_with_the_token(api: Api, origin: str) -> None:
    status = _status_of(lambda: api.connect(origin=origin))  # type: ignore[arg-type]
    assert status == 403


@pytest.mark.parametrize("host", ["evil.example:80", "attacker.test", f"127.0.0.1:{1}"])
def test_a_foreign_host_is_refused_with_403(api: Api, host: str) -> None:
    # A DNS-rebinding page reaches 127.0.0.1 under its own name: the Host header gives it away.
    def attempt() -> ClientConnection:
        sock = socket.create_connection(("127.0.0.1", api.server.port), timeout=5)
        return connect(f"ws://{host}/v1/stream", sock=sock, additional_headers=AUTH)

    assert _status_of(attempt) == 403


def test_the_handshake_is_rate_limited_with_429(make_api: Callable[..., Api]) -> None:
    api = make_api(rate=0.01, burst=1)
    with api.connect():
        pass
    with pytest.raises(InvalidStatus) as refused:
        api.connect(additional_headers={"Authorization": "Bearer guess"})
    assert refused.value.response.status_code == 429
    assert int(refused.value.response.headers["Retry-After"]) >= 1
    assert _status_of(api.connect) == 429  # the right token does not jump the queue


def test_a_plain_get_of_the_stream_asks_for_an_upgrade(api: Api) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", api.server.port, timeout=5)
    try:
        connection.request("GET", "/v1/stream", headers=AUTH)
        response = connection.getresponse()
        assert response.status == 426
        assert response.getheader("Upgrade") == "websocket"
        assert "WebSocket" in json.loads(response.read())["error"]
    finally:
        connection.close()


def test_an_invalid_conversation_filter_is_refused_with_400(api: Api) -> None:
    assert _status_of(lambda: api.connect("?conversation=")) == 400


# --- snapshots pushed -------------------------------------------------------------------------


def test_snapshots_are_pushed_after_turns_are_posted(api: Api) -> None:
    with api.connect() as ws:
        status, _ = api.post([turn("c-push", "t1", "my router keeps dropping")])
        assert status == 200
        snapshot = recv_snapshot(ws)
        assert snapshot["conversation_id"] == "c-push"
        assert snapshot["turn_count"] == 1
        api.post(turn("c-push", "t2", "every evening"))
        assert recv_snapshot(ws)["last_turn_id"] == "t2"


def test_the_stream_pushes_the_same_shape_as_get_snapshot(api: Api) -> None:
    import http.client

    with api.connect() as ws:
        api.post(turn("c-shape", "t1", "hello"))
        pushed = recv_snapshot(ws)
    connection = http.client.HTTPConnection("127.0.0.1", api.server.port, timeout=5)
    try:
        connection.request("GET", "/v1/conversations/c-shape/snapshot", headers=AUTH)
        fetched = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    assert pushed == fetched


def test_a_conversation_filter_pushes_only_those_and_their_latest_at_once(api: Api) -> None:
    api.post(turn("c-mine", "t1", "first"))
    assert api.engine.wait_idle(5)
    with api.connect("?conversation=c-mine&conversation=c-also") as ws:
        assert recv_snapshot(ws)["conversation_id"] == "c-mine"  # the latest, on connect
        api.post([turn("c-other", "t1", "not for me"), turn("c-also", "t1", "for me")])
        assert recv_snapshot(ws)["conversation_id"] == "c-also"
        api.post(turn("c-mine", "t2", "second"))
        snapshot = recv_snapshot(ws)
        assert (snapshot["conversation_id"], snapshot["turn_count"]) == ("c-mine", 2)
        with pytest.raises(TimeoutError):
            recv_json(ws, timeout=0.3)  # nothing of c-other, ever


# --- turns sent over the socket ---------------------------------------------------------------


def test_turns_sent_over_the_socket_are_answered_like_post_turns(api: Api) -> None:
    with api.connect("?conversation=c-ws") as ws:
        ws.send(json.dumps(turn("c-ws", "t1", "hello", channel="chat")))
        # The reply and the snapshot it causes come in either order.
        first, second = recv_json(ws), recv_json(ws)
        reply, snapshot = (first, second) if _is_reply(first) else (second, first)
        assert reply == {
            "results": [
                {"conversation_id": "c-ws", "turn_id": "t1", "status": "applied", "generation": 1}
            ]
        }
        assert (snapshot["conversation_id"], snapshot["turn_count"]) == ("c-ws", 1)
        ws.send(
            json.dumps([turn("c-ws", "t1", "hello"), turn("c-ws", "t2", "more", is_final=False)])
        )
        statuses = [r["status"] for r in recv_json(ws)["results"]]
        assert statuses == ["duplicate", "partial"]
        with pytest.raises(TimeoutError):
            recv_json(ws, timeout=0.2)  # nothing changed that needs a new snapshot
    assert [t.turn_id for t in api.engine.conversation("c-ws").turns] == ["t1"]  # type: ignore[union-attr]


def test_a_bad_message_gets_an_error_message_and_the_connection_stays_open(api: Api) -> None:
    with api.connect() as ws:
        for bad in ("not json", "[]", "NaN", b"\xff\xfe"):
            ws.send(bad)
            assert recv_reply(ws)["error"], bad
        ws.send(json.dumps(turn("c-bad", "t1", "hi", role="robot")))
        error = recv_reply(ws)
        assert (error["field"], error["error"]) == ("role", "invalid turn event")
        assert error["reason"]
        ws.send(json.dumps([turn("c-bad", "t1", "ok"), {"turn_id": "t2"}]))
        error = recv_reply(ws)
        assert (error["field"], error["index"]) == ("conversation_id", 1)
        assert api.engine.conversation("c-bad") is None  # a bad batch applies nothing
        ws.send(json.dumps(turn("c-bad", "t1", "still here")))
        assert recv_reply(ws)["results"][0]["status"] == "applied"


def test_a_message_over_64_kb_closes_the_connection_with_1009(api: Api) -> None:
    with api.connect() as ws:
        ws.send(json.dumps(turn("c-big", "t1", "a" * MAX_BODY_BYTES)))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert api.engine.conversation("c-big") is None


def test_a_message_in_fragments_is_put_together(api: Api) -> None:
    text = json.dumps(turn("c-frag", "t1", "in three parts"))
    with api.connect() as ws:
        ws.send(iter([text[:10], text[10:20], text[20:]]))
        assert recv_reply(ws)["results"][0]["status"] == "applied"


def test_stream_messages_are_rate_limited_with_an_error_message(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(rate=0.01, burst=3)
    with api.connect() as ws:  # the handshake spends one
        replies = []
        for n in range(3):
            ws.send(json.dumps(turn("c-rate", f"t{n}", "hi")))
            replies.append(recv_reply(ws))
    assert "results" in replies[0] and "results" in replies[1]
    assert replies[2]["error"] == "too many requests"
    assert replies[2]["retry_after"] >= 1


# --- keeping alive and closing ----------------------------------------------------------------


def test_the_server_answers_pings(api: Api) -> None:
    with api.connect() as ws:
        assert ws.ping().wait(2)


def _raw_handshake(port: int, *, rcvbuf: int | None = None) -> socket.socket:
    """A client that completes the handshake and then never answers anything."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


def test_a_client_that_never_answers_pings_is_dropped(make_api: Callable[..., Api]) -> None:
    api = make_api(ping_interval=0.1, ping_timeout=0.2)
    sock = _raw_handshake(api.server.port)
    try:
        received = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break  # the server closed the connection
            received += chunk
        else:
            pytest.fail("the silent client was not dropped")
    finally:
        sock.close()
    assert received[:1] == b"\x89"  # a ping came first
    assert b"\x88" in received  # then a close frame
    deadline = time.monotonic() + 2
    while api.server.stream_clients and time.monotonic() < deadline:
        time.sleep(0.01)
    assert api.server.stream_clients == 0


def test_stopping_the_server_closes_streams_with_1001(make_api: Callable[..., Api]) -> None:
    api = make_api()
    with api.connect() as ws:
        assert api.server.stream_clients == 1
        started = time.monotonic()
        api.server.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


# --- a slow client ----------------------------------------------------------------------------


@pytest.mark.slow  # ~2 s: it takes megabytes to fill the socket buffers
def test_stopping_does_not_wait_long_for_a_client_that_reads_nothing(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(rate=1e6, burst=10**6)
    stuck = _raw_handshake(api.server.port, rcvbuf=4096)
    try:
        for n in range(150):  # megabytes of snapshots: the server's writes to it block
            api.post([turn(f"c-stuck-{n}", f"t{k}", "x" * 9000) for k in range(6)])
        assert api.engine.wait_idle(10)
        started = time.monotonic()
        api.server.stop()
        assert time.monotonic() - started < 3
        assert api.server.stream_clients == 0
    finally:
        stuck.close()


def test_a_slow_client_holds_up_nobody_and_gets_the_newest_snapshot_of_each(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(rate=1e6, burst=10**6)
    conversations = [f"c-slow-{n}" for n in range(80)]
    # The slow client reads nothing until the end: its socket buffers fill and its server side
    # stalls; a fast client connected at the same time must see every conversation's last turn.
    with api.connect(max_queue=1) as slow, api.connect() as fast:
        started = time.monotonic()
        for round_ in range(3):
            for conversation_id in conversations:
                status, _ = api.post(
                    [turn(conversation_id, f"t{round_}-{k}", "x" * 9000) for k in range(6)]
                )
                assert status == 200
        assert api.engine.wait_idle(10)
        engine_s = time.monotonic() - started
        latest: dict[str, int] = {}
        while len(latest) < len(conversations) or min(latest.values()) < 18:
            snapshot = recv_snapshot(fast, timeout=10)
            latest[snapshot["conversation_id"]] = snapshot["turn_count"]
        # The slow client now reads: newest wins, so each conversation ends on its last state.
        seen: dict[str, int] = {}
        received = 0
        try:
            while True:
                snapshot = recv_snapshot(slow, timeout=0.5)
                seen[snapshot["conversation_id"]] = snapshot["turn_count"]
                received += 1
        except TimeoutError:
            pass
    assert set(seen) == set(conversations)
    assert set(seen.values()) == {18}
    assert received < api.engine.analyses  # stale snapshots were skipped, not queued up
    assert engine_s < 8, f"the engine took {engine_s:.1f} s with a slow client attached"


# --- random messages ----------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["conversation_id", "turn_id", "role", "text", "ts", "is_final", "channel", "x"]
            ),
            children,
            max_size=7,
        )
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzz_stream() -> Iterator[ClientConnection]:
    engine = HeadlessEngine(CountingAnalyser())
    engine.start()
    server = IngestServer(engine, TOKEN, port=0, rate=1e6, burst=10**6)
    server.start()
    try:
        with connect(server.stream_url, additional_headers=AUTH, open_timeout=5) as ws:
            yield ws
    finally:
        server.stop()
        engine.stop()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    message=st.one_of(
        _json_values.map(json.dumps),
        st.binary(max_size=200),
        st.text(max_size=200),
    )
)
def test_random_messages_are_answered_and_never_close_the_stream(
    fuzz_stream: ClientConnection, message: str | bytes
) -> None:
    fuzz_stream.send(message)
    reply = recv_reply(fuzz_stream)
    assert reply.get("error") != "internal error"
    assert "results" in reply or reply.get("error")
