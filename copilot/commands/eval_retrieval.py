"""``copilot eval retrieval``: MRR@10, P@1 and Recall@5 of dense, BM25 and hybrid search."""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from copilot.commands import _common

METHODS = ("dense", "bm25", "hybrid")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "retrieval",
        help="score dense, BM25 and hybrid retrieval on labelled queries",
        description=__doc__
        + " Formats: docs.jsonl {id, title, text}; queries.jsonl {query, relevant: [id, ...]}.",
    )
    parser.add_argument(
        "--docs", type=Path, help="docs.jsonl (default: the content pack's articles)"
    )
    parser.add_argument(
        "--queries",
        type=Path,
        help="queries.jsonl (default: the content pack's eval/retrieval_queries.jsonl)",
    )
    _common.add_content_option(parser)
    parser.add_argument(
        "--fusion", choices=("linear", "rrf"), help="override how hybrid fuses the two rankings"
    )
    _common.add_backend_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """Read a JSON Lines file, failing with the file, line number and reason."""
    from copilot.cli import UserError

    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        missing = [key for key in required if key not in record]
        if missing:
            raise UserError(f"{path}:{number}: missing {', '.join(missing)}")
        records.append(record)
    if not records:
        raise UserError(f"{path} holds no records")
    return records


def docs_as_articles(docs: list[dict[str, Any]]) -> Any:
    """Evaluation documents as loaded articles of one section each."""
    from copilot.core.models import Article, Section
    from copilot.services.loaders import LoadedArticle, LoadResult

    loaded = LoadResult()
    for doc in docs:
        title = str(doc.get("title") or "")
        text = str(doc["text"])
        article = Article(
            id=str(doc["id"]),
            title=title or str(doc["id"]),
            sections=(Section(heading_path=(title,), text=text),),
        )
        digest = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()
        loaded.articles.append(LoadedArticle(article=article, content_hash=digest))
    return loaded


def evaluate(
    loaded: Any,
    queries: list[dict[str, Any]],
    embedder: Any,
    *,
    include_inactive: bool = True,
    fusion: str | None = None,
) -> dict[str, Any]:
    """Index `loaded` articles in a temporary directory and score every method on `queries`.

    Args:
        include_inactive: Rank draft, archived and expired articles too (evaluation sets have no
            such metadata; the content pack does, and live assist never suggests them).
        fusion: "linear" or "rrf" to override the index's default fusion.
    """
    from copilot.core.metrics import retrieval_scores
    from copilot.services.knowledge_index import KnowledgeIndex, build_index_from

    with tempfile.TemporaryDirectory(prefix="copilot-eval-") as tmp:
        build_index_from(Path(tmp), loaded, embedder)
        index = KnowledgeIndex.open(Path(tmp), embedder)
        if fusion:
            index.fusion = fusion  # type: ignore[assignment]
        texts = [str(q["query"]) for q in queries]
        vectors = embedder.embed(texts)
        relevants = [set(map(str, q["relevant"])) for q in queries]
        results: dict[str, Any] = {}
        for method in METHODS:
            rankings = [
                [
                    hit.article_id
                    for hit in index.search(
                        text, k=10, method=method, vector=vec, include_inactive=include_inactive
                    )
                ]
                for text, vec in zip(texts, vectors, strict=True)
            ]
            results[method] = {
                k: round(v, 4) for k, v in retrieval_scores(rankings, relevants).items()
            }
        index.close()
    results["queries"] = len(queries)
    results["docs"] = len(loaded.articles)
    results["backend"] = embedder.name
    results["fusion"] = fusion or "default"
    return results


def run(args: argparse.Namespace) -> int:
    from copilot.services import paths
    from copilot.services.loaders import load_articles

    content = _common.content_dir(args)
    if args.docs:
        loaded = docs_as_articles(read_jsonl(args.docs, ("id", "text")))
    else:
        loaded = load_articles(paths.articles_dir(content))
    queries_path = args.queries or content / "eval" / "retrieval_queries.jsonl"
    queries = read_jsonl(queries_path, ("query", "relevant"))
    results = evaluate(
        loaded,
        queries,
        _common.embedder(args),
        include_inactive=bool(args.docs),
        fusion=args.fusion,
    )
    if args.json:
        _common.print_json(results)
        return 0
    print(f"{results['queries']} queries over {results['docs']} documents ({results['backend']})")
    print(f"{'method':<8} {'MRR@10':>8} {'P@1':>8} {'R@5':>8}")
    for method in METHODS:
        row = results[method]
        print(f"{method:<8} {row['mrr@10']:>8.4f} {row['p@1']:>8.4f} {row['recall@5']:>8.4f}")
    return 0
