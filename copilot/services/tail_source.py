"""Follow a JSON Lines transcript as another program appends to it (``tail -f`` for turns).

Each complete line is parsed as a turn event and handed to ``on_turn`` (usually
`HeadlessEngine.submit`, which redacts it on arrival); a malformed line is handed to ``on_bad``
as a `BadLine` with its line number and skipped. A line still being written (no newline yet) waits
for its end. When the file is truncated or replaced (log rotation), reading starts again at its
beginning, with line numbers from 1.

`JsonlTail.poll` reads what is new once (tests, or a caller with its own loop); `start` polls
on a thread of its own until `stop`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from copilot.core.conversation import Turn, TurnEventError, parse_turn_event
from copilot.services.transcripts import BadLine

__all__ = ["MAX_LINE_BYTES", "JsonlTail"]

_log = logging.getLogger(__name__)

#: A longer line is reported and skipped rather than held in memory while it grows.
MAX_LINE_BYTES = 1024 * 1024
_READ_CHUNK = 64 * 1024


class JsonlTail:
    """Follow one JSONL file.

    Args:
        path: the file; it may not exist yet (it is picked up once it does).
        on_turn: called with each parsed turn (text not yet redacted), in file order.
        on_bad: called with each malformed line; logged as a warning when None.
        from_start: read the lines already in the file (True) or only those appended later.
        poll_interval: seconds between looks at the file when running on its thread.
    """

    def __init__(
        self,
        path: Path,
        on_turn: Callable[[Turn], object],
        on_bad: Callable[[BadLine], object] | None = None,
        *,
        from_start: bool = True,
        poll_interval: float = 0.2,
    ) -> None:
        self.path = Path(path)
        self._on_turn = on_turn
        self._on_bad = on_bad
        self._poll_interval = poll_interval
        self._offset = 0
        self._line = 0  # number of the last complete line read
        self._buffer = b""
        self._skipping = False  # inside a line longer than MAX_LINE_BYTES
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file read
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        if not from_start:
            self._skip_existing()

    def _skip_existing(self) -> None:
        try:
            stat = self.path.stat()
        except OSError:
            return
        self._identity = (stat.st_dev, stat.st_ino)
        # Count the lines skipped so later line numbers still match the file.
        with self.path.open("rb") as handle:
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self._offset = end
        self._line = data.count(b"\n", 0, end)

    # -- reading ------------------------------------------------------------------------------

    def poll(self) -> int:
        """Read whatever was appended since the last call.

        Returns:
            The number of complete lines handled (turns and bad lines).
        """
        with self._lock:
            try:
                handle = self.path.open("rb")
            except FileNotFoundError:
                return 0
            with handle:
                stat = os.fstat(handle.fileno())
                identity = (stat.st_dev, stat.st_ino)
                if identity != self._identity or stat.st_size < self._offset:
                    if self._identity is not None:
                        _log.info(
                            "%s was replaced or truncated; reading it from the start", self.path
                        )
                    self._restart(identity)
                handle.seek(self._offset)
                handled = 0
                while True:
                    chunk = handle.read(_READ_CHUNK)
                    if not chunk:
                        break
                    self._offset += len(chunk)
                    handled += self._feed(chunk)
                return handled

    def _restart(self, identity: tuple[int, int]) -> None:
        self._identity = identity
        self._offset = 0
        self._line = 0
        self._buffer = b""
        self._skipping = False

    def _feed(self, chunk: bytes) -> int:
        handled = 0
        data = self._buffer + chunk
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            line = data[start:end]
            start = end + 1
            self._line += 1
            handled += 1
            if self._skipping:
                self._skipping = False
                self._bad(f"the line is longer than {MAX_LINE_BYTES} bytes")
                continue
            self._handle(line)
        rest = data[start:]
        if len(rest) > MAX_LINE_BYTES:
            self._skipping = True
            rest = b""
        self._buffer = rest
        return handled

    def _handle(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace")
        if not text.strip():
            return
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "too deeply nested"
            self._bad(f"not valid JSON ({reason})")
            return
        if not isinstance(obj, dict):
            self._bad("a turn event must be a JSON object")
            return
        try:
            turn = parse_turn_event(obj)
        except TurnEventError as exc:
            self._bad(str(exc))
            return
        try:
            self._on_turn(turn)
        except Exception as exc:  # the consumer refused it: report the line, keep following
            self._bad(f"refused: {exc}")

    def _bad(self, reason: str) -> None:
        bad = BadLine(str(self.path), self._line, reason)
        if self._on_bad is None:
            _log.warning("skipped %s", bad)
            return
        try:
            self._on_bad(bad)
        except Exception:
            _log.exception("reporting %s failed", bad)

    # -- the thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Poll on a background thread until `stop` (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"copilot-tail-{self.path.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and join the thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> JsonlTail:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except OSError as exc:  # unreadable for now (permissions, a network share): retry
                _log.warning("cannot read %s: %s", self.path, exc)
            self._stop.wait(self._poll_interval)
