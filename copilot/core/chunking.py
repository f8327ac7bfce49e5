"""Heading-aware passage chunking.

Each section of an article becomes one passage; a long section is split into overlapping windows
on sentence boundaries, so that no passage drowns its best sentence in unrelated text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from copilot.core.models import Article, Passage

#: Bump when chunking changes: an index built with another version is rebuilt.
CHUNKER_VERSION = 1

MAX_WORDS = 160
OVERLAP_WORDS = 40
MIN_WORDS = 8

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n{2,}|\n(?=[-*•]|\d+[.)])")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _windows(text: str, max_words: int, overlap_words: int) -> Iterator[str]:
    sentences = _sentences(text)
    window: list[str] = []
    count = 0
    for sentence in sentences:
        words = len(sentence.split())
        if window and count + words > max_words:
            yield " ".join(window)
            # Carry whole sentences from the end of the window as overlap.
            carried: list[str] = []
            carried_words = 0
            for prev in reversed(window):
                n = len(prev.split())
                if carried_words + n > overlap_words:
                    break
                carried.insert(0, prev)
                carried_words += n
            window, count = carried, carried_words
        window.append(sentence)
        count += words
    if window:
        yield " ".join(window)


def chunk_article(
    article: Article, *, max_words: int = MAX_WORDS, overlap_words: int = OVERLAP_WORDS
) -> list[Passage]:
    """Split an article into passages that keep its id, title and heading path.

    Sections shorter than `MIN_WORDS` words are merged into the next section of the same parent so
    that a heading followed by one line does not become a useless passage.
    """
    passages: list[Passage] = []
    pending_text = ""
    pending_path: tuple[str, ...] | None = None
    for section in article.sections:
        text = section.text.strip()
        if pending_text:
            text = f"{pending_text}\n\n{text}" if text else pending_text
            path = pending_path or section.heading_path
            pending_text, pending_path = "", None
        else:
            path = section.heading_path
        if not text:
            continue
        if len(text.split()) < MIN_WORDS and section is not article.sections[-1]:
            pending_text, pending_path = text, path
            continue
        for window in _windows(text, max_words, overlap_words):
            ordinal = len(passages)
            passages.append(
                Passage(
                    passage_id=f"{article.id}#{ordinal}",
                    article_id=article.id,
                    title=article.title,
                    heading_path=path,
                    text=window,
                    ordinal=ordinal,
                )
            )
    if pending_text:
        ordinal = len(passages)
        passages.append(
            Passage(
                passage_id=f"{article.id}#{ordinal}",
                article_id=article.id,
                title=article.title,
                heading_path=pending_path or (article.title,),
                text=pending_text,
                ordinal=ordinal,
            )
        )
    return passages
