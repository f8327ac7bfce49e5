"""An in-memory `FeedbackSink`: keeps every action in a list (tests, the demo, until the store).

The SQLite feedback store implements the same `copilot.core.protocols.FeedbackSink`; the panel
cannot tell them apart.
"""

from __future__ import annotations

import threading

from copilot.core.feedback import FeedbackAction, FeedbackKind

__all__ = ["MemoryFeedbackSink"]


class MemoryFeedbackSink:
    """Holds recorded actions in arrival order. Thread-safe: the app records from its db lane.

    Args:
        limit: the most actions kept; the oldest are dropped beyond it (None: no limit).
    """

    def __init__(self, *, limit: int | None = 10_000) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._actions: list[FeedbackAction] = []
        self._lock = threading.Lock()

    def record(self, action: FeedbackAction) -> None:
        """Keep ``action`` (see `copilot.core.protocols.FeedbackSink`)."""
        if not isinstance(action, FeedbackAction):
            raise TypeError(f"expected a FeedbackAction, got {type(action).__name__}")
        with self._lock:
            self._actions.append(action)
            if self._limit is not None and len(self._actions) > self._limit:
                del self._actions[: len(self._actions) - self._limit]

    @property
    def actions(self) -> tuple[FeedbackAction, ...]:
        """Every action kept, oldest first (a copy)."""
        with self._lock:
            return tuple(self._actions)

    def of_kind(self, *kinds: FeedbackKind | str) -> tuple[FeedbackAction, ...]:
        """The actions of the given kinds, oldest first."""
        wanted = {FeedbackKind(k) for k in kinds}
        return tuple(a for a in self.actions if a.kind in wanted)

    def clear(self) -> None:
        with self._lock:
            self._actions.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._actions)
