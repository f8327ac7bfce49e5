"""Sentiment and escalation signals for a conversation's customer turns.

`analyse_turn` scores one turn (sentiment, and every configured flag with the words that raised
it); `aggregate` combines the customer turns of a conversation into flags whose level rises with
intensity and repetition, plus the sentiment trend. Both take plain inputs, so any turn type
works. All vocabulary, weights and thresholds come from the content pack (``signals.yaml``) via
`build_signal_config`; this module does no I/O.

Per turn this costs well under a millisecond (see ``copilot eval sentiment --json``, "ms_per_turn").
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, cast

from copilot.core.sentiment import (
    SentimentConfig,
    SentimentHead,
    SentimentLabel,
    SentimentLexicon,
    SentimentScore,
    SentimentTrend,
    score_turn,
    sentiment_trend,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class FlagKind(StrEnum):
    FRUSTRATION = "frustration"
    DISTRESS = "distress"
    BEREAVEMENT = "bereavement"
    ILLNESS = "illness"
    FINANCIAL_HARDSHIP = "financial_hardship"
    LEGAL_THREAT = "legal_threat"
    CHURN_RISK = "churn_risk"
    HUMAN_REQUEST = "human_request"
    REPEAT_CONTACT = "repeat_contact"
    URGENCY = "urgency"


class Level(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _LEVELS.index(self)

    def raised(self, steps: int = 1) -> Level:
        return _LEVELS[min(len(_LEVELS) - 1, self.rank + steps)]


_LEVELS: tuple[Level, ...] = (Level.LOW, Level.MEDIUM, Level.HIGH, Level.CRITICAL)


class Scope(StrEnum):
    RECENT = "recent"  # only the latest customer turns count: the flag fades when they calm down
    CONVERSATION = "conversation"  # once said, it stays relevant (a bereavement, a legal threat)


# ---------------------------------------------------------------------------------------------
# Patterns ("regex-lite", documented at the top of knowledge/signals.yaml)


class PatternError(ValueError):
    """A pattern in the configuration cannot be compiled; the message says why."""


_SEP = r"[^\w.!?]+"  # between words: spaces, commas, dashes; never across a sentence end
_GAP = r"(?:[\w'’]+" + _SEP + r"){0,3}?"
_NUMBER_WORDS = {
    "a couple of": 2, "couple of": 2, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15,
    "twenty": 20, "several": 3, "a few": 3, "a dozen": 12, "dozens of": 12, "countless": 10,
    "loads of": 5, "so many": 5, "many": 4, "multiple": 3, "numerous": 4,
}  # fmt: skip
_ORDINAL_WORDS = {
    "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "umpteenth": 10, "nth": 10, "hundredth": 10, "millionth": 10,
}  # fmt: skip


def _alternation(words: Sequence[str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", _SEP) for w in sorted(words, key=len, reverse=True))


_NUM_RE = r"(?P<count>\d+|" + _alternation(list(_NUMBER_WORDS)) + ")"
_ORD_RE = r"(?P<count>\d+(?:st|nd|rd|th)|" + _alternation(list(_ORDINAL_WORDS)) + ")"


# Contractions whose apostrophe stays required: without it they spell another common word
# ("we were leaving" is not "we're leaving"). Every other apostrophe in a pattern word is
# optional, because customers type "cant", "dont" and "ive" as often as "can't".
_APOSTROPHE_REQUIRED = frozenset({"we're", "we'll", "we'd", "he'll", "she'll", "she'd"})


def _bare(word: str) -> str:
    """A word as the prefilter compares it: lower case, with no apostrophes of either kind."""
    return word.lower().replace("’", "").replace("'", "")


def _word_regex(word: str) -> str:
    if word == "<num>":
        return _NUM_RE
    if word == "<ord>":
        return _ORD_RE
    if word.startswith("<") and word.endswith(">"):
        raise PatternError(f"unknown placeholder {word!r}; use <num> or <ord>")
    if "(" in word or ")" in word or "|" in word:
        raise PatternError(f"stray bracket or bar in {word!r}; groups look like (a|b c)")
    prefix = word.endswith("*") and len(word) > 1
    body = word[:-1] if prefix else word
    if "*" in body:
        raise PatternError(f"'*' may only end a word, in {word!r}")
    apostrophe = "['’]" if body.lower().replace("’", "'") in _APOSTROPHE_REQUIRED else "['’]?"
    out = "".join(apostrophe if ch in "'’" else re.escape(ch) for ch in body)
    return out + (r"[\w'’-]*" if prefix else "")


_LEX = re.compile(r"\(|\)\??|\||[^\s()|]+|\s+")


class _Parser:
    """Recursive descent over regex-lite: sequence := item+, item := word | (alt|alt...) | ..."""

    def __init__(self, source: str) -> None:
        self.tokens = [t for t in _LEX.findall(source) if not t.isspace()]
        self.pos = 0

    def parse(self) -> tuple[str, frozenset[str] | None]:
        out, triggers = self.sequence(top=True)
        if self.pos != len(self.tokens):
            raise PatternError(f"unexpected {self.tokens[self.pos]!r}")
        return out, triggers

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def sequence(self, *, top: bool = False) -> tuple[str, frozenset[str] | None]:
        """The regex of a sequence and the words it can start with (None: any)."""
        parts: list[str] = []
        pending_gap = False
        leading_optional = False
        triggers: set[str] | None = set()
        collecting = True  # until the first required item, any item may come first
        while (
            (token := self._peek()) is not None
            and token not in ("|",)
            and not token.startswith(")")
        ):
            self.pos += 1
            if token == "...":
                if not parts:
                    raise PatternError("'...' needs a word before it")
                pending_gap = True
                continue
            item_triggers: frozenset[str] | None
            if token == "(":
                alternatives = [self.sequence()]
                while self._peek() == "|":
                    self.pos += 1
                    alternatives.append(self.sequence())
                close = self._peek()
                if close is None or not close.startswith(")"):
                    raise PatternError("unclosed group: a '(' has no ')'")
                self.pos += 1
                optional = close == ")?"
                piece = "(?:" + "|".join(a for a, _ in alternatives) + ")"
                item_triggers = (
                    None
                    if any(t is None for _, t in alternatives)
                    else frozenset().union(*(t for _, t in alternatives if t is not None))
                )
            else:
                optional = token.endswith("?") and len(token) > 1
                word = token[:-1] if optional else token
                piece = _word_regex(word)
                item_triggers = _trigger(word)
            if collecting:
                if item_triggers is None or triggers is None:
                    triggers = None
                else:
                    triggers |= item_triggers
                collecting = optional
            if not parts or leading_optional:
                # nothing solid before it yet: an optional item carries its own separator
                parts.append(f"(?:{piece}{_SEP})?" if optional else piece)
                leading_optional = optional
            elif optional:
                parts.append(f"(?:{_SEP}{_GAP if pending_gap else ''}{piece})?")
            else:
                parts.append(_SEP + (_GAP if pending_gap else "") + piece)
            pending_gap = False
        if pending_gap:
            raise PatternError("'...' needs a word after it")
        if not parts:
            raise PatternError("empty pattern" if top else "empty alternative in a group")
        if top and self._peek() is not None:
            raise PatternError(f"unexpected {self._peek()!r} outside a group")
        return "".join(parts), (None if collecting or triggers is None else frozenset(triggers))


def _trigger(word: str) -> frozenset[str] | None:
    """The text word a pattern word needs (``cancel*`` keeps its star: any word so starting).

    Compared without apostrophes on both sides (see `_bare`), so "can't" is found in "cant".
    """
    if word.startswith("<"):
        return None
    prefix = word.endswith("*")
    head = _TRIGGER_SPLIT.split(_bare(word.rstrip("*")))[0]
    if not head:
        return None
    # a word cut short by punctuation ("a&e") can only be a prefix of what the text holds
    return frozenset({head + "*" if prefix or head != _bare(word) else head})


_TRIGGER_SPLIT = re.compile(r"[^\w]+")


def compile_pattern(source: str) -> re.Pattern[str]:
    """Compile a regex-lite pattern (syntax: top of ``knowledge/signals.yaml``).

    Raises:
        PatternError: with a reason a knowledge manager can act on.
    """
    return _compile_with_triggers(source)[0]


def _compile_with_triggers(source: str) -> tuple[re.Pattern[str], frozenset[str] | None]:
    """The compiled pattern and the words a text must hold for it to match (None: unknown)."""
    source = source.strip()
    if not source:
        raise PatternError("empty pattern")
    triggers: frozenset[str] | None = None
    if source.startswith("re:"):
        raw = source[3:]
    else:
        if source.count("<num>") + source.count("<ord>") > 1:
            raise PatternError("at most one <num> or <ord> per pattern")
        body, triggers = _Parser(source).parse()
        raw = r"(?<![\w'’])" + body + r"(?![\w'’])"
    try:
        compiled = re.compile(raw, re.IGNORECASE)
    except re.error as exc:
        raise PatternError(f"not a valid regular expression: {exc}") from None
    if compiled.search("") is not None:
        raise PatternError("matches the empty string")
    return compiled, triggers


def _count_value(text: str) -> int:
    text = re.sub(r"\s+", " ", text.lower())
    digits = re.match(r"\d+", text)
    if digits:
        return int(digits.group())
    return _NUMBER_WORDS.get(text) or _ORDINAL_WORDS.get(text) or 3


def count_multiplier(count: int) -> float:
    """How much a <num>/<ord> match weighs: x0.5 for 2, x1 for 3, x1.5 for 4, x2 for 5 or more."""
    return max(0.5, min(2.0, (count - 1) / 2.0))


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True, slots=True)
class FlagPattern:
    """One configured pattern. ``words``/``prefixes``: a cheap pre-check (one of them must be in
    the turn for the regex to have a chance); both empty and ``gated`` False means always run."""

    source: str
    regex: re.Pattern[str]
    weight: float
    negatable: bool = True
    gated: bool = False
    words: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def compile(cls, source: str, *, weight: float = 1.0, negatable: bool = True) -> FlagPattern:
        regex, triggers = _compile_with_triggers(source)
        if triggers is None:
            return cls(source, regex, weight, negatable)
        return cls(
            source,
            regex,
            weight,
            negatable,
            gated=True,
            words=frozenset(t for t in triggers if not t.endswith("*")),
            prefixes=tuple(sorted(t[:-1] for t in triggers if t.endswith("*"))),
        )

    def may_match(self, words: frozenset[str]) -> bool:
        if not self.gated or not self.words.isdisjoint(words):
            return True
        return any(w.startswith(p) for p in self.prefixes for w in words)


@dataclass(frozen=True, slots=True)
class LevelThresholds:
    low: float = 0.5
    medium: float = 1.0
    high: float = 2.0
    critical: float = 3.5

    def level(self, intensity: float) -> Level | None:
        for level, threshold in (
            (Level.CRITICAL, self.critical),
            (Level.HIGH, self.high),
            (Level.MEDIUM, self.medium),
            (Level.LOW, self.low),
        ):
            if intensity >= threshold:
                return level
        return None


@dataclass(frozen=True, slots=True)
class FlagRule:
    """How one flag kind is detected in a turn and levelled over a conversation."""

    kind: FlagKind
    label: str
    message: str
    patterns: tuple[FlagPattern, ...]
    thresholds: LevelThresholds = LevelThresholds()
    scope: Scope = Scope.CONVERSATION
    recent_turns: int = 4
    repeat_turns: int = 0  # seen in this many customer turns -> one level up (0: off)
    consecutive_turns: int = 0  # this many successive customer turns ...
    consecutive_at_least: Level = Level.HIGH  # ... each at least this level ...
    consecutive_to: Level = Level.CRITICAL  # ... lift the flag to this level (0: off)
    emphasis: bool = False
    sentiment_amplifier: float = 0.0
    # not raised while the conversation has one of these (churn risk on a bereavement call)
    suppressed_by: frozenset[FlagKind] = frozenset()


@dataclass(frozen=True, slots=True)
class NegationConfig:
    cues: tuple[re.Pattern[str], ...] = ()
    window: int = 3
    scope_breakers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SignalConfig:
    """Everything the signals need, built from ``signals.yaml`` by `build_signal_config`."""

    sentiment: SentimentConfig
    rules: tuple[FlagRule, ...]
    negation: NegationConfig = NegationConfig()
    intensifiers: Mapping[str, float] = field(default_factory=dict)
    caps_factor: float = 1.0
    exclamation_factor: float = 1.0
    head_source: str = ""  # the head's training file, relative to the pack (the loader trains it)

    def rule(self, kind: str) -> FlagRule | None:
        return next((r for r in self.rules if r.kind == kind), None)


class SignalConfigError(ValueError):
    """The signals configuration is invalid: which file, which key, and why."""

    def __init__(self, key: str, reason: str, *, path: str = "") -> None:
        self.key = key
        self.reason = reason
        self.path = path
        super().__init__(self._text())

    def _text(self) -> str:
        where = ": ".join(p for p in (self.path, self.key) if p)
        return f"{where}: {self.reason}" if where else self.reason

    def with_path(self, path: str) -> SignalConfigError:
        return SignalConfigError(self.key, self.reason, path=path)


def _mapping(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SignalConfigError(key, f"expected a mapping, got {type(value).__name__}")
    for k in value:
        if not isinstance(k, str):
            raise SignalConfigError(key, f"keys must be text, got {k!r}")
    return cast("Mapping[str, Any]", value)


def _list(value: object, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise SignalConfigError(key, f"expected a list, got {type(value).__name__}")
    return value


def _number(value: object, key: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SignalConfigError(key, f"expected a number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SignalConfigError(key, f"{value} is outside {lo} .. {hi}")
    return float(value)


def _int(value: object, key: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SignalConfigError(key, f"expected a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise SignalConfigError(key, f"{value} is outside {lo} .. {hi}")
    return value


def _text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SignalConfigError(key, f"expected non-empty text, got {value!r}")
    return value.strip()


def _words(value: object, key: str) -> frozenset[str]:
    return frozenset(_text(w, f"{key}[{i}]").lower() for i, w in enumerate(_list(value, key)))


def _with_bare_forms(words: frozenset[str]) -> frozenset[str]:
    """The words plus their forms typed without apostrophes ("i'm" -> "im"), as patterns match."""
    out = {w.replace("’", "'") for w in words}
    return frozenset(out | {w.replace("'", "") for w in out if w not in _APOSTROPHE_REQUIRED})


def _known(data: Mapping[str, Any], key: str, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SignalConfigError(
            f"{key}.{unknown[0]}" if key else unknown[0],
            f"unknown key; expected one of: {', '.join(sorted(allowed))}",
        )


def _level(value: object, key: str) -> Level:
    try:
        return Level(str(value))
    except ValueError:
        raise SignalConfigError(
            key, f"{value!r} is not a level; use one of: {', '.join(_LEVELS)}"
        ) from None


def _thresholds(value: object, key: str, default: LevelThresholds) -> LevelThresholds:
    data = _mapping(value, key)
    _known(data, key, {"low", "medium", "high", "critical"})
    values = {
        name: _number(data.get(name, getattr(default, name)), f"{key}.{name}", 0.0)
        for name in ("low", "medium", "high", "critical")
    }
    ordered = [values[n] for n in ("low", "medium", "high", "critical")]
    if ordered != sorted(ordered):
        raise SignalConfigError(key, "thresholds must rise: low <= medium <= high <= critical")
    return LevelThresholds(**values)


def _compile(source: object, key: str) -> re.Pattern[str]:
    try:
        return compile_pattern(_text(source, key))
    except PatternError as exc:
        raise SignalConfigError(key, f"{exc} (pattern {source!r})") from None


def _sentiment(
    data: Mapping[str, Any], base_lexicon: Mapping[str, float] | None
) -> tuple[SentimentConfig, str]:
    key = "sentiment"
    _known(
        data,
        key,
        {"base_lexicon", "thresholds", "trend", "head", "negations", "contrasts", "boosters",
         "lexicon"},
    )  # fmt: skip
    base = data.get("base_lexicon", "none")
    if base not in ("vader", "none"):
        raise SignalConfigError(f"{key}.base_lexicon", f"{base!r} is not 'vader' or 'none'")
    valence: dict[str, float] = {}
    phrases: dict[str, float] = {}
    if base == "vader":
        if base_lexicon is None:
            raise SignalConfigError(f"{key}.base_lexicon", "the VADER lexicon was not supplied")
        for word, value in base_lexicon.items():
            (phrases if " " in word else valence)[word] = value
    lexicon = _mapping(data.get("lexicon", {}), f"{key}.lexicon")
    for word, value in lexicon.items():
        v = _number(value, f"{key}.lexicon.{word}", -4.0, 4.0)
        norm = word.strip().lower().replace("’", "'")
        (phrases if " " in norm else valence)[norm] = v
        bare = norm.replace("'", "")
        if bare != norm and not _APOSTROPHE_REQUIRED.intersection(norm.split()):
            # typed without the apostrophe ("isnt working"), unless the pack lists that too
            bare_table = phrases if " " in bare else valence
            if bare not in lexicon:
                bare_table[bare] = v
    boosters = {}
    for word, value in _mapping(data.get("boosters", {}), f"{key}.boosters").items():
        if " " in word.strip():
            raise SignalConfigError(f"{key}.boosters.{word}", "a booster must be one word")
        boosters[word.lower()] = _number(value, f"{key}.boosters.{word}", -1.0, 1.0)
    thresholds = _mapping(data.get("thresholds", {}), f"{key}.thresholds")
    _known(thresholds, f"{key}.thresholds", {"negative_below", "positive_above"})
    neg = _number(
        thresholds.get("negative_below", -0.05), f"{key}.thresholds.negative_below", -1, 1
    )
    pos = _number(thresholds.get("positive_above", 0.05), f"{key}.thresholds.positive_above", -1, 1)
    if neg >= pos:
        raise SignalConfigError(
            f"{key}.thresholds", "negative_below must be lower than positive_above"
        )
    trend = _mapping(data.get("trend", {}), f"{key}.trend")
    _known(trend, f"{key}.trend", {"alpha", "window", "min_slope"})
    head = _mapping(data.get("head", {}), f"{key}.head")
    _known(
        head, f"{key}.head", {"train", "weight", "negative_below", "positive_above", "ngram_share"}
    )
    head_source = _text(head["train"], f"{key}.head.train") if "train" in head else ""
    head_neg = _number(head.get("negative_below", -0.2), f"{key}.head.negative_below", -1, 1)
    head_pos = _number(head.get("positive_above", 0.5), f"{key}.head.positive_above", -1, 1)
    if head_neg >= head_pos:
        raise SignalConfigError(f"{key}.head", "negative_below must be lower than positive_above")
    config = SentimentConfig(
        lexicon=SentimentLexicon(
            valence=valence,
            phrases=phrases,
            negations=_words(data.get("negations", []), f"{key}.negations"),
            boosters=boosters,
            contrasts=_words(data.get("contrasts", ["but"]), f"{key}.contrasts"),
        ),
        negative_below=neg,
        positive_above=pos,
        head_weight=_number(head.get("weight", 0.5), f"{key}.head.weight", 0.0, 1.0),
        head_negative_below=head_neg,
        head_positive_above=head_pos,
        head_ngram_share=_number(head.get("ngram_share", 0.3), f"{key}.head.ngram_share", 0.0, 1.0),
        trend_alpha=_number(trend.get("alpha", 0.5), f"{key}.trend.alpha", 0.01, 1.0),
        trend_window=_int(trend.get("window", 4), f"{key}.trend.window", 2, 50),
        trend_min_slope=_number(trend.get("min_slope", 0.08), f"{key}.trend.min_slope", 0.0, 2.0),
    )
    return config, head_source


_RULE_KEYS = {
    "label", "message", "patterns", "levels", "scope", "recent_turns", "repeat_turns",
    "consecutive", "emphasis", "sentiment_amplifier", "suppressed_by",
}  # fmt: skip


def _rule(kind_name: str, value: object, default_levels: LevelThresholds) -> FlagRule:
    key = f"flags.{kind_name}"
    try:
        kind = FlagKind(kind_name)
    except ValueError:
        raise SignalConfigError(
            key, f"unknown flag kind; use one of: {', '.join(k.value for k in FlagKind)}"
        ) from None
    data = _mapping(value, key)
    _known(data, key, _RULE_KEYS)
    patterns: list[FlagPattern] = []
    for i, item in enumerate(_list(data.get("patterns"), f"{key}.patterns")):
        pkey = f"{key}.patterns[{i}]"
        entry = _mapping(item, pkey) if not isinstance(item, str) else {"match": item}
        _known(entry, pkey, {"match", "weight", "negatable"})
        if "match" not in entry:
            raise SignalConfigError(pkey, "missing 'match'")
        negatable = entry.get("negatable", True)
        if not isinstance(negatable, bool):
            raise SignalConfigError(
                f"{pkey}.negatable", f"expected true or false, got {negatable!r}"
            )
        source = _text(entry["match"], f"{pkey}.match")
        weight = _number(entry.get("weight", 1.0), f"{pkey}.weight", 0.0, 10.0)
        try:
            patterns.append(FlagPattern.compile(source, weight=weight, negatable=negatable))
        except PatternError as exc:
            raise SignalConfigError(f"{pkey}.match", f"{exc} (pattern {source!r})") from None
    if not patterns:
        raise SignalConfigError(f"{key}.patterns", "needs at least one pattern")
    scope_value = data.get("scope", "conversation")
    try:
        scope = Scope(scope_value)
    except ValueError:
        raise SignalConfigError(
            f"{key}.scope", f"{scope_value!r} is not 'recent' or 'conversation'"
        ) from None
    consecutive = _mapping(data.get("consecutive", {}), f"{key}.consecutive")
    _known(consecutive, f"{key}.consecutive", {"turns", "at_least", "to"})
    emphasis = data.get("emphasis", False)
    if not isinstance(emphasis, bool):
        raise SignalConfigError(f"{key}.emphasis", f"expected true or false, got {emphasis!r}")
    suppressed_by: set[FlagKind] = set()
    for i, name in enumerate(_list(data.get("suppressed_by", []), f"{key}.suppressed_by")):
        try:
            other = FlagKind(name)
        except ValueError:
            raise SignalConfigError(
                f"{key}.suppressed_by[{i}]",
                f"{name!r} is not a flag kind; use one of: {', '.join(k.value for k in FlagKind)}",
            ) from None
        if other is kind:
            raise SignalConfigError(f"{key}.suppressed_by[{i}]", "a flag cannot suppress itself")
        suppressed_by.add(other)
    return FlagRule(
        kind=kind,
        label=_text(data.get("label", kind_name.replace("_", " ").capitalize()), f"{key}.label"),
        message=_text(data.get("message", kind_name.replace("_", " ")), f"{key}.message"),
        patterns=tuple(patterns),
        thresholds=_thresholds(data.get("levels", {}), f"{key}.levels", default_levels),
        scope=scope,
        recent_turns=_int(data.get("recent_turns", 4), f"{key}.recent_turns", 1, 100),
        repeat_turns=_int(data.get("repeat_turns", 0), f"{key}.repeat_turns", 0, 100),
        consecutive_turns=_int(consecutive.get("turns", 0), f"{key}.consecutive.turns", 0, 20),
        consecutive_at_least=_level(
            consecutive.get("at_least", "high"), f"{key}.consecutive.at_least"
        ),
        consecutive_to=_level(consecutive.get("to", "critical"), f"{key}.consecutive.to"),
        emphasis=emphasis,
        sentiment_amplifier=_number(
            data.get("sentiment_amplifier", 0.0), f"{key}.sentiment_amplifier", 0.0, 5.0
        ),
        suppressed_by=frozenset(suppressed_by),
    )


def build_signal_config(
    data: Mapping[str, Any],
    *,
    base_lexicon: Mapping[str, float] | None = None,
    head: SentimentHead | None = None,
) -> SignalConfig:
    """Validate the parsed ``signals.yaml`` and build the configuration.

    Args:
        data: the parsed YAML document.
        base_lexicon: the general-English lexicon (word or phrase -> valence) that
            ``sentiment.base_lexicon: vader`` starts from; the loader reads it from the package.
        head: an already trained sentiment head to attach, if any.

    Raises:
        SignalConfigError: naming the key (``flags.churn_risk.patterns[3].match``) and the reason.
    """
    root = _mapping(data, "")
    _known(
        root,
        "",
        {"version", "sentiment", "negation", "intensifiers", "emphasis", "levels", "flags"},
    )
    if root.get("version", 1) != 1:
        raise SignalConfigError("version", f"unsupported version {root.get('version')!r}; use 1")
    sentiment, head_source = _sentiment(
        _mapping(root.get("sentiment", {}), "sentiment"), base_lexicon
    )
    if head is not None:
        sentiment = dataclasses.replace(sentiment, head=head)
    negation = _mapping(root.get("negation", {}), "negation")
    _known(negation, "negation", {"window", "cues", "scope_breakers"})
    cues = tuple(
        _compile(c, f"negation.cues[{i}]")
        for i, c in enumerate(_list(negation.get("cues", []), "negation.cues"))
    )
    intensifiers = {
        w.lower(): _number(v, f"intensifiers.{w}", 1.0, 5.0)
        for w, v in _mapping(root.get("intensifiers", {}), "intensifiers").items()
    }
    emphasis = _mapping(root.get("emphasis", {}), "emphasis")
    _known(emphasis, "emphasis", {"caps", "exclamations"})
    default_levels = _thresholds(root.get("levels", {}), "levels", LevelThresholds())
    flags = _mapping(root.get("flags", {}), "flags")
    rules = tuple(_rule(name, value, default_levels) for name, value in flags.items())
    return SignalConfig(
        sentiment=sentiment,
        rules=rules,
        negation=NegationConfig(
            cues=cues,
            window=_int(negation.get("window", 3), "negation.window", 0, 10),
            scope_breakers=_with_bare_forms(
                _words(negation.get("scope_breakers", []), "negation.scope_breakers")
            ),
        ),
        intensifiers=intensifiers,
        caps_factor=_number(emphasis.get("caps", 1.0), "emphasis.caps", 1.0, 5.0),
        exclamation_factor=_number(
            emphasis.get("exclamations", 1.0), "emphasis.exclamations", 1.0, 5.0
        ),
        head_source=head_source,
    )


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class Evidence:
    """The words that raised a flag: ``quote == text[start:end]`` of turn ``turn_id``."""

    turn_id: str
    quote: str
    start: int
    end: int

    def to_dict(self) -> dict[str, object]:
        return {"turn_id": self.turn_id, "quote": self.quote, "start": self.start, "end": self.end}


@dataclass(frozen=True, slots=True)
class Flag:
    """A raised flag. ``intensity`` is the summed pattern weight that set ``level``."""

    kind: FlagKind
    level: Level
    evidence: tuple[Evidence, ...]
    message: str
    intensity: float = 0.0
    turns: int = 1  # customer turns in which it was seen

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": str(self.kind),
            "level": str(self.level),
            "message": self.message,
            "intensity": round(self.intensity, 3),
            "turns": self.turns,
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True, slots=True)
class TurnSignals:
    """Signals of one customer turn."""

    turn_id: str
    sentiment: SentimentScore
    flags: tuple[Flag, ...] = ()

    def flag(self, kind: str) -> Flag | None:
        return next((f for f in self.flags if f.kind == kind), None)

    def to_dict(self) -> dict[str, object]:
        return {
            "turn_id": self.turn_id,
            "sentiment": self.sentiment.to_dict(),
            "flags": [f.to_dict() for f in self.flags],
        }


@dataclass(frozen=True, slots=True)
class ConversationSignals:
    """Signals of a conversation so far: one entry per customer turn, the trend and the flags.

    ``flags`` are the ones to show now: a flag with ``scope: recent`` fades once the latest
    customer turns no longer raise it. ``history`` is every flag raised at any point, at its peak
    over the whole conversation, with all its evidence; the policy ledger needs it so an
    escalation that was triggered and offered stays done after the customer calms down
    (``policy.evaluate(..., history=signals.history)``).
    """

    turns: tuple[TurnSignals, ...]
    trend: SentimentTrend
    flags: tuple[Flag, ...]  # highest level first
    history: tuple[Flag, ...] = ()  # highest level first

    @property
    def sentiment(self) -> SentimentScore | None:
        """The latest customer turn's sentiment."""
        return self.turns[-1].sentiment if self.turns else None

    @property
    def highest_level(self) -> Level | None:
        return self.flags[0].level if self.flags else None

    def flag(self, kind: str) -> Flag | None:
        return next((f for f in self.flags if f.kind == kind), None)

    def to_dict(self) -> dict[str, object]:
        latest = self.sentiment
        return {
            "sentiment": latest.to_dict() if latest else None,
            "trend": self.trend.to_dict(),
            "flags": [f.to_dict() for f in self.flags],
            "turns": [t.to_dict() for t in self.turns],
        }


# ---------------------------------------------------------------------------------------------
# Detection


_WORDS = re.compile(r"[\w'’]+")
_TEXT_WORDS = re.compile(r"[\w']+")
_CLAUSE_END = re.compile(r"[.,;:!?()\[\]—–]|\s-\s")
_CAPS_WORD = re.compile(r"\b[A-Z]{3,}\b")


def _negated(text: str, start: int, cue_ends: Sequence[int], negation: NegationConfig) -> bool:
    # The nearest cue before the match decides: an earlier one would have to reach across it.
    nearest = max((end for end in cue_ends if end <= start), default=None)
    if nearest is None:
        return False
    gap = text[nearest:start]
    if _CLAUSE_END.search(gap):
        return False
    words = [w.lower().replace("’", "'") for w in _WORDS.findall(gap)]
    if len(words) > negation.window:
        return False
    return not any(w in negation.scope_breakers for w in words)


def _intensifier(text: str, start: int, intensifiers: Mapping[str, float]) -> float:
    before = text[max(0, start - 40) : start]
    if _CLAUSE_END.search(before[-3:] if before else ""):
        return 1.0
    words = [w.lower() for w in _WORDS.findall(before)][-2:]
    return max((intensifiers.get(w, 1.0) for w in words), default=1.0)


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    weight: float


def _rule_hits(
    text: str,
    rule: FlagRule,
    cue_ends: Sequence[int],
    config: SignalConfig,
    words: frozenset[str],
) -> list[_Hit]:
    candidates: list[tuple[int, int, float, bool]] = []  # start, end, weight, negatable
    for pattern in rule.patterns:
        if not pattern.may_match(words):
            continue  # most patterns are ruled out by their first word, without the regex
        for m in pattern.regex.finditer(text):
            if m.end() <= m.start():
                continue
            weight = pattern.weight
            count = m.groupdict().get("count")
            if count is not None and weight:
                weight *= count_multiplier(_count_value(count))
            candidates.append((m.start(), m.end(), weight, pattern.negatable))
    # Longest match wins where matches overlap, so specific patterns (and weight-0 exclusions
    # such as "lawyer friend") override the general ones they contain.
    candidates.sort(key=lambda c: (-(c[1] - c[0]), c[0]))
    kept: list[tuple[int, int, float, bool]] = []
    for cand in candidates:
        if all(cand[1] <= k[0] or cand[0] >= k[1] for k in kept):
            kept.append(cand)
    hits: list[_Hit] = []
    for start, end, weight, negatable in sorted(kept):
        if weight <= 0.0:
            continue
        if negatable and _negated(text, start, cue_ends, config.negation):
            continue
        hits.append(_Hit(start, end, weight * _intensifier(text, start, config.intensifiers)))
    return hits


def analyse_turn(
    text: str,
    *,
    turn_id: str,
    config: SignalConfig,
    embedding: npt.NDArray[np.float32] | None = None,
) -> TurnSignals:
    """Sentiment and flags of one customer turn.

    Args:
        text: the turn's (already redacted) text.
        turn_id: carried into every piece of evidence.
        config: from `build_signal_config` / ``content_signals.load_signal_config``.
        embedding: the turn's embedding, when the pipeline has one; lets the sentiment head help.

    Returns:
        The turn's sentiment and its flags (only those at level low or above).
    """
    sentiment = score_turn(text, config.sentiment, embedding=embedding)
    cue_ends = sorted({m.end() for cue in config.negation.cues for m in cue.finditer(text)})
    shouting = bool(_CAPS_WORD.search(text)) and any(c.islower() for c in text)
    exclaiming = "!!" in text or "?!" in text or "!?" in text
    flags: list[Flag] = []
    words = frozenset(_bare(w) for w in _TEXT_WORDS.findall(text.lower().replace("’", "'")))
    for rule in config.rules:
        hits = _rule_hits(text, rule, cue_ends, config, words)
        if not hits:
            continue
        intensity = sum(h.weight for h in hits)
        if rule.emphasis:
            if shouting:
                intensity *= config.caps_factor
            if exclaiming:
                intensity *= config.exclamation_factor
        if rule.sentiment_amplifier and sentiment.score < 0:
            intensity *= 1.0 + rule.sentiment_amplifier * -sentiment.score
        level = rule.thresholds.level(intensity)
        if level is None:
            continue
        evidence = tuple(Evidence(turn_id, text[h.start : h.end], h.start, h.end) for h in hits)
        flags.append(Flag(rule.kind, level, evidence, rule.message, intensity))
    return TurnSignals(turn_id=turn_id, sentiment=sentiment, flags=tuple(flags))


class _TurnLike(Protocol):
    @property
    def turn_id(self) -> str: ...
    @property
    def role(self) -> object: ...
    @property
    def text(self) -> str: ...


TurnInput = tuple[str, str, str] | _TurnLike | TurnSignals

_MAX_EVIDENCE = 6


def _customer_signals(turns: Sequence[TurnInput], config: SignalConfig) -> list[TurnSignals]:
    out: list[TurnSignals] = []
    for turn in turns:
        if isinstance(turn, TurnSignals):
            out.append(turn)  # the caller already kept only customer turns
            continue
        role: object
        if isinstance(turn, tuple):
            turn_id, role, text = turn
        else:
            turn_id, role, text = turn.turn_id, turn.role, turn.text
        if str(getattr(role, "value", role)).lower() != "customer":
            continue
        out.append(analyse_turn(text, turn_id=turn_id, config=config))
    return out


def _conversation_flag(
    rule: FlagRule, turns: Sequence[TurnSignals], *, whole: bool = False
) -> Flag | None:
    """The rule's flag over the conversation; `whole`: every turn counts and all evidence is kept
    (the flag's history), whatever the rule's scope."""
    considered = turns[-rule.recent_turns :] if rule.scope is Scope.RECENT and not whole else turns
    per_turn = [t.flag(rule.kind) for t in considered]
    seen = [f for f in per_turn if f is not None]
    if not seen:
        return None
    level = max((f.level for f in seen), key=lambda lv: lv.rank)
    reasons: list[str] = []
    if rule.repeat_turns and len(seen) >= rule.repeat_turns:
        level = level.raised()
        reasons.append(f"in {len(seen)} turns")
    if rule.consecutive_turns:
        run = best = 0
        for f in per_turn:
            run = run + 1 if f is not None and f.level.rank >= rule.consecutive_at_least.rank else 0
            best = max(best, run)
        if best >= rule.consecutive_turns and rule.consecutive_to.rank > level.rank:
            level = rule.consecutive_to
            reasons.append(f"{best} turns in a row")
    evidence = tuple(e for f in seen for e in f.evidence)
    if len(evidence) > _MAX_EVIDENCE and not whole:
        evidence = evidence[-_MAX_EVIDENCE:]  # the latest words are the ones the agent needs
    message = rule.message + (f" ({', '.join(reasons)})" if reasons else "")
    return Flag(
        kind=rule.kind,
        level=level,
        evidence=evidence,
        message=message,
        intensity=max(f.intensity for f in seen),
        turns=len(seen),
    )


def aggregate(turns: Sequence[TurnInput], config: SignalConfig) -> ConversationSignals:
    """Combine a conversation's turns into flags, the latest sentiment and its trend.

    Args:
        turns: oldest first; either ``(turn_id, role, text)`` tuples or objects with those
            attributes (agent and system turns are skipped), or the `TurnSignals` of the
            customer turns already analysed (the live pipeline keeps these, so each turn is
            scored once).
        config: the signals configuration.

    Returns:
        Per-customer-turn signals, the sentiment trend and the conversation's flags, the highest
        level first. A flag's level is the highest of its turns, raised by repetition rules. A
        flag whose rule is ``suppressed_by`` a kind the conversation has is left out. The
        ``history`` holds every flag ever raised (see `ConversationSignals`).
    """
    customer = _customer_signals(turns, config)
    trend = sentiment_trend([t.sentiment.score for t in customer], config.sentiment)
    flags: list[Flag] = []
    history: list[Flag] = []
    for rule in config.rules:
        live = _conversation_flag(rule, customer)
        past = live
        if rule.scope is Scope.RECENT or (live is not None and len(live.evidence) >= _MAX_EVIDENCE):
            past = _conversation_flag(rule, customer, whole=True)
        if live is not None:
            flags.append(live)
        if past is not None:
            history.append(past)
    return ConversationSignals(
        turns=tuple(customer),
        trend=trend,
        flags=_ranked(_unsuppressed(flags, config)),
        history=_ranked(_unsuppressed(history, config)),
    )


def _unsuppressed(flags: list[Flag], config: SignalConfig) -> list[Flag]:
    present = {f.kind for f in flags}
    out = []
    for f in flags:
        rule = config.rule(f.kind)
        if rule is None or rule.suppressed_by.isdisjoint(present):
            out.append(f)
    return out


def _ranked(flags: list[Flag]) -> tuple[Flag, ...]:
    return tuple(sorted(flags, key=lambda f: (-f.level.rank, -f.intensity)))


__all__ = [
    "ConversationSignals",
    "Evidence",
    "Flag",
    "FlagKind",
    "FlagRule",
    "Level",
    "SentimentLabel",
    "SignalConfig",
    "SignalConfigError",
    "TurnSignals",
    "aggregate",
    "analyse_turn",
    "build_signal_config",
    "compile_pattern",
]
