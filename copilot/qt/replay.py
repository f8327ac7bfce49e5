"""Replay recorded turn events into the panel at a realistic, compressed pace (``copilot demo``).

The gaps between turns follow their time stamps, compressed so that no wait is longer than
``max_gap_s`` (nobody watches a demo for the 40 s an agent took to look something up) and no
shorter than ``min_gap_s`` (each update stays on screen long enough to be seen).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from PySide6.QtCore import QObject, QTimer, Signal

from copilot.core.conversation import Turn
from copilot.qt.conversations_vm import ConversationsViewModel

__all__ = ["TurnReplayer", "replay_gaps"]

MAX_GAP_S = 2.5
MIN_GAP_S = 0.6


def replay_gaps(
    turns: Sequence[Turn], *, max_gap_s: float = MAX_GAP_S, min_gap_s: float = MIN_GAP_S
) -> list[float]:
    """Seconds to wait before each turn: the first at once, then the time-stamp gaps, clamped."""
    gaps = [0.0]
    for before, after in itertools.pairwise(turns):
        gap = (after.ts - before.ts).total_seconds()
        gaps.append(min(max_gap_s, max(min_gap_s, gap)))
    return gaps[: len(turns)]


class TurnReplayer(QObject):
    """Feeds turns to a `ConversationsViewModel` one by one on a single-shot timer.

    Signals:
        sig_turn_replayed(int): the 1-based number of the turn just applied.
        sig_finished(): every turn was applied (or `stop` was called).
    """

    sig_turn_replayed = Signal(int)
    sig_finished = Signal()

    def __init__(
        self,
        conversations: ConversationsViewModel,
        turns: Sequence[Turn],
        *,
        max_gap_s: float = MAX_GAP_S,
        min_gap_s: float = MIN_GAP_S,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._conversations = conversations
        self._turns = tuple(turns)
        self._gaps = replay_gaps(self._turns, max_gap_s=max_gap_s, min_gap_s=min_gap_s)
        self._next = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._step)

    @property
    def remaining(self) -> int:
        return len(self._turns) - self._next

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        """Start (or resume) the replay."""
        if self._next >= len(self._turns):
            self.sig_finished.emit()
            return
        self._timer.start(int(self._gaps[self._next] * 1000))

    def stop(self) -> None:
        """Stop where it is (idempotent)."""
        if self._timer.isActive():
            self._timer.stop()

    def _step(self) -> None:
        turn = self._turns[self._next]
        self._next += 1
        self._conversations.apply_event(turn)
        self.sig_turn_replayed.emit(self._next)
        if self._next < len(self._turns):
            self._timer.start(int(self._gaps[self._next] * 1000))
        else:
            self.sig_finished.emit()
