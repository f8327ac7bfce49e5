"""The co-pilot's window: a narrow column beside the agent's main tool.

Layout, top to bottom: dismissible message banners (failures the user must see), a scroll area
holding the panel's sections (`MainWindow.set_sections`), and a two-line status bar (model state;
live sources and the last update with its latency).

The window knows nothing about settings files, models or threads: it shows what it is told and
turns the user's menu choices into signals, which `copilot.app` wires to the view-models.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QColor,
    QFont,
    QGuiApplication,
    QIcon,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPixmap,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QScrollArea,
    QSizePolicy,
    QSystemTrayIcon,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

APP_TITLE = "Agent Co-pilot"
#: Reverse-DNS application id: the .desktop file, the AppStream metainfo and the icon files
#: (``resources/icons/hicolor``, ``packaging/linux``) are named after it.
APP_ID = "io.github.agentcopilot.AgentCopilot"
DEFAULT_WIDTH = 420
MIN_WIDTH = 380
MAX_WIDTH = 600
DEFAULT_HEIGHT = 720
MAX_BANNERS = 3

MODEL_LOADING = "loading"
MODEL_READY = "ready"
MODEL_ERROR = "error"
MODEL_STATES = (MODEL_LOADING, MODEL_READY, MODEL_ERROR)

SNAP_EDGES = ("none", "left", "right")


_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def icon_theme_dir() -> Path | None:
    """The ``hicolor`` folder of the icon set, found like the style sheets (`copilot.qt.theme`).

    ``$COPILOT_RESOURCES_DIR/icons``, then ``copilot/resources/icons`` inside an installed package
    or a frozen build, then ``<checkout>/resources/icons``; None when none exists.
    """
    override = os.environ.get("COPILOT_RESOURCES_DIR")
    candidates = [Path(override).expanduser()] if override else []
    candidates += [_PACKAGE_DIR / "resources", _PACKAGE_DIR.parent / "resources"]
    for candidate in candidates:
        hicolor = candidate / "icons" / "hicolor"
        if hicolor.is_dir():
            return hicolor
    return None


def app_icon() -> QIcon:
    """The application icon: the PNG sizes of ``resources/icons`` (see `icon_theme_dir`).

    PNGs rather than the SVG: they need no SVG plugin and are crisp at small sizes. Without the
    icon files (a broken install) a blue tile with "Co" is drawn instead.
    """
    icon = QIcon()
    hicolor = icon_theme_dir()
    if hicolor is not None:
        for path in sorted(hicolor.glob(f"*x*/apps/{APP_ID}.png")):
            icon.addFile(str(path))
        if not icon.isNull():
            return icon
    for size in (16, 32, 64, 128):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#2b6cb0"))
        radius = size * 0.22
        painter.drawRoundedRect(QRect(0, 0, size, size), radius, radius)
        font = QFont()
        font.setBold(True)
        font.setPixelSize(max(8, int(size * 0.46)))
        painter.setFont(font)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(QRect(0, 0, size, size), Qt.AlignmentFlag.AlignCenter, "Co")
        painter.end()
        icon.addPixmap(pixmap)
    return icon


class ElidedLabel(QLabel):
    """A one-line label that ends in "…" when too narrow (the full text is in its tooltip)."""

    def paintEvent(self, event: QPaintEvent) -> None:
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter = QPainter(self)
        self.style().drawItemText(
            painter,
            rect,
            int(self.alignment()),
            self.palette(),
            self.isEnabled(),
            text,
            self.foregroundRole(),
        )
        painter.end()


class MessageBanner(QFrame):
    """A message the user must see (a failed task, a damaged settings file), until dismissed."""

    def __init__(self, text: str, kind: str = "error", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageBanner")
        self.setProperty("kind", kind)
        self.setAccessibleName("Warning" if kind == "warning" else "Error")
        self.setAccessibleDescription(text)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel(text, self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label, 1)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAccessibleName("Dismiss message")
        self.close_button.clicked.connect(self.dismiss)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)

    @property
    def text(self) -> str:
        return self.label.text()

    def dismiss(self) -> None:
        self.hide()
        self.deleteLater()


class MainWindow(QMainWindow):
    """The narrow, always-on-top co-pilot window.

    Signals:
        sig_settings_requested(): the user asked for the settings dialog.
        sig_always_on_top_toggled(bool): the user switched "Always on top" in the menu.
        sig_snap_edge_requested(str): the user chose ``none``, ``left`` or ``right``.
        sig_quit_requested(): the user chose Quit (menu, tray, or closing without a tray).
    """

    sig_settings_requested = Signal()
    sig_always_on_top_toggled = Signal(bool)
    sig_snap_edge_requested = Signal(str)
    sig_quit_requested = Signal()

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        always_on_top: bool = True,
        snap_edge: str = "none",
        use_tray: bool | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(APP_TITLE)
        self.setWindowIcon(app_icon())
        self.setMinimumWidth(MIN_WIDTH)
        self.setMaximumWidth(MAX_WIDTH)
        self.resize(DEFAULT_WIDTH, self._default_height())
        self._snap_edge = "none"
        self._sections: list[QWidget] = []
        self._quitting = False

        self._build_central()
        self._build_status_bar()
        self._build_menus()
        if use_tray is None:
            use_tray = QSystemTrayIcon.isSystemTrayAvailable()
        self._tray = self._build_tray() if use_tray else None

        self.set_always_on_top(always_on_top)
        self.set_snap_edge(snap_edge)
        self.set_model_loading()
        self.set_sources("")
        self.set_last_update(None)

    # --- sections -----------------------------------------------------------------------------

    def set_sections(self, widgets: Sequence[QWidget]) -> None:
        """Show ``widgets`` as the panel's sections, top to bottom, replacing any before.

        Widgets removed are hidden and unparented, not deleted: the caller may reuse them. Give a
        section ``setProperty("role", "section")`` to get the card style of the theme.
        """
        for widget in self._sections:
            if widget not in widgets:
                self._sections_layout.removeWidget(widget)
                widget.hide()
                widget.setParent(None)
        self._sections = []
        for widget in widgets:
            self.add_section(widget)
        self._placeholder.setVisible(not self._sections)

    def add_section(self, widget: QWidget) -> None:
        """Append one section below the others."""
        # The stretch stays last so sections keep their natural height at the top.
        self._sections_layout.insertWidget(self._sections_layout.count() - 1, widget)
        widget.show()
        self._sections.append(widget)
        self._placeholder.setVisible(not self._sections)

    def sections(self) -> list[QWidget]:
        """The sections currently shown, top to bottom."""
        return list(self._sections)

    def set_placeholder_text(self, text: str) -> None:
        """What the window says while it has no sections."""
        self._placeholder.setText(text)

    def scroll_to_top(self) -> None:
        self._scroll.verticalScrollBar().setValue(0)

    # --- status bar ---------------------------------------------------------------------------

    def set_model_state(self, state: str, text: str) -> None:
        """Show the language model's state: ``loading``, ``ready`` or ``error``, with a text."""
        if state not in MODEL_STATES:
            raise ValueError(f"unknown model state {state!r}")
        self._model_label.setText(text)
        self._model_label.setToolTip(text)
        self._model_label.setAccessibleDescription(text)
        self._model_label.setProperty("state", state)
        # Re-polish so the style sheet's [state=...] rule takes effect.
        style = self._model_label.style()
        style.unpolish(self._model_label)
        style.polish(self._model_label)

    def set_model_loading(self, text: str = "Loading language model…") -> None:
        self.set_model_state(MODEL_LOADING, text)

    def set_model_ready(self, seconds: float, name: str = "") -> None:
        """ "Model ready (0.4 s)"; ``name`` goes in the tooltip."""
        self.set_model_state(MODEL_READY, f"Model ready ({seconds:.1f} s)")
        if name:
            self._model_label.setToolTip(f"{name}, loaded in {seconds:.2f} s")

    def set_model_failed(self, message: str) -> None:
        self.set_model_state(MODEL_ERROR, message)

    def set_sources(self, text: str) -> None:
        """Which live sources are connected, e.g. "Ingest API :8765 · JSONL calls.jsonl"."""
        self._sources_label.setText(text or "No live source")
        self._sources_label.setToolTip(text or "No live source is connected")

    def set_last_update(self, when: datetime | None, latency_ms: float | None = None) -> None:
        """When the panel last updated and how long the pipeline took for it."""
        if when is None:
            text = "No update yet"
        else:
            text = f"Updated {when:%H:%M:%S}"
            if latency_ms is not None:
                text += f" · {latency_ms:.0f} ms"
        self._update_label.setText(text)
        self._update_label.setToolTip(text)

    def model_status_text(self) -> str:
        return self._model_label.text()

    def model_status_state(self) -> str:
        return str(self._model_label.property("state"))

    def sources_text(self) -> str:
        return self._sources_label.text()

    def last_update_text(self) -> str:
        return self._update_label.text()

    # --- messages -----------------------------------------------------------------------------

    def show_message(self, text: str, kind: str = "error") -> MessageBanner:
        """Show a dismissible banner above the sections (not a modal box: the agent is on a call).

        The same text is not shown twice; at most `MAX_BANNERS` stay, the oldest go first.
        """
        for banner in self.messages():
            if banner.text == text:
                return banner
        banner = MessageBanner(text, kind, self)
        self._banners_layout.addWidget(banner)
        banner.show()  # children added to a shown window start hidden
        banners = self.messages()
        for old in banners[: max(0, len(banners) - MAX_BANNERS)]:
            old.dismiss()
        return banner

    def messages(self) -> list[MessageBanner]:
        """The banners currently shown, oldest first."""
        out = []
        for index in range(self._banners_layout.count()):
            item = self._banners_layout.itemAt(index)
            widget = item.widget() if item is not None else None
            if isinstance(widget, MessageBanner) and not widget.isHidden():
                out.append(widget)
        return out

    # --- window behaviour ---------------------------------------------------------------------

    @property
    def always_on_top(self) -> bool:
        return bool(self.windowFlags() & Qt.WindowType.WindowStaysOnTopHint)

    def set_always_on_top(self, on: bool) -> None:
        """Keep the window above the agent's main tool (or not)."""
        if on != self.always_on_top:
            visible = self.isVisible()
            self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, on)
            if visible:  # changing flags hides a window on most platforms
                self.show()
        self._on_top_action.setChecked(on)

    @property
    def snap_edge(self) -> str:
        return self._snap_edge

    def set_snap_edge(self, edge: str) -> None:
        """Dock the window to the ``left`` or ``right`` screen edge at full height, or ``none``."""
        if edge not in SNAP_EDGES:
            raise ValueError(f"unknown edge {edge!r} (expected one of {SNAP_EDGES})")
        self._snap_edge = edge
        self._snap_actions[edge].setChecked(True)
        self._apply_snap()

    def bring_to_front(self) -> None:
        """Show, un-minimise and raise the window (another ``copilot`` was started)."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    def toggle_visibility(self) -> None:
        """Hide the window if shown, else bring it to the front (the desktop-wide hotkey)."""
        if self.isVisible() and not self.isMinimized():
            self.hide()
        else:
            self.bring_to_front()

    def quit_requested_by_user(self) -> None:
        self._quitting = True
        self.sig_quit_requested.emit()

    def has_tray_icon(self) -> bool:
        return self._tray is not None

    # --- Qt overrides -------------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        return QSize(DEFAULT_WIDTH, self._default_height())

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._apply_snap()

    def closeEvent(self, event: QCloseEvent) -> None:
        # With a tray icon, closing hides (the co-pilot keeps listening); without one there is no
        # way back to a hidden window, so closing quits.
        if self._tray is not None and not self._quitting:
            event.ignore()
            self.hide()
            return
        event.accept()
        if not self._quitting:
            self._quitting = True
            self.sig_quit_requested.emit()

    # --- building -----------------------------------------------------------------------------

    def _default_height(self) -> int:
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            return DEFAULT_HEIGHT
        return min(DEFAULT_HEIGHT, screen.availableGeometry().height() - 40)

    def _build_central(self) -> None:
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.setSpacing(6)
        self._banners_layout = QVBoxLayout()
        self._banners_layout.setSpacing(4)
        layout.addLayout(self._banners_layout)

        self._scroll = QScrollArea(central)
        self._scroll.setObjectName("SectionScroll")
        self._scroll.setWidgetResizable(True)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setAccessibleName("Co-pilot panel")
        container = QWidget(self._scroll)
        container.setObjectName("SectionContainer")
        self._sections_layout = QVBoxLayout(container)
        self._sections_layout.setContentsMargins(0, 0, 0, 6)
        self._sections_layout.setSpacing(8)
        self._placeholder = QLabel(
            "No conversation yet.\nTurns from the live sources will appear here.", container
        )
        self._placeholder.setObjectName("PlaceholderLabel")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setWordWrap(True)
        self._sections_layout.addWidget(self._placeholder)
        self._sections_layout.addStretch(1)
        self._scroll.setWidget(container)
        layout.addWidget(self._scroll, 1)
        self.setCentralWidget(central)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setSizeGripEnabled(True)
        box = QWidget(bar)
        grid = QVBoxLayout(box)
        grid.setContentsMargins(4, 2, 4, 2)
        grid.setSpacing(0)
        self._model_label = ElidedLabel(box)
        self._model_label.setObjectName("StatusModel")
        self._model_label.setAccessibleName("Language model status")
        second = QHBoxLayout()
        second.setSpacing(8)
        self._sources_label = ElidedLabel(box)
        self._sources_label.setObjectName("StatusSources")
        self._sources_label.setAccessibleName("Live sources")
        self._update_label = QLabel(box)
        self._update_label.setObjectName("StatusUpdated")
        self._update_label.setAccessibleName("Last update")
        self._update_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        for label in (self._model_label, self._sources_label):
            # Ignored: long texts must not widen a narrow window; they elide instead.
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setMinimumWidth(40)
        self._update_label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        second.addWidget(self._sources_label, 1)
        second.addWidget(self._update_label, 0)
        grid.addWidget(self._model_label)
        grid.addLayout(second)
        bar.addWidget(box, 1)

    def _build_menus(self) -> None:
        menu_bar = self.menuBar()
        app_menu = menu_bar.addMenu("&Co-pilot")
        settings = QAction("&Settings…", self)
        settings.setShortcut(QKeySequence.StandardKey.Preferences)
        settings.triggered.connect(self.sig_settings_requested.emit)
        app_menu.addAction(settings)
        app_menu.addSeparator()
        hide = QAction("&Hide window", self)
        hide.triggered.connect(self.hide)
        app_menu.addAction(hide)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.quit_requested_by_user)
        app_menu.addAction(quit_action)
        self._settings_action = settings
        self._quit_action = quit_action

        view = menu_bar.addMenu("&View")
        self._on_top_action = QAction("Always on &top", self)
        self._on_top_action.setCheckable(True)
        self._on_top_action.setShortcut(QKeySequence("Ctrl+Shift+T"))
        self._on_top_action.triggered.connect(self._on_top_triggered)
        view.addAction(self._on_top_action)
        view.addSeparator()
        group = QActionGroup(self)
        group.setExclusive(True)
        self._snap_actions: dict[str, QAction] = {}
        for edge, label, keys in (
            ("left", "Snap to &left edge", "Ctrl+Shift+Left"),
            ("right", "Snap to &right edge", "Ctrl+Shift+Right"),
            ("none", "&Free-floating", "Ctrl+Shift+Down"),
        ):
            action = QAction(label, self)
            action.setCheckable(True)
            action.setShortcut(QKeySequence(keys))
            action.triggered.connect(lambda _checked=False, edge=edge: self._snap_triggered(edge))
            group.addAction(action)
            view.addAction(action)
            self._snap_actions[edge] = action

    def _build_tray(self) -> QSystemTrayIcon:
        tray = QSystemTrayIcon(self.windowIcon(), self)
        tray.setToolTip(APP_TITLE)
        menu = QMenu(self)
        show_hide = menu.addAction("Show / hide")
        show_hide.triggered.connect(self.toggle_visibility)
        menu.addAction(self._settings_action)
        menu.addSeparator()
        menu.addAction(self._quit_action)
        tray.setContextMenu(menu)
        tray.activated.connect(self._tray_activated)
        tray.show()
        return tray

    def _tray_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.toggle_visibility()

    def _on_top_triggered(self, checked: bool) -> None:
        self.set_always_on_top(checked)
        self.sig_always_on_top_toggled.emit(checked)

    def _snap_triggered(self, edge: str) -> None:
        self.set_snap_edge(edge)
        self.sig_snap_edge_requested.emit(edge)

    def _apply_snap(self) -> None:
        if self._snap_edge == "none":
            return
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        frame = self.frameGeometry()
        inner = self.geometry()
        # Window decorations: known only once the window manager has framed the window.
        extra_width = frame.width() - inner.width()
        extra_height = frame.height() - inner.height()
        self.resize(inner.width(), max(200, area.height() - extra_height))
        if self._snap_edge == "left":
            x = area.left()
        else:
            x = area.right() + 1 - inner.width() - extra_width
        self.move(QPoint(x, area.top()))
