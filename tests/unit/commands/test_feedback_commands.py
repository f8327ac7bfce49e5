"""``copilot feedback report|export``, ``copilot gaps``, ``copilot harvest``, ``copilot erase``
and ``copilot bench feedback``, against a feedback store in the test's data directory."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from copilot.cli import build_parser, main
from copilot.core.feedback import FeedbackAction, FeedbackKind
from copilot.services.feedback_store import FeedbackStore, feedback_db_path

T0 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)
INTENT = "billing_double_charge"
EDITS = (
    "So sorry about the double charge, I've asked billing to refund the extra payment today.",
    "So sorry about the double charge, I've asked billing to refund the extra payment now.",
)


def populate(data_dir: Path) -> None:
    item = "billing.double_charge_card_refund"
    with FeedbackStore(feedback_db_path(data_dir)) as store:
        for n in range(3):
            conversation = f"conv-{n}"
            store.start_conversation(conversation, agent_id=f"agent{n}", customer_name="Sam Hill")
            store.record_turn(
                conversation,
                "t1",
                role="customer",
                text=f"Customer {n} asks about a double charge",
                ts=T0.timestamp(),
            )
            common = {
                "conversation_id": conversation,
                "turn_id": "t1",
                "item_id": item,
                "suggestion_id": item,
                "suggestion_kind": "template",
                "intent": INTENT,
                "agent_id": f"agent{n}",
            }
            store.record(
                FeedbackAction(kind=FeedbackKind.SUGGESTION_SHOWN, ts=T0, latency_ms=8, **common)
            )
            later = T0 + dt.timedelta(seconds=20)
            if n < 2:
                store.record(
                    FeedbackAction(
                        kind=FeedbackKind.EDIT,
                        shown_text="I can confirm two payments were taken.",
                        sent_text=EDITS[n],
                        ts=later,
                        **common,
                    )
                )
            else:
                store.record(
                    FeedbackAction(
                        kind=FeedbackKind.DISCARD, reason="wrong_topic", ts=later, **common
                    )
                )
        store.record(
            FeedbackAction(
                kind=FeedbackKind.RETRIEVAL_MISS,
                conversation_id="conv-9",
                query="=do you sell pet insurance",
                ts=T0,
            )
        )


def test_every_feedback_command_has_help_text() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in ("feedback", "gaps", "harvest", "erase"):
        assert commands[name].description
    bench = commands["bench"]._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert bench["feedback"].description


def test_report_json_is_one_object_with_the_rates(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(data_dir)
    assert main(["feedback", "report", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["shown"] == 3
    assert report["totals"]["edit_rate"] == round(2 / 3, 4)
    assert report["discard_reasons"] == {"wrong_topic": 1}
    assert main(["feedback", "report", "--since", "2025-03-04", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["shown"] == 0


def test_report_text_names_the_rates_and_bad_dates_are_user_errors(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(data_dir)
    assert main(["feedback", "report"]) == 0
    out = capsys.readouterr().out
    assert "Suggestions shown: 3" in out
    assert "billing.double_charge_card_refund" in out
    assert "wrong_topic 1" in out
    assert main(["feedback", "report", "--since", "yesterday"]) == 2
    assert "must be a date like" in capsys.readouterr().err


def test_export_csv_escapes_formulas(data_dir: Path, tmp_path: Path) -> None:
    populate(data_dir)
    out = tmp_path / "feedback.csv"
    assert main(["feedback", "export", "--format", "csv", "--out", str(out)]) == 0
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7
    miss = next(r for r in rows if r["kind"] == "retrieval_miss")
    assert miss["query"] == "'=do you sell pet insurance"
    json_out = tmp_path / "feedback.json"
    assert main(["feedback", "export", "--format", "json", "--out", str(json_out)]) == 0
    data = json.loads(json_out.read_text(encoding="utf-8"))
    assert len(data["actions"]) == 7
    assert not list(tmp_path.glob(".*.part"))


def test_report_and_export_filter_by_queue_and_source(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(data_dir)
    with FeedbackStore(feedback_db_path(data_dir)) as store:
        store.start_conversation("conv-0", queue="billing")
        store.record(
            FeedbackAction(
                kind=FeedbackKind.SUGGESTION_SHOWN,
                conversation_id="conv-0",
                item_id="ai:1f2e3d",
                suggestion_id="ai:1f2e3d",
                suggestion_kind="article",
                intent=INTENT,
                generated=True,
                ts=T0,
            )
        )
    assert main(["feedback", "report", "--queue", "billing", "--json"]) == 0
    billing = json.loads(capsys.readouterr().out)
    assert (billing["totals"]["shown"], billing["totals"]["edited"]) == (2, 1)
    assert billing["period"]["queue"] == "billing"
    assert main(["feedback", "report", "--source", "offline", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["shown"] == 3
    assert main(["feedback", "report", "--queue", "billing", "--source", "generated"]) == 0
    out = capsys.readouterr().out
    assert "queue billing, source generated" in out and "Suggestions shown: 1" in out
    with pytest.raises(SystemExit):
        main(["feedback", "report", "--source", "llm"])
    assert "invalid choice" in capsys.readouterr().err

    target = tmp_path / "ai.json"
    args = ["feedback", "export", "--format", "json", "--out", str(target)]
    assert main([*args, "--source", "generated"]) == 0
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["filters"] == {"source": "generated"}
    assert [a["suggestion_id"] for a in data["actions"]] == ["ai:1f2e3d"]
    assert main([*args, "--queue", "billing"]) == 0
    rows = json.loads(target.read_text(encoding="utf-8"))["actions"]
    assert {r["conversation_id"] for r in rows} == {"conv-0"} and len(rows) == 3


def test_gaps_json(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populate(data_dir)
    assert main(["gaps", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["events"] == 2
    topics = {g["topic"]: g for g in result["gaps"]}
    assert topics[INTENT]["examples"] == ["Customer 2 asks about a double charge"]
    assert topics[INTENT]["kinds"] == {"discard_wrong_topic": 1}


def test_harvest_lists_approves_and_rejects(
    data_dir: Path, tmp_path: Path, sample_content: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(data_dir)
    assert main(["harvest", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert [(g["count"], g["agents"]) for g in groups] == [(2, 2)]
    group_id = groups[0]["id"]

    assert main(["harvest", "--approve", group_id]) == 2  # which pack? never the sample
    assert "--content" in capsys.readouterr().err

    pack = tmp_path / "pack"
    for name in ("articles", "templates"):
        shutil.copytree(sample_content / name, pack / name)
    assert main(["harvest", "--approve", group_id, "--content", str(pack), "--json"]) == 0
    approved = json.loads(capsys.readouterr().out)
    assert approved["template_id"].startswith("harvested.")
    assert approved["template_id"] in (pack / "templates" / "harvested.yaml").read_text()
    assert main(["harvest", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["groups"] == []
    assert main(["harvest", "--reject", "h00000000"]) == 2
    assert "no harvested reply group" in capsys.readouterr().err


def test_erase_prints_what_was_removed(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populate(data_dir)
    assert main(["erase", "conv-1"]) == 0
    out = capsys.readouterr().out
    assert "erased conversation conv-1" in out
    assert "1 turn(s), 2 action(s)" in out
    assert main(["erase", "conv-1", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "conversation_id": "conv-1",
        "found": False,
        "conversations": 0,
        "turns": 0,
        "actions": 0,
    }
    with FeedbackStore(feedback_db_path(data_dir)) as store:
        assert store.counts()["conversations"] == 3


def test_bench_feedback_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "feedback", "--actions", "3000", "--single", "5", "--batched", "200"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["report"]["stored_actions"] == 3000
    assert result["bulk_load"]["actions"] == 3000
    assert result["single_commit"]["actions_per_s"] > 0
    assert result["report_within_1s"] is True
