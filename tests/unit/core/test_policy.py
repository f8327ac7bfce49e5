"""Policy checks: the ledger of required steps, prohibited phrases, card read-back, escalations
and draft checks, on transcripts built the way the app builds them (parsed, then redacted)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copilot.core.conversation import Conversation, Turn, parse_turn_event
from copilot.core.policy import (
    Condition,
    ConditionKind,
    Cue,
    CueError,
    PolicyFinding,
    PolicyResult,
    PolicyRule,
    PolicySpec,
    RuleType,
    Severity,
    StepStatus,
    _search,
    _wrap,
    check_draft,
    evaluate,
)
from copilot.services.content_policy import load_policy_spec

SAMPLE_CONTENT = Path(__file__).resolve().parents[3] / "knowledge"


@dataclass(frozen=True)
class Evidence:
    turn_id: str
    quote: str = ""


@dataclass(frozen=True)
class Flag:
    kind: str
    level: str
    evidence: tuple[Evidence, ...] = ()


def flag(kind: str, level: str, *turn_ids: str) -> Flag:
    return Flag(kind, level, tuple(Evidence(t, f"words in {t}") for t in turn_ids))


@pytest.fixture(scope="module")
def spec() -> PolicySpec:
    return load_policy_spec(SAMPLE_CONTENT)


def conv(*lines: tuple[str, str]) -> tuple[Turn, ...]:
    """Turns t1, t2, ... as the app stores them: parsed, applied (and so redacted)."""
    c = Conversation()
    for i, (role, text) in enumerate(lines, start=1):
        event = {"conversation_id": "c1", "turn_id": f"t{i}", "role": role, "text": text}
        c = c.apply(parse_turn_event({**event, "ts": 1_700_000_000 + i}))
    return c.turns


def C(text: str) -> tuple[str, str]:
    return ("customer", text)


def A(text: str) -> tuple[str, str]:
    return ("agent", text)


def status(result: PolicyResult, rule_id: str) -> tuple[StepStatus, str | None]:
    entry = result.entry(rule_id)
    assert entry is not None, f"{rule_id} is not in the ledger"
    return entry.status, entry.turn_id


def found(findings: Sequence[PolicyFinding], rule_id: str) -> list[PolicyFinding]:
    return [f for f in findings if f.rule_id == rule_id]


def run(
    spec: PolicySpec,
    *lines: tuple[str, str],
    flags: Sequence[Flag] = (),
    intent: str | None = None,
    channel: str | None = None,
) -> PolicyResult:
    return evaluate(conv(*lines), tuple(flags), intent, spec, channel=channel)


# -- required step: identity verification ------------------------------------------------------


def test_idv_is_not_applicable_while_only_general_questions_are_asked(spec: PolicySpec) -> None:
    result = run(
        spec,
        C("How much is Fibre 500 a month?"),
        A("Fibre 500 is £38 a month on an 18-month term."),
    )
    assert status(result, "idv-before-account-details") == (StepStatus.NOT_APPLICABLE, None)
    assert not found(result.findings, "idv-before-account-details")


def test_idv_goes_pending_then_done_and_then_account_talk_is_fine(spec: PolicySpec) -> None:
    result = run(
        spec,
        C("Can you tell me my balance please?"),
        A("Of course. Can I take your full name, postcode, date of birth and account PIN?"),
        C("Jo Bloggs, AB1 2CD, 1 May 1980, 4821."),
        A("Thanks, you're verified. Your balance is £42.50."),
    )
    # Done when the agent confirms the check was passed, not when the items are asked for.
    assert status(result, "idv-before-account-details") == (StepStatus.DONE, "t4")
    assert not found(result.findings, "idv-before-account-details")


def test_idv_missed_when_account_details_come_before_verification(spec: PolicySpec) -> None:
    result = run(
        spec,
        C("Hi, I think I've been charged twice this month."),
        A("I can see two payments of £38 were taken on the 7th."),
        A("Can I take your date of birth?"),
    )
    assert status(result, "idv-before-account-details") == (StepStatus.MISSED, "t2")
    [finding] = found(result.findings, "idv-before-account-details")
    assert finding.severity is Severity.CRITICAL
    assert finding.article_id == "KB-IDV-001"
    assert finding.turn_id == "t2"
    assert "£38" in finding.evidence


def test_idv_missed_even_when_the_agent_volunteers_details_unasked(spec: PolicySpec) -> None:
    result = run(spec, C("Hello"), A("Hi! Your current balance is £12."))
    assert status(result, "idv-before-account-details") == (StepStatus.MISSED, "t2")


def test_idv_pending_from_the_start_for_an_account_intent(spec: PolicySpec) -> None:
    result = run(spec, C("hello there"), A("Hi, how can I help?"), intent="billing_double_charge")
    assert status(result, "idv-before-account-details") == (StepStatus.PENDING, "t1")


def test_idv_not_required_from_a_bereaved_caller(spec: PolicySpec) -> None:
    turns = (
        C("My husband passed away last month and I need to sort out his account."),
        A("I'm so sorry for your loss. The balance of £20 was taken on the 7th."),
    )
    result = run(spec, *turns, flags=[flag("bereavement", "high", "t1")])
    assert status(result, "idv-before-account-details")[0] is StepStatus.NOT_APPLICABLE
    assert not found(result.findings, "idv-before-account-details")


def test_ledger_changes_turn_by_turn(spec: PolicySpec) -> None:
    lines = (
        A("Thanks for calling Kestrel Connect, you're speaking to Sam."),
        C("Hi, why have I been charged £60 this month?"),
        A("Let me have a look. Can I take your name, postcode, date of birth and PIN?"),
        C("Jo Bloggs, AB1 2CD, 1 May 1980, 4821"),
        A("Thanks, that's you verified."),
    )
    turns = conv(*lines)
    idv, disclosure = [], []
    for n in range(1, len(turns) + 1):
        result = evaluate(turns[:n], (), None, spec)
        idv.append(status(result, "idv-before-account-details"))
        disclosure.append(status(result, "recording-disclosure"))
    assert idv == [
        (StepStatus.NOT_APPLICABLE, None),
        (StepStatus.PENDING, "t2"),
        (StepStatus.PENDING, "t2"),  # asking for the items is not passing the check
        (StepStatus.PENDING, "t2"),
        (StepStatus.DONE, "t5"),
    ]
    # A phone call from the first turn ("thanks for calling"): due within two agent turns.
    assert disclosure == [
        (StepStatus.PENDING, "t1"),
        (StepStatus.PENDING, "t1"),
        (StepStatus.MISSED, "t3"),
        (StepStatus.MISSED, "t3"),
        (StepStatus.MISSED, "t3"),
    ]


# -- required step: disclosure, complaint, SAR, CARE, PayLine ---------------------------------


def test_recording_disclosure_done_in_the_opening(spec: PolicySpec) -> None:
    result = run(
        spec,
        A("Thanks for calling Kestrel Connect. This call is recorded for training and quality."),
        C("Hi, my broadband keeps dropping."),
    )
    assert status(result, "recording-disclosure") == (StepStatus.DONE, "t1")


def test_recording_disclosure_does_not_apply_to_chat(spec: PolicySpec) -> None:
    lines = (A("Hi, you're chatting with Sam."), C("Hello"), A("How can I help?"))
    assert status(run(spec, *lines), "recording-disclosure")[0] is StepStatus.NOT_APPLICABLE
    result = run(spec, *lines, channel="chat")
    assert status(result, "recording-disclosure")[0] is StepStatus.NOT_APPLICABLE
    # The source knows it is a call even though nothing in the words says so.
    result = run(spec, *lines, channel="phone")
    assert status(result, "recording-disclosure") == (StepStatus.MISSED, "t3")
    [finding] = found(result.findings, "recording-disclosure")
    assert finding.article_id == "KB-DPA-003"


def test_complaint_logged_with_a_cmp_reference(spec: PolicySpec) -> None:
    lines = [
        C("I'm really not happy with the service I've had."),
        A("I'm sorry to hear that. Let me look into it."),
    ]
    assert status(run(spec, *lines), "complaint-logged") == (StepStatus.PENDING, "t1")
    lines.append(A("I've logged this as a complaint. Your reference is CMP-418207."))
    assert status(run(spec, *lines), "complaint-logged") == (StepStatus.DONE, "t3")


def test_complaint_step_triggered_by_intent_or_legal_threat(spec: PolicySpec) -> None:
    lines = (C("About my router."), A("Sure."))
    assert status(run(spec, *lines), "complaint-logged")[0] is StepStatus.NOT_APPLICABLE
    assert status(run(spec, *lines, intent="complaint"), "complaint-logged")[0] is (
        StepStatus.PENDING
    )
    flags = [flag("legal_threat", "low", "t1")]
    assert status(run(spec, *lines, flags=flags), "complaint-logged")[0] is StepStatus.PENDING


def test_sar_logged_with_a_dpr_reference(spec: PolicySpec) -> None:
    lines = [C("I want copies of all my call recordings please.")]
    assert status(run(spec, *lines), "sar-logged") == (StepStatus.PENDING, "t1")
    lines.append(A("I've logged your request with our privacy team, reference DPR-302918."))
    assert status(run(spec, *lines), "sar-logged") == (StepStatus.DONE, "t2")
    assert status(run(spec, C("Can I have a copy of last month's bill?")), "sar-logged")[0] is (
        StepStatus.NOT_APPLICABLE
    )


def test_care_steps_follow_a_vulnerability_flag(spec: PolicySpec) -> None:
    lines = [
        C("I've just come out of hospital and the internet is down."),
        A("I'm sorry to hear that. Is there anything that would make this easier for you today?"),
    ]
    flags = [flag("illness", "medium", "t1")]
    result = run(spec, *lines, flags=flags)
    assert status(result, "care-check-support-needs") == (StepStatus.DONE, "t2")
    assert status(result, "care-record-with-consent") == (StepStatus.PENDING, "t1")
    lines.append(A("Would you like me to add a note to your account so colleagues know?"))
    result = run(spec, *lines, flags=flags)
    assert status(result, "care-record-with-consent") == (StepStatus.DONE, "t3")
    no_flag = run(spec, C("The internet is down."), A("Let's run a line test."))
    assert status(no_flag, "care-record-with-consent")[0] is StepStatus.NOT_APPLICABLE


def test_payline_step_when_the_customer_reads_a_card_number(spec: PolicySpec) -> None:
    lines = [C("My card number is 4111 1111 1111 1111.")]
    turns = conv(*lines)
    assert "4111 1111" not in turns[0].text  # redacted on arrival
    assert status(run(spec, *lines), "payline-for-card-payments") == (StepStatus.PENDING, "t1")
    lines.append(A("Please don't read your card number to me. I'll transfer you to PayLine."))
    result = run(spec, *lines)
    assert status(result, "payline-for-card-payments") == (StepStatus.DONE, "t2")
    assert not found(result.findings, "card-number-readback")


# -- prohibited --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule_id", "said", "fine"),
    [
        (
            "no-outcome-guarantees",
            "I guarantee the engineer will fix it tomorrow.",
            "I can't guarantee the outcome, but I've requested a priority repair.",
        ),
        (
            "no-outcome-guarantees",
            "Don't worry, it'll definitely be sorted by Friday.",
            "Your Direct Debit is protected by the Direct Debit Guarantee.",
        ),
        (
            "refund-over-frontline-limit",
            "I'll refund £120 to your card today.",
            "I'll ask my team leader to approve a £120 refund for you.",
        ),
        (
            "refund-over-frontline-limit",
            "I've put a £75 credit on your account.",
            "I've put a £20 goodwill credit on your account.",
        ),
        (
            "no-blaming-customer",
            "To be honest you should have read the terms before signing.",
            "You should have received a confirmation email yesterday.",
        ),
        (
            "no-card-number-request",
            "Can you read me the long number on the front of your card?",
            "Can you give me the last four digits of the card you pay with?",
        ),
        (
            "no-card-number-request",
            "What's your card number?",
            "Please don't read your card number to me, PayLine will ask you for it.",
        ),
        (
            "no-cvv-request",
            "And the three digit code on the back, please?",
            "Please never share your security code with anyone, including us.",
        ),
        (
            "no-password-request",
            "Could you tell me your password so I can check?",
            "You can reset it with Forgot password on the login page.",
        ),
        (
            "no-idv-prompting",
            "Is your postcode SW1A 1AA?",
            "Can you tell me what your postcode is?",
        ),
        (
            "no-complaint-gatekeeping",
            "Do you want to make a formal complaint?",
            "I've logged this as a complaint so it's tracked properly.",
        ),
        (
            "no-cancellation-obstacles",
            "You can't cancel over chat, you'll need to phone us.",
            "I can process the cancellation for you here in chat.",
        ),
    ],
)
def test_prohibited_phrases(spec: PolicySpec, rule_id: str, said: str, fine: str) -> None:
    bad = run(spec, C("Hello"), A(said))
    [finding] = found(bad.findings, rule_id)
    assert finding.turn_id == "t2"
    assert finding.rule_type is RuleType.PROHIBITED
    assert finding.evidence and finding.evidence in said
    assert spec.rule(rule_id) is not None
    assert finding.article_id == spec.rule(rule_id).article_id  # type: ignore[union-attr]
    assert not found(run(spec, C("Hello"), A(fine)).findings, rule_id)


def test_retention_offers_stop_after_two_refusals(spec: PolicySpec) -> None:
    lines = [
        C("I want to cancel my broadband."),
        A("I'm sorry to hear that. I can offer you 20% off for 12 months if you stay."),
        C("No thanks, I just want to cancel."),
        A("What if I could give you a free speed upgrade instead?"),
    ]
    assert not found(run(spec, *lines).findings, "no-retention-after-two-refusals")
    lines += [
        C("No, I've made up my mind."),
        A("Before you go, I can offer you Kestrel Protect free for 6 months."),
    ]
    [finding] = found(run(spec, *lines).findings, "no-retention-after-two-refusals")
    assert finding.turn_id == "t6"
    assert finding.article_id == "KB-CAN-002"


def test_no_etc_talk_or_offers_to_a_bereaved_customer(spec: PolicySpec) -> None:
    bereaved = C("My mum passed away last week, I need to close her broadband.")
    etc = A("There's an early termination charge of £67.20 on the account.")
    offer = A("Before you go, I can offer you 20% off if you keep the line.")
    result = run(spec, bereaved, etc, offer)
    assert [f.turn_id for f in found(result.findings, "no-etc-talk-bereaved")] == ["t2"]
    assert [f.turn_id for f in found(result.findings, "no-offers-to-bereaved")] == ["t3"]
    assert all(f.severity is Severity.CRITICAL for f in result.findings[:2])
    reassure = A("I'm very sorry for your loss. There's no early termination charge at all.")
    assert not found(run(spec, bereaved, reassure).findings, "no-etc-talk-bereaved")
    # The same words to a customer who is not bereaved are correct information.
    other = run(spec, C("I want to cancel my broadband."), etc)
    assert not found(other.findings, "no-etc-talk-bereaved")


def test_no_pressure_selling_to_a_vulnerable_customer(spec: PolicySpec) -> None:
    lines = (
        C("Money is tight at the moment."),
        A("Have you thought about upgrading to Fibre 900? It's more for your money."),
    )
    flags = [flag("financial_hardship", "medium", "t1")]
    [finding] = found(run(spec, *lines, flags=flags).findings, "no-pressure-selling-vulnerable")
    assert finding.severity is Severity.CRITICAL
    assert not found(run(spec, *lines).findings, "no-pressure-selling-vulnerable")


def test_a_context_rule_applies_only_after_its_context(spec: PolicySpec) -> None:
    # The upsell came before the customer said anything about money.
    lines = (
        A("Have you thought about upgrading to Fibre 900?"),
        C("Honestly I can't afford the bill I have."),
    )
    flags = [flag("financial_hardship", "high", "t2")]
    assert not found(run(spec, *lines, flags=flags).findings, "no-pressure-selling-vulnerable")


# -- card read-back ----------------------------------------------------------------------------


def test_agent_reading_back_a_card_number_is_critical(spec: PolicySpec) -> None:
    result = run(
        spec,
        C("It's 4111 1111 1111 1111."),
        A("So that's 4111 1111 1111 1111, expiry next year?"),
    )
    [finding] = found(result.findings, "card-number-readback")
    assert finding.severity is Severity.CRITICAL
    assert finding.article_id == "KB-PAY-001"
    assert finding.turn_id == "t2"
    assert "1111 1111" not in finding.evidence
    assert result.findings[0].severity is Severity.CRITICAL


def test_no_card_readback_when_only_the_customer_said_it(spec: PolicySpec) -> None:
    result = run(spec, C("It's 4111 1111 1111 1111."), A("Please don't read that to me."))
    assert not found(result.findings, "card-number-readback")


# -- escalation --------------------------------------------------------------------------------


def test_legal_threat_flag_at_any_level_asks_for_a_supervisor_offer(spec: PolicySpec) -> None:
    lines = [C("I'll be talking to my solicitor about this.")]
    flags = [flag("legal_threat", "medium", "t1")]
    result = run(spec, *lines, flags=flags)
    assert status(result, "escalate-legal-threat") == (StepStatus.PENDING, "t1")
    [finding] = found(result.findings, "escalate-legal-threat")
    assert finding.status is StepStatus.PENDING
    assert finding.rule_type is RuleType.ESCALATION
    lines.append(A("I understand. I'll arrange for a team leader to call you back today."))
    result = run(spec, *lines, flags=flags)
    assert status(result, "escalate-legal-threat") == (StepStatus.DONE, "t2")
    assert not found(result.findings, "escalate-legal-threat")


def test_escalation_missed_after_two_agent_turns_without_an_offer(spec: PolicySpec) -> None:
    result = run(
        spec,
        C("I want to speak to a manager."),
        A("I can help you with that myself."),
        C("No, a manager please."),
        A("Let me check the account first."),
    )
    assert status(result, "escalate-manager-request") == (StepStatus.MISSED, "t4")
    [finding] = found(result.findings, "escalate-manager-request")
    assert "manager" in finding.evidence  # the customer's words, not the agent's


def test_an_offer_made_before_the_trigger_does_not_count(spec: PolicySpec) -> None:
    result = run(
        spec,
        A("If you'd like, a team leader can look at this too."),
        C("Fine. But this is going to the ombudsman."),
    )
    assert status(result, "escalate-regulator-mention") == (StepStatus.PENDING, "t2")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([flag("frustration", "high", "t1", "t3")], (StepStatus.PENDING, "t3")),
        ([flag("frustration", "critical", "t3")], (StepStatus.PENDING, "t3")),
        ([flag("frustration", "high", "t1", "t5")], (StepStatus.NOT_APPLICABLE, None)),
        ([flag("frustration", "medium", "t1", "t3")], (StepStatus.NOT_APPLICABLE, None)),
    ],
    ids=["high-twice-in-a-row", "critical", "high-not-consecutive", "medium"],
)
def test_sustained_frustration(
    spec: PolicySpec, flags: list[Flag], expected: tuple[StepStatus, str | None]
) -> None:
    lines = (
        C("This is useless."),
        A("I'm sorry."),
        C("Absolutely useless."),
        A("Let me check."),
        C("Fine."),
    )
    result = run(spec, *lines, flags=flags)
    assert status(result, "escalate-sustained-frustration") == expected


def test_repeat_contact_needs_high_frustration_too(spec: PolicySpec) -> None:
    lines = (C("I've called about this before."), A("Sorry."), C("I'm fed up."))
    repeat = flag("repeat_contact", "medium", "t1")
    alone = run(spec, *lines, flags=[repeat])
    assert status(alone, "escalate-repeat-contact-frustration")[0] is StepStatus.NOT_APPLICABLE
    both = run(spec, *lines, flags=[repeat, flag("frustration", "high", "t3")])
    assert status(both, "escalate-repeat-contact-frustration") == (StepStatus.PENDING, "t3")


def test_vulnerability_with_distress_is_critical(spec: PolicySpec) -> None:
    lines = (C("I lost my job."), A("I'm sorry."), C("I'm so stressed, I can't cope."))
    distress = flag("distress", "high", "t3")
    result = run(spec, *lines, flags=[flag("financial_hardship", "medium", "t1"), distress])
    [finding] = found(result.findings, "escalate-vulnerable-distress")
    assert (finding.severity, finding.turn_id) == (Severity.CRITICAL, "t3")
    assert not found(run(spec, *lines, flags=[distress]).findings, "escalate-vulnerable-distress")


def test_escalations_met_by_the_same_offer_give_one_finding(spec: PolicySpec) -> None:
    lines = [
        C("This is the third time I've called, it's useless."),
        A("I'm sorry."),
        C("I want to speak to a manager. My solicitor will hear about this."),
    ]
    flags = [
        flag("frustration", "critical", "t1", "t3"),
        flag("legal_threat", "high", "t3"),
        flag("human_request", "high", "t3"),
    ]
    result = run(spec, *lines, flags=flags)
    pending = [e.rule_id for e in result.pending() if e.rule_type is RuleType.ESCALATION]
    assert {"escalate-legal-threat", "escalate-manager-request"} <= set(pending)
    escalations = [f for f in result.findings if f.rule_type is RuleType.ESCALATION]
    assert len(escalations) == 1
    assert escalations[0].turn_id == "t3"
    lines.append(A("I'll arrange a team leader callback within 4 working hours."))
    result = run(spec, *lines, flags=flags)
    assert not [f for f in result.findings if f.rule_type is RuleType.ESCALATION]
    assert all(e.status is StepStatus.DONE for e in result.ledger if e.rule_id in pending)


def test_evidence_quotes_keep_amounts_whole(spec: PolicySpec) -> None:
    result = run(
        spec,
        C("My wife passed away, I need to close the account."),
        A("OK. There's an early termination charge of £182.40 on it. Anything else?"),
    )
    [finding] = found(result.findings, "no-etc-talk-bereaved")
    assert finding.evidence == "There's an early termination charge of £182.40 on it."


def test_an_exempt_step_is_not_shown_done_by_chance(spec: PolicySpec) -> None:
    lines = (
        C("My wife passed away last week."),
        A("I'm sorry for your loss. You won't pay an early termination charge."),
    )
    result = run(spec, *lines)
    assert status(result, "cancellation-terms-explained")[0] is StepStatus.NOT_APPLICABLE


# -- result shape, purity, incremental evaluation ---------------------------------------------

MIXED = (
    A("Thanks for calling Kestrel Connect."),
    C("Why have I been charged twice? This is the third time I've called, it's ridiculous."),
    A("Your balance is £76. I guarantee it'll be sorted."),
    C("I want to speak to a manager, my solicitor will be on to you."),
    A("I'll refund £76 now. Can I take the card number?"),
    C("No. I'm going to the ombudsman."),
    A("Sorry, you should have checked your statement."),
)


def test_findings_are_most_severe_first_then_newest(spec: PolicySpec) -> None:
    flags = (flag("frustration", "high", "t2", "t4"), flag("legal_threat", "high", "t4"))
    result = evaluate(conv(*MIXED), flags, "billing_double_charge", spec)
    ranks = [f.severity.rank for f in result.findings]
    assert ranks == sorted(ranks, reverse=True)
    critical = [f for f in result.findings if f.severity is Severity.CRITICAL]
    positions = [int(f.turn_id[1:]) for f in critical if f.turn_id]
    assert positions == sorted(positions, reverse=True)
    assert {"refund-over-frontline-limit", "no-card-number-request"} <= {
        f.rule_id for f in critical
    }


def test_evaluate_is_pure_and_incremental_matches_cold(spec: PolicySpec) -> None:
    turns = conv(*MIXED)
    flags = (flag("frustration", "high", "t2", "t4"),)
    live = [evaluate(turns[:n], flags, "complaint", spec) for n in range(1, len(turns) + 1)]
    fresh = PolicySpec(spec.rules, spec.channel_cues)  # same rules, nothing cached
    cold = [evaluate(tuple(turns[:n]), flags, "complaint", fresh) for n in range(1, len(turns) + 1)]
    assert live == cold
    assert evaluate(turns, flags, "complaint", spec) == live[-1]
    assert evaluate(list(turns), list(flags), "complaint", spec) == live[-1]


def test_a_corrected_earlier_turn_is_rescanned(spec: PolicySpec) -> None:
    c = Conversation()
    for i, (role, text) in enumerate(
        [C("hello"), A("I guarantee it will be fixed."), C("ok")], start=1
    ):
        c = c.apply(
            parse_turn_event(
                {
                    "conversation_id": "c",
                    "turn_id": f"t{i}",
                    "role": role,
                    "text": text,
                    "ts": 1_700_000_000 + i,
                }
            )
        )
    assert found(evaluate(c.turns, (), None, spec).findings, "no-outcome-guarantees")
    c = c.apply(
        parse_turn_event(
            {
                "conversation_id": "c",
                "turn_id": "t2",
                "role": "agent",
                "text": "I'll ask for it to be fixed.",
                "ts": 1_700_000_010,
            }
        )
    )
    assert not found(evaluate(c.turns, (), None, spec).findings, "no-outcome-guarantees")


def test_result_serialises_to_plain_data(spec: PolicySpec) -> None:
    data = evaluate(conv(*MIXED), (), None, spec).to_dict()
    assert {"ledger", "findings"} == set(data)
    first = data["findings"][0]  # type: ignore[index]
    assert first["severity"] == "critical" and first["article_id"].startswith("KB-")


# -- draft checks ------------------------------------------------------------------------------


def ids(findings: Sequence[PolicyFinding]) -> set[str]:
    return {f.rule_id for f in findings}


def test_draft_guarantee(spec: PolicySpec) -> None:
    findings = check_draft("I guarantee you'll have it by Friday.", spec=spec)
    assert ids(findings) == {"no-outcome-guarantees"}
    assert findings[0].turn_id is None
    assert check_draft("I can't promise, but I've asked for it by Friday.", spec=spec) == ()


def test_draft_refund_beyond_the_limit_needs_approval(spec: PolicySpec) -> None:
    bad = check_draft("I'll refund £120 to your card today.", spec=spec)
    assert ids(bad) == {"refund-over-frontline-limit"}
    assert bad[0].severity is Severity.CRITICAL
    assert check_draft("I'll ask my team leader to approve £120 for you.", spec=spec) == ()
    assert check_draft("I'll ask my team leader to approve a £120 refund.", spec=spec) == ()
    assert check_draft("I've applied a £30 credit to your account.", spec=spec) == ()
    assert check_draft("I'll credit £1,200 back to you.", spec=spec)  # thousands separators


@pytest.mark.parametrize(
    "text",
    [
        "So the card is 4111 1111 1111 1111, thanks.",
        "Card 4111-1111-1111-1111 noted.",
        "I've typed 4111111111111 into the form.",  # 13 digits
        "I've noted [CARD •••• 1111] on the account.",
    ],
)
def test_draft_with_a_card_number(spec: PolicySpec, text: str) -> None:
    findings = check_draft(text, spec=spec)
    assert "card-number-readback" in ids(findings)
    assert all(not re.search(r"\d{5}", f.evidence.replace(" ", "")) for f in findings)


def test_draft_with_ordinary_numbers_is_not_a_card(spec: PolicySpec) -> None:
    text = "Call us on 0800 123 4567; your order 123456789012 ships on 12 May."
    assert "card-number-readback" not in ids(check_draft(text, spec=spec))


def test_draft_asking_for_the_cvv(spec: PolicySpec) -> None:
    assert ids(check_draft("Can you give me the CVV as well?", spec=spec)) == {"no-cvv-request"}


def test_draft_offer_to_a_bereaved_customer_depends_on_the_conversation(spec: PolicySpec) -> None:
    turns = conv(C("My father died last week and I need to close his account."))
    draft = "Before you go, I can offer you 20% off for 12 months."
    flags = (flag("bereavement", "high", "t1"),)
    assert "no-offers-to-bereaved" in ids(check_draft(draft, turns=turns, flags=flags, spec=spec))
    assert "no-offers-to-bereaved" in ids(check_draft(draft, turns=turns, spec=spec))  # words
    other = conv(C("I'd like to cancel my broadband."))
    assert "no-offers-to-bereaved" not in ids(check_draft(draft, turns=other, spec=spec))


def test_draft_discussing_the_account_before_idv(spec: PolicySpec) -> None:
    draft = "Your balance is £42.50."
    asked = conv(C("What's my balance?"))
    [finding] = check_draft(draft, turns=asked, spec=spec)
    assert (finding.rule_id, finding.status) == ("idv-before-account-details", StepStatus.MISSED)
    assert ids(check_draft(draft, spec=spec)) == {"idv-before-account-details"}
    only_asked = conv(C("What's my balance?"), A("Can I take your date of birth?"), C("1/5/80"))
    assert ids(check_draft(draft, turns=only_asked, spec=spec)) == {"idv-before-account-details"}
    verified = conv(
        C("What's my balance?"),
        A("Can I take your full name, postcode, date of birth and PIN?"),
        C("Jo Bloggs, AB1 2CD, 1/5/80, 4821"),
        A("Thanks, that's you verified."),
    )
    assert check_draft(draft, turns=verified, spec=spec) == ()
    assert check_draft("Thanks, you're verified. " + draft, turns=asked, spec=spec) == ()


@pytest.mark.parametrize(
    "text",
    [
        "Is the payment on your credit card of £60 the one you mean?",
        "I'm sorry you were told the wrong thing last time.",
        "You'll need your password to log in to the app.",
        "Please read me the security code I've just texted to your mobile.",
        "You should have received a confirmation email this morning.",
        "Direct Debits are taken on the 7th of each month.",
        "I can't promise what the team leader will decide, but I'll pass on every detail.",
        "Fibre 500 is £38 a month on an 18-month term.",
        "Automatic compensation of £9.33 per day is added to your next bill.",
        "A team leader can approve up to £250; I'll ask for the £120 today.",
        "Can you tell me the last four digits of the card you pay with?",
        "Please don't read your card number to me; PayLine will ask you to key it in.",
        "Thanks for holding. I'm sorry for the wait.",
        "Is there anything that would make this easier for you today?",
    ],
)
def test_ordinary_agent_phrases_raise_nothing(spec: PolicySpec, text: str) -> None:
    assert check_draft(text, spec=spec) == ()


def test_a_clean_draft_passes(spec: PolicySpec) -> None:
    text = "I'm sorry about the dropouts. I've booked an engineer and logged reference CMP-123456."
    assert check_draft(text, turns=conv(*MIXED), spec=spec) == ()


# -- mechanics with a small spec ---------------------------------------------------------------


def test_all_fires_at_the_last_condition_and_any_at_the_first() -> None:
    says = Cue.compile(["hello"])
    late = Cue.compile(["goodbye"])
    done = Cue.compile(["done it"])

    def step(rule_id: str, trigger: Condition) -> PolicyRule:
        return PolicyRule(
            rule_id,
            RuleType.REQUIRED_STEP,
            Severity.INFO,
            "Do it.",
            "KB-X",
            title=rule_id,
            trigger=trigger,
            done_when=done,
        )

    a = Condition(ConditionKind.CUSTOMER_SAYS, cue=says)
    b = Condition(ConditionKind.CUSTOMER_SAYS, cue=late)
    small = PolicySpec(
        (
            step("all", Condition(ConditionKind.ALL, children=(a, b))),
            step("any", Condition(ConditionKind.ANY, children=(b, a))),
            step("twice", Condition(ConditionKind.CUSTOMER_SAYS, cue=says, count=2)),
        )
    )
    result = evaluate(conv(C("hello"), C("well"), C("goodbye"), C("hello again")), (), None, small)
    assert status(result, "all") == (StepStatus.PENDING, "t3")
    assert status(result, "any") == (StepStatus.PENDING, "t1")
    assert status(result, "twice") == (StepStatus.PENDING, "t4")


def test_cue_errors_name_the_pattern() -> None:
    with pytest.raises(CueError, match=r"not a valid regular expression"):
        Cue.compile(["fine", "(?:broken"])
    with pytest.raises(CueError, match="matches empty text"):
        Cue.compile(["(?:maybe)?"])
    with pytest.raises(CueError, match="named groups"):
        Cue.compile([r"(?P<who>\w+) said"])


def test_cues_match_whole_words_and_curly_apostrophes() -> None:
    cue = Cue.compile(["pin", "don't"])
    assert cue.search("the spinning wheel") is None
    assert cue.search("your PIN please") is not None
    assert cue.search("I don’t know".replace("’", "'")) is not None


def test_prohibited_rule_needs_an_amount_group_for_amount_over() -> None:
    with pytest.raises(ValueError, match="amount"):
        PolicyRule(
            "r",
            RuleType.PROHIBITED,
            Severity.WARNING,
            "No.",
            "KB-X",
            says=Cue.compile(["refund"]),
            amount_over=50,
        )


@functools.cache
def _matching(pattern: str) -> st.SearchStrategy[str]:
    return st.from_regex(re.compile(pattern, re.IGNORECASE), fullmatch=True)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_anchor_prefilter_never_loses_a_match(spec: PolicySpec, data: st.DataObject) -> None:
    """Text made to match a pack pattern is found through the anchors exactly as by the regex."""
    patterns = sorted({p for cue in spec._plan.cues for p in cue.patterns})
    pattern = data.draw(st.sampled_from(patterns))
    sample = data.draw(_matching(pattern))
    text = f"so {sample} ok"
    cue = Cue.compile([pattern])
    reference = re.compile(_wrap(pattern), re.IGNORECASE).search(text)
    got = cue.search(text)
    assert (got is None) == (reference is None)
    if reference is not None and got is not None:
        assert got.span() == reference.span()
        assert _search(cue.regexes[0], text) is not None


# -- natural phrasing: misfires reported on the demo conversations -----------------------------


@pytest.mark.parametrize(
    ("rule_id", "said"),
    [
        ("no-blaming-customer", "You were told about the ETC when you signed up."),
        ("no-blaming-customer", "You shouldn't have unplugged the hub."),
        ("no-outcome-guarantees", "I'm sure it'll be with you by Friday."),
        ("no-outcome-guarantees", "Rest assured the refund will be with you tomorrow."),
        ("no-reading-out-contact-details", "The email on your account is jo.bloggs@example.com."),
        ("no-reading-out-contact-details", "Your registered mobile is 07700 900123."),
    ],
)
def test_prohibited_in_natural_phrasing(spec: PolicySpec, rule_id: str, said: str) -> None:
    result = run(spec, C("Hello"), A(said))
    [finding] = found(result.findings, rule_id)
    assert finding.turn_id == "t2"


@pytest.mark.parametrize(
    ("rule_id", "fine"),
    [
        ("no-blaming-customer", "I'm sorry - you shouldn't have to keep chasing us."),
        ("no-blaming-customer", "No, you shouldn't have to - sorry."),
        ("no-blaming-customer", "You shouldn't have been charged that, I'll get it removed."),
        ("no-blaming-customer", "I can see you were told it would be waived - that was right."),
        (
            "refund-over-frontline-limit",
            "Both were for your November bill, so your account is £52 in credit.",
        ),
        ("refund-over-frontline-limit", "Your account is in credit by £52 at the moment."),
        ("no-outcome-guarantees", "I'm sure that's frustrating, I'll check the order now."),
        (
            "no-reading-out-contact-details",
            "The reset emails go to an older address beginning with 'o'.",
        ),
        ("no-reading-out-contact-details", "I've changed it to oliver.grant93@gmail.com for you."),
    ],
)
def test_not_prohibited_in_natural_phrasing(spec: PolicySpec, rule_id: str, fine: str) -> None:
    assert not found(run(spec, C("Hello"), A(fine)).findings, rule_id)


def test_a_step_whose_trigger_never_fired_is_not_applicable(spec: PolicySpec) -> None:
    result = run(
        spec,
        C("I think I've been charged twice for my broadband this month."),
        A("Sorry to hear that - let's take a look. There's no early termination charge here."),
    )
    assert status(result, "bereavement-condolences") == (StepStatus.NOT_APPLICABLE, None)
    assert status(result, "cancellation-terms-explained") == (StepStatus.NOT_APPLICABLE, None)


def test_condolences_count_only_after_the_bereavement(spec: PolicySpec) -> None:
    lines = [
        C("My broadband keeps dropping out."),
        A("Sorry to hear that. Can I ask whose name the account is in?"),
        C("It was my husband's. He passed away in June."),
        A("Thank you. Let me look at the line."),
    ]
    result = run(spec, *lines)
    assert status(result, "bereavement-condolences") == (StepStatus.PENDING, "t3")
    lines.append(A("I'm so sorry for your loss."))
    assert status(run(spec, *lines), "bereavement-condolences") == (StepStatus.DONE, "t5")


def test_an_idv_done_before_the_account_question_still_counts(spec: PolicySpec) -> None:
    result = run(
        spec,
        A("Thanks for calling. Can I take your full name, postcode, date of birth and PIN?"),
        C("Jo Bloggs, AB1 2CD, 1 May 1980, 1234."),
        A("Thanks, you're verified. How can I help?"),
        C("What's my balance?"),
        A("Your balance is £42.50."),
    )
    assert status(result, "idv-before-account-details") == (StepStatus.DONE, "t3")


def test_exemption_before_completion_wins(spec: PolicySpec) -> None:
    # A bereaved caller who asks to cancel: the agent's ETC words are not "terms explained".
    result = run(
        spec,
        C("My dad passed away last month."),
        A("I'm so sorry. There are never early termination charges when someone has died."),
        C("Thank you. Do I need to cancel his broadband?"),
    )
    assert status(result, "cancellation-terms-explained")[0] is StepStatus.NOT_APPLICABLE


def test_an_escalation_offered_stays_done_after_the_flag_fades(spec: PolicySpec) -> None:
    lines = [
        C("This is useless."),
        A("I'm sorry."),
        C("Absolutely useless, I'm fuming."),
        A("I understand. I'd like my team leader to call you back within 4 working hours."),
        C("Fine."),
        A("It's booked."),
        C("Ok."),
        C("Thanks."),
        C("Bye."),
    ]
    peak = flag("frustration", "critical", "t1", "t3")
    during = run(spec, *lines[:4], flags=[peak])
    assert status(during, "escalate-sustained-frustration") == (StepStatus.DONE, "t4")
    # The customer calmed down: the live flag has faded, the conversation's history keeps it.
    after = evaluate(conv(*lines), (), None, spec, history=(peak,))
    assert status(after, "escalate-sustained-frustration") == (StepStatus.DONE, "t4")
    # Without an offer, a faded trigger leaves nothing to do now.
    unoffered = [*lines[:3], A("Let me check."), *lines[4:]]
    quiet = evaluate(conv(*unoffered), (), None, spec, history=(peak,))
    assert status(quiet, "escalate-sustained-frustration")[0] is StepStatus.NOT_APPLICABLE
    assert not found(quiet.findings, "escalate-sustained-frustration")


def test_a_pending_escalation_stands_while_its_flag_is_still_up(spec: PolicySpec) -> None:
    lines = (
        C("This is useless."),
        A("I'm sorry."),
        C("Absolutely useless!!"),
        A("Let me check."),
        C("Still useless."),
    )
    peak = flag("frustration", "critical", "t1", "t3")
    # The two turns in a row have slid out of the live flag's window; the customer is still
    # angry, so the offer is still owed.
    now = flag("frustration", "high", "t5")
    result = evaluate(conv(*lines), (now,), None, spec, history=(peak,))
    assert status(result, "escalate-sustained-frustration") == (StepStatus.PENDING, "t3")
    assert found(result.findings, "escalate-sustained-frustration")


def test_a_missed_escalation_stays_missed_after_the_flag_fades(spec: PolicySpec) -> None:
    lines = (
        C("Put me through to a manager now."),
        A("I can help you."),
        C("Fine."),
        A("Let me look."),
        C("Ok."),
    )
    asked = flag("human_request", "high", "t1")
    result = evaluate(conv(*lines), (), None, spec, history=(asked,))
    assert status(result, "escalate-manager-request") == (StepStatus.MISSED, "t4")


@pytest.mark.parametrize(
    "said",
    [
        "I'm afraid a manager isn't available right now.",
        "There's no team leader free at the moment.",
        "I can't transfer you to a supervisor, but I can help.",
        "I understand you want to speak to a manager.",
        "A team leader can't call you back today, sorry.",
    ],
)
def test_mentioning_a_manager_is_not_offering_one(spec: PolicySpec, said: str) -> None:
    result = run(spec, C("I want to speak to a manager."), A(said))
    assert status(result, "escalate-manager-request") == (StepStatus.PENDING, "t1")


@pytest.mark.parametrize(
    "offer",
    [
        "I can arrange for a team leader to call you back within 4 working hours.",
        "I'll get my manager to ring you this afternoon.",
        "Our team leader Sarah is joining the chat now.",
        "I'm going to transfer you to my supervisor.",
        "I'll escalate this to a team leader now.",
        "I'll arrange a team leader callback within 4 working hours.",
        "Would you like to speak to a manager?",
        "I've requested a callback from a team leader for this afternoon.",
    ],
)
def test_offering_a_supervisor_counts(spec: PolicySpec, offer: str) -> None:
    result = run(spec, C("I want to speak to a manager."), A(offer))
    assert status(result, "escalate-manager-request") == (StepStatus.DONE, "t2")


def test_asking_for_name_and_postcode_is_not_identity_verified(spec: PolicySpec) -> None:
    lines = [
        C("Why have I been charged twice?"),
        A("Can I take your full name and postcode please?"),
        C("Jo Bloggs, AB1 2CD."),
        A("Thanks. And two of: your date of birth, your PIN or the last 4 digits of your card?"),
        C("1 May 1980 and the PIN is 1234."),
    ]
    assert status(run(spec, *lines), "idv-before-account-details") == (StepStatus.PENDING, "t1")
    lines.append(A("Thank you, that's you verified."))
    assert status(run(spec, *lines), "idv-before-account-details") == (StepStatus.DONE, "t6")
