"""The main window's Tools menu opens the review and knowledge windows (one of each)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from review_seed import seed_feedback

from copilot.app import CopilotApp
from copilot.services.embedders import HashingEmbedder
from copilot.services.feedback_store import feedback_db_path
from copilot.ui.knowledge_window import KnowledgeWindow
from copilot.ui.review_window import ReviewWindow

pytestmark = pytest.mark.gui


def _no_backend(content: Path, data: Path, embedder: Any) -> Any:
    from copilot.qt.conversations_vm import PanelBackend

    class _NoPipeline:
        intents = None

        def analyse(self, conversation: Any, *, generation: int = 0) -> Any:
            raise RuntimeError("no pipeline in menu tests")

    return PanelBackend(assistant=_NoPipeline())  # type: ignore[arg-type]


@pytest.fixture
def app(qapp: QApplication, data_dir: Path, qtbot: QtBot) -> Iterator[CopilotApp]:
    sheet, palette, style = qapp.styleSheet(), qapp.palette(), qapp.style().name()
    seed_feedback(feedback_db_path(data_dir))
    app = CopilotApp(
        qapp,
        data_dir,
        use_tray=False,
        backend_loader=_no_backend,
        model_loader=lambda backend, data: HashingEmbedder(),
    )
    assert app.start()
    qtbot.waitSignal(app.sig_embedder_ready, timeout=5000).wait()
    yield app
    app.shutdown()
    app.window.close()
    app.window.deleteLater()
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)
    qapp.setStyle(style)


def _action(app: CopilotApp, text: str) -> QAction:
    for action in app.window.findChildren(QAction):
        if action.text().replace("&", "") == text:
            return action
    raise AssertionError(f"no menu action {text!r}")


def test_review_opens_once_with_the_stored_feedback(qtbot: QtBot, app: CopilotApp) -> None:
    _action(app, "Review…").trigger()
    window = app.window.findChild(ReviewWindow)
    assert window is not None and window.isVisible()
    qtbot.waitUntil(lambda: window.figure_labels["shown"].text() == "33", timeout=5000)
    _action(app, "Review…").trigger()
    assert len(app.window.findChildren(ReviewWindow)) == 1
    qtbot.waitUntil(lambda: not window.vm.busy, timeout=5000)


def test_knowledge_opens_with_the_content_pack(qtbot: QtBot, app: CopilotApp) -> None:
    _action(app, "Knowledge…").trigger()
    window = app.window.findChild(KnowledgeWindow)
    assert window is not None and window.isVisible()
    qtbot.waitUntil(lambda: window.vm.articles.rowCount() > 10, timeout=10000)
    qtbot.waitUntil(lambda: window.vm.harvest.rowCount() == 1, timeout=5000)
