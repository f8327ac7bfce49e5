"""The panel's item models: valid Qt models (qtmodeltester), with the texts the panel shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt

from copilot.core.conversation import Conversation
from copilot.core.pipeline import Snapshot
from copilot.core.policy import (
    LedgerEntry,
    PolicyFinding,
    PolicyResult,
    RuleType,
    Severity,
    StepStatus,
)
from copilot.qt.item_models import (
    ArticleListModel,
    ConversationListModel,
    ConversationRow,
    FlagListModel,
    PolicyListModel,
    SuggestionListModel,
    TupleListModel,
    kind_label,
    policy_rows,
)
from copilot.services.transcripts import read_events

pytestmark = pytest.mark.gui

DEMOS = Path(__file__).resolve().parents[3] / "knowledge" / "demos"


def _snapshot(backend: Any, demo: str, conversation_id: str) -> Snapshot:
    conversation = Conversation()
    for event in read_events(next(DEMOS.glob(f"{demo}*.jsonl"))):
        conversation = conversation.apply(event)
    # Demo files share ids across tests: give this one its own, so caches never mix.
    renamed = Conversation()
    for turn in conversation.turns:
        renamed = renamed.apply(
            type(turn)(conversation_id, turn.turn_id, turn.role, turn.text, turn.ts)
        )
    snapshot: Snapshot = backend.assistant.analyse(renamed)
    return snapshot


@pytest.fixture(scope="module")
def legal(hashing_backend: Any) -> Snapshot:
    return _snapshot(hashing_backend, "05-", "models-legal")


def _texts(model: TupleListModel, role: int) -> list[Any]:
    return [model.data(model.index(r, 0), role) for r in range(model.rowCount())]


def test_flag_model_passes_the_model_tester_and_writes_levels_out(
    qtmodeltester: Any, legal: Snapshot
) -> None:
    model = FlagListModel()
    qtmodeltester.check(model)
    model.set_items(legal.flags)
    qtmodeltester.check(model)
    assert _texts(model, Qt.ItemDataRole.DisplayRole)[0] == "CRITICAL · Legal threat"
    assert _texts(model, FlagListModel.IconRole)[0] == "⚠"
    assert "“my solicitor”" in _texts(model, FlagListModel.EvidenceRole)[0]
    assert _texts(model, Qt.ItemDataRole.AccessibleTextRole)[0].startswith(
        "CRITICAL flag: Legal threat."
    )
    # Out of range and invalid indexes answer nothing rather than raising.
    assert model.data(QModelIndex()) is None
    assert model.value(99, FlagListModel.LevelRole) is None
    model.set_items(())
    qtmodeltester.check(model)


def test_policy_model_orders_breaches_first_and_skips_what_does_not_apply(
    qtmodeltester: Any, legal: Snapshot
) -> None:
    model = PolicyListModel()
    model.set_items(policy_rows(legal.policy))
    qtmodeltester.check(model)
    statuses = _texts(model, PolicyListModel.StatusRole)
    assert statuses == sorted(statuses, key=["breach", "missed", "pending", "done"].index)
    assert "not_applicable" not in statuses
    assert _texts(model, PolicyListModel.MarkRole)[-1] == "✓"


def test_policy_rows_show_each_breach_once_and_steps_with_their_advice() -> None:
    said = PolicyFinding(
        "no-card-number-request",
        Severity.CRITICAL,
        "Never ask for the card number",
        "KB-PAY-001",
        "t11",
        "what's the long number?",
    )
    missed = PolicyFinding(
        "idv",
        Severity.CRITICAL,
        "Verify identity before account details",
        "KB-ACC-001",
        "t4",
        "",
        RuleType.REQUIRED_STEP,
        StepStatus.MISSED,
    )
    result = PolicyResult(
        ledger=(
            LedgerEntry("idv", "Identity verified", StepStatus.MISSED, "t4", "KB-ACC-001"),
            LedgerEntry("rec", "Recording disclosure", StepStatus.DONE, "t1", "KB-ACC-002"),
            LedgerEntry("sar", "SAR logged", StepStatus.NOT_APPLICABLE, None, "KB-DPA-001"),
            LedgerEntry("cmp", "Complaint logged", StepStatus.PENDING, None, "KB-CMP-001"),
        ),
        findings=(said, said, missed),
    )
    rows = policy_rows(result)
    assert [(r.mark, r.status_text, r.title) for r in rows] == [
        ("✗", "CRITICAL", "Never ask for the card number"),
        ("✗", "MISSED", "Identity verified"),
        ("…", "PENDING", "Complaint logged"),
        ("✓", "DONE", "Recording disclosure"),
    ]
    assert rows[0].detail == "Said: “what's the long number?”"
    assert rows[1].detail == "Verify identity before account details"
    assert policy_rows(None) == ()


def test_suggestion_and_article_models_pass_the_model_tester(
    qtmodeltester: Any, legal: Snapshot
) -> None:
    suggestions = SuggestionListModel()
    suggestions.set_items(legal.suggestions)
    qtmodeltester.check(suggestions)
    assert suggestions.rowCount() >= 1
    first = legal.suggestions[0]
    assert suggestions.value(0, SuggestionListModel.TextRole) == first.text
    assert suggestions.value(0, SuggestionListModel.RankRole) == 1
    assert suggestions.value(0, SuggestionListModel.ConfidenceTextRole).endswith("%")
    assert "cites KB-" in suggestions.value(0, SuggestionListModel.SourceRole)
    articles = ArticleListModel()
    articles.set_items(legal.hits)
    qtmodeltester.check(articles)
    hit = legal.hits[0]
    assert articles.value(0, ArticleListModel.PassageRole) == hit.best.passage.text
    assert hit.title not in articles.value(0, ArticleListModel.HeadingRole).split(" › ")
    names = articles.roleNames()
    assert bytes(names[ArticleListModel.PassageIdRole].data()) == b"passageId"


def test_conversation_model_changes_row_by_row(qtmodeltester: Any) -> None:
    model = ConversationListModel()
    qtmodeltester.check(model)
    inserted: list[tuple[int, int]] = []
    changed: list[int] = []
    model.rowsInserted.connect(lambda _p, first, last: inserted.append((first, last)))
    model.dataChanged.connect(lambda top, _bottom, _roles=(): changed.append(top.row()))
    model.upsert(ConversationRow("a", "Conversation 1", "", "", "", 0))
    model.upsert(ConversationRow("b", "Conversation 2", "", "", "", 1))
    model.upsert(ConversationRow("a", "Nadia Rahman", "Cancel", "critical", "legal_threat", 4))
    model.upsert(ConversationRow("a", "Nadia Rahman", "Cancel", "critical", "legal_threat", 4))
    assert inserted == [(0, 0), (1, 1)]
    assert changed == [0]  # the repeat changed nothing
    assert model.value(0, Qt.ItemDataRole.DisplayRole) == "Nadia Rahman · ⚠ CRITICAL · Cancel"
    assert model.value(0, Qt.ItemDataRole.AccessibleTextRole) == (
        "Nadia Rahman, worst flag CRITICAL Legal threat, intent Cancel (4 turns, id a)"
    )
    model.upsert(ConversationRow("b", "<img src=x>", "", "", "", 1))
    # A tooltip is shown as rich text when it looks like HTML: customer words are escaped.
    assert "&lt;img src=x&gt;" in model.value(1, Qt.ItemDataRole.ToolTipRole)
    model.remove("a")
    model.remove("missing")
    assert model.row_of("b") == 0 and model.rowCount() == 1


def test_kind_labels_read_as_words() -> None:
    assert kind_label("legal_threat") == "Legal threat"
    assert kind_label("human_request") == "Human request"
