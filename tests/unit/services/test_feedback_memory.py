"""The in-memory feedback sink keeps actions in order, bounded, from any thread."""

from __future__ import annotations

import threading

import pytest

from copilot.core.feedback import FeedbackAction, FeedbackKind
from copilot.core.protocols import FeedbackSink
from copilot.services.feedback_memory import MemoryFeedbackSink


def _helpful(n: int) -> FeedbackAction:
    return FeedbackAction(
        kind=FeedbackKind.ARTICLE_HELPFUL, conversation_id="c", item_id=f"KB-{n}#1"
    )


def test_records_in_order_and_filters_by_kind() -> None:
    sink: FeedbackSink = MemoryFeedbackSink()
    sink.record(_helpful(1))
    sink.record(FeedbackAction(kind="flag_wrong", conversation_id="c", flag_kind="churn_risk"))
    sink.record(_helpful(2))
    assert isinstance(sink, MemoryFeedbackSink)
    assert [a.item_id for a in sink.of_kind("article_helpful")] == ["KB-1#1", "KB-2#1"]
    assert len(sink) == 3
    sink.clear()
    assert sink.actions == ()


def test_keeps_at_most_the_limit_dropping_the_oldest() -> None:
    sink = MemoryFeedbackSink(limit=2)
    for n in range(5):
        sink.record(_helpful(n))
    assert [a.item_id for a in sink.actions] == ["KB-3#1", "KB-4#1"]


def test_refuses_what_is_not_an_action() -> None:
    with pytest.raises(TypeError):
        MemoryFeedbackSink().record({"kind": "accept"})  # type: ignore[arg-type]


def test_concurrent_records_are_all_kept() -> None:
    sink = MemoryFeedbackSink(limit=None)

    def work() -> None:
        for n in range(200):
            sink.record(_helpful(n))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sink) == 800
