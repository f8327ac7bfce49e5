"""The per-turn pipeline: every stage produces, a failing stage is reported, caches are safe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from copilot.core.conversation import Conversation, parse_turn_event
from copilot.core.models import ArticleHit
from copilot.core.pipeline import Assistant, IntentGuess, query_text
from copilot.services.content_policy import load_policy_spec
from copilot.services.content_signals import load_signal_config
from copilot.services.content_templates import load_template_library
from copilot.services.embedders import HashingEmbedder
from copilot.services.knowledge_index import KnowledgeIndex, build_index

TURNS = [
    ("agent", "Hi, you're through to Kestrel Connect, I'm Sam. How can I help?"),
    ("customer", "I've been charged twice for my broadband bill this month, £38 both times"),
    ("agent", "I'm sorry about that. Can I take your full name and postcode?"),
    ("customer", "This is the third time I'm calling about this. I want my money back today"),
]


def conversation(turns: list[tuple[str, str]] = TURNS) -> Conversation:
    conv = Conversation()
    for number, (role, text) in enumerate(turns, start=1):
        conv = conv.apply(
            parse_turn_event(
                {
                    "conversation_id": "c1",
                    "turn_id": f"t{number}",
                    "role": role,
                    "text": text,
                    "ts": f"2026-11-20T10:00:{number:02d}Z",
                }
            )
        )
    return conv


@pytest.fixture(scope="module")
def assistant_parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    content = Path(__file__).resolve().parents[3] / "knowledge"
    embedder = HashingEmbedder(384)
    index_dir = tmp_path_factory.mktemp("index")
    build_index(index_dir, content / "articles", embedder)
    return {
        "embedder": embedder,
        "index": KnowledgeIndex.open(index_dir, embedder),
        "signals": load_signal_config(content),
        "policy": load_policy_spec(content),
        "templates": load_template_library(content, embedder),
    }


def make(parts: dict[str, Any], **overrides: Any) -> Assistant:
    return Assistant(**(parts | overrides))


def test_every_stage_produces_a_section(assistant_parts: dict[str, Any]) -> None:
    def intents(vector: Any, flags: Any) -> IntentGuess:
        return IntentGuess(top=(("billing_double_charge", 0.9),), layer="ai_assisted")

    snapshot = make(assistant_parts, intents=intents).analyse(conversation())
    assert snapshot.errors == {}
    assert [t.stage for t in snapshot.timings] == [
        "embed",
        "signals",
        "intent",
        "retrieve",
        "policy",
        "suggest",
        "summary",
    ]
    kinds = {f.kind for f in snapshot.flags}
    assert "repeat_contact" in kinds
    assert snapshot.intent is not None and snapshot.intent.intent == "billing_double_charge"
    assert snapshot.hits and snapshot.hits[0].article_id.startswith("KB-")
    assert 1 <= len(snapshot.suggestions) <= 3
    assert snapshot.summary is not None and "charged twice" in snapshot.summary.issue
    assert snapshot.policy is not None and snapshot.policy.ledger
    assert snapshot.last_turn_id == "t4" and snapshot.turn_count == 4
    # The JSON form carries every section and the timings.
    data = snapshot.to_dict()
    assert set(data["timings_ms"]) == {t.stage for t in snapshot.timings}
    assert data["routing"]["intent"] == "billing_double_charge"


def test_a_failing_stage_is_reported_and_the_others_still_produce(
    assistant_parts: dict[str, Any],
) -> None:
    class BrokenIndex:
        def search(self, query: str, **kwargs: Any) -> list[ArticleHit]:
            raise RuntimeError("index file vanished")

    def broken_intents(vector: Any, flags: Any) -> IntentGuess:
        raise ValueError("classifier not trained")

    snapshot = make(assistant_parts, index=BrokenIndex(), intents=broken_intents).analyse(
        conversation()
    )
    assert snapshot.errors == {
        "retrieve": "RuntimeError: index file vanished",
        "intent": "ValueError: classifier not trained",
    }
    assert snapshot.hits == ()
    assert snapshot.flags and snapshot.summary is not None and snapshot.policy is not None
    assert snapshot.suggestions  # templates still fit the words and the flags


def test_query_is_built_from_recent_customer_turns_only() -> None:
    query = query_text(conversation().turns)
    assert "charged twice" in query and "third time" in query
    assert "Kestrel Connect, I'm Sam" not in query


def test_no_customer_words_yet_gives_an_empty_but_valid_snapshot(
    assistant_parts: dict[str, Any],
) -> None:
    snapshot = make(assistant_parts).analyse(conversation(TURNS[:1]))
    assert snapshot.errors == {}
    assert snapshot.hits == () and snapshot.suggestions == () and snapshot.flags == ()


def test_redacted_card_number_never_reaches_the_snapshot(assistant_parts: dict[str, Any]) -> None:
    card = "4111 1111 1111 1111"
    turns = [*TURNS, ("customer", f"my card is {card} and the cvv is 123")]
    snapshot = make(assistant_parts).analyse(conversation(turns))
    text = repr(snapshot.to_dict())
    assert card not in text and "4111111111111111" not in text
    assert "1111 1111" not in text


def test_repeated_analysis_is_stable(assistant_parts: dict[str, Any]) -> None:
    assistant = make(assistant_parts)
    first = assistant.analyse(conversation()).to_dict()
    second = assistant.analyse(conversation()).to_dict()
    for key in ("flags", "policy", "suggestions", "knowledge", "summary"):
        assert first[key] == second[key]


def test_the_intent_remembers_the_reason_for_contact(assistant_parts: dict[str, Any]) -> None:
    import numpy as np

    seen: list[Any] = []

    def intents(vector: Any, flags: Any) -> IntentGuess:
        seen.append(vector)
        return IntentGuess(top=(("billing_double_charge", 0.9),))

    turns = [
        *TURNS[:3],
        ("customer", "Jane Doe, SW1A 1AA"),
        ("agent", "Thanks. And your date of birth?"),
        ("customer", "12/03/1980"),
    ]
    embedder = assistant_parts["embedder"]
    make(assistant_parts, intents=intents).analyse(conversation(turns))
    opening = embedder.embed([TURNS[1][1]])[0]
    last_window = embedder.embed(["Jane Doe, SW1A 1AA 12/03/1980"])[0]
    # The classifier sees the opening statement's topic, not just the identity answers.
    assert float(np.dot(seen[-1], opening)) > float(np.dot(last_window, opening)) + 0.2
    # And the result depends on the conversation only: a fresh assistant agrees.
    seen.clear()
    make(assistant_parts, intents=intents).analyse(conversation(turns))
    again = seen[-1]
    seen.clear()
    fresh = make(assistant_parts, intents=intents)
    fresh.analyse(conversation(turns[:2]))
    fresh.analyse(conversation(turns))
    assert np.allclose(seen[-1], again)
