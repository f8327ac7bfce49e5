"""The snapshot view-model: what is recorded without a click, drafts, handover, plumbing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from copilot.core.feedback import FeedbackAction, FeedbackKind
from copilot.qt.conversations_vm import ConversationsViewModel
from copilot.qt.snapshot_vm import SnapshotViewModel
from copilot.qt.tasks import TaskRunner
from copilot.services.feedback_memory import MemoryFeedbackSink
from copilot.services.transcripts import read_events

pytestmark = pytest.mark.gui

DEMOS = Path(__file__).resolve().parents[3] / "knowledge" / "demos"
_ids = itertools.count(1)


class StoreLike(MemoryFeedbackSink):
    """A sink that, like the SQLite store, also wants to know when a conversation ends."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: list[str] = []

    def end_conversation(self, conversation_id: str) -> int:
        self.ended.append(conversation_id)
        return 0


@pytest.fixture
def runner(qapp: Any) -> Iterator[TaskRunner]:
    runner = TaskRunner()
    yield runner
    runner.shutdown(wait=True)


@pytest.fixture
def setup(
    runner: TaskRunner, hashing_backend: Any
) -> tuple[ConversationsViewModel, SnapshotViewModel, StoreLike, list[str]]:
    conversations = ConversationsViewModel(runner, debounce_ms=5)
    conversations.set_backend(hashing_backend)
    sink = StoreLike()
    copied: list[str] = []
    vm = SnapshotViewModel(
        conversations, runner, sink, copy=copied.append, agent_id="agent-7", queue="billing"
    )
    return conversations, vm, sink, copied


def _replay(qtbot: QtBot, conversations: ConversationsViewModel, demo: str, n: int = 99) -> str:
    conversation_id = f"vm-{demo}-{next(_ids)}"
    for event in list(read_events(next(DEMOS.glob(f"{demo}*.jsonl"))))[:n]:
        conversations.apply_event(replace(event, conversation_id=conversation_id))
    qtbot.waitUntil(
        lambda: conversations.is_idle() and conversations.snapshot(conversation_id) is not None,
        timeout=5000,
    )
    return conversation_id


def _recorded(qtbot: QtBot, sink: MemoryFeedbackSink, kind: FeedbackKind) -> list[FeedbackAction]:
    qtbot.waitUntil(lambda: bool(sink.of_kind(kind)), timeout=3000)
    qtbot.wait(20)  # anything else queued on the db lane
    return list(sink.of_kind(kind))


def test_suggestions_and_flags_shown_are_recorded_once_per_conversation(
    qtbot: QtBot, setup: Any
) -> None:
    conversations, vm, sink, _ = setup
    conversation_id = _replay(qtbot, conversations, "05-")
    snapshot = vm.snapshot
    shown = _recorded(qtbot, sink, FeedbackKind.SUGGESTION_SHOWN)
    assert [(a.suggestion_id, a.rank) for a in shown] == [
        (s.id, n) for n, s in enumerate(snapshot.suggestions, start=1)
    ]
    assert all(a.agent_id == "agent-7" and a.latency_ms is not None for a in shown)
    assert all(a.queue == "billing" for a in shown)
    flags = _recorded(qtbot, sink, FeedbackKind.FLAG_SHOWN)
    kinds = [a.flag_kind for a in flags if a.flag_kind]
    assert kinds == [str(f.kind) for f in snapshot.flags]
    assert any(a.flag_rule for a in flags)  # the policy breach
    before = len(sink)
    conversations.submit_text("Are you still there?", "customer", conversation_id)
    qtbot.waitUntil(lambda: vm.snapshot is not snapshot and conversations.is_idle(), timeout=3000)
    qtbot.wait(30)
    again = [
        a
        for a in sink.actions[before:]
        if a.kind in (FeedbackKind.SUGGESTION_SHOWN, FeedbackKind.FLAG_SHOWN)
        and (a.suggestion_id in {s.id for s in snapshot.suggestions} or a.flag_kind)
    ]
    assert again == []


def test_a_turn_without_a_confident_article_is_recorded_as_a_knowledge_gap(
    qtbot: QtBot, setup: Any
) -> None:
    conversations, vm, sink, _ = setup
    conversations.start_conversation(f"vm-gap-{next(_ids)}")
    conversations.submit_text("zxq wibble frobnicate the quantum llama", "customer")
    qtbot.waitUntil(lambda: vm.snapshot is not None, timeout=3000)
    # The hashing embedder is deterministic: nonsense words find nothing confident.
    assert not vm.snapshot.retrieval_confident
    (miss,) = _recorded(qtbot, sink, FeedbackKind.RETRIEVAL_MISS)
    assert miss.query == "zxq wibble frobnicate the quantum llama"


def test_ending_a_conversation_tells_a_store_that_keeps_conversations(
    qtbot: QtBot, setup: Any
) -> None:
    conversations, _vm, sink, _ = setup
    conversation_id = _replay(qtbot, conversations, "02-", 3)
    conversations.end_conversation(conversation_id)
    qtbot.waitUntil(lambda: sink.ended == [conversation_id], timeout=3000)


def test_the_draft_check_reports_policy_problems_as_the_agent_types(
    qtbot: QtBot, setup: Any
) -> None:
    conversations, vm, _sink, _ = setup
    _replay(qtbot, conversations, "05-")
    assert vm.start_edit(0) == vm.snapshot.suggestions[0].text
    with qtbot.waitSignal(vm.sig_draft_findings, timeout=3000) as first:
        pass
    assert first.args[0] == ()
    with qtbot.waitSignal(vm.sig_draft_findings, timeout=3000) as checked:
        vm.check_draft("I guarantee it'll definitely be refunded by Friday.")
    assert any(f.severity == "warning" for f in checked.args[0])
    vm.cancel_edit()
    assert vm.editing_row == -1 and vm.draft_findings == ()


def test_the_handover_note_names_the_customer_the_reason_and_what_was_sent(
    qtbot: QtBot, setup: Any
) -> None:
    conversations, vm, _sink, copied = setup
    _replay(qtbot, conversations, "05-")
    vm.accept(0)
    title = vm.snapshot.suggestions[0].title
    note = vm.copy_handover()
    assert note is not None and copied[-1] == note
    assert "Legal threat" in note and "Nadia Rahman" in note
    assert f"Sent suggested reply: {title}" in note


def test_there_is_no_handover_before_the_first_snapshot(setup: Any) -> None:
    conversations, vm, _sink, copied = setup
    conversations.start_conversation(f"vm-empty-{next(_ids)}")
    notices: list[str] = []
    vm.sig_notice.connect(notices.append)
    assert vm.copy_handover() is None
    assert copied == [] and notices == ["No handover note yet: wait for the first analysis."]


def test_switching_conversation_shows_its_own_snapshot_and_records_a_pending_discard(
    qtbot: QtBot, setup: Any
) -> None:
    conversations, vm, sink, _ = setup
    first = _replay(qtbot, conversations, "05-")
    second = _replay(qtbot, conversations, "02-", 7)
    assert vm.conversation_id == first  # a new conversation does not steal the screen
    vm.discard(0)
    assert vm.discard_pending
    conversations.set_current(second)
    assert vm.snapshot.conversation_id == second and not vm.discard_pending
    (discard,) = _recorded(qtbot, sink, FeedbackKind.DISCARD)
    assert discard.conversation_id == first and discard.reason is None
    assert vm.summary_rows()[0][0] == "Issue"
    assert vm.transcript_rows()[0][0] == "Customer"
