"""The demo replay: realistic gaps, compressed; turns applied in order; stops cleanly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from copilot.core.conversation import Role, Turn
from copilot.qt.conversations_vm import ConversationsViewModel
from copilot.qt.replay import TurnReplayer, replay_gaps
from copilot.qt.tasks import TaskRunner

pytestmark = pytest.mark.gui

START = dt.datetime(2026, 11, 9, 19, 41, tzinfo=dt.UTC)


def _turns(*offsets_s: float) -> list[Turn]:
    return [
        Turn("replay", f"t{n}", Role.CUSTOMER, f"turn {n}", START + dt.timedelta(seconds=s))
        for n, s in enumerate(offsets_s, start=1)
    ]


def test_gaps_follow_the_time_stamps_compressed() -> None:
    assert replay_gaps(_turns(0, 1.0, 40.0, 40.1)) == [0.0, 1.0, 2.5, 0.6]
    assert replay_gaps(_turns(0, 1.5), max_gap_s=1.0, min_gap_s=0.1) == [0.0, 1.0]
    assert replay_gaps([]) == []


@pytest.fixture
def conversations(qapp: Any) -> Iterator[ConversationsViewModel]:
    runner = TaskRunner()
    yield ConversationsViewModel(runner)
    runner.shutdown(wait=True)


def test_turns_are_applied_in_order_and_the_replay_finishes(
    qtbot: QtBot, conversations: ConversationsViewModel
) -> None:
    replayer = TurnReplayer(conversations, _turns(0, 0.01, 0.02), min_gap_s=0.01)
    replayed: list[int] = []
    replayer.sig_turn_replayed.connect(replayed.append)
    with qtbot.waitSignal(replayer.sig_finished, timeout=2000):
        replayer.start()
    assert replayed == [1, 2, 3] and replayer.remaining == 0
    conversation = conversations.conversation("replay")
    assert conversation is not None and [t.turn_id for t in conversation.turns] == [
        "t1",
        "t2",
        "t3",
    ]


def test_stop_leaves_no_timer_running(qtbot: QtBot, conversations: ConversationsViewModel) -> None:
    replayer = TurnReplayer(conversations, _turns(0, 30, 60))
    replayer.start()
    qtbot.waitUntil(lambda: replayer.remaining == 2, timeout=2000)
    assert replayer.running
    replayer.stop()
    replayer.stop()
    assert not replayer.running and replayer.remaining == 2
