from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from copilot.services import embedders
from copilot.services.embedders import (
    DEFAULT_ONNX_VARIANT,
    DIMENSION,
    HashingEmbedder,
    OnnxEmbedder,
    check_onnx_cache,
    embedder_name,
    export_onnx,
    load_embedder,
    onnx_model_dir,
    onnx_model_file,
    read_onnx_manifest,
)

SENTENCES = [
    "My broadband keeps dropping every evening",
    "I was charged twice for my mobile plan this month",
    "Where is my parcel? It should have arrived yesterday",
    "hi",
    "I want to cancel my contract and speak to a manager right now, this is ridiculous",
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


# --- HashingEmbedder -------------------------------------------------------------------------


def test_hashing_rows_are_unit_length_float32() -> None:
    vectors = HashingEmbedder().embed([*SENTENCES, ""])
    assert vectors.shape == (len(SENTENCES) + 1, 64)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_hashing_is_deterministic_across_instances() -> None:
    np.testing.assert_array_equal(
        HashingEmbedder().embed(SENTENCES), HashingEmbedder().embed(SENTENCES)
    )


def test_hashing_puts_texts_sharing_words_closer() -> None:
    query, near, far = HashingEmbedder().embed(
        [
            "refund my double charge",
            "how to get a refund for a double charge",
            "router lights blinking",
        ]
    )
    assert float(query @ near) > float(query @ far)


def test_hashing_empty_input_gives_empty_matrix() -> None:
    assert HashingEmbedder(dimension=32).embed([]).shape == (0, 32)


# --- names, choices and a cache that is not there ----------------------------------------------


def test_embedder_names_identify_backend_and_variant() -> None:
    assert embedder_name("onnx", "int8") == "all-MiniLM-L6-v2:onnx-int8"
    assert embedder_name("onnx", "fp32") == "all-MiniLM-L6-v2:onnx-fp32"
    assert embedder_name("onnx") == f"all-MiniLM-L6-v2:onnx-{DEFAULT_ONNX_VARIANT}"
    assert embedder_name("torch") == "all-MiniLM-L6-v2:torch"


def test_unknown_backend_or_variant_is_refused(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="backend"):
        load_embedder("tensorflow", data_dir)
    with pytest.raises(ValueError, match="variant"):
        load_embedder("onnx", data_dir, variant="int4")
    with pytest.raises(ValueError, match="variant"):
        export_onnx(data_dir, variants=["fp16"])


def test_hashing_backend_is_available_by_name(data_dir: Path) -> None:
    assert load_embedder("hashing", data_dir).name == HashingEmbedder().name


def test_missing_cache_is_reported(data_dir: Path) -> None:
    assert check_onnx_cache(onnx_model_dir(data_dir), ["int8"]) == "no manifest"
    with pytest.raises(FileNotFoundError):
        OnnxEmbedder(onnx_model_dir(data_dir), "int8")


def test_failed_export_leaves_no_half_cache(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(source_dir: Path, target: Path) -> str:
        target.write_bytes(b"half an onnx file")
        raise KeyboardInterrupt

    monkeypatch.setattr(embedders, "_export_fp32", killed)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(data_dir, variants=["int8"])
    models = onnx_model_dir(data_dir).parent
    assert not onnx_model_dir(data_dir).exists()
    assert list(models.iterdir()) == []


# --- the real export (slow) --------------------------------------------------------------------


@pytest.fixture
def onnx_copy(onnx_data_dir: Path, data_dir: Path) -> Path:
    """A private copy of the session's export, for tests that damage it."""
    shutil.copytree(onnx_model_dir(onnx_data_dir), onnx_model_dir(data_dir))
    return data_dir


@pytest.mark.slow
def test_export_writes_a_manifest_matching_its_files(onnx_data_dir: Path) -> None:
    model_dir = onnx_model_dir(onnx_data_dir)
    manifest = read_onnx_manifest(model_dir)
    assert manifest is not None
    assert manifest["model"] == "all-MiniLM-L6-v2"
    assert manifest["opset"] == embedders.ONNX_OPSET
    assert len(manifest["source"]["sha256"]) == 64
    assert manifest["torch_version"] and manifest["onnxruntime_version"] and manifest["created"]
    assert set(manifest["variants"]) == {"int8", "fp32"}
    for variant, entry in manifest["variants"].items():
        assert entry["file"] == onnx_model_file(variant)
        assert entry["size"] == (model_dir / entry["file"]).stat().st_size
    # int8 is the point of quantising: a much smaller file to load.
    assert manifest["variants"]["int8"]["size"] < manifest["variants"]["fp32"]["size"] / 3
    assert check_onnx_cache(model_dir, ["int8", "fp32"]) is None
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_second_export_does_nothing(onnx_data_dir: Path) -> None:
    model_file = onnx_model_dir(onnx_data_dir) / onnx_model_file("int8")
    before = model_file.stat().st_mtime_ns
    started = time.perf_counter()
    result = export_onnx(onnx_data_dir, variants=["int8", "fp32"])
    assert not result.built
    assert result.reason == "cache is valid"
    assert time.perf_counter() - started < 3
    assert model_file.stat().st_mtime_ns == before


@pytest.mark.slow
def test_damaged_files_and_manifests_are_detected(onnx_copy: Path) -> None:
    model_dir = onnx_model_dir(onnx_copy)
    model_file = model_dir / onnx_model_file("fp32")
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # same size, different weights
    model_file.write_bytes(bytes(data))
    assert "hash" in (check_onnx_cache(model_dir, ["fp32"]) or "")
    assert check_onnx_cache(model_dir, ["int8"]) is None  # the other variant is still fine

    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["opset"] = 11
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    assert check_onnx_cache(model_dir, ["int8"]) is not None

    manifest["opset"] = embedders.ONNX_OPSET
    manifest["variants"]["int8"] = "model-int8.onnx"  # a hand edit of the wrong shape
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    assert check_onnx_cache(model_dir, ["int8"]) == "manifest is malformed"

    (model_dir / "manifest.json").write_text("{not json")
    assert check_onnx_cache(model_dir, ["int8"]) == "no manifest"


@pytest.mark.slow
def test_failed_rebuild_keeps_the_old_cache(
    onnx_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(source_dir: Path, target: Path) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(embedders, "_export_fp32", killed)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(onnx_copy, variants=["int8"], force=True)
    model_dir = onnx_model_dir(onnx_copy)
    assert check_onnx_cache(model_dir, ["int8", "fp32"]) is None
    assert [p.name for p in model_dir.parent.iterdir()] == [model_dir.name]


@pytest.mark.slow
def test_truncated_model_is_rebuilt_on_load(onnx_copy: Path) -> None:
    model_dir = onnx_model_dir(onnx_copy)
    model_file = model_dir / onnx_model_file("int8")
    with model_file.open("r+b") as handle:
        handle.truncate(model_file.stat().st_size // 2)
    assert "size" in (check_onnx_cache(model_dir, ["int8"], verify_hashes=False) or "")

    embedder = load_embedder("onnx", onnx_copy, variant="int8")

    assert check_onnx_cache(model_dir, ["int8", "fp32"]) is None  # fp32 was kept too
    vectors = embedder.embed(SENTENCES[:2])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "min_cosine"), [("fp32", 0.99), ("int8", 0.97)])
def test_onnx_agrees_with_torch(
    onnx_data_dir: Path,
    torch_embedder: embedders.SentenceTransformerEmbedder,
    variant: str,
    min_cosine: float,
) -> None:
    embedder = OnnxEmbedder(onnx_model_dir(onnx_data_dir), variant)
    assert embedder.name == f"all-MiniLM-L6-v2:onnx-{variant}"
    assert embedder.dimension == DIMENSION
    long_text = " ".join(["the router restarts itself and the broadband drops"] * 120)
    texts = [*SENTENCES, long_text]  # the long one is truncated at 256 tokens by both

    batch = embedder.embed(texts)
    one_by_one = np.vstack([embedder.embed([text]) for text in texts])

    assert batch.shape == (len(texts), DIMENSION)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    assert _cosines(batch, torch_embedder.embed(texts)).min() >= min_cosine
    # A text's vector does not depend on the batch it came in.
    assert _cosines(batch, one_by_one).min() >= 0.999
    assert embedder.embed([]).shape == (0, DIMENSION)


@pytest.mark.slow
def test_a_batch_shared_by_two_threads_keeps_every_row_in_place(onnx_data_dir: Path) -> None:
    embedder = OnnxEmbedder(onnx_model_dir(onnx_data_dir), "int8", batch_threads=2)
    texts = [f"{sentence} (ticket {number})" for number in range(4) for sentence in SENTENCES]

    batch = embedder.embed(texts)

    one_by_one = np.vstack([embedder.embed([text]) for text in texts])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)


@pytest.mark.slow
def test_onnx_path_never_imports_torch(onnx_data_dir: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        import copilot.services.embedders as e
        embedder = e.load_embedder("onnx", Path(sys.argv[1]), variant="int8")
        vectors = embedder.embed(["where is my parcel", "cancel my contract"])
        assert vectors.shape == (2, 384), vectors.shape
        print("torch" in sys.modules, "sentence_transformers" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(onnx_data_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_model_export_command_reports_a_valid_cache(
    onnx_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from copilot.cli import main

    code = main(["--data-dir", str(onnx_data_dir), "model", "export", "--variant", "all", "--json"])

    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["built"] is False
    assert set(payload["variants"]) == {"int8", "fp32"}
    assert payload["model_dir"] == str(onnx_model_dir(onnx_data_dir))
