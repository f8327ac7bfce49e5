"""The local ingest API: other tools on this computer push turns and read snapshots over HTTP.

Served on 127.0.0.1 only, by the standard library's threading HTTP server; every request is
answered with JSON. Endpoints (``docs/api/openapi.yaml`` is the reference)::

    GET  /v1/health                          no token; says only that the service is up
    POST /v1/turns                           one turn event or a list of them
    GET  /v1/conversations/{id}/snapshot     the latest snapshot (404 while there is none)
    POST /v1/feedback                        accept / edit / discard from another front end

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
"""

from __future__ import annotations

import contextlib
import hmac
import http.server
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from copilot import __version__
from copilot.core.conversation import Turn, TurnEventError, parse_turn_event
from copilot.core.feedback import DiscardReason, FeedbackAction, FeedbackKind, outgoing_text
from copilot.core.feedback import edit_distance as _edit_distance
from copilot.services.engine import EngineFullError, HeadlessEngine
from copilot.services.secrets import INGEST_TOKEN, SecretStore

__all__ = [
    "DEFAULT_PORT",
    "LOOPBACK",
    "MAX_BODY_BYTES",
    "MAX_EVENTS_PER_REQUEST",
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
            outdated, policy, other), rank?, intent?, agent_id?, channel?, action_id?}``.
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
    """The local ingest API over a `HeadlessEngine`, served on 127.0.0.1.

    Use as a context manager, or call `start` then `stop`; the serving thread is the only
    thread it owns (requests are handled on short-lived daemon threads).

    Args:
        engine: the engine the turns go to and the snapshots come from.
        token: the bearer token clients must send.
        port: the TCP port; 0 picks a free one (see `port` after `start`).
        allowed_origins: exact ``Origin`` values allowed (e.g. a browser extension's origin);
            requests without an Origin are always allowed.
        rate: requests per second per client, on average.
        burst: requests per client at once.
        clock: monotonic clock for the rate limiter (tests).
    """

    def __init__(
        self,
        engine: HeadlessEngine,
        token: str,
        *,
        port: int = DEFAULT_PORT,
        allowed_origins: Iterable[str] = (),
        rate: float = 200.0,
        burst: int = 400,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if len(token) < 16:
            raise ValueError("the ingest token is too short")
        self.engine = engine
        self._token = token.encode("utf-8")
        self._requested_port = port
        self.allowed_origins = frozenset(allowed_origins)
        self.limiter = RateLimiter(rate, burst, clock=clock)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hosts: frozenset[str] = frozenset()

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
            return _error(
                401,
                "missing or wrong token",
                headers=(("WWW-Authenticate", 'Bearer realm="copilot"'),),
            )
        return None

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
        future = self.engine.record_feedback(action)
        try:
            future.result(FEEDBACK_WAIT_S)
        except FutureTimeout:
            return _Reply(202, {"action_id": action.action_id, "recorded": False})
        return _Reply(200, {"action_id": action.action_id, "recorded": True})


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
        with contextlib.suppress(OSError):  # the client went away
            self._send(reply)

    def _route(self, method: str) -> _Reply:
        api = self.server.api
        raw_path = urlsplit(self.path).path
        if method == "OPTIONS":
            return self._preflight(api)
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
