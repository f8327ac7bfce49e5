"""Suggested replies: candidates from templates and passages, ranking, priors and policy checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from rapidfuzz import fuzz

from copilot.core import suggestions
from copilot.core.models import ArticleHit, Passage, PassageHit
from copilot.core.suggestions import (
    Citation,
    NeutralPrior,
    Prior,
    ReplyTemplate,
    Suggestion,
    TemplateLibrary,
    prepare_passages,
    suggest,
)
from copilot.services.embedders import HashingEmbedder

EMBEDDER = HashingEmbedder(dimension=256)


@dataclass(frozen=True)
class T:
    turn_id: str
    role: str
    text: str


@dataclass(frozen=True)
class Flag:
    kind: str
    level: str
    evidence: tuple[object, ...] = ()


@dataclass(frozen=True)
class Finding:
    severity: str
    rule_id: str
    message: str


def cite(article_id: str) -> tuple[Citation, ...]:
    return (Citation(article_id, None, f"Title of {article_id}"),)


TEMPLATES = (
    ReplyTemplate(
        id="billing.double_charge_check",
        title="Check a reported double charge",
        text="I'm sorry you've been charged twice, {customer_name}. Could you tell me whether "
        "both payments of {amount} show as completed on your statement?",
        intents=("billing_double_charge",),
        citations=cite("KB-BIL-001"),
    ),
    ReplyTemplate(
        id="billing.double_charge_refund",
        title="Duplicate payment confirmed",
        text="The duplicate payment of {amount} will be refunded in full to your card within "
        "3 to 5 working days after our Billing Resolutions check.",
        intents=("billing_double_charge", "refund_request"),
        citations=cite("KB-BIL-001"),
    ),
    ReplyTemplate(
        id="delivery.running_late",
        title="Parcel running late",
        text="Order {order_number} is with ParcelSwift and running a little late. If it hasn't "
        "arrived 2 working days after the estimated date we'll open an investigation.",
        intents=("delivery_late",),
        citations=cite("KB-ORD-001"),
    ),
    ReplyTemplate(
        id="cancellation.save_offer",
        title="Save desk offer",
        text="Before I go ahead, there may be a discount of up to 20% available for 12 months.",
        intents=("cancel_contract",),
        unless=("bereavement", "financial_hardship"),
    ),
    ReplyTemplate(
        id="cancellation.notice",
        title="Cancellation notice",
        text="Cancelling needs 30 days' notice, and an early termination charge applies inside "
        "the minimum term.",
        intents=("cancel_contract",),
    ),
    ReplyTemplate(
        id="vulnerability.bereavement",
        title="Condolences",
        text="I'm very sorry for your loss. Our Bereavement Team will look after everything.",
        intents=("bereavement",),
        when=("bereavement",),
    ),
    ReplyTemplate(
        id="vulnerability.urgent_risk",
        title="Urgent risk",
        text="If you're in immediate danger, please call 999. Samaritans are free on 116 123.",
        when=("distress:high",),
    ),
    ReplyTemplate(
        id="account.password_reset",
        title="Reset a password",
        text="You can reset your password with Forgot password on the login page; the reset "
        "link works for 30 minutes.",
        intents=("password_reset",),
    ),
)


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return TemplateLibrary.build(
        TEMPLATES, EMBEDDER, article_audiences={"KB-BIL-001": "agent", "KB-BIL-002": "public"}
    )


def turns(*items: tuple[str, str]) -> tuple[T, ...]:
    return tuple(T(str(i), role, text) for i, (role, text) in enumerate(items))


def vector(text: str) -> np.ndarray:
    return EMBEDDER.embed([text])[0]


def run(
    library: TemplateLibrary,
    conversation: Sequence[T],
    *,
    intent: str | None = None,
    confidence: float = 0.0,
    **kwargs: object,
) -> tuple[Suggestion, ...]:
    customer = " ".join(t.text for t in conversation if t.role == "customer")
    return suggest(
        conversation,
        intent=intent,
        intent_confidence=confidence,
        query_vector=vector(customer),
        library=library,
        **kwargs,  # type: ignore[arg-type]
    )


DOUBLE_CHARGE = turns(
    ("agent", "Thanks for calling, you're speaking to Priya."),
    ("customer", "Hi, my name is Sarah Jones. I've been charged £38 twice for my bill."),
)


def test_the_template_for_the_predicted_intent_ranks_first(library: TemplateLibrary) -> None:
    out = run(library, DOUBLE_CHARGE, intent="billing_double_charge", confidence=0.91)
    assert out[0].kind == "template"
    assert out[0].id in {"billing.double_charge_check", "billing.double_charge_refund"}
    assert out[0].why.startswith("Fits intent billing_double_charge (0.91)")
    assert "cites KB-BIL-001" in out[0].why
    assert out[0].citations[0].article_id == "KB-BIL-001"


def test_the_intent_outranks_mere_word_overlap(library: TemplateLibrary) -> None:
    conversation = turns(("customer", "my parcel is late and I was charged twice for it"))
    out = run(library, conversation, intent="delivery_late", confidence=0.8)
    assert out[0].id == "delivery.running_late"


def test_slots_are_filled_from_the_conversation(library: TemplateLibrary) -> None:
    out = run(library, DOUBLE_CHARGE, intent="billing_double_charge", confidence=0.9)
    check = next(s for s in out if s.id == "billing.double_charge_check")
    assert "Sarah" in check.text and "£38" in check.text
    assert check.missing_slots == ()


def test_missing_slots_are_visible_and_reported(library: TemplateLibrary) -> None:
    conversation = turns(("customer", "my parcel still hasn't arrived, it's late"))
    out = run(library, conversation, intent="delivery_late", confidence=0.8)
    late = next(s for s in out if s.id == "delivery.running_late")
    assert "[order number]" in late.text
    assert late.missing_slots == ("order_number",)
    assert late.template_text.startswith("Order {order_number}")


def test_a_runner_up_intent_brings_its_templates_too(library: TemplateLibrary) -> None:
    conversation = turns(("customer", "I can't log in"))
    out = run(
        library,
        conversation,
        intent="account_locked",
        confidence=0.5,
        other_intents=[("password_reset", 0.4)],
    )
    assert [s.id for s in out][:1] == ["account.password_reset"]
    assert "Fits intent password_reset (0.40)" in out[0].why


def test_a_raised_flag_brings_its_template_and_unless_rules_one_out(
    library: TemplateLibrary,
) -> None:
    conversation = turns(("customer", "my husband died last week and I want to cancel"))
    out = run(
        library,
        conversation,
        intent="cancel_contract",
        confidence=0.7,
        flags=[Flag("bereavement", "high")],
    )
    ids = [s.id for s in out]
    assert "vulnerability.bereavement" in ids
    assert "cancellation.save_offer" not in ids  # never a Save desk offer to a bereaved customer
    bereavement = next(s for s in out if s.id == "vulnerability.bereavement")
    assert bereavement.why.startswith("Fits flag bereavement (high)")


def test_prefixed_flag_kinds_are_understood(library: TemplateLibrary) -> None:
    conversation = turns(("customer", "I can't afford it and want to cancel"))
    out = run(
        library,
        conversation,
        intent="cancel_contract",
        confidence=0.7,
        flags=[Flag("vulnerability_financial", "medium")],
    )
    assert "cancellation.save_offer" not in [s.id for s in out]


def test_a_when_condition_with_a_minimum_level(library: TemplateLibrary) -> None:
    conversation = turns(("customer", "everything is going wrong today"))
    low = run(library, conversation, flags=[Flag("distress", "medium")])
    high = run(library, conversation, flags=[Flag("distress", "high")])
    assert "vulnerability.urgent_risk" not in [s.id for s in low]
    assert "vulnerability.urgent_risk" in [s.id for s in high]


def test_the_prior_changes_the_order_and_shows_in_why(library: TemplateLibrary) -> None:
    class Feedback:
        def prior(self, item_id: str, intent: str | None) -> Prior:
            if item_id == "billing.double_charge_refund":
                return Prior(0.9, 10, "accepted 9/10 times")
            if item_id == "billing.double_charge_check":
                return Prior(0.1, 10, "accepted 1/10 times")
            return Prior()

    plain = run(library, DOUBLE_CHARGE, intent="billing_double_charge", confidence=0.9)
    learned = run(
        library, DOUBLE_CHARGE, intent="billing_double_charge", confidence=0.9, prior=Feedback()
    )
    order = [s.id for s in plain][:2]
    assert order == ["billing.double_charge_check", "billing.double_charge_refund"]
    assert [s.id for s in learned][:2] == list(reversed(order))
    assert learned[0].why.endswith("accepted 9/10 times")
    assert learned[0].confidence > next(s for s in plain if s.id == learned[0].id).confidence


def test_the_neutral_prior_changes_nothing(library: TemplateLibrary) -> None:
    a = run(library, DOUBLE_CHARGE, intent="billing_double_charge", confidence=0.9)
    b = run(
        library,
        DOUBLE_CHARGE,
        intent="billing_double_charge",
        confidence=0.9,
        prior=NeutralPrior(),
    )
    assert a == b


def test_a_draft_failing_the_policy_check_is_dropped(library: TemplateLibrary) -> None:
    checked: list[str] = []

    def draft_check(text: str) -> list[Finding]:
        checked.append(text)
        if "refunded in full" in text:
            return [Finding("warning", "no-promise", "Don't promise a refund")]
        if "Sarah" in text:
            return [Finding("info", "style", "Consider using the customer's name once")]
        return []

    out = run(
        library,
        DOUBLE_CHARGE,
        intent="billing_double_charge",
        confidence=0.9,
        draft_check=draft_check,
    )
    ids = [s.id for s in out]
    assert "billing.double_charge_refund" not in ids
    assert "billing.double_charge_check" in ids  # an info finding does not block
    assert all("[" not in text or "]" in text for text in checked)  # checked after filling
    assert any("£38" in text for text in checked)


def test_severity_enums_are_understood(library: TemplateLibrary) -> None:
    from enum import Enum

    class Severity(Enum):
        CRITICAL = "critical"

    def draft_check(text: str) -> list[object]:
        return [Finding(Severity.CRITICAL, "r", "m")]  # type: ignore[arg-type]

    out = run(
        library,
        DOUBLE_CHARGE,
        intent="billing_double_charge",
        confidence=0.9,
        draft_check=draft_check,
    )
    assert out == ()


def test_at_most_three_distinct_suggestions() -> None:
    base = "Thanks for waiting. Your order {order_number} is on its way with ParcelSwift today."
    near_copies = [
        ReplyTemplate(
            id=f"copy.{i}",
            title=f"Copy {i}",
            text=base.replace("today", word),
            intents=("order_tracking",),
        )
        for i, word in enumerate(["today", "today!", "now", "today.", "this morning"])
    ]
    others = [
        ReplyTemplate(
            id="other.a",
            title="A",
            text="You can track it in the My Kestrel app under Orders.",
            intents=("order_tracking",),
        ),
        ReplyTemplate(
            id="other.b",
            title="B",
            text="Standard delivery takes 3 to 5 working "
            "days; NextDay orders before 8pm arrive the next working day.",
            intents=("order_tracking",),
        ),
    ]
    lib = TemplateLibrary.build([*near_copies, *others], EMBEDDER)
    conversation = turns(("customer", "where is my order KS-10482275?"))
    out = run(lib, conversation, intent="order_tracking", confidence=0.9)
    assert len(out) == 3
    assert len({s.id for s in out}) == 3
    for i, a in enumerate(out):
        for b in out[i + 1 :]:
            assert fuzz.token_ratio(a.text, b.text) < 85
    assert sum(s.id.startswith("copy.") for s in out) == 1


def test_k_limits_the_number(library: TemplateLibrary) -> None:
    out = run(library, DOUBLE_CHARGE, intent="billing_double_charge", confidence=0.9, k=1)
    assert len(out) == 1
    assert run(library, DOUBLE_CHARGE, intent="billing_double_charge", confidence=0.9, k=0) == ()


def test_what_the_agent_just_said_is_not_suggested_again(library: TemplateLibrary) -> None:
    conversation = turns(
        ("customer", "I forgot my password"),
        (
            "agent",
            "You can reset your password with Forgot password on the login page; the "
            "reset link works for 30 minutes.",
        ),
        ("customer", "ok thanks, and I forgot my password for the app too"),
    )
    out = run(library, conversation, intent="password_reset", confidence=0.9)
    assert "account.password_reset" not in [s.id for s in out]


def test_nothing_is_suggested_when_nothing_fits(library: TemplateLibrary) -> None:
    conversation = turns(("customer", "zzz qqq xxyy"))
    assert run(library, conversation) == ()


def test_without_a_query_vector_templates_rank_by_intent(library: TemplateLibrary) -> None:
    out = suggest(
        DOUBLE_CHARGE,
        intent="delivery_late",
        intent_confidence=0.8,
        query_vector=None,
        library=library,
    )
    assert out[0].id == "delivery.running_late"


def test_a_query_vector_from_another_model_is_an_error(library: TemplateLibrary) -> None:
    with pytest.raises(ValueError, match="dimension"):
        suggest(
            DOUBLE_CHARGE,
            intent=None,
            intent_confidence=0.0,
            query_vector=np.ones(16, dtype=np.float32),
            library=library,
        )


# --- replies from retrieved passages ------------------------------------------------------------


def passage_hit(
    article_id: str, text: str, *, heading: str = "Refunds", score: float = 0.62
) -> ArticleHit:
    passage = Passage(
        passage_id=f"{article_id}#3",
        article_id=article_id,
        title=f"Title of {article_id}",
        heading_path=(f"Title of {article_id}", heading),
        text=text,
        ordinal=3,
    )
    return ArticleHit(
        article_id=article_id,
        title=passage.title,
        score=score,
        best=PassageHit(passage, score),
    )


CR_PASSAGE = (
    "Amount due – what we'll collect on the 7th. If the amount due shows as CR, your account "
    "is in credit and nothing will be collected. Check the Credits this month counter before "
    "you offer anything."
)


def test_a_passage_reply_cites_its_article_and_passage(library: TemplateLibrary) -> None:
    conversation = turns(("customer", "what does CR mean next to the amount due on my bill?"))
    out = run(library, conversation, hits=[passage_hit("KB-BIL-002", CR_PASSAGE)])
    article = next(s for s in out if s.kind == "article")
    assert article.citations == (Citation("KB-BIL-002", "KB-BIL-002#3", "Title of KB-BIL-002"),)
    assert article.source == "KB-BIL-002 Title of KB-BIL-002"
    assert article.text == (
        "I can help with that. If the amount due shows as CR, your account is in credit and "
        "nothing will be collected."
    )
    assert article.id.startswith("KB-BIL-002#3:")
    assert article.item_id == "KB-BIL-002#3"
    assert article.why.startswith("From KB-BIL-002 › Refunds (match 0.62)")


def test_passage_reply_ids_are_stable(library: TemplateLibrary) -> None:
    conversation = turns(("customer", "what does CR mean next to the amount due on my bill?"))
    hits = [passage_hit("KB-BIL-002", CR_PASSAGE)]
    first = [s.id for s in run(library, conversation, hits=hits)]
    assert first == [s.id for s in run(library, conversation, hits=hits)]


def test_agent_instructions_are_never_sent_to_a_customer(library: TemplateLibrary) -> None:
    text = (
        "Raise a Duplicate payment case to Billing Resolutions from the Payments history screen. "
        "Don't process the duplicate refund yourself using your refund allowance. "
        "The customer gets the full duplicate amount back."
    )
    conversation = turns(("customer", "you took the payment twice, I want the duplicate refund"))
    out = run(library, conversation, hits=[passage_hit("KB-BIL-001", text)])
    assert [s for s in out if s.kind == "article"] == []


def test_an_agent_articles_script_is_used_but_not_what_not_to_say(
    library: TemplateLibrary,
) -> None:
    say = (
        "Say:\n\"Let's work through a few checks together. Most drops like this are fixed without "
        'an engineer."\nDon\'t say:\n"An engineer will definitely fix the drops tomorrow."'
    )
    conversation = turns(("customer", "my broadband drops every night, do I need an engineer?"))
    out = run(
        library,
        conversation,
        hits=[passage_hit("KB-TEC-001", say, heading="What to say and what not to say")],
    )
    article = next(s for s in out if s.kind == "article")
    assert article.text == (
        "Let's work through a few checks together. Most drops like this are fixed without an "
        "engineer."
    )
    assert "definitely" not in article.text


def test_example_figures_in_a_script_are_not_passed_off_as_facts(
    library: TemplateLibrary,
) -> None:
    script = (
        '"I can see two payments of £38.00 for your October bill, both taken from the card '
        'ending 4821. Your reference is BR-204417."'
    )
    conversation = turns(("customer", "two payments were taken from my card for my bill"))
    out = run(
        library, conversation, hits=[passage_hit("KB-BIL-001", script, heading="What to say")]
    )
    assert [s for s in out if s.kind == "article"] == []


def test_a_single_shared_word_is_not_enough(library: TemplateLibrary) -> None:
    text = "The grey broadband cable must be pushed fully into the port marked Broadband."
    conversation = turns(("customer", "my husband died and the broadband is in his name"))
    out = run(library, conversation, hits=[passage_hit("KB-TEC-001", text)])
    assert [s for s in out if s.kind == "article"] == []


def test_prepare_passages_analyses_ahead(library: TemplateLibrary) -> None:
    hit = passage_hit("KB-BIL-002", CR_PASSAGE)
    assert prepare_passages([hit.best.passage], library) == 1


def test_a_weak_look_alike_does_not_pad_out_strong_suggestions(
    library: TemplateLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation = turns(
        ("customer", "my husband died, I need to reset his password on the login page")
    )

    def ids() -> list[str]:
        out = run(
            library,
            conversation,
            intent="bereavement",
            confidence=0.9,
            flags=[Flag("bereavement", "high")],
        )
        return [s.id for s in out]

    assert ids() == ["vulnerability.bereavement"]
    monkeypatch.setattr(suggestions, "RELATIVE_MIN_SCORE", 0.0)
    assert ids() == ["vulnerability.bereavement", "account.password_reset"]
