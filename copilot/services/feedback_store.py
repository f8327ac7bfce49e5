"""The feedback store: conversations, turns and every agent action, in SQLite (sqlite-utils).

What is stored (redacted text only; every text field goes through
`copilot.core.redaction.redact` again here, so a card number never reaches disk even when a
caller forgot):

* ``conversations``: id, started, ended, agent, queue, channel, customer display name;
* ``turns``: role, redacted text, time;
* ``actions``: one row per `FeedbackAction`: suggestions shown (item, kind, version, rank,
  score, latency), accept / edit (sent text, edit distance) / discard (reason) / ignored,
  time to action, article helpful / not helpful, flags shown and flagged "not right", intent
  corrections, retrieval misses;
* summaries kept by triggers in the same transaction as each insert: ``counts_total`` (all
  time), ``counts_daily`` (per UTC day), ``counts_queue_daily`` (the daily counts again, per
  queue, queue first, for the queue filter) and ``latency_daily`` (a histogram), each split by
  source (``generated``: offline or AI-generated), so reports over millions of actions read
  thousands of rows; and ``items`` (item -> article and version). An action that names no
  queue takes its conversation's, written into the action's row, so every count follows from
  the row alone and erasing it takes back exactly what inserting it added;
* ``harvest_decisions``: harvested replies approved or rejected.

Threading and durability: ONE writer. In the app the ``db`` lane's single thread
(`copilot.qt.tasks`) creates the `FeedbackStore` and makes every call on it; the connection
refuses use from any other thread (sqlite3's ``check_same_thread``). `FeedbackStore.prior` and
`FeedbackPriors` are the exception: they read an in-memory table (refreshed after each write)
and may be called from the interactive lane while the db lane writes. The database runs in WAL
mode with ``synchronous=FULL``, and `FeedbackStore.record` returns only after its COMMIT, so
an action the panel acknowledges survives a crash or power cut. ``copilot`` commands open the
same file from another process; SQLite's locking (with a busy timeout) serialises them.

Schema changes are sqlite-utils `Migrations` (set ``copilot.feedback``, recorded in
``_sqlite_migrations``); `SCHEMA_VERSION` is their count and is mirrored in
``PRAGMA user_version``. A database written by a newer version is refused, not guessed at.

Retention: `FeedbackStore.purge_older_than` removes old conversations, turns and actions but
keeps the daily counts (they hold no text), so trends and priors survive; `FeedbackStore.erase`
removes one conversation completely, counts included, then checkpoints the WAL (TRUNCATE) and
VACUUMs so its text is in none of the database files.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from sqlite_utils import Database, Migrations

from copilot.core.feedback import FeedbackAction, FeedbackKind
from copilot.core.redaction import redact
from copilot.core.suggestions import Prior

__all__ = [
    "DB_FILENAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SOURCES",
    "FeedbackPriors",
    "FeedbackStore",
    "FeedbackStoreError",
    "HarvestCluster",
    "KnowledgeGap",
    "escape_csv_cell",
    "feedback_db_path",
]

DB_FILENAME = "feedback.sqlite3"
#: Kinds that answer a shown suggestion; priors count accept, edit and discard.
OUTCOME_KINDS: tuple[str, ...] = ("accept", "edit", "discard", "ignored")
PRIOR_KINDS: tuple[str, ...] = ("accept", "edit", "discard")
#: An edit counts half an accept in the prior: the suggestion helped but needed work.
EDIT_WEIGHT = 0.5
#: Weight of the item's all-intent prior when judging it for one intent (pseudo-observations).
INTENT_SHRINK = 2.0
HARVEST_SIMILARITY = 80.0
HARVEST_MIN_WORDS = 5
#: An edit this close to what was shown (rapidfuzz ratio) changed a name or a typo: not wording.
HARVEST_TRIVIAL_EDIT = 97.0
GAP_SIMILARITY = 70.0
GAP_TEXT_EVENTS = 1000
HARVESTED_FILE = "harvested.yaml"
#: At most this many corrected texts are learnt as intent examples (the newest).
INTENT_EXAMPLES_LIMIT = 2000
#: Where a suggestion came from, in ``generated`` order: the offline pipeline (templates and
#: knowledge passages) or the optional language model.
SOURCES: tuple[str, ...] = ("offline", "generated")
_SUGGESTION_KINDS_SQL = "'suggestion_shown', 'accept', 'edit', 'discard', 'ignored'"
_CSV_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")

_ACTION_COLUMNS: tuple[str, ...] = (
    "action_id",
    "kind",
    "conversation_id",
    "turn_id",
    "item_id",
    "suggestion_id",
    "suggestion_kind",
    "rank",
    "score",
    "shown_text",
    "sent_text",
    "edit_distance",
    "reason",
    "intent",
    "flag_kind",
    "flag_rule",
    "corrected_intent",
    "ts",
    "latency_ms",
    "agent_id",
    "queue",
    "channel",
    "item_version",
    "article_id",
    "query",
    "generated",
    "counted",
)
_INSERT_ACTION = (
    f"INSERT OR IGNORE INTO actions ({', '.join(_ACTION_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in _ACTION_COLUMNS)})"
)


class FeedbackStoreError(RuntimeError):
    """The feedback database cannot be used as asked; the message says why."""


def feedback_db_path(data_dir: Path) -> Path:
    """Where the feedback database lives inside the user data directory."""
    return Path(data_dir) / DB_FILENAME


# --- schema -------------------------------------------------------------------------------------

MIGRATIONS = Migrations("copilot.feedback")


@MIGRATIONS(name="m001_initial")
def _m001_initial(db: Database) -> None:
    """The first schema: conversations, turns and a flat log of actions."""
    db.table("conversations").create(
        {
            "id": str,
            "started": float,
            "ended": float,
            "agent_id": str,
            "queue": str,
            "channel": str,
            "customer_name": str,
        },
        pk="id",
    )
    db.table("turns").create(
        {"conversation_id": str, "turn_id": str, "role": str, "text": str, "ts": float},
        pk=("conversation_id", "turn_id"),
        not_null={"role", "text", "ts"},
    )
    db.table("actions").create(
        {
            "id": int,
            "action_id": str,
            "kind": str,
            "conversation_id": str,
            "turn_id": str,
            "item_id": str,
            "suggestion_id": str,
            "suggestion_kind": str,
            "rank": int,
            "score": float,
            "shown_text": str,
            "sent_text": str,
            "edit_distance": int,
            "reason": str,
            "intent": str,
            "flag_kind": str,
            "flag_rule": str,
            "corrected_intent": str,
            "ts": float,
            "latency_ms": float,
            "agent_id": str,
            "queue": str,
            "channel": str,
        },
        pk="id",
        not_null={"action_id", "kind", "conversation_id", "ts"},
    )
    db.table("actions").create_index(["action_id"], unique=True)
    db.table("actions").create_index(["conversation_id"], index_name="actions_conversation")


def _item_key(p: str) -> str:
    """SQL for what a row's counts are kept against (``p`` is ``NEW.``, ``OLD.`` or "")."""
    return (
        f"CASE WHEN {p}kind IN ('flag_shown', 'flag_wrong')"
        f" THEN COALESCE({p}flag_rule, {p}flag_kind, '')"
        f" WHEN {p}kind IN ('article_helpful', 'article_not_helpful')"
        f" THEN COALESCE({p}article_id, {p}item_id, '')"
        f" ELSE COALESCE({p}item_id, '') END"
    )


def _detail(p: str) -> str:
    return f"COALESCE({p}reason, {p}corrected_intent, '')"


def _day(p: str) -> str:
    return f"date({p}ts, 'unixepoch')"


def _latency_bucket(p: str) -> str:
    """SQL for a latency's histogram bucket: 0.1 ms steps below 100 ms, 1 ms below 10 s."""
    value = f"MAX(COALESCE({p}latency_ms, 0), 0)"
    return (
        f"CASE WHEN {value} < 100 THEN CAST({value} * 10 AS INTEGER)"
        f" WHEN {value} < 10000 THEN 1000 + CAST({value} - 100 AS INTEGER)"
        f" ELSE 20000 + MIN(CAST(({value} - 10000) / 100 AS INTEGER), 100000) END"
    )


def _bucket_value(bucket: int) -> float:
    """The middle of a latency bucket, in ms (inverse of `_latency_bucket`)."""
    if bucket < 1000:
        return (bucket + 0.5) / 10
    if bucket < 20000:
        return 100 + (bucket - 1000) + 0.5
    return 10000 + (bucket - 20000) * 100 + 50


#: What the summary counts are kept against. Version 2 (m002) had no ``generated``; m004 added
#: it, and the per-queue copy of the daily counts (``counts_queue_daily``, queue first).
_COUNT_KEY_V2 = ("kind", "suggestion_kind", "intent", "item", "detail")
_COUNT_KEY = (*_COUNT_KEY_V2, "generated")


def _count_values(p: str, *, generated: bool = True) -> str:
    values = (
        f"{p}kind, COALESCE({p}suggestion_kind, ''), COALESCE({p}intent, ''),"
        f" {_item_key(p)}, {_detail(p)}"
    )
    return values + (f", {p}generated" if generated else "")


def _count_match(p: str, *, generated: bool = True) -> str:
    match = (
        f"kind = {p}kind AND suggestion_kind = COALESCE({p}suggestion_kind, '')"
        f" AND intent = COALESCE({p}intent, '') AND item = {_item_key(p)}"
        f" AND detail = {_detail(p)}"
    )
    return match + (f" AND generated = {p}generated" if generated else "")


def _queue(p: str) -> str:
    return f"COALESCE({p}queue, '')"


def _count_upsert(table: str, key: Sequence[str], values: str, p: str, where: str = "") -> str:
    """SQL adding one action (``p`` = ``NEW.``) to a summary table's row for its key."""
    columns = ", ".join(key)
    head = f"INSERT INTO {table} ({columns}, n, latency_sum, latency_n)"
    tail = (
        f" ON CONFLICT ({columns}) DO UPDATE SET n = n + 1,"
        " latency_sum = latency_sum + excluded.latency_sum,"
        " latency_n = latency_n + excluded.latency_n;"
    )
    amounts = f"1, COALESCE({p}latency_ms, 0), {p}latency_ms IS NOT NULL"
    if where:
        # An upsert from a SELECT needs its WHERE (SQLite's parser would read ON as a join).
        return f"{head} SELECT {values}, {amounts} WHERE {where}{tail}"
    return f"{head} VALUES ({values}, {amounts}){tail}"


def _count_remove(table: str, match: str, p: str) -> str:
    """SQL taking one action (``p`` = ``OLD.``) out of a summary table's row for its key."""
    return (
        f"UPDATE {table} SET n = n - 1, latency_sum = latency_sum - COALESCE({p}latency_ms, 0),"
        f" latency_n = latency_n - ({p}latency_ms IS NOT NULL) WHERE {match};"
    )


def _summary_triggers(version: int = 4) -> tuple[str, ...]:
    """The triggers keeping the summaries, as migration `version` (2 or 4) created them.

    Version 2 is kept verbatim: a database migrated from scratch passes through it.
    """
    v4 = version >= 4
    key = _COUNT_KEY if v4 else _COUNT_KEY_V2
    values = _count_values("NEW.", generated=v4)
    latency_key = (
        "day, suggestion_kind, generated, bucket" if v4 else "day, suggestion_kind, bucket"
    )
    latency_values = (
        f"{_day('NEW.')}, COALESCE(NEW.suggestion_kind, ''),"
        + (" NEW.generated," if v4 else "")
        + f" {_latency_bucket('NEW.')}"
    )
    latency_match = (
        f"day = {_day('OLD.')} AND suggestion_kind = COALESCE(OLD.suggestion_kind, '')"
        + (" AND generated = OLD.generated" if v4 else "")
        + f" AND bucket = {_latency_bucket('OLD.')}"
    )
    old_match = _count_match("OLD.", generated=v4)
    queue_key = ("queue", "day", *_COUNT_KEY)
    queue_values = f"{_queue('NEW.')}, {_day('NEW.')}, {values}"
    queue_add = (
        _count_upsert(
            "counts_queue_daily", queue_key, queue_values, "NEW.", f"{_queue('NEW.')} != ''"
        )
        if v4
        else ""
    )
    queue_match = f"queue = {_queue('OLD.')} AND day = {_day('OLD.')} AND {old_match}"
    queue_remove = _count_remove("counts_queue_daily", queue_match, "OLD.") if v4 else ""
    triggers = [
        f"""
        CREATE TRIGGER actions_count AFTER INSERT ON actions WHEN NEW.counted = 1
        BEGIN
            {_count_upsert("counts_total", key, values, "NEW.")}
            {_count_upsert("counts_daily", ("day", *key), f"{_day('NEW.')}, {values}", "NEW.")}
            {queue_add}
        END
        """,
        f"""
        CREATE TRIGGER actions_latency AFTER INSERT ON actions
        WHEN NEW.kind = 'suggestion_shown' AND NEW.latency_ms IS NOT NULL
        BEGIN
            INSERT INTO latency_daily ({latency_key}, n) VALUES ({latency_values}, 1)
            ON CONFLICT ({latency_key}) DO UPDATE SET n = n + 1;
        END
        """,
        """
        CREATE TRIGGER actions_item AFTER INSERT ON actions
        WHEN NEW.kind = 'suggestion_shown' AND NEW.item_id IS NOT NULL
        BEGIN
            INSERT INTO items (item_id, suggestion_kind, article_id, version, first_seen,
                               last_seen)
            VALUES (NEW.item_id, NEW.suggestion_kind, NEW.article_id, NEW.item_version, NEW.ts,
                    NEW.ts)
            ON CONFLICT (item_id) DO UPDATE SET
                suggestion_kind = COALESCE(excluded.suggestion_kind, suggestion_kind),
                article_id = COALESCE(excluded.article_id, article_id),
                version = CASE WHEN excluded.last_seen >= last_seen
                               THEN COALESCE(excluded.version, version) ELSE version END,
                first_seen = MIN(first_seen, excluded.first_seen),
                last_seen = MAX(last_seen, excluded.last_seen);
        END
        """,
        # Erasure takes a conversation out of the counts too; a retention purge does not (the
        # counts hold no text, and trends and priors should outlive the conversations).
        f"""
        CREATE TRIGGER actions_uncount AFTER DELETE ON actions
        WHEN OLD.counted = 1 AND (SELECT keep_counts FROM store_state) = 0
        BEGIN
            {_count_remove("counts_total", old_match, "OLD.")}
            {_count_remove("counts_daily", f"day = {_day('OLD.')} AND {old_match}", "OLD.")}
            {queue_remove}
        END
        """,
        f"""
        CREATE TRIGGER actions_unlatency AFTER DELETE ON actions
        WHEN OLD.kind = 'suggestion_shown' AND OLD.latency_ms IS NOT NULL
             AND (SELECT keep_counts FROM store_state) = 0
        BEGIN
            UPDATE latency_daily SET n = n - 1 WHERE {latency_match};
        END
        """,
    ]
    if v4:
        # A conversation's queue learnt after some of its actions (`start_conversation`, or a
        # later action naming it) is written into those actions: move their per-queue counts.
        triggers.append(
            f"""
            CREATE TRIGGER actions_requeue AFTER UPDATE OF queue ON actions
            WHEN OLD.counted = 1 AND OLD.queue IS NOT NEW.queue
            BEGIN
                {queue_remove}
                DELETE FROM counts_queue_daily WHERE {queue_match} AND n <= 0;
                {queue_add}
            END
            """
        )
    return tuple(triggers)


_SUMMARY_TRIGGERS = _summary_triggers()

# Which rows count: a suggestion shown again on a later turn of the same conversation, or a
# flag still raised, is one presentation, not several; "ignored" only when nothing else
# answered the suggestion.
_RECOUNT_SQL = """
UPDATE actions SET counted = 0 WHERE id IN (
    SELECT id FROM (
        SELECT id, ROW_NUMBER() OVER (
            PARTITION BY conversation_id, kind,
                CASE WHEN kind IN ('flag_shown', 'flag_wrong')
                     THEN COALESCE(flag_rule, flag_kind, '') ELSE COALESCE(suggestion_id, '') END
            ORDER BY ts, id) AS position
        FROM actions WHERE kind IN ('suggestion_shown', 'flag_shown', 'flag_wrong', 'ignored')
    ) WHERE position > 1
    UNION
    SELECT ignored.id FROM actions AS ignored JOIN actions AS answer
        ON answer.conversation_id = ignored.conversation_id
        AND answer.suggestion_id = ignored.suggestion_id
        AND answer.kind IN ('accept', 'edit', 'discard')
    WHERE ignored.kind = 'ignored'
)
"""


def _ordinals(n: int) -> str:
    return ", ".join(str(i) for i in range(1, n + 1))


def _rebuild_summaries(db: Database, version: int = 4) -> None:
    """Recompute every summary table from the actions (inside the caller's transaction).

    `version` is the schema the tables have (2 inside migration m002, else the current one).
    """
    v4 = version >= 4
    key = _COUNT_KEY if v4 else _COUNT_KEY_V2
    columns = ", ".join(key)
    tables = ["counts_total", "counts_daily", "latency_daily", "items"]
    if v4:
        tables.append("counts_queue_daily")
    for table in tables:
        db.execute(f"DELETE FROM {table}")
    amounts = "COUNT(*), COALESCE(SUM(latency_ms), 0), COUNT(latency_ms)"
    values = _count_values("", generated=v4)
    db.execute(
        f"""
        INSERT INTO counts_daily (day, {columns}, n, latency_sum, latency_n)
        SELECT {_day("")}, {values}, {amounts}
        FROM actions WHERE counted = 1 GROUP BY {_ordinals(len(key) + 1)}
        """
    )
    if v4:
        db.execute(
            f"""
            INSERT INTO counts_queue_daily (queue, day, {columns}, n, latency_sum, latency_n)
            SELECT queue, {_day("")}, {values}, {amounts}
            FROM actions WHERE counted = 1 AND queue IS NOT NULL AND queue != ''
            GROUP BY {_ordinals(len(key) + 2)}
            """
        )
    _total_from_daily(db, key)
    generated = "generated, " if v4 else ""
    db.execute(
        f"""
        INSERT INTO latency_daily (day, suggestion_kind, {generated}bucket, n)
        SELECT {_day("")}, COALESCE(suggestion_kind, ''), {generated}{_latency_bucket("")},
               COUNT(*)
        FROM actions WHERE kind = 'suggestion_shown' AND latency_ms IS NOT NULL
        GROUP BY {_ordinals(4 if v4 else 3)}
        """
    )
    db.execute(
        """
        INSERT INTO items (item_id, suggestion_kind, article_id, version, first_seen, last_seen)
        SELECT seen.item_id, seen.suggestion_kind, seen.article_id, latest.item_version,
               seen.first_seen, seen.last_seen
        FROM (SELECT item_id, MAX(suggestion_kind) AS suggestion_kind,
                     MAX(article_id) AS article_id, MIN(ts) AS first_seen, MAX(ts) AS last_seen
              FROM actions WHERE kind = 'suggestion_shown' AND item_id IS NOT NULL
              GROUP BY item_id) AS seen
        -- SQLite takes a bare column from the row holding MAX(ts): the latest version.
        JOIN (SELECT item_id, item_version, MAX(ts) FROM actions
              WHERE kind = 'suggestion_shown' AND item_id IS NOT NULL GROUP BY item_id) AS latest
        USING (item_id)
        """
    )


def _total_from_daily(db: Database, key: Sequence[str]) -> None:
    columns = ", ".join(key)
    db.execute("DELETE FROM counts_total")
    db.execute(
        f"""
        INSERT INTO counts_total ({columns}, n, latency_sum, latency_n)
        SELECT {columns}, SUM(n), SUM(latency_sum), SUM(latency_n)
        FROM counts_daily GROUP BY {_ordinals(len(key))}
        """
    )


def _add_missing_conversations(db: Database) -> None:
    """A conversations row for every conversation that only has actions (erase needs one)."""
    db.execute(
        """
        INSERT INTO conversations (id, started, agent_id, queue, channel)
        SELECT conversation_id, MIN(ts), MAX(agent_id), MAX(queue), MAX(channel)
        FROM actions WHERE conversation_id NOT IN (SELECT id FROM conversations)
        GROUP BY conversation_id
        """
    )


@MIGRATIONS(name="m002_learning_loop")
def _m002_learning_loop(db: Database) -> None:
    """Item versions, article ids and retrieval-miss queries; summaries for fast reports."""
    actions = db.table("actions")
    actions.add_column("item_version", str)
    actions.add_column("article_id", str)
    actions.add_column("query", str)
    actions.add_column("counted", int, not_null_default=1)
    db.execute("DROP INDEX IF EXISTS actions_conversation")
    # Serves the per-insert "shown before in this conversation?" lookup, erase, and gaps.
    actions.create_index(["conversation_id", "kind", "suggestion_id"], index_name="actions_conv")
    # Harvest and gap queries read one kind, newest first.
    actions.create_index(["kind", "ts"], index_name="actions_kind_ts")
    db.table("counts_total").create(
        {
            "kind": str,
            "suggestion_kind": str,
            "intent": str,
            "item": str,
            "detail": str,
            "n": int,
            "latency_sum": float,
            "latency_n": int,
        },
        pk=_COUNT_KEY_V2,
        not_null=set(_COUNT_KEY_V2) | {"n", "latency_sum", "latency_n"},
    )
    db.table("counts_daily").create(
        {
            "day": str,
            "kind": str,
            "suggestion_kind": str,
            "intent": str,
            "item": str,
            "detail": str,
            "n": int,
            "latency_sum": float,
            "latency_n": int,
        },
        pk=("day", *_COUNT_KEY_V2),
        not_null={"day", *_COUNT_KEY_V2, "n", "latency_sum", "latency_n"},
    )
    db.table("latency_daily").create(
        {"day": str, "suggestion_kind": str, "bucket": int, "n": int},
        pk=("day", "suggestion_kind", "bucket"),
        not_null={"day", "suggestion_kind", "bucket", "n"},
    )
    db.table("items").create(
        {
            "item_id": str,
            "suggestion_kind": str,
            "article_id": str,
            "version": str,
            "first_seen": float,
            "last_seen": float,
        },
        pk="item_id",
    )
    db.table("harvest_decisions").create(
        {
            "cluster_id": str,
            "decision": str,
            "ts": float,
            "template_id": str,
            "path": str,
            "members": int,
        },
        pk="cluster_id",
        not_null={"decision", "ts"},
    )
    db.table("store_state").create({"id": int, "keep_counts": int}, pk="id")
    db.execute("INSERT INTO store_state (id, keep_counts) VALUES (1, 0)")
    for sql in _summary_triggers(2):
        db.execute(sql)
    db.execute(_RECOUNT_SQL)
    _rebuild_summaries(db, version=2)
    _add_missing_conversations(db)


@MIGRATIONS(name="m003_generated")
def _m003_generated(db: Database) -> None:
    """Mark suggestions written by the optional language model (AI-generated), 0 before."""
    db.table("actions").add_column("generated", int, not_null_default=0)


def _trigger_name(sql: str) -> str:
    return sql.split("TRIGGER", 1)[1].split()[0]


def _create_count_tables(db: Database) -> None:
    """The summary tables as m004 keys them (counts by source, and a per-queue daily copy)."""
    amounts = {"n": int, "latency_sum": float, "latency_n": int}
    key_types = {name: (int if name == "generated" else str) for name in _COUNT_KEY}
    for table, key in (
        ("counts_total", _COUNT_KEY),
        ("counts_daily", ("day", *_COUNT_KEY)),
        # Queue first: a queue's rows are one range, so a queue's report reads only its own.
        ("counts_queue_daily", ("queue", "day", *_COUNT_KEY)),
    ):
        db.table(table).create(
            {name: key_types.get(name, str) for name in key} | amounts,
            pk=key,
            not_null={*key, *amounts},
        )
    db.table("latency_daily").create(
        {"day": str, "suggestion_kind": str, "generated": int, "bucket": int, "n": int},
        pk=("day", "suggestion_kind", "generated", "bucket"),
        not_null={"day", "suggestion_kind", "generated", "bucket", "n"},
    )


@MIGRATIONS(name="m004_queue_and_source")
def _m004_queue_and_source(db: Database) -> None:
    """Summaries by source (offline or AI-generated) and by queue, for the report's filters.

    The counts are rebuilt from the stored actions; what the old tables held beyond them
    (actions a retention purge removed, whose counts are kept) is carried over as offline and
    without a queue, since neither was counted then.
    """
    for sql in _summary_triggers(2):
        db.execute(f"DROP TRIGGER IF EXISTS {_trigger_name(sql)}")
    db.execute("ALTER TABLE counts_daily RENAME TO counts_daily_v3")
    db.execute("ALTER TABLE latency_daily RENAME TO latency_daily_v3")
    db.execute("DROP TABLE counts_total")
    _create_count_tables(db)
    _fill_queues(db)
    _rebuild_summaries(db)
    old = ", ".join(_COUNT_KEY_V2)
    db.execute(
        f"""
        INSERT INTO counts_daily (day, {old}, generated, n, latency_sum, latency_n)
        SELECT day, {old}, 0, kept.n - COALESCE(fresh.n, 0),
               kept.latency_sum - COALESCE(fresh.latency_sum, 0),
               kept.latency_n - COALESCE(fresh.latency_n, 0)
        FROM counts_daily_v3 AS kept
        LEFT JOIN (SELECT day, {old}, SUM(n) AS n, SUM(latency_sum) AS latency_sum,
                          SUM(latency_n) AS latency_n
                   FROM counts_daily GROUP BY {_ordinals(len(_COUNT_KEY_V2) + 1)}) AS fresh
            USING (day, {old})
        WHERE kept.n > COALESCE(fresh.n, 0)
        ON CONFLICT (day, {old}, generated) DO UPDATE SET n = n + excluded.n,
            latency_sum = latency_sum + excluded.latency_sum,
            latency_n = latency_n + excluded.latency_n
        """
    )
    _total_from_daily(db, _COUNT_KEY)
    db.execute(
        """
        INSERT INTO latency_daily (day, suggestion_kind, generated, bucket, n)
        SELECT day, suggestion_kind, 0, bucket, kept.n - COALESCE(fresh.n, 0)
        FROM latency_daily_v3 AS kept
        LEFT JOIN (SELECT day, suggestion_kind, bucket, SUM(n) AS n FROM latency_daily
                   GROUP BY 1, 2, 3) AS fresh
            USING (day, suggestion_kind, bucket)
        WHERE kept.n > COALESCE(fresh.n, 0)
        ON CONFLICT (day, suggestion_kind, generated, bucket) DO UPDATE SET n = n + excluded.n
        """
    )
    db.execute("DROP TABLE counts_daily_v3")
    db.execute("DROP TABLE latency_daily_v3")
    for sql in _SUMMARY_TRIGGERS:
        db.execute(sql)


def _fill_queues(db: Database) -> None:
    """Give actions that name no queue their conversation's (counts are kept per action row)."""
    db.execute(
        """
        UPDATE actions SET queue = (
            SELECT c.queue FROM conversations AS c WHERE c.id = actions.conversation_id)
        WHERE queue IS NULL AND conversation_id IN (
            SELECT id FROM conversations WHERE queue IS NOT NULL AND queue != '')
        """
    )


SCHEMA_VERSION = len(MIGRATIONS._migrations)
_KNOWN_MIGRATIONS = frozenset(m.name for m in MIGRATIONS._migrations)


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HarvestCluster:
    """Edited replies that read alike: a candidate new template.

    Attributes:
        id: stable while its first edit is kept (``h`` + 8 hex digits).
        count: how many edits.
        agents: how many distinct agents wrote them.
        text: the most typical of the edited replies (redacted).
        examples: a few other wordings from the cluster.
        item_ids: the suggestions that were edited, most often first.
        intents: the intents they were edited for, most often first.
        first_seen / last_seen: seconds since the epoch.
        status: "new", "approved" or "rejected".
        action_ids: the edit actions in the cluster.
    """

    id: str
    count: int
    agents: int
    text: str
    examples: tuple[str, ...]
    item_ids: tuple[str, ...]
    intents: tuple[str, ...]
    first_seen: float
    last_seen: float
    status: str = "new"
    action_ids: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("action_ids")
        data["examples"] = list(self.examples)
        data["item_ids"] = list(self.item_ids)
        data["intents"] = list(self.intents)
        return data


@dataclass(frozen=True, slots=True)
class KnowledgeGap:
    """Customer questions the knowledge did not answer well, grouped by topic.

    Attributes:
        topic: the intent, or the opening words of the group's first example.
        intent: the predicted intent, or None when the group was formed by text similarity.
        count: gap events in the group.
        kinds: event kind -> count: ``retrieval_miss``, ``article_not_helpful``,
            ``discard_wrong_topic``, ``discard_outdated``.
        items: articles or suggestions involved, most often first.
        examples: up to three redacted customer texts, newest first.
        conversations: distinct conversations.
    """

    topic: str
    intent: str | None
    count: int
    kinds: Mapping[str, int]
    items: tuple[str, ...]
    examples: tuple[str, ...]
    conversations: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "intent": self.intent,
            "count": self.count,
            "kinds": dict(self.kinds),
            "items": list(self.items),
            "examples": list(self.examples),
            "conversations": self.conversations,
        }


# --- priors -------------------------------------------------------------------------------------


_Counts = tuple[int, int, int]  # accepted, edited, discarded


def _plural(n: int) -> str:
    return "time" if n == 1 else "times"


class FeedbackPriors:
    """Acceptance priors per item and intent, in memory; safe to read from any thread.

    ``value = (accepted + 0.5 * edited + 1) / (accepted + edited + discarded + 2)`` for the
    item over all intents (a Beta(1, 1) prior: an item nobody has judged stays at 0.5, so new
    items are not buried), then for one intent ``(a_i + 0.5 e_i + 2 * item_value) / (n_i + 2)``,
    so a few observations for an intent move it from the item's overall value.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_intent: dict[tuple[str, str], list[int]] = {}
        self._by_item: dict[str, list[int]] = {}

    def replace(self, rows: Iterable[tuple[str, str, str, int]]) -> None:
        """Load (item, intent, kind, count) rows, replacing everything held."""
        by_intent: dict[tuple[str, str], list[int]] = {}
        by_item: dict[str, list[int]] = {}
        for item, intent, kind, n in rows:
            if kind not in PRIOR_KINDS or not item:
                continue
            slot = PRIOR_KINDS.index(kind)
            by_intent.setdefault((item, intent), [0, 0, 0])[slot] += int(n)
            by_item.setdefault(item, [0, 0, 0])[slot] += int(n)
        with self._lock:
            self._by_intent = by_intent
            self._by_item = by_item

    def add(self, item: str, intent: str, kind: str) -> None:
        """Count one more accept, edit or discard."""
        if kind not in PRIOR_KINDS or not item:
            return
        slot = PRIOR_KINDS.index(kind)
        with self._lock:
            self._by_intent.setdefault((item, intent), [0, 0, 0])[slot] += 1
            self._by_item.setdefault(item, [0, 0, 0])[slot] += 1

    def counts(self, item_id: str, intent: str | None = None) -> _Counts:
        """(accepted, edited, discarded) for the item, for one intent or all."""
        with self._lock:
            found = (
                self._by_item.get(item_id)
                if intent is None
                else self._by_intent.get((item_id, intent))
            )
            return (found[0], found[1], found[2]) if found else (0, 0, 0)

    def prior(self, item_id: str, intent: str | None) -> Prior:
        """The prior for a template id or passage id, for this intent (`PriorProvider`)."""
        with self._lock:
            overall = self._by_item.get(item_id)
            specific = self._by_intent.get((item_id, intent or "")) if overall else None
            overall_counts = tuple(overall) if overall else (0, 0, 0)
            specific_counts = tuple(specific) if specific else (0, 0, 0)
        return _prior_from(overall_counts, specific_counts, intent)

    def table(self, intent: str | None = None) -> dict[str, Prior]:
        """item id -> prior for every item with feedback (for this intent, or over all)."""
        with self._lock:
            items = list(self._by_item)
        return {item: self.prior(item, intent) for item in items}


def _prior_from(overall: Sequence[int], specific: Sequence[int], intent: str | None) -> Prior:
    accepted, edited, discarded = overall
    n = accepted + edited + discarded
    if n == 0:
        return Prior()
    item_value = (accepted + EDIT_WEIGHT * edited + 1.0) / (n + 2.0)
    s_accepted, s_edited, s_discarded = specific
    s_n = s_accepted + s_edited + s_discarded
    if s_n and intent:
        value = (s_accepted + EDIT_WEIGHT * s_edited + INTENT_SHRINK * item_value) / (
            s_n + INTENT_SHRINK
        )
        text = f"accepted {s_accepted} of {s_n} {_plural(s_n)} for {intent}"
        if s_edited:
            text += f" ({s_edited} more edited)"
        return Prior(value, s_n, text)
    text = f"accepted {accepted} of {n} {_plural(n)} over all intents"
    if edited:
        text += f" ({edited} more edited)"
    return Prior(item_value, n, text)


# --- helpers ------------------------------------------------------------------------------------


def _clean(text: str | None) -> str | None:
    """Redacted text (defence in depth: callers should have redacted it already)."""
    if not text:
        return text
    return redact(text).text


class _MemoClean:
    """`_clean` remembering its results for one bulk load, where texts repeat (template wording).

    Not kept beyond the load: a module-wide cache would hold customers' words in memory after
    their conversation was erased.
    """

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return text
        found = self._seen.get(text)
        if found is None:
            if len(self._seen) >= 20000:
                self._seen.clear()
            found = self._seen[text] = redact(text).text
        return found


def escape_csv_cell(value: Any) -> Any:
    """A cell safe to open in a spreadsheet: text that could start a formula gets a ``'``.

    Numbers are left alone (a float cannot carry a formula, and ``-0.5`` should stay a number).
    """
    if isinstance(value, str) and value.startswith(_CSV_DANGEROUS):
        return "'" + value
    return value


def _parse_day(value: str | dt.date | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"{name} must be a date like 2025-01-31, not {value!r}") from None


def _checked_filters(
    since: str | dt.date | None,
    until: str | dt.date | None,
    kind: str | None,
    source: str | None,
) -> tuple[str | None, str | None, int | None]:
    """The report's and the export's common filters, checked: (first day, last day, generated).

    Raises:
        ValueError: a date is not ``YYYY-MM-DD``, or `kind` or `source` is unknown.
    """
    first, last = _parse_day(since, "since"), _parse_day(until, "until")
    if kind is not None and kind not in ("template", "article"):
        raise ValueError(f"kind must be template or article, not {kind!r}")
    return first, last, _source_flag(source)


def _source_flag(source: str | None) -> int | None:
    """The ``generated`` value a source filter keeps: None (all), 0 (offline), 1 (generated)."""
    if source is None:
        return None
    if source not in SOURCES:
        raise ValueError(f"source must be offline or generated, not {source!r}")
    return SOURCES.index(source)


def _epoch(when: dt.datetime | float) -> float:
    """Seconds since the epoch; a naive datetime is taken as UTC."""
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    return float(when)


def _iso(ts: float) -> str:
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _day_start(day: str) -> float:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()


def _rate(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def _most_common(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(value for value, _ in Counter(v for v in values if v).most_common())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# --- the store ----------------------------------------------------------------------------------


class FeedbackStore:
    """The SQLite feedback store; implements `FeedbackSink` and `PriorProvider`.

    Create it on the thread that will make every call (the app's ``db`` lane); see the module
    docstring. Use as a context manager or call `close`.

    Args:
        path: the database file (created with its directory when missing).
        busy_timeout_ms: how long a write waits for another process (a ``copilot`` command).
    """

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # No sqlite-utils plugins: they could change what the connection does to our data.
        self.db = Database(self.path, execute_plugins=False)
        try:
            self._configure(busy_timeout_ms)
            self._migrate()
        except Exception:
            self.db.close()
            raise
        self._priors = FeedbackPriors()
        self._reload_priors()

    # -- lifecycle ---------------------------------------------------------------------------

    def _configure(self, busy_timeout_ms: int) -> None:
        conn = self.db.conn
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            self.db.enable_wal()
        # FULL: each COMMIT is on disk (the WAL fsynced) before record() returns.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = OFF")

    def _migrate(self) -> None:
        if self._check_applied() == _KNOWN_MIGRATIONS:
            return
        # All pending migrations in one IMMEDIATE transaction (sqlite-utils nests each one as
        # a savepoint): a crash leaves the old schema whole, and a second process opening the
        # same new file waits, then finds nothing left to do.
        with self._write() as conn:
            if self._check_applied() != _KNOWN_MIGRATIONS:
                MIGRATIONS.apply(self.db)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_applied(self) -> set[str]:
        applied = {m.name for m in MIGRATIONS.applied(self.db)}
        unknown = applied - _KNOWN_MIGRATIONS
        if unknown:
            raise FeedbackStoreError(
                f"{self.path} was written by a newer version of the co-pilot (schema changes"
                f" {', '.join(sorted(unknown))}); update the co-pilot to open it"
            )
        return applied

    @property
    def schema_version(self) -> int:
        """How many schema migrations this database has had (`SCHEMA_VERSION` once open)."""
        return len(MIGRATIONS.applied(self.db))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed on exit.

        ``BEGIN IMMEDIATE`` rather than sqlite-utils' ``atomic()`` (a deferred BEGIN): these
        transactions read before they write, and a deferred one could not wait for a
        ``copilot`` command writing from another process; it would fail with "database is
        locked" instead.
        """
        conn = self.db.conn
        if conn.in_transaction:
            raise FeedbackStoreError("a feedback write is already in progress on this connection")
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- recording ---------------------------------------------------------------------------

    def record(self, action: FeedbackAction) -> None:
        """Store one action; returns only once it is committed to disk (`FeedbackSink`).

        Recording an ``action_id`` already stored does nothing (safe to retry).

        Raises:
            sqlite3.Error: the action was not stored (the caller must not acknowledge it).
        """
        with self._write() as conn:
            counted = self._insert(conn, action)
        if counted:
            self._after_commit((action,))

    def record_many(self, actions: Iterable[FeedbackAction]) -> int:
        """Store many actions in one transaction (imports, tests, benchmarks).

        Returns:
            How many were new.
        """
        added: list[FeedbackAction] = []
        with self._write() as conn:
            for action in actions:
                if self._insert(conn, action) is not None:
                    added.append(action)
        self._after_commit(added)
        return len(added)

    def _insert(self, conn: sqlite3.Connection, action: FeedbackAction) -> int | None:
        """Insert inside the open transaction; the row's ``counted``, or None when a repeat."""
        kind = str(action.kind)
        ts = _epoch(action.ts)
        counted = 1
        latency = action.latency_ms
        if kind == "suggestion_shown":
            counted = 0 if self._seen(conn, action, ("suggestion_shown",)) else 1
        elif kind in ("flag_shown", "flag_wrong"):
            key = action.flag_rule or action.flag_kind or ""
            row = conn.execute(
                "SELECT 1 FROM actions WHERE conversation_id = ? AND kind = ?"
                " AND COALESCE(flag_rule, flag_kind, '') = ? LIMIT 1",
                (action.conversation_id, kind, key),
            ).fetchone()
            counted = 0 if row else 1
        elif kind == "ignored":
            counted = 0 if self._seen(conn, action, OUTCOME_KINDS) else 1
        elif kind in PRIOR_KINDS and latency is None and action.suggestion_id:
            row = conn.execute(
                "SELECT MAX(ts) FROM actions WHERE conversation_id = ?"
                " AND kind = 'suggestion_shown' AND suggestion_id = ? AND ts <= ?",
                (action.conversation_id, action.suggestion_id, ts),
            ).fetchone()
            if row and row[0] is not None:
                latency = round((ts - row[0]) * 1000.0, 1)
        # Counts are kept per action row: an action that names no queue takes its conversation's.
        known = conn.execute(
            "SELECT queue FROM conversations WHERE id = ?", (action.conversation_id,)
        ).fetchone()
        queue = action.queue or (known[0] if known else None)
        cursor = conn.execute(_INSERT_ACTION, _values(action, ts, latency, counted, queue=queue))
        if cursor.rowcount == 0:
            return None
        if action.queue and known is not None and not known[0]:
            # The conversation's queue is learnt only now: its earlier actions are in it too.
            _set_queue(conn, action.conversation_id, action.queue)
        conn.execute(
            """
            INSERT INTO conversations (id, started, agent_id, queue, channel)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET
                started = MIN(COALESCE(started, excluded.started), excluded.started),
                agent_id = COALESCE(agent_id, excluded.agent_id),
                queue = COALESCE(queue, excluded.queue),
                channel = COALESCE(channel, excluded.channel)
            """,
            (action.conversation_id, ts, action.agent_id, action.queue, action.channel),
        )
        return counted

    def import_actions(self, actions: Iterable[FeedbackAction], *, batch_size: int = 20000) -> int:
        """Bulk-load many actions fast (an import from elsewhere, a benchmark).

        One transaction, like `record_many`, but the summary triggers are suspended during the
        load and the counts rebuilt once at the end, and which presentations count (a
        suggestion shown again, a flag still raised) is decided for the whole table in one
        query. Time to action is not derived here: pass ``latency_ms``.

        Returns:
            How many actions were new.
        """
        conn = self.db.conn
        cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
        # A large page cache while loading: the unique action-id index takes random keys.
        conn.execute("PRAGMA cache_size = -262144")
        try:
            return self._import(actions, batch_size)
        finally:
            conn.execute(f"PRAGMA cache_size = {int(cache_size)}")

    def _import(self, actions: Iterable[FeedbackAction], batch_size: int) -> int:
        conn = self.db.conn
        with self._write():
            for sql in _SUMMARY_TRIGGERS:
                conn.execute(f"DROP TRIGGER IF EXISTS {_trigger_name(sql)}")
            before = conn.total_changes
            clean = _MemoClean()
            batch: list[tuple[Any, ...]] = []
            for action in actions:
                batch.append(_values(action, _epoch(action.ts), action.latency_ms, 1, clean))
                if len(batch) >= batch_size:
                    conn.executemany(_INSERT_ACTION, batch)
                    batch.clear()
            if batch:
                conn.executemany(_INSERT_ACTION, batch)
            added = conn.total_changes - before
            _add_missing_conversations(self.db)
            _fill_queues(self.db)
            conn.execute("UPDATE actions SET counted = 1 WHERE counted = 0")
            conn.execute(_RECOUNT_SQL)
            _rebuild_summaries(self.db)
            for sql in _SUMMARY_TRIGGERS:
                conn.execute(sql)
        self._reload_priors()
        return added

    @staticmethod
    def _seen(conn: sqlite3.Connection, action: FeedbackAction, kinds: Sequence[str]) -> bool:
        marks = ", ".join("?" for _ in kinds)
        row = conn.execute(
            f"SELECT 1 FROM actions WHERE conversation_id = ? AND kind IN ({marks})"
            " AND suggestion_id IS ? LIMIT 1",
            (action.conversation_id, *kinds, action.suggestion_id),
        ).fetchone()
        return row is not None

    def _after_commit(self, actions: Iterable[FeedbackAction]) -> None:
        for action in actions:
            if action.kind in PRIOR_KINDS and action.item_id:
                self._priors.add(action.item_id, action.intent or "", str(action.kind))

    def start_conversation(
        self,
        conversation_id: str,
        *,
        started: float | None = None,
        agent_id: str | None = None,
        queue: str | None = None,
        channel: str | None = None,
        customer_name: str | None = None,
    ) -> None:
        """Record a conversation's metadata (created on first action otherwise)."""
        with self._write() as conn:
            conn.execute(
                """
                INSERT INTO conversations (id, started, agent_id, queue, channel, customer_name)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    started = COALESCE(MIN(started, excluded.started), started,
                                       excluded.started),
                    agent_id = COALESCE(excluded.agent_id, agent_id),
                    queue = COALESCE(excluded.queue, queue),
                    channel = COALESCE(excluded.channel, channel),
                    customer_name = COALESCE(excluded.customer_name, customer_name)
                """,
                (
                    conversation_id,
                    time.time() if started is None else started,
                    agent_id,
                    queue,
                    channel,
                    _clean(customer_name),
                ),
            )
            if queue:
                _set_queue(conn, conversation_id, queue)

    def record_turn(
        self,
        conversation_id: str,
        turn_id: str,
        *,
        role: str,
        text: str,
        ts: float | None = None,
    ) -> None:
        """Store a final turn's redacted text (redacted again here); replaces the same turn id."""
        when = time.time() if ts is None else float(ts)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO conversations (id, started) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET started = MIN(COALESCE(started, ?), ?)",
                (conversation_id, when, when, when),
            )
            conn.execute(
                "INSERT OR REPLACE INTO turns (conversation_id, turn_id, role, text, ts)"
                " VALUES (?, ?, ?, ?, ?)",
                (conversation_id, turn_id, role, _clean(text) or "", when),
            )

    def end_conversation(self, conversation_id: str, *, ended: float | None = None) -> int:
        """Mark the conversation ended; suggestions shown but never answered become "ignored".

        Returns:
            How many "ignored" actions were recorded.
        """
        when = time.time() if ended is None else float(ended)
        with self._write() as conn:
            conn.execute("UPDATE conversations SET ended = ? WHERE id = ?", (when, conversation_id))
            rows = conn.execute(
                """
                SELECT suggestion_id, item_id, suggestion_kind, intent, agent_id, queue,
                       channel, article_id, item_version, MIN(turn_id), MIN(rank),
                       MAX(generated)
                FROM actions AS shown
                WHERE conversation_id = ? AND kind = 'suggestion_shown' AND counted = 1
                  AND NOT EXISTS (
                      SELECT 1 FROM actions AS answer
                      WHERE answer.conversation_id = shown.conversation_id
                        AND answer.kind IN ('accept', 'edit', 'discard', 'ignored')
                        AND answer.suggestion_id IS shown.suggestion_id)
                GROUP BY suggestion_id
                """,
                (conversation_id,),
            ).fetchall()
            for row in rows:
                suggestion_id, item_id, skind, intent, agent, queue, channel = row[:7]
                self._insert(
                    conn,
                    FeedbackAction(
                        kind=FeedbackKind.IGNORED,
                        conversation_id=conversation_id,
                        turn_id=row[9],
                        item_id=item_id,
                        suggestion_id=suggestion_id,
                        suggestion_kind=skind,
                        rank=row[10],
                        intent=intent,
                        ts=dt.datetime.fromtimestamp(when, dt.UTC),
                        agent_id=agent,
                        queue=queue,
                        channel=channel,
                        article_id=row[7],
                        item_version=row[8],
                        generated=bool(row[11]),
                        action_id=hashlib.blake2b(
                            f"ignored\0{conversation_id}\0{suggestion_id}".encode(),
                            digest_size=16,
                        ).hexdigest(),
                    ),
                )
        return len(rows)

    # -- priors ------------------------------------------------------------------------------

    def _reload_priors(self) -> None:
        marks = ", ".join("?" for _ in PRIOR_KINDS)
        rows = self.db.conn.execute(
            f"SELECT item, intent, kind, SUM(n) FROM counts_total WHERE kind IN ({marks})"
            " AND item != '' GROUP BY item, intent, kind",
            PRIOR_KINDS,
        ).fetchall()
        self._priors.replace(rows)

    @property
    def prior_provider(self) -> FeedbackPriors:
        """The in-memory priors, for the pipeline (safe to read from the interactive lane)."""
        return self._priors

    def prior(self, item_id: str, intent: str | None) -> Prior:
        """`PriorProvider`: the acceptance prior of a template or passage for an intent."""
        return self._priors.prior(item_id, intent)

    def priors(self, intent: str | None = None) -> dict[str, Prior]:
        """item id -> prior, for every item agents have accepted, edited or discarded."""
        return self._priors.table(intent)

    # -- intent corrections ------------------------------------------------------------------

    def intent_examples(
        self, known_intents: Iterable[str] | None = None, *, limit: int = INTENT_EXAMPLES_LIMIT
    ) -> list[tuple[str, str]]:
        """Agents' intent corrections as training examples: (redacted text, intent id) pairs.

        The text is what the intent stage classified when the agent corrected it (the action's
        ``query``: the recent customer words), or else the conversation's newest stored customer
        turn at that moment. Each text appears once: when agents corrected the same words to
        different intents, the intent chosen most often wins (the latest on a tie).

        Args:
            known_intents: keep only corrections to these intent ids (the taxonomy's); free
                text typed by an agent, or an intent since renamed, is no example. None keeps all.
            limit: at most this many texts, the most recently corrected first (training time
                grows with the examples).

        Returns:
            Pairs ordered oldest first, ready for ``build_assistant(extra_intent_examples=)``.
        """
        known = None if known_intents is None else frozenset(known_intents)
        rows = self.db.conn.execute(
            """
            SELECT COALESCE(NULLIF(TRIM(a.query), ''), (
                       SELECT t.text FROM turns AS t
                       WHERE t.conversation_id = a.conversation_id AND t.role = 'customer'
                         AND t.ts <= a.ts + 1e-3
                       ORDER BY t.ts DESC LIMIT 1
                   )) AS text,
                   a.corrected_intent, a.ts
            FROM actions AS a
            WHERE a.kind = 'intent_corrected' AND a.corrected_intent IS NOT NULL
            ORDER BY a.ts, a.id
            """
        ).fetchall()
        votes: dict[str, dict[str, tuple[int, float]]] = {}
        texts: dict[str, str] = {}
        for text, intent, ts in rows:
            if not text or not text.strip() or (known is not None and intent not in known):
                continue
            key = " ".join(text.lower().split())
            texts[key] = " ".join(text.split())
            count, _ = votes.setdefault(key, {}).get(intent, (0, 0.0))
            votes[key][intent] = (count + 1, float(ts))
        chosen = []
        for key, by_intent in votes.items():
            intent = max(by_intent.items(), key=lambda item: item[1])[0]
            latest = max(ts for _, ts in by_intent.values())
            chosen.append((latest, texts[key], intent))
        chosen.sort()
        return [(text, intent) for _, text, intent in chosen[-limit:]] if limit > 0 else []

    # -- report ------------------------------------------------------------------------------

    def report(
        self,
        since: str | dt.date | None = None,
        until: str | dt.date | None = None,
        intent: str | None = None,
        kind: Literal["template", "article"] | None = None,
        *,
        queue: str | None = None,
        source: Literal["offline", "generated"] | None = None,
        top: int = 10,
    ) -> dict[str, Any]:
        """What agents did with the suggestions, flags and articles, from the daily counts.

        Rates are shares of suggestions shown (each suggestion counted once per conversation,
        however many turns it stayed on screen). Suggestion latency is kept per day, kind and
        source, not per intent or queue, so those two filters do not narrow it. Everything is
        read from the summary tables (a queue's from its own range of ``counts_queue_daily``):
        about 0.1-0.5 s over a million stored actions (``copilot bench feedback``).

        Args:
            since: first day included (UTC, ``YYYY-MM-DD``), or None for the beginning.
            until: last day included, or None for today.
            intent: only this predicted intent.
            kind: only "template" or "article" suggestions (flags and articles unaffected).
            queue: only conversations from this queue (actions that named none and whose
                conversation had none are in no queue).
            source: only "offline" suggestions (templates and knowledge passages) or those
                "generated" by the optional language model (flags and articles unaffected).
            top: how many rows in the "most discarded" list.

        Raises:
            ValueError: a date is not ``YYYY-MM-DD``, or `kind` or `source` is unknown.
        """
        first, last, generated = _checked_filters(since, until, kind, source)
        days: list[str] = []
        day_params: list[Any] = []
        if first:
            days.append("day >= ?")
            day_params.append(first)
        if last:
            days.append("day <= ?")
            day_params.append(last)
        filters: list[str] = []
        filter_params: list[Any] = []
        # The queue, then the days: the leading columns of the per-queue table's key.
        scope = (["queue = ?"] if queue is not None else []) + days
        scope_params = ([queue] if queue is not None else []) + day_params
        if intent is not None:
            filters.append("intent = ?")
            filter_params.append(intent)
        if kind is not None:
            # Flags, article ratings and corrections have no suggestion kind: keep them.
            filters.append(f"(suggestion_kind = ? OR kind NOT IN ({_SUGGESTION_KINDS_SQL}))")
            filter_params.append(kind)
        if generated is not None:
            filters.append(f"(generated = ? OR kind NOT IN ({_SUGGESTION_KINDS_SQL}))")
            filter_params.append(generated)

        def where(*parts: list[str]) -> str:
            conditions = [c for part in parts for c in part]
            return (" WHERE " + " AND ".join(conditions)) if conditions else ""

        conn = self.db.conn
        # All time: the small all-time table; a period: the daily one (its key starts with day);
        # a queue: its own rows of the per-queue table (key: queue, day, ...).
        if queue is not None:
            table = daily = "counts_queue_daily"
        else:
            daily = "counts_daily"
            table = daily if days else "counts_total"
        rows = conn.execute(
            "SELECT kind, suggestion_kind, intent, item, detail, SUM(n), SUM(latency_sum),"
            f" SUM(latency_n) FROM {table}{where(scope, filters)} GROUP BY 1, 2, 3, 4, 5",
            [*scope_params, *filter_params],
        ).fetchall()
        trend_rows = conn.execute(
            f"SELECT day, kind, SUM(n) FROM {daily}"
            f"{where(scope, filters, [f'kind IN ({_SUGGESTION_KINDS_SQL})'])}"
            " GROUP BY day, kind ORDER BY day",
            [*scope_params, *filter_params],
        ).fetchall()
        latency_filter: list[str] = []
        latency_params: list[Any] = list(day_params)
        if kind is not None:
            latency_filter.append("suggestion_kind = ?")
            latency_params.append(kind)
        if generated is not None:
            latency_filter.append("generated = ?")
            latency_params.append(generated)
        histogram = conn.execute(
            f"SELECT bucket, SUM(n) FROM latency_daily{where(days, latency_filter)}"
            " GROUP BY bucket ORDER BY bucket",
            latency_params,
        ).fetchall()
        articles = dict(
            conn.execute(
                "SELECT item_id, article_id FROM items WHERE article_id IS NOT NULL"
            ).fetchall()
        )
        return _build_report(
            rows,
            trend_rows,
            histogram,
            articles,
            period={
                "since": first,
                "until": last,
                "intent": intent,
                "kind": kind,
                "queue": queue,
                "source": source,
            },
            top=top,
        )

    # -- harvest -----------------------------------------------------------------------------

    def harvest(
        self,
        *,
        min_count: int = 2,
        similarity: float = HARVEST_SIMILARITY,
        include_decided: bool = False,
        limit: int = 5000,
    ) -> list[HarvestCluster]:
        """Agents' edited replies grouped when alike (rapidfuzz token_set_ratio >= similarity).

        Edits are grouped per edited suggestion first, then groups of different suggestions
        that read alike are merged. Edits that only changed a name or a typo, and replies of
        fewer than five words, are left out.

        Args:
            min_count: smallest group reported.
            similarity: token_set_ratio threshold (0-100).
            include_decided: also list groups already approved or rejected.
            limit: how many of the newest edits are read.

        Returns:
            Groups, largest first.
        """
        from rapidfuzz import fuzz, process

        rows = self.db.conn.execute(
            """
            SELECT a.action_id, a.item_id, a.intent, a.agent_id, a.shown_text, a.sent_text,
                   a.ts, c.customer_name
            FROM actions AS a LEFT JOIN conversations AS c ON c.id = a.conversation_id
            WHERE a.kind = 'edit' AND a.sent_text IS NOT NULL
            ORDER BY a.ts DESC, a.id DESC LIMIT ?
            """,
            (limit,),
        ).fetchall()
        rows.reverse()  # oldest first: a group's first edit names it, and stays first
        edits = [
            r
            for r in rows
            if len(r[5].split()) >= HARVEST_MIN_WORDS
            and (not r[4] or fuzz.ratio(r[4], r[5]) < HARVEST_TRIVIAL_EDIT)
        ]
        groups: list[list[Any]] = []
        by_item: dict[str, list[int]] = defaultdict(list)
        for edit in edits:
            leaders = by_item[edit[1] or ""]
            match = process.extractOne(
                edit[5],
                [groups[g][0][5] for g in leaders],
                scorer=fuzz.token_set_ratio,
                score_cutoff=similarity,
            )
            if match is None:
                leaders.append(len(groups))
                groups.append([edit])
            else:
                groups[leaders[match[2]]].append(edit)
        # Merge groups of different suggestions that read alike (few groups: pairwise is fine).
        merged: list[list[Any]] = []
        for group in sorted(groups, key=lambda g: (g[0][6], g[0][0])):
            match = process.extractOne(
                group[0][5],
                [m[0][5] for m in merged],
                scorer=fuzz.token_set_ratio,
                score_cutoff=similarity,
            )
            if match is None:
                merged.append(list(group))
            else:
                merged[match[2]].extend(group)
        decisions = dict(
            self.db.conn.execute("SELECT cluster_id, decision FROM harvest_decisions").fetchall()
        )
        clusters: list[HarvestCluster] = []
        for group in merged:
            if len(group) < min_count:
                continue
            cluster_id = "h" + hashlib.blake2b(group[0][0].encode(), digest_size=4).hexdigest()
            status = decisions.get(cluster_id, "new")
            if status != "new" and not include_decided:
                continue
            texts = [g[5] for g in group]
            sample = texts[-50:]
            best = max(
                range(len(sample)),
                key=lambda i: sum(fuzz.token_set_ratio(sample[i], other) for other in sample),
            )
            text = sample[best]
            examples = tuple(dict.fromkeys(t for t in reversed(texts) if t != text))[:3]
            clusters.append(
                HarvestCluster(
                    id=cluster_id,
                    count=len(group),
                    agents=len({g[3] for g in group if g[3]}),
                    text=text,
                    examples=examples,
                    item_ids=_most_common(g[1] for g in group),
                    intents=_most_common(g[2] for g in group),
                    first_seen=min(g[6] for g in group),
                    last_seen=max(g[6] for g in group),
                    status=status,
                    action_ids=tuple(g[0] for g in group),
                )
            )
        clusters.sort(key=lambda c: (-c.count, -c.agents, c.id))
        return clusters

    def _find_cluster(self, cluster_id: str) -> HarvestCluster:
        for cluster in self.harvest(min_count=1, include_decided=True):
            if cluster.id == cluster_id:
                return cluster
        raise FeedbackStoreError(
            f"no harvested reply group {cluster_id!r} (run `copilot harvest` for the ids)"
        )

    def reject_harvest(self, cluster_id: str) -> HarvestCluster:
        """Record that a harvested group should not become a template (it is hidden after)."""
        cluster = self._find_cluster(cluster_id)
        self._decide(cluster, "rejected", None, None)
        return cluster

    def approve_harvest(self, cluster_id: str, content_dir: Path) -> tuple[str, Path]:
        """Write a harvested group as a new reply template into the content pack.

        The template goes to ``templates/harvested.yaml`` (created when missing). It copies
        the intents, cited articles and tone of the template agents edited, when that template
        is in the pack; the customer's name becomes the ``{customer_name}`` slot. The pack is
        loaded again afterwards and the file restored if the new template does not load.

        Returns:
            The new template id and the file written.

        Raises:
            FeedbackStoreError: unknown group, or the template would not load (with the reason).
        """
        import yaml

        from copilot.services.content_templates import load_templates, templates_dir

        _PackDumper = _pack_dumper()

        cluster = self._find_cluster(cluster_id)
        if cluster.status == "approved":
            raise FeedbackStoreError(f"{cluster_id} was already approved")
        content = Path(content_dir)
        templates, _, audiences = load_templates(content)
        by_id = {t.id: t for t in templates}
        source = next((by_id[i] for i in cluster.item_ids if i in by_id), None)
        intents = [i for i in cluster.intents if re.fullmatch(r"[a-z][a-z0-9_]*", i)]
        if not intents and source is not None:
            intents = list(source.intents)
        articles: list[str] = list(source.article_ids) if source is not None else []
        if source is None:
            for item in cluster.item_ids:
                article = item.split("#", 1)[0]
                if article in audiences and article not in articles:
                    articles.append(article)
        text = self._template_text(cluster)
        base = _slug(source.id.split(".", 1)[-1] if source else (intents[:1] or ["reply"])[0])
        template_id = f"harvested.{base[:50]}-{cluster.id[1:]}"
        words = text.split()
        title = (
            f"{source.title} (agents' wording)"
            if source is not None
            else " ".join(words[:8]) + ("…" if len(words) > 8 else "")
        )
        entry: dict[str, Any] = {"id": template_id, "title": title}
        if intents:
            entry["intents"] = intents
        if articles:
            entry["articles"] = articles
        entry["tone"] = source.tone if source is not None else "neutral"
        entry["text"] = text
        directory = templates_dir(content)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / HARVESTED_FILE
        previous = target.read_text(encoding="utf-8") if target.exists() else None
        data: dict[str, Any] = {"area": "harvested", "templates": []}
        if previous:
            loaded = yaml.safe_load(previous)
            if isinstance(loaded, dict) and isinstance(loaded.get("templates"), list):
                data = loaded
        if any(isinstance(t, dict) and t.get("id") == template_id for t in data["templates"]):
            raise FeedbackStoreError(f"{target} already has a template {template_id}")
        data["templates"].append(entry)
        header = (
            "# Reply templates harvested from agents' edited replies (`copilot harvest`).\n"
            "# Review them like any other template; edit freely.\n"
        )
        body = yaml.dump(data, Dumper=_PackDumper, sort_keys=False, allow_unicode=True, width=96)
        _atomic_write(target, header + body)
        reloaded, problems, _ = load_templates(content)
        mine = [p for p in problems if p.template_id == template_id or (p.path == str(target))]
        if not any(t.id == template_id for t in reloaded) or any(p.skipped for p in mine):
            if previous is None:
                target.unlink()
            else:
                _atomic_write(target, previous)
            reasons = "; ".join(p.reason for p in mine) or "it did not load"
            raise FeedbackStoreError(f"the harvested template was not added: {reasons}")
        self._decide(cluster, "approved", template_id, target)
        return template_id, target

    def _template_text(self, cluster: HarvestCluster) -> str:
        names = {
            row[0]
            for row in self.db.conn.execute(
                "SELECT DISTINCT c.customer_name FROM actions AS a"
                " JOIN conversations AS c ON c.id = a.conversation_id"
                f" WHERE a.action_id IN ({', '.join('?' for _ in cluster.action_ids)})"
                " AND c.customer_name IS NOT NULL AND c.customer_name != ''",
                cluster.action_ids,
            ).fetchall()
        }
        # Braces would read as slots; only the customer name is turned back into one.
        text = cluster.text.replace("{", "(").replace("}", ")")
        for name in sorted(names, key=len, reverse=True):
            first = name.split()[0]
            for value in (name, first):
                if len(value) > 1:
                    text = re.sub(rf"\b{re.escape(value)}\b", "{customer_name}", text)
        return " ".join(text.split())

    def _decide(
        self, cluster: HarvestCluster, decision: str, template_id: str | None, path: Path | None
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO harvest_decisions"
                " (cluster_id, decision, ts, template_id, path, members) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    cluster.id,
                    decision,
                    time.time(),
                    template_id,
                    None if path is None else str(path),
                    cluster.count,
                ),
            )

    # -- gaps --------------------------------------------------------------------------------

    def gaps(
        self,
        *,
        since: str | dt.date | None = None,
        limit: int = 20000,
        similarity: float = GAP_SIMILARITY,
    ) -> list[KnowledgeGap]:
        """Where the knowledge fell short, grouped by topic, biggest first.

        Gap events: retrieval misses (nothing confident was found; the query is kept),
        articles marked not helpful, and suggestions discarded as wrong topic or outdated.
        Events with a predicted intent are grouped by it; the rest by text similarity
        (rapidfuzz token_set_ratio >= `similarity`). The customer's words come from the
        stored turn when there is one.
        """
        from rapidfuzz import fuzz, process

        first = _parse_day(since, "since")
        params: list[Any] = []
        day_clause = ""
        if first:
            day_clause = " AND a.ts >= ?"
            params.append(_day_start(first))
        params.append(limit)
        rows = self.db.conn.execute(
            f"""
            SELECT a.kind, a.reason, a.intent, a.conversation_id, a.item_id, a.article_id,
                   COALESCE(a.query, t.text, a.shown_text) AS text, a.ts
            FROM actions AS a
            LEFT JOIN turns AS t
                ON t.conversation_id = a.conversation_id AND t.turn_id = a.turn_id
            WHERE (a.kind IN ('retrieval_miss', 'article_not_helpful')
                   OR (a.kind = 'discard' AND a.reason IN ('wrong_topic', 'outdated')))
                  {day_clause}
            ORDER BY a.ts DESC LIMIT ?
            """,
            params,
        ).fetchall()
        groups: dict[str, list[Any]] = defaultdict(list)
        leaders: list[str] = []
        leader_keys: list[str] = []
        # Clustering by text compares each event with every group so far: only the newest
        # events without an intent are clustered, which bounds the time on a large store.
        unclassified = [row for row in rows if not row[2]][:GAP_TEXT_EVENTS]
        for row in reversed(rows):
            if row[2]:
                groups[f"intent:{row[2]}"].append(row)
                continue
            if len(unclassified) == GAP_TEXT_EVENTS and row[7] < unclassified[-1][7]:
                continue
            text = row[6] or ""
            match = process.extractOne(
                text, leaders, scorer=fuzz.token_set_ratio, score_cutoff=similarity
            )
            if match is None:
                leaders.append(text)
                leader_keys.append(f"text:{len(leaders)}")
                groups[leader_keys[-1]].append(row)
            else:
                groups[leader_keys[match[2]]].append(row)
        gaps: list[KnowledgeGap] = []
        for key, members in groups.items():
            kinds: Counter[str] = Counter(
                f"discard_{m[1]}" if m[0] == "discard" else m[0] for m in members
            )
            items: Counter[str] = Counter(
                m[5] or m[4] for m in members if (m[5] or m[4]) and m[0] != "retrieval_miss"
            )
            newest = sorted(members, key=lambda m: -m[7])
            examples = tuple(dict.fromkeys(m[6] for m in newest if m[6]))[:3]
            intent = key.split(":", 1)[1] if key.startswith("intent:") else None
            if intent is not None:
                topic = intent
            else:
                words = (members[0][6] or "").split()
                topic = " ".join(words[:8]) + ("…" if len(words) > 8 else "")
            gaps.append(
                KnowledgeGap(
                    topic=topic,
                    intent=intent,
                    count=len(members),
                    kinds=dict(kinds.most_common()),
                    items=tuple(i for i, _ in items.most_common(5)),
                    examples=examples,
                    conversations=len({m[3] for m in members}),
                )
            )
        gaps.sort(key=lambda g: (-g.count, g.topic))
        return gaps

    # -- retention ---------------------------------------------------------------------------

    def purge_older_than(
        self, days: float, *, now: float | None = None, vacuum: bool = True
    ) -> dict[str, int]:
        """Remove conversations, turns and actions older than `days` (the retention period).

        The daily counts stay (they hold no text), so reports and priors keep their history.

        Returns:
            How many conversations, turns and actions were removed.
        """
        if days < 0:
            raise ValueError("days must not be negative")
        cutoff = (time.time() if now is None else now) - days * 86400.0
        with self._write() as conn:
            conn.execute("UPDATE store_state SET keep_counts = 1")
            actions = conn.execute("DELETE FROM actions WHERE ts < ?", (cutoff,)).rowcount
            turns = conn.execute("DELETE FROM turns WHERE ts < ?", (cutoff,)).rowcount
            conversations = conn.execute(
                """
                DELETE FROM conversations WHERE COALESCE(ended, started, 0) < ?
                  AND NOT EXISTS (SELECT 1 FROM actions WHERE conversation_id = conversations.id)
                  AND NOT EXISTS (SELECT 1 FROM turns WHERE conversation_id = conversations.id)
                """,
                (cutoff,),
            ).rowcount
            conn.execute("UPDATE store_state SET keep_counts = 0")
        if vacuum and (actions or turns or conversations):
            self._compact()
        return {"conversations": conversations, "turns": turns, "actions": actions}

    def erase(self, conversation_id: str) -> dict[str, int]:
        """Remove a conversation completely: turns, actions, counts, then compact the files.

        After it returns, the conversation's text is in none of the database files (the WAL
        is checkpointed and truncated, and the database is VACUUMed).

        Returns:
            How many conversations (0 or 1), turns and actions were removed.

        Raises:
            FeedbackStoreError: another process kept the WAL from being truncated (the rows
                are deleted; run the erase again once it has closed the database).
        """
        with self._write() as conn:
            conn.execute("PRAGMA secure_delete = ON")
            actions = conn.execute(
                "DELETE FROM actions WHERE conversation_id = ?", (conversation_id,)
            ).rowcount
            turns = conn.execute(
                "DELETE FROM turns WHERE conversation_id = ?", (conversation_id,)
            ).rowcount
            conversations = conn.execute(
                "DELETE FROM conversations WHERE id = ?", (conversation_id,)
            ).rowcount
            conn.execute("DELETE FROM counts_total WHERE n <= 0")
            conn.execute("DELETE FROM counts_daily WHERE n <= 0")
            conn.execute("DELETE FROM counts_queue_daily WHERE n <= 0")
            conn.execute("DELETE FROM latency_daily WHERE n <= 0")
        removed = {"conversations": conversations, "turns": turns, "actions": actions}
        if actions or turns or conversations:
            self._compact()
            self._reload_priors()
        return removed

    def _compact(self) -> None:
        """Checkpoint and truncate the WAL, VACUUM, and truncate again: no stale pages remain."""
        conn = self.db.conn
        self._checkpoint()
        # VACUUM cannot run in a transaction; sqlite-utils' autocommit guard handles that.
        with self.db.ensure_autocommit_on():
            conn.execute("VACUUM")
        self._checkpoint()

    def _checkpoint(self) -> None:
        for attempt in range(20):
            busy, _, _ = self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.05 * (attempt + 1))
        raise FeedbackStoreError(
            "another program has the feedback database open, so its journal could not be"
            " emptied; close it and run the command again"
        )

    # -- export ------------------------------------------------------------------------------

    def iter_actions(
        self,
        *,
        since: str | dt.date | None = None,
        until: str | dt.date | None = None,
        intent: str | None = None,
        kind: Literal["template", "article"] | None = None,
        queue: str | None = None,
        channel: str | None = None,
        source: Literal["offline", "generated"] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every stored action matching the filters as a dict (oldest first), with the
        conversation's start and end.

        Times are ISO-8601 UTC strings (``2025-01-31T09:30:00.000Z``); text is redacted.

        Args:
            since, until: first and last day included (UTC, ``YYYY-MM-DD``).
            intent: only actions taken while the pipeline predicted this intent.
            kind: only suggestions of this kind ("template" or "article"); flags, article
                ratings and corrections have no suggestion kind and are left out.
            queue, channel: only actions from conversations of this queue or channel.
            source: only suggestions from this source ("offline" or "generated" by the
                language model); like `kind`, it leaves out flags, ratings and corrections.

        Raises:
            ValueError: a date is not ``YYYY-MM-DD``, or `kind` or `source` is unknown.
        """
        first, last, generated = _checked_filters(since, until, kind, source)
        where: list[str] = []
        params: list[Any] = []
        if generated is not None:
            where.append(f"a.kind IN ({_SUGGESTION_KINDS_SQL}) AND a.generated = ?")
            params.append(generated)
        if first:
            where.append("a.ts >= ?")
            params.append(_day_start(first))
        if last:
            where.append("a.ts < ?")
            params.append(_day_start(last) + 86400.0)
        for column, value in (
            ("a.intent", intent),
            ("a.suggestion_kind", kind),
            ("COALESCE(a.queue, c.queue)", queue),
            ("COALESCE(a.channel, c.channel)", channel),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        columns = [c for c in _ACTION_COLUMNS if c != "counted"]
        select = ", ".join(f"a.{c}" for c in columns)
        cursor = self.db.conn.execute(
            f"SELECT {select}, c.started, c.ended FROM actions AS a"
            f" LEFT JOIN conversations AS c ON c.id = a.conversation_id{clause} ORDER BY a.id",
            params,
        )
        names = [*columns, "conversation_started", "conversation_ended"]
        times = {"ts", "conversation_started", "conversation_ended"}
        for row in cursor:
            item = dict(zip(names, row, strict=True))
            for name in times:
                if item[name] is not None:
                    item[name] = _iso(item[name])
            yield item

    def export(
        self,
        out: IO[str],
        *,
        fmt: Literal["csv", "json"],
        since: str | dt.date | None = None,
        until: str | dt.date | None = None,
        intent: str | None = None,
        kind: Literal["template", "article"] | None = None,
        queue: str | None = None,
        channel: str | None = None,
        source: Literal["offline", "generated"] | None = None,
    ) -> int:
        """Write the actions as CSV (formula-safe cells) or one JSON object; returns the count.

        The filters are those of `iter_actions`; the JSON header records them.

        Raises:
            ValueError: unknown format, bad date, or unknown suggestion kind or source.
        """
        if fmt not in ("csv", "json"):
            raise ValueError(f"format must be csv or json, not {fmt!r}")
        filters = {
            "since": _parse_day(since, "since"),
            "until": _parse_day(until, "until"),
            "intent": intent,
            "kind": kind,
            "queue": queue,
            "channel": channel,
            "source": source,
        }
        rows = self.iter_actions(
            since=since,
            until=until,
            intent=intent,
            kind=kind,
            queue=queue,
            channel=channel,
            source=source,
        )
        count = 0
        if fmt == "csv":
            names = [c for c in _ACTION_COLUMNS if c != "counted"]
            names += ["conversation_started", "conversation_ended"]
            writer = csv.writer(out)
            writer.writerow(names)
            for row in rows:
                writer.writerow([escape_csv_cell(row[n]) for n in names])
                count += 1
            return count
        header = {
            "schema_version": SCHEMA_VERSION,
            "exported_at": time.time(),
            "filters": {k: v for k, v in filters.items() if v is not None},
        }
        out.write(json.dumps(header, ensure_ascii=False)[:-1] + ', "actions": [')
        for row in rows:
            out.write(("\n" if count == 0 else ",\n") + json.dumps(row, ensure_ascii=False))
            count += 1
        out.write("\n]}\n")
        return count

    # -- maintenance -------------------------------------------------------------------------

    def rebuild_summaries(self) -> None:
        """Recompute the counts from the stored actions (after a bulk import, or to check)."""
        with self._write():
            _rebuild_summaries(self.db)
        self._reload_priors()

    def counts(self) -> dict[str, int]:
        """Rows per table (for ``copilot erase`` and tests)."""
        conn = self.db.conn
        return {
            name: conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
            for name in ("conversations", "turns", "actions")
        }


def _values(
    action: FeedbackAction,
    ts: float,
    latency: float | None,
    counted: int,
    clean: Callable[[str | None], str | None] = _clean,
    *,
    queue: str | None = None,
) -> tuple[Any, ...]:
    """The ``actions`` row for an action (in `_ACTION_COLUMNS` order), its text redacted.

    `queue` stands in when the action names none (its conversation's queue).
    """
    kind = str(action.kind)
    # What a suggestion said is kept with the answer to it, not with every presentation.
    shown_text = None if kind == "suggestion_shown" else clean(action.shown_text)
    sent_text = clean(action.sent_text)
    distance = action.edit_distance
    if kind == "edit" and distance is None and shown_text is not None and sent_text:
        from rapidfuzz.distance import Levenshtein

        distance = Levenshtein.distance(shown_text, sent_text)
    return (
        action.action_id,
        kind,
        action.conversation_id,
        action.turn_id,
        action.item_id,
        action.suggestion_id,
        action.suggestion_kind,
        action.rank,
        action.score,
        shown_text,
        sent_text,
        distance,
        None if action.reason is None else str(action.reason),
        action.intent,
        action.flag_kind,
        action.flag_rule,
        action.corrected_intent,
        ts,
        latency,
        action.agent_id,
        action.queue or queue,
        action.channel,
        action.item_version,
        action.article_id,
        clean(action.query),
        1 if action.generated else 0,
        counted,
    )


def _set_queue(conn: sqlite3.Connection, conversation_id: str, queue: str) -> None:
    """Put a conversation's actions that name no queue into `queue` (a trigger moves counts)."""
    conn.execute(
        "UPDATE actions SET queue = ? WHERE conversation_id = ? AND queue IS NULL",
        (queue, conversation_id),
    )


def _pack_dumper() -> type:
    import yaml

    class PackDumper(yaml.SafeDumper):
        """Writes long text as a folded block (``>-``), like the pack's hand-written files."""

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = ">" if len(value) > 60 else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    PackDumper.add_representer(str, represent_str)
    return PackDumper


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- report assembly ----------------------------------------------------------------------------

_OUTCOMES = {"accept": "accepted", "edit": "edited", "discard": "discarded", "ignored": "ignored"}


def _blank() -> dict[str, float]:
    return {
        "shown": 0,
        "accepted": 0,
        "edited": 0,
        "discarded": 0,
        "ignored": 0,
        "_tta_sum": 0.0,
        "_tta_n": 0,
    }


def _finish(bucket: Mapping[str, float]) -> dict[str, Any]:
    answered = bucket["accepted"] + bucket["edited"] + bucket["discarded"] + bucket["ignored"]
    # When the panel did not record what it showed, the answers are the denominator.
    shown = max(bucket["shown"], answered)
    out: dict[str, Any] = {
        "shown": int(shown),
        "accepted": int(bucket["accepted"]),
        "edited": int(bucket["edited"]),
        "discarded": int(bucket["discarded"]),
        "ignored": int(bucket["ignored"]),
        "acceptance_rate": _rate(bucket["accepted"], shown),
        "edit_rate": _rate(bucket["edited"], shown),
        "discard_rate": _rate(bucket["discarded"], shown),
        "ignored_rate": _rate(bucket["ignored"], shown),
    }
    if bucket["_tta_n"]:
        out["mean_time_to_action_ms"] = round(bucket["_tta_sum"] / bucket["_tta_n"], 1)
    return out


def _percentile(histogram: Sequence[tuple[int, int]], q: float) -> float:
    total = sum(n for _, n in histogram)
    if total <= 0:
        return 0.0
    rank = q / 100.0 * total
    seen = 0
    for bucket, n in histogram:
        seen += n
        if seen >= rank:
            return round(_bucket_value(bucket), 2)
    return round(_bucket_value(histogram[-1][0]), 2)


def _build_report(
    rows: Sequence[tuple[Any, ...]],
    trend_rows: Sequence[tuple[Any, ...]],
    histogram: Sequence[tuple[int, int]],
    articles: Mapping[str, str],
    *,
    period: Mapping[str, Any],
    top: int,
) -> dict[str, Any]:
    totals = _blank()
    by_intent: dict[str, dict[str, float]] = defaultdict(_blank)
    by_template: dict[str, dict[str, float]] = defaultdict(_blank)
    by_article: dict[str, dict[str, float]] = defaultdict(_blank)
    reasons_by_item: dict[str, Counter[str]] = defaultdict(Counter)
    item_kind: dict[str, str] = {}
    reasons: Counter[str] = Counter()
    flags: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    helpful: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    corrections: Counter[tuple[str, str]] = Counter()
    misses = 0
    for kind, skind, intent, item, detail, n, lat_sum, lat_n in rows:
        n = int(n or 0)
        if not n:
            continue
        if kind == "suggestion_shown" or kind in _OUTCOMES:
            field_name = "shown" if kind == "suggestion_shown" else _OUTCOMES[kind]
            targets = [totals, by_intent[intent or "(none)"]]
            if skind == "article":
                targets.append(by_article[articles.get(item) or item.split("#", 1)[0]])
            elif item:
                targets.append(by_template[item])
            for target in targets:
                target[field_name] += n
                if kind in PRIOR_KINDS and lat_n:
                    target["_tta_sum"] += lat_sum
                    target["_tta_n"] += lat_n
            if kind == "discard":
                reasons[detail or "unspecified"] += n
                if item:
                    reasons_by_item[item][detail or "unspecified"] += n
            if item:
                item_kind[item] = skind or item_kind.get(item, "")
        elif kind in ("flag_shown", "flag_wrong"):
            flags[item or "(unknown)"][0 if kind == "flag_shown" else 1] += n
        elif kind in ("article_helpful", "article_not_helpful"):
            helpful[item or "(unknown)"][0 if kind == "article_helpful" else 1] += n
        elif kind == "intent_corrected":
            corrections[(intent or "(none)", detail or "(none)")] += n
        elif kind == "retrieval_miss":
            misses += n
    per_item: dict[str, dict[str, float]] = defaultdict(_blank)
    for kind, _skind, _intent, item, _detail, n, _s, _n in rows:
        if item and (kind == "suggestion_shown" or kind in _OUTCOMES) and n:
            field_name = "shown" if kind == "suggestion_shown" else _OUTCOMES[kind]
            per_item[item][field_name] += int(n)
    discarded = sorted(
        (item for item, b in per_item.items() if b["discarded"]),
        key=lambda item: (-per_item[item]["discarded"], item),
    )[:top]
    trend: dict[str, dict[str, float]] = defaultdict(_blank)
    for day, kind, n in trend_rows:
        field_name = "shown" if kind == "suggestion_shown" else _OUTCOMES[kind]
        trend[day][field_name] += int(n or 0)

    def table(buckets: Mapping[str, Mapping[str, float]], key: str) -> list[dict[str, Any]]:
        out = [{key: name, **_finish(b)} for name, b in buckets.items()]
        out.sort(key=lambda r: (-r["shown"], str(r[key])))
        return out

    flag_rows = []
    for name, (shown, wrong) in flags.items():
        denominator = max(shown, wrong)
        flag_rows.append(
            {
                "flag": name,
                "shown": denominator,
                "wrong": wrong,
                "precision": round(1.0 - wrong / denominator, 4) if denominator else None,
            }
        )
    flag_rows.sort(key=lambda r: (r["precision"] if r["precision"] is not None else 2, r["flag"]))
    return {
        "schema_version": SCHEMA_VERSION,
        "period": dict(period),
        "totals": _finish(totals),
        "by_intent": table(by_intent, "intent"),
        "by_template": table(by_template, "template_id"),
        "by_article": table(by_article, "article_id"),
        "most_discarded": [
            {
                "item_id": item,
                "kind": item_kind.get(item, ""),
                "discarded": int(per_item[item]["discarded"]),
                "shown": _finish(per_item[item])["shown"],
                "discard_rate": _finish(per_item[item])["discard_rate"],
                "top_reason": reasons_by_item[item].most_common(1)[0][0]
                if reasons_by_item[item]
                else None,
            }
            for item in discarded
        ],
        "discard_reasons": dict(reasons.most_common()),
        "flag_precision": flag_rows,
        "article_feedback": sorted(
            (
                {
                    "article_id": name,
                    "helpful": h,
                    "not_helpful": nh,
                    "helpful_rate": _rate(h, h + nh),
                }
                for name, (h, nh) in helpful.items()
            ),
            key=lambda r: (-r["not_helpful"], r["article_id"]),
        ),
        "intent_corrections": [
            {"intent": a, "corrected_intent": b, "count": n}
            for (a, b), n in corrections.most_common(top)
        ],
        "retrieval_misses": misses,
        "suggestion_latency_ms": {
            "n": int(sum(n for _, n in histogram)),
            "p50": _percentile(histogram, 50),
            "p95": _percentile(histogram, 95),
        },
        "trend": [{"day": day, **_finish(trend[day])} for day in sorted(trend)],
    }


if TYPE_CHECKING:
    from copilot.core.protocols import FeedbackSink
    from copilot.core.suggestions import PriorProvider

    def _fits_the_protocols(
        store: FeedbackStore, priors: FeedbackPriors
    ) -> tuple[FeedbackSink, PriorProvider, PriorProvider]:
        """mypy checks here that the store is what the panel and the pipeline are given."""
        return store, store, priors


class LazyStoreSink:
    """The app's `FeedbackSink`: a `FeedbackStore` opened on the db lane's thread.

    The panel sends every write through the app's single "db" lane; `open` is queued there first,
    so the one connection is created and used by that thread alone. Until it is open, priors are
    neutral. `prior` is safe to call from the interactive lane (the priors live in memory).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._store: FeedbackStore | None = None

    def open(self, retention_days: float | None = None) -> dict[str, int]:
        """Open (and migrate) the store, then purge conversations past the retention period."""
        if self._store is None:
            self._store = FeedbackStore(self.path)
        if retention_days:
            return self._store.purge_older_than(retention_days, vacuum=False)
        return {}

    @property
    def store(self) -> FeedbackStore:
        if self._store is None:
            raise FeedbackStoreError("the feedback store is not open yet")
        return self._store

    def record(self, action: FeedbackAction) -> None:
        """Store one action; returns only after it is committed."""
        self.store.record(action)

    def end_conversation(self, conversation_id: str, *, ended: float | None = None) -> int:
        return self.store.end_conversation(conversation_id, ended=ended)

    def prior(self, item_id: str, intent: str | None) -> Prior:
        store = self._store
        return store.prior(item_id, intent) if store is not None else Prior()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
