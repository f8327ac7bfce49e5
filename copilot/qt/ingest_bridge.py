"""The local ingest API inside the desktop app: turns posted to it appear live in the panel.

`IngestBridge` is the app's `copilot.services.engine.IngestEngine`: the same `IngestServer` that
``copilot serve`` runs over its headless engine runs here over the panel's
`ConversationsViewModel`, so a conversation pushed by a helpdesk connector shows up in the
conversation switcher and its snapshot renders, exactly as if it had been typed.

Threads: the server calls the bridge from its request threads, and those must never touch a
view-model. So:

- `submit` hands the turn to the GUI thread through a queued signal and waits (at most
  `SUBMIT_TIMEOUT_S`) for the view-model's answer: applied, partial or duplicate is decided by
  the one conversation the panel shows, never by a copy that could drift from it;
- `snapshot` and `conversation` read copies the bridge keeps under a lock, refreshed on the GUI
  thread whenever the view-model reports a change;
- `record_feedback` goes to the GUI thread, which queues the write on the runner's db lane, where
  the panel's own feedback goes (the SQLite store belongs to that thread).

`IngestApiController` starts and stops the server as the settings say (``[sources.ingest_api]``)
and reports the state for the status bar ("Ingest API :8765", or why it is off).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, Signal

from copilot.core.conversation import Conversation, Turn
from copilot.core.feedback import FeedbackAction
from copilot.core.pipeline import Snapshot
from copilot.core.protocols import FeedbackSink
from copilot.qt.conversations_vm import ConversationsViewModel
from copilot.qt.tasks import DB, TaskRunner
from copilot.services.engine import (
    MAX_TURNS_PER_CONVERSATION,
    ApplyStatus,
    EngineFullError,
    EngineUnavailableError,
    SnapshotListener,
    SubmitResult,
)
from copilot.services.ingest_server import IngestServer, ensure_token
from copilot.services.secrets import SecretStore
from copilot.services.settings import IngestApiSettings

__all__ = ["SUBMIT_TIMEOUT_S", "IngestApiController", "IngestBridge"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a request thread waits for the GUI thread to take a turn before answering 503.
SUBMIT_TIMEOUT_S = 5.0


class IngestBridge(QObject):
    """The panel's conversations seen as an ingest engine; see the module docstring.

    Create it on the GUI thread. Every public method but `close` may be called from any thread.

    Args:
        conversations: the panel's view-model (turns go in, snapshots come out).
        runner: the task runner whose db lane records feedback.
        sink: where feedback goes (the panel's sink), or None to refuse feedback.
        timeout_s: how long `submit` waits for the GUI thread.
    """

    _sig_call = Signal(object)

    def __init__(
        self,
        conversations: ConversationsViewModel,
        runner: TaskRunner,
        sink: FeedbackSink | None,
        *,
        timeout_s: float = SUBMIT_TIMEOUT_S,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._vm = conversations
        self._runner = runner
        self._sink = sink
        self._timeout_s = timeout_s
        self._owner = threading.get_ident()
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}
        self._conversations: dict[str, Conversation] = {}
        self._listeners: list[SnapshotListener] = []
        self._pending: set[Future[Any]] = set()
        self._closed = False
        # Queued explicitly: emitted on the server's threads, run on the GUI thread.
        self._sig_call.connect(self._run_call, Qt.ConnectionType.QueuedConnection)
        conversations.sig_conversation_started.connect(self._conversation_changed)
        conversations.sig_conversation_updated.connect(self._conversation_changed)
        conversations.sig_conversation_ended.connect(self._conversation_ended)
        conversations.sig_snapshot_ready.connect(self._snapshot_ready)
        for conversation_id in conversations.conversation_ids():
            self._conversation_changed(conversation_id)
            if conversations.snapshot(conversation_id) is not None:
                self._snapshot_ready(conversation_id)

    # --- the IngestEngine protocol (any thread) -----------------------------------------------

    def submit(self, turn: Turn, *, channel: str | None = None) -> SubmitResult:
        """Apply a turn to the panel's conversation (on the GUI thread) and say what it did.

        The channel is not used: the panel's pipeline takes it from the conversation itself.

        Raises:
            EngineFullError: the conversation already holds `MAX_TURNS_PER_CONVERSATION` turns.
            EngineUnavailableError: the app is closing, or its GUI thread did not answer within
                the timeout (the turn may still be applied once it does).
        """
        future = self._on_gui_thread(lambda: self._apply(turn))
        try:
            return future.result(self._timeout_s)
        except FutureTimeout:
            future.cancel()
            raise EngineUnavailableError(
                f"the co-pilot window did not take the turn within {self._timeout_s:g} s"
            ) from None

    def snapshot(self, conversation_id: str) -> Snapshot | None:
        """The panel's latest snapshot of a conversation, or None."""
        with self._lock:
            return self._snapshots.get(conversation_id)

    def conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation as the panel holds it (redacted), or None when it is not open."""
        with self._lock:
            return self._conversations.get(conversation_id)

    @property
    def accepts_feedback(self) -> bool:
        return self._sink is not None

    def record_feedback(self, action: FeedbackAction) -> Future[None]:
        """Queue an action on the db lane, where the panel's own feedback is written.

        Returns:
            A future completed once the store has it (or with the store's error).
        """
        sink = self._sink
        if sink is None:
            raise RuntimeError("feedback is not recorded by this co-pilot")
        done: Future[None] = Future()

        def queue() -> None:
            task = self._runner.run(
                DB,
                sink.record,
                action,
                on_success=lambda _result: _settle(done, None),
                on_failure=lambda error: _fail(done, error),
                description="Saving feedback from the ingest API",
            )
            if task.cancelled:
                _fail(done, EngineUnavailableError("the co-pilot is closing"))

        def not_queued(queued: Future[None]) -> None:
            if queued.cancelled():
                _fail(done, EngineUnavailableError("the co-pilot is closing"))
            elif (error := queued.exception()) is not None:
                _fail(done, error)

        self._on_gui_thread(queue).add_done_callback(not_queued)
        return done

    def add_listener(self, listener: SnapshotListener) -> Callable[[], None]:
        """Call `listener(snapshot)` (on the GUI thread) for each new snapshot of the panel.

        Returns:
            A function that removes the listener.
        """
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    # --- lifecycle (GUI thread) ---------------------------------------------------------------

    def close(self) -> None:
        """Refuse new calls and fail the waiting ones at once (the app is quitting)."""
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, set()
        for future in pending:
            _fail(future, EngineUnavailableError("the co-pilot is closing"))

    # --- crossing to the GUI thread -----------------------------------------------------------

    def _on_gui_thread(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        if threading.get_ident() == self._owner:
            # Already there (tests, or a source living on the GUI thread): waiting for a queued
            # call would deadlock.
            self._run_call((fn, future))
            return future
        with self._lock:
            if self._closed:
                future.set_exception(EngineUnavailableError("the co-pilot is closing"))
                return future
            self._pending.add(future)
        future.add_done_callback(self._forget)
        try:
            self._sig_call.emit((fn, future))
        except RuntimeError:  # the bridge's C++ object is gone: the app has quit
            _fail(future, EngineUnavailableError("the co-pilot is closing"))
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _run_call(self, call: tuple[Callable[[], Any], Future[Any]]) -> None:
        fn, future = call
        if not future.set_running_or_notify_cancel():
            return  # the request thread gave up waiting: do not apply a turn it refused
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    # --- the GUI thread's side ----------------------------------------------------------------

    def _apply(self, turn: Turn) -> SubmitResult:
        vm = self._vm
        conversation_id = turn.conversation_id
        before = vm.conversation(conversation_id)
        if (
            before is not None
            and len(before.turns) + len(before.pending) >= MAX_TURNS_PER_CONVERSATION
            and before.turn(turn.turn_id) is None
        ):
            raise EngineFullError(
                f"conversation {conversation_id!r} has reached {MAX_TURNS_PER_CONVERSATION} turns"
            )
        vm.apply_event(turn)
        after = vm.conversation(conversation_id)
        if after is None or after is before:
            status = ApplyStatus.DUPLICATE
        elif (before is not None and after.turns is before.turns) or not after.turns:
            status = ApplyStatus.PARTIAL  # only the held partial transcript changed
        else:
            status = ApplyStatus.APPLIED
        return SubmitResult(
            conversation_id, turn.turn_id, status, vm.requested_generation(conversation_id)
        )

    def _conversation_changed(self, conversation_id: str) -> None:
        conversation = self._vm.conversation(conversation_id) if conversation_id else None
        if conversation is None:
            return
        with self._lock:
            self._conversations[conversation_id] = conversation

    def _conversation_ended(self, conversation_id: str) -> None:
        with self._lock:
            self._conversations.pop(conversation_id, None)
            self._snapshots.pop(conversation_id, None)

    def _snapshot_ready(self, conversation_id: str) -> None:
        snapshot = self._vm.snapshot(conversation_id) if conversation_id else None
        if snapshot is None:
            return
        with self._lock:
            self._snapshots[conversation_id] = snapshot
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(snapshot)
            except Exception:  # a broken listener must not stop the panel's updates
                _log.exception("an ingest snapshot listener failed")


def _settle(future: Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class IngestApiController(QObject):
    """Runs the app's `IngestServer` over an `IngestBridge` as the settings say.

    Signals:
        sig_status_changed(str): what the status bar shows for the API ("Ingest API :8765",
            "" when it is off by choice, or a sentence saying why it could not start).
    """

    sig_status_changed = Signal(str)

    def __init__(
        self,
        bridge: IngestBridge,
        runner: TaskRunner,
        secrets: SecretStore,
        *,
        token_loader: Callable[[SecretStore], tuple[str, bool]] = ensure_token,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self._runner = runner
        self._secrets = secrets
        self._token_loader = token_loader
        self._wanted: IngestApiSettings | None = None
        self._token: tuple[str, bool] | None = None
        self.server: IngestServer | None = None
        self.status = ""
        self._stopped = False

    @property
    def port(self) -> int | None:
        """The port served on, or None when the API is not listening."""
        return self.server.port if self.server is not None else None

    def apply(self, settings: IngestApiSettings) -> None:
        """Serve (or stop serving) as `settings` say; a no-op when nothing changed."""
        if self._stopped or settings == self._wanted:
            return
        self._wanted = settings
        self._stop_server()
        if not settings.enabled:
            self._set_status("")
            return
        if self._token is not None:
            self._listen()
            return
        # The keyring may probe D-Bus for a third of a second: not on the GUI thread.
        self._runner.run(
            DB,
            self._token_loader,
            self._secrets,
            on_success=self._token_ready,
            on_failure=self._token_failed,
            description="Reading the ingest API token",
        )

    def stop(self) -> None:
        """Stop serving for good (the app is quitting); waiting requests are answered 503."""
        self._stopped = True
        self.bridge.close()
        self._stop_server()

    def _token_ready(self, token: tuple[str, bool]) -> None:
        self._token = token
        self._listen()

    def _token_failed(self, error: BaseException) -> None:
        self._set_status(f"Ingest API off: its token could not be read ({error})")

    def _listen(self) -> None:
        settings = self._wanted
        if self._stopped or settings is None or not settings.enabled or self._token is None:
            return
        token, saved = self._token
        server = IngestServer(
            self.bridge,
            token,
            port=settings.port,
            allowed_origins=settings.allowed_origins,
        )
        try:
            server.start()
        except OSError as exc:
            self._set_status(_listen_failure(settings.port, exc))
            return
        self.server = server
        text = f"Ingest API :{server.port}"
        if not saved:
            text += " (no keyring: the token is for this session only)"
        self._set_status(text)

    def _stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def _set_status(self, text: str) -> None:
        self.status = text
        self.sig_status_changed.emit(text)


def _listen_failure(port: int, error: OSError) -> str:
    import errno

    if error.errno == errno.EADDRINUSE:
        return (
            f"Ingest API off: port {port} is in use by another program (choose another port in"
            " the settings)"
        )
    return f"Ingest API off: cannot listen on 127.0.0.1:{port} ({error.strerror or error})"
