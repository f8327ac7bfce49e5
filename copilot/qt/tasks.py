"""The one way to run background work: lanes of worker threads, results back on the GUI thread.

Everything slow (the per-turn pipeline, loading the model, reindexing, SQLite) goes through a
`TaskRunner`; nothing else in the application creates threads, pools or executors.

Lanes:

- ``interactive``: one thread for the live conversation pipeline. One, because the agent expects
  the newest turn to be answered first and a 2-core machine has no second core to spare for it.
- ``bulk``: one thread for long jobs (model load and export, reindex). They need the model one
  after the other anyway, and must never compete with the interactive lane for both cores.
- ``db``: one thread that owns the SQLite connection (SQLite connections belong to one thread).
- ``llm``: one thread for requests to the optional language model (`copilot.qt.generative_vm`):
  they wait on the network for seconds and must hold up neither the pipeline nor a reindex.

Why one ``concurrent.futures.ThreadPoolExecutor`` per lane rather than ``QThreadPool``:

- a single-worker executor keeps the *same* thread for its whole life, so the db lane can hold a
  thread-bound SQLite connection; a ``QThreadPool`` retires idle threads after ``expiryTimeout``
  and would silently move the next query to a new thread;
- ``shutdown(wait=True, cancel_futures=True)`` drops queued work and joins the threads: after
  `TaskRunner.shutdown` no worker thread is alive, which the tests check;
- workers stay plain Python callables taking immutable inputs; no ``QRunnable`` subclasses, and
  exceptions are captured whole (with their traceback) by the runner.

Results cross to the GUI thread through a queued signal, so ``on_success`` and ``on_failure``
always run on the GUI thread and may touch widgets and view-models.

Example::

    runner.run(
        "bulk",
        load_embedder,
        "onnx",
        data_dir,
        on_success=self._embedder_ready,
        on_failure=self._embedder_failed,
        description="Loading the language model",
    )
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal

_log = logging.getLogger(__name__)

INTERACTIVE = "interactive"
BULK = "bulk"
DB = "db"
#: Requests to the optional language model: network waits of seconds, kept off the other lanes.
LLM = "llm"

#: Lane name -> number of worker threads.
LANES: Mapping[str, int] = {INTERACTIVE: 1, BULK: 1, DB: 1, LLM: 1}

#: How long a burst of coalesced requests may last before the newest one runs.
DEFAULT_DEBOUNCE_MS = 30

SuccessCallback = Callable[[Any], None]
FailureCallback = Callable[[BaseException], None]


@dataclass(eq=False)
class Task:
    """A request handed to a lane; returned by `TaskRunner.run`.

    Attributes:
        id: unique, increasing with every request.
        lane: the lane it runs on.
        description: what the user is told when it fails ("Loading the language model").
        generation_key: requests sharing a key replace each other (latest wins); None for none.
        elapsed_s: how long ``fn`` ran, set once it has finished (None before).
    """

    id: int
    lane: str
    description: str
    generation_key: str | None
    on_success: SuccessCallback | None = field(default=None, repr=False)
    on_failure: FailureCallback | None = field(default=None, repr=False)
    elapsed_s: float | None = None
    _cancelled: bool = field(default=False, repr=False)

    def cancel(self) -> None:
        """Do not run it if it has not started, and drop its result if it has."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled


@dataclass(frozen=True)
class _Outcome:
    task: Task
    ran: bool
    value: Any = None
    error: BaseException | None = None


class TaskRunner(QObject):
    """Runs callables on worker lanes and delivers their outcome on the GUI thread.

    Create it on the GUI thread, call `run` from the GUI thread, and call `shutdown` before the
    application exits.

    Signals:
        sig_task_failed(str): a readable message for a failure that had no ``on_failure``
            callback (or whose callbacks themselves raised). The main window shows it.
    """

    sig_task_failed = Signal(str)
    _sig_finished = Signal(object)

    def __init__(self, parent: QObject | None = None, *, lanes: Mapping[str, int] = LANES) -> None:
        super().__init__(parent)
        self._executors = {
            lane: ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"copilot-{lane}")
            for lane, workers in lanes.items()
        }
        self._ids = itertools.count(1)
        # generation key -> id of the newest request with that key. Written on the GUI thread,
        # read by workers (to skip stale queued work), hence the lock.
        self._latest: dict[str, int] = {}
        self._lock = threading.Lock()
        self._owner = threading.get_ident()
        self._closed = False
        # Queued explicitly: the signal is emitted from worker threads and the slot must run on
        # the thread this object lives in (the GUI thread).
        self._sig_finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @property
    def lanes(self) -> tuple[str, ...]:
        return tuple(self._executors)

    @property
    def is_shut_down(self) -> bool:
        return self._closed

    def run(
        self,
        lane: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        on_success: SuccessCallback | None = None,
        on_failure: FailureCallback | None = None,
        generation_key: str | None = None,
        description: str | None = None,
    ) -> Task:
        """Run ``fn(*args)`` on ``lane``; call back on the GUI thread with the outcome.

        Args:
            lane: ``"interactive"``, ``"bulk"`` or ``"db"``.
            fn: a blocking callable; it must not touch widgets, models or view-models.
            *args: its arguments (pass immutable values: the GUI thread keeps running).
            on_success: called with ``fn``'s return value.
            on_failure: called with the exception ``fn`` raised. Without it, the failure is
                emitted as a readable message on `sig_task_failed`.
            generation_key: latest request wins: once a newer request with the same key has been
                made, this one is skipped if it has not started and its result (or failure) is
                dropped if it has.
            description: names the work in failure messages, e.g. "Loading the language model".

        Returns:
            The `Task`, which can be cancelled. After `shutdown` the request is dropped and the
            task returned is already cancelled.

        Raises:
            RuntimeError: when called from another thread than the runner's.
            ValueError: for an unknown lane.
        """
        if threading.get_ident() != self._owner:
            raise RuntimeError("TaskRunner.run must be called from the GUI thread")
        executor = self._executors.get(lane)
        if executor is None:
            raise ValueError(f"unknown lane {lane!r} (expected one of {', '.join(self.lanes)})")
        task = Task(
            id=next(self._ids),
            lane=lane,
            description=description or _describe_callable(fn),
            generation_key=generation_key,
            on_success=on_success,
            on_failure=on_failure,
        )
        if self._closed:
            # The application is quitting: late requests (a turn arriving, a callback chaining
            # more work) are dropped rather than raising inside some slot.
            _log.debug("task runner shut down; dropping %s", task.description)
            task.cancel()
            return task
        if generation_key is not None:
            with self._lock:
                self._latest[generation_key] = task.id
        executor.submit(self._execute, task, fn, args)
        return task

    def is_stale(self, task: Task) -> bool:
        """True when a newer request with the same generation key has been made."""
        if task.generation_key is None:
            return False
        with self._lock:
            return self._latest.get(task.generation_key, task.id) != task.id

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop accepting work, drop queued work and undelivered results, stop debounce timers.

        Args:
            wait: join the worker threads (a task already running is allowed to finish).
                Tests and application exit use True, so no thread outlives the runner.
        """
        self._closed = True
        for debouncer in self.findChildren(Debouncer):
            debouncer.stop()
        for executor in self._executors.values():
            executor.shutdown(wait=wait, cancel_futures=True)

    # --- worker side --------------------------------------------------------------------------

    def _execute(self, task: Task, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self._closed or task.cancelled or self.is_stale(task):
            return  # superseded before it started: not worth a core
        started = time.perf_counter()
        try:
            outcome = _Outcome(task, ran=True, value=fn(*args))
        except BaseException as exc:  # every failure must reach the user, even SystemExit
            outcome = _Outcome(task, ran=True, error=exc)
        task.elapsed_s = time.perf_counter() - started
        try:
            self._sig_finished.emit(outcome)
        except RuntimeError:  # the runner's C++ object is gone (shutdown without waiting)
            _log.debug("task %s finished after its runner was deleted", task.description)

    # --- GUI side -----------------------------------------------------------------------------

    def _deliver(self, outcome: _Outcome) -> None:
        task = outcome.task
        if self._closed or task.cancelled:
            return
        if self.is_stale(task):
            _log.debug("dropping the stale result of %s (task %d)", task.description, task.id)
            return
        if outcome.error is None:
            if task.on_success is None:
                return
            try:
                task.on_success(outcome.value)
            except Exception as exc:
                self._report(task, exc, while_doing="showing its result")
            return
        if task.on_failure is None:
            self._report(task, outcome.error)
            return
        try:
            task.on_failure(outcome.error)
        except Exception as exc:
            self._report(task, outcome.error)
            self._report(task, exc, while_doing="reporting its failure")

    def _report(self, task: Task, error: BaseException, *, while_doing: str = "") -> None:
        message = failure_message(task.description, error, while_doing=while_doing)
        _log.error("%s", message, exc_info=(type(error), error, error.__traceback__))
        self.sig_task_failed.emit(message)


def failure_message(description: str, error: BaseException, *, while_doing: str = "") -> str:
    """A one-line message a user can read, e.g. "Loading the model failed: no file (OSError)"."""
    detail = str(error).strip() or "no details"
    where = f" while {while_doing}" if while_doing else ""
    return f"{description} failed{where}: {detail} ({type(error).__name__})"


def _describe_callable(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"Background task {name}"


@dataclass(frozen=True)
class _Request:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    on_success: SuccessCallback | None
    on_failure: FailureCallback | None
    description: str | None


class Debouncer(QObject):
    """Coalesces bursts of requests per key into one run of the newest.

    The first request for a key opens a window of ``delay_ms``; requests arriving in that window
    replace the pending one; when the window closes the newest runs on ``lane`` with the key as its
    generation key, so a result from an earlier window is also dropped once a newer run has
    started. The window is not restarted by each request, so a steady stream of partial
    transcripts still gets an answer every ``delay_ms`` instead of never.

    It is a child of the runner: `TaskRunner.shutdown` stops its timers.
    """

    def __init__(
        self, runner: TaskRunner, lane: str, *, delay_ms: int = DEFAULT_DEBOUNCE_MS
    ) -> None:
        super().__init__(runner)
        if lane not in runner.lanes:
            raise ValueError(f"unknown lane {lane!r}")
        self._runner = runner
        self._lane = lane
        self._delay_ms = delay_ms
        self._pending: dict[str, _Request] = {}
        self._timers: dict[str, QTimer] = {}

    @property
    def delay_ms(self) -> int:
        return self._delay_ms

    def pending_keys(self) -> tuple[str, ...]:
        """Keys with a request waiting for its window to close."""
        return tuple(self._pending)

    def submit(
        self,
        key: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        on_success: SuccessCallback | None = None,
        on_failure: FailureCallback | None = None,
        description: str | None = None,
    ) -> None:
        """Request ``fn(*args)`` for ``key``; runs within ``delay_ms`` unless replaced first.

        Arguments are those of `TaskRunner.run`; ``key`` becomes the generation key.
        """
        if self._runner.is_shut_down:
            return  # quitting: see `TaskRunner.run`
        self._pending[key] = _Request(fn, args, on_success, on_failure, description)
        timer = self._timers.get(key)
        if timer is None:
            timer = QTimer(self)
            timer.setSingleShot(True)
            timer.timeout.connect(lambda key=key: self._fire(key))
            self._timers[key] = timer
        if not timer.isActive():
            timer.start(self._delay_ms)

    def flush(self, key: str) -> Task | None:
        """Run the pending request for ``key`` now (e.g. on a final turn); None if none."""
        timer = self._timers.get(key)
        if timer is not None:
            timer.stop()
        return self._fire(key)

    def cancel(self, key: str) -> None:
        """Forget the pending request for ``key`` (e.g. the conversation was closed)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.stop()
            timer.deleteLater()
        self._pending.pop(key, None)

    def stop(self) -> None:
        """Stop every timer and drop every pending request."""
        for key in list(self._timers):
            self.cancel(key)
        self._pending.clear()

    def _fire(self, key: str) -> Task | None:
        request = self._pending.pop(key, None)
        if request is None or self._runner.is_shut_down:
            return None
        return self._runner.run(
            self._lane,
            request.fn,
            *request.args,
            on_success=request.on_success,
            on_failure=request.on_failure,
            generation_key=key,
            description=request.description,
        )
