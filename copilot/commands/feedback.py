"""``copilot feedback ...``: what agents did with the suggestions, for team leads.

``copilot feedback report`` prints acceptance, edit and discard rates (overall, by intent, by
template and article), the most discarded suggestions and why, flag precision per rule,
suggestion latency and the trend per day. ``copilot feedback export`` writes every stored
action as CSV (safe to open in a spreadsheet) or JSON.

The feedback database is ``feedback.sqlite3`` in the data directory (``--data-dir``).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from copilot.commands import _common

if TYPE_CHECKING:
    from copilot.services.feedback_store import FeedbackStore


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "feedback",
        help="report on and export the agents' feedback",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="feedback_kind", metavar="KIND")

    report = kinds.add_parser(
        "report",
        help="acceptance, edit and discard rates, flag precision, latency, trend",
        description="Acceptance, edit and discard rates (shares of suggestions shown, each"
        " counted once per conversation), by intent, template and article; the most discarded"
        " suggestions and the reasons; flag precision per rule; suggestion latency; trend per"
        " day. Days are UTC.",
    )
    report.add_argument("--since", metavar="DATE", help="first day included (YYYY-MM-DD)")
    report.add_argument("--until", metavar="DATE", help="last day included (YYYY-MM-DD)")
    report.add_argument("--intent", help="only this predicted intent")
    report.add_argument(
        "--kind", choices=("template", "article"), help="only template or article suggestions"
    )
    report.add_argument("--top", type=int, default=10, help="rows per table (default 10)")
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.set_defaults(func=run_report)

    export = kinds.add_parser(
        "export",
        help="write every stored action as CSV or JSON",
        description="Write the stored actions (redacted text, with the conversation's start"
        " and end) as CSV or as one JSON object. CSV cells that a spreadsheet would read as a"
        " formula (starting with = + - @, a tab or a carriage return) get a leading '.",
    )
    export.add_argument("--format", choices=("csv", "json"), required=True, help="file format")
    export.add_argument("--out", metavar="FILE", required=True, help="where to write ('-': stdout)")
    export.add_argument("--since", metavar="DATE", help="first day included (YYYY-MM-DD)")
    export.add_argument("--until", metavar="DATE", help="last day included (YYYY-MM-DD)")
    export.set_defaults(func=run_export)

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=show_help)


def open_store(args: argparse.Namespace) -> FeedbackStore:
    """The feedback store of the data directory, or a `UserError` saying why it cannot open."""
    import sqlite3

    from copilot.cli import UserError
    from copilot.services.feedback_store import (
        FeedbackStore,
        FeedbackStoreError,
        feedback_db_path,
    )

    path = feedback_db_path(_common.data_dir(args))
    try:
        return FeedbackStore(path)
    except FeedbackStoreError as exc:
        raise UserError(str(exc)) from exc
    except sqlite3.DatabaseError as exc:
        raise UserError(f"cannot open the feedback database {path}: {exc}") from exc


def _pct(value: float) -> str:
    return f"{value * 100:5.1f}%"


def _rates_table(rows: list[dict[str, Any]], key: str, top: int) -> list[str]:
    lines = [f"  {'':<44} {'shown':>7} {'accept':>7} {'edit':>7} {'discard':>7}"]
    for row in rows[:top]:
        lines.append(
            f"  {str(row[key])[:44]:<44} {row['shown']:>7} {_pct(row['acceptance_rate']):>7}"
            f" {_pct(row['edit_rate']):>7} {_pct(row['discard_rate']):>7}"
        )
    if len(rows) > top:
        lines.append(f"  … {len(rows) - top} more (--top, or --json for all)")
    return lines


def format_report(report: dict[str, Any], *, top: int = 10) -> str:
    """The report as plain text for a terminal."""
    totals = report["totals"]
    period = report["period"]
    scope = ", ".join(f"{k} {v}" for k, v in period.items() if v) or "all time"
    lines = [f"Feedback report ({scope})", ""]
    if not totals["shown"]:
        lines.append("No suggestions recorded in this period.")
    else:
        lines.append(
            f"Suggestions shown: {totals['shown']}; accepted {_pct(totals['acceptance_rate'])},"
            f" edited {_pct(totals['edit_rate'])}, discarded {_pct(totals['discard_rate'])},"
            f" ignored {_pct(totals['ignored_rate'])}"
        )
        if "mean_time_to_action_ms" in totals:
            lines.append(f"Mean time to action: {totals['mean_time_to_action_ms'] / 1000:.1f} s")
        for title, key, name in (
            ("By intent", "by_intent", "intent"),
            ("By template", "by_template", "template_id"),
            ("By article", "by_article", "article_id"),
        ):
            if report[key]:
                lines += ["", f"{title}:", *_rates_table(report[key], name, top)]
    if report["most_discarded"]:
        lines += ["", "Most discarded:"]
        for row in report["most_discarded"]:
            reason = f", mostly {row['top_reason']}" if row["top_reason"] else ""
            lines.append(
                f"  {row['item_id']}: {row['discarded']} of {row['shown']}"
                f" ({_pct(row['discard_rate']).strip()}{reason})"
            )
    if report["discard_reasons"]:
        reasons = ", ".join(f"{k} {v}" for k, v in report["discard_reasons"].items())
        lines += ["", f"Discard reasons: {reasons}"]
    if report["flag_precision"]:
        lines += ["", "Flag precision (1 - marked not right / shown):"]
        for row in report["flag_precision"][:top]:
            precision = "n/a" if row["precision"] is None else _pct(row["precision"]).strip()
            lines.append(f"  {row['flag']}: {precision} ({row['wrong']} of {row['shown']} wrong)")
    if report["article_feedback"]:
        lines += ["", "Articles rated:"]
        for row in report["article_feedback"][:top]:
            lines.append(
                f"  {row['article_id']}: {row['helpful']} helpful, {row['not_helpful']} not"
            )
    if report["intent_corrections"]:
        lines += ["", "Intent corrections:"]
        for row in report["intent_corrections"]:
            lines.append(f"  {row['intent']} -> {row['corrected_intent']}: {row['count']}")
    if report["retrieval_misses"]:
        lines += ["", f"Retrieval misses: {report['retrieval_misses']} (see `copilot gaps`)"]
    latency = report["suggestion_latency_ms"]
    if latency["n"]:
        lines += [
            "",
            f"Suggestion latency: p50 {latency['p50']} ms, p95 {latency['p95']} ms"
            f" ({latency['n']} shown)",
        ]
    if report["trend"]:
        lines += ["", "Trend (last 14 days with suggestions):"]
        for row in report["trend"][-14:]:
            lines.append(
                f"  {row['day']}  shown {row['shown']:>6}  accepted {_pct(row['acceptance_rate'])}"
                f"  edited {_pct(row['edit_rate'])}  discarded {_pct(row['discard_rate'])}"
            )
    return "\n".join(lines)


def run_report(args: argparse.Namespace) -> int:
    from copilot.cli import UserError

    if args.top < 1:
        raise UserError("--top must be at least 1")
    with open_store(args) as store:
        try:
            report = store.report(
                since=args.since, until=args.until, intent=args.intent, kind=args.kind, top=args.top
            )
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    if args.json:
        _common.print_json(report)
    else:
        print(format_report(report, top=args.top))
    return 0


def run_export(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from copilot.cli import UserError

    with open_store(args) as store:
        try:
            if args.out == "-":
                count = store.export(
                    sys.stdout, fmt=args.format, since=args.since, until=args.until
                )
            else:
                out = Path(args.out)
                if out.parent and not out.parent.is_dir():
                    raise UserError(f"no such directory: {out.parent}")
                tmp = out.with_name(f".{out.name}.part")
                try:
                    # newline="": the csv module writes its own \r\n line ends.
                    with tmp.open("w", encoding="utf-8", newline="") as handle:
                        count = store.export(
                            handle, fmt=args.format, since=args.since, until=args.until
                        )
                    os.replace(tmp, out)
                finally:
                    tmp.unlink(missing_ok=True)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    if args.out != "-":
        print(f"wrote {count} actions to {args.out}", file=sys.stderr)
    return 0
