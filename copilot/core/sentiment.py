"""Per-turn sentiment: a lexicon-and-rules scorer, an optional linear head over the turn's
embedding, and the trend of a conversation's customer turns.

The scorer follows the shape of VADER (Hutto & Gilbert 2014): word valences from a lexicon,
nudged by boosters, negation, capitals, "but" and exclamation marks, then squashed into
[-1, 1]. Everything it knows (word lists, weights, thresholds) comes from the content pack
through `SentimentConfig`; this module does no I/O and takes ~0.05 ms per turn.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt


class SentimentLabel(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Trend(StrEnum):
    IMPROVING = "improving"
    STEADY = "steady"
    WORSENING = "worsening"


@dataclass(frozen=True, slots=True)
class SentimentLexicon:
    """Word and phrase valences on VADER's scale (about -4 .. +4) and the modifiers.

    Attributes:
        valence: single lower-case tokens (words, emoticons, emoji) -> valence.
        phrases: multi-word lower-case phrases -> valence; matched before single words.
        negations: tokens that flip the valence of the next few words ("not", "never").
        boosters: tokens that strengthen (> 0) or soften (< 0) the next word ("really", "slightly").
        contrasts: tokens after which the clause outweighs what came before ("but").
    """

    valence: Mapping[str, float]
    phrases: Mapping[str, float] = field(default_factory=dict)
    negations: frozenset[str] = frozenset()
    boosters: Mapping[str, float] = field(default_factory=dict)
    contrasts: frozenset[str] = frozenset({"but"})
    phrase_index: dict[str, list[tuple[tuple[str, ...], float]]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Phrases are looked up by their first word, longest first, so "not bad at all" wins
        # over "not bad".
        object.__setattr__(self, "phrase_index", _phrase_index(self.phrases))


# Character n-grams (2-5 within word boundaries) catch what a sentence embedding smooths away:
# spelling ("soooo", "gr8"), negated stems ("n't work"), hashtags and emoticons.
NGRAM_SIZES = (2, 5)
_HANDLE = re.compile(r"@\w+|https?://\S+|www\.\S+")


def char_ngrams(text: str) -> list[str]:
    """The character n-grams of a turn, as the n-gram part of the sentiment head sees them.

    Lower-cased; user handles and links dropped, ``#`` removed from hashtags; each word padded
    with one space on both sides, so a gram can mark the start or end of a word.
    """
    low, high = NGRAM_SIZES
    words = _HANDLE.sub(" ", text.lower()).replace("#", " ").split()
    grams: list[str] = []
    for word in words:
        padded = f" {word} "
        for n in range(low, high + 1):
            if len(padded) <= n:
                grams.append(padded)
                break
            grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams


@dataclass(frozen=True, slots=True)
class NgramModel:
    """A softmax-linear classifier over the sublinear TF-IDF of a turn's `char_ngrams`."""

    vocabulary: Mapping[str, int]
    idf: npt.NDArray[np.float32]  # (n_grams,)
    weights: npt.NDArray[np.float32]  # (n_labels, n_grams)
    bias: npt.NDArray[np.float32]  # (n_labels,)

    def logits(self, text: str) -> npt.NDArray[np.float32]:
        counts: dict[int, int] = {}
        for gram in char_ngrams(text):
            index = self.vocabulary.get(gram)
            if index is not None:
                counts[index] = counts.get(index, 0) + 1
        if not counts:
            return np.asarray(self.bias, dtype=np.float32)
        columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
        tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
        x = tf * self.idf[columns]
        x /= float(np.linalg.norm(x)) or 1.0
        return np.asarray(self.weights[:, columns] @ x + self.bias, dtype=np.float32)


def _softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    shifted = np.asarray(logits, dtype=np.float64) - float(np.max(logits))
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum())


@dataclass(frozen=True, slots=True)
class SentimentHead:
    """A softmax-linear classifier over [embedding, lexicon features] (see `lexicon_features`),
    optionally averaged with a character n-gram classifier (`NgramModel`).

    Trained by `copilot.services.content_signals` on the pack's labelled customer-service turns;
    only used when the caller passes the turn's embedding from the model named here.
    ``ngram_share`` is the n-gram classifier's share of the averaged probabilities.
    """

    model: str
    labels: tuple[SentimentLabel, ...]
    weights: npt.NDArray[np.float32]  # (n_labels, dimension + n_lexicon_features)
    bias: npt.NDArray[np.float32]  # (n_labels,)
    ngrams: NgramModel | None = None
    ngram_share: float = 0.0

    @property
    def dimension(self) -> int:
        return int(self.weights.shape[1]) - N_LEXICON_FEATURES

    def probabilities(
        self, embedding: npt.NDArray[np.float32], features: Sequence[float], text: str = ""
    ) -> dict[SentimentLabel, float]:
        x = np.concatenate([np.asarray(embedding, dtype=np.float32).ravel(), features])
        probs = _softmax(self.weights @ x + self.bias)
        if self.ngrams is not None and self.ngram_share > 0.0:
            share = self.ngram_share
            probs = (1.0 - share) * probs + share * _softmax(self.ngrams.logits(text))
        return {label: float(p) for label, p in zip(self.labels, probs, strict=True)}


@dataclass(frozen=True, slots=True)
class SentimentConfig:
    """How turns are scored and labelled; loaded from ``signals.yaml`` ``sentiment:``.

    Attributes:
        lexicon: valences and modifiers.
        negative_below: a final score at or below this is labelled negative.
        positive_above: a final score at or above this is labelled positive.
        head: optional embedding classifier; blended in when an embedding is given.
        head_weight: share of the head's (p_pos - p_neg) in the final score, 0..1; at 1 the
            head decides alone, by its most probable label.
        head_negative_below, head_positive_above: the label thresholds for a blended score,
            whose spread differs from the lexicon's.
        head_ngram_share: share of the head's character n-gram classifier in its probabilities
            (0 trains none).
        trend_alpha: smoothing factor of the exponentially weighted score (weight of the newest).
        trend_window: how many of the latest smoothed scores the trend slope is fitted on.
        trend_min_slope: slope per customer turn above which the trend is not "steady".
    """

    lexicon: SentimentLexicon
    negative_below: float = -0.05
    positive_above: float = 0.05
    head: SentimentHead | None = None
    head_weight: float = 0.5
    head_negative_below: float = -0.2
    head_positive_above: float = 0.5
    head_ngram_share: float = 0.3
    trend_alpha: float = 0.5
    trend_window: int = 4
    trend_min_slope: float = 0.08


@dataclass(frozen=True, slots=True)
class SentimentHit:
    """One word or phrase that moved the score, with its character span in the turn text."""

    term: str
    start: int
    end: int
    valence: float


@dataclass(frozen=True, slots=True)
class SentimentScore:
    """The sentiment of one turn: ``score`` in [-1, 1] and its label.

    ``lexicon_score`` is the rules-only compound score; ``score`` equals it unless the
    embedding head took part (``used_embedding``).
    """

    score: float
    label: SentimentLabel
    lexicon_score: float
    positive: float = 0.0
    negative: float = 0.0
    hits: tuple[SentimentHit, ...] = ()
    used_embedding: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "score": round(self.score, 4),
            "label": str(self.label),
            "lexicon_score": round(self.lexicon_score, 4),
            "used_embedding": self.used_embedding,
            "hits": [
                {"term": h.term, "start": h.start, "end": h.end, "valence": round(h.valence, 3)}
                for h in self.hits
            ],
        }


# Constants of the VADER method (Hutto & Gilbert 2014); they shape the maths, not the vocabulary.
_NEGATION_SCALAR = -0.74
_CAPS_INCREMENT = 0.733
_BUT_BEFORE = 0.5
_BUT_AFTER = 1.5
_EXCLAMATION_STEP = 0.292
_QUESTION_STEP = 0.18
_NORMALISER = 15.0
_SCOPE = 3  # negations and boosters reach this many tokens back
N_LEXICON_FEATURES = 4

_CHUNK = re.compile(r"\S+")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*")
_ELONGATED = re.compile(r"(.)\1{2,}")


@dataclass(frozen=True, slots=True)
class _Token:
    text: str  # as written
    norm: str  # lower case, curly apostrophes straightened
    start: int
    end: int


def _tokens(text: str, lexicon: SentimentLexicon) -> list[_Token]:
    """Words, emoticons and emoji with their character spans."""
    out: list[_Token] = []
    valence = lexicon.valence
    for chunk in _CHUNK.finditer(text):
        raw = chunk.group()
        trimmed = raw.rstrip(".,;!?")
        if len(trimmed) > 1 and trimmed.lower() in valence and not trimmed[0].isalnum():
            # an emoticon such as ":(" or ":-)", which the word pattern would drop
            out.append(
                _Token(trimmed, trimmed.lower(), chunk.start(), chunk.start() + len(trimmed))
            )
            continue
        pos = 0
        for word in _WORD.finditer(raw):
            for i in range(pos, word.start()):
                if raw[i] in valence:  # an emoji glued to a word or standing alone
                    s = chunk.start() + i
                    out.append(_Token(raw[i], raw[i], s, s + 1))
            s = chunk.start() + word.start()
            w = word.group()
            out.append(_Token(w, w.lower().replace("’", "'"), s, s + len(w)))
            pos = word.end()
        for i in range(pos, len(raw)):
            if raw[i] in valence:
                s = chunk.start() + i
                out.append(_Token(raw[i], raw[i], s, s + 1))
    return out


_CLAUSE_BREAK = re.compile(r"[,;:.!?]")


def _is_negation(norm: str, lexicon: SentimentLexicon) -> bool:
    return norm in lexicon.negations or norm.endswith("n't")


def _lookup(norm: str, valence: Mapping[str, float]) -> float | None:
    value = valence.get(norm)
    if value is None and _ELONGATED.search(norm):
        # "soooo goood" -> try "so good" then "soo good"
        for repl in (r"\1", r"\1\1"):
            value = valence.get(_ELONGATED.sub(repl, norm))
            if value is not None:
                break
    return value


def _phrase_index(phrases: Mapping[str, float]) -> dict[str, list[tuple[tuple[str, ...], float]]]:
    index: dict[str, list[tuple[tuple[str, ...], float]]] = {}
    for phrase, value in phrases.items():
        # tokenised like the text, so "wits' end" and "rip-off" line up with what is matched
        words = tuple(_WORD.findall(phrase.lower().replace("’", "'")))
        if words:
            index.setdefault(words[0], []).append((words, value))
    for options in index.values():
        options.sort(key=lambda item: -len(item[0]))
    return index


def score_text(text: str, config: SentimentConfig) -> SentimentScore:
    """Score one turn with the lexicon and rules only.

    Args:
        text: the (redacted) turn text.
        config: lexicon and thresholds.

    Returns:
        The compound score in [-1, 1], its label and the words that moved it.
    """
    lexicon = config.lexicon
    tokens = _tokens(text, lexicon)
    if not tokens:
        return SentimentScore(0.0, SentimentLabel.NEUTRAL, 0.0)
    phrases = lexicon.phrase_index
    has_lower = any(c.islower() for c in text)
    has_upper_words = has_lower and any(t.text.isupper() and len(t.text) > 1 for t in tokens)

    # (token index of the first word, valence) per sentiment-bearing unit
    units: list[tuple[int, int, float]] = []  # (first index, last index, adjusted valence)
    hits: list[SentimentHit] = []
    i = 0
    previous_end = -1
    n = len(tokens)
    norms = [t.norm for t in tokens]
    while i < n:
        value: float | None = None
        last = i
        for words, phrase_value in phrases.get(norms[i], ()):
            if tuple(norms[i : i + len(words)]) == words:
                value, last = phrase_value, i + len(words) - 1
                break
        if value is None:
            if norms[i] in lexicon.boosters or norms[i] in lexicon.negations:
                i += 1
                continue
            value = _lookup(norms[i], lexicon.valence)
        if value is None or value == 0.0:
            i = last + 1
            continue
        sign = 1.0 if value > 0 else -1.0
        if has_upper_words and tokens[i].text.isupper() and len(tokens[i].text) > 1:
            value += sign * _CAPS_INCREMENT
        negated = False
        # A phrase that holds its own negation ("not working") is not negated again.
        self_negated = any(_is_negation(nm, lexicon) for nm in norms[i : last + 1])
        for back in range(1, _SCOPE + 1):
            j = i - back
            # Modifiers reach back within the clause only, and not past another scored word:
            # in "no, it's not working" the "no" does not flip "not working".
            if (
                j < 0
                or j <= previous_end
                or _CLAUSE_BREAK.search(text, tokens[j].end, tokens[j + 1].start)
            ):
                break
            prev = norms[j]
            boost = lexicon.boosters.get(prev)
            if boost is not None:
                if has_upper_words and tokens[j].text.isupper() and len(tokens[j].text) > 1:
                    boost += math.copysign(_CAPS_INCREMENT, boost)
                value += sign * boost * (1.0 - 0.05 * (back - 1))
            if not self_negated and _is_negation(prev, lexicon):
                negated = True
        if negated:
            value *= _NEGATION_SCALAR
        previous_end = last
        units.append((i, last, value))
        hits.append(
            SentimentHit(
                term=text[tokens[i].start : tokens[last].end],
                start=tokens[i].start,
                end=tokens[last].end,
                valence=value,
            )
        )
        i = last + 1

    if not units:
        return SentimentScore(0.0, _label(0.0, config), 0.0)

    contrast_at = next((k for k, nm in enumerate(norms) if nm in lexicon.contrasts), None)
    values: list[float] = []
    for first, _last, value in units:
        if contrast_at is not None:
            value *= _BUT_BEFORE if first < contrast_at else _BUT_AFTER
        values.append(value)

    total = sum(values)
    if total:
        emphasis = min(text.count("!"), 4) * _EXCLAMATION_STEP
        questions = text.count("?")
        if questions > 1:
            emphasis += min(questions * _QUESTION_STEP, 0.96)
        total += math.copysign(emphasis, total)
    compound = total / math.sqrt(total * total + _NORMALISER)
    compound = max(-1.0, min(1.0, compound))
    positive = sum(v for v in values if v > 0)
    negative = -sum(v for v in values if v < 0)
    return SentimentScore(
        score=compound,
        label=_label(compound, config),
        lexicon_score=compound,
        positive=positive,
        negative=negative,
        hits=tuple(hits),
    )


def lexicon_features(score: SentimentScore) -> list[float]:
    """The rules-only features the embedding head sees beside the embedding."""
    return [
        score.lexicon_score,
        math.tanh(score.positive / 4.0),
        math.tanh(score.negative / 4.0),
        1.0 if score.hits else 0.0,
    ]


def score_turn(
    text: str,
    config: SentimentConfig,
    *,
    embedding: npt.NDArray[np.float32] | None = None,
) -> SentimentScore:
    """Score one turn; blend in the embedding head when an embedding of the right size is given.

    Args:
        text: the (redacted) turn text.
        config: lexicon, thresholds and the optional head.
        embedding: the turn's L2-normalised embedding from ``config.head.model``, if the pipeline
            computed one; ignored when there is no head or its dimension differs.

    Returns:
        The turn's score and label.
    """
    base = score_text(text, config)
    head = config.head
    if head is None or embedding is None or np.asarray(embedding).size != head.dimension:
        return base
    probs = head.probabilities(embedding, lexicon_features(base), text)
    head_score = probs.get(SentimentLabel.POSITIVE, 0.0) - probs.get(SentimentLabel.NEGATIVE, 0.0)
    w = config.head_weight
    blended = (1.0 - w) * base.lexicon_score + w * head_score
    # At weight 1 the head decides alone, by its most probable label (it was trained with
    # balanced class weights, so no threshold needs fitting).
    label = max(probs, key=probs.__getitem__) if w >= 1.0 else _label(blended, config, head=True)
    return SentimentScore(
        score=blended,
        label=label,
        lexicon_score=base.lexicon_score,
        positive=base.positive,
        negative=base.negative,
        hits=base.hits,
        used_embedding=True,
    )


def _label(score: float, config: SentimentConfig, *, head: bool = False) -> SentimentLabel:
    low = config.head_negative_below if head else config.negative_below
    high = config.head_positive_above if head else config.positive_above
    if score <= low:
        return SentimentLabel.NEGATIVE
    if score >= high:
        return SentimentLabel.POSITIVE
    return SentimentLabel.NEUTRAL


@dataclass(frozen=True, slots=True)
class SentimentTrend:
    """Where the customer's mood is heading: the smoothed score now and its slope per turn."""

    trend: Trend
    slope: float
    smoothed: float

    def to_dict(self) -> dict[str, object]:
        return {
            "trend": str(self.trend),
            "slope": round(self.slope, 4),
            "smoothed": round(self.smoothed, 4),
        }


def sentiment_trend(scores: Sequence[float], config: SentimentConfig) -> SentimentTrend:
    """Trend of the customer's sentiment from their turns' scores, oldest first.

    The scores are smoothed exponentially (one angry word should not swing the trend), and a
    least-squares line is fitted through the last ``trend_window`` smoothed values.

    Args:
        scores: per-customer-turn scores in [-1, 1], oldest first.
        config: smoothing factor, window and the slope that counts as a change.

    Returns:
        improving / steady / worsening, with the slope and the latest smoothed score.
    """
    if not scores:
        return SentimentTrend(Trend.STEADY, 0.0, 0.0)
    alpha = config.trend_alpha
    smoothed: list[float] = []
    current = scores[0]
    for s in scores:
        current = alpha * s + (1.0 - alpha) * current
        smoothed.append(current)
    recent = smoothed[-max(2, config.trend_window) :]
    if len(recent) < 2:
        return SentimentTrend(Trend.STEADY, 0.0, smoothed[-1])
    n = len(recent)
    mean_x = (n - 1) / 2.0
    mean_y = sum(recent) / n
    var = sum((x - mean_x) ** 2 for x in range(n))
    slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(recent)) / var
    if slope >= config.trend_min_slope:
        trend = Trend.IMPROVING
    elif slope <= -config.trend_min_slope:
        trend = Trend.WORSENING
    else:
        trend = Trend.STEADY
    return SentimentTrend(trend, slope, smoothed[-1])
