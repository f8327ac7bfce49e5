"""The handover packet (text and JSON) and the wrap-up note."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pytest

from copilot.core.conversation import Conversation, Role, Turn, parse_turn_event
from copilot.core.handover import HANDOVER_SCHEMA, due_date, handover, wrap_up
from copilot.core.summary import summarise

START = dt.datetime(2026, 10, 15, 10, 0, tzinfo=dt.UTC)  # a Thursday
CARD = "4111 1111 1111 1111"


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


def converse(*turns: tuple[str, str]) -> tuple[Turn, ...]:
    conversation = Conversation()
    for i, (role, text) in enumerate(turns, start=1):
        event = {
            "conversation_id": "conv-7",
            "turn_id": f"t{i}",
            "role": role,
            "text": text,
            "ts": (START + dt.timedelta(seconds=30 * i)).isoformat(),
        }
        conversation = conversation.apply(parse_turn_event(event))
    return conversation.turns


LEGAL = converse(
    (
        "customer",
        "You're still taking money after I cancelled in August. If it's not sorted today I'm"
        " taking you to the small claims court.",
    ),
    ("agent", "I'm sorry. Can I take your full name and postcode?"),
    ("customer", "Karen Doyle, M20 6HG."),
    ("agent", "Thanks Karen, and your date of birth and PIN please?"),
    ("customer", "21 April 1975, PIN 9023."),
    (
        "agent",
        "Thanks Karen, you're verified. I've stopped the Direct Debit and logged a complaint,"
        " reference CMP-620114.",
    ),
    ("customer", "I want to speak to a manager."),
    ("agent", "I'll arrange a callback from my team leader by 3pm today."),
)
THREAT = Flag("legal_threat", "high", (Evidence("t1", "taking you to the small claims court"),))
LEDGER = (Step("Verify identity", "done"), Step("Log a complaint", "done"))


def build(**kwargs: object) -> tuple[str, dict[str, object]]:
    summary = summarise(LEGAL, intent="complaint", flags=(THREAT,), policy_ledger=LEDGER)
    packet = handover(
        summary,
        intent="complaint",
        intent_name="Complaint",
        stakes="high",
        routing_layer="human_only",
        flags=(THREAT,),
        ledger=LEDGER,
        actions_completed=("Sent the KB-CMP-002 leaflet",),
        articles_used=(Hit("KB-ESC-001", "Escalating to a supervisor"), "KB-CMP-001"),
        turns=LEGAL,
        **kwargs,  # type: ignore[arg-type]
    )
    return packet.as_text(), packet.as_json()


def test_the_first_lines_carry_reason_issue_verified_tried_and_promises() -> None:
    text, _ = build()
    head = text.splitlines()[:8]
    assert head[0].startswith("HANDOVER — conversation conv-7, 15 Oct 2026 10:00–10:04 UTC")
    assert head[1] == "Reason for escalation: Legal threat (“taking you to the small claims court”)"
    assert head[2].startswith("Issue: Kestrel is still taking money after the customer cancelled")
    assert head[3] == "Customer wants: Wants to speak to a manager"
    assert head[4] == "Verified: Identity verified (name and postcode, date of birth, PIN)"
    assert head[5].startswith("Tried / done: Agent stopped the Direct Debit")
    assert "Sent the KB-CMP-002 leaflet" in head[5]
    assert head[6] == "Promises made: Agent will arrange a callback from a team leader by 3pm today"


def test_headed_sections_then_the_redacted_transcript_with_roles_and_times() -> None:
    text, _ = build()
    for heading in (
        "KEY FACTS",
        "OPEN ITEMS",
        "SUGGESTED NEXT STEP",
        "FLAGS",
        "POLICY CHECKS",
        "ARTICLES USED",
        "TRANSCRIPT (redacted, times UTC)",
    ):
        assert f"\n{heading}\n" in text
    assert "- Reference: CMP-620114" in text
    assert "- [done] Verify identity" in text
    assert "- KB-ESC-001 Escalating to a supervisor" in text
    transcript = text.split("TRANSCRIPT (redacted, times UTC)\n", 1)[1].splitlines()
    assert len(transcript) == len(LEGAL)
    assert transcript[0].startswith("[10:00:30] Customer: You're still taking money")
    assert transcript[1].startswith("[10:01:00] Agent: I'm sorry.")
    assert "PIN [PASSWORD]" in transcript[4]  # the PIN as redaction left it


def test_an_explicit_reason_wins_and_no_flags_still_gives_a_reason() -> None:
    text, data = build(escalation_reason="Customer asked for a manager")
    assert text.splitlines()[1] == "Reason for escalation: Customer asked for a manager"
    assert data["reason"] == "Customer asked for a manager"
    bare = handover(summarise(LEGAL))
    assert bare.reason == "Transfer requested by the agent (no reason given)"


def test_identity_not_verified_when_the_ledger_says_pending() -> None:
    summary = summarise(LEGAL[:1])
    packet = handover(summary, ledger=(Step("Verify identity", "pending"),), turns=LEGAL[:1])
    assert "Verified: Identity NOT verified (Verify identity: pending)" in packet.as_text()


def test_json_has_stable_keys_and_survives_a_round_trip() -> None:
    _, data = build()
    assert set(data) == {
        "schema", "conversation_id", "created_at", "reason", "intent", "issue", "goal",
        "verified", "tried", "promises", "key_facts", "open_items", "next_step", "sentiment",
        "flags", "policy", "articles", "transcript",
    }  # fmt: skip
    assert data["schema"] == HANDOVER_SCHEMA
    assert data["intent"] == {
        "id": "complaint", "name": "Complaint", "stakes": "high", "routing_layer": "human_only"
    }  # fmt: skip
    assert data["flags"] == [
        {
            "kind": "legal_threat",
            "level": "high",
            "quotes": ["taking you to the small claims court"],
        }
    ]
    assert data["articles"][1] == {"article_id": "KB-CMP-001", "title": ""}
    assert data["transcript"][2] == {
        "turn_id": "t3", "time": "2026-10-15T10:01:30+00:00", "role": "customer",
        "text": "Karen Doyle, M20 6HG.",
    }  # fmt: skip
    assert json.loads(json.dumps(data)) == data


def test_no_unredacted_card_or_html_even_from_a_turn_that_skipped_redaction() -> None:
    raw = Turn("conv-9", "t1", Role.CUSTOMER, f"<b>my card</b> is {CARD}", START)
    read_back = converse(("agent", f"So that's {CARD}, expiry 09/28?"))
    turns = (raw, *read_back)
    packet = handover(summarise(turns), turns=turns)
    text, data = packet.as_text(), json.dumps(packet.as_json(), ensure_ascii=False)
    for output in (text, data):
        assert CARD not in output
        assert "4111" not in output
        assert "<b>" not in output
    assert "[CARD •••• 1111]" in text  # placeholders are kept, not redacted twice


def test_wrap_up_has_reason_outcome_actions_dated_follow_ups_and_references() -> None:
    turns = converse(
        ("customer", "My order KS-40211873 still hasn't arrived."),
        (
            "agent",
            "I've opened an investigation with ParcelSwift. I'll email you tomorrow with"
            " an update, and the refund will be sent within 3 working days if it's lost.",
        ),
    )
    note = wrap_up(summarise(turns), intent_name="Late delivery")
    lines = note.splitlines()
    assert lines[0] == (
        "Reason for contact: Late delivery: The customer's order KS-40211873 still hasn't arrived"
    )
    assert lines[1] == "Outcome: Resolved in the contact; follow-ups pending"
    assert lines[2] == "Actions: Agent opened an investigation with ParcelSwift"
    assert lines[3] == "Follow-ups:"
    assert "- Agent will email the customer tomorrow with an update (due Fri 16 Oct 2026)" in lines
    assert any(line.endswith("(due Tue 20 Oct 2026)") for line in lines)  # 3 working days
    assert lines[-1] == "References: KS-40211873"


def test_wrap_up_outcome_for_an_escalation_and_an_explicit_outcome() -> None:
    summary = summarise(LEGAL)
    assert "Outcome: Escalated" in wrap_up(summary)
    assert "Outcome: Refund agreed" in wrap_up(summary, outcome="Refund agreed")
    empty = wrap_up(summarise(()))
    assert "Follow-ups: none" in empty and "References: none" in empty


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'll call you back tomorrow", dt.date(2026, 10, 16)),
        ("you'll hear within 3 working days", dt.date(2026, 10, 20)),
        ("back in 3 to 5 working days", dt.date(2026, 10, 22)),
        ("we'll respond by 25 November", dt.date(2026, 11, 25)),
        ("since 1 October", dt.date(2026, 10, 1)),
        ("I'll call you on Thursday evening", dt.date(2026, 10, 22)),
        ("on Monday", dt.date(2026, 10, 19)),
        ("they answer within 48 hours", dt.date(2026, 10, 17)),
        ("a final response within 8 weeks", dt.date(2026, 12, 10)),
        ("within one month", dt.date(2026, 11, 15)),
        ("a team leader within 4 working hours", dt.date(2026, 10, 15)),
        ("a link by text tonight", dt.date(2026, 10, 15)),
        ("I'll look into it", None),
    ],
)
def test_due_dates(text: str, expected: dt.date | None) -> None:
    assert due_date(text, dt.date(2026, 10, 15)) == expected


def test_due_date_rolls_into_next_year_and_clamps_month_ends() -> None:
    assert due_date("by 5 January", dt.date(2026, 12, 20)) == dt.date(2027, 1, 5)
    assert due_date("within one month", dt.date(2027, 1, 31)) == dt.date(2027, 2, 28)
