"""``copilot search``: search the knowledge index by hand (hybrid dense + BM25)."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "search", help="search the knowledge articles", description=__doc__
    )
    parser.add_argument("query", help="what to look for, in plain words")
    parser.add_argument("--k", type=int, default=5, help="how many articles (default 5)")
    parser.add_argument("--product", help="only articles of this product")
    parser.add_argument(
        "--method", choices=("hybrid", "dense", "bm25"), default="hybrid", help="ranking method"
    )
    parser.add_argument(
        "--all", action="store_true", help="include draft, archived and expired articles"
    )
    _common.add_content_option(parser)
    _common.add_backend_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from copilot.cli import UserError
    from copilot.services import paths
    from copilot.services.knowledge_index import open_or_build

    if not args.query.strip():
        raise UserError("the query is empty")
    if args.k < 1:
        raise UserError("--k must be at least 1")
    embedder = _common.embedder(args)
    index, built = open_or_build(
        paths.index_dir(_common.data_dir(args)),
        paths.articles_dir(_common.content_dir(args)),
        embedder,
        progress=_common.progress_bar("indexing", enabled=not args.json),
    )
    started = time.perf_counter()
    hits = index.search(
        args.query, k=args.k, product=args.product, method=args.method, include_inactive=args.all
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    if args.json:
        _common.print_json(
            {
                "query": args.query,
                "method": args.method,
                "ms": round(elapsed_ms, 2),
                "results": [hit.to_dict() for hit in hits],
            }
        )
        return 0
    if built is not None:
        print(f"(indexed {built.articles} articles first)")
    if not hits:
        print("no matching articles")
        return 0
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank}. {hit.title}  [{hit.article_id}]  score {hit.score:.4f}")
        print(f"   § {hit.best.passage.heading}")
        snippet = textwrap.shorten(hit.best.passage.text, width=300, placeholder=" …")
        print(textwrap.indent(textwrap.fill(snippet, width=96), "   "))
        if hit.matched_terms:
            print(f"   matched: {', '.join(hit.matched_terms)}")
    print(f"({elapsed_ms:.1f} ms)")
    return 0
