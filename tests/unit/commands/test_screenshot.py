"""``copilot screenshot`` and ``copilot demo``: a PNG of the panel, with or without a display."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from copilot.cli import main
from copilot.commands import demo, screenshot

REPO_ROOT = Path(__file__).resolve().parents[3]
DEMO = next((REPO_ROOT / "knowledge" / "demos").glob("05-*.jsonl"))


def _headless_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    env["COPILOT_DATA_DIR"] = str(data_dir)
    return env


def test_default_conversation_prefers_demo_02(tmp_path: Path) -> None:
    assert screenshot.default_conversation(REPO_ROOT / "knowledge").name.startswith("02-")
    (tmp_path / "demos").mkdir()
    assert screenshot.default_conversation(tmp_path) is None
    (tmp_path / "demos" / "07-x.jsonl").write_text("", encoding="utf-8")
    assert screenshot.default_conversation(tmp_path).name == "07-x.jsonl"


def test_display_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert screenshot.needs_offscreen() and not demo.has_display()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert not screenshot.needs_offscreen() and demo.has_display()
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert demo.has_display()


def test_a_missing_conversation_file_is_a_readable_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    code = main(["screenshot", "--out", str(tmp_path / "x.png"), "--conversation", str(missing)])
    assert code == 2
    assert f"no such conversation file: {missing}" in capsys.readouterr().err


@pytest.mark.gui
def test_render_screenshot_saves_the_panel(
    qapp: Any, qt_leak_guard: None, hashing_backend: Any, tmp_path: Path
) -> None:
    from dataclasses import replace

    from PySide6.QtGui import QImage

    events = [replace(e, conversation_id="shot-05") for e in screenshot.read_conversation(DEMO)]
    out = screenshot.render_screenshot(tmp_path / "panel.png", hashing_backend, events, height=700)
    image = QImage(str(out))
    assert (image.width(), image.height()) == (420, 700)
    colours = {image.pixel(x, y) for x in range(0, 420, 7) for y in range(0, 700, 7)}
    assert len(colours) > 20  # sections, badges and text, not a blank window


@pytest.mark.slow
def test_screenshot_command_without_a_display(tmp_path: Path) -> None:
    out = tmp_path / "shot.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "copilot",
            "screenshot",
            "--out",
            str(out),
            "--backend",
            "hashing",
            "--conversation",
            str(DEMO),
            "--turns",
            "6",
        ],
        cwd=REPO_ROOT,
        env=_headless_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"saved {out} (420x900, 6 turn events replayed)" in result.stdout
    assert out.stat().st_size > 10_000


@pytest.mark.slow
def test_demo_without_a_display_replays_in_the_terminal_and_saves_a_screenshot(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "copilot",
            "demo",
            "--backend",
            "hashing",
            "--fast",
            "--conversation",
            str(DEMO),
        ],
        cwd=REPO_ROOT,
        env=_headless_env(data),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("No display found")
    assert "--- CUSTOMER (t01):" in out and "FLAGS" in out and "legal_threat" in out
    shot = data / "demo-screenshot.png"
    assert f"Screenshot of the panel saved to {shot}" in out
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_demo_with_a_display_opens_the_app_and_replays(tmp_path: Path) -> None:
    short = tmp_path / "short.jsonl"
    lines = DEMO.read_text(encoding="utf-8").splitlines()[:2]
    short.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**_headless_env(tmp_path / "data"), "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "copilot",
            "demo",
            "--backend",
            "hashing",
            "--quit-when-done",
            "--conversation",
            str(short),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # It opened the window (no terminal replay), loaded the pack, replayed, and quit by itself.
    assert result.returncode == 0, result.stderr
    assert "No display found" not in result.stdout
    assert any((tmp_path / "data" / "index").iterdir())
