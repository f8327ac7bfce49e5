"""Light and dark themes: a palette plus numbered ``.qss`` files joined in order.

Style sheets live in ``resources/styles/`` at the top of the repository (napari's habit): files are
read in name order; a file whose name ends in ``-light.qss`` or ``-dark.qss`` (``10-light.qss``,
``31-panel-dark.qss``) is used only with that colour scheme, every other file (``00-base.qss``,
``30-panel.qss``) always. Add a section's styles as a new numbered file rather than editing
another engineer's.

Where the files are found, first match wins:

1. ``$COPILOT_RESOURCES_DIR/styles`` (a packager's or tester's override);
2. ``copilot/resources/styles`` inside the installed package (a wheel or frozen build copies the
   top-level ``resources/`` folder there);
3. ``<checkout>/resources/styles``: an editable install (``pip install -e .``) imports ``copilot``
   from the checkout, so the top-level folder beside it is used directly, no build step.

The theme "system" follows the desktop's colour scheme (Qt >= 6.5 reports it) and changes with it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

_log = logging.getLogger(__name__)

Scheme = Literal["light", "dark"]
SCHEMES: tuple[Scheme, ...] = ("light", "dark")
THEMES: tuple[str, ...] = ("system", "light", "dark")

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def styles_dir() -> Path:
    """The directory holding the numbered ``.qss`` files (see the module docstring)."""
    override = os.environ.get("COPILOT_RESOURCES_DIR")
    candidates: list[Path] = []
    if override:
        candidates.append(Path(override).expanduser() / "styles")
    candidates += [
        _PACKAGE_DIR / "resources" / "styles",
        _PACKAGE_DIR.parent / "resources" / "styles",
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[-1]


def style_files(scheme: Scheme, directory: Path | None = None) -> list[Path]:
    """The ``.qss`` files used for ``scheme``, in the order they are joined."""
    folder = directory or styles_dir()
    chosen = []
    for path in sorted(folder.glob("*.qss")):
        variant = path.stem.rsplit("-", 1)[-1]
        if variant in SCHEMES and variant != scheme:
            continue
        chosen.append(path)
    return chosen


def load_stylesheet(scheme: Scheme, directory: Path | None = None) -> str:
    """The joined style sheet for ``scheme``; missing or unreadable files are skipped (logged)."""
    parts = []
    for path in style_files(scheme, directory):
        try:
            parts.append(f"/* {path.name} */\n{path.read_text(encoding='utf-8')}")
        except OSError as exc:
            _log.warning("style sheet %s could not be read: %s", path, exc)
    if not parts:
        _log.warning("no style sheets found in %s", directory or styles_dir())
    return "\n".join(parts)


def system_scheme() -> Scheme:
    """The desktop's colour scheme; light when the platform does not say."""
    hints = QGuiApplication.styleHints()
    return "dark" if hints.colorScheme() == Qt.ColorScheme.Dark else "light"


def resolve_scheme(theme: str) -> Scheme:
    """``"system"`` -> the desktop's scheme; ``"light"`` / ``"dark"`` unchanged."""
    if theme == "light":
        return "light"
    if theme == "dark":
        return "dark"
    if theme != "system":
        _log.warning("unknown theme %r; following the system", theme)
    return system_scheme()


_COLOURS: dict[Scheme, dict[QPalette.ColorRole, str]] = {
    "light": {
        QPalette.ColorRole.Window: "#f4f5f7",
        QPalette.ColorRole.WindowText: "#1d2330",
        QPalette.ColorRole.Base: "#ffffff",
        QPalette.ColorRole.AlternateBase: "#eef0f4",
        QPalette.ColorRole.Text: "#1d2330",
        QPalette.ColorRole.PlaceholderText: "#7a8290",
        QPalette.ColorRole.Button: "#e9ecf1",
        QPalette.ColorRole.ButtonText: "#1d2330",
        QPalette.ColorRole.Highlight: "#2b6cb0",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#1f5fa8",
        QPalette.ColorRole.ToolTipBase: "#ffffff",
        QPalette.ColorRole.ToolTipText: "#1d2330",
        QPalette.ColorRole.Mid: "#c3c8d1",
    },
    "dark": {
        QPalette.ColorRole.Window: "#1e2127",
        QPalette.ColorRole.WindowText: "#e6e8eb",
        QPalette.ColorRole.Base: "#2a2e36",
        QPalette.ColorRole.AlternateBase: "#30343c",
        QPalette.ColorRole.Text: "#e6e8eb",
        QPalette.ColorRole.PlaceholderText: "#8a919c",
        QPalette.ColorRole.Button: "#2c3038",
        QPalette.ColorRole.ButtonText: "#e6e8eb",
        QPalette.ColorRole.Highlight: "#4f8fe6",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#8cbcff",
        QPalette.ColorRole.ToolTipBase: "#2c3038",
        QPalette.ColorRole.ToolTipText: "#e6e8eb",
        QPalette.ColorRole.Mid: "#4a505a",
    },
}


def palette_for(scheme: Scheme) -> QPalette:
    """A complete palette for ``scheme`` (disabled text dimmed)."""
    palette = QPalette()
    for role, colour in _COLOURS[scheme].items():
        palette.setColor(role, QColor(colour))
    dimmed = QColor(_COLOURS[scheme][QPalette.ColorRole.PlaceholderText])
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.ButtonText,
    ):
        palette.setColor(QPalette.ColorGroup.Disabled, role, dimmed)
    return palette


class ThemeManager(QObject):
    """Applies a theme to the application and follows the desktop when the theme is "system".

    Signals:
        sig_scheme_applied(str): ``"light"`` or ``"dark"``, after the palette and style sheet
            changed.
    """

    sig_scheme_applied = Signal(str)

    def __init__(
        self, app: QApplication, *, directory: Path | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._app = app
        self._directory = directory
        self._theme = "system"
        self._scheme: Scheme | None = None
        # Fusion draws every control from the palette, so light and dark look the same on every
        # platform; native styles ignore parts of a custom palette.
        fusion = QStyleFactory.create("Fusion")
        if fusion is not None:
            app.setStyle(fusion)
        app.styleHints().colorSchemeChanged.connect(self._system_scheme_changed)

    @property
    def theme(self) -> str:
        return self._theme

    @property
    def scheme(self) -> Scheme | None:
        return self._scheme

    def apply(self, theme: str) -> Scheme:
        """Apply ``"system"``, ``"light"`` or ``"dark"`` now; returns the scheme in effect."""
        self._theme = theme
        scheme = resolve_scheme(theme)
        if scheme != self._scheme:
            self._app.setPalette(palette_for(scheme))
            self._app.setStyleSheet(load_stylesheet(scheme, self._directory))
            self._scheme = scheme
            self.sig_scheme_applied.emit(scheme)
        return scheme

    def _system_scheme_changed(self, *_: object) -> None:
        if self._theme == "system":
            self.apply("system")
