"""Build a ready `Assistant` from a content pack and a data directory (blocking; no Qt)."""

from __future__ import annotations

import logging
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
            e.g. agents' intent corrections from the feedback store.

    Raises:
        The loaders' errors (naming file, item and reason) when the pack's configuration is broken.
    """
    report = LoadReport()
    with report.timed("index", progress):
        index, built = open_or_build(paths.index_dir(data), paths.articles_dir(content), embedder)
    if built is not None:
        report.warnings.extend(f"{f.path}: {f.reason}" for f in built.failed)
    with report.timed("signals", progress):
        # Live turns are scored by the lexicon and rules (0.2 ms): the optional embedding head
        # needs each turn embedded alone, a second embedding per turn for about one point of
        # macro-recall (BENCHMARKS.md), so it is not trained here.
        signals = load_signal_config(content)
    with report.timed("policy", progress):
        policy = load_policy_spec(content)
    with report.timed("templates", progress):
        templates = load_template_library(content, embedder)
        # Analyse every passage once now, so that no live turn pays for it.
        prepare_passages(index.all_passages(), templates)
    report.warnings.extend(str(p) for p in templates.problems)
    with report.timed("intents", progress):
        intents = _intent_stage(content, embedder, extra_intent_examples)
    assistant = Assistant(
        embedder=embedder,
        index=index,
        signals=signals,
        policy=policy,
        templates=templates,
        intents=intents,
        prior=prior,
    )
    return assistant, index, report


def _intent_stage(
    content: Path, embedder: Embedder, extra_examples: Sequence[tuple[str, str]] = ()
) -> IntentStage:
    taxonomy, classifier = load_intent_classifier(content, embedder, extra_examples)
    return IntentRouter(classifier, taxonomy)
