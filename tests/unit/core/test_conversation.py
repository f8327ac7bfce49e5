"""Turn events and conversations: validation, partial turns, idempotency, redaction on arrival."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from copilot.core.conversation import (
    Conversation,
    Role,
    Turn,
    TurnEventError,
    parse_turn_event,
)
from copilot.core.redaction import PiiType


def event(turn_id: str, role: str, text: str, *, final: bool = True, **extra: Any) -> Turn:
    return parse_turn_event(
        {
            "conversation_id": "c1",
            "turn_id": turn_id,
            "role": role,
            "text": text,
            "is_final": final,
            "ts": "2024-05-01T10:00:00Z",
            **extra,
        }
    )


def play(*turns: Turn) -> Conversation:
    conversation = Conversation()
    for turn in turns:
        conversation = conversation.apply(turn)
    return conversation


def texts(conversation: Conversation) -> list[str]:
    return [t.text for t in conversation.turns]


# -- parsing ------------------------------------------------------------------------------------


def test_parse_a_complete_event() -> None:
    turn = parse_turn_event(
        {
            "conversation_id": "c1",
            "turn_id": "t1",
            "role": "Customer",
            "text": "hello",
            "ts": "2024-05-01T11:00:00+01:00",
            "is_final": False,
            "source": "ignored",
        }
    )
    assert turn.role is Role.CUSTOMER
    assert turn.ts == dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
    assert turn.is_final is False
    assert turn.redactions == ()


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1714557600, dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)),
        (1714557600.5, dt.datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=dt.UTC)),
        ("2024-05-01T10:00:00", dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)),
        ("2024-05-01T10:00:00Z", dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)),
    ],
)
def test_timestamps_become_utc(ts: object, expected: dt.datetime) -> None:
    turn = parse_turn_event(
        {"conversation_id": "c", "turn_id": "t", "role": "agent", "text": "", "ts": ts}
    )
    assert turn.ts == expected
    assert turn.ts.tzinfo is dt.UTC


def test_missing_timestamp_is_now_and_missing_is_final_is_true() -> None:
    before = dt.datetime.now(dt.UTC)
    turn = parse_turn_event({"conversation_id": "c", "turn_id": "t", "role": "agent", "text": "x"})
    assert before <= turn.ts <= dt.datetime.now(dt.UTC)
    assert turn.is_final is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"role": "bot"}, "role: must be one of customer, agent, system"),
        ({"role": None}, "role: must be one of customer, agent, system"),
        ({"text": 5}, "text: must be a string of at most 10000 characters"),
        ({"text": "x" * 10_001}, "text: must be a string of at most 10000 characters"),
        ({"turn_id": ""}, "turn_id: must not be empty"),
        ({"turn_id": None}, "turn_id: is required"),
        ({"conversation_id": ["a"]}, "conversation_id: must be a string"),
        ({"ts": "yesterday"}, "ts: must be an ISO-8601 string or epoch seconds"),
        ({"ts": True}, "ts: must be an ISO-8601 string or epoch seconds"),
        ({"ts": -5}, "ts: epoch seconds out of range"),
        ({"is_final": "yes"}, "is_final: must be true or false"),
    ],
)
def test_invalid_events_name_the_field(change: dict[str, Any], message: str) -> None:
    obj: dict[str, Any] = {"conversation_id": "c", "turn_id": "t", "role": "agent", "text": "x"}
    obj.update(change)
    with pytest.raises(TurnEventError) as info:
        parse_turn_event(obj)
    assert str(info.value) == message
    assert info.value.field == message.split(":")[0]
    assert isinstance(info.value, ValueError)


def test_not_an_object() -> None:
    with pytest.raises(TurnEventError, match="event: must be a JSON object"):
        parse_turn_event(["not", "a", "dict"])  # type: ignore[arg-type]


def test_parsing_is_fast() -> None:
    obj = {
        "conversation_id": "c1",
        "turn_id": "t1",
        "role": "customer",
        "text": "hello there",
        "ts": "2024-05-01T10:00:00Z",
    }
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        parse_turn_event(obj)
    # goal 20 µs per event; the bound is loose for busy test machines
    assert (time.perf_counter() - started) / runs < 200e-6


# -- final and partial turns --------------------------------------------------------------------


def test_final_turns_are_kept_in_arrival_order() -> None:
    conversation = play(
        event("b", "customer", "first"), event("a", "agent", "second"), event("c", "system", "x")
    )
    assert [t.turn_id for t in conversation.turns] == ["b", "a", "c"]
    assert conversation.conversation_id == "c1"
    assert len(conversation.turns) == 3


def test_apply_returns_a_new_conversation_and_leaves_the_old_one() -> None:
    empty = Conversation()
    one = empty.apply(event("t1", "customer", "hi"))
    assert empty.turns == ()
    assert texts(one) == ["hi"]


def test_partial_turns_are_pending_then_replaced_then_finalised_once() -> None:
    conversation = play(
        event("t1", "customer", "I want", final=False),
        event("t1", "customer", "I want to cancel", final=False),
    )
    assert conversation.turns == ()
    assert [p.text for p in conversation.pending] == ["I want to cancel"]
    conversation = conversation.apply(event("t1", "customer", "I want to cancel my plan"))
    assert conversation.pending == ()
    assert texts(conversation) == ["I want to cancel my plan"]
    # a late partial of a finished turn changes nothing
    late = conversation.apply(event("t1", "customer", "I want", final=False))
    assert late is conversation


def test_repeated_final_event_is_ignored_and_a_correction_replaces_in_place() -> None:
    conversation = play(event("t1", "customer", "hello"), event("t2", "agent", "hi there"))
    assert conversation.apply(event("t1", "customer", "hello")) is conversation
    corrected = conversation.apply(event("t1", "customer", "hello, it's about my bill"))
    assert texts(corrected) == ["hello, it's about my bill", "hi there"]


def test_turn_from_another_conversation_is_refused() -> None:
    conversation = play(event("t1", "customer", "hello"))
    other = parse_turn_event(
        {"conversation_id": "c2", "turn_id": "t9", "role": "agent", "text": "x"}
    )
    with pytest.raises(ValueError, match="belongs to conversation 'c2'"):
        conversation.apply(other)


# -- redaction on arrival -----------------------------------------------------------------------


def test_partial_turns_are_redacted_before_they_are_held() -> None:
    conversation = play(event("t1", "customer", "card 4111 1111 1111 1111", final=False))
    assert conversation.pending[0].text == "card [CARD •••• 1111]"
    assert "4111" not in repr(conversation)


def test_final_turns_keep_redacted_text_and_the_replaced_spans() -> None:
    conversation = play(event("t1", "customer", "email me at jane@example.com"))
    (turn,) = conversation.turns
    assert turn.text == "email me at [EMAIL]"
    (span,) = turn.redactions
    assert (span.type, span.start, span.end) == (PiiType.EMAIL, 12, 28)


def test_repeated_sensitive_final_is_recognised_without_keeping_the_original() -> None:
    first = event("t1", "customer", "my pin is 1234")
    conversation = play(first)
    assert conversation.apply(first) is conversation
    assert "1234" not in repr(conversation)


def test_card_read_over_two_customer_turns_with_the_agent_in_between() -> None:
    conversation = play(
        event("t1", "customer", "ok it's 4111 1111"),
        event("t2", "agent", "mm-hm, go on"),
        event("t3", "customer", "1111 1111"),
    )
    assert texts(conversation) == ["ok it's [CARD]", "mm-hm, go on", "[CARD •••• 1111]"]
    first = conversation.turns[0]
    assert [(r.type, r.start, r.end) for r in first.redactions] == [(PiiType.CARD, 8, 17)]


def test_card_read_four_digits_per_turn() -> None:
    conversation = play(
        *(event(f"t{i}", "customer", "4111" if i == 0 else "1111") for i in range(4))
    )
    assert texts(conversation) == ["[CARD]", "[CARD]", "[CARD]", "[CARD •••• 1111]"]


def test_partial_continuation_hides_the_earlier_turn_at_once_and_final_changes_nothing() -> None:
    conversation = play(
        event("t1", "customer", "four one one one one one one one"),
        event("t2", "customer", "one one one one one", final=False),
    )
    # 13 digits so far: enough for a card, so the first half is hidden before the turn ends
    assert texts(conversation) == ["[CARD]"]
    assert conversation.pending[0].text == "[CARD •••• 1111]"
    conversation = conversation.apply(event("t2", "customer", "one one one one one one one one"))
    assert texts(conversation) == ["[CARD]", "[CARD •••• 1111]"]
    assert len(conversation.turns[0].redactions) == 1


def test_correction_of_a_card_fragment_keeps_it_hidden() -> None:
    conversation = play(event("t1", "customer", "4111 1111"), event("t2", "customer", "1111 1111"))
    corrected = conversation.apply(event("t1", "customer", "4111 1112 1111"))
    assert "4111" not in corrected.turns[0].text


def test_agent_turns_are_redacted_but_never_join_a_customer_card() -> None:
    conversation = play(
        event("t1", "agent", "so that's 4111 1111 1111 1111?"),
        event("t2", "customer", "4111 1111"),
        event("t3", "agent", "and the three digits on the back?"),
        event("t4", "customer", "737"),
    )
    assert texts(conversation) == [
        "so that's [CARD •••• 1111]?",
        "4111 1111",
        "and the three digits on the back?",
        "[CVV]",
    ]


def test_a_card_read_after_talk_about_it_leaves_the_talk_alone() -> None:
    conversation = play(
        event("t1", "customer", "I've got a new card. Can I pay with the new one?"),
        event("t2", "agent", "Go ahead with the long number on the front."),
        event("t3", "customer", "OK, it's 4929 3810 5562 7149."),
        event("t4", "agent", "And the date of birth and PIN?"),
        event("t5", "customer", "Fifth of May 1979, and the PIN's 2208."),
    )
    assert texts(conversation)[0] == "I've got a new card. Can I pay with the new one?"
    assert texts(conversation)[2] == "OK, it's [CARD •••• 7149]."
    assert texts(conversation)[4] == "Fifth of May 1979, and the PIN's [PASSWORD]."


def test_numbers_in_ordinary_turns_are_kept() -> None:
    conversation = play(
        event("t1", "customer", "I've been a customer since 2015"),
        event("t2", "customer", "2 weeks without internet on Fibre 500"),
    )
    assert texts(conversation) == [
        "I've been a customer since 2015",
        "2 weeks without internet on Fibre 500",
    ]


# -- reading ------------------------------------------------------------------------------------


def test_reading_helpers() -> None:
    conversation = play(
        event("1", "customer", "a"),
        event("2", "agent", "b"),
        event("3", "customer", "c"),
        event("4", "agent", "d"),
        event("5", "customer", "e"),
    )
    assert [t.text for t in conversation.customer_turns()] == ["a", "c", "e"]
    assert [t.text for t in conversation.last(2)] == ["d", "e"]
    assert [t.text for t in conversation.last(2, role=Role.AGENT)] == ["b", "d"]
    assert [t.text for t in conversation.last(10, role="customer")] == ["a", "c", "e"]
    assert conversation.last(0) == ()
    assert conversation.text_window(3) == "c\nd\ne"
    assert conversation.text_window(2, role="customer") == "c\ne"
    assert conversation.turn("3") is not None and conversation.turn("3").text == "c"
    assert conversation.turn("nope") is None
