"""``copilot erase CONVERSATION_ID``: remove one conversation from the feedback store completely.

Deletes its turns, suggestions shown, actions and their counts, then empties the write-ahead
log and compacts the database (VACUUM), so its text is left in none of the database files.
For a customer's request to erase their data.
"""

from __future__ import annotations

import argparse
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "erase",
        help="remove one conversation and everything recorded about it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("conversation_id", metavar="CONVERSATION_ID", help="the conversation")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError
    from copilot.commands.feedback import open_store
    from copilot.services.feedback_store import FeedbackStoreError

    conversation_id = args.conversation_id.strip()
    if not conversation_id:
        raise UserError("the conversation id is empty")
    with open_store(args) as store:
        try:
            removed = store.erase(conversation_id)
        except FeedbackStoreError as exc:
            raise UserError(str(exc)) from exc
    found = any(removed.values())
    if args.json:
        _common.print_json({"conversation_id": conversation_id, "found": found, **removed})
    elif found:
        print(
            f"erased conversation {conversation_id}: {removed['conversations']} conversation,"
            f" {removed['turns']} turn(s), {removed['actions']} action(s) (suggestions shown,"
            " accepts, edits, discards, flags, ratings); the database was compacted"
        )
    else:
        print(f"nothing stored for conversation {conversation_id}")
    return 0 if found else 1
