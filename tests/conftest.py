"""Shared fixtures: no test touches the developer's real data, and Qt renders offscreen."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CONTENT = REPO_ROOT / "knowledge"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data directory through $COPILOT_DATA_DIR."""
    path = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("COPILOT_DATA_DIR", str(path))
    return path


@pytest.fixture
def data_dir(_isolated_data_dir: Path) -> Path:
    return _isolated_data_dir


@pytest.fixture
def sample_content() -> Path:
    """The bundled sample content pack (read-only: copy it before changing anything)."""
    return SAMPLE_CONTENT


@pytest.fixture
def fake_embedder():  # type: ignore[no-untyped-def]
    from copilot.services.embedders import HashingEmbedder

    return HashingEmbedder()


@pytest.fixture(scope="session")
def real_embedder() -> Iterator[object]:
    """The bundled MiniLM through the default backend, loaded once per test session."""
    from copilot.services.embedders import SentenceTransformerEmbedder

    yield SentenceTransformerEmbedder()
