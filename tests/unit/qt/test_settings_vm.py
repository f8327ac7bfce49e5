"""The settings view-model: validated saves, announcements, theme preview, keys in the keyring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from copilot.qt.settings_vm import SettingsViewModel
from copilot.services.secrets import LLM_API_KEY, SERVICE, SecretStore
from copilot.services.settings import load_settings, settings_path

pytestmark = pytest.mark.gui


@pytest.fixture
def vm(qapp: Any, data_dir: Path) -> SettingsViewModel:
    return SettingsViewModel(data_dir, SecretStore())


def test_save_writes_the_file_and_announces(
    qtbot: QtBot, vm: SettingsViewModel, data_dir: Path
) -> None:
    with qtbot.waitSignal(vm.sig_settings_changed, timeout=1000) as blocker:
        errors = vm.save({"retention_days": 30, "llm": {"model": "llama3.1"}})
    assert errors == []
    assert blocker.args[0].retention_days == 30
    saved = load_settings(data_dir).settings
    assert (saved.retention_days, saved.llm.model) == (30, "llama3.1")
    assert saved.llm.endpoint == "http://localhost:11434/v1"  # untouched values stay


def test_invalid_values_are_explained_and_not_saved(
    qtbot: QtBot, vm: SettingsViewModel, data_dir: Path
) -> None:
    with qtbot.assertNotEmitted(vm.sig_settings_changed):
        errors = vm.save({"llm": {"endpoint": "localhost:11434"}, "retention_days": 0})
    assert errors == [
        "LLM endpoint: the endpoint must be an http:// or https:// URL",
        "Keep history for: Input should be greater than or equal to 1",
    ]
    assert not settings_path(data_dir).exists()


def test_window_choices_are_saved_and_announced(qtbot: QtBot, vm: SettingsViewModel) -> None:
    with qtbot.waitSignal(vm.sig_always_on_top_changed, timeout=1000) as on_top:
        assert vm.set_always_on_top(False) == []
    assert on_top.args == [False]
    with qtbot.waitSignal(vm.sig_snap_edge_changed, timeout=1000) as edge:
        assert vm.set_snap_edge("right") == []
    assert edge.args == ["right"]
    assert (vm.settings.always_on_top, vm.settings.snap_edge) == (False, "right")
    assert vm.set_snap_edge("top") == [
        "Snap to screen edge: Input should be 'none', 'left' or 'right'"
    ]


def test_unchanged_save_writes_nothing(vm: SettingsViewModel, data_dir: Path) -> None:
    assert vm.save({"retention_days": 90}) == []
    assert not settings_path(data_dir).exists()


def test_theme_preview_and_revert(qtbot: QtBot, vm: SettingsViewModel) -> None:
    themes: list[str] = []
    vm.sig_theme_changed.connect(themes.append)
    vm.preview_theme("dark")
    vm.revert_theme_preview()
    assert themes == ["dark", "system"]
    vm.preview_theme("dark")
    vm.save({"theme": "dark"})
    vm.revert_theme_preview()  # nothing to revert once saved
    assert themes == ["dark", "system", "dark", "dark"]


def test_api_key_goes_to_the_keyring_only(
    memory_keyring: Any, vm: SettingsViewModel, data_dir: Path
) -> None:
    saved, message = vm.set_api_key("sk-live-abc")
    assert saved is True and message.startswith("Saved in the system keyring")
    assert memory_keyring.passwords[(SERVICE, LLM_API_KEY)] == "sk-live-abc"
    assert vm.has_api_key()
    vm.save({"llm": {"enabled": True}})
    assert "sk-live-abc" not in settings_path(data_dir).read_text(encoding="utf-8")
    vm.delete_api_key()
    assert not vm.has_api_key() and memory_keyring.passwords == {}


def test_without_keyring_the_key_lasts_for_the_session(vm: SettingsViewModel) -> None:
    available, message = vm.keyring_status()
    assert available is False and "No system keyring is available" in message
    saved, message = vm.set_api_key("sk-session")
    assert saved is False and "this session only" in message
    assert vm.has_api_key()


def test_load_warnings_are_kept_for_the_window(qapp: Any, data_dir: Path) -> None:
    settings_path(data_dir).write_text("not = [toml", encoding="utf-8")
    vm = SettingsViewModel(data_dir, SecretStore())
    assert len(vm.load_warnings) == 1 and "could not be used" in vm.load_warnings[0]
