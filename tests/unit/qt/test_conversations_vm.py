"""Open conversations: turns redacted on arrival, the pipeline off the GUI thread, newest wins."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fixtures.snapshots import counting_snapshot
from pytestqt.qtbot import QtBot

from copilot.core.conversation import Conversation, Role
from copilot.core.pipeline import Snapshot
from copilot.qt.conversations_vm import (
    ConversationsViewModel,
    PanelBackend,
    intent_choices_of,
    split_pasted_turns,
)
from copilot.qt.item_models import ConversationListModel
from copilot.qt.tasks import TaskRunner
from copilot.services.transcripts import read_events

pytestmark = pytest.mark.gui

DEMOS = Path(__file__).resolve().parents[3] / "knowledge" / "demos"
CARD = "4111 1111 1111 1111"


class CountingAssistant:
    """Stands in for `Assistant`: records which conversations it saw, and on which thread."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[str, int]] = []
        self.threads: set[int] = set()
        self.forgotten: list[str] = []
        self.delay_s = delay_s
        self.intents = None

    def analyse(self, conversation: Conversation, *, generation: int = 0) -> Snapshot:
        self.threads.add(threading.get_ident())
        self.calls.append((conversation.conversation_id, len(conversation.turns)))
        time.sleep(self.delay_s)
        return counting_snapshot(conversation, generation, created=conversation.turns[-1].ts)

    def forget(self, conversation_id: str) -> None:
        self.forgotten.append(conversation_id)


@pytest.fixture
def runner(qapp: Any) -> Iterator[TaskRunner]:
    runner = TaskRunner()
    yield runner
    runner.shutdown(wait=True)


@pytest.fixture
def vm(runner: TaskRunner) -> ConversationsViewModel:
    return ConversationsViewModel(runner, debounce_ms=20)


def _wait_idle(qtbot: QtBot, vm: ConversationsViewModel) -> None:
    qtbot.waitUntil(vm.is_idle, timeout=5000)


def test_typed_turns_are_redacted_on_arrival_and_analysed_off_the_gui_thread(
    qtbot: QtBot, vm: ConversationsViewModel
) -> None:
    fake = CountingAssistant()
    vm.set_backend(PanelBackend(assistant=fake))  # type: ignore[arg-type]
    with qtbot.waitSignal(vm.sig_snapshot_ready, timeout=3000) as ready:
        added = vm.submit_text(f"my card is {CARD} please refund it")
    conversation_id = ready.args[0]
    assert added == ["m001"]
    assert vm.current_id == conversation_id
    stored = vm.conversation()
    assert stored is not None
    assert CARD not in stored.turns[0].text and "[CARD •••• 1111]" in stored.turns[0].text
    assert stored.turns[0].role is Role.CUSTOMER
    assert threading.get_ident() not in fake.threads
    snapshot = vm.snapshot()
    assert snapshot is not None and snapshot.turn_count == 1


def test_a_burst_of_turns_is_analysed_once_for_the_newest(
    qtbot: QtBot, vm: ConversationsViewModel
) -> None:
    fake = CountingAssistant()
    vm.set_backend(PanelBackend(assistant=fake))  # type: ignore[arg-type]
    conversation_id = vm.start_conversation("burst")
    for n in range(10):
        vm.submit_text(f"message number {n}", "customer")
    assert vm.is_busy()
    _wait_idle(qtbot, vm)
    assert fake.calls == [(conversation_id, 10)]
    snapshot = vm.snapshot()
    assert snapshot is not None and snapshot.turn_count == 10


def test_a_slow_analysis_is_superseded_by_the_newest_turn(
    qtbot: QtBot, vm: ConversationsViewModel
) -> None:
    fake = CountingAssistant(delay_s=0.15)
    vm.set_backend(PanelBackend(assistant=fake))  # type: ignore[arg-type]
    vm.start_conversation("slow")
    vm.submit_text("first")
    qtbot.waitUntil(lambda: len(fake.calls) == 1, timeout=3000)  # running now
    vm.submit_text("second")
    vm.submit_text("third")
    _wait_idle(qtbot, vm)
    snapshot = vm.snapshot()
    assert snapshot is not None and snapshot.turn_count == 3
    assert fake.calls[-1] == ("slow", 3)


def test_turns_before_the_assistant_is_ready_are_analysed_once_it_is(
    qtbot: QtBot, vm: ConversationsViewModel
) -> None:
    vm.apply_event({"conversation_id": "early", "turn_id": "t1", "role": "customer", "text": "hi"})
    assert not vm.is_ready and vm.snapshot("early") is None and vm.is_idle()
    fake = CountingAssistant()
    with qtbot.waitSignal(vm.sig_snapshot_ready, timeout=3000):
        vm.set_backend(PanelBackend(assistant=fake))  # type: ignore[arg-type]
    assert fake.calls == [("early", 1)]


def test_partial_turns_update_the_transcript_but_are_not_analysed(
    qtbot: QtBot, vm: ConversationsViewModel
) -> None:
    fake = CountingAssistant()
    vm.set_backend(PanelBackend(assistant=fake))  # type: ignore[arg-type]
    updated: list[str] = []
    vm.sig_conversation_updated.connect(updated.append)
    event = {"conversation_id": "call", "turn_id": "t1", "role": "customer", "is_final": False}
    vm.apply_event({**event, "text": "I want to"})
    vm.apply_event({**event, "text": "I want to cancel"})
    assert updated == ["call", "call"]
    conversation = vm.conversation("call")
    assert conversation is not None and conversation.pending[0].text == "I want to cancel"
    qtbot.wait(60)
    assert fake.calls == []


def test_several_conversations_are_kept_apart_and_named_after_the_customer(
    qtbot: QtBot, vm: ConversationsViewModel, hashing_backend: Any
) -> None:
    vm.set_backend(hashing_backend)
    for event in read_events(next(DEMOS.glob("02-*.jsonl"))):
        vm.apply_event(replace(event, conversation_id="vm-double-charge"))
    vm.apply_event(
        {"conversation_id": "vm-other", "turn_id": "t1", "role": "customer", "text": "hello"}
    )
    _wait_idle(qtbot, vm)
    assert vm.conversation_ids() == ("vm-double-charge", "vm-other")
    assert vm.current_id == "vm-double-charge"  # a new live conversation does not steal focus
    assert vm.label("vm-double-charge") == "Tom Whitaker"
    assert vm.label("vm-other") == "Conversation 2"
    model = vm.list_model
    assert model.value(0, ConversationListModel.CustomerRole) == "Tom Whitaker"
    other = vm.conversation("vm-other")
    assert other is not None and len(other.turns) == 1


def test_ending_a_conversation_forgets_it_and_shows_the_next(
    qtbot: QtBot, vm: ConversationsViewModel
) -> None:
    fake = CountingAssistant()
    vm.set_backend(PanelBackend(assistant=fake))  # type: ignore[arg-type]
    first = vm.start_conversation("one")
    vm.submit_text("hello")
    second = vm.start_conversation("two")
    assert vm.current_id == second
    ended: list[str] = []
    vm.sig_conversation_ended.connect(ended.append)
    vm.end_conversation()
    assert ended == [second] and vm.current_id == first
    assert vm.list_model.rowCount() == 1
    qtbot.waitUntil(lambda: fake.forgotten == [second], timeout=3000)
    _wait_idle(qtbot, vm)
    vm.end_conversation(first)
    assert vm.current_id == "" and vm.conversation() is None


def test_bad_events_are_reported_not_raised(qtbot: QtBot, vm: ConversationsViewModel) -> None:
    with qtbot.waitSignal(vm.sig_error, timeout=1000) as error:
        assert vm.apply_event({"conversation_id": "x", "turn_id": "t1", "role": "bot"}) is None
    assert error.args[0].startswith("A turn was not added: role: must be one of")
    assert vm.submit_text("   ") == []


def test_a_failing_pipeline_is_reported(qtbot: QtBot, vm: ConversationsViewModel) -> None:
    class Broken(CountingAssistant):
        def analyse(self, conversation: Conversation, *, generation: int = 0) -> Snapshot:
            raise RuntimeError("index is damaged")

    vm.set_backend(PanelBackend(assistant=Broken()))  # type: ignore[arg-type]
    with qtbot.waitSignal(vm.sig_error, timeout=3000) as error:
        vm.submit_text("hello")
    assert error.args[0] == "Analysing the conversation failed: index is damaged (RuntimeError)"
    assert vm.is_idle()


def test_pasted_exchanges_become_one_turn_per_speaker() -> None:
    pasted = (
        "[10:02] Customer: I was charged twice\n"
        "for the same bill\n"
        "Agent: Sorry about that, let me check.\n"
        "\n"
        "caller> thanks"
    )
    assert split_pasted_turns(pasted, "agent") == [
        (Role.CUSTOMER, "I was charged twice\nfor the same bill"),
        (Role.AGENT, "Sorry about that, let me check."),
        (Role.CUSTOMER, "thanks"),
    ]
    assert split_pasted_turns("just words", Role.AGENT) == [(Role.AGENT, "just words")]
    assert split_pasted_turns(" \n ", "customer") == []


def test_intent_choices_come_from_the_taxonomy_when_there_is_one() -> None:
    class Intent:
        def __init__(self, id: str, name: str) -> None:
            self.id, self.name = id, name

    class Stage:
        taxonomy = type("T", (), {"intents": (Intent("b", "Refund"), Intent("a", "Bill query"))})

    assistant = CountingAssistant()
    assert intent_choices_of(assistant) == ()  # type: ignore[arg-type]
    assistant.intents = Stage()  # type: ignore[assignment]
    assert intent_choices_of(assistant) == (("a", "Bill query"), ("b", "Refund"))  # type: ignore[arg-type]
