"""`build_assistant` and the intent corrections it learns from the feedback store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from copilot.core.conversation import Conversation, Role, Turn
from copilot.core.feedback import FeedbackAction, FeedbackKind
from copilot.core.pipeline import Assistant
from copilot.services.assistant import (
    assistant_for_index,
    build_assistant,
    learned_intent_examples,
)
from copilot.services.feedback_store import FeedbackStore, feedback_db_path

#: Misrouted to broadband_fault by the bundled model (a Wi-Fi problem of a smart plug).
PLUG = "my smart plug keeps dropping off the wifi every night"
#: Said differently; also misrouted before the correction.
PARAPHRASE = "my plug keeps dropping off the wifi overnight"
#: A real broadband fault, which must stay one.
BROADBAND = "my broadband keeps dropping out every evening"


def correction(conversation: str, to: str, words: str | None) -> FeedbackAction:
    return FeedbackAction(
        kind=FeedbackKind.INTENT_CORRECTED,
        conversation_id=conversation,
        turn_id="t1",
        intent="broadband_fault",
        corrected_intent=to,
        query=words,
    )


def intent_of(assistant: Assistant, text: str) -> str | None:
    turn = Turn("probe", "t1", Role.CUSTOMER, text, dt.datetime.now(dt.UTC))
    guess = assistant.analyse(Conversation(conversation_id="probe").apply(turn)).intent
    return guess.intent if guess else None


def test_no_feedback_database_means_no_learnt_examples(
    sample_content: Path, data_dir: Path
) -> None:
    assert learned_intent_examples(sample_content, feedback_db_path(data_dir)) == []
    assert not feedback_db_path(data_dir).exists()  # not created by asking


def test_only_corrections_to_intents_of_the_taxonomy_are_learnt(
    sample_content: Path, data_dir: Path
) -> None:
    with FeedbackStore(feedback_db_path(data_dir)) as store:
        store.record_many(
            [
                correction("c1", "smart_home_device_offline", PLUG),
                correction("c2", "smart_home_device_offline", PLUG),
                correction("c3", "wifi stuff", "my wifi thing"),  # free text, not an intent
                correction("c4", "smart_home_device_offline", None),  # no words to learn
            ]
        )
    assert learned_intent_examples(sample_content, feedback_db_path(data_dir)) == [
        (PLUG, "smart_home_device_offline")
    ]


@pytest.mark.slow
def test_a_freshly_built_assistant_routes_a_corrected_utterance_to_the_corrected_intent(
    sample_content: Path, data_dir: Path, real_embedder: Any
) -> None:
    before = assistant_for_index(sample_content, real_embedder, None)
    assert intent_of(before, PLUG) == "broadband_fault"
    assert intent_of(before, PARAPHRASE) == "broadband_fault"

    # The agent corrects it in the panel (`SnapshotViewModel.correct_intent` stores the words
    # the intent was classified from); the next backend load learns it.
    with FeedbackStore(feedback_db_path(data_dir)) as store:
        store.record(correction("c1", "smart_home_device_offline", PLUG))
    learnt = learned_intent_examples(sample_content, feedback_db_path(data_dir))
    after, index, _ = build_assistant(
        sample_content, data_dir, real_embedder, extra_intent_examples=learnt
    )
    try:
        assert intent_of(after, PLUG) == "smart_home_device_offline"
        assert intent_of(after, PARAPHRASE) == "smart_home_device_offline"
        assert intent_of(after, BROADBAND) == "broadband_fault"
    finally:
        index.close()


def test_live_turns_are_scored_with_the_packs_sentiment_head(
    sample_content: Path, data_dir: Path, fake_embedder: Any
) -> None:
    """The pack configures a sentiment head: it is trained once, cached in the data directory,
    and every customer turn is scored with its own embedding."""
    assistant, index, _ = build_assistant(sample_content, data_dir, fake_embedder)
    try:
        assert assistant.signals.sentiment.head is not None
        assert list((data_dir / "models").glob("sentiment_head_*.json"))
        turn = Turn(
            "c1", "t1", Role.CUSTOMER, "This is useless, I'm fed up.", dt.datetime.now(dt.UTC)
        )
        agent = Turn("c1", "t2", Role.AGENT, "I'm sorry to hear that.", dt.datetime.now(dt.UTC))
        snapshot = assistant.analyse(Conversation(conversation_id="c1").apply(turn).apply(agent))
        assert snapshot.signals is not None
        (scored,) = snapshot.signals.turns  # customer turns only
        assert scored.sentiment.used_embedding
    finally:
        index.close()
