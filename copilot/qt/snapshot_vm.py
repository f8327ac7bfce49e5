"""What the panel shows for the current conversation, and what the agent does with it.

`SnapshotViewModel` follows the current conversation of a `ConversationsViewModel`: it feeds the
item models (flags, policy checklist, suggestions, articles) from the newest snapshot and turns
the agent's clicks into `FeedbackAction`s written to a `FeedbackSink` on the "db" lane:

* accept: the reply (redacted again) goes to the clipboard; recorded with edit distance 0;
* edit: an inline draft, checked against the policy rules as the agent types (`check_draft` on
  the interactive lane, debounced, so it never races the pipeline for the same `PolicySpec`);
  "Copy & send" records the sent text and its edit distance from the suggestion;
* discard: the suggestion is hidden, and a reason row offers one-click reasons; the discard is
  recorded once, with the reason if one is chosen (or without when the row is dismissed, the
  conversation moves on or the agent switches conversation);
* articles: helpful / not helpful; flags and policy lines: "not right"; routing: the corrected
  intent;
* every suggestion shown is recorded once per conversation (the denominator of acceptance
  rates), and its first showing starts the clock for the action's ``latency_ms``; so is every
  flag and policy breach or missed step shown (the denominator of flag precision), and every
  turn whose knowledge search found nothing confident (a knowledge gap);
* a sink that also keeps conversations (the SQLite store's ``end_conversation``) is told when
  one ends, so suggestions never answered count as ignored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication

from copilot.core.conversation import Conversation, Role
from copilot.core.feedback import (
    DiscardReason,
    FeedbackAction,
    FeedbackKind,
    edit_distance,
    outgoing_text,
)
from copilot.core.generative import is_generated_id
from copilot.core.handover import handover
from copilot.core.models import ArticleHit, Passage
from copilot.core.pipeline import Snapshot
from copilot.core.policy import PolicyFinding, PolicySpec, check_draft
from copilot.core.protocols import FeedbackSink
from copilot.core.suggestions import Suggestion
from copilot.qt.conversations_vm import ConversationsViewModel
from copilot.qt.item_models import (
    ArticleListModel,
    FlagListModel,
    PolicyListModel,
    PolicyRow,
    SuggestionListModel,
    kind_label,
    layer_label,
    level_text,
    policy_rows,
)
from copilot.qt.tasks import DB, INTERACTIVE, Debouncer, TaskRunner, failure_message

_log = logging.getLogger(__name__)

__all__ = ["DraftFinding", "RoutingView", "SnapshotViewModel"]

LOADING = "loading"
NO_CONVERSATION = "no_conversation"
WAITING = "waiting"
ANALYSING = "analysing"
READY = "ready"

DRAFT_CHECK_MS = 150
SEARCH_MS = 120
SEARCH_RESULTS = 5

#: The conversation note where `copilot.qt.generative_vm` keeps its status.
AI_STATUS_NOTE = "ai_status"

_ROLE_LABELS = {"customer": "Customer", "agent": "Agent", "system": "System"}


@dataclass(frozen=True, slots=True)
class DraftFinding:
    """A policy finding on the agent's draft, as the editor shows it."""

    severity: str
    message: str
    evidence: str
    article_id: str

    @property
    def text(self) -> str:
        quote = f" (“{self.evidence}”)" if self.evidence else ""
        return f"{self.severity.upper()}: {self.message}{quote}"


@dataclass(frozen=True, slots=True)
class RoutingView:
    """The routing line: the intent, its confidence, the layer and why."""

    headline: str
    layer: str
    reasons: tuple[str, ...]
    intent_id: str | None
    corrected: str | None
    layer_id: str | None = None

    @property
    def accessible_text(self) -> str:
        parts = [self.headline]
        if self.layer:
            parts.append(f"Owner: {self.layer}")
        parts.extend(self.reasons)
        return ". ".join(parts)


@dataclass(frozen=True, slots=True)
class _Editing:
    conversation_id: str
    suggestion: Suggestion
    rank: int
    turn_id: str | None


@dataclass(frozen=True, slots=True)
class _PendingDiscard:
    conversation_id: str
    suggestion: Suggestion
    rank: int
    turn_id: str | None
    intent: str | None
    latency_ms: float | None
    ts: dt.datetime


def _run_draft_check(
    text: str,
    spec: PolicySpec,
    conversation: Conversation,
    flags: tuple[Any, ...],
    intent: str | None,
) -> tuple[DraftFinding, ...]:
    findings: Sequence[PolicyFinding] = check_draft(
        text, turns=conversation.turns, flags=flags, spec=spec, intent=intent
    )
    return tuple(
        DraftFinding(str(f.severity.value), f.message, f.evidence, f.article_id) for f in findings
    )


def _cited_article(suggestion: Suggestion) -> str | None:
    return suggestion.citations[0].article_id if suggestion.citations else None


def _default_copy(text: str) -> None:
    clipboard = QGuiApplication.clipboard()
    if clipboard is not None:
        clipboard.setText(text)


class SnapshotViewModel(QObject):
    """The current conversation's snapshot, as item models, plus the agent's actions on it.

    Signals:
        sig_changed(): the snapshot on screen changed (or the conversation did).
        sig_transcript_changed(): the current conversation's turns changed.
        sig_state_changed(str): ``loading``, ``no_conversation``, ``waiting``, ``analysing``
            or ``ready``.
        sig_critical_flag_raised(str): a critical flag appeared in the conversation on screen;
            the text announces it.
        sig_discard_pending(str): a suggestion was discarded and awaits a reason ("" when the
            reason row closes); the text names it.
        sig_edit_started(str): the inline editor opens with this text.
        sig_edit_finished(): the editor closes (sent or cancelled).
        sig_draft_findings(object): a tuple of `DraftFinding` for the current draft.
        sig_articles_changed(): the articles list changed (a search, or back to the pipeline's).
        sig_feedback_changed(): a flag, policy line or article was marked.
        sig_notice(str): a short confirmation ("Reply 1 copied to the clipboard").
        sig_error(str): a readable problem.
    """

    sig_changed = Signal()
    sig_transcript_changed = Signal()
    sig_state_changed = Signal(str)
    sig_critical_flag_raised = Signal(str)
    sig_discard_pending = Signal(str)
    sig_edit_started = Signal(str)
    sig_edit_finished = Signal()
    sig_draft_findings = Signal(object)
    sig_articles_changed = Signal()
    sig_feedback_changed = Signal()
    sig_notice = Signal(str)
    sig_error = Signal(str)

    def __init__(
        self,
        conversations: ConversationsViewModel,
        runner: TaskRunner,
        sink: FeedbackSink | None,
        *,
        copy: Callable[[str], None] | None = None,
        agent_id: str | None = None,
        queue: str | None = None,
        draft_delay_ms: int = DRAFT_CHECK_MS,
        search_delay_ms: int = SEARCH_MS,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._conversations = conversations
        self._runner = runner
        self._sink = sink
        self._copy = copy or _default_copy
        self._agent_id = agent_id or None
        self._queue = queue or None
        self._clock = clock
        self._draft_debouncer = Debouncer(runner, INTERACTIVE, delay_ms=draft_delay_ms)
        self._search_debouncer = Debouncer(runner, INTERACTIVE, delay_ms=search_delay_ms)
        self.flags_model = FlagListModel(self)
        self.policy_model = PolicyListModel(self)
        self.suggestions_model = SuggestionListModel(self)
        self.articles_model = ArticleListModel(self)
        self._snapshot: Snapshot | None = None
        self._state = LOADING
        self._editing: _Editing | None = None
        self._pending_discard: _PendingDiscard | None = None
        self._search_query = ""
        self._search_hits: tuple[ArticleHit, ...] | None = None
        self._draft_findings: tuple[DraftFinding, ...] = ()

        conversations.sig_current_changed.connect(self._current_changed)
        conversations.sig_snapshot_ready.connect(self._snapshot_ready)
        conversations.sig_conversation_updated.connect(self._conversation_updated)
        conversations.sig_ready_changed.connect(lambda _ready: self._update_state())
        conversations.sig_busy_changed.connect(self._busy_changed)
        conversations.sig_conversation_ended.connect(self._conversation_ended)
        self._update_state()

    # --- reading ------------------------------------------------------------------------------

    @property
    def conversations(self) -> ConversationsViewModel:
        return self._conversations

    @property
    def conversation_id(self) -> str:
        return self._conversations.current_id

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    @property
    def state(self) -> str:
        return self._state

    def status_text(self) -> str:
        """What an empty panel says in the current state."""
        return {
            LOADING: "Loading the language model and the knowledge pack…",
            NO_CONVERSATION: "No conversation open. Press Ctrl+N to start one, or type or "
            "paste the customer's words below.",
            WAITING: "Waiting for the customer's first words…",
            ANALYSING: "Analysing…",
            READY: "",
        }[self._state]

    def routing(self) -> RoutingView | None:
        """The routing line for the snapshot on screen (None before the first snapshot)."""
        snapshot = self._snapshot
        if snapshot is None:
            return None
        corrected = self._note("corrected_intent_name")
        guess = snapshot.intent
        if guess is None:
            headline = "No intent model loaded: routing by flags only"
            return RoutingView(headline, "", (), None, corrected)
        if guess.intent:
            name = guess.intent_name or guess.intent
            headline = f"{name} · {guess.confidence:.0%} confident"
        else:
            headline = "No confident intent (out of scope)"
        layer = layer_label(guess.layer) if guess.layer else ""
        return RoutingView(
            headline, layer, tuple(guess.reasons), guess.intent, corrected, guess.layer
        )

    def ai_status(self) -> tuple[str, str]:
        """``(label, detail)`` of the optional language model for the snapshot on screen:
        ("AI-generated", "by <model>"), ("AI unavailable — offline result", why), or ("", "")."""
        status = self._note(AI_STATUS_NOTE)
        snapshot = self._snapshot
        if snapshot is None or getattr(status, "generation", None) != snapshot.generation:
            return "", ""
        return str(getattr(status, "text", "")), str(getattr(status, "detail", ""))

    def intent_choices(self) -> tuple[tuple[str, str], ...]:
        backend = self._conversations.backend
        return backend.intent_choices if backend else ()

    def summary_rows(self) -> list[tuple[str, str]]:
        """``(label, text)`` lines of the live summary ("Issue", "The customer ...")."""
        summary = self._snapshot.summary if self._snapshot else None
        if summary is None:
            return []
        rows = []
        for line in summary.as_text().splitlines():
            label, sep, text = line.partition(": ")
            rows.append((label, text) if sep and len(label) <= 12 else ("", line))
        return rows

    def transcript_rows(self) -> list[tuple[str, str, str]]:
        """``(role, "19:41", text)`` for each final turn, then partial ones as "(typing…)"."""
        conversation = self._conversations.conversation()
        if conversation is None:
            return []
        rows = []
        for turn in conversation.turns:
            rows.append(
                (_ROLE_LABELS.get(turn.role.value, turn.role.value), f"{turn.ts:%H:%M}", turn.text)
            )
        for turn in conversation.pending:
            label = _ROLE_LABELS.get(turn.role.value, turn.role.value)
            rows.append((f"{label} (typing…)", f"{turn.ts:%H:%M}", turn.text))
        return rows

    def has_customer_turn(self) -> bool:
        conversation = self._conversations.conversation()
        return bool(conversation and any(t.role is Role.CUSTOMER for t in conversation.turns))

    # --- state --------------------------------------------------------------------------------

    def _note(self, key: str, default: Any = None) -> Any:
        return self._conversations.note(self.conversation_id, key, default)

    def _set_note(self, key: str, value: Any) -> None:
        self._conversations.set_note(self.conversation_id, key, value)

    def _update_state(self) -> None:
        conversations = self._conversations
        if not conversations.is_ready:
            state = LOADING
        elif not conversations.current_id:
            state = NO_CONVERSATION
        elif self._snapshot is not None:
            state = READY
        elif conversations.is_busy():
            state = ANALYSING
        else:
            state = WAITING
        if state != self._state:
            self._state = state
            self.sig_state_changed.emit(state)

    def _current_changed(self, _conversation_id: str) -> None:
        self._flush_discard()
        if self._editing is not None:
            self.cancel_edit()
        self._search_query = ""
        self._search_hits = None
        self._show(self._conversations.snapshot())
        self.sig_transcript_changed.emit()

    def _snapshot_ready(self, conversation_id: str) -> None:
        snapshot = self._conversations.snapshot(conversation_id)
        if snapshot is not None:
            self._record_retrieval_miss(snapshot)
        if conversation_id == self.conversation_id:
            self._show(snapshot)

    def _conversation_ended(self, conversation_id: str) -> None:
        end = getattr(self._sink, "end_conversation", None)
        if end is not None:
            self._runner.run(DB, end, conversation_id, description="Saving feedback")

    def _conversation_updated(self, conversation_id: str) -> None:
        if conversation_id == self.conversation_id:
            self.sig_transcript_changed.emit()

    def _busy_changed(self, conversation_id: str, _busy: bool) -> None:
        if conversation_id == self.conversation_id:
            self._update_state()

    def _show(self, snapshot: Snapshot | None) -> None:
        previous = self._snapshot
        if (
            previous is not None
            and snapshot is not None
            and previous is not snapshot
            and previous.conversation_id == snapshot.conversation_id
            # The same analysis with the language model's parts added has not moved on.
            and previous.generation != snapshot.generation
        ):
            self._flush_discard()  # the conversation moved on without a reason
        self._snapshot = snapshot
        flags = snapshot.flags if snapshot else ()
        rows = policy_rows(snapshot.policy) if snapshot else ()
        suggestions = self._visible_suggestions(snapshot)
        # Unchanged lists are not reset, so keyboard focus on a card survives a new turn.
        if tuple(flags) != self.flags_model.items():
            self.flags_model.set_items(flags)
        if rows != self.policy_model.items():
            self.policy_model.set_items(rows)
        if suggestions != self.suggestions_model.items():
            self.suggestions_model.set_items(suggestions)
        hits = (
            self._search_hits
            if self._search_hits is not None
            else (snapshot.hits if snapshot else ())
        )
        if tuple(hits) != self.articles_model.items():
            self.articles_model.set_items(hits)
            self.sig_articles_changed.emit()
        self._update_state()
        if snapshot is not None:
            self._record_shown(snapshot, suggestions)
            self._record_flags_shown(snapshot, rows)
            self._announce_critical(snapshot)
        self.sig_changed.emit()

    def _visible_suggestions(self, snapshot: Snapshot | None) -> tuple[Suggestion, ...]:
        if snapshot is None:
            return ()
        discarded: set[str] = (
            self._conversations.note(snapshot.conversation_id, "discarded") or set()
        )
        return tuple(s for s in snapshot.suggestions if s.id not in discarded)

    def _announce_critical(self, snapshot: Snapshot) -> None:
        announced: set[str] = self._note("critical_announced") or set()
        new = [
            f
            for f in snapshot.flags
            if str(getattr(f.level, "value", f.level)) == "critical"
            and str(getattr(f.kind, "value", f.kind)) not in announced
        ]
        if not new:
            return
        self._set_note(
            "critical_announced",
            announced | {str(getattr(f.kind, "value", f.kind)) for f in new},
        )
        words = "; ".join(f"{kind_label(f.kind)}: {f.message}" for f in new)
        self.sig_critical_flag_raised.emit(f"{level_text('critical')} flag. {words}")

    # --- feedback plumbing --------------------------------------------------------------------

    def _record(self, action: FeedbackAction) -> None:
        if self._sink is None:
            return
        if is_generated_id(action.suggestion_id) and not action.generated:
            action = dataclasses.replace(action, generated=True)  # AI-generated, in the store too
        if self._agent_id and action.agent_id is None:
            action = dataclasses.replace(action, agent_id=self._agent_id)
        if self._queue and action.queue is None:
            action = dataclasses.replace(action, queue=self._queue)
        self._runner.run(DB, self._sink.record, action, description="Saving feedback")

    def _record_flags_shown(self, snapshot: Snapshot, rows: tuple[PolicyRow, ...]) -> None:
        conversation_id = snapshot.conversation_id
        shown: set[str] = set(self._conversations.note(conversation_id, "flags_shown") or set())
        before = len(shown)
        guess = snapshot.intent
        for flag in snapshot.flags:
            kind = str(getattr(flag.kind, "value", flag.kind))
            if f"flag:{kind}" in shown:
                continue
            shown.add(f"flag:{kind}")
            self._record(
                FeedbackAction(
                    kind=FeedbackKind.FLAG_SHOWN,
                    conversation_id=conversation_id,
                    turn_id=snapshot.last_turn_id,
                    item_id=kind,
                    shown_text=" · ".join(e.quote for e in flag.evidence) or str(flag.message),
                    intent=guess.intent if guess else None,
                    flag_kind=kind,
                    ts=self._clock(),
                )
            )
        for row in rows:
            if row.status not in ("breach", "missed") or f"rule:{row.rule_id}" in shown:
                continue
            shown.add(f"rule:{row.rule_id}")
            self._record(
                FeedbackAction(
                    kind=FeedbackKind.FLAG_SHOWN,
                    conversation_id=conversation_id,
                    turn_id=snapshot.last_turn_id,
                    item_id=row.rule_id,
                    shown_text=f"{row.status_text}: {row.title}",
                    intent=guess.intent if guess else None,
                    flag_rule=row.rule_id,
                    ts=self._clock(),
                )
            )
        if len(shown) != before:
            self._conversations.set_note(conversation_id, "flags_shown", shown)

    def _record_retrieval_miss(self, snapshot: Snapshot) -> None:
        if snapshot.retrieval_confident or not snapshot.query:
            return
        conversation_id = snapshot.conversation_id
        missed: set[str] = set(self._conversations.note(conversation_id, "misses") or set())
        if snapshot.query in missed:
            return
        missed.add(snapshot.query)
        self._conversations.set_note(conversation_id, "misses", missed)
        guess = snapshot.intent
        self._record(
            FeedbackAction(
                kind=FeedbackKind.RETRIEVAL_MISS,
                conversation_id=conversation_id,
                turn_id=snapshot.last_turn_id,
                query=snapshot.query,
                intent=guess.intent if guess else None,
                article_id=snapshot.hits[0].article_id if snapshot.hits else None,
                score=round(float(snapshot.hits[0].score), 4) if snapshot.hits else None,
                ts=self._clock(),
            )
        )

    def _first_shown(self, suggestion_id: str) -> float | None:
        shown: dict[str, float] = self._note("shown") or {}
        return shown.get(suggestion_id)

    def _latency_ms(self, item_id: str) -> float | None:
        first = self._first_shown(item_id)
        return None if first is None else round((time.perf_counter() - first) * 1000, 1)

    def _intent(self) -> str | None:
        guess = self._snapshot.intent if self._snapshot else None
        return guess.intent if guess else None

    def _record_shown(self, snapshot: Snapshot, suggestions: tuple[Suggestion, ...]) -> None:
        shown: dict[str, float] = dict(
            self._conversations.note(snapshot.conversation_id, "shown") or {}
        )
        now = time.perf_counter()
        suggest_ms = next((t.ms for t in snapshot.timings if t.stage == "suggest"), None)
        for rank, suggestion in enumerate(suggestions, start=1):
            if suggestion.id in shown:
                continue
            shown[suggestion.id] = now
            self._record(
                self._suggestion_action(
                    FeedbackKind.SUGGESTION_SHOWN,
                    suggestion,
                    rank,
                    snapshot=snapshot,
                    latency_ms=round(suggest_ms, 3) if suggest_ms is not None else None,
                )
            )
        self._conversations.set_note(snapshot.conversation_id, "shown", shown)

    def _suggestion_action(
        self,
        kind: FeedbackKind,
        suggestion: Suggestion,
        rank: int,
        *,
        snapshot: Snapshot | None = None,
        **fields: Any,
    ) -> FeedbackAction:
        snapshot = snapshot or self._snapshot
        assert snapshot is not None
        guess = snapshot.intent
        return FeedbackAction(
            kind=kind,
            conversation_id=snapshot.conversation_id,
            turn_id=snapshot.last_turn_id,
            item_id=suggestion.item_id,
            suggestion_id=suggestion.id,
            suggestion_kind=suggestion.kind,
            rank=rank,
            score=round(float(suggestion.score), 4),
            shown_text=suggestion.text,
            intent=guess.intent if guess else None,
            article_id=_cited_article(suggestion),
            ts=self._clock(),
            **fields,
        )

    def _suggestion(self, row: int) -> Suggestion | None:
        suggestion = self.suggestions_model.item(row)
        if suggestion is None:
            self.sig_notice.emit(f"There is no suggested reply {row + 1}.")
        return suggestion

    # --- accept / edit / discard --------------------------------------------------------------

    def accept(self, row: int) -> str | None:
        """Copy suggestion ``row`` (0-based) to the clipboard and record it; returns the text."""
        suggestion = self._suggestion(row)
        if suggestion is None:
            return None
        text = outgoing_text(suggestion.text)
        self._copy(text)
        self._record(
            self._suggestion_action(
                FeedbackKind.ACCEPT,
                suggestion,
                row + 1,
                sent_text=text,
                edit_distance=edit_distance(suggestion.text, text),
                latency_ms=self._latency_ms(suggestion.id),
            )
        )
        self._remember_sent(suggestion)
        self.sig_notice.emit(f"Reply {row + 1} copied to the clipboard: paste it into your chat.")
        return text

    def _remember_sent(self, suggestion: Suggestion) -> None:
        sent: list[str] = list(self._note("sent_titles") or [])
        sent.append(f"Sent suggested reply: {suggestion.title}")
        self._set_note("sent_titles", sent)
        accepted: set[str] = set(self._note("accepted") or set())
        accepted.add(suggestion.id)
        self._set_note("accepted", accepted)

    def was_accepted(self, suggestion_id: str) -> bool:
        return suggestion_id in (self._note("accepted") or set())

    @property
    def editing_row(self) -> int:
        """The row of the suggestion being edited, or -1."""
        if self._editing is None:
            return -1
        for row, s in enumerate(self.suggestions_model.items()):
            if s.id == self._editing.suggestion.id:
                return row
        return -1

    @property
    def editing_title(self) -> str:
        return self._editing.suggestion.title if self._editing else ""

    def start_edit(self, row: int) -> str | None:
        """Open the inline editor on suggestion ``row``; returns the text to edit."""
        suggestion = self._suggestion(row)
        if suggestion is None or self._snapshot is None:
            return None
        self._editing = _Editing(
            self.conversation_id, suggestion, row + 1, self._snapshot.last_turn_id
        )
        self._draft_findings = ()
        self.sig_edit_started.emit(suggestion.text)
        self.check_draft(suggestion.text)
        return suggestion.text

    def check_draft(self, text: str) -> None:
        """Check the draft against the policy rules (debounced, on the interactive lane)."""
        assistant = self._conversations.assistant
        conversation = self._conversations.conversation()
        if assistant is None or conversation is None:
            return
        snapshot = self._snapshot
        flags = tuple(snapshot.flags) if snapshot else ()
        self._draft_debouncer.submit(
            f"draft:{self.conversation_id}",
            _run_draft_check,
            text,
            assistant.policy,
            conversation,
            flags,
            self._intent(),
            on_success=self._draft_checked,
            on_failure=lambda exc: self.sig_error.emit(failure_message("Checking the draft", exc)),
            description="Checking the draft",
        )

    def _draft_checked(self, findings: tuple[DraftFinding, ...]) -> None:
        if self._editing is None:
            return
        self._draft_findings = findings
        self.sig_draft_findings.emit(findings)

    @property
    def draft_findings(self) -> tuple[DraftFinding, ...]:
        return self._draft_findings

    def finish_edit(self, text: str) -> str | None:
        """Copy the edited reply (redacted again) and record it with its edit distance."""
        editing = self._editing
        if editing is None:
            return None
        sent = outgoing_text(text.strip())
        if not sent:
            self.sig_notice.emit("The reply is empty: nothing was copied.")
            return None
        self._copy(sent)
        snapshot = self._snapshot
        guess = snapshot.intent if snapshot else None
        suggestion = editing.suggestion
        self._record(
            FeedbackAction(
                kind=FeedbackKind.EDIT,
                conversation_id=editing.conversation_id,
                turn_id=editing.turn_id,
                item_id=suggestion.item_id,
                suggestion_id=suggestion.id,
                suggestion_kind=suggestion.kind,
                rank=editing.rank,
                score=round(float(suggestion.score), 4),
                shown_text=suggestion.text,
                sent_text=sent,
                edit_distance=edit_distance(suggestion.text, sent),
                intent=guess.intent if guess else None,
                article_id=_cited_article(suggestion),
                ts=self._clock(),
                latency_ms=self._latency_ms(suggestion.id),
            )
        )
        self._remember_sent(suggestion)
        self._close_editor()
        self.sig_notice.emit("Your edited reply was copied to the clipboard.")
        return sent

    def cancel_edit(self) -> None:
        if self._editing is not None:
            self._close_editor()

    def _close_editor(self) -> None:
        self._draft_debouncer.cancel(
            f"draft:{self._editing.conversation_id}" if self._editing else ""
        )
        self._editing = None
        self._draft_findings = ()
        self.sig_edit_finished.emit()

    def discard(self, row: int) -> None:
        """Hide suggestion ``row`` and offer the reason row; recorded once a reason is chosen
        or the row is closed (see the module docstring)."""
        suggestion = self._suggestion(row)
        if suggestion is None or self._snapshot is None:
            return
        self._flush_discard()
        if self._editing is not None and self._editing.suggestion.id == suggestion.id:
            self.cancel_edit()
        guess = self._snapshot.intent
        self._pending_discard = _PendingDiscard(
            self.conversation_id,
            suggestion,
            row + 1,
            self._snapshot.last_turn_id,
            guess.intent if guess else None,
            self._latency_ms(suggestion.id),
            self._clock(),
        )
        discarded: set[str] = set(self._note("discarded") or set())
        discarded.add(suggestion.id)
        self._set_note("discarded", discarded)
        self.suggestions_model.set_items(self._visible_suggestions(self._snapshot))
        self.sig_discard_pending.emit(suggestion.title)
        self.sig_changed.emit()

    @property
    def discard_pending(self) -> bool:
        return self._pending_discard is not None

    def discard_reason(self, reason: DiscardReason | str | None) -> None:
        """The agent chose why they discarded (None: closed the reason row without saying)."""
        self._flush_discard(DiscardReason(reason) if reason is not None else None)

    def _flush_discard(self, reason: DiscardReason | None = None) -> None:
        pending = self._pending_discard
        if pending is None:
            return
        self._pending_discard = None
        suggestion = pending.suggestion
        self._record(
            FeedbackAction(
                kind=FeedbackKind.DISCARD,
                conversation_id=pending.conversation_id,
                turn_id=pending.turn_id,
                item_id=suggestion.item_id,
                suggestion_id=suggestion.id,
                suggestion_kind=suggestion.kind,
                rank=pending.rank,
                score=round(float(suggestion.score), 4),
                shown_text=suggestion.text,
                reason=reason,
                intent=pending.intent,
                article_id=_cited_article(suggestion),
                ts=pending.ts,
                latency_ms=pending.latency_ms,
            )
        )
        self.sig_discard_pending.emit("")

    # --- articles -----------------------------------------------------------------------------

    def mark_article(self, row: int, helpful: bool) -> None:
        """Record that article ``row`` helped (or did not)."""
        hit: ArticleHit | None = self.articles_model.item(row)
        if hit is None or not self.conversation_id:
            return
        passage = hit.best.passage
        guess = self._snapshot.intent if self._snapshot else None
        self._record(
            FeedbackAction(
                kind=FeedbackKind.ARTICLE_HELPFUL if helpful else FeedbackKind.ARTICLE_NOT_HELPFUL,
                conversation_id=self.conversation_id,
                turn_id=self._snapshot.last_turn_id if self._snapshot else None,
                item_id=passage.passage_id,
                rank=row + 1,
                score=round(float(hit.score), 4),
                shown_text=passage.text,
                intent=guess.intent if guess else None,
                article_id=hit.article_id,
                ts=self._clock(),
            )
        )
        verdicts: dict[str, bool] = dict(self._note("article_verdicts") or {})
        verdicts[passage.passage_id] = helpful
        self._set_note("article_verdicts", verdicts)
        self.sig_feedback_changed.emit()
        self.sig_notice.emit("Thanks: marked " + ("helpful." if helpful else "not helpful."))

    def article_verdict(self, passage_id: str) -> bool | None:
        verdicts: dict[str, bool] = self._note("article_verdicts") or {}
        return verdicts.get(passage_id)

    def article_passages(self, row: int) -> list[Passage]:
        """Every passage of article ``row``, in order (for the full-article view)."""
        hit: ArticleHit | None = self.articles_model.item(row)
        backend = self._conversations.backend
        index = backend.index if backend else None
        if hit is None:
            return []
        if index is None:
            return [p.passage for p in hit.passages] or [hit.best.passage]
        try:
            passages: list[Passage] = index.article_passages(hit.article_id)
        except Exception as exc:  # a damaged index must not take the panel down
            self.sig_error.emit(failure_message("Opening the article", exc))
            return [hit.best.passage]
        return passages or [hit.best.passage]

    @property
    def search_query(self) -> str:
        return self._search_query

    @property
    def showing_search(self) -> bool:
        return self._search_hits is not None

    def search(self, query: str) -> None:
        """Search the knowledge index (interactive lane); an empty query clears the search."""
        query = " ".join(query.split())
        backend = self._conversations.backend
        index = backend.index if backend else None
        if not query:
            self.clear_search()
            return
        if index is None:
            self.sig_notice.emit("The knowledge index is still loading.")
            return
        self._search_query = query
        self._search_debouncer.submit(
            "search",
            functools.partial(index.search, query, k=SEARCH_RESULTS),
            on_success=lambda hits, q=query: self._searched(q, hits),
            on_failure=lambda exc: self.sig_error.emit(
                failure_message("Searching the knowledge base", exc)
            ),
            description="Searching the knowledge base",
        )

    def _searched(self, query: str, hits: list[ArticleHit]) -> None:
        if query != self._search_query:
            return
        self._search_hits = tuple(hits)
        self.articles_model.set_items(self._search_hits)
        self.sig_articles_changed.emit()

    def clear_search(self) -> None:
        self._search_debouncer.cancel("search")
        self._search_query = ""
        if self._search_hits is None:
            return
        self._search_hits = None
        self.articles_model.set_items(self._snapshot.hits if self._snapshot else ())
        self.sig_articles_changed.emit()

    # --- flags and routing --------------------------------------------------------------------

    def mark_flag_wrong(self, row: int) -> None:
        """The agent says signal flag ``row`` is not right."""
        flag = self.flags_model.item(row)
        if flag is None or not self.conversation_id:
            return
        kind = str(getattr(flag.kind, "value", flag.kind))
        quotes = " · ".join(e.quote for e in flag.evidence)
        self._record(
            FeedbackAction(
                kind=FeedbackKind.FLAG_WRONG,
                conversation_id=self.conversation_id,
                turn_id=self._snapshot.last_turn_id if self._snapshot else None,
                item_id=kind,
                shown_text=quotes or str(flag.message),
                intent=self._intent(),
                flag_kind=kind,
                ts=self._clock(),
            )
        )
        self._mark_wrong(f"flag:{kind}")

    def mark_policy_wrong(self, row: int) -> None:
        """The agent says policy line ``row`` is not right."""
        line: PolicyRow | None = self.policy_model.item(row)
        if line is None or not self.conversation_id:
            return
        self._record(
            FeedbackAction(
                kind=FeedbackKind.FLAG_WRONG,
                conversation_id=self.conversation_id,
                turn_id=self._snapshot.last_turn_id if self._snapshot else None,
                item_id=line.rule_id,
                shown_text=f"{line.status_text}: {line.title}",
                intent=self._intent(),
                flag_rule=line.rule_id,
                ts=self._clock(),
            )
        )
        self._mark_wrong(f"rule:{line.rule_id}")

    def _mark_wrong(self, key: str) -> None:
        wrong: set[str] = set(self._note("marked_wrong") or set())
        wrong.add(key)
        self._set_note("marked_wrong", wrong)
        self.sig_feedback_changed.emit()
        self.sig_notice.emit("Thanks: marked not right. It helps tune the co-pilot.")

    def is_marked_wrong(self, key: str) -> bool:
        """``"flag:legal_threat"`` or ``"rule:identity-verified"`` marked not right."""
        return key in (self._note("marked_wrong") or set())

    def correct_intent(self, intent: str) -> None:
        """The agent says the conversation is about ``intent`` (a taxonomy id or free text)."""
        intent = " ".join(intent.split())
        if not intent or not self.conversation_id:
            return
        names = dict(self.intent_choices())
        self._record(
            FeedbackAction(
                kind=FeedbackKind.INTENT_CORRECTED,
                conversation_id=self.conversation_id,
                turn_id=self._snapshot.last_turn_id if self._snapshot else None,
                intent=self._intent(),
                corrected_intent=intent,
                # The (redacted) words the intent was classified from: the next backend load
                # learns them as an example of the corrected intent.
                query=(self._snapshot.query or None) if self._snapshot else None,
                ts=self._clock(),
            )
        )
        self._set_note("corrected_intent_name", names.get(intent, intent))
        self._set_note("corrected_intent", intent)
        self.sig_changed.emit()
        self.sig_notice.emit(f"Intent corrected to “{names.get(intent, intent)}”.")

    # --- handover -----------------------------------------------------------------------------

    def handover_text(self) -> str | None:
        """The handover note for the conversation on screen, or None before its first snapshot."""
        snapshot = self._snapshot
        conversation = self._conversations.conversation()
        if snapshot is None or snapshot.summary is None or conversation is None:
            return None
        guess = snapshot.intent
        corrected = self._note("corrected_intent")
        stakes = guess.stakes.get("complexity") if guess and guess.stakes else None
        packet = handover(
            snapshot.summary,
            intent=corrected or (guess.intent if guess else None),
            intent_name=self._note("corrected_intent_name")
            or (guess.intent_name if guess else None),
            stakes=stakes,
            routing_layer=guess.layer if guess else None,
            flags=snapshot.flags,
            ledger=snapshot.policy.ledger if snapshot.policy else (),
            actions_completed=tuple(self._note("sent_titles") or ()),
            articles_used=snapshot.hits[:3],
            turns=conversation.turns,
        )
        return packet.as_text()

    def copy_handover(self) -> str | None:
        """Copy the handover note to the clipboard; returns it (None when there is none yet)."""
        text = self.handover_text()
        if text is None:
            self.sig_notice.emit("No handover note yet: wait for the first analysis.")
            return None
        self._copy(text)
        self.sig_notice.emit("Handover note copied to the clipboard.")
        return text

    # --- end ----------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Record a pending discard and stop the debouncers (before the runner shuts down)."""
        self._flush_discard()
        self._draft_debouncer.stop()
        self._search_debouncer.stop()
