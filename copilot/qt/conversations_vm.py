"""The open conversations: turns arrive, are redacted, and the pipeline runs for the newest.

`ConversationsViewModel` holds several conversations at once (an agent on chat often has two or
three). A turn, typed or pasted by the agent or pushed by a live source, is parsed and applied to
its `Conversation` on the GUI thread: both are cheap and redaction happens there, on arrival, so
nothing downstream ever sees the raw text. The pipeline (`Assistant.analyse`, milliseconds plus
one embedding) then runs on the "interactive" lane through a `Debouncer` keyed by conversation
id, so a burst of turns in one conversation is analysed once and the newest analysis wins, while
other conversations are not held up by it.

Until the assistant is ready (the model and the content pack load in the background) turns are
kept and analysed as soon as it arrives.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from copilot.core.conversation import Conversation, Role, Turn, TurnEventError, parse_turn_event
from copilot.core.pipeline import Assistant, Snapshot
from copilot.core.protocols import Embedder
from copilot.qt.item_models import ConversationListModel, ConversationRow
from copilot.qt.tasks import (
    DEFAULT_DEBOUNCE_MS,
    INTERACTIVE,
    Debouncer,
    TaskRunner,
    failure_message,
)

_log = logging.getLogger(__name__)

__all__ = [
    "ConversationsViewModel",
    "IndexWatcher",
    "PanelBackend",
    "intent_choices_of",
    "live_generation",
    "load_backend",
    "split_pasted_turns",
]


@dataclass(frozen=True)
class PanelBackend:
    """What the panel needs once loading is done.

    Attributes:
        assistant: runs the per-turn pipeline (interactive lane only: it is not thread-safe).
        index: the knowledge index (manual search, full article text), or None.
        intent_choices: ``(intent id, readable name)`` of the taxonomy, for correcting the
            routing; empty when no taxonomy is loaded (the agent types the intent instead).
        warnings: problems in the content pack a knowledge manager should fix.
    """

    assistant: Assistant
    index: Any = None
    intent_choices: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()


def intent_choices_of(assistant: Assistant) -> tuple[tuple[str, str], ...]:
    """``(id, name)`` of the intents the assistant's intent stage knows, sorted by name."""
    taxonomy = getattr(assistant.intents, "taxonomy", None)
    intents = getattr(taxonomy, "intents", None) or ()
    choices = {
        str(getattr(i, "id", "")): str(getattr(i, "name", "") or getattr(i, "id", ""))
        for i in intents
    }
    return tuple(sorted(((k, v) for k, v in choices.items() if k), key=lambda c: c[1].lower()))


def load_backend(
    content: Path,
    data: Path,
    embedder: Embedder,
    *,
    progress: Callable[[str], None] | None = None,
    prior: Any = None,
    learn_intents: bool = True,
) -> PanelBackend:
    """Load the content pack and open (or build) the index: blocking, run it on the bulk lane.

    Also the way the running app reloads after a new index generation goes live.

    Args:
        content: the content pack.
        data: the data directory (index, feedback database).
        embedder: the loaded embedder.
        progress: called with the name of each part as it starts loading.
        prior: feedback priors for ranking suggestions.
        learn_intents: learn the agents' intent corrections stored in the feedback database as
            extra intent examples (`copilot.services.assistant.learned_intent_examples`).

    The services are imported here, not at the top: they pull in FAISS, which must not load
    before the window has painted.
    """
    from copilot.services.assistant import build_assistant, learned_intent_examples
    from copilot.services.feedback_store import feedback_db_path

    extra = learned_intent_examples(content, feedback_db_path(data)) if learn_intents else []
    assistant, index, report = build_assistant(
        content, data, embedder, progress=progress, prior=prior, extra_intent_examples=extra
    )
    return PanelBackend(
        assistant=assistant,
        index=index,
        intent_choices=intent_choices_of(assistant),
        warnings=tuple(report.warnings),
    )


_GENERATION_NAME = re.compile(r"gen-\d{6}")
#: How long the index directory must stay quiet before ``CURRENT`` is read: a reindex writes a
#: generation, swaps the pointer, then deletes old generations, a burst of events.
INDEX_WATCH_DEBOUNCE_MS = 400


def live_generation(index_dir: Path) -> str | None:
    """The generation ``CURRENT`` names in `index_dir`, or None (missing or damaged).

    Reads the pointer file only: no FAISS import, cheap enough for the GUI thread.
    """
    try:
        name = (index_dir / "CURRENT").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name if _GENERATION_NAME.fullmatch(name) else None


class IndexWatcher(QObject):
    """Notices when a new index generation goes live, in this process or another.

    ``CURRENT`` is replaced by a rename (`copilot.services.knowledge_index`), which a watch on
    the directory sees; the events are debounced and the pointer read once things are quiet.

    Signals:
        sig_generation_changed(str): ``CURRENT`` now names this generation.
    """

    sig_generation_changed = Signal(str)

    def __init__(
        self,
        index_dir: Path,
        generation: str | None,
        *,
        debounce_ms: int = INDEX_WATCH_DEBOUNCE_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        from PySide6.QtCore import QFileSystemWatcher, QTimer

        self.index_dir = Path(index_dir)
        self.generation = generation
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._check)
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self._changed)
        self._watcher.fileChanged.connect(self._changed)
        try:
            # Watched from the start, even before `copilot index` first creates it.
            self.index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _log.warning("cannot watch %s for new index generations: %s", self.index_dir, exc)
        self._watch()

    def _watch(self) -> None:
        # A renamed-over file drops out of the watch list: add it back after every change.
        wanted = [str(self.index_dir), str(self.index_dir / "CURRENT")]
        present = set(self._watcher.directories()) | set(self._watcher.files())
        missing = [p for p in wanted if p not in present and Path(p).exists()]
        if missing:
            self._watcher.addPaths(missing)

    def _changed(self, _path: str) -> None:
        self._timer.start()  # (re)start: read CURRENT once the burst of events is over

    def _check(self) -> None:
        self._watch()
        name = live_generation(self.index_dir)
        if name is not None and name != self.generation:
            self.generation = name
            self.sig_generation_changed.emit(name)

    def stop(self) -> None:
        """Stop watching (the app calls it on shutdown)."""
        self._timer.stop()
        paths = self._watcher.directories() + self._watcher.files()
        if paths:
            self._watcher.removePaths(paths)


# "Customer: ...", "Agent: ...", optionally after a "[10:02]" or "10:02" time stamp.
_PASTE_PREFIX = re.compile(
    r"^\s*(?:\[?\d{1,2}:\d{2}(?::\d{2})?\]?\s*[-–]?\s*)?"
    r"(customer|caller|client|cust|agent|advisor|adviser|rep|system)\s*[:>]\s*",
    re.IGNORECASE,
)
_PASTE_ROLES: Mapping[str, Role] = {
    "customer": Role.CUSTOMER,
    "caller": Role.CUSTOMER,
    "client": Role.CUSTOMER,
    "cust": Role.CUSTOMER,
    "agent": Role.AGENT,
    "advisor": Role.AGENT,
    "adviser": Role.AGENT,
    "rep": Role.AGENT,
    "system": Role.SYSTEM,
}


def split_pasted_turns(text: str, default_role: Role | str) -> list[tuple[Role, str]]:
    """Split pasted text into turns.

    Lines starting with "Customer:" / "Agent:" (also "Caller:", "Advisor:", with an optional
    time stamp before) start a new turn of that role; other lines continue the turn before.
    Text without any such prefix is one turn of ``default_role``.
    """
    role = Role(default_role)
    turns: list[tuple[Role, list[str]]] = []
    for line in text.splitlines():
        match = _PASTE_PREFIX.match(line)
        if match:
            turns.append((_PASTE_ROLES[match.group(1).lower()], [line[match.end() :]]))
        elif turns:
            turns[-1][1].append(line)
        elif line.strip():
            turns.append((role, [line]))
    out = []
    for turn_role, lines in turns:
        joined = "\n".join(lines).strip()
        if joined:
            out.append((turn_role, joined))
    return out


@dataclass
class _State:
    conversation: Conversation
    started: float
    number: int
    snapshot: Snapshot | None = None
    requested: int = 0  # analyses requested
    delivered: int = 0  # analyses delivered (the newest request's result, or a newer one)
    asked_at: float | None = None
    manual_turns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class ConversationsViewModel(QObject):
    """Open conversations, the current one, and their latest snapshots.

    Signals:
        sig_conversation_started(str): a conversation was opened (typed, pasted or from a source).
        sig_conversation_ended(str): a conversation was closed.
        sig_current_changed(str): the conversation on screen changed ("" for none).
        sig_conversation_updated(str): a conversation's turns changed (the transcript).
        sig_snapshot_ready(str): a new snapshot of that conversation was stored.
        sig_ready_changed(bool): the assistant became available (input can be enabled).
        sig_busy_changed(str, bool): an analysis of that conversation started or finished.
        sig_error(str): a readable message (a turn rejected, the pipeline failed).
    """

    sig_conversation_started = Signal(str)
    sig_conversation_ended = Signal(str)
    sig_current_changed = Signal(str)
    sig_conversation_updated = Signal(str)
    sig_snapshot_ready = Signal(str)
    sig_ready_changed = Signal(bool)
    sig_busy_changed = Signal(str, bool)
    sig_error = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        *,
        debounce_ms: int = DEFAULT_DEBOUNCE_MS,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._debouncer = Debouncer(runner, INTERACTIVE, delay_ms=debounce_ms)
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._current = ""
        self._numbers = itertools.count(1)
        self._backend: PanelBackend | None = None
        self.list_model = ConversationListModel(self)
        #: The pipeline's own time for the newest snapshot delivered, in ms.
        self.last_pipeline_ms: float | None = None
        #: Arrival of the newest turn to its snapshot on screen (debounce and queue included).
        self.last_turnaround_ms: float | None = None

    # --- the backend --------------------------------------------------------------------------

    @property
    def backend(self) -> PanelBackend | None:
        return self._backend

    @property
    def assistant(self) -> Assistant | None:
        return self._backend.assistant if self._backend else None

    @property
    def is_ready(self) -> bool:
        return self._backend is not None

    def set_backend(self, backend: PanelBackend) -> None:
        """The assistant is ready (or was reloaded: a new index, newly learnt intents): analyse
        every conversation that has turns, so what is on screen comes from the new one."""
        self._backend = backend
        self.sig_ready_changed.emit(True)
        for conversation_id, state in self._states.items():
            if state.conversation.turns:
                self._schedule(conversation_id)

    # --- conversations ------------------------------------------------------------------------

    def conversation_ids(self) -> tuple[str, ...]:
        return tuple(self._states)

    @property
    def current_id(self) -> str:
        return self._current

    def conversation(self, conversation_id: str | None = None) -> Conversation | None:
        state = self._states.get(conversation_id or self._current)
        return state.conversation if state else None

    def snapshot(self, conversation_id: str | None = None) -> Snapshot | None:
        state = self._states.get(conversation_id or self._current)
        return state.snapshot if state else None

    def is_busy(self, conversation_id: str | None = None) -> bool:
        """True while an analysis of the conversation is requested and not yet delivered."""
        state = self._states.get(conversation_id or self._current)
        return bool(state and state.delivered < state.requested)

    def requested_generation(self, conversation_id: str) -> int:
        """The analysis counter of the conversation's latest change: a snapshot whose
        ``generation`` is at least this includes every turn applied so far (0 if unknown)."""
        state = self._states.get(conversation_id)
        return state.requested if state else 0

    def is_idle(self) -> bool:
        """No analysis pending in any conversation (screenshots and tests wait for this)."""
        return not any(s.delivered < s.requested for s in self._states.values())

    def label(self, conversation_id: str | None = None) -> str:
        """What the switcher calls the conversation: the customer's name once known."""
        state = self._states.get(conversation_id or self._current)
        if state is None:
            return ""
        summary = state.snapshot.summary if state.snapshot else None
        names = summary.facts("name") if summary else ()
        return names[0].value if names else f"Conversation {state.number}"

    def start_conversation(
        self, conversation_id: str | None = None, *, make_current: bool = True
    ) -> str:
        """Open a conversation (a new id when None) and return its id; a no-op when open."""
        if conversation_id is None:
            conversation_id = self._new_id()
        if conversation_id not in self._states:
            self._states[conversation_id] = _State(
                Conversation(conversation_id=conversation_id),
                started=time.perf_counter(),
                number=next(self._numbers),
            )
            self._update_row(conversation_id)
            self.sig_conversation_started.emit(conversation_id)
        if make_current or not self._current:
            self.set_current(conversation_id)
        return conversation_id

    def end_conversation(self, conversation_id: str | None = None) -> None:
        """Close a conversation: its pending analysis is dropped and its cache forgotten."""
        conversation_id = conversation_id or self._current
        if conversation_id not in self._states:
            return
        self._debouncer.cancel(conversation_id)
        del self._states[conversation_id]
        self.list_model.remove(conversation_id)
        assistant = self.assistant
        if assistant is not None:
            # The assistant belongs to the interactive lane: forget there, between analyses.
            self._runner.run(
                INTERACTIVE,
                assistant.forget,
                conversation_id,
                description="Closing the conversation",
            )
        self.sig_conversation_ended.emit(conversation_id)
        if conversation_id == self._current:
            remaining = list(self._states)
            self.set_current(remaining[-1] if remaining else "")

    def set_current(self, conversation_id: str) -> None:
        """Show this conversation ("" for none)."""
        if conversation_id and conversation_id not in self._states:
            raise KeyError(conversation_id)
        if conversation_id != self._current:
            self._current = conversation_id
            self.sig_current_changed.emit(conversation_id)

    def _new_id(self) -> str:
        stamp = self._clock().strftime("%H%M%S")
        for n in itertools.count(1):
            candidate = f"manual-{stamp}-{n}"
            if candidate not in self._states:
                return candidate
        raise AssertionError("unreachable")

    # --- turns --------------------------------------------------------------------------------

    def submit_text(
        self, text: str, role: Role | str = Role.CUSTOMER, conversation_id: str | None = None
    ) -> list[str]:
        """The agent typed or pasted a turn (or a whole pasted exchange) into a conversation.

        Starts a conversation when none is open. Pasted "Customer: ..." / "Agent: ..." lines
        become one turn each (see `split_pasted_turns`).

        Returns:
            The ids of the turns added (empty for blank text; a rejected turn is reported on
            `sig_error`).
        """
        parts = split_pasted_turns(text, role)
        if not parts:
            return []
        conversation_id = conversation_id or self._current or self.start_conversation()
        if conversation_id not in self._states:
            self.start_conversation(conversation_id)
        state = self._states[conversation_id]
        added = []
        for turn_role, turn_text in parts:
            state.manual_turns += 1
            turn_id = f"m{state.manual_turns:03d}"
            while state.conversation.turn(turn_id) is not None:
                state.manual_turns += 1
                turn_id = f"m{state.manual_turns:03d}"
            event = {
                "conversation_id": conversation_id,
                "turn_id": turn_id,
                "role": turn_role.value,
                "text": turn_text,
                "ts": self._clock().isoformat(),
                "is_final": True,
            }
            if self.apply_event(event) is not None:
                added.append(turn_id)
        return added

    def apply_event(self, event: Mapping[str, Any] | Turn) -> Turn | None:
        """A turn event from a source (or a parsed `Turn`): validate, redact, store, analyse.

        Returns:
            The turn as received (not redacted: do not keep it), or None when it was rejected
            (the reason goes to `sig_error`).
        """
        try:
            turn = event if isinstance(event, Turn) else parse_turn_event(event)
        except TurnEventError as exc:
            self.sig_error.emit(f"A turn was not added: {exc}")
            return None
        if turn.conversation_id not in self._states:
            self.start_conversation(turn.conversation_id, make_current=not self._current)
        state = self._states[turn.conversation_id]
        try:
            updated = state.conversation.apply(turn)
        except ValueError as exc:
            self.sig_error.emit(f"A turn was not added: {exc}")
            return None
        if updated is state.conversation:
            return turn  # a repeat, or a late partial of a final turn: nothing changed
        state.conversation = updated
        self._update_row(turn.conversation_id)
        self.sig_conversation_updated.emit(turn.conversation_id)
        if turn.is_final:
            self._schedule(turn.conversation_id)
        return turn

    # --- analysis -----------------------------------------------------------------------------

    def refresh(self, conversation_id: str | None = None) -> None:
        """Analyse a conversation again (e.g. after the content pack was reloaded)."""
        conversation_id = conversation_id or self._current
        if conversation_id in self._states:
            self._schedule(conversation_id)

    def _schedule(self, conversation_id: str) -> None:
        assistant = self.assistant
        state = self._states[conversation_id]
        if assistant is None or not state.conversation.turns:
            return  # analysed once the assistant is ready
        state.requested += 1
        if state.asked_at is None:
            state.asked_at = time.perf_counter()
        if state.delivered == state.requested - 1:
            self.sig_busy_changed.emit(conversation_id, True)
        generation = state.requested
        self._debouncer.submit(
            conversation_id,
            _analyse,
            assistant,
            state.conversation,
            generation,
            on_success=lambda snapshot, cid=conversation_id: self._delivered(cid, snapshot),
            on_failure=lambda exc, cid=conversation_id: self._failed(cid, exc),
            description="Analysing the conversation",
        )

    def _delivered(self, conversation_id: str, snapshot: Snapshot) -> None:
        state = self._states.get(conversation_id)
        if state is None:
            return  # ended meanwhile
        state.snapshot = snapshot
        # The debouncer runs only the newest request: whatever arrives answers all before it.
        state.delivered = max(state.delivered, snapshot.generation)
        self.last_pipeline_ms = snapshot.total_ms
        if state.asked_at is not None:
            self.last_turnaround_ms = (time.perf_counter() - state.asked_at) * 1000
        if state.delivered >= state.requested:
            state.asked_at = None
            self.sig_busy_changed.emit(conversation_id, False)
        self._update_row(conversation_id)
        self.sig_snapshot_ready.emit(conversation_id)

    def replace_snapshot(self, conversation_id: str, snapshot: Snapshot) -> bool:
        """Show a revised copy of a conversation's newest snapshot (the optional language
        model's summary and drafts added, `copilot.qt.generative_vm`).

        Returns:
            False, and nothing changes, when the conversation has ended or has a newer
            snapshot than the one revised (the newest turn wins).
        """
        state = self._states.get(conversation_id)
        if state is None or state.snapshot is None:
            return False
        if state.snapshot.generation != snapshot.generation:
            return False
        state.snapshot = snapshot
        self._update_row(conversation_id)
        self.sig_snapshot_ready.emit(conversation_id)
        return True

    def _failed(self, conversation_id: str, error: BaseException) -> None:
        state = self._states.get(conversation_id)
        if state is not None:
            state.delivered = state.requested
            state.asked_at = None
            self.sig_busy_changed.emit(conversation_id, False)
        self.sig_error.emit(failure_message("Analysing the conversation", error))

    def _update_row(self, conversation_id: str) -> None:
        state = self._states[conversation_id]
        snapshot = state.snapshot
        intent = ""
        level = kind = ""
        if snapshot is not None:
            guess = snapshot.intent
            if guess is not None and guess.intent:
                intent = guess.intent_name or guess.intent
            if snapshot.flags:
                worst = snapshot.flags[0]
                level = str(getattr(worst.level, "value", worst.level))
                kind = str(getattr(worst.kind, "value", worst.kind))
        corrected = state.extra.get("corrected_intent_name")
        self.list_model.upsert(
            ConversationRow(
                conversation_id=conversation_id,
                customer=self.label(conversation_id),
                intent=corrected or intent,
                worst_level=level,
                worst_kind=kind,
                turns=len(state.conversation.turns),
            )
        )

    # --- per-conversation notes the panel keeps ----------------------------------------------

    def note(self, conversation_id: str, key: str, default: Any = None) -> Any:
        """A value the panel stored with a conversation (gone when it ends)."""
        state = self._states.get(conversation_id)
        return state.extra.get(key, default) if state else default

    def set_note(self, conversation_id: str, key: str, value: Any) -> None:
        state = self._states.get(conversation_id)
        if state is not None:
            state.extra[key] = value
            self._update_row(conversation_id)

    def shutdown(self) -> None:
        """Drop pending analyses (the runner's shutdown joins the lanes)."""
        self._debouncer.stop()


def _analyse(assistant: Assistant, conversation: Conversation, generation: int) -> Snapshot:
    return assistant.analyse(conversation, generation=generation)
