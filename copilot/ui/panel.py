"""The co-pilot panel: the conversation switcher, the sections, and the turn input.

`CopilotPanel.install(window)` puts it on the shell's `MainWindow`: the switcher goes in a fixed
tool bar at the top, the sections into the window's scroll area, the turn input into a fixed bar
at the bottom, and the keyboard shortcuts into the window (and its menu bar, where they can be
found):

=================  ==========================================================
Alt+1 .. Alt+3     accept suggested reply 1..3 (copy it to the clipboard)
Alt+E              edit the focused suggestion (the first one otherwise)
Alt+D              discard the focused suggestion (the first one otherwise)
Ctrl+K             search the knowledge base
Ctrl+N             start a new conversation
Ctrl+Enter         send the typed turn (in the reply editor: copy the edited reply)
Ctrl+H             copy the handover note
Esc                in the reply editor: cancel; in the search box: clear
=================  ==========================================================

Until the assistant is loaded the panel says so and the input stays disabled; nothing here
blocks: the view-models run the work on the task runner's lanes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QPaintEvent, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QHBoxLayout,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from copilot.core.conversation import Role
from copilot.core.models import Passage
from copilot.core.protocols import FeedbackSink
from copilot.qt.conversations_vm import ConversationsViewModel
from copilot.qt.item_models import ConversationListModel
from copilot.qt.snapshot_vm import (
    ANALYSING,
    LOADING,
    NO_CONVERSATION,
    READY,
    WAITING,
    SnapshotViewModel,
)
from copilot.qt.tasks import DEFAULT_DEBOUNCE_MS, TaskRunner
from copilot.ui.main_window import MainWindow
from copilot.ui.panel_sections import (
    ArticlesSection,
    FlagsSection,
    PolicySection,
    SuggestionsSection,
    SummarySection,
    TranscriptSection,
    plain_label,
    small_button,
)

SHORTCUTS: dict[str, tuple[str, ...]] = {
    "accept_1": ("Alt+1",),
    "accept_2": ("Alt+2",),
    "accept_3": ("Alt+3",),
    "edit": ("Alt+E",),
    "discard": ("Alt+D",),
    "search": ("Ctrl+K",),
    "new_conversation": ("Ctrl+N",),
    "send": ("Ctrl+Return", "Ctrl+Enter"),
    "handover": ("Ctrl+H",),
}


class ArticleDialog(QDialog):
    """An article in full (its passages under their headings), as plain text."""

    def __init__(
        self,
        title: str,
        article_id: str,
        passages: list[Passage],
        *,
        focus_passage_id: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{article_id}: {title}")
        self.setObjectName("ArticleDialog")
        self.setAccessibleName(f"Article {article_id}: {title}")
        self.resize(560, 640)
        layout = QVBoxLayout(self)
        heading = plain_label(title, name="DialogTitle")
        layout.addWidget(heading)
        layout.addWidget(plain_label(article_id, name="Muted"))
        self.text = QPlainTextEdit(self)
        self.text.setObjectName("ArticleText")
        self.text.setReadOnly(True)
        self.text.setAccessibleName("Article text")
        self.text.setTabChangesFocus(True)
        parts: list[str] = []
        focus_at = 0
        previous_heading: tuple[str, ...] = ()
        for passage in passages:
            path = tuple(h for h in passage.heading_path if h != title)
            if path and path != previous_heading:
                parts.append(" › ".join(path).upper())
            previous_heading = path
            if passage.passage_id == focus_passage_id:
                focus_at = sum(len(p) + 2 for p in parts)
            parts.append(passage.text.strip())
        self.text.setPlainText("\n\n".join(parts))
        layout.addWidget(self.text, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        if close is not None:
            close.setAccessibleName("Close the article")
        layout.addWidget(buttons)
        cursor = self.text.textCursor()
        cursor.setPosition(min(focus_at, len(self.text.toPlainText())))
        self.text.setTextCursor(cursor)
        self.text.centerCursor()


class ElidedComboBox(QComboBox):
    """A combo box whose shown text ends in "…" when too narrow, instead of being cut mid-word.

    The switcher's labels ("Nadia Rahman · ⚠ CRITICAL · Refund request") outgrow the narrow
    window; a clipped "· F" reads as a glitch, an ellipsis as "there is more" (the list shows
    whole labels).
    """

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        field = self.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, self
        )
        option.currentText = self.fontMetrics().elidedText(
            option.currentText, Qt.TextElideMode.ElideRight, max(0, field.width() - 4)
        )
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


class ConversationBar(QWidget):
    """The compact switcher: each open conversation's customer, intent and worst flag."""

    def __init__(self, conversations: ConversationsViewModel, parent: QWidget | None = None):
        super().__init__(parent)
        self._conversations = conversations
        self.setObjectName("ConversationBar")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        self.combo = ElidedComboBox(self)
        self.combo.setObjectName("ConversationSwitcher")
        self.combo.setModel(conversations.list_model)
        self.combo.setAccessibleName("Open conversations")
        self.combo.setToolTip("Switch conversation: customer · intent · worst flag")
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(8)
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.combo.setPlaceholderText("No conversation")
        self.combo.activated.connect(self._activated)
        self.combo.view().setMinimumWidth(340)  # the list shows whole labels
        layout.addWidget(self.combo, 1)
        self.new_button = small_button(
            "+ New",
            "Start a new conversation (Ctrl+N)",
            "New conversation",
            lambda: conversations.start_conversation(),
        )
        self.end_button = small_button(
            "End",
            "End this conversation and close it",
            "End conversation",
            lambda: conversations.end_conversation(),
        )
        self.handover_button = small_button(
            "Handover",
            "Copy the handover note to the clipboard (Ctrl+H)",
            "Copy handover note",
            lambda: None,
        )
        for button in (self.new_button, self.end_button, self.handover_button):
            button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            layout.addWidget(button)
        conversations.sig_current_changed.connect(self._current_changed)
        conversations.list_model.rowsInserted.connect(lambda *_: self._sync())
        conversations.list_model.rowsRemoved.connect(lambda *_: self._sync())
        self._sync()

    def _activated(self, row: int) -> None:
        conversation_id = self._conversations.list_model.value(row, ConversationListModel.IdRole)
        if conversation_id:
            self._conversations.set_current(conversation_id)

    def _current_changed(self, _conversation_id: str) -> None:
        self._sync()

    def _sync(self) -> None:
        row = self._conversations.list_model.row_of(self._conversations.current_id)
        if self.combo.currentIndex() != row:
            self.combo.setCurrentIndex(row)
        has = bool(self._conversations.current_id)
        self.end_button.setEnabled(has)
        self.handover_button.setEnabled(has)


class TurnInput(QWidget):
    """Type or paste a customer or agent turn; Ctrl+Enter sends it. Shows the latest notice."""

    sig_sent = Signal(list)

    def __init__(self, conversations: ConversationsViewModel, parent: QWidget | None = None):
        super().__init__(parent)
        self._conversations = conversations
        self.setObjectName("TurnInput")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 6)
        layout.setSpacing(4)
        self.notice_label = plain_label(name="Notice")
        self.notice_label.setAccessibleName("Last action")
        self.notice_label.hide()
        layout.addWidget(self.notice_label)
        row = QHBoxLayout()
        row.setSpacing(6)
        self.role_combo = QComboBox(self)
        self.role_combo.addItem("Customer said", Role.CUSTOMER.value)
        self.role_combo.addItem("Agent said", Role.AGENT.value)
        self.role_combo.setAccessibleName("Who said it")
        self.role_combo.setToolTip("Whose words you are adding")
        row.addWidget(self.role_combo)
        row.addStretch(1)
        self.send_button = small_button(
            "Send",
            "Add this turn to the conversation (Ctrl+Enter)",
            "Send the turn",
            self.send,
            name="SendButton",
        )
        row.addWidget(self.send_button)
        self.edit = QPlainTextEdit(self)
        self.edit.setObjectName("TurnEdit")
        self.edit.setAccessibleName("Turn text")
        self.edit.setToolTip(
            "Type or paste what was said. Pasted 'Customer:' / 'Agent:' lines become separate "
            "turns. Ctrl+Enter sends."
        )
        self.edit.setTabChangesFocus(True)
        self.edit.setFixedHeight(58)
        layout.addWidget(self.edit)
        layout.addLayout(row)
        self.set_ready(conversations.is_ready)
        conversations.sig_ready_changed.connect(self.set_ready)

    def set_ready(self, ready: bool) -> None:
        for widget in (self.edit, self.role_combo, self.send_button):
            widget.setEnabled(ready)
        self.edit.setPlaceholderText(
            "Type or paste the customer's words… (Ctrl+Enter sends)"
            if ready
            else "Loading… you can type here once the knowledge pack is ready."
        )

    def send(self) -> list[str]:
        if not self._conversations.is_ready:
            return []
        text = self.edit.toPlainText()
        added = self._conversations.submit_text(text, str(self.role_combo.currentData()))
        if added:
            self.edit.clear()
            # The agent usually answers next: offer the other role.
            self.role_combo.setCurrentIndex(1 - self.role_combo.currentIndex())
            self.sig_sent.emit(added)
        return added

    def show_notice(self, text: str) -> None:
        self.notice_label.setText(text)
        self.notice_label.setVisible(bool(text))


class CopilotPanel(QWidget):
    """Every section of the co-pilot, most urgent first, plus the switcher and the input bar."""

    def __init__(
        self,
        conversations: ConversationsViewModel,
        snapshot_vm: SnapshotViewModel,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("CopilotPanel")
        self.setAccessibleName("Co-pilot")
        self.conversations = conversations
        self.vm = snapshot_vm
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.status_label = plain_label(name="PlaceholderLabel")
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status_label.setAccessibleName("Co-pilot status")
        layout.addWidget(self.status_label)
        self.flags = FlagsSection(snapshot_vm, self)
        self.policy = PolicySection(snapshot_vm, self)
        self.suggestions = SuggestionsSection(snapshot_vm, self)
        self.articles = ArticlesSection(snapshot_vm, self)
        self.summary = SummarySection(snapshot_vm, self)
        self.transcript = TranscriptSection(snapshot_vm, self)
        self.sections: list[QWidget] = [
            self.flags,
            self.policy,
            self.suggestions,
            self.articles,
            self.summary,
            self.transcript,
        ]
        for section in self.sections:
            layout.addWidget(section)
        self.header = ConversationBar(conversations)
        self.header.handover_button.clicked.connect(lambda _c=False: snapshot_vm.copy_handover())
        self.input = TurnInput(conversations)
        self.actions: dict[str, QAction] = {}
        self._article_dialog: ArticleDialog | None = None
        self._window: MainWindow | None = None
        self._unavailable = ""
        self._build_actions()
        self.articles.sig_open_requested.connect(self.open_article)
        snapshot_vm.sig_state_changed.connect(self._state_changed)
        snapshot_vm.sig_notice.connect(self.input.show_notice)
        self._escape_editor = QShortcut(QKeySequence("Esc"), self.suggestions.editor)
        self._escape_editor.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._escape_editor.activated.connect(snapshot_vm.cancel_edit)
        self._escape_search = QShortcut(QKeySequence("Esc"), self.articles.search_edit)
        self._escape_search.setContext(Qt.ShortcutContext.WidgetShortcut)
        self._escape_search.activated.connect(self._clear_search)
        self._state_changed(snapshot_vm.state)

    # --- installing on the window -------------------------------------------------------------

    def install(self, window: MainWindow) -> None:
        """Put the switcher, the sections, the input bar and the shortcuts on ``window``."""
        self._window = window
        bar = QToolBar("Conversations", window)
        bar.setObjectName("ConversationToolBar")
        bar.setMovable(False)
        bar.setFloatable(False)
        bar.toggleViewAction().setVisible(False)
        bar.addWidget(self.header)
        window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        dock = QDockWidget("Add a turn", window)
        dock.setObjectName("TurnInputDock")
        dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        dock.setAllowedAreas(Qt.DockWidgetArea.BottomDockWidgetArea)
        dock.setTitleBarWidget(QWidget(dock))
        dock.toggleViewAction().setVisible(False)
        dock.setWidget(self.input)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        window.set_sections([self])
        for action in self.actions.values():
            window.addAction(action)
        menu_bar = window.menuBar()
        conversation_menu = menu_bar.addMenu("Co&nversation")
        for key in ("new_conversation", "send", "handover", "search"):
            conversation_menu.addAction(self.actions[key])
        reply_menu = menu_bar.addMenu("&Reply")
        for key in ("accept_1", "accept_2", "accept_3", "edit", "discard"):
            reply_menu.addAction(self.actions[key])
        self.conversations.sig_snapshot_ready.connect(self._snapshot_ready)
        self.conversations.sig_error.connect(window.show_message)
        self.vm.sig_error.connect(window.show_message)
        self._state_changed(self.vm.state)

    def _build_actions(self) -> None:
        vm = self.vm
        specs: list[tuple[str, str, Callable[[], object]]] = [
            ("accept_1", "Accept reply &1", lambda: vm.accept(0)),
            ("accept_2", "Accept reply &2", lambda: vm.accept(1)),
            ("accept_3", "Accept reply &3", lambda: vm.accept(2)),
            ("edit", "&Edit focused reply", self.edit_focused),
            ("discard", "&Discard focused reply", self.discard_focused),
            ("search", "&Search knowledge", self.focus_search),
            ("new_conversation", "&New conversation", self.new_conversation),
            ("send", "&Send typed turn", self.send),
            ("handover", "Copy &handover note", vm.copy_handover),
        ]
        for key, text, slot in specs:
            action = QAction(text, self)
            action.setObjectName(f"action_{key}")
            action.setShortcuts([QKeySequence(k) for k in SHORTCUTS[key]])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.setToolTip(f"{text.replace('&', '')} ({SHORTCUTS[key][0]})")
            action.triggered.connect(lambda _checked=False, slot=slot: slot())
            self.actions[key] = action

    # --- actions ------------------------------------------------------------------------------

    def _focused_row(self) -> int:
        card = self.suggestions.card_with_focus()
        return card.row if card is not None else 0

    def edit_focused(self) -> None:
        self.vm.start_edit(self._focused_row())

    def discard_focused(self) -> None:
        self.vm.discard(self._focused_row())

    def focus_search(self) -> None:
        edit = self.articles.search_edit
        self.ensure_visible(edit)
        edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        edit.selectAll()

    def _clear_search(self) -> None:
        self.articles.search_edit.clear()
        self.vm.clear_search()

    def new_conversation(self) -> None:
        self.conversations.start_conversation()
        self.input.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def send(self) -> None:
        """Ctrl+Enter: copy the edited reply when the editor has focus, else send the turn."""
        focus = QApplication.focusWidget()
        editor = self.suggestions.editor
        if editor.isVisible() and focus is not None and editor.isAncestorOf(focus):
            editor.send()
            return
        self.input.send()

    def open_article(self, row: int) -> ArticleDialog | None:
        """Show article ``row`` in full (one dialog at a time, not modal)."""
        model = self.vm.articles_model
        hit = model.item(row)
        if hit is None:
            return None
        if self._article_dialog is not None:
            self._article_dialog.close()
            self._article_dialog.deleteLater()
        dialog = ArticleDialog(
            hit.title,
            hit.article_id,
            self.vm.article_passages(row),
            focus_passage_id=hit.best.passage.passage_id,
            parent=self.window(),
        )
        self._article_dialog = dialog
        dialog.show()
        return dialog

    def ensure_visible(self, widget: QWidget) -> None:
        """Scroll the window's section area so ``widget`` (inside the panel) is on screen."""
        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QScrollArea):
            parent = parent.parentWidget()
        if isinstance(parent, QScrollArea) and parent.widget().isAncestorOf(widget):
            parent.ensureWidgetVisible(widget, 0, 40)

    # --- state --------------------------------------------------------------------------------

    def _state_changed(self, state: str) -> None:
        show_sections = state in (WAITING, ANALYSING, READY)
        if self._unavailable:
            return
        self.status_label.setText(self.vm.status_text())
        self.status_label.setVisible(not show_sections or state == ANALYSING)
        for section in self.sections:
            section.setVisible(show_sections)
        if state in (LOADING, NO_CONVERSATION):
            self.flags.stop_pulse()

    def set_unavailable(self, text: str) -> None:
        """Loading failed: say so where the sections would be (the input stays disabled)."""
        self._unavailable = text
        self.status_label.setText(text)
        self.status_label.setProperty("state", "error")
        self.status_label.show()
        self.input.edit.setPlaceholderText("Input is disabled: the knowledge pack did not load.")

    def _snapshot_ready(self, conversation_id: str) -> None:
        snapshot = self.conversations.snapshot(conversation_id)
        if self._window is not None and snapshot is not None:
            self._window.set_last_update(datetime.now(), snapshot.total_ms)

    def shutdown(self) -> None:
        """Stop the highlight animation and close the article dialog (before the runner stops)."""
        self.flags.stop_pulse()
        if self._article_dialog is not None:
            self._article_dialog.close()
            self._article_dialog = None
        self.vm.shutdown()
        self.conversations.shutdown()


def build_panel(
    window: MainWindow,
    runner: TaskRunner,
    sink: FeedbackSink | None,
    *,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    agent_id: str | None = None,
    queue: str | None = None,
) -> CopilotPanel:
    """Create the view-models and the panel, and install it on ``window``.

    Args:
        window: the shell's main window.
        runner: the application's one task runner.
        sink: where feedback goes (written on the runner's db lane); None records nothing.
        debounce_ms: how long a burst of turns is coalesced before the pipeline runs.
        agent_id: recorded with every feedback action (the settings' agent id).
        queue: the agent's queue (the settings'), recorded with every feedback action.
    """
    conversations = ConversationsViewModel(runner, debounce_ms=debounce_ms, parent=window)
    snapshot_vm = SnapshotViewModel(
        conversations, runner, sink, agent_id=agent_id, queue=queue, parent=window
    )
    panel = CopilotPanel(conversations, snapshot_vm)
    panel.install(window)
    return panel
