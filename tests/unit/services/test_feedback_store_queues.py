"""Reports, exports and summaries by queue and by source (migration m004_queue_and_source)."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from copilot.core.feedback import FeedbackAction, FeedbackKind
from copilot.services.feedback_store import MIGRATIONS, SCHEMA_VERSION, FeedbackStore

T0 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)
INTENT = "billing_double_charge"
SUMMARIES = ("counts_total", "counts_daily", "counts_queue_daily", "latency_daily")


def act(
    kind: FeedbackKind,
    conversation: str,
    item: str,
    *,
    seconds: float = 0.0,
    days: float = 0.0,
    generated: bool = False,
    **extra: Any,
) -> FeedbackAction:
    return FeedbackAction(
        kind=kind,
        conversation_id=conversation,
        turn_id="t1",
        item_id=item,
        suggestion_id=item,
        suggestion_kind="article" if "#" in item or item.startswith("ai:") else "template",
        intent=INTENT,
        ts=T0 + dt.timedelta(days=days, seconds=seconds),
        latency_ms=4.0 if kind is FeedbackKind.SUGGESTION_SHOWN else None,
        sent_text="Sure." if kind is FeedbackKind.ACCEPT else None,
        generated=generated,
        **extra,
    )


def seed(store: FeedbackStore) -> None:
    """Billing accepts its template; returns discards it; an AI draft is accepted in billing."""
    store.start_conversation("b1", queue="billing")
    store.start_conversation("r1", queue="returns")
    store.record_many(
        [
            act(FeedbackKind.SUGGESTION_SHOWN, "b1", "billing.check"),
            act(FeedbackKind.ACCEPT, "b1", "billing.check", seconds=9),
            act(FeedbackKind.SUGGESTION_SHOWN, "b1", "ai:draft1", generated=True),
            act(FeedbackKind.ACCEPT, "b1", "ai:draft1", seconds=12, generated=True),
            act(FeedbackKind.SUGGESTION_SHOWN, "r1", "billing.check", days=1),
            act(FeedbackKind.DISCARD, "r1", "billing.check", days=1, seconds=5, reason="outdated"),
            FeedbackAction(
                kind=FeedbackKind.FLAG_SHOWN, conversation_id="r1", flag_kind="churn_risk", ts=T0
            ),
            # No queue known for this conversation: in no queue's figures.
            act(FeedbackKind.SUGGESTION_SHOWN, "x1", "billing.check", days=1),
        ]
    )


def summaries(store: FeedbackStore) -> dict[str, list[tuple[Any, ...]]]:
    conn = store.db.conn
    return {
        table: sorted(conn.execute(f"SELECT * FROM {table} WHERE n != 0").fetchall())
        for table in SUMMARIES
    }


def assert_counts_match_the_actions(store: FeedbackStore) -> None:
    """What triggers keep equals the summaries recomputed from the stored actions alone."""
    kept = summaries(store)
    store.rebuild_summaries()
    assert kept == summaries(store)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with FeedbackStore(tmp_path / "feedback.sqlite3") as opened:
        yield opened


def test_a_queue_and_a_source_narrow_the_report(store: FeedbackStore) -> None:
    seed(store)
    assert store.report()["totals"]["shown"] == 4
    billing = store.report(queue="billing")
    assert (billing["totals"]["shown"], billing["totals"]["accepted"]) == (2, 2)
    assert billing["period"]["queue"] == "billing"
    returns = store.report(queue="returns")
    assert (returns["totals"]["shown"], returns["totals"]["discarded"]) == (1, 1)
    assert [r["flag"] for r in returns["flag_precision"]] == ["churn_risk"]
    assert store.report(queue="billing")["flag_precision"] == []
    assert [d["day"] for d in returns["trend"]] == ["2025-03-04"]
    assert store.report(queue="returns", since="2025-03-03", until="2025-03-03")["trend"] == []

    ai = store.report(source="generated")
    assert (ai["totals"]["shown"], ai["totals"]["accepted"]) == (1, 1)
    assert [r["article_id"] for r in ai["by_article"]] == ["ai:draft1"]
    assert ai["suggestion_latency_ms"]["n"] == 1
    assert [r["flag"] for r in ai["flag_precision"]] == ["churn_risk"]  # flags have no source
    offline = store.report(source="offline", queue="billing")
    assert (offline["totals"]["shown"], offline["by_template"][0]["template_id"]) == (
        1,
        "billing.check",
    )
    with pytest.raises(ValueError, match="source"):
        store.report(source="llm")  # type: ignore[arg-type]


def test_export_honours_queue_and_source(store: FeedbackStore) -> None:
    seed(store)

    def exported(**filters: Any) -> list[dict[str, Any]]:
        out = io.StringIO()
        store.export(out, fmt="json", **filters)
        data = json.loads(out.getvalue())
        assert data["filters"] == filters
        return list(data["actions"])

    assert {r["suggestion_id"] for r in exported(source="generated")} == {"ai:draft1"}
    offline = exported(source="offline", queue="billing")
    assert [(r["kind"], r["suggestion_id"]) for r in offline] == [
        ("suggestion_shown", "billing.check"),
        ("accept", "billing.check"),
    ]
    assert {r["conversation_id"] for r in exported(queue="returns")} == {"r1"}


def test_a_queue_learnt_after_the_first_actions_moves_their_counts(store: FeedbackStore) -> None:
    store.record(act(FeedbackKind.SUGGESTION_SHOWN, "c1", "billing.check"))
    store.record(act(FeedbackKind.ACCEPT, "c1", "billing.check", seconds=5))
    assert store.report(queue="billing")["totals"]["shown"] == 0
    # The next action names the queue: the conversation's earlier actions join it.
    store.record(act(FeedbackKind.SUGGESTION_SHOWN, "c1", "billing.other", queue="billing"))
    assert store.report(queue="billing")["totals"]["shown"] == 2
    store.record(act(FeedbackKind.SUGGESTION_SHOWN, "c2", "billing.check", days=1))
    store.start_conversation("c2", queue="returns")
    returns = store.report(queue="returns")
    assert (returns["totals"]["shown"], returns["totals"]["accepted"]) == (1, 0)
    assert {r["queue"] for r in store.iter_actions()} == {"billing", "returns"}
    assert_counts_match_the_actions(store)
    # Any change of an action's queue moves its counts (the trigger does not assume NULL).
    with store.db.conn:
        store.db.conn.execute("UPDATE actions SET queue = 'returns' WHERE conversation_id = 'c1'")
    assert store.report(queue="billing")["totals"]["shown"] == 0
    assert store.report(queue="returns")["totals"]["shown"] == 3
    assert_counts_match_the_actions(store)


def test_counts_stay_consistent_after_erase_and_purge(store: FeedbackStore) -> None:
    seed(store)
    store.end_conversation("b1", ended=(T0 + dt.timedelta(minutes=5)).timestamp())
    assert_counts_match_the_actions(store)
    store.erase("r1")
    assert store.report(queue="returns")["totals"]["shown"] == 0
    assert store.db.conn.execute(
        "SELECT COUNT(*) FROM counts_queue_daily WHERE queue = 'returns'"
    ).fetchone() == (0,)
    assert_counts_match_the_actions(store)
    # A retention purge removes the actions but keeps every count, per queue and source too.
    before = summaries(store)
    removed = store.purge_older_than(1, now=(T0 + dt.timedelta(days=30)).timestamp())
    assert removed["actions"] > 0 and store.counts()["actions"] == 0
    assert summaries(store) == before
    assert store.report(queue="billing", source="generated")["totals"]["accepted"] == 1


def test_bulk_import_counts_queues_and_sources_like_recording(tmp_path: Path) -> None:
    with (
        FeedbackStore(tmp_path / "one.sqlite3") as one,
        FeedbackStore(tmp_path / "bulk.sqlite3") as bulk,
    ):
        seed(one)
        rows = list(one.iter_actions())
        # The same actions; only each conversation's first names its queue.
        first = {r["conversation_id"]: r["action_id"] for r in reversed(rows)}
        actions = [
            FeedbackAction(
                kind=FeedbackKind(r["kind"]),
                conversation_id=r["conversation_id"],
                turn_id=r["turn_id"],
                item_id=r["item_id"],
                suggestion_id=r["suggestion_id"],
                suggestion_kind=r["suggestion_kind"],
                intent=r["intent"],
                sent_text=r["sent_text"],
                reason=r["reason"],
                flag_kind=r["flag_kind"],
                ts=dt.datetime.fromisoformat(r["ts"]),
                latency_ms=r["latency_ms"],
                queue=r["queue"] if first[r["conversation_id"]] == r["action_id"] else None,
                generated=bool(r["generated"]),
                action_id=r["action_id"],
            )
            for r in rows
        ]
        assert bulk.import_actions(actions) == len(actions)
        ours, theirs = summaries(one), summaries(bulk)
        assert ours["counts_queue_daily"], "the check below can fail"
        assert ours == theirs


def test_a_schema_3_database_is_migrated_keeping_purged_history(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite3"
    db = Database(path)
    MIGRATIONS.apply(db, stop_before="m004_queue_and_source")
    conn = db.conn
    ts = T0.timestamp()
    conn.executemany(
        "INSERT INTO conversations (id, started, queue) VALUES (?, ?, ?)",
        [("b1", ts, "billing"), ("r1", ts, "returns"), ("old", ts - 86400 * 100, "billing")],
    )
    rows = [
        # (action_id, kind, conversation, item, queue named by the action, generated, reason, ts)
        ("a1", "suggestion_shown", "b1", "billing.check", None, 0, None, ts),
        ("a2", "accept", "b1", "billing.check", None, 0, None, ts + 9),
        ("a3", "suggestion_shown", "b1", "ai:d1", "billing", 1, None, ts),
        ("a4", "discard", "b1", "ai:d1", "billing", 1, "wrong_tone", ts + 7),
        ("a5", "suggestion_shown", "r1", "billing.check", None, 0, None, ts + 86400),
        ("a6", "suggestion_shown", "old", "billing.check", None, 0, None, ts - 86400 * 100),
        ("a7", "accept", "old", "billing.check", None, 0, None, ts - 86400 * 100 + 5),
    ]
    conn.executemany(
        "INSERT INTO actions (action_id, kind, conversation_id, item_id, suggestion_id,"
        " suggestion_kind, intent, queue, generated, reason, ts, latency_ms)"
        " VALUES (?, ?, ?, ?, ?, 'template', ?, ?, ?, ?, ?, 3.0)",
        [(a, k, c, i, i, INTENT, q, g, r, t) for a, k, c, i, q, g, r, t in rows],
    )
    # A retention purge at schema 3: the old conversation's actions go, its counts stay.
    conn.execute("UPDATE store_state SET keep_counts = 1")
    conn.execute("DELETE FROM actions WHERE conversation_id = 'old'")
    conn.execute("UPDATE store_state SET keep_counts = 0")
    conn.commit()
    before = conn.execute("SELECT SUM(n) FROM counts_total").fetchone()[0]
    db.close()

    with FeedbackStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        conn = store.db.conn
        assert conn.execute("SELECT SUM(n) FROM counts_total").fetchone()[0] == before
        report = store.report()
        assert (report["totals"]["shown"], report["totals"]["accepted"]) == (4, 2)
        assert store.report(since="2024-01-01", until="2024-12-31")["totals"]["accepted"] == 1
        assert report["suggestion_latency_ms"]["n"] == 4
        billing = store.report(queue="billing")
        # The purged conversation's counts were kept without a queue: they were never split.
        assert (billing["totals"]["shown"], billing["totals"]["discarded"]) == (2, 1)
        assert store.report(queue="returns")["totals"]["shown"] == 1
        ai = store.report(source="generated")
        assert (ai["totals"]["shown"], ai["discard_reasons"]) == (1, {"wrong_tone": 1})
        assert store.report(source="offline")["totals"]["shown"] == 3
        # Actions that named no queue now carry their conversation's.
        assert {r["queue"] for r in store.iter_actions()} == {"billing", "returns"}
        # New actions are counted by the new triggers.
        store.record(act(FeedbackKind.SUGGESTION_SHOWN, "r1", "returns.label", days=1))
        assert store.report(queue="returns")["totals"]["shown"] == 2
        store.erase("b1")
        assert store.report(queue="billing")["totals"]["shown"] == 0
        assert store.report()["totals"]["accepted"] == 1  # the purged one
