"""The one module that knows where files live.

Data directory, in order: an explicit argument (``--data-dir``), ``$COPILOT_DATA_DIR``, then the
platform's user data directory (platformdirs). Content pack: ``--content``,
``$COPILOT_CONTENT_DIR``,
then the sample pack shipped beside the package.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "agent-copilot"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Return (and create) the directory holding all user data."""
    if override:
        path = Path(override)
    elif os.environ.get("COPILOT_DATA_DIR"):
        path = Path(os.environ["COPILOT_DATA_DIR"])
    else:
        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Return the content pack directory (articles, templates, intents, policies, demos)."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get("COPILOT_CONTENT_DIR"):
        return Path(os.environ["COPILOT_CONTENT_DIR"]).expanduser().resolve()
    return sample_content_dir()


def sample_content_dir() -> Path:
    """The sample pack for the fictional company Kestrel Connect."""
    return _PACKAGE_ROOT / "knowledge"


def articles_dir(content: Path) -> Path:
    return content / "articles"


def index_dir(data: Path) -> Path:
    return data / "index"


def models_dir(data: Path) -> Path:
    return data / "models"


def shared_eval_dir() -> Path:
    """Public evaluation data, when this checkout sits beside ``shared/`` (optional)."""
    return _PACKAGE_ROOT.parent / "shared" / "eval"
