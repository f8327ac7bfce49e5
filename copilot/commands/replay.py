"""``copilot replay``: run a JSONL transcript through the pipeline and print every snapshot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay a JSONL transcript and print each snapshot",
        description=__doc__
        + " Each line is a turn event: {conversation_id, turn_id, role, text, ts, is_final}.",
    )
    parser.add_argument("file", type=Path, help="the transcript (JSON Lines)")
    parser.add_argument("--final-only", action="store_true", help="print only the last snapshot")
    _common.add_content_option(parser)
    _common.add_backend_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object per snapshot")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError
    from copilot.core.conversation import Conversation
    from copilot.core.render import snapshot_text
    from copilot.services.assistant import build_assistant, learned_intent_examples
    from copilot.services.feedback_store import feedback_db_path
    from copilot.services.transcripts import BadLine, read_events

    if not args.file.is_file():
        raise UserError(f"no such transcript: {args.file}")
    content, data = _common.content_dir(args), _common.data_dir(args)
    assistant, index, report = build_assistant(
        content,
        data,
        _common.embedder(args),
        # Route as the panel does: agents' intent corrections are learnt examples.
        extra_intent_examples=learned_intent_examples(content, feedback_db_path(data)),
    )
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    conversations: dict[str, Conversation] = {}
    last: dict[str, Any] = {}
    bad = 0
    for event in read_events(args.file):
        if isinstance(event, BadLine):
            bad += 1
            print(f"skipped {event}", file=sys.stderr)
            continue
        conversation = conversations.get(event.conversation_id) or Conversation()
        conversation = conversation.apply(event)
        conversations[event.conversation_id] = conversation
        if not event.is_final:
            continue
        snapshot = assistant.analyse(conversation)
        last[event.conversation_id] = snapshot
        if args.final_only:
            continue
        _emit(snapshot, args.json, snapshot_text)
    if args.final_only:
        for snapshot in last.values():
            _emit(snapshot, args.json, snapshot_text)
    index.close()
    if bad:
        print(f"{bad} malformed line(s) skipped", file=sys.stderr)
    return 0


def _emit(snapshot: Any, as_json: bool, render: Any) -> None:
    if as_json:
        _common.print_json(snapshot.to_dict())
    else:
        print(render(snapshot))
        print()
