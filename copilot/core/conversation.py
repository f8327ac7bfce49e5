"""Turns and conversations: incoming events are validated, redacted on arrival, then stored.

`parse_turn_event` turns an outside event (a JSON object from a source) into a `Turn` whose text
is still as received. `Conversation.apply` redacts it before keeping anything and returns a NEW
conversation: a `Conversation` is immutable, so the pipeline thread can read one snapshot while the
next event is applied. Copies are cheap (tuples of a few hundred turns at most).

Partial transcripts (``is_final`` false) are held in `Conversation.pending`, replaced by later
events with the same ``turn_id``, and dropped once the final version arrives. A repeated final
event with the same text is ignored; one with a different text replaces the stored text in place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from copilot.core.redaction import (
    EarlierRedaction,
    PiiType,
    Redaction,
    RedactionContext,
    redact,
)

__all__ = [
    "MAX_TEXT_CHARS",
    "Conversation",
    "Role",
    "Turn",
    "TurnEventError",
    "parse_turn_event",
]

MAX_TEXT_CHARS = 10_000
MAX_ID_CHARS = 200


class Role(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Turn:
    """One utterance or message.

    Inside a `Conversation` the text is redacted and `redactions` lists the replaced spans
    (offsets in the original text). A turn fresh from `parse_turn_event` is not redacted yet.
    """

    conversation_id: str
    turn_id: str
    role: Role
    text: str
    ts: dt.datetime
    is_final: bool = True
    redactions: tuple[Redaction, ...] = ()


class TurnEventError(ValueError):
    """An event that is not a valid turn; ``str()`` reads "field: reason"."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_ROLES: Mapping[str, Role] = MappingProxyType({r.value: r for r in Role})
_ROLE_NAMES = ", ".join(r.value for r in Role)
# Epoch seconds outside these bounds are milliseconds or garbage, not a time a turn was said.
_MIN_EPOCH = 0.0
_MAX_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z


def _identifier(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        raise TurnEventError(name, "is required")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TurnEventError(name, "must be a string")
    text = str(value).strip()
    if not text:
        raise TurnEventError(name, "must not be empty")
    if len(text) > MAX_ID_CHARS:
        raise TurnEventError(name, f"must be at most {MAX_ID_CHARS} characters")
    return text


def _timestamp(value: Any) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    if isinstance(value, bool):
        raise TurnEventError("ts", "must be an ISO-8601 string or epoch seconds")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds) or not _MIN_EPOCH <= seconds <= _MAX_EPOCH:
            raise TurnEventError("ts", "epoch seconds out of range")
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise TurnEventError("ts", "must be an ISO-8601 string or epoch seconds") from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=dt.UTC)  # sources without a zone speak UTC
        return parsed.astimezone(dt.UTC)
    raise TurnEventError("ts", "must be an ISO-8601 string or epoch seconds")


def parse_turn_event(obj: Mapping[str, Any]) -> Turn:
    """Validate an outside event and return the (not yet redacted) `Turn` it describes.

    Args:
        obj: ``{conversation_id, turn_id, role, text, ts?, is_final?}``. `role` is one of
            customer, agent, system (any case); `ts` is an ISO-8601 string (no zone means UTC)
            or epoch seconds, and defaults to now; `is_final` defaults to true. Other keys are
            ignored.

    Returns:
        A `Turn` with a timezone-aware UTC `ts`. Pass it straight to `Conversation.apply`,
        which redacts it before anything is kept.

    Raises:
        TurnEventError: naming the first invalid field, e.g. "role: must be one of customer,
            agent, system".
    """
    if not isinstance(obj, Mapping):
        raise TurnEventError("event", "must be a JSON object")
    conversation_id = _identifier(obj, "conversation_id")
    turn_id = _identifier(obj, "turn_id")
    raw_role = obj.get("role")
    role = _ROLES.get(raw_role.strip().lower()) if isinstance(raw_role, str) else None
    if role is None:
        raise TurnEventError("role", f"must be one of {_ROLE_NAMES}")
    text = obj.get("text")
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        raise TurnEventError("text", f"must be a string of at most {MAX_TEXT_CHARS} characters")
    is_final = obj.get("is_final", True)
    if not isinstance(is_final, bool):
        raise TurnEventError("is_final", "must be true or false")
    return Turn(conversation_id, turn_id, role, text, _timestamp(obj.get("ts")), is_final)


def _new_key() -> bytes:
    return secrets.token_bytes(16)


@dataclass(frozen=True, slots=True)
class Conversation:
    """The final turns of one conversation in arrival order, plus partial turns in progress.

    Immutable: `apply` returns a new conversation and leaves this one untouched.

    Attributes:
        conversation_id: set by the first turn applied when left empty.
        turns: final turns, redacted, in arrival order.
        pending: partial turns (``is_final`` false), redacted, by first arrival.
    """

    conversation_id: str = ""
    turns: tuple[Turn, ...] = ()
    pending: tuple[Turn, ...] = ()
    # What redaction of the next customer turn needs: the trailing digits of the previous
    # customer turn(s) while a card number may still be being read out. Held here only.
    context: RedactionContext = field(default=RedactionContext(), repr=False)
    # turn_id -> position in `turns`, and a keyed digest of each final turn's original text so a
    # repeated event is recognised without keeping the unredacted text.
    _index: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )
    _digests: tuple[bytes, ...] = field(default=(), repr=False, compare=False)
    _key: bytes = field(default_factory=_new_key, repr=False, compare=False)

    def apply(self, turn: Turn) -> Conversation:
        """Return the conversation after `turn` (from `parse_turn_event`) arrived.

        The text is redacted before it is kept, partial or final. When this turn completes a
        card number begun in earlier customer turns, those turns' digits are replaced too.

        Raises:
            ValueError: the turn belongs to another conversation.
        """
        if self.conversation_id and turn.conversation_id != self.conversation_id:
            raise ValueError(
                f"turn {turn.turn_id!r} belongs to conversation {turn.conversation_id!r},"
                f" not {self.conversation_id!r}"
            )
        conversation_id = self.conversation_id or turn.conversation_id
        position = self._index.get(turn.turn_id)
        if position is not None:
            if not turn.is_final:
                return self  # a late partial of a turn that is already final
            return self._correct(position, turn)

        customer = turn.role is Role.CUSTOMER
        result = redact(turn.text, context=self.context if customer else None, turn_id=turn.turn_id)
        stored = replace(turn, text=result.text, redactions=result.spans)
        turns = self.turns
        context = self.context
        if result.earlier:
            turns, context = _rewrite_earlier(turns, self._index, context, result.earlier)
        pending = tuple(p for p in self.pending if p.turn_id != turn.turn_id)
        if not turn.is_final:
            held = list(self.pending)
            for i, p in enumerate(held):
                if p.turn_id == turn.turn_id:
                    held[i] = stored
                    break
            else:
                held.append(stored)
            return replace(
                self,
                conversation_id=conversation_id,
                turns=turns,
                pending=tuple(held),
                context=context,
            )
        if customer:
            context = result.context
        elif turn.role is Role.AGENT:
            context = context.after_other_turn(turn.text)
        index = dict(self._index)
        index[turn.turn_id] = len(turns)
        return replace(
            self,
            conversation_id=conversation_id,
            turns=(*turns, stored),
            pending=pending,
            context=context,
            _index=MappingProxyType(index),
            _digests=(*self._digests, self._digest(turn.text)),
        )

    def _digest(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16, key=self._key).digest()

    def _correct(self, position: int, turn: Turn) -> Conversation:
        """A final event for a turn already stored: ignore a repeat, replace a correction."""
        digest = self._digest(turn.text)
        if digest == self._digests[position]:
            return self
        old = self.turns[position]
        # The old text held part of a card number read over several turns: the corrected text
        # is redacted as if a card number were being read, so its digits stay hidden too.
        card_context = any(r.type is PiiType.CARD for r in old.redactions)
        result = redact(turn.text, context=RedactionContext(card_context=card_context))
        stored = replace(old, text=result.text, redactions=result.spans, ts=turn.ts)
        turns = (*self.turns[:position], stored, *self.turns[position + 1 :])
        digests = (*self._digests[:position], digest, *self._digests[position + 1 :])
        return replace(
            self, turns=turns, _digests=digests, context=self.context.without_turn(turn.turn_id)
        )

    # -- reading -----------------------------------------------------------------------------

    def customer_turns(self) -> tuple[Turn, ...]:
        """Final customer turns, oldest first."""
        return tuple(t for t in self.turns if t.role is Role.CUSTOMER)

    def last(self, n: int, role: Role | str | None = None) -> tuple[Turn, ...]:
        """The last `n` final turns (of `role` when given), oldest first."""
        if n <= 0:
            return ()
        if role is None:
            return self.turns[-n:]
        wanted = Role(role)
        picked: list[Turn] = []
        for t in reversed(self.turns):
            if t.role is wanted:
                picked.append(t)
                if len(picked) == n:
                    break
        return tuple(reversed(picked))

    def text_window(self, n: int, role: Role | str | None = None) -> str:
        """The (redacted) texts of the last `n` final turns, oldest first, one per line."""
        return "\n".join(t.text for t in self.last(n, role))

    def turn(self, turn_id: str) -> Turn | None:
        """The final turn with `turn_id`, or None."""
        position = self._index.get(turn_id)
        return None if position is None else self.turns[position]


def _rewrite_earlier(
    turns: tuple[Turn, ...],
    index: Mapping[str, int],
    context: RedactionContext,
    earlier: tuple[EarlierRedaction, ...],
) -> tuple[tuple[Turn, ...], RedactionContext]:
    """Replace the card fragments of earlier turns; keep the context pointing at the new spans.

    Re-applying the same rewrite (a partial then the final of the continuing turn) replaces
    the placeholder with itself, so it is harmless.
    """
    updated = list(turns)
    fragments = list(context.fragments)
    for item in earlier:
        position = index.get(item.turn_id)
        if position is None:
            continue
        old = updated[position]
        placeholder = item.redaction.placeholder
        text = old.text[: item.start] + placeholder + old.text[item.end :]
        kept = [
            r
            for r in old.redactions
            if not (r.start < item.redaction.end and item.redaction.start < r.end)
        ]
        redactions = tuple(sorted((*kept, item.redaction), key=lambda r: r.start))
        updated[position] = replace(old, text=text, redactions=redactions)
        for i, f in enumerate(fragments):
            if f.turn_id == item.turn_id and f.start == item.start:
                fragments[i] = replace(f, end=f.start + len(placeholder))
    new_context = replace(context, fragments=tuple(fragments))
    return tuple(updated), new_context
