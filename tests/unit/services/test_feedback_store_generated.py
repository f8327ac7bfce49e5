"""The feedback store marks what the optional language model wrote (migration m003_generated)."""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from copilot.core.feedback import FeedbackAction, FeedbackKind
from copilot.services.feedback_store import MIGRATIONS, SCHEMA_VERSION, FeedbackStore

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def action(
    kind: FeedbackKind, suggestion_id: str, *, generated: bool, **fields: object
) -> FeedbackAction:
    return FeedbackAction(
        kind=kind,
        conversation_id="c1",
        turn_id="t3",
        item_id=suggestion_id,
        suggestion_id=suggestion_id,
        suggestion_kind="article",
        rank=1,
        shown_text="I'm sorry for the trouble.",
        article_id="KB-BIL-001",
        generated=generated,
        ts=T0,
        **fields,  # type: ignore[arg-type]
    )


def test_generated_suggestions_are_stored_exported_and_inherited_by_ignored(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "feedback.sqlite3") as store:
        store.record(action(FeedbackKind.SUGGESTION_SHOWN, "ai:0a1b2c", generated=True))
        store.record(action(FeedbackKind.SUGGESTION_SHOWN, "KB-BIL-001#1:ff", generated=False))
        store.record(
            action(FeedbackKind.ACCEPT, "ai:0a1b2c", generated=True, sent_text="I'm sorry.")
        )
        store.record(action(FeedbackKind.SUGGESTION_SHOWN, "ai:9z9z9z", generated=True))
        assert store.end_conversation("c1") == 2  # the offline one and ai:9z9z9z were ignored
        rows = store.db.conn.execute(
            "SELECT kind, suggestion_id, generated FROM actions ORDER BY id"
        ).fetchall()
        out = io.StringIO()
        store.export(out, fmt="json")
    assert ("accept", "ai:0a1b2c", 1) in rows
    assert ("ignored", "ai:9z9z9z", 1) in rows
    assert ("ignored", "KB-BIL-001#1:ff", 0) in rows
    exported = json.loads(out.getvalue())["actions"]
    assert {(a["suggestion_id"], a["generated"]) for a in exported if a["kind"] == "accept"} == {
        ("ai:0a1b2c", 1)
    }


def test_a_database_from_before_the_marker_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite3"
    db = Database(path)
    MIGRATIONS.apply(db, stop_before="m003_generated")
    db.conn.execute(
        "INSERT INTO actions (action_id, kind, conversation_id, item_id, suggestion_id,"
        " suggestion_kind, ts)"
        " VALUES ('a1', 'suggestion_shown', 'c0', 'tpl', 'tpl', 'template', ?)",
        (T0.timestamp(),),
    )
    db.conn.commit()
    db.close()
    with FeedbackStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.db.conn.execute("SELECT generated FROM actions").fetchall() == [(0,)]
        store.record(action(FeedbackKind.SUGGESTION_SHOWN, "ai:abc", generated=True))
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT SUM(generated) FROM actions").fetchone() == (1,)
    conn.close()
