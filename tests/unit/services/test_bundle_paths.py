"""A frozen build (PyInstaller) finds its sample pack and pre-exported model inside its bundle."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from copilot.services import embedders, paths

REPO_ROOT = Path(__file__).resolve().parents[3]


def _freeze(monkeypatch: pytest.MonkeyPatch, bundle: Path) -> None:
    """Make this process look like a PyInstaller build whose data folder is ``bundle``."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)


def _ship_fake_model(bundle: Path, *, model_bytes: bytes = b"onnx" * 100) -> Path:
    """A bundled export whose manifest matches its files (the contents are not a real model)."""
    model_dir = bundle / "models" / embedders.ONNX_DIRNAME
    model_dir.mkdir(parents=True)
    model = model_dir / embedders.onnx_model_file("int8")
    model.write_bytes(model_bytes)
    tokenizer = model_dir / embedders.TOKENIZER_FILE
    tokenizer.write_text("{}", encoding="utf-8")
    manifest = {
        "manifest_version": embedders.MANIFEST_VERSION,
        "model": embedders.MODEL_NAME,
        "opset": embedders.ONNX_OPSET,
        "max_seq_length": embedders.MAX_SEQ_LENGTH,
        # The size written at export time: a truncated copy no longer matches it.
        "variants": {"int8": {"file": model.name, "size": 400}},
        "files": {tokenizer.name: {"size": tokenizer.stat().st_size}},
    }
    (model_dir / embedders.MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    return model_dir


class _RecordingEmbedder:
    def __init__(self, model_dir: Path, variant: str = "int8", *, batch_threads: int = 1) -> None:
        self.model_dir = Path(model_dir)
        self.variant = variant


@pytest.fixture
def no_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to export (a frozen build has no torch to do it)."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a frozen build must not export the model")

    monkeypatch.setattr(embedders, "export_onnx", refuse)
    monkeypatch.setattr(embedders, "bundled_model_dir", refuse)


def test_from_source_there_is_no_bundle_and_the_pack_sits_beside_the_package() -> None:
    assert paths.bundle_dir() is None
    assert paths.bundled_models_dir() is None
    assert embedders.bundled_onnx_dir() is None
    assert paths.sample_content_dir() == REPO_ROOT / "knowledge"


def test_frozen_build_finds_the_sample_pack_and_models_in_its_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _freeze(monkeypatch, tmp_path)
    assert paths.bundle_dir() == tmp_path.resolve()
    assert paths.sample_content_dir() == tmp_path.resolve() / "knowledge"
    assert paths.bundled_models_dir() == tmp_path.resolve() / "models"
    # An explicit content pack still wins over the bundled one.
    assert paths.content_dir(tmp_path / "pack") == (tmp_path / "pack").resolve()


def test_frozen_build_loads_its_shipped_model_without_exporting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path, no_export: None
) -> None:
    bundle = tmp_path / "bundle"
    shipped = _ship_fake_model(bundle)
    _freeze(monkeypatch, bundle)
    monkeypatch.setattr(embedders, "OnnxEmbedder", _RecordingEmbedder)

    loaded: Any = embedders.load_embedder("onnx", data_dir)

    assert loaded.model_dir == shipped.resolve()
    assert loaded.variant == "int8"


def test_frozen_build_without_its_model_asks_for_a_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path, no_export: None
) -> None:
    _freeze(monkeypatch, tmp_path / "empty-bundle")
    with pytest.raises(FileNotFoundError, match="reinstall"):
        embedders.load_embedder("onnx", data_dir)


def test_a_damaged_shipped_model_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path, no_export: None
) -> None:
    bundle = tmp_path / "bundle"
    _ship_fake_model(bundle, model_bytes=b"truncated")
    _freeze(monkeypatch, bundle)

    assert embedders.bundled_onnx_dir("int8") is None
    assert embedders.bundled_onnx_dir("fp32") is None  # not shipped at all
    with pytest.raises(FileNotFoundError, match="reinstall"):
        embedders.load_embedder("onnx", data_dir)


@pytest.mark.slow
def test_a_shipped_copy_of_the_export_embeds_like_the_original(
    onnx_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_export: None
) -> None:
    # What `make package` ships: the int8 model, the tokenizer and the manifest, no source model.
    source = embedders.onnx_model_dir(onnx_data_dir)
    shipped = tmp_path / "bundle" / "models" / embedders.ONNX_DIRNAME
    shipped.mkdir(parents=True)
    for name in ("model-int8.onnx", embedders.TOKENIZER_FILE, embedders.MANIFEST_NAME):
        shutil.copyfile(source / name, shipped / name)
    texts = ["I was charged twice this month", "my parcel never arrived"]
    expected = embedders.OnnxEmbedder(source, "int8").embed(texts)
    _freeze(monkeypatch, tmp_path / "bundle")

    loaded = embedders.load_embedder("onnx", tmp_path / "data")

    assert loaded.name == "all-MiniLM-L6-v2:onnx-int8"
    np.testing.assert_allclose(loaded.embed(texts), expected, atol=1e-6)
