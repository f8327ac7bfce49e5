"""The settings dialog: writes the settings, keeps the API key in the keyring only, accessible."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QDialog,
    QLabel,
    QLineEdit,
    QWidget,
)
from pytestqt.qtbot import QtBot

from copilot.qt.settings_vm import SettingsViewModel
from copilot.services.secrets import LLM_API_KEY, SERVICE, SecretStore
from copilot.services.settings import load_settings, settings_path
from copilot.ui.settings_dialog import SettingsDialog

pytestmark = pytest.mark.gui

CONTROLS = (QLineEdit, QAbstractSpinBox, QComboBox, QAbstractButton)


@pytest.fixture
def vm(qapp: Any, data_dir: Path) -> SettingsViewModel:
    return SettingsViewModel(data_dir, SecretStore())


@pytest.fixture
def dialog(qtbot: QtBot, vm: SettingsViewModel) -> Iterator[SettingsDialog]:
    dialog = SettingsDialog(vm)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    yield dialog


def _fill(dialog: SettingsDialog, qtbot: QtBot, tmp_path: Path) -> None:
    dialog.content_dir_edit.setText(str(tmp_path / "pack"))
    dialog.ingest_port_spin.setValue(9123)
    dialog.jsonl_edit.setText(str(tmp_path / "calls.jsonl"))
    qtbot.mouseClick(dialog.llm_enabled_check, Qt.MouseButton.LeftButton)
    dialog.llm_endpoint_edit.setText("https://llm.example.test/v1")
    dialog.llm_model_edit.setText("llama3.1")
    dialog.llm_timeout_spin.setValue(15)
    qtbot.keyClicks(dialog.api_key_edit, "sk-secret-value-42")
    dialog.retention_spin.setValue(30)
    dialog.agent_id_edit.setText("agent-7")
    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))
    dialog.always_on_top_check.setChecked(False)
    dialog.snap_combo.setCurrentIndex(dialog.snap_combo.findData("left"))


def test_save_writes_settings_and_keeps_the_key_in_the_keyring_only(
    qtbot: QtBot, memory_keyring: Any, vm: SettingsViewModel, data_dir: Path, tmp_path: Path
) -> None:
    dialog = SettingsDialog(vm)
    qtbot.addWidget(dialog)
    dialog.show()
    assert "Saved in the system keyring" in dialog.api_key_note.text()
    _fill(dialog, qtbot, tmp_path)
    assert dialog.api_key_edit.echoMode() == QLineEdit.EchoMode.Password
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        dialog.button_box.button(dialog.button_box.StandardButton.Save).click()

    text = settings_path(data_dir).read_text(encoding="utf-8")
    assert "sk-secret-value-42" not in text
    doc = tomllib.loads(text)
    assert doc["llm"] == {
        "enabled": True,
        "endpoint": "https://llm.example.test/v1",
        "model": "llama3.1",
        "timeout_s": 15.0,
    }
    s = load_settings(data_dir).settings
    assert s.content_dir == tmp_path / "pack"
    assert s.sources.ingest_api.port == 9123
    assert s.sources.jsonl_tail_path == tmp_path / "calls.jsonl"
    assert (s.retention_days, s.agent_id, s.theme) == (30, "agent-7", "dark")
    assert (s.always_on_top, s.snap_edge) == (False, "left")
    assert memory_keyring.passwords == {(SERVICE, LLM_API_KEY): "sk-secret-value-42"}
    # Nothing else in the data directory holds the key either.
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert b"sk-secret-value-42" not in path.read_bytes(), path


def test_without_keyring_the_dialog_says_so_inline(
    qtbot: QtBot, dialog: SettingsDialog, vm: SettingsViewModel, data_dir: Path
) -> None:
    note = dialog.api_key_note.text()
    assert note.startswith("No system keyring is available (")
    assert "the key is used for this session only and not saved" in note
    assert dialog.api_key_note.isVisible()
    qtbot.keyClicks(dialog.api_key_edit, "sk-session-only")
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        dialog.accept()
    assert vm.has_api_key()  # usable for this session
    assert SecretStore().get(LLM_API_KEY) is None  # but saved nowhere
    assert not settings_path(data_dir).exists() or (
        "sk-session-only" not in settings_path(data_dir).read_text(encoding="utf-8")
    )


def test_invalid_values_are_shown_and_the_dialog_stays_open(
    qtbot: QtBot, dialog: SettingsDialog, data_dir: Path
) -> None:
    dialog.llm_endpoint_edit.setText("localhost:11434")
    with qtbot.assertNotEmitted(dialog.accepted):
        dialog.accept()
    assert dialog.isVisible()
    assert dialog.error_label.isVisible()
    assert "LLM endpoint: the endpoint must be an http:// or https:// URL" in (
        dialog.error_label.text()
    )
    assert not settings_path(data_dir).exists()


def test_allowed_origins_are_saved_as_a_list_and_a_path_is_refused(
    qtbot: QtBot, dialog: SettingsDialog, data_dir: Path
) -> None:
    dialog.origins_edit.setText("https://helpdesk.example.com/tickets")
    with qtbot.assertNotEmitted(dialog.accepted):
        dialog.accept()
    assert "is not an origin" in dialog.error_label.text()
    dialog.origins_edit.setText(" https://helpdesk.example.com , http://localhost:3000,")
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        dialog.accept()
    origins = load_settings(data_dir).settings.sources.ingest_api.allowed_origins
    assert origins == ("https://helpdesk.example.com", "http://localhost:3000")


def test_theme_previews_and_cancel_reverts(
    qtbot: QtBot, dialog: SettingsDialog, vm: SettingsViewModel
) -> None:
    themes: list[str] = []
    vm.sig_theme_changed.connect(themes.append)
    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))
    assert themes == ["dark"]
    with qtbot.waitSignal(dialog.rejected, timeout=1000):
        dialog.reject()
    assert themes == ["dark", "system"]
    assert vm.settings.theme == "system"


def test_remove_button_deletes_the_saved_key(
    qtbot: QtBot, memory_keyring: Any, vm: SettingsViewModel
) -> None:
    vm.set_api_key("sk-old")
    dialog = SettingsDialog(vm)
    qtbot.addWidget(dialog)
    assert dialog.api_key_remove_button.isEnabled()
    assert dialog.api_key_edit.text() == ""  # the saved key is never shown
    assert "A key is set" in dialog.api_key_edit.placeholderText()
    qtbot.mouseClick(dialog.api_key_remove_button, Qt.MouseButton.LeftButton)
    assert memory_keyring.passwords == {}
    assert not dialog.api_key_remove_button.isEnabled()


def test_data_directory_is_shown_read_only(dialog: SettingsDialog, data_dir: Path) -> None:
    assert dialog.data_dir_edit.isReadOnly()
    assert dialog.data_dir_edit.text() == str(data_dir)


def test_every_control_has_an_accessible_name(dialog: SettingsDialog) -> None:
    controls = [w for w in dialog.findChildren(QWidget) if isinstance(w, CONTROLS)]
    controls = [w for w in controls if w.parent() is not None and w.isVisibleTo(dialog)]
    # Spin boxes and combo boxes contain a line edit of their own: the outer control is named.
    controls = [w for w in controls if not isinstance(w.parent(), (QAbstractSpinBox, QComboBox))]
    dialog_buttons = set(dialog.button_box.buttons())
    unnamed = [
        f"{type(w).__name__} {w.objectName()!r}"
        for w in controls
        if not w.accessibleName() and w not in dialog_buttons
    ]
    assert unnamed == []
    assert len(controls) >= 20


def test_labels_lead_to_their_fields(dialog: SettingsDialog) -> None:
    """Every form label has a mnemonic and a buddy, so Alt+letter reaches each field."""
    labels = [
        label
        for label in dialog.findChildren(QLabel)
        if label.text().endswith(":") and label.isVisibleTo(dialog)
    ]
    assert len(labels) >= 12
    missing = [label.text() for label in labels if "&" not in label.text() or not label.buddy()]
    assert missing == []


def test_mnemonics_are_unique(dialog: SettingsDialog) -> None:
    texts = [label.text() for label in dialog.findChildren(QLabel)]
    texts += [button.text() for button in dialog.findChildren(QAbstractButton)]
    letters = [text[text.index("&") + 1].lower() for text in texts if "&" in text]
    duplicates = sorted({letter for letter in letters if letters.count(letter) > 1})
    assert duplicates == []


def test_tab_order_follows_the_form(dialog: SettingsDialog) -> None:
    order: list[QWidget] = []
    widget: QWidget = dialog.content_dir_edit
    for _ in range(200):
        if widget.focusPolicy() & Qt.FocusPolicy.TabFocus and widget.isVisibleTo(dialog):
            order.append(widget)
        following = widget.nextInFocusChain()
        if following is None or following is dialog.content_dir_edit:
            break
        widget = following
    expected = [
        dialog.content_dir_edit,
        dialog.content_browse_button,
        dialog.ingest_enabled_check,
        dialog.ingest_port_spin,
        dialog.origins_edit,
        dialog.jsonl_edit,
        dialog.llm_enabled_check,
        dialog.llm_endpoint_edit,
        dialog.api_key_edit,
        dialog.retention_spin,
        dialog.theme_combo,
        dialog.backend_combo,
    ]
    positions = [order.index(w) for w in expected]
    assert positions == sorted(positions)


def test_dialog_is_a_dialog(dialog: SettingsDialog) -> None:
    assert isinstance(dialog, QDialog)
    assert dialog.windowTitle() == "Co-pilot settings"
