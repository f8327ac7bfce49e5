"""The running app picks up a new live index without a restart, and re-analyses what is open."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from copilot.app import CopilotApp
from copilot.services import paths
from copilot.services.embedders import HashingEmbedder
from copilot.services.feedback_memory import MemoryFeedbackSink

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("qt_leak_guard")]


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
            feedback_sink=MemoryFeedbackSink(),
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


def swap_current(index_dir: Path, name: str) -> None:
    """What another process's ``copilot index`` does at its end."""
    (index_dir / name).mkdir(parents=True, exist_ok=True)
    temp = index_dir / ".CURRENT.tmp-other"
    temp.write_text(name + "\n", encoding="utf-8")
    os.replace(temp, index_dir / "CURRENT")


def test_a_new_generation_reloads_the_backend_and_reanalyses_open_conversations(
    qtbot: QtBot, make_app: Callable[..., CopilotApp], hashing_backend: Any, data_dir: Path
) -> None:
    loads: list[threading.Thread] = []

    def loader(content: Path, data: Path, embedder: Any) -> Any:
        loads.append(threading.current_thread())
        return hashing_backend

    app = make_app(backend_loader=loader)
    qtbot.waitSignal(app.sig_backend_ready, timeout=10000).wait()
    conversations = app.panel.conversations
    conversations.submit_text("I was charged twice for my broadband", "customer")
    qtbot.waitUntil(lambda: conversations.snapshot() is not None, timeout=5000)
    first = conversations.snapshot()
    assert app.index_watcher is not None

    with qtbot.waitSignal(app.sig_backend_reloaded, timeout=10000):
        swap_current(paths.index_dir(data_dir), "gen-000042")
    assert len(loads) == 2
    assert all(t is not threading.main_thread() for t in loads)  # on the bulk lane
    count = hashing_backend.index.article_count
    assert app.window.model_status_text() == f"Knowledge updated ({count} articles)"
    # The conversation on screen is analysed again, with the reloaded backend.
    qtbot.waitUntil(lambda: conversations.snapshot() is not first, timeout=5000)
    assert conversations.snapshot().created >= first.created

    # Writing the same pointer again is not a new generation.
    with qtbot.assertNotEmitted(app.sig_backend_reloaded, wait=1000):
        swap_current(paths.index_dir(data_dir), "gen-000042")
    assert len(loads) == 2


def test_a_reload_that_fails_keeps_the_previous_backend(
    qtbot: QtBot, make_app: Callable[..., CopilotApp], hashing_backend: Any, data_dir: Path
) -> None:
    calls: list[int] = []

    def loader(content: Path, data: Path, embedder: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            raise ValueError("gen-000043: vectors.faiss fails its checksum (corrupt)")
        return hashing_backend

    app = make_app(backend_loader=loader)
    qtbot.waitSignal(app.sig_backend_ready, timeout=10000).wait()
    swap_current(paths.index_dir(data_dir), "gen-000043")
    qtbot.waitUntil(lambda: bool(app.window.messages()), timeout=10000)
    assert "fails its checksum" in app.window.messages()[-1].text
    assert app.backend is hashing_backend
    assert app.panel.input.edit.isEnabled()
