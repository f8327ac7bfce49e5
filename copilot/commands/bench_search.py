"""``copilot bench search``: query latency on the sample pack and on synthetic 10k/100k indexes."""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "search",
        help="query latency p50/p95 and indexing throughput",
        description=__doc__,
    )
    _common.add_content_option(parser)
    _common.add_backend_option(parser)
    parser.add_argument(
        "--sizes",
        default="10000,100000",
        help="synthetic index sizes in passages, comma-separated (default 10000,100000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="passes over the query set")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _queries(content: Path) -> list[str]:
    queries: list[str] = []
    for path in sorted((content / "eval").glob("retrieval_queries*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                queries.append(str(json.loads(line)["query"]))
    return queries or ["charged twice for my bill", "my broadband keeps dropping"]


def _latencies(index: Any, queries: list[str], vectors: Any, repeat: int) -> dict[str, float]:
    from copilot.core.metrics import percentile

    with_embedding: list[float] = []
    search_only: list[float] = []
    embed_only: list[float] = []
    for _ in range(repeat):
        for query, vector in zip(queries, vectors, strict=True):
            started = time.perf_counter()
            index.search(query, k=5, vector=vector)
            search_only.append((time.perf_counter() - started) * 1000)
        for query in queries:
            started = time.perf_counter()
            vector = index.embedder.embed([query])[0]
            middle = time.perf_counter()
            index.search(query, k=5, vector=vector)
            end = time.perf_counter()
            embed_only.append((middle - started) * 1000)
            with_embedding.append((end - started) * 1000)
    return {
        "search_p50_ms": round(percentile(search_only, 50), 3),
        "search_p95_ms": round(percentile(search_only, 95), 3),
        "embed_p50_ms": round(percentile(embed_only, 50), 3),
        "total_p50_ms": round(percentile(with_embedding, 50), 3),
        "total_p95_ms": round(percentile(with_embedding, 95), 3),
    }


def _synthetic_index(directory: Path, size: int, embedder: Any, vocabulary: list[str]) -> Any:
    """An index of `size` random passages: unit random vectors and texts drawn from real words."""
    import numpy as np

    from copilot.core.models import Article, Passage, Section
    from copilot.services.knowledge_index import KnowledgeIndex, _write_generation
    from copilot.services.loaders import LoadedArticle

    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    per_article = 10
    loaded = []
    passages = []
    for a in range(size // per_article):
        article_id = f"SYN-{a:06d}"
        title = " ".join(rng.choices(vocabulary, k=4))
        article = Article(id=article_id, title=title, sections=(Section((title,), "x"),))
        loaded.append(LoadedArticle(article=article, content_hash=article_id))
        for o in range(per_article):
            text = " ".join(rng.choices(vocabulary, k=120))
            passages.append(Passage(f"{article_id}#{o}", article_id, title, (title,), text, o))
    matrix = np.random.default_rng(7).standard_normal((len(passages), embedder.dimension))
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    vectors = list(matrix.astype(np.float32))
    _write_generation(directory, embedder, loaded, passages, vectors)
    return KnowledgeIndex.open(directory, embedder)


def run(args: argparse.Namespace) -> int:
    import platform

    from copilot.services import paths
    from copilot.services.knowledge_index import KnowledgeIndex, build_index, query_terms

    content = _common.content_dir(args)
    started = time.perf_counter()
    embedder = _common.embedder(args)
    load_s = time.perf_counter() - started
    queries = _queries(content)
    vectors = embedder.embed(queries)
    results: dict[str, Any] = {
        "backend": embedder.name,
        "model_load_s": round(load_s, 3),
        "queries": len(queries),
        "machine": f"{platform.machine()} {platform.system()} python {platform.python_version()}",
    }
    with tempfile.TemporaryDirectory(prefix="copilot-bench-") as tmp:
        root = Path(tmp)
        stats = build_index(root / "pack", paths.articles_dir(content), embedder, force=True)
        results["indexing"] = {
            "articles": stats.articles,
            "passages": stats.passages,
            "seconds": round(stats.seconds, 3),
            "passages_per_s": round(stats.passages / stats.seconds, 1) if stats.seconds else 0.0,
        }
        index = KnowledgeIndex.open(root / "pack", embedder)
        results["sample_pack"] = {"passages": index.passage_count} | _latencies(
            index, queries, vectors, args.repeat
        )
        vocabulary = sorted({t for p in index._passages.values() for t in query_terms(p.text)}) or [
            "refund"
        ]
        index.close()
        for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
            synthetic = _synthetic_index(root / f"syn-{size}", size, embedder, vocabulary)
            results[f"synthetic_{size}"] = {"passages": synthetic.passage_count} | _latencies(
                synthetic, queries, vectors, 1
            )
            synthetic.close()
    if args.json:
        _common.print_json(results)
        return 0
    print(f"backend {results['backend']}  (model load {results['model_load_s']} s)")
    ix = results["indexing"]
    print(
        f"indexing: {ix['passages']} passages of {ix['articles']} articles in {ix['seconds']} s "
        f"= {ix['passages_per_s']} passages/s"
    )
    print(
        f"{'index':<18}{'passages':>9}{'search p50':>12}{'p95':>8}{'embed p50':>11}"
        f"{'total p50':>11}{'p95':>8}   (ms)"
    )
    for key, row in results.items():
        if isinstance(row, dict) and "search_p50_ms" in row:
            print(
                f"{key:<18}{row['passages']:>9}{row['search_p50_ms']:>12.2f}"
                f"{row['search_p95_ms']:>8.2f}{row['embed_p50_ms']:>11.2f}"
                f"{row['total_p50_ms']:>11.2f}{row['total_p95_ms']:>8.2f}"
            )
    return 0
