"""Slot values taken from the conversation, and reply templates filled with them.

A reply template writes ``{order_number}``, ``{amount}`` and so on where a value from the
conversation belongs. `extract_slots` reads the (already redacted) turns and finds:

========================  ====================================================================
slot                      found in
========================  ====================================================================
``customer_name``         "my name is Sarah Jones", "this is Mrs Okafor", "Sarah here"; better:
                          how the agent addresses the customer ("Hi Sarah,", "Thanks, Mr Patel")
``agent_name``            agent turns: "you're speaking to Priya", "my name is Priya"
``order_number``          ``KS-`` + 8 digits, or 8 digits after "order (number)"
``account_number``        10 digits starting with 7 (as printed on the bill), ``KC`` + 8 digits,
                          or 8-10 digits after "account (number)"
``amount``                "£12.50", "£1,200", "12 pounds", "40 quid"
``date``                  the words as said: "yesterday", "last Tuesday", "the 3rd",
                          "3 March", "March 3rd", "3/3/2026", "two days ago" (no leading "on",
                          so templates write "since {date}", "from {date}" or "({date})")
``reference``             any case reference: CMP-, DPR-, BR-, PL-, FLT- + digits
``complaint_reference``   ``CMP-`` + 6 digits
``privacy_reference``     ``DPR-`` + 6 digits
``product``               Fibre 100/500/900, Kestrel Hub 2/3, Kestrel Cam, Doorbell, Plug,
                          Thermostat, Kestrel Protect, Lite 10GB, Standard 50GB, Unlimited
========================  ====================================================================

The most recent mention wins (customer turns first for what the customer is talking about,
agent turns for how the agent addresses the customer). A slot that cannot be filled is never
guessed: `fill_template` leaves a visible placeholder such as ``[order number]`` and reports it
as missing, so the agent sees what to complete before sending.

Each turn is scanned once: results are memoised by (role, text), so calling `extract_slots` on
every turn of a 60-turn conversation costs a dictionary lookup per old turn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from copilot.core.protocols import TurnLike

__all__ = [
    "SLOT_LABELS",
    "SLOT_NAMES",
    "FilledText",
    "SlotValue",
    "SlotValues",
    "TurnLike",
    "extract_slots",
    "fill_template",
    "placeholder",
    "slot_labels",
    "template_slots",
]

SLOT_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "customer_name": "customer name",
        "agent_name": "your name",
        "order_number": "order number",
        "account_number": "account number",
        "amount": "amount",
        "date": "date",
        "reference": "reference",
        "complaint_reference": "complaint reference",
        "privacy_reference": "DPR reference",
        "product": "product",
    }
)
SLOT_NAMES: frozenset[str] = frozenset(SLOT_LABELS)


@dataclass(frozen=True, slots=True)
class SlotValue:
    """One filled slot: the value to insert and the turn it came from."""

    name: str
    value: str
    turn_id: str = ""


@dataclass(frozen=True, slots=True)
class SlotValues:
    """Slot name -> value found in the conversation (only slots that were found)."""

    values: Mapping[str, SlotValue] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, name: str) -> str | None:
        found = self.values.get(name)
        return found.value if found else None

    def as_dict(self) -> dict[str, str]:
        return {name: slot.value for name, slot in self.values.items()}

    def merged(self, extra: Mapping[str, str]) -> SlotValues:
        """These values with `extra` (e.g. the agent's name from settings) where not found."""
        values = dict(self.values)
        for name, value in extra.items():
            if name in SLOT_NAMES and value and name not in values:
                values[name] = SlotValue(name, value)
        return SlotValues(MappingProxyType(values))


@dataclass(frozen=True, slots=True)
class FilledText:
    """A template after filling: the text, and slots left as visible placeholders."""

    text: str
    missing: tuple[str, ...] = ()


# --- templates ----------------------------------------------------------------------------------

_SLOT_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BRACE_RE = re.compile(r"[{}]")


def placeholder(name: str) -> str:
    """The visible text shown for an unfilled slot, e.g. ``[order number]``."""
    return f"[{SLOT_LABELS.get(name, name.replace('_', ' '))}]"


def template_slots(text: str) -> tuple[str, ...]:
    """The slot names a template text uses, in order of first use.

    Raises:
        ValueError: a brace that is not part of a ``{slot_name}`` (a typo such as
            ``{order_number`` would otherwise be sent to the customer).
    """
    stripped = _SLOT_RE.sub("", text)
    if _BRACE_RE.search(stripped):
        raise ValueError("unbalanced '{' or '}' (slots are written {slot_name})")
    seen: dict[str, None] = {}
    for match in _SLOT_RE.finditer(text):
        seen.setdefault(match.group(1), None)
    return tuple(seen)


def fill_template(text: str, values: SlotValues | Mapping[str, str]) -> FilledText:
    """Replace each ``{slot}`` with its value, or with a visible placeholder when unknown.

    Args:
        text: template text with ``{slot_name}`` slots.
        values: what `extract_slots` found (or a plain mapping).

    Returns:
        The filled text and the names of the slots left as placeholders, in order.
    """
    lookup = values.as_dict() if isinstance(values, SlotValues) else values
    missing: dict[str, None] = {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        value = lookup.get(name)
        if value:
            return value
        missing.setdefault(name, None)
        return placeholder(name)

    return FilledText(_SLOT_RE.sub(replace, text), tuple(missing))


# --- patterns -----------------------------------------------------------------------------------

_NAME = r"(?:[A-Z]'[A-Z][a-z]+|[A-Z][a-z]+(?:[A-Z][a-z]+)?)(?:-[A-Z][a-z]+)?"
_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr)\.?"
# What may follow a name introduced by "I'm"/"this is": the end of the clause, not more words
# ("I'm Sarah, ..." is a name; "I'm Really fed up" is not).
_NAME_END = r"(?=\s*(?:[,.!?;:)]|$|\s(?:and|calling|here|from|speaking|again|with)\b))"
_GREETING = (
    r"(?i:hi|hello|hey|dear|morning|good (?:morning|afternoon|evening)|thanks|thank you|"
    r"sorry|of course|no problem|okay|ok|right|great|lovely|perfect|sure|welcome back|"
    r"certainly|absolutely|understood)"
)


def _word_set(text: str) -> frozenset[str]:
    """The whitespace-separated words of a long literal, as a set."""
    return frozenset(text.split())


# Capitalised words that are not names even where a name could stand.
NOT_NAMES = _word_set(
    """
    a about absolutely actually afraid again all also always am an and annoyed any are as at
    back bank because being bill billing broadband but by calling can cam can't certainly
    charged checking contacting could customer dad day days definitely did do doing done
    doorbell double email er erm even ever every fed fibre fine for from frustrated furious
    getting glad going good great happy having hello help here hey hi hub i if in it its just
    kestrel let like looking lovely me message mobile mum my never new nice no not now of
    off ok okay on one only or our out perfect phoning please plug pretty protect quite rather
    really right ringing same see so sorry speaking still struggling sure thank thanks that the
    there these they thermostat this to today tomorrow trying twice ugh um unable unlimited
    upset very was we well what when where which who why will with wondering worried would
    writing yeah yes yesterday you your
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday
    """
)

_CUSTOMER_NAME_RES = (
    # "my name is Sarah Jones" / "my name's sarah" (lower case accepted after this strong cue)
    re.compile(
        r"(?i:\bmy name(?:'s| is)\s+)(?P<name>(?:"
        + _TITLE
        + r"\s+)?[A-Za-z'\-]+(?:\s+[A-Za-z'\-]+)?)"
    ),
    # "this is Mrs Okafor", "it's Sarah", "I'm Sarah Jones" (capitalised, then end of clause)
    re.compile(
        r"(?i:\b(?:this is|it's|it is|i'm|i am)\s+)(?P<name>(?:"
        + _TITLE
        + r"\s+)?"
        + _NAME
        + r"(?:\s+"
        + _NAME
        + r")?)"
        + _NAME_END
    ),
    # "Sarah here", "Hi, Sarah Jones here"
    re.compile(
        r"(?:^|[.!?]\s+)(?:"
        + _GREETING
        + r"[,!]?\s+)?(?P<name>(?:"
        + _TITLE
        + r"\s+)?"
        + _NAME
        + r"(?:\s+"
        + _NAME
        + r")?)\s+here\b"
    ),
)
_AGENT_ADDRESS_RES = (
    # "Hi Sarah," / "Thanks, Mr Patel." at the start of a sentence
    re.compile(
        r"(?:^|[.!?]\s+)"
        + _GREETING
        + r",?\s+(?P<name>"
        + _TITLE
        + r"\s+"
        + _NAME
        + r"|"
        + _NAME
        + r")(?=\s*(?:[,.!?;:]|$))"
    ),
    # "..., Sarah." at the end of a sentence
    re.compile(r",\s+(?P<name>" + _TITLE + r"\s+" + _NAME + r"|" + _NAME + r")(?=[.!?]\s|[.!?]?$)"),
)
_AGENT_NAME_RES = (
    re.compile(
        r"(?i:\b(?:my name(?:'s| is)|you're (?:speaking|chatting) (?:to|with)|you are "
        r"(?:speaking|chatting) (?:to|with)|this is|i'm|i am)\s+)(?P<name>"
        + _NAME
        + r")"
        + _NAME_END
    ),
    re.compile(r"(?:^|[.!?]\s+)(?:" + _GREETING + r"[,!]?\s+)?(?P<name>" + _NAME + r")\s+here\b"),
)

_ORDER_RES = (
    re.compile(r"\b(?i:KS)[-\s]?(?P<digits>\d{8})\b"),
    re.compile(
        r"(?i:\border\s*(?:number|no\.?|ref(?:erence)?|#)?\s*(?:is|was|:)?\s*#?\s*)"
        r"(?P<digits>\d{4}\s?\d{4})\b"
    ),
)
_ACCOUNT_RES = (
    re.compile(r"\b(?i:KC)[-\s]?(?P<digits>\d{8})\b"),
    re.compile(r"(?<![\d£.,])(?P<digits>7\d{3}\s?\d{3}\s?\d{3})(?!\d|,\d|\.\d)"),
    re.compile(
        r"(?<![Bb]ank )(?i:\b(?:account|acc)\s*(?:number|no\.?|#)?\s*(?:is|:)?\s*)"
        r"(?P<digits>\d{8,10})\b"
    ),
)
_AMOUNT_RES = (
    re.compile(r"£\s?(?P<pounds>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<pence>\d{2}))?(?!\d|,\d)"),
    re.compile(r"(?<![\d£.])(?P<pounds>\d+)(?:\.(?P<pence>\d{2}))?\s?(?i:pounds?|quid|gbp)\b"),
)
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_ORD = r"\d{1,2}(?:st|nd|rd|th)?"
_NUMBER_WORD = r"(?:\d{1,2}|a|one|two|three|four|five|six|seven|eight|nine|ten|a couple of|a few)"
_DATE_RE = re.compile(
    r"(?i:\b(?:"
    r"(?:the )?day before yesterday|yesterday|today|tonight|tomorrow"
    r"|this (?:morning|afternoon|evening)"
    r"|last (?:night|week|month|weekend|" + _DAY + r")"
    r"|(?:this|next) (?:week|month|" + _DAY + r")"
    r"|" + _NUMBER_WORD + r" (?:days?|weeks?|months?) ago"
    r"|(?:the )?" + _ORD + r" of " + _MONTH + r"(?: \d{4})?"
    r"|" + _ORD + r" " + _MONTH + r"(?: \d{4})?"
    r"|" + _MONTH + r" " + _ORD + r"(?:,? \d{4})?"
    r"|the \d{1,2}(?:st|nd|rd|th)(?! (?:time|attempt|call|contact|person|one)\b)"
    r"|\d{1,2}/\d{1,2}(?:/\d{2,4})?"
    r"|(?:on |last |this )?" + _DAY + r"(?: just gone)?"
    r")\b)"
)
_REFERENCE_RE = re.compile(r"\b(?P<prefix>(?i:CMP|DPR|BR|PL|FLT))[-\s]?(?P<digits>\d{4,8})\b")
# One pass over the text for every product; the group that matched names the product.
_PRODUCTS: Mapping[str, str] = MappingProxyType(
    {
        "fibre": "Fibre {n}",
        "hub": "Kestrel Hub {n}",
        "protect": "Kestrel Protect",
        "doorbell": "Kestrel Doorbell",
        "thermostat": "Kestrel Thermostat",
        "cam": "Kestrel Cam",
        "plug": "Kestrel Plug",
        "lite": "Lite 10GB",
        "standard": "Standard 50GB",
        "unlimited": "Unlimited",
    }
)
_PRODUCT_RE = re.compile(
    r"(?i:\b(?:"
    r"(?P<fibre>fibre\s?(?P<fibre_n>100|500|900))"
    r"|(?P<hub>hub\s?(?P<hub_n>[23]))"
    r"|(?P<protect>kestrel protect|protect (?:subscription|plan))"
    r"|(?P<doorbell>doorbell)"
    r"|(?P<thermostat>thermostat)"
    r"|(?P<cam>kestrel cam|(?:security |indoor )?camera)"
    r"|(?P<plug>(?:kestrel|smart) plug)"
    r"|(?P<lite>lite(?: 10 ?gb| plan))"
    r"|(?P<standard>standard 50 ?gb)"
    r"|(?P<unlimited>unlimited (?:plan|data|sim|mobile))"
    r")\b)"
)
# Cheap substring tests (C speed) that rule a pattern group out before any regex runs.
_PRODUCT_WORDS = (
    "fibre",
    "hub",
    "protect",
    "doorbell",
    "thermostat",
    "cam",
    "plug",
    "lite",
    "standard",
    "unlimited",
)
_DATE_WORDS = ("day", "night", "tomorrow", "morning", "afternoon", "evening", "week", "month")
_MONEY_WORDS = ("£", "pound", "quid", "gbp")
_CUSTOMER_NAME_WORDS = ("name", "this is", "it's", "it is", "i'm", "i am", " here")
_AGENT_NAME_WORDS = ("name", "speaking", "chatting", "this is", "i'm", "i am", " here")
_DIGIT_RE = re.compile(r"\d")


def _is_name(candidate: str) -> bool:
    words = candidate.replace(".", "").split()
    if not words:
        return False
    titled = words[0] in {"Mr", "Mrs", "Ms", "Miss", "Mx", "Dr"}
    names = words[1:] if titled else words
    return bool(names) and all(w.lower() not in NOT_NAMES for w in names)


def _clean_name(raw: str, *, full: bool) -> str | None:
    """A name as the customer should be addressed: title + surname, or the first name."""
    words = raw.split()
    if words and words[0].rstrip(".") in {"Mr", "Mrs", "Ms", "Miss", "Mx", "Dr"}:
        if len(words) < 2 or words[-1].lower() in NOT_NAMES:
            return None
        return f"{words[0].rstrip('.')} {words[-1]}"
    kept: list[str] = []
    for word in words:
        if word.lower() in NOT_NAMES or not re.fullmatch(r"[A-Za-z'\-]+", word):
            break
        kept.append(word[:1].upper() + word[1:])
    if not kept:
        return None
    return " ".join(kept) if full else kept[0]


def _money(pounds: str, pence: str | None) -> str:
    return f"£{pounds}.{pence}" if pence else f"£{pounds}"


# Slot names in the tuples below are scanned by `scan_turn`; values are per turn, in text order.
_Found = tuple[tuple[str, str], ...]


@lru_cache(maxsize=8192)
def scan_turn(role: str, text: str) -> _Found:
    """Every slot value one turn mentions, in text order (memoised: turns never change)."""
    found: list[tuple[int, str, str]] = []
    lower = text.lower()
    digits = _DIGIT_RE.search(text) is not None
    if role == "customer":
        if any(word in lower for word in _CUSTOMER_NAME_WORDS):
            for pattern in _CUSTOMER_NAME_RES:
                for m in pattern.finditer(text):
                    name = _clean_name(m.group("name"), full=False)
                    if name and _is_name(name):
                        found.append((m.start("name"), "customer_name", name))
    elif role == "agent":
        for pattern in _AGENT_ADDRESS_RES:
            for m in pattern.finditer(text):
                name = _clean_name(m.group("name"), full=False)
                if name and _is_name(name):
                    found.append((m.start("name"), "addressed_name", name))
        if any(word in lower for word in _AGENT_NAME_WORDS):
            for pattern in _AGENT_NAME_RES:
                for m in pattern.finditer(text):
                    name = m.group("name")
                    if _is_name(name):
                        found.append((m.start("name"), "agent_name", name))
    if digits:
        for pattern in _ORDER_RES:
            for m in pattern.finditer(text):
                number = "KS-" + m.group("digits").replace(" ", "")
                found.append((m.start(), "order_number", number))
        for index, pattern in enumerate(_ACCOUNT_RES):
            for m in pattern.finditer(text):
                number = m.group("digits").replace(" ", "")
                found.append((m.start(), "account_number", f"KC{number}" if index == 0 else number))
        for m in _REFERENCE_RE.finditer(text):
            prefix = m.group("prefix").upper()
            value = f"{prefix}-{m.group('digits')}"
            found.append((m.start(), "reference", value))
            if prefix == "CMP" and len(m.group("digits")) == 6:
                found.append((m.start(), "complaint_reference", value))
            elif prefix == "DPR" and len(m.group("digits")) == 6:
                found.append((m.start(), "privacy_reference", value))
        if any(word in lower for word in _MONEY_WORDS):
            for pattern in _AMOUNT_RES:
                for m in pattern.finditer(text):
                    found.append((m.start(), "amount", _money(m.group("pounds"), m.group("pence"))))
    if digits or any(word in lower for word in _DATE_WORDS):
        for m in _DATE_RE.finditer(text):
            words = m.group(0)
            if words.lower().startswith("on "):
                words = words[3:]
            found.append((m.start(), "date", words))
    if any(word in lower for word in _PRODUCT_WORDS):
        for m in _PRODUCT_RE.finditer(text):
            kind = m.lastgroup or ""
            label = _PRODUCTS.get(kind)
            if label:
                number = m.groupdict().get(f"{kind}_n") or ""
                found.append((m.start(), "product", label.format(n=number)))
    found.sort(key=lambda item: item[0])
    return tuple((name, value) for _, name, value in found)


# Whose mentions count for each slot, most trusted first. The customer talks about their own
# order, amounts and dates; the agent's words count when the customer's do not.
_SOURCES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "customer_name": ("addressed_name@agent", "customer_name@customer"),
        "agent_name": ("agent_name@agent",),
        "order_number": ("order_number@customer", "order_number@agent"),
        "account_number": ("account_number@customer", "account_number@agent"),
        "amount": ("amount@customer", "amount@agent"),
        "date": ("date@customer", "date@agent"),
        "reference": ("reference@agent", "reference@customer"),
        "complaint_reference": ("complaint_reference@agent", "complaint_reference@customer"),
        "privacy_reference": ("privacy_reference@agent", "privacy_reference@customer"),
        "product": ("product@customer", "product@agent"),
    }
)


def _role_name(role: object) -> str:
    value = getattr(role, "value", role)
    return str(value).lower()


def extract_slots(turns: Iterable[TurnLike]) -> SlotValues:
    """Slot values mentioned in the conversation; the most recent mention of each wins.

    Args:
        turns: final turns, oldest first, with redacted text (system turns are ignored).

    Returns:
        Only the slots that were found; nothing is guessed.
    """
    latest: dict[str, SlotValue] = {}
    for turn in turns:
        role = _role_name(turn.role)
        if role not in ("customer", "agent"):
            continue
        for name, value in scan_turn(role, turn.text):
            latest[f"{name}@{role}"] = SlotValue(name, value, turn.turn_id)
    values: dict[str, SlotValue] = {}
    for slot, sources in _SOURCES.items():
        for source in sources:
            found = latest.get(source)
            if found is not None:
                values[slot] = SlotValue(slot, found.value, found.turn_id)
                break
    return SlotValues(MappingProxyType(values))


def slot_labels(names: Sequence[str]) -> tuple[str, ...]:
    """Readable labels for slot names (for "fill in: order number, amount")."""
    return tuple(SLOT_LABELS.get(name, name.replace("_", " ")) for name in names)
