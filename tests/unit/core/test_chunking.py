"""Heading-aware chunking keeps ids, titles and heading paths; long sections overlap."""

from __future__ import annotations

import itertools

from copilot.core.chunking import chunk_article
from copilot.core.models import Article, Section


def make(sections: list[tuple[tuple[str, ...], str]]) -> Article:
    return Article(
        id="KB-1", title="Title", sections=tuple(Section(path, text) for path, text in sections)
    )


def test_one_passage_per_section_with_heading_path() -> None:
    article = make(
        [
            (("Title",), "An introduction that is long enough to stand alone as a passage here."),
            (("Title", "Refunds"), "Refunds go back to the card in three to five working days."),
        ]
    )
    passages = chunk_article(article)
    assert [p.heading_path for p in passages] == [("Title",), ("Title", "Refunds")]
    assert [p.passage_id for p in passages] == ["KB-1#0", "KB-1#1"]
    assert all(p.article_id == "KB-1" and p.title == "Title" for p in passages)
    assert "Refunds" in passages[1].embedding_text()


def test_long_section_is_split_with_overlap_on_sentence_boundaries() -> None:
    sentences = [f"Sentence number {i} says something useful about refunds." for i in range(60)]
    article = make([(("Title", "Long"), " ".join(sentences))])
    passages = chunk_article(article, max_words=80, overlap_words=20)
    assert len(passages) > 3
    for passage in passages:
        assert len(passage.text.split()) <= 80
        assert passage.text.endswith(".")
    # Consecutive windows share at least one whole sentence.
    for first, second in itertools.pairwise(passages):
        assert first.text.split(". ")[-1].rstrip(".") in second.text
    joined = " ".join(p.text for p in passages)
    assert all(s in joined for s in sentences)


def test_tiny_section_is_merged_into_the_next() -> None:
    article = make(
        [
            (("Title", "Steps"), "Do this:"),
            (("Title", "Steps", "One"), "Restart the hub and wait two minutes for the light."),
        ]
    )
    passages = chunk_article(article)
    assert len(passages) == 1
    assert passages[0].text.startswith("Do this:")
    assert passages[0].heading_path == ("Title", "Steps")
