"""The team-lead review window: what agents did with the co-pilot's suggestions.

Widgets only: every figure comes from `copilot.qt.review_vm.ReviewViewModel`. QtCharts is not
part of PySide6-Essentials, so the daily trend is a small `TrendChart` painted with QPainter.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate, QItemSelection, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from copilot.qt.review_vm import (
    KIND_CHOICES,
    SOURCE_CHOICES,
    RecordTableModel,
    ReviewViewModel,
    word_diff_html,
)

#: (report key, legend label, colour) of the lines the trend chart draws.
TREND_SERIES: tuple[tuple[str, str, str], ...] = (
    ("acceptance_rate", "Accepted", "#2e7d32"),
    ("edit_rate", "Edited", "#f9a825"),
    ("discard_rate", "Discarded", "#c62828"),
)


class TrendChart(QWidget):
    """Acceptance, edit and discard rates per day as lines, on a 0-100 % scale."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._days: list[Mapping[str, Any]] = []
        self.setMinimumHeight(150)
        self.setAccessibleName("Daily acceptance, edit and discard rates")

    def set_trend(self, days: Sequence[Mapping[str, Any]]) -> None:
        self._days = list(days)
        self.update()

    @property
    def days(self) -> list[Mapping[str, Any]]:
        return self._days

    def sizeHint(self) -> QSize:
        return QSize(480, 170)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text_color = palette.color(palette.ColorRole.WindowText)
        grid_color = QColor(text_color)
        grid_color.setAlpha(50)
        metrics = painter.fontMetrics()
        left = metrics.horizontalAdvance("100 %") + 8
        legend_h = metrics.height() + 6
        bottom = metrics.height() + 6
        plot = QRectF(
            left, legend_h + 4, self.width() - left - 10, self.height() - legend_h - bottom - 8
        )
        if plot.width() < 20 or plot.height() < 20:
            return
        painter.setPen(QPen(grid_color, 1))
        for pct in (0, 25, 50, 75, 100):
            y = plot.bottom() - plot.height() * pct / 100
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(text_color)
            painter.drawText(
                QRectF(0, y - metrics.height() / 2, left - 4, metrics.height()),
                int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                f"{pct} %",
            )
            painter.setPen(QPen(grid_color, 1))
        # Legend.
        x = plot.left()
        for _key, label, colour in TREND_SERIES:
            painter.fillRect(QRectF(x, 4, 12, metrics.height() - 4), QColor(colour))
            painter.setPen(text_color)
            painter.drawText(QPointF(x + 16, metrics.ascent() + 2), label)
            x += 16 + metrics.horizontalAdvance(label) + 14
        if not self._days:
            painter.setPen(text_color)
            painter.drawText(
                plot, int(Qt.AlignmentFlag.AlignCenter), "No suggestions in this period"
            )
            return
        n = len(self._days)
        step = plot.width() / max(n - 1, 1)

        def x_at(i: int) -> float:
            return plot.left() + (step * i if n > 1 else plot.width() / 2)

        for key, _label, colour in TREND_SERIES:
            painter.setPen(QPen(QColor(colour), 2))
            points = [
                QPointF(x_at(i), plot.bottom() - plot.height() * float(day.get(key) or 0))
                for i, day in enumerate(self._days)
            ]
            for a, b in itertools.pairwise(points):
                painter.drawLine(a, b)
            for point in points:
                painter.drawEllipse(point, 2.5, 2.5)
        painter.setPen(text_color)
        labels = {0, n - 1} | ({n // 2} if n > 2 else set())
        for i in sorted(labels):
            text = str(self._days[i].get("day", ""))[5:]
            width = metrics.horizontalAdvance(text)
            lx = min(max(x_at(i) - width / 2, plot.left()), plot.right() - width)
            painter.drawText(QPointF(lx, self.height() - 4), text)


#: Widest a column grows when fitted to its contents (long replies are elided, not scrolled).
MAX_COLUMN_WIDTH = 320


def record_table_view(model: RecordTableModel, *, max_width: int = MAX_COLUMN_WIDTH) -> QTableView:
    """A read-only, row-selecting table for a `RecordTableModel`, columns fitted on each reset."""
    view = QTableView()
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.setTextElideMode(Qt.TextElideMode.ElideRight)
    rows = view.verticalHeader()
    rows.setVisible(False)
    rows.setDefaultSectionSize(view.fontMetrics().height() + 8)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)

    def fit() -> None:
        view.resizeColumnsToContents()
        for column in range(model.columnCount()):
            if view.columnWidth(column) > max_width:
                view.setColumnWidth(column, max_width)

    model.modelReset.connect(fit)
    fit()
    return view


def _offer(combo: QComboBox, everything: str, values: Sequence[str]) -> None:
    """Fill a filter combo with "everything" and the values seen, keeping the current choice."""
    current = combo.currentData()
    combo.blockSignals(True)
    combo.clear()
    combo.addItem(everything, None)
    for value in values:
        combo.addItem(value, value)
    position = combo.findData(current) if current else 0
    combo.setCurrentIndex(max(position, 0))
    combo.blockSignals(False)


def _boxed(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(6, 6, 6, 6)
    layout.addWidget(widget)
    return box


class ReviewWindow(QWidget):
    """Filters, headline figures, trend, tables and the actions with their word diff."""

    def __init__(self, vm: ReviewViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.vm = vm
        self.setWindowTitle("Co-pilot — Review")
        self.resize(1100, 780)
        root = QVBoxLayout(self)

        # Filters on two rows (one would not fit a laptop screen): when and where (days,
        # queue) and the exports, then what was suggested (intent, kind, source) and Apply.
        filters = QHBoxLayout()
        suggested = QHBoxLayout()
        today = QDate.currentDate()
        self.since_check = QCheckBox("From")
        self.since_edit = QDateEdit(today.addDays(-30))
        self.until_check = QCheckBox("to")
        self.until_edit = QDateEdit(today)
        for edit in (self.since_edit, self.until_edit):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
        self.intent_combo = QComboBox()
        self.intent_combo.addItem("All intents", None)
        self.intent_combo.setMinimumContentsLength(16)
        self.kind_combo = QComboBox()
        for label, value in KIND_CHOICES:
            self.kind_combo.addItem(label, value)
        self.queue_combo = QComboBox()
        self.queue_combo.addItem("All queues", None)
        self.queue_combo.setMinimumContentsLength(10)
        self.source_combo = QComboBox()
        for label, value in SOURCE_CHOICES:
            self.source_combo.addItem(label, value)
        self.apply_button = QPushButton("&Apply")
        self.export_csv_button = QPushButton("Export &CSV…")
        self.export_json_button = QPushButton("Export &JSON…")
        for widget in (self.since_check, self.since_edit, self.until_check, self.until_edit):
            filters.addWidget(widget)
        # Alt+Q, I, K, S move to the filters (Alt+A applies them, as before).
        for line, text, combo, name in (
            (filters, "&Queue", self.queue_combo, "Queue filter"),
            (suggested, "&Intent", self.intent_combo, "Intent filter"),
            (suggested, "&Kind", self.kind_combo, "Suggestion kind filter"),
            (suggested, "&Source", self.source_combo, "Suggestion source filter"),
        ):
            caption = QLabel(text)
            caption.setBuddy(combo)
            combo.setAccessibleName(name)
            line.addWidget(caption)
            line.addWidget(combo)
        suggested.addWidget(self.apply_button)
        suggested.addStretch(1)
        filters.addStretch(1)
        filters.addWidget(self.export_csv_button)
        filters.addWidget(self.export_json_button)
        root.addLayout(filters)
        root.addLayout(suggested)

        # Headline figures and the trend.
        top = QHBoxLayout()
        figures = QGridLayout()
        self.figure_labels: dict[str, QLabel] = {}
        for row, (key, title) in enumerate(
            (
                ("shown", "Suggestions shown"),
                ("acceptance_rate", "Accepted"),
                ("edit_rate", "Edited"),
                ("discard_rate", "Discarded"),
                ("latency", "Latency p50 / p95"),
                ("misses", "Retrieval misses"),
            )
        ):
            figure = QLabel("–")
            font = QFont(figure.font())
            font.setBold(True)
            figure.setFont(font)
            figure.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            figures.addWidget(QLabel(title), row, 0)
            figures.addWidget(figure, row, 1)
            self.figure_labels[key] = figure
        figures_box = QGroupBox("Totals")
        figures_box.setLayout(figures)
        top.addWidget(figures_box, 0)
        self.trend_chart = TrendChart()
        top.addWidget(_boxed("Trend per day", self.trend_chart), 1)
        root.addLayout(top)

        # Tables.
        self.tabs = QTabWidget()
        self.tabs.addTab(record_table_view(vm.by_intent), "By intent")
        self.tabs.addTab(record_table_view(vm.by_template), "By template")
        self.tabs.addTab(record_table_view(vm.by_article), "By article")
        discards = QSplitter(Qt.Orientation.Horizontal)
        discards.addWidget(_boxed("Most discarded", record_table_view(vm.most_discarded)))
        discards.addWidget(_boxed("Discard reasons", record_table_view(vm.discard_reasons)))
        discards.setSizes([700, 300])
        self.tabs.addTab(discards, "Discards")
        self.tabs.addTab(record_table_view(vm.flag_precision), "Flag precision")

        actions = QWidget()
        actions_layout = QVBoxLayout(actions)
        actions_layout.setContentsMargins(0, 0, 0, 0)
        self.actions_view = record_table_view(vm.actions, max_width=250)
        diff = QWidget()
        diff_layout = QHBoxLayout(diff)
        diff_layout.setContentsMargins(0, 0, 0, 0)
        self.shown_view = QTextBrowser()
        self.sent_view = QTextBrowser()
        for view, title in ((self.shown_view, "Suggested"), (self.sent_view, "Sent")):
            view.setOpenLinks(False)
            view.setPlaceholderText("Select an action above")
            diff_layout.addWidget(_boxed(title, view))
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.actions_view)
        split.addWidget(diff)
        split.setSizes([260, 140])
        actions_layout.addWidget(split)
        self.tabs.addTab(actions, "Actions")
        root.addWidget(self.tabs, 1)

        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        root.addWidget(self.status_label)

        self.apply_button.clicked.connect(self.apply_filters)
        self.export_csv_button.clicked.connect(lambda: self._ask_export("csv"))
        self.export_json_button.clicked.connect(lambda: self._ask_export("json"))
        self.actions_view.selectionModel().selectionChanged.connect(self._action_selected)
        vm.sig_report_ready.connect(self._show_report)
        vm.sig_failed.connect(self._show_status)
        vm.sig_exported.connect(lambda path: self._show_status(f"Exported to {path}"))
        vm.sig_busy_changed.connect(
            lambda busy: self._show_status("Loading…") if busy else self._show_status("")
        )
        if vm.parent() is None:
            # Own a view-model nobody else owns, as the last child: Qt then deletes the views
            # before the models they show (the other order crashes in ~QAbstractItemView).
            vm.setParent(self)

    # -- user actions ------------------------------------------------------------------------

    def apply_filters(self) -> None:
        """Send the filter widgets' values to the view-model."""

        def day(check: QCheckBox, edit: QDateEdit) -> dt.date | None:
            if not check.isChecked():
                return None
            value = edit.date()
            return dt.date(value.year(), value.month(), value.day())

        self.vm.set_filters(
            since=day(self.since_check, self.since_edit),
            until=day(self.until_check, self.until_edit),
            intent=self.intent_combo.currentData(),
            kind=self.kind_combo.currentData(),
            queue=self.queue_combo.currentData(),
            source=self.source_combo.currentData(),
        )

    def _ask_export(self, fmt: str) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, f"Export feedback as {fmt.upper()}", f"feedback.{fmt}", f"{fmt.upper()} (*.{fmt})"
        )
        if path:
            self.vm.export(Path(path), fmt)

    # -- view-model updates ------------------------------------------------------------------

    def _show_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _show_report(self, report: Mapping[str, Any]) -> None:
        totals = report.get("totals", {})
        latency = report.get("suggestion_latency_ms", {})
        texts = {
            "shown": f"{totals.get('shown', 0):,}",
            "acceptance_rate": f"{totals.get('acceptance_rate', 0) * 100:.1f} %",
            "edit_rate": f"{totals.get('edit_rate', 0) * 100:.1f} %",
            "discard_rate": f"{totals.get('discard_rate', 0) * 100:.1f} %",
            "latency": (
                f"{latency.get('p50', 0):.1f} / {latency.get('p95', 0):.1f} ms"
                if latency.get("n")
                else "–"
            ),
            "misses": f"{report.get('retrieval_misses', 0):,}",
        }
        for key, text in texts.items():
            self.figure_labels[key].setText(text)
        self.trend_chart.set_trend(report.get("trend", []))
        _offer(self.intent_combo, "All intents", self.vm.intents)
        _offer(self.queue_combo, "All queues", self.vm.queues)
        self.shown_view.clear()
        self.sent_view.clear()

    def _action_selected(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if not indexes:
            return
        record = self.vm.actions.record(indexes[0].row())
        self.show_diff(record.get("shown_text"), record.get("sent_text"))

    def show_diff(self, shown: str | None, sent: str | None) -> None:
        """Show a suggestion and the sent reply side by side, differences highlighted."""
        left, right = word_diff_html(shown, sent)
        self.shown_view.setHtml(left or "<i>(not recorded)</i>")
        self.sent_view.setHtml(right or "<i>(nothing sent)</i>")
