"""The one module that knows where files live.

Data directory, in order: an explicit argument (``--data-dir``), ``$COPILOT_DATA_DIR``, then the
platform's user data directory (platformdirs). Content pack: ``--content``,
``$COPILOT_CONTENT_DIR``,
then the sample pack shipped beside the package.

A frozen build (PyInstaller, ``packaging/copilot.spec``) ships the sample pack and a pre-exported
ONNX model inside its bundle folder (`bundle_dir`); the same functions find them there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "agent-copilot"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def bundle_dir() -> Path | None:
    """The data folder of a frozen (PyInstaller) build, or None when running from source.

    PyInstaller sets ``sys.frozen`` and puts the bundled data files in ``sys._MEIPASS`` (the
    ``_internal`` folder beside the executable of a one-folder build).
    """
    if not getattr(sys, "frozen", False):
        return None
    return Path(getattr(sys, "_MEIPASS", Path(sys.executable).resolve().parent)).resolve()


def bundled_models_dir() -> Path | None:
    """Models shipped read-only inside a frozen build (``<bundle>/models``), or None."""
    root = bundle_dir()
    return root / "models" if root is not None else None


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
    root = bundle_dir()
    return (root if root is not None else _PACKAGE_ROOT) / "knowledge"


def articles_dir(content: Path) -> Path:
    return content / "articles"


def index_dir(data: Path) -> Path:
    return data / "index"


def models_dir(data: Path) -> Path:
    return data / "models"


def shared_eval_dir() -> Path:
    """Public evaluation data, when this checkout sits beside ``shared/`` (optional)."""
    return _PACKAGE_ROOT.parent / "shared" / "eval"
