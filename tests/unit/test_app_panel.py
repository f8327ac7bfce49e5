"""The app wires the panel: loading states, the knowledge pack on the bulk lane, the demo replay."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from copilot.app import CopilotApp
from copilot.core.feedback import FeedbackKind
from copilot.services.embedders import HashingEmbedder
from copilot.services.feedback_memory import MemoryFeedbackSink
from copilot.services.transcripts import read_events

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("qt_leak_guard")]

DEMO = next((Path(__file__).resolve().parents[2] / "knowledge" / "demos").glob("05-*.jsonl"))


@pytest.fixture
def make_app(qapp: QApplication, data_dir: Path) -> Iterator[Callable[..., CopilotApp]]:
    sheet, palette, style = qapp.styleSheet(), qapp.palette(), qapp.style().name()
    apps: list[CopilotApp] = []

    def make(**kwargs: Any) -> CopilotApp:
        app = CopilotApp(
            qapp,
            data_dir,
            use_tray=False,
            model_loader=lambda backend, data: HashingEmbedder(),
            **kwargs,
        )
        apps.append(app)
        assert app.start()
        return app

    yield make
    for app in apps:
        app.shutdown()
        app.window.close()
        app.window.deleteLater()
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)
    qapp.setStyle(style)


def test_the_panel_says_loading_until_the_knowledge_pack_is_ready(
    qtbot: QtBot, make_app: Callable[..., CopilotApp], hashing_backend: Any
) -> None:
    gate = threading.Event()

    def slow_backend(content: Path, data: Path, embedder: Any) -> Any:
        gate.wait(5)
        return hashing_backend

    app = make_app(backend_loader=slow_backend)
    qtbot.waitUntil(lambda: app.panel is not None, timeout=5000)
    qtbot.waitSignal(app.sig_embedder_ready, timeout=5000).wait()
    panel = app.panel
    assert panel.status_label.isVisible()
    assert panel.status_label.text().startswith("Loading")
    assert not panel.input.edit.isEnabled()
    with qtbot.waitSignal(app.sig_backend_ready, timeout=5000):
        gate.set()
    assert panel.input.edit.isEnabled()
    assert app.backend is hashing_backend
    panel.conversations.submit_text("I was charged twice", "customer")
    qtbot.waitUntil(lambda: panel.vm.snapshot is not None, timeout=5000)
    assert app.window.last_update_text().startswith("Updated ")


def test_a_broken_knowledge_pack_is_reported_and_input_stays_off(
    qtbot: QtBot, make_app: Callable[..., CopilotApp]
) -> None:
    def broken(content: Path, data: Path, embedder: Any) -> Any:
        raise ValueError("templates/billing.yaml: billing.x: unknown slot {foo}")

    app = make_app(backend_loader=broken)
    qtbot.waitUntil(lambda: bool(app.window.messages()), timeout=5000)
    assert "unknown slot {foo}" in app.window.messages()[0].text
    assert "could not be loaded" in app.panel.status_label.text()
    assert not app.panel.input.edit.isEnabled()


def test_the_demo_replays_turns_and_feedback_reaches_the_sink(
    qtbot: QtBot, make_app: Callable[..., CopilotApp], hashing_backend: Any
) -> None:
    first, second = list(read_events(DEMO))[:2]
    # Turns said a moment apart: replayed at the shortest gap the demo allows (0.6 s).
    turns = [
        replace(first, conversation_id="app-demo"),
        replace(second, conversation_id="app-demo", ts=first.ts),
    ]
    app = make_app(
        backend_loader=lambda c, d, e: hashing_backend,
        replay=turns,
        feedback_sink=MemoryFeedbackSink(),
    )
    qtbot.waitUntil(lambda: app.replayer is not None, timeout=5000)
    with qtbot.waitSignal(app.replayer.sig_finished, timeout=5000):
        pass
    conversations = app.panel.conversations
    qtbot.waitUntil(
        lambda: conversations.is_idle() and app.panel.vm.snapshot is not None, timeout=5000
    )
    conversation = conversations.conversation()
    assert [t.turn_id for t in conversation.turns] == ["t01", "t02"]
    qtbot.waitUntil(
        lambda: bool(app.feedback_sink.of_kind(FeedbackKind.SUGGESTION_SHOWN)), timeout=3000
    )


def test_by_default_feedback_is_committed_to_the_sqlite_store(
    qtbot: QtBot, make_app: Callable[..., CopilotApp], hashing_backend: Any, data_dir: Path
) -> None:
    from copilot.services.feedback_store import FeedbackStore, LazyStoreSink, feedback_db_path

    first, second = list(read_events(DEMO))[:2]
    turns = [
        replace(first, conversation_id="app-store"),
        replace(second, conversation_id="app-store", ts=first.ts),
    ]
    app = make_app(backend_loader=lambda c, d, e: hashing_backend, replay=turns)
    qtbot.waitUntil(lambda: app.replayer is not None, timeout=5000)
    assert isinstance(app.feedback_sink, LazyStoreSink)
    with qtbot.waitSignal(app.replayer.sig_finished, timeout=5000):
        pass
    conversations = app.panel.conversations
    qtbot.waitUntil(
        lambda: conversations.is_idle() and app.panel.vm.snapshot is not None, timeout=5000
    )
    app.shutdown()
    with FeedbackStore(feedback_db_path(data_dir)) as store:
        kinds = {a["kind"] for a in store.iter_actions()}
    assert str(FeedbackKind.SUGGESTION_SHOWN) in kinds
