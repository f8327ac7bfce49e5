"""User settings: one TOML file in the data directory, typed, versioned, never holding a secret.

The file is ``<data dir>/settings.toml``. Its ``schema_version`` says which shape it has; older
files are brought up to date by the registered upgrade steps (version N -> N+1, applied in order),
and the previous file is kept beside it. A file that cannot be read or validated is never thrown
away: it is copied to ``settings.toml.broken-<timestamp>``, defaults are used, and the caller gets a
warning to show the user.

Secrets (the LLM API key, the ingestion token) live in the system keyring
(`copilot.services.secrets`), never here. The data directory is not stored either: it is chosen by
``--data-dir`` / ``$COPILOT_DATA_DIR`` (`copilot.services.paths`), since it holds this file.
"""

from __future__ import annotations

import logging
import os
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.toml"
SCHEMA_VERSION = 2

Theme = Literal["system", "light", "dark"]
SnapEdge = Literal["none", "left", "right"]
EmbeddingBackend = Literal["onnx", "torch"]

THEMES: tuple[Theme, ...] = ("system", "light", "dark")
SNAP_EDGES: tuple[SnapEdge, ...] = ("none", "left", "right")
EMBEDDING_BACKENDS: tuple[EmbeddingBackend, ...] = ("onnx", "torch")


class _Section(BaseModel):
    # Frozen: settings are values passed between threads; a change makes a new object.
    # Unknown keys are ignored (and reported by `load_settings`) rather than rejected, so one typo
    # in a hand-edited file does not reset everything else.
    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=True)


class IngestApiSettings(_Section):
    """The local HTTP/WebSocket endpoint other tools push turns to."""

    enabled: bool = True
    port: int = Field(default=8765, ge=1024, le=65535)
    # Exact browser origins (a web helpdesk running the userscript, a browser extension) allowed
    # to call the API; requests without an Origin header (other programs) are always allowed.
    allowed_origins: tuple[str, ...] = ()

    @field_validator("allowed_origins")
    @classmethod
    def _exact_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for raw in value:
            origin = raw.strip()
            scheme, sep, rest = origin.partition("://")
            if not sep or not scheme or not rest or "/" in rest or origin == "null":
                raise ValueError(
                    f"{raw!r} is not an origin: write scheme://host[:port], e.g. "
                    "https://helpdesk.example.com (no path, no trailing slash)"
                )
            out.append(origin)
        return tuple(dict.fromkeys(out))


class SourcesSettings(_Section):
    """Where turns come from."""

    ingest_api: IngestApiSettings = IngestApiSettings()
    jsonl_tail_path: Path | None = None


class LlmSettings(_Section):
    """The optional OpenAI-compatible generative backend (its API key is in the keyring)."""

    enabled: bool = False
    endpoint: str = "http://localhost:11434/v1"
    model: str = ""
    timeout_s: float = Field(default=20.0, gt=0, le=600)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("the endpoint must be an http:// or https:// URL")
        return value


class Settings(_Section):
    """Everything the user can set. Build changed copies with ``model_copy(update=...)``."""

    schema_version: int = SCHEMA_VERSION
    content_dir: Path | None = None
    sources: SourcesSettings = SourcesSettings()
    llm: LlmSettings = LlmSettings()
    retention_days: int = Field(default=90, ge=1, le=3650)
    theme: Theme = "system"
    always_on_top: bool = True
    snap_edge: SnapEdge = "none"
    agent_id: str = ""
    queue: str = ""  # the agent's queue ("billing", "retention"), recorded with their feedback
    show_per_agent_figures: bool = False
    embedding_backend: EmbeddingBackend = "onnx"


@dataclass(frozen=True)
class LoadedSettings:
    """What `load_settings` found.

    Attributes:
        settings: the settings to use (defaults when the file was missing or damaged).
        path: the settings file.
        warnings: readable messages for the user (damaged file, unknown options, upgrade).
        upgraded_from: the schema version the file had when it was upgraded, else None.
        backup: the copy kept of a damaged or upgraded file, else None.
    """

    settings: Settings
    path: Path
    warnings: tuple[str, ...] = ()
    upgraded_from: int | None = None
    backup: Path | None = None


# --- upgrades -----------------------------------------------------------------------------------

UpgradeStep = Callable[[dict[str, Any]], dict[str, Any]]

#: version N -> the function turning a version-N document into a version N+1 document.
UPGRADES: dict[int, UpgradeStep] = {}


def upgrade_step(from_version: int) -> Callable[[UpgradeStep], UpgradeStep]:
    """Register a function upgrading a settings document from ``from_version`` to the next."""

    def register(fn: UpgradeStep) -> UpgradeStep:
        if from_version in UPGRADES:
            raise ValueError(f"an upgrade from version {from_version} is already registered")
        UPGRADES[from_version] = fn
        return fn

    return register


@upgrade_step(1)
def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 was flat; version 2 groups sources and the LLM, and names the theme.

    v1 keys: ``ingest_enabled``, ``ingest_port``, ``jsonl_path``, ``llm_enabled``,
    ``llm_endpoint``, ``llm_model``, ``llm_timeout``, ``dark_mode`` (bool), plus keys unchanged.
    """
    out = dict(doc)
    ingest = {
        new: out.pop(old)
        for old, new in (("ingest_enabled", "enabled"), ("ingest_port", "port"))
        if old in out
    }
    sources: dict[str, Any] = dict(out.pop("sources", {}) or {})
    if ingest:
        sources["ingest_api"] = {**sources.get("ingest_api", {}), **ingest}
    if "jsonl_path" in out:
        sources["jsonl_tail_path"] = out.pop("jsonl_path")
    if sources:
        out["sources"] = sources
    llm = {
        new: out.pop(old)
        for old, new in (
            ("llm_enabled", "enabled"),
            ("llm_endpoint", "endpoint"),
            ("llm_model", "model"),
            ("llm_timeout", "timeout_s"),
        )
        if old in out
    }
    if llm:
        out["llm"] = {**(out.get("llm") or {}), **llm}
    if "dark_mode" in out:
        out["theme"] = "dark" if out.pop("dark_mode") else "light"
    out["schema_version"] = 2
    return out


def upgrade(doc: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Apply the registered steps until ``doc`` has `SCHEMA_VERSION`.

    A document without ``schema_version`` is version 1 (the first release wrote none).

    Returns:
        The upgraded document and the version it started at.

    Raises:
        ValueError: for a version that is not an integer, below 1, or with no upgrade path.
    """
    out = dict(doc)
    version = out.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"schema_version must be a positive integer, not {version!r}")
    start = version
    while version < SCHEMA_VERSION:
        step = UPGRADES.get(version)
        if step is None:
            raise ValueError(f"no upgrade from settings version {version}")
        out = step(out)
        version = out["schema_version"] = version + 1
    return out, start


# --- reading and writing -----------------------------------------------------------------------


def settings_path(data_dir: Path) -> Path:
    """The settings file inside a data directory."""
    return Path(data_dir) / SETTINGS_FILE


def load_settings(data_dir: Path) -> LoadedSettings:
    """Read the settings of a data directory; never raises for a bad file.

    Missing file: defaults, no warning (it is written on the first save). Damaged file (not TOML,
    wrong types, unknown version): the file is copied to ``settings.toml.broken-<timestamp>`` and
    defaults are returned with a warning naming the copy. Older version: upgraded, the original
    kept as ``settings.toml.v<N>-backup``, the upgraded file written back.

    Args:
        data_dir: the user data directory.
    """
    path = settings_path(data_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return LoadedSettings(Settings(), path)
    except OSError as exc:
        return LoadedSettings(
            Settings(),
            path,
            (f"The settings file {path} could not be read ({exc}); defaults are used.",),
        )
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
        version = doc.get("schema_version", 1)
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise ValueError(
                f"it was written by a newer version of Agent Co-pilot (schema {version}, "
                f"this one understands up to {SCHEMA_VERSION})"
            )
        upgraded, started_at = upgrade(doc)
        settings = Settings.model_validate(upgraded)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError, ValidationError) as exc:
        backup = _keep_copy(path, raw, f"broken-{_timestamp()}")
        reason = _explain(exc)
        _log.warning("damaged settings file %s (%s); kept as %s", path, reason, backup)
        return LoadedSettings(
            Settings(),
            path,
            (
                f"The settings file could not be used ({reason}). Defaults are in effect; "
                f"your file was kept as {backup}.",
            ),
            backup=backup,
        )
    warnings = [
        f"Unknown option {key!r} in {path.name} was ignored." for key in unknown_keys(upgraded)
    ]
    if started_at == SCHEMA_VERSION:
        return LoadedSettings(settings, path, tuple(warnings))
    backup = _keep_copy(path, raw, f"v{started_at}-backup")
    try:
        save_settings(data_dir, settings)
    except OSError as exc:
        warnings.append(f"The upgraded settings could not be saved ({exc}).")
    _log.info("settings upgraded from version %d to %d", started_at, SCHEMA_VERSION)
    return LoadedSettings(settings, path, tuple(warnings), upgraded_from=started_at, backup=backup)


def save_settings(data_dir: Path, settings: Settings) -> Path:
    """Write the settings atomically: a temporary file, fsync, then one rename.

    A crash leaves either the old file or the new one, never half of one.

    Returns:
        The settings file.
    """
    path = settings_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(settings)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def dumps(settings: Settings) -> str:
    """The TOML text of some settings (``None`` values are left out: TOML has no null)."""
    doc = settings.model_dump(mode="json", exclude_none=True)
    doc["schema_version"] = SCHEMA_VERSION
    header = (
        "# Agent Co-pilot settings. Secrets (API keys, tokens) are kept in the system keyring,\n"
        "# never in this file.\n"
    )
    return header + tomli_w.dumps(doc)


def unknown_keys(doc: Mapping[str, Any], model: type[BaseModel] = Settings) -> list[str]:
    """Dotted names of the keys in ``doc`` that ``model`` does not define."""
    out: list[str] = []
    for key, value in doc.items():
        field = model.model_fields.get(key)
        if field is None:
            out.append(key)
            continue
        annotation = field.annotation
        if (
            isinstance(value, Mapping)
            and isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
        ):
            out.extend(f"{key}.{inner}" for inner in unknown_keys(value, annotation))
    return out


def _keep_copy(path: Path, raw: bytes, suffix: str) -> Path:
    target = path.with_name(f"{path.name}.{suffix}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.{suffix}-{counter}")
    target.write_bytes(raw)
    return target


def _timestamp() -> str:
    return datetime.now().strftime("%Y%m%dT%H%M%S")


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'file'}: {error['msg']}"
            for error in exc.errors()
        ]
        return "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if isinstance(exc, tomllib.TOMLDecodeError):
        return f"it is not valid TOML: {exc}"
    return str(exc)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
