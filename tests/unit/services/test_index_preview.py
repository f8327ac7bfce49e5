"""Previewing a reindex on the demo conversations (the knowledge window and ``--dry-run``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from copilot.services.embedders import HashingEmbedder
from copilot.services.index_preview import STAGE_REPLAY, build_and_preview
from copilot.services.knowledge_index import build_index, current_generation_name

DEMO = "12-locked-account.jsonl"


@pytest.fixture
def pack(sample_content: Path, tmp_path: Path) -> Path:
    target = tmp_path / "pack"
    shutil.copytree(sample_content, target, ignore=shutil.ignore_patterns("demos", "eval"))
    (target / "demos").mkdir()
    shutil.copy(sample_content / "demos" / DEMO, target / "demos" / DEMO)
    return target


@pytest.mark.slow
def test_cancelling_while_the_demos_replay_removes_the_candidate(
    pack: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    embedder = HashingEmbedder()
    live = build_index(index_dir, pack / "articles", embedder).generation
    (pack / "articles" / "kb-acc-001.md").unlink()
    stages: list[str] = []
    with pytest.raises(InterruptedError):
        build_and_preview(
            pack,
            index_dir,
            embedder,
            progress=lambda stage, done, total: stages.append(stage),
            cancelled=lambda: STAGE_REPLAY in stages,
        )
    assert STAGE_REPLAY in stages  # the candidate was built, then the replay was cancelled
    assert current_generation_name(index_dir) == live
    assert sorted(p.name for p in index_dir.glob("gen-*")) == [live]


def test_a_pack_without_demos_still_gets_a_candidate_to_swap_in(pack: Path, tmp_path: Path) -> None:
    shutil.rmtree(pack / "demos")
    index_dir = tmp_path / "index"
    stats, preview = build_and_preview(pack, index_dir, HashingEmbedder())
    assert stats.candidate and preview is not None
    assert preview.changes == () and "No demo conversations" in preview.headline()
    assert current_generation_name(index_dir) is None  # built, not live
