"""The knowledge-manager window: article states, reindex, harvested replies, knowledge gaps.

Reindex builds the new index without making it live and replays the demo conversations on it;
the "Changes" tab then lists which suggestions and cited articles would change, demo by demo and
turn by turn, and "Swap in" makes it live (or "Discard" drops it).

Widgets only: state and work live in `copilot.qt.knowledge_vm.KnowledgeViewModel`.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from copilot.qt.knowledge_vm import KnowledgeViewModel
from copilot.ui.review_window import record_table_view


class KnowledgeWindow(QWidget):
    """Articles and their state, reindex with preview, the harvest queue and the gap report."""

    def __init__(self, vm: KnowledgeViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.vm = vm
        self.setWindowTitle("Co-pilot — Knowledge")
        self.resize(1100, 720)
        root = QVBoxLayout(self)
        self.tabs = QTabWidget()
        root.addWidget(self.tabs, 1)

        # Articles + reindex.
        articles = QWidget()
        layout = QVBoxLayout(articles)
        bar = QHBoxLayout()
        self.rescan_button = QPushButton("&Rescan")
        self.reindex_button = QPushButton("Re&index")
        self.cancel_button = QPushButton("&Cancel")
        self.cancel_button.setEnabled(False)
        self.swap_button = QPushButton("&Swap in")
        self.swap_button.setToolTip("Make the new index live (agents' panels pick it up)")
        self.discard_button = QPushButton("&Discard")
        self.discard_button.setToolTip("Drop the new index; the live one stays as it was")
        for button in (self.swap_button, self.discard_button):
            button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p %")
        bar.addWidget(self.rescan_button)
        bar.addWidget(self.reindex_button)
        bar.addWidget(self.cancel_button)
        bar.addWidget(self.progress_bar, 1)
        bar.addWidget(self.swap_button)
        bar.addWidget(self.discard_button)
        layout.addLayout(bar)
        self.articles_view = record_table_view(vm.articles)
        self.errors_view = record_table_view(vm.errors)
        errors_box = QGroupBox("Files that could not be indexed (last reindex)")
        errors_layout = QVBoxLayout(errors_box)
        errors_layout.addWidget(self.errors_view)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.articles_view)
        split.addWidget(errors_box)
        split.setSizes([440, 140])
        layout.addWidget(split, 1)
        self.tabs.addTab(articles, "Articles")

        # What the new index would change, before it is swapped in.
        changes = QWidget()
        changes_layout = QVBoxLayout(changes)
        self.changes_label = QLabel(
            "Reindex to compare a new index with the live one on the demo conversations."
        )
        self.changes_label.setWordWrap(True)
        self.changes_view = record_table_view(vm.changes)
        changes_layout.addWidget(self.changes_label)
        changes_layout.addWidget(self.changes_view, 1)
        self.changes_tab = self.tabs.addTab(changes, "Changes")

        # Harvested replies.
        harvest = QWidget()
        harvest_layout = QVBoxLayout(harvest)
        hint = QLabel(
            "Replies agents rewrote the same way. Approve to add one as a template to the content"
            " pack (templates/harvested.yaml); reject to hide it."
        )
        hint.setWordWrap(True)
        harvest_layout.addWidget(hint)
        self.harvest_view = record_table_view(vm.harvest)
        self.harvest_text = QTextBrowser()
        self.harvest_text.setPlaceholderText("Select a group to read its wording")
        self.harvest_text.setMaximumHeight(110)
        buttons = QHBoxLayout()
        self.approve_button = QPushButton("&Approve as template")
        self.reject_button = QPushButton("Re&ject")
        for button in (self.approve_button, self.reject_button):
            button.setEnabled(False)
            buttons.addWidget(button)
        buttons.addStretch(1)
        harvest_layout.addWidget(self.harvest_view, 1)
        harvest_layout.addWidget(self.harvest_text)
        harvest_layout.addLayout(buttons)
        self.tabs.addTab(harvest, "Harvested replies")

        # Gaps.
        self.gaps_view = record_table_view(vm.gaps)
        self.tabs.addTab(self.gaps_view, "Knowledge gaps")

        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        root.addWidget(self.status_label)

        self.rescan_button.clicked.connect(vm.refresh)
        self.reindex_button.clicked.connect(vm.reindex)
        self.cancel_button.clicked.connect(vm.cancel_reindex)
        self.swap_button.clicked.connect(self._swap_in)
        self.discard_button.clicked.connect(self._discard)
        vm.sig_reindex_stage.connect(self._show_stage)
        vm.sig_preview_ready.connect(self._show_preview)
        vm.sig_candidate_changed.connect(self._candidate_changed)
        self.approve_button.clicked.connect(self._approve)
        self.reject_button.clicked.connect(self._reject)
        self.harvest_view.selectionModel().selectionChanged.connect(self._harvest_selected)
        vm.harvest.modelReset.connect(self._harvest_selected)
        vm.sig_reindex_progress.connect(self._show_progress)
        vm.sig_reindex_running.connect(self._reindex_running)
        vm.sig_message.connect(self.status_label.setText)
        vm.articles.modelReset.connect(self._summarise_states)
        if vm.parent() is None:
            # Own a view-model nobody else owns, as the last child: Qt then deletes the views
            # before the models they show (the other order crashes in ~QAbstractItemView).
            vm.setParent(self)

    def _summarise_states(self) -> None:
        counts: dict[str, int] = {}
        for row in self.vm.articles.rows:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in counts.items())
        self.tabs.setTabText(0, f"Articles ({summary})" if summary else "Articles")

    def _show_progress(self, done: int, total: int) -> None:
        if total <= 0:
            self.progress_bar.setValue(100 if not self.vm.reindexing else 0)
            return
        self.progress_bar.setValue(round(100 * done / total))

    def _reindex_running(self, running: bool) -> None:
        self.reindex_button.setEnabled(not running and not self.vm.has_candidate)
        self.cancel_button.setEnabled(running)
        if running:
            self.status_label.setText("Reindexing…")
        else:
            self.progress_bar.setFormat("%p %")

    def _show_stage(self, stage: str) -> None:
        self.status_label.setText(f"{stage}…")
        self.progress_bar.setFormat(f"{stage}: %p %")

    def _show_preview(self, preview: dict[str, Any]) -> None:
        base = preview.get("base_generation") or "no index"
        self.changes_label.setText(
            f"New index {preview.get('candidate_generation', '')} compared with the live"
            f" {base} on {len(preview.get('demos', []))} demo conversations:"
            f" {preview.get('headline', '')} Swap it in to make it live, or discard it."
        )
        self.tabs.setCurrentIndex(self.changes_tab)

    def _candidate_changed(self, waiting: bool) -> None:
        for button in (self.swap_button, self.discard_button):
            button.setEnabled(waiting)
        self.reindex_button.setEnabled(not waiting and not self.vm.reindexing)
        self.tabs.setTabText(self.changes_tab, "Changes (not live yet)" if waiting else "Changes")
        if not waiting:
            self.changes_label.setText(
                "Reindex to compare a new index with the live one on the demo conversations."
            )

    def _swap_in(self) -> None:
        if self.vm.swap_in():
            self._deciding()

    def _discard(self) -> None:
        if self.vm.discard():
            self._deciding()

    def _deciding(self) -> None:
        # One decision per candidate: a second click while the first runs does nothing.
        for button in (self.swap_button, self.discard_button):
            button.setEnabled(False)

    def _selected_group(self) -> dict[str, Any] | None:
        rows = self.harvest_view.selectionModel().selectedRows()
        if not rows:
            return None
        return dict(self.vm.harvest.record(rows[0].row()))

    def _harvest_selected(self, *_: object) -> None:
        group = self._selected_group()
        for button in (self.approve_button, self.reject_button):
            button.setEnabled(group is not None)
        if group is None:
            self.harvest_text.clear()
            return
        # Plain text: agents' and customers' words are never interpreted as markup.
        lines = [str(group.get("text", ""))]
        lines += [f"• {example}" for example in group.get("examples", [])]
        self.harvest_text.setPlainText("\n\n".join(lines))

    def _approve(self) -> None:
        group = self._selected_group()
        if group is not None:
            self.vm.approve(str(group["id"]))

    def _reject(self) -> None:
        group = self._selected_group()
        if group is not None:
            self.vm.reject(str(group["id"]))
