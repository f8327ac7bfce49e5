"""The live summary: a structured, extractive, rule-based digest rebuilt on every turn.

`summarise` reads the (already redacted) turns and returns a `Summary`:

- **issue** — the customer's first substantive turn(s), greetings and fillers stripped,
  rewritten in the third person ("I've been charged twice" -> "The customer has been charged
  twice");
- **goal** — the customer's "I want / I'd like / I need / can you ..." clauses;
- **key facts** — order and account numbers, ``CMP-``/``DPR-``/``FLT-`` references, £ amounts,
  dates, products and names, found by the shared slot patterns of `copilot.core.slots`
  (one scanner, memoised per turn) plus the full name given in answer to "can I take your name";
- **tried** — what the customer already did ("I've already restarted the router") and what
  the agent has done ("I've reset your line" -> "Agent reset the customer's line");
- **promises** — the agent's commitments ("I'll call you back on Thursday", "you'll receive an
  email", "it will be credited to your next bill");
- **open items** — customer questions no agent turn has answered yet, policy steps still
  pending or missed (from the policy ledger), and promises not yet kept in the conversation;
- **next step** — one suggestion from the flags, the ledger, the open items and the intent.

It is cheap because each turn is analysed once: `_analyse` is memoised by the turn's text and
the little context it needs, so summarising turn 60 re-reads 59 cached analyses and scans one
new turn (about 0.1 ms on a 2-core machine; see ``copilot eval summary``).

Collaborators (flags, ledger items, knowledge hits) are duck-typed through the small Protocols
below, so this module imports neither the signals nor the policy engine.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Protocol

from copilot.core import slots
from copilot.core.protocols import EvidenceLike, FlagLike, TurnLike

__all__ = [
    "DEFAULT_NEXT_STEPS",
    "FACT_KINDS",
    "EvidenceLike",
    "Fact",
    "FlagLike",
    "HitLike",
    "LedgerItemLike",
    "Promise",
    "Summary",
    "TurnLike",
    "extract_facts",
    "summarise",
    "third_person",
]

# -- collaborators -------------------------------------------------------------------------------


class LedgerItemLike(Protocol):
    """A policy ledger entry: a required step and whether it is "done", "pending" or "missed"."""

    @property
    def status(self) -> str: ...

    @property
    def title(self) -> str: ...


class HitLike(Protocol):
    """A knowledge article hit (`copilot.core.models.ArticleHit` fits)."""

    @property
    def article_id(self) -> str: ...

    @property
    def title(self) -> str: ...


def _text(value: object) -> str:
    """A plain string from a str, a StrEnum or an Enum (by its value)."""
    return str(getattr(value, "value", value))


# -- the summary -------------------------------------------------------------------------------

FACT_KINDS: tuple[str, ...] = (
    "name",
    "account",
    "order",
    "reference",
    "product",
    "amount",
    "date",
)


@dataclass(frozen=True, slots=True)
class Fact:
    """A key fact: `kind` is one of FACT_KINDS; `turn_id` is the turn that first mentioned it."""

    kind: str
    value: str
    turn_id: str


@dataclass(frozen=True, slots=True)
class Promise:
    """A commitment the agent made, in the third person ("Agent will call ... back")."""

    text: str
    turn_id: str


@dataclass(frozen=True, slots=True)
class Summary:
    """The rolling summary of one conversation (all text already redacted).

    Attributes:
        issue: what the contact is about, in the third person ("" until the customer says).
        goal: what the customer wants ("Wants to cancel their broadband"), "" if unknown.
        key_facts: facts in order of first mention, each value once.
        tried: what the customer already tried and what the agent has done, in order.
        promises: the agent's commitments, in order.
        sentiment: the trend and the emotional flags ("worsening; frustration (high)").
        open_items: "Question: ...", "Policy step pending: ...", "Promise: ..." entries.
        next_step: one suggested next step for the agent.
        verified: how the customer's identity was confirmed, when the agent said so.
        as_of: the time of the last turn summarised.
        generated: issue, goal, tried, open items and next step were written by the optional
            language model (`copilot.core.generative`); the panel labels them AI-generated.
    """

    issue: str = ""
    goal: str = ""
    key_facts: tuple[Fact, ...] = ()
    tried: tuple[str, ...] = ()
    promises: tuple[Promise, ...] = ()
    sentiment: str = ""
    open_items: tuple[str, ...] = ()
    next_step: str = ""
    verified: tuple[str, ...] = ()
    as_of: dt.datetime | None = None
    generated: bool = False

    def facts(self, *kinds: str) -> tuple[Fact, ...]:
        """The key facts of the given kinds, in order of first mention."""
        return tuple(f for f in self.key_facts if f.kind in kinds)

    def facts_text(self, limit: int = 8) -> str:
        """Key facts grouped by kind, most identifying first: "KS-40211873 · £49.99 · ..."."""
        ordered = sorted(self.key_facts, key=lambda f: FACT_KINDS.index(f.kind))
        return " · ".join(f.value for f in ordered[:limit])

    def as_text(self) -> str:
        """A compact plain-text summary of 3–6 lines, for the panel and for ROUGE."""
        lines = [f"Issue: {self.issue or 'not stated yet'}."]
        if self.goal and not _mostly_within(self.goal, self.issue):
            lines.append(f"Goal: {self.goal}.")
        facts = self.facts_text()
        if facts:
            lines.append(f"Facts: {facts}.")
        done = "; ".join(_clip(t, 110) for t in self.tried[-4:])
        promised = "; ".join(_clip(p.text, 110) for p in self.promises[-3:])
        if done or promised:
            parts = [f"Done: {done}." if done else "", f"Promised: {promised}." if promised else ""]
            lines.append(" ".join(p for p in parts if p))
        others = [o for o in self.open_items if not o.startswith(_PROMISE_ITEM)]
        next_line = f"Next: {self.next_step}." if self.next_step else ""
        if others:
            next_line = f"Open: {'; '.join(_clip(o, 90) for o in others[:3])}. {next_line}"
        if next_line:
            lines.append(next_line.strip())
        if len(lines) < 3 and self.sentiment:
            lines.append(f"Sentiment: {self.sentiment}.")
        while len(lines) < 3:
            lines.append("Goal: not stated yet." if not self.goal else "Facts: none yet.")
        return "\n".join(_tidy(line) for line in lines[:6])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the same fields (facts and promises as objects)."""
        return {
            "issue": self.issue,
            "goal": self.goal,
            "key_facts": [
                {"kind": f.kind, "value": f.value, "turn_id": f.turn_id} for f in self.key_facts
            ],
            "tried": list(self.tried),
            "promises": [{"text": p.text, "turn_id": p.turn_id} for p in self.promises],
            "sentiment": self.sentiment,
            "open_items": list(self.open_items),
            "next_step": self.next_step,
            "verified": list(self.verified),
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "generated": self.generated,
        }


_PROMISE_ITEM = "Promise: "
_DOUBLE_STOP = re.compile(r"([.?!…])\.")
_WORD = re.compile(r"[a-z0-9]+")


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def _tidy(line: str) -> str:
    return _DOUBLE_STOP.sub(r"\1", line).replace(" .", ".")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _mostly_within(part: str, whole: str) -> bool:
    words = _words(part) - {"wants", "to", "the", "a", "their", "customer"}
    return bool(words) and len(words & _words(whole)) >= 0.8 * len(words)


# -- third-person rewriting ---------------------------------------------------------------------


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Base verbs that take an -s after "the customer" / "Kestrel" ("I want" -> "the customer wants").
_BASE_VERBS = _wordset(
    """
    want need have do keep hold take charge say know think owe send like get make use pay work
    live rely feel find give tell see expect understand mean seem go come look ring call help
    remember agree believe hope wish love hate mind prefer care sell provide offer try wonder
    receive rent own share spend struggle suffer worry run buy lose miss speak talk deal
    contact ask visit order return
    """
)
_IRREGULAR_THIRD = MappingProxyType(
    {
        "have": "has",
        "do": "does",
        "don't": "doesn't",
        "haven't": "hasn't",
        "am": "is",
        "are": "is",
        "aren't": "isn't",
        "were": "was",
        "weren't": "wasn't",
        "go": "goes",
    }
)
_ADVERBS = _wordset(
    "really just also already still only never even actually honestly always usually often "
    "genuinely literally definitely now personally simply"
)
_MODALS = _wordset(
    "can could would will should shall may might must did do does to let make help thank"
)
_CLAUSE_STARTS = _wordset(
    "and but so that if when once until because as or then whichever what who where how why "
    "which whatever"
)
_PAST = MappingProxyType(
    {
        "given": "gave",
        "taken": "took",
        "done": "did",
        "spoken": "spoke",
        "written": "wrote",
        "seen": "saw",
        "shown": "showed",
        "gone": "went",
        "begun": "began",
        "chosen": "chose",
        "broken": "broke",
        "forgotten": "forgot",
    }
)
_PLURAL_OF = MappingProxyType({"was": "were", "wasn't": "weren't", "am": "are"})
_TOKEN = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?|[^A-Za-z]+")


def _third(word: str) -> str:
    lower = word.lower()
    if lower in _IRREGULAR_THIRD:
        return _IRREGULAR_THIRD[lower]
    if lower not in _BASE_VERBS:
        return word
    if lower.endswith(("s", "sh", "ch", "x", "z", "o")):
        return word + "es"
    if len(lower) > 2 and lower.endswith("y") and lower[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def third_person(text: str, role: str, *, named: bool = False, start: bool = True) -> str:
    """Rewrite a customer's or agent's words in the third person, for a summary.

    Customer: I/me/my -> the customer/them/their (later "they"), we/our -> they/their,
    you/your -> Kestrel/Kestrel's. Agent: I -> the agent, you/your -> the customer/the
    customer's (later they/them/their), we -> Kestrel, our -> the.

    Args:
        text: one sentence or clause, already redacted.
        role: "customer" or "agent" (anything else is returned unchanged).
        named: the speaker was already named in an earlier sentence: say "they".
        start: `text` starts a sentence (capitalise a replaced first word).
    """
    if role not in ("customer", "agent"):
        return text
    tokens = _TOKEN.findall(text.replace("’", "'"))
    out: list[str] = []
    speaker_named = named  # "the customer"/"the agent" said once: later mentions are "they"
    listener_named = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        lower = token.lower()
        replacement: str | None = None
        conjugate = False
        prev_word = _previous_word(out)
        if lower in ("i", "i'm", "i've", "i'd", "i'll"):
            who = "the customer" if role == "customer" else "the agent"
            if speaker_named:
                replacement = {"i": "they", "i'm": "they're", "i've": "they've"}.get(
                    lower, "they" + lower[1:]
                )
            else:
                replacement = {
                    "i": who,
                    "i'm": f"{who} is",
                    "i've": f"{who} has",
                    "i'd": f"{who} would",
                    "i'll": f"{who} will",
                }[lower]
                conjugate = lower == "i"
            speaker_named = True
        elif role == "agent" and lower == "my" and _next_word(tokens, i) in _COLLEAGUES:
            replacement = "a"
        elif lower == "my" and not speaker_named:
            replacement = "the customer's" if role == "customer" else "the agent's"
            speaker_named = True
        elif lower in ("my", "me", "myself", "mine"):
            replacement = {"my": "their", "me": "them", "myself": "themselves", "mine": "theirs"}[
                lower
            ]
        elif role == "customer" and lower in ("we", "we're", "we've", "we'll", "we'd"):
            replacement = "they" + lower[2:]
        elif role == "customer" and lower == "our" and not speaker_named:
            replacement = "the customer's"
            speaker_named = True
        elif role == "customer" and lower in ("our", "ours", "us"):
            replacement = {"our": "their", "ours": "theirs", "us": "them"}[lower]
        elif role == "customer" and lower.startswith("you"):
            replacement = {
                "you": "Kestrel",
                "you're": "Kestrel is",
                "you've": "Kestrel has",
                "you'll": "Kestrel will",
                "you'd": "Kestrel would",
                "your": "Kestrel's",
                "yours": "Kestrel's",
                "yourself": "itself",
            }.get(lower)
            conjugate = lower == "you" and prev_word not in _MODALS
        elif role == "agent" and lower.startswith("you"):
            subject = (
                prev_word in ("", *_CLAUSE_STARTS)
                or prev_word in _ADVERBS
                or _next_word(tokens, i) in _SUBJECT_NEXT
            )
            if listener_named:
                replacement = {
                    "you": "they" if subject else "them",
                    "you're": "they're",
                    "you've": "they've",
                    "you'll": "they'll",
                    "you'd": "they'd",
                    "your": "their",
                    "yours": "theirs",
                    "yourself": "themselves",
                }.get(lower)
            else:
                replacement = {
                    "you": "the customer",
                    "you're": "the customer is",
                    "you've": "the customer has",
                    "you'll": "the customer will",
                    "you'd": "the customer would",
                    "your": "the customer's",
                    "yours": "the customer's",
                    "yourself": "themselves",
                }.get(lower)
                conjugate = lower == "you" and subject
            listener_named = listener_named or replacement is not None
        elif role == "agent" and lower in ("we", "we're", "we've", "we'll", "we'd", "our", "us"):
            replacement = {
                "we": "Kestrel",
                "we're": "Kestrel is",
                "we've": "Kestrel has",
                "we'll": "Kestrel will",
                "we'd": "Kestrel would",
                "our": "the",
                "us": "Kestrel",
            }[lower]
            conjugate = lower == "we"
        if replacement is None:
            out.append(token)
            i += 1
            continue
        if _sentence_start(out) and (start or out):
            replacement = replacement[0].upper() + replacement[1:]
        out.append(replacement)
        i += 1
        if replacement in ("they", "They") and i + 1 < len(tokens) and tokens[i].isspace():
            after = tokens[i + 1].lower()
            if after in _PLURAL_OF:
                tokens[i + 1] = _PLURAL_OF[after]
        if conjugate:
            # Skip spaces and adverbs ("I really want"), then conjugate the verb.
            j = i
            while j < len(tokens) and (tokens[j].isspace() or tokens[j].lower() in _ADVERBS):
                j += 1
            if j < len(tokens):
                tokens[j] = _third(tokens[j])
    return "".join(out)


def _next_word(tokens: list[str], i: int) -> str:
    for token in tokens[i + 1 : i + 3]:
        if token[:1].isalpha():
            return token.lower()
    return ""


# A "you" followed by one of these is the subject: "anyone you speak to" -> "anyone they ...".
_SUBJECT_NEXT = _BASE_VERBS | _wordset(
    "can can't will won't should need must may might could would are were speak paid bought"
)
_COLLEAGUES = frozenset({"team", "manager", "supervisor", "colleague", "colleagues", "senior"})


def _previous_word(out: list[str]) -> str:
    for token in reversed(out):
        if token[:1].isalpha():
            return token.lower().rsplit(" ", 1)[-1]
        if token.strip():
            return ""  # punctuation between: a new clause
    return ""


def _sentence_start(out: list[str]) -> bool:
    for token in reversed(out):
        stripped = token.strip()
        if not stripped:
            continue
        return stripped[-1] in ".!?" or stripped.endswith("...")
    return True


# -- per-turn analysis --------------------------------------------------------------------------

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*|\s+(?:\.\.\.|…)\s*")
_LEADING_FILLER = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|morning|afternoon|evening)"
    r"(?:\s+(?:there|dear|all|again|(?-i:[A-Z][a-z]+)))?"
    r"|thanks?(?: you)?(?: very much| so much| a lot)?|thank you|cheers|ok(?:ay)?|right|yes|yeah"
    r"|yep|no|nope|sure|great|perfect|brilliant|lovely|fine|um+|uh+|er+m?|oh|ah|well|so|hm+"
    r"|sorry|look|listen|basically|anyway)\b[\s,.!:;-]*",
    re.IGNORECASE,
)
_GOAL = re.compile(
    r"\b(?P<trigger>I(?:'d| would) (?:like|love|rather(?: have)?|prefer)"
    r"|I (?:really |just |only |also |still )?(?:want|need)(?:ed)?"
    r"|I(?:'m| am) (?:calling|ringing|phoning|writing|contacting you|looking|hoping|trying) to"
    r"|I wish to|I(?:'m| am) thinking (?:of|about)"
    r"|(?:can|could|would) (?:you|I|we|someone)(?: please)?"
    r"|please (?:can|could) you)\b\s+(?P<rest>(?:[^.?!]|\.(?=\d))+)",
    re.IGNORECASE,
)
# Goal clauses that are conversation management, not what the customer wants.
_NOT_GOAL = re.compile(
    r"^(?:help|ask|say|hear|explain|check|confirm|tell me|just|see|talk|go ahead|do that|"
    r"hold on|wait|repeat|hang on|give you|send the code|read)\b",
    re.IGNORECASE,
)
_CUSTOMER_TRIED = re.compile(
    r"\bI(?:'ve| have)?\s+(?:(?:already|also|even|just|since|then|both|all|really)\s+)*"
    r"(?P<verb>tried|restarted|rebooted|reset|checked|asked|turned|switched|unplugged|plugged"
    r"|charged|re-?added|reinstalled|updated|cleared|scanned|uploaded|replaced|tested|waited"
    r"|followed|used|reported|sent|returned|logged|factory reset)\b"
    r"(?P<rest>(?:[^.?!;]|\.(?=\d))*)",
    re.IGNORECASE,
)
_AGENT_DONE = re.compile(
    r"\bI(?:'ve| have)\s+(?:(?:just|also|now|already|personally|gone ahead and|then)\s+)*"
    r"(?P<verb>(?!been\b|got\b|had\b|heard\b|found\b|noticed\b|checked\b)[a-z]+ed|sent|set|put"
    r"|made|done|given|run|taken|shown|written|spoken|paid|reset|told|kept|brought|sold|held|cut)\b"
    r"(?P<rest>(?:[^.?!;]|\.(?=\d))*)",
    re.IGNORECASE,
)
_CONFIRMED_DONE = re.compile(
    r"^(?:that's|that is|it's|it is|all|now|this is) (?:been |all |now )?"
    r"(?P<verb>booked|done|sorted|arranged|set up|cancelled|processed|logged|sent|applied)\b"
    r"(?P<rest>(?:[^.?!;]|\.(?=\d))*)",
    re.IGNORECASE,
)
_PASSIVE_DONE = re.compile(
    r"(?P<subject>\b(?:the|your|that|it|this)\b[^.?!,;]{0,40}?)\s+(?:has|have) been\s+"
    r"(?P<verb>[a-z]+ed|sent|set up|taken|made|paid)\b(?P<rest>(?:[^.?!;]|\.(?=\d))*)",
    re.IGNORECASE,
)
_PROMISE = re.compile(
    r"(?P<subject>\b(?:I|we)(?:'ll| will| shall|'m going to| am going to| are going to)"
    r"|\byou(?:'ll| will) (?=receive|get|see|hear|have|be (?:contacted|called|sent|refunded))"
    r"|\b(?:they|it|he|she|the (?:team|team leader|engineer|refund|credit|money|payment|"
    r"replacement|bereavement team|privacy team|courier))(?:'ll| will) "
    r"(?=call|email|text|reply|respond|arrive|contact|send|be\b|come|go|get|explain|collect)"
    r"|\bwill be (?=credited|refunded|sent|collected|taken|applied|fixed|repaired|"
    r"delivered|posted|emailed|texted|dispatched|cancelled|closed)"
    r"|\b(?:your|the|this) (?:[\w£-]+(?:\.\d+)? ){0,4}?(?:will|'ll) "
    r"(?!not\b|need\b|have\b|be able\b)(?=[a-z]+\b)"
    r"|\bI(?:'m| am) (?=sending|arranging|booking|ordering|adding|putting|setting up))"
    r"(?P<rest>(?:[^.?!;]|\.(?=\d))*)",
    re.IGNORECASE,
)
# Things an agent says they will do right now, in the conversation: not commitments to track.
_IMMEDIATE = re.compile(
    r"^\s*(?:just\s+|now\s+|quickly\s+)?(?:be\b|need\b|have to\b|take\b|find\b|help\b|look\b|"
    r"have a look|check\b|see\b|make\b|transfer\b|put you\b|pass\b|get (?:that|this|you)\b|"
    r"do (?:that|this|my best)\b|start\b|confirm\b|explain\b|go through\b|read\b|ask\b|"
    r"stop\b|try\b|won't\b|not\b)",
    re.IGNORECASE,
)
_LATER = re.compile(
    r"\b(?:tomorrow|tonight|today|by\b|within|on (?:monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday)|next|later|this (?:afternoon|evening)|email|text|letter|post|call (?:you )?"
    r"back|callback|follow[- ]up|as soon as|once|when)\b",
    re.IGNORECASE,
)
_QUESTION_WORDS = re.compile(
    r"^(?:what|why|when|where|who|how|which|is|are|can|could|do|does|did|will|would|should|"
    r"have|has|am)\b",
    re.IGNORECASE,
)
_HOLDING = re.compile(
    r"^(?:let me|one moment|bear with me|just a (?:moment|sec(?:ond)?)|give me a "
    r"(?:moment|sec(?:ond)?|minute)|i'll (?:just )?(?:check|have a look|look|find out)|checking|"
    r"i'm (?:just )?(?:checking|looking))",
    re.IGNORECASE,
)
_VERIFIED = re.compile(
    r"\b(?:you(?:'re| are)(?: now| fully| all)?|that(?:'s| is)(?: you)?(?: now| all| fully)?"
    r"|you've been|(?:thank you|thanks)[,.]?|now) verified\b"
    r"|\b(?:passed|completed) (?:security|IDV|the identity check|identity verification)\b",
    re.IGNORECASE,
)
_IDV_ASKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("name and postcode", re.compile(r"\bpostcode\b", re.IGNORECASE)),
    ("date of birth", re.compile(r"\bdate of birth\b|\bDOB\b", re.IGNORECASE)),
    ("PIN", re.compile(r"\bPIN\b")),
    ("one-time code", re.compile(r"\b(?:one-time |security )?code\b(?! words?)", re.IGNORECASE)),
    ("card digits", re.compile(r"\blast (?:4|four) digits\b", re.IGNORECASE)),
)
_ASKS_NAME = re.compile(r"\bname\b|\bwho am I speaking\b", re.IGNORECASE)
_ASKS_IDV = re.compile(
    r"\b(?:postcode|address|date of birth|PIN\b|(?:one-time |security )?code|"
    r"last (?:4|four) digits|name)\b",
    re.IGNORECASE,
)
_ASKING = re.compile(
    r"\?|\b(?:can I (?:take|have|get)|could you|can you|please|"
    r"if (?:you|she|he|they) (?:type|give|tell|confirm|read))\b",
    re.IGNORECASE,
)
# Agent actions that are part of the identity check, not of solving the problem.
_IDV_ACTION = re.compile(
    r"\b(?:one-time|security|verification) code\b|\bcode to (?:your|the)\b|\bverif", re.IGNORECASE
)
# Agent sentences hold several actions: "I've logged a complaint, and I've stopped the DD".
_AGENT_SPLIT = re.compile(
    r",?\s+and\s+(?=I(?:'ve| have|'ll| will)\b)|;\s*|,\s+(?=I(?:'ve| have)\b)"
)
_PROMISE_SPLIT = re.compile(
    r",?\s+(?:and|but|so)\s+(?=(?:I|we|you|they|it|the|your)\b)|;\s*", re.IGNORECASE
)
_OFFER = re.compile(
    r"\b(?:I can|I could|we can|I'm able to) offer (?:you )?(?P<offer>(?:[^.?!,]|\.(?=\d))+)"
    r"|\bthere's also (?P<also>an? (?:[^.?!,]|\.(?=\d))+)",
    re.IGNORECASE,
)
_DECLINE = re.compile(
    r"^\W*(?:no\b|nope|not really|I don't (?:want|think)|I'd rather not)", re.IGNORECASE
)
_AUX_BEFORE = _wordset("do did does will would should shall must")
_GOAL_FILLER = _wordset("to a an the it this that do be get know go so")
_CLAUSE_END = re.compile(
    r",\s+(?:and|but|so|which|because|as|though|although|then)\b|\s+but\s+"
    r"|,\s+(?=(?:I|I'm|I've|we|it|it's|its|they|he|she|you|my|our)\b)"
    r"|\s+and\s+(?=(?:you|we|they|it|I)(?:'ll| will)\b)"
)
_PLEASE = re.compile(r"[\s,]*\bplease\b", re.IGNORECASE)
_FULL_NAME = re.compile(
    r"^(?:(?:it's|it is|i'm|i am|my name is|this is)\s+)?"
    r"(?P<name>(?:(?:Mr|Mrs|Ms|Miss|Dr)\.?\s+)?[A-Z][a-z'\-]+(?:\s+[A-Z][a-z'\-]+){1,2})\b",
    re.IGNORECASE,
)
_ESCALATION = re.compile(r"\b(?:team leader|supervisor|manager|senior|escalat\w*)\b", re.IGNORECASE)
_EXPIRY = re.compile(r"^\d{1,2}/(?:1[3-9]|[2-9]\d)$")  # "09/28": a card expiry, not a date
_PROMISE_VERB = re.compile(
    r"(?:'ll|will|shall|going to)\s+(?:(?:just|also|personally|then)\s+)*(?:be\s+)?([a-z]+)",
    re.IGNORECASE,
)
_LETTER = re.compile(r"[A-Za-z]")
_TWO_LETTERS = re.compile(r"[A-Za-z]{2}")
_LEADING_COMMA = re.compile(r"\s*,")
_GOAL_NOISE = re.compile(r"\b(?:pls|thanks?|now)\b[\s,]*", re.IGNORECASE)
_OPENING_NOISE = re.compile(r"^\W*(?:oh|um+|er+m?|well|sorry|right)\b[\s,.!]*", re.IGNORECASE)
_HEAD_SPLIT = re.compile(r",\s*(?:which|and|that)?\s*$|,\s+")
_HEAD_LINK = re.compile(r"^(?:which|and|that|it)\s+", re.IGNORECASE)
_THE_AGENT = re.compile(r"^The agent\b")
_IDENTITY_STEP = re.compile(r"identity|\bIDV\b|verif", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\[[^\[\]\n]{1,40}\]")
_OLD_YEAR = re.compile(r"\b(?:19\d\d|200\d|201[0-4])\b")
_DROP_DATES = frozenset(
    {
        "today",
        "tonight",
        "tomorrow",
        "this morning",
        "this afternoon",
        "this evening",
        "this week",
        "this month",
    }
)
_SLOT_KINDS = MappingProxyType(
    {
        "customer_name": "name",
        "addressed_name": "name",
        "order_number": "order",
        "account_number": "account",
        "reference": "reference",
        "amount": "amount",
        "date": "date",
        "product": "product",
    }
)


@dataclass(frozen=True, slots=True)
class _TurnInfo:
    role: str
    turn_id: str
    facts: tuple[Fact, ...] = ()
    substantive: bool = False
    issue: tuple[str, ...] = ()  # third-person sentences that describe a problem
    goals: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    tried: tuple[str, ...] = ()
    done_verbs: tuple[str, ...] = ()
    promises: tuple[tuple[str, str], ...] = ()  # (text, verb)
    holding: bool = False
    asks_idv: bool = False
    asks_name: bool = False
    idv_items: tuple[str, ...] = ()
    verified: bool = False
    escalation: bool = False
    offers: tuple[str, ...] = ()
    declines: bool = False
    word_count: int = 0


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s and _LETTER.search(s)]


def _strip_fillers(sentence: str) -> str:
    previous = None
    while previous != sentence:
        previous = sentence
        sentence = _LEADING_FILLER.sub("", sentence, count=1).strip()
    return sentence


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _clause(rest: str) -> str:
    """The clause a match starts, cut before a new ", and/but/so ..." or ", it ..." clause."""
    if _LEADING_COMMA.match(rest):
        return ""  # "X has been cancelled, no more ...": nothing more to the clause
    return _CLAUSE_END.split(rest, maxsplit=1)[0].strip(" ,;:-")


def _clause_start(text: str, position: int) -> bool:
    """True when `position` starts a clause: "I've sent" but not "the code I've sent"."""
    before = text[:position].rstrip()
    if not before or before[-1] in ",;:.!?-(":
        return True
    last = before.rsplit(None, 1)[-1].lower()
    return last in _CLAUSE_STARTS or last in _ADVERBS or last in ("yes", "ok", "okay", "done")


def extract_facts(text: str, turn_id: str = "", *, role: str = "customer") -> tuple[Fact, ...]:
    """Key facts one (redacted) turn mentions, in text order.

    Uses the slot scanner of `copilot.core.slots`, so the summary and the reply templates agree
    on what an order number or an amount is. Left out: dates with a year before 2015 (dates of
    birth), "today"/"tomorrow"-like words, card expiry dates ("09/28"), the agent's own name
    and anything inside a redaction placeholder.
    """
    masked = _PLACEHOLDER.sub(lambda m: " " * len(m.group()), text)
    found: list[Fact] = []
    for name, value in slots.scan_turn(role, masked):
        kind = _SLOT_KINDS.get(name)
        if kind is None:
            continue
        if kind == "date" and (
            value.lower() in _DROP_DATES or _OLD_YEAR.search(value) or _EXPIRY.match(value)
        ):
            continue
        found.append(Fact(kind, value, turn_id))
    return tuple(found)


def _customer_info(
    text: str,
    turn_id: str,
    sentences: list[str],
    facts: list[Fact],
    after_idv: bool,
    after_name: bool,
) -> _TurnInfo:
    if after_idv:
        # An IDV answer: no dates of birth in the facts, and the name given in full.
        facts = [f for f in facts if f.kind != "date"]
        if after_name:
            m = _FULL_NAME.match(_strip_fillers(text))
            if m and _is_full_name(m.group("name")):
                facts.insert(0, Fact("name", m.group("name"), turn_id))
    issue: list[str] = []
    goals: list[str] = []
    questions: list[str] = []
    tried: list[str] = []
    content_words = 0
    for sentence in sentences:
        core = _PLEASE.sub("", _strip_fillers(sentence)).strip(" ,")
        if not core or not _TWO_LETTERS.search(core):
            continue
        content_words += len(core.split())
        is_goal = False
        for m in _GOAL.finditer(core):
            before = core[: m.start()].rstrip().rsplit(None, 1)
            if before and before[-1].lower() in _AUX_BEFORE:
                continue  # "Do I need a new router?" asks, it does not want
            if core[:4].lower() == "and " and core.endswith("?"):
                continue  # "And can I drop it anywhere?": a follow-up question
            rest = _clause(m.group("rest"))
            rest = _GOAL_NOISE.sub("", rest).strip(" ,")
            content = [w for w in rest.lower().split() if w not in _GOAL_FILLER]
            if len(content) < 2 or _NOT_GOAL.match(rest):
                continue
            goals.append(_goal_phrase(m.group("trigger"), rest))
            is_goal = True
        for m in _CUSTOMER_TRIED.finditer(core):
            if not _clause_start(core, m.start()):
                continue
            clause = _clause(m.group("verb") + m.group("rest"))
            if len(clause.split()) >= 2:
                tried.append(
                    "Customer " + third_person(clause, "customer", named=True, start=False)
                )
        question = core.endswith("?") or (
            _QUESTION_WORDS.match(core) is not None
            and not core.endswith(".")
            and len(core.split()) > 3
        )
        if question:
            questions.append(core.rstrip("?") + "?")  # quoted as asked
        elif (not is_goal or not issue) and (len(core.split()) >= 3 or not issue):
            issue.append(_capitalise(third_person(core, "customer", named=bool(issue))))
    return _TurnInfo(
        "customer",
        turn_id,
        facts=tuple(facts),
        substantive=content_words >= 4 and not (after_idv and content_words < 15),
        issue=tuple(issue),
        goals=tuple(goals),
        questions=tuple(questions),
        tried=tuple(tried),
        declines=bool(_DECLINE.match(_strip_greeting_only(text))),
        word_count=len(text.split()),
    )


def _strip_greeting_only(text: str) -> str:
    return _OPENING_NOISE.sub("", text)


def _promises(sentence: str) -> list[tuple[str, str]]:
    """The commitments in one clause of an agent turn: (third-person text, main verb)."""
    found: list[tuple[str, str]] = []
    for m in _PROMISE.finditer(sentence):
        rest = m.group("rest")
        if _IMMEDIATE.match(rest) and not _LATER.search(rest):
            continue
        subject = m.group("subject")
        clause = (subject + rest).strip()
        if subject.lower().startswith("will be"):
            # "..., which will be credited to your next bill": name what will be.
            head = sentence[: m.start()].rstrip(" ,")
            head = _HEAD_SPLIT.split(head)[-1] if head else ""
            head = _HEAD_LINK.sub("", head.strip())
            clause = f"{head or 'It'} {clause}"
        clause = _clause(clause)
        if len(clause.split()) < 3:
            continue
        verb_match = _PROMISE_VERB.search(clause)
        verb = verb_match.group(1).lower() if verb_match else ""
        text_promise = _capitalise(third_person(clause, "agent"))
        found.append((_THE_AGENT.sub("Agent", text_promise), verb))
    return found


def _agent_info(text: str, turn_id: str, sentences: list[str], facts: list[Fact]) -> _TurnInfo:
    done: list[str] = []
    done_verbs: list[str] = []
    promises: list[tuple[str, str]] = []
    offers: list[str] = []
    for sentence in sentences:
        for part in _AGENT_SPLIT.split(sentence):
            for m in _AGENT_DONE.finditer(part):
                if not _clause_start(part, m.start()):
                    continue  # "the code I've sent": part of another clause
                verb = m.group("verb").lower()
                clause = _clause(m.group("rest"))
                if (not clause and verb == "done") or _IDV_ACTION.search(clause):
                    continue
                rewritten = third_person(clause, "agent", named=True, start=False)
                done.append(f"Agent {_PAST.get(verb, verb)} {rewritten}".strip())
                done_verbs.append(verb)
        confirmed = _CONFIRMED_DONE.match(_strip_fillers(sentence))
        if confirmed and _clause(confirmed.group("rest")):
            clause = f"{confirmed.group('verb')} {_clause(confirmed.group('rest'))}"
            done.append("Agent confirmed: " + third_person(clause, "agent", start=False))
            done_verbs.append(confirmed.group("verb").lower().split()[0])
        for m in _OFFER.finditer(sentence):
            offer = _clause(m.group("offer") or m.group("also") or "")
            if len(offer.split()) >= 2:
                offers.append(third_person(offer, "agent", named=True, start=False))
        for m in _PASSIVE_DONE.finditer(sentence):
            clause = f"{m.group('subject')} has been {m.group('verb')} {_clause(m.group('rest'))}"
            done.append(_capitalise(third_person(clause.strip(), "agent")))
            done_verbs.append(m.group("verb").lower())
        for part in _PROMISE_SPLIT.split(sentence):
            promises.extend(_promises(part))
    first = _strip_fillers(sentences[0]) if sentences else ""
    asks = tuple(name for name, pattern in _IDV_ASKS if pattern.search(text))
    asking = bool(_ASKING.search(text))
    return _TurnInfo(
        "agent",
        turn_id,
        facts=tuple(facts),
        tried=tuple(done),
        done_verbs=tuple(done_verbs),
        promises=tuple(promises),
        holding=bool(_HOLDING.match(first)) and len(text.split()) < 15,
        asks_idv=asking and bool(_ASKS_IDV.search(text)),
        asks_name=asking and bool(_ASKS_NAME.search(text)),
        idv_items=asks,
        verified=bool(_VERIFIED.search(text)),
        escalation=any(_ESCALATION.search(p) for p, _ in promises)
        or any(_ESCALATION.search(d) for d in done),
        offers=tuple(offers),
        word_count=len(text.split()),
    )


def _is_full_name(name: str) -> bool:
    return all(w.lower() not in slots.NOT_NAMES for w in name.split()[-2:])


@lru_cache(maxsize=4096)
def _analyse(role: str, text: str, turn_id: str, after_idv: bool, after_name: bool) -> _TurnInfo:
    """Everything the summary needs from one turn (memoised: a final turn never changes)."""
    if role not in ("customer", "agent"):
        return _TurnInfo(role, turn_id, word_count=len(text.split()))
    sentences = _sentences(text)
    facts = list(extract_facts(text, turn_id, role=role))
    if role == "customer":
        return _customer_info(text, turn_id, sentences, facts, after_idv, after_name)
    return _agent_info(text, turn_id, sentences, facts)


def _goal_phrase(trigger: str, rest: str) -> str:
    """ "I'd like" + "to cancel my broadband" -> "Wants to cancel their broadband"."""
    t = trigger.lower()
    body = third_person(rest, "customer", named=True, start=False)
    if t.startswith(("can you", "could you", "would you", "will you", "please", "can someone")):
        return f"Wants Kestrel to {body}"
    if t.startswith(("can i", "could i", "would i", "will i", "can we", "could we")):
        return f"Wants to {body}"
    if "need" in t:
        return f"Needs {body}"
    if "thinking" in t:
        return f"Considering {body}"
    if t.startswith(("i'm", "i am")):
        return f"Wants to {body}"
    return f"Wants {body}"


# -- next steps ---------------------------------------------------------------------------------

# What to do next when nothing more urgent applies, by intent id (knowledge/intents.yaml ids).
DEFAULT_NEXT_STEPS: Mapping[str, str] = MappingProxyType(
    {
        "billing_double_charge": "Check both payments and raise a duplicate-payment case with "
        "Billing Resolutions (full refund, not counted against the £50 limit)",
        "billing_query": "Walk through the bill line by line and explain any change",
        "refund_request": "Check refund authority: up to £50 yourself, team leader up to £250, "
        "above that Billing Resolutions",
        "payment_card": "Transfer the customer to PayLine; never take card details yourself",
        "order_tracking": "Check the tracking and the estimated delivery date",
        "delivery_late": "If 2 working days past the estimated date, open a ParcelSwift "
        "investigation (answer within 48 hours)",
        "delivery_not_received": "Open a delivered-not-received claim with ParcelSwift",
        "return_request": "Check the 30-day window and send the free returns label",
        "faulty_device": "Troubleshoot, then replace if the device is under 12 months old",
        "broadband_fault": "Run a line test and check the hub lights and known issues",
        "outage_report": "Check the status page; explain automatic compensation after 2 "
        "working days",
        "plan_upgrade": "Explain the new price, the new minimum term and pro-rata charges",
        "cancel_contract": "Check the minimum term and ETC; make one Save desk offer at a time, "
        "stop after two clear no's",
        "complaint": "Log the complaint (CMP reference) and explain the 8-week procedure",
        "bereavement": "Offer condolences and a warm transfer or callback to the Bereavement "
        "Team; no ETC, no offers",
        "financial_hardship": "Follow the CARE protocol; offer a payment plan or Breathing Space "
        "and free debt advice",
        "data_subject_access": "Log the SAR in the privacy portal (DPR reference); reply within "
        "one month",
        "speak_to_manager": "Offer a supervisor callback within 4 working hours or a warm transfer",
        "password_reset": "Send the customer to Forgot password (link valid 30 minutes)",
        "account_locked": "Verify identity, then unlock the account",
    }
)
# Flag kinds as copilot.core.signals names them, plus the "vulnerability_*" spellings.
_CARE_KINDS = frozenset(
    {
        "distress",
        "illness",
        "financial_hardship",
        "vulnerability",
        "vulnerability_illness",
        "vulnerability_financial",
        "vulnerability_distress",
    }
)
_BEREAVEMENT_KINDS = frozenset({"bereavement", "vulnerability_bereavement"})
_ESCALATION_KINDS = frozenset({"legal_threat", "human_request", "regulator_mention"})
_LEVELS = MappingProxyType({"low": 0, "medium": 1, "high": 2, "critical": 3})
_ACCOUNT_INTENTS = MappingProxyType(
    {
        "billing": "the bill",
        "refund": "a refund",
        "payment": "payments",
        "plan": "the plan",
        "cancel": "the contract",
        "order": "the order",
        "delivery": "the order",
        "return": "the order",
        "account": "the account",
        "data": "the request",
        "financial": "the account",
    }
)


def _level(flag: FlagLike) -> int:
    return _LEVELS.get(_text(flag.level).lower(), 0)


def _topic(intent: str | None) -> str:
    if not intent:
        return "the account"
    for prefix, topic in _ACCOUNT_INTENTS.items():
        if intent.startswith(prefix):
            return topic
    return "the account"


def _next_step(
    *,
    intent: str | None,
    flags: Sequence[FlagLike],
    ledger: Sequence[LedgerItemLike],
    questions: Sequence[str],
    open_promises: Sequence[Promise],
    escalation_offered: bool,
    hits: Sequence[HitLike],
    steps: Mapping[str, str],
    turn_count: int,
) -> str:
    kinds = {_text(f.kind): _level(f) for f in flags}
    if _BEREAVEMENT_KINDS & kinds.keys() or intent == "bereavement":
        return steps.get("bereavement", DEFAULT_NEXT_STEPS["bereavement"])
    if any(kinds.get(k, -1) >= _LEVELS["high"] for k in _CARE_KINDS):
        return (
            "Follow the CARE protocol: check the customer is safe, ask what would help and "
            "record support needs with consent"
        )
    for wanted in ("missed", "pending"):
        for item in ledger:
            if _text(item.status).lower() == wanted:
                title = item.title.strip().rstrip(".")
                if _IDENTITY_STEP.search(title):
                    return f"{_capitalise(title)} before discussing {_topic(intent)}"
                return _capitalise(title)
    wants_human = any(k in kinds for k in _ESCALATION_KINDS) or intent == "speak_to_manager"
    if wants_human and not escalation_offered:
        return "Offer a supervisor callback within 4 working hours or a warm transfer"
    if questions:
        return f"Answer the customer's question: “{_clip(questions[-1], 80)}”"
    if intent and intent in steps and turn_count <= 6:
        step = steps[intent]
        return f"{step} (see {hits[0].article_id})" if hits else step
    own = [p for p in open_promises if p.text.startswith("Agent ")]
    if own:
        return f"Set a follow-up task: {_clip(own[-1].text, 90)}"
    if "churn_risk" in kinds and intent != "cancel_contract":
        return "Ask what would make the customer stay; one Save desk offer at a time"
    if intent and intent in steps:
        return steps[intent]
    if turn_count == 0:
        return "Greet the customer and ask how you can help"
    return "Confirm nothing else is needed, then complete the wrap-up"


# -- summarise ----------------------------------------------------------------------------------


def _sentence(text: str) -> str:
    return text if text[-1:] in ".!?…" else text + "."


def _add_fact(facts: list[Fact], fact: Fact) -> None:
    """Append `fact`, merging names: "Daniel" after "Daniel Hughes" is the same person."""
    if fact.kind == "name":
        words = fact.value.split()
        for i, known in enumerate(facts):
            if known.kind != "name":
                continue
            known_words = known.value.split()
            if set(words) <= set(known_words):
                return
            if set(known_words) < set(words):
                facts[i] = Fact("name", fact.value, known.turn_id)
                return
    facts.append(fact)


def _verb_kept(promised: str, done_verbs: Iterable[str]) -> bool:
    if not promised:
        return False
    forms = {
        promised,
        promised + "ed",
        promised + promised[-1] + "ed",  # log -> logged
        promised + "d",
        promised[:-1] + "ied",
        _PAST_OF.get(promised),
    }
    return any(v in forms for v in done_verbs)


_PAST_OF = MappingProxyType(
    {
        "send": "sent",
        "make": "made",
        "set": "set",
        "put": "put",
        "give": "given",
        "take": "taken",
        "do": "done",
        "ring": "rung",
        "write": "written",
        "pay": "paid",
        "get": "got",
    }
)


def summarise(
    turns: Sequence[TurnLike],
    *,
    intent: str | None = None,
    intent_name: str | None = None,
    flags: Sequence[FlagLike] = (),
    sentiment_trend: str | None = None,
    policy_ledger: Sequence[LedgerItemLike] = (),
    hits: Sequence[HitLike] = (),
    next_steps: Mapping[str, str] | None = None,
) -> Summary:
    """Summarise the conversation so far (pure; call it on every turn).

    Args:
        turns: final turns, oldest first, text already redacted (`Conversation.turns`).
        intent: the current intent id (e.g. "billing_double_charge") or None.
        intent_name: its readable name, used as the goal when the customer states none.
        flags: signal flags (kind, level, evidence); duck-typed.
        sentiment_trend: "improving", "steady" or "worsening", or None when not assessed.
        policy_ledger: policy steps with `.status` ("done"/"pending"/"missed") and `.title`.
        hits: knowledge hits; the top one is cited by an intent-based next step.
        next_steps: intent id -> next-step text, overriding DEFAULT_NEXT_STEPS.

    Returns:
        A `Summary`; `Summary.as_text()` is the 3–6 line plain-text version.
    """
    steps = DEFAULT_NEXT_STEPS if next_steps is None else {**DEFAULT_NEXT_STEPS, **next_steps}
    infos: list[_TurnInfo] = []
    after_idv = after_name = False
    for turn in turns:
        role = _text(turn.role).lower()
        info = _analyse(role, turn.text, turn.turn_id, after_idv, after_name)
        infos.append(info)
        if role == "agent":
            after_idv, after_name = info.asks_idv, info.asks_name
        elif role == "customer":
            after_idv = after_name = False

    facts: list[Fact] = []
    seen_facts: set[tuple[str, str]] = set()
    issue: list[str] = []
    issue_words = 0
    goals: list[str] = []
    tried: list[str] = []
    promises: list[tuple[Promise, str, int]] = []
    questions: list[tuple[str, int]] = []
    verified: list[str] = []
    idv_items: list[str] = []
    escalation_offered = False
    done_after: list[tuple[int, str]] = []
    last_agent = -1
    pending_offers: list[str] = []
    for index, info in enumerate(infos):
        for fact in info.facts:
            key = (fact.kind, fact.value.lower())
            if key not in seen_facts:
                seen_facts.add(key)
                _add_fact(facts, fact)
        if info.role == "customer":
            for offer in pending_offers:
                outcome = "; customer declined" if info.declines else ""
                tried.append(f"Agent offered {offer}{outcome}")
            pending_offers = []
            if info.substantive and issue_words < 12:
                for sentence in info.issue:
                    short = len(sentence.split()) < 3
                    if len(issue) < 3 and issue_words < 30 and not (issue and short):
                        issue.append(_sentence(sentence))
                        issue_words += len(sentence.split())
                if not issue and info.goals:
                    issue.append(info.goals[0])
                    issue_words += len(info.goals[0].split())
            for goal in info.goals:
                if goal not in goals:
                    goals.append(goal)
            questions.extend((q, index) for q in info.questions)
            tried.extend(t for t in info.tried if t not in tried)
        elif info.role == "agent":
            if not info.holding:
                last_agent = index
            tried.extend(t for t in info.tried if t not in tried)
            pending_offers.extend(info.offers)
            done_after.extend((index, v) for v in info.done_verbs)
            for text, verb in info.promises:
                if all(text != p.text for p, _, _ in promises):
                    promises.append((Promise(text, info.turn_id), verb, index))
            escalation_offered = escalation_offered or info.escalation
            for item in info.idv_items:
                if item not in idv_items:
                    idv_items.append(item)
            if info.verified and not verified:
                how = ", ".join(idv_items) if idv_items else "as the agent confirmed"
                verified.append(f"Identity verified ({how})")

    tried.extend(f"Agent offered {offer}" for offer in pending_offers)
    open_questions = [q for q, i in questions if i > last_agent]
    open_promises = [
        p for p, verb, i in promises if not _verb_kept(verb, (v for j, v in done_after if j > i))
    ]
    open_items: list[str] = [f"Question: “{q}”" for q in open_questions]
    for entry in policy_ledger:
        status = _text(entry.status).lower()
        if status in ("pending", "missed"):
            open_items.append(f"Policy step {status}: {entry.title}")
    open_items.extend(_PROMISE_ITEM + p.text for p in open_promises)

    # The first want, and the latest when it differs: a customer who asks for a refund and
    # then for a manager wants both known.
    goal = "; ".join(goals[:1] + goals[-1:] if len(goals) > 1 else goals)
    if not goal and intent_name:
        goal = f"Wants help with: {intent_name.lower()}"

    sentiment_parts = [sentiment_trend] if sentiment_trend else []
    ranked = sorted(flags, key=_level, reverse=True)
    labels = [f"{_text(f.kind).replace('_', ' ')} ({_text(f.level)})" for f in ranked[:3]]
    sentiment = "; ".join([*sentiment_parts, ", ".join(labels)] if labels else sentiment_parts)

    next_step = _next_step(
        intent=intent,
        flags=flags,
        ledger=policy_ledger,
        questions=open_questions,
        open_promises=open_promises,
        escalation_offered=escalation_offered,
        hits=hits,
        steps=steps,
        turn_count=len(infos),
    )
    as_of = getattr(turns[-1], "ts", None) if turns else None
    return Summary(
        issue=" ".join(issue).rstrip(".!"),
        goal=goal,
        key_facts=tuple(facts),
        tried=tuple(tried),
        promises=tuple(p for p, _, _ in promises),
        sentiment=sentiment or "not assessed",
        open_items=tuple(open_items),
        next_step=next_step,
        verified=tuple(verified),
        as_of=as_of if isinstance(as_of, dt.datetime) else None,
    )
