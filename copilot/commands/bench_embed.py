"""``copilot bench embed``: speed (and, with shared/eval, quality) of each embedding backend.

Per backend: load to ready (import + load + first embedding, in a fresh process), single-query
latency p50/p95 over short customer utterances, and batch throughput on ~150-word passages cut
from the content pack's articles, batch 32. When the public StackFAQ set is beside the checkout,
also dense-only MRR@10 (docs embedded as title + text, numpy cosine) and the cosine of each
backend's query vectors to the torch reference.

Wall-clock numbers suffer when other processes share the cores; the CPU-time columns (load,
single query, passages per CPU-second) are what stays comparable then.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from copilot.commands import _common

BACKENDS = ("onnx-int8", "onnx-fp32", "torch")

# Short utterances of the kind the live pipeline embeds once per customer turn.
_UTTERANCES = (
    "My broadband keeps dropping every evening",
    "I was charged twice this month",
    "Can I cancel my contract early?",
    "Where is my order? It was meant to arrive yesterday",
    "The camera app won't connect to wifi",
    "I want to speak to a manager",
    "How do I move my number to a new SIM?",
    "Why has my bill gone up?",
    "My router lights are flashing orange",
    "Please remove the Protect subscription",
    "I'm moving house next month, what do I do?",
    "The thermostat is showing the wrong temperature",
)

_LOAD_SCRIPT = """
import json, sys, time
started, started_cpu = time.perf_counter(), time.process_time()
from pathlib import Path
from copilot.services.embedders import load_embedder
backend, variant, data = sys.argv[1], sys.argv[2] or None, Path(sys.argv[3])
embedder = load_embedder(backend, data, variant=variant)
embedder.embed(["Where is my order?"])
print(json.dumps({
    "load_s": time.perf_counter() - started,
    "load_cpu_s": time.process_time() - started_cpu,
    "torch": "torch" in sys.modules,
}))
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "embed", help="embedding latency, load time, throughput and agreement", description=__doc__
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated, from {', '.join(BACKENDS)} (default: all)",
    )
    parser.add_argument(
        "--queries", type=int, default=300, help="single-query embeddings timed (default 300)"
    )
    parser.add_argument(
        "--passages", type=int, default=128, help="passages embedded for throughput (default 128)"
    )
    parser.add_argument(
        "--no-quality", action="store_true", help="skip the StackFAQ MRR@10 even when present"
    )
    _common.add_content_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError
    from copilot.services import paths
    from copilot.services.embedders import export_onnx, load_embedder

    chosen = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown or not chosen:
        raise UserError(f"unknown backend(s) {', '.join(unknown)}; choose from {BACKENDS}")
    if args.queries < 10 or args.passages < 1:
        raise UserError("--queries must be at least 10 and --passages at least 1")
    data = _common.data_dir(args)
    onnx_variants = [name.split("-", 1)[1] for name in chosen if name.startswith("onnx-")]
    if onnx_variants:
        # Exported up front so that no load time below includes an export.
        export_onnx(data, variants=onnx_variants)
    passages = _passages(paths.articles_dir(_common.content_dir(args)), args.passages)
    stackfaq = paths.shared_eval_dir() / "retrieval" / "stackfaq"
    quality = not args.no_quality and (stackfaq / "queries.jsonl").is_file()
    reference: np.ndarray[Any, Any] | None = None

    results: dict[str, dict[str, Any]] = {}
    # torch first, so the others can be compared with its query vectors.
    for name in sorted(chosen, key=lambda n: n != "torch"):
        backend, _, variant = name.partition("-")
        _say(args, f"{name}: load")
        row: dict[str, Any] = _load_in_subprocess(backend, variant, data)
        embedder = load_embedder(backend, data, variant=variant or None)
        row["name"] = embedder.name
        _say(args, f"{name}: latency")
        row.update(_latency(embedder, args.queries))
        _say(args, f"{name}: throughput")
        row.update(_throughput(embedder, passages))
        if quality:
            _say(args, f"{name}: StackFAQ")
            mrr, vectors = _mrr_at_10(embedder, stackfaq)
            row["stackfaq_mrr10"] = round(mrr, 4)
            if reference is None and backend == "torch":
                reference = vectors
            elif reference is not None:
                cosine = (vectors * reference).sum(axis=1)
                row["cosine_to_torch_min"] = round(float(cosine.min()), 4)
                row["cosine_to_torch_mean"] = round(float(cosine.mean()), 4)
        results[name] = row
        del embedder

    if args.json:
        _common.print_json({"passage_words": 150, "batch_size": 32, "backends": results})
        return 0
    headers = (
        "backend",
        "load s",
        "load cpu s",
        "p50 ms",
        "p95 ms",
        "cpu p50 ms",
        "passages/s",
        "per cpu-s",
        "MRR@10",
        "cos min",
    )
    print("  ".join(f"{h:>11}" for h in headers))
    for name, row in results.items():
        cells = (
            name,
            f"{row['load_s']:.2f}",
            f"{row['load_cpu_s']:.2f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p95_ms']:.2f}",
            f"{row['cpu_p50_ms']:.2f}",
            f"{row['passages_per_s']:.1f}",
            f"{row['passages_per_cpu_s']:.1f}",
            str(row.get("stackfaq_mrr10", "-")),
            str(row.get("cosine_to_torch_min", "-")),
        )
        print("  ".join(f"{c:>11}" for c in cells))
    return 0


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.json:
        print(f"{message}...", file=sys.stderr, flush=True)


def _load_in_subprocess(backend: str, variant: str, data: Path) -> dict[str, Any]:
    """Load to ready in a fresh interpreter, so imports are counted as a user would see them.

    The median of three runs (one for torch, which takes seconds anyway).
    """
    runs = []
    for _ in range(1 if backend == "torch" else 3):
        done = subprocess.run(
            [sys.executable, "-c", _LOAD_SCRIPT, backend, variant, str(data)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda run: float(run["load_s"]))
    median = runs[len(runs) // 2]
    return {
        "load_s": round(median["load_s"], 3),
        "load_cpu_s": round(median["load_cpu_s"], 3),
        "imports_torch": median["torch"],
    }


def _latency(embedder: Any, count: int) -> dict[str, float]:
    for text in _UTTERANCES:  # warm-up: first runs allocate
        embedder.embed([text])
    wall, cpu = [], []
    for i in range(count):
        text = _UTTERANCES[i % len(_UTTERANCES)]
        started, started_cpu = time.perf_counter(), time.process_time()
        embedder.embed([text])
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    ms = np.array(wall) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        # CPU time is what a busy machine cannot inflate much: compare it when others run too.
        "cpu_p50_ms": round(float(np.percentile(np.array(cpu) * 1000, 50)), 3),
    }


def _throughput(embedder: Any, passages: list[str]) -> dict[str, float]:
    embedder.embed(passages[:32])  # warm-up at the batch shape
    started, started_cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(passages), 32):
        embedder.embed(passages[start : start + 32])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    return {
        "passages_per_s": round(len(passages) / elapsed, 1),
        "passages_per_cpu_s": round(len(passages) / cpu, 1),
    }


def _passages(articles: Path, count: int, words_per_passage: int = 150) -> list[str]:
    """``count`` passages of ``words_per_passage`` words cut from the articles (cycled)."""
    words: list[str] = []
    for path in sorted(articles.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        if text.startswith("---"):  # YAML front matter is not prose
            text = text.split("---", 2)[-1]
        words.extend(text.split())
    if len(words) < words_per_passage:
        words = (" ".join(_UTTERANCES).split() * words_per_passage)[: words_per_passage * 4]
    out = []
    for i in range(count):
        start = (i * words_per_passage) % (len(words) - words_per_passage + 1)
        out.append(" ".join(words[start : start + words_per_passage]))
    return out


def _mrr_at_10(embedder: Any, folder: Path) -> tuple[float, np.ndarray[Any, Any]]:
    docs = [json.loads(line) for line in (folder / "docs.jsonl").open(encoding="utf-8") if line]
    queries = [
        json.loads(line) for line in (folder / "queries.jsonl").open(encoding="utf-8") if line
    ]
    doc_ids = [doc["id"] for doc in docs]
    doc_vectors = embedder.embed([f"{doc['title']}\n{doc['text']}" for doc in docs])
    query_vectors = embedder.embed([query["query"] for query in queries])
    top = np.argsort(-(query_vectors @ doc_vectors.T), axis=1)[:, :10]
    total = 0.0
    for row, query in enumerate(queries):
        relevant = set(query["relevant"])
        for rank, column in enumerate(top[row], start=1):
            if doc_ids[column] in relevant:
                total += 1.0 / rank
                break
    return total / len(queries), query_vectors
