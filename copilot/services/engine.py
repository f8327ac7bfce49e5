"""The headless engine: live conversations, one analysis worker, the latest snapshot of each.

Sources (the local ingest API, a tailed transcript file) hand it parsed turns from any thread;
`HeadlessEngine.submit` applies each to its (immutable, redacting) `Conversation` at once, under
a lock, and marks the conversation for analysis. ONE worker thread runs the `Assistant` (which is
not thread-safe) on the conversations marked, newest state only: ten turns arriving while one
analysis runs cost one more analysis, not ten (latest wins). Each snapshot is stored as the
conversation's latest and handed to the listeners, on the worker thread.

Feedback is recorded on the same worker (`record_feedback`), because the SQLite feedback store
must be used by the thread that opened it (`call` opens it there first).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from copilot.core.conversation import Conversation, Turn
from copilot.core.feedback import FeedbackAction
from copilot.core.pipeline import Snapshot
from copilot.core.protocols import FeedbackSink

__all__ = [
    "MAX_CONVERSATIONS",
    "MAX_TURNS_PER_CONVERSATION",
    "Analyser",
    "ApplyStatus",
    "EngineFullError",
    "EngineUnavailableError",
    "HeadlessEngine",
    "IngestEngine",
    "SnapshotListener",
    "SubmitResult",
]

_log = logging.getLogger(__name__)

#: Live conversations kept in memory; beyond it the least recently updated one is dropped.
MAX_CONVERSATIONS = 500
#: A conversation longer than this is not a live chat or call but a runaway source.
MAX_TURNS_PER_CONVERSATION = 5000

T = TypeVar("T")
SnapshotListener = Callable[[Snapshot], None]


class Analyser(Protocol):
    """What the engine runs per conversation (`copilot.core.pipeline.Assistant` fits)."""

    def analyse(
        self, conversation: Conversation, *, generation: int = 0, channel: str | None = None
    ) -> Snapshot: ...


class ApplyStatus(enum.StrEnum):
    """What a submitted turn did to its conversation."""

    APPLIED = "applied"  # a new or corrected final turn: a new snapshot follows
    PARTIAL = "partial"  # a partial transcript held (or replaced) until its final version
    DUPLICATE = "duplicate"  # nothing changed (a repeat, or a late partial of a final turn)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    conversation_id: str
    turn_id: str
    status: ApplyStatus
    generation: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "turn_id": self.turn_id,
            "status": self.status.value,
            "generation": self.generation,
        }


class EngineFullError(ValueError):
    """A turn the engine refuses to keep (its conversation is too long)."""


class EngineUnavailableError(RuntimeError):
    """The engine cannot take the request now (stopping, or too busy to answer in time)."""


class IngestEngine(Protocol):
    """What the local ingest API needs of the co-pilot behind it.

    `HeadlessEngine` is one (``copilot serve``); the desktop app passes
    `copilot.qt.ingest_bridge.IngestBridge`, which hands turns to its panel. Every method is
    called from the API's request threads, so each must be thread-safe and quick.
    """

    def submit(self, turn: Turn, *, channel: str | None = None) -> SubmitResult:
        """Apply one parsed turn.

        Raises:
            EngineFullError: the conversation is too long to take it.
            EngineUnavailableError: the engine cannot answer now.
        """
        ...

    def snapshot(self, conversation_id: str) -> Snapshot | None:
        """The latest snapshot of a conversation, or None."""
        ...

    def conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation as it stands (redacted), or None when unknown."""
        ...

    @property
    def accepts_feedback(self) -> bool:
        """Whether `record_feedback` keeps anything."""
        ...

    def record_feedback(self, action: FeedbackAction) -> Future[None]:
        """Record an action; the future completes once it is stored."""
        ...

    def add_listener(self, listener: SnapshotListener) -> Callable[[], None]:
        """Call `listener(snapshot)` for every new snapshot; returns its remover."""
        ...


@dataclass(slots=True)
class _Live:
    conversation: Conversation
    channel: str | None = None
    generation: int = 0  # bumped by every change that needs a new snapshot
    snapshot: Snapshot | None = None


class HeadlessEngine:
    """Holds live conversations, analyses them on one worker thread, keeps the latest snapshots.

    Thread-safe: `submit`, `snapshot`, `conversation` and `record_feedback` may be called from
    any thread. Listeners are called on the worker thread and must return quickly.

    Args:
        assistant: runs the per-turn pipeline (used by the worker thread only).
        feedback: where `record_feedback` sends actions (called on the worker thread), or None.
        max_conversations: live conversations kept; the least recently updated is forgotten.
    """

    def __init__(
        self,
        assistant: Analyser,
        *,
        feedback: FeedbackSink | None = None,
        max_conversations: int = MAX_CONVERSATIONS,
    ) -> None:
        self._assistant = assistant
        self._feedback = feedback
        self._max_conversations = max_conversations
        self._live: OrderedDict[str, _Live] = OrderedDict()
        self._dirty: OrderedDict[str, None] = OrderedDict()  # conversations awaiting analysis
        self._jobs: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._forget: list[str] = []  # evicted conversations whose caches the worker drops
        self._listeners: list[SnapshotListener] = []
        self._busy = False
        self._stopping = False
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self.analyses = 0  # snapshots produced (for tests and the health endpoint)
        self.last_error: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        with self._wake:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="copilot-engine", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker after the analysis in progress; pending work is dropped."""
        with self._wake:
            self._stopping = True
            thread, self._thread = self._thread, None
            self._wake.notify_all()
        if thread is not None:
            thread.join(timeout)
        with self._wake:
            while self._jobs:
                _, future = self._jobs.popleft()
                future.cancel()

    def __enter__(self) -> HeadlessEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    # -- listeners ----------------------------------------------------------------------------

    def add_listener(self, listener: SnapshotListener) -> Callable[[], None]:
        """Call `listener(snapshot)` (on the worker thread) for every new snapshot.

        Returns:
            A function that removes the listener.
        """
        with self._wake:
            self._listeners.append(listener)

        def remove() -> None:
            with self._wake:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    # -- input --------------------------------------------------------------------------------

    def submit(self, turn: Turn, *, channel: str | None = None) -> SubmitResult:
        """Apply one parsed turn (redacted on arrival) and schedule analysis when it changed.

        Raises:
            EngineFullError: the conversation already holds `MAX_TURNS_PER_CONVERSATION` turns.
        """
        with self._wake:
            live = self._live.get(turn.conversation_id)
            if live is None:
                live = _Live(Conversation())
            before = live.conversation
            if len(before.turns) + len(before.pending) >= MAX_TURNS_PER_CONVERSATION and (
                before.turn(turn.turn_id) is None
            ):
                raise EngineFullError(
                    f"conversation {turn.conversation_id!r} has reached"
                    f" {MAX_TURNS_PER_CONVERSATION} turns"
                )
            after = before.apply(turn)
            if channel:
                live.channel = channel
            if after is before:
                status = ApplyStatus.DUPLICATE
            elif after.turns is before.turns:
                status = ApplyStatus.PARTIAL
            else:
                status = ApplyStatus.APPLIED
            live.conversation = after
            if status is ApplyStatus.APPLIED:
                live.generation += 1
                self._dirty[turn.conversation_id] = None
                self._dirty.move_to_end(turn.conversation_id)
                self._wake.notify_all()
            if turn.conversation_id not in self._live:
                self._live[turn.conversation_id] = live
                self._evict()
            self._live.move_to_end(turn.conversation_id)
            return SubmitResult(turn.conversation_id, turn.turn_id, status, live.generation)

    def _evict(self) -> None:
        while len(self._live) > self._max_conversations:
            conversation_id, _ = self._live.popitem(last=False)
            self._dirty.pop(conversation_id, None)
            self._forget.append(conversation_id)

    def forget(self, conversation_id: str) -> bool:
        """Drop a conversation (ended or erased) and its cached analysis. True if it was live."""
        with self._wake:
            known = self._live.pop(conversation_id, None) is not None
            self._dirty.pop(conversation_id, None)
            self._forget.append(conversation_id)
            self._wake.notify_all()
            return known

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run `fn` on the worker thread (before pending analyses); its result in the future."""
        future: Future[T] = Future()
        with self._wake:
            if self._stopping:
                future.set_exception(EngineUnavailableError("the engine is stopped"))
                return future
            self._jobs.append((fn, future))
            self._wake.notify_all()
        return future

    def record_feedback(self, action: FeedbackAction) -> Future[None]:
        """Send an action to the feedback sink on the worker thread.

        Raises:
            RuntimeError: the engine has no feedback sink.
        """
        sink = self._feedback
        if sink is None:
            raise RuntimeError("feedback is not recorded by this engine")
        return self.call(lambda: sink.record(action))

    @property
    def accepts_feedback(self) -> bool:
        return self._feedback is not None

    # -- output -------------------------------------------------------------------------------

    def snapshot(self, conversation_id: str) -> Snapshot | None:
        """The latest snapshot of a conversation, or None (unknown, or not analysed yet)."""
        with self._wake:
            live = self._live.get(conversation_id)
            return live.snapshot if live is not None else None

    def conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation as it stands (redacted), or None when unknown."""
        with self._wake:
            live = self._live.get(conversation_id)
            return live.conversation if live is not None else None

    def conversation_ids(self) -> list[str]:
        """Live conversations, least recently updated first."""
        with self._wake:
            return list(self._live)

    def pending(self) -> int:
        """Conversations awaiting analysis plus queued jobs (0 when the worker is idle)."""
        with self._wake:
            return len(self._dirty) + len(self._jobs) + (1 if self._busy else 0)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every scheduled analysis and job is done. False on timeout."""
        with self._wake:
            return self._wake.wait_for(
                lambda: not self._dirty and not self._jobs and not self._busy, timeout
            )

    # -- the worker ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                self._busy = False
                self._wake.notify_all()
                self._wake.wait_for(
                    lambda: self._stopping or bool(self._jobs or self._dirty or self._forget)
                )
                if self._stopping:
                    return
                self._busy = True
                forget, self._forget = self._forget, []
                job = self._jobs.popleft() if self._jobs else None
                work: tuple[str, Conversation, str | None, int] | None = None
                if job is None and self._dirty:
                    conversation_id, _ = self._dirty.popitem(last=False)
                    live = self._live[conversation_id]
                    work = (conversation_id, live.conversation, live.channel, live.generation)
            self._forget_caches(forget)
            if job is not None:
                self._run_job(*job)
            if work is not None:
                self._analyse(*work)

    def _forget_caches(self, conversation_ids: list[str]) -> None:
        forget = getattr(self._assistant, "forget", None)
        if forget is None:
            return
        for conversation_id in conversation_ids:
            try:
                forget(conversation_id)
            except Exception:  # a cache that cannot be cleared only costs memory
                _log.exception("forgetting %s failed", conversation_id)

    @staticmethod
    def _run_job(fn: Callable[[], Any], future: Future[Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _analyse(
        self, conversation_id: str, conversation: Conversation, channel: str | None, generation: int
    ) -> None:
        try:
            snapshot = self._assistant.analyse(conversation, generation=generation, channel=channel)
        except Exception as exc:  # one broken conversation must not stop the others
            _log.exception("analysis of %s failed", conversation_id)
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return
        with self._wake:
            live = self._live.get(conversation_id)
            if live is None:
                return  # forgotten while it was analysed
            if live.snapshot is None or live.snapshot.generation <= generation:
                live.snapshot = snapshot
            self.analyses += 1
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(snapshot)
            except Exception:
                _log.exception("a snapshot listener failed")
