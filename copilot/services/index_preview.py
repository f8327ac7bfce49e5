"""Preview a reindex: replay the demo conversations on the live index and on a candidate.

`build_and_preview` builds a candidate generation (`build_candidate`: the live index is not
touched), then runs every demo conversation of the content pack (``demos/*.jsonl``) through the
same `Assistant` pipeline the panel uses, once with the live index and once with the candidate,
and returns the differences (`copilot.core.index_diff`). The caller then swaps the candidate in
(`promote_generation`) or discards it (`discard_generation`). Blocking: the app runs it on the
bulk lane, ``copilot index --dry-run`` in the foreground.

Both runs use one pipeline (templates, intents, policy, embedding cache) with its index switched,
so the second run costs little beyond the searches, and the only thing that differs between them
is the index, which is what the knowledge manager is judging. Suggestions are ranked without
feedback priors on both sides for the same reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from copilot.core.conversation import Conversation, Turn
from copilot.core.index_diff import Change, IndexPreview, TurnOutput, diff_outputs, turn_output
from copilot.core.pipeline import Assistant
from copilot.core.protocols import Embedder
from copilot.services import paths
from copilot.services.knowledge_index import (
    IndexStats,
    IndexUnavailable,
    KnowledgeIndex,
    build_candidate,
    current_generation_name,
    discard_generation,
)
from copilot.services.transcripts import BadLine, read_events

log = logging.getLogger(__name__)

__all__ = [
    "DEMOS_DIR",
    "build_and_preview",
    "demo_files",
    "preview_generation",
    "replay_demo",
]

DEMOS_DIR = "demos"
#: Stage names passed to the progress callback.
STAGE_EMBED = "embedding"
STAGE_REPLAY = "replaying demos"

StageProgress = Callable[[str, int, int], None]


def demo_files(content: Path) -> list[Path]:
    """The content pack's demo conversations (``demos/*.jsonl``), in name order."""
    folder = content / DEMOS_DIR
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def _demo_channels(content: Path) -> dict[str, str]:
    """``file name -> channel`` from ``demos/expected.yaml`` (phone-only steps depend on it)."""
    import yaml

    path = content / DEMOS_DIR / "expected.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(name): str(entry["channel"])
        for name, entry in data.items()
        if isinstance(entry, dict) and isinstance(entry.get("channel"), str)
    }


def _read_turns(path: Path) -> list[Turn]:
    turns: list[Turn] = []
    for event in read_events(path):
        if isinstance(event, BadLine):
            log.warning("demo %s: skipped %s", path.name, event)
            continue
        turns.append(event)
    return turns


def replay_demo(
    assistant: Assistant, turns: Sequence[Turn], *, channel: str | None = None
) -> list[TurnOutput]:
    """Run a demo through the pipeline as the panel would: one analysis per final turn.

    Returns:
        What was shown after each final turn (suggestions and articles), in order.
    """
    conversations: dict[str, Conversation] = {}
    outputs: list[TurnOutput] = []
    for turn in turns:
        conversation = conversations.get(turn.conversation_id) or Conversation()
        conversation = conversation.apply(turn)
        conversations[turn.conversation_id] = conversation
        if not turn.is_final:
            continue
        snapshot = assistant.analyse(conversation, channel=channel)
        stored = conversation.turn(turn.turn_id)
        outputs.append(
            turn_output(
                snapshot,
                position=len(conversation.turns),
                role=str(turn.role.value),
                text=stored.text if stored is not None else "",
            )
        )
    for conversation_id in conversations:
        assistant.forget(conversation_id)
    return outputs


def preview_generation(
    content: Path,
    index_dir: Path,
    embedder: Embedder,
    candidate: str,
    *,
    base: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    extra_intent_examples: Sequence[tuple[str, str]] = (),
) -> IndexPreview:
    """Replay every demo on the live generation (or `base`) and on `candidate`; diff them.

    Args:
        content: the content pack (its ``demos/`` folder and everything the pipeline loads).
        index_dir: the index directory holding both generations.
        embedder: the embedder both generations were built with.
        candidate: the generation to judge.
        base: the generation to compare with; the live one when None. With no live index,
            everything the candidate shows is "added".
        progress: called with (demos replayed, demos in all).
        cancelled: polled between demos.
        extra_intent_examples: as the app's backend learns them (agents' corrections), so the
            preview routes like the panel does.

    Raises:
        InterruptedError: `cancelled()` returned True.
        IndexUnavailable: the candidate cannot be opened.
    """
    from copilot.services.assistant import assistant_for_index

    started = time.perf_counter()
    files = demo_files(content)
    base = base if base is not None else current_generation_name(index_dir)
    if not files:
        return IndexPreview(
            base_generation=base,
            candidate_generation=candidate,
            note=f"No demo conversations in {content / DEMOS_DIR}: nothing to compare.",
        )
    new_index = KnowledgeIndex.open(index_dir, embedder, generation_name=candidate)
    old_index: KnowledgeIndex | None = None
    if base is not None and base != candidate:
        try:
            old_index = KnowledgeIndex.open(index_dir, embedder, generation_name=base)
        except IndexUnavailable as exc:
            # A live index that cannot be loaded is being replaced anyway: show all as new.
            log.warning("previewing against no index: %s", exc)
    try:
        # One pipeline, its index switched between the runs: it is private to this preview,
        # and the second run of each demo finds every query's embedding in its cache.
        assistant = assistant_for_index(
            content, embedder, new_index, extra_intent_examples=extra_intent_examples
        )
        if old_index is not None:
            from copilot.core.suggestions import prepare_passages

            prepare_passages(old_index.all_passages(), assistant.templates)
        channels = _demo_channels(content)
        changes: list[Change] = []
        turns = 0
        if progress:
            progress(0, len(files))
        for done, path in enumerate(files, start=1):
            if cancelled and cancelled():
                raise InterruptedError("preview cancelled")
            demo_turns = _read_turns(path)
            channel = channels.get(path.name)
            old: list[TurnOutput] = []
            if old_index is not None:
                assistant.index = old_index
                old = replay_demo(assistant, demo_turns, channel=channel)
            assistant.index = new_index
            new = replay_demo(assistant, demo_turns, channel=channel)
            if old_index is None:
                old = [TurnOutput(t.turn_id, t.position, t.role, t.text) for t in new]
            turns += len(new)
            changes += diff_outputs(path.stem, old, new)
            if progress:
                progress(done, len(files))
    finally:
        new_index.close()
        if old_index is not None:
            old_index.close()
    return IndexPreview(
        base_generation=base if old_index is not None else None,
        candidate_generation=candidate,
        demos=tuple(p.stem for p in files),
        turns=turns,
        changes=tuple(changes),
        seconds=time.perf_counter() - started,
    )


def build_and_preview(
    content: Path,
    index_dir: Path,
    embedder: Embedder,
    *,
    progress: StageProgress | None = None,
    cancelled: Callable[[], bool] | None = None,
    force: bool = False,
    extra_intent_examples: Sequence[tuple[str, str]] = (),
) -> tuple[IndexStats, IndexPreview | None]:
    """Build a candidate generation and preview it; the live index is never touched.

    Args:
        progress: called with (stage, done, total): `STAGE_EMBED` passages embedded, then
            `STAGE_REPLAY` demos replayed.
        cancelled: polled between embedding batches and between demos; when it returns True
            the candidate is removed and `InterruptedError` raised.
        force: re-embed every article.

    Returns:
        The build's stats and the preview; the preview is None when nothing changed since the
        live index (``stats.candidate`` is False: there is nothing to swap in).
    """

    def stage(name: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, total: progress(name, done, total)

    stats = build_candidate(
        index_dir,
        paths.articles_dir(content),
        embedder,
        progress=stage(STAGE_EMBED),
        cancelled=cancelled,
        force=force,
    )
    if not stats.candidate:
        return stats, None
    try:
        preview = preview_generation(
            content,
            index_dir,
            embedder,
            stats.generation,
            base=stats.base_generation,
            progress=stage(STAGE_REPLAY),
            cancelled=cancelled,
            extra_intent_examples=extra_intent_examples,
        )
    except BaseException:
        # Cancelled or failed: a candidate nobody can judge is not left behind.
        discard_generation(index_dir, stats.generation)
        raise
    return stats, _with_stats(preview, stats)


def _with_stats(preview: IndexPreview, stats: IndexStats) -> IndexPreview:
    from dataclasses import replace

    summary: dict[str, Any] = {
        key: value
        for key, value in stats.to_dict().items()
        if key in ("added", "changed", "removed", "articles", "passages", "embedded_passages")
    }
    summary["failed"] = len(stats.failed)
    return replace(preview, stats=summary)
