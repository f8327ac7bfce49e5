"""The knowledge index: incremental reindex, atomic generations, corruption, filters, search."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from copilot.services import knowledge_index as ki
from copilot.services.embedders import HashingEmbedder
from copilot.services.knowledge_index import (
    IndexUnavailable,
    KnowledgeIndex,
    build_index,
    current_generation,
    open_or_build,
)


def article(article_id: str, title: str, body: str, **meta: str) -> str:
    front = {"id": article_id, "title": title, "status": "published", **meta}
    lines = "\n".join(f"{k}: {v}" for k, v in front.items())
    return f"---\n{lines}\n---\n# {title}\n\n{body}\n"


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "bil.md").write_text(
        article(
            "KB-BIL",
            "Double charge",
            "If a customer was charged twice for the same bill, check the payment history.\n\n"
            "## Refund\nConfirmed duplicate payments are refunded in three to five working days.",
            product="account",
        )
    )
    (folder / "acc.md").write_text(
        article(
            "KB-ACC",
            "Password reset",
            "Use forgot password on the login page; the reset link is valid for thirty minutes.",
            product="account",
        )
    )
    (folder / "tec.md").write_text(
        article(
            "KB-TEC",
            "Broadband dropping",
            "If the broadband connection keeps dropping, restart the hub and check the cables.",
            product="broadband",
        )
    )
    return folder


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


def ids(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [h.article_id for h in hits]


def test_build_and_search_all_methods(articles: Path, index_dir: Path) -> None:
    embedder = HashingEmbedder()
    stats = build_index(index_dir, articles, embedder)
    assert sorted(stats.added) == ["KB-ACC", "KB-BIL", "KB-TEC"]
    assert stats.passages == 4
    index = KnowledgeIndex.open(index_dir, embedder)
    for method in ("hybrid", "dense", "bm25"):
        hits = index.search("charged twice for my bill", method=method)  # type: ignore[arg-type]
        assert ids(hits)[0] == "KB-BIL", method
    hit = index.search("refunded duplicate payments")[0]
    assert hit.best.passage.heading_path == ("Double charge", "Refund")
    assert "refunded" in hit.matched_terms
    index.close()


def test_incremental_reindex_embeds_only_what_changed(articles: Path, index_dir: Path) -> None:
    embedder = HashingEmbedder()
    build_index(index_dir, articles, embedder)
    (articles / "acc.md").write_text(
        article("KB-ACC", "Password reset", "Locked accounts unlock after thirty minutes.")
    )
    (articles / "tec.md").unlink()
    (articles / "new.md").write_text(
        article("KB-NEW", "eSIM activation", "Scan the QR code to activate your eSIM.")
    )
    stats = build_index(index_dir, articles, embedder)
    assert stats.added == ["KB-NEW"]
    assert stats.changed == ["KB-ACC"]
    assert stats.removed == ["KB-TEC"]
    assert stats.unchanged == 1
    assert stats.embedded_passages == 2  # the changed and the new article only
    index = KnowledgeIndex.open(index_dir, embedder)
    assert ids(index.search("locked account unlock"))[0] == "KB-ACC"
    assert "KB-TEC" not in ids(index.search("broadband dropping", k=10))
    assert ids(index.search("activate esim qr code"))[0] == "KB-NEW"
    # Unchanged articles keep searching as before (their vectors were carried over).
    assert ids(index.search("charged twice for my bill"))[0] == "KB-BIL"
    index.close()


def test_unchanged_reindex_keeps_the_live_generation(articles: Path, index_dir: Path) -> None:
    embedder = HashingEmbedder()
    first = build_index(index_dir, articles, embedder)
    second = build_index(index_dir, articles, embedder)
    assert second.generation == first.generation
    assert second.embedded_passages == 0


def test_crash_before_the_swap_leaves_the_old_generation_usable(
    articles: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = HashingEmbedder()
    build_index(index_dir, articles, embedder)
    live = current_generation(index_dir)

    def crash(directory: Path, name: str) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(ki, "_swap_current", crash)
    (articles / "acc.md").write_text(article("KB-ACC", "Password reset", "Changed text."))
    with pytest.raises(OSError, match="power cut"):
        build_index(index_dir, articles, embedder)
    assert current_generation(index_dir) == live
    index = KnowledgeIndex.open(index_dir, embedder)
    assert ids(index.search("forgot password reset link"))[0] == "KB-ACC"
    index.close()
    monkeypatch.undo()
    # The next reindex cleans up and succeeds.
    stats = build_index(index_dir, articles, embedder)
    assert stats.changed == ["KB-ACC"]


def test_crash_while_writing_leaves_no_generation_behind(
    articles: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = HashingEmbedder()
    build_index(index_dir, articles, embedder)
    before = sorted(p.name for p in index_dir.iterdir())

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ki, "_write_db", fail)
    (articles / "acc.md").write_text(article("KB-ACC", "Password reset", "Changed text."))
    with pytest.raises(OSError, match="No space left"):
        build_index(index_dir, articles, embedder)
    assert sorted(p.name for p in index_dir.iterdir()) == before
    KnowledgeIndex.open(index_dir, embedder).close()


@pytest.mark.parametrize(
    "damage", ["truncate_vectors", "flip_db_byte", "bad_manifest", "bad_pointer"]
)
def test_damaged_index_is_detected_and_rebuilt(
    articles: Path, index_dir: Path, damage: str
) -> None:
    embedder = HashingEmbedder()
    build_index(index_dir, articles, embedder)
    generation = current_generation(index_dir)
    assert generation is not None
    if damage == "truncate_vectors":
        path = generation / ki.VECTORS_FILE
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "flip_db_byte":
        path = generation / ki.DB_FILE
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "bad_manifest":
        (generation / ki.MANIFEST_FILE).write_text("{not json")
    else:
        (index_dir / ki.CURRENT_FILE).write_text("../../etc")
    with pytest.raises(IndexUnavailable):
        KnowledgeIndex.open(index_dir, embedder)
    index, stats = open_or_build(index_dir, articles, embedder)
    assert stats is not None and stats.articles == 3
    assert ids(index.search("charged twice for my bill"))[0] == "KB-BIL"
    index.close()


def test_other_model_or_chunker_forces_a_rebuild(
    articles: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(index_dir, articles, HashingEmbedder(64))
    with pytest.raises(IndexUnavailable, match="model"):
        KnowledgeIndex.open(index_dir, HashingEmbedder(32))
    stats = build_index(index_dir, articles, HashingEmbedder(32))
    assert stats.rebuilt_reason and "model" in stats.rebuilt_reason
    assert stats.embedded_passages == 4
    monkeypatch.setattr(ki, "CHUNKER_VERSION", 999)
    with pytest.raises(IndexUnavailable, match="chunker_version"):
        KnowledgeIndex.open(index_dir, HashingEmbedder(32))


def test_filters_on_status_expiry_and_product(tmp_path: Path, index_dir: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    body = "Refunds for a double charge are paid back to the card."
    (folder / "live.md").write_text(article("LIVE", "Refunds", body, product="account"))
    (folder / "old.md").write_text(article("OLD", "Refunds old", body, expires="2020-01-01"))
    (folder / "arch.md").write_text(
        article("ARCH", "Refunds archived", body).replace("published", "archived")
    )
    (folder / "draft.md").write_text(
        article("DRAFT", "Refunds draft", body).replace("published", "draft")
    )
    (folder / "shop.md").write_text(article("SHOP", "Shop refunds", body, product="shop"))
    embedder = HashingEmbedder()
    build_index(index_dir, folder, embedder)
    index = KnowledgeIndex.open(index_dir, embedder)
    assert sorted(ids(index.search("refund double charge", k=10))) == ["LIVE", "SHOP"]
    assert ids(index.search("refund double charge", k=10, product="shop")) == ["SHOP"]
    everything = ids(index.search("refund double charge", k=10, include_inactive=True))
    assert sorted(everything) == ["ARCH", "DRAFT", "LIVE", "OLD", "SHOP"]
    for method in ("dense", "bm25"):
        found = ids(index.search("refund double charge", k=10, method=method))  # type: ignore[arg-type]
        assert sorted(found) == ["LIVE", "SHOP"]
    index.close()


def test_broken_articles_are_reported_and_the_rest_indexed(articles: Path, index_dir: Path) -> None:
    (articles / "broken.md").write_text("---\nid: [\n---\nx\n")
    stats = build_index(index_dir, articles, HashingEmbedder())
    assert stats.articles == 3
    assert [Path(f.path).name for f in stats.failed] == ["broken.md"]
    assert "front matter" in stats.failed[0].reason


def test_manifest_records_model_chunker_and_hashes(articles: Path, index_dir: Path) -> None:
    build_index(index_dir, articles, HashingEmbedder())
    generation = current_generation(index_dir)
    assert generation is not None
    manifest = json.loads((generation / ki.MANIFEST_FILE).read_text())
    assert manifest["model"] == "hashing-64"
    assert manifest["dimension"] == 64
    assert manifest["chunker_version"] == ki.CHUNKER_VERSION
    assert set(manifest["articles_hash"]) == {"KB-ACC", "KB-BIL", "KB-TEC"}
    assert manifest["counts"] == {"articles": 3, "passages": 4}


def test_old_generations_are_pruned(articles: Path, index_dir: Path) -> None:
    embedder = HashingEmbedder()
    for n in range(4):
        (articles / "acc.md").write_text(article("KB-ACC", "Password reset", f"Version {n}."))
        build_index(index_dir, articles, embedder)
    generations = sorted(p.name for p in index_dir.glob("gen-*"))
    assert generations == ["gen-000003", "gen-000004"]
    shutil.rmtree(index_dir)


def test_boosted_articles_are_searched_and_ranked_higher(articles: Path, index_dir: Path) -> None:
    embedder = HashingEmbedder()
    build_index(index_dir, articles, embedder)
    index = KnowledgeIndex.open(index_dir, embedder)
    query = "charged twice for my bill"
    assert ids(index.search(query))[0] == "KB-BIL"
    boosted = index.search(query, boost={"KB-TEC": 1.0})
    assert ids(boosted)[0] == "KB-TEC"
    # Only hybrid honours the boost, and an archived or expired article is never boosted in.
    assert ids(index.search(query, method="dense", boost={"KB-TEC": 1.0}))[0] == "KB-BIL"
    assert "KB-GONE" not in ids(index.search(query, boost={"KB-GONE": 1.0}))
    index.close()


def test_long_queries_search_bm25_with_their_rarest_terms(articles: Path, index_dir: Path) -> None:
    embedder = HashingEmbedder()
    build_index(index_dir, articles, embedder)
    index = KnowledgeIndex.open(index_dir, embedder)
    common = ["the", "check"]  # "the" is in every article
    rare = ["duplicate", "cables", "thirty", "login", "forgot", "hub", "twice", "restart", "bill"]
    terms = [*common, *rare, "unknownword"]
    chosen = index.select_terms(terms)
    assert len(chosen) == ki.BM25_MAX_TERMS - 1 or len(chosen) <= ki.BM25_MAX_TERMS
    assert "unknownword" not in chosen  # a term no passage has cannot match
    assert "the" not in chosen and "duplicate" in chosen
    assert chosen == [t for t in terms if t in chosen]  # query order kept
    index.close()


# --- candidates: built, judged, then promoted or discarded ------------------------------------


def test_a_candidate_is_built_beside_the_live_index_without_going_live(
    articles: Path, index_dir: Path
) -> None:
    embedder = HashingEmbedder()
    live = build_index(index_dir, articles, embedder).generation
    (articles / "tec.md").unlink()
    stats = ki.build_candidate(index_dir, articles, embedder)
    assert stats.candidate and stats.base_generation == live
    assert stats.removed == ["KB-TEC"]
    assert ki.current_generation_name(index_dir) == live
    assert KnowledgeIndex.open(index_dir, embedder).article("KB-TEC") is not None  # still live
    candidate = KnowledgeIndex.open(index_dir, embedder, generation_name=stats.generation)
    assert candidate.article("KB-TEC") is None
    candidate.close()

    ki.promote_generation(index_dir, stats.generation, expected_current=live)
    assert ki.current_generation_name(index_dir) == stats.generation
    assert KnowledgeIndex.open(index_dir, embedder).article("KB-TEC") is None


def test_a_discarded_candidate_is_removed_and_the_live_one_cannot_be(
    articles: Path, index_dir: Path
) -> None:
    embedder = HashingEmbedder()
    live = build_index(index_dir, articles, embedder).generation
    (articles / "acc.md").write_text(article("KB-ACC", "Password reset", "New text."))
    stats = ki.build_candidate(index_dir, articles, embedder)
    assert ki.discard_generation(index_dir, stats.generation)
    assert not (index_dir / stats.generation).exists()
    assert ki.current_generation_name(index_dir) == live
    with pytest.raises(ValueError, match="live"):
        ki.discard_generation(index_dir, live)


def test_nothing_changed_means_no_candidate(articles: Path, index_dir: Path) -> None:
    embedder = HashingEmbedder()
    live = build_index(index_dir, articles, embedder).generation
    stats = ki.build_candidate(index_dir, articles, embedder)
    assert not stats.candidate and stats.generation == live
    assert sorted(p.name for p in index_dir.glob("gen-*")) == [live]


def test_a_candidate_overtaken_by_another_reindex_is_refused(
    articles: Path, index_dir: Path
) -> None:
    embedder = HashingEmbedder()
    live = build_index(index_dir, articles, embedder).generation
    (articles / "tec.md").unlink()
    stats = ki.build_candidate(index_dir, articles, embedder)
    (articles / "acc.md").unlink()
    other = build_index(index_dir, articles, embedder).generation  # e.g. another process
    with pytest.raises(ki.StaleCandidate, match="reindex again"):
        ki.promote_generation(index_dir, stats.generation, expected_current=live)
    assert ki.current_generation_name(index_dir) == other


def test_a_cancelled_candidate_writes_nothing(articles: Path, index_dir: Path) -> None:
    embedder = HashingEmbedder()
    live = build_index(index_dir, articles, embedder).generation
    (articles / "tec.md").write_text(article("KB-TEC", "Broadband", "Changed."))
    with pytest.raises(InterruptedError):
        ki.build_candidate(index_dir, articles, embedder, cancelled=lambda: True)
    assert sorted(p.name for p in index_dir.glob("gen-*")) == [live]
    assert not list(index_dir.glob(".tmp-*"))
