"""Loading the reply templates of a content pack: the sample pack, and every kind of mistake."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from copilot.core.conversation import Conversation, parse_turn_event
from copilot.core.slots import SLOT_NAMES
from copilot.core.suggestions import FLAG_KINDS, suggest
from copilot.services.content_templates import (
    TemplateLibraryError,
    load_template_library,
    load_templates,
)
from copilot.services.embedders import HashingEmbedder

# --- the sample pack ----------------------------------------------------------------------------


def test_the_sample_pack_loads_without_problems(sample_content: Path) -> None:
    library = load_template_library(sample_content, HashingEmbedder(), strict=True)
    assert len(library) >= 45
    assert library.problems == ()
    assert library.embeddings is not None
    assert library.embeddings.shape == (len(library), 64)
    assert np.allclose(np.linalg.norm(library.embeddings, axis=1), 1.0, atol=1e-5)


def test_the_sample_pack_covers_every_area(sample_content: Path) -> None:
    templates, _, _ = load_templates(sample_content)
    areas = Counter(t.area for t in templates)
    for area in (
        "billing",
        "payments",
        "refunds",
        "delivery",
        "returns",
        "technical",
        "outages",
        "plans",
        "cancellation",
        "complaints",
        "escalation",
        "vulnerability",
        "privacy",
        "account",
    ):
        assert areas[area] >= 2, area


def test_sample_templates_use_the_packs_intents_and_real_articles(sample_content: Path) -> None:
    templates, problems, audiences = load_templates(sample_content)
    assert problems == []
    intents_file = sample_content / "intents.yaml"
    if intents_file.is_file():  # the intent taxonomy is another part of the pack
        known = {i["id"] for i in yaml.safe_load(intents_file.read_text())["intents"]}
        assert {i for t in templates for i in t.intents} <= known
    cited = {c.article_id for t in templates for c in t.citations}
    assert cited <= set(audiences)
    assert all(t.citations for t in templates if t.area not in ("general",))
    for template in templates:
        assert set(template.slots) <= SLOT_NAMES
        kinds = {w.partition(":")[0] for w in (*template.when, *template.unless)}
        assert kinds <= FLAG_KINDS


def test_sample_templates_never_ask_for_secrets_or_promise_outcomes(sample_content: Path) -> None:
    templates, _, _ = load_templates(sample_content)
    for template in templates:
        text = template.text.lower().replace("direct debit guarantee", "")
        for phrase in (
            "guarantee",
            "definitely",
            "i promise",
            "full card number",
            "security code",
            "cvv",
            "your password?",
        ):
            assert phrase not in text, (template.id, phrase)


def test_no_save_desk_offer_or_upsell_reaches_a_struggling_or_bereaved_customer(
    sample_content: Path,
) -> None:
    templates, _, _ = load_templates(sample_content)
    selling = [
        t
        for t in templates
        if t.id
        in {"cancellation.save_offer", "plans.broadband_upgrade", "plans.mobile_bigger_plan"}
    ]
    assert len(selling) == 3
    for template in selling:
        assert {"financial_hardship", "bereavement"} <= set(template.unless), template.id


def test_a_sample_conversation_gets_the_packs_double_charge_reply(sample_content: Path) -> None:
    embedder = HashingEmbedder()
    library = load_template_library(sample_content, embedder)
    conversation = Conversation()
    for i, (role, text) in enumerate(
        [
            ("agent", "Thanks for contacting Kestrel Connect, you're speaking to Priya."),
            ("customer", "Hi, my name is Sarah Jones. I've been charged £38 twice this month."),
        ]
    ):
        event = {"conversation_id": "c", "turn_id": str(i), "role": role, "text": text}
        conversation = conversation.apply(parse_turn_event(event))
    out = suggest(
        conversation.turns,
        intent="billing_double_charge",
        intent_confidence=0.9,
        query_vector=embedder.embed([conversation.turns[-1].text])[0],
        library=library,
    )
    assert 1 <= len(out) <= 3
    assert out[0].id.startswith("billing.double_charge")
    assert "KB-BIL-001" in [c.article_id for c in out[0].citations]
    assert "£38" in " ".join(s.text for s in out)


# --- mistakes -----------------------------------------------------------------------------------

ARTICLE = """---
id: {id}
title: {title}
product: account
audience: agent
owner: billing-team
updated: 2026-01-01
expires: {expires}
status: {status}
---
# {title}

Some text about {title}.
"""


def make_pack(tmp_path: Path, files: dict[str, str]) -> Path:
    pack = tmp_path / "pack"
    (pack / "articles").mkdir(parents=True)
    (pack / "templates").mkdir()
    for article_id, status, expires in (
        ("KB-T-001", "published", "2027-12-31"),
        ("KB-T-002", "archived", "2027-12-31"),
        ("KB-T-003", "published", "2026-01-31"),
    ):
        (pack / "articles" / f"{article_id.lower()}.md").write_text(
            ARTICLE.format(
                id=article_id, title=f"Article {article_id}", status=status, expires=expires
            ),
            encoding="utf-8",
        )
    for name, content in files.items():
        (pack / "templates" / name).write_text(content, encoding="utf-8")
    return pack


GOOD = """
area: billing
templates:
  - id: billing.good
    title: A good template
    intents: [billing_double_charge]
    articles: [KB-T-001]
    when: [frustration, "distress:high"]
    unless: [vulnerability_bereavement]
    tone: empathetic
    text: >-
      Sorry, {customer_name}: the payment of {amount}
      is being checked.
"""

BAD = """
templates:
  - id: billing.good
    title: Same id as in a.yaml
    text: Hello.
  - id: billing.unknown_slot
    title: Unknown slot
    text: Your parcel {tracking_number} is on its way.
  - id: billing.unknown_article
    title: Cites a missing article
    articles: [KB-T-404]
    text: Hello.
  - id: billing.archived_article
    title: Cites an archived article
    articles: [KB-T-002]
    text: Hello.
  - id: billing.unknown_flag
    title: Unknown flag
    when: [grumpy]
    text: Hello.
  - id: billing.stray_brace
    title: Stray brace
    text: Your order {order_number is late.
  - id: billing.typo_field
    title: Typo in a field name
    intent: [billing_double_charge]
    text: Hello.
  - id: billing.no_text
    title: No text
  - id: Bad Id!
    title: Invalid id
    text: Hello.
  - just a string
  - id: billing.expired_article
    title: Cites an expired article
    articles: [KB-T-003]
    text: Still loaded, but needs review.
"""


def test_the_good_template_is_parsed_fully(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, {"a.yaml": GOOD})
    templates, problems, audiences = load_templates(pack, today=dt.date(2026, 11, 23))
    assert problems == []
    (template,) = templates
    assert template.id == "billing.good"
    assert template.area == "billing"
    assert template.intents == ("billing_double_charge",)
    assert template.when == ("frustration", "distress:high")
    assert template.unless == ("bereavement",)  # the prefixed name is understood
    assert template.tone == "empathetic"
    assert template.text == "Sorry, {customer_name}: the payment of {amount} is being checked."
    assert template.slots == ("customer_name", "amount")
    assert [(c.article_id, c.title) for c in template.citations] == [
        ("KB-T-001", "Article KB-T-001")
    ]
    assert template.source_path.endswith("a.yaml")
    assert audiences["KB-T-001"] == "agent"


def test_every_problem_names_file_template_and_reason(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, {"a.yaml": GOOD, "b.yaml": BAD})
    templates, problems, _ = load_templates(pack, today=dt.date(2026, 11, 23))
    by_id = {p.template_id: p for p in problems}
    assert [t.id for t in templates] == ["billing.good", "billing.expired_article"]
    for problem in problems:
        assert problem.path.endswith("b.yaml")
    expected = {
        "billing.good": "duplicate template id (also in",
        "billing.unknown_slot": "unknown slot(s) {tracking_number}",
        "billing.unknown_article": "cites article KB-T-404 which does not exist",
        "billing.archived_article": "cites article KB-T-002 which is archived",
        "billing.unknown_flag": "unknown flag 'grumpy'",
        "billing.stray_brace": "unbalanced",
        "billing.typo_field": "unknown field(s) intent",
        "billing.no_text": "missing 'text'",
        "Bad Id!": "invalid 'id'",
        "#10": "must be a mapping",
        "billing.expired_article": "cites article KB-T-003 which expired on 2026-01-31",
    }
    assert set(by_id) == set(expected)
    for template_id, reason in expected.items():
        assert reason in by_id[template_id].reason, (template_id, by_id[template_id].reason)
        message = str(by_id[template_id])
        assert "b.yaml" in message and template_id in message
    assert by_id["billing.expired_article"].skipped is False
    assert by_id["billing.unknown_slot"].skipped is True


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path, {"a.yaml": GOOD, "broken.yaml": "templates:\n  - id: x\n   title: [\n"}
    )
    templates, problems, _ = load_templates(pack)
    assert [t.id for t in templates] == ["billing.good"]
    (problem,) = problems
    assert problem.path.endswith("broken.yaml")
    assert problem.template_id == ""
    assert "invalid YAML at line" in problem.reason


def test_strict_loading_raises_with_every_problem(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, {"a.yaml": GOOD, "b.yaml": BAD})
    with pytest.raises(TemplateLibraryError) as caught:
        load_template_library(pack, None, strict=True, today=dt.date(2026, 11, 23))
    assert len(caught.value.problems) == 11
    assert "b.yaml: billing.unknown_slot: unknown slot(s) {tracking_number}" in str(caught.value)


def test_lenient_loading_keeps_the_good_templates(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, {"a.yaml": GOOD, "b.yaml": BAD})
    library = load_template_library(pack, HashingEmbedder(), today=dt.date(2026, 11, 23))
    assert [t.id for t in library.templates] == ["billing.good", "billing.expired_article"]
    assert len(library.problems) == 11
    assert library.embeddings is not None and library.embeddings.shape[0] == 2


def test_intents_not_in_the_taxonomy_are_reported_but_loaded(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, {"a.yaml": GOOD.replace("billing_double_charge", "made_up")})
    (pack / "intents.yaml").write_text(
        "intents:\n  - id: billing_double_charge\n    name: Charged twice\n", encoding="utf-8"
    )
    templates, problems, _ = load_templates(pack)
    assert [t.id for t in templates] == ["billing.good"]
    (problem,) = problems
    assert "made_up not in intents.yaml" in problem.reason
    assert problem.skipped is False


def test_a_missing_templates_directory_is_reported(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, {})
    shutil.rmtree(pack / "templates")
    library = load_template_library(pack, HashingEmbedder())
    assert len(library) == 0
    assert library.embeddings is None
    assert "templates directory not found" in library.problems[0].reason


@pytest.mark.slow
def test_the_real_model_finds_the_right_template_from_the_customers_words(
    sample_content: Path, real_embedder: object
) -> None:
    library = load_template_library(sample_content, real_embedder)  # type: ignore[arg-type]
    cases = {
        "ParcelSwift says my parcel was delivered but it's not here": "delivery.marked_delivered",
        "I've forgotten my password and need to reset it": "account.password_reset",
        "can I get my PAC code, I'm moving my number to another network": "cancellation.pac_code",
        "I want a copy of all the personal data you hold about me": "privacy.sar_logged",
    }
    for words, expected in cases.items():
        vector = real_embedder.embed([words])[0]  # type: ignore[attr-defined]
        conversation = Conversation().apply(
            parse_turn_event(
                {"conversation_id": "c", "turn_id": "1", "role": "customer", "text": words}
            )
        )
        out = suggest(
            conversation.turns,
            intent=None,
            intent_confidence=0.0,
            query_vector=vector,
            library=library,
        )
        assert expected in [s.id for s in out], (words, [s.id for s in out])
