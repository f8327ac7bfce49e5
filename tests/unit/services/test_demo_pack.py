"""The demo conversations of the sample pack: they replay cleanly and their annotations are valid.

``knowledge/demos/*.jsonl`` are what the demo, the benchmarks and the pipeline tests replay, and
``knowledge/demos/expected.yaml`` says what a reviewer expects to see for each. A typo in an
annotation (an article, rule, flag or intent id that does not exist, an expired article) would
make every check built on it meaningless, so each id is checked against the pack here.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from copilot.core.conversation import Conversation, Role, parse_turn_event
from copilot.core.redaction import luhn_valid
from copilot.services.loaders import LoadedArticle, load_articles

PACK = Path(__file__).resolve().parents[3] / "knowledge"
DEMOS = PACK / "demos"
DEMO_FILES = sorted(p.name for p in DEMOS.glob("*.jsonl"))

REQUIRED_KEYS = {
    "title",
    "channel",
    "customer",
    "intent",
    "intent_alternatives",
    "flags",
    "absent_flags",
    "policy_findings",
    "ledger",
    "articles",
}
OPTIONAL_KEYS = {"routing_layer"}
LEDGER_STATUSES = {"done", "missed", "pending"}
LAYERS = {"ai_autonomous", "ai_assisted", "human_only"}
_DIGIT_RUN = re.compile(r"(?:\d[ -]?){13,19}")


@cache
def expected() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((DEMOS / "expected.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict), "expected.yaml must map file names to annotations"
    return data


@cache
def events(name: str) -> list[dict[str, Any]]:
    lines = (DEMOS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@cache
def articles() -> dict[str, LoadedArticle]:
    return load_articles(PACK / "articles").by_id()


@cache
def policy_rules() -> dict[str, str]:
    """Rule id -> rule type, read straight from policies.yaml."""
    data = yaml.safe_load((PACK / "policies.yaml").read_text(encoding="utf-8"))
    return {str(rule["id"]): str(rule["type"]) for rule in data["rules"]}


@cache
def flag_kinds() -> frozenset[str]:
    data = yaml.safe_load((PACK / "signals.yaml").read_text(encoding="utf-8"))
    return frozenset(data["flags"])


def replay(name: str) -> Conversation:
    conversation = Conversation()
    for event in events(name):
        conversation = conversation.apply(parse_turn_event(event))
    return conversation


def test_the_pack_has_enough_demos_and_every_one_is_annotated() -> None:
    assert len(DEMO_FILES) >= 14
    assert set(expected()) == set(DEMO_FILES)


def test_the_demos_cover_both_channels_and_partial_transcripts() -> None:
    channels = {expected()[name]["channel"] for name in DEMO_FILES}
    assert channels == {"chat", "phone"}
    with_partials = [
        name for name in DEMO_FILES if any(not e.get("is_final", True) for e in events(name))
    ]
    assert len(with_partials) >= 3
    assert all(expected()[name]["channel"] == "phone" for name in with_partials)


@pytest.mark.parametrize("name", DEMO_FILES)
def test_demo_replays_into_one_conversation(name: str) -> None:
    conversation = replay(name)

    finals = [e for e in events(name) if e.get("is_final", True)]
    assert len({e["conversation_id"] for e in events(name)}) == 1
    assert 8 <= len(conversation.turns) <= 18
    assert [t.turn_id for t in conversation.turns] == [e["turn_id"] for e in finals]
    assert conversation.pending == ()  # every partial was completed by its final
    assert {t.role for t in conversation.turns} >= {Role.CUSTOMER, Role.AGENT}
    stamps = [parse_turn_event(e).ts for e in events(name)]
    assert stamps == sorted(stamps), "turn times go backwards"


@pytest.mark.parametrize("name", DEMO_FILES)
def test_partial_turns_are_followed_by_their_final(name: str) -> None:
    open_partial: str | None = None
    for event in events(name):
        if open_partial is not None:
            assert event["turn_id"] == open_partial, f"partial {open_partial} was never finished"
        open_partial = None if event.get("is_final", True) else event["turn_id"]
    assert open_partial is None


@pytest.mark.parametrize("name", DEMO_FILES)
def test_no_card_number_survives_replay(name: str) -> None:
    for turn in replay(name).turns:
        for run in _DIGIT_RUN.findall(turn.text):
            digits = re.sub(r"\D", "", run)
            assert not luhn_valid(digits), f"{turn.turn_id} still shows a card number"


def test_the_card_demos_redact_the_number_the_customer_reads_out() -> None:
    conversation = replay("06-card-readback.jsonl")
    card_turns = [t for t in conversation.turns if "[CARD" in t.text]
    # The customer reads it out and the agent reads it back: both must be hidden.
    assert {t.role for t in card_turns} == {Role.CUSTOMER, Role.AGENT}
    assert any("[CVV]" in t.text for t in conversation.turns)


@pytest.mark.parametrize("name", DEMO_FILES)
def test_annotation_has_the_documented_shape(name: str) -> None:
    note = expected()[name]
    assert REQUIRED_KEYS <= set(note) <= REQUIRED_KEYS | OPTIONAL_KEYS
    assert note["channel"] in {"chat", "phone"}
    assert note["title"].strip() and note["customer"].strip()
    assert note["articles"], "name at least one useful article"
    assert note.get("routing_layer", "ai_assisted") in LAYERS
    assert set(note["ledger"].values()) <= LEDGER_STATUSES


@pytest.mark.parametrize("name", DEMO_FILES)
def test_annotated_articles_are_live_on_the_day_of_the_conversation(name: str) -> None:
    day = max(parse_turn_event(e).ts for e in events(name)).date()
    for article_id in expected()[name]["articles"]:
        loaded = articles().get(article_id)
        assert loaded is not None, f"{article_id} is not in knowledge/articles"
        assert loaded.article.is_live(day), f"{article_id} is not published or expired on {day}"


@pytest.mark.parametrize("name", DEMO_FILES)
def test_annotated_policy_rules_exist(name: str) -> None:
    note = expected()[name]
    rules = policy_rules()
    unknown = set(note["policy_findings"]) - set(rules)
    assert not unknown, f"unknown policy rule ids: {sorted(unknown)}"
    for rule_id in note["ledger"]:
        # Only steps and escalations have a ledger status.
        assert rules.get(rule_id) in {"required_step", "escalation"}, rule_id


@pytest.mark.parametrize("name", DEMO_FILES)
def test_annotated_flag_kinds_exist(name: str) -> None:
    note = expected()[name]
    unknown = (set(note["flags"]) | set(note["absent_flags"])) - flag_kinds()
    assert not unknown, f"unknown flag kinds: {sorted(unknown)}"
    assert not set(note["flags"]) & set(note["absent_flags"])


@pytest.mark.parametrize("name", DEMO_FILES)
def test_annotated_intents_exist(name: str) -> None:
    path = PACK / "intents.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    ids = {str(item["id"]) for item in data["intents"]}
    note = expected()[name]
    unknown = ({note["intent"]} | set(note["intent_alternatives"])) - ids
    assert not unknown, f"unknown intent ids: {sorted(unknown)}"
    assert note["intent"] not in note["intent_alternatives"]
