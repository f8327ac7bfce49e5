"""Intent classifier and routing, with the deterministic hashing embedder (no model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from copilot.core.intents import (
    ClassifierConfig,
    FlagRoutingRule,
    Intent,
    IntentClassifier,
    IntentPrediction,
    IntentRouter,
    Layer,
    RoutingPolicy,
    Stakes,
    Taxonomy,
    classification_scores,
    expected_calibration_error,
    fit_logistic_regression,
    route,
)
from copilot.services.embedders import HashingEmbedder

# Small, word-distinct intents: the hashing embedder knows no synonyms, only shared words.
EXAMPLES: dict[str, list[str]] = {
    "billing_double_charge": [
        "I was charged twice this month",
        "you charged me twice for my bill",
        "two identical payments taken from my bank",
        "charged twice for the same bill",
        "double payment taken twice from my account",
        "why was I charged twice",
    ],
    "password_reset": [
        "I forgot my password",
        "how do I reset my password",
        "the password reset link expired",
        "need a new password for my login",
        "forgot password email never arrived",
        "reset my login password please",
    ],
    "order_tracking": [
        "where is my parcel",
        "track my parcel delivery",
        "when will my order parcel arrive",
        "has my order been dispatched",
        "tracking number for my order",
        "where is my order",
    ],
    "broadband_fault": [
        "my broadband internet is down",
        "no internet on the router",
        "broadband keeps dropping the internet",
        "router light is red no internet",
        "internet broadband not working",
        "wifi router has no internet",
    ],
}
OOS = ["giraffes enjoy tall acacia trees", "recipe for lemon drizzle cake", "football results"]


def _pairs() -> list[tuple[str, str]]:
    return [(text, label) for label, texts in EXAMPLES.items() for text in texts]


@pytest.fixture(scope="module")
def embedder() -> HashingEmbedder:
    return HashingEmbedder(dimension=256)


@pytest.fixture(scope="module")
def classifier(embedder: HashingEmbedder) -> IntentClassifier:
    return IntentClassifier.train(_pairs(), embedder, oos_examples=OOS)


def _taxonomy(**layers: Layer) -> Taxonomy:
    stakes = Stakes("low", "low", "self-serve")
    return Taxonomy(
        intents=tuple(
            Intent(
                label,
                label.replace("_", " ").title(),
                "",
                layers.get(label, Layer.AI_ASSISTED),
                stakes,
                tuple(texts),
            )
            for label, texts in EXAMPLES.items()
        ),
        routing=RoutingPolicy(
            human_only_flags=(
                FlagRoutingRule("legal_threat"),
                FlagRoutingRule("vulnerability_bereavement"),
                FlagRoutingRule("vulnerability_financial"),
                FlagRoutingRule("distress", "high"),
            ),
            min_confidence_autonomous=0.6,
        ),
    )


# -- classifier ---------------------------------------------------------------------------------


def test_predicts_the_intent_whose_words_it_shares(classifier: IntentClassifier) -> None:
    assert classifier.predict("I have been charged twice on my bill").intent_id == (
        "billing_double_charge"
    )
    assert classifier.predict("please reset my password").intent_id == "password_reset"
    assert classifier.predict("where is my parcel now").intent_id == "order_tracking"
    assert classifier.predict("the router has no internet").intent_id == "broadband_fault"


def test_top_three_are_distinct_and_ordered_probabilities(classifier: IntentClassifier) -> None:
    prediction = classifier.predict("my broadband internet keeps dropping")
    labels = [label for label, _ in prediction.top]
    probabilities = [p for _, p in prediction.top]
    assert len(labels) == 3 and len(set(labels)) == 3
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probabilities) and sum(probabilities) <= 1.0 + 1e-9
    assert prediction.confidence == probabilities[0]


def test_out_of_scope_when_nothing_fits(classifier: IntentClassifier) -> None:
    prediction = classifier.predict("purple elephants juggle saxophones")
    assert prediction.out_of_scope
    assert prediction.intent_id is None
    assert prediction.top  # the best guesses are still shown to the agent
    assert not classifier.predict("I was charged twice").out_of_scope


def test_out_of_scope_without_calibration_examples(embedder: HashingEmbedder) -> None:
    classifier = IntentClassifier.train(_pairs(), embedder)
    assert classifier.predict("purple elephants juggle saxophones").out_of_scope
    assert classifier.predict("forgot my password").intent_id == "password_reset"


def test_predict_vector_reuses_the_turn_embedding(
    classifier: IntentClassifier, embedder: HashingEmbedder
) -> None:
    text = "when will my order arrive"
    vector = embedder.embed([text])[0]
    assert classifier.predict_vector(vector) == classifier.predict(text)
    assert classifier.predict(vector) == classifier.predict(text)


def test_extra_examples_teach_new_wording(embedder: HashingEmbedder) -> None:
    utterance = "my fibre modem is kaput"
    before = IntentClassifier.train(_pairs(), embedder).predict(utterance)
    corrections = [
        ("fibre modem kaput", "broadband_fault"),
        ("the modem is kaput again", "broadband_fault"),
        ("kaput fibre", "broadband_fault"),
    ]
    after = IntentClassifier.train(_pairs(), embedder, extra_examples=corrections).predict(
        utterance
    )
    assert before.intent_id != "broadband_fault"
    assert after.intent_id == "broadband_fault"


def test_training_is_deterministic(embedder: HashingEmbedder) -> None:
    first = IntentClassifier.train(_pairs(), embedder, oos_examples=OOS)
    second = IntentClassifier.train(_pairs(), embedder, oos_examples=OOS)
    text = "my password reset email"
    assert first.predict(text) == second.predict(text)
    assert first.report.temperature == second.report.temperature


def test_training_report(classifier: IntentClassifier) -> None:
    report = classifier.report
    assert report.examples == 24 and report.intents == 4 and report.oos_examples == 3
    assert report.cv_accuracy is not None and report.cv_accuracy > 0.5
    assert report.temperature > 0
    assert report.fit_seconds < 5


def test_rejects_too_few_intents(embedder: HashingEmbedder) -> None:
    with pytest.raises(ValueError, match="two intents"):
        IntentClassifier.train([("a", "x"), ("b", "x")], embedder)
    with pytest.raises(ValueError, match="empty"):
        IntentClassifier.train([(" ", "x"), ("b", "y")], embedder)


def _clusters(seed: int, n: int, noise: float) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, 32))
    labels = rng.integers(0, 5, size=n)
    x = centres[labels] + noise * rng.normal(size=(n, 32))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), [f"intent_{i}" for i in labels]


def test_confidences_are_calibrated_on_held_out_data() -> None:
    x, labels = _clusters(0, 600, noise=2.5)
    x_test, labels_test = _clusters(0, 1600, noise=2.5)
    x_test, labels_test = x_test[600:], labels_test[600:]  # same centres, new points
    classifier = IntentClassifier.train_vectors(x, labels, config=ClassifierConfig(c=100.0))
    predictions = classifier.predict_vectors(x_test)
    correct = [p.top[0][0] == g for p, g in zip(predictions, labels_test, strict=True)]
    accuracy = float(np.mean(correct))
    assert 0.5 < accuracy < 0.95  # a problem where calibration matters
    ece = expected_calibration_error([p.confidence for p in predictions], correct)
    assert classifier.report.ece_before is not None and classifier.report.ece_after is not None
    assert classifier.report.ece_after < classifier.report.ece_before
    assert ece < 0.06


def test_logistic_regression_reaches_the_optimum() -> None:
    """The numpy L-BFGS fit matches scikit-learn's solution of the same objective."""
    from sklearn.linear_model import LogisticRegression

    x, labels = _clusters(1, 300, noise=1.0)
    y = np.array([int(label[-1]) for label in labels])
    params, _ = fit_logistic_regression(x, y, 5, c=3.0, tol=1e-5)
    reference = LogisticRegression(C=3.0, tol=1e-10, max_iter=5000).fit(x, y)

    def objective(w: np.ndarray, b: np.ndarray) -> float:
        z = x.astype(np.float64) @ w + b
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].sum() * 3.0 + 0.5 * (w * w).sum())

    ours = objective(params[:-1], params[-1])
    theirs = objective(reference.coef_.T, reference.intercept_)
    assert ours <= theirs * (1 + 1e-5)


# -- routing ------------------------------------------------------------------------------------


def _prediction(intent: str | None, confidence: float = 0.9) -> IntentPrediction:
    if intent is None:
        return IntentPrediction((("order_tracking", 0.2),), out_of_scope=True)
    return IntentPrediction(((intent, confidence), ("password_reset", 0.05)), out_of_scope=False)


def test_route_uses_the_intent_layer_and_stakes() -> None:
    taxonomy = _taxonomy(order_tracking=Layer.AI_AUTONOMOUS)
    routing = route(_prediction("order_tracking"), [], taxonomy)
    assert routing.layer is Layer.AI_AUTONOMOUS
    assert routing.intent_id == "order_tracking"
    assert routing.stakes == Stakes("low", "low", "self-serve")
    assert routing.confidence == 0.9


@pytest.mark.parametrize(
    ("kind", "level"),
    [
        ("legal_threat", "low"),
        ("legal_threat", "high"),
        ("vulnerability_bereavement", "medium"),
        ("vulnerability_financial", "critical"),
        ("distress", "high"),
        ("distress", "critical"),
        ("legal_threat", "something-new"),  # an unknown level errs on the side of a person
    ],
)
def test_legal_and_vulnerable_flags_force_human_only(kind: str, level: str) -> None:
    taxonomy = _taxonomy(order_tracking=Layer.AI_AUTONOMOUS)
    routing = route(_prediction("order_tracking"), [(kind, level)], taxonomy)
    assert routing.layer is Layer.HUMAN_ONLY
    assert any(kind in reason for reason in routing.reasons)


def test_other_flags_and_mild_distress_do_not_escalate() -> None:
    taxonomy = _taxonomy(order_tracking=Layer.AI_AUTONOMOUS)
    flags = [("distress", "medium"), ("frustration", "critical"), ("churn_risk", "high")]
    assert route(_prediction("order_tracking"), flags, taxonomy).layer is Layer.AI_AUTONOMOUS


def test_flag_objects_with_kind_and_level_work() -> None:
    @dataclass(frozen=True)
    class Flag:
        kind: str
        level: str

    taxonomy = _taxonomy()
    routing = route(_prediction("billing_double_charge"), [Flag("legal_threat", "high")], taxonomy)
    assert routing.layer is Layer.HUMAN_ONLY


def test_unsure_prediction_is_never_autonomous() -> None:
    taxonomy = _taxonomy(order_tracking=Layer.AI_AUTONOMOUS)
    routing = route(_prediction("order_tracking", confidence=0.4), [], taxonomy)
    assert routing.layer is Layer.AI_ASSISTED
    assert any("confidence" in reason for reason in routing.reasons)


def test_out_of_scope_goes_to_the_agent_and_flags_still_apply() -> None:
    taxonomy = _taxonomy()
    routing = route(_prediction(None), [], taxonomy)
    assert routing.intent_id is None and routing.stakes is None
    assert routing.layer is Layer.AI_ASSISTED
    assert route(_prediction(None), [("legal_threat", "low")], taxonomy).layer is Layer.HUMAN_ONLY


def test_human_only_intent_stays_human_only() -> None:
    taxonomy = _taxonomy(billing_double_charge=Layer.HUMAN_ONLY)
    assert route(_prediction("billing_double_charge"), [], taxonomy).layer is Layer.HUMAN_ONLY


def test_router_is_the_pipeline_intent_stage(
    classifier: IntentClassifier, embedder: HashingEmbedder
) -> None:
    router = IntentRouter(classifier, _taxonomy(password_reset=Layer.AI_AUTONOMOUS))
    vector = embedder.embed(["I forgot my password, reset it"])[0]
    guess = router(vector, [])
    assert guess.intent == "password_reset"
    assert guess.intent_name == "Password Reset"
    assert guess.layer in {"ai_autonomous", "ai_assisted"}
    assert router(vector, [("legal_threat", "medium")]).layer == "human_only"


# -- scores -------------------------------------------------------------------------------------


def test_classification_scores_with_out_of_scope() -> None:
    gold = ["a", "a", "b", "oos", "oos"]
    predicted = ["a", "b", "b", "oos", "a"]
    scores = classification_scores(gold, predicted)
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["in_scope_accuracy"] == pytest.approx(2 / 3)
    assert scores["oos_recall"] == pytest.approx(1 / 2)
    # F1: a = 2*1/(2+1+1) = 0.5, b = 2/(2+1) = 2/3, oos = 2/(2+1) = 2/3
    assert scores["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    assert "oos_recall" not in classification_scores(["a", "b"], ["a", "a"])
