"""The handover packet (escalation or transfer) and the wrap-up note (after-call work).

A handover is designed so that the customer never has to repeat themselves: its first lines
carry the reason for escalation, the issue, what the customer wants, what was verified, what was
tried and what was promised; the sections below give the key facts, open items, flags, policy
checks and articles; the redacted transcript with roles and times comes last. `Handover.as_text`
is what an agent pastes into the helpdesk (plain text, no HTML); `Handover.as_json` is the same
content with stable keys for an integration.

`wrap_up` writes the after-call note: reason for contact, outcome, actions, follow-ups with due
dates (worked out from "tomorrow", "within 3 working days", "on Thursday", "by 25 November" ...)
and reference numbers.

Pure: the transcript is redacted once more on the way out (a turn that did not come through
`Conversation.apply` still cannot leak a card number into the clipboard).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from copilot.core.redaction import redact
from copilot.core.summary import (
    FlagLike,
    HitLike,
    LedgerItemLike,
    Summary,
    TurnLike,
)

__all__ = [
    "HANDOVER_SCHEMA",
    "Handover",
    "TranscriptLine",
    "due_date",
    "handover",
    "wrap_up",
]

HANDOVER_SCHEMA = "copilot.handover/1"

_ROLE_LABELS = {"customer": "Customer", "agent": "Agent", "system": "System"}
_REASONS = {
    "legal_threat": "Legal threat",
    "human_request": "Customer asked for a manager",
    "regulator_mention": "Regulator or ombudsman mentioned",
    "distress": "Customer in distress",
    "bereavement": "Bereavement",
    "vulnerability_bereavement": "Bereavement",
    "repeat_contact": "Repeat contact",
    "frustration": "Customer very frustrated",
}
_LEVELS = {"low": 0, "medium": 1, "high": 2, "critical": 3}
_IDENTITY = re.compile(r"identity|\bIDV\b|verif", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\[[^\[\]\n]{1,40}\]")
_HTML_TAG = re.compile(r"<(/?[A-Za-z!][^<>]*)>")


def _text(value: object) -> str:
    return str(getattr(value, "value", value))


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One redacted turn of the transcript."""

    turn_id: str
    role: str
    text: str
    ts: dt.datetime | None = None

    @property
    def time(self) -> str:
        return self.ts.strftime("%H:%M:%S") if self.ts else "--:--:--"


@dataclass(frozen=True, slots=True)
class Handover:
    """Everything the person picking up the conversation needs, in one packet.

    Build it with `handover`. Tuples of pairs keep it immutable and hashable.
    """

    summary: Summary
    reason: str
    conversation_id: str = ""
    intent: str | None = None
    intent_name: str | None = None
    stakes: str | None = None
    routing_layer: str | None = None
    verified: tuple[str, ...] = ()
    actions_completed: tuple[str, ...] = ()
    flags: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (kind, level, quotes)
    policy: tuple[tuple[str, str], ...] = ()  # (status, title)
    articles: tuple[tuple[str, str], ...] = ()  # (article_id, title)
    transcript: tuple[TranscriptLine, ...] = field(default=())

    @property
    def done(self) -> tuple[str, ...]:
        """What was tried or done: the summary's list, then actions the pipeline recorded."""
        seen = list(self.summary.tried)
        seen.extend(a for a in self.actions_completed if a not in seen)
        return tuple(seen)

    def as_text(self) -> str:
        """Plain text for the helpdesk: the essentials first, headed sections, transcript last."""
        s = self.summary
        lines = [f"HANDOVER{self._when()}"]
        lines.append(f"Reason for escalation: {self.reason}")
        lines.append(f"Issue: {s.issue or 'not stated yet'}")
        if s.goal:
            lines.append(f"Customer wants: {s.goal}")
        lines.append(f"Verified: {'; '.join(self.verified)}")
        lines.append(f"Tried / done: {'; '.join(self.done) if self.done else 'nothing yet'}")
        promises = "; ".join(p.text for p in s.promises)
        lines.append(f"Promises made: {promises or 'none'}")
        routing = [
            f"intent {self.intent}" + (f" ({self.intent_name})" if self.intent_name else "")
            if self.intent
            else "",
            f"stakes {self.stakes}" if self.stakes else "",
            f"layer {self.routing_layer}" if self.routing_layer else "",
        ]
        if any(routing):
            lines.append("Routing: " + ", ".join(r for r in routing if r))
        lines.append(f"Sentiment: {s.sentiment}")

        def section(title: str, items: Sequence[str]) -> None:
            lines.append("")
            lines.append(title)
            lines.extend(f"- {item}" for item in items) if items else lines.append("- none")

        section("KEY FACTS", [f"{f.kind.capitalize()}: {f.value}" for f in s.key_facts])
        section("OPEN ITEMS", list(s.open_items))
        lines.append("")
        lines.append("SUGGESTED NEXT STEP")
        lines.append(s.next_step or "-")
        section(
            "FLAGS",
            [
                f"{kind.replace('_', ' ')} ({level})"
                + (f": “{'”, “'.join(quotes)}”" if quotes else "")
                for kind, level, quotes in self.flags
            ],
        )
        section("POLICY CHECKS", [f"[{status}] {title}" for status, title in self.policy])
        section("ARTICLES USED", [f"{aid} {title}".strip() for aid, title in self.articles])
        lines.append("")
        lines.append("TRANSCRIPT (redacted, times UTC)")
        lines.extend(
            f"[{t.time}] {_ROLE_LABELS.get(t.role, t.role.capitalize())}: {t.text}"
            for t in self.transcript
        )
        return "\n".join(lines)

    def _when(self) -> str:
        parts = []
        if self.conversation_id:
            parts.append(f"conversation {self.conversation_id}")
        stamped = [t.ts for t in self.transcript if t.ts]
        if stamped:
            first, last = stamped[0], stamped[-1]
            parts.append(f"{first:%d %b %Y} {first:%H:%M}–{last:%H:%M} UTC")
        return f" — {', '.join(parts)}" if parts else ""

    def as_json(self) -> dict[str, Any]:
        """The packet as a JSON-ready dict. Keys are stable (schema ``copilot.handover/1``):

        - ``schema``: "copilot.handover/1"
        - ``conversation_id``: str
        - ``created_at``: ISO-8601 time of the last turn, or null
        - ``reason``: str, the reason for escalation or transfer
        - ``intent``: {``id``, ``name``, ``stakes``, ``routing_layer``} (each str or null)
        - ``issue``, ``goal``, ``next_step``, ``sentiment``: str
        - ``verified``: [str]; ``tried``: [str] (summary and completed actions, in order)
        - ``promises``: [{``text``, ``turn_id``}]
        - ``key_facts``: [{``kind``, ``value``, ``turn_id``}]
        - ``open_items``: [str]
        - ``flags``: [{``kind``, ``level``, ``quotes``: [str]}]
        - ``policy``: [{``status``, ``title``}]
        - ``articles``: [{``article_id``, ``title``}]
        - ``transcript``: [{``turn_id``, ``time`` (ISO-8601 or null), ``role``, ``text``}]
        """
        s = self.summary
        return {
            "schema": HANDOVER_SCHEMA,
            "conversation_id": self.conversation_id,
            "created_at": s.as_of.isoformat() if s.as_of else None,
            "reason": self.reason,
            "intent": {
                "id": self.intent,
                "name": self.intent_name,
                "stakes": self.stakes,
                "routing_layer": self.routing_layer,
            },
            "issue": s.issue,
            "goal": s.goal,
            "verified": list(self.verified),
            "tried": list(self.done),
            "promises": [{"text": p.text, "turn_id": p.turn_id} for p in s.promises],
            "key_facts": [
                {"kind": f.kind, "value": f.value, "turn_id": f.turn_id} for f in s.key_facts
            ],
            "open_items": list(s.open_items),
            "next_step": s.next_step,
            "sentiment": s.sentiment,
            "flags": [
                {"kind": kind, "level": level, "quotes": list(quotes)}
                for kind, level, quotes in self.flags
            ],
            "policy": [{"status": status, "title": title} for status, title in self.policy],
            "articles": [{"article_id": aid, "title": title} for aid, title in self.articles],
            "transcript": [
                {
                    "turn_id": t.turn_id,
                    "time": t.ts.isoformat() if t.ts else None,
                    "role": t.role,
                    "text": t.text,
                }
                for t in self.transcript
            ],
        }


def _reason(escalation_reason: str | None, flags: Sequence[FlagLike], intent: str | None) -> str:
    if escalation_reason:
        return escalation_reason
    ranked = sorted(flags, key=lambda f: _LEVELS.get(_text(f.level).lower(), 0), reverse=True)
    reasons: list[str] = []
    for flag in ranked:
        label = _REASONS.get(_text(flag.kind))
        if label is None or any(r.startswith(label) for r in reasons):
            continue
        quote = flag.evidence[0].quote if flag.evidence else ""
        reasons.append(f"{label} (“{quote}”)" if quote else label)
    if not reasons and intent == "speak_to_manager":
        reasons.append(_REASONS["human_request"])
    return "; ".join(reasons[:3]) or "Transfer requested by the agent (no reason given)"


def _verified(summary: Summary, ledger: Sequence[LedgerItemLike]) -> tuple[str, ...]:
    for entry in ledger:
        if _IDENTITY.search(entry.title):
            status = _text(entry.status).lower()
            if status in ("done", "met", "passed", "verified", "complete", "completed"):
                return summary.verified or (f"Identity verified (policy step done: {entry.title})",)
            if status in ("pending", "missed"):
                return (f"Identity NOT verified ({entry.title}: {status})",)
    return summary.verified or ("Identity not confirmed in this conversation",)


def _article(item: HitLike | str) -> tuple[str, str]:
    if isinstance(item, str):
        return (item, "")
    return (item.article_id, item.title)


def _safe(text: str) -> str:
    """Redact again (a turn that bypassed `Conversation.apply` must not reach the clipboard),
    leaving existing placeholders alone: "[CARD •••• 1111]" must not become "[CARD •••• [CVV]]".
    """
    pieces = _PLACEHOLDER.split(text)
    placeholders = _PLACEHOLDER.findall(text)
    out = [redact(pieces[0]).text if pieces[0].strip() else pieces[0]]
    for placeholder, piece in zip(placeholders, pieces[1:], strict=True):
        out.append(placeholder)
        out.append(redact(piece).text if piece.strip() else piece)
    return _HTML_TAG.sub(r"‹\1›", "".join(out))


def _safe_summary(summary: Summary) -> Summary:
    """The summary with every text redacted again (it may have been built from raw turns)."""
    return replace(
        summary,
        issue=_safe(summary.issue),
        goal=_safe(summary.goal),
        key_facts=tuple(replace(f, value=_safe(f.value)) for f in summary.key_facts),
        tried=tuple(_safe(t) for t in summary.tried),
        promises=tuple(replace(p, text=_safe(p.text)) for p in summary.promises),
        open_items=tuple(_safe(o) for o in summary.open_items),
        next_step=_safe(summary.next_step),
    )


def handover(
    summary: Summary,
    *,
    intent: str | None = None,
    intent_name: str | None = None,
    stakes: str | None = None,
    routing_layer: str | None = None,
    escalation_reason: str | None = None,
    flags: Sequence[FlagLike] = (),
    ledger: Sequence[LedgerItemLike] = (),
    actions_completed: Sequence[str] = (),
    articles_used: Sequence[HitLike | str] = (),
    turns: Sequence[TurnLike] = (),
) -> Handover:
    """Build the handover packet for an escalation or a transfer.

    Args:
        summary: the current `summarise` result.
        intent, intent_name: the intent id and its readable name, if known.
        stakes: "low" | "medium" | "high" | ... as routing assessed it.
        routing_layer: which layer owns the contact (e.g. "human_only").
        escalation_reason: why it is handed over; derived from the flags when None
            (legal threat, manager requested, distress, ...), with the customer's words.
        flags: signal flags (kind, level, evidence).
        ledger: policy ledger entries (status, title); an identity step decides "Verified".
        actions_completed: actions recorded by the co-pilot (accepted suggestions and so on).
        articles_used: knowledge hits or article ids the agent relied on.
        turns: the conversation's turns (redacted), for the transcript.

    Returns:
        A `Handover`; use `.as_text()` for the helpdesk and `.as_json()` for integrations.
    """
    flag_rows = tuple(
        (
            _text(f.kind),
            _text(f.level),
            tuple(_safe(e.quote) for e in f.evidence[:2]),
        )
        for f in sorted(flags, key=lambda f: _LEVELS.get(_text(f.level).lower(), 0), reverse=True)
    )
    transcript = tuple(
        TranscriptLine(
            turn_id=t.turn_id,
            role=_text(t.role).lower(),
            text=_safe(t.text),
            ts=ts if isinstance(ts := getattr(t, "ts", None), dt.datetime) else None,
        )
        for t in turns
    )
    conversation_id = str(getattr(turns[0], "conversation_id", "")) if turns else ""
    return Handover(
        summary=_safe_summary(summary),
        reason=_reason(escalation_reason, flags, intent),
        conversation_id=conversation_id,
        intent=intent,
        intent_name=intent_name,
        stakes=stakes,
        routing_layer=routing_layer,
        verified=_verified(summary, ledger),
        actions_completed=tuple(_safe(a) for a in actions_completed),
        flags=flag_rows,
        policy=tuple((_text(e.status).lower(), e.title) for e in ledger),
        articles=tuple(_article(a) for a in articles_used),
        transcript=transcript,
    )


# -- wrap-up ------------------------------------------------------------------------------------

_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_N = r"(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten)"
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_SAME_DAY = re.compile(
    r"\b(?:today|tonight|this (?:morning|afternoon|evening)|within the hour|shortly|"
    r"within \d+ (?:working )?hours?|by \d{1,2}(?::\d\d)?\s?(?:am|pm))\b",
    re.IGNORECASE,
)
_TOMORROW = re.compile(r"\btomorrow\b", re.IGNORECASE)
_WORKING_DAYS = re.compile(
    r"\b(?:within |in )?(?:" + _N + r"\s*(?:to|-|–)\s*)?" + _N + r" working days?\b",
    re.IGNORECASE,
)
_HOURS = re.compile(r"\bwithin " + _N + r" hours?\b", re.IGNORECASE)
_WEEKS = re.compile(r"\bwithin " + _N + r" weeks?\b|\bnext week\b", re.IGNORECASE)
_MONTH_SPAN = re.compile(r"\bwithin (?:one|a|1) month\b|\bnext month\b", re.IGNORECASE)
_DATE = re.compile(
    r"\b(\d{1,2})(?:st|nd|rd|th)?(?: of)? ("
    + "|".join(sorted(_MONTHS, key=len, reverse=True))
    + r")\b",
    re.IGNORECASE,
)
_WEEKDAY = re.compile(r"\b(" + "|".join(_WEEKDAYS) + r")\b", re.IGNORECASE)


def _number(word: str | None) -> int:
    if word is None:
        return 0
    return int(word) if word.isdigit() else _NUMBERS.get(word.lower(), 0)


def _add_working_days(day: dt.date, n: int) -> dt.date:
    while n > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def _add_month(day: dt.date) -> dt.date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_date(text: str, today: dt.date) -> dt.date | None:
    """When a promise falls due, from the words it uses; None when it names no time.

    "by 25 November" -> that date; "on Thursday" -> the next Thursday; "tomorrow";
    "within 3 working days" / "3 to 5 working days" -> the later end, in working days;
    "within 48 hours"; "within 8 weeks"; "within one month"; "today", "tonight",
    "within 4 working hours" -> today.
    """
    if m := _DATE.search(text):
        month = _MONTHS[m.group(2).lower()]
        day = int(m.group(1))
        if 1 <= day <= calendar.monthrange(today.year, month)[1]:
            found = dt.date(today.year, month, day)
            # A date more than a month behind today is next year's ("by 5 January" in December).
            return (
                found
                if found >= today - dt.timedelta(days=31)
                else found.replace(year=today.year + 1)
            )
    if m := _WORKING_DAYS.search(text):
        return _add_working_days(today, max(_number(m.group(1)), _number(m.group(2))))
    if m := _HOURS.search(text):
        return today + dt.timedelta(days=-(-_number(m.group(1)) // 24))
    if m := _WEEKS.search(text):
        return today + dt.timedelta(weeks=_number(m.group(1)) or 1)
    if _MONTH_SPAN.search(text):
        return _add_month(today)
    if _TOMORROW.search(text):
        return today + dt.timedelta(days=1)
    if m := _WEEKDAY.search(text):
        ahead = (_WEEKDAYS.index(m.group(1).lower()) - today.weekday()) % 7 or 7
        return today + dt.timedelta(days=ahead)
    if _SAME_DAY.search(text):
        return today
    return None


def _outcome(summary: Summary) -> str:
    escalated = any(
        re.search(r"team leader|supervisor|manager|Bereavement Team", t, re.IGNORECASE)
        for t in (*summary.tried, *(p.text for p in summary.promises))
    )
    follow_ups = [o for o in summary.open_items if not o.startswith("Question: ")]
    questions = [o for o in summary.open_items if o.startswith("Question: ")]
    if escalated:
        return "Escalated; follow-up booked" if follow_ups else "Escalated"
    if questions:
        return "Open: the customer's question is not answered yet"
    if follow_ups:
        return "Resolved in the contact; follow-ups pending"
    return "Resolved in the contact"


def wrap_up(
    summary: Summary,
    *,
    intent_name: str | None = None,
    outcome: str | None = None,
    actions_completed: Sequence[str] = (),
    today: dt.date | None = None,
) -> str:
    """The after-call note: reason for contact, outcome, actions, follow-ups with dates, refs.

    Args:
        summary: the final `summarise` result.
        intent_name: the readable intent, used as the reason for contact when known.
        outcome: what the agent records as the outcome; inferred from the summary when None.
        actions_completed: extra actions the co-pilot recorded (accepted suggestions ...).
        today: the date the contact took place (default: the date of the last turn), from
            which "tomorrow" or "within 3 working days" become dates.

    Returns:
        Plain text, one "Label: value" line per part and one bullet per follow-up.
    """
    day = today or (summary.as_of.date() if summary.as_of else None)
    reason = intent_name or summary.issue or "not recorded"
    if intent_name and summary.issue:
        reason = f"{intent_name}: {summary.issue}"
    actions = list(summary.tried)
    actions.extend(a for a in actions_completed if a not in actions)
    lines = [
        f"Reason for contact: {reason}",
        f"Outcome: {outcome or _outcome(summary)}",
        "Actions: " + ("; ".join(actions) if actions else "none"),
    ]
    follow_ups = [o for o in summary.open_items if not o.startswith("Question: ")]
    lines.append("Follow-ups:" if follow_ups else "Follow-ups: none")
    for item in follow_ups:
        text = item.removeprefix("Promise: ")
        due = due_date(text, day) if day else None
        lines.append(f"- {text}" + (f" (due {due:%a %d %b %Y})" if due else ""))
    refs = [f.value for f in summary.facts("order", "account", "reference")]
    lines.append("References: " + (", ".join(refs) if refs else "none"))
    return "\n".join(lines)
