"""A blocking client for any OpenAI-compatible chat-completions endpoint (Ollama, vLLM, hosted).

`ChatClient.complete` POSTs ``{endpoint}/chat/completions`` with the API key (from the keyring,
`copilot.services.secrets`) as a Bearer token, asking for

* ``stream: true``, read as server-sent events (``data: {...}`` lines up to ``data: [DONE]``);
  an endpoint that ignores it and answers with one JSON body is read as such;
* ``response_format`` ``json_schema`` (the answer's schema), else ``json_object``, else none.

An endpoint that rejects one of these with HTTP 400/422 is asked again without it, and the client
remembers what the endpoint accepts for its next requests, so the probing costs one round trip
once. Every failure is one typed `LlmError` whose `LlmError.kind` says what happened (no endpoint,
refused connection, timeout, 401, 429, other HTTP errors, a refusal, a malformed body, cancelled),
with a message a user can read; the caller falls back to the offline result. The API key never
appears in a message or a log line.

``timeout_s`` is a deadline for the whole request, stream included: a server that drips tokens
slower than that is cut off like one that never answers. A request can be cancelled between
streamed chunks (a newer turn made it stale); a non-streaming request runs to its deadline.

No Qt and no threads here: the app calls it on a worker lane.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from copilot.services.secrets import SecretStore
    from copilot.services.settings import LlmSettings

_log = logging.getLogger(__name__)

__all__ = ["ChatClient", "ChatReply", "LlmError", "LlmErrorKind", "client_from_settings"]

#: ``response_format`` kinds, most useful first; None sends none.
FORMATS: tuple[str | None, ...] = ("json_schema", "json_object", None)
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_MAX_ERROR_CHARS = 200


class LlmErrorKind(StrEnum):
    NOT_CONFIGURED = "not_configured"
    CONNECT = "connect"
    TIMEOUT = "timeout"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    HTTP = "http"
    REFUSED = "refused"
    MALFORMED = "malformed"
    CANCELLED = "cancelled"


class LlmError(Exception):
    """A request that produced no usable answer.

    Attributes:
        kind: what went wrong (`LlmErrorKind`).
        message: a sentence for the user (never containing the API key).
        status: the HTTP status, when there was one.
    """

    def __init__(self, kind: LlmErrorKind, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class ChatReply:
    """A completed answer.

    Attributes:
        content: the assistant message's text.
        model: the model that answered (as the endpoint names it).
        elapsed_ms: from sending the request to the last byte.
        streamed: whether it arrived as server-sent events.
        response_format: the ``response_format`` type the endpoint accepted, or None.
        finish_reason: as the endpoint reported it ("stop", "length", ...).
    """

    content: str
    model: str
    elapsed_ms: float
    streamed: bool
    response_format: str | None
    finish_reason: str | None = None


class _Rejected(Exception):
    """HTTP 400/422: the endpoint may not support something we asked for."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class ChatClient:
    """One endpoint and model; reuse it for every request (it keeps the connection open).

    Not thread-safe: the app keeps one per worker lane.

    Args:
        endpoint: the API base URL, e.g. ``http://localhost:11434/v1``.
        model: the model name sent with each request.
        api_key: sent as ``Authorization: Bearer``; None or "" sends none (local servers).
        timeout_s: the deadline of one request, stream included.
        stream: ask for server-sent events first.
        transport: an ``httpx`` transport (tests); the network by default.
    """

    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 20.0,
        stream: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint.strip().rstrip("/")
        self.model = model.strip()
        self.timeout_s = float(timeout_s)
        self._stream = stream
        self._format_index = 0
        # Newer hosted models renamed max_tokens and fix their temperature: learned from a 400.
        self._tokens_field = "max_tokens"
        self._send_temperature = True
        headers = {"Accept": "application/json, text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        host = urlsplit(self.endpoint).hostname or ""
        self._client = httpx.Client(
            headers=headers,
            transport=transport,
            # A proxy set for the internet must not intercept a model on this machine.
            trust_env=host not in _LOOPBACK,
            follow_redirects=False,
        )

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def streaming(self) -> bool:
        """Whether the next request asks for a stream (False once the endpoint refused one)."""
        return self._stream

    @property
    def response_format(self) -> str | None:
        """The ``response_format`` the next request asks for."""
        return FORMATS[self._format_index]

    # --- requests -------------------------------------------------------------------------

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "answer",
        max_tokens: int | None = 1200,
        temperature: float = 0.2,
        cancelled: Callable[[], bool] | None = None,
    ) -> ChatReply:
        """Send a chat and return the answer, falling back on what the endpoint rejects.

        Args:
            messages: chat messages (``role``, ``content``).
            schema: the JSON schema of the answer; None asks for plain text.
            schema_name: its name in ``response_format``.
            max_tokens: the answer's length limit.
            temperature: sampling temperature (low: drafts should be plain and stable).
            cancelled: polled between streamed chunks; True abandons the request.

        Raises:
            LlmError: for every way the request can fail (see `LlmErrorKind`).
        """
        self._check_configured()
        deadline = time.monotonic() + self.timeout_s
        started = time.perf_counter()
        for _attempt in range(len(FORMATS) + 5):
            fmt = self.response_format if schema is not None else None
            body: dict[str, Any] = {
                "model": self.model,
                "messages": [dict(m) for m in messages],
                "stream": self._stream,
            }
            if self._send_temperature:
                body["temperature"] = temperature
            if max_tokens is not None:
                body[self._tokens_field] = max_tokens
            if fmt == "json_schema" and schema is not None:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "schema": dict(schema), "strict": True},
                }
            elif fmt == "json_object":
                body["response_format"] = {"type": "json_object"}
            try:
                content, model, streamed, finish = self._post(body, deadline, cancelled)
            except _Rejected as rejected:
                if not self._downgrade(rejected.detail, schema is not None):
                    raise LlmError(
                        LlmErrorKind.HTTP,
                        f"The endpoint rejected the request (HTTP {rejected.status}): "
                        f"{rejected.detail}",
                        status=rejected.status,
                    ) from None
                continue
            return ChatReply(
                content=content,
                model=model or self.model,
                elapsed_ms=(time.perf_counter() - started) * 1000,
                streamed=streamed,
                response_format=fmt,
                finish_reason=finish,
            )
        raise LlmError(LlmErrorKind.HTTP, "The endpoint rejected every form of the request.")

    def check(self) -> ChatReply:
        """A minimal round trip (no stream, no schema): proves the endpoint, key and model work.

        Raises:
            LlmError: as `complete`.
        """
        stream, self._stream = self._stream, False
        try:
            return self.complete(
                [
                    {"role": "system", "content": "You are a connection test."},
                    {"role": "user", "content": "Reply with the word OK."},
                ],
                schema=None,
                max_tokens=5,
                temperature=0.0,
            )
        finally:
            self._stream = stream

    def list_models(self) -> list[str]:
        """Model ids from ``GET {endpoint}/models`` (empty when the endpoint has no such list).

        Raises:
            LlmError: connection problems, timeouts, 401.
        """
        self._check_configured(need_model=False)
        try:
            response = self._client.get(f"{self.endpoint}/models", timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.endpoint, self.timeout_s) from None
        if response.status_code in (401, 403):
            raise _status_error(response.status_code, _error_detail(response))
        if response.status_code != 200:
            return []
        try:
            data = response.json().get("data") or []
            return sorted(str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id"))
        except (ValueError, AttributeError):
            return []

    # --- internals ------------------------------------------------------------------------

    def _check_configured(self, *, need_model: bool = True) -> None:
        if not self.endpoint:
            raise LlmError(LlmErrorKind.NOT_CONFIGURED, "No LLM endpoint is set.")
        if not self.endpoint.startswith(("http://", "https://")):
            raise LlmError(
                LlmErrorKind.NOT_CONFIGURED,
                f"The LLM endpoint {self.endpoint!r} is not an http:// or https:// URL.",
            )
        if need_model and not self.model:
            raise LlmError(LlmErrorKind.NOT_CONFIGURED, "No LLM model name is set.")

    def _downgrade(self, detail: str, wants_schema: bool) -> bool:
        """Stop asking for what a 400 says the endpoint lacks; False when nothing is left."""
        lowered = detail.lower()
        if "max_tokens" in lowered and self._tokens_field == "max_tokens":
            self._tokens_field = "max_completion_tokens"
            return True
        if "temperature" in lowered and self._send_temperature:
            self._send_temperature = False
            return True
        format_named = any(w in lowered for w in ("response_format", "json_schema", "json"))
        if self._stream and "stream" in lowered and not format_named:
            self._stream = False
        elif wants_schema and self._format_index < len(FORMATS) - 1:
            self._format_index += 1
        elif self._stream:
            self._stream = False
        else:
            return False
        _log.info(
            "LLM endpoint rejected a request (%s); now stream=%s, response_format=%s",
            detail[:80],
            self._stream,
            self.response_format,
        )
        return True

    def _post(
        self,
        body: dict[str, Any],
        deadline: float,
        cancelled: Callable[[], bool] | None,
    ) -> tuple[str, str, bool, str | None]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout(self.timeout_s)
        url = f"{self.endpoint}/chat/completions"
        try:
            request = self._client.build_request(
                "POST", url, json=body, timeout=httpx.Timeout(remaining)
            )
            response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.endpoint, self.timeout_s) from None
        try:
            status = response.status_code
            if status != 200:
                response.read()
                detail = _error_detail(response)
                if status in (400, 422):
                    raise _Rejected(status, detail)
                raise _status_error(status, detail, response.headers.get("retry-after"))
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "text/event-stream":
                return self._read_stream(response, deadline, cancelled)
            response.read()
            return self._read_body(response)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.endpoint, self.timeout_s) from None
        finally:
            response.close()

    def _read_body(self, response: httpx.Response) -> tuple[str, str, bool, str | None]:
        try:
            data = response.json()
        except ValueError:
            raise LlmError(
                LlmErrorKind.MALFORMED, "The endpoint's answer is not JSON.", status=200
            ) from None
        if not isinstance(data, dict):
            raise LlmError(LlmErrorKind.MALFORMED, "The endpoint's answer is not a JSON object.")
        if isinstance(data.get("error"), dict | str):
            raise LlmError(LlmErrorKind.HTTP, f"The endpoint reported: {_message_of(data)}")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LlmError(LlmErrorKind.MALFORMED, "The endpoint's answer has no choices.")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            raise LlmError(LlmErrorKind.MALFORMED, "The endpoint's answer has no message.")
        finish = choice.get("finish_reason")
        refusal = message.get("refusal")
        if refusal or finish == "content_filter":
            raise LlmError(
                LlmErrorKind.REFUSED, f"The model declined to answer: {_clip(str(refusal or ''))}"
            )
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise LlmError(LlmErrorKind.MALFORMED, "The model's answer is empty.")
        return content, str(data.get("model") or ""), False, finish

    def _read_stream(
        self,
        response: httpx.Response,
        deadline: float,
        cancelled: Callable[[], bool] | None,
    ) -> tuple[str, str, bool, str | None]:
        parts: list[str] = []
        refusal: list[str] = []
        model = ""
        finish: str | None = None
        for payload in _sse_data(response.iter_lines()):
            if cancelled is not None and cancelled():
                raise LlmError(LlmErrorKind.CANCELLED, "A newer turn replaced this request.")
            if time.monotonic() > deadline:
                raise _timeout(self.timeout_s)
            if payload == "[DONE]":
                break
            try:
                event = json.loads(payload)
            except ValueError:
                raise LlmError(
                    LlmErrorKind.MALFORMED, "The endpoint sent an event that is not JSON."
                ) from None
            if not isinstance(event, dict):
                continue
            if event.get("error"):
                raise LlmError(LlmErrorKind.HTTP, f"The endpoint reported: {_message_of(event)}")
            model = str(event.get("model") or model)
            for choice in event.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") or choice.get("message") or {}
                if isinstance(delta, dict):
                    if isinstance(delta.get("content"), str):
                        parts.append(delta["content"])
                    if isinstance(delta.get("refusal"), str):
                        refusal.append(delta["refusal"])
                finish = choice.get("finish_reason") or finish
        if refusal or finish == "content_filter":
            raise LlmError(
                LlmErrorKind.REFUSED, f"The model declined to answer: {_clip(''.join(refusal))}"
            )
        content = "".join(parts)
        if not content.strip():
            raise LlmError(LlmErrorKind.MALFORMED, "The model's answer is empty.")
        return content, model, True, finish


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined), comments skipped."""
    data: list[str] = []
    for line in lines:
        if not line.strip():
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
            # Many servers put each event on one line without the blank separator after it.
            if data[-1].strip() == "[DONE]" or _complete_json(data[-1]):
                yield "\n".join(data)
                data = []
    if data:
        yield "\n".join(data)


def _complete_json(text: str) -> bool:
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


def _message_of(data: Mapping[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict):
        return _clip(str(error.get("message") or error.get("type") or error))
    if isinstance(error, str):
        return _clip(error)
    return _clip(str(data.get("detail") or data.get("message") or ""))


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return _clip(response.text) or response.reason_phrase
    if isinstance(data, dict):
        return _message_of(data) or response.reason_phrase
    return _clip(str(data))


def _timeout(timeout_s: float) -> LlmError:
    return LlmError(LlmErrorKind.TIMEOUT, f"No complete answer within {timeout_s:g} s.")


def _status_error(status: int, detail: str, retry_after: str | None = None) -> LlmError:
    if status in (401, 403):
        return LlmError(
            LlmErrorKind.UNAUTHORIZED,
            f"The endpoint refused the API key (HTTP {status}): set the right key in "
            "Settings › Language model backend.",
            status=status,
        )
    if status == 429:
        wait = f" (retry after {retry_after} s)" if retry_after else ""
        return LlmError(
            LlmErrorKind.RATE_LIMITED,
            f"The endpoint is rate-limiting requests (HTTP 429){wait}.",
            status=status,
        )
    if status == 404:
        return LlmError(
            LlmErrorKind.HTTP,
            f"Not found (HTTP 404): check the endpoint URL and the model name ({detail}).",
            status=status,
        )
    return LlmError(
        LlmErrorKind.HTTP, f"The endpoint failed (HTTP {status}): {detail}", status=status
    )


def _transport_error(exc: httpx.HTTPError, endpoint: str, timeout_s: float) -> LlmError:
    if isinstance(exc, httpx.TimeoutException):
        return _timeout(timeout_s)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return LlmError(
            LlmErrorKind.NOT_CONFIGURED, f"The LLM endpoint {endpoint!r} is not usable."
        )
    if isinstance(exc, httpx.ConnectError):
        reason = "connection refused" if "refused" in str(exc).lower() else _clip(str(exc))
        return LlmError(
            LlmErrorKind.CONNECT,
            f"Could not connect to {endpoint} ({reason}): is the server running?",
        )
    return LlmError(LlmErrorKind.CONNECT, f"The connection to {endpoint} failed: {_clip(str(exc))}")


def client_from_settings(
    settings: LlmSettings,
    secrets: SecretStore | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> ChatClient:
    """A client for the configured endpoint and model, with the API key from the keyring.

    Blocking (the keyring may be slow to answer): call it on a worker lane.
    """
    api_key = None
    if secrets is not None:
        from copilot.services.secrets import LLM_API_KEY

        api_key = secrets.get(LLM_API_KEY)
    return ChatClient(
        settings.endpoint,
        settings.model,
        api_key=api_key,
        timeout_s=settings.timeout_s,
        transport=transport,
    )
