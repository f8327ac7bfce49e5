"""``copilot index``: (re)build the knowledge index from the content pack, incrementally.

With ``--dry-run`` the new generation is built beside the live one, the content pack's demo
conversations are replayed on both, and the suggestions and cited articles that would change
are printed per demo and turn; then the new generation is discarded and the live index stays
as it was. The knowledge window does the same and offers "Swap in".
"""

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
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="build the new index without swapping it in, replay the demo conversations on the"
        " live and the new index, print what changes, then discard the new index",
    )
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
    if args.dry_run:
        return _dry_run(args, content, embedder)
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


def _dry_run(args: argparse.Namespace, content: Any, embedder: Any) -> int:
    from copilot.services import paths
    from copilot.services.assistant import learned_intent_examples
    from copilot.services.feedback_store import feedback_db_path
    from copilot.services.index_preview import STAGE_EMBED, build_and_preview
    from copilot.services.knowledge_index import discard_generation

    data = _common.data_dir(args)
    index_dir = paths.index_dir(data)
    embed_bar = _common.progress_bar("embedding", enabled=not args.json)
    replay_bar = _common.progress_bar("replaying demos", enabled=not args.json)

    def progress(stage: str, done: int, total: int) -> None:
        (embed_bar if stage == STAGE_EMBED else replay_bar)(done, total)

    stats, preview = build_and_preview(
        content,
        index_dir,
        embedder,
        progress=progress,
        force=args.force,
        extra_intent_examples=learned_intent_examples(content, feedback_db_path(data)),
    )
    if stats.candidate:
        discard_generation(index_dir, stats.generation)
    if args.json:
        _common.print_json(
            {
                "dry_run": True,
                "stats": stats.to_dict(),
                "preview": preview.to_dict() if preview is not None else None,
                "live_generation": stats.base_generation,
            }
        )
        return 0
    for failure in stats.failed:
        print(f"  FAILED {failure.path}: {failure.reason}")
    if preview is None:
        print(f"No article changed since the live index ({stats.generation}); nothing to compare.")
        return 0
    print(
        f"New index: {stats.articles} articles, {stats.passages} passages (added"
        f" {len(stats.added)}, changed {len(stats.changed)}, removed {len(stats.removed)},"
        f" failed {len(stats.failed)}), compared with {preview.base_generation or 'no index'}"
        f" in {preview.seconds:.1f} s."
    )
    print(preview.headline())
    print(render_changes(preview))
    print(
        f"Dry run: the new index was discarded; the live index is unchanged"
        f" ({stats.base_generation or 'none'})."
    )
    return 0


def render_changes(preview: Any) -> str:
    """The preview's changes as text, demo by demo (what the knowledge window shows)."""
    from copilot.core.index_diff import group_by_demo

    lines: list[str] = []
    for demo, changes in group_by_demo(preview.changes).items():
        lines.append(f"{demo}:")
        for change in changes:
            ranks = f"{change.before_rank or '-'} → {change.after_rank or '-'}"
            lines.append(
                f"  {change.turns:<9} {change.section:<10} {change.change:<8} {change.key:<28}"
                f" {ranks:<7} {change.detail}"
            )
    return "\n".join(lines)
