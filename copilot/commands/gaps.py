"""``copilot gaps``: where the knowledge fell short, grouped by topic.

Gap events are retrieval misses (nothing confident was found for the customer's words),
articles marked "not helpful", and suggestions discarded as wrong topic or outdated. Events
with a predicted intent are grouped by it, the others by how alike their words are. Each group
shows how many events of each kind, the articles involved and a few example customer turns
(redacted).
"""

from __future__ import annotations

import argparse
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gaps",
        help="knowledge gaps: what customers asked that the articles did not answer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--since", metavar="DATE", help="only events from this day (YYYY-MM-DD)")
    parser.add_argument("--top", type=int, default=20, help="how many groups (default 20)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError
    from copilot.commands.feedback import open_store

    if args.top < 1:
        raise UserError("--top must be at least 1")
    with open_store(args) as store:
        try:
            gaps = store.gaps(since=args.since)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    shown = gaps[: args.top]
    if args.json:
        _common.print_json(
            {
                "groups": len(gaps),
                "events": sum(g.count for g in gaps),
                "gaps": [g.to_dict() for g in shown],
            }
        )
        return 0
    if not gaps:
        print("No knowledge gaps recorded.")
        return 0
    print(f"{len(gaps)} topic(s), {sum(g.count for g in gaps)} gap event(s)")
    for gap in shown:
        kinds = ", ".join(f"{kind.replace('_', ' ')} {n}" for kind, n in gap.kinds.items())
        print(f"\n{gap.topic}: {gap.count} ({kinds}) in {gap.conversations} conversation(s)")
        if gap.items:
            print(f"  involves: {', '.join(gap.items)}")
        for example in gap.examples:
            print(f"  “{example}”")
    if len(gaps) > len(shown):
        print(f"\n… {len(gaps) - len(shown)} more (--top, or --json)")
    return 0
