"""The panel with the real model: a replayed double-charge chat shows the double-charge article."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from copilot.qt.conversations_vm import load_backend
from copilot.qt.tasks import TaskRunner
from copilot.services.feedback_memory import MemoryFeedbackSink
from copilot.services.transcripts import read_events
from copilot.ui.main_window import MainWindow
from copilot.ui.panel import build_panel

pytestmark = [pytest.mark.gui, pytest.mark.slow]

KNOWLEDGE = Path(__file__).resolve().parents[3] / "knowledge"


def test_double_charge_chat_shows_the_double_charge_article_and_the_customer(
    qtbot: QtBot, real_embedder: Any, tmp_path: Path
) -> None:
    backend = load_backend(KNOWLEDGE, tmp_path, real_embedder)
    window = MainWindow(use_tray=False, always_on_top=False)
    runner = TaskRunner()
    panel = build_panel(window, runner, MemoryFeedbackSink())
    qtbot.addWidget(window)
    try:
        window.show()
        panel.conversations.set_backend(backend)
        events = list(read_events(next((KNOWLEDGE / "demos").glob("02-*.jsonl"))))[:7]
        for event in events:
            panel.conversations.apply_event(replace(event, conversation_id="real-02"))
        qtbot.waitUntil(
            lambda: panel.conversations.is_idle() and panel.vm.snapshot is not None,
            timeout=20000,
        )
        snapshot = panel.vm.snapshot
        titles = [
            label.text()
            for label in panel.articles.findChildren(QLabel, "CardTitle")
            if label.isVisibleTo(panel)
        ]
        assert snapshot.hits[0].article_id == "KB-BIL-001"
        assert titles[0] == "Double charge on a card or Direct Debit payment"
        assert [c.text_label.text() for c in panel.suggestions.cards] == [
            s.text for s in snapshot.suggestions
        ]
        assert panel.suggestions.cards, "the double-charge chat gets at least one reply"
        assert panel.header.combo.currentText().startswith("Tom Whitaker")
        assert snapshot.intent is not None
        assert panel.flags.routing_label.text().startswith(snapshot.intent.intent_name or "")
    finally:
        panel.shutdown()
        runner.shutdown(wait=True)
        backend.index.close()
