"""The whole pipeline, with the real model, reproduces every demo conversation's annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from copilot.core.conversation import Conversation
from copilot.core.pipeline import Assistant
from copilot.services.assistant import build_assistant
from copilot.services.transcripts import BadLine, read_events

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def assistant(
    sample_content_module: Path, real_embedder: Any, tmp_path_factory: pytest.TempPathFactory
) -> Assistant:
    data = tmp_path_factory.mktemp("demo-data")
    built, _index, report = build_assistant(sample_content_module, data, real_embedder)
    assert report.warnings == []
    return built


@pytest.fixture(scope="module")
def sample_content_module() -> Path:
    return Path(__file__).resolve().parents[2] / "knowledge"


def expectations() -> list[tuple[str, dict[str, Any]]]:
    folder = Path(__file__).resolve().parents[2] / "knowledge" / "demos"
    data = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))
    return sorted(data.items())


def test_there_are_at_least_twelve_annotated_demos() -> None:
    assert len(expectations()) >= 12


@pytest.mark.parametrize(("name", "expected"), expectations(), ids=lambda v: str(v)[:24])
def test_demo_annotations_are_reproduced(
    assistant: Assistant, sample_content_module: Path, name: str, expected: dict[str, Any]
) -> None:
    conversation = Conversation()
    intents: list[str | None] = []
    flags: set[str] = set()
    findings: set[str] = set()
    articles: set[str] = set()
    snapshot = None
    for event in read_events(sample_content_module / "demos" / name):
        assert not isinstance(event, BadLine), event
        conversation = conversation.apply(event)
        if not event.is_final:
            continue
        snapshot = assistant.analyse(conversation, channel=expected.get("channel"))
        assert snapshot.errors == {}, snapshot.errors
        intents.append(snapshot.intent.intent if snapshot.intent else None)
        flags |= {str(f.kind) for f in snapshot.flags}
        findings |= {f.rule_id for f in snapshot.policy.findings} if snapshot.policy else set()
        articles |= {h.article_id for h in snapshot.hits}
    assert snapshot is not None
    acceptable = {expected["intent"], *expected.get("intent_alternatives", [])}
    assert acceptable & set(intents), f"intents seen: {intents}"
    assert set(expected.get("flags", [])) <= flags, f"flags seen: {sorted(flags)}"
    assert not set(expected.get("absent_flags", [])) & flags, f"flags seen: {sorted(flags)}"
    assert set(expected.get("policy_findings", [])) <= findings, f"findings: {sorted(findings)}"
    assert snapshot.policy is not None
    for rule_id, status in (expected.get("ledger") or {}).items():
        entry = snapshot.policy.entry(rule_id)
        assert entry is not None and str(entry.status) == status, (rule_id, entry)
    if expected.get("articles"):
        assert set(expected["articles"]) & articles, f"articles seen: {sorted(articles)}"
    if expected.get("routing_layer"):
        assert snapshot.intent is not None
        assert snapshot.intent.layer == expected["routing_layer"]
