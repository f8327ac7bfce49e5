"""``copilot vcon import|export``: conversations in the IETF vCon format.

``import`` reads a vCon's text dialogs as a conversation (redacted on arrival, like every source)
and replays it through the pipeline, printing each snapshot as ``copilot replay`` does.
``export`` turns a JSONL transcript or a vCon into a new, redacted vCon whose ``analysis`` holds
the co-pilot's summary, flags, sentiment, intent and policy findings (vendor ``agent-copilot``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from copilot.commands import _common

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "vcon",
        help="import a vCon as a conversation, or export one as a redacted vCon",
        description=__doc__,
    )
    kinds = parser.add_subparsers(dest="vcon_kind", metavar="KIND")

    imp = kinds.add_parser(
        "import",
        help="replay a vCon's text dialogs through the pipeline and print each snapshot",
        description="Read a vCon JSON file (unsigned form): every text dialog becomes a turn,"
        " parties become customer / agent / system (their role field, else heuristics shown on"
        " stderr); recordings and other dialogs are reported and skipped. The turns are redacted"
        " on arrival and replayed through the pipeline like `copilot replay`.",
    )
    imp.add_argument("file", type=Path, help="the vCon (JSON)")
    imp.add_argument("--final-only", action="store_true", help="print only the last snapshot")
    imp.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: the import report and the snapshots",
    )
    _common.add_content_option(imp)
    _common.add_backend_option(imp)
    imp.set_defaults(func=run_import)

    exp = kinds.add_parser(
        "export",
        help="write a redacted vCon of a transcript with the co-pilot's analysis",
        description="Replay a JSONL transcript (or a vCon) through the pipeline and write a new"
        " vCon: one text dialog per final turn, redacted, parties by role only (no names or"
        " numbers), and the summary, flags, sentiment, intent and policy findings in `analysis`"
        " (vendor agent-copilot).",
    )
    exp.add_argument("source", type=Path, help="a JSON Lines transcript (.jsonl) or a vCon (.json)")
    exp.add_argument("--out", type=Path, required=True, metavar="FILE", help="the vCon to write")
    exp.add_argument(
        "--conversation",
        metavar="ID",
        help="which conversation of a transcript holding several (default: the only one)",
    )
    exp.add_argument("--json", action="store_true", help="print one JSON object (a report)")
    _common.add_content_option(exp)
    _common.add_backend_option(exp)
    exp.set_defaults(func=run_export)

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=show_help)


def _read_vcon(path: Path) -> Any:
    """The parsed vCon (`ImportedVcon`), errors as `UserError` naming the file and JSON path."""
    from copilot.cli import UserError
    from copilot.services.vcon import VconError, load_vcon, parse_vcon

    if not path.is_file():
        raise UserError(f"no such vCon: {path}")
    try:
        return parse_vcon(load_vcon(path))
    except VconError as exc:
        raise UserError(f"{path}: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def _report_import(imported: Any) -> None:
    for party in imported.parties:
        print(
            f"parties[{party.index}] is the {party.role.value} ({party.decided_by})",
            file=sys.stderr,
        )
    for skipped in imported.skipped:
        print(f"skipped {skipped}", file=sys.stderr)


def run_import(args: argparse.Namespace) -> int:
    from copilot.commands.replay import _emit
    from copilot.core.conversation import Conversation
    from copilot.core.render import snapshot_text
    from copilot.services.assistant import build_assistant

    imported = _read_vcon(args.file)
    if not args.json:
        _report_import(imported)
    assistant, index, report = build_assistant(
        _common.content_dir(args), _common.data_dir(args), _common.embedder(args)
    )
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        conversation = Conversation()
        snapshots: list[Any] = []
        for event in imported.events:
            conversation = conversation.apply(event)
            snapshot = assistant.analyse(conversation)
            snapshots.append(snapshot)
            if not args.final_only and not args.json:
                _emit(snapshot, False, snapshot_text)
    finally:
        index.close()
    if args.final_only and snapshots and not args.json:
        _emit(snapshots[-1], False, snapshot_text)
    if args.json:
        shown = snapshots[-1:] if args.final_only else snapshots
        _common.print_json({"import": imported.report(), "snapshots": [s.to_dict() for s in shown]})
    elif not snapshots:
        print("the vCon holds no text dialog to analyse", file=sys.stderr)
    return 0


def _transcript_events(path: Path, wanted: str | None) -> tuple[list[Any], int]:
    """The final-or-partial events of one conversation of a JSONL transcript, and bad lines."""
    from copilot.cli import UserError
    from copilot.services.transcripts import BadLine, read_events

    by_conversation: dict[str, list[Any]] = {}
    bad = 0
    try:
        for event in read_events(path):
            if isinstance(event, BadLine):
                bad += 1
                print(f"skipped {event}", file=sys.stderr)
                continue
            by_conversation.setdefault(event.conversation_id, []).append(event)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if wanted is not None:
        if wanted not in by_conversation:
            known = ", ".join(sorted(by_conversation)[:10]) or "none"
            raise UserError(f"no conversation {wanted!r} in {path} (found: {known})")
        return by_conversation[wanted], bad
    if not by_conversation:
        raise UserError(f"{path} holds no valid turn event")
    if len(by_conversation) > 1:
        known = ", ".join(sorted(by_conversation)[:10])
        raise UserError(f"{path} holds several conversations ({known}): pass --conversation ID")
    return next(iter(by_conversation.values())), bad


def run_export(args: argparse.Namespace) -> int:
    from copilot.cli import UserError
    from copilot.core.conversation import Conversation
    from copilot.services.assistant import build_assistant
    from copilot.services.vcon import dumps, export_vcon

    source: Path = args.source
    out: Path = args.out
    if not source.is_file():
        raise UserError(f"no such file: {source}")
    if out.exists() and out.resolve() == source.resolve():
        raise UserError("--out must not be the source file")
    if not out.parent.is_dir():
        raise UserError(f"no such directory: {out.parent}")
    redacted_from: str | None = None
    skipped = 0
    if source.suffix.lower() in JSONL_SUFFIXES:
        events, skipped = _transcript_events(source, args.conversation)
    else:
        imported = _read_vcon(source)
        if args.conversation is not None and args.conversation != imported.uuid:
            raise UserError(f"{source} is the vCon {imported.uuid}, not {args.conversation!r}")
        events, skipped, redacted_from = list(imported.events), len(imported.skipped), imported.uuid
        if not args.json:
            _report_import(imported)
    if not any(e.is_final for e in events):
        raise UserError(f"{source} holds no final turn to export")

    assistant, index, report = build_assistant(
        _common.content_dir(args), _common.data_dir(args), _common.embedder(args)
    )
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        # Turn by turn, as live: the intent memory and the policy ledger build up over turns.
        conversation = Conversation()
        snapshot = None
        for event in events:
            conversation = conversation.apply(event)
            if event.is_final:
                snapshot = assistant.analyse(conversation)
    finally:
        index.close()
    vcon = export_vcon(conversation, snapshot, redacted_from=redacted_from)
    _write_atomically(out, dumps(vcon))
    result = {
        "out": str(out),
        "uuid": vcon["uuid"],
        "conversation_id": conversation.conversation_id,
        "dialogs": len(vcon["dialog"]),
        "analysis": [a["type"] for a in vcon["analysis"]],
        "redactions": sum(len(t.redactions) for t in conversation.turns),
        "skipped": skipped,
    }
    if args.json:
        _common.print_json(result)
    else:
        print(
            f"wrote {out}: {result['dialogs']} dialogs (redacted: {result['redactions']} spans),"
            f" analysis: {', '.join(result['analysis']) or 'none'}"
        )
    return 0


def _write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    from copilot.cli import UserError

    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
