"""The application shell: paints before any heavy import, loads the model after, shows failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from copilot.app import HEAVY_MODULES, CopilotApp
from copilot.services.embedders import HashingEmbedder
from copilot.services.settings import settings_path

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("qt_leak_guard")]

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "QT_QPA_PLATFORM": "offscreen",
            "COPILOT_DATA_DIR": str(data_dir),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_window_paints_before_any_heavy_import(tmp_path: Path) -> None:
    result = _run(
        ["-m", "copilot", "--data-dir", str(tmp_path)],
        tmp_path,
        COPILOT_EXIT_AFTER_FIRST_PAINT="1",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy_modules"] == []
    assert 0 < report["first_paint_s"] < 5
    assert {"torch", "onnxruntime"} <= set(HEAVY_MODULES)


def test_cli_subcommands_never_import_qt(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from copilot.cli import main\n"
        "main(['model'])\n"
        "print('QT', any(name.startswith('PySide6') for name in sys.modules))\n"
    )
    result = _run(["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "QT False"


def _empty_backend(content: Path, data: Path, embedder: Any) -> Any:
    from copilot.qt.conversations_vm import PanelBackend

    class _NoPipeline:
        intents = None

        def analyse(self, conversation: Any, *, generation: int = 0) -> Any:
            raise RuntimeError("no pipeline in shell tests")

    return PanelBackend(assistant=_NoPipeline())  # type: ignore[arg-type]


@pytest.fixture
def make_app(qapp: QApplication, data_dir: Path) -> Iterator[Callable[..., CopilotApp]]:
    sheet, palette, style = qapp.styleSheet(), qapp.palette(), qapp.style().name()
    apps: list[CopilotApp] = []

    def make(**kwargs: Any) -> CopilotApp:
        # These tests are about the shell: the knowledge pack (seconds of bulk-lane work, see
        # test_app_panel.py) would only delay their own bulk tasks.
        kwargs.setdefault("backend_loader", _empty_backend)
        app = CopilotApp(qapp, data_dir, use_tray=False, **kwargs)
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


def test_model_loads_after_first_paint_and_status_says_so(
    qtbot: QtBot, make_app: Callable[..., CopilotApp]
) -> None:
    gate = threading.Event()

    def loader(backend: str, data_dir: Path) -> HashingEmbedder:
        gate.wait(5)
        return HashingEmbedder()

    app = make_app(model_loader=loader)
    # No ONNX export in this fresh data directory: the user is told it is a one-off.
    qtbot.waitUntil(
        lambda: (
            app.window.model_status_text()
            == "Preparing the language model for first use (one-off, up to a minute)…"
        ),
        timeout=5000,
    )
    assert app.window.model_status_state() == "loading"
    assert app.first_paint_s is not None  # loading started after the first paint
    with qtbot.waitSignal(app.sig_embedder_ready, timeout=5000) as ready:
        gate.set()
    assert isinstance(ready.args[0], HashingEmbedder)
    assert app.window.model_status_state() == "ready"
    assert app.window.model_status_text().startswith("Model ready (")
    assert app.embedder is ready.args[0]


def test_model_failure_is_shown_in_status_and_banner(
    qtbot: QtBot, make_app: Callable[..., CopilotApp]
) -> None:
    def broken(backend: str, data_dir: Path) -> Any:
        raise OSError("no space left on device")

    app = make_app(model_loader=broken)
    qtbot.waitUntil(lambda: app.window.model_status_state() == "error", timeout=5000)
    assert "no space left on device" in app.window.model_status_text()
    assert any("no space left on device" in m.text for m in app.window.messages())


def test_damaged_settings_are_reported_in_the_window(
    qtbot: QtBot, make_app: Callable[..., CopilotApp], data_dir: Path
) -> None:
    settings_path(data_dir).write_text("theme = [", encoding="utf-8")
    app = make_app(model_loader=lambda backend, data_dir: HashingEmbedder())
    messages = [m.text for m in app.window.messages()]
    assert len(messages) == 1 and "settings.toml.broken-" in messages[0]
    qtbot.waitSignal(app.sig_embedder_ready, timeout=5000).wait()


def test_menu_choices_are_saved(
    qtbot: QtBot, make_app: Callable[..., CopilotApp], data_dir: Path
) -> None:
    app = make_app(model_loader=lambda backend, data_dir: HashingEmbedder())
    app.window._snap_actions["right"].trigger()
    app.window._on_top_action.trigger()
    text = settings_path(data_dir).read_text(encoding="utf-8")
    assert 'snap_edge = "right"' in text and "always_on_top = false" in text
    qtbot.waitSignal(app.sig_embedder_ready, timeout=5000).wait()


def test_task_failures_reach_the_window(qtbot: QtBot, make_app: Callable[..., CopilotApp]) -> None:
    app = make_app(model_loader=lambda backend, data_dir: HashingEmbedder())
    qtbot.waitSignal(app.sig_embedder_ready, timeout=5000).wait()

    def broken() -> None:
        raise RuntimeError("index is damaged")

    with qtbot.waitSignal(app.runner.sig_task_failed, timeout=2000):
        app.runner.run("bulk", broken, description="Reindexing")
    assert [m.text for m in app.window.messages()] == [
        "Reindexing failed: index is damaged (RuntimeError)"
    ]


def test_settings_dialog_opens_once_and_is_released(
    qtbot: QtBot, make_app: Callable[..., CopilotApp]
) -> None:
    from copilot.ui.settings_dialog import SettingsDialog

    app = make_app(model_loader=lambda backend, data_dir: HashingEmbedder())
    qtbot.waitSignal(app.sig_embedder_ready, timeout=5000).wait()
    app.window._settings_action.trigger()
    app.window._settings_action.trigger()  # a second request raises the same dialog
    dialogs = [d for d in app.window.findChildren(SettingsDialog) if d.isVisible()]
    assert len(dialogs) == 1
    dialogs[0].reject()
    qtbot.waitUntil(lambda: not app.window.findChildren(SettingsDialog), timeout=2000)
