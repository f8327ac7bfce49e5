"""The settings view-model: the saved settings, the secrets, and what changing them means now.

The settings dialog and the main window's menu display this object and call it; they never read
or write the settings file or the keyring themselves.

Saving happens on the GUI thread, on purpose: it is a rare, user-initiated write of a few hundred
bytes, and doing it synchronously lets the dialog show a failure inline before it closes and
keeps saves in order without a queue.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import QObject, Signal

from copilot.services import paths
from copilot.services.secrets import LLM_API_KEY, SecretStore
from copilot.services.settings import LoadedSettings, Settings, load_settings, save_settings

_log = logging.getLogger(__name__)

#: Dotted setting name -> what the user calls it (for validation messages).
FIELD_LABELS: dict[str, str] = {
    "content_dir": "Content pack location",
    "sources.ingest_api.enabled": "Ingest API",
    "sources.ingest_api.port": "Ingest API port",
    "sources.jsonl_tail_path": "JSONL file to follow",
    "llm.enabled": "Language model backend",
    "llm.endpoint": "LLM endpoint",
    "llm.model": "LLM model name",
    "llm.timeout_s": "LLM timeout",
    "retention_days": "Keep history for",
    "theme": "Theme",
    "always_on_top": "Always on top",
    "snap_edge": "Snap to screen edge",
    "agent_id": "Agent ID",
    "queue": "Queue",
    "show_per_agent_figures": "Show per-agent figures",
    "embedding_backend": "Embedding backend",
}


class SettingsViewModel(QObject):
    """Holds the saved `Settings` and applies changes: validate, save, announce.

    Signals:
        sig_settings_changed(object): the new `Settings`, after they were saved.
        sig_theme_changed(str): the theme to show now (a preview, a revert, or a saved change).
        sig_always_on_top_changed(bool): the saved always-on-top value changed.
        sig_snap_edge_changed(str): the saved snap edge changed (``none``, ``left``, ``right``).
    """

    sig_settings_changed = Signal(object)
    sig_theme_changed = Signal(str)
    sig_always_on_top_changed = Signal(bool)
    sig_snap_edge_changed = Signal(str)

    def __init__(
        self,
        data_dir: Path,
        secrets: SecretStore,
        *,
        loaded: LoadedSettings | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._data_dir = Path(data_dir)
        self._secrets = secrets
        loaded = loaded or load_settings(self._data_dir)
        self._settings = loaded.settings
        self._load_warnings = loaded.warnings
        self._previewing = False

    # --- reading ------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def load_warnings(self) -> tuple[str, ...]:
        """Messages from reading the settings file (damaged, upgraded, unknown options)."""
        return self._load_warnings

    @staticmethod
    def default_content_dir() -> Path:
        """The content pack used when none is set: the bundled sample pack."""
        return paths.sample_content_dir()

    # --- changing -----------------------------------------------------------------------------

    def save(self, changes: Mapping[str, Any]) -> list[str]:
        """Validate and save changes (a nested mapping, as in the TOML file).

        Args:
            changes: e.g. ``{"retention_days": 30, "llm": {"model": "llama3"}}``.

        Returns:
            Readable problems (nothing was saved), or an empty list when saved.
        """
        merged = _deep_merge(self._settings.model_dump(), changes)
        try:
            new = Settings.model_validate(merged)
        except ValidationError as exc:
            return describe_validation_error(exc)
        return self._store(new)

    def set_always_on_top(self, on: bool) -> list[str]:
        """Save the always-on-top choice made from the window menu."""
        return self.save({"always_on_top": bool(on)})

    def set_snap_edge(self, edge: str) -> list[str]:
        """Save the snap edge chosen from the window menu (``none``, ``left``, ``right``)."""
        return self.save({"snap_edge": edge})

    def preview_theme(self, theme: str) -> None:
        """Show a theme now without saving it (the dialog's theme box)."""
        self._previewing = theme != self._settings.theme
        self.sig_theme_changed.emit(theme)

    def revert_theme_preview(self) -> None:
        """Go back to the saved theme (the dialog was cancelled)."""
        if self._previewing:
            self._previewing = False
            self.sig_theme_changed.emit(self._settings.theme)

    def _store(self, new: Settings) -> list[str]:
        old = self._settings
        if new != old:
            try:
                save_settings(self._data_dir, new)
            except OSError as exc:
                _log.warning("settings could not be saved: %s", exc)
                return [f"The settings could not be saved: {exc}"]
            self._settings = new
        if new.theme != old.theme or self._previewing:
            self._previewing = False
            self.sig_theme_changed.emit(new.theme)
        if new.always_on_top != old.always_on_top:
            self.sig_always_on_top_changed.emit(new.always_on_top)
        if new.snap_edge != old.snap_edge:
            self.sig_snap_edge_changed.emit(new.snap_edge)
        if new != old:
            self.sig_settings_changed.emit(new)
        return []

    # --- the LLM API key (keyring only) -------------------------------------------------------

    def keyring_status(self) -> tuple[bool, str]:
        """Whether keys can be saved, and the sentence to show beside the key field."""
        return self._secrets.available()

    def has_api_key(self) -> bool:
        """Whether an LLM API key is set (in the keyring, or for this session)."""
        return bool(self._secrets.get(LLM_API_KEY))

    def set_api_key(self, value: str) -> tuple[bool, str]:
        """Store the LLM API key in the keyring (an empty value removes it).

        Returns:
            (saved, message): saved is False when the key is kept for this session only, and the
            message then says why.
        """
        saved = self._secrets.set(LLM_API_KEY, value)
        _, message = self._secrets.available()
        return saved, message

    def delete_api_key(self) -> None:
        """Remove the LLM API key from the keyring and from memory."""
        self._secrets.delete(LLM_API_KEY)


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One readable line per problem, naming the setting as the dialog does."""
    out = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        label = FIELD_LABELS.get(name, name or "Settings")
        message = str(error["msg"]).removeprefix("Value error, ")
        out.append(f"{label}: {message}")
    return out


def _deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = _deep_merge(current, value)
        else:
            out[key] = value
    return out
