"""``copilot index --dry-run``: build beside the live index, replay the demos, print the diff,
leave the live index as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from copilot.cli import main
from copilot.commands import _common
from copilot.services import paths
from copilot.services.embedders import HashingEmbedder

pytestmark = pytest.mark.slow  # two index builds and two replays of a demo (~5 s)

DEMO = "02-double-charge.jsonl"


@pytest.fixture
def pack(sample_content: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample pack with one demo; the fast deterministic embedder."""
    target = tmp_path / "pack"
    shutil.copytree(sample_content, target, ignore=shutil.ignore_patterns("demos", "eval"))
    (target / "demos").mkdir()
    shutil.copy(sample_content / "demos" / DEMO, target / "demos" / DEMO)
    monkeypatch.setattr(_common, "embedder", lambda args: HashingEmbedder())
    return target


def run(data_dir: Path, pack: Path, *args: str) -> int:
    return main(["--data-dir", str(data_dir), "index", "--content", str(pack), *args])


def live(data_dir: Path) -> str:
    return (paths.index_dir(data_dir) / "CURRENT").read_text(encoding="utf-8").strip()


def test_dry_run_prints_the_changes_per_demo_and_turn_and_keeps_the_live_index(
    pack: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(data_dir, pack, "--json") == 0
    before = live(data_dir)
    capsys.readouterr()
    (pack / "articles" / "kb-bil-001.md").unlink()  # the double-charge article

    assert run(data_dir, pack, "--dry-run", "--json") == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["dry_run"] and payload["stats"]["removed"] == ["KB-BIL-001"]
    preview = payload["preview"]
    assert preview["base_generation"] == before
    assert preview["demos"] == ["02-double-charge"]
    removed = [
        c for c in preview["changes"] if c["key"] == "KB-BIL-001" and c["change"] == "removed"
    ]
    assert removed and all(c["turn_id"].startswith("t") for c in removed)
    assert live(data_dir) == before
    assert sorted(p.name for p in paths.index_dir(data_dir).glob("gen-*")) == [before]

    assert run(data_dir, pack, "--dry-run") == 0
    text = capsys.readouterr().out
    assert "02-double-charge:" in text
    assert "KB-BIL-001" in text and "removed" in text
    assert "the live index is unchanged" in text
    assert live(data_dir) == before


def test_dry_run_with_nothing_changed_says_so(
    pack: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(data_dir, pack, "--json") == 0
    capsys.readouterr()
    assert run(data_dir, pack, "--dry-run") == 0
    assert "No article changed" in capsys.readouterr().out
