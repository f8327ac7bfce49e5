"""The panel's sections: each one shows an item model of `SnapshotViewModel` as cards.

Sections are plain widgets rebuilt from their model when it resets (a new snapshot); they read
every text from the model's roles and send every click to the view-model. Customer, agent and
article text is always shown as plain text (`plain_label`), never interpreted as markup: a
customer typing ``<img src=x>`` sees exactly that.

Most urgent first: flags and routing, the policy checklist, suggested replies, knowledge
articles, then the live summary and the transcript. Levels and statuses are written out in words
("CRITICAL", "MISSED") with a symbol beside them; colour only repeats what the words say.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEasingCurve, Qt, QVariantAnimation, Signal
from PySide6.QtGui import (
    QAccessible,
    QAccessibleEvent,
    QColor,
    QFont,
    QPainter,
    QPaintEvent,
    QTextCharFormat,
)
from PySide6.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from copilot.core.feedback import DISCARD_REASON_LABELS
from copilot.core.generative import AI_LABEL
from copilot.qt.item_models import (
    STATUS_MARKS,
    ArticleListModel,
    FlagListModel,
    PolicyListModel,
    SuggestionListModel,
    TupleListModel,
)
from copilot.qt.snapshot_vm import DraftFinding, SnapshotViewModel

PASSAGE_PREVIEW_CHARS = 260
STATUS_WIDTH = 86  # the "✗ MISSED" column of the policy checklist
TRANSCRIPT_TURNS = 40


# --- helpers ------------------------------------------------------------------------------------


def plain_label(
    text: str = "",
    *,
    name: str = "",
    wrap: bool = True,
    selectable: bool = False,
    parent: QWidget | None = None,
) -> QLabel:
    """A label that shows ``text`` literally (never as HTML), word-wrapped by default."""
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    label.setWordWrap(wrap)
    if wrap:
        # Wrapped labels take the width they are given instead of widening the narrow window.
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        label.setSizePolicy(policy)
        label.setMinimumWidth(40)
    if name:
        label.setObjectName(name)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def small_button(
    text: str,
    tooltip: str,
    accessible_name: str,
    on_click: Callable[[], None],
    *,
    name: str = "",
    parent: QWidget | None = None,
) -> QPushButton:
    """A push button with a tooltip (naming its shortcut) and an accessible name."""
    button = QPushButton(text, parent)
    button.setToolTip(tooltip)
    button.setAccessibleName(accessible_name)
    button.setAccessibleDescription(tooltip)
    button.setAutoDefault(False)
    button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    if name:
        button.setObjectName(name)
    button.clicked.connect(lambda _checked=False: on_click())
    return button


def not_right_button(
    parent: QWidget, tooltip: str, accessible_name: str, on_click: Callable[[], None]
) -> QToolButton:
    """The small "Not right" button of a flag or a policy check (recorded as feedback)."""
    button = QToolButton(parent)
    button.setText("Not right")
    button.setObjectName("NotRightButton")
    button.setToolTip(tooltip)
    button.setAccessibleName(accessible_name)
    button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    button.clicked.connect(lambda _checked=False: on_click())
    return button


def repolish(widget: QWidget) -> None:
    """Apply style-sheet rules that depend on a dynamic property just changed."""
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)


def clear_layout(layout: QLayout) -> None:
    """Remove and delete every widget and sub-layout of ``layout``."""
    while layout.count():
        item = layout.takeAt(0)
        if item is None:
            break
        widget = item.widget()
        if widget is not None:
            widget.hide()
            widget.deleteLater()
            continue
        child = item.layout()
        if child is not None:
            clear_layout(child)
            child.deleteLater()


def clip(text: str, limit: int) -> str:
    """``text`` cut at a word boundary before ``limit`` characters, with "…" when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:.") + "…"


class Section(QFrame):
    """A titled card of the panel (the theme styles ``role="section"`` frames)."""

    def __init__(self, title: str, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setProperty("role", "section")
        self.setAccessibleName(title)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 2, 4, 4)
        outer.setSpacing(6)
        self.header = QHBoxLayout()
        self.header.setSpacing(6)
        self.title_label = plain_label(title.upper(), name="SectionTitle", wrap=False)
        self.title_label.setAccessibleName(title)
        self.header.addWidget(self.title_label, 1)
        outer.addLayout(self.header)
        self.body = QVBoxLayout()
        self.body.setSpacing(8)
        outer.addLayout(self.body)

    def empty_note(self, text: str) -> QLabel:
        return plain_label(text, name="EmptyNote")


class _PulseOverlay(QWidget):
    """A translucent highlight drawn over a section while a new critical flag is announced."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.strength = 0.0
        self.colour = QColor("#d93025")
        self.hide()

    def paintEvent(self, event: QPaintEvent) -> None:
        if self.strength <= 0:
            return
        painter = QPainter(self)
        colour = QColor(self.colour)
        colour.setAlphaF(0.28 * self.strength)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(self.rect(), 6, 6)
        painter.end()


def _shown_rows(
    model: TupleListModel, roles: tuple[int, ...], marked: Callable[[int], bool]
) -> tuple[object, ...]:
    """Everything a section's rows show, per row: equal keys mean identical rows."""
    return tuple(
        (*(model.value(row, role) for role in roles), marked(row))
        for row in range(model.rowCount())
    )


# --- flags and routing --------------------------------------------------------------------------


_FLAG_ROLES = (
    Qt.ItemDataRole.AccessibleTextRole,
    FlagListModel.LevelRole,
    FlagListModel.LevelTextRole,
    FlagListModel.IconRole,
    FlagListModel.KindRole,
    FlagListModel.KindLabelRole,
    FlagListModel.MessageRole,
    FlagListModel.EvidenceRole,
)
_POLICY_ROLES = (
    Qt.ItemDataRole.AccessibleTextRole,
    PolicyListModel.StatusRole,
    PolicyListModel.StatusTextRole,
    PolicyListModel.MarkRole,
    PolicyListModel.TitleRole,
    PolicyListModel.DetailRole,
    PolicyListModel.ArticleRole,
    PolicyListModel.RuleRole,
)


class FlagsSection(Section):
    """Flags (level in words, symbol, the customer's words, "Not right") and the routing line.

    Signals:
        sig_announced(str): a new critical flag was announced (the text read to the agent).
    """

    sig_announced = Signal(str)
    PULSE_MS = 900

    def __init__(self, vm: SnapshotViewModel, parent: QWidget | None = None) -> None:
        super().__init__("Flags & routing", "FlagsSection", parent)
        self._vm = vm
        self._model: FlagListModel = vm.flags_model
        self._shown: tuple[object, ...] | None = None
        self.rows = QVBoxLayout()
        self.rows.setSpacing(6)
        self.body.addLayout(self.rows)
        self.sentiment_label = plain_label(name="Muted")
        self.sentiment_label.setAccessibleName("Sentiment")
        self.body.addWidget(self.sentiment_label)
        self._build_routing()
        self._overlay = _PulseOverlay(self)
        self._pulse = QVariantAnimation(self)
        self._pulse.setStartValue(0.0)
        self._pulse.setKeyValueAt(0.5, 1.0)
        self._pulse.setEndValue(0.0)
        self._pulse.setDuration(self.PULSE_MS)
        self._pulse.setLoopCount(2)
        self._pulse.setEasingCurve(QEasingCurve.Type.InOutSine)
        self._pulse.valueChanged.connect(self._pulse_step)
        self._pulse.finished.connect(self._overlay.hide)
        self._model.modelReset.connect(self.rebuild)
        vm.sig_changed.connect(self._refresh_routing)
        vm.sig_feedback_changed.connect(self.rebuild)
        vm.sig_critical_flag_raised.connect(self.announce)
        self.rebuild()
        self._refresh_routing()

    # -- flags ---------------------------------------------------------------------------------

    def rebuild(self) -> None:
        model = self._model
        shown = _shown_rows(
            model,
            _FLAG_ROLES,
            lambda row: self._vm.is_marked_wrong(
                f"flag:{model.value(row, FlagListModel.KindRole)}"
            ),
        )
        if shown == self._shown:
            return  # most turns change no flag: new rows would cost GUI time for nothing
        self._shown = shown
        clear_layout(self.rows)
        if model.rowCount() == 0:
            self.rows.addWidget(self.empty_note("No flags raised."))
        for row in range(model.rowCount()):
            self.rows.addWidget(self._flag_row(row))

    def _refresh_sentiment(self) -> None:
        snapshot = self._vm.snapshot
        signals = snapshot.signals if snapshot else None
        sentiment = signals.sentiment if signals else None
        if signals is not None and sentiment is not None:
            self.sentiment_label.setText(
                f"Sentiment: {sentiment.label} ({sentiment.score:+.2f}), "
                f"trend {signals.trend.trend}"
            )
            self.sentiment_label.show()
        else:
            self.sentiment_label.hide()

    def _flag_row(self, row: int) -> QFrame:
        model = self._model
        level = model.value(row, FlagListModel.LevelRole)
        kind = model.value(row, FlagListModel.KindRole)
        frame = QFrame(self)
        frame.setObjectName("FlagRow")
        frame.setProperty("level", level)
        frame.setAccessibleName(model.value(row, Qt.ItemDataRole.AccessibleTextRole))
        layout = QVBoxLayout(frame)
        layout.setContentsMargins(8, 4, 4, 5)
        layout.setSpacing(1)
        top = QHBoxLayout()
        top.setSpacing(8)
        badge = plain_label(
            f"{model.value(row, FlagListModel.IconRole)} "
            f"{model.value(row, FlagListModel.LevelTextRole)}",
            name="LevelBadge",
            wrap=False,
        )
        badge.setProperty("level", level)
        badge.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        top.addWidget(badge)
        kind_label = plain_label(model.value(row, FlagListModel.KindLabelRole), name="FlagKind")
        top.addWidget(kind_label, 1)
        if self._vm.is_marked_wrong(f"flag:{kind}"):
            marked = plain_label("Marked not right", name="Muted", wrap=False)
            top.addWidget(marked)
        else:
            button = not_right_button(
                frame,
                "This flag is wrong: tell the co-pilot (recorded as feedback)",
                f"Flag {model.value(row, FlagListModel.KindLabelRole)} is not right",
                lambda r=row: self._vm.mark_flag_wrong(r),
            )
            top.addWidget(button)
        layout.addLayout(top)
        layout.addWidget(
            plain_label(model.value(row, FlagListModel.MessageRole), name="FlagMessage")
        )
        evidence = model.value(row, FlagListModel.EvidenceRole)
        if evidence:
            layout.addWidget(plain_label(f"Customer said: {evidence}", name="Evidence"))
        return frame

    # -- routing -------------------------------------------------------------------------------

    def _build_routing(self) -> None:
        box = QFrame(self)
        box.setObjectName("RoutingBox")
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(2)
        top = QHBoxLayout()
        caption = plain_label("Routing:", name="Caption", wrap=False)
        caption.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        top.addWidget(caption)
        self.routing_label = plain_label(name="RoutingHeadline")
        self.routing_label.setAccessibleName("Routing")
        top.addWidget(self.routing_label, 1)
        self.correct_button = QToolButton(box)
        self.correct_button.setText("Correct…")
        self.correct_button.setToolTip("The intent is wrong: choose the right one")
        self.correct_button.setAccessibleName("Correct the intent")
        self.correct_button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.correct_button.clicked.connect(self._toggle_correction)
        top.addWidget(self.correct_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        self.layer_label = plain_label(name="RoutingLayer")
        self.layer_label.setAccessibleName("Who owns the conversation")
        layout.addWidget(self.layer_label)
        self.reasons_label = plain_label(name="Muted")
        layout.addWidget(self.reasons_label)
        self.correction_row = QWidget(box)
        row = QHBoxLayout(self.correction_row)
        row.setContentsMargins(0, 2, 0, 0)
        self.intent_combo = QComboBox(self.correction_row)
        self.intent_combo.setEditable(True)
        self.intent_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.intent_combo.setAccessibleName("Correct intent")
        self.intent_combo.setToolTip("Choose the intent, or type it")
        self.intent_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.intent_combo.setMinimumContentsLength(10)
        line = self.intent_combo.lineEdit()
        if line is not None:
            line.setPlaceholderText("Type or choose the intent")
            line.returnPressed.connect(self._apply_correction)
        row.addWidget(self.intent_combo, 1)
        self.apply_intent_button = small_button(
            "Save",
            "Save the corrected intent (recorded as feedback)",
            "Save the corrected intent",
            self._apply_correction,
        )
        row.addWidget(self.apply_intent_button)
        self.correction_row.hide()
        layout.addWidget(self.correction_row)
        self.body.addWidget(box)

    def _refresh_routing(self) -> None:
        self._refresh_sentiment()
        routing = self._vm.routing()
        if routing is None:
            self.routing_label.setText("Waiting for the first analysis…")
            self.layer_label.hide()
            self.reasons_label.hide()
            self.correct_button.setEnabled(False)
            return
        self.correct_button.setEnabled(True)
        headline = routing.headline
        if routing.corrected:
            headline = f"{routing.corrected} (corrected by you; predicted: {routing.headline})"
        self.routing_label.setText(headline)
        self.routing_label.setAccessibleDescription(routing.accessible_text)
        self.layer_label.setText(f"Owner: {routing.layer}" if routing.layer else "")
        self.layer_label.setVisible(bool(routing.layer))
        self.layer_label.setProperty("layer", routing.layer_id or "")
        repolish(self.layer_label)
        self.reasons_label.setText(" · ".join(routing.reasons))
        self.reasons_label.setVisible(bool(routing.reasons))

    def _toggle_correction(self) -> None:
        if self.correction_row.isVisible():
            self.correction_row.hide()
            return
        self.intent_combo.clear()
        for intent_id, name in self._vm.intent_choices():
            self.intent_combo.addItem(name, intent_id)
        self.intent_combo.setCurrentIndex(-1)
        self.intent_combo.setEditText("")
        self.correction_row.show()
        self.intent_combo.setFocus(Qt.FocusReason.OtherFocusReason)

    def _apply_correction(self) -> None:
        text = self.intent_combo.currentText().strip()
        index = self.intent_combo.findText(text, Qt.MatchFlag.MatchFixedString)
        value = str(self.intent_combo.itemData(index)) if index >= 0 else text
        if not value:
            return
        self._vm.correct_intent(value)
        self.correction_row.hide()
        self.correct_button.setFocus(Qt.FocusReason.OtherFocusReason)

    # -- the announcement ----------------------------------------------------------------------

    def announce(self, text: str) -> None:
        """Tell assistive technology about a new critical flag, and pulse the section once."""
        self.setAccessibleDescription(text)
        self.setToolTip(text)
        QAccessible.updateAccessibility(QAccessibleEvent(self, QAccessible.Event.Alert))
        self._overlay.setGeometry(self.rect())
        self._overlay.raise_()
        self._overlay.show()
        self._pulse.stop()
        self._pulse.start()
        self.sig_announced.emit(text)

    @property
    def pulsing(self) -> bool:
        return self._pulse.state() == QVariantAnimation.State.Running

    def _pulse_step(self, value: object) -> None:
        self._overlay.strength = float(value)  # type: ignore[arg-type]
        self._overlay.update()

    def stop_pulse(self) -> None:
        self._pulse.stop()
        self._overlay.hide()


# --- policy -------------------------------------------------------------------------------------


class PolicySection(Section):
    """The policy checklist: breaches, then missed, pending and done steps, in words and marks."""

    def __init__(self, vm: SnapshotViewModel, parent: QWidget | None = None) -> None:
        super().__init__("Policy checklist", "PolicySection", parent)
        self._vm = vm
        self._model: PolicyListModel = vm.policy_model
        self.rows = QVBoxLayout()
        self.rows.setSpacing(4)
        self.body.addLayout(self.rows)
        self._shown: tuple[object, ...] | None = None
        self._model.modelReset.connect(self.rebuild)
        vm.sig_feedback_changed.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        model = self._model
        shown = _shown_rows(
            model,
            _POLICY_ROLES,
            lambda row: self._vm.is_marked_wrong(
                f"rule:{model.value(row, PolicyListModel.RuleRole)}"
            ),
        )
        if shown == self._shown:
            return  # the checklist changes on few turns: rebuild its rows only then
        self._shown = shown
        clear_layout(self.rows)
        if model.rowCount() == 0:
            self.rows.addWidget(self.empty_note("No policy steps apply yet."))
        done: list[str] = []
        for row in range(model.rowCount()):
            if model.value(row, PolicyListModel.StatusRole) == "done":
                done.append(model.value(row, PolicyListModel.TitleRole))
            else:
                self.rows.addWidget(self._row(row))
        if done:
            # Steps already done need no attention: one compact line for all of them.
            self.rows.addWidget(self._done_row(done))

    def _done_row(self, titles: list[str]) -> QWidget:
        widget = QFrame(self)
        widget.setObjectName("PolicyRow")
        widget.setProperty("status", "done")
        widget.setAccessibleName("Done: " + "; ".join(titles))
        top = QHBoxLayout(widget)
        top.setContentsMargins(0, 0, 0, 0)
        top.setSpacing(6)
        mark = plain_label(f"{STATUS_MARKS['done']} DONE", name="StatusMark", wrap=False)
        mark.setProperty("status", "done")
        mark.setFixedWidth(max(STATUS_WIDTH, mark.sizeHint().width()))
        top.addWidget(mark, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(plain_label(" · ".join(titles), name="PolicyTitle"), 1)
        return widget

    def _row(self, row: int) -> QWidget:
        model = self._model
        status = model.value(row, PolicyListModel.StatusRole)
        widget = QFrame(self)
        widget.setObjectName("PolicyRow")
        widget.setProperty("status", status)
        widget.setAccessibleName(model.value(row, Qt.ItemDataRole.AccessibleTextRole))
        layout = QVBoxLayout(widget)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        top = QHBoxLayout()
        top.setSpacing(6)
        mark = plain_label(
            f"{model.value(row, PolicyListModel.MarkRole)} "
            f"{model.value(row, PolicyListModel.StatusTextRole)}",
            name="StatusMark",
            wrap=False,
        )
        mark.setProperty("status", status)
        mark.setFixedWidth(max(STATUS_WIDTH, mark.sizeHint().width()))
        top.addWidget(mark, 0, Qt.AlignmentFlag.AlignTop)
        title = plain_label(model.value(row, PolicyListModel.TitleRole), name="PolicyTitle")
        top.addWidget(title, 1)
        rule = model.value(row, PolicyListModel.RuleRole)
        if status in ("breach", "missed"):
            if self._vm.is_marked_wrong(f"rule:{rule}"):
                top.addWidget(plain_label("Marked not right", name="Muted", wrap=False))
            else:
                button = not_right_button(
                    widget,
                    "This check is wrong: tell the co-pilot (recorded as feedback)",
                    f"Policy check {model.value(row, PolicyListModel.TitleRole)} is not right",
                    lambda r=row: self._vm.mark_policy_wrong(r),
                )
                top.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        detail = model.value(row, PolicyListModel.DetailRole)
        if detail:
            article = model.value(row, PolicyListModel.ArticleRole)
            text = f"{detail} ({article})" if article else detail
            label = plain_label(text, name="PolicyDetail")
            label.setContentsMargins(STATUS_WIDTH + 6, 0, 0, 0)
            layout.addWidget(label)
        return widget


# --- suggestions --------------------------------------------------------------------------------


class SuggestionCard(QFrame):
    """One suggested reply with its Accept / Edit / Discard buttons.

    `show_row` refills the same widgets for another snapshot: creating and deleting a card's
    widgets costs ~15 ms of GUI time each, felt as a stall on every turn.
    """

    def __init__(self, vm: SnapshotViewModel, row: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row = row
        self._vm = vm
        self.setObjectName("SuggestionCard")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        top = QHBoxLayout()
        top.setSpacing(6)
        self.rank_label = plain_label("", name="RankBadge", wrap=False)
        self.rank_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        top.addWidget(self.rank_label, 0, Qt.AlignmentFlag.AlignTop)
        self.title_label = plain_label("", name="CardTitle")
        top.addWidget(self.title_label, 1)
        # Shown only on drafts the optional language model wrote.
        self.ai_label = plain_label(AI_LABEL, name="AiLabel", wrap=False)
        self.ai_label.setAccessibleName(f"{AI_LABEL} reply")
        self.ai_label.setToolTip("Written by the language model; check it before sending")
        top.addWidget(self.ai_label, 0, Qt.AlignmentFlag.AlignTop)
        self.confidence_label = plain_label("", name="Confidence", wrap=False)
        self.confidence_label.setToolTip("How well this reply fits the conversation")
        top.addWidget(self.confidence_label, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        self.text_label = plain_label("", name="ReplyText", selectable=True)
        layout.addWidget(self.text_label)
        self.missing_label = plain_label("", name="Warning")
        layout.addWidget(self.missing_label)
        self.source_label = plain_label("", name="Muted")
        layout.addWidget(self.source_label)
        self.why_label = plain_label("", name="Muted")
        layout.addWidget(self.why_label)
        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        self.accept_button = small_button(
            "Accept", "", "", lambda: vm.accept(self.row), name="AcceptButton"
        )
        self.edit_button = small_button("Edit", "", "", lambda: vm.start_edit(self.row))
        self.discard_button = small_button("Discard", "", "", lambda: vm.discard(self.row))
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.discard_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.show_row(row)

    def show_row(self, row: int) -> None:
        """Show suggestion ``row`` of the view-model's list (the buttons act on it)."""
        self.row = row
        vm = self._vm
        model: SuggestionListModel = vm.suggestions_model
        rank = row + 1
        generated = bool(getattr(model.item(row), "generated", False))
        self.ai_label.setVisible(generated)
        self.setProperty("generated", generated)
        ai = f"{AI_LABEL} " if generated else ""
        self.setAccessibleName(f"{ai}suggested reply {rank}" if ai else f"Suggested reply {rank}")
        self.setAccessibleDescription(model.value(row, Qt.ItemDataRole.AccessibleTextRole))
        self.rank_label.setText(str(rank))
        self.rank_label.setToolTip(f"Alt+{rank} accepts this reply" if rank <= 3 else "")
        self.title_label.setText(model.value(row, SuggestionListModel.TitleRole))
        self.confidence_label.setText(
            f"{model.value(row, SuggestionListModel.ConfidenceTextRole)} fit"
        )
        self.text_label.setText(model.value(row, SuggestionListModel.TextRole))
        self.text_label.setAccessibleName(f"Text of suggested reply {rank}")
        missing = model.value(row, SuggestionListModel.MissingSlotsRole)
        self.missing_label.setText(f"Fill in before sending: {missing}" if missing else "")
        self.missing_label.setVisible(bool(missing))
        source = model.value(row, SuggestionListModel.SourceRole)
        if generated:
            source = getattr(model.item(row), "source", source)
        self.source_label.setText(f"Source: {source}")
        self.why_label.setText(f"Why: {model.value(row, SuggestionListModel.WhyRole)}")
        alt = f" (Alt+{rank})" if rank <= 3 else ""
        accepted = vm.was_accepted(model.value(row, SuggestionListModel.IdRole))
        for button, tooltip, name in (
            (
                self.accept_button,
                f"Copy this reply to the clipboard to paste into your chat{alt}",
                f"Accept suggested reply {rank}",
            ),
            (
                self.edit_button,
                "Edit this reply before sending; policy is checked as you type (Alt+E)",
                f"Edit suggested reply {rank}",
            ),
            (
                self.discard_button,
                "Hide this reply and say why in one click (Alt+D)",
                f"Discard suggested reply {rank}",
            ),
        ):
            button.setToolTip(tooltip)
            button.setAccessibleName(name)
            button.setAccessibleDescription(tooltip)
        self.accept_button.setText("Copied ✓" if accepted else "Accept")


class DraftEditor(QFrame):
    """The inline editor for a suggestion, with live policy checks under it."""

    def __init__(self, vm: SnapshotViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._vm = vm
        self.setObjectName("DraftEditor")
        self.setAccessibleName("Edit the reply")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        self.title_label = plain_label(name="CardTitle")
        layout.addWidget(self.title_label)
        self.edit = QPlainTextEdit(self)
        self.edit.setObjectName("DraftEdit")
        self.edit.setAccessibleName("Reply draft")
        self.edit.setToolTip("Edit the reply; Ctrl+Enter copies it, Esc cancels")
        self.edit.setTabChangesFocus(True)
        self.edit.setMinimumHeight(90)
        self.edit.setMaximumHeight(150)
        self.edit.textChanged.connect(lambda: vm.check_draft(self.edit.toPlainText()))
        layout.addWidget(self.edit)
        self.checks_label = plain_label(name="DraftChecks")
        self.checks_label.setAccessibleName("Policy checks on the draft")
        layout.addWidget(self.checks_label)
        buttons = QHBoxLayout()
        self.send_button = small_button(
            "Copy & send",
            "Copy the edited reply to the clipboard and record it (Ctrl+Enter)",
            "Copy the edited reply",
            self.send,
            name="AcceptButton",
        )
        self.cancel_button = small_button(
            "Cancel", "Close the editor without copying (Esc)", "Cancel editing", vm.cancel_edit
        )
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        vm.sig_edit_started.connect(self.open)
        vm.sig_edit_finished.connect(self.close_editor)
        vm.sig_draft_findings.connect(self.show_findings)
        self.hide()

    def open(self, text: str) -> None:
        self.title_label.setText(f"Editing: {self._vm.editing_title}")
        self.edit.setPlainText(text)
        self.show_findings(())
        self.checks_label.setText("Checking…")
        self.show()
        self.edit.setFocus(Qt.FocusReason.OtherFocusReason)
        self.edit.moveCursor(self.edit.textCursor().MoveOperation.End)

    def close_editor(self) -> None:
        self.hide()

    def send(self) -> None:
        self._vm.finish_edit(self.edit.toPlainText())

    def show_findings(self, findings: object) -> None:
        items: tuple[DraftFinding, ...] = tuple(findings)  # type: ignore[call-overload]
        if not items:
            self.checks_label.setText("✓ No policy problems found in this draft.")
            self.checks_label.setProperty("state", "ok")
        else:
            self.checks_label.setText("\n".join(f"✗ {f.text}" for f in items))
            self.checks_label.setProperty("state", "problem")
        repolish(self.checks_label)


class SuggestionsSection(Section):
    """Suggested replies: cards, the inline editor and the discard reason row."""

    def __init__(self, vm: SnapshotViewModel, parent: QWidget | None = None) -> None:
        super().__init__("Suggested replies", "SuggestionsSection", parent)
        self._vm = vm
        self._model: SuggestionListModel = vm.suggestions_model
        self.ai_status_label = plain_label("", name="AiStatus")
        self.ai_status_label.hide()
        self.body.addWidget(self.ai_status_label)
        vm.sig_changed.connect(self._refresh_ai_status)
        self.reason_row = self._build_reason_row()
        self.body.addWidget(self.reason_row)
        self.editor = DraftEditor(vm, self)
        self.body.addWidget(self.editor)
        self.cards_layout = QVBoxLayout()
        self.cards_layout.setSpacing(8)
        self.body.addLayout(self.cards_layout)
        self.cards: list[SuggestionCard] = []
        self._empty_note: QLabel | None = None
        self._model.modelReset.connect(self.rebuild)
        vm.sig_discard_pending.connect(self._discard_pending)
        vm.sig_notice.connect(lambda _text: self._refresh_accepted())
        self.rebuild()

    def _build_reason_row(self) -> QFrame:
        frame = QFrame(self)
        frame.setObjectName("ReasonRow")
        frame.setAccessibleName("Why was the reply discarded?")
        layout = QVBoxLayout(frame)
        layout.setContentsMargins(8, 6, 6, 6)
        layout.setSpacing(4)
        top = QHBoxLayout()
        self.reason_label = plain_label(name="ReasonText")
        top.addWidget(self.reason_label, 1)
        close = QToolButton(frame)
        close.setText("✕")
        close.setToolTip("Close without giving a reason")
        close.setAccessibleName("Close without giving a reason")
        close.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        close.clicked.connect(lambda _c=False: self._vm.discard_reason(None))
        top.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        self.reason_buttons: dict[str, QToolButton] = {}
        for reason, label in DISCARD_REASON_LABELS.items():
            button = QToolButton(frame)
            button.setText(label)
            button.setObjectName("ReasonButton")
            button.setToolTip(f"Discarded because: {label.lower()}")
            button.setAccessibleName(f"Reason: {label}")
            button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            button.clicked.connect(lambda _c=False, r=reason: self._vm.discard_reason(r))
            buttons.addWidget(button)
            self.reason_buttons[reason.value] = button
        buttons.addStretch(1)
        layout.addLayout(buttons)
        frame.hide()
        return frame

    def _discard_pending(self, title: str) -> None:
        if not title:
            had_focus = self.reason_row.isAncestorOf(self.focusWidget() or self)
            self.reason_row.hide()
            if had_focus and self.cards:
                self.cards[0].accept_button.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        self.reason_label.setText(f"Discarded “{title}”. Why? (optional)")
        self.reason_row.show()
        first = next(iter(self.reason_buttons.values()))
        first.setFocus(Qt.FocusReason.OtherFocusReason)

    def rebuild(self) -> None:
        count = self._model.rowCount()
        if self._empty_note is not None and count:
            self._empty_note.hide()
            self._empty_note.deleteLater()
            self._empty_note = None
        # Cards are reused (refilled in place): new widgets on every turn stall the GUI.
        while len(self.cards) > count:
            card = self.cards.pop()
            card.hide()
            card.deleteLater()
        for row, card in enumerate(self.cards):
            card.show_row(row)
        for row in range(len(self.cards), count):
            card = SuggestionCard(self._vm, row, self)
            self.cards.append(card)
            self.cards_layout.addWidget(card)
        if count == 0:
            state = self._vm.state
            text = "Analysing…" if state == "analysing" else "No suggested reply for this turn."
            if self._empty_note is None:
                self._empty_note = self.empty_note(text)
                self.cards_layout.addWidget(self._empty_note)
            else:
                self._empty_note.setText(text)

    def _refresh_ai_status(self) -> None:
        """The language model's failure, as one small label (its reason in the tooltip)."""
        label, detail = self._vm.ai_status()
        shown = label if label and label != AI_LABEL else ""
        if shown != self.ai_status_label.text() or bool(shown) != self.ai_status_label.isVisible():
            self.ai_status_label.setText(shown)
            self.ai_status_label.setToolTip(detail)
            self.ai_status_label.setAccessibleName(shown)
            self.ai_status_label.setAccessibleDescription(detail)
            self.ai_status_label.setVisible(bool(shown))

    def _refresh_accepted(self) -> None:
        model = self._model
        for card in self.cards:
            suggestion_id = model.value(card.row, SuggestionListModel.IdRole)
            if suggestion_id and self._vm.was_accepted(suggestion_id):
                card.accept_button.setText("Copied ✓")

    def card_with_focus(self) -> SuggestionCard | None:
        focus = self.focusWidget()
        for card in self.cards:
            if focus is not None and (focus is card or card.isAncestorOf(focus)):
                return card
        return None


# --- articles -----------------------------------------------------------------------------------


class ArticlesSection(Section):
    """Knowledge articles: a search box, then title, heading path, passage and feedback.

    Signals:
        sig_open_requested(int): the agent wants to read article ``row`` in full.
    """

    sig_open_requested = Signal(int)

    def __init__(self, vm: SnapshotViewModel, parent: QWidget | None = None) -> None:
        super().__init__("Knowledge", "ArticlesSection", parent)
        self._vm = vm
        self._model: ArticleListModel = vm.articles_model
        self.search_edit = QLineEdit(self)
        self.search_edit.setObjectName("KnowledgeSearch")
        self.search_edit.setPlaceholderText("Search the knowledge base (Ctrl+K)")
        self.search_edit.setAccessibleName("Search the knowledge base")
        self.search_edit.setToolTip("Search the knowledge base (Ctrl+K); Esc clears")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.textEdited.connect(vm.search)
        self.search_edit.returnPressed.connect(lambda: vm.search(self.search_edit.text()))
        self.body.addWidget(self.search_edit)
        self.note_label = plain_label(name="Muted")
        self.body.addWidget(self.note_label)
        self.rows = QVBoxLayout()
        self.rows.setSpacing(8)
        self.body.addLayout(self.rows)
        self._shown: tuple[object, ...] | None = None
        self._model.modelReset.connect(self.rebuild)
        vm.sig_feedback_changed.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        vm, model = self._vm, self._model
        snapshot = vm.snapshot
        if vm.showing_search:
            note = f"Search results for “{vm.search_query}”"
        elif snapshot is not None and model.rowCount() and not snapshot.retrieval_confident:
            note = "Nothing confident for this turn: these are the closest articles."
        else:
            note = ""
        shown = self._shown_key(note)
        if shown == self._shown:
            return  # new cards cost ~10 ms of GUI time a turn: only when something changed
        self._shown = shown
        clear_layout(self.rows)
        self.note_label.setText(note)
        self.note_label.setVisible(bool(note))
        if model.rowCount() == 0:
            self.rows.addWidget(
                self.empty_note(
                    "No article found." if vm.showing_search else "No article for this turn yet."
                )
            )
        for row in range(min(model.rowCount(), 3 if not vm.showing_search else 5)):
            self.rows.addWidget(self._card(row))

    def _shown_key(self, note: str) -> tuple[object, ...]:
        """Everything the cards show: equal keys mean identical cards."""
        model, vm = self._model, self._vm
        limit = min(model.rowCount(), 3 if not vm.showing_search else 5)
        roles = (
            ArticleListModel.TitleRole,
            ArticleListModel.ArticleIdRole,
            ArticleListModel.HeadingRole,
            ArticleListModel.PassageRole,
        )
        rows = tuple(
            (
                *(model.value(row, role) for role in roles),
                vm.article_verdict(model.value(row, ArticleListModel.PassageIdRole)),
            )
            for row in range(limit)
        )
        return (vm.showing_search, note, model.rowCount() == 0, rows)

    def _card(self, row: int) -> QFrame:
        model, vm = self._model, self._vm
        title = model.value(row, ArticleListModel.TitleRole)
        article_id = model.value(row, ArticleListModel.ArticleIdRole)
        passage_id = model.value(row, ArticleListModel.PassageIdRole)
        card = QFrame(self)
        card.setObjectName("ArticleCard")
        card.setAccessibleName(f"Article {article_id}: {title}")
        layout = QVBoxLayout(card)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(3)
        layout.addWidget(plain_label(title, name="CardTitle"))
        heading = model.value(row, ArticleListModel.HeadingRole)
        where = f"{article_id} › {heading}" if heading else article_id
        layout.addWidget(plain_label(where, name="Muted"))
        passage = plain_label(
            clip(model.value(row, ArticleListModel.PassageRole), PASSAGE_PREVIEW_CHARS),
            name="Passage",
            selectable=True,
        )
        passage.setAccessibleName(f"Matched passage of {title}")
        layout.addWidget(passage)
        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        buttons.addWidget(
            small_button(
                "Open",
                "Read the whole article",
                f"Open article {title}",
                lambda: self.sig_open_requested.emit(row),
            )
        )
        verdict = vm.article_verdict(passage_id)
        helpful = small_button(
            "✓ Helpful",
            "This article helped (recorded as feedback)",
            f"Article {title} was helpful",
            lambda: vm.mark_article(row, True),
            name="HelpfulButton",
        )
        unhelpful = small_button(
            "✗ Not helpful",
            "This article did not help (recorded as feedback)",
            f"Article {title} was not helpful",
            lambda: vm.mark_article(row, False),
            name="NotHelpfulButton",
        )
        for button, value in ((helpful, True), (unhelpful, False)):
            button.setCheckable(True)
            button.setChecked(verdict is value)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        return card


# --- summary and transcript ---------------------------------------------------------------------


class SummarySection(Section):
    """The live summary: issue, goal, facts, what was done and promised, what is next."""

    def __init__(self, vm: SnapshotViewModel, parent: QWidget | None = None) -> None:
        super().__init__("Summary", "SummarySection", parent)
        self._vm = vm
        self.form = QFormLayout()
        self.form.setHorizontalSpacing(8)
        self.form.setVerticalSpacing(4)
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.ai_label = plain_label(f"{AI_LABEL} summary", name="AiLabel", wrap=False)
        self.ai_label.setAccessibleName(f"{AI_LABEL} summary")
        self.ai_label.setToolTip("Written by the language model from the conversation")
        self.ai_label.hide()
        self.body.addWidget(self.ai_label)
        self.body.addLayout(self.form)
        self._shown: list[tuple[str, str]] | None = None
        self._values: list[QLabel] = []
        vm.sig_changed.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        snapshot = self._vm.snapshot
        generated = bool(snapshot and snapshot.summary and snapshot.summary.generated)
        if generated != self.ai_label.isVisibleTo(self):
            self.ai_label.setVisible(generated)
        rows = self._vm.summary_rows()
        if rows == self._shown:
            return  # word-wrapped rows are costly to lay out: only when they changed
        previous, self._shown = self._shown, rows
        if rows and previous and [label for label, _ in rows] == [label for label, _ in previous]:
            # Same rows, new wording (the usual turn): refill the labels in place, since new
            # widgets cost ~10 ms of GUI time.
            for value, (_label, text) in zip(self._values, rows, strict=True):
                value.setText(text)
            return
        self._values = []
        while self.form.rowCount():
            self.form.removeRow(0)
        if not rows:
            self.form.addRow(self.empty_note("The summary appears after the first analysis."))
        for label, text in rows:
            value = plain_label(text, name="SummaryText", selectable=True)
            self._values.append(value)
            if label:
                caption = plain_label(label, name="Caption", wrap=False)
                value.setAccessibleName(label)
                self.form.addRow(caption, value)
            else:
                self.form.addRow(value)


class TranscriptSection(Section):
    """The conversation so far (redacted), oldest first, as plain text.

    A read-only `QPlainTextEdit`, not a label per turn: it lays out long conversations in
    milliseconds (a column of word-wrapped labels cost ~200 ms per turn) and it can only ever
    show plain text.
    """

    def __init__(self, vm: SnapshotViewModel, parent: QWidget | None = None) -> None:
        super().__init__("Transcript", "TranscriptSection", parent)
        self._vm = vm
        self.view = QPlainTextEdit(self)
        self.view.setObjectName("TranscriptView")
        self.view.setReadOnly(True)
        self.view.setAccessibleName("Transcript")
        self.view.setTabChangesFocus(True)
        self.view.setMinimumHeight(140)
        self.view.setMaximumHeight(260)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.body.addWidget(self.view)
        vm.sig_transcript_changed.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        rows = self._vm.transcript_rows()
        view = self.view
        view.clear()
        if not rows:
            view.setPlaceholderText("No turns yet.")
            return
        hidden = max(0, len(rows) - TRANSCRIPT_TURNS)
        cursor = view.textCursor()
        speaker = QTextCharFormat()
        speaker.setFontWeight(QFont.Weight.Bold)
        said = QTextCharFormat()
        if hidden:
            cursor.insertText(f"({hidden} earlier turns not shown)\n\n", said)
        for n, (role, when, text) in enumerate(rows[hidden:]):
            if n:
                cursor.insertText("\n\n", said)
            cursor.insertText(f"{role} · {when}\n", speaker)
            cursor.insertText(text, said)
        view.setTextCursor(cursor)
        view.ensureCursorVisible()

    def text(self) -> str:
        return self.view.toPlainText()


def buttons_of(widget: QWidget) -> list[QAbstractButton]:
    """Every button inside ``widget`` (tests and accessibility checks)."""
    return widget.findChildren(QAbstractButton)
