"""The team-lead review window: filters change the figures, diffs are escaped, export works."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot
from review_seed import BILLING, DELIVERY, FIRST_DAY, GENERATED_ITEM, HTML_REPLY, seed_feedback

from copilot.qt.review_vm import ReviewViewModel, word_diff_html
from copilot.qt.tasks import TaskRunner
from copilot.ui.review_window import ReviewWindow

pytestmark = pytest.mark.gui


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return seed_feedback(tmp_path / "feedback.sqlite3")


@pytest.fixture
def runner(qapp: Any) -> Iterator[TaskRunner]:
    runner = TaskRunner()
    yield runner
    runner.shutdown(wait=True)


def open_window(
    qtbot: QtBot, runner: TaskRunner, db_path: Path, *, per_agent: bool = False
) -> ReviewWindow:
    vm = ReviewViewModel(runner, db_path, show_per_agent=per_agent)
    window = ReviewWindow(vm)
    qtbot.addWidget(window)
    with qtbot.waitSignal(vm.sig_report_ready, timeout=5000):
        vm.refresh()
    return window


def apply(qtbot: QtBot, window: ReviewWindow) -> None:
    with qtbot.waitSignal(window.vm.sig_report_ready, timeout=5000):
        window.apply_button.click()


def test_the_report_fills_figures_chart_and_tables(
    qtbot: QtBot, runner: TaskRunner, db_path: Path
) -> None:
    window = open_window(qtbot, runner, db_path)
    vm = window.vm
    assert window.figure_labels["shown"].text() == "33"
    assert window.figure_labels["acceptance_rate"].text() == "57.6 %"
    assert "ms" in window.figure_labels["latency"].text()
    assert len(window.trend_chart.days) == 5
    intents = {vm.by_intent.record(r)["intent"] for r in range(vm.by_intent.rowCount())}
    assert intents == {BILLING, DELIVERY}
    articles = [vm.by_article.record(r)["article_id"] for r in range(vm.by_article.rowCount())]
    assert articles == ["KB-BIL-001"]
    assert vm.most_discarded.record(0)["item_id"] == "delivery.where"
    assert vm.flag_precision.data(vm.flag_precision.index(0, 3)) == "83.3 %"
    reasons = {vm.discard_reasons.record(r)["reason"] for r in range(vm.discard_reasons.rowCount())}
    assert reasons == {"outdated", "wrong_topic"}
    # The intent filter offers the intents seen.
    offered = [window.intent_combo.itemData(i) for i in range(window.intent_combo.count())]
    assert offered == [None, BILLING, DELIVERY]


def test_filters_change_the_figures(qtbot: QtBot, runner: TaskRunner, db_path: Path) -> None:
    window = open_window(qtbot, runner, db_path)
    window.intent_combo.setCurrentIndex(window.intent_combo.findData(DELIVERY))
    apply(qtbot, window)
    assert window.figure_labels["shown"].text() == "10"
    assert window.figure_labels["discard_rate"].text() == "100.0 %"
    assert {r["intent"] for r in window.vm.actions.rows} == {DELIVERY}

    window.intent_combo.setCurrentIndex(0)
    window.kind_combo.setCurrentIndex(window.kind_combo.findData("article"))
    apply(qtbot, window)
    assert window.figure_labels["shown"].text() == "5"
    assert window.vm.by_template.rowCount() == 0

    window.kind_combo.setCurrentIndex(0)
    window.since_check.setChecked(True)
    window.until_check.setChecked(True)
    day = FIRST_DAY + dt.timedelta(days=1)
    window.since_edit.setDate(day)
    window.until_edit.setDate(day)
    apply(qtbot, window)
    assert window.figure_labels["shown"].text() == "6"
    assert [d["day"] for d in window.trend_chart.days] == [day.isoformat()]


def test_a_queue_and_a_source_narrow_the_figures_and_the_actions(
    qtbot: QtBot, runner: TaskRunner, db_path: Path
) -> None:
    window = open_window(qtbot, runner, db_path)
    queues = [window.queue_combo.itemData(i) for i in range(window.queue_combo.count())]
    assert queues == [None, "billing", "general"]
    assert window.queue_combo.itemText(0) == "All queues"
    assert window.source_combo.itemText(0) == "All sources"

    window.queue_combo.setCurrentIndex(window.queue_combo.findData("general"))
    apply(qtbot, window)
    assert window.figure_labels["shown"].text() == "15"
    assert {r["queue"] for r in window.vm.actions.rows} == {"general"}
    assert {r["kind"] for r in window.vm.actions.rows} == {"accept", "discard"}

    # Offline suggestions of the general queue: the delivery templates, all discarded.
    window.source_combo.setCurrentIndex(window.source_combo.findData("offline"))
    apply(qtbot, window)
    assert window.figure_labels["shown"].text() == "10"
    assert window.figure_labels["discard_rate"].text() == "100.0 %"
    assert {(r["kind"], r["intent"]) for r in window.vm.actions.rows} == {("discard", DELIVERY)}
    assert window.vm.by_article.rowCount() == 0

    # What the language model wrote there: accepted every time, shown as AI-generated.
    window.source_combo.setCurrentIndex(window.source_combo.findData("generated"))
    apply(qtbot, window)
    assert window.figure_labels["shown"].text() == "5"
    assert window.figure_labels["acceptance_rate"].text() == "100.0 %"
    assert {r["item_id"] for r in window.vm.actions.rows} == {GENERATED_ITEM}
    column = window.vm.actions.column_keys.index("generated")
    assert window.vm.actions.data(window.vm.actions.index(0, column)) == "AI-generated"
    # The choice survives the combo being refilled with the queues seen.
    assert window.queue_combo.currentData() == "general"

    window.queue_combo.setCurrentIndex(window.queue_combo.findData("billing"))
    apply(qtbot, window)
    assert window.figure_labels["shown"].text() == "0"
    assert window.vm.actions.rowCount() == 0


def test_every_filter_has_a_name_and_a_mnemonic(
    qtbot: QtBot, runner: TaskRunner, db_path: Path
) -> None:
    window = open_window(qtbot, runner, db_path)
    buddies = {
        label.buddy(): label.text() for label in window.findChildren(QLabel) if label.buddy()
    }
    for combo, text in (
        (window.intent_combo, "&Intent"),
        (window.kind_combo, "&Kind"),
        (window.queue_combo, "&Queue"),
        (window.source_combo, "&Source"),
    ):
        assert buddies[combo] == text
        assert combo.accessibleName()
    keys = [t.lower()[t.index("&") + 1] for t in buddies.values()]
    keys += ["a", "c", "j"]  # Apply, Export CSV, Export JSON
    assert len(keys) == len(set(keys))


def test_a_reversed_day_range_is_refused_with_a_message(
    qtbot: QtBot, runner: TaskRunner, db_path: Path
) -> None:
    window = open_window(qtbot, runner, db_path)
    window.since_check.setChecked(True)
    window.until_check.setChecked(True)
    window.since_edit.setDate(FIRST_DAY)
    window.until_edit.setDate(FIRST_DAY - dt.timedelta(days=1))
    window.apply_button.click()
    assert "after the last day" in window.status_label.text()


def test_word_diff_escapes_markup_and_marks_changes() -> None:
    left, right = word_diff_html("Hello <b>there</b> friend", "Hello <i>there</i> pal & co")
    assert "<b>" not in left and "&lt;b&gt;" in left
    assert "<i>" not in right and "&lt;i&gt;" in right and "&amp;" in right
    assert "line-through" in left and "friend" in left
    assert "background-color" in right and "pal" in right
    assert word_diff_html("same words", "same words") == ("same words", "same words")


def test_the_diff_view_shows_customer_markup_as_text(
    qtbot: QtBot, runner: TaskRunner, db_path: Path
) -> None:
    window = open_window(qtbot, runner, db_path)
    window.tabs.setCurrentIndex(window.tabs.count() - 1)
    vm = window.vm
    rows = range(vm.actions.rowCount())
    row = next(r for r in rows if vm.actions.record(r)["sent_text"] == HTML_REPLY)
    window.actions_view.selectRow(row)
    sent = window.sent_view.toPlainText()
    assert sent == HTML_REPLY  # shown literally: the tags are text, not formatting
    assert "<img" not in window.sent_view.toHtml()
    assert window.shown_view.toPlainText().startswith("Let me look into")


def test_agent_column_only_when_settings_allow(
    qtbot: QtBot, runner: TaskRunner, db_path: Path
) -> None:
    hidden = open_window(qtbot, runner, db_path)
    assert "agent_id" not in hidden.vm.actions.column_keys
    shown = open_window(qtbot, runner, db_path, per_agent=True)
    assert "agent_id" in shown.vm.actions.column_keys
    shown.vm.set_show_per_agent(False)
    assert "agent_id" not in shown.vm.actions.column_keys


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_writes_the_actions(
    qtbot: QtBot, runner: TaskRunner, db_path: Path, tmp_path: Path, fmt: str
) -> None:
    window = open_window(qtbot, runner, db_path)
    target = tmp_path / f"out.{fmt}"
    with qtbot.waitSignal(window.vm.sig_exported, timeout=5000):
        window.vm.export(target, fmt)
    assert str(target) in window.status_label.text()
    if fmt == "csv":
        with target.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = json.loads(target.read_text(encoding="utf-8"))["actions"]
    assert len(rows) > 60
    assert {"accept", "discard", "edit"} <= {r["kind"] for r in rows}


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_honours_every_filter_of_the_window(
    qtbot: QtBot, runner: TaskRunner, db_path: Path, tmp_path: Path, fmt: str
) -> None:
    window = open_window(qtbot, runner, db_path)
    window.intent_combo.addItem(DELIVERY, DELIVERY)
    window.intent_combo.setCurrentIndex(window.intent_combo.findData(DELIVERY))
    window.kind_combo.setCurrentIndex(window.kind_combo.findData("template"))
    day = FIRST_DAY + dt.timedelta(days=1)
    for check, edit in (
        (window.since_check, window.since_edit),
        (window.until_check, window.until_edit),
    ):
        check.setChecked(True)
        edit.setDate(day)
    apply(qtbot, window)
    target = tmp_path / f"filtered.{fmt}"
    with qtbot.waitSignal(window.vm.sig_exported, timeout=5000):
        window.vm.export(target, fmt)
    if fmt == "csv":
        with target.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = json.loads(target.read_text(encoding="utf-8"))["actions"]
    assert rows, "the seeded day has delivery template actions"
    assert {r["intent"] for r in rows} == {DELIVERY}
    assert {r["suggestion_kind"] for r in rows} == {"template"}
    assert {r["ts"][:10] for r in rows} == {day.isoformat()}


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_honours_the_queue_and_the_source(
    qtbot: QtBot, runner: TaskRunner, db_path: Path, tmp_path: Path, fmt: str
) -> None:
    window = open_window(qtbot, runner, db_path)
    window.queue_combo.setCurrentIndex(window.queue_combo.findData("general"))
    window.source_combo.setCurrentIndex(window.source_combo.findData("generated"))
    apply(qtbot, window)
    target = tmp_path / f"ai.{fmt}"
    with qtbot.waitSignal(window.vm.sig_exported, timeout=5000):
        window.vm.export(target, fmt)
    if fmt == "csv":
        with target.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = json.loads(target.read_text(encoding="utf-8"))["actions"]
    assert len(rows) == 10  # shown and accepted, on each of the five days
    assert {(r["queue"], str(r["generated"]), r["item_id"]) for r in rows} == {
        ("general", "1", GENERATED_ITEM)
    }


def test_export_failure_is_shown(
    qtbot: QtBot, runner: TaskRunner, db_path: Path, tmp_path: Path
) -> None:
    window = open_window(qtbot, runner, db_path)
    with qtbot.waitSignal(window.vm.sig_failed, timeout=5000):
        window.vm.export(tmp_path / "missing" / "out.csv", "csv")
    assert "Exporting to out.csv failed" in window.status_label.text()


def test_every_item_model_passes_the_model_tester(
    qtbot: QtBot, runner: TaskRunner, db_path: Path, qtmodeltester: Any
) -> None:
    window = open_window(qtbot, runner, db_path)
    for model in window.vm.item_models():
        assert model.rowCount() > 0
        qtmodeltester.check(model)


def test_the_chart_paints_with_and_without_data(
    qtbot: QtBot, runner: TaskRunner, db_path: Path
) -> None:
    window = open_window(qtbot, runner, db_path)
    window.resize(900, 700)
    assert not window.grab().isNull()
    window.trend_chart.set_trend([])
    assert not window.trend_chart.grab().isNull()
