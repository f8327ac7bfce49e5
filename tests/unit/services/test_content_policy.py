"""Loading and validating the behaviour spec (policies.yaml) of a content pack."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from copilot.core.policy import RuleType, Severity
from copilot.services.content_policy import (
    PolicySpecError,
    article_ids,
    load_policy_spec,
)
from copilot.services.loaders import load_articles

SAMPLE_CONTENT = Path(__file__).resolve().parents[3] / "knowledge"

ARTICLE = """---
id: {id}
title: {id} title
status: published
---

# {id}

Body.
"""

GOOD_RULES = """
rules:
  - id: no-guarantees
    type: prohibited
    severity: warning
    message: Don't promise outcomes.
    article: KB-CMP-003
    agent_says: [i guarantee]
"""


def make_pack(
    tmp_path: Path, policies: str, article_ids_: tuple[str, ...] = ("KB-CMP-003",)
) -> Path:
    articles = tmp_path / "articles"
    articles.mkdir()
    for aid in article_ids_:
        (articles / f"{aid.lower()}.md").write_text(ARTICLE.format(id=aid), encoding="utf-8")
    (tmp_path / "policies.yaml").write_text(textwrap.dedent(policies), encoding="utf-8")
    return tmp_path


def problems(tmp_path: Path, policies: str, **kw: object) -> str:
    with pytest.raises(PolicySpecError) as info:
        load_policy_spec(make_pack(tmp_path, policies, **kw))  # type: ignore[arg-type]
    return str(info.value)


# -- the real pack -----------------------------------------------------------------------------


def test_the_sample_pack_loads_with_every_rule_type() -> None:
    spec = load_policy_spec(SAMPLE_CONTENT)
    assert len(spec.rules) >= 24
    assert {r.type for r in spec.rules} == set(RuleType)
    assert len({r.id for r in spec.rules}) == len(spec.rules)
    assert all(r.message and r.severity in Severity for r in spec.rules)
    assert "phone" in spec.channel_cues


def test_the_sample_pack_cites_only_live_articles() -> None:
    """A rule backed by a draft or archived article would send agents to outdated guidance."""
    spec = load_policy_spec(SAMPLE_CONTENT)
    loaded = load_articles(SAMPLE_CONTENT / "articles").by_id()
    for rule in spec.rules:
        assert rule.article_id in loaded, rule.id
        assert loaded[rule.article_id].article.status.value == "published", rule.id


def test_article_scan_reads_markdown_text_and_html_ids() -> None:
    ids = article_ids(SAMPLE_CONTENT / "articles")
    assert {"KB-IDV-001", "KB-DPA-003", "KB-TEC-005"} <= ids  # .md, .txt, .html
    assert ids == set(load_articles(SAMPLE_CONTENT / "articles").by_id())


# -- problems are reported with file, rule and reason ------------------------------------------


def test_a_small_valid_pack_loads(tmp_path: Path) -> None:
    spec = load_policy_spec(make_pack(tmp_path, GOOD_RULES))
    assert [r.id for r in spec.rules] == ["no-guarantees"]


def test_broken_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    text = problems(tmp_path, "rules:\n  - id: x\n    agent_says: [unclosed\n")
    assert "policies.yaml" in text
    assert "invalid YAML at line" in text


def test_bad_regex_names_the_rule_and_pattern(tmp_path: Path) -> None:
    text = problems(tmp_path, GOOD_RULES.replace("[i guarantee]", "['i (guarantee']"))
    assert "rule 'no-guarantees'" in text
    assert "i (guarantee" in text
    assert "not a valid regular expression" in text


def test_unknown_article_is_reported(tmp_path: Path) -> None:
    text = problems(tmp_path, GOOD_RULES.replace("KB-CMP-003", "KB-NOPE-404"))
    assert "rule 'no-guarantees'" in text
    assert "article KB-NOPE-404 does not exist" in text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("type: prohibited", "type: forbidden"), "unknown type 'forbidden'"),
        (("severity: warning", "severity: severe"), "unknown severity 'severe'"),
        (("    message: Don't promise outcomes.\n", ""), "message: is required"),
        (("agent_says:", "agent_sayz:"), "unknown key(s) agent_sayz"),
        (("[i guarantee]", "['@promises']"), "unknown cue list '@promises'"),
        (("[i guarantee]", "['(?:maybe)?']"), "matches empty text"),
    ],
)
def test_rule_problems_have_a_reason(tmp_path: Path, change: tuple[str, str], reason: str) -> None:
    text = problems(tmp_path, GOOD_RULES.replace(*change))
    assert "rule 'no-guarantees'" in text
    assert reason in text


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    second = GOOD_RULES.split("rules:\n")[1].replace("no-guarantees", "other")
    policies = GOOD_RULES.replace("KB-CMP-003", "KB-GONE-1") + second.replace(
        "[i guarantee]", "['(bad']"
    )
    with pytest.raises(PolicySpecError) as info:
        load_policy_spec(make_pack(tmp_path, policies))
    assert [p.rule_id for p in info.value.problems] == ["no-guarantees", "other"]


def test_duplicate_rule_ids_are_reported(tmp_path: Path) -> None:
    text = problems(tmp_path, GOOD_RULES + GOOD_RULES.split("rules:\n")[1])
    assert "rule 'no-guarantees': duplicate rule id" in text


def test_step_rules_need_a_trigger_and_completion(tmp_path: Path) -> None:
    policies = """
    rules:
      - id: idv
        type: required_step
        title: Identity verified
        severity: critical
        message: Verify identity.
        article: KB-CMP-003
        done_when: {agent_says: [date of birth]}
    """
    assert "rule 'idv': trigger: is required" in problems(tmp_path, policies)


def test_condition_problems(tmp_path: Path) -> None:
    policies = """
    rules:
      - id: esc
        type: escalation
        title: Supervisor offered
        severity: warning
        message: Offer a team leader.
        article: KB-CMP-003
        trigger: {flag: frustration, min_level: furious}
        done_when: {agent_says: [team leader]}
    """
    assert "unknown level 'furious'" in problems(tmp_path, policies)


def test_amount_rules_need_an_amount_group(tmp_path: Path) -> None:
    text = problems(tmp_path, GOOD_RULES + "    amount_over: 50\n")
    assert "(?P<amount>" in text


def test_intent_ids_are_checked_against_the_packs_intents(tmp_path: Path) -> None:
    policies = """
    rules:
      - id: complaint
        type: required_step
        title: Complaint logged
        severity: warning
        message: Log it.
        article: KB-CMP-003
        trigger: {intent: [complaint, complaints]}
        done_when: {agent_says: ['CMP-\\d{6}']}
    """
    pack = make_pack(tmp_path, policies)
    (pack / "intents.yaml").write_text("intents:\n  - id: complaint\n  - id: refund_request\n")
    with pytest.raises(PolicySpecError, match="unknown intent id\\(s\\) complaints"):
        load_policy_spec(pack)
    (pack / "intents.yaml").unlink()
    assert load_policy_spec(pack).rules[0].id == "complaint"  # no taxonomy: not checked


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicySpecError, match="file not found"):
        load_policy_spec(tmp_path)
