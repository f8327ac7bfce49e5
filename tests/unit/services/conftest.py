"""Fixtures for service tests: one real ONNX export per test session (it takes ~15 s)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def onnx_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding a fresh export of both ONNX variants. Do not modify it."""
    from copilot.services.embedders import ONNX_VARIANTS, export_onnx

    data = tmp_path_factory.mktemp("onnx-data")
    export_onnx(data, variants=ONNX_VARIANTS)
    return data


@pytest.fixture(scope="session")
def torch_embedder() -> object:
    """The reference backend (sentence-transformers on torch), loaded once per test session."""
    from copilot.services.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()
