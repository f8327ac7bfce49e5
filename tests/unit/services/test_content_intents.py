"""The intent taxonomy of the content pack: loading, validation and the classifier built on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from copilot.core.intents import Layer, route
from copilot.core.protocols import Embedder
from copilot.services.content_intents import (
    INTENTS_EVAL_FILE,
    INTENTS_FILE,
    IntentTaxonomyError,
    load_intent_classifier,
    load_taxonomy,
    read_labelled_jsonl,
)
from copilot.services.embedders import HashingEmbedder

REPO = Path(__file__).resolve().parents[3]
PACK = REPO / "knowledge"


@pytest.fixture(scope="module")
def pack_data() -> dict[str, object]:
    data = yaml.safe_load((PACK / INTENTS_FILE).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, data: object) -> Path:
    (tmp_path / INTENTS_FILE).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return tmp_path


def _intent(intent_id: str, **changes: object) -> dict[str, object]:
    intent: dict[str, object] = {
        "id": intent_id,
        "name": intent_id.replace("_", " "),
        "description": f"about {intent_id}",
        "layer": "ai_assisted",
        "stakes": {
            "complexity": "low",
            "emotional_intensity": "low",
            "resolution_pattern": "guided",
        },
        "examples": [f"{intent_id} example {i}" for i in range(4)],
    }
    intent.update(changes)
    return intent


# -- the sample pack ----------------------------------------------------------------------------


def test_sample_pack_loads_and_is_complete() -> None:
    taxonomy = load_taxonomy(PACK)
    assert len(taxonomy.intents) >= 25
    for intent in taxonomy.intents:
        assert len(intent.examples) >= 12, intent.id
        assert intent.name and intent.description
    assert len(taxonomy.out_of_scope) >= 30
    assert {str(i.layer) for i in taxonomy.intents} == {str(layer) for layer in Layer}
    for expected in ("billing_double_charge", "complaint", "bereavement", "password_reset"):
        assert taxonomy.get(expected) is not None


def test_sample_pack_routes_legal_and_vulnerable_customers_to_a_person() -> None:
    from copilot.core.intents import IntentPrediction

    taxonomy = load_taxonomy(PACK)
    autonomous = next(i for i in taxonomy.intents if i.layer is Layer.AI_AUTONOMOUS)
    prediction = IntentPrediction(((autonomous.id, 0.95),), out_of_scope=False)
    assert route(prediction, [], taxonomy).layer is Layer.AI_AUTONOMOUS
    # The signal detectors' kinds and the prefixed names both count.
    for kind in (
        "legal_threat",
        "bereavement",
        "illness",
        "financial_hardship",
        "vulnerability_bereavement",
        "vulnerability_illness",
        "vulnerability_financial",
    ):
        assert route(prediction, [(kind, "low")], taxonomy).layer is Layer.HUMAN_ONLY, kind
    assert route(prediction, [("distress", "medium")], taxonomy).layer is Layer.AI_AUTONOMOUS
    assert route(prediction, [("distress", "high")], taxonomy).layer is Layer.HUMAN_ONLY


def test_pack_eval_set_is_held_out_and_labelled_with_pack_ids() -> None:
    taxonomy = load_taxonomy(PACK)
    cases = read_labelled_jsonl(PACK / INTENTS_EVAL_FILE)
    assert len(cases) >= 100
    labels = {label for _, label in cases}
    assert labels - {"oos"} <= set(taxonomy.ids)
    assert sum(label == "oos" for _, label in cases) >= 10
    seen = {t.lower() for i in taxonomy.intents for t in i.examples}
    seen |= {t.lower() for t in taxonomy.out_of_scope}
    assert not [text for text, _ in cases if " ".join(text.split()).lower() in seen]


def test_templates_name_only_known_intents() -> None:
    """Every intent a reply template or policy names exists in the taxonomy."""
    ids = set(load_taxonomy(PACK).ids)
    named: set[str] = set()
    for path in [*(PACK / "templates").glob("*.yaml"), PACK / "policies.yaml"]:
        if not path.exists():
            continue

        def walk(node: object) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "intents" and isinstance(value, list):
                        named.update(v for v in value if isinstance(v, str))
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert named <= ids, sorted(named - ids)


# -- validation ---------------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(IntentTaxonomyError, match=str(tmp_path / INTENTS_FILE)):
        load_taxonomy(tmp_path)


def test_broken_yaml_names_the_path_and_line(tmp_path: Path) -> None:
    (tmp_path / INTENTS_FILE).write_text("intents:\n  - id: a\n    name: [unclosed\n")
    with pytest.raises(IntentTaxonomyError) as info:
        load_taxonomy(tmp_path)
    message = str(info.value)
    assert str(tmp_path / INTENTS_FILE) in message
    assert "invalid YAML" in message and "line" in message


def test_duplicate_ids_are_reported(tmp_path: Path) -> None:
    _write(tmp_path, {"intents": [_intent("refund"), _intent("other"), _intent("refund")]})
    with pytest.raises(IntentTaxonomyError, match=r"intent 'refund': duplicate id"):
        load_taxonomy(tmp_path)


def test_every_problem_names_path_intent_and_reason(tmp_path: Path) -> None:
    data = {
        "intents": [
            _intent("refund", layer="robot"),
            _intent("billing", stakes={"complexity": "extreme"}),
            _intent("tiny", examples=["just one"]),
            _intent("ok"),
            _intent("Bad-Id"),
        ],
        "routing": {"human_only_flags": [{"kind": "legal_threat", "min_level": "severe"}]},
    }
    with pytest.raises(IntentTaxonomyError) as info:
        load_taxonomy(_write(tmp_path, data))
    problems = [str(p) for p in info.value.problems]
    path = str(tmp_path / INTENTS_FILE)
    assert all(p.startswith(path) for p in problems)
    assert any("intent 'refund'" in p and "layer is 'robot'" in p for p in problems)
    assert any("intent 'billing'" in p and "stakes" in p for p in problems)
    assert any("intent 'tiny'" in p and "at least" in p for p in problems)
    assert any("intent 'Bad-Id'" in p and "snake_case" in p for p in problems)
    assert any("min_level" in p and "severe" in p for p in problems)
    assert not any("intent 'ok'" in p for p in problems)


def test_same_example_in_two_intents_is_reported(tmp_path: Path) -> None:
    shared = "where is my stuff"
    data = {
        "intents": [
            _intent("a_one", examples=["x1", "x2", shared]),
            _intent("b_two", examples=["y1", "y2", shared.upper()]),
        ]
    }
    with pytest.raises(IntentTaxonomyError, match="also an example of 'a_one'"):
        load_taxonomy(_write(tmp_path, data))


def test_unknown_keys_are_typos_not_silence(tmp_path: Path) -> None:
    with pytest.raises(IntentTaxonomyError, match=r"unknown key.*exmples"):
        load_taxonomy(
            _write(tmp_path, {"intents": [_intent("a_one", exmples=[]), _intent("b_two")]})
        )


def test_labelled_jsonl_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps({"text": "hi", "label": "x"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"cases\.jsonl:2: invalid JSON"):
        read_labelled_jsonl(path)


# -- the classifier from the pack ---------------------------------------------------------------


def test_classifier_from_a_pack_learns_extra_examples(tmp_path: Path) -> None:
    data = {
        "intents": [
            _intent("refund_request", examples=["refund please", "money back", "refund my order"]),
            _intent("password_reset", examples=["forgot password", "reset password", "new login"]),
        ],
        "out_of_scope": ["weather today", "tell me a joke"],
    }
    pack = _write(tmp_path, data)
    embedder = HashingEmbedder()
    text = "zorblat the quux"
    _, base = load_intent_classifier(pack, embedder)
    taxonomy, learned = load_intent_classifier(
        pack,
        embedder,
        extra_examples=[
            ("zorblat quux", "password_reset"),
            ("the zorblat quux", "password_reset"),
            ("zorblat", "renamed_intent"),  # no longer in the taxonomy: skipped
        ],
    )
    assert learned.predict(text).top[0][0] == "password_reset"
    assert base.predict(text).top[0][1] < learned.predict(text).top[0][1]
    assert "renamed_intent" not in learned.labels
    assert learned.report.oos_examples == 2
    assert taxonomy.get("refund_request") is not None


@pytest.mark.slow
def test_real_model_on_the_pack_eval_set(real_embedder: Embedder) -> None:
    """The bundled MiniLM trained on intents.yaml classifies the held-out pack utterances."""
    from copilot.core.intents import classification_scores

    taxonomy, classifier = load_intent_classifier(PACK, real_embedder)
    assert classifier.report.embed_seconds + classifier.report.fit_seconds < 30
    cases = read_labelled_jsonl(PACK / INTENTS_EVAL_FILE)
    vectors = real_embedder.embed([text for text, _ in cases])
    predictions = classifier.predict_vectors(vectors)
    gold = [label for _, label in cases]
    scores = classification_scores(gold, [p.intent_id or "oos" for p in predictions])
    assert scores["accuracy"] >= 0.85, scores
    assert scores["oos_recall"] is not None and scores["oos_recall"] >= 0.5, scores
    assert len(taxonomy.intents) == len(classifier.labels)
