"""The knowledge-manager window: article states, reindex, harvested replies, knowledge gaps.

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
    """Articles and their state, reindex with progress, the harvest queue and the gap report."""

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
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p %")
        bar.addWidget(self.rescan_button)
        bar.addWidget(self.reindex_button)
        bar.addWidget(self.cancel_button)
        bar.addWidget(self.progress_bar, 1)
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
        self.reindex_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:
            self.status_label.setText("Reindexing…")

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
