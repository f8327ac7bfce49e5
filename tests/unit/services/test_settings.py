"""Settings: TOML round trip, damaged files kept and reported, upgrades from version 1."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from copilot.services import settings as settings_module
from copilot.services.settings import (
    SCHEMA_VERSION,
    LlmSettings,
    Settings,
    load_settings,
    save_settings,
    settings_path,
    upgrade,
)


def test_missing_file_gives_defaults_without_warning(data_dir: Path) -> None:
    loaded = load_settings(data_dir)
    assert loaded.settings == Settings()
    assert loaded.warnings == ()
    assert not settings_path(data_dir).exists()  # written on the first save, not on read
    defaults = loaded.settings
    assert defaults.retention_days == 90
    assert defaults.always_on_top is True
    assert defaults.theme == "system"
    assert defaults.sources.ingest_api.port == 8765
    assert defaults.embedding_backend == "onnx"


def test_round_trip_keeps_every_value(data_dir: Path, tmp_path: Path) -> None:
    original = Settings.model_validate(
        {
            "content_dir": str(tmp_path / "pack"),
            "sources": {
                "ingest_api": {
                    "enabled": False,
                    "port": 9001,
                    "allowed_origins": ["https://helpdesk.example.com"],
                },
                "jsonl_tail_path": str(tmp_path / "calls.jsonl"),
            },
            "llm": {
                "enabled": True,
                "endpoint": "https://llm.example.test/v1",
                "model": "llama3.1",
                "timeout_s": 12.5,
            },
            "retention_days": 30,
            "theme": "dark",
            "always_on_top": False,
            "snap_edge": "right",
            "agent_id": "agent-7",
            "show_per_agent_figures": True,
            "embedding_backend": "torch",
        }
    )
    path = save_settings(data_dir, original)
    assert path == data_dir / "settings.toml"
    loaded = load_settings(data_dir)
    assert loaded.settings == original
    assert loaded.warnings == ()
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["llm"]["model"] == "llama3.1"
    assert "data_dir" not in doc  # it is chosen by --data-dir, never stored in itself


@pytest.mark.parametrize(
    "origin", ["helpdesk.example.com", "https://helpdesk.example.com/", "null", "https://"]
)
def test_an_allowed_origin_must_be_exact(origin: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        Settings.model_validate({"sources": {"ingest_api": {"allowed_origins": [origin]}}})


def test_no_secret_fields_exist() -> None:
    names = set(Settings.model_fields) | set(LlmSettings.model_fields)
    assert not {name for name in names if "key" in name or "token" in name or "secret" in name}


def test_save_is_atomic_and_leaves_no_temporary_files(data_dir: Path) -> None:
    save_settings(data_dir, Settings(retention_days=10))
    save_settings(data_dir, Settings(retention_days=20))
    assert sorted(p.name for p in data_dir.iterdir()) == ["settings.toml"]
    assert load_settings(data_dir).settings.retention_days == 20


def test_failed_write_keeps_the_previous_file(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_settings(data_dir, Settings(retention_days=10))

    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(settings_module.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_settings(data_dir, Settings(retention_days=20))
    assert load_settings(data_dir).settings.retention_days == 10
    assert sorted(p.name for p in data_dir.iterdir()) == ["settings.toml"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"retention_days = [unclosed\n", "not valid TOML"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b'schema_version = 2\nretention_days = "forever"\n', "retention_days"),
        (b"schema_version = 2\ntheme = 'purple'\n", "theme"),
        (b"schema_version = 99\n", "newer version"),
    ],
)
def test_damaged_file_is_kept_and_defaults_used(
    data_dir: Path, content: bytes, reason: str
) -> None:
    path = settings_path(data_dir)
    path.write_bytes(content)
    loaded = load_settings(data_dir)
    assert loaded.settings == Settings()
    assert len(loaded.warnings) == 1
    assert reason in loaded.warnings[0]
    assert loaded.backup is not None
    assert loaded.backup.name.startswith("settings.toml.broken-")
    assert loaded.backup.read_bytes() == content  # lose nothing
    assert str(loaded.backup) in loaded.warnings[0]


def test_two_damaged_loads_keep_two_copies(data_dir: Path) -> None:
    path = settings_path(data_dir)
    path.write_text("first = [", encoding="utf-8")
    first = load_settings(data_dir).backup
    path.write_text("second = [", encoding="utf-8")
    second = load_settings(data_dir).backup
    assert first is not None and second is not None and first != second
    assert first.read_text(encoding="utf-8") == "first = ["
    assert second.read_text(encoding="utf-8") == "second = ["


def test_unknown_options_are_reported_not_fatal(data_dir: Path) -> None:
    settings_path(data_dir).write_text(
        "schema_version = 2\nretention_days = 14\nretension = 3\n[llm]\nmodle = 'x'\n",
        encoding="utf-8",
    )
    loaded = load_settings(data_dir)
    assert loaded.settings.retention_days == 14
    assert loaded.warnings == (
        "Unknown option 'retension' in settings.toml was ignored.",
        "Unknown option 'llm.modle' in settings.toml was ignored.",
    )


V1_FILE = """\
# written by Agent Co-pilot 0.0.x: flat keys, no schema_version
ingest_enabled = false
ingest_port = 9100
jsonl_path = "/var/log/calls.jsonl"
llm_enabled = true
llm_endpoint = "http://localhost:8000/v1"
llm_model = "mistral"
llm_timeout = 30
dark_mode = true
retention_days = 45
always_on_top = false
"""


def test_upgrade_from_v1(data_dir: Path) -> None:
    path = settings_path(data_dir)
    path.write_text(V1_FILE, encoding="utf-8")
    loaded = load_settings(data_dir)
    s = loaded.settings
    assert loaded.upgraded_from == 1
    assert loaded.warnings == ()
    assert s.sources.ingest_api.enabled is False
    assert s.sources.ingest_api.port == 9100
    assert s.sources.jsonl_tail_path == Path("/var/log/calls.jsonl")
    assert (s.llm.enabled, s.llm.endpoint, s.llm.model, s.llm.timeout_s) == (
        True,
        "http://localhost:8000/v1",
        "mistral",
        30.0,
    )
    assert s.theme == "dark"
    assert (s.retention_days, s.always_on_top) == (45, False)
    # The original is kept; the file on disk is now version 2 and loads without upgrading.
    assert loaded.backup is not None and loaded.backup.read_text(encoding="utf-8") == V1_FILE
    assert tomllib.loads(path.read_text(encoding="utf-8"))["schema_version"] == SCHEMA_VERSION
    again = load_settings(data_dir)
    assert again.settings == s and again.upgraded_from is None


def test_upgrade_steps_run_in_order() -> None:
    doc, start = upgrade({"schema_version": 1, "dark_mode": False})
    assert start == 1
    assert doc == {"schema_version": 2, "theme": "light"}
    with pytest.raises(ValueError, match="positive integer"):
        upgrade({"schema_version": "two"})


def test_every_version_below_current_has_an_upgrade_step() -> None:
    assert sorted(settings_module.UPGRADES) == list(range(1, SCHEMA_VERSION))


def test_invalid_values_are_rejected_by_the_model() -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({"llm": {"endpoint": "ftp://nope"}})
    with pytest.raises(ValidationError):
        Settings.model_validate({"sources": {"ingest_api": {"port": 80}}})
    with pytest.raises(ValidationError):
        Settings.model_validate({"snap_edge": "top"})
