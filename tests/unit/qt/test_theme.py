"""Themes: numbered style sheets joined in order, palettes, applied at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QLabel

from copilot.qt import theme
from copilot.qt.theme import ThemeManager, load_stylesheet, resolve_scheme, style_files

pytestmark = pytest.mark.gui


@pytest.fixture
def restore_app_look(qapp: QApplication) -> Iterator[QApplication]:
    """Themes change the whole application: put it back for the next test."""
    sheet, palette, style = qapp.styleSheet(), qapp.palette(), qapp.style().name()
    yield qapp
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)
    qapp.setStyle(style)


def test_shipped_files_are_found_from_the_checkout() -> None:
    names = [p.name for p in style_files("light")]
    # Sections add numbered files of their own (30-panel.qss ...) after the base ones.
    assert names[:2] == ["00-base.qss", "10-light.qss"]
    assert not any(name.endswith("-dark.qss") for name in names)
    dark = [p.name for p in style_files("dark")]
    assert dark[:2] == ["00-base.qss", "20-dark.qss"]
    assert not any(name.endswith("-light.qss") for name in dark)


def test_files_are_joined_in_name_order_per_scheme(tmp_path: Path) -> None:
    for name, rule in (
        ("30-panel.qss", "QLabel { margin: 1px; }"),
        ("00-base.qss", "QWidget { margin: 0px; }"),
        ("31-panel-dark.qss", "QLabel { color: white; }"),
        ("10-light.qss", "QWidget { color: black; }"),
        ("20-dark.qss", "QWidget { color: #eee; }"),
    ):
        (tmp_path / name).write_text(rule, encoding="utf-8")
    dark = load_stylesheet("dark", tmp_path)
    order = [dark.index(f"/* {n} */") for n in ("00-base.qss", "20-dark.qss", "30-panel.qss")]
    assert order == sorted(order)
    assert "31-panel-dark.qss" in dark and "10-light.qss" not in dark
    light = load_stylesheet("light", tmp_path)
    assert "30-panel.qss" in light and "31-panel-dark.qss" not in light


def test_resources_dir_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "styles").mkdir()
    monkeypatch.setenv("COPILOT_RESOURCES_DIR", str(tmp_path))
    assert theme.styles_dir() == tmp_path / "styles"


def test_system_theme_falls_back_to_light_when_unknown(qapp: QApplication) -> None:
    # The offscreen platform reports no colour scheme.
    assert resolve_scheme("system") in ("light", "dark")
    assert resolve_scheme("dark") == "dark"
    assert resolve_scheme("light") == "light"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_apply_changes_palette_and_style_sheet(restore_app_look: QApplication, scheme: str) -> None:
    manager = ThemeManager(restore_app_look)
    applied: list[str] = []
    manager.sig_scheme_applied.connect(applied.append)
    assert manager.apply(scheme) == scheme
    window = restore_app_look.palette().color(QPalette.ColorRole.Window)
    assert (window.lightness() < 100) == (scheme == "dark")
    assert f"{'20-dark' if scheme == 'dark' else '10-light'}.qss" in restore_app_look.styleSheet()
    assert applied == [scheme]
    manager.apply(scheme)  # no change, no signal
    assert applied == [scheme]
    # The shipped sheets parse (a parse error is a Qt warning, which fails the test).
    label = QLabel("x")
    label.setObjectName("StatusModel")
    label.setProperty("state", "error")
    label.ensurePolished()
    assert not label.grab().isNull()
