"""The task runner: results on the GUI thread, failures always reported, latest request wins."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from copilot.qt.tasks import BULK, DB, INTERACTIVE, Debouncer, TaskRunner, failure_message

pytestmark = pytest.mark.gui


@pytest.fixture
def runner(qapp: Any) -> Iterator[TaskRunner]:
    runner = TaskRunner()
    yield runner
    runner.shutdown(wait=True)


def test_result_is_delivered_on_the_gui_thread(qtbot: QtBot, runner: TaskRunner) -> None:
    gui_thread = threading.get_ident()
    seen: dict[str, Any] = {}

    def work(a: int, b: int) -> int:
        seen["worker"] = threading.get_ident()
        seen["worker_name"] = threading.current_thread().name
        return a + b

    def done(value: int) -> None:
        seen["value"] = value
        seen["callback"] = threading.get_ident()

    runner.run(INTERACTIVE, work, 2, 3, on_success=done)
    qtbot.waitUntil(lambda: "value" in seen, timeout=2000)
    assert seen["value"] == 5
    assert seen["worker"] != gui_thread
    assert seen["worker_name"].startswith("copilot-interactive")
    assert seen["callback"] == gui_thread


def test_the_db_lane_always_uses_the_same_single_thread(qtbot: QtBot, runner: TaskRunner) -> None:
    threads: list[int] = []
    for _ in range(5):
        runner.run(DB, threading.get_ident, on_success=threads.append)
    qtbot.waitUntil(lambda: len(threads) == 5, timeout=2000)
    assert len(set(threads)) == 1


def test_lanes_run_independently(qtbot: QtBot, runner: TaskRunner) -> None:
    """A long bulk job does not hold up the interactive lane."""
    release = threading.Event()
    results: list[str] = []
    runner.run(BULK, lambda: release.wait(5) and "bulk", on_success=results.append)
    runner.run(INTERACTIVE, lambda: "interactive", on_success=results.append)
    qtbot.waitUntil(lambda: results == ["interactive"], timeout=2000)
    release.set()
    qtbot.waitUntil(lambda: results == ["interactive", "bulk"], timeout=2000)


def test_failure_reaches_on_failure_on_the_gui_thread(qtbot: QtBot, runner: TaskRunner) -> None:
    errors: list[tuple[BaseException, int]] = []

    def broken() -> None:
        raise FileNotFoundError("no exported ONNX model at /x")

    with qtbot.assertNotEmitted(runner.sig_task_failed, wait=100):
        runner.run(BULK, broken, on_failure=lambda exc: errors.append((exc, threading.get_ident())))
        qtbot.waitUntil(lambda: bool(errors), timeout=2000)
    error, thread = errors[0]
    assert isinstance(error, FileNotFoundError)
    assert thread == threading.get_ident()


def test_failure_without_handler_becomes_a_readable_message(
    qtbot: QtBot, runner: TaskRunner, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise ValueError("port 99999 is out of range")

    with qtbot.waitSignal(runner.sig_task_failed, timeout=2000) as blocker:
        runner.run(BULK, broken, description="Starting the ingest API")
    assert blocker.args == [
        "Starting the ingest API failed: port 99999 is out of range (ValueError)"
    ]
    assert "port 99999" in caplog.text  # and logged with its traceback


def test_a_crashing_success_callback_is_reported_not_swallowed(
    qtbot: QtBot, runner: TaskRunner
) -> None:
    def show(_value: object) -> None:
        raise KeyError("section")

    with qtbot.waitSignal(runner.sig_task_failed, timeout=2000) as blocker:
        runner.run(INTERACTIVE, lambda: 1, on_success=show, description="Updating the panel")
    assert blocker.args[0].startswith("Updating the panel failed while showing its result")


def test_stale_generation_result_is_dropped(qtbot: QtBot, runner: TaskRunner) -> None:
    """Two requests for one conversation: only the newest result is shown."""
    gate = threading.Event()
    shown: list[str] = []
    failures: list[BaseException] = []

    def slow(label: str) -> str:
        gate.wait(5)
        return label

    first = runner.run(
        BULK,
        slow,
        "old",
        on_success=shown.append,
        on_failure=failures.append,
        generation_key="conv-42",
    )
    # The first is running (blocked on the gate) when the newer request arrives.
    qtbot.wait(20)
    second = runner.run(
        BULK,
        slow,
        "new",
        on_success=shown.append,
        on_failure=failures.append,
        generation_key="conv-42",
    )
    assert runner.is_stale(first) and not runner.is_stale(second)
    gate.set()
    qtbot.waitUntil(lambda: shown == ["new"], timeout=2000)
    qtbot.wait(50)
    assert shown == ["new"] and not failures


def test_stale_queued_request_is_never_run(qtbot: QtBot, runner: TaskRunner) -> None:
    gate = threading.Event()
    ran: list[str] = []
    shown: list[str] = []

    def job(label: str) -> str:
        ran.append(label)
        gate.wait(5)
        return label

    runner.run(INTERACTIVE, job, "blocker", on_success=shown.append)
    for turn in range(5):  # queued behind the blocker, each superseding the previous
        runner.run(INTERACTIVE, job, f"turn-{turn}", on_success=shown.append, generation_key="c1")
    gate.set()
    qtbot.waitUntil(lambda: shown == ["blocker", "turn-4"], timeout=2000)
    assert ran == ["blocker", "turn-4"]


def test_other_keys_are_not_affected(qtbot: QtBot, runner: TaskRunner) -> None:
    shown: list[str] = []
    runner.run(INTERACTIVE, lambda: "a", on_success=shown.append, generation_key="conv-a")
    runner.run(INTERACTIVE, lambda: "b", on_success=shown.append, generation_key="conv-b")
    qtbot.waitUntil(lambda: sorted(shown) == ["a", "b"], timeout=2000)


def test_cancelled_task_delivers_nothing(qtbot: QtBot, runner: TaskRunner) -> None:
    gate = threading.Event()
    shown: list[str] = []
    task = runner.run(BULK, lambda: gate.wait(5) and "done", on_success=shown.append)
    task.cancel()
    gate.set()
    runner.run(BULK, lambda: "after", on_success=shown.append)
    qtbot.waitUntil(lambda: shown == ["after"], timeout=2000)


def test_burst_coalesces_into_one_run_of_the_newest(qtbot: QtBot, runner: TaskRunner) -> None:
    debouncer = Debouncer(runner, INTERACTIVE, delay_ms=30)
    ran: list[int] = []
    shown: list[int] = []

    def pipeline(turn: int) -> int:
        ran.append(turn)
        return turn

    for turn in range(10):  # ten partial transcripts arriving at once
        debouncer.submit("conv-1", pipeline, turn, on_success=shown.append)
    assert debouncer.pending_keys() == ("conv-1",)
    qtbot.waitUntil(lambda: shown == [9], timeout=2000)
    qtbot.wait(60)
    assert ran == [9] and shown == [9]
    assert debouncer.pending_keys() == ()


def test_a_steady_stream_still_gets_answers(qtbot: QtBot, runner: TaskRunner) -> None:
    """The window is not restarted by each request: updates keep coming during a burst."""
    debouncer = Debouncer(runner, INTERACTIVE, delay_ms=30)
    shown: list[int] = []
    deadline = time.monotonic() + 0.25
    turn = 0
    while time.monotonic() < deadline:
        debouncer.submit("conv-1", lambda t: t, turn, on_success=shown.append)
        turn += 1
        qtbot.wait(5)
    qtbot.waitUntil(lambda: bool(shown) and shown[-1] == turn - 1, timeout=2000)
    assert len(shown) >= 3  # roughly one per 30 ms window, never one per request
    assert len(shown) < turn


def test_flush_runs_the_pending_request_now(qtbot: QtBot, runner: TaskRunner) -> None:
    debouncer = Debouncer(runner, INTERACTIVE, delay_ms=10_000)
    shown: list[str] = []
    debouncer.submit("conv-1", lambda: "final turn", on_success=shown.append)
    task = debouncer.flush("conv-1")
    assert task is not None and task.generation_key == "conv-1"
    qtbot.waitUntil(lambda: shown == ["final turn"], timeout=2000)


def test_shutdown_joins_every_thread_and_stops_timers(qtbot: QtBot, qapp: Any) -> None:
    runner = TaskRunner()
    debouncer = Debouncer(runner, INTERACTIVE, delay_ms=10_000)
    started = threading.Event()

    def slow() -> str:
        started.set()
        time.sleep(0.1)
        return "late"

    shown: list[str] = []
    for lane in runner.lanes:
        runner.run(lane, threading.get_ident)
    runner.run(BULK, slow, on_success=shown.append)
    debouncer.submit("conv-1", lambda: "never", on_success=shown.append)
    assert started.wait(2)
    runner.shutdown(wait=True)

    assert not [t for t in threading.enumerate() if t.name.startswith("copilot-")]
    assert debouncer.pending_keys() == ()
    qtbot.wait(50)
    assert shown == []  # undelivered results are dropped after shutdown
    late = runner.run(BULK, lambda: "too late", on_success=shown.append)
    debouncer.submit("conv-2", lambda: "too late", on_success=shown.append)
    assert late.cancelled and debouncer.pending_keys() == ()
    qtbot.wait(50)
    assert shown == []  # requests after shutdown are dropped, not raised in some slot
    runner.shutdown(wait=True)  # idempotent


def test_run_rejects_unknown_lane_and_other_threads(runner: TaskRunner) -> None:
    with pytest.raises(ValueError, match="unknown lane"):
        runner.run("gpu", lambda: None)
    errors: list[BaseException] = []

    def from_worker() -> None:
        try:
            runner.run(BULK, lambda: None)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=from_worker)
    thread.start()
    thread.join()
    assert errors and "GUI thread" in str(errors[0])


def test_failure_message_is_readable() -> None:
    assert failure_message("Loading", OSError()) == "Loading failed: no details (OSError)"
