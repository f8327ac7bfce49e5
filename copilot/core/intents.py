"""Intent classification over sentence embeddings, and routing by intent, stakes and flags.

The classifier is a blend of two simple models over L2-normalised sentence embeddings (MiniLM):

- multinomial logistic regression, fitted in numpy by L-BFGS (no scikit-learn: importing
  ``sklearn.linear_model`` costs ~0.8 s of start-up and ``scipy.optimize`` ~0.4 s, while this
  module adds nothing beyond numpy, and the fit itself is the same algorithm);
- a soft k-nearest-neighbour vote over the training examples, which adds the little
  non-linearity that a linear model lacks (on Banking77 the blend beats either part alone).

At training time the examples are split into stratified folds; the out-of-fold predictions choose
the blend weight, fit a temperature so the confidences are calibrated (the expected calibration
error before and after is in `TrainingReport`), and set the out-of-scope thresholds from the
`oos_examples` (utterances that belong to no intent). Everything is deterministic for a seed.

Agents' intent corrections are just more examples: pass them as ``extra_examples`` to
`IntentClassifier.train` and the next training learns them, without a code change.

`route` turns a prediction and the conversation's flags into a `Routing`: the intent's layer,
lowered to ai_assisted when the classifier is unsure, and raised to human_only by the flags the
taxonomy lists (legal threats and vulnerable customers always get a person).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    from copilot.core.pipeline import IntentGuess
    from copilot.core.protocols import Embedder

    FloatArray = npt.NDArray[np.float64]
    F32Array = npt.NDArray[np.float32]
    IntArray = npt.NDArray[np.int64]


# ---------------------------------------------------------------------------------------------
# Taxonomy


class Layer(StrEnum):
    """Who owns the conversation: the co-pilot, the agent helped by it, or the agent alone."""

    AI_AUTONOMOUS = "ai_autonomous"
    AI_ASSISTED = "ai_assisted"
    HUMAN_ONLY = "human_only"

    @property
    def rank(self) -> int:
        return _LAYERS.index(self)


_LAYERS: tuple[Layer, ...] = (Layer.AI_AUTONOMOUS, Layer.AI_ASSISTED, Layer.HUMAN_ONLY)

STAKE_LEVELS: tuple[str, ...] = ("low", "medium", "high")
RESOLUTION_PATTERNS: tuple[str, ...] = ("self-serve", "guided", "investigation", "specialist")
# Flag levels as the signal detectors name them, lowest first.
FLAG_LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class Stakes:
    """How hard, how emotional and how an intent is usually resolved."""

    complexity: str
    emotional_intensity: str
    resolution_pattern: str

    def to_dict(self) -> dict[str, str]:
        return {
            "complexity": self.complexity,
            "emotional_intensity": self.emotional_intensity,
            "resolution_pattern": self.resolution_pattern,
        }


@dataclass(frozen=True, slots=True)
class Intent:
    """One intent of the taxonomy with its example utterances."""

    id: str
    name: str
    description: str
    layer: Layer
    stakes: Stakes
    examples: tuple[str, ...]
    articles: tuple[str, ...] = ()  # related knowledge article ids (optional)


@dataclass(frozen=True, slots=True)
class FlagRoutingRule:
    """A flag kind that makes a conversation human_only at `min_level` or above."""

    kind: str
    min_level: str = "low"

    def applies(self, kind: str, level: str) -> bool:
        """True when a flag of `kind` at `level` forces human_only.

        An unknown level counts as the highest: a detector that speaks a newer vocabulary must
        not quietly send a vulnerable customer to the co-pilot.
        """
        if kind != self.kind:
            return False
        return _flag_rank(level) >= _flag_rank(self.min_level)


def _flag_rank(level: str) -> int:
    try:
        return FLAG_LEVELS.index(str(level).lower())
    except ValueError:
        return len(FLAG_LEVELS)


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """The routing configuration of a content pack (``routing:`` in intents.yaml)."""

    human_only_flags: tuple[FlagRoutingRule, ...] = ()
    min_confidence_autonomous: float = 0.6


@dataclass(frozen=True, slots=True)
class Taxonomy:
    """The intents of a content pack, the out-of-scope calibration set and the routing policy."""

    intents: tuple[Intent, ...]
    out_of_scope: tuple[str, ...] = ()
    routing: RoutingPolicy = RoutingPolicy()
    source: str = ""

    def get(self, intent_id: str) -> Intent | None:
        """The intent with this id, or None."""
        for intent in self.intents:
            if intent.id == intent_id:
                return intent
        return None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(intent.id for intent in self.intents)

    def training_examples(self, *, with_descriptions: bool = True) -> list[tuple[str, str]]:
        """(text, intent id) pairs: every example, and each description as one more example.

        The description helps most when an intent has few examples (the label-name trick of
        few-shot classification).
        """
        pairs: list[tuple[str, str]] = []
        for intent in self.intents:
            pairs.extend((text, intent.id) for text in intent.examples)
            if with_descriptions and intent.description:
                pairs.append((intent.description, intent.id))
        return pairs


# ---------------------------------------------------------------------------------------------
# Predictions and routing


@dataclass(frozen=True, slots=True)
class IntentPrediction:
    """The classifier's view of one utterance.

    Attributes:
        top: up to three (intent id, calibrated probability) pairs, most likely first.
        out_of_scope: True when the utterance fits no intent well enough.
        similarity: cosine similarity to the closest training example (for diagnostics).
    """

    top: tuple[tuple[str, float], ...]
    out_of_scope: bool
    similarity: float = 0.0

    @property
    def intent_id(self) -> str | None:
        """The predicted intent, or None when out of scope."""
        if self.out_of_scope or not self.top:
            return None
        return self.top[0][0]

    @property
    def confidence(self) -> float:
        """The probability of the best intent (also reported when out of scope)."""
        return self.top[0][1] if self.top else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "intent_id": self.intent_id,
            "confidence": round(self.confidence, 4),
            "out_of_scope": self.out_of_scope,
            "top": [[label, round(p, 4)] for label, p in self.top],
            "similarity": round(self.similarity, 4),
        }


class FlagLike(Protocol):
    """Any flag object with a kind and a level (e.g. the signal detectors' flags)."""

    @property
    def kind(self) -> str: ...

    @property
    def level(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Routing:
    """Which layer should own the conversation, and why."""

    intent_id: str | None
    confidence: float
    layer: Layer
    stakes: Stakes | None
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "intent_id": self.intent_id,
            "confidence": round(self.confidence, 4),
            "layer": str(self.layer),
            "stakes": self.stakes.to_dict() if self.stakes else None,
            "reasons": list(self.reasons),
        }


def _flag_pair(flag: tuple[str, str] | FlagLike) -> tuple[str, str]:
    if isinstance(flag, tuple):
        kind, level = flag
        return str(kind), str(level)
    return str(flag.kind), str(flag.level)


def route(
    prediction: IntentPrediction,
    flags: Iterable[tuple[str, str] | FlagLike],
    taxonomy: Taxonomy,
) -> Routing:
    """Decide the owning layer from the intent, the classifier's confidence and the flags.

    Routing only ever escalates: the intent's layer is the starting point; an unsure or
    out-of-scope prediction never stays ai_autonomous; any flag matching the taxonomy's
    ``human_only_flags`` makes it human_only whatever the intent says.

    Args:
        prediction: the classifier's output for the conversation's latest customer turn(s).
        flags: (kind, level) pairs, or objects with ``kind`` and ``level``, e.g.
            ``("legal_threat", "high")``.
        taxonomy: supplies each intent's layer and stakes, and the routing policy.
    """
    policy = taxonomy.routing
    reasons: list[str] = []
    intent = taxonomy.get(prediction.intent_id) if prediction.intent_id else None
    if intent is None:
        layer = Layer.AI_ASSISTED
        if prediction.out_of_scope or not prediction.top:
            reasons.append("out of scope: no intent fits, the agent leads")
        else:
            reasons.append(f"unknown intent {prediction.top[0][0]!r}: the agent leads")
    else:
        layer = intent.layer
        reasons.append(f"{intent.name}: {layer} by default")
        if (
            layer is Layer.AI_AUTONOMOUS
            and prediction.confidence < policy.min_confidence_autonomous
        ):
            layer = Layer.AI_ASSISTED
            reasons.append(
                f"confidence {prediction.confidence:.2f} below "
                f"{policy.min_confidence_autonomous:.2f}: ai_assisted"
            )
    seen: set[tuple[str, str]] = set()
    for flag in flags:
        kind, level = _flag_pair(flag)
        if (kind, level) in seen:
            continue
        seen.add((kind, level))
        if any(rule.applies(kind, level) for rule in policy.human_only_flags):
            layer = Layer.HUMAN_ONLY
            reasons.append(f"flag {kind} ({level}): human_only")
    return Routing(
        intent_id=intent.id if intent else None,
        confidence=prediction.confidence,
        layer=layer,
        stakes=intent.stakes if intent else None,
        reasons=tuple(reasons),
    )


# ---------------------------------------------------------------------------------------------
# Numerics


def _log_softmax(z: FloatArray) -> FloatArray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _lbfgs(
    fg: _Objective, x0: FloatArray, *, max_iter: int, tol: float, memory: int = 10
) -> tuple[FloatArray, int]:
    """Minimise a smooth convex function with L-BFGS and a backtracking (Armijo) line search."""
    x = x0
    f, g = fg(x)
    history: list[tuple[FloatArray, FloatArray, float]] = []
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported to the caller
        if float(np.abs(g).max()) < tol:
            break
        # Two-loop recursion: d = -H g with the implicit inverse-Hessian approximation.
        q = g.copy()
        alphas: list[float] = []
        for s, y, rho in reversed(history):
            a = rho * float(s @ q)
            alphas.append(a)
            q -= a * y
        if history:
            s, y, _ = history[-1]
            q *= float(s @ y) / float(y @ y)
        else:
            q /= max(1.0, float(np.linalg.norm(g)))
        for (s, y, rho), a in zip(history, reversed(alphas), strict=True):
            q += s * (a - rho * float(y @ q))
        d = -q
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            d, slope = -g, -float(g @ g)
            history.clear()
        step = 1.0
        while True:
            x_new = x + step * d
            f_new, g_new = fg(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_new, y_new = x_new - x, g_new - g
        sy = float(s_new @ y_new)
        if sy > 1e-12:
            history.append((s_new, y_new, 1.0 / sy))
            if len(history) > memory:
                history.pop(0)
        x, f, g = x_new, f_new, g_new
    return x, iterations


class _Objective(Protocol):
    def __call__(self, theta: FloatArray) -> tuple[float, FloatArray]: ...


def fit_logistic_regression(
    x: F32Array,
    y: IntArray,
    n_classes: int,
    *,
    c: float,
    sample_weight: FloatArray | None = None,
    init: FloatArray | None = None,
    max_iter: int = 300,
    tol: float = 1e-5,
) -> tuple[FloatArray, int]:
    """Multinomial logistic regression with an L2 penalty, as scikit-learn's ``C`` scales it.

    Minimises ``sum_i w_i * CE_i + ||W||^2 / (2 C)`` (divided by ``sum w`` for a well-scaled
    gradient). Returns the parameters ``(d + 1, k)`` (the last row is the bias) and the number of
    L-BFGS iterations.
    """
    n, d = x.shape
    weights = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = float(weights.sum())
    weights = weights / total
    lam = 1.0 / (c * total)
    onehot = np.zeros((n, n_classes), dtype=np.float64)
    onehot[np.arange(n), y] = 1.0
    xf = np.ascontiguousarray(x, dtype=np.float32)
    shape = (d + 1, n_classes)

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        params = theta.reshape(shape)
        w = params[:-1]
        # float32 matrix products halve the time; the loss and the optimiser stay float64.
        z = (xf @ w.astype(np.float32)).astype(np.float64) + params[-1]
        logp = _log_softmax(z)
        loss = -float((weights * (logp * onehot).sum(axis=1)).sum()) + 0.5 * lam * float(
            (w * w).sum()
        )
        residual = (np.exp(logp) - onehot) * weights[:, None]
        grad = np.empty(shape)
        grad[:-1] = (xf.T @ residual.astype(np.float32)).astype(np.float64) + lam * w
        grad[-1] = residual.sum(axis=0)
        return loss, grad.ravel()

    start = np.zeros(shape).ravel() if init is None else init.ravel().copy()
    theta, iterations = _lbfgs(objective, start, max_iter=max_iter, tol=tol)
    return theta.reshape(shape), iterations


def _knn_votes(
    sims: F32Array, labels: IntArray, n_classes: int, *, k: int, temperature: float
) -> FloatArray:
    """Soft class votes of the k most similar examples, each weighted exp((s - 1) / t)."""
    rows = sims.shape[0]
    k = max(1, min(k, sims.shape[1]))
    if k < sims.shape[1]:
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        nearest = np.broadcast_to(np.arange(sims.shape[1]), (rows, sims.shape[1]))
    near_sims = np.take_along_axis(sims, nearest, axis=1).astype(np.float64)
    votes = np.zeros((rows, n_classes))
    row_index = np.repeat(np.arange(rows), k)
    np.add.at(
        votes, (row_index, labels[nearest].ravel()), np.exp((near_sims.ravel() - 1.0) / temperature)
    )
    votes /= votes.sum(axis=1, keepdims=True)
    return votes


def expected_calibration_error(
    confidences: Sequence[float] | FloatArray,
    correct: Sequence[bool] | npt.NDArray[np.bool_],
    bins: int = 15,
) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width bins."""
    conf = np.asarray(confidences, dtype=np.float64)
    hits = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += float(mask.sum()) * abs(float(conf[mask].mean()) - float(hits[mask].mean()))
    return total / conf.size


def _fit_temperature(scores: FloatArray, y: IntArray) -> float:
    """The temperature minimising the negative log-likelihood (golden-section on log T)."""

    def nll(log_t: float) -> float:
        logp = _log_softmax(scores / math.exp(log_t))
        return -float(logp[np.arange(len(y)), y].mean())

    lo, hi = math.log(0.02), math.log(50.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return math.exp((lo + hi) / 2)


# ---------------------------------------------------------------------------------------------
# The classifier


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    """Hyper-parameters, chosen by cross-validation on the Banking77 training split.

    Attributes:
        c: inverse L2 strength of the logistic regression (scikit-learn's ``C``).
        balanced: weight classes inversely to their size, so an intent flooded with agents'
            corrections does not swallow its neighbours.
        knn_k, knn_temperature: the soft nearest-neighbour vote.
        knn_weights: candidate shares of the kNN vote in the blend; the one with the best
            out-of-fold accuracy is used (a single value fixes it).
        folds: stratified folds for calibration and the choices above (0 or 1: none).
        max_iter, tol: L-BFGS limits (gradient max-norm).
        min_similarity: without out-of-scope examples, an utterance whose closest training
            example is less similar than this is out of scope.
        min_confidence: without out-of-scope examples, the probability below which an
            utterance is out of scope.
        max_in_scope_rejection: with out-of-scope examples, the share of in-scope utterances
            (held-out folds) that may be called out of scope; within it the rule catches as
            many out-of-scope examples as it can.
        seed: fold assignment.
    """

    c: float = 30.0
    balanced: bool = True
    knn_k: int = 10
    knn_temperature: float = 0.05
    knn_weights: tuple[float, ...] = (0.15, 0.3, 0.45, 0.6)
    folds: int = 5
    max_iter: int = 300
    tol: float = 1e-5
    min_similarity: float = 0.2
    min_confidence: float = 0.0
    max_in_scope_rejection: float = 0.03
    seed: int = 0


@dataclass(frozen=True, slots=True)
class TrainingReport:
    """What training did and how well the held-out folds say it works."""

    examples: int
    intents: int
    oos_examples: int
    knn_weight: float
    temperature: float
    cv_accuracy: float | None
    ece_before: float | None
    ece_after: float | None
    oos_rule: str
    cv_oos_recall: float | None
    cv_in_scope_rejection: float | None
    embed_seconds: float
    fit_seconds: float
    iterations: int

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = round(value, 4) if isinstance(value, float) else value
        return out


_EPS_VOTE = 1e-4  # a class no neighbour voted for keeps a small share in the blend


@dataclass(frozen=True, slots=True)
class _Model:
    params: FloatArray  # (d + 1, k)
    vectors: F32Array  # training examples (n, d)
    labels: IntArray  # (n,)
    knn_weight: float
    temperature: float
    config: ClassifierConfig

    def scores(self, x: F32Array) -> tuple[FloatArray, FloatArray]:
        """Blended log-scores (n, k) before temperature, and the best example similarity."""
        logits = (x @ self.params[:-1].astype(np.float32)).astype(np.float64) + self.params[-1]
        sims = x @ self.vectors.T
        best = sims.max(axis=1).astype(np.float64) if sims.shape[1] else np.zeros(len(x))
        blended = _log_softmax(logits)
        if self.knn_weight > 0:
            votes = _knn_votes(
                sims,
                self.labels,
                self.params.shape[1],
                k=self.config.knn_k,
                temperature=self.config.knn_temperature,
            )
            blended = (1 - self.knn_weight) * blended + self.knn_weight * np.log(votes + _EPS_VOTE)
        return blended, best


def _stratified_folds(y: IntArray, folds: int, seed: int) -> IntArray:
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(y), dtype=np.int64)
    offset = 0
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        # Rotating the start spreads small classes over all folds instead of the first ones.
        assignment[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return assignment


def _class_weights(y: IntArray, n_classes: int) -> FloatArray:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    per_class = len(y) / (n_classes * np.maximum(counts, 1.0))
    return np.asarray(per_class[y], dtype=np.float64)


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class OutOfScopeRule:
    """Decides "out of scope" from the best intent's probability and the best similarity.

    Always: out of scope when the confidence is below `min_confidence` or the similarity to
    the closest training example below `min_similarity` (a floor: nothing that unlike every
    example is in scope). Fitted on out-of-scope examples as well: a two-feature logistic
    regression gives P(out of scope) = sigmoid(w_conf * confidence + w_sim * similarity + bias),
    and an utterance is out of scope above `threshold`.
    """

    min_confidence: float = 0.0
    min_similarity: float = 0.2
    weights: tuple[float, float, float] | None = None
    threshold: float = 1.0

    def decide(self, confidence: FloatArray, similarity: FloatArray) -> npt.NDArray[np.bool_]:
        floor = (confidence < self.min_confidence) | (similarity < self.min_similarity)
        if self.weights is None:
            return np.asarray(floor)
        return np.asarray(floor | (self.score(confidence, similarity) > self.threshold))

    def score(self, confidence: FloatArray, similarity: FloatArray) -> FloatArray:
        """P(out of scope) for the fitted rule (0 without one)."""
        if self.weights is None:
            return np.zeros(np.shape(confidence))
        w_conf, w_sim, bias = self.weights
        return _sigmoid(w_conf * confidence + w_sim * similarity + bias)

    def describe(self) -> str:
        floor = f"confidence < {self.min_confidence:.3f} or similarity < {self.min_similarity:.3f}"
        if self.weights is None:
            return floor
        w_conf, w_sim, bias = self.weights
        return (
            f"{floor} or sigmoid({w_conf:.2f}*confidence {w_sim:+.2f}*similarity {bias:+.2f})"
            f" > {self.threshold:.3f}"
        )


def fit_out_of_scope_rule(
    in_conf: FloatArray,
    in_sim: FloatArray,
    oos_conf: FloatArray,
    oos_sim: FloatArray,
    *,
    max_in_scope_rejection: float,
    floor: OutOfScopeRule | None = None,
) -> tuple[OutOfScopeRule, float, float]:
    """Fit the rule on held-out in-scope scores and out-of-scope examples' scores.

    The threshold is the lowest that calls at most `max_in_scope_rejection` of the in-scope
    utterances out of scope (most out-of-scope recall within that budget; the `floor` rule's
    rejections count against it), then raised as far as it goes without losing an out-of-scope
    example. Returns the rule, the out-of-scope recall and the in-scope rejection rate it has on
    the data it was fitted on.
    """
    base = floor or OutOfScopeRule()
    in_floor = base.decide(in_conf, in_sim)
    oos_floor = base.decide(oos_conf, oos_sim)
    features = np.column_stack(
        [np.concatenate([in_conf, oos_conf]), np.concatenate([in_sim, oos_sim])]
    ).astype(np.float32)
    target = np.concatenate([np.zeros(len(in_conf)), np.ones(len(oos_conf))]).astype(np.int64)
    params, _ = fit_logistic_regression(
        features, target, 2, c=10.0, sample_weight=_class_weights(target, 2), max_iter=200
    )
    w = params[:-1, 1] - params[:-1, 0]
    weights = (float(w[0]), float(w[1]), float(params[-1, 1] - params[-1, 0]))
    scorer = OutOfScopeRule(weights=weights)
    s_in = np.sort(scorer.score(in_conf, in_sim)[~in_floor])[::-1]
    s_oos = scorer.score(oos_conf, oos_sim)[~oos_floor]
    allowed = max(0, math.floor(max_in_scope_rejection * len(in_conf) + 1e-9) - int(in_floor.sum()))
    lower = float(s_in[allowed]) if allowed < len(s_in) else 0.0
    caught = s_oos[s_oos > lower]
    if caught.size == 0:
        threshold = 1.0  # nothing to gain within the budget: only the floor decides
    else:
        lowest = float(caught.min())
        below = s_in[(s_in < lowest) & (s_in >= lower)]
        threshold = ((float(below.max()) if below.size else lower) + lowest) / 2
    rule = OutOfScopeRule(
        min_confidence=base.min_confidence,
        min_similarity=base.min_similarity,
        weights=weights,
        threshold=threshold,
    )
    recall = float(rule.decide(oos_conf, oos_sim).mean()) if len(oos_conf) else 0.0
    rejection = float(rule.decide(in_conf, in_sim).mean()) if len(in_conf) else 0.0
    return rule, recall, rejection


class IntentClassifier:
    """Predicts intents from text or from an embedding already computed for the turn."""

    def __init__(
        self,
        labels: Sequence[str],
        model: _Model,
        *,
        oos_rule: OutOfScopeRule,
        report: TrainingReport,
        embedder: Embedder | None = None,
    ) -> None:
        self._labels = tuple(labels)
        self._model = model
        self.oos_rule = oos_rule
        self._embedder = embedder
        self.report = report

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def embedder_name(self) -> str:
        return self._embedder.name if self._embedder is not None else ""

    # -- training ---------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        examples: Sequence[tuple[str, str]],
        embedder: Embedder,
        *,
        oos_examples: Sequence[str] = (),
        extra_examples: Sequence[tuple[str, str]] = (),
        config: ClassifierConfig | None = None,
    ) -> IntentClassifier:
        """Embed the examples in one batch and train.

        Args:
            examples: (text, intent id) pairs, e.g. `Taxonomy.training_examples()`.
            embedder: used now for the examples and later by `predict` for text.
            oos_examples: utterances that belong to no intent; they set the out-of-scope
                thresholds and are never a class.
            extra_examples: more (text, intent id) pairs, e.g. agents' intent corrections from
                the feedback store; they count exactly like `examples`.
            config: hyper-parameters (the defaults were chosen on Banking77).

        Raises:
            ValueError: with fewer than two intents or an empty text.
        """
        pairs = [*examples, *extra_examples]
        for text, label in pairs:
            if not text.strip() or not label:
                raise ValueError(f"empty text or label in training example {(text, label)!r}")
        oos = [text for text in oos_examples if text.strip()]
        started = time.perf_counter()
        vectors = embedder.embed([text for text, _ in pairs] + oos)
        embed_seconds = time.perf_counter() - started
        return cls.train_vectors(
            vectors[: len(pairs)],
            [label for _, label in pairs],
            oos_vectors=vectors[len(pairs) :],
            config=config,
            embedder=embedder,
            embed_seconds=embed_seconds,
        )

    @classmethod
    def train_vectors(
        cls,
        vectors: F32Array,
        labels: Sequence[str],
        *,
        oos_vectors: F32Array | None = None,
        config: ClassifierConfig | None = None,
        embedder: Embedder | None = None,
        embed_seconds: float = 0.0,
    ) -> IntentClassifier:
        """Train on embeddings computed elsewhere (cached, or shared with another stage).

        Without `embedder`, only `predict_vector` works.
        """
        cfg = config or ClassifierConfig()
        started = time.perf_counter()
        names = sorted(set(labels))
        if len(names) < 2:
            raise ValueError(f"need at least two intents to train, got {names}")
        index = {name: i for i, name in enumerate(names)}
        y = np.array([index[label] for label in labels], dtype=np.int64)
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != len(y):
            raise ValueError(f"expected {len(y)} vectors, got an array of shape {x.shape}")
        oos = (
            np.zeros((0, x.shape[1]), dtype=np.float32)
            if oos_vectors is None
            else np.ascontiguousarray(oos_vectors, dtype=np.float32)
        )
        k = len(names)
        weights = _class_weights(y, k) if cfg.balanced else None

        def fit(rows: IntArray, init: FloatArray | None) -> tuple[FloatArray, int]:
            return fit_logistic_regression(
                x[rows],
                y[rows],
                k,
                c=cfg.c,
                sample_weight=None if weights is None else weights[rows],
                init=init,
                max_iter=cfg.max_iter,
                tol=cfg.tol,
            )

        everything = np.arange(len(y))
        params, iterations = fit(everything, None)
        counts = np.bincount(y, minlength=k)
        folds = min(cfg.folds, int(counts.max()))
        knn_weight = cfg.knn_weights[0] if len(cfg.knn_weights) == 1 else 0.3
        temperature = 1.0
        cv_accuracy = ece_before = ece_after = cv_oos_recall = cv_rejection = None
        oos_rule = OutOfScopeRule(
            min_confidence=cfg.min_confidence, min_similarity=cfg.min_similarity
        )
        if folds >= 2:
            assignment = _stratified_folds(y, folds, cfg.seed)
            lr_logp = np.zeros((len(y), k))
            votes = np.zeros((len(y), k))
            best_sim = np.zeros(len(y))
            oos_logp = np.zeros((len(oos), k))
            oos_votes = np.zeros((len(oos), k))
            oos_sim = np.zeros(len(oos))
            oos_fold = np.arange(len(oos)) % folds
            for fold in range(folds):
                held = np.flatnonzero(assignment == fold)
                kept = np.flatnonzero(assignment != fold)
                if len(held) == 0 or len(kept) == 0:
                    continue
                # Warm start from the full fit: the fold optimum is close, so few iterations.
                fold_params, _ = fit(kept, params)
                for rows, target_logp, target_votes, target_sim, source in (
                    (held, lr_logp, votes, best_sim, x),
                    (np.flatnonzero(oos_fold == fold), oos_logp, oos_votes, oos_sim, oos),
                ):
                    if len(rows) == 0:
                        continue
                    part = source[rows]
                    logits = (part @ fold_params[:-1].astype(np.float32)).astype(
                        np.float64
                    ) + fold_params[-1]
                    target_logp[rows] = _log_softmax(logits)
                    sims = part @ x[kept].T
                    target_sim[rows] = sims.max(axis=1)
                    target_votes[rows] = _knn_votes(
                        sims, y[kept], k, k=cfg.knn_k, temperature=cfg.knn_temperature
                    )

            def blend(logp: FloatArray, vote: FloatArray, share: float) -> FloatArray:
                if share <= 0:
                    return logp
                return (1 - share) * logp + share * np.log(vote + _EPS_VOTE)

            accuracy_by_share = {
                share: float((blend(lr_logp, votes, share).argmax(axis=1) == y).mean())
                for share in cfg.knn_weights
            }
            # Highest accuracy; among near-ties (0.1 point) the smaller kNN share, which is safer.
            top = max(accuracy_by_share.values())
            knn_weight = min(s for s, a in accuracy_by_share.items() if a >= top - 1e-3)
            cv_accuracy = accuracy_by_share[knn_weight]
            scores = blend(lr_logp, votes, knn_weight)
            temperature = _fit_temperature(scores, y)
            raw = np.exp(_log_softmax(scores))
            calibrated = np.exp(_log_softmax(scores / temperature))
            correct = calibrated.argmax(axis=1) == y
            ece_before = expected_calibration_error(raw.max(axis=1), correct)
            ece_after = expected_calibration_error(calibrated.max(axis=1), correct)
            if len(oos):
                oos_probs = np.exp(
                    _log_softmax(blend(oos_logp, oos_votes, knn_weight) / temperature)
                )
                oos_rule, cv_oos_recall, cv_rejection = fit_out_of_scope_rule(
                    calibrated.max(axis=1),
                    best_sim,
                    oos_probs.max(axis=1),
                    oos_sim,
                    max_in_scope_rejection=cfg.max_in_scope_rejection,
                    floor=oos_rule,
                )
        model = _Model(
            params=params,
            vectors=x,
            labels=y,
            knn_weight=knn_weight,
            temperature=temperature,
            config=cfg,
        )
        report = TrainingReport(
            examples=len(y),
            intents=k,
            oos_examples=len(oos),
            knn_weight=knn_weight,
            temperature=temperature,
            cv_accuracy=cv_accuracy,
            ece_before=ece_before,
            ece_after=ece_after,
            oos_rule=oos_rule.describe(),
            cv_oos_recall=cv_oos_recall,
            cv_in_scope_rejection=cv_rejection,
            embed_seconds=embed_seconds,
            fit_seconds=time.perf_counter() - started,
            iterations=iterations,
        )
        return cls(
            names,
            model,
            oos_rule=oos_rule,
            report=report,
            embedder=embedder,
        )

    # -- prediction -------------------------------------------------------------------------

    def probabilities(self, vectors: F32Array) -> tuple[FloatArray, FloatArray]:
        """Calibrated probabilities (n, intents) in `labels` order, and best similarities (n,)."""
        x = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        scores, best = self._model.scores(x)
        return np.exp(_log_softmax(scores / self._model.temperature)), best

    def predict_vectors(self, vectors: F32Array, *, top_k: int = 3) -> list[IntentPrediction]:
        """Predict many embeddings at once (rows of unit length, from the training embedder)."""
        probs, best = self.probabilities(vectors)
        out: list[IntentPrediction] = []
        order = np.argsort(-probs, axis=1)[:, :top_k]
        rejected = self.oos_rule.decide(probs.max(axis=1), best)
        for row in range(probs.shape[0]):
            top = tuple((self._labels[j], float(probs[row, j])) for j in order[row])
            out.append(IntentPrediction(top, bool(rejected[row]), float(best[row])))
        return out

    def predict_vector(self, vector: F32Array) -> IntentPrediction:
        """Predict from the turn's embedding, so the pipeline embeds each turn only once."""
        return self.predict_vectors(np.asarray(vector).reshape(1, -1))[0]

    def predict(self, text_or_vector: str | F32Array) -> IntentPrediction:
        """Predict one utterance, given as text (embedded here) or as its embedding."""
        if isinstance(text_or_vector, str):
            if self._embedder is None:
                raise ValueError("this classifier was trained on vectors: pass an embedding")
            return self.predict_vector(self._embedder.embed([text_or_vector])[0])
        return self.predict_vector(text_or_vector)


class IntentRouter:
    """The pipeline's intent stage: classify the turn's embedding, then route it with the flags.

    Satisfies `copilot.core.pipeline.IntentStage`; ``flags`` are the signal detectors' flags
    (anything with ``kind`` and ``level``) or (kind, level) pairs.
    """

    def __init__(self, classifier: IntentClassifier, taxonomy: Taxonomy) -> None:
        self.classifier = classifier
        self.taxonomy = taxonomy

    def __call__(
        self, vector: F32Array, flags: Sequence[tuple[str, str] | FlagLike]
    ) -> IntentGuess:
        # Imported here: the pipeline module may import this one.
        from copilot.core.pipeline import IntentGuess

        prediction = self.classifier.predict_vector(vector)
        routing = route(prediction, flags, self.taxonomy)
        intent = self.taxonomy.get(routing.intent_id) if routing.intent_id else None
        return IntentGuess(
            top=prediction.top,
            out_of_scope=prediction.out_of_scope,
            intent_name=intent.name if intent else None,
            layer=str(routing.layer),
            stakes=routing.stakes.to_dict() if routing.stakes else {},
            reasons=routing.reasons,
            articles=intent.articles if intent else (),
        )


# ---------------------------------------------------------------------------------------------
# Scores


def classification_scores(
    gold: Sequence[str], predicted: Sequence[str], *, oos_label: str = "oos"
) -> dict[str, float | int | None]:
    """Accuracy and macro-F1 over the gold labels; with `oos_label` in `gold`, also in-scope
    accuracy (an in-scope utterance called out of scope is wrong) and out-of-scope recall.
    """
    n = len(gold)
    if n != len(predicted):
        raise ValueError("gold and predicted differ in length")
    if n == 0:
        return {"cases": 0, "accuracy": 0.0, "macro_f1": 0.0}
    f1s: list[float] = []
    for label in sorted(set(gold)):
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p != label)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    out: dict[str, float | int | None] = {
        "cases": n,
        "accuracy": sum(g == p for g, p in zip(gold, predicted, strict=True)) / n,
        "macro_f1": sum(f1s) / len(f1s),
    }
    in_scope = [(g, p) for g, p in zip(gold, predicted, strict=True) if g != oos_label]
    oos = [p for g, p in zip(gold, predicted, strict=True) if g == oos_label]
    if oos:
        out["in_scope_accuracy"] = (
            sum(g == p for g, p in in_scope) / len(in_scope) if in_scope else None
        )
        out["oos_recall"] = sum(p == oos_label for p in oos) / len(oos)
        called_oos = sum(p == oos_label for p in predicted)
        out["oos_precision"] = sum(p == oos_label for p in oos) / called_oos if called_oos else None
    return out


__all__ = [
    "ClassifierConfig",
    "FlagRoutingRule",
    "Intent",
    "IntentClassifier",
    "IntentPrediction",
    "IntentRouter",
    "Layer",
    "OutOfScopeRule",
    "Routing",
    "RoutingPolicy",
    "Stakes",
    "Taxonomy",
    "TrainingReport",
    "classification_scores",
    "expected_calibration_error",
    "fit_logistic_regression",
    "fit_out_of_scope_rule",
    "route",
]
