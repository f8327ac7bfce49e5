"""Retrieval quality on the sample pack's labelled queries, with the real bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copilot.commands.eval_retrieval import evaluate
from copilot.services.loaders import load_articles

pytestmark = pytest.mark.slow


def test_hybrid_retrieval_on_the_sample_pack(sample_content: Path, real_embedder: object) -> None:
    queries = [
        json.loads(line)
        for line in (sample_content / "eval" / "retrieval_queries.jsonl").read_text().splitlines()
        if line.strip()
    ]
    assert len(queries) >= 100
    loaded = load_articles(sample_content / "articles")
    results = evaluate(loaded, queries, real_embedder, include_inactive=False)
    # Measured 0.89 MRR@10 / 0.82 P@1 (hybrid) and 0.83 (dense) with ONNX int8: keep a margin.
    assert results["hybrid"]["mrr@10"] >= 0.84
    assert results["hybrid"]["recall@5"] >= 0.95
    assert results["hybrid"]["mrr@10"] >= results["dense"]["mrr@10"]
    assert results["hybrid"]["mrr@10"] >= results["bm25"]["mrr@10"]


def test_a_changed_article_is_searchable_after_reindex(
    sample_content: Path, real_embedder: object, tmp_path: Path
) -> None:
    import shutil

    from copilot.services.knowledge_index import KnowledgeIndex, build_index

    articles = tmp_path / "articles"
    shutil.copytree(sample_content / "articles", articles)
    index_dir = tmp_path / "index"
    build_index(index_dir, articles, real_embedder)  # type: ignore[arg-type]
    target = articles / "kb-ret-001.md"
    target.write_text(
        target.read_text() + "\n## Returning a Kestrel Cam bought as a gift\n"
        "Gift recipients can return a Kestrel Cam with the gift receipt number printed on the "
        "packing slip; the refund goes to the original buyer's card.\n"
    )
    stats = build_index(index_dir, articles, real_embedder)  # type: ignore[arg-type]
    assert stats.changed == ["KB-RET-001"]
    assert stats.embedded_passages < 20
    index = KnowledgeIndex.open(index_dir, real_embedder)  # type: ignore[arg-type]
    hit = index.search("can I return a camera I got as a present with the gift receipt")[0]
    assert hit.article_id == "KB-RET-001"
    assert "gift" in hit.best.passage.text.lower()
    index.close()
