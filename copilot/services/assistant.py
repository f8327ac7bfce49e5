"""Build a ready `Assistant` from a content pack and a data directory (blocking; no Qt)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from copilot.core.intents import IntentRouter
from copilot.core.pipeline import Assistant, IntentStage
from copilot.core.protocols import Embedder
from copilot.core.suggestions import PriorProvider, prepare_passages
from copilot.services import paths
from copilot.services.content_intents import load_intent_classifier
from copilot.services.content_policy import load_policy_spec
from copilot.services.content_signals import load_signal_config
from copilot.services.content_templates import load_template_library
from copilot.services.knowledge_index import KnowledgeIndex, open_or_build

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LoadReport:
    """How long each part took to load, and anything a knowledge manager should fix."""

    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @contextmanager
    def timed(self, name: str, progress: Callable[[str], None] | None) -> Iterator[None]:
        if progress:
            progress(name)
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 3)


def build_assistant(
    content: Path,
    data: Path,
    embedder: Embedder,
    *,
    progress: Callable[[str], None] | None = None,
    prior: PriorProvider | None = None,
    extra_intent_examples: Sequence[tuple[str, str]] = (),
) -> tuple[Assistant, KnowledgeIndex, LoadReport]:
    """Load every piece of the content pack and open (or build) the knowledge index.

    Args:
        content: the content pack directory.
        data: the data directory (index, model caches).
        embedder: the loaded embedder.
        progress: called with the name of each part as it starts loading.
        prior: feedback priors for ranking suggestions (the feedback store), neutral if None.
        extra_intent_examples: (text, intent id) pairs learnt on top of the taxonomy's examples,
            e.g. agents' intent corrections from the feedback store (`learned_intent_examples`).

    Raises:
        The loaders' errors (naming file, item and reason) when the pack's configuration is broken.
    """
    report = LoadReport()
    with report.timed("index", progress):
        index, built = open_or_build(paths.index_dir(data), paths.articles_dir(content), embedder)
    if built is not None:
        report.warnings.extend(f"{f.path}: {f.reason}" for f in built.failed)
    assistant = assistant_for_index(
        content,
        embedder,
        index,
        progress=progress,
        prior=prior,
        extra_intent_examples=extra_intent_examples,
        report=report,
        models_dir=paths.models_dir(data),
    )
    return assistant, index, report


def assistant_for_index(
    content: Path,
    embedder: Embedder,
    index: KnowledgeIndex | None,
    *,
    progress: Callable[[str], None] | None = None,
    prior: PriorProvider | None = None,
    extra_intent_examples: Sequence[tuple[str, str]] = (),
    report: LoadReport | None = None,
    models_dir: Path | None = None,
) -> Assistant:
    """An `Assistant` over an index already open (e.g. a reindex candidate being previewed).

    Args: as `build_assistant`; `report` collects timings and warnings when given.
    """
    report = report if report is not None else LoadReport()
    with report.timed("signals", progress):
        # The pack's sentiment head (embedding + lexicon + character n-grams) is trained on its
        # labelled turns on first use and cached beside the models: +5 points of macro-recall on
        # the pack set for one embedding per customer turn.
        signals = load_signal_config(content, embedder=embedder, cache_dir=models_dir)
    with report.timed("policy", progress):
        policy = load_policy_spec(content)
    with report.timed("templates", progress):
        templates = load_template_library(content, embedder)
        # Analyse every passage once now, so that no live turn pays for it.
        if index is not None:
            prepare_passages(index.all_passages(), templates)
    report.warnings.extend(str(p) for p in templates.problems)
    with report.timed("intents", progress):
        intents = _intent_stage(content, embedder, extra_intent_examples)
    return Assistant(
        embedder=embedder,
        index=index,
        signals=signals,
        policy=policy,
        templates=templates,
        intents=intents,
        prior=prior,
    )


def learned_intent_examples(content: Path, db_path: Path) -> list[tuple[str, str]]:
    """Agents' intent corrections stored in the feedback database, as training examples.

    Only corrections to intents of `content`'s taxonomy are returned (see
    `FeedbackStore.intent_examples`); `db_path` is ``feedback_db_path(data dir)``. Blocking;
    opens and closes its own connection, so it may run on any thread (the app calls it on the
    bulk lane while loading the backend).

    Returns:
        (redacted text, intent id) pairs; empty when there is no feedback database yet or it
        cannot be read (logged: the co-pilot still works from the taxonomy alone).
    """
    from copilot.services.content_intents import load_taxonomy
    from copilot.services.feedback_store import FeedbackStore, FeedbackStoreError

    if not db_path.is_file():
        return []
    try:
        known = load_taxonomy(content).ids
        with FeedbackStore(db_path) as store:
            return store.intent_examples(known)
    except (FeedbackStoreError, sqlite3.Error, OSError, ValueError) as exc:
        # A damaged store or taxonomy must not stop the panel loading (a broken taxonomy is
        # reported by the intent stage itself).
        log.warning("intent corrections not learnt: %s", exc)
        return []


def _intent_stage(
    content: Path, embedder: Embedder, extra_examples: Sequence[tuple[str, str]] = ()
) -> IntentStage:
    taxonomy, classifier = load_intent_classifier(content, embedder, extra_examples)
    return IntentRouter(classifier, taxonomy)
