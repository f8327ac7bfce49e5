"""The live summary: issue, goal, facts, tried, promises, open items, next step, redaction."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import pytest

from copilot.core.conversation import Conversation, Turn, parse_turn_event
from copilot.core.summary import Fact, Summary, extract_facts, summarise, third_person

START = dt.datetime(2026, 10, 15, 10, 0, tzinfo=dt.UTC)
CARD = "4111 1111 1111 1111"


def converse(*turns: tuple[str, str]) -> tuple[Turn, ...]:
    """The turns after arriving through the real conversation model (so redacted)."""
    conversation = Conversation()
    for i, (role, text) in enumerate(turns, start=1):
        event = {
            "conversation_id": "c1",
            "turn_id": f"t{i}",
            "role": role,
            "text": text,
            "ts": (START + dt.timedelta(seconds=30 * i)).isoformat(),
        }
        conversation = conversation.apply(parse_turn_event(event))
    return conversation.turns


@dataclass(frozen=True)
class Evidence:
    turn_id: str
    quote: str


@dataclass(frozen=True)
class Flag:
    kind: str
    level: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Step:
    title: str
    status: str


@dataclass(frozen=True)
class Hit:
    article_id: str
    title: str


def facts_of(summary: Summary, kind: str) -> list[str]:
    return [f.value for f in summary.key_facts if f.kind == kind]


DOUBLE_CHARGE = (
    ("customer", "Hi there"),
    ("agent", "Hello, you're chatting with Priya. How can I help today?"),
    (
        "customer",
        "I've been charged twice for my broadband bill this month. £38 went out on the 7th"
        " and another £38 on the 9th.",
    ),
    ("agent", "Sorry about that. Can I take your full name and postcode please?"),
    ("customer", "Daniel Hughes, LS6 2QT"),
    ("agent", "Thanks Daniel. Could you confirm your date of birth and the account PIN?"),
    ("customer", "14 March 1986, PIN is 4471"),
    ("agent", "Thank you, you're verified. I can see your Fibre 500 bill was collected twice."),
    ("customer", "Right, so can you refund the second one? I need that money back by Friday."),
    (
        "agent",
        "Yes. I've raised a duplicate payment case with our Billing Resolutions team."
        " You'll receive an email with the case details within the hour.",
    ),
)


# -- issue and goal ------------------------------------------------------------------------------


def test_issue_comes_from_the_first_substantive_customer_turn_not_the_greeting() -> None:
    summary = summarise(converse(*DOUBLE_CHARGE))
    assert summary.issue.startswith("The customer has been charged twice for their broadband")
    assert "Hi there" not in summary.issue
    assert "Daniel Hughes" not in summary.issue  # an IDV answer is not the issue


def test_issue_strips_a_greeting_inside_the_first_turn() -> None:
    summary = summarise(converse(("customer", "Hello, my order still hasn't arrived.")))
    assert summary.issue == "The customer's order still hasn't arrived"


def test_goal_from_can_you_and_need_sentences() -> None:
    summary = summarise(converse(*DOUBLE_CHARGE))
    assert "Wants Kestrel to refund the second one" in summary.goal
    assert "Needs that money back by Friday" in summary.goal


@pytest.mark.parametrize(
    ("text", "goal"),
    [
        ("I'd like to cancel my broadband please.", "Wants to cancel their broadband"),
        ("I want a refund for the charge.", "Wants a refund for the charge"),
        ("Can I stay on the old price?", "Wants to stay on the old price"),
        ("I need to change my Direct Debit date.", "Needs to change their Direct Debit date"),
    ],
)
def test_goal_phrases(text: str, goal: str) -> None:
    assert summarise(converse(("customer", text))).goal == goal


def test_a_yes_no_question_is_not_a_goal() -> None:
    summary = summarise(converse(("customer", "Do I need a new router?")))
    assert summary.goal == ""
    assert summary.open_items == ("Question: “Do I need a new router?”",)


def test_goal_falls_back_to_the_intent_name() -> None:
    summary = summarise(converse(("customer", "Broadband down again.")), intent_name="Outage")
    assert summary.goal == "Wants help with: outage"


# -- key facts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("My order KS-40211873 hasn't come", "order", "KS-40211873"),
        ("the account is KC40917726", "account", "KC40917726"),
        ("my complaint reference is CMP-418207", "reference", "CMP-418207"),
        ("the privacy one was DPR-302918", "reference", "DPR-302918"),
        ("I was charged £38.50 twice", "amount", "£38.50"),
        ("it was taken on 3 March", "date", "3 March"),
        ("I'm on Fibre 500", "product", "Fibre 500"),
        ("the Hub 3 light is red", "product", "Kestrel Hub 3"),
        ("my Kestrel Cam is offline", "product", "Kestrel Cam"),
        ("my name is Sarah Jones", "name", "Sarah"),
    ],
)
def test_each_fact_kind(text: str, kind: str, value: str) -> None:
    facts = extract_facts(text, "t1")
    assert Fact(kind, value, "t1") in facts


def test_dates_of_birth_card_expiry_and_today_are_not_facts() -> None:
    assert extract_facts("born 14 March 1986, expiry 09/28, I need it today", "t1") == ()


def test_full_name_from_an_idv_answer_merged_with_the_first_name_the_agent_uses() -> None:
    summary = summarise(converse(*DOUBLE_CHARGE))
    assert facts_of(summary, "name") == ["Daniel Hughes"]
    assert facts_of(summary, "amount") == ["£38"]  # once, though said twice
    assert "14 March 1986" not in summary.facts_text(limit=50)  # a date of birth


def test_facts_keep_the_turn_that_first_mentioned_them() -> None:
    summary = summarise(converse(*DOUBLE_CHARGE))
    by_value = {f.value: f.turn_id for f in summary.key_facts}
    assert by_value["£38"] == "t3"
    assert by_value["Fibre 500"] == "t8"


# -- tried and done ------------------------------------------------------------------------------


def test_things_tried_by_customer_and_done_by_agent() -> None:
    summary = summarise(
        converse(
            ("customer", "My broadband keeps dropping. I've already restarted the router twice."),
            ("agent", "Thanks. I've reset your line and I've pushed a firmware update."),
        )
    )
    assert "Customer restarted the router twice" in summary.tried
    assert "Agent reset the customer's line" in summary.tried
    assert "Agent pushed a firmware update" in summary.tried


def test_an_action_inside_another_clause_is_not_an_action() -> None:
    summary = summarise(
        converse(("agent", "Please read me the one-time code I've just sent to your mobile."))
    )
    assert summary.tried == ()


def test_retention_offers_and_the_customers_answer() -> None:
    summary = summarise(
        converse(
            ("customer", "I'd like to cancel, it's too expensive."),
            ("agent", "I can offer you 20% off for 12 months. Would that help?"),
            ("customer", "No thanks, I just want to cancel."),
        )
    )
    assert "Agent offered 20% off for 12 months; customer declined" in summary.tried


# -- promises ------------------------------------------------------------------------------------


def test_promises_made_by_the_agent() -> None:
    summary = summarise(
        converse(
            ("customer", "My internet keeps dropping out."),
            (
                "agent",
                "I'll call you back tomorrow to check it's stable. You'll receive a text"
                " when the engineer is booked. The £9.33 will be credited to your next bill.",
            ),
        )
    )
    texts = [p.text for p in summary.promises]
    assert "Agent will call the customer back tomorrow to check it's stable" in texts
    assert "The customer will receive a text when the engineer is booked" in texts
    assert "The £9.33 will be credited to the customer's next bill" in texts
    assert all(p.turn_id == "t2" for p in summary.promises)


def test_what_the_agent_does_right_now_is_not_a_promise() -> None:
    summary = summarise(
        converse(("agent", "I'll take your name and postcode first. Let me check that."))
    )
    assert summary.promises == ()


def test_a_promise_kept_later_in_the_conversation_is_no_longer_open() -> None:
    turns = converse(
        ("customer", "I want to make a complaint about the engineer."),
        ("agent", "I'm sorry. I'll log a complaint for you today."),
        ("agent", "I've logged the complaint, your reference is CMP-551204."),
    )
    assert any(o.startswith("Promise: Agent will log") for o in summarise(turns[:2]).open_items)
    after = summarise(turns)
    assert not any(o.startswith("Promise: ") for o in after.open_items)
    assert [p.text for p in after.promises] == ["Agent will log a complaint for the customer today"]


# -- open items and next step --------------------------------------------------------------------


def test_unanswered_question_is_open_until_the_agent_answers() -> None:
    turns = converse(
        ("customer", "My parcel never came. When will it arrive?"),
        ("agent", "Let me check."),
        ("agent", "It is with ParcelSwift and due on Friday."),
    )
    # A holding reply does not answer the question.
    assert summarise(turns[:2]).open_items == ("Question: “When will it arrive?”",)
    assert summarise(turns[:2]).next_step.startswith("Answer the customer's question")
    assert summarise(turns).open_items == ()


def test_pending_and_missed_policy_steps_are_open_items() -> None:
    ledger = (
        Step("Verify identity", "pending"),
        Step("Give the recording disclosure", "missed"),
        Step("Log a complaint", "done"),
    )
    summary = summarise(converse(*DOUBLE_CHARGE[:3]), policy_ledger=ledger)
    assert "Policy step pending: Verify identity" in summary.open_items
    assert "Policy step missed: Give the recording disclosure" in summary.open_items
    assert not any("Log a complaint" in o for o in summary.open_items)


def test_next_step_verify_identity_before_discussing_the_bill() -> None:
    summary = summarise(
        converse(*DOUBLE_CHARGE[:3]),
        intent="billing_double_charge",
        policy_ledger=(Step("Verify identity", "pending"),),
    )
    assert summary.next_step == "Verify identity before discussing the bill"


def test_next_step_missed_step_comes_before_pending_ones() -> None:
    summary = summarise(
        converse(*DOUBLE_CHARGE[:3]),
        policy_ledger=(Step("Verify identity", "pending"), Step("Give the disclosure", "missed")),
    )
    assert summary.next_step == "Give the disclosure"


def test_next_step_offers_a_supervisor_after_a_legal_threat_until_one_is_arranged() -> None:
    threat = Flag("legal_threat", "high", (Evidence("t1", "small claims court"),))
    turns = converse(
        ("customer", "Sort this today or I'm taking you to the small claims court."),
        ("agent", "I'll arrange a callback from my team leader within 4 working hours."),
    )
    first = summarise(turns[:1], flags=(threat,))
    assert (
        first.next_step == "Offer a supervisor callback within 4 working hours or a warm transfer"
    )
    assert "supervisor" not in summarise(turns, flags=(threat,)).next_step


def test_next_step_for_bereavement_and_distress() -> None:
    turns = converse(("customer", "My husband died last week and the bill came in his name."))
    bereaved = summarise(turns, flags=(Flag("bereavement", "high"),))
    assert "Bereavement Team" in bereaved.next_step
    distressed = summarise(turns, flags=(Flag("distress", "critical"),))
    assert distressed.next_step.startswith("Follow the CARE protocol")


def test_next_step_from_the_intent_early_in_the_contact_cites_the_top_article() -> None:
    summary = summarise(
        converse(("customer", "I've been charged twice this month.")),
        intent="billing_double_charge",
        hits=(Hit("KB-BIL-001", "Double charge on a card or Direct Debit payment"),),
    )
    assert "duplicate-payment case" in summary.next_step
    assert summary.next_step.endswith("(see KB-BIL-001)")


def test_next_step_when_all_is_done() -> None:
    summary = summarise(converse(("customer", "Thanks, that's all."), ("agent", "Bye now.")))
    assert summary.next_step == "Confirm nothing else is needed, then complete the wrap-up"
    assert summarise(()).next_step == "Greet the customer and ask how you can help"


def test_sentiment_names_the_trend_and_the_strongest_flags() -> None:
    flags = (Flag("frustration", "medium"), Flag("legal_threat", "high"))
    summary = summarise(converse(("customer", "Awful.")), flags=flags, sentiment_trend="worsening")
    assert summary.sentiment == "worsening; legal threat (high), frustration (medium)"
    assert summarise(converse(("customer", "Hello"))).sentiment == "not assessed"


def test_flags_with_enum_kinds_and_levels_are_read_by_value() -> None:
    from enum import Enum

    class Kind(Enum):
        BEREAVEMENT = "bereavement"

    class Level(Enum):
        HIGH = "high"

    flag = Flag(Kind.BEREAVEMENT, Level.HIGH)  # type: ignore[arg-type]
    summary = summarise(converse(("customer", "My mum passed away.")), flags=(flag,))
    assert summary.sentiment == "bereavement (high)"
    assert "Bereavement Team" in summary.next_step


# -- as the conversation grows -------------------------------------------------------------------


def test_summary_updates_as_turns_arrive() -> None:
    turns = converse(*DOUBLE_CHARGE)
    early = summarise(turns[:3])
    assert early.issue.startswith("The customer has been charged twice")
    assert facts_of(early, "name") == []
    assert early.promises == ()
    middle = summarise(turns[:8])
    assert middle.issue == early.issue  # the issue stays put once stated
    assert facts_of(middle, "name") == ["Daniel Hughes"]
    assert middle.verified == ("Identity verified (name and postcode, date of birth, PIN)",)
    late = summarise(turns)
    assert "Agent raised a duplicate payment case with the Billing Resolutions team" in late.tried
    assert [p.turn_id for p in late.promises] == ["t10"]
    assert late.as_of == turns[-1].ts


def test_as_text_has_three_to_six_lines_at_every_turn() -> None:
    turns = converse(*DOUBLE_CHARGE)
    for n in range(len(turns) + 1):
        lines = summarise(turns[:n]).as_text().splitlines()
        assert 3 <= len(lines) <= 6, lines
    text = summarise(turns).as_text()
    assert text.startswith("Issue: The customer has been charged twice")
    assert "Facts: Daniel Hughes · Fibre 500 · £38" in text
    assert "Promised: The customer will receive an email" in text


def test_no_text_from_an_unredacted_card_appears() -> None:
    turns = converse(
        ("customer", f"I want to pay my bill, my card is {CARD} and the security code is 737"),
        ("agent", f"Thanks, so that's {CARD}. I'll take the payment now."),
        ("customer", "Yes. I've already tried paying in the app with card 4111111111111111."),
    )
    summary = summarise(turns)
    everything = summary.as_text() + repr(summary.to_dict()) + repr(summary)
    for secret in (CARD, "4111111111111111", "1111 1111", "737"):
        assert secret not in everything
    assert "[CARD •••• 1111]" in summary.issue  # the placeholder, as redaction left it


# -- helpers and cost ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "role", "expected"),
    [
        ("I want my money back", "customer", "The customer wants their money back"),
        (
            "I was charged and I was annoyed",
            "customer",
            "The customer was charged and they were annoyed",
        ),
        ("you charged me twice", "customer", "Kestrel charged them twice"),
        ("I'll call you back", "agent", "The agent will call the customer back"),
        (
            "we'll reship it to your address",
            "agent",
            "Kestrel will reship it to the customer's address",
        ),
    ],
)
def test_third_person(text: str, role: str, expected: str) -> None:
    assert third_person(text, role) == expected


def test_sixty_turn_conversation_costs_under_two_ms_per_turn() -> None:
    # Unique texts so the per-turn memo cannot help more than it does live.
    pairs = []
    for i in range(30):
        pairs.append(
            ("customer", f"Order KS-{40000000 + i} for £{i}.50 still hasn't come, case {i}?")
        )
        pairs.append(
            ("agent", f"I've opened case {i} with ParcelSwift. I'll email you by Friday {i}.")
        )
    turns = converse(*pairs)
    started = time.thread_time()
    for n in range(1, len(turns) + 1):
        summarise(turns[:n], intent="delivery_late", sentiment_trend="steady")
    per_turn_ms = 1000 * (time.thread_time() - started) / len(turns)
    assert per_turn_ms < 2.0
