"""Plain, immutable data shared by every layer: articles, passages and search results."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum


class ArticleStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class Section:
    """One block of an article's body under a heading path (outermost heading first)."""

    heading_path: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Article:
    """A knowledge article as loaded from the content pack, before chunking."""

    id: str
    title: str
    sections: tuple[Section, ...]
    source_path: str = ""
    product: str = ""
    tags: tuple[str, ...] = ()
    audience: str = ""
    owner: str = ""
    updated: dt.date | None = None
    expires: dt.date | None = None
    status: ArticleStatus = ArticleStatus.PUBLISHED

    @property
    def body(self) -> str:
        return "\n\n".join(s.text for s in self.sections)

    def is_live(self, today: dt.date) -> bool:
        """True when the article may be suggested: published and not past its expiry date."""
        if self.status is not ArticleStatus.PUBLISHED:
            return False
        return self.expires is None or self.expires >= today


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrievable piece of an article: one section, or one window of a long section."""

    passage_id: str
    article_id: str
    title: str
    heading_path: tuple[str, ...]
    text: str
    ordinal: int

    @property
    def heading(self) -> str:
        return " › ".join(self.heading_path)

    def embedding_text(self) -> str:
        """Text that is embedded: the title and headings give a short passage its context."""
        parts = [self.title, *(h for h in self.heading_path if h != self.title)]
        return " — ".join(parts) + "\n" + self.text


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """A content file that could not be loaded, with a reason a knowledge manager can act on."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class PassageHit:
    passage: Passage
    score: float
    dense_rank: int | None = None
    bm25_rank: int | None = None


@dataclass(frozen=True, slots=True)
class ArticleHit:
    """One article in a ranked result list, with the passage that matched best."""

    article_id: str
    title: str
    score: float
    best: PassageHit
    matched_terms: tuple[str, ...] = ()
    product: str = ""
    passages: tuple[PassageHit, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "article_id": self.article_id,
            "title": self.title,
            "score": round(self.score, 6),
            "product": self.product,
            "heading": self.best.passage.heading,
            "passage_id": self.best.passage.passage_id,
            "passage": self.best.passage.text,
            "matched_terms": list(self.matched_terms),
        }
