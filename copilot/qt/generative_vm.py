"""The optional language model, wired in after the offline snapshot: never before, never blocking.

`GenerativeViewModel` follows a `ConversationsViewModel`. When the backend is on (settings
``[llm] enabled``) and a new offline snapshot has been shown, it

1. builds the prompt and sends it on the ``llm`` lane (the turns redacted again and the
   snapshot's retrieved passages, `copilot.core.generative.build_request`; then
   `copilot.services.llm`, blocking network I/O on its own thread, so neither the GUI, the
   per-turn pipeline nor a reindex waits for it);
2. screens the answer on the ``interactive`` lane, where the policy spec is used by the
   pipeline and the draft editor too (citations, policy, card-number guard, grounding:
   `copilot.core.generative.screen_answer`; a millisecond or two);
3. if anything passed, hands the conversations view-model a copy of the offline snapshot with
   the generated summary and drafts (`ConversationsViewModel.replace_snapshot`), which the panel
   shows like any snapshot, the generated parts labelled AI-generated.

Newest wins: a newer offline snapshot of the conversation cancels the request in flight (between
streamed chunks), the task runner drops its late result, and an answer is only applied to the
offline snapshot it was asked for. A timeout, an HTTP error, a refusal or an unusable answer
leaves the offline result on screen and sets the status to `UNAVAILABLE`, which the panel shows
as one small label ("AI unavailable — offline result"), the reason in its tooltip.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from copilot.core.generative import (
    AI_LABEL,
    ANSWER_SCHEMA,
    ASK_DEBOUNCE_MS,
    GeneratedAnswer,
    GenerationRequest,
    apply_answer,
    bind_draft_check,
    build_request,
    screen_answer,
)
from copilot.core.pipeline import Snapshot
from copilot.qt.conversations_vm import ConversationsViewModel
from copilot.qt.tasks import BULK, INTERACTIVE, LLM, Debouncer, TaskRunner

_log = logging.getLogger(__name__)

__all__ = [
    "GENERATED",
    "OFF",
    "PENDING",
    "STATUS_NOTE",
    "UNAVAILABLE",
    "UNAVAILABLE_TEXT",
    "GenerativeViewModel",
    "status_of",
]

OFF = "off"
PENDING = "pending"
GENERATED = "generated"
UNAVAILABLE = "unavailable"
UNAVAILABLE_TEXT = "AI unavailable — offline result"
#: The conversation note (`ConversationsViewModel.note`) holding the status for the panel.
STATUS_NOTE = "ai_status"

ClientFactory = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class AiStatus:
    """Where the generative backend is for one offline snapshot (its `generation`)."""

    generation: int
    status: str
    detail: str = ""

    @property
    def text(self) -> str:
        """The label the panel shows ("" when nothing needs saying)."""
        if self.status == UNAVAILABLE:
            return UNAVAILABLE_TEXT
        if self.status == GENERATED:
            return AI_LABEL
        return ""


def status_of(conversations: ConversationsViewModel, conversation_id: str) -> AiStatus | None:
    """The generative status of the snapshot on screen for a conversation, or None."""
    status = conversations.note(conversation_id, STATUS_NOTE)
    snapshot = conversations.snapshot(conversation_id)
    if not isinstance(status, AiStatus) or snapshot is None:
        return None
    return status if status.generation == snapshot.generation else None


class _ClientHolder:
    """The client of one settings value; created and used on the llm lane's thread only."""

    def __init__(self, settings: Any, factory: ClientFactory) -> None:
        self.settings = settings
        self._factory = factory
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            self._client = self._factory(self.settings)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def abort(self) -> None:
        """Close the connection under a request in flight (quitting: from the GUI thread), so
        joining the llm lane does not wait for a slow endpoint's timeout."""
        client = self._client
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # a half-closed connection must not stop the quit
                _log.debug("closing the LLM client while in use: %s", exc)


def _default_factory(settings: Any) -> Any:
    # Imported here: httpx and the keyring must not load before the window has painted.
    from copilot.services.llm import client_from_settings
    from copilot.services.secrets import SecretStore

    return client_from_settings(settings, SecretStore())


def _ask(
    holder: _ClientHolder,
    turns: tuple[Any, ...],
    snapshot: Snapshot,
    company: str,
    cancel: threading.Event,
) -> tuple[GenerationRequest, Any]:
    """Worker (llm lane): build the prompt (redacting every turn again costs milliseconds: not
    on the GUI thread) and send it; returns the request and the `ChatReply`."""
    request = build_request(
        turns,
        snapshot.hits,
        conversation_id=snapshot.conversation_id,
        generation=snapshot.generation,
        company=company,
    )
    reply = holder.client().complete(
        request.messages(), schema=ANSWER_SCHEMA, cancelled=cancel.is_set
    )
    return request, reply


def _screen(
    content: str,
    model: str,
    request: GenerationRequest,
    snapshot: Snapshot,
    spec: Any,
    turns: tuple[Any, ...],
) -> GeneratedAnswer:
    """Worker (interactive lane): keep what passes the guards."""
    check = None
    if spec is not None:
        check = bind_draft_check(
            spec,
            turns=turns,
            flags=tuple(snapshot.flags),
            history=tuple(snapshot.signals.history) if snapshot.signals else (),
            intent=snapshot.intent.intent if snapshot.intent else None,
        )
    return screen_answer(
        content, request, draft_check=check, base_summary=snapshot.summary, model=model
    )


class GenerativeViewModel(QObject):
    """Asks the language model after each offline snapshot and shows what passes the guards.

    Args:
        conversations: the open conversations (their snapshots are augmented in place).
        runner: the application's task runner (lanes ``llm`` and ``interactive``).
        settings: the `copilot.services.settings.LlmSettings`; None or disabled does nothing.
        client_factory: builds a chat client from the settings on the llm lane (tests pass one
            for a fake server); the default reads the API key from the keyring.
        company: named in the model's instruction.
        debounce_ms: how long a burst of offline snapshots is coalesced before asking.

    Signals:
        sig_status_changed(str): the status of that conversation changed.
        sig_answer_screened(str, object): a `GeneratedAnswer` passed (or failed) the guards for
            that conversation (tests and logs read what was dropped).
    """

    sig_status_changed = Signal(str)
    sig_answer_screened = Signal(str, object)

    def __init__(
        self,
        conversations: ConversationsViewModel,
        runner: TaskRunner,
        *,
        settings: Any = None,
        client_factory: ClientFactory | None = None,
        company: str = "",
        debounce_ms: int = ASK_DEBOUNCE_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._conversations = conversations
        self._runner = runner
        self._factory = client_factory or _default_factory
        self._company = company
        self._lane = LLM if LLM in runner.lanes else BULK
        self._debouncer = Debouncer(runner, self._lane, delay_ms=debounce_ms)
        self._holder: _ClientHolder | None = None
        self._settings: Any = None
        self._cancels: dict[str, threading.Event] = {}
        self._produced: dict[str, Snapshot] = {}
        self._answers: dict[str, tuple[tuple[Any, ...], GeneratedAnswer]] = {}
        self.set_settings(settings)
        conversations.sig_snapshot_ready.connect(self._snapshot_ready)
        conversations.sig_conversation_ended.connect(self._forget)

    # --- settings -----------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        settings = self._settings
        return bool(settings is not None and settings.enabled and settings.endpoint)

    def set_settings(self, settings: Any) -> None:
        """Use new LLM settings (the next offline snapshot is the first to use them)."""
        old = self._holder
        if settings is not None and old is not None and settings == old.settings:
            return
        self._settings = settings
        self._holder = _ClientHolder(settings, self._factory) if settings is not None else None
        self._answers.clear()
        if old is not None:
            # The old client belongs to the llm lane's thread: close it there, after its work.
            self._runner.run(self._lane, old.close, description="Closing the LLM connection")

    def status(self, conversation_id: str | None = None) -> AiStatus | None:
        """The status of the snapshot on screen (None: not asked for it)."""
        return status_of(self._conversations, conversation_id or self._conversations.current_id)

    # --- the flow -----------------------------------------------------------------------------

    def _snapshot_ready(self, conversation_id: str) -> None:
        if not self.enabled or self._holder is None:
            return
        conversations = self._conversations
        snapshot = conversations.snapshot(conversation_id)
        if snapshot is None or snapshot is self._produced.get(conversation_id):
            return  # our own augmented copy coming back
        conversation = conversations.conversation(conversation_id)
        if conversation is None or not snapshot.query:
            return  # no customer words yet: nothing to draft a reply to
        key = (
            snapshot.last_turn_id,
            snapshot.turn_count,
            tuple(h.best.passage.passage_id for h in snapshot.hits),
        )
        cached = self._answers.get(conversation_id)
        if cached is not None and cached[0] == key:
            # The same turns analysed again (a refresh): the answer still holds.
            self._apply(conversation_id, snapshot, cached[1])
            return
        turns = conversation.turns
        previous = self._cancels.pop(conversation_id, None)
        if previous is not None:
            previous.set()  # newest wins: stop reading the older answer
        cancel = threading.Event()
        self._cancels[conversation_id] = cancel
        self._set_status(conversation_id, AiStatus(snapshot.generation, PENDING), refresh=False)
        # Debounced: a burst of turns (a pasted exchange, a fast live source) asks once, for the
        # newest, instead of starting and cancelling a request per turn beside the pipeline.
        self._debouncer.submit(
            f"llm:{conversation_id}",
            _ask,
            self._holder,
            turns,
            snapshot,
            self._company,
            cancel,
            on_success=lambda result, cid=conversation_id: self._answered(
                cid, key, snapshot, turns, *result
            ),
            on_failure=lambda exc, cid=conversation_id: self._failed(cid, snapshot, exc),
            description="Asking the language model",
        )

    def _current(self, conversation_id: str, snapshot: Snapshot) -> bool:
        now = self._conversations.snapshot(conversation_id)
        return now is not None and now.generation == snapshot.generation

    def _answered(
        self,
        conversation_id: str,
        key: tuple[Any, ...],
        snapshot: Snapshot,
        turns: tuple[Any, ...],
        request: GenerationRequest,
        reply: Any,
    ) -> None:
        if not self._current(conversation_id, snapshot):
            return  # a newer turn was analysed meanwhile; its own request is on the way
        assistant = self._conversations.assistant
        self._runner.run(
            INTERACTIVE,
            _screen,
            reply.content,
            reply.model,
            request,
            snapshot,
            getattr(assistant, "policy", None),
            turns,
            on_success=lambda answer, cid=conversation_id: self._screened(
                cid, key, snapshot, answer
            ),
            on_failure=lambda exc, cid=conversation_id: self._failed(cid, snapshot, exc),
            generation_key=f"llm-screen:{conversation_id}",
            description="Checking the language model's answer",
        )

    def _screened(
        self, conversation_id: str, key: tuple[Any, ...], snapshot: Snapshot, answer: Any
    ) -> None:
        self.sig_answer_screened.emit(conversation_id, answer)
        if not self._current(conversation_id, snapshot):
            return
        if not answer.usable:
            reasons = "; ".join(f"{r.part}: {r.reason} ({r.detail})" for r in answer.rejected)
            self._failed(conversation_id, snapshot, ValueError(reasons or "nothing usable"))
            return
        if answer.rejected:
            _log.info(
                "LLM answer for %s: dropped %s",
                conversation_id,
                ", ".join(f"{r.part} ({r.reason})" for r in answer.rejected),
            )
        self._answers[conversation_id] = (key, answer)
        current = self._conversations.snapshot(conversation_id)
        if current is not None:
            self._apply(conversation_id, current, answer)

    def _apply(self, conversation_id: str, offline: Snapshot, answer: GeneratedAnswer) -> None:
        augmented = apply_answer(offline, answer)
        self._produced[conversation_id] = augmented
        dropped = len(answer.rejected)
        detail = f"by {answer.model or 'the language model'}" + (
            f"; {dropped} part(s) dropped by the guards" if dropped else ""
        )
        self._set_status(conversation_id, AiStatus(offline.generation, GENERATED, detail), False)
        self._conversations.replace_snapshot(conversation_id, augmented)

    def _failed(self, conversation_id: str, snapshot: Snapshot, error: BaseException) -> None:
        kind = getattr(error, "kind", None)
        if str(getattr(kind, "value", kind)) == "cancelled":
            return
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        _log.info("LLM backend unavailable for %s: %s", conversation_id, message)
        if self._current(conversation_id, snapshot):
            self._set_status(
                conversation_id, AiStatus(snapshot.generation, UNAVAILABLE, str(message)[:300])
            )

    def _set_status(self, conversation_id: str, status: AiStatus, refresh: bool = True) -> None:
        self._conversations.set_note(conversation_id, STATUS_NOTE, status)
        self.sig_status_changed.emit(conversation_id)
        if refresh:
            snapshot = self._conversations.snapshot(conversation_id)
            if snapshot is not None:
                # Same snapshot, new status: the panel re-reads the label.
                self._produced[conversation_id] = snapshot
                self._conversations.replace_snapshot(conversation_id, snapshot)

    def _forget(self, conversation_id: str) -> None:
        self._debouncer.cancel(f"llm:{conversation_id}")
        cancel = self._cancels.pop(conversation_id, None)
        if cancel is not None:
            cancel.set()
        self._produced.pop(conversation_id, None)
        self._answers.pop(conversation_id, None)

    def shutdown(self) -> None:
        """Cancel requests in flight and close the client (before the runner shuts down)."""
        self._debouncer.stop()
        for cancel in self._cancels.values():
            cancel.set()
        self._cancels.clear()
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.abort()
