"""A snapshot as plain text: ``copilot replay`` and the headless demo print this."""

from __future__ import annotations

import textwrap

from copilot.core.pipeline import Snapshot

_WIDTH = 96


def _wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(
        " ".join(text.split()), width=_WIDTH, initial_indent=indent, subsequent_indent=indent
    )


def snapshot_text(snapshot: Snapshot, *, title: str = "") -> str:
    """The panel's sections as text, most urgent first."""
    lines: list[str] = []
    head = title or f"{snapshot.conversation_id} after turn {snapshot.last_turn_id}"
    lines.append(f"=== {head} ({snapshot.total_ms:.1f} ms)")
    flags = snapshot.flags
    lines.append("FLAGS")
    if flags:
        for flag in flags:
            quotes = "; ".join(f"“{e.quote}”" for e in flag.evidence[-2:])
            lines.append(f"  [{str(flag.level).upper():8}] {flag.kind}: {flag.message}  {quotes}")
    else:
        lines.append("  none")
    if snapshot.signals and snapshot.signals.sentiment:
        s = snapshot.signals.sentiment
        lines.append(
            f"  sentiment {s.label} ({s.score:+.2f}), trend {snapshot.signals.trend.trend}"
        )
    intent = snapshot.intent
    if intent is not None:
        if intent.intent:
            name = intent.intent_name or intent.intent
            lines.append(
                f"ROUTING  {name} ({intent.confidence:.0%}) → {intent.layer or 'unknown layer'}"
            )
        else:
            lines.append("ROUTING  no confident intent (out of scope)")
        for reason in intent.reasons:
            lines.append(f"  {reason}")
    policy = snapshot.policy
    if policy is not None:
        lines.append("POLICY")
        for finding in policy.findings[:6]:
            lines.append(
                f"  [{str(finding.severity).upper():8}] {finding.message} ({finding.article_id})"
            )
        for entry in policy.ledger:
            mark = {"done": "✓", "missed": "✗", "pending": "…"}.get(str(entry.status), " ")
            if str(entry.status) in ("done", "missed", "pending"):
                lines.append(f"  {mark} {entry.title}: {entry.status}")
    lines.append("SUGGESTED REPLIES")
    if not snapshot.suggestions:
        lines.append("  none")
    for number, suggestion in enumerate(snapshot.suggestions, start=1):
        lines.append(f"  {number}. [{suggestion.confidence:.0%}] {suggestion.title}")
        lines.append(_wrap(suggestion.text, "     "))
        lines.append(f"     why: {suggestion.why}")
    lines.append("KNOWLEDGE")
    if not snapshot.hits:
        lines.append("  none")
    elif not snapshot.retrieval_confident:
        lines.append("  (nothing confident: these are the closest articles)")
    for hit in snapshot.hits[:3]:
        lines.append(f"  {hit.article_id}  {hit.title}  ({hit.score:.2f})")
        lines.append(f"     § {hit.best.passage.heading}")
    if snapshot.summary is not None:
        lines.append("SUMMARY")
        for line in snapshot.summary.as_text().splitlines():
            lines.append(f"  {line}")
    for stage, error in snapshot.errors.items():
        lines.append(f"ERROR in {stage}: {error}")
    return "\n".join(lines)
