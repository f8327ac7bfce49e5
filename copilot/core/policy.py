"""Policy checks: the behaviour spec applied to a live conversation and to draft replies.

The spec (``knowledge/policies.yaml``, loaded and validated by `copilot.services.content_policy`)
is a list of rules of four types:

- **required_step**: something the agent must do once a trigger fires (verify identity, give the
  recording disclosure, log a complaint). It is tracked in a per-conversation *ledger*:
  not applicable until its trigger fires (whatever the agent said), then pending, then done (an
  agent turn matched a completion cue) or missed (its deadline passed first: the agent said
  something that must come after the step, or N agent turns went by). A completion before the
  trigger counts once the trigger fires (identity verified before the account question), unless
  the rule says ``done_before_trigger: false`` (condolences said about something else). An
  exemption (`unless`) that comes before the completion makes the step not applicable.
- **prohibited**: something the agent must not say or promise (guarantees, a refund above the
  frontline limit without approval, asking for the CVV). Optionally only in a context (`when`: a
  bereaved customer, a customer who has refused an offer twice) and optionally excused by other
  words in the same turn (`unless`: "team leader" next to a £120 refund).
- **card_readback**: an agent turn containing a card number (a CARD redaction or a long digit run).
- **escalation**: a combination of signals (legal threat; high frustration in two consecutive
  customer turns; vulnerability and distress) after which the agent should offer a supervisor. It
  appears in the ledger too and raises a finding while the offer is still pending. Only an offer
  after the trigger counts. With the signals' ``history`` passed, an escalation triggered and
  then offered (or missed) keeps that status after its flag fades; one still pending when its
  flag fades is no longer applicable (the moment has passed).

Everything is recomputed from the turns on each call, so `evaluate` is a pure function of its
inputs. It is cheap because each turn is scanned for cues once (the scan is cached on the spec by
role and text) and the rule logic then works on the indices of matching turns; a call on a 60-turn
conversation costs well under a millisecond. Cue patterns are precompiled when the spec is built,
and each is guarded by literal "anchor" substrings so most regexes never run on a given turn.
"""

from __future__ import annotations

import bisect
import functools
import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from copilot.core.conversation import Role, Turn
from copilot.core.protocols import EvidenceLike, FlagLike
from copilot.core.redaction import PiiType

__all__ = [
    "LEVELS",
    "Condition",
    "ConditionKind",
    "Cue",
    "CueError",
    "EvidenceLike",
    "FlagLike",
    "LedgerEntry",
    "PolicyFinding",
    "PolicyResult",
    "PolicyRule",
    "PolicySpec",
    "RuleType",
    "Severity",
    "StepStatus",
    "check_draft",
    "evaluate",
]

LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")
_LEVEL_RANK: Mapping[str, int] = {name: i for i, name in enumerate(LEVELS)}


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK: Mapping[Severity, int] = {
    Severity.INFO: 0,
    Severity.WARNING: 1,
    Severity.CRITICAL: 2,
}


class RuleType(StrEnum):
    REQUIRED_STEP = "required_step"
    PROHIBITED = "prohibited"
    CARD_READBACK = "card_readback"
    ESCALATION = "escalation"


class StepStatus(StrEnum):
    NOT_APPLICABLE = "not_applicable"
    PENDING = "pending"
    DONE = "done"
    MISSED = "missed"


# -- signals, duck-typed -----------------------------------------------------------------------


# EvidenceLike and FlagLike live in copilot.core.protocols (shared by every stage).


# -- cues: precompiled phrase / regex lists ----------------------------------------------------


class CueError(ValueError):
    """A cue pattern that cannot be used; ``str()`` names the pattern and the reason."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(f"pattern {pattern!r}: {reason}")
        self.pattern = pattern
        self.reason = reason


# Curly quotes and non-breaking spaces are normalised one character for one character, so match
# offsets in the normalised text are offsets in the original text too.
_NORMALISE = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "“": '"', "”": '"', "\u00a0": " "})
_AMOUNT_GROUP = "amount"
_MIN_ANCHOR = 3

try:  # The private regex parser lets us find literal text every match must contain.
    _sre_parse: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - other Pythons: cues simply run without a prefilter
    _sre_parse = None


_MAX_EXPANSION = 48
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
_ZERO_WIDTH = ("AT", "ASSERT", "ASSERT_NOT")


def _finite(items: Iterable[tuple[Any, Any]]) -> frozenset[str] | None:
    """Every string a parsed sequence can match, when that is a small finite set (lower case)."""
    out: set[str] = {""}
    for op, av in items:
        part = _finite_item(op, av)
        if part is None:
            return None
        out = {a + b for a in out for b in part}
        if len(out) > _MAX_EXPANSION:
            return None
    return frozenset(out)


def _finite_item(op: Any, av: Any) -> frozenset[str] | None:
    name = str(op)
    if name == "LITERAL":
        return frozenset({chr(av).lower()})
    if name in _ZERO_WIDTH:
        return frozenset({""})
    if name == "IN":
        chars: set[str] = set()
        for o, a in av:
            if str(o) != "LITERAL":
                return None
            chars.add(chr(a).lower())
        return frozenset(chars)
    if name == "SUBPATTERN":
        return _finite(av[-1])
    if name == "BRANCH":
        union: set[str] = set()
        for branch in av[1]:
            f = _finite(branch)
            if f is None:
                return None
            union |= f
        return frozenset(union)
    if name in _REPEATS and av[1] <= 1:
        f = _finite(av[2])
        if f is None:
            return None
        return f | {""} if av[0] == 0 else f
    return None


def _anchor_set(items: Iterable[tuple[Any, Any]]) -> frozenset[str] | None:
    """Literal substrings (lower case) of which every match of a parsed sequence contains one.

    Runs of literals, optional parts and small alternations are expanded into every string they
    can match ("can'?t afford" gives "can't afford" and "cant afford"); otherwise a required
    group's own anchors are used. The candidate whose shortest string is longest wins.
    """
    candidates: list[frozenset[str]] = []
    current: set[str] = {""}
    for op, av in items:
        part = _finite_item(op, av)
        if part is not None:
            grown = {a + b for a in current for b in part}
            if len(grown) > _MAX_EXPANSION:
                candidates.append(frozenset(current))
                current = set(part)
            else:
                current = grown
            continue
        candidates.append(frozenset(current))
        current = {""}
        name = str(op)
        sub: frozenset[str] | None = None
        if name == "SUBPATTERN":
            sub = _anchor_set(av[-1])
        elif name == "BRANCH":
            parts = [_anchor_set(branch) for branch in av[1]]
            if all(p is not None for p in parts):
                sub = frozenset().union(*(p for p in parts if p is not None))
        elif name in _REPEATS and av[0] >= 1:
            sub = _anchor_set(av[2])
        if sub:
            candidates.append(sub)
    candidates.append(frozenset(current))
    best: frozenset[str] | None = None
    best_score = (0, 0)
    for cand in candidates:
        if not cand:
            continue
        score = (min(len(a.strip()) for a in cand), -len(cand))
        if score > best_score:
            best, best_score = cand, score
    if best is None or best_score[0] < _MIN_ANCHOR:
        return None
    return best


def _pattern_anchors(pattern: str) -> frozenset[str] | None:
    if _sre_parse is None:
        return None
    try:
        parsed = _sre_parse.parse(pattern, re.IGNORECASE)
    except Exception:  # the prefilter is an optimisation only: no anchors means "always run"
        return None
    return _anchor_set(list(parsed))


@functools.lru_cache(maxsize=4096)
def _check_pattern(p: object) -> tuple[re.Pattern[str], frozenset[str] | None]:
    """Validate and compile one pattern; return it with its anchors. Cached: packs reuse lists."""
    if not isinstance(p, str) or not p.strip():
        raise CueError(str(p), "must be a non-empty string")
    try:
        re.compile(_wrap(p), re.IGNORECASE)
        # The left word edge is checked in `_search`: a leading lookbehind would stop the regex
        # engine from skipping ahead to a literal prefix, which makes searches 3-5 times slower.
        compiled = re.compile(rf"(?:{p})(?!\w)", re.IGNORECASE)
    except re.error as exc:
        raise CueError(p, f"not a valid regular expression ({exc})") from None
    if compiled.search("") is not None:
        raise CueError(p, "matches empty text, so it would match every turn")
    others = set(compiled.groupindex) - {_AMOUNT_GROUP}
    if others:
        raise CueError(p, f"named groups other than 'amount' are not allowed: {sorted(others)}")
    return compiled, _pattern_anchors(p)


def _search(regex: re.Pattern[str], text: str, pos: int = 0) -> re.Match[str] | None:
    """`regex.search` for a match that does not start inside a word."""
    while True:
        m = regex.search(text, pos)
        if m is None or m.start() == 0:
            return m
        before = text[m.start() - 1]
        if not (before.isalnum() or before == "_"):
            return m
        pos = m.start() + 1


def _wrap(pattern: str) -> str:
    # Whole words: a phrase never matches inside a longer word ("pin" in "spinning"). Lookarounds
    # rather than \b so patterns may begin or end with "£" or "%".
    return rf"(?<!\w)(?:{pattern})(?!\w)"


@dataclass(frozen=True, slots=True, eq=False)
class Cue:
    """A list of phrases / regexes, matched case-insensitively as whole words.

    Build with `Cue.compile`. Each pattern keeps its own compiled regex and the literal
    "anchor" strings one of which any match must contain, so a pattern only runs on text that
    contains an anchor. A cue whose patterns capture a named group ``amount`` can report the
    largest amount it matched (for "refund over £50" rules).
    """

    patterns: tuple[str, ...]
    regexes: tuple[re.Pattern[str], ...]
    pattern_anchors: tuple[frozenset[str] | None, ...]
    captures_amount: bool

    @classmethod
    def compile(cls, patterns: Iterable[str]) -> Cue:
        """Compile `patterns` (Python regexes; a plain phrase is a regex too).

        Raises:
            CueError: naming the first pattern that is empty, not a valid regex, matches empty
                text, or uses a named group other than ``amount``.
        """
        pats = tuple(dict.fromkeys(patterns))
        if not pats:
            raise CueError("", "the pattern list is empty")
        checked = [_check_pattern(p) for p in pats]
        regexes = tuple(c[0] for c in checked)
        amount = any(_AMOUNT_GROUP in r.groupindex for r in regexes)
        return cls(pats, regexes, tuple(c[1] for c in checked), amount)

    def search(self, text: str, lowered: str | None = None) -> re.Match[str] | None:
        """The earliest match in `text` (curly quotes already straightened), or None.

        Args:
            text: the text to search.
            lowered: ``text.lower()`` when the caller has it.
        """
        low = text.lower() if lowered is None else lowered
        best: re.Match[str] | None = None
        for regex, anchors in zip(self.regexes, self.pattern_anchors, strict=True):
            if anchors is not None and not any(a in low for a in anchors):
                continue
            m = _search(regex, text)
            if m is not None and (best is None or m.start() < best.start()):
                best = m
        return best

    def largest_amount(self, text: str) -> float | None:
        """The largest ``amount`` group value among all matches, or None."""
        best: float | None = None
        for regex in self.regexes:
            if _AMOUNT_GROUP not in regex.groupindex:
                continue
            pos = 0
            while (m := _search(regex, text, pos)) is not None:
                pos = max(m.end(), m.start() + 1)
                raw = m.group(_AMOUNT_GROUP)
                try:
                    value = float(raw.replace(",", "")) if raw else None
                except ValueError:
                    value = None
                if value is not None and (best is None or value > best):
                    best = value
        return best


# -- conditions and rules ----------------------------------------------------------------------


class ConditionKind(StrEnum):
    AT_START = "at_start"
    CHANNEL = "channel"
    CUSTOMER_SAYS = "customer_says"
    AGENT_SAYS = "agent_says"
    FLAG = "flag"
    INTENT = "intent"
    ALL = "all"
    ANY = "any"


@dataclass(frozen=True, slots=True, eq=False)
class Condition:
    """When something becomes true in a conversation: it *fires* at one turn, or never.

    - at_start: at the first turn. channel: at the first turn, when the channel is in `values`.
    - customer_says / agent_says: at the `count`-th turn of that role matching `cue`.
    - flag: a flag whose kind is in `values` (``prefix_*`` matches by prefix) at `min_level` or
      above fires at its first evidence turn; with `consecutive` >= 2 at the end of the first run
      of that many consecutive customer turns in its evidence (a critical flag is accepted as is:
      the signal engine raises sustained levels itself).
    - intent: at the first customer turn, when the conversation's intent is in `values`.
    - all: when the last of `children` has fired. any: when the first has.
    """

    kind: ConditionKind
    cue: Cue | None = None
    count: int = 1
    values: tuple[str, ...] = ()
    min_level: str = "low"
    consecutive: int = 1
    children: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        k = self.kind
        if k in (ConditionKind.CUSTOMER_SAYS, ConditionKind.AGENT_SAYS) and self.cue is None:
            raise ValueError(f"{k.value}: needs a list of patterns")
        if k in (ConditionKind.FLAG, ConditionKind.INTENT, ConditionKind.CHANNEL) and not (
            self.values
        ):
            raise ValueError(f"{k.value}: needs at least one value")
        if k in (ConditionKind.ALL, ConditionKind.ANY) and not self.children:
            raise ValueError(f"{k.value}: needs at least one condition")
        if self.count < 1 or self.consecutive < 1:
            raise ValueError("count and consecutive must be at least 1")
        if self.min_level not in _LEVEL_RANK:
            raise ValueError(f"unknown level {self.min_level!r} (expected one of {LEVELS})")

    def cues(self) -> Iterable[tuple[Role, Cue]]:
        """Every (role, cue) this condition needs scanned."""
        if self.cue is not None:
            role = Role.CUSTOMER if self.kind is ConditionKind.CUSTOMER_SAYS else Role.AGENT
            yield role, self.cue
        for child in self.children:
            yield from child.cues()


@dataclass(frozen=True, slots=True, eq=False)
class PolicyRule:
    """One rule of the behaviour spec. Which fields matter depends on `type`:

    - required_step / escalation: `trigger` (required), `done_when` (agent cue, required),
      `unless` (a condition that makes the step not applicable), and a deadline: `deadline_cue`
      (missed when an agent turn matches it while pending) or `deadline_agent_turns` (missed
      when that many agent turns pass from the trigger without it). For an escalation only a
      completion after the trigger counts; a required step done early counts once its trigger
      fires, unless `done_before_trigger` is False.
    - prohibited: `says` (agent cue, required), `unless_says` (excuses the turn), `when`
      (context that must have fired by that turn), `amount_over` (`says` captures ``amount``).
    - card_readback: nothing else.
    """

    id: str
    type: RuleType
    severity: Severity
    message: str
    article_id: str
    title: str = ""
    trigger: Condition | None = None
    unless: Condition | None = None
    done_when: Cue | None = None
    deadline_cue: Cue | None = None
    deadline_agent_turns: int | None = None
    says: Cue | None = None
    unless_says: Cue | None = None
    when: Condition | None = None
    amount_over: float | None = None
    done_before_trigger: bool = True

    def __post_init__(self) -> None:
        if not self.id.strip():
            raise ValueError("a rule needs an id")
        if not self.message.strip():
            raise ValueError("message: is required")
        if not self.article_id.strip():
            raise ValueError("article: is required")
        if self.type in (RuleType.REQUIRED_STEP, RuleType.ESCALATION):
            if self.trigger is None:
                raise ValueError("trigger: is required for a required_step or escalation")
            if self.done_when is None:
                raise ValueError("done_when: is required for a required_step or escalation")
            if self.deadline_agent_turns is not None and self.deadline_agent_turns < 1:
                raise ValueError("deadline.within_agent_turns: must be at least 1")
        if self.type is RuleType.PROHIBITED:
            if self.says is None:
                raise ValueError("agent_says: is required for a prohibited rule")
            if self.amount_over is not None and not self.says.captures_amount:
                raise ValueError(
                    "amount_over: the agent_says patterns must capture (?P<amount>...)"
                )

    @property
    def display_title(self) -> str:
        return self.title or self.id


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """Where one required step or escalation stands; `turn_id` is the turn that changed it."""

    rule_id: str
    title: str
    status: StepStatus
    turn_id: str | None
    article_id: str
    rule_type: RuleType = RuleType.REQUIRED_STEP
    severity: Severity = Severity.WARNING
    message: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "status": self.status.value,
            "turn_id": self.turn_id,
            "article_id": self.article_id,
            "rule_type": self.rule_type.value,
            "severity": self.severity.value,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class PolicyFinding:
    """Something the agent should see: a breach, a missed step, an escalation to offer.

    `turn_id` is None for a finding on a draft reply. `evidence` quotes the (redacted) words
    that caused it. `status` is set for required steps (missed) and escalations (pending/missed).
    """

    rule_id: str
    severity: Severity
    message: str
    article_id: str
    turn_id: str | None
    evidence: str
    rule_type: RuleType = RuleType.PROHIBITED
    status: StepStatus | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "rule_id": self.rule_id,
            "severity": self.severity.value,
            "message": self.message,
            "article_id": self.article_id,
            "turn_id": self.turn_id,
            "evidence": self.evidence,
            "rule_type": self.rule_type.value,
            "status": self.status.value if self.status is not None else None,
        }


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """The ledger (spec order) and the findings (most severe first, then most recent first)."""

    ledger: tuple[LedgerEntry, ...] = ()
    findings: tuple[PolicyFinding, ...] = ()

    def entry(self, rule_id: str) -> LedgerEntry | None:
        return next((e for e in self.ledger if e.rule_id == rule_id), None)

    def pending(self) -> tuple[LedgerEntry, ...]:
        return tuple(e for e in self.ledger if e.status is StepStatus.PENDING)

    def to_dict(self) -> dict[str, object]:
        return {
            "ledger": [e.to_dict() for e in self.ledger],
            "findings": [f.to_dict() for f in self.findings],
        }


# -- the spec and its evaluation plan ----------------------------------------------------------

# A card number typed or read into agent text that redaction did not catch: 13-19 digits with
# optional single spaces or dashes between groups.
_CARD_DIGITS = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_CARD_PLACEHOLDER = "[card"
_SCAN_CACHE_MAX = 20_000
_CONTEXT_CACHE_MAX = 8
_PHONE_WINDOW = 4  # turns at the start in which channel cues are looked for
_QUOTE_MAX = 160


@dataclass(frozen=True, slots=True)
class _Scan:
    hits: Mapping[int, tuple[int, int]]  # cue id -> span of its first match
    amounts: Mapping[int, float]  # amount cue id -> largest amount matched
    card: bool
    text: str


_EMPTY_SCAN = _Scan({}, {}, False, "")


@dataclass(frozen=True, slots=True, eq=False)
class PolicySpec:
    """The parsed behaviour spec: rules plus channel cues, with everything precompiled.

    Attributes:
        rules: in the order of the content pack; the ledger keeps this order.
        channel_cues: channel name -> cue that identifies it in the first turns, used when the
            caller does not say what the channel is (e.g. "phone": "thanks for calling").
        source: where the spec came from, for messages.
    """

    rules: tuple[PolicyRule, ...]
    channel_cues: Mapping[str, Cue] = field(default_factory=dict)
    source: str = ""
    _plan: _Plan = field(init=False, repr=False)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        object.__setattr__(self, "_plan", _Plan(self))

    def rule(self, rule_id: str) -> PolicyRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


_CondFn = Callable[["_Context", "_Scan | None"], "_Fire | None"]
_CRITICAL = _LEVEL_RANK["critical"]


def _compile_condition(cond: Condition, cue_id: Callable[[Cue | None], int]) -> _CondFn:
    """A function that tells when `cond` fires in an analysed conversation (see `Condition`).

    Built once per spec, so a call does no dispatch on the condition's kind.
    """
    kind = cond.kind
    if kind is ConditionKind.AT_START:
        return lambda ctx, draft: _FIRE_AT_START if ctx.n else None
    if kind is ConditionKind.CHANNEL:
        channels = frozenset(cond.values)
        return lambda ctx, draft: _FIRE_AT_START if ctx.n and ctx.channel in channels else None
    if kind is ConditionKind.INTENT:
        intents = frozenset(cond.values)

        def intent_fn(ctx: _Context, draft: _Scan | None) -> _Fire | None:
            if ctx.n and ctx.intent in intents:
                return _Fire(ctx.first_customer)
            return None

        return intent_fn
    if kind is ConditionKind.CUSTOMER_SAYS or kind is ConditionKind.AGENT_SAYS:
        agent = kind is ConditionKind.AGENT_SAYS
        cid = cue_id(cond.cue)
        key = (Role.AGENT if agent else Role.CUSTOMER, cid)
        count = cond.count

        def says_fn(ctx: _Context, draft: _Scan | None) -> _Fire | None:
            positions = ctx.hits.get(key)
            seen = len(positions) if positions else 0
            if positions and seen >= count:
                return _Fire(positions[count - 1], cid)
            if draft is not None and agent and cid in draft.hits and seen + 1 >= count:
                return _Fire(ctx.n, quote=_quote(draft.text, *draft.hits[cid]))
            return None

        return says_fn
    if kind is ConditionKind.FLAG:
        exact = frozenset(v for v in cond.values if not v.endswith("*"))
        prefixes = tuple(v[:-1] for v in cond.values if v.endswith("*"))
        min_level = _LEVEL_RANK[cond.min_level]
        consecutive = cond.consecutive

        def flag_fn(ctx: _Context, draft: _Scan | None) -> _Fire | None:
            best: _Fire | None = None
            for flag in ctx.flags:
                if flag.level < min_level or not (
                    flag.kind in exact or (prefixes and flag.kind.startswith(prefixes))
                ):
                    continue
                at: int | None
                if not flag.indices:
                    at = ctx.n - 1 if ctx.n else None  # a current flag without evidence: now
                elif consecutive <= 1 or ctx.still:
                    at = flag.indices[0]
                elif flag.level >= _CRITICAL:
                    # The signal engine raises a sustained level itself: accept it as is.
                    at = flag.indices[min(1, len(flag.indices) - 1)]
                else:
                    at = ctx.consecutive_run(flag.indices, consecutive)
                if at is not None and (best is None or at < best.index):
                    best = _Fire(at, quote=flag.quotes.get(at, ""))
            return best

        return flag_fn
    children = tuple(_compile_condition(c, cue_id) for c in cond.children)
    if kind is ConditionKind.ALL:

        def all_fn(ctx: _Context, draft: _Scan | None) -> _Fire | None:
            last: _Fire | None = None
            for child in children:
                fired = child(ctx, draft)
                if fired is None:
                    return None
                if last is None or fired.index > last.index:
                    last = fired
            return last

        return all_fn

    def any_fn(ctx: _Context, draft: _Scan | None) -> _Fire | None:
        first: _Fire | None = None
        for child in children:
            fired = child(ctx, draft)
            if fired is not None and (first is None or fired.index < first.index):
                first = fired
        return first

    return any_fn


_KEY = 3  # anchors are found through their first three characters


class _RoleIndex:
    """Every pattern one role's turns are scanned for, indexed by the anchors it needs.

    A text's three-character substrings are intersected with the anchors' first three
    characters (one C-level set operation), the few anchors left are confirmed with ``in``, and
    only the patterns behind confirmed anchors run their regex.
    """

    def __init__(self, cues: Sequence[Cue], cue_ids: Iterable[int]) -> None:
        pattern_ids: dict[str, int] = {}
        self.regexes: list[re.Pattern[str]] = []
        self.pattern_cues: list[list[int]] = []
        by_key: dict[str, dict[str, set[int]]] = {}
        always: set[int] = set()
        for cid in cue_ids:
            cue = cues[cid]
            for pattern, regex, anchors in zip(
                cue.patterns, cue.regexes, cue.pattern_anchors, strict=True
            ):
                pid = pattern_ids.get(pattern)
                if pid is None:
                    pid = pattern_ids[pattern] = len(self.regexes)
                    self.regexes.append(regex)
                    self.pattern_cues.append([])
                    usable = anchors is not None and all(len(a) >= _KEY for a in anchors)
                    if not usable:
                        always.add(pid)
                    else:
                        for a in anchors or ():
                            by_key.setdefault(a[:_KEY], {}).setdefault(a, set()).add(pid)
                if cid not in self.pattern_cues[pid]:
                    self.pattern_cues[pid].append(cid)
        self.by_key = {k: tuple((a, frozenset(p)) for a, p in v.items()) for k, v in by_key.items()}
        self.keys = frozenset(self.by_key)
        self.always = frozenset(always)

    def match(self, text: str, low: str) -> dict[int, tuple[int, int]]:
        """Cue id -> span of the earliest match in `text` (normalised; `low` is its lower case)."""
        grams = {low[i : i + _KEY] for i in range(len(low) - _KEY + 1)}
        candidates = set(self.always)
        for key in self.keys & grams:
            for anchor, pids in self.by_key[key]:
                if anchor in low:
                    candidates |= pids
        hits: dict[int, tuple[int, int]] = {}
        for pid in candidates:
            m = _search(self.regexes[pid], text)
            if m is None:
                continue
            span = m.span()
            for cid in self.pattern_cues[pid]:
                old = hits.get(cid)
                if old is None or span[0] < old[0]:
                    hits[cid] = span
        return hits


class _Plan:
    """Cue ids, per-role scan lists and caches derived from a spec (never compared or shown)."""

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec
        self.cues: list[Cue] = []
        self._ids: dict[int, int] = {}  # id(cue) -> cue id
        by_role: dict[Role, list[int]] = {Role.CUSTOMER: [], Role.AGENT: []}

        def register(role: Role, cue: Cue) -> int:
            cid = self._ids.get(id(cue))
            if cid is None:
                cid = len(self.cues)
                self.cues.append(cue)
                self._ids[id(cue)] = cid
            if cid not in by_role[role]:
                by_role[role].append(cid)
            return cid

        for rule in spec.rules:
            for cond in (rule.trigger, rule.unless, rule.when):
                if cond is not None:
                    for role, said in cond.cues():
                        register(role, said)
            for agent_cue in (rule.done_when, rule.deadline_cue, rule.says, rule.unless_says):
                if agent_cue is not None:
                    register(Role.AGENT, agent_cue)
        self.channel_ids: dict[str, int] = {}
        for name, channel_cue in spec.channel_cues.items():
            register(Role.CUSTOMER, channel_cue)
            self.channel_ids[name] = register(Role.AGENT, channel_cue)
        self.role_cues: dict[Role, tuple[int, ...]] = {r: tuple(v) for r, v in by_role.items()}
        self.cond_fns: dict[int, _CondFn] = {}
        for rule in spec.rules:
            for cond in (rule.trigger, rule.unless, rule.when):
                if cond is not None:
                    self.cond_fns[id(cond)] = _compile_condition(cond, self.cue_id)
        self.amount_cues = frozenset(i for i, c in enumerate(self.cues) if c.captures_amount)
        self.index = {role: _RoleIndex(self.cues, ids) for role, ids in self.role_cues.items()}
        self._scans: dict[tuple[Role, str, bool], _Scan] = {}
        self._contexts: list[tuple[object, object, object, str | None, str | None, _Context]] = []
        self._indexes: list[_TurnIndex] = []

    def cue_id(self, cue: Cue | None) -> int:
        return -1 if cue is None else self._ids[id(cue)]

    def scan(self, role: Role, text: str, card_redacted: bool = False) -> _Scan:
        if role is Role.SYSTEM:
            return _EMPTY_SCAN
        key = (role, text, card_redacted)
        cached = self._scans.get(key)
        if cached is not None:
            return cached
        norm = text.translate(_NORMALISE)
        low = norm.lower()
        hits: dict[int, tuple[int, int]] = {}
        amounts: dict[int, float] = {}
        for cid, span in self.index[role].match(norm, low).items():
            hits[cid] = span
            if cid in self.amount_cues:
                value = self.cues[cid].largest_amount(norm)
                if value is not None:
                    amounts[cid] = value
        card = role is Role.AGENT and (
            card_redacted or _CARD_PLACEHOLDER in low or _CARD_DIGITS.search(norm) is not None
        )
        result = _Scan(hits, amounts, card, text)
        if len(self._scans) >= _SCAN_CACHE_MAX:
            self._scans.clear()
        self._scans[key] = result
        return result

    def analyse(
        self,
        turns: Sequence[Turn],
        flags: Sequence[FlagLike],
        intent: str | None,
        channel: str | None,
        history: Sequence[FlagLike] = (),
    ) -> _Context:
        """The analysed conversation; reused while the caller passes the very same tuples."""
        cacheable = (
            isinstance(turns, tuple) and isinstance(flags, tuple) and isinstance(history, tuple)
        )
        if cacheable:
            for entry in self._contexts:
                if (
                    entry[0] is turns
                    and entry[1] is flags
                    and entry[2] is history
                    and entry[3] == intent
                    and entry[4] == channel
                ):
                    return entry[5]
        index = self._index(tuple(turns))
        ctx = _Context(self, index, tuple(flags), intent, channel)
        if history:
            # Conditions fire on everything the conversation has raised; the live flags only
            # decide whether a pending escalation still stands. "Still" asks whether the flags
            # are still up, not whether they are still consecutive (the run that triggered it
            # may have slid out of the signals' recent window while the customer stays angry).
            still = _Context(self, index, tuple(flags), intent, channel, still=True)
            ctx = _Context(self, index, (*flags, *history), intent, channel, live=still)
        if cacheable:
            # Holding the tuples keeps their ids from being reused while the entry lives.
            self._contexts.append((turns, flags, history, intent, channel, ctx))
            if len(self._contexts) > _CONTEXT_CACHE_MAX:
                del self._contexts[0]
        return ctx

    def _index(self, turns: tuple[Turn, ...]) -> _TurnIndex:
        """The scanned turns: reused, or extended from the longest earlier prefix."""
        base: _TurnIndex | None = None
        for index in self._indexes:
            if index.turns is turns:
                return index
            if (base is None or index.n > base.n) and index.extends(turns):
                base = index
        index = _TurnIndex(self, turns, base)
        self._indexes.append(index)
        if len(self._indexes) > _CONTEXT_CACHE_MAX:
            del self._indexes[0]
        return index


@dataclass(frozen=True, slots=True)
class _Fire:
    """A condition fired at turn `index`; the quote is the match of cue `cid` there, or `quote`."""

    index: int
    cid: int = -1
    quote: str = ""


_FIRE_AT_START = _Fire(0)


@dataclass(frozen=True, slots=True)
class _Flag:
    kind: str
    level: int
    indices: tuple[int, ...]
    quotes: Mapping[int, str]


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: StepStatus
    index: int | None
    because: _Fire | None  # what to quote


def _as_text(value: object) -> str:
    return str(getattr(value, "value", value)).strip().lower()


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def _quote(text: str, start: int, end: int) -> str:
    """The sentence around text[start:end], at most _QUOTE_MAX characters.

    A full stop ends a sentence only before a space or the end, so "£182.40" stays whole.
    """
    left = 0
    for m in _SENTENCE_END.finditer(text, 0, start):
        left = m.end()
    after = _SENTENCE_END.search(text, end)
    right = after.end() if after else len(text)
    quote = text[left:right].strip()
    if len(quote) <= _QUOTE_MAX:
        return quote
    half = _QUOTE_MAX // 2
    mid = (start + end) // 2
    lo = max(0, mid - half)
    hi = min(len(text), lo + _QUOTE_MAX)
    return ("…" if lo > 0 else "") + text[lo:hi].strip() + ("…" if hi < len(text) else "")


def _snippet(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _QUOTE_MAX else text[: _QUOTE_MAX - 1].rstrip() + "…"


def _mask_digits(text: str) -> str:
    return _CARD_DIGITS.sub(lambda m: f"[CARD •••• {re.sub(r'[^0-9]', '', m.group())[-4:]}]", text)


class _TurnIndex:
    """The turns of a conversation scanned for cues: which turns matched which cue, in order.

    Extending an index by the turns that arrived since is cheap, so a live conversation is
    scanned one new turn at a time.
    """

    def __init__(
        self, plan: _Plan, turns: tuple[Turn, ...], base: _TurnIndex | None = None
    ) -> None:
        self.turns = turns
        self.n = len(turns)
        if base is None:
            start = 0
            self.scans: list[_Scan] = []
            self.hits: dict[tuple[Role, int], list[int]] = {}
            self.agent_idx: list[int] = []
            self.customer_ord: dict[int, int] = {}
            self.index_of: dict[str, int] = {}
        else:
            start = base.n
            self.scans = list(base.scans)
            self.hits = {k: list(v) for k, v in base.hits.items()}
            self.agent_idx = list(base.agent_idx)
            self.customer_ord = dict(base.customer_ord)
            self.index_of = dict(base.index_of)
        for i in range(start, self.n):
            turn = turns[i]
            role = turn.role
            card = (
                role is Role.AGENT
                and bool(turn.redactions)
                and any(r.type is PiiType.CARD for r in turn.redactions)
            )
            scan = plan.scan(role, turn.text, card)
            self.scans.append(scan)
            self.index_of[turn.turn_id] = i
            if role is Role.AGENT:
                self.agent_idx.append(i)
            elif role is Role.CUSTOMER:
                self.customer_ord[i] = len(self.customer_ord)
            for cid in scan.hits:
                key = (role, cid)
                positions = self.hits.get(key)
                if positions is None:
                    self.hits[key] = [i]
                else:
                    positions.append(i)
        self.first_customer = min(self.customer_ord, default=0)
        self.inferred_channel = self._infer_channel(plan)

    def _infer_channel(self, plan: _Plan) -> str | None:
        for name, cid in plan.channel_ids.items():
            for i in range(min(self.n, _PHONE_WINDOW)):
                if cid in self.scans[i].hits:
                    return name
        return None

    def extends(self, turns: tuple[Turn, ...]) -> bool:
        """True when this index's turns are the first turns of `turns` (the very same objects)."""
        if self.n > len(turns):
            return False
        mine = self.turns
        return all(mine[i] is turns[i] for i in range(self.n))


class _Context:
    """One conversation analysed against a spec: scans, hit positions and memoised results."""

    def __init__(
        self,
        plan: _Plan,
        index: _TurnIndex,
        flags: tuple[FlagLike, ...],
        intent: str | None,
        channel: str | None,
        *,
        live: _Context | None = None,
        still: bool = False,
    ) -> None:
        self.plan = plan
        self.live = self if live is None else live  # the context of the current flags only
        self.still = still  # flag conditions ignore `consecutive`: is the flag still up?
        self.turns = index.turns
        self.n = index.n
        self.intent = intent
        self.scans = index.scans
        self.hits = index.hits
        self.agent_idx = index.agent_idx
        self.customer_ord = index.customer_ord
        self.index_of = index.index_of
        self.first_customer = index.first_customer
        self.flags = tuple(self._flag(f) for f in flags)
        self.channel = _as_text(channel) if channel else index.inferred_channel
        self._memo: dict[int, _Fire | None] = {}
        self._outcomes: dict[str, _Outcome] = {}
        self._result: PolicyResult | None = None

    def _flag(self, flag: FlagLike) -> _Flag:
        indices: set[int] = set()
        quotes: dict[int, str] = {}
        for ev in getattr(flag, "evidence", ()) or ():
            i = self.index_of.get(str(getattr(ev, "turn_id", "")))
            if i is None:
                continue
            indices.add(i)
            quotes.setdefault(i, str(getattr(ev, "quote", "") or ""))
        level = _LEVEL_RANK.get(_as_text(getattr(flag, "level", "low")), 0)
        return _Flag(_as_text(getattr(flag, "kind", "")), level, tuple(sorted(indices)), quotes)

    # -- quotes ------------------------------------------------------------------------------

    def quote_hit(self, index: int, cid: int) -> str:
        scan = self.scans[index]
        span = scan.hits.get(cid)
        if span is None:
            return _snippet(scan.text)
        return _quote(scan.text, *span)

    def snippet(self, index: int) -> str:
        return _snippet(self.turns[index].text) if 0 <= index < self.n else ""

    def fire_quote(self, fired: _Fire) -> str:
        if fired.quote:
            return fired.quote
        if fired.cid >= 0:
            return self.quote_hit(fired.index, fired.cid)
        return self.snippet(fired.index)

    # -- conditions --------------------------------------------------------------------------

    def fire(self, cond: Condition, draft: _Scan | None = None) -> _Fire | None:
        """When `cond` fires; with `draft`, the draft counts as one more agent turn at index n."""
        fn = self.plan.cond_fns[id(cond)]
        if draft is not None:
            return fn(self, draft)
        key = id(cond)
        memo = self._memo
        if key in memo:
            return memo[key]
        result = memo[key] = fn(self, None)
        return result

    def consecutive_run(self, indices: tuple[int, ...], length: int) -> int | None:
        run = 0
        previous: int | None = None
        for i in indices:
            ordinal = self.customer_ord.get(i)
            if ordinal is None:
                continue
            run = run + 1 if previous is not None and ordinal == previous + 1 else 1
            previous = ordinal
            if run >= length:
                return i
        return None

    # -- rules -------------------------------------------------------------------------------

    def outcome(self, rule: PolicyRule) -> _Outcome:
        cached = self._outcomes.get(rule.id)
        if cached is None:
            cached = self._outcome(rule)
            self._outcomes[rule.id] = cached
        return cached

    def _outcome(self, rule: PolicyRule) -> _Outcome:
        assert rule.trigger is not None
        plan = self.plan
        done_id = plan.cue_id(rule.done_when)
        done_at: Sequence[int] = self.hits.get((Role.AGENT, done_id), ())
        trig = self.fire(rule.trigger)
        if trig is None:
            # Nothing asked for the step, so nothing the agent said makes it "done" ("sorry to
            # hear that" in a chat about a bill is not condolences).
            return _Outcome(StepStatus.NOT_APPLICABLE, None, None)
        t = trig.index
        d_index: int | None
        if rule.type is RuleType.REQUIRED_STEP and rule.done_before_trigger:
            d_index = done_at[0] if done_at else None  # identity verified before it was needed
        else:
            k = bisect.bisect_left(done_at, t)
            d_index = done_at[k] if k < len(done_at) else None
        missed: _Fire | None = None
        if rule.deadline_cue is not None:
            dl_id = plan.cue_id(rule.deadline_cue)
            dl_at = self.hits.get((Role.AGENT, dl_id), ())
            k = bisect.bisect_left(dl_at, t)
            if k < len(dl_at):
                missed = _Fire(dl_at[k], dl_id)
        elif rule.deadline_agent_turns is not None:
            k = bisect.bisect_left(self.agent_idx, t) + rule.deadline_agent_turns - 1
            if k < len(self.agent_idx):
                missed = _Fire(self.agent_idx[k])
        if rule.unless is not None:
            # An exemption known before the step was done or missed wins: words that happen to
            # match afterwards (an ETC mentioned to a bereaved caller) do not make it "done".
            exempt = self.fire(rule.unless)
            if (
                exempt is not None
                and (missed is None or exempt.index <= missed.index)
                and (d_index is None or exempt.index <= d_index)
            ):
                return _Outcome(StepStatus.NOT_APPLICABLE, exempt.index, exempt)
        if d_index is not None and (missed is None or d_index <= missed.index):
            return _Outcome(StepStatus.DONE, d_index, _Fire(d_index, done_id))
        if missed is None:
            if (
                rule.type is RuleType.ESCALATION
                and self.live is not self
                and self.live.fire(rule.trigger) is None
            ):
                # Triggered earlier, never offered, and the signals have since faded (the
                # customer calmed down): there is nothing to offer now.
                return _Outcome(StepStatus.NOT_APPLICABLE, None, None)
            return _Outcome(StepStatus.PENDING, t, trig)
        if rule.type is RuleType.ESCALATION:
            # The customer's words explain a missed escalation better than the agent's.
            return _Outcome(StepStatus.MISSED, missed.index, trig)
        return _Outcome(StepStatus.MISSED, missed.index, missed)

    def turn_id(self, index: int | None) -> str | None:
        return self.turns[index].turn_id if index is not None and 0 <= index < self.n else None

    def result(self) -> PolicyResult:
        if self._result is None:
            self._result = self._build_result()
        return self._result

    def _build_result(self) -> PolicyResult:
        ledger: list[LedgerEntry] = []
        found: list[tuple[int, PolicyFinding]] = []
        plan = self.plan
        for order, rule in enumerate(plan.spec.rules):
            if rule.type in (RuleType.REQUIRED_STEP, RuleType.ESCALATION):
                out = self.outcome(rule)
                ledger.append(
                    LedgerEntry(
                        rule.id,
                        rule.display_title,
                        out.status,
                        self.turn_id(out.index),
                        rule.article_id,
                        rule.type,
                        rule.severity,
                        rule.message,
                    )
                )
                wanted = out.status is StepStatus.MISSED or (
                    rule.type is RuleType.ESCALATION and out.status is StepStatus.PENDING
                )
                if wanted:
                    quote = self.fire_quote(out.because) if out.because else ""
                    found.append((order, self._finding(rule, out.index, quote, out.status)))
            elif rule.type is RuleType.PROHIBITED:
                for i in self._violations(rule):
                    quote = self.quote_hit(i, plan.cue_id(rule.says))
                    found.append((order, self._finding(rule, i, quote, None)))
            elif rule.type is RuleType.CARD_READBACK:
                for i in self.agent_idx:
                    if self.scans[i].card:
                        quote = _mask_digits(_card_quote(self.scans[i].text))
                        found.append((order, self._finding(rule, i, quote, None)))
        return PolicyResult(tuple(ledger), _sorted_findings(self._one_offer(found), self.index_of))

    def _one_offer(self, found: list[tuple[int, PolicyFinding]]) -> list[tuple[int, PolicyFinding]]:
        """One escalation finding per offer: several triggers met by the same supervisor offer
        (legal threat, ombudsman, asked for a manager) would otherwise repeat one instruction.
        The most severe, then missed before pending, then the newest trigger is kept; the
        ledger still lists every escalation."""
        rules = {r.id: r for r in self.plan.spec.rules}
        best: dict[int, tuple[tuple[int, int, int, int], int, PolicyFinding]] = {}
        kept: list[tuple[int, PolicyFinding]] = []
        for order, f in found:
            if f.rule_type is not RuleType.ESCALATION:
                kept.append((order, f))
                continue
            group = self.plan.cue_id(rules[f.rule_id].done_when)
            position = self.index_of.get(f.turn_id, -1) if f.turn_id else -1
            rank = (f.severity.rank, f.status is StepStatus.MISSED, position, -order)
            if group not in best or rank > best[group][0]:
                best[group] = (rank, order, f)
        kept.extend((order, f) for _, order, f in best.values())
        return kept

    def _finding(
        self, rule: PolicyRule, index: int | None, quote: str, status: StepStatus | None
    ) -> PolicyFinding:
        return PolicyFinding(
            rule.id,
            rule.severity,
            rule.message,
            rule.article_id,
            self.turn_id(index),
            quote,
            rule.type,
            status,
        )

    def _violations(self, rule: PolicyRule) -> list[int]:
        plan = self.plan
        says = plan.cue_id(rule.says)
        unless = plan.cue_id(rule.unless_says)
        out: list[int] = []
        when: _Fire | None = None
        if rule.when is not None:
            when = self.fire(rule.when)
            if when is None:
                return out
        for i in self.hits.get((Role.AGENT, says), ()):
            scan = self.scans[i]
            if _excused(rule, scan, says, unless):
                continue
            if when is not None and when.index > i:
                continue
            out.append(i)
        return out


def _excused(rule: PolicyRule, scan: _Scan, says: int, unless: int) -> bool:
    if unless >= 0 and unless in scan.hits:
        return True
    if rule.amount_over is not None:
        amount = scan.amounts.get(says)
        return amount is None or amount <= rule.amount_over
    return False


def _card_quote(text: str) -> str:
    low = text.lower()
    at = low.find(_CARD_PLACEHOLDER)
    if at >= 0:
        end = low.find("]", at)
        return _quote(text, at, end + 1 if end >= 0 else at + 5)
    m = _CARD_DIGITS.search(text.translate(_NORMALISE))
    return _quote(text, *m.span()) if m else _snippet(text)


def _sorted_findings(
    found: list[tuple[int, PolicyFinding]], index_of: Mapping[str, int]
) -> tuple[PolicyFinding, ...]:
    # Most severe first; then the newest turn (a draft, turn None, is newest of all); then rule
    # order, so equal inputs always give the same order.
    def key(item: tuple[int, PolicyFinding]) -> tuple[int, int, int]:
        order, f = item
        position = len(index_of) if f.turn_id is None else index_of.get(f.turn_id, -1)
        return (-f.severity.rank, -position, order)

    return tuple(f for _, f in sorted(found, key=key))


# -- public API --------------------------------------------------------------------------------


def evaluate(
    turns: Sequence[Turn],
    flags: Sequence[FlagLike],
    intent: str | None,
    spec: PolicySpec,
    *,
    channel: str | None = None,
    history: Sequence[FlagLike] = (),
) -> PolicyResult:
    """Check a conversation so far against the behaviour spec.

    Pure: the same inputs always give an equal result. Pass `Conversation.turns` (redacted);
    repeated calls with the same tuples reuse the previous analysis.

    Args:
        turns: the final turns so far, oldest first.
        flags: current signal flags (kind, level, evidence with turn ids), any class.
        intent: the conversation's intent id, or None.
        spec: the loaded behaviour spec.
        channel: "phone", "chat", ... when the source knows it; otherwise it is inferred from the
            spec's channel cues in the first turns (unknown: channel-only rules don't apply).
        history: every flag raised so far, including those that have faded
            (`ConversationSignals.history`). Without it a flag that fades takes its triggers
            with it, so an escalation offered in time reads "not applicable" afterwards.

    Returns:
        The ledger of required steps and escalations, and the findings, most severe first.
    """
    return spec._plan.analyse(turns, _as_seq(flags), intent, channel, _as_seq(history)).result()


def check_draft(
    text: str,
    *,
    turns: Sequence[Turn] = (),
    flags: Sequence[FlagLike] = (),
    spec: PolicySpec,
    intent: str | None = None,
    channel: str | None = None,
    history: Sequence[FlagLike] = (),
) -> tuple[PolicyFinding, ...]:
    """Check an agent's draft reply before it is sent, in the context of the conversation.

    Reports prohibited phrases (with their context: a bereaved customer, two refusals), a refund
    or credit above the limit without approval, a card number (13-19 digits or a CARD
    placeholder), and account details discussed while a step that must come first (identity
    verification) is outstanding. Findings have ``turn_id`` None.

    Args:
        text: the draft, as the agent would send it.
        turns: the conversation so far (pass the same tuple as to `evaluate` to reuse its work).
        flags: current signal flags.
        spec: the loaded behaviour spec.
        intent: the conversation's intent id, if known.
        channel: as for `evaluate`.
        history: as for `evaluate`.

    Returns:
        Findings, most severe first; empty when the draft is fine to send.
    """
    plan = spec._plan
    ctx = plan.analyse(turns, _as_seq(flags), intent, channel, _as_seq(history))
    draft = plan.scan(Role.AGENT, text)
    if not draft.hits and not draft.card:
        return ()
    found: list[tuple[int, PolicyFinding]] = []

    def add(order: int, rule: PolicyRule, quote: str, status: StepStatus | None) -> None:
        finding = PolicyFinding(
            rule.id, rule.severity, rule.message, rule.article_id, None, quote, rule.type, status
        )
        found.append((order, finding))

    for order, rule in enumerate(spec.rules):
        if rule.type is RuleType.CARD_READBACK:
            if draft.card:
                add(order, rule, _mask_digits(_card_quote(text)), None)
        elif rule.type is RuleType.PROHIBITED:
            says = plan.cue_id(rule.says)
            if says not in draft.hits or _excused(rule, draft, says, plan.cue_id(rule.unless_says)):
                continue
            if rule.when is not None and ctx.fire(rule.when) is None:
                continue
            add(order, rule, _mask_digits(_quote(text, *draft.hits[says])), None)
        elif rule.type is RuleType.REQUIRED_STEP and rule.deadline_cue is not None:
            deadline = plan.cue_id(rule.deadline_cue)
            if deadline not in draft.hits or plan.cue_id(rule.done_when) in draft.hits:
                continue
            out = ctx.outcome(rule)
            if out.status is StepStatus.NOT_APPLICABLE:
                assert rule.trigger is not None
                if ctx.fire(rule.trigger, draft) is None:
                    continue
                if rule.unless is not None and ctx.fire(rule.unless) is not None:
                    continue
            elif out.status is not StepStatus.PENDING:
                continue
            add(order, rule, _mask_digits(_quote(text, *draft.hits[deadline])), StepStatus.MISSED)
    return _sorted_findings(found, ctx.index_of)


def _as_seq(flags: Sequence[FlagLike] | Iterable[FlagLike]) -> Sequence[FlagLike]:
    return flags if isinstance(flags, tuple | list) else tuple(flags)
