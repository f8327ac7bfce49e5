"""The knowledge-manager window's view-model: article states, reindex, harvest queue, gaps.

A reindex is previewed before it goes live: the new generation is built beside the live one
without being swapped in, the content pack's demo conversations are replayed on both
(`copilot.services.index_preview`), and the suggestions and cited articles that would change
are listed per demo and turn (`changes`). The knowledge manager then swaps the new index in
(the same atomic ``CURRENT`` swap; a running panel picks it up) or discards it.

Work placement: scanning the articles, building, previewing, swapping and discarding run on the
``bulk`` lane (files and the embedder); the harvested-reply queue and the gap report read the
feedback database on the ``db`` lane with a short-lived `FeedbackStore` per call. Progress is
reported from the worker through a queued signal, and cancelling sets an event the worker polls
between batches and between demos, so the live index stays untouched when cancelled.

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
    """Blocking: build a new index generation and swap it in; returns `IndexStats.to_dict()`.

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


def build_preview(
    sources: KnowledgeSources,
    embedder: Any,
    progress: Callable[[str, int, int], None],
    cancelled: Callable[[], bool],
) -> dict[str, Any]:
    """Blocking: build a candidate generation (not live) and replay the demos on both.

    Returns:
        ``{"stats": IndexStats.to_dict(), "preview": IndexPreview.to_dict() or None}``; the
        preview is None when no article changed (there is nothing to swap in).

    Raises:
        InterruptedError: cancelled (the candidate is removed; the live index is unchanged).
    """
    from copilot.services.assistant import learned_intent_examples
    from copilot.services.index_preview import build_and_preview

    stats, preview = build_and_preview(
        sources.content_dir,
        sources.index_dir,
        embedder,
        progress=progress,
        cancelled=cancelled,
        # Route the demos as the panel does, corrections included.
        extra_intent_examples=learned_intent_examples(sources.content_dir, sources.db_path),
    )
    return {"stats": stats.to_dict(), "preview": preview.to_dict() if preview else None}


def swap_in_candidate(sources: KnowledgeSources, generation: str, base: str | None) -> None:
    """Blocking: make the candidate live; a stale one (the live index moved on) is removed.

    Raises:
        StaleCandidate: another reindex went live after the candidate was built.
    """
    from copilot.services.knowledge_index import (
        StaleCandidate,
        discard_generation,
        promote_generation,
    )

    try:
        promote_generation(sources.index_dir, generation, expected_current=base)
    except StaleCandidate:
        discard_generation(sources.index_dir, generation)
        raise


def discard_candidate(sources: KnowledgeSources, generation: str) -> bool:
    """Blocking: remove the candidate; the live index stays as it was."""
    from copilot.services.knowledge_index import discard_generation

    return discard_generation(sources.index_dir, generation)


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


def _rank(value: Any) -> str:
    return "–" if value is None else str(value)


def change_rows(preview: dict[str, Any]) -> list[dict[str, Any]]:
    """The preview's changes as table rows (``ranks`` and ``turns`` ready to show)."""
    rows = []
    for change in preview.get("changes", []):
        first, last = change["turn_id"], change.get("through_turn_id") or change["turn_id"]
        rows.append(
            {
                **change,
                "turns": first if first == last else f"{first}–{last}",
                "ranks": f"{_rank(change['before_rank'])} → {_rank(change['after_rank'])}",
            }
        )
    return rows


#: What each stage of a preview is called while it runs.
STAGE_LABELS: dict[str, str] = {
    "embedding": "Embedding the changed articles",
    "replaying demos": "Replaying the demo conversations on the live and the new index",
}


class KnowledgeViewModel(QObject):
    """State of the knowledge-manager window.

    A reindex goes: `reindex` (build a candidate and replay the demos; `sig_preview_ready`)
    -> `swap_in` (it goes live; `sig_reindex_finished`) or `discard`.

    Signals:
        sig_reindex_progress(int, int): work done so far, and in all, in the current stage.
        sig_reindex_stage(str): what the running reindex is doing now (a sentence).
        sig_reindex_running(bool): a reindex (build and preview) started or ended.
        sig_preview_ready(dict): a candidate waits for "Swap in" or "Discard"; the
            `IndexPreview.to_dict()` (its changes are also in `changes`).
        sig_candidate_changed(bool): a candidate is (or no longer is) waiting.
        sig_reindex_finished(dict): `IndexStats.to_dict()` of a reindex now live (swapped in,
            or nothing changed).
        sig_message(str): something to tell the user (done, cancelled, failed).
    """

    sig_reindex_progress = Signal(int, int)
    sig_reindex_stage = Signal(str)
    sig_reindex_running = Signal(bool)
    sig_preview_ready = Signal(dict)
    sig_candidate_changed = Signal(bool)
    sig_reindex_finished = Signal(dict)
    sig_message = Signal(str)
    # Emitted from the bulk worker; delivered on the GUI thread (queued connection).
    _sig_worker_progress = Signal(str, int, int)

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
        self._stage = ""
        self._deciding = False
        self.progress: tuple[int, int] = (0, 0)
        self.last_stats: dict[str, Any] | None = None
        #: The candidate waiting for a decision: ``{"stats": ..., "preview": ...}``, or None.
        self.candidate: dict[str, Any] | None = None
        self.changes = RecordTableModel(
            (
                Column("demo", "Demo"),
                Column("turns", "Turn"),
                Column("section", "Shown as"),
                Column("change", "Change"),
                Column("key", "Item"),
                Column("ranks", "Rank"),
                Column("detail", "Detail"),
                Column("turn_text", "Turn text"),
            ),
            self,
        )
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
        return (self.articles, self.errors, self.harvest, self.gaps, self.changes)

    @property
    def reindexing(self) -> bool:
        return self._reindexing

    @property
    def has_candidate(self) -> bool:
        """A new index is built and previewed, waiting for "Swap in" or "Discard"."""
        return self.candidate is not None

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
        """Build a new index beside the live one and preview it (bulk lane).

        Returns:
            False (with a message) when it cannot start: the model is loading, a reindex is
            running, or a previewed candidate still waits for a decision.
        """
        if self._reindexing or self._deciding:
            return False
        if self.candidate is not None:
            self.sig_message.emit("Swap in or discard the new index before reindexing again.")
            return False
        embedder = self._embedder_provider()
        if embedder is None:
            self.sig_message.emit("The language model is still loading; reindex when it is ready.")
            return False
        self._cancel = threading.Event()
        self._reindexing = True
        self._stage = ""
        self.progress = (0, 0)
        self.changes.set_rows([])
        self.sig_reindex_running.emit(True)
        self.sig_reindex_progress.emit(0, 0)
        self._runner.run(
            BULK,
            build_preview,
            self.sources,
            embedder,
            self._sig_worker_progress.emit,
            self._cancel.is_set,
            on_success=self._previewed,
            on_failure=self._reindex_failed,
            description="Reindexing the knowledge articles",
        )
        return True

    def cancel_reindex(self) -> None:
        """Stop the running reindex at its next batch or demo; the live index stays as it was."""
        self._cancel.set()

    def _progress_arrived(self, stage: str, done: int, total: int) -> None:
        if not self._reindexing:
            return
        if stage != self._stage:
            self._stage = stage
            self.sig_reindex_stage.emit(STAGE_LABELS.get(stage, stage))
        self.progress = (done, total)
        self.sig_reindex_progress.emit(done, total)

    def _previewed(self, result: dict[str, Any]) -> None:
        self._reindexing = False
        stats, preview = result["stats"], result["preview"]
        self._show_failures(stats)
        done, total = self.progress
        self.sig_reindex_progress.emit(total or done, total or done)
        self.sig_reindex_running.emit(False)
        if preview is None:
            self.last_stats = stats
            self.sig_message.emit(
                f"No article changed since the live index ({stats.get('generation', '')});"
                " nothing to swap in."
            )
            self.sig_reindex_finished.emit(stats)
            self.refresh_articles()
            return
        self.candidate = result
        self.changes.set_rows(change_rows(preview))
        self.sig_candidate_changed.emit(True)
        self.sig_message.emit(
            f"New index {stats.get('generation', '')} built ({len(stats.get('added', []))} added,"
            f" {len(stats.get('changed', []))} changed, {len(stats.get('removed', []))} removed,"
            f" {len(stats.get('failed', []))} failed). {preview.get('headline', '')}"
            " Swap it in to make it live, or discard it."
        )
        self.sig_preview_ready.emit(preview)

    def _show_failures(self, stats: dict[str, Any]) -> None:
        root = articles_dir(self.sources.content_dir)
        self.errors.set_rows(
            [{**f, "path": _relative(f["path"], root)} for f in stats.get("failed", [])]
        )

    def swap_in(self) -> bool:
        """Make the previewed index live (bulk lane); False when there is none."""
        candidate = self.candidate
        if candidate is None or self._deciding:
            return False
        stats = candidate["stats"]
        self._deciding = True
        self._runner.run(
            BULK,
            swap_in_candidate,
            self.sources,
            stats["generation"],
            stats.get("base_generation"),
            on_success=lambda _none: self._swapped(stats),
            on_failure=self._decision_failed("Swapping in the new index"),
            description="Swapping in the new index",
        )
        return True

    def discard(self) -> bool:
        """Remove the previewed index (bulk lane); the live one stays. False when there is none."""
        candidate = self.candidate
        if candidate is None or self._deciding:
            return False
        generation = candidate["stats"]["generation"]
        self._deciding = True

        def done(_removed: bool) -> None:
            self._clear_candidate()
            self.sig_message.emit(
                f"Discarded the new index {generation}; the live index is unchanged."
            )
            self.refresh_articles()

        self._runner.run(
            BULK,
            discard_candidate,
            self.sources,
            generation,
            on_success=done,
            on_failure=self._decision_failed("Discarding the new index"),
            description="Discarding the new index",
        )
        return True

    def _clear_candidate(self) -> None:
        self._deciding = False
        self.candidate = None
        self.changes.set_rows([])
        self.sig_candidate_changed.emit(False)

    def _swapped(self, stats: dict[str, Any]) -> None:
        self._clear_candidate()
        self.last_stats = stats
        failed = len(stats.get("failed", []))
        self.sig_message.emit(
            f"Indexed {stats.get('articles', 0)} articles ({len(stats.get('added', []))} added,"
            f" {len(stats.get('changed', []))} changed, {len(stats.get('removed', []))} removed,"
            f" {failed} failed) in {stats.get('seconds', 0):.1f} s; {stats.get('generation', '')}"
            " is live. A running co-pilot picks it up by itself."
        )
        self.sig_reindex_finished.emit(stats)
        self.refresh_articles()

    def _decision_failed(self, what: str) -> Callable[[BaseException], None]:
        def failed(error: BaseException) -> None:
            from copilot.services.knowledge_index import StaleCandidate

            if isinstance(error, StaleCandidate):
                # swap_in_candidate removed it: it would have undone the other reindex.
                self._clear_candidate()
                self.sig_message.emit(
                    f"The live index changed while this one waited ({error}); it was discarded."
                )
                self.refresh_articles()
                return
            self._deciding = False
            self.sig_message.emit(failure_message(what, error))

        return failed

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
