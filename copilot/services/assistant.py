"""Build a ready `Assistant` from a content pack and a data directory (blocking; no Qt)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from copilot.core.pipeline import Assistant, IntentStage
from copilot.core.protocols import Embedder
from copilot.services import paths
from copilot.services.content_policy import load_policy_spec
from copilot.services.content_signals import load_signal_config
from copilot.services.content_templates import load_template_library
from copilot.services.knowledge_index import KnowledgeIndex, open_or_build

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LoadReport:
    """What loading took and anything a knowledge manager should fix."""

    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def build_assistant(
    content: Path,
    data: Path,
    embedder: Embedder,
    *,
    progress: Callable[[str], None] | None = None,
) -> tuple[Assistant, KnowledgeIndex, LoadReport]:
    """Load every piece of the content pack and open (or build) the knowledge index.

    Raises:
        The loaders' errors (with file, item and reason) when the pack's configuration is broken.
    """
    report = LoadReport()

    def step(name: str, fn: Callable[[], object]) -> object:
        if progress:
            progress(name)
        started = time.perf_counter()
        result = fn()
        report.seconds[name] = round(time.perf_counter() - started, 3)
        return result

    index, built = step(  # type: ignore[misc]
        "index",
        lambda: open_or_build(paths.index_dir(data), paths.articles_dir(content), embedder),
    )
    if built is not None:
        report.warnings.extend(f"{f.path}: {f.reason}" for f in built.failed)
    signals = step(
        "signals",
        lambda: load_signal_config(content, embedder=embedder, cache_dir=paths.models_dir(data)),
    )
    policy = step("policy", lambda: load_policy_spec(content))
    templates = step("templates", lambda: load_template_library(content, embedder))
    report.warnings.extend(str(p) for p in getattr(templates, "problems", ()))
    intents = step("intents", lambda: _intent_stage(content, embedder))
    assistant = Assistant(
        embedder=embedder,
        index=index,
        signals=signals,  # type: ignore[arg-type]
        policy=policy,  # type: ignore[arg-type]
        templates=templates,  # type: ignore[arg-type]
        intents=intents,  # type: ignore[arg-type]
    )
    return assistant, index, report


def _intent_stage(content: Path, embedder: Embedder) -> IntentStage | None:
    return None
