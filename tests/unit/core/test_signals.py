"""Sentiment and escalation signals, with the real content pack's configuration."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copilot.core.sentiment import (
    N_LEXICON_FEATURES,
    SentimentConfig,
    SentimentHead,
    SentimentLabel,
    SentimentLexicon,
    Trend,
    score_turn,
    sentiment_trend,
)
from copilot.core.signals import (
    FlagKind,
    Level,
    PatternError,
    SignalConfig,
    SignalConfigError,
    TurnSignals,
    aggregate,
    analyse_turn,
    build_signal_config,
    compile_pattern,
)
from copilot.services.content_signals import load_signal_config

PACK = Path(__file__).resolve().parents[3] / "knowledge"


@pytest.fixture(scope="module")
def config() -> SignalConfig:
    return load_signal_config(PACK)


def kinds(text: str, config: SignalConfig) -> set[str]:
    return {str(f.kind) for f in analyse_turn(text, turn_id="t1", config=config).flags}


# --- pattern syntax -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("cancel*", "I'm cancelling today", "cancelling"),
        ("cancel*", "the uncancelled order", None),
        ("(my|the)? contract", "end the contract", "the contract"),
        ("(my|the)? contract", "a contract", "contract"),
        ("speak to ... manager", "speak to your line manager", "speak to your line manager"),
        ("speak to ... manager", "speak to. The manager", None),
        (
            "(talk|speak) to (a (real|actual) person|a human)",
            "talk to a real person",
            "talk to a real person",
        ),
        ("<num> times", "I've called 4 times", "4 times"),
        ("<num> times", "I've called three times", "three times"),
        ("<ord> time", "the 3rd time", "3rd time"),
        ("i've called", "I’ve called", "I’ve called"),
        ("re:\\bf[*]+k\\b", "what the f**k", "f**k"),
        ("sue", "pursue it", None),
    ],
)
def test_pattern_syntax(pattern: str, text: str, expected: str | None) -> None:
    match = compile_pattern(pattern).search(text)
    assert (match.group() if match else None) == expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a|b", "unclosed group"),
        ("a|b)", "unexpected"),
        ("(a|) b", "empty alternative"),
        ("... a", "'...' needs a word before it"),
        ("a ...", "'...' needs a word after it"),
        ("<count> times", "unknown placeholder"),
        ("(a)?", "matches the empty string"),
        ("re:(", "not a valid regular expression"),
        ("ca*ncel", "'*' may only end a word"),
    ],
)
def test_bad_patterns_say_why(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError, match=reason.replace("(", r"\(")):
        compile_pattern(pattern)


# --- each flag kind: raised, negated, and not fooled ------------------------------------------

CASES = [
    # kind, raised by, negated, look-alike that must not raise it
    (
        FlagKind.FRUSTRATION,
        "This is absolutely useless, I'm fed up.",
        "I'm not angry, I just want an update.",
        "Honestly, no joke, the new hub is brilliant.",
    ),
    (
        FlagKind.DISTRESS,
        "I'm in tears, I can't cope with this.",
        "I'm not worried about it at all.",
        "I was panicking but it's back on now, thanks.",
    ),
    (
        FlagKind.BEREAVEMENT,
        "My wife passed away in June.",
        "No, nobody has died, I'm just moving house.",
        "My phone died halfway through the call.",
    ),
    (
        FlagKind.ILLNESS,
        "I've just come out of hospital after a stroke.",
        "No hospital visits, thankfully.",
        "I'm sick of waiting for this refund.",
    ),
    (
        FlagKind.FINANCIAL_HARDSHIP,
        "I lost my job and I can't afford the bill.",
        "We're not in debt, I just want a cheaper plan.",
        "I can't afford to lose the internet during exams.",
    ),
    (
        FlagKind.LEGAL_THREAT,
        "I'll be taking this to the ombudsman.",
        "I don't want to involve a solicitor.",
        "My lawyer friend said the notice period is fine.",
    ),
    (
        FlagKind.CHURN_RISK,
        "I want to cancel my contract and switch to another provider.",
        "I'm not going to cancel, I just want it fixed.",
        "Can I cancel my order? Wrong colour.",
    ),
    (
        FlagKind.HUMAN_REQUEST,
        "Can I speak to a manager please?",
        "No need for a manager, you've been helpful.",
        "My manager at work says I need a faster line.",
    ),
    (
        FlagKind.REPEAT_CONTACT,
        "This is the third time I'm calling about this.",
        "Hi, first time calling, my line is down.",
        "I'd like to set up a callback for three times a week? No, sorry, once.",
    ),
    (
        FlagKind.URGENCY,
        "It's urgent, I work from home and I've got no internet.",
        "It's not urgent, whenever suits.",
        "I placed the order today.",
    ),
]


@pytest.mark.parametrize(
    ("kind", "raised", "negated", "lookalike"), CASES, ids=[c[0] for c in CASES]
)
def test_flag_raised_negated_and_not_fooled(
    config: SignalConfig, kind: FlagKind, raised: str, negated: str, lookalike: str
) -> None:
    assert kind in kinds(raised, config)
    assert kind not in kinds(negated, config)
    assert kind not in kinds(lookalike, config)


def test_every_kind_is_configured(config: SignalConfig) -> None:
    assert {r.kind for r in config.rules} == set(FlagKind)


def test_order_cancellation_is_low_churn_at_most(config: SignalConfig) -> None:
    contract = analyse_turn("I want to cancel my contract.", turn_id="a", config=config)
    order = analyse_turn("I want to cancel my order, it was a mistake.", turn_id="b", config=config)
    flag = contract.flag(FlagKind.CHURN_RISK)
    assert flag is not None and flag.level.rank >= Level.HIGH.rank
    low = order.flag(FlagKind.CHURN_RISK)
    assert low is None or low.level is Level.LOW


def test_sue_needs_an_object_not_a_name(config: SignalConfig) -> None:
    assert FlagKind.LEGAL_THREAT not in kinds("Sue from billing said she'd call me.", config)
    assert FlagKind.LEGAL_THREAT in kinds("I'm going to sue you for this.", config)


def test_a_conditional_threat_after_a_negation_still_counts(config: SignalConfig) -> None:
    # "isn't" negates "fixed", not the churn that follows in a new clause
    assert FlagKind.CHURN_RISK in kinds("If this isn't fixed I'm leaving Kestrel.", config)


# --- evidence and levels --------------------------------------------------------------------


def test_evidence_spans_point_at_the_words(config: SignalConfig) -> None:
    text = "Honestly, I've called 4 times now. Can I speak to a manager?"
    signals = analyse_turn(text, turn_id="t7", config=config)
    quotes = {str(f.kind): [e.quote for e in f.evidence] for f in signals.flags}
    assert quotes[FlagKind.REPEAT_CONTACT] == ["called 4 times"]
    assert quotes[FlagKind.HUMAN_REQUEST] == ["speak to a manager"]
    for flag in signals.flags:
        for e in flag.evidence:
            assert e.turn_id == "t7"
            assert text[e.start : e.end] == e.quote


def test_level_rises_with_intensity(config: SignalConfig) -> None:
    def level(text: str, kind: FlagKind) -> Level | None:
        flag = analyse_turn(text, turn_id="t", config=config).flag(kind)
        return flag.level if flag else None

    mention = level("Who's your manager?", FlagKind.HUMAN_REQUEST)
    request = level("I want to speak to a manager.", FlagKind.HUMAN_REQUEST)
    assert mention is not None and request is Level.HIGH and mention.rank < request.rank
    assert level("It's the second time I've called.", FlagKind.REPEAT_CONTACT) is Level.MEDIUM
    assert level("It's the third time I've called.", FlagKind.REPEAT_CONTACT) is Level.HIGH
    assert level("It's the fifth time I've called.", FlagKind.REPEAT_CONTACT) is Level.CRITICAL
    calm = level("That's annoying.", FlagKind.FRUSTRATION)
    loud = level("I'm REALLY annoyed, this is ridiculous!!", FlagKind.FRUSTRATION)
    assert calm is not None and loud is not None and loud.rank > calm.rank


def conversation(*turns: tuple[str, str]) -> list[tuple[str, str, str]]:
    return [(f"t{i}", role, text) for i, (role, text) in enumerate(turns, start=1)]


def test_frustration_high_in_two_consecutive_customer_turns_is_critical(
    config: SignalConfig,
) -> None:
    turns = conversation(
        ("customer", "I'm furious about this."),
        ("agent", "I'm sorry to hear that, let me look."),
        ("customer", "I'm furious."),
    )
    flag = aggregate(turns, config).flag(FlagKind.FRUSTRATION)
    assert flag is not None and flag.level is Level.CRITICAL
    assert {e.turn_id for e in flag.evidence} == {"t1", "t3"}

    calmer = conversation(
        ("customer", "I'm furious about this."),
        ("customer", "Okay, what's the reference number?"),
        ("customer", "I'm furious."),
    )
    flag = aggregate(calmer, config).flag(FlagKind.FRUSTRATION)
    assert flag is not None and flag.level is Level.HIGH


def test_repeated_request_for_a_manager_escalates(config: SignalConfig) -> None:
    once = aggregate(conversation(("customer", "I want to speak to a manager.")), config)
    twice = aggregate(
        conversation(
            ("customer", "I want to speak to a manager."),
            ("agent", "Can I try to help first?"),
            ("customer", "No. Get me a manager."),
        ),
        config,
    )
    first, second = once.flag(FlagKind.HUMAN_REQUEST), twice.flag(FlagKind.HUMAN_REQUEST)
    assert first is not None and second is not None
    assert second.level.rank > first.level.rank
    assert second.turns == 2


def test_recent_flags_fade_and_conversation_flags_stay(config: SignalConfig) -> None:
    turns = conversation(
        ("customer", "My dad passed away and I'm fed up with being passed around."),
        *[("customer", "Okay, thanks.")] * 5,
    )
    result = aggregate(turns, config)
    assert result.flag(FlagKind.FRUSTRATION) is None
    assert result.flag(FlagKind.BEREAVEMENT) is not None


def test_agent_turns_raise_no_flags(config: SignalConfig) -> None:
    turns = conversation(("agent", "Would you like me to cancel it and get a manager?"))
    assert aggregate(turns, config).flags == ()


def test_aggregate_takes_turn_objects_and_turn_signals(config: SignalConfig) -> None:
    @dataclass(frozen=True)
    class Turn:
        turn_id: str
        role: str
        text: str

    objects = [Turn("a", "customer", "I want to speak to a manager.")]
    from_objects = aggregate(objects, config)
    analysed = [analyse_turn(t.text, turn_id=t.turn_id, config=config) for t in objects]
    from_signals = aggregate(analysed, config)
    assert from_objects.flags == from_signals.flags
    assert isinstance(from_signals.turns[0], TurnSignals)
    assert from_objects.to_dict()["flags"][0]["kind"] == "human_request"


def test_flags_are_ordered_by_level(config: SignalConfig) -> None:
    result = aggregate(
        conversation(
            ("customer", "Is that a manager? I'll report you to Ofcom and the ombudsman.")
        ),
        config,
    )
    ranks = [f.level.rank for f in result.flags]
    assert ranks == sorted(ranks, reverse=True)
    assert result.highest_level is result.flags[0].level


# --- sentiment ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Brilliant, that's sorted it, thank you so much!", SentimentLabel.POSITIVE),
        ("Absolutely useless. Still waiting.", SentimentLabel.NEGATIVE),
        ("Can you tell me when my contract ends?", SentimentLabel.NEUTRAL),
        ("I'd like to pay my bill please.", SentimentLabel.NEUTRAL),
        ("The engineer was lovely but the internet is still not working.", SentimentLabel.NEGATIVE),
        ("It's not good enough.", SentimentLabel.NEGATIVE),
        ("Not impressed, the engineer never turned up.", SentimentLabel.NEGATIVE),
    ],
)
def test_sentiment_labels(config: SignalConfig, text: str, label: SentimentLabel) -> None:
    assert analyse_turn(text, turn_id="t", config=config).sentiment.label is label


def test_negation_flips_and_boosters_strengthen(config: SignalConfig) -> None:
    def score(text: str) -> float:
        return analyse_turn(text, turn_id="t", config=config).sentiment.score

    assert score("It is good.") > 0 > score("It is not good.")
    assert score("It is really good.") > score("It is good.")
    assert score("It is GOOD!!") > score("It is good.")


def test_sentiment_hits_point_at_the_words(config: SignalConfig) -> None:
    text = "Still waiting, this is useless."
    hits = analyse_turn(text, turn_id="t", config=config).sentiment.hits
    assert [text[h.start : h.end] for h in hits] == ["Still waiting", "useless"]
    assert all(h.valence < 0 for h in hits)


@pytest.mark.parametrize(
    ("scores", "trend"),
    [
        ([-0.8, -0.6, 0.1, 0.6], Trend.IMPROVING),
        ([0.5, 0.2, -0.4, -0.8], Trend.WORSENING),
        ([0.0, 0.05, -0.02, 0.01], Trend.STEADY),
        ([-0.9], Trend.STEADY),
        ([], Trend.STEADY),
    ],
)
def test_trend(config: SignalConfig, scores: list[float], trend: Trend) -> None:
    assert sentiment_trend(scores, config.sentiment).trend is trend


def test_conversation_trend_follows_the_customer(config: SignalConfig) -> None:
    turns = conversation(
        ("customer", "This is useless, I'm fed up."),
        ("agent", "I've found the fault and fixed it."),
        ("customer", "Oh, okay."),
        ("customer", "Brilliant, it's working again, thank you!"),
    )
    result = aggregate(turns, config)
    assert result.trend.trend is Trend.IMPROVING
    assert result.sentiment is not None and result.sentiment.label is SentimentLabel.POSITIVE


def test_embedding_head_blends_in_only_with_a_matching_vector() -> None:
    lexicon = SentimentLexicon(valence={"good": 1.9})
    # a head that reads the first embedding dimension as "positive"
    weights = np.zeros((3, 2 + N_LEXICON_FEATURES), dtype=np.float32)
    weights[2, 0] = 8.0
    weights[0, 1] = 8.0
    head = SentimentHead(
        model="fake",
        labels=tuple(SentimentLabel),
        weights=weights,
        bias=np.zeros(3, dtype=np.float32),
    )
    config = SentimentConfig(lexicon=lexicon, head=head, head_weight=1.0)
    plain = score_turn("the parcel came", config)
    assert plain.label is SentimentLabel.NEUTRAL and not plain.used_embedding
    blended = score_turn("the parcel came", config, embedding=np.array([1.0, 0.0], np.float32))
    assert blended.used_embedding and blended.label is SentimentLabel.POSITIVE
    negative = score_turn("the parcel came", config, embedding=np.array([0.0, 1.0], np.float32))
    assert negative.label is SentimentLabel.NEGATIVE
    wrong_size = score_turn("the parcel came", config, embedding=np.ones(5, np.float32))
    assert not wrong_size.used_embedding


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_bounded_score_and_valid_spans(text: str) -> None:
    config = _PACK_CONFIG
    signals = analyse_turn(text, turn_id="x", config=config)
    assert -1.0 <= signals.sentiment.score <= 1.0
    for flag in signals.flags:
        for e in flag.evidence:
            assert text[e.start : e.end] == e.quote and e.quote


_PACK_CONFIG = load_signal_config(PACK)


# --- the pack's labelled set and the time budget -------------------------------------------


def test_configured_detectors_reproduce_the_labelled_set(config: SignalConfig) -> None:
    records = [
        json.loads(line)
        for line in (PACK / "eval" / "signals_cs.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert len(records) >= 40
    assert sum(1 for r in records if not r["expected"]) >= 10  # plenty of "no flag" cases
    tp = fp = fn = 0
    wrong_levels = []
    for record in records:
        turns = [(f"t{i}", t["role"], t["text"]) for i, t in enumerate(record["turns"])]
        result = aggregate(turns, config)
        predicted = {str(f.kind) for f in result.flags}
        expected = set(record["expected"])
        tp += len(predicted & expected)
        fp += len(predicted - expected)
        fn += len(expected - predicted)
        for kind, level in record.get("levels", {}).items():
            flag = result.flag(kind)
            if (flag.level if flag else None) != level:
                wrong_levels.append((record["id"], kind))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.9, precision
    assert recall >= 0.9, recall
    assert not wrong_levels


def test_a_turn_takes_well_under_a_millisecond(config: SignalConfig) -> None:
    texts = [
        json.loads(line)["text"]
        for line in (PACK / "eval" / "sentiment_cs.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    analyse_turn(texts[0], turn_id="warm", config=config)
    started = time.perf_counter()
    for i, text in enumerate(texts):
        analyse_turn(text, turn_id=str(i), config=config)
    per_turn_ms = (time.perf_counter() - started) * 1000 / len(texts)
    # ~0.4 ms on the 2-core reference machine; the margin absorbs a busy CI runner
    assert per_turn_ms < 5.0


def test_config_errors_name_the_key() -> None:
    with pytest.raises(SignalConfigError) as info:
        build_signal_config({"flags": {"churn_risk": {"patterns": [{"match": "(cancel"}]}}})
    assert info.value.key == "flags.churn_risk.patterns[0].match"
    assert "unclosed group" in info.value.reason


# --- natural phrasing: misfires reported on the demo conversations ----------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("can't afford", "i cant afford it", "cant afford"),
        ("can't afford", "I can’t afford it", "can’t afford"),
        ("can't afford", "I can't afford it", "can't afford"),
        ("i've called", "ive called twice", "ive called"),
        ("(don't|do not) know", "i just dont know", "dont know"),
        # where dropping the apostrophe makes another common word, it stays required
        ("we're leaving", "we were leaving the house", None),
        ("we're leaving", "we’re leaving you", "we’re leaving"),
    ],
)
def test_apostrophes_in_a_pattern_word_are_optional(
    pattern: str, text: str, expected: str | None
) -> None:
    match = compile_pattern(pattern).search(text)
    assert (match.group() if match else None) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("i cant afford it", FlagKind.FINANCIAL_HARDSHIP),
        ("i just dont know what to do", FlagKind.DISTRESS),
        ("i cant cope with this anymore", FlagKind.DISTRESS),
        ("ive called 4 times now and its still not fixed", FlagKind.REPEAT_CONTACT),
    ],
)
def test_flags_are_raised_when_apostrophes_are_not_typed(
    config: SignalConfig, text: str, kind: FlagKind
) -> None:
    assert kind in kinds(text, config)


def test_negation_cues_work_without_apostrophes(config: SignalConfig) -> None:
    assert FlagKind.CHURN_RISK not in kinds("i dont want to cancel, i just want it fixed", config)
    assert FlagKind.CHURN_RISK not in kinds("im not going to cancel", config)


def test_a_bereaved_caller_asking_about_the_bank_is_not_churn(config: SignalConfig) -> None:
    turns = conversation(
        ("customer", "My dad passed away at the end of October, it's his account."),
        ("agent", "I'm very sorry for your loss."),
        (
            "customer",
            "His direct debit's still coming out - do I need to cancel that with the bank?",
        ),
    )
    result = aggregate(turns, config)
    assert result.flag(FlagKind.BEREAVEMENT) is not None
    assert result.flag(FlagKind.CHURN_RISK) is None
    alone = "do I need to cancel that with the bank?"
    assert FlagKind.CHURN_RISK not in kinds(alone, config)


def test_churn_risk_is_not_raised_for_a_bereaved_customer(config: SignalConfig) -> None:
    # Closing a deceased person's account is not a customer the Save desk should try to keep.
    turns = conversation(
        ("customer", "My husband died last month."),
        ("customer", "I need to cancel his broadband and his mobile contract."),
    )
    result = aggregate(turns, config)
    assert result.flag(FlagKind.BEREAVEMENT) is not None
    assert result.flag(FlagKind.CHURN_RISK) is None
    assert FlagKind.CHURN_RISK in kinds("I need to cancel my broadband contract.", config)


def test_an_ex_customer_disputing_an_etc_is_not_churn(config: SignalConfig) -> None:
    disputed = (
        "You've charged me an early termination fee of £182.40 when the only reason I left "
        "is that you couldn't fix my broadband for nearly two months"
    )
    assert FlagKind.CHURN_RISK not in kinds(disputed, config)
    asking = "What's the early termination fee if I leave now?"
    assert FlagKind.CHURN_RISK in kinds(asking, config)


def test_repeat_contact_is_about_contacting_us(config: SignalConfig) -> None:
    third_party = "I've already spoken to my solicitor and I'll be taking you to small claims."
    assert FlagKind.REPEAT_CONTACT not in kinds(third_party, config)
    assert FlagKind.REPEAT_CONTACT in kinds("I've already chased it twice on here", config)
    assert FlagKind.REPEAT_CONTACT in kinds("I've already spoken to someone about this.", config)
    assert FlagKind.REPEAT_CONTACT in kinds("I've been chasing this for weeks.", config)


@pytest.mark.parametrize(
    "text",
    [
        "My son's home from uni for Christmas soon, and between his gaming and my wife working "
        "from home, the Fibre 100 is creaking a bit in the evenings.",
        "No access? I was here the whole time! That's just unacceptable. I've lost a day's pay.",
    ],
)
def test_no_urgency_in_calm_context_or_past_losses(config: SignalConfig, text: str) -> None:
    assert FlagKind.URGENCY not in kinds(text, config)


def test_urgency_still_follows_a_live_loss(config: SignalConfig) -> None:
    assert FlagKind.URGENCY in kinds("I work from home and the wifi is down again.", config)
    assert FlagKind.URGENCY in kinds("This outage is costing me money every hour.", config)


def test_history_keeps_a_flag_that_has_faded(config: SignalConfig) -> None:
    turns = conversation(
        ("customer", "I'm furious about this."),
        ("customer", "I'm absolutely furious."),
        *[("customer", "Okay, thanks.")] * 5,
    )
    result = aggregate(turns, config)
    assert result.flag(FlagKind.FRUSTRATION) is None  # faded from the live flags
    past = next((f for f in result.history if f.kind is FlagKind.FRUSTRATION), None)
    assert past is not None and past.level is Level.CRITICAL
    assert [e.turn_id for e in past.evidence] == ["t1", "t2"]
    # conversation-scoped flags are the same object in both
    bereaved = aggregate(conversation(("customer", "My wife passed away.")), config)
    assert bereaved.history == bereaved.flags


@pytest.mark.parametrize(
    ("suppressed_by", "reason"),
    [(["grief"], "is not a flag kind"), (["churn_risk"], "cannot suppress itself")],
)
def test_suppressed_by_names_flag_kinds(suppressed_by: list[str], reason: str) -> None:
    rule = {"patterns": ["cancel*"], "suppressed_by": suppressed_by}
    with pytest.raises(SignalConfigError) as info:
        build_signal_config({"flags": {"churn_risk": rule}})
    assert info.value.key == "flags.churn_risk.suppressed_by[0]"
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("typed", "spelled"),
    [
        ("The engineer didnt turn up.", "The engineer didn't turn up."),
        ("The internet isnt working again.", "The internet isn’t working again."),
    ],
)
def test_sentiment_phrases_match_without_apostrophes(
    config: SignalConfig, typed: str, spelled: str
) -> None:
    def score(text: str) -> float:
        return analyse_turn(text, turn_id="t", config=config).sentiment.score

    assert score(typed) == score(spelled) < 0
