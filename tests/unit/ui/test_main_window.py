"""The main window: renders narrow, shows status and messages, hosts sections, docks to edges."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout
from pytestqt.qtbot import QtBot

from copilot.ui.main_window import MAX_WIDTH, MIN_WIDTH, MainWindow

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot: QtBot) -> Iterator[MainWindow]:
    window = MainWindow(use_tray=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window


def _section(title: str) -> QFrame:
    frame = QFrame()
    frame.setProperty("role", "section")
    layout = QVBoxLayout(frame)
    layout.addWidget(QLabel(title))
    return frame


def test_renders_offscreen_at_its_default_width(window: MainWindow, tmp_path: Path) -> None:
    path = tmp_path / "window.png"
    assert window.grab().save(str(path))
    image = QImage(str(path))
    assert image.width() == 420
    assert image.height() > 300
    assert window.windowTitle() == "Agent Co-pilot"


def test_width_stays_within_limits(window: MainWindow) -> None:
    window.resize(1200, 700)
    assert window.width() == MAX_WIDTH
    window.resize(100, 700)
    assert window.width() == MIN_WIDTH
    window.resize(500, 700)
    assert window.width() == 500  # the user may resize in between


def test_status_bar_texts(window: MainWindow) -> None:
    assert window.model_status_text() == "Loading language model…"
    assert window.model_status_state() == "loading"
    window.set_model_ready(0.42)
    assert window.model_status_text() == "Model ready (0.4 s)"
    assert window.model_status_state() == "ready"
    window.set_model_failed("Language model failed to load: disk full")
    assert window.model_status_state() == "error"
    assert window.sources_text() == "No live source"
    window.set_sources("Ingest API :8765 · JSONL calls.jsonl")
    assert window.sources_text() == "Ingest API :8765 · JSONL calls.jsonl"
    assert window.last_update_text() == "No update yet"
    window.set_last_update(datetime(2025, 3, 4, 14, 3, 22), 37.6)
    assert window.last_update_text() == "Updated 14:03:22 · 38 ms"
    with pytest.raises(ValueError):
        window.set_model_state("sleeping", "?")


def test_a_long_status_does_not_widen_the_window(window: MainWindow) -> None:
    window.set_model_failed("Language model failed to load: " + "very long reason " * 30)
    window.set_sources("Ingest API :8765 · " + "x" * 300)
    QGuiApplication.processEvents()
    assert window.width() == 420


def test_sections_replace_the_placeholder(window: MainWindow) -> None:
    placeholder = window.findChild(QLabel, "PlaceholderLabel")
    assert placeholder is not None and placeholder.isVisible()
    summary, flags = _section("Summary"), _section("Flags")
    window.set_sections([summary, flags])
    assert window.sections() == [summary, flags]
    assert summary.isVisible() and not placeholder.isVisible()
    assert summary.y() < flags.y()  # top to bottom, in the order given
    articles = _section("Articles")
    window.set_sections([flags, articles])
    assert window.sections() == [flags, articles]
    assert summary.parent() is None and not summary.isVisible()
    summary.deleteLater()
    window.set_sections([])
    assert placeholder.isVisible()


def test_messages_are_shown_deduplicated_and_dismissable(qtbot: QtBot, window: MainWindow) -> None:
    first = window.show_message("Loading the language model failed: disk full (OSError)")
    assert first.isVisible()
    assert window.show_message(first.text) is first
    for n in range(4):
        window.show_message(f"problem {n}")
    assert [m.text for m in window.messages()] == ["problem 1", "problem 2", "problem 3"]
    qtbot.mouseClick(window.messages()[0].close_button, Qt.MouseButton.LeftButton)
    assert [m.text for m in window.messages()] == ["problem 2", "problem 3"]


def test_always_on_top_menu_toggles_and_announces(qtbot: QtBot, window: MainWindow) -> None:
    assert window.always_on_top
    with qtbot.waitSignal(window.sig_always_on_top_toggled, timeout=1000) as blocker:
        window._on_top_action.trigger()
    assert blocker.args == [False]
    assert not window.always_on_top
    assert window.isVisible()  # changing window flags must not leave it hidden
    window.set_always_on_top(True)
    assert window.always_on_top and window._on_top_action.isChecked()


@pytest.mark.parametrize("edge", ["left", "right"])
def test_snap_to_screen_edge(qtbot: QtBot, window: MainWindow, edge: str) -> None:
    area = window.screen().availableGeometry()
    with qtbot.waitSignal(window.sig_snap_edge_requested, timeout=1000) as blocker:
        window._snap_actions[edge].trigger()
    assert blocker.args == [edge]
    frame = window.frameGeometry()
    if edge == "left":
        assert frame.left() == area.left()
    else:
        assert frame.right() == area.right()
    assert frame.top() == area.top()
    assert frame.height() == area.height()
    assert window.snap_edge == edge


def test_close_without_tray_asks_to_quit(qtbot: QtBot, window: MainWindow) -> None:
    assert not window.has_tray_icon()
    with qtbot.waitSignal(window.sig_quit_requested, timeout=1000):
        window.close()


def test_toggle_hides_and_shows(window: MainWindow) -> None:
    window.toggle_visibility()
    assert not window.isVisible()
    window.toggle_visibility()
    assert window.isVisible()


def test_settings_action_is_reachable(qtbot: QtBot, window: MainWindow, qapp: Any) -> None:
    with qtbot.waitSignal(window.sig_settings_requested, timeout=1000):
        window._settings_action.trigger()


# Offscreen has no tray: Qt warns that the platform lacks the tray signal.
@pytest.mark.qt_log_ignore("systemTrayWindowChanged")
def test_with_a_tray_icon_closing_hides_instead_of_quitting(qtbot: QtBot) -> None:
    window = MainWindow(use_tray=True)
    qtbot.addWidget(window)
    window.show()
    assert window.has_tray_icon()
    with qtbot.assertNotEmitted(window.sig_quit_requested):
        window.close()
    assert not window.isVisible()
    with qtbot.waitSignal(window.sig_quit_requested, timeout=1000):
        window._quit_action.trigger()
