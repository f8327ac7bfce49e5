"""The knowledge-manager window: article states, reindex with progress, harvest queue, gaps."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytestqt.qtbot import QtBot
from review_seed import seed_feedback

from copilot.qt.knowledge_vm import (
    CHANGED,
    DRAFT,
    EXPIRED,
    FAILED,
    INDEXED,
    NOT_INDEXED,
    KnowledgeSources,
    KnowledgeViewModel,
)
from copilot.qt.tasks import TaskRunner
from copilot.services.embedders import HashingEmbedder
from copilot.services.paths import sample_content_dir
from copilot.ui.knowledge_window import KnowledgeWindow

pytestmark = pytest.mark.gui

ARTICLES = ("kb-bil-001.md", "kb-ref-002.md", "kb-acc-001.md")
SAMPLE = sample_content_dir()
BROKEN = "---\nid: [unclosed\ntitle: Broken\n---\n\nBody.\n"


def _article(article_id: str, extra: str) -> str:
    return (
        f"---\nid: {article_id}\ntitle: {article_id} title\n{extra}---\n\n"
        f"# {article_id}\n\nSome text about {article_id} for the index.\n"
    )


def make_pack(sample_content: Path, target: Path) -> Path:
    """A small content pack: three real articles, the templates, and three odd files."""
    (target / "articles").mkdir(parents=True)
    for name in ARTICLES:
        shutil.copy(sample_content / "articles" / name, target / "articles" / name)
    shutil.copytree(sample_content / "templates", target / "templates")
    shutil.copy(sample_content / "intents.yaml", target / "intents.yaml")
    articles = target / "articles"
    (articles / "zz-broken.md").write_text(BROKEN, encoding="utf-8")
    (articles / "zz-expired.md").write_text(
        _article("KB-OLD-001", "expires: 2020-01-31\n"), encoding="utf-8"
    )
    (articles / "zz-draft.md").write_text(
        _article("KB-NEW-001", "status: draft\n"), encoding="utf-8"
    )
    return target


DEMOS = ("02-double-charge.jsonl", "12-locked-account.jsonl")


def add_demos(sample_content: Path, pack: Path) -> None:
    """What replaying demos needs: two demo conversations, the signal and policy specs, and
    every article the policies cite (the policy loader checks them)."""
    sample = sample_content if (sample_content / "demos").is_dir() else SAMPLE
    for article in (sample / "articles").iterdir():
        if not (pack / "articles" / article.name).exists():
            shutil.copy(article, pack / "articles" / article.name)
    (pack / "demos").mkdir(exist_ok=True)
    for name in DEMOS:
        shutil.copy(sample / "demos" / name, pack / "demos" / name)
    for name in ("signals.yaml", "policies.yaml"):
        shutil.copy(sample / name, pack / name)
    if (sample / "signals").is_dir() and not (pack / "signals").exists():
        shutil.copytree(sample / "signals", pack / "signals")


@pytest.fixture
def runner(qapp: Any) -> Iterator[TaskRunner]:
    runner = TaskRunner()
    yield runner
    runner.shutdown(wait=True)


@pytest.fixture
def sources(sample_content: Path, tmp_path: Path) -> KnowledgeSources:
    return KnowledgeSources(
        content_dir=make_pack(sample_content, tmp_path / "pack"),
        index_dir=tmp_path / "data" / "index",
        db_path=seed_feedback(tmp_path / "feedback.sqlite3"),
    )


def open_window(
    qtbot: QtBot, runner: TaskRunner, sources: KnowledgeSources, embedder: Any = None
) -> KnowledgeWindow:
    vm = KnowledgeViewModel(runner, sources, lambda: embedder)
    window = KnowledgeWindow(vm)
    qtbot.addWidget(window)
    with qtbot.waitSignals([vm.articles.modelReset, vm.harvest.modelReset], timeout=10000):
        vm.refresh()
    return window


def states(vm: KnowledgeViewModel) -> dict[str, str]:
    return {row["id"] or row["path"]: row["state"] for row in vm.articles.rows}


def build(qtbot: QtBot, window: KnowledgeWindow) -> dict[str, Any]:
    """Click Reindex and wait for the new index's preview; returns it (not live yet)."""
    vm = window.vm
    with qtbot.waitSignal(vm.sig_preview_ready, timeout=30000) as ready:
        window.reindex_button.click()
        assert not window.reindex_button.isEnabled() and window.cancel_button.isEnabled()
    assert window.swap_button.isEnabled() and window.discard_button.isEnabled()
    assert not window.reindex_button.isEnabled()  # decide on this one first
    return dict(ready.args[0])


def swap(qtbot: QtBot, window: KnowledgeWindow) -> dict[str, Any]:
    vm = window.vm
    with (
        qtbot.waitSignal(vm.sig_reindex_finished, timeout=20000) as finished,
        qtbot.waitSignal(vm.articles.modelReset, timeout=20000),
    ):
        window.swap_button.click()
    assert not window.swap_button.isEnabled() and window.reindex_button.isEnabled()
    return dict(finished.args[0])


def reindex(qtbot: QtBot, window: KnowledgeWindow) -> dict[str, Any]:
    build(qtbot, window)
    return swap(qtbot, window)


def live(sources: KnowledgeSources) -> str:
    return (sources.index_dir / "CURRENT").read_text(encoding="utf-8").strip()


def test_states_before_indexing(qtbot: QtBot, runner: TaskRunner, sources: Any) -> None:
    window = open_window(qtbot, runner, sources)
    found = states(window.vm)
    assert found["KB-BIL-001"] == NOT_INDEXED
    assert found["KB-OLD-001"] == EXPIRED
    assert found["KB-NEW-001"] == DRAFT
    assert found["zz-broken.md"] == FAILED
    broken = next(r for r in window.vm.articles.rows if r["state"] == FAILED)
    assert broken["detail"]  # the loader's reason, for the knowledge manager to act on
    assert window.vm.articles.rows[0]["state"] == FAILED  # worst first


def test_reindex_reaches_100_percent_and_lists_the_broken_file(
    qtbot: QtBot, runner: TaskRunner, sources: Any
) -> None:
    window = open_window(qtbot, runner, sources, HashingEmbedder())
    seen: list[tuple[int, int]] = []
    window.vm.sig_reindex_progress.connect(lambda done, total: seen.append((done, total)))
    stats = reindex(qtbot, window)
    assert stats["articles"] == 5
    assert window.progress_bar.value() == 100
    assert seen[-1][0] == seen[-1][1] > 0
    assert window.reindex_button.isEnabled() and not window.cancel_button.isEnabled()
    errors = window.vm.errors.rows
    assert [Path(e["path"]).name for e in errors] == ["zz-broken.md"]
    assert errors[0]["reason"]
    assert "Indexed 5 articles" in window.status_label.text()
    found = states(window.vm)
    assert found["KB-BIL-001"] == found["KB-ACC-001"] == INDEXED
    assert found["zz-broken.md"] == FAILED

    # Editing an article after indexing shows it as changed until the next reindex.
    path = sources.content_dir / "articles" / "kb-acc-001.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    with qtbot.waitSignal(window.vm.articles.modelReset, timeout=10000):
        window.vm.refresh_articles()
    assert states(window.vm)["KB-ACC-001"] == CHANGED
    reindex(qtbot, window)
    assert states(window.vm)["KB-ACC-001"] == INDEXED


def test_cancelling_a_reindex_leaves_no_index(
    qtbot: QtBot, runner: TaskRunner, sources: Any
) -> None:
    window = open_window(qtbot, runner, sources, HashingEmbedder())
    with qtbot.waitSignal(
        window.vm.sig_reindex_running, timeout=10000, check_params_cb=lambda running: not running
    ):
        assert window.vm.reindex()
        window.cancel_button.click()  # before the first batch: nothing is embedded
    assert "cancelled" in window.status_label.text()
    assert not (sources.index_dir / "CURRENT").exists()
    assert window.reindex_button.isEnabled()


def test_reindex_waits_for_the_model(qtbot: QtBot, runner: TaskRunner, sources: Any) -> None:
    window = open_window(qtbot, runner, sources, embedder=None)
    assert not window.vm.reindex()
    assert "still loading" in window.status_label.text()


def test_approving_a_harvested_reply_writes_a_template(
    qtbot: QtBot, runner: TaskRunner, sources: Any
) -> None:
    window = open_window(qtbot, runner, sources)
    vm = window.vm
    assert vm.harvest.rowCount() == 1
    assert not window.approve_button.isEnabled()
    window.harvest_view.selectRow(0)
    assert window.approve_button.isEnabled()
    assert "double charge" in window.harvest_text.toPlainText()
    with qtbot.waitSignal(vm.harvest.modelReset, timeout=10000):
        window.approve_button.click()
    target = sources.content_dir / "templates" / "harvested.yaml"
    entry = yaml.safe_load(target.read_text(encoding="utf-8"))["templates"][0]
    assert entry["id"].startswith("harvested.")
    assert "{customer_name}" in entry["text"]
    assert entry["id"] in window.status_label.text()
    assert vm.harvest.rowCount() == 0  # decided: no longer queued


def test_rejecting_a_harvested_reply_hides_it(
    qtbot: QtBot, runner: TaskRunner, sources: Any
) -> None:
    window = open_window(qtbot, runner, sources)
    window.harvest_view.selectRow(0)
    with qtbot.waitSignal(window.vm.harvest.modelReset, timeout=10000):
        window.reject_button.click()
    assert window.vm.harvest.rowCount() == 0
    assert not (sources.content_dir / "templates" / "harvested.yaml").exists()


def test_the_gap_report_lists_topics(qtbot: QtBot, runner: TaskRunner, sources: Any) -> None:
    window = open_window(qtbot, runner, sources)
    topics = [row["topic"] for row in window.vm.gaps.rows]
    assert "delivery_where" in topics
    examples = [e for row in window.vm.gaps.rows for e in row["examples"]]
    assert any("locker" in e for e in examples)  # retrieval misses keep the customer's words


def test_every_item_model_passes_the_model_tester(
    qtbot: QtBot, runner: TaskRunner, sources: Any, qtmodeltester: Any
) -> None:
    window = open_window(qtbot, runner, sources, HashingEmbedder())
    build(qtbot, window)
    for model in window.vm.item_models():
        if model is not window.vm.changes:  # no demos in this pack: checked with them below
            assert model.rowCount() > 0
        qtmodeltester.check(model)


@pytest.fixture
def demo_sources(sources: KnowledgeSources, sample_content: Path) -> KnowledgeSources:
    add_demos(sample_content, sources.content_dir)
    return sources


@pytest.mark.slow
def test_a_reindex_is_previewed_on_the_demos_and_live_only_after_swap_in(
    qtbot: QtBot, runner: TaskRunner, demo_sources: KnowledgeSources, qtmodeltester: Any
) -> None:
    sources = demo_sources
    window = open_window(qtbot, runner, sources, HashingEmbedder())
    first = build(qtbot, window)
    assert not (sources.index_dir / "CURRENT").exists()  # built, not live
    assert first["base_generation"] is None
    assert sorted(first["demos"]) == sorted(Path(d).stem for d in DEMOS)
    assert {row["change"] for row in window.vm.changes.rows} == {"added"}
    swap(qtbot, window)
    before = live(sources)

    # A bad edit: the double-charge article is deleted. The preview shows, per demo and
    # turn, that it is no longer offered, while agents still search the old index.
    (sources.content_dir / "articles" / "kb-bil-001.md").unlink()
    preview = build(qtbot, window)
    assert live(sources) == before
    assert preview["base_generation"] == before
    assert preview["candidate_generation"] != before
    assert (sources.index_dir / preview["candidate_generation"]).is_dir()
    rows = window.vm.changes.rows
    removed = [r for r in rows if r["key"] == "KB-BIL-001" and r["change"] == "removed"]
    assert {r["demo"] for r in removed} == {Path(d).stem for d in DEMOS}
    assert all(r["section"] == "article" and r["turn_id"].startswith("t") for r in removed)
    assert all(r["ranks"].endswith("→ –") for r in removed)
    assert window.tabs.currentIndex() == window.changes_tab
    assert "not live" in window.tabs.tabText(window.changes_tab)
    assert "demo conversations" in window.changes_label.text()
    qtmodeltester.check(window.vm.changes)

    # Discard: the candidate is gone and the live index is the one agents had.
    with qtbot.waitSignal(window.vm.sig_candidate_changed, timeout=10000):
        window.discard_button.click()
    assert not (sources.index_dir / preview["candidate_generation"]).exists()
    assert live(sources) == before
    assert window.vm.changes.rowCount() == 0
    assert "Discarded" in window.status_label.text()
    assert window.reindex_button.isEnabled() and not window.swap_button.isEnabled()

    # Again, and swap it in this time.
    preview = build(qtbot, window)
    stats = swap(qtbot, window)
    assert live(sources) == preview["candidate_generation"] == stats["generation"]
    assert "KB-BIL-001" not in states(window.vm)
    assert "is live" in window.status_label.text()


def test_nothing_to_swap_in_when_no_article_changed(
    qtbot: QtBot, runner: TaskRunner, sources: KnowledgeSources
) -> None:
    window = open_window(qtbot, runner, sources, HashingEmbedder())
    reindex(qtbot, window)
    generation = live(sources)
    with qtbot.waitSignal(window.vm.sig_reindex_finished, timeout=20000):
        window.reindex_button.click()
    assert "No article changed" in window.status_label.text()
    assert not window.swap_button.isEnabled() and window.reindex_button.isEnabled()
    assert live(sources) == generation


def test_a_candidate_overtaken_by_another_reindex_is_not_swapped_in(
    qtbot: QtBot, runner: TaskRunner, sources: KnowledgeSources
) -> None:
    from copilot.services.knowledge_index import build_index

    window = open_window(qtbot, runner, sources, HashingEmbedder())
    reindex(qtbot, window)
    path = sources.content_dir / "articles" / "kb-acc-001.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    preview = build(qtbot, window)
    # Meanwhile `copilot index` runs in another process and swaps in its own generation.
    path.write_text(path.read_text(encoding="utf-8") + "\nAnd another.\n", encoding="utf-8")
    other = build_index(sources.index_dir, sources.content_dir / "articles", HashingEmbedder())
    with qtbot.waitSignal(window.vm.sig_candidate_changed, timeout=10000):
        window.swap_button.click()
    assert live(sources) == other.generation  # not undone by the older candidate
    assert not (sources.index_dir / preview["candidate_generation"]).exists()
    assert "changed while this one waited" in window.status_label.text()
