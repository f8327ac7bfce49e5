"""Feedback actions: validated on creation, edit distance, and only redacted text leaves."""

from __future__ import annotations

import datetime as dt

import pytest

from copilot.core.feedback import (
    DISCARD_REASON_LABELS,
    DiscardReason,
    FeedbackAction,
    FeedbackKind,
    edit_distance,
    outgoing_text,
)

CARD = "4111 1111 1111 1111"


def _accept(**fields: object) -> FeedbackAction:
    values: dict[str, object] = {
        "kind": "accept",
        "conversation_id": "c1",
        "turn_id": "t3",
        "item_id": "billing.double_charge_check",
        "suggestion_id": "billing.double_charge_check",
        "suggestion_kind": "template",
        "rank": 1,
        "shown_text": "I can see two payments.",
        "sent_text": "I can see two payments.",
        "edit_distance": 0,
    }
    values.update(fields)
    return FeedbackAction(**values)  # type: ignore[arg-type]


def test_kind_and_reason_strings_become_enums() -> None:
    action = _accept(kind="discard", sent_text=None, edit_distance=None, reason="wrong_tone")
    assert action.kind is FeedbackKind.DISCARD
    assert action.reason is DiscardReason.WRONG_TONE
    assert action.ts.tzinfo is not None
    assert action.to_dict()["reason"] == "wrong_tone"
    assert action.to_dict()["kind"] == "discard"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "liked"}, "liked"),
        ({"conversation_id": ""}, "conversation_id"),
        ({"suggestion_id": None}, "suggestion_id"),
        ({"sent_text": None}, "sent_text"),
        ({"reason": "wrong_topic"}, "only a discard"),
        ({"rank": 0}, "1-based"),
        ({"ts": dt.datetime(2026, 1, 1)}, "timezone"),
        ({"kind": "flag_wrong", "flag_kind": None}, "flag_kind"),
        ({"kind": "intent_corrected"}, "corrected_intent"),
    ],
)
def test_invalid_actions_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _accept(**fields)


def test_discard_reasons_have_one_click_labels_in_order() -> None:
    assert list(DISCARD_REASON_LABELS) == list(DiscardReason)
    assert list(DISCARD_REASON_LABELS.values()) == [
        "Wrong topic",
        "Wrong tone",
        "Outdated",
        "Policy",
        "Other",
    ]


def test_edit_distance_is_levenshtein() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("same", "same") == 0
    assert edit_distance("", "abc") == 3


def test_outgoing_text_redacts_what_the_agent_typed() -> None:
    text = outgoing_text(f"Your card {CARD} is on file; email me at tom@example.com")
    assert "4111" not in text
    assert "tom@example.com" not in text
    assert "[CARD •••• 1111]" in text


def test_outgoing_text_keeps_existing_placeholders_and_plain_words() -> None:
    already = "So that's [CARD •••• 7149], refund of £52.00 on the 4th, ref BR-318842."
    assert outgoing_text(already) == already
