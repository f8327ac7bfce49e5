"""``copilot harvest``: agents' edited replies that read alike, as candidate reply templates.

Lists groups of edited replies (rapidfuzz token_set_ratio >= 80), with how many edits and how
many different agents wrote them. ``--approve ID --content DIR`` writes the group as a new
template into ``DIR/templates/harvested.yaml`` (copying the intents, articles and tone of the
template the agents edited; the customer's name becomes ``{customer_name}``) and checks that
the pack still loads; ``--reject ID`` records that it should not become one. Either way the
group is no longer listed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "harvest",
        help="turn agents' repeated edits into new reply templates",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--approve", metavar="ID", help="write group ID as a new template")
    action.add_argument("--reject", metavar="ID", help="record that group ID is not a template")
    parser.add_argument(
        "--content",
        metavar="DIR",
        help="the content pack --approve writes to (default: $COPILOT_CONTENT_DIR)",
    )
    parser.add_argument(
        "--min-count", type=int, default=2, help="smallest group listed (default 2 edits)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError
    from copilot.commands.feedback import open_store
    from copilot.services.feedback_store import FeedbackStoreError

    if args.min_count < 1:
        raise UserError("--min-count must be at least 1")
    with open_store(args) as store:
        try:
            if args.approve:
                content = args.content or os.environ.get("COPILOT_CONTENT_DIR")
                if not content:
                    # Never write into the sample pack by default: say which pack to change.
                    raise UserError("--approve needs --content DIR (the content pack to change)")
                if not Path(content).is_dir():
                    raise UserError(f"no such content pack directory: {content}")
                template_id, path = store.approve_harvest(args.approve, Path(content))
                result = {"approved": args.approve, "template_id": template_id, "path": str(path)}
                if args.json:
                    _common.print_json(result)
                else:
                    print(f"added template {template_id} to {path}")
                    print("review it, then reindex so agents see it")
                return 0
            if args.reject:
                cluster = store.reject_harvest(args.reject)
                if args.json:
                    _common.print_json({"rejected": cluster.id, "count": cluster.count})
                else:
                    print(f"rejected {cluster.id} ({cluster.count} edits); it is no longer listed")
                return 0
            clusters = store.harvest(min_count=args.min_count)
        except FeedbackStoreError as exc:
            raise UserError(str(exc)) from exc
    if args.json:
        _common.print_json({"groups": [c.to_dict() for c in clusters]})
        return 0
    if not clusters:
        print(f"No edited replies repeated at least {args.min_count} times.")
        return 0
    for cluster in clusters:
        edited = f" (edited from {', '.join(cluster.item_ids[:3])})" if cluster.item_ids else ""
        print(
            f"{cluster.id}: {cluster.count} edits by {cluster.agents} agent(s),"
            f" {_day(cluster.first_seen)} to {_day(cluster.last_seen)}{edited}"
        )
        print(f"  “{cluster.text}”")
        for example in cluster.examples[:2]:
            print(f"  also: “{example}”")
        print()
    print("approve with: copilot harvest --approve ID --content DIR   reject: --reject ID")
    return 0
