"""The knowledge-manager window's view-model: article states, reindex, harvest queue, gaps.

Work placement: scanning the articles and reindexing run on the ``bulk`` lane (files and the
embedder); the harvested-reply queue and the gap report read the feedback database on the
``db`` lane with a short-lived `FeedbackStore` per call. Reindex progress is reported from the
worker through a queued signal, and cancelling sets an event the worker polls between batches
(`build_index`'s ``cancelled=``), so the live index stays untouched when cancelled.

The services are imported inside the blocking functions: the knowledge index pulls in FAISS,
which must not load before the main window has painted.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from copilot.qt.review_vm import Column, RecordTableModel
from copilot.qt.tasks import BULK, DB, TaskRunner, failure_message
from copilot.services.paths import articles_dir

#: Article states, in the order a knowledge manager should look at them.
FAILED = "failed"
CHANGED = "changed since indexing"
NOT_INDEXED = "not indexed"
EXPIRED = "expired"
DRAFT = "draft"
ARCHIVED = "archived"
INDEXED = "indexed"
STATE_ORDER: tuple[str, ...] = (FAILED, CHANGED, NOT_INDEXED, EXPIRED, DRAFT, ARCHIVED, INDEXED)


@dataclass(frozen=True)
class KnowledgeSources:
    """Where the window reads and writes: the content pack, the index, the feedback db."""

    content_dir: Path
    index_dir: Path
    db_path: Path


def _live_hashes(index_dir: Path) -> dict[str, str] | None:
    """The live generation's ``articles_hash`` (manifest only; no FAISS), or None."""
    from copilot.services.knowledge_index import MANIFEST_FILE, IndexUnavailable, current_generation

    try:
        generation = current_generation(index_dir)
    except IndexUnavailable:
        return None
    if generation is None:
        return None
    try:
        manifest = json.loads((generation / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    hashes = manifest.get("articles_hash") if isinstance(manifest, dict) else None
    return dict(hashes) if isinstance(hashes, dict) else None


def _relative(path: str, root: Path) -> str:
    """A file's path inside the articles folder (what a knowledge manager recognises)."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def scan_articles(
    content_dir: Path, index_dir: Path, today: dt.date | None = None
) -> list[dict[str, Any]]:
    """Blocking: every article file with its state, worst first.

    States: failed (with the loader's reason), changed since indexing (its content hash differs
    from the live index manifest's), not indexed, expired, draft, archived, indexed.
    """
    from copilot.core.models import ArticleStatus
    from copilot.services.loaders import load_articles

    today = today or dt.date.today()
    root = articles_dir(content_dir)
    loaded = load_articles(root)
    hashes = _live_hashes(index_dir) or {}
    rows: list[dict[str, Any]] = []

    for item in loaded.articles:
        article = item.article
        if article.status is ArticleStatus.ARCHIVED:
            state, detail = ARCHIVED, ""
        elif article.status is ArticleStatus.DRAFT:
            state, detail = DRAFT, ""
        elif article.expires is not None and article.expires < today:
            state, detail = EXPIRED, f"expired {article.expires.isoformat()}"
        elif article.id not in hashes:
            state, detail = NOT_INDEXED, "reindex to make it searchable"
        elif hashes[article.id] != item.content_hash:
            state, detail = CHANGED, "reindex to pick up the new text"
        else:
            state, detail = INDEXED, ""
        rows.append(
            {
                "id": article.id,
                "title": article.title,
                "state": state,
                "detail": detail,
                "updated": article.updated.isoformat() if article.updated else "",
                "expires": article.expires.isoformat() if article.expires else "",
                "owner": article.owner,
                "path": _relative(article.source_path, root),
            }
        )
    for failure in loaded.failures:
        rows.append(
            {
                "id": "",
                "title": "",
                "state": FAILED,
                "detail": failure.reason,
                "updated": "",
                "expires": "",
                "owner": "",
                "path": _relative(failure.path, root),
            }
        )
    rows.sort(key=lambda r: (STATE_ORDER.index(r["state"]), r["id"], r["path"]))
    return rows


def reindex(
    sources: KnowledgeSources,
    embedder: Any,
    progress: Callable[[int, int], None],
    cancelled: Callable[[], bool],
) -> dict[str, Any]:
    """Blocking: build a new index generation; returns `IndexStats.to_dict()`.

    Raises:
        InterruptedError: cancelled (the live index is unchanged).
    """
    from copilot.services.knowledge_index import build_index

    stats = build_index(
        sources.index_dir,
        articles_dir(sources.content_dir),
        embedder,
        progress=progress,
        cancelled=cancelled,
    )
    return stats.to_dict()


def load_queue(db_path: Path) -> dict[str, Any]:
    """Blocking (db lane): the harvested-reply groups waiting for a decision, and the gaps."""
    from copilot.services.feedback_store import FeedbackStore

    with FeedbackStore(db_path) as store:
        harvest = [cluster.to_dict() for cluster in store.harvest()]
        gaps = [gap.to_dict() for gap in store.gaps()]
    return {"harvest": harvest, "gaps": gaps}


def decide_harvest(db_path: Path, cluster_id: str, content_dir: Path | None) -> str:
    """Blocking (db lane): approve (when `content_dir` is given) or reject a group.

    Returns:
        A sentence saying what was done.
    """
    from copilot.services.feedback_store import FeedbackStore

    with FeedbackStore(db_path) as store:
        if content_dir is None:
            store.reject_harvest(cluster_id)
            return f"Rejected {cluster_id}."
        template_id, path = store.approve_harvest(cluster_id, content_dir)
    return f"Added template {template_id} to {path}. Reindex and restart to use it."


def _join(values: Any) -> str:
    if isinstance(values, dict):
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in values.items())
    return ", ".join(str(v) for v in values or ())


def _first(values: Any) -> str:
    values = list(values or ())
    return " ".join(str(values[0]).split()) if values else ""


class KnowledgeViewModel(QObject):
    """State of the knowledge-manager window.

    Signals:
        sig_reindex_progress(int, int): passages embedded so far, and in all.
        sig_reindex_running(bool): a reindex started or ended.
        sig_reindex_finished(dict): `IndexStats.to_dict()` of a completed reindex.
        sig_message(str): something to tell the user (done, cancelled, failed).
    """

    sig_reindex_progress = Signal(int, int)
    sig_reindex_running = Signal(bool)
    sig_reindex_finished = Signal(dict)
    sig_message = Signal(str)
    # Emitted from the bulk worker; delivered on the GUI thread (queued connection).
    _sig_worker_progress = Signal(int, int)

    def __init__(
        self,
        runner: TaskRunner,
        sources: KnowledgeSources,
        embedder_provider: Callable[[], Any],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self.sources = sources
        self._embedder_provider = embedder_provider
        self._cancel = threading.Event()
        self._reindexing = False
        self.progress: tuple[int, int] = (0, 0)
        self.last_stats: dict[str, Any] | None = None
        self.articles = RecordTableModel(
            (
                Column("state", "State"),
                Column("id", "Article"),
                Column("path", "File"),
                Column("title", "Title"),
                Column("detail", "Detail"),
                Column("updated", "Updated"),
                Column("expires", "Expires"),
                Column("owner", "Owner"),
            ),
            self,
        )
        self.errors = RecordTableModel((Column("path", "File"), Column("reason", "Problem")), self)
        self.harvest = RecordTableModel(
            (
                Column("id", "Group"),
                Column("count", "Edits", numeric=True),
                Column("agents", "Agents", numeric=True),
                Column("intents", "Intents", _join),
                Column("item_ids", "Edited suggestion", _first),
                Column("text", "Agents' wording"),
            ),
            self,
        )
        self.gaps = RecordTableModel(
            (
                Column("topic", "Topic"),
                Column("count", "Events", numeric=True),
                Column("conversations", "Conversations", numeric=True),
                Column("kinds", "What happened", _join),
                Column("items", "Articles involved", _join),
                Column("examples", "Example", _first),
            ),
            self,
        )
        self._sig_worker_progress.connect(
            self._progress_arrived, Qt.ConnectionType.QueuedConnection
        )

    def item_models(self) -> tuple[RecordTableModel, ...]:
        return (self.articles, self.errors, self.harvest, self.gaps)

    @property
    def reindexing(self) -> bool:
        return self._reindexing

    # -- loading -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Rescan the articles (bulk lane) and reload the queue and gaps (db lane)."""
        self.refresh_articles()
        self.refresh_queue()

    def refresh_articles(self) -> None:
        self._runner.run(
            BULK,
            scan_articles,
            self.sources.content_dir,
            self.sources.index_dir,
            on_success=self.articles.set_rows,
            on_failure=self._failed("Reading the articles"),
            generation_key=f"km-articles:{id(self)}",
            description="Reading the articles",
        )

    def refresh_queue(self) -> None:
        self._runner.run(
            DB,
            load_queue,
            self.sources.db_path,
            on_success=self._queue_loaded,
            on_failure=self._failed("Loading the harvested replies"),
            generation_key=f"km-queue:{id(self)}",
            description="Loading the harvested replies",
        )

    def _queue_loaded(self, result: dict[str, Any]) -> None:
        self.harvest.set_rows(result["harvest"])
        self.gaps.set_rows(result["gaps"])

    # -- reindex -----------------------------------------------------------------------------

    def reindex(self) -> bool:
        """Start a reindex on the bulk lane; False (with a message) when it cannot start."""
        if self._reindexing:
            return False
        embedder = self._embedder_provider()
        if embedder is None:
            self.sig_message.emit("The language model is still loading; reindex when it is ready.")
            return False
        self._cancel = threading.Event()
        self._reindexing = True
        self.progress = (0, 0)
        self.sig_reindex_running.emit(True)
        self.sig_reindex_progress.emit(0, 0)
        self._runner.run(
            BULK,
            reindex,
            self.sources,
            embedder,
            self._sig_worker_progress.emit,
            self._cancel.is_set,
            on_success=self._reindexed,
            on_failure=self._reindex_failed,
            description="Reindexing the knowledge articles",
        )
        return True

    def cancel_reindex(self) -> None:
        """Stop the running reindex at its next batch; the live index stays as it was."""
        self._cancel.set()

    def _progress_arrived(self, done: int, total: int) -> None:
        if not self._reindexing:
            return
        self.progress = (done, total)
        self.sig_reindex_progress.emit(done, total)

    def _reindexed(self, stats: dict[str, Any]) -> None:
        self._reindexing = False
        self.last_stats = stats
        done = stats.get("embedded_passages", 0)
        self.progress = (done, done)
        self.sig_reindex_progress.emit(done, done)
        root = articles_dir(self.sources.content_dir)
        self.errors.set_rows(
            [{**f, "path": _relative(f["path"], root)} for f in stats.get("failed", [])]
        )
        self.sig_reindex_running.emit(False)
        failed = len(stats.get("failed", []))
        self.sig_message.emit(
            f"Indexed {stats.get('articles', 0)} articles ({len(stats.get('added', []))} added,"
            f" {len(stats.get('changed', []))} changed, {len(stats.get('removed', []))} removed,"
            f" {failed} failed) in {stats.get('seconds', 0):.1f} s as"
            f" {stats.get('generation', '')}. Restart the co-pilot to search the new index."
        )
        self.sig_reindex_finished.emit(stats)
        self.refresh_articles()

    def _reindex_failed(self, error: BaseException) -> None:
        self._reindexing = False
        self.sig_reindex_running.emit(False)
        if isinstance(error, InterruptedError):
            self.sig_message.emit("Reindex cancelled; the live index is unchanged.")
        else:
            self.sig_message.emit(failure_message("Reindexing the knowledge articles", error))

    # -- harvest -----------------------------------------------------------------------------

    def approve(self, cluster_id: str) -> None:
        """Write the group as a template into the content pack (``templates/harvested.yaml``)."""
        self._decide(cluster_id, self.sources.content_dir, "Approving")

    def reject(self, cluster_id: str) -> None:
        """Hide the group from the queue for good."""
        self._decide(cluster_id, None, "Rejecting")

    def _decide(self, cluster_id: str, content_dir: Path | None, verb: str) -> None:
        def done(message: str) -> None:
            self.sig_message.emit(message)
            self.refresh_queue()

        self._runner.run(
            DB,
            decide_harvest,
            self.sources.db_path,
            cluster_id,
            content_dir,
            on_success=done,
            on_failure=self._failed(f"{verb} {cluster_id}"),
            description=f"{verb} {cluster_id}",
        )

    def _failed(self, what: str) -> Callable[[BaseException], None]:
        return lambda error: self.sig_message.emit(failure_message(what, error))
