"""The app's side of the ingest API: turns from server threads reach the panel's view-model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest
from fixtures.snapshots import counting_snapshot
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from copilot.core.conversation import Conversation, parse_turn_event
from copilot.core.feedback import FeedbackAction, FeedbackKind
from copilot.core.pipeline import Snapshot
from copilot.qt.conversations_vm import ConversationsViewModel, PanelBackend
from copilot.qt.ingest_bridge import IngestApiController, IngestBridge
from copilot.qt.tasks import TaskRunner
from copilot.services.engine import ApplyStatus, EngineUnavailableError, SubmitResult
from copilot.services.feedback_memory import MemoryFeedbackSink
from copilot.services.secrets import SecretStore
from copilot.services.settings import IngestApiSettings

pytestmark = pytest.mark.gui

T = TypeVar("T")
TOKEN = "bridge-token-" + "z" * 32


class CountingAssistant:
    """Stands in for `Assistant`: snapshots that count the turns."""

    intents = None

    def analyse(self, conversation: Conversation, *, generation: int = 0) -> Snapshot:
        return counting_snapshot(conversation, generation, created=conversation.turns[-1].ts)

    def forget(self, conversation_id: str) -> None:
        pass


@pytest.fixture
def runner(qapp: QApplication) -> Iterator[TaskRunner]:
    runner = TaskRunner()
    yield runner
    runner.shutdown(wait=True)


@pytest.fixture
def vm(runner: TaskRunner) -> ConversationsViewModel:
    vm = ConversationsViewModel(runner, debounce_ms=5)
    vm.set_backend(PanelBackend(assistant=CountingAssistant()))  # type: ignore[arg-type]
    return vm


class ThreadRecordingSink(MemoryFeedbackSink):
    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    def record(self, action: FeedbackAction) -> None:
        self.threads.add(threading.current_thread().name)
        super().record(action)


@pytest.fixture
def sink() -> ThreadRecordingSink:
    return ThreadRecordingSink()


@pytest.fixture
def bridge(
    vm: ConversationsViewModel, runner: TaskRunner, sink: ThreadRecordingSink
) -> Iterator[IngestBridge]:
    bridge = IngestBridge(vm, runner, sink)
    yield bridge
    bridge.close()


def on_thread(qtbot: QtBot, fn: Callable[[], T], timeout_ms: int = 5000) -> T:
    """Run `fn` on a plain thread (as the server does) while the GUI thread keeps running."""
    future: Future[T] = Future()

    def work() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    thread = threading.Thread(target=work, name="fake-request")
    thread.start()
    qtbot.waitUntil(future.done, timeout=timeout_ms)
    thread.join()
    return future.result()


def event(conversation: str, turn_id: str, text: str, **extra: Any) -> Any:
    return parse_turn_event(
        {"conversation_id": conversation, "turn_id": turn_id, "role": "customer", "text": text}
        | extra
    )


def test_a_submitted_turn_reaches_the_view_model_on_the_gui_thread(
    qtbot: QtBot, bridge: IngestBridge, vm: ConversationsViewModel
) -> None:
    seen_on: list[int] = []
    vm.sig_conversation_updated.connect(lambda _cid: seen_on.append(threading.get_ident()))
    result = on_thread(qtbot, lambda: bridge.submit(event("b-1", "t1", "my bill is wrong")))
    assert result == SubmitResult("b-1", "t1", ApplyStatus.APPLIED, result.generation)
    assert "b-1" in vm.conversation_ids()
    assert seen_on == [threading.get_ident()]  # the GUI thread, never the request's
    assert vm.list_model.rowCount() == 1


def test_repeats_and_partials_are_answered_as_the_engine_would(
    qtbot: QtBot, bridge: IngestBridge, vm: ConversationsViewModel
) -> None:
    def statuses(*turns: Any) -> list[str]:
        return [on_thread(qtbot, lambda t=t: bridge.submit(t)).status.value for t in turns]

    assert statuses(
        event("b-2", "t1", "hello"),
        event("b-2", "t1", "hello"),
        event("b-2", "t2", "I was char", is_final=False),
        event("b-2", "t2", "I was charged", is_final=False),
        event("b-2", "t2", "I was charged twice"),
        event("b-2", "t2", "I was charged", is_final=False),
        event("b-new", "t1", "just start", is_final=False),
    ) == ["applied", "duplicate", "partial", "partial", "applied", "duplicate", "partial"]
    conversation = vm.conversation("b-2")
    assert conversation is not None
    assert [t.text for t in conversation.turns] == ["hello", "I was charged twice"]


def test_a_snapshot_with_the_returned_generation_includes_the_turn(
    qtbot: QtBot, bridge: IngestBridge, vm: ConversationsViewModel
) -> None:
    pushed: list[Snapshot] = []
    bridge.add_listener(pushed.append)
    assert bridge.snapshot("b-3") is None
    for n in range(1, 4):
        result = on_thread(qtbot, lambda n=n: bridge.submit(event("b-3", f"t{n}", f"turn {n}")))
        qtbot.waitUntil(
            lambda r=result: (
                (s := bridge.snapshot("b-3")) is not None and s.generation >= r.generation
            ),
            timeout=5000,
        )
        snapshot = bridge.snapshot("b-3")
        assert snapshot is not None and snapshot.last_turn_id == f"t{n}"
    assert pushed and pushed[-1] is vm.snapshot("b-3")
    conversation = on_thread(qtbot, lambda: bridge.conversation("b-3"))
    assert conversation is not None and len(conversation.turns) == 3


def test_an_ended_conversation_is_gone_from_the_api(
    qtbot: QtBot, bridge: IngestBridge, vm: ConversationsViewModel
) -> None:
    on_thread(qtbot, lambda: bridge.submit(event("b-4", "t1", "hello")))
    qtbot.waitUntil(lambda: bridge.snapshot("b-4") is not None, timeout=5000)
    vm.end_conversation("b-4")
    assert bridge.snapshot("b-4") is None and bridge.conversation("b-4") is None


def test_a_busy_gui_thread_answers_unavailable_and_the_turn_is_not_applied_later(
    qapp: QApplication, vm: ConversationsViewModel, runner: TaskRunner
) -> None:
    bridge = IngestBridge(vm, runner, None, timeout_s=0.2)
    outcome: list[BaseException | SubmitResult] = []

    def work() -> None:
        try:
            outcome.append(bridge.submit(event("b-busy", "t1", "hello")))
        except EngineUnavailableError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(5)  # the GUI thread is "busy": it processes no events meanwhile
    assert isinstance(outcome[0], EngineUnavailableError)
    qapp.processEvents()
    # The client was told it failed: applying it now would surprise a client that retries.
    assert "b-busy" not in vm.conversation_ids()


def test_after_close_calls_fail_at_once(qtbot: QtBot, bridge: IngestBridge) -> None:
    bridge.close()
    started = time.monotonic()
    with pytest.raises(EngineUnavailableError):
        on_thread(qtbot, lambda: bridge.submit(event("b-closed", "t1", "hello")))
    assert time.monotonic() - started < 1


def test_feedback_is_written_by_the_db_lane_into_the_panels_sink(
    qtbot: QtBot, bridge: IngestBridge, sink: ThreadRecordingSink
) -> None:
    action = FeedbackAction(
        kind=FeedbackKind.ACCEPT,
        conversation_id="b-5",
        item_id="tpl-1",
        suggestion_id="s-1",
        sent_text="Sorry about that",
        edit_distance=0,
    )
    assert bridge.accepts_feedback
    future = on_thread(qtbot, lambda: bridge.record_feedback(action))
    qtbot.waitUntil(future.done, timeout=5000)
    assert future.exception() is None
    assert sink.actions == (action,)
    assert sink.threads == {"copilot-db_0"}  # the thread that owns the feedback store


def test_without_a_sink_feedback_is_refused(vm: ConversationsViewModel, runner: TaskRunner) -> None:
    assert not IngestBridge(vm, runner, None).accepts_feedback


# --- the controller ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def controller(bridge: IngestBridge, runner: TaskRunner) -> Iterator[IngestApiController]:
    controller = IngestApiController(
        bridge, runner, SecretStore(), token_loader=lambda _store: (TOKEN, True)
    )
    yield controller
    controller.stop()


def test_the_controller_serves_on_the_settings_port_and_says_so(
    qtbot: QtBot, controller: IngestApiController
) -> None:
    port = _free_port()
    with qtbot.waitSignal(controller.sig_status_changed, timeout=5000) as status:
        controller.apply(IngestApiSettings(enabled=True, port=port))
    assert status.args == [f"Ingest API :{port}"]
    assert controller.port == port
    with qtbot.waitSignal(controller.sig_status_changed, timeout=5000) as status:
        controller.apply(IngestApiSettings(enabled=False, port=port))
    assert status.args == [""] and controller.port is None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # released


def test_a_port_in_use_is_reported_and_nothing_else_breaks(
    qtbot: QtBot, controller: IngestApiController
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with qtbot.waitSignal(controller.sig_status_changed, timeout=5000) as status:
            controller.apply(IngestApiSettings(enabled=True, port=port))
    assert f"port {port} is in use" in status.args[0]
    assert controller.port is None
    other = _free_port()
    with qtbot.waitSignal(controller.sig_status_changed, timeout=5000) as status:
        controller.apply(IngestApiSettings(enabled=True, port=other))
    assert status.args == [f"Ingest API :{other}"]
