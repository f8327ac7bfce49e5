"""The SQLite feedback store: schema and migrations, every action kind, priors, harvest, gaps,
reports, export, retention and erasure."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from copilot.core.feedback import FeedbackAction, FeedbackKind
from copilot.core.suggestions import Prior, suggest
from copilot.services.content_templates import load_template_library, load_templates
from copilot.services.embedders import HashingEmbedder
from copilot.services.feedback_store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    FeedbackStore,
    FeedbackStoreError,
    escape_csv_cell,
)

T0 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)
CARD = "4111 1111 1111 1111"
INTENT = "billing_double_charge"


def at(seconds: float = 0.0, *, days: float = 0.0) -> dt.datetime:
    return T0 + dt.timedelta(days=days, seconds=seconds)


def shown(
    conversation: str,
    item: str,
    *,
    rank: int = 1,
    kind: str = "template",
    intent: str | None = INTENT,
    when: dt.datetime | None = None,
    latency_ms: float | None = 5.0,
    **extra: Any,
) -> FeedbackAction:
    return FeedbackAction(
        kind=FeedbackKind.SUGGESTION_SHOWN,
        conversation_id=conversation,
        turn_id="t1",
        item_id=item,
        suggestion_id=item,
        suggestion_kind=kind,
        rank=rank,
        score=0.5,
        intent=intent,
        ts=when or at(),
        latency_ms=latency_ms,
        **extra,
    )


def answer(
    kind: FeedbackKind,
    conversation: str,
    item: str,
    *,
    intent: str | None = INTENT,
    when: dt.datetime | None = None,
    **extra: Any,
) -> FeedbackAction:
    fields: dict[str, Any] = {
        "conversation_id": conversation,
        "turn_id": "t1",
        "item_id": item,
        "suggestion_id": item,
        "suggestion_kind": "article" if "#" in item else "template",
        "intent": intent,
        "ts": when or at(10),
        "shown_text": "Let me look into those payments for you.",
    }
    if kind in (FeedbackKind.ACCEPT, FeedbackKind.EDIT):
        fields["sent_text"] = fields["shown_text"]
    fields.update(extra)
    return FeedbackAction(kind=kind, **fields)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with FeedbackStore(tmp_path / "feedback.sqlite3") as opened:
        yield opened


def raw_bytes(path: Path) -> bytes:
    """The database file and its -wal and -shm companions, as stored on disk."""
    data = b""
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{path}{suffix}")
        if part.exists():
            data += part.read_bytes()
    return data


# --- schema -------------------------------------------------------------------------------------


def test_a_new_database_has_the_current_schema_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "new" / "feedback.sqlite3") as store:
        conn = store.db.conn
        assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS._migrations)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # Opening again applies nothing twice.
    with FeedbackStore(tmp_path / "new" / "feedback.sqlite3") as again:
        assert again.schema_version == SCHEMA_VERSION


V1_SCHEMA = """
CREATE TABLE [conversations] ([id] TEXT PRIMARY KEY, [started] FLOAT, [ended] FLOAT,
    [agent_id] TEXT, [queue] TEXT, [channel] TEXT, [customer_name] TEXT);
CREATE TABLE [turns] ([conversation_id] TEXT, [turn_id] TEXT, [role] TEXT NOT NULL,
    [text] TEXT NOT NULL, [ts] FLOAT NOT NULL, PRIMARY KEY ([conversation_id], [turn_id]));
CREATE TABLE [actions] ([id] INTEGER PRIMARY KEY, [action_id] TEXT NOT NULL,
    [kind] TEXT NOT NULL, [conversation_id] TEXT NOT NULL, [turn_id] TEXT, [item_id] TEXT,
    [suggestion_id] TEXT, [suggestion_kind] TEXT, [rank] INTEGER, [score] FLOAT,
    [shown_text] TEXT, [sent_text] TEXT, [edit_distance] INTEGER, [reason] TEXT, [intent] TEXT,
    [flag_kind] TEXT, [flag_rule] TEXT, [corrected_intent] TEXT, [ts] FLOAT NOT NULL,
    [latency_ms] FLOAT, [agent_id] TEXT, [queue] TEXT, [channel] TEXT);
CREATE UNIQUE INDEX [idx_actions_action_id] ON [actions] ([action_id]);
CREATE INDEX [actions_conversation] ON [actions] ([conversation_id]);
CREATE TABLE [_sqlite_migrations] ([id] INTEGER PRIMARY KEY, [migration_set] TEXT,
    [name] TEXT, [applied_at] TEXT);
CREATE UNIQUE INDEX [idx__sqlite_migrations_migration_set_name]
    ON [_sqlite_migrations] ([migration_set], [name]);
INSERT INTO _sqlite_migrations (migration_set, name, applied_at)
    VALUES ('copilot.feedback', 'm001_initial', '2025-01-01 00:00:00+00:00');
"""


def test_a_version_1_database_is_migrated_and_its_actions_counted(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    ts = T0.timestamp()
    rows = [
        # The same suggestion shown on two turns is one presentation.
        ("a1", "suggestion_shown", "c1", "t1", "billing.double_charge_check", None, None, ts),
        ("a2", "suggestion_shown", "c1", "t2", "billing.double_charge_check", None, None, ts + 5),
        ("a3", "accept", "c1", "t2", "billing.double_charge_check", "Sure.", None, ts + 9),
        ("a4", "suggestion_shown", "c2", "t1", "billing.double_charge_check", None, None, ts),
        ("a5", "discard", "c2", "t1", "billing.double_charge_check", None, "outdated", ts + 3),
    ]
    conn.executemany(
        "INSERT INTO actions (action_id, kind, conversation_id, turn_id, item_id, suggestion_id,"
        " suggestion_kind, intent, sent_text, reason, ts)"
        " VALUES (?, ?, ?, ?, ?, ?, 'template', 'billing_double_charge', ?, ?, ?)",
        [(a, k, c, t, i, i, s, r, when) for a, k, c, t, i, s, r, when in rows],
    )
    conn.execute("INSERT INTO conversations (id, started, agent_id) VALUES ('c1', ?, 'ann')", (ts,))
    conn.commit()
    conn.close()

    with FeedbackStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        report = store.report()
        assert report["totals"]["shown"] == 2
        assert report["totals"]["accepted"] == 1
        assert report["discard_reasons"] == {"outdated": 1}
        assert report["trend"][0]["day"] == "2025-03-03"
        prior = store.prior("billing.double_charge_check", INTENT)
        assert prior.n_observations == 2
        assert prior.explanation == f"accepted 1 of 2 times for {INTENT}"
        # New columns work on the migrated table.
        store.record(shown("c3", "KB-BIL-001#1", kind="article", article_id="KB-BIL-001"))
        assert store.report()["by_article"][0]["article_id"] == "KB-BIL-001"
        assert store.counts()["conversations"] == 3


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite3"
    FeedbackStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
        " VALUES ('copilot.feedback', 'm999_future', '2030-01-01')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(FeedbackStoreError, match="newer version"):
        FeedbackStore(path)


def test_the_connection_belongs_to_the_thread_that_opened_it(store: FeedbackStore) -> None:
    errors: list[BaseException] = []

    def write() -> None:
        try:
            store.record(shown("c1", "billing.double_charge_check"))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    assert errors and isinstance(errors[0], sqlite3.ProgrammingError)
    # Priors are the exception: readable from any thread.
    seen: list[Prior] = []
    reader = threading.Thread(target=lambda: seen.append(store.prior("x", None)))
    reader.start()
    reader.join()
    assert seen == [Prior()]


# --- recording ----------------------------------------------------------------------------------


def every_kind(conversation: str = "c1") -> list[FeedbackAction]:
    item = "billing.double_charge_check"
    common = {"agent_id": "ann", "queue": "billing", "channel": "chat"}
    return [
        shown(conversation, item, item_version="sha1:abc", **common),
        shown(conversation, "KB-BIL-001#2", rank=2, kind="article", article_id="KB-BIL-001"),
        answer(FeedbackKind.ACCEPT, conversation, item, **common),
        answer(
            FeedbackKind.EDIT,
            conversation,
            item,
            sent_text="Let me check those two payments for you now.",
            when=at(20),
        ),
        answer(FeedbackKind.DISCARD, conversation, "KB-BIL-001#2", reason="outdated"),
        FeedbackAction(
            kind=FeedbackKind.ARTICLE_HELPFUL,
            conversation_id=conversation,
            item_id="KB-BIL-001#2",
            article_id="KB-BIL-001",
            ts=at(30),
        ),
        FeedbackAction(
            kind=FeedbackKind.ARTICLE_NOT_HELPFUL,
            conversation_id=conversation,
            item_id="KB-PAY-003#1",
            ts=at(31),
        ),
        FeedbackAction(
            kind=FeedbackKind.FLAG_SHOWN, conversation_id=conversation, flag_kind="frustration"
        ),
        FeedbackAction(
            kind=FeedbackKind.FLAG_WRONG, conversation_id=conversation, flag_kind="frustration"
        ),
        FeedbackAction(
            kind=FeedbackKind.FLAG_SHOWN, conversation_id=conversation, flag_rule="POL-IDV-001"
        ),
        FeedbackAction(
            kind=FeedbackKind.INTENT_CORRECTED,
            conversation_id=conversation,
            intent=INTENT,
            corrected_intent="refund_request",
            ts=at(40),
        ),
        FeedbackAction(
            kind=FeedbackKind.RETRIEVAL_MISS,
            conversation_id=conversation,
            query="do you sell pet insurance",
            ts=at(50),
        ),
        FeedbackAction(
            kind=FeedbackKind.IGNORED,
            conversation_id=conversation,
            item_id="billing.pending_authorisation",
            suggestion_id="billing.pending_authorisation",
            suggestion_kind="template",
            ts=at(60),
        ),
    ]


def test_every_kind_of_action_is_stored_with_its_fields(store: FeedbackStore) -> None:
    actions = every_kind()
    for action in actions:
        store.record(action)
    stored = {row["action_id"]: row for row in store.iter_actions()}
    assert len(stored) == len(actions)
    assert {row["kind"] for row in stored.values()} == {str(k) for k in FeedbackKind}
    first = stored[actions[0].action_id]
    assert first["item_version"] == "sha1:abc"
    assert first["agent_id"] == "ann"
    assert first["ts"] == "2025-03-03T09:00:00.000Z"
    # What a presentation said is not kept with every presentation.
    assert first["shown_text"] is None
    edit = stored[actions[3].action_id]
    assert edit["sent_text"] == "Let me check those two payments for you now."
    assert edit["edit_distance"] > 0
    # Time to action is derived from when the suggestion was shown.
    assert stored[actions[2].action_id]["latency_ms"] == pytest.approx(10_000)
    assert stored[actions[4].action_id]["reason"] == "outdated"
    assert stored[actions[9].action_id]["flag_rule"] == "POL-IDV-001"
    assert stored[actions[10].action_id]["corrected_intent"] == "refund_request"
    assert stored[actions[11].action_id]["query"] == "do you sell pet insurance"

    report = store.report()
    assert report["totals"]["accepted"] == 1
    assert report["totals"]["edited"] == 1
    assert report["totals"]["ignored"] == 1
    assert {row["flag"]: row["precision"] for row in report["flag_precision"]} == {
        "frustration": 0.0,
        "POL-IDV-001": 1.0,
    }
    assert {
        row["article_id"]: (row["helpful"], row["not_helpful"])
        for row in report["article_feedback"]
    } == {"KB-BIL-001": (1, 0), "KB-PAY-003#1": (0, 1)}
    assert report["intent_corrections"] == [
        {"intent": INTENT, "corrected_intent": "refund_request", "count": 1}
    ]
    assert report["retrieval_misses"] == 1
    assert store.counts()["conversations"] == 1


def test_recording_the_same_action_twice_stores_it_once(store: FeedbackStore) -> None:
    action = answer(FeedbackKind.ACCEPT, "c1", "billing.double_charge_check")
    store.record(action)
    store.record(action)
    assert store.counts()["actions"] == 1
    assert store.report()["totals"]["accepted"] == 1
    assert store.prior("billing.double_charge_check", INTENT).n_observations == 1


def test_a_card_number_in_any_text_is_redacted_before_it_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite3"
    with FeedbackStore(path) as store:
        store.start_conversation("c1", customer_name="Sarah Jones", agent_id="ann")
        store.record_turn("c1", "t1", role="customer", text=f"my card is {CARD}", ts=T0.timestamp())
        store.record(
            answer(
                FeedbackKind.EDIT,
                "c1",
                "billing.double_charge_check",
                shown_text=f"Thanks, I have your card {CARD}.",
                sent_text=f"Thanks Sarah, card {CARD.replace(' ', '')} noted.",
            )
        )
        store.record(
            FeedbackAction(
                kind=FeedbackKind.RETRIEVAL_MISS, conversation_id="c1", query=f"card {CARD} wrong"
            )
        )
        texts = [
            value
            for row in store.iter_actions()
            for value in (row["shown_text"], row["sent_text"], row["query"])
            if value
        ]
        turn = store.db.conn.execute("SELECT text FROM turns").fetchone()[0]
    assert len(texts) == 3
    for text in [*texts, turn]:
        assert "[CARD" in text
        assert "1111 1111" not in text and "41111111" not in text
    data = raw_bytes(path)
    assert CARD.encode() not in data
    assert CARD.replace(" ", "").encode() not in data


def test_end_conversation_marks_unanswered_suggestions_ignored(store: FeedbackStore) -> None:
    store.record(shown("c1", "billing.double_charge_check"))
    store.record(shown("c1", "billing.pending_authorisation", rank=2))
    store.record(shown("c1", "billing.pending_authorisation", rank=2, when=at(30)))
    store.record(answer(FeedbackKind.ACCEPT, "c1", "billing.double_charge_check"))
    assert store.end_conversation("c1", ended=at(100).timestamp()) == 1
    assert store.end_conversation("c1") == 0  # already answered
    totals = store.report()["totals"]
    assert (totals["shown"], totals["accepted"], totals["ignored"]) == (2, 1, 1)


def test_bulk_import_counts_exactly_like_recording_one_by_one(tmp_path: Path) -> None:
    actions = [*every_kind("c1"), *every_kind("c2")]
    actions.append(shown("c1", "billing.double_charge_check", when=at(99)))  # shown again
    with (
        FeedbackStore(tmp_path / "one.sqlite3") as one,
        FeedbackStore(tmp_path / "bulk.sqlite3") as bulk,
    ):
        for action in actions:
            one.record(action)
        assert bulk.import_actions(actions) == len(actions)
        assert bulk.import_actions(actions) == 0
        ours, theirs = one.report(), bulk.report()
        for report in (ours, theirs):
            tables = ("by_template", "by_intent", "by_article")
            for row in (report["totals"], *(row for t in tables for row in report[t])):
                row.pop("mean_time_to_action_ms", None)  # bulk loads take latency as given
        assert ours == theirs
        assert one.priors(INTENT) == bulk.priors(INTENT)


# --- priors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    turn_id: str
    role: str
    text: str


def test_priors_reorder_suggestions_and_explain_why(
    store: FeedbackStore, sample_content: Path
) -> None:
    embedder = HashingEmbedder()
    library = load_template_library(sample_content, embedder)
    turns = [Turn("t1", "customer", "I've been charged twice for my bill, two payments of £38.50")]
    vector = embedder.embed([turns[0].text])[0]

    def ranking() -> list[Any]:
        return list(
            suggest(
                turns,
                intent=INTENT,
                intent_confidence=0.9,
                query_vector=vector,
                library=library,
                prior=store,
                k=3,
            )
        )

    before = ranking()
    top, last = before[0].item_id, before[-1].item_id
    assert top != last
    assert all(store.prior(s.item_id, INTENT) == Prior() for s in before)
    for n in range(8):
        conversation = f"c{n}"
        store.record(shown(conversation, top))
        store.record(shown(conversation, last, rank=3))
        store.record(answer(FeedbackKind.DISCARD, conversation, top, reason="wrong_topic"))
        store.record(answer(FeedbackKind.ACCEPT, conversation, last))
    after = ranking()
    assert after[0].item_id == last
    assert top != after[0].item_id
    assert f"accepted 8 of 8 times for {INTENT}" in after[0].why
    prior = store.prior(last, INTENT)
    assert prior.value > 0.9 and prior.n_observations == 8
    # Another intent has seen nothing: it falls back to the item's record over all intents.
    other = store.prior(last, "refund_request")
    assert other.explanation == "accepted 8 of 8 times over all intents"
    # A template nobody has judged stays neutral, so new templates are not buried.
    assert store.prior("billing.bill_dates", INTENT) == Prior()
    assert set(store.priors(INTENT)) == {top, last}


def test_priors_survive_reopening_and_count_edits_as_half(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite3"
    with FeedbackStore(path) as store:
        store.record(answer(FeedbackKind.EDIT, "c1", "x.tpl", sent_text="Something else entirely."))
        store.record(answer(FeedbackKind.ACCEPT, "c2", "x.tpl"))
        remembered = store.prior("x.tpl", INTENT)
    with FeedbackStore(path) as store:
        assert store.prior("x.tpl", INTENT) == remembered
    item_value = (1 + 0.5 + 1) / (2 + 2)
    assert remembered.value == pytest.approx((1 + 0.5 + 2 * item_value) / (2 + 2))
    assert remembered.explanation == f"accepted 1 of 2 times for {INTENT} (1 more edited)"


# --- harvest ------------------------------------------------------------------------------------

EDITS = (
    "So sorry about the double charge Sarah, I've asked billing to refund the extra payment.",
    "So sorry about the double charge Sarah, I've asked billing to refund the extra payment now.",
    "Really sorry about the double charge, Sarah. I've asked billing to refund the extra payment.",
)


def record_edits(store: FeedbackStore) -> None:
    for n, text in enumerate(EDITS):
        conversation = f"h{n}"
        store.start_conversation(conversation, customer_name="Sarah Jones", agent_id=f"agent{n}")
        store.record(
            answer(
                FeedbackKind.EDIT,
                conversation,
                "billing.double_charge_card_refund",
                sent_text=text,
                agent_id=f"agent{n}",
                when=at(n * 60),
            )
        )
    unrelated = "Your parcel is with the courier and should arrive tomorrow before six."
    store.record(answer(FeedbackKind.EDIT, "h9", "delivery.where", sent_text=unrelated))
    # Only a name changed: not new wording.
    store.record(
        answer(
            FeedbackKind.EDIT,
            "h10",
            "billing.double_charge_check",
            shown_text="Let me look into those payments for you, Sam.",
            sent_text="Let me look into those payments for you, Sal.",
        )
    )


def test_harvest_groups_alike_edits_with_their_agents(store: FeedbackStore) -> None:
    record_edits(store)
    clusters = store.harvest()
    assert len(clusters) == 1
    cluster = clusters[0]
    assert (cluster.count, cluster.agents) == (3, 3)
    assert cluster.text in EDITS
    assert cluster.item_ids == ("billing.double_charge_card_refund",)
    assert cluster.intents == (INTENT,)
    assert cluster.id == store.harvest()[0].id  # stable
    assert len(store.harvest(min_count=1)) == 2  # the unrelated edit alone


def copy_pack(sample_content: Path, target: Path) -> Path:
    for name in ("articles", "templates"):
        shutil.copytree(sample_content / name, target / name)
    shutil.copy(sample_content / "intents.yaml", target / "intents.yaml")
    return target


def test_approving_a_harvested_group_adds_a_template_that_loads(
    store: FeedbackStore, sample_content: Path, tmp_path: Path
) -> None:
    pack = copy_pack(sample_content, tmp_path / "pack")
    record_edits(store)
    cluster = store.harvest()[0]
    template_id, path = store.approve_harvest(cluster.id, pack)
    assert path == pack / "templates" / "harvested.yaml"
    entry = yaml.safe_load(path.read_text(encoding="utf-8"))["templates"][0]
    assert entry["id"] == template_id
    assert entry["intents"] == [INTENT]
    assert entry["articles"] == ["KB-BIL-001", "KB-REF-002"]  # the edited template's citations
    loaded, problems, _ = load_templates(pack)
    template = next(t for t in loaded if t.id == template_id)
    assert not [p for p in problems if p.template_id == template_id]
    assert "{customer_name}" in template.text and "Sarah" not in template.text
    assert store.harvest() == []  # decided groups are no longer listed
    with pytest.raises(FeedbackStoreError, match="already approved"):
        store.approve_harvest(cluster.id, pack)


def test_rejecting_a_harvested_group_hides_it(store: FeedbackStore) -> None:
    record_edits(store)
    cluster = store.harvest()[0]
    store.reject_harvest(cluster.id)
    assert store.harvest() == []
    assert [c.status for c in store.harvest(include_decided=True)] == ["rejected"]
    with pytest.raises(FeedbackStoreError, match="no harvested reply group"):
        store.reject_harvest("h00000000")


# --- gaps ---------------------------------------------------------------------------------------


def test_gaps_group_misses_not_helpful_and_wrong_topic_by_topic(store: FeedbackStore) -> None:
    store.record_turn("g1", "t1", role="customer", text="Why was I charged twice this month?")
    store.record(
        answer(FeedbackKind.DISCARD, "g1", "billing.double_charge_check", reason="wrong_topic")
    )
    store.record(
        FeedbackAction(
            kind=FeedbackKind.ARTICLE_NOT_HELPFUL,
            conversation_id="g2",
            item_id="KB-BIL-001#1",
            article_id="KB-BIL-001",
            intent=INTENT,
        )
    )
    for n, query in enumerate(
        ("do you sell pet insurance", "do you sell insurance for pets", "can I pay in bitcoin")
    ):
        store.record(
            FeedbackAction(
                kind=FeedbackKind.RETRIEVAL_MISS, conversation_id=f"m{n}", query=query, ts=at(n)
            )
        )
    # A discard for tone is not a knowledge gap.
    store.record(
        answer(FeedbackKind.DISCARD, "g3", "billing.double_charge_check", reason="wrong_tone")
    )
    gaps = {gap.topic: gap for gap in store.gaps()}
    billing = gaps[INTENT]
    assert billing.count == 2
    assert billing.kinds == {"discard_wrong_topic": 1, "article_not_helpful": 1}
    assert "Why was I charged twice this month?" in billing.examples
    assert set(billing.items) == {"billing.double_charge_check", "KB-BIL-001"}
    pets = next(g for g in gaps.values() if "pet" in g.topic)
    assert pets.intent is None and pets.count == 2 and pets.conversations == 2
    assert sum(g.count for g in gaps.values()) == 5


# --- reports ------------------------------------------------------------------------------------


def test_report_rates_latency_trend_and_filters(store: FeedbackStore) -> None:
    for n in range(4):
        day = float(n // 2)  # two conversations a day
        conversation = f"r{n}"
        store.record(
            shown(conversation, "billing.double_charge_check", when=at(days=day), latency_ms=10)
        )
        store.record(
            shown(
                conversation,
                "KB-BIL-001#1",
                rank=2,
                kind="article",
                article_id="KB-BIL-001",
                when=at(days=day),
                latency_ms=30,
            )
        )
        kind = FeedbackKind.ACCEPT if n % 2 == 0 else FeedbackKind.DISCARD
        extra = {"reason": "wrong_tone"} if kind is FeedbackKind.DISCARD else {}
        store.record(
            answer(kind, conversation, "billing.double_charge_check", when=at(5, days=day), **extra)
        )
    store.record(shown("r9", "refunds.ok", intent="refund_request", when=at(days=1)))

    report = store.report()
    totals = report["totals"]
    assert (totals["shown"], totals["accepted"], totals["discarded"]) == (9, 2, 2)
    assert totals["acceptance_rate"] == round(2 / 9, 4)
    assert totals["mean_time_to_action_ms"] == pytest.approx(5000)
    template = next(
        r for r in report["by_template"] if r["template_id"] == "billing.double_charge_check"
    )
    assert (template["shown"], template["acceptance_rate"], template["discard_rate"]) == (
        4,
        0.5,
        0.5,
    )
    assert report["by_article"][0]["article_id"] == "KB-BIL-001"
    assert report["most_discarded"][0]["item_id"] == "billing.double_charge_check"
    assert report["most_discarded"][0]["top_reason"] == "wrong_tone"
    assert report["discard_reasons"] == {"wrong_tone": 2}
    latency = report["suggestion_latency_ms"]
    assert latency["n"] == 9
    assert 9.5 <= latency["p50"] <= 10.5 and 29.5 <= latency["p95"] <= 30.5
    assert [(d["day"], d["shown"]) for d in report["trend"]] == [
        ("2025-03-03", 4),
        ("2025-03-04", 5),
    ]

    one_day = store.report(since="2025-03-04", until="2025-03-04")
    assert one_day["totals"]["shown"] == 5
    assert [d["day"] for d in one_day["trend"]] == ["2025-03-04"]
    refunds = store.report(intent="refund_request")
    assert (
        refunds["totals"]["shown"] == 1 and refunds["by_template"][0]["template_id"] == "refunds.ok"
    )
    articles = store.report(kind="article")
    assert articles["totals"]["shown"] == 4 and articles["by_template"] == []
    assert articles["suggestion_latency_ms"]["p50"] == pytest.approx(30, abs=0.5)
    with pytest.raises(ValueError, match="date"):
        store.report(since="last week")


def test_an_empty_store_reports_zeros(store: FeedbackStore) -> None:
    report = store.report()
    assert report["totals"]["shown"] == 0 and report["totals"]["acceptance_rate"] == 0.0
    assert report["trend"] == [] and report["suggestion_latency_ms"]["n"] == 0


# --- export -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+44 20 7946 0000", "'+44 20 7946 0000"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Thanks = great", "Thanks = great"),
        (-0.5, -0.5),
        (None, None),
    ],
)
def test_csv_cells_that_could_be_formulas_are_escaped(cell: object, expected: object) -> None:
    assert escape_csv_cell(cell) == expected


def test_csv_export_is_formula_safe_and_json_export_is_one_object(store: FeedbackStore) -> None:
    store.record(
        answer(
            FeedbackKind.EDIT,
            "c1",
            "billing.double_charge_check",
            sent_text='=HYPERLINK("http://evil.example","refund")',
        )
    )
    store.record(shown("c1", "billing.double_charge_check", when=at(-5)))
    out = io.StringIO()
    assert store.export(out, fmt="csv") == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    edit = next(r for r in rows if r["kind"] == "edit")
    assert edit["sent_text"].startswith("'=HYPERLINK")
    assert edit["ts"] == "2025-03-03T09:00:10.000Z"
    out = io.StringIO()
    assert store.export(out, fmt="json", since="2025-03-03", until="2025-03-03") == 2
    data = json.loads(out.getvalue())
    assert data["schema_version"] == SCHEMA_VERSION
    assert [a["kind"] for a in data["actions"]] == ["edit", "suggestion_shown"]
    assert data["actions"][0]["sent_text"].startswith("=HYPERLINK")  # JSON is data, not a sheet
    out = io.StringIO()
    assert store.export(out, fmt="json", since="2025-03-04") == 0
    assert json.loads(out.getvalue())["actions"] == []


def test_export_keeps_only_the_rows_matching_every_filter(store: FeedbackStore) -> None:
    store.start_conversation("c-billing", queue="billing", channel="chat")
    store.start_conversation("c-returns", queue="returns", channel="phone")
    store.record_many(
        [
            answer(FeedbackKind.ACCEPT, "c-billing", "billing.double_charge_check"),
            answer(FeedbackKind.DISCARD, "c-billing", "KB-BIL-001#2", when=at(20)),
            answer(FeedbackKind.ACCEPT, "c-returns", "returns.label", intent="return_request"),
            answer(
                FeedbackKind.ACCEPT,
                "c-billing",
                "billing.double_charge_check",
                when=at(days=2),
            ),
        ]
    )

    def exported(**filters: Any) -> list[dict[str, Any]]:
        out = io.StringIO()
        count = store.export(out, fmt="json", **filters)
        data = json.loads(out.getvalue())
        assert len(data["actions"]) == count
        assert data["filters"] == {k: str(v) for k, v in filters.items()}
        return list(data["actions"])

    rows = exported(intent=INTENT, kind="template", since="2025-03-03", until="2025-03-03")
    assert [(r["conversation_id"], r["item_id"]) for r in rows] == [
        ("c-billing", "billing.double_charge_check")
    ]
    assert [r["item_id"] for r in exported(kind="article")] == ["KB-BIL-001#2"]
    assert {r["conversation_id"] for r in exported(queue="returns")} == {"c-returns"}
    assert {r["conversation_id"] for r in exported(channel="chat")} == {"c-billing"}
    assert exported(intent="return_request", queue="billing") == []
    with pytest.raises(ValueError, match="kind"):
        store.export(io.StringIO(), fmt="csv", kind="macro")  # type: ignore[arg-type]


# --- intent corrections as training examples ----------------------------------------------------


def corrected(
    conversation: str, to: str, *, query: str | None, when: dt.datetime | None = None
) -> FeedbackAction:
    return FeedbackAction(
        kind=FeedbackKind.INTENT_CORRECTED,
        conversation_id=conversation,
        turn_id="t3",
        intent="broadband_fault",
        corrected_intent=to,
        query=query,
        ts=when or at(30),
    )


def test_intent_corrections_become_deduplicated_examples_of_known_intents(
    store: FeedbackStore,
) -> None:
    plug = "my smart plug keeps dropping off the wifi every night"
    store.record_many(
        [
            corrected("c1", "smart_home_device_offline", query=plug, when=at(1)),
            # The same words again (spacing and case aside), from another conversation.
            corrected(
                "c2",
                "smart_home_device_offline",
                query="My smart plug  keeps dropping off the wifi every night",
                when=at(2),
            ),
            # An agent typed free text rather than choosing an intent: not an example.
            corrected("c3", "plug problems", query="the plug is broken", when=at(3)),
            # Card numbers never reach the examples (the store redacts on the way in).
            corrected("c4", "payment_card", query=f"change my card to {CARD}", when=at(4)),
        ]
    )
    known = ["smart_home_device_offline", "payment_card", "broadband_fault"]
    examples = store.intent_examples(known)
    assert (examples[0][0].lower(), examples[0][1]) == (plug, "smart_home_device_offline")
    assert len(examples) == 2
    text, intent = examples[1]
    assert intent == "payment_card" and CARD not in text and "change my card" in text
    assert ("the plug is broken", "plug problems") in store.intent_examples(None)
    assert store.intent_examples(known, limit=1) == [examples[1]]  # the newest


def test_conflicting_corrections_keep_the_intent_chosen_most_often(store: FeedbackStore) -> None:
    words = "i want to leave you and take my number"
    store.record_many(
        [
            corrected("c1", "cancel_contract", query=words, when=at(1)),
            corrected("c2", "number_porting", query=words, when=at(2)),
            corrected("c3", "number_porting", query=words, when=at(3)),
        ]
    )
    assert store.intent_examples() == [(words, "number_porting")]


def test_a_correction_without_words_uses_the_customer_turn_stored_before_it(
    store: FeedbackStore,
) -> None:
    store.record_turn(
        "c1", "t1", role="customer", text="my sim says no service", ts=at(0).timestamp()
    )
    store.record_turn("c1", "t2", role="agent", text="Let me check the mast", ts=at(5).timestamp())
    store.record_turn("c1", "t9", role="customer", text="later words", ts=at(99).timestamp())
    store.record(corrected("c1", "mobile_no_signal", query=None, when=at(10)))
    assert store.intent_examples(["mobile_no_signal"]) == [
        ("my sim says no service", "mobile_no_signal")
    ]


# --- retention and erasure ----------------------------------------------------------------------


def test_purge_removes_old_conversations_but_keeps_the_counts(store: FeedbackStore) -> None:
    store.record_turn(
        "old", "t1", role="customer", text="an old question", ts=at(days=-100).timestamp()
    )
    store.record(shown("old", "billing.double_charge_check", when=at(days=-100)))
    store.record(
        answer(FeedbackKind.ACCEPT, "old", "billing.double_charge_check", when=at(5, days=-100))
    )
    store.record(shown("new", "billing.double_charge_check"))
    removed = store.purge_older_than(90, now=T0.timestamp())
    assert removed == {"conversations": 1, "turns": 1, "actions": 2}
    assert store.counts() == {"conversations": 1, "turns": 0, "actions": 1}
    assert [r["conversation_id"] for r in store.iter_actions()] == ["new"]
    report = store.report()
    assert (report["totals"]["shown"], report["totals"]["accepted"]) == (2, 1)
    assert store.prior("billing.double_charge_check", INTENT).n_observations == 1


def test_erase_leaves_the_conversation_in_none_of_the_database_files(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite3"
    with FeedbackStore(path) as store:
        for conversation in ("erase-me", "keep-me"):
            secret = f"Quokkafeather {conversation} lives at 12 Wobble Lane"
            store.start_conversation(conversation, customer_name=f"Zelda {conversation}")
            store.record_turn(conversation, "t1", role="customer", text=secret, ts=T0.timestamp())
            store.record(shown(conversation, "billing.double_charge_check"))
            store.record(
                answer(
                    FeedbackKind.EDIT,
                    conversation,
                    "billing.double_charge_check",
                    sent_text=f"Reply about {secret}",
                )
            )
        assert b"Quokkafeather erase-me" in raw_bytes(path)  # the check below can fail
        removed = store.erase("erase-me")
        assert removed == {"conversations": 1, "turns": 1, "actions": 2}
        data = raw_bytes(path)
        assert b"erase-me" not in data
        assert b"Quokkafeather erase-me" not in data
        assert b"Quokkafeather keep-me" in data
        assert store.counts() == {"conversations": 1, "turns": 1, "actions": 2}
        report = store.report()
        assert (report["totals"]["shown"], report["totals"]["edited"]) == (1, 1)
        assert store.prior("billing.double_charge_check", INTENT).n_observations == 1
        assert store.erase("erase-me") == {"conversations": 0, "turns": 0, "actions": 0}
    # Still a sound database.
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
