"""The co-pilot panel: what the agent sees, what every click records, and the keyboard."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QFrame,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QWidget,
)
from pytestqt.qtbot import QtBot

from copilot.core.feedback import DiscardReason, FeedbackAction, FeedbackKind, edit_distance
from copilot.core.pipeline import Snapshot
from copilot.core.suggestions import Citation, Suggestion
from copilot.qt.tasks import TaskRunner
from copilot.services.feedback_memory import MemoryFeedbackSink
from copilot.services.transcripts import read_events
from copilot.ui.main_window import MainWindow
from copilot.ui.panel import SHORTCUTS, ArticleDialog, CopilotPanel, build_panel
from copilot.ui.panel_sections import FlagsSection, SuggestionCard

pytestmark = pytest.mark.gui

DEMOS = Path(__file__).resolve().parents[3] / "knowledge" / "demos"
CARD = "4111 1111 1111 1111"
_ids = itertools.count(1)


@dataclass
class Harness:
    window: MainWindow
    panel: CopilotPanel
    sink: MemoryFeedbackSink
    runner: TaskRunner
    qtbot: QtBot

    @property
    def vm(self) -> Any:
        return self.panel.vm

    @property
    def conversations(self) -> Any:
        return self.panel.conversations

    def replay(self, demo: str, *, turns: int | None = None) -> str:
        """Replay a demo under a fresh conversation id; wait for its snapshot; return the id."""
        conversation_id = f"ui-{demo.rstrip('-')}-{next(_ids)}"
        events = list(read_events(next(DEMOS.glob(f"{demo}*.jsonl"))))[:turns]
        for event in events:
            self.conversations.apply_event(replace(event, conversation_id=conversation_id))
        self.wait_idle()
        return conversation_id

    def wait_idle(self) -> None:
        self.qtbot.waitUntil(
            lambda: self.conversations.is_idle() and self.vm.snapshot is not None, timeout=5000
        )

    def snapshot(self) -> Snapshot:
        snapshot = self.vm.snapshot
        assert snapshot is not None
        return snapshot

    def recorded(self, kind: FeedbackKind, count: int = 1) -> list[FeedbackAction]:
        self.qtbot.waitUntil(lambda: len(self.sink.of_kind(kind)) >= count, timeout=3000)
        return list(self.sink.of_kind(kind))

    def click(self, button: QAbstractButton) -> None:
        assert button.isVisible() and button.isEnabled(), button.text()
        # A click lands where the button is on screen: scroll it into view first, as a user would.
        self.panel.ensure_visible(button)
        self.settle()
        self.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        self.settle()

    def settle(self) -> None:
        """Let queued work run: widgets added to a shown layout appear on the next loop pass."""
        QApplication.processEvents()

    def key(self, keys: str) -> None:
        """Press a shortcut such as "Alt+1" on the widget with focus."""
        target = QApplication.focusWidget() or self.window
        *mods, key = keys.split("+")
        modifiers = Qt.KeyboardModifier.NoModifier
        for mod in mods:
            modifiers |= {
                "Alt": Qt.KeyboardModifier.AltModifier,
                "Ctrl": Qt.KeyboardModifier.ControlModifier,
            }[mod]
        code = {"Return": Qt.Key.Key_Return, "Esc": Qt.Key.Key_Escape}.get(key)
        if code is None:
            code = getattr(Qt.Key, f"Key_{key.upper()}")
        self.qtbot.keyClick(target, code, modifiers)
        self.settle()


@pytest.fixture
def make_panel(
    qtbot: QtBot, hashing_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Harness]]:
    # A short highlight keeps the tests fast; its length is not what they check.
    monkeypatch.setattr(FlagsSection, "PULSE_MS", 40)
    made: list[Harness] = []

    def make(*, backend: Any = hashing_backend, ready: bool = True) -> Harness:
        window = MainWindow(use_tray=False, always_on_top=False)
        runner = TaskRunner()
        sink = MemoryFeedbackSink()
        panel = build_panel(window, runner, sink, debounce_ms=5)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        window.windowHandle().requestActivate()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=2000)
        if ready:
            panel.conversations.set_backend(backend)
        harness = Harness(window, panel, sink, runner, qtbot)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.panel.shutdown()
        harness.runner.shutdown(wait=True)
        harness.window.close()


REPLIES = tuple(
    Suggestion(
        id=f"test.reply_{n}",
        kind="template",
        text=text,
        title=f"Reply {n}",
        source=f"test.reply_{n}",
        citations=(Citation("KB-ESC-001", None, "Escalating to a supervisor"),),
        confidence=0.9 - n / 10,
        why="Fits the test",
        missing_slots=(),
        score=0.8 - n / 10,
        item_id=f"test.reply_{n}",
    )
    for n, text in enumerate(
        (
            "I understand, and I'm sorry. Let me put this right.",
            "I've logged this as a complaint; your reference is on its way.",
            "A team leader will call you back within 4 working hours.",
        ),
        start=1,
    )
)


class ThreeReplies:
    """The real pipeline with three fixed suggested replies, so keyboard tests do not depend on
    how many replies the ranking finds for a demo turn."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.policy = real.policy
        self.intents = real.intents

    def analyse(self, conversation: Any, *, generation: int = 0) -> Snapshot:
        snapshot = self._real.analyse(conversation, generation=generation)
        return replace(snapshot, suggestions=REPLIES)

    def forget(self, conversation_id: str) -> None:
        self._real.forget(conversation_id)


@pytest.fixture
def scripted(make_panel: Callable[..., Harness], hashing_backend: Any) -> Harness:
    """The legal-threat demo with exactly three suggested replies."""
    harness = make_panel(
        backend=replace(hashing_backend, assistant=ThreeReplies(hashing_backend.assistant))
    )
    harness.replay("05-")
    return harness


@pytest.fixture
def legal(make_panel: Callable[..., Harness]) -> Harness:
    """The panel after the legal-threat demo (critical flag, policy breach, suggestions)."""
    harness = make_panel()
    harness.replay("05-")
    return harness


def _visible_texts(widget: QWidget, name: str) -> list[str]:
    return [
        label.text()
        for label in widget.findChildren(QLabel, name)
        if label.isVisibleTo(widget) and label.text()
    ]


# --- what is shown ------------------------------------------------------------------------------


def test_loading_then_ready_states_and_the_input_is_enabled_only_when_ready(
    make_panel: Callable[..., Harness], hashing_backend: Any
) -> None:
    harness = make_panel(ready=False)
    panel = harness.panel
    assert panel.status_label.isVisible()
    assert panel.status_label.text().startswith("Loading")
    assert not panel.input.edit.isEnabled() and not panel.input.send_button.isEnabled()
    assert not panel.flags.isVisible()
    panel.conversations.set_backend(hashing_backend)
    assert panel.input.edit.isEnabled()
    assert "Ctrl+N" in panel.status_label.text()  # no conversation yet: how to start one
    panel.conversations.start_conversation("ui-empty")
    assert panel.flags.isVisible() and not panel.status_label.isVisible()
    assert "Waiting for the customer" in harness.vm.status_text()


def test_a_replayed_demo_shows_flags_policy_suggestions_articles_and_summary(
    legal: Harness,
) -> None:
    panel, snapshot = legal.panel, legal.snapshot()
    badges = _visible_texts(panel.flags, "LevelBadge")
    assert badges[0] == "⚠ CRITICAL"
    assert _visible_texts(panel.flags, "FlagKind")[0] == "Legal threat"
    assert any("my solicitor" in t for t in _visible_texts(panel.flags, "Evidence"))
    marks = _visible_texts(panel.policy, "StatusMark")
    assert marks[0].startswith("✗") and marks[-1] == "✓ DONE"
    assert any("Identity verified" in t for t in _visible_texts(panel.policy, "PolicyTitle"))
    cards = [c for c in panel.suggestions.cards if c.isVisible()]
    assert len(cards) == len(snapshot.suggestions) >= 1
    assert [c.text_label.text() for c in cards] == [s.text for s in snapshot.suggestions]
    assert _visible_texts(panel.articles, "CardTitle") == [h.title for h in snapshot.hits[:3]]
    summary = " ".join(_visible_texts(panel.summary, "SummaryText"))
    assert "Nadia Rahman" in summary and "CMP-771052" in summary
    transcript = panel.transcript.text()
    assert transcript.count("Customer · ") + transcript.count("Agent · ") == snapshot.turn_count
    assert "Customer · 14:2" in transcript and "my solicitor" in transcript
    assert panel.header.combo.currentText().startswith("Nadia Rahman")
    assert "CRITICAL" in panel.header.combo.currentText()
    assert legal.window.last_update_text().startswith("Updated ")
    assert legal.window.last_update_text().endswith(" ms")


def test_customer_text_is_always_plain_text(make_panel: Callable[..., Harness]) -> None:
    harness = make_panel()
    harness.conversations.start_conversation("ui-html")
    harness.conversations.submit_text("<b>x</b> and <img src=x> please", "customer")
    harness.wait_idle()
    transcript = harness.panel.transcript.text()
    assert transcript.endswith("\n<b>x</b> and <img src=x> please")
    labels = [label for label in harness.window.findChildren(QLabel) if label.text()]
    panel_labels = [label for label in labels if harness.panel.isAncestorOf(label)]
    assert panel_labels
    rich = [label.text() for label in panel_labels if label.textFormat() != Qt.TextFormat.PlainText]
    assert rich == []


# --- accept / edit / discard ---------------------------------------------------------------------


def test_accept_copies_the_reply_and_records_it(legal: Harness) -> None:
    card = legal.panel.suggestions.cards[0]
    shown = legal.snapshot().suggestions[0]
    legal.click(card.accept_button)
    assert QGuiApplication.clipboard().text() == shown.text
    (action,) = legal.recorded(FeedbackKind.ACCEPT)
    assert (action.rank, action.suggestion_id, action.item_id) == (1, shown.id, shown.item_id)
    assert action.shown_text == action.sent_text == shown.text
    assert action.edit_distance == 0
    assert action.conversation_id == legal.snapshot().conversation_id
    assert action.turn_id == legal.snapshot().last_turn_id
    assert action.latency_ms is not None and action.latency_ms >= 0
    assert legal.panel.suggestions.cards[0].accept_button.text() == "Copied ✓"
    assert "copied" in legal.panel.input.notice_label.text()


def test_edit_checks_the_draft_live_and_records_the_sent_text(legal: Harness) -> None:
    panel = legal.panel
    shown = legal.snapshot().suggestions[0]
    legal.click(panel.suggestions.cards[0].edit_button)
    editor = panel.suggestions.editor
    assert editor.isVisible() and editor.edit.toPlainText() == shown.text
    legal.qtbot.waitUntil(lambda: editor.checks_label.text().startswith("✓"), timeout=3000)
    editor.edit.setPlainText(f"Please read me the card number {CARD}, I'll refund £300 now.")
    legal.qtbot.waitUntil(lambda: editor.checks_label.text().startswith("✗"), timeout=3000)
    assert "CRITICAL" in editor.checks_label.text()
    legal.click(editor.send_button)
    (action,) = legal.recorded(FeedbackKind.EDIT)
    assert CARD not in (action.sent_text or "")
    assert "[CARD •••• 1111]" in (action.sent_text or "")
    assert QGuiApplication.clipboard().text() == action.sent_text
    assert action.edit_distance == edit_distance(shown.text, action.sent_text or "")
    assert action.edit_distance > 0 and action.suggestion_id == shown.id
    assert not editor.isVisible()


def test_discard_with_a_one_click_reason_is_recorded_once(legal: Harness) -> None:
    panel = legal.panel
    shown = legal.snapshot().suggestions[0]
    legal.click(panel.suggestions.cards[0].discard_button)
    assert panel.suggestions.reason_row.isVisible()
    assert [c.text_label.text() for c in panel.suggestions.cards if c.isVisible()] == [
        s.text for s in legal.snapshot().suggestions[1:]
    ]
    assert legal.sink.of_kind(FeedbackKind.DISCARD) == ()  # waits for the reason
    legal.click(panel.suggestions.reason_buttons["wrong_tone"])
    (action,) = legal.recorded(FeedbackKind.DISCARD)
    assert action.reason is DiscardReason.WRONG_TONE
    assert (action.suggestion_id, action.rank) == (shown.id, 1)
    assert not panel.suggestions.reason_row.isVisible()


def test_discard_without_a_reason_is_recorded_when_the_row_closes(legal: Harness) -> None:
    panel = legal.panel
    legal.click(panel.suggestions.cards[0].discard_button)
    close = next(
        b
        for b in panel.suggestions.reason_row.findChildren(QToolButton)
        if b.accessibleName() == "Close without giving a reason"
    )
    legal.click(close)
    (action,) = legal.recorded(FeedbackKind.DISCARD)
    assert action.reason is None


def test_a_pending_discard_is_recorded_when_the_conversation_moves_on(legal: Harness) -> None:
    legal.click(legal.panel.suggestions.cards[0].discard_button)
    conversation_id = legal.snapshot().conversation_id
    legal.conversations.submit_text("Are you still there?", "customer", conversation_id)
    (action,) = legal.recorded(FeedbackKind.DISCARD)
    assert action.reason is None


# --- articles, flags, routing --------------------------------------------------------------------


def _button(widget: QWidget, name: str) -> QPushButton:
    return next(b for b in widget.findChildren(QPushButton, name) if b.isVisible())


def test_articles_helpful_and_not_helpful_are_recorded(legal: Harness) -> None:
    panel, hits = legal.panel, legal.snapshot().hits
    legal.click(_button(panel.articles, "HelpfulButton"))
    (helpful,) = legal.recorded(FeedbackKind.ARTICLE_HELPFUL)
    assert helpful.item_id == hits[0].best.passage.passage_id
    assert helpful.article_id == hits[0].article_id and helpful.rank == 1
    assert _button(panel.articles, "HelpfulButton").isChecked()
    legal.click(_button(panel.articles, "NotHelpfulButton"))
    (unhelpful,) = legal.recorded(FeedbackKind.ARTICLE_NOT_HELPFUL)
    assert unhelpful.item_id == hits[0].best.passage.passage_id


def test_open_shows_the_whole_article_as_plain_text(legal: Harness) -> None:
    hit = legal.snapshot().hits[0]
    open_button = next(
        b for b in legal.panel.articles.findChildren(QPushButton) if b.text() == "Open"
    )
    legal.click(open_button)
    dialog = legal.window.findChild(ArticleDialog)
    assert dialog is not None and dialog.isVisible()
    assert hit.best.passage.text.strip() in dialog.text.toPlainText()
    assert dialog.windowTitle() == f"{hit.article_id}: {hit.title}"
    dialog.close()


def test_flag_not_right_is_recorded(legal: Harness) -> None:
    flags = legal.panel.flags
    button = next(b for b in flags.findChildren(QToolButton, "NotRightButton") if b.isVisible())
    legal.click(button)
    (action,) = legal.recorded(FeedbackKind.FLAG_WRONG)
    assert action.flag_kind == "legal_threat" and action.flag_rule is None
    assert "Marked not right" in _visible_texts(flags, "Muted")


def test_unchanged_flags_and_checks_keep_their_rows_and_changed_ones_are_redrawn(
    legal: Harness,
) -> None:
    """A turn that changes no flag or check must not rebuild their rows (GUI time per turn)."""
    panel = legal.panel
    flag_rows = panel.flags.findChildren(QFrame, "FlagRow")
    policy_rows = panel.policy.findChildren(QFrame, "PolicyRow")
    assert flag_rows and policy_rows
    flags, policy = panel.vm.flags_model, panel.vm.policy_model
    flags.set_items(flags.items())
    policy.set_items(policy.items())
    assert panel.flags.findChildren(QFrame, "FlagRow") == flag_rows
    assert panel.policy.findChildren(QFrame, "PolicyRow") == policy_rows
    flags.set_items(flags.items()[:1])
    policy.set_items(())
    legal.qtbot.waitUntil(
        lambda: len([w for w in panel.flags.findChildren(QFrame, "FlagRow") if w.isVisible()]) == 1
    )
    assert not [w for w in panel.policy.findChildren(QFrame, "PolicyRow") if w.isVisible()]
    assert "No policy steps apply yet." in _visible_texts(panel.policy, "EmptyNote")


def test_policy_not_right_is_recorded(legal: Harness) -> None:
    policy = legal.panel.policy
    button = next(b for b in policy.findChildren(QToolButton, "NotRightButton") if b.isVisible())
    legal.click(button)
    (action,) = legal.recorded(FeedbackKind.FLAG_WRONG)
    assert action.flag_rule == legal.panel.vm.policy_model.items()[0].rule_id


def test_intent_is_corrected_in_free_text_without_a_taxonomy(
    make_panel: Callable[..., Harness], hashing_backend: Any
) -> None:
    legal = make_panel(backend=replace(hashing_backend, intent_choices=()))
    legal.replay("05-")
    flags = legal.panel.flags
    legal.click(flags.correct_button)
    assert flags.intent_combo.count() == 0  # no taxonomy loaded: free text
    legal.qtbot.keyClicks(flags.intent_combo, "Contract dispute")
    legal.click(flags.apply_intent_button)
    (action,) = legal.recorded(FeedbackKind.INTENT_CORRECTED)
    assert action.corrected_intent == "Contract dispute"
    assert flags.routing_label.text().startswith("Contract dispute (corrected by you")
    assert "Contract dispute" in legal.panel.header.combo.currentText()


def test_intent_is_chosen_from_the_taxonomy_when_there_is_one(
    make_panel: Callable[..., Harness], hashing_backend: Any
) -> None:
    backend = replace(
        hashing_backend,
        intent_choices=(("billing_double_charge", "Charged twice"), ("complaint", "Complaint")),
    )
    harness = make_panel(backend=backend)
    harness.replay("02-", turns=3)
    flags = harness.panel.flags
    harness.click(flags.correct_button)
    assert [flags.intent_combo.itemText(i) for i in range(flags.intent_combo.count())] == [
        "Charged twice",
        "Complaint",
    ]
    flags.intent_combo.setCurrentIndex(0)
    harness.click(flags.apply_intent_button)
    (action,) = harness.recorded(FeedbackKind.INTENT_CORRECTED)
    assert action.corrected_intent == "billing_double_charge"
    assert flags.routing_label.text().startswith("Charged twice")


# --- announcements --------------------------------------------------------------------------


def test_a_new_critical_flag_is_announced_once_and_highlighted_briefly(
    make_panel: Callable[..., Harness],
) -> None:
    harness = make_panel()
    announced: list[str] = []
    harness.panel.flags.sig_announced.connect(announced.append)
    conversation_id = harness.replay("05-", turns=2)  # no legal threat yet
    assert announced == []
    for event in list(read_events(next(DEMOS.glob("05-*.jsonl"))))[2:]:
        harness.conversations.apply_event(replace(event, conversation_id=conversation_id))
    harness.wait_idle()
    assert len(announced) == 1 and announced[0].startswith("CRITICAL flag. Legal threat")
    flags = harness.panel.flags
    assert flags.accessibleDescription() == announced[0]
    harness.qtbot.waitUntil(lambda: not flags.pulsing, timeout=2000)
    harness.conversations.submit_text("Still waiting.", "customer", conversation_id)
    harness.wait_idle()
    assert len(announced) == 1  # the same flag is not announced again


# --- keyboard ----------------------------------------------------------------------------------


def test_alt_digits_accept_suggestions(scripted: Harness) -> None:
    legal = scripted
    suggestions = legal.snapshot().suggestions
    legal.panel.input.edit.setFocus()
    legal.key("Alt+2")
    assert QGuiApplication.clipboard().text() == suggestions[1].text
    legal.key("Alt+1")
    actions = legal.recorded(FeedbackKind.ACCEPT, 2)
    assert [a.rank for a in actions] == [2, 1]
    assert QGuiApplication.clipboard().text() == suggestions[0].text


def test_alt_e_edits_the_focused_suggestion_and_ctrl_enter_sends_it(scripted: Harness) -> None:
    legal = scripted
    suggestions = legal.snapshot().suggestions
    legal.panel.suggestions.cards[1].discard_button.setFocus()
    legal.key("Alt+E")
    editor = legal.panel.suggestions.editor
    assert editor.isVisible() and editor.edit.hasFocus()
    assert editor.edit.toPlainText() == suggestions[1].text
    legal.qtbot.keyClicks(editor.edit, " Thanks!")
    legal.key("Ctrl+Return")
    (action,) = legal.recorded(FeedbackKind.EDIT)
    assert action.rank == 2 and action.sent_text == suggestions[1].text + " Thanks!"
    assert action.edit_distance == len(" Thanks!")
    assert legal.conversations.conversation().turns[-1].text != "Thanks!"  # not sent as a turn


def test_esc_cancels_the_editor_and_alt_d_discards_the_first_suggestion(legal: Harness) -> None:
    first = legal.snapshot().suggestions[0]
    legal.key("Alt+E")
    assert legal.panel.suggestions.editor.isVisible()
    legal.key("Esc")
    assert not legal.panel.suggestions.editor.isVisible()
    legal.panel.input.edit.setFocus()
    legal.key("Alt+D")
    assert legal.panel.suggestions.reason_row.isVisible()
    legal.click(legal.panel.suggestions.reason_buttons["outdated"])
    (action,) = legal.recorded(FeedbackKind.DISCARD)
    assert action.suggestion_id == first.id and action.reason is DiscardReason.OUTDATED


def test_ctrl_n_starts_a_conversation_and_ctrl_enter_sends_the_typed_turn(
    make_panel: Callable[..., Harness],
) -> None:
    harness = make_panel()
    harness.key("Ctrl+N")
    conversation_id = harness.conversations.current_id
    assert conversation_id and harness.panel.input.edit.hasFocus()
    harness.qtbot.keyClicks(harness.panel.input.edit, "I think I was charged twice")
    harness.key("Ctrl+Return")
    harness.wait_idle()
    conversation = harness.conversations.conversation(conversation_id)
    assert [t.text for t in conversation.turns] == ["I think I was charged twice"]
    assert harness.panel.input.edit.toPlainText() == ""
    assert harness.panel.input.role_combo.currentText() == "Agent said"  # the reply is next


def test_ctrl_k_searches_the_knowledge_base_and_esc_clears(legal: Harness) -> None:
    articles = legal.panel.articles
    legal.key("Ctrl+K")
    assert articles.search_edit.hasFocus()
    legal.qtbot.keyClicks(articles.search_edit, "refund to card")
    legal.qtbot.waitUntil(
        lambda: articles.note_label.text() == "Search results for “refund to card”", timeout=3000
    )
    assert legal.vm.showing_search
    legal.key("Esc")
    assert not legal.vm.showing_search and articles.search_edit.text() == ""
    titles = _visible_texts(articles, "CardTitle")
    assert titles == [h.title for h in legal.snapshot().hits[:3]]


def test_ctrl_h_copies_the_handover_note(legal: Harness) -> None:
    legal.key("Ctrl+H")
    note = QGuiApplication.clipboard().text()
    assert "Nadia Rahman" in note and "Legal threat" in note
    assert "CMP-771052" in note
    assert legal.panel.input.notice_label.text() == "Handover note copied to the clipboard."


def test_shortcuts_are_shown_in_tooltips_and_menus(legal: Harness) -> None:
    card: SuggestionCard = legal.panel.suggestions.cards[0]
    assert "(Alt+1)" in card.accept_button.toolTip()
    assert "(Alt+E)" in card.edit_button.toolTip()
    assert "(Alt+D)" in card.discard_button.toolTip()
    assert "(Ctrl+K)" in legal.panel.articles.search_edit.toolTip()
    assert "(Ctrl+N)" in legal.panel.header.new_button.toolTip()
    assert "(Ctrl+H)" in legal.panel.header.handover_button.toolTip()
    assert "(Ctrl+Enter)" in legal.panel.input.send_button.toolTip()
    for key, keys in SHORTCUTS.items():
        action = legal.panel.actions[key]
        assert action.shortcut().toString() == keys[0].replace("Return", "Return")
        assert action in legal.window.actions()


def test_every_control_is_named_for_assistive_technology_and_reachable_by_tab(
    legal: Harness,
) -> None:
    window = legal.window
    controls = [
        w
        for w in window.findChildren(QWidget)
        if isinstance(w, QAbstractButton | QLineEdit | QComboBox | QPlainTextEdit)
        and w.isVisible()
        and not isinstance(w.parent(), QComboBox)
        and (
            legal.panel.isAncestorOf(w)
            or legal.panel.header.isAncestorOf(w)
            or legal.panel.input.isAncestorOf(w)
        )
    ]
    assert len(controls) > 15
    assert [
        f"{type(w).__name__} {w.text() if hasattr(w, 'text') else ''}"
        for w in controls
        if not w.accessibleName()
    ] == []
    chain: set[QWidget] = set()
    widget: QWidget = legal.panel.header.combo
    for _ in range(500):
        chain.add(widget)
        widget = widget.nextInFocusChain()
        if widget is legal.panel.header.combo:
            break
    unreachable = [
        w.accessibleName()
        for w in controls
        if w.focusPolicy() & Qt.FocusPolicy.TabFocus and w not in chain
    ]
    assert unreachable == []
