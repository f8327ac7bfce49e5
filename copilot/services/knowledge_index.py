"""The hybrid knowledge index: FAISS (dense) + SQLite FTS5 (BM25), fused into one ranking.

On disk, an index directory holds generations and a pointer to the current one::

    index/
      CURRENT                 name of the live generation (replaced atomically)
      gen-000007/
        manifest.json         model, dimension, chunker version, per-article hashes, file checksums
        vectors.faiss         IndexIDMap2(IndexFlatIP), L2-normalised vectors; ids = passage rowids
        passages.db           SQLite: articles, passages, passages_fts (FTS5, porter)

A reindex writes a complete new generation beside the live one and only then swaps `CURRENT`, so a
crash at any moment leaves the previous generation usable. `build_candidate` stops before the
swap: the new generation can be opened (``KnowledgeIndex.open(..., generation_name=)``) and
compared with the live one, then made live with `promote_generation` or removed with
`discard_generation`. A generation whose manifest does not match the embedder or chunker, or whose
files fail their checksums, is never loaded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import numpy.typing as npt
import sqlite_utils

from copilot.core.chunking import CHUNKER_VERSION, chunk_article
from copilot.core.models import (
    Article,
    ArticleHit,
    ArticleStatus,
    LoadFailure,
    Passage,
    PassageHit,
)
from copilot.core.protocols import Embedder
from copilot.services.loaders import LoadedArticle, LoadResult, load_articles

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: term document frequencies for BM25 query-term selection
CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
VECTORS_FILE = "vectors.faiss"
DB_FILE = "passages.db"
#: How dense and BM25 results are fused. Measured on stackfaq with MiniLM (BENCHMARKS.md):
#: dense alone MRR@10 0.965; reciprocal rank fusion 0.961 at best (k=10, BM25 weight 0.2) and
#: 0.939 with the textbook k=60 and equal weights, because BM25 (0.824) is much weaker there;
#: convex score fusion (cosine + 0.1 x BM25/max BM25) 0.967. So "linear" is the default and
#: "rrf" stays available for packs where keyword matches matter more.
Fusion = Literal["linear", "rrf"]
DEFAULT_FUSION: Fusion = "linear"
LINEAR_BM25_WEIGHT = 0.1
RRF_K = 10
DENSE_WEIGHT = 1.0
BM25_WEIGHT = 0.2
CANDIDATES = 50
#: BM25 searches with at most this many of the query's terms, the rarest first: a conversation
#: window has dozens of words, and common ones cost postings without adding much.
BM25_MAX_TERMS = 10

Method = Literal["hybrid", "dense", "bm25"]

# Single-query search runs on one thread: on 2 cores, competing pools double the latency.
faiss.omp_set_num_threads(1)
# ...but OpenMP keeps that setting per thread, and searches run on worker threads (the app's
# interactive and bulk lanes), where it is back to one OpenMP thread per core: measured 5-10x
# slower searches there (0.64 s vs 0.07 s for 60 searches on 2 busy cores). Each searching
# thread sets it once (`_single_omp_thread`).
_omp_configured = threading.local()


def _single_omp_thread() -> None:
    if not getattr(_omp_configured, "done", False):
        faiss.omp_set_num_threads(1)
        _omp_configured.done = True


class IndexUnavailable(Exception):
    """No usable index: missing, built for another model or chunker, or damaged. Says why."""


class StaleCandidate(IndexUnavailable):
    """The live generation changed after a candidate was built from it: build it again."""


@dataclass(frozen=True, slots=True)
class IndexStats:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[LoadFailure] = field(default_factory=list)
    articles: int = 0
    passages: int = 0
    embedded_passages: int = 0
    seconds: float = 0.0
    generation: str = ""
    rebuilt_reason: str | None = None
    #: True when `generation` was written but is not live yet (`build_candidate`).
    candidate: bool = False
    #: The live generation when the build started (what a candidate is compared with).
    base_generation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "failed": [{"path": f.path, "reason": f.reason} for f in self.failed],
            "articles": self.articles,
            "passages": self.passages,
            "embedded_passages": self.embedded_passages,
            "seconds": round(self.seconds, 3),
            "generation": self.generation,
            "rebuilt_reason": self.rebuilt_reason,
            "candidate": self.candidate,
            "base_generation": self.base_generation,
        }


ProgressCallback = Callable[[int, int], None]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have how i i'm
    if in into is it its it's me my no not of on or our so that the their them then there these
    they this to was we were what when where which who why will with would you your yours""".split()  # noqa: SIM905
)
_WORD = re.compile(r"[A-Za-z0-9]+")


def query_terms(query: str) -> list[str]:
    """Content words of a query, lower-cased, de-duplicated, in order."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if word not in _STOPWORDS and len(word) > 1:
            seen.setdefault(word, None)
    return list(seen)


def _fts_query(terms: Sequence[str]) -> str:
    return " OR ".join(f'"{t}"' for t in terms)


class KnowledgeIndex:
    """A loaded, read-only generation of the index. Thread-safe for concurrent searches."""

    def __init__(
        self,
        directory: Path,
        generation: Path,
        manifest: dict[str, Any],
        vectors: Any,
        embedder: Embedder,
        *,
        fusion: Fusion = DEFAULT_FUSION,
    ) -> None:
        self.directory = directory
        self.fusion: Fusion = fusion
        self.generation = generation
        self.manifest = manifest
        self._vectors = vectors
        self._embedder = embedder
        self._local = threading.local()
        self._db_path = generation / DB_FILE
        self._selector_cache: dict[tuple[Any, ...], tuple[Any, frozenset[int]]] = {}
        self._articles: dict[str, dict[str, Any]] = {}
        self._passages: dict[int, Passage] = {}
        self._passage_article: dict[int, str] = {}
        self._words_cache: dict[str, frozenset[str]] = {}
        self._article_rows: dict[str, list[int]] = {}
        self._load_tables()

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, directory: Path, embedder: Embedder, *, generation_name: str | None = None
    ) -> KnowledgeIndex:
        """Load the current generation (or the one named), verifying it.

        Args:
            directory: the index directory.
            embedder: the embedder the generation must have been built with.
            generation_name: a generation other than the live one, e.g. a candidate.

        Raises:
            IndexUnavailable: with the reason.
        """
        if generation_name is None:
            generation = current_generation(directory)
            if generation is None:
                raise IndexUnavailable(f"no index in {directory}")
        else:
            generation = _named_generation(directory, generation_name)
        manifest = _verify_generation(generation, embedder)
        try:
            vectors = faiss.read_index(str(generation / VECTORS_FILE))
        except RuntimeError as exc:
            raise IndexUnavailable(f"{generation.name}: vectors cannot be read: {exc}") from exc
        if vectors.ntotal != manifest["counts"]["passages"]:
            raise IndexUnavailable(
                f"{generation.name}: {vectors.ntotal} vectors but the manifest says "
                f"{manifest['counts']['passages']} passages"
            )
        return cls(directory, generation, manifest, vectors, embedder)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self._db_path}?mode=ro", uri=True, check_same_thread=True
            )
            self._local.conn = conn
        return conn

    def _load_tables(self) -> None:
        conn = self._connection()
        conn.row_factory = sqlite3.Row
        try:
            for row in conn.execute("SELECT * FROM articles"):
                record = dict(row)
                record["tags"] = tuple(json.loads(record["tags"] or "[]"))
                self._articles[record["id"]] = record
            for row in conn.execute(
                "SELECT id, passage_id, article_id, title, heading_path, text, ordinal "
                "FROM passages"
            ):
                passage = Passage(
                    passage_id=row["passage_id"],
                    article_id=row["article_id"],
                    title=row["title"],
                    heading_path=tuple(json.loads(row["heading_path"])),
                    text=row["text"],
                    ordinal=row["ordinal"],
                )
                self._passages[row["id"]] = passage
                self._passage_article[row["id"]] = row["article_id"]
                self._article_rows.setdefault(row["article_id"], []).append(row["id"])
        except sqlite3.DatabaseError as exc:
            raise IndexUnavailable(f"{self.generation.name}: passage database: {exc}") from exc
        finally:
            conn.row_factory = None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- facts --------------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    @property
    def passage_count(self) -> int:
        return len(self._passages)

    @property
    def article_count(self) -> int:
        return len(self._articles)

    def article(self, article_id: str) -> dict[str, Any] | None:
        """Stored metadata of one article (id, title, product, tags, status, expires, ...)."""
        return self._articles.get(article_id)

    def all_passages(self) -> list[Passage]:
        return list(self._passages.values())

    def article_passages(self, article_id: str) -> list[Passage]:
        passages = [p for p in self._passages.values() if p.article_id == article_id]
        return sorted(passages, key=lambda p: p.ordinal)

    def passage(self, passage_id: str) -> Passage | None:
        for passage in self._passages.values():
            if passage.passage_id == passage_id:
                return passage
        return None

    # -- search -------------------------------------------------------------------------------

    def _allowed(
        self, today: dt.date, product: str | None, include_inactive: bool
    ) -> tuple[Any, frozenset[int]]:
        key = (today, product, include_inactive)
        cached = self._selector_cache.get(key)
        if cached is not None:
            return cached
        allowed_articles = set()
        for article_id, meta in self._articles.items():
            if product and meta["product"] != product:
                continue
            if not include_inactive:
                if meta["status"] != ArticleStatus.PUBLISHED.value:
                    continue
                if meta["expires"] and dt.date.fromisoformat(meta["expires"]) < today:
                    continue
            allowed_articles.add(article_id)
        ids = frozenset(
            rowid for rowid, aid in self._passage_article.items() if aid in allowed_articles
        )
        selector = faiss.IDSelectorBatch(np.fromiter(ids, dtype=np.int64, count=len(ids)))
        self._selector_cache = {key: (selector, ids)}  # one entry: filters rarely change
        return selector, ids

    def dense_search(
        self, vector: npt.NDArray[np.float32], k: int, allowed: tuple[Any, frozenset[int]]
    ) -> list[tuple[int, float]]:
        selector, ids = allowed
        if not ids:
            return []
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        scores, rowids = self._vectors.search(query, min(k, len(ids)), params=params)
        return [(int(r), float(s)) for r, s in zip(rowids[0], scores[0], strict=True) if r >= 0]

    def bm25_search(
        self, terms: Sequence[str], k: int, allowed: tuple[Any, frozenset[int]]
    ) -> list[tuple[int, float]]:
        terms = self.select_terms(terms)
        if not terms:
            return []
        _, ids = allowed
        rows = (
            self._connection()
            .execute(
                "SELECT rowid, bm25(passages_fts, 3.0, 2.0, 1.0) AS score FROM passages_fts "
                "WHERE passages_fts MATCH ? ORDER BY score LIMIT ?",
                (_fts_query(terms), k * 4 if len(ids) < len(self._passages) else k),
            )
            .fetchall()
        )
        # FTS5 bm25() is lower-is-better; flip it so that higher is better everywhere.
        return [(int(r), -float(s)) for r, s in rows if r in ids][:k]

    def select_terms(self, terms: Sequence[str]) -> list[str]:
        """The rarest `BM25_MAX_TERMS` of `terms` that occur in the index, in query order."""
        if len(terms) <= BM25_MAX_TERMS:
            return list(terms)
        marks = ",".join("?" for _ in terms)
        df = dict(
            self._connection()
            .execute(f"SELECT term, df FROM term_df WHERE term IN ({marks})", list(terms))
            .fetchall()
        )
        present = [t for t in terms if t in df]
        keep = set(sorted(present, key=lambda t: df[t])[:BM25_MAX_TERMS])
        return [t for t in present if t in keep]

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        product: str | None = None,
        method: Method = "hybrid",
        vector: npt.NDArray[np.float32] | None = None,
        today: dt.date | None = None,
        include_inactive: bool = False,
        boost: Mapping[str, float] | None = None,
    ) -> list[ArticleHit]:
        """Rank articles for `query`, best first, each with its best passage.

        Args:
            query: The text to search for (for live assist: recent customer turns).
            k: How many articles to return.
            product: Only articles of this product.
            method: "hybrid" (dense + BM25 by reciprocal rank fusion), "dense" or "bm25".
            vector: A precomputed embedding of `query` (the pipeline embeds each turn once).
            today: The date expiry is judged against (default: today).
            include_inactive: Also return draft, archived and expired articles (knowledge managers).
            boost: article id -> score added to its passages (hybrid only), e.g. the articles
                that back the conversation's confident intent; their best passages are searched
                even when the query alone would not reach them.
        """
        _single_omp_thread()
        allowed = self._allowed(today or dt.date.today(), product, include_inactive)
        terms = query_terms(query)
        dense: list[tuple[int, float]] = []
        bm25: list[tuple[int, float]] = []
        if method in ("hybrid", "dense"):
            if vector is None:
                vector = self._embedder.embed([query])[0]
            dense = self.dense_search(vector, CANDIDATES, allowed)
            if boost and method == "hybrid":
                dense = self._with_boosted(dense, vector, boost, allowed[1])
        if method in ("hybrid", "bm25"):
            bm25 = self.bm25_search(terms, CANDIDATES, allowed)
        return self._fuse(dense, bm25, method, terms, k, boost if method == "hybrid" else None)

    def _with_boosted(
        self,
        dense: list[tuple[int, float]],
        vector: npt.NDArray[np.float32],
        boost: Mapping[str, float],
        allowed_ids: frozenset[int],
    ) -> list[tuple[int, float]]:
        """Add the boosted articles' passages, scored by cosine, to the dense candidates."""
        have = {rowid for rowid, _ in dense}
        wanted = [
            rowid
            for article_id in boost
            for rowid in self._article_rows.get(article_id, ())
            if rowid in allowed_ids and rowid not in have
        ]
        if not wanted:
            return dense
        selector = faiss.IDSelectorBatch(np.asarray(wanted, dtype=np.int64))
        params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        scores, rowids = self._vectors.search(query, len(wanted), params=params)
        extra = [(int(r), float(s)) for r, s in zip(rowids[0], scores[0], strict=True) if r >= 0]
        return sorted(dense + extra, key=lambda item: -item[1])

    def _fuse(
        self,
        dense: list[tuple[int, float]],
        bm25: list[tuple[int, float]],
        method: Method,
        terms: Sequence[str],
        k: int,
        boost: Mapping[str, float] | None = None,
    ) -> list[ArticleHit]:
        dense_rank = {rowid: rank for rank, (rowid, _) in enumerate(dense, start=1)}
        bm25_rank = {rowid: rank for rank, (rowid, _) in enumerate(bm25, start=1)}
        if method == "dense":
            fused = dict(dense)
        elif method == "bm25":
            fused = dict(bm25)
        elif self.fusion == "rrf":
            fused = {}
            for rowid, rank in dense_rank.items():
                fused[rowid] = fused.get(rowid, 0.0) + DENSE_WEIGHT / (RRF_K + rank)
            for rowid, rank in bm25_rank.items():
                fused[rowid] = fused.get(rowid, 0.0) + BM25_WEIGHT / (RRF_K + rank)
        else:
            # Convex score fusion: cosine plus a small share of the query-normalised BM25 score.
            # A passage BM25 found but the dense search did not gets the lowest dense score seen.
            fused = dict(dense)
            floor = min(fused.values(), default=0.0)
            top_bm25 = max((score for _, score in bm25), default=0.0)
            for rowid, score in bm25:
                bonus = LINEAR_BM25_WEIGHT * score / top_bm25 if top_bm25 > 0 else 0.0
                fused[rowid] = fused.get(rowid, floor) + bonus
        if boost:
            scale = 1.0 if self.fusion == "linear" else 1.0 / (RRF_K + 1)
            for rowid in fused:
                fused[rowid] += scale * boost.get(self._passage_article[rowid], 0.0)
        per_article: dict[str, list[PassageHit]] = {}
        for rowid, score in sorted(fused.items(), key=lambda item: -item[1]):
            passage = self._passages[rowid]
            per_article.setdefault(passage.article_id, []).append(
                PassageHit(
                    passage=passage,
                    score=score,
                    dense_rank=dense_rank.get(rowid),
                    bm25_rank=bm25_rank.get(rowid),
                )
            )
        hits: list[ArticleHit] = []
        for article_id, passage_hits in per_article.items():
            best = passage_hits[0]
            meta = self._articles[article_id]
            words = self._passage_words(best.passage)
            matched = tuple(t for t in terms if t in words)
            hits.append(
                ArticleHit(
                    article_id=article_id,
                    title=meta["title"],
                    score=best.score,
                    best=best,
                    matched_terms=matched,
                    product=meta["product"],
                    passages=tuple(passage_hits[:3]),
                )
            )
            if len(hits) == k:
                break
        return hits

    def _passage_words(self, passage: Passage) -> frozenset[str]:
        words = self._words_cache.get(passage.passage_id)
        if words is None:
            words = frozenset(_WORD.findall(f"{passage.heading} {passage.text}".lower()))
            self._words_cache[passage.passage_id] = words
        return words

    def dense_scores(self, hits: Iterable[ArticleHit]) -> dict[str, float]:
        """Cosine similarity of each hit's best passage (for confidence thresholds)."""
        return {hit.article_id: hit.best.score for hit in hits}


# --- generations ----------------------------------------------------------------------------


def current_generation(directory: Path) -> Path | None:
    pointer = directory / CURRENT_FILE
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise IndexUnavailable(f"cannot read {pointer}: {exc}") from exc
    if not re.fullmatch(r"gen-\d{6}", name):
        raise IndexUnavailable(f"{pointer} is damaged (contains {name[:40]!r})")
    generation = directory / name
    if not generation.is_dir():
        raise IndexUnavailable(f"{pointer} names {name}, which does not exist")
    return generation


def current_generation_name(directory: Path) -> str | None:
    """The live generation's name (``gen-000007``), or None when there is no usable pointer."""
    try:
        generation = current_generation(directory)
    except IndexUnavailable:
        return None
    return generation.name if generation is not None else None


def _named_generation(directory: Path, name: str) -> Path:
    if not re.fullmatch(r"gen-\d{6}", name):
        raise IndexUnavailable(f"{name[:40]!r} is not a generation name")
    generation = directory / name
    if not generation.is_dir():
        raise IndexUnavailable(f"generation {name} does not exist in {directory}")
    return generation


def _expected_identity(embedder: Embedder) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "model": embedder.name,
        "dimension": embedder.dimension,
        "chunker_version": CHUNKER_VERSION,
    }


def _verify_generation(generation: Path, embedder: Embedder) -> dict[str, Any]:
    try:
        manifest = json.loads((generation / MANIFEST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexUnavailable(f"{generation.name}: manifest missing") from exc
    except (OSError, ValueError) as exc:
        raise IndexUnavailable(f"{generation.name}: manifest unreadable: {exc}") from exc
    if not isinstance(manifest, dict):
        raise IndexUnavailable(f"{generation.name}: manifest is not a JSON object")
    for key, expected in _expected_identity(embedder).items():
        if manifest.get(key) != expected:
            raise IndexUnavailable(
                f"{generation.name}: built with {key}={manifest.get(key)!r}, need {expected!r}"
            )
    for name, facts in manifest.get("files", {}).items():
        path = generation / name
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise IndexUnavailable(f"{generation.name}: {name} missing") from exc
        if size != facts.get("size"):
            raise IndexUnavailable(
                f"{generation.name}: {name} is {size} bytes, expected {facts.get('size')} "
                "(truncated or replaced)"
            )
        if _sha256_file(path) != facts.get("sha256"):
            raise IndexUnavailable(f"{generation.name}: {name} fails its checksum (corrupt)")
    if set(manifest.get("files", {})) != {VECTORS_FILE, DB_FILE}:
        raise IndexUnavailable(f"{generation.name}: manifest lists the wrong files")
    return manifest


def _next_generation_name(directory: Path) -> str:
    numbers = [
        int(p.name[4:]) for p in directory.glob("gen-*") if re.fullmatch(r"gen-\d{6}", p.name)
    ]
    return f"gen-{(max(numbers) + 1) if numbers else 1:06d}"


def _write_db(path: Path, loaded: Sequence[LoadedArticle], passages: Sequence[Passage]) -> None:
    db = sqlite_utils.Database(path)
    db.conn.execute("PRAGMA journal_mode=DELETE")
    articles = db.table("articles")
    passages_table = db.table("passages")
    articles.insert_all(
        (
            {
                "id": la.article.id,
                "title": la.article.title,
                "product": la.article.product,
                "tags": json.dumps(list(la.article.tags)),
                "audience": la.article.audience,
                "owner": la.article.owner,
                "updated": la.article.updated.isoformat() if la.article.updated else None,
                "expires": la.article.expires.isoformat() if la.article.expires else None,
                "status": la.article.status.value,
                "source_path": la.article.source_path,
                "content_hash": la.content_hash,
            }
            for la in loaded
        ),
        pk="id",
    )
    passages_table.insert_all(
        (
            {
                "id": rowid,
                "passage_id": p.passage_id,
                "article_id": p.article_id,
                "title": p.title,
                "heading": p.heading,
                "heading_path": json.dumps(list(p.heading_path)),
                "text": p.text,
                "ordinal": p.ordinal,
            }
            for rowid, p in enumerate(passages)
        ),
        pk="id",
    )
    passages_table.enable_fts(
        ["title", "heading", "text"], tokenize="porter", create_triggers=False
    )
    passages_table.create_index(["article_id"])
    document_frequency: dict[str, int] = {}
    for p in passages:
        for term in set(_WORD.findall(f"{p.title} {p.heading} {p.text}".lower())):
            document_frequency[term] = document_frequency.get(term, 0) + 1
    db.table("term_df").insert_all(
        ({"term": t, "df": n} for t, n in document_frequency.items()), pk="term"
    )
    db.conn.commit()
    db.conn.execute("VACUUM")
    db.close()


def build_index(
    directory: Path,
    articles_dir: Path,
    embedder: Embedder,
    *,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    force: bool = False,
    keep_generations: int = 2,
) -> IndexStats:
    """(Re)index `articles_dir` into `directory`, incrementally, as a new generation.

    Only articles whose content hash changed are embedded again; vectors of unchanged articles
    are copied from the live generation. A live generation built for another model or chunker,
    or one that fails verification, is ignored and everything is embedded again.

    Raises:
        InterruptedError: `cancelled()` returned True; the live generation is untouched.
    """
    return build_index_from(
        directory,
        load_articles(articles_dir),
        embedder,
        progress=progress,
        cancelled=cancelled,
        force=force,
        keep_generations=keep_generations,
    )


def build_index_from(
    directory: Path,
    loaded: LoadResult,
    embedder: Embedder,
    *,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    force: bool = False,
    keep_generations: int = 2,
    promote: bool = True,
) -> IndexStats:
    """Like `build_index`, for articles already loaded (evaluation sets, tests).

    With ``promote=False`` the new generation is written but `CURRENT` is left alone (see
    `build_candidate`).
    """
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(directory)
    base = current_generation_name(directory)
    previous: KnowledgeIndex | None = None
    rebuilt_reason: str | None = None
    if not force:
        try:
            previous = KnowledgeIndex.open(directory, embedder)
        except IndexUnavailable as exc:
            if current_generation_safe(directory) is not None:
                rebuilt_reason = str(exc)
                log.warning("rebuilding the index: %s", exc)
    old_hashes: dict[str, str] = previous.manifest["articles_hash"] if previous else {}
    new_hashes = {la.article.id: la.content_hash for la in loaded.articles}
    added = sorted(set(new_hashes) - set(old_hashes))
    removed = sorted(set(old_hashes) - set(new_hashes))
    changed = sorted(a for a in new_hashes if a in old_hashes and old_hashes[a] != new_hashes[a])
    unchanged = {a for a in new_hashes if old_hashes.get(a) == new_hashes[a]}

    if previous is not None and not (added or changed or removed):
        # Nothing to do: keep the live generation rather than writing an identical copy.
        stats = IndexStats(
            unchanged=len(unchanged),
            failed=list(loaded.failures),
            articles=len(loaded.articles),
            passages=previous.passage_count,
            seconds=time.perf_counter() - started,
            generation=previous.generation.name,
            base_generation=base,
        )
        previous.close()
        return stats

    passages: list[Passage] = []
    vectors: list[npt.NDArray[np.float32]] = []
    to_embed: list[tuple[int, Passage]] = []
    reuse: dict[str, list[int]] = {}
    if previous is not None:
        for rowid, article_id in previous._passage_article.items():
            if article_id in unchanged:
                reuse.setdefault(article_id, []).append(rowid)
    for la in loaded.articles:
        article = la.article
        if article.id in unchanged and previous is not None:
            for old_rowid in sorted(
                reuse.get(article.id, []), key=lambda r: previous._passages[r].ordinal
            ):
                passages.append(previous._passages[old_rowid])
                vectors.append(previous._vectors.reconstruct(old_rowid))
        else:
            for passage in chunk_article(article):
                to_embed.append((len(passages), passage))
                passages.append(passage)
                vectors.append(np.zeros(embedder.dimension, dtype=np.float32))
    if previous is not None:
        previous.close()

    batch = 32
    total = len(to_embed)
    if progress:
        progress(0, total)
    for start in range(0, total, batch):
        if cancelled and cancelled():
            raise InterruptedError("reindex cancelled; the live index is unchanged")
        chunk = to_embed[start : start + batch]
        embedded = embedder.embed([p.embedding_text() for _, p in chunk])
        for (position, _), vector in zip(chunk, embedded, strict=True):
            vectors[position] = vector
        if progress:
            progress(min(start + batch, total), total)

    generation = _write_generation(
        directory, embedder, loaded.articles, passages, vectors, swap=promote
    )
    if promote:
        _remove_old_generations(directory, keep=keep_generations)
    return IndexStats(
        added=added,
        changed=changed,
        removed=removed,
        unchanged=len(unchanged),
        failed=list(loaded.failures),
        articles=len(loaded.articles),
        passages=len(passages),
        embedded_passages=total,
        seconds=time.perf_counter() - started,
        generation=generation.name,
        rebuilt_reason=rebuilt_reason,
        candidate=not promote,
        base_generation=base,
    )


def build_candidate(
    directory: Path,
    articles_dir: Path,
    embedder: Embedder,
    *,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    force: bool = False,
) -> IndexStats:
    """Build a new generation from `articles_dir` beside the live one WITHOUT making it live.

    Incremental like `build_index`. When no article changed, nothing is written and the
    returned stats have ``candidate=False`` and the live generation's name.

    Returns:
        The stats; ``stats.generation`` names the candidate, to open with
        ``KnowledgeIndex.open(directory, embedder, generation_name=...)`` and then pass to
        `promote_generation` or `discard_generation`.

    Raises:
        InterruptedError: `cancelled()` returned True; nothing was written.
    """
    return build_index_from(
        directory,
        load_articles(articles_dir),
        embedder,
        progress=progress,
        cancelled=cancelled,
        force=force,
        promote=False,
    )


def promote_generation(
    directory: Path,
    name: str,
    *,
    expected_current: str | None,
    keep_generations: int = 2,
) -> None:
    """Make candidate generation `name` the live one (the same atomic `CURRENT` swap).

    Args:
        directory: the index directory.
        name: the candidate (``IndexStats.generation`` of `build_candidate`).
        expected_current: the live generation the candidate was built and compared against
            (``IndexStats.base_generation``; None when there was none). If another reindex
            swapped in something else since, the candidate would silently undo it: refused.
        keep_generations: how many generations to keep on disk afterwards.

    Raises:
        StaleCandidate: the live generation is no longer `expected_current`.
        IndexUnavailable: `name` does not exist.
    """
    _named_generation(directory, name)
    live = current_generation_name(directory)
    if live != expected_current:
        raise StaleCandidate(
            f"the live index changed to {live or 'nothing'} after {name} was built from"
            f" {expected_current or 'nothing'}; reindex again"
        )
    _swap_current(directory, name)
    _remove_old_generations(directory, keep=keep_generations)


def discard_generation(directory: Path, name: str) -> bool:
    """Remove a candidate generation that will not be swapped in.

    Returns:
        False when there was nothing to remove.

    Raises:
        ValueError: `name` is the live generation.
    """
    if not re.fullmatch(r"gen-\d{6}", name):
        raise ValueError(f"{name[:40]!r} is not a generation name")
    if current_generation_name(directory) == name:
        raise ValueError(f"{name} is the live index; it cannot be discarded")
    path = directory / name
    if not path.is_dir():
        return False
    shutil.rmtree(path)
    return True


def current_generation_safe(directory: Path) -> Path | None:
    try:
        return current_generation(directory)
    except IndexUnavailable:
        return directory


def _write_generation(
    directory: Path,
    embedder: Embedder,
    loaded: Sequence[LoadedArticle],
    passages: Sequence[Passage],
    vectors: Sequence[npt.NDArray[np.float32]],
    *,
    swap: bool = True,
) -> Path:
    name = _next_generation_name(directory)
    temp = directory / f".tmp-{name}-{os.getpid()}"
    temp.mkdir()
    try:
        matrix = (
            np.vstack(vectors).astype(np.float32)
            if vectors
            else np.zeros((0, embedder.dimension), dtype=np.float32)
        )
        flat = faiss.IndexFlatIP(embedder.dimension)
        index = faiss.IndexIDMap2(flat)
        if len(matrix):
            index.add_with_ids(matrix, np.arange(len(matrix), dtype=np.int64))
        faiss.write_index(index, str(temp / VECTORS_FILE))
        _write_db(temp / DB_FILE, loaded, passages)
        files = {}
        for file_name in (VECTORS_FILE, DB_FILE):
            path = temp / file_name
            with path.open("rb+") as handle:
                os.fsync(handle.fileno())
            files[file_name] = {"size": path.stat().st_size, "sha256": _sha256_file(path)}
        manifest = {
            **_expected_identity(embedder),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "articles_hash": {la.article.id: la.content_hash for la in loaded},
            "counts": {"articles": len(loaded), "passages": len(passages)},
            "files": files,
        }
        manifest_path = temp / MANIFEST_FILE
        with manifest_path.open("w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(temp)
        final = directory / name
        os.replace(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    if swap:
        _swap_current(directory, name)
    return final


def _swap_current(directory: Path, name: str) -> None:
    """Point CURRENT at generation `name` atomically (write a temp file, fsync, rename)."""
    pointer_tmp = directory / f".{CURRENT_FILE}.tmp-{os.getpid()}"
    with pointer_tmp.open("w", encoding="utf-8") as handle:
        handle.write(name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(pointer_tmp, directory / CURRENT_FILE)
    _fsync_dir(directory)


def _remove_stale_temporaries(directory: Path) -> None:
    for path in directory.glob(".tmp-gen-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in directory.glob(f".{CURRENT_FILE}.tmp-*"):
        path.unlink(missing_ok=True)


def _remove_old_generations(directory: Path, *, keep: int) -> None:
    live = current_generation_safe(directory)
    generations = sorted(p for p in directory.glob("gen-*") if re.fullmatch(r"gen-\d{6}", p.name))
    for path in generations[:-keep] if keep > 0 else generations:
        if path != live:
            shutil.rmtree(path, ignore_errors=True)


def open_or_build(
    directory: Path,
    articles_dir: Path,
    embedder: Embedder,
    *,
    progress: ProgressCallback | None = None,
) -> tuple[KnowledgeIndex, IndexStats | None]:
    """Open the live index, building (or rebuilding) it first when it is missing or unusable."""
    try:
        return KnowledgeIndex.open(directory, embedder), None
    except IndexUnavailable as exc:
        log.info("building the index: %s", exc)
    stats = build_index(directory, articles_dir, embedder, progress=progress)
    return KnowledgeIndex.open(directory, embedder), stats


def articles_of(loaded: Iterable[LoadedArticle]) -> list[Article]:
    return [la.article for la in loaded]
