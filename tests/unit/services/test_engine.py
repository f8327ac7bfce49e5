"""The headless engine: one worker, latest-wins analysis, latest snapshot per conversation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures.snapshots import counting_snapshot

from copilot.core.conversation import Conversation, parse_turn_event
from copilot.core.pipeline import Snapshot
from copilot.services.engine import ApplyStatus, HeadlessEngine


class GatedAnalyser:
    """Blocks each analysis until released; records what it was asked to analyse."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.seen: list[tuple[str, int]] = []
        self.threads: set[str] = set()
        self.fail_for: set[str] = set()
        self.forgotten: list[str] = []

    def analyse(
        self, conversation: Conversation, *, generation: int = 0, channel: str | None = None
    ) -> Snapshot:
        self.threads.add(threading.current_thread().name)
        self.started.set()
        assert self.gate.wait(5)
        self.seen.append((conversation.conversation_id, len(conversation.turns)))
        if conversation.conversation_id in self.fail_for:
            raise RuntimeError("broken pipeline")
        return counting_snapshot(conversation, generation)

    def forget(self, conversation_id: str) -> None:
        self.forgotten.append(conversation_id)


def event(conversation: str, turn_id: str, text: str = "hello", **extra: Any) -> Any:
    return parse_turn_event(
        {"conversation_id": conversation, "turn_id": turn_id, "role": "customer", "text": text}
        | extra
    )


@pytest.fixture
def analyser() -> GatedAnalyser:
    return GatedAnalyser()


@pytest.fixture
def engine(analyser: GatedAnalyser) -> Iterator[HeadlessEngine]:
    engine = HeadlessEngine(analyser)
    engine.start()
    yield engine
    analyser.gate.set()
    engine.stop()
    assert not engine.running
    assert not [t for t in threading.enumerate() if t.name == "copilot-engine" and t.is_alive()]


def test_a_burst_of_turns_costs_one_more_analysis_not_one_each(
    engine: HeadlessEngine, analyser: GatedAnalyser
) -> None:
    engine.submit(event("c1", "t0"))
    assert analyser.started.wait(5)  # the worker is busy with t0
    for i in range(1, 10):
        engine.submit(event("c1", f"t{i}"))
    analyser.gate.set()
    assert engine.wait_idle(5)
    assert analyser.seen == [("c1", 1), ("c1", 10)]
    snapshot = engine.snapshot("c1")
    assert snapshot is not None and snapshot.turn_count == 10
    assert analyser.threads == {"copilot-engine"}


def test_listeners_get_every_snapshot_and_can_be_removed(
    engine: HeadlessEngine, analyser: GatedAnalyser
) -> None:
    analyser.gate.set()
    got: list[Snapshot] = []
    remove = engine.add_listener(got.append)
    engine.submit(event("c2", "t1"))
    assert engine.wait_idle(5)
    remove()
    engine.submit(event("c2", "t2"))
    assert engine.wait_idle(5)
    assert [s.turn_count for s in got] == [1]


def test_statuses_of_partial_final_and_repeated_turns(
    engine: HeadlessEngine, analyser: GatedAnalyser
) -> None:
    analyser.gate.set()
    assert engine.submit(event("c3", "t1", "my", is_final=False)).status is ApplyStatus.PARTIAL
    assert engine.submit(event("c3", "t1", "my bill")).status is ApplyStatus.APPLIED
    assert engine.submit(event("c3", "t1", "my bill")).status is ApplyStatus.DUPLICATE
    assert engine.submit(event("c3", "t1", "my bill is wrong")).status is ApplyStatus.APPLIED
    assert engine.wait_idle(5)
    conversation = engine.conversation("c3")
    assert conversation is not None
    assert [t.text for t in conversation.turns] == ["my bill is wrong"]


def test_one_failing_conversation_does_not_stop_the_others(
    engine: HeadlessEngine, analyser: GatedAnalyser
) -> None:
    analyser.gate.set()
    analyser.fail_for.add("broken")
    engine.submit(event("broken", "t1"))
    engine.submit(event("fine", "t1"))
    assert engine.wait_idle(5)
    assert engine.snapshot("broken") is None
    assert engine.snapshot("fine") is not None
    assert engine.last_error is not None and "broken pipeline" in engine.last_error


def test_the_oldest_conversation_is_dropped_beyond_the_limit(analyser: GatedAnalyser) -> None:
    analyser.gate.set()
    with HeadlessEngine(analyser, max_conversations=2) as engine:
        for name in ("a", "b", "c"):
            engine.submit(event(name, "t1"))
        assert engine.wait_idle(5)
        assert engine.conversation_ids() == ["b", "c"]
        assert engine.snapshot("a") is None
        engine.call(lambda: None).result(5)  # the worker has handled the eviction
        assert "a" in analyser.forgotten


def test_call_runs_on_the_worker_and_fails_after_stop(analyser: GatedAnalyser) -> None:
    engine = HeadlessEngine(analyser)
    engine.start()
    assert engine.call(lambda: threading.current_thread().name).result(5) == "copilot-engine"
    engine.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        engine.call(lambda: None).result(1)
