"""``copilot index``: (re)build the knowledge index from the content pack, incrementally."""

from __future__ import annotations

import argparse
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "index",
        help="index the content pack's articles (only changed articles are embedded again)",
        description=__doc__,
    )
    _common.add_content_option(parser)
    _common.add_backend_option(parser)
    parser.add_argument("--force", action="store_true", help="re-embed every article")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError
    from copilot.services import paths
    from copilot.services.knowledge_index import build_index

    content = _common.content_dir(args)
    articles = paths.articles_dir(content)
    if not articles.is_dir():
        raise UserError(f"no articles directory at {articles} (is --content right?)")
    embedder = _common.embedder(args)
    stats = build_index(
        paths.index_dir(_common.data_dir(args)),
        articles,
        embedder,
        progress=_common.progress_bar("embedding", enabled=not args.json),
        force=args.force,
    )
    if args.json:
        _common.print_json(stats.to_dict())
        return 0
    if stats.rebuilt_reason:
        print(f"rebuilt from scratch: {stats.rebuilt_reason}")
    print(
        f"{stats.articles} articles, {stats.passages} passages "
        f"({stats.embedded_passages} embedded) in {stats.seconds:.2f} s -> {stats.generation}"
    )
    print(
        f"added {len(stats.added)}, changed {len(stats.changed)}, removed {len(stats.removed)}, "
        f"unchanged {stats.unchanged}, failed {len(stats.failed)}"
    )
    for name, ids in (
        ("added", stats.added),
        ("changed", stats.changed),
        ("removed", stats.removed),
    ):
        if ids:
            print(f"  {name}: {', '.join(ids)}")
    for failure in stats.failed:
        print(f"  FAILED {failure.path}: {failure.reason}")
    return 1 if stats.failed and not stats.articles else 0
