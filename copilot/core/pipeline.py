"""The per-turn pipeline: a conversation in, an immutable `Snapshot` out.

Stages, in order (each timed; one failing stage reports its error in the snapshot and the others
still produce)::

    embed → signals → intent/routing → retrieve → policy → suggest → summarise

The recent customer text is embedded ONCE per turn; the intent classifier, the retriever and the
suggestion ranking all reuse that vector, so the embedding and one search are the floor of the
per-turn cost and everything else is cheap beside them. Per-turn signal analysis is cached by
turn id and text, so a long conversation costs no more per turn than a short one.

`Assistant` is not thread-safe; the app runs it on one thread (the interactive lane).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from copilot.core.conversation import Conversation, Role, Turn
from copilot.core.models import ArticleHit
from copilot.core.policy import PolicyResult, PolicySpec, check_draft, evaluate
from copilot.core.protocols import Embedder
from copilot.core.signals import ConversationSignals, SignalConfig, TurnSignals, aggregate
from copilot.core.signals import analyse_turn as analyse_signals
from copilot.core.suggestions import PriorProvider, Suggestion, TemplateLibrary, suggest
from copilot.core.summary import Summary, summarise

#: How much recent customer text makes the query (retrieval, intent, template fit).
QUERY_CUSTOMER_TURNS = 2
QUERY_MAX_WORDS = 80
#: Below this cosine of the best passage, retrieval "found nothing confident" (a knowledge gap).
CONFIDENT_RETRIEVAL = 0.40
KNOWLEDGE_HITS = 5
#: Added (times the intent's confidence) to the fused score of the intent's own articles.
INTENT_ARTICLE_BOOST = 0.15
INTENT_BOOST_MIN_CONFIDENCE = 0.5
#: The intent is classified from the last few customer turns' queries, decaying with age.
INTENT_MEMORY_TURNS = 6
INTENT_MEMORY_DECAY = 0.6
INTENT_OPENING_WEIGHT = 0.5

STAGES = ("embed", "signals", "intent", "retrieve", "policy", "suggest", "summary")


class SearchBackend(Protocol):
    """What the pipeline needs of the knowledge index."""

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        vector: npt.NDArray[np.float32] | None = None,
        boost: Mapping[str, float] | None = None,
    ) -> list[ArticleHit]: ...


@dataclass(frozen=True, slots=True)
class IntentGuess:
    """The intent stage's output: top intents with confidences and the routing decision."""

    top: tuple[tuple[str, float], ...] = ()
    out_of_scope: bool = False
    intent_name: str | None = None
    layer: str | None = None
    stakes: Mapping[str, str] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    articles: tuple[str, ...] = ()  # the articles that back the intent (from the taxonomy)

    @property
    def intent(self) -> str | None:
        return None if self.out_of_scope or not self.top else self.top[0][0]

    @property
    def confidence(self) -> float:
        return 0.0 if not self.top else self.top[0][1]

    def to_dict(self) -> dict[str, object]:
        return {
            "intent": self.intent,
            "intent_name": self.intent_name,
            "confidence": round(self.confidence, 4),
            "top": [{"intent": i, "confidence": round(c, 4)} for i, c in self.top],
            "out_of_scope": self.out_of_scope,
            "layer": self.layer,
            "stakes": dict(self.stakes),
            "reasons": list(self.reasons),
        }


class IntentStage(Protocol):
    """Classifies the query vector and routes it, given the conversation's flags."""

    def __call__(self, vector: npt.NDArray[np.float32], flags: Sequence[Any]) -> IntentGuess: ...


@dataclass(frozen=True, slots=True)
class StageTiming:
    stage: str
    ms: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the panel shows for a conversation after one turn. Immutable."""

    conversation_id: str
    turn_count: int
    last_turn_id: str | None
    created: dt.datetime
    signals: ConversationSignals | None
    intent: IntentGuess | None
    hits: tuple[ArticleHit, ...]
    retrieval_confident: bool
    policy: PolicyResult | None
    suggestions: tuple[Suggestion, ...]
    summary: Summary | None
    timings: tuple[StageTiming, ...]
    query: str = ""
    generation: int = 0

    @property
    def flags(self) -> tuple[Any, ...]:
        return self.signals.flags if self.signals else ()

    @property
    def total_ms(self) -> float:
        return sum(t.ms for t in self.timings)

    @property
    def errors(self) -> dict[str, str]:
        return {t.stage: t.error for t in self.timings if t.error}

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "turn_count": self.turn_count,
            "last_turn_id": self.last_turn_id,
            "created": self.created.isoformat(),
            "generation": self.generation,
            "query": self.query,
            "flags": [f.to_dict() for f in self.flags],
            "sentiment": self.signals.to_dict() if self.signals else None,
            "routing": self.intent.to_dict() if self.intent else None,
            "policy": self.policy.to_dict() if self.policy else None,
            "suggestions": [s.to_dict() for s in self.suggestions],
            "knowledge": [h.to_dict() for h in self.hits],
            "retrieval_confident": self.retrieval_confident,
            "summary": self.summary.to_dict() if self.summary else None,
            "timings_ms": {t.stage: round(t.ms, 3) for t in self.timings},
            "total_ms": round(self.total_ms, 3),
            "errors": self.errors,
        }


_CONTENT_WORD = re.compile(r"[A-Za-z]{3,}")
_NOT_CONTENT = frozenset(
    """the and you your yes yeah yep nope not but for with that this thats it's its have has had
    was are can could would will just okay thanks thank cheers bye please lol got one two three
    four five six seven eight nine zero card cvv email phone password""".split()  # noqa: SIM905
)


def informativeness(text: str) -> float:
    """How much a customer turn says about why they are in touch, in [0.15, 1]."""
    words = [w for w in _CONTENT_WORD.findall(text.lower()) if w not in _NOT_CONTENT]
    return max(0.15, min(1.0, len(words) / 8))


def intent_boost(intent: IntentGuess | None) -> dict[str, float]:
    """Articles that back a confident intent rank higher (and are searched even if the words
    alone miss them): customers describe problems in their own words, the taxonomy knows which
    articles answer them."""
    if intent is None or intent.intent is None or intent.confidence < INTENT_BOOST_MIN_CONFIDENCE:
        return {}
    return {article: INTENT_ARTICLE_BOOST * intent.confidence for article in intent.articles}


def query_text(turns: Sequence[Turn]) -> str:
    """The recent customer words the turn's query is built from (newest last)."""
    recent: list[str] = []
    for turn in reversed(turns):
        if turn.role is Role.CUSTOMER and turn.text.strip():
            recent.append(turn.text.strip())
            if len(recent) == QUERY_CUSTOMER_TURNS:
                break
    words = " ".join(reversed(recent)).split()
    return " ".join(words[-QUERY_MAX_WORDS:])


class _Timer:
    def __init__(self) -> None:
        self.timings: list[StageTiming] = []

    def run(self, stage: str, fn: Callable[[], Any], default: Any) -> Any:
        started = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # a failing stage must not take the others down
            self.timings.append(
                StageTiming(stage, (time.perf_counter() - started) * 1000, _describe(exc))
            )
            return default
        self.timings.append(StageTiming(stage, (time.perf_counter() - started) * 1000))
        return result


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


class Assistant:
    """Runs the per-turn pipeline with the collaborators loaded from the content pack.

    Args:
        embedder: embeds the query (ONNX by default).
        index: the knowledge index (or anything with a compatible ``search``), or None.
        signals: the signals configuration.
        policy: the behaviour spec.
        templates: the reply templates with their embeddings.
        intents: the intent stage (classifier + routing), or None.
        prior: feedback priors for suggestion ranking (neutral when None).
        extra_slots: slot values known outside the conversation (e.g. the agent's name).
    """

    def __init__(
        self,
        *,
        embedder: Embedder,
        index: SearchBackend | None,
        signals: SignalConfig,
        policy: PolicySpec,
        templates: TemplateLibrary,
        intents: IntentStage | None = None,
        prior: PriorProvider | None = None,
        extra_slots: Mapping[str, str] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.embedder = embedder
        self.index = index
        self.signals = signals
        self.policy = policy
        self.templates = templates
        self.intents = intents
        self.prior = prior
        self.extra_slots = dict(extra_slots or {})
        self._clock = clock
        self._turn_signals: OrderedDict[tuple[str, str, str], TurnSignals] = OrderedDict()
        self._vectors: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()

    # -- caches ---------------------------------------------------------------------------

    def _embed(self, text: str) -> npt.NDArray[np.float32]:
        vector = self._vectors.get(text)
        if vector is None:
            vector = self.embedder.embed([text])[0]
            self._vectors[text] = vector
            if len(self._vectors) > 256:
                self._vectors.popitem(last=False)
        else:
            self._vectors.move_to_end(text)
        return vector

    def _signals_of(self, conversation: Conversation) -> ConversationSignals:
        per_turn: list[TurnSignals] = []
        for turn in conversation.turns:
            if turn.role is not Role.CUSTOMER:
                continue
            key = (conversation.conversation_id, turn.turn_id, turn.text)
            analysed = self._turn_signals.get(key)
            if analysed is None:
                # the sentiment head, when the pack has one, reads the turn's own embedding
                embedding = self._embed(turn.text) if self.signals.sentiment.head else None
                analysed = analyse_signals(
                    turn.text, turn_id=turn.turn_id, config=self.signals, embedding=embedding
                )
                self._turn_signals[key] = analysed
                if len(self._turn_signals) > 4096:
                    self._turn_signals.popitem(last=False)
            per_turn.append(analysed)
        return aggregate(per_turn, self.signals)

    def _intent_vector(
        self, conversation: Conversation, vector: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """The vector the intent is classified from: recent queries, newest and wordiest first.

        A conversation has one reason for contact; a turn that only answers a security question
        ("no idea what my pin is, 582014") or says goodbye must not re-route it. So the intent
        sees a decaying, informativeness-weighted mean of the query vectors as they stood after
        each of the last few customer turns. It depends on the conversation only (the vectors
        come from the embedding cache), not on which turns happened to be analysed.
        """
        turns = conversation.turns
        customer = [i for i, t in enumerate(turns) if t.role is Role.CUSTOMER]
        positions = customer[-INTENT_MEMORY_TURNS:]
        if len(customer) <= 1:
            return vector
        # The opening statement usually names the reason for contact: it never fades below
        # INTENT_OPENING_WEIGHT, however long the conversation gets.
        opening = customer[0]
        if opening not in positions:
            positions = [opening, *positions]
        total = np.zeros_like(vector, dtype=np.float32)
        for age, position in enumerate(reversed(positions)):
            past = vector if age == 0 else self._embed(query_text(turns[: position + 1]))
            decay = INTENT_MEMORY_DECAY**age
            if position == opening and age > 0:
                decay = max(decay, INTENT_OPENING_WEIGHT)
            total += decay * informativeness(turns[position].text) * past
        norm = float(np.linalg.norm(total))
        return (total / norm).astype(np.float32) if norm > 0 else vector

    def forget(self, conversation_id: str) -> None:
        """Drop cached analysis of a conversation (ended or erased)."""
        for key in [k for k in self._turn_signals if k[0] == conversation_id]:
            del self._turn_signals[key]

    # -- the pipeline ---------------------------------------------------------------------

    def analyse(
        self, conversation: Conversation, *, generation: int = 0, channel: str | None = None
    ) -> Snapshot:
        """Run every stage on the conversation so far and return its snapshot.

        Args:
            conversation: the (redacted) conversation so far.
            generation: the caller's request number, carried into the snapshot so a stale
                result can be recognised and dropped.
            channel: "phone" or "chat" when the source knows it (phone-only policy steps such
                as the recording disclosure depend on it); inferred from the words otherwise.
        """
        timer = _Timer()
        turns = conversation.turns
        query = query_text(turns)
        vector: npt.NDArray[np.float32] | None = None
        if query:
            vector = timer.run("embed", lambda: self._embed(query), None)
        signals: ConversationSignals | None = timer.run(
            "signals", lambda: self._signals_of(conversation), None
        )
        flags: tuple[Any, ...] = signals.flags if signals else ()
        # Every flag raised so far, at its peak: an escalation offered stays done after it fades.
        history: tuple[Any, ...] = signals.history if signals else ()
        intent: IntentGuess | None = None
        if self.intents is not None and vector is not None:
            stage = self.intents
            query_vector = vector
            intent = timer.run(
                "intent",
                lambda: stage(self._intent_vector(conversation, query_vector), flags),
                None,
            )
        intent_id = intent.intent if intent else None
        hits: list[ArticleHit] = []
        if self.index is not None and query:
            index = self.index
            boost = intent_boost(intent)
            hits = timer.run(
                "retrieve",
                lambda: index.search(query, k=KNOWLEDGE_HITS, vector=vector, boost=boost),
                [],
            )
        confident = any(
            (h.best.dense_rank is not None and h.best.score >= CONFIDENT_RETRIEVAL) for h in hits
        )
        policy: PolicyResult | None = timer.run(
            "policy",
            lambda: evaluate(
                turns, flags, intent_id, self.policy, channel=channel, history=history
            ),
            None,
        )

        def draft_check(text: str) -> Sequence[Any]:
            return check_draft(
                text,
                turns=turns,
                flags=flags,
                spec=self.policy,
                intent=intent_id,
                channel=channel,
                history=history,
            )

        suggestions: tuple[Suggestion, ...] = ()
        if query:
            suggestions = timer.run(
                "suggest",
                lambda: suggest(
                    turns,
                    intent=intent_id,
                    intent_confidence=intent.confidence if intent else 0.0,
                    other_intents=intent.top[1:] if intent else (),
                    flags=flags,
                    hits=hits,
                    query_vector=vector,
                    library=self.templates,
                    prior=self.prior,
                    draft_check=draft_check,
                    extra_slots=self.extra_slots,
                ),
                (),
            )
        summary: Summary | None = timer.run(
            "summary",
            lambda: summarise(
                turns,
                intent=intent_id,
                intent_name=intent.intent_name if intent else None,
                flags=flags,
                sentiment_trend=str(signals.trend.trend) if signals else None,
                policy_ledger=policy.ledger if policy else (),
                hits=hits,
            ),
            None,
        )
        return Snapshot(
            conversation_id=conversation.conversation_id,
            turn_count=len(turns),
            last_turn_id=turns[-1].turn_id if turns else None,
            created=self._clock(),
            signals=signals,
            intent=intent,
            hits=tuple(hits),
            retrieval_confident=confident,
            policy=policy,
            suggestions=tuple(suggestions),
            summary=summary,
            timings=tuple(timer.timings),
            query=query,
            generation=generation,
        )
