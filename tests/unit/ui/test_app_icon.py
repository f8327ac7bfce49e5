"""The window and tray use the shipped icon set, with a drawn fallback when it is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSize
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from copilot.ui import main_window
from copilot.ui.main_window import APP_ID, MainWindow, app_icon, icon_theme_dir

pytestmark = pytest.mark.gui


def test_icon_comes_from_the_hicolor_set_in_every_size(qapp: QApplication) -> None:
    hicolor = icon_theme_dir()
    assert hicolor is not None
    assert (hicolor / "scalable" / "apps" / f"{APP_ID}.svg").is_file()
    sizes = {size.width() for size in app_icon().availableSizes()}
    assert {16, 22, 24, 32, 48, 64, 128, 256, 512} <= sizes


def test_icon_matches_the_png_of_its_size(qapp: QApplication) -> None:
    hicolor = icon_theme_dir()
    assert hicolor is not None
    expected = QImage(str(hicolor / "48x48" / "apps" / f"{APP_ID}.png"))
    shown = app_icon().pixmap(QSize(48, 48)).toImage()
    fmt = QImage.Format.Format_ARGB32
    assert shown.convertToFormat(fmt) == expected.convertToFormat(fmt)


def test_resources_dir_override_is_used(
    qapp: QApplication, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hicolor = tmp_path / "icons" / "hicolor"
    hicolor.mkdir(parents=True)
    monkeypatch.setenv("COPILOT_RESOURCES_DIR", str(tmp_path))
    assert icon_theme_dir() == hicolor


def test_a_missing_icon_set_falls_back_to_a_drawn_icon(
    qapp: QApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main_window, "icon_theme_dir", lambda: None)
    icon = app_icon()
    assert not icon.isNull()
    assert not icon.pixmap(QSize(32, 32)).toImage().isNull()


def test_the_window_shows_the_app_icon(qapp: QApplication) -> None:
    window = MainWindow(use_tray=False)
    try:
        sizes = {size.width() for size in window.windowIcon().availableSizes()}
        assert 512 in sizes  # the icon set, not the drawn fallback (16 to 128)
    finally:
        window.close()
        window.deleteLater()
