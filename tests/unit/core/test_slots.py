"""Slot values taken from a conversation, and templates filled with them (never invented)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copilot.core.conversation import Conversation, parse_turn_event
from copilot.core.slots import (
    SLOT_NAMES,
    extract_slots,
    fill_template,
    placeholder,
    template_slots,
)


@dataclass(frozen=True)
class T:
    turn_id: str
    role: str
    text: str


def slots_of(*turns: tuple[str, str]) -> dict[str, str]:
    return extract_slots([T(str(i), role, text) for i, (role, text) in enumerate(turns)]).as_dict()


# --- customer and agent names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Hi, my name is Sarah Jones and I've been charged twice", "Sarah"),
        ("my name's sarah, I need help with my bill", "Sarah"),
        ("Hello, this is Mrs Okafor, calling about my broadband", "Mrs Okafor"),
        ("Dave here. My order hasn't come", "Dave"),
        ("I'm Priyanka Shah, calling about a refund", "Priyanka"),
    ],
)
def test_customer_name_from_the_customer_introducing_themselves(text: str, name: str) -> None:
    assert slots_of(("customer", text)).get("customer_name") == name


@pytest.mark.parametrize(
    "text",
    [
        "This is the 3rd time I've called about this",
        "my name is on the account but my wife pays the bill",
        "I'm Not happy with this at all.",
        "It's Tuesday and still nothing",
        "I'm Really fed up.",
    ],
)
def test_ordinary_sentences_are_not_taken_for_names(text: str) -> None:
    assert "customer_name" not in slots_of(("customer", text))


def test_the_agents_way_of_addressing_the_customer_wins() -> None:
    found = slots_of(
        ("customer", "Hi, my name is Rajesh Patel"),
        ("agent", "Thanks, Mr Patel. Let me check that for you."),
    )
    assert found["customer_name"] == "Mr Patel"


@pytest.mark.parametrize(
    "text",
    [
        "Hi Sarah, thanks for waiting.",
        "Thanks, Sarah. I've found it.",
        "I'm sorry to hear that, Sarah.",
    ],
)
def test_agent_greeting_names_the_customer(text: str) -> None:
    assert slots_of(("agent", text))["customer_name"] == "Sarah"


def test_agent_name_from_the_agents_introduction_not_the_customers_words() -> None:
    found = slots_of(
        ("agent", "Thanks for calling Kestrel Connect, you're speaking to Priya."),
        ("customer", "I spoke to Tom yesterday and he said it was fixed"),
    )
    assert found["agent_name"] == "Priya"
    assert found.get("customer_name") is None


# --- numbers, amounts, dates, references, products ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "order"),
    [
        ("my order KS-10482275 hasn't arrived", "KS-10482275"),
        ("order ks10482275 please", "KS-10482275"),
        ("the order number is 10482275", "KS-10482275"),
    ],
)
def test_order_number(text: str, order: str) -> None:
    assert slots_of(("customer", text))["order_number"] == order


@pytest.mark.parametrize(
    ("text", "account"),
    [
        ("my account number is 7204118833", "7204118833"),
        ("it's account 7204 118 833", "7204118833"),
        ("account KC40118273", "KC40118273"),
    ],
)
def test_account_number(text: str, account: str) -> None:
    assert slots_of(("customer", text))["account_number"] == account


def test_a_bank_account_number_is_not_the_kestrel_account() -> None:
    assert "account_number" not in slots_of(("customer", "my bank account 12345678 was charged"))


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("I was charged £12.50 twice", "£12.50"),
        ("they took 40 pounds", "£40"),
        ("that's 15 quid for nothing", "£15"),
        ("a bill of £1,200.00!", "£1,200.00"),
        ("charged £38, then £38 again", "£38"),
    ],
)
def test_amounts(text: str, amount: str) -> None:
    assert slots_of(("customer", text))["amount"] == amount


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("it was taken yesterday", "yesterday"),
        ("both came out on the 3rd", "the 3rd"),
        ("the payment on 3 March", "3 March"),
        ("it was due last Tuesday", "last Tuesday"),
        ("I ordered it two days ago", "two days ago"),
        ("my bill from March 3rd, 2026", "March 3rd, 2026"),
    ],
)
def test_dates_keep_the_customers_words(text: str, date: str) -> None:
    assert slots_of(("customer", text))["date"] == date


def test_the_third_time_is_not_a_date() -> None:
    assert "date" not in slots_of(("customer", "this is the 3rd time I've called"))


def test_references_by_kind() -> None:
    found = slots_of(("agent", "Your complaint is CMP-418207 and the data request DPR-302918."))
    assert found["complaint_reference"] == "CMP-418207"
    assert found["privacy_reference"] == "DPR-302918"
    assert found["reference"] == "DPR-302918"  # the most recent of any kind


@pytest.mark.parametrize(
    ("text", "product"),
    [
        ("I'm on Fibre 500", "Fibre 500"),
        ("the light on my hub 3 is red", "Kestrel Hub 3"),
        ("my doorbell stopped ringing", "Kestrel Doorbell"),
        ("the camera keeps going offline", "Kestrel Cam"),
        ("I want to cancel Kestrel Protect", "Kestrel Protect"),
    ],
)
def test_products(text: str, product: str) -> None:
    assert slots_of(("customer", text))["product"] == product


def test_the_most_recent_mention_wins() -> None:
    found = slots_of(
        ("customer", "order KS-11111111 came, but KS-22222222 didn't"),
        ("customer", "sorry, I mean KS-33333333"),
    )
    assert found["order_number"] == "KS-33333333"


def test_the_customers_own_words_win_over_the_agents_for_what_they_talk_about() -> None:
    found = slots_of(
        ("customer", "I was charged £38 twice"),
        ("agent", "Your normal bill is £28 a month, let me check."),
    )
    assert found["amount"] == "£38"


def test_redaction_placeholders_are_not_slot_values() -> None:
    conversation = Conversation()
    for i, text in enumerate(
        ["my card is 4111 1111 1111 1111 and the code is 123", "call me on 07700 900123"]
    ):
        event = {"conversation_id": "c", "turn_id": str(i), "role": "customer", "text": text}
        conversation = conversation.apply(parse_turn_event(event))
    assert "CARD" in conversation.turns[0].text  # redacted on arrival
    assert extract_slots(conversation.turns).as_dict() == {}


def test_system_turns_are_ignored() -> None:
    assert slots_of(("system", "order KS-10482275 synced, customer Sarah")) == {}


# --- filling ------------------------------------------------------------------------------------


def test_unfillable_slots_stay_visible_placeholders_and_are_reported() -> None:
    values = extract_slots([T("1", "customer", "my account number is 7204118833")])
    filled = fill_template("Hi {customer_name}, order {order_number} is on its way.", values)
    assert filled.text == "Hi [customer name], order [order number] is on its way."
    assert filled.missing == ("customer_name", "order_number")
    # the account number the customer gave is not passed off as an order number
    assert "7204118833" not in filled.text


def test_filled_slots_are_inserted_once_each() -> None:
    filled = fill_template(
        "{amount} now, {amount} later, from {date}", {"amount": "£5", "date": "yesterday"}
    )
    assert filled.text == "£5 now, £5 later, from yesterday"
    assert filled.missing == ()


def test_template_slots_in_order_and_stray_braces_rejected() -> None:
    assert template_slots("Hi {customer_name}, {amount} and {customer_name}") == (
        "customer_name",
        "amount",
    )
    with pytest.raises(ValueError, match="unbalanced"):
        template_slots("Your order {order_number is late")


def test_placeholder_labels_are_readable() -> None:
    assert placeholder("order_number") == "[order number]"
    assert placeholder("privacy_reference") == "[DPR reference]"


@given(
    known=st.dictionaries(
        st.sampled_from(sorted(SLOT_NAMES)),
        st.text(alphabet="abcdefghij £0123456789", min_size=1, max_size=12),
    ),
    used=st.lists(st.sampled_from(sorted(SLOT_NAMES)), min_size=1, max_size=6),
)
def test_filling_never_invents_a_value(known: dict[str, str], used: list[str]) -> None:
    text = " / ".join("{" + name + "}" for name in used)
    filled = fill_template(text, known)
    assert "{" not in filled.text
    assert set(filled.missing) == {name for name in used if not known.get(name)}
    for name in used:
        expected = known[name] if known.get(name) else placeholder(name)
        assert expected in filled.text
