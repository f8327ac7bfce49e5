"""The local ingest API: other tools on this computer push turns and read snapshots over HTTP.

Served on 127.0.0.1 only, by the standard library's threading HTTP server; every request is
answered with JSON. Endpoints (``docs/api/openapi.yaml`` is the reference)::

    GET  /v1/health                          no token; says only that the service is up
    POST /v1/turns                           one turn event or a list of them
    GET  /v1/conversations/{id}/snapshot     the latest snapshot (404 while there is none)
    POST /v1/feedback                        accept / edit / discard from another front end
    GET  /v1/stream                          WebSocket: snapshots pushed as they are produced,
                                             turn events accepted (see "The stream" below)

Checks, in order, so that a foreign web page or a flood learns nothing:

1. ``Host`` must be ``127.0.0.1:<port>`` or ``localhost:<port>`` (403): defeats DNS rebinding.
2. ``Origin``, when present, must be in the configured allowlist (403): a web page in the
   agent's browser cannot drive the API. Clients that are not browsers send no Origin.
3. A token bucket per client address (429 with ``Retry-After``), before authentication so that
   guessing tokens is rate limited too.
4. ``Authorization: Bearer <token>`` compared in constant time (401); health is exempt.
5. POST bodies: ``Content-Type: application/json`` (415), a ``Content-Length`` (411) of at most
   64 KB (413, refused without reading the body), UTF-8 JSON (400).

Invalid events are refused as a whole with 400 and ``{"error", "field", "reason"}``. Bad input
never causes a 5xx; an unexpected failure is logged and answered 500 without details.

The token is a random 256-bit value kept in the system keyring (`ingest_token`).

The stream (``/v1/stream``) is a WebSocket on the same port. Its handshake passes the same Host,
Origin and rate-limit checks; the token comes in the ``Authorization`` header or, because
browsers cannot set headers on a WebSocket, as a ``bearer.<token>`` subprotocol offered beside
``copilot.v1`` (the server selects ``copilot.v1``, so the token is never echoed back).
``?conversation=ID`` (repeatable) limits the snapshots pushed to those conversations, and their
latest snapshots are sent at once. Each text message is a turn event or a list of them, answered
by one message with the same body ``POST /v1/turns`` would return (``{"results"}`` or
``{"error", "field", "reason"}``): a bad message gets an error message, never a disconnect.
Messages over 64 KB close the connection with 1009. The framing is the `websockets` package's
sans-I/O protocol, driven by the request's own thread after the HTTP upgrade.

A slow stream client never holds up the engine: snapshots wait in a queue per client that holds
only the newest snapshot of each conversation (a newer one replaces the one waiting), so the queue
is bounded by the live conversations and a client that catches up gets every conversation's
latest state. `MAX_STREAM_QUEUE` is a last-resort cap above the engine's conversation limit.
"""

from __future__ import annotations

import contextlib
import hmac
import http.server
import json
import logging
import math
import os
import secrets
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeaderValue
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from copilot import __version__
from copilot.core.conversation import Turn, TurnEventError, parse_turn_event
from copilot.core.feedback import DiscardReason, FeedbackAction, FeedbackKind, outgoing_text
from copilot.core.feedback import edit_distance as _edit_distance
from copilot.core.pipeline import Snapshot
from copilot.services.engine import EngineFullError, EngineUnavailableError, IngestEngine
from copilot.services.secrets import INGEST_TOKEN, SecretStore

__all__ = [
    "BEARER_SUBPROTOCOL_PREFIX",
    "DEFAULT_PORT",
    "LOOPBACK",
    "MAX_BODY_BYTES",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_STREAM_QUEUE",
    "STREAM_SUBPROTOCOL",
    "FeedbackEventError",
    "IngestServer",
    "RateLimiter",
    "ensure_token",
    "parse_feedback_event",
    "rotate_token",
]

_log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BODY_BYTES = 64 * 1024
MAX_EVENTS_PER_REQUEST = 500
#: How long POST /v1/feedback waits for the store before answering 202 (queued) instead of 200.
FEEDBACK_WAIT_S = 2.0
_SOCKET_TIMEOUT_S = 10.0  # a client that stops sending mid-body is dropped, not waited for

#: The subprotocol the stream selects (offer it with ``bearer.<token>`` from a browser).
STREAM_SUBPROTOCOL = "copilot.v1"
BEARER_SUBPROTOCOL_PREFIX = "bearer."
#: Conversations with a snapshot waiting for one stream client; past it the least recently
#: updated is dropped. Above `copilot.services.engine.MAX_CONVERSATIONS`: a last resort only.
MAX_STREAM_QUEUE = 1024
#: ``?conversation=`` values one stream may follow.
MAX_STREAM_FILTER = 100
_MAX_OFFERED_SUBPROTOCOLS = 8  # each bearer candidate costs a comparison: bounded
_STREAM_PING_INTERVAL_S = 20.0  # a client silent this long is pinged ...
_STREAM_PING_TIMEOUT_S = 20.0  # ... and dropped when no pong comes back in time
_STREAM_CLOSE_TIMEOUT_S = 1.0  # wait this long for the client's half of a closing handshake
_STREAM_SEND_TIMEOUT_S = 10.0  # a client that stops reading is dropped after this
_RECV_BYTES = 65536


# --- the token ----------------------------------------------------------------------------------


def ensure_token(store: SecretStore) -> tuple[str, bool]:
    """The ingest token, created (256 random bits) and saved on first use.

    Returns:
        ``(token, saved)``: `saved` is False when no keyring is available and the token lives in
        this process only (clients then need it from ``copilot serve``'s own output).
    """
    token = store.get(INGEST_TOKEN)
    if token:
        return token, store.available()[0]
    return rotate_token(store)


def rotate_token(store: SecretStore) -> tuple[str, bool]:
    """Replace the ingest token with a new random one; the old one stops working.

    Returns:
        ``(token, saved)`` as `ensure_token`.
    """
    token = secrets.token_urlsafe(32)
    saved = store.set(INGEST_TOKEN, token)
    return token, saved


# --- rate limiting ------------------------------------------------------------------------------


class RateLimiter:
    """A token bucket per client: `burst` requests at once, refilled at `rate` per second.

    Args:
        rate: requests per second allowed on average.
        burst: requests allowed at once.
        clock: monotonic seconds (tests pass a fake).
        max_clients: buckets kept; the oldest are dropped (a full bucket is the default anyway).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 1024,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, updated)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Spend one request of `client`'s budget.

        Returns:
            0.0 when allowed, else the seconds until the next request would be.
        """
        with self._lock:
            now = self._clock()
            tokens, updated = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - updated) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            while len(self._buckets) > self._max_clients:
                del self._buckets[next(iter(self._buckets))]
            return wait


# --- feedback events ----------------------------------------------------------------------------


class FeedbackEventError(ValueError):
    """A feedback event that cannot be recorded; ``str()`` reads "field: reason"."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_FEEDBACK_KINDS = {
    k.value: k for k in (FeedbackKind.ACCEPT, FeedbackKind.EDIT, FeedbackKind.DISCARD)
}
_REASONS = {r.value: r for r in DiscardReason}
_MAX_FIELD_CHARS = 200
_MAX_TEXT_CHARS = 10_000


def _optional_str(obj: Mapping[str, Any], name: str, limit: int = _MAX_FIELD_CHARS) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FeedbackEventError(name, "must be a string")
    if len(value) > limit:
        raise FeedbackEventError(name, f"must be at most {limit} characters")
    return value


def _required_str(obj: Mapping[str, Any], name: str) -> str:
    value = _optional_str(obj, name)
    if value is None or not value.strip():
        raise FeedbackEventError(name, "is required")
    return value.strip()


def parse_feedback_event(obj: Any) -> FeedbackAction:
    """Validate an accept / edit / discard from another front end and return the action.

    Args:
        obj: ``{kind: accept|edit|discard, conversation_id, suggestion_id, item_id, turn_id?,
            shown_text?, sent_text (accept, edit), reason? (discard: wrong_topic, wrong_tone,
            outdated, policy, other), rank?, intent?, agent_id?, queue?, channel?, action_id?}``.
            Texts are redacted again before they are kept.

    Raises:
        FeedbackEventError: naming the first invalid field.
    """
    if not isinstance(obj, Mapping):
        raise FeedbackEventError("event", "must be a JSON object")
    raw_kind = obj.get("kind")
    kind = _FEEDBACK_KINDS.get(raw_kind) if isinstance(raw_kind, str) else None
    if kind is None:
        raise FeedbackEventError("kind", "must be one of accept, edit, discard")
    conversation_id = _required_str(obj, "conversation_id")
    suggestion_id = _required_str(obj, "suggestion_id")
    item_id = _required_str(obj, "item_id")
    shown = _optional_str(obj, "shown_text", _MAX_TEXT_CHARS)
    sent = _optional_str(obj, "sent_text", _MAX_TEXT_CHARS)
    if kind is not FeedbackKind.DISCARD and sent is None:
        raise FeedbackEventError("sent_text", f"is required for {kind.value}")
    if kind is FeedbackKind.DISCARD and sent is not None:
        raise FeedbackEventError("sent_text", "is not allowed for discard")
    raw_reason = obj.get("reason")
    reason: DiscardReason | None = None
    if raw_reason is not None:
        if kind is not FeedbackKind.DISCARD:
            raise FeedbackEventError("reason", "only a discard has a reason")
        reason = _REASONS.get(raw_reason) if isinstance(raw_reason, str) else None
        if reason is None:
            raise FeedbackEventError("reason", f"must be one of {', '.join(_REASONS)}")
    rank = obj.get("rank")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise FeedbackEventError("rank", "must be a positive integer")
    action_id = _optional_str(obj, "action_id")
    shown = outgoing_text(shown) if shown is not None else None
    sent = outgoing_text(sent) if sent is not None else None
    distance: int | None = None
    if kind is FeedbackKind.ACCEPT:
        distance = 0
    elif kind is FeedbackKind.EDIT and shown is not None and sent is not None:
        distance = _edit_distance(shown, sent)
    extra: dict[str, Any] = {"action_id": action_id} if action_id else {}
    try:
        return FeedbackAction(
            kind=kind,
            conversation_id=conversation_id,
            turn_id=_optional_str(obj, "turn_id"),
            item_id=item_id,
            suggestion_id=suggestion_id,
            rank=rank,
            shown_text=shown,
            sent_text=sent,
            edit_distance=distance,
            reason=reason,
            intent=_optional_str(obj, "intent"),
            agent_id=_optional_str(obj, "agent_id"),
            queue=_optional_str(obj, "queue"),
            channel=_optional_str(obj, "channel"),
            **extra,
        )
    except ValueError as exc:  # the action's own consistency checks
        raise FeedbackEventError("event", str(exc)) from None


# --- the server ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: Mapping[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


def _error(
    status: int,
    message: str,
    *,
    field: str | None = None,
    reason: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    **extra: Any,
) -> _Reply:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
        body["reason"] = reason or message
    body.update(extra)
    return _Reply(status, body, tuple(headers))


class _BadRequest(Exception):
    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.body.get("error"))
        self.reply = reply


class IngestServer:
    """The local ingest API over an engine (`IngestEngine`), served on 127.0.0.1.

    Use as a context manager, or call `start` then `stop`; the serving thread is the only
    thread it owns (requests, and each WebSocket stream, run on their own daemon threads).

    Args:
        engine: the engine the turns go to and the snapshots come from (`HeadlessEngine`, or
            the desktop app's `copilot.qt.ingest_bridge.IngestBridge`).
        token: the bearer token clients must send.
        port: the TCP port; 0 picks a free one (see `port` after `start`).
        allowed_origins: exact ``Origin`` values allowed (e.g. a browser extension's origin);
            requests without an Origin are always allowed.
        rate: requests (and stream messages) per second per client, on average.
        burst: requests per client at once.
        clock: monotonic clock for the rate limiter (tests).
        ping_interval: seconds of silence before a stream client is pinged.
        ping_timeout: seconds a stream client has to answer a ping before it is dropped.
    """

    def __init__(
        self,
        engine: IngestEngine,
        token: str,
        *,
        port: int = DEFAULT_PORT,
        allowed_origins: Iterable[str] = (),
        rate: float = 200.0,
        burst: int = 400,
        clock: Callable[[], float] = time.monotonic,
        ping_interval: float = _STREAM_PING_INTERVAL_S,
        ping_timeout: float = _STREAM_PING_TIMEOUT_S,
    ) -> None:
        if len(token) < 16:
            raise ValueError("the ingest token is too short")
        self.engine = engine
        self._token = token.encode("utf-8")
        self._requested_port = port
        self.allowed_origins = frozenset(allowed_origins)
        self.limiter = RateLimiter(rate, burst, clock=clock)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hosts: frozenset[str] = frozenset()
        self._streams: set[_Stream] = set()
        self._streams_lock = threading.Lock()
        self._accepting_streams = False
        self._remove_listener: Callable[[], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Bind 127.0.0.1:port and serve on a background thread.

        Raises:
            OSError: the port is taken or cannot be bound.
        """
        if self._httpd is not None:
            return
        httpd = _HTTPServer((LOOPBACK, self._requested_port), _Handler)
        httpd.api = self
        self._httpd = httpd
        port = self.port
        self._hosts = frozenset({f"{LOOPBACK}:{port}", f"localhost:{port}"})
        with self._streams_lock:
            self._accepting_streams = True
        self._remove_listener = self.engine.add_listener(self._on_snapshot)
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"copilot-ingest-{port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket and join the serving thread."""
        httpd, self._httpd = self._httpd, None
        thread, self._thread = self._thread, None
        if httpd is None:
            return
        httpd.shutdown()
        remove, self._remove_listener = self._remove_listener, None
        if remove is not None:
            remove()
        with self._streams_lock:
            self._accepting_streams = False
            streams = list(self._streams)
        for stream in streams:
            stream.request_close(CloseCode.GOING_AWAY, "the co-pilot is stopping")
        deadline = time.monotonic() + _STREAM_CLOSE_TIMEOUT_S + 0.5
        for stream in streams:
            if not stream.done.wait(max(0.0, deadline - time.monotonic())):
                stream.abort()  # stuck writing to a client that reads nothing: cut it off
        for stream in streams:
            stream.done.wait(1.0)
        httpd.server_close()
        if thread is not None:
            thread.join(5.0)

    def __enter__(self) -> IngestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            return self._requested_port
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def stream_url(self) -> str:
        """The WebSocket stream's address (``ws://127.0.0.1:<port>/v1/stream``)."""
        return f"ws://{LOOPBACK}:{self.port}/v1/stream"

    @property
    def stream_clients(self) -> int:
        """WebSocket stream clients connected now."""
        with self._streams_lock:
            return len(self._streams)

    # -- request handling (called on the request's thread) ------------------------------------

    def check_headers(self, client: str, headers: Any, *, authenticate: bool) -> _Reply | None:
        """The Host, Origin, rate-limit and token checks; a reply when the request is refused."""
        host = (headers.get("Host") or "").strip().lower()
        if host not in self._hosts:
            return _error(403, "forbidden host")
        origin = headers.get("Origin")
        if origin is not None and origin not in self.allowed_origins:
            return _error(403, "forbidden origin")
        wait = self.limiter.take(client)
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            return _error(429, "too many requests", headers=(("Retry-After", retry),))
        if authenticate and not self._authorised(headers.get("Authorization")):
            return _unauthorised()
        return None

    def stream_authorised(self, authorization: str | None, offered: Sequence[str]) -> bool:
        """The token in the ``Authorization`` header or a ``bearer.<token>`` subprotocol."""
        if self._authorised(authorization):
            return True
        found = False
        for value in offered[:_MAX_OFFERED_SUBPROTOCOLS]:
            if value.startswith(BEARER_SUBPROTOCOL_PREFIX):
                provided = value[len(BEARER_SUBPROTOCOL_PREFIX) :].encode(
                    "utf-8", "surrogateescape"
                )
                # Every candidate is compared (no early exit): timing says nothing about which.
                found = hmac.compare_digest(provided, self._token) or found
        return found

    def _authorised(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        provided = value.strip().encode("utf-8", "surrogateescape")
        return hmac.compare_digest(provided, self._token)

    def health(self) -> _Reply:
        return _Reply(200, {"status": "ok", "version": __version__})

    def post_turns(self, payload: Any) -> _Reply:
        events = payload if isinstance(payload, list) else [payload]
        if not events:
            return _error(400, "no events", field="events", reason="must not be empty")
        if len(events) > MAX_EVENTS_PER_REQUEST:
            return _error(
                400,
                "too many events",
                field="events",
                reason=f"at most {MAX_EVENTS_PER_REQUEST} per request",
            )
        parsed: list[tuple[Turn, str | None]] = []
        for position, event in enumerate(events):
            try:
                turn = parse_turn_event(event)
                channel = _channel(event)
            except TurnEventError as exc:
                extra: dict[str, Any] = {"index": position} if isinstance(payload, list) else {}
                return _error(
                    400, "invalid turn event", field=exc.field, reason=exc.reason, **extra
                )
            parsed.append((turn, channel))
        # Validated as a whole first: a batch is applied entirely or not at all.
        results = []
        for turn, channel in parsed:
            try:
                results.append(self.engine.submit(turn, channel=channel).to_dict())
            except EngineFullError as exc:
                return _error(400, "conversation too long", field="turn_id", reason=str(exc))
            except EngineUnavailableError as exc:
                return _unavailable(str(exc), applied=len(results))
        return _Reply(200, {"results": results})

    def get_snapshot(self, conversation_id: str) -> _Reply:
        snapshot = self.engine.snapshot(conversation_id)
        if snapshot is not None:
            return _Reply(200, snapshot.to_dict())
        if self.engine.conversation(conversation_id) is not None:
            return _error(404, "no snapshot yet", pending=True)
        return _error(404, "unknown conversation")

    def post_feedback(self, payload: Any) -> _Reply:
        try:
            action = parse_feedback_event(payload)
        except FeedbackEventError as exc:
            return _error(400, "invalid feedback event", field=exc.field, reason=exc.reason)
        if not self.engine.accepts_feedback:
            return _error(409, "feedback is not recorded by this co-pilot")
        try:
            self.engine.record_feedback(action).result(FEEDBACK_WAIT_S)
        except FutureTimeout:
            return _Reply(202, {"action_id": action.action_id, "recorded": False})
        except EngineUnavailableError as exc:
            return _unavailable(str(exc))
        return _Reply(200, {"action_id": action.action_id, "recorded": True})

    # -- the stream -------------------------------------------------------------------------------

    def stream_message(self, client: str, data: bytes | str) -> Mapping[str, Any]:
        """Answer one message of a stream client: turn events in, the `post_turns` body out."""
        wait = self.limiter.take(client)
        if wait > 0:
            return {"error": "too many requests", "retry_after": max(1, math.ceil(wait))}
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
            payload = json.loads(text, parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return _error(400, "invalid JSON", field="body", reason="must be UTF-8 JSON").body
        try:
            return self.post_turns(payload).body
        except Exception:
            _log.exception("the ingest stream failed on a message")
            return {"error": "internal error"}

    def _open_stream(
        self,
        sock: socket.socket,
        protocol: ServerProtocol,
        client: str,
        conversations: frozenset[str] | None,
    ) -> _Stream | None:
        """Register a stream after its handshake; None when the server is stopping."""
        stream = _Stream(self, sock, protocol, client, conversations)
        with self._streams_lock:
            if not self._accepting_streams:
                stream.discard()
                return None
            self._streams.add(stream)
        # Registered first, then the latest snapshots: one produced in between is sent once
        # (the stream skips a snapshot it has already sent), never missed.
        for conversation_id in sorted(conversations or ()):
            snapshot = self.engine.snapshot(conversation_id)
            if snapshot is not None:
                stream.offer(snapshot)
        return stream

    def _close_stream(self, stream: _Stream) -> None:
        with self._streams_lock:
            self._streams.discard(stream)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        # On the engine's thread: only queue, never send (a slow client must not block it).
        with self._streams_lock:
            streams = list(self._streams)
        for stream in streams:
            stream.offer(snapshot)


class _Stream:
    """One client of ``/v1/stream``: its socket, its sans-I/O protocol and its snapshot queue.

    `run` is the connection's only reader and writer, on the request's thread: it waits on the
    socket and on a wake-up socket pair, answers messages as they come, sends queued snapshots,
    pings a silent client and closes cleanly. Other threads only `offer` snapshots and
    `request_close`, which queue and wake it: they never block on the client.
    """

    def __init__(
        self,
        api: IngestServer,
        sock: socket.socket,
        protocol: ServerProtocol,
        client: str,
        conversations: frozenset[str] | None,
    ) -> None:
        self._api = api
        self._sock = sock
        self._protocol = protocol
        self.client = client
        self.conversations = conversations
        self.done = threading.Event()
        self.superseded = 0  # snapshots replaced by a newer one before the client took them
        self.dropped = 0  # snapshots dropped by the `MAX_STREAM_QUEUE` cap
        self._queue: OrderedDict[str, Snapshot] = OrderedDict()
        self._sent: OrderedDict[str, tuple[int, str]] = OrderedDict()  # what each last sent was
        self._lock = threading.Lock()
        self._closed = False
        self._close_request: tuple[int, str] | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._fragments: list[bytes] = []
        self._ping: bytes | None = None
        self._ping_sent = 0.0
        self._last_heard = time.monotonic()
        self._close_deadline: float | None = None

    # -- any thread -------------------------------------------------------------------------

    def offer(self, snapshot: Snapshot) -> None:
        """Queue a snapshot for this client if it follows the conversation; never blocks."""
        conversation_id = snapshot.conversation_id
        if self.conversations is not None and conversation_id not in self.conversations:
            return
        with self._lock:
            if self._closed:
                return
            if self._queue.pop(conversation_id, None) is not None:
                self.superseded += 1  # newest wins
            self._queue[conversation_id] = snapshot
            while len(self._queue) > MAX_STREAM_QUEUE:
                self._queue.popitem(last=False)
                self.dropped += 1
        self._wake()

    def request_close(self, code: int, reason: str) -> None:
        """Ask the stream to close with `code` (the server is stopping)."""
        with self._lock:
            self._close_request = (code, reason)
        self._wake()

    def abort(self) -> None:
        """Cut the connection without a closing handshake (its thread then ends at once)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def discard(self) -> None:
        """Release a stream that never ran."""
        with self._lock:
            self._closed = True
        self._wake_r.close()
        self._wake_w.close()
        self.done.set()

    def _wake(self) -> None:
        # A full wake-up pipe already holds a wake-up: nothing is lost by dropping this one.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # -- the connection's thread ------------------------------------------------------------

    def run(self, opening: bytes, buffered: bytes) -> None:
        """Send the handshake response `opening`, then serve the connection until it closes.

        Args:
            opening: the HTTP 101 response.
            buffered: bytes the client sent after its handshake that were already read.
        """
        try:
            self._sock.sendall(opening)
            if buffered:
                self._receive(buffered)
            self._loop()
        except OSError as exc:  # reset, or a client that stopped reading: it is gone
            _log.debug("stream client %s dropped: %s", self.client, exc)
        except Exception:
            _log.exception("the ingest stream failed")
        finally:
            with self._lock:
                self._closed = True
                self._queue.clear()
            self._api._close_stream(self)
            self._wake_r.close()
            self._wake_w.close()
            self.done.set()

    def _loop(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._sock, selectors.EVENT_READ, "socket")
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            while self._protocol.state is not State.CLOSED:
                timeout = self._housekeeping()
                if timeout is None:
                    return
                for key, _ in selector.select(timeout):
                    if key.data == "wake":
                        with contextlib.suppress(OSError):
                            while self._wake_r.recv(4096):
                                pass
                        continue
                    data = self._sock.recv(_RECV_BYTES)
                    if not data:
                        self._protocol.receive_eof()
                        self._flush()
                        return
                    self._receive(data)
                with self._lock:
                    close_request, self._close_request = self._close_request, None
                if close_request is not None and self._protocol.state is State.OPEN:
                    self._protocol.send_close(*close_request)
                    self._flush()
                if self._protocol.state is State.OPEN:
                    self._send_snapshots()
                if self._protocol.close_expected() and self._close_deadline is None:
                    self._close_deadline = time.monotonic() + _STREAM_CLOSE_TIMEOUT_S
        finally:
            selector.close()

    def _housekeeping(self) -> float | None:
        """Keep-alive pings and the closing deadline; seconds to wait, or None to stop now."""
        now = time.monotonic()
        if self._close_deadline is not None:
            left = self._close_deadline - now
            return left if left > 0 else None
        if self._protocol.state is not State.OPEN:
            return _STREAM_CLOSE_TIMEOUT_S
        api = self._api
        if self._ping is not None:
            left = self._ping_sent + api.ping_timeout - now
            if left > 0:
                return left
            self._protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            self._flush()
            self._close_deadline = now + _STREAM_CLOSE_TIMEOUT_S
            return None
        left = self._last_heard + api.ping_interval - now
        if left > 0:
            return left
        self._ping = os.urandom(4)
        self._ping_sent = now
        self._protocol.send_ping(self._ping)
        self._flush()
        return api.ping_timeout

    def _receive(self, data: bytes) -> None:
        self._last_heard = time.monotonic()
        self._protocol.receive_data(data)
        events = self._protocol.events_received()
        self._flush()  # pongs to the client's pings, the echo of its close, a 1009 close
        for event in events:
            if isinstance(event, Frame):
                self._on_frame(event)

    def _on_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.PONG:
            if self._ping is not None and frame.data == self._ping:
                self._ping = None
            return
        if frame.opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            return  # pings are answered and closes echoed by the protocol itself
        if frame.opcode is not Opcode.CONT:
            self._fragments = []
        # The protocol enforces the 64 KB limit on the whole message, fragments included.
        self._fragments.append(bytes(frame.data))
        if not frame.fin:
            return
        message, self._fragments = b"".join(self._fragments), []
        if self._protocol.state is State.OPEN:
            self._send_json(self._api.stream_message(self.client, message))

    def _send_snapshots(self) -> None:
        with self._lock:
            waiting = list(self._queue.values())
            self._queue.clear()
        for snapshot in waiting:
            key = (snapshot.generation, snapshot.created.isoformat())
            conversation_id = snapshot.conversation_id
            if self._sent.get(conversation_id) == key:
                continue  # already sent (offered again on connect)
            self._sent[conversation_id] = key
            self._sent.move_to_end(conversation_id)
            while len(self._sent) > MAX_STREAM_QUEUE:
                self._sent.popitem(last=False)
            self._send_json(snapshot.to_dict())

    def _send_json(self, body: Mapping[str, Any]) -> None:
        self._protocol.send_text(_dumps(body))
        self._flush()

    def _flush(self) -> None:
        for data in self._protocol.data_to_send():
            if data == SEND_EOF:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_WR)
            else:
                self._sock.sendall(data)


def _unauthorised() -> _Reply:
    return _error(
        401,
        "missing or wrong token",
        headers=(("WWW-Authenticate", 'Bearer realm="copilot"'),),
    )


def _unavailable(reason: str, **extra: Any) -> _Reply:
    body = {"error": "the co-pilot cannot take this now", "reason": reason, **extra}
    return _Reply(503, body, (("Retry-After", "1"),))


def _channel(event: Mapping[str, Any]) -> str | None:
    channel = event.get("channel")
    if channel is None:
        return None
    if channel not in ("phone", "chat"):
        raise TurnEventError("channel", "must be phone or chat")
    return str(channel)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # two servers on one port must fail, not share it
    # The default backlog of 5 resets connections when many connectors start at once.
    request_queue_size = 128
    api: IngestServer


_JSON_TYPES = frozenset({"application/json"})
_ROUTES_POST = {"/v1/turns", "/v1/feedback"}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "AgentCopilot"
    sys_version = ""
    timeout = _SOCKET_TIMEOUT_S
    # One request per connection: a refused body is never read, so nothing may follow it.
    protocol_version = "HTTP/1.0"
    # A request line too broken to name its version still gets a status line in its reply.
    default_request_version = "HTTP/1.0"

    # Any method without a handler (PUT, DELETE, BREW, ...) is 405 rather than the stdlib's 501.
    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib's own errors (malformed request line, headers too long) as JSON too.
        self.close_connection = True
        if code >= 500:
            code = 400  # the stdlib's 505 for "HTTP/9.9" is bad input, not a server failure
        with contextlib.suppress(OSError):
            self._send(_error(code, message or self.responses.get(code, ("error",))[0]))

    # -- methods ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _not_allowed(self) -> None:
        self._dispatch(self.command)

    def _dispatch(self, method: str) -> None:
        try:
            reply = self._route(method)
        except _BadRequest as exc:
            reply = exc.reply
        except Exception:
            _log.exception("the ingest API failed on %s %s", method, self.path[:200])
            reply = _error(500, "internal error")
        if reply is None:  # a WebSocket stream that has run and ended: nothing more to say
            return
        with contextlib.suppress(OSError):  # the client went away
            self._send(reply)

    def _route(self, method: str) -> _Reply | None:
        api = self.server.api
        raw_path = urlsplit(self.path).path
        if method == "OPTIONS":
            return self._preflight(api)
        if raw_path == "/v1/stream":
            return self._stream(api, method)
        if raw_path == "/v1/health":
            refused = api.check_headers(self.client_address[0], self.headers, authenticate=False)
            if refused:
                return refused
            return api.health() if method == "GET" else self._method_not_allowed("GET")
        refused = api.check_headers(self.client_address[0], self.headers, authenticate=True)
        if refused:
            return refused
        if raw_path in _ROUTES_POST:
            if method != "POST":
                return self._method_not_allowed("POST")
            payload = self._read_json()
            if raw_path == "/v1/turns":
                return api.post_turns(payload)
            return api.post_feedback(payload)
        conversation_id = _snapshot_path(raw_path)
        if conversation_id is not None:
            if method != "GET":
                return self._method_not_allowed("GET")
            return api.get_snapshot(conversation_id)
        return _error(404, "no such endpoint")

    def _preflight(self, api: IngestServer) -> _Reply:
        refused = api.check_headers(self.client_address[0], self.headers, authenticate=False)
        if refused:
            return refused
        if self.headers.get("Origin") is None:
            return self._method_not_allowed("GET, POST")
        return _Reply(
            204,
            {},
            (
                ("Access-Control-Allow-Methods", "GET, POST"),
                ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
                ("Access-Control-Max-Age", "600"),
            ),
        )

    def _stream(self, api: IngestServer, method: str) -> _Reply | None:
        """The WebSocket handshake of ``/v1/stream``, then the stream itself until it closes."""
        # WebSocket clients refuse a refusal whose status line is not HTTP/1.1 (with
        # "Connection: close" it still ends the connection).
        self.protocol_version = "HTTP/1.1"
        client = self.client_address[0]
        refused = api.check_headers(client, self.headers, authenticate=False)
        if refused:
            return refused
        if method != "GET":
            return self._method_not_allowed("GET")
        offered = _offered_subprotocols(self.headers.get_all("Sec-WebSocket-Protocol") or [])
        if not api.stream_authorised(self.headers.get("Authorization"), offered):
            return _unauthorised()
        conversations = _stream_filter(urlsplit(self.path).query)
        headers = Headers()
        try:
            for name, value in self.headers.items():
                headers[name] = value
        except InvalidHeaderValue:
            return _error(400, "invalid WebSocket handshake", field="headers", reason="not ASCII")
        handshake = ServerProtocol(select_subprotocol=_select_subprotocol, logger=_log)
        response = handshake.accept(
            Request(self.path, headers, method=method, protocol=self.request_version)
        )
        if response.status_code != 101:
            return _handshake_refused(response, handshake)
        handshake.send_response(response)
        opening = b"".join(handshake.data_to_send())
        # The stdlib server has parsed the request already: the framing starts from OPEN with a
        # protocol of its own (the handshake one still expects to parse a request).
        protocol = ServerProtocol(state=State.OPEN, max_size=MAX_BODY_BYTES, logger=_log)
        stream = api._open_stream(self.connection, protocol, client, conversations)
        if stream is None:
            return _unavailable("the ingest API is stopping")
        self.close_connection = True
        # Replies and snapshots are small writes that must leave at once, not wait for an ACK.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream.run(opening, self._buffered())
        return None

    def _buffered(self) -> bytes:
        """Bytes the client sent after the handshake that the request reader already holds."""
        try:
            self.connection.setblocking(False)
            # Only what is buffered or ready now: an empty result is not the end of the stream
            # here (the stream's own reads find that out).
            return self.rfile.read1(_RECV_BYTES) or b""
        except OSError:
            return b""
        finally:
            with contextlib.suppress(OSError):
                self.connection.settimeout(_STREAM_SEND_TIMEOUT_S)

    @staticmethod
    def _method_not_allowed(allow: str) -> _Reply:
        return _error(405, "method not allowed", headers=(("Allow", allow),))

    def _read_json(self) -> Any:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in _JSON_TYPES:
            raise _BadRequest(_error(415, "Content-Type must be application/json"))
        if self.headers.get("Transfer-Encoding"):
            raise _BadRequest(_error(411, "send a Content-Length, not a chunked body"))
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise _BadRequest(_error(411, "Content-Length is required"))
        try:
            length = int(length_header.strip())
        except ValueError:
            length = -1
        if length < 0 or not length_header.strip().isdigit():
            raise _BadRequest(_error(400, "bad Content-Length"))
        if length > MAX_BODY_BYTES:
            # Not read: the connection is closed after the reply.
            raise _BadRequest(_error(413, f"the body is larger than {MAX_BODY_BYTES} bytes"))
        body = self.rfile.read(length)
        if len(body) != length:
            raise _BadRequest(_error(400, "the body is shorter than its Content-Length"))
        try:
            return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise _BadRequest(
                _error(400, "invalid JSON", field="body", reason="must be UTF-8 JSON")
            ) from None

    def _send(self, reply: _Reply) -> None:
        data = b"" if reply.status == 204 else _dumps(reply.body)
        self.send_response(reply.status)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # The stdlib's own errors can come before the headers were parsed.
        headers = getattr(self, "headers", None)
        origin = headers.get("Origin") if headers is not None else None
        if origin is not None and origin in self.server.api.allowed_origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")
        for name, value in reply.headers:
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if data and getattr(self, "command", None) != "HEAD":
            self.wfile.write(data)


def _offered_subprotocols(values: Iterable[str]) -> list[str]:
    offered: list[str] = []
    for value in values:
        offered.extend(part.strip() for part in value.split(",") if part.strip())
    return offered


def _select_subprotocol(
    protocol: ServerProtocol, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """``copilot.v1`` when offered; a browser that offered only ``bearer.<token>`` gets that back
    (a browser fails a handshake answered with none of the subprotocols it offered)."""
    if STREAM_SUBPROTOCOL in offered:
        return Subprotocol(STREAM_SUBPROTOCOL)
    for value in offered:
        if value.startswith(BEARER_SUBPROTOCOL_PREFIX):
            return value
    return None


def _stream_filter(query: str) -> frozenset[str] | None:
    """The ``?conversation=ID`` values of a stream request (None: every conversation)."""
    try:
        params = parse_qs(query, keep_blank_values=True, errors="strict", max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest(
            _error(400, "invalid query", field="conversation", reason="must be UTF-8")
        ) from None
    values = params.get("conversation")
    if values is None:
        return None
    ids = frozenset(v.strip() for v in values)
    if "" in ids or any(len(v) > _MAX_FIELD_CHARS for v in ids):
        raise _BadRequest(
            _error(
                400,
                "invalid query",
                field="conversation",
                reason=f"must be a conversation id of 1 to {_MAX_FIELD_CHARS} characters",
            )
        )
    if len(ids) > MAX_STREAM_FILTER:
        raise _BadRequest(
            _error(
                400,
                "invalid query",
                field="conversation",
                reason=f"at most {MAX_STREAM_FILTER} conversations",
            )
        )
    return ids


def _handshake_refused(response: Response, protocol: ServerProtocol) -> _Reply:
    """A failed WebSocket handshake as a JSON reply (bad input is 4xx, never 5xx)."""
    status = response.status_code
    detail = str(protocol.handshake_exc or response.reason_phrase)
    headers: list[tuple[str, str]] = []
    if status == 426:
        headers.append(("Upgrade", "websocket"))
        return _error(426, "a WebSocket handshake is required", headers=headers)
    if status == 405:
        headers.append(("Allow", "GET"))
    if status >= 500:
        status = 400
    return _error(
        status, "invalid WebSocket handshake", field="handshake", reason=detail, headers=headers
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _snapshot_path(raw_path: str) -> str | None:
    """The conversation id of ``/v1/conversations/{id}/snapshot`` (id percent-decoded)."""
    prefix, suffix = "/v1/conversations/", "/snapshot"
    if not (raw_path.startswith(prefix) and raw_path.endswith(suffix)):
        return None
    encoded = raw_path[len(prefix) : -len(suffix)]
    if not encoded or "/" in encoded:
        return None
    try:
        conversation_id = unquote(encoded, errors="strict").strip()
    except UnicodeDecodeError:
        return None
    return conversation_id or None
