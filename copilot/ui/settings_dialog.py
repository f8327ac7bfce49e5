"""The settings dialog: a form over `copilot.qt.settings_vm.SettingsViewModel`.

It reads the view-model to fill its fields, previews the theme as it changes, and on Save hands
the form's values to the view-model, showing any problem inline. Every control has an accessible
name and a keyboard mnemonic on its label; Tab follows the visual order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from copilot.qt.settings_vm import SettingsViewModel

MIN_WIDTH = 440
DEFAULT_WIDTH = 520
THEME_CHOICES = (("Follow the system", "system"), ("Light", "light"), ("Dark", "dark"))
SNAP_CHOICES = (
    ("Don't snap", "none"),
    ("Left screen edge", "left"),
    ("Right screen edge", "right"),
)
BACKEND_CHOICES = (
    ("ONNX Runtime (fast, default)", "onnx"),
    ("PyTorch (reference, slower)", "torch"),
)


def _note(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setObjectName("InlineNote")
    label.setWordWrap(True)
    return label


def _restyle(widget: QWidget) -> None:
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)


class SettingsDialog(QDialog):
    """Edit the settings; Save validates and writes them, Cancel reverts the theme preview."""

    def __init__(self, vm: SettingsViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._vm = vm
        self.setWindowTitle("Co-pilot settings")
        self.setAccessibleName("Co-pilot settings")
        self.setMinimumWidth(MIN_WIDTH)
        layout = QVBoxLayout(self)
        # The groups scroll (small screens); errors and buttons stay in view below them.
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget(scroll)
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(0, 0, 6, 0)
        body_layout.addWidget(self._content_group())
        body_layout.addWidget(self._sources_group())
        body_layout.addWidget(self._llm_group())
        body_layout.addWidget(self._privacy_group())
        body_layout.addWidget(self._appearance_group())
        body_layout.addStretch(1)
        scroll.setWidget(body)
        layout.addWidget(scroll, 1)
        self.error_label = _note("", self)
        self.error_label.setProperty("state", "error")
        self.error_label.setAccessibleName("Problems with these settings")
        self.error_label.hide()
        layout.addWidget(self.error_label)
        self.button_box = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.button_box.accepted.connect(self.accept)
        self.button_box.rejected.connect(self.reject)
        layout.addWidget(self.button_box)
        self._load()
        self.theme_combo.currentIndexChanged.connect(self._theme_chosen)
        self._fit_to_screen(body)

    def _fit_to_screen(self, body: QWidget) -> None:
        screen = self.screen() or QGuiApplication.primaryScreen()
        wanted = body.sizeHint().height() + self.button_box.sizeHint().height() + 48
        if screen is not None:
            wanted = min(wanted, int(screen.availableGeometry().height() * 0.9))
        self.resize(DEFAULT_WIDTH, wanted)

    # --- groups -------------------------------------------------------------------------------

    def _content_group(self) -> QGroupBox:
        group = QGroupBox("Content and data", self)
        form = QFormLayout(group)
        self.content_dir_edit = QLineEdit(group)
        self.content_dir_edit.setAccessibleName("Content pack location")
        self.content_dir_edit.setPlaceholderText(
            f"Sample pack ({self._vm.default_content_dir().name})"
        )
        self.content_dir_edit.setClearButtonEnabled(True)
        self.content_browse_button = QPushButton("&Browse…", group)
        self.content_browse_button.setAccessibleName("Browse for the content pack folder")
        self.content_browse_button.clicked.connect(self._browse_content)
        row = QHBoxLayout()
        row.addWidget(self.content_dir_edit, 1)
        row.addWidget(self.content_browse_button)
        form.addRow("Content &pack:", row)
        self._set_buddy(form, row, self.content_dir_edit)

        self.data_dir_edit = QLineEdit(str(self._vm.data_dir), group)
        self.data_dir_edit.setReadOnly(True)
        self.data_dir_edit.setAccessibleName("Data directory (read only)")
        form.addRow("&Data directory:", self.data_dir_edit)
        form.addRow(
            "",
            _note("Set with --data-dir or $COPILOT_DATA_DIR when starting the co-pilot.", group),
        )
        return group

    def _sources_group(self) -> QGroupBox:
        group = QGroupBox("Live sources", self)
        form = QFormLayout(group)
        self.ingest_enabled_check = QCheckBox("Accept turns on the local &ingest API", group)
        self.ingest_enabled_check.setAccessibleName("Enable the local ingest API")
        form.addRow(self.ingest_enabled_check)
        self.ingest_port_spin = QSpinBox(group)
        self.ingest_port_spin.setRange(1024, 65535)
        self.ingest_port_spin.setAccessibleName("Ingest API port")
        form.addRow("P&ort:", self.ingest_port_spin)
        self.ingest_enabled_check.toggled.connect(self.ingest_port_spin.setEnabled)
        self.origins_edit = QLineEdit(group)
        self.origins_edit.setAccessibleName("Browser origins allowed to use the ingest API")
        self.origins_edit.setPlaceholderText("None (only programs, no web pages)")
        self.origins_edit.setToolTip(
            "Exact origins of web pages allowed to call the API, comma-separated, e.g. "
            "https://helpdesk.example.com (for the helpdesk userscript)"
        )
        form.addRow("Allowed origin&s:", self.origins_edit)
        self.ingest_enabled_check.toggled.connect(self.origins_edit.setEnabled)

        self.jsonl_edit = QLineEdit(group)
        self.jsonl_edit.setAccessibleName("JSONL file to follow")
        self.jsonl_edit.setPlaceholderText("None")
        self.jsonl_edit.setClearButtonEnabled(True)
        self.jsonl_browse_button = QPushButton("Bro&wse…", group)
        self.jsonl_browse_button.setAccessibleName("Browse for the JSONL file to follow")
        self.jsonl_browse_button.clicked.connect(self._browse_jsonl)
        row = QHBoxLayout()
        row.addWidget(self.jsonl_edit, 1)
        row.addWidget(self.jsonl_browse_button)
        form.addRow("&JSONL file:", row)
        self._set_buddy(form, row, self.jsonl_edit)
        return group

    def _llm_group(self) -> QGroupBox:
        group = QGroupBox("Language model backend (optional)", self)
        form = QFormLayout(group)
        self.llm_enabled_check = QCheckBox("&Use an OpenAI-compatible endpoint", group)
        self.llm_enabled_check.setAccessibleName("Use a language model endpoint")
        form.addRow(self.llm_enabled_check)
        self.llm_endpoint_edit = QLineEdit(group)
        self.llm_endpoint_edit.setAccessibleName("LLM endpoint URL")
        self.llm_endpoint_edit.setPlaceholderText("http://localhost:11434/v1")
        form.addRow("&Endpoint:", self.llm_endpoint_edit)
        self.llm_model_edit = QLineEdit(group)
        self.llm_model_edit.setAccessibleName("LLM model name")
        form.addRow("&Model:", self.llm_model_edit)
        self.llm_timeout_spin = QDoubleSpinBox(group)
        self.llm_timeout_spin.setRange(1.0, 600.0)
        self.llm_timeout_spin.setDecimals(1)
        self.llm_timeout_spin.setSuffix(" s")
        self.llm_timeout_spin.setAccessibleName("LLM timeout in seconds")
        form.addRow("&Timeout:", self.llm_timeout_spin)

        self.api_key_edit = QLineEdit(group)
        self.api_key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key_edit.setAccessibleName("LLM API key")
        self.api_key_remove_button = QPushButton("&Remove", group)
        self.api_key_remove_button.setAccessibleName("Remove the saved API key")
        self.api_key_remove_button.clicked.connect(self._remove_key)
        row = QHBoxLayout()
        row.addWidget(self.api_key_edit, 1)
        row.addWidget(self.api_key_remove_button)
        form.addRow("API &key:", row)
        self._set_buddy(form, row, self.api_key_edit)
        self.api_key_note = _note("", group)
        self.api_key_note.setAccessibleName("API key storage")
        form.addRow("", self.api_key_note)
        return group

    def _privacy_group(self) -> QGroupBox:
        group = QGroupBox("History and privacy", self)
        form = QFormLayout(group)
        self.retention_spin = QSpinBox(group)
        self.retention_spin.setRange(1, 3650)
        self.retention_spin.setSuffix(" days")
        self.retention_spin.setAccessibleName("Keep conversation history for, in days")
        form.addRow("Keep histor&y for:", self.retention_spin)
        self.agent_id_edit = QLineEdit(group)
        self.agent_id_edit.setAccessibleName("Agent ID")
        self.agent_id_edit.setPlaceholderText("Not set")
        form.addRow("A&gent ID:", self.agent_id_edit)
        self.queue_edit = QLineEdit(group)
        self.queue_edit.setAccessibleName("Queue")
        self.queue_edit.setPlaceholderText("Not set")
        self.queue_edit.setToolTip("Your queue (e.g. billing): recorded with your feedback")
        form.addRow("&Queue:", self.queue_edit)
        self.per_agent_check = QCheckBox("Show per-agent &figures in reviews", group)
        self.per_agent_check.setAccessibleName("Show per-agent figures")
        form.addRow(self.per_agent_check)
        return group

    def _appearance_group(self) -> QGroupBox:
        group = QGroupBox("Window and model", self)
        form = QFormLayout(group)
        self.theme_combo = QComboBox(group)
        for label, value in THEME_CHOICES:
            self.theme_combo.addItem(label, value)
        self.theme_combo.setAccessibleName("Theme")
        form.addRow("T&heme:", self.theme_combo)
        self.always_on_top_check = QCheckBox("Keep the window &always on top", group)
        self.always_on_top_check.setAccessibleName("Always on top")
        form.addRow(self.always_on_top_check)
        self.snap_combo = QComboBox(group)
        for label, value in SNAP_CHOICES:
            self.snap_combo.addItem(label, value)
        self.snap_combo.setAccessibleName("Snap the window to a screen edge")
        form.addRow("S&nap to:", self.snap_combo)
        self.backend_combo = QComboBox(group)
        for label, value in BACKEND_CHOICES:
            self.backend_combo.addItem(label, value)
        self.backend_combo.setAccessibleName("Embedding backend")
        form.addRow("Embedding mode&l:", self.backend_combo)
        form.addRow("", _note("The embedding backend changes at the next start.", group))
        return group

    @staticmethod
    def _set_buddy(form: QFormLayout, row: Any, field: QWidget) -> None:
        """A row holding a layout gets a label without a buddy: point it at the field."""
        label = form.labelForField(row)
        if isinstance(label, QLabel):
            label.setBuddy(field)

    # --- state --------------------------------------------------------------------------------

    def _load(self) -> None:
        s = self._vm.settings
        self.content_dir_edit.setText(str(s.content_dir) if s.content_dir else "")
        self.ingest_enabled_check.setChecked(s.sources.ingest_api.enabled)
        self.ingest_port_spin.setValue(s.sources.ingest_api.port)
        self.ingest_port_spin.setEnabled(s.sources.ingest_api.enabled)
        self.origins_edit.setText(", ".join(s.sources.ingest_api.allowed_origins))
        self.origins_edit.setEnabled(s.sources.ingest_api.enabled)
        tail = s.sources.jsonl_tail_path
        self.jsonl_edit.setText(str(tail) if tail else "")
        self.llm_enabled_check.setChecked(s.llm.enabled)
        self.llm_endpoint_edit.setText(s.llm.endpoint)
        self.llm_model_edit.setText(s.llm.model)
        self.llm_timeout_spin.setValue(s.llm.timeout_s)
        self.retention_spin.setValue(s.retention_days)
        self.agent_id_edit.setText(s.agent_id)
        self.queue_edit.setText(s.queue)
        self.per_agent_check.setChecked(s.show_per_agent_figures)
        self._select(self.theme_combo, s.theme)
        self.always_on_top_check.setChecked(s.always_on_top)
        self._select(self.snap_combo, s.snap_edge)
        self._select(self.backend_combo, s.embedding_backend)
        self._refresh_key_state()

    def _refresh_key_state(self) -> None:
        available, message = self._vm.keyring_status()
        has_key = self._vm.has_api_key()
        self.api_key_edit.clear()
        self.api_key_edit.setPlaceholderText(
            "A key is set; type to replace it" if has_key else "Not set"
        )
        self.api_key_remove_button.setEnabled(has_key)
        self._show_key_note(message, error=not available)

    def _show_key_note(self, message: str, *, error: bool) -> None:
        self.api_key_note.setText(message)
        self.api_key_note.setProperty("state", "error" if error else "")
        _restyle(self.api_key_note)

    @staticmethod
    def _select(combo: QComboBox, value: str) -> None:
        index = combo.findData(value)
        combo.setCurrentIndex(max(0, index))

    def changes(self) -> dict[str, Any]:
        """The form's values, shaped like the settings file."""
        content = self.content_dir_edit.text().strip()
        tail = self.jsonl_edit.text().strip()
        return {
            "content_dir": Path(content).expanduser() if content else None,
            "sources": {
                "ingest_api": {
                    "enabled": self.ingest_enabled_check.isChecked(),
                    "port": self.ingest_port_spin.value(),
                    "allowed_origins": [
                        o.strip() for o in self.origins_edit.text().split(",") if o.strip()
                    ],
                },
                "jsonl_tail_path": Path(tail).expanduser() if tail else None,
            },
            "llm": {
                "enabled": self.llm_enabled_check.isChecked(),
                "endpoint": self.llm_endpoint_edit.text().strip(),
                "model": self.llm_model_edit.text().strip(),
                "timeout_s": self.llm_timeout_spin.value(),
            },
            "retention_days": self.retention_spin.value(),
            "agent_id": self.agent_id_edit.text().strip(),
            "queue": self.queue_edit.text().strip(),
            "show_per_agent_figures": self.per_agent_check.isChecked(),
            "theme": self.theme_combo.currentData(),
            "always_on_top": self.always_on_top_check.isChecked(),
            "snap_edge": self.snap_combo.currentData(),
            "embedding_backend": self.backend_combo.currentData(),
        }

    def show_errors(self, errors: list[str]) -> None:
        self.error_label.setText("\n".join(errors))
        self.error_label.setVisible(bool(errors))

    # --- actions ------------------------------------------------------------------------------

    def accept(self) -> None:
        errors = self._vm.save(self.changes())
        if errors:
            self.show_errors(errors)
            return
        self.show_errors([])
        key = self.api_key_edit.text()
        if key:
            saved, message = self._vm.set_api_key(key)
            if not saved and self.api_key_note.text() != message:
                # Saving failed although the keyring looked usable: say so before closing.
                self._show_key_note(message, error=True)
                return
            self.api_key_edit.clear()
        super().accept()

    def reject(self) -> None:
        self._vm.revert_theme_preview()
        super().reject()

    def _theme_chosen(self, _index: int) -> None:
        self._vm.preview_theme(str(self.theme_combo.currentData()))

    def _remove_key(self) -> None:
        self._vm.delete_api_key()
        self._refresh_key_state()

    def _browse_content(self) -> None:
        start = self.content_dir_edit.text() or str(self._vm.default_content_dir())
        chosen = QFileDialog.getExistingDirectory(self, "Content pack folder", start)
        if chosen:
            self.content_dir_edit.setText(chosen)

    def _browse_jsonl(self) -> None:
        start = self.jsonl_edit.text() or str(Path.home())
        chosen, _ = QFileDialog.getOpenFileName(
            self, "JSONL file to follow", start, "JSON Lines (*.jsonl *.ndjson);;All files (*)"
        )
        if chosen:
            self.jsonl_edit.setText(chosen)
