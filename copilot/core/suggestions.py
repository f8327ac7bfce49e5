"""Suggested replies: candidates from reply templates and retrieved passages, ranked and checked.

`suggest` runs once per turn. It gathers candidates from

* **templates** (`TemplateLibrary`, loaded from the content pack with their embeddings
  precomputed): those written for the predicted intent (or a runner-up intent), those whose
  ``when`` flags are raised, and the few nearest to the customer's recent words by cosine;
  templates whose ``unless`` flags are raised are never offered (no Save desk offer to a
  bereaved customer);
* **passages** of the two best retrieved articles, citing the article and the passage: the
  passage's own quoted script ("what to say") when it shares at least two content words with
  the customer's recent words, else, in an article written for customers, the 1-3 sentences
  sharing the most, prefixed "I can help with that.". Only text that can be said to a customer
  as written is used: never agent instructions (articles written for agents contribute their
  scripts only), list fragments, example figures, customers' quoted words or "what not to say"
  lines. The analysis is cached per passage (`prepare_passages` does it ahead of time).

Slots are filled from the conversation (`copilot.core.slots`); a slot that cannot be filled stays
a visible placeholder such as ``[order number]`` and is listed in `Suggestion.missing_slots`.

Scoring
-------
Every candidate gets::

    score = 0.45 * fit + 0.35 * intent + 0.35 * flag + 0.20 * (2 * prior - 1) - 0.02 * missing

* ``fit``: cosine of the query vector (recent customer text, embedded once per turn by the
  pipeline) with the template's embedding, floored at 0; for a passage candidate, its retrieval
  score clipped to [0, 1] (the default linear fusion is a cosine plus a small BM25 share).
* ``intent``: the classifier's confidence in the intent the template is written for (the top
  intent or a runner-up); for a passage candidate, half the top intent's confidence when a
  template for that intent cites the same article, else 0.
* ``flag``: the strongest raised ``when`` flag, by level: low 0.4, medium 0.6, high 0.8,
  critical 1.0.
* ``prior``: from the feedback store (`PriorProvider`), 0.5 when nothing is known, so the term
  is 0 until agents have accepted or discarded the item.
* ``missing``: how many slots the conversation could not fill.

A template that fits neither the intent nor a flag must have ``fit >= MIN_FIT`` (0.35: related
customer/reply pairs score 0.38-0.65 with MiniLM, unrelated ones below 0.33), and nothing
scoring under ``MIN_SCORE`` (0.15), or under 40% of the best candidate's score, is offered (a
weak look-alike does not pad out a list led by strong fits). Shown confidence is
``clip(0.6 * max(intent, flag) + 0.4 * min(1, fit / 0.6) + 0.2 * (prior - 0.5))``.

Going down the ranking, a candidate is kept unless its filled text is a near-duplicate
(rapidfuzz token ratio >= 85) of one already kept or of something the agent said in the last
three agent turns, or ``draft_check`` reports a warning or critical finding on it (so a
suggestion never contradicts a policy rule). At most ``k`` (3) are returned.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz

from copilot.core.models import ArticleHit, Passage, PassageHit
from copilot.core.protocols import FlagLike
from copilot.core.slots import (
    SLOT_LABELS,
    SlotValues,
    TurnLike,
    extract_slots,
    fill_template,
    template_slots,
)

if TYPE_CHECKING:
    from copilot.core.protocols import Embedder

__all__ = [
    "FLAG_ALIASES",
    "FLAG_KINDS",
    "FLAG_LEVELS",
    "TONES",
    "Citation",
    "DraftCheck",
    "FlagLike",
    "NeutralPrior",
    "Prior",
    "PriorProvider",
    "ReplyTemplate",
    "Suggestion",
    "TemplateLibrary",
    "TemplateProblem",
    "prepare_passages",
    "suggest",
]

#: Flag kinds templates may name in ``when`` / ``unless`` (those `copilot.core.signals` raises).
#: ``when`` may add a minimum level: ``distress:high``.
FLAG_KINDS: frozenset[str] = frozenset(
    {
        "frustration",
        "distress",
        "bereavement",
        "illness",
        "financial_hardship",
        "legal_threat",
        "churn_risk",
        "human_request",
        "repeat_contact",
        "urgency",
    }
)
#: Other names the same flags go by (the vulnerability flags with their category prefix).
FLAG_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "vulnerability_bereavement": "bereavement",
        "vulnerability_illness": "illness",
        "vulnerability_financial": "financial_hardship",
        "vulnerability_financial_hardship": "financial_hardship",
    }
)
TONES: frozenset[str] = frozenset(
    {"neutral", "empathetic", "apologetic", "reassuring", "informative", "calm", "warm"}
)

W_FIT = 0.45
W_INTENT = 0.35
W_FLAG = 0.35
W_PRIOR = 0.20
MISSING_SLOT_PENALTY = 0.02
MIN_FIT = 0.35
MIN_SCORE = 0.15
RELATIVE_MIN_SCORE = 0.4
FIT_FOR_FULL_CONFIDENCE = 0.6
DUPLICATE_RATIO = 85.0
NEAREST_TEMPLATES = 8
ARTICLE_HITS = 2
RECENT_CUSTOMER_TURNS = 3
RECENT_AGENT_TURNS = 3
FLAG_LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")
_LEVEL_WEIGHT: Mapping[str, float] = MappingProxyType(
    {"low": 0.4, "medium": 0.6, "high": 0.8, "critical": 1.0}
)
_BLOCKING_SEVERITIES = frozenset({"warning", "critical", "error", "high"})


# --- collaborators ------------------------------------------------------------------------------


class DraftFinding(Protocol):
    """What a policy check reports about a draft (`copilot.core.policy` findings fit)."""

    @property
    def severity(self) -> Any: ...

    @property
    def rule_id(self) -> str: ...

    @property
    def message(self) -> str: ...


DraftCheck = Callable[[str], Sequence[DraftFinding]]


@dataclass(frozen=True, slots=True)
class Prior:
    """What feedback says about an item: `value` in [0, 1], 0.5 when nothing is known."""

    value: float = 0.5
    n_observations: int = 0
    explanation: str = ""


class PriorProvider(Protocol):
    """Supplies feedback priors (the feedback store implements it)."""

    def prior(self, item_id: str, intent: str | None) -> Prior:
        """The prior for `item_id` (a template id or a passage id), for this intent."""
        ...


_NEUTRAL = Prior()


class NeutralPrior:
    """No feedback yet: every item gets 0.5, so the prior does not change the ranking."""

    def prior(self, item_id: str, intent: str | None) -> Prior:
        return _NEUTRAL


# --- templates ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Citation:
    """An article a suggestion is based on; `passage_id` when a particular passage is quoted."""

    article_id: str
    passage_id: str | None
    title: str

    def to_dict(self) -> dict[str, object]:
        return {"article_id": self.article_id, "passage_id": self.passage_id, "title": self.title}


@dataclass(frozen=True, slots=True)
class ReplyTemplate:
    """A reply template (macro) from the content pack.

    Attributes:
        id: stable id, e.g. ``billing.double_charge_check``.
        title: short label shown with the suggestion.
        text: the reply with ``{slot}`` placeholders (see `copilot.core.slots`).
        intents: intent ids it is written for.
        when: flag kinds that make it fit (e.g. ``bereavement``), optionally
            with a minimum level (``distress:high``).
        unless: flag kinds that make it unfit (it is never offered while one is raised).
        citations: the articles it is based on.
        tone: one of `TONES`.
        area: the file it came from (billing, delivery, ...).
        source_path: where it was loaded from.
    """

    id: str
    title: str
    text: str
    intents: tuple[str, ...] = ()
    when: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    citations: tuple[Citation, ...] = ()
    tone: str = "neutral"
    area: str = ""
    source_path: str = ""

    @property
    def slots(self) -> tuple[str, ...]:
        return template_slots(self.text)

    @property
    def article_ids(self) -> tuple[str, ...]:
        return tuple(c.article_id for c in self.citations)

    def embedding_text(self) -> str:
        """What is embedded: the title and the text, slots read as their labels."""
        body = re.sub(
            r"\{([a-z_]+)\}", lambda m: SLOT_LABELS.get(m.group(1), m.group(1)), self.text
        )
        return f"{self.title}. {body}"


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """Something wrong with a template file or template, and why.

    `skipped` is true when the template (or the whole file, when `template_id` is empty) was
    not loaded; false for advice on a template that was still loaded (e.g. it cites an article
    that has since expired).
    """

    path: str
    template_id: str
    reason: str
    skipped: bool = True

    def __str__(self) -> str:
        where = f"{self.path}: {self.template_id}" if self.template_id else self.path
        return f"{where}: {self.reason}"


_MONEY_RE = re.compile(r"£\d+(?:,\d{3})*(?:\.\d{2})?")


@dataclass(frozen=True, eq=False)
class TemplateLibrary:
    """Reply templates with their embeddings (rows aligned with `templates`), ready for `suggest`.

    Build with `TemplateLibrary.build`; the content-pack loader is
    `copilot.services.content_templates.load_template_library`.

    Attributes:
        templates: the valid templates, in load order.
        embeddings: float32 (n, d), L2-normalised, or None when built without an embedder.
        embedder_name: `Embedder.name` of the model that produced `embeddings`.
        article_audiences: article id -> audience ("agent", "public", ...), for judging which
            passage sentences can be said to a customer.
        problems: templates that were skipped, with the reason.
    """

    templates: tuple[ReplyTemplate, ...] = ()
    embeddings: npt.NDArray[np.float32] | None = None
    embedder_name: str = ""
    article_audiences: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[TemplateProblem, ...] = ()
    _by_id: Mapping[str, int] = field(init=False, repr=False)
    _by_intent: Mapping[str, tuple[int, ...]] = field(init=False, repr=False)
    _by_flag: Mapping[str, tuple[int, ...]] = field(init=False, repr=False)
    _intents_by_article: Mapping[str, frozenset[str]] = field(init=False, repr=False)
    _slots: tuple[tuple[str, ...], ...] = field(init=False, repr=False)
    _policy_amounts: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.embeddings is not None and self.embeddings.shape[0] != len(self.templates):
            raise ValueError(
                f"{self.embeddings.shape[0]} embeddings for {len(self.templates)} templates"
            )
        by_id: dict[str, int] = {}
        by_intent: dict[str, list[int]] = {}
        by_flag: dict[str, list[int]] = {}
        by_article: dict[str, set[str]] = {}
        amounts: set[str] = set()
        for i, template in enumerate(self.templates):
            if template.id in by_id:
                raise ValueError(f"duplicate template id {template.id!r}")
            by_id[template.id] = i
            for intent in template.intents:
                by_intent.setdefault(intent, []).append(i)
            for condition in template.when:
                by_flag.setdefault(condition.partition(":")[0], []).append(i)
            for article_id in template.article_ids:
                by_article.setdefault(article_id, set()).update(template.intents)
            amounts.update(_MONEY_RE.findall(template.text))
        set_ = object.__setattr__
        set_(self, "_by_id", MappingProxyType(by_id))
        set_(self, "_by_intent", MappingProxyType({k: tuple(v) for k, v in by_intent.items()}))
        set_(self, "_by_flag", MappingProxyType({k: tuple(v) for k, v in by_flag.items()}))
        set_(
            self,
            "_intents_by_article",
            MappingProxyType({k: frozenset(v) for k, v in by_article.items()}),
        )
        set_(self, "_slots", tuple(t.slots for t in self.templates))
        # Figures the curated templates state are company policy (£50, £9.33 ...); any other
        # figure in a passage is an example that must not reach a customer as fact.
        set_(self, "_policy_amounts", frozenset(amounts))

    @classmethod
    def build(
        cls,
        templates: Sequence[ReplyTemplate],
        embedder: Embedder | None,
        *,
        article_audiences: Mapping[str, str] | None = None,
        problems: Sequence[TemplateProblem] = (),
    ) -> TemplateLibrary:
        """Embed every template once (one batch) and index them for `suggest`."""
        templates = tuple(templates)
        embeddings = None
        name = ""
        if embedder is not None and templates:
            embeddings = np.ascontiguousarray(
                embedder.embed([t.embedding_text() for t in templates]), dtype=np.float32
            )
            name = embedder.name
        return cls(
            templates=templates,
            embeddings=embeddings,
            embedder_name=name,
            article_audiences=MappingProxyType(dict(article_audiences or {})),
            problems=tuple(problems),
        )

    def __len__(self) -> int:
        return len(self.templates)

    def get(self, template_id: str) -> ReplyTemplate | None:
        index = self._by_id.get(template_id)
        return None if index is None else self.templates[index]

    def for_intent(self, intent: str) -> tuple[ReplyTemplate, ...]:
        return tuple(self.templates[i] for i in self._by_intent.get(intent, ()))

    def similarities(
        self, query_vector: npt.NDArray[np.floating[Any]] | None
    ) -> npt.NDArray[np.float32] | None:
        """Cosine of the query with every template, or None without vectors."""
        if query_vector is None or self.embeddings is None:
            return None
        vector = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.embeddings.shape[1]:
            raise ValueError(
                f"query vector has dimension {vector.shape[0]}, templates were embedded with"
                f" {self.embedder_name or 'another model'} ({self.embeddings.shape[1]})"
            )
        sims: npt.NDArray[np.float32] = self.embeddings @ vector
        return sims


# --- suggestions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One suggested reply, ready to show: filled text, where it came from and why.

    Attributes:
        id: stable id: the template id, or ``<passage id>:<text hash>`` for passage replies.
        kind: "template" or "article".
        text: the reply with slots filled (unfilled ones as visible ``[placeholders]``).
        title: short label.
        source: the template id, or the article id and title.
        citations: the articles (and passage) it is based on.
        confidence: how well it fits, in [0, 1].
        why: one line, e.g. "Fits intent billing_double_charge (0.91); cites KB-BIL-001".
        missing_slots: slots the conversation could not fill (in text order).
        score: the ranking score (see the module docstring).
        item_id: what feedback is recorded against (template id or passage id).
        template_text: the unfilled template text ("" for passage replies).
        generated: written by the optional language model (`copilot.core.generative`), shown
            and recorded as AI-generated.
    """

    id: str
    kind: Literal["template", "article"]
    text: str
    title: str
    source: str
    citations: tuple[Citation, ...]
    confidence: float
    why: str
    missing_slots: tuple[str, ...]
    score: float
    item_id: str
    template_text: str = ""
    generated: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "title": self.title,
            "source": self.source,
            "citations": [c.to_dict() for c in self.citations],
            "confidence": round(self.confidence, 4),
            "why": self.why,
            "missing_slots": list(self.missing_slots),
            "score": round(self.score, 4),
            "item_id": self.item_id,
            "generated": self.generated,
        }


@dataclass(slots=True)
class _Candidate:
    kind: Literal["template", "article"]
    item_id: str
    title: str
    source: str
    citations: tuple[Citation, ...]
    score: float
    confidence: float
    why_parts: list[str]
    prior: Prior
    template: ReplyTemplate | None = None
    text: str = ""
    passage_id: str = ""


def _norm(value: object) -> str:
    return str(getattr(value, "value", value)).lower()


def _flag_strengths(flags: Iterable[FlagLike]) -> dict[str, tuple[float, str]]:
    strengths: dict[str, tuple[float, str]] = {}
    for flag in flags:
        kind = _norm(flag.kind)
        kind = FLAG_ALIASES.get(kind, kind)
        level = _norm(flag.level)
        weight = _LEVEL_WEIGHT.get(level, 0.6)
        if weight > strengths.get(kind, (0.0, ""))[0]:
            strengths[kind] = (weight, level)
    return strengths


def _flag_fit(condition: str, flags: Mapping[str, tuple[float, str]]) -> tuple[float, str]:
    """How strongly a ``when`` condition (``kind`` or ``kind:minimum_level``) is met."""
    kind, _, minimum = condition.partition(":")
    weight, level = flags.get(kind, (0.0, ""))
    if minimum and weight < _LEVEL_WEIGHT.get(minimum, 1.0):
        return 0.0, ""
    return weight, level


def _score(fit: float, intent: float, flag: float, prior: Prior, missing: int) -> float:
    return (
        W_FIT * fit
        + W_INTENT * intent
        + W_FLAG * flag
        + W_PRIOR * (2.0 * prior.value - 1.0)
        - MISSING_SLOT_PENALTY * missing
    )


def _confidence(fit: float, intent: float, flag: float, prior: Prior) -> float:
    value = (
        0.6 * max(intent, flag)
        + 0.4 * min(1.0, fit / FIT_FOR_FULL_CONFIDENCE)
        + 0.2 * (prior.value - 0.5)
    )
    return min(1.0, max(0.0, value))


def _template_candidates(
    library: TemplateLibrary,
    *,
    sims: npt.NDArray[np.float32] | None,
    intents: Mapping[str, float],
    top_intent: str | None,
    flags: Mapping[str, tuple[float, str]],
    slots: SlotValues,
    prior: PriorProvider,
) -> list[_Candidate]:
    picked: set[int] = set()
    for intent in intents:
        picked.update(library._by_intent.get(intent, ()))
    for kind in flags:
        picked.update(library._by_flag.get(kind, ()))
    if sims is not None and len(sims):
        n = min(NEAREST_TEMPLATES, len(sims))
        nearest = np.argpartition(-sims, n - 1)[:n] if n < len(sims) else range(len(sims))
        picked.update(int(i) for i in nearest)
    found = slots.values
    out: list[_Candidate] = []
    for i in sorted(picked):
        template = library.templates[i]
        if any(kind in flags for kind in template.unless):
            continue
        fit = max(0.0, float(sims[i])) if sims is not None else 0.0
        intent_id, intent_conf = max(
            ((x, intents.get(x, 0.0)) for x in template.intents),
            key=lambda item: item[1],
            default=("", 0.0),
        )
        flag_kind, (flag_weight, flag_level) = max(
            ((c.partition(":")[0], _flag_fit(c, flags)) for c in template.when),
            key=lambda item: item[1][0],
            default=("", (0.0, "")),
        )
        if intent_conf <= 0 and flag_weight <= 0 and fit < MIN_FIT:
            continue
        p = prior.prior(template.id, top_intent)
        missing = sum(1 for name in library._slots[i] if name not in found)
        why: list[str] = []
        if intent_conf > 0:
            why.append(f"Fits intent {intent_id} ({intent_conf:.2f})")
        if flag_weight > 0:
            why.append(f"fits flag {flag_kind} ({flag_level})")
        if not why:
            why.append(f"Close to the customer's words ({fit:.2f})")
        if template.citations:
            why.append("cites " + ", ".join(template.article_ids))
        out.append(
            _Candidate(
                kind="template",
                item_id=template.id,
                title=template.title,
                source=template.id,
                citations=template.citations,
                score=_score(fit, intent_conf, flag_weight, p, missing),
                confidence=_confidence(fit, intent_conf, flag_weight, p),
                why_parts=why,
                prior=p,
                template=template,
            )
        )
    return out


# --- passage replies ----------------------------------------------------------------------------


def _word_set(text: str) -> frozenset[str]:
    """The whitespace-separated words of a long literal, as a set."""
    return frozenset(text.split())


_WORD_RE = re.compile(r"[a-z0-9£]+(?:'[a-z]+)?")
_SPELLING_RE = re.compile(r"\b(?:wi-fi|e-mail|e-sim|log-in|sign-in|set-up)\b")
MIN_OVERLAP = 2
_STOPWORDS = _word_set(
    """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can can't could did didn't do does doesn't doing don't down
    during each few for from further get got had has have having he her here hers him his how
    i i'd i'll i'm i've if in into is isn't it it's its itself just let me more most my myself
    need no nor not now of off on once only or other our ours out over own please same she
    should so some still such than that that's the their them then there these they this those
    through to too under until up very want was wasn't we we'll we're we've were what when
    where which while who whom why will with won't would you you'd you'll you're you've your
    yours yourself hi hello thanks thank ok okay yes yeah
    """
)


@lru_cache(maxsize=16384)
def _stem(word: str) -> str:
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@lru_cache(maxsize=4096)
def _terms(text: str) -> frozenset[str]:
    lowered = _SPELLING_RE.sub(lambda m: m.group(0).replace("-", ""), text.lower())
    return frozenset(
        _stem(w) for w in _WORD_RE.findall(lowered) if w not in _STOPWORDS and len(w) > 1
    )


@dataclass(frozen=True, slots=True)
class _Unit:
    """A piece of a passage that can be sent to a customer: a script or a plain sentence."""

    text: str
    terms: frozenset[str]
    position: int
    script: bool


_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])[\"”]?\s+(?=[A-Z\"“£0-9])|\n+")
_QUOTE_RE = re.compile(r"[\"“]([^\"”]{25,600}?)[\"”]")
_NEGATIVE_CONTEXT_RE = re.compile(
    r"(?i)\b(?:don't|do not|never|avoid|not to say|instead of|rather than)\b[^.\n]*$"
)
_POSITIVE_LINE_RE = re.compile(r"(?im)^\s*say\b")
_NEGATIVE_LINE_RE = re.compile(r"(?im)^\s*(?:don't say|do not say|avoid|what not to say)\b")
_NEGATIVE_HEADING_RE = re.compile(r"(?i)not to say|avoid|don't|do not|never")
_SAY_HEADING_RE = re.compile(r"(?i)\bwhat to say\b")
_AGENT_ONLY_RE = re.compile(
    r"(?i)\b(?:customers?|agents?|KB-[A-Z]{3}-\d{3}|IDV|CMS|console|softphone|frontline|"
    r"reason codes?|quality checks?|contact notes|case notes|your (?:£50 |refund )?(?:limit|"
    r"authority|allowance)|you must|escalat\w*|privacy portal|offer tool)\b"
)
# "Amount due – what we'll collect ..." is a list item, not a sentence.
_FRAGMENT_RE = re.compile(r"^\W*(?:[\w'’/]+\W{0,2}\s+){0,4}[\w'’/)]+\*{0,2}\s*[–—:]\s")
# A script speaks to the customer; a quoted example of what customers say does not.
_ADDRESSED_RE = re.compile(r"(?i)\b(?:you|your|you're|you'll|you've|let's|let us)\b")
# The customer's own voice in a quoted example ("Send me everything you've got on me").
_CUSTOMER_VOICE_RE = re.compile(r"(?i)\b(?:my|mine)\b|\b(?:send|give|tell|for|about|on) me\b")
_VERB_RE = re.compile(
    r"(?i)n't\b|'(?:s|re|ll|ve)\b|\b(?:is|are|was|were|be|been|has|have|had|do|does|did|can|"
    r"could|will|would|should|may|might|must|need|needs|takes?|goes|gets?|works?|means?|"
    r"appl(?:y|ies)|stays?|counts?|pays?|shows?|comes?|arrives?|ends?|starts?|runs?|drops?|"
    r"costs?|depends?|includes?|covers?|keeps?|lasts?|stops?|changes?|happens?|sends?|reaches|"
    r"reflects?|gives?|moves?|unlocks?|locks?|expires?)\b"
)
_BAD_STARTS = frozenset({"whether", "which", "what", "then", "or", "and", "but", "so", "also"})
# Example specifics in articles (a card ending, a reference, a time, a date) are illustrations,
# not facts about this customer.
_EXAMPLE_RE = re.compile(
    r"(?i)\b(?:ending \d{4}|[A-Z]{2,4}-\d{3,}|\d{1,2}:\d{2}|\d{1,2}(?:am|pm)|"
    r"january|february|march|april|june|july|august|september|october|november|december|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|i can see)\b"
)


def _usable_sentence(text: str) -> bool:
    """A plain sentence of a customer-facing article that reads as a reply on its own."""
    if not text.endswith((".", "!")) or not text[:1].isupper():
        return False
    words = text.split()
    return (
        4 <= len(words) <= 45
        and words[0].lower() not in _BAD_STARTS
        and "|" not in text
        and _VERB_RE.search(text) is not None
        and not _AGENT_ONLY_RE.search(text)
        and not _FRAGMENT_RE.match(text)
    )


@lru_cache(maxsize=4096)
def _passage_units(
    passage_id: str, text: str, heading: str, audience: str, policy_amounts: frozenset[str]
) -> tuple[_Unit, ...]:
    """The scripts and sentences of a passage that can be said to a customer as written."""
    units: list[_Unit] = []
    # Articles written for agents speak to the agent ("you" is the agent, "they" the customer):
    # only their quoted scripts can be said to a customer as they stand.
    public = audience in ("public", "customer")
    # "What not to say" holds only bad examples; "What to say and what not to say" holds both,
    # told apart by its "Say:" / "Don't say:" lines.
    negative_heading = bool(_NEGATIVE_HEADING_RE.search(heading)) and not _SAY_HEADING_RE.search(
        heading
    )

    def example_free(piece: str) -> bool:
        if _EXAMPLE_RE.search(piece):
            return False
        return all(amount in policy_amounts for amount in _MONEY_RE.findall(piece))

    # Scripts: quoted speech, unless it is an example of what not to say.
    if not negative_heading:
        for match in _QUOTE_RE.finditer(text):
            line_start = text.rfind("\n", 0, match.start()) + 1
            before = text[line_start : match.start()]
            section = text[: match.start()]
            last_pos = max((m.end() for m in _POSITIVE_LINE_RE.finditer(section)), default=-1)
            last_neg = max((m.end() for m in _NEGATIVE_LINE_RE.finditer(section)), default=-1)
            if last_neg > last_pos or _NEGATIVE_CONTEXT_RE.search(before):
                continue
            script = match.group(1).strip()
            if (
                len(script.split()) >= 6
                and script.endswith((".", "!", "?"))
                and _ADDRESSED_RE.search(script)
                and not _CUSTOMER_VOICE_RE.search(script)
                and not _AGENT_ONLY_RE.search(script)
                and "[" not in script
                and example_free(script)
            ):
                units.append(_Unit(script, _terms(script), match.start(), True))
    if not public:
        return tuple(units)
    # Plain sentences, outside quotes.
    plain = _QUOTE_RE.sub(" \x00 ", text)
    for position, raw in enumerate(_SENTENCE_SPLIT_RE.split(plain)):
        sentence = raw.strip()
        usable = sentence and "\x00" not in sentence and _usable_sentence(sentence)
        if usable and example_free(sentence):
            units.append(_Unit(sentence, _terms(sentence), position, False))
    return tuple(units)


def prepare_passages(passages: Iterable[Passage], library: TemplateLibrary) -> int:
    """Analyse passages ahead of time (e.g. every passage of the index, once at start-up).

    `suggest` analyses each retrieved passage the first time it sees it (about 0.05-0.3 ms)
    and remembers the result by passage id; doing it up front keeps that off the live turn.

    Returns:
        How many passages were analysed.
    """
    count = 0
    for passage in passages:
        _passage_units(
            passage.passage_id,
            passage.text,
            passage.heading,
            library.article_audiences.get(passage.article_id, "agent"),
            library._policy_amounts,
        )
        count += 1
    return count


def _passage_reply(
    hit: PassageHit, audience: str, query: frozenset[str], policy_amounts: frozenset[str]
) -> str | None:
    passage = hit.passage
    units = _passage_units(
        passage.passage_id, passage.text, passage.heading, audience, policy_amounts
    )
    scored = [(len(u.terms & query), u) for u in units]
    scored = [(overlap, u) for overlap, u in scored if overlap >= MIN_OVERLAP]
    if not scored:
        return None
    best_overlap, best = max(scored, key=lambda item: (item[0], item[1].script, -item[1].position))
    if best.script:
        return best.text
    plain = [(o, u) for o, u in scored if not u.script]
    chosen = sorted(plain, key=lambda item: (-item[0], item[1].position))[:3]
    # Keep only sentences that overlap nearly as well as the best: padding dilutes the answer.
    chosen = [(o, u) for o, u in chosen if o * 2 >= best_overlap]
    sentences = " ".join(u.text for _, u in sorted(chosen, key=lambda item: item[1].position))
    return f"I can help with that. {sentences}"


def _article_candidates(
    hits: Sequence[ArticleHit],
    library: TemplateLibrary,
    *,
    query: frozenset[str],
    top_intent: str | None,
    intent_confidence: float,
    prior: PriorProvider,
) -> list[_Candidate]:
    out: list[_Candidate] = []
    if not query:
        return out
    for hit in hits[:ARTICLE_HITS]:
        audience = library.article_audiences.get(hit.article_id, "agent")
        seen: set[str] = set()
        for passage_hit in (hit.best, *hit.passages):
            passage = passage_hit.passage
            if passage.passage_id in seen:
                continue
            seen.add(passage.passage_id)
            text = _passage_reply(passage_hit, audience, query, library._policy_amounts)
            if text is None:
                continue
            fit = min(1.0, max(0.0, float(passage_hit.score)))
            linked = top_intent in library._intents_by_article.get(hit.article_id, frozenset())
            intent = 0.5 * intent_confidence if linked and top_intent else 0.0
            p = prior.prior(passage.passage_id, top_intent)
            where = passage.heading_path[-1] if len(passage.heading_path) > 1 else hit.title
            why = [f"From {hit.article_id} › {where} (match {fit:.2f})"]
            if intent > 0:
                why.append(f"article used for intent {top_intent}")
            out.append(
                _Candidate(
                    kind="article",
                    item_id=passage.passage_id,
                    title=hit.title,
                    source=f"{hit.article_id} {hit.title}",
                    citations=(Citation(hit.article_id, passage.passage_id, hit.title),),
                    score=_score(fit, intent, 0.0, p, 0),
                    confidence=_confidence(fit, intent, 0.0, p),
                    why_parts=why,
                    prior=p,
                    text=text,
                    passage_id=passage.passage_id,
                )
            )
            break
    return out


# --- the entry point ----------------------------------------------------------------------------


def _blocked(findings: Sequence[DraftFinding]) -> bool:
    for finding in findings:
        severity = _norm(finding.severity)
        if severity.rsplit(".", 1)[-1] in _BLOCKING_SEVERITIES:
            return True
    return False


def _recent_text(turns: Sequence[TurnLike], role: str, n: int) -> list[str]:
    picked: list[str] = []
    for turn in reversed(turns):
        if _norm(turn.role) == role:
            picked.append(turn.text)
            if len(picked) == n:
                break
    picked.reverse()
    return picked


def suggest(
    conversation_turns: Sequence[TurnLike],
    *,
    intent: str | None,
    intent_confidence: float,
    flags: Sequence[FlagLike] = (),
    hits: Sequence[ArticleHit] = (),
    query_vector: npt.NDArray[np.floating[Any]] | None,
    library: TemplateLibrary,
    prior: PriorProvider | None = None,
    draft_check: DraftCheck | None = None,
    k: int = 3,
    other_intents: Sequence[tuple[str, float]] = (),
    extra_slots: Mapping[str, str] | None = None,
) -> tuple[Suggestion, ...]:
    """Up to `k` distinct suggested replies for the conversation so far, best first.

    Args:
        conversation_turns: final turns, oldest first, text already redacted.
        intent: the predicted intent id, or None.
        intent_confidence: the classifier's confidence in `intent`, in [0, 1].
        flags: raised signals (kind, level, evidence).
        hits: retrieved articles, best first.
        query_vector: the embedding of the recent customer text (same model as the library),
            or None to rank templates by intent and flags only.
        library: templates with precomputed embeddings.
        prior: feedback priors; `NeutralPrior` when None.
        draft_check: the policy check of a draft; a draft with a warning or critical finding
            is dropped.
        k: how many suggestions at most.
        other_intents: runner-up (intent, confidence) pairs; their templates are candidates too.
        extra_slots: slot values known outside the conversation (e.g. ``agent_name``).

    Returns:
        Distinct suggestions, highest score first (see the module docstring for the formula).

    Raises:
        ValueError: `query_vector` does not have the library's embedding dimension.
    """
    if k <= 0:
        return ()
    turns = conversation_turns
    provider: PriorProvider = prior if prior is not None else NeutralPrior()
    slots = extract_slots(turns)
    if extra_slots:
        slots = slots.merged(extra_slots)
    intents: dict[str, float] = {}
    for other, confidence in other_intents:
        if other and confidence > 0:
            intents[other] = max(intents.get(other, 0.0), float(confidence))
    if intent and intent_confidence > 0:
        intents[intent] = float(intent_confidence)
    strengths = _flag_strengths(flags)

    candidates = _template_candidates(
        library,
        sims=library.similarities(query_vector),
        intents=intents,
        top_intent=intent,
        flags=strengths,
        slots=slots,
        prior=provider,
    )
    if hits:
        query = _terms(" ".join(_recent_text(turns, "customer", RECENT_CUSTOMER_TURNS)))
        candidates.extend(
            _article_candidates(
                hits,
                library,
                query=query,
                top_intent=intent,
                intent_confidence=float(intent_confidence) if intent else 0.0,
                prior=provider,
            )
        )
    candidates.sort(key=lambda c: (-c.score, c.item_id))

    said = _recent_text(turns, "agent", RECENT_AGENT_TURNS)
    floor = max(MIN_SCORE, RELATIVE_MIN_SCORE * candidates[0].score) if candidates else MIN_SCORE
    kept: list[Suggestion] = []
    for candidate in candidates:
        if len(kept) == k or candidate.score < floor:
            break
        if candidate.template is not None:
            filled = fill_template(candidate.template.text, slots)
            text, missing = filled.text, filled.missing
        else:
            text, missing = candidate.text, ()
        if any(fuzz.token_ratio(text, s.text) >= DUPLICATE_RATIO for s in kept) or any(
            fuzz.token_ratio(text, s) >= DUPLICATE_RATIO for s in said
        ):
            continue
        if draft_check is not None and _blocked(draft_check(text)):
            continue
        why = list(candidate.why_parts)
        if candidate.prior.explanation:
            why.append(candidate.prior.explanation)
        why_line = "; ".join(why)
        if candidate.kind == "template":
            suggestion_id = candidate.item_id
        else:
            digest = hashlib.blake2b(text.encode("utf-8"), digest_size=4).hexdigest()
            suggestion_id = f"{candidate.passage_id}:{digest}"
        kept.append(
            Suggestion(
                id=suggestion_id,
                kind=candidate.kind,
                text=text,
                title=candidate.title,
                source=candidate.source,
                citations=candidate.citations,
                confidence=round(candidate.confidence, 4),
                why=why_line[:1].upper() + why_line[1:],
                missing_slots=missing,
                score=round(candidate.score, 4) if math.isfinite(candidate.score) else 0.0,
                item_id=candidate.item_id,
                template_text=candidate.template.text if candidate.template else "",
            )
        )
    return tuple(kept)
