"""What the agent did with the co-pilot's output: one immutable `FeedbackAction` per click.

The panel records an action for every suggestion shown, accepted, edited or discarded, every
article marked helpful or not, every flag marked "not right" and every intent the agent corrected.
A `copilot.core.protocols.FeedbackSink` stores them (SQLite in the app, a list in tests); the
store turns them into priors that re-rank future suggestions, harvested reply wording and
knowledge-gap reports.

Only redacted text is ever put in an action: `outgoing_text` redacts again whatever the agent is
about to paste into their main tool, so a card number typed into an edited reply reaches neither
the clipboard nor the store.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rapidfuzz.distance import Levenshtein

from copilot.core.redaction import redact

__all__ = [
    "DISCARD_REASON_LABELS",
    "DiscardReason",
    "FeedbackAction",
    "FeedbackKind",
    "edit_distance",
    "outgoing_text",
]


class FeedbackKind(StrEnum):
    ACCEPT = "accept"
    EDIT = "edit"
    DISCARD = "discard"
    ARTICLE_HELPFUL = "article_helpful"
    ARTICLE_NOT_HELPFUL = "article_not_helpful"
    FLAG_WRONG = "flag_wrong"
    INTENT_CORRECTED = "intent_corrected"
    SUGGESTION_SHOWN = "suggestion_shown"
    #: A suggestion shown but never answered before the conversation moved on or ended.
    IGNORED = "ignored"
    #: A flag or policy finding was shown (the denominator of flag precision).
    FLAG_SHOWN = "flag_shown"
    #: Retrieval found nothing confident for the customer's words (`query`): a knowledge gap.
    RETRIEVAL_MISS = "retrieval_miss"


class DiscardReason(StrEnum):
    WRONG_TOPIC = "wrong_topic"
    WRONG_TONE = "wrong_tone"
    OUTDATED = "outdated"
    POLICY = "policy"
    OTHER = "other"


#: What the one-click reason buttons say, in the order they are shown.
DISCARD_REASON_LABELS: dict[DiscardReason, str] = {
    DiscardReason.WRONG_TOPIC: "Wrong topic",
    DiscardReason.WRONG_TONE: "Wrong tone",
    DiscardReason.OUTDATED: "Outdated",
    DiscardReason.POLICY: "Policy",
    DiscardReason.OTHER: "Other",
}

_SUGGESTION_KINDS = frozenset(
    {
        FeedbackKind.ACCEPT,
        FeedbackKind.EDIT,
        FeedbackKind.DISCARD,
        FeedbackKind.SUGGESTION_SHOWN,
        FeedbackKind.IGNORED,
    }
)
_ARTICLE_KINDS = frozenset({FeedbackKind.ARTICLE_HELPFUL, FeedbackKind.ARTICLE_NOT_HELPFUL})


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class FeedbackAction:
    """One thing the agent did, with what they were shown when they did it.

    Attributes:
        kind: what happened (`FeedbackKind`).
        conversation_id: the conversation it happened in.
        turn_id: the last turn of the snapshot the agent was looking at.
        item_id: what priors are kept against: the template id or passage id of a suggestion,
            the passage id of an article, the flag kind or policy rule id of a flag.
        suggestion_id: `Suggestion.id` (suggestion kinds only).
        suggestion_kind: ``"template"`` or ``"article"`` (suggestion kinds only).
        rank: 1-based position the suggestion or article was shown at.
        score: its ranking score (suggestions) or retrieval score (articles).
        shown_text: the text shown (redacted).
        sent_text: what the agent copied or sent (redacted); accept and edit only.
        edit_distance: Levenshtein distance from ``shown_text`` to ``sent_text`` (edit; 0 for
            accept).
        reason: why a suggestion was discarded, when the agent said.
        intent: the intent the pipeline predicted when the action was taken.
        flag_kind: the flag marked wrong (a signal flag kind, e.g. ``legal_threat``).
        flag_rule: the policy rule marked wrong (a rule id), for policy findings.
        corrected_intent: the intent (id, or free text) the agent chose instead.
        ts: when it happened (UTC).
        latency_ms: time from the item being first shown to this action, when known; for
            suggestion_shown, how long computing the suggestions took.
        agent_id: who acted.
        queue: the queue the conversation came from.
        channel: chat, voice, email, ...
        item_version: the template's or article's version (content hash or ``updated``).
        article_id: the article cited (article suggestions, article feedback).
        query: the customer words retrieval found nothing confident for (retrieval_miss).
        generated: the suggestion was written by the optional language model (AI-generated).
        action_id: unique id; a store records the same id once (safe to retry).
    """

    kind: FeedbackKind
    conversation_id: str
    turn_id: str | None = None
    item_id: str | None = None
    suggestion_id: str | None = None
    suggestion_kind: str | None = None
    rank: int | None = None
    score: float | None = None
    shown_text: str | None = None
    sent_text: str | None = None
    edit_distance: int | None = None
    reason: DiscardReason | None = None
    intent: str | None = None
    flag_kind: str | None = None
    flag_rule: str | None = None
    corrected_intent: str | None = None
    ts: dt.datetime = field(default_factory=_utc_now)
    latency_ms: float | None = None
    agent_id: str | None = None
    queue: str | None = None
    channel: str | None = None
    item_version: str | None = None
    article_id: str | None = None
    query: str | None = None
    generated: bool = False
    action_id: str = field(default_factory=_new_id)

    def __post_init__(self) -> None:
        kind = FeedbackKind(self.kind)  # raises ValueError for an unknown kind
        object.__setattr__(self, "kind", kind)
        if self.reason is not None:
            object.__setattr__(self, "reason", DiscardReason(self.reason))
        if not self.conversation_id:
            raise ValueError("conversation_id is required")
        if self.ts.tzinfo is None:
            raise ValueError("ts must be timezone-aware")
        if kind in _SUGGESTION_KINDS and not (self.suggestion_id and self.item_id):
            raise ValueError(f"{kind} needs suggestion_id and item_id")
        if kind in _ARTICLE_KINDS and not self.item_id:
            raise ValueError(f"{kind} needs item_id (the passage id)")
        if kind in (FeedbackKind.ACCEPT, FeedbackKind.EDIT) and self.sent_text is None:
            raise ValueError(f"{kind} needs sent_text")
        if self.reason is not None and kind is not FeedbackKind.DISCARD:
            raise ValueError("only a discard has a reason")
        if kind in (FeedbackKind.FLAG_WRONG, FeedbackKind.FLAG_SHOWN) and not (
            self.flag_kind or self.flag_rule
        ):
            raise ValueError(f"{kind} needs flag_kind or flag_rule")
        if kind is FeedbackKind.RETRIEVAL_MISS and not self.query:
            raise ValueError("retrieval_miss needs query")
        if kind is FeedbackKind.INTENT_CORRECTED and not self.corrected_intent:
            raise ValueError("intent_corrected needs corrected_intent")
        if self.rank is not None and self.rank < 1:
            raise ValueError("rank is 1-based")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the same field names (``ts`` as ISO-8601)."""
        return {
            "kind": self.kind.value,
            "conversation_id": self.conversation_id,
            "turn_id": self.turn_id,
            "item_id": self.item_id,
            "suggestion_id": self.suggestion_id,
            "suggestion_kind": self.suggestion_kind,
            "rank": self.rank,
            "score": self.score,
            "shown_text": self.shown_text,
            "sent_text": self.sent_text,
            "edit_distance": self.edit_distance,
            "reason": self.reason.value if self.reason is not None else None,
            "intent": self.intent,
            "flag_kind": self.flag_kind,
            "flag_rule": self.flag_rule,
            "corrected_intent": self.corrected_intent,
            "ts": self.ts.isoformat(),
            "latency_ms": self.latency_ms,
            "agent_id": self.agent_id,
            "queue": self.queue,
            "channel": self.channel,
            "item_version": self.item_version,
            "article_id": self.article_id,
            "query": self.query,
            "generated": self.generated,
            "action_id": self.action_id,
        }


def edit_distance(shown: str, sent: str) -> int:
    """Characters inserted, deleted or substituted to turn ``shown`` into ``sent`` (Levenshtein)."""
    return int(Levenshtein.distance(shown, sent))


# A redaction placeholder ("[CARD •••• 1111]", "[EMAIL]"): kept as it is, so redacting again
# does not turn its digits into a second placeholder.
_PLACEHOLDER = re.compile(r"\[[^\[\]\n]{1,40}\]")


def outgoing_text(text: str) -> str:
    """``text`` redacted again, leaving existing placeholders alone: what may leave the co-pilot.

    Suggestions are built from redacted turns, but an agent's edit can add anything; this runs
    on every text put on the clipboard or recorded as sent.
    """
    pieces = _PLACEHOLDER.split(text)
    placeholders = _PLACEHOLDER.findall(text)
    out = [redact(pieces[0]).text if pieces[0].strip() else pieces[0]]
    for placeholder, piece in zip(placeholders, pieces[1:], strict=True):
        out.append(placeholder)
        out.append(redact(piece).text if piece.strip() else piece)
    return "".join(out)
