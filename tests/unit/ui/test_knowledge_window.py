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
from copilot.ui.knowledge_window import KnowledgeWindow

pytestmark = pytest.mark.gui

ARTICLES = ("kb-bil-001.md", "kb-ref-002.md", "kb-acc-001.md")
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


def reindex(qtbot: QtBot, window: KnowledgeWindow) -> dict[str, Any]:
    vm = window.vm
    with (
        qtbot.waitSignal(vm.sig_reindex_finished, timeout=20000) as finished,
        qtbot.waitSignal(vm.articles.modelReset, timeout=20000),
    ):
        window.reindex_button.click()
        assert not window.reindex_button.isEnabled() and window.cancel_button.isEnabled()
    return dict(finished.args[0])


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
    reindex(qtbot, window)
    for model in window.vm.item_models():
        assert model.rowCount() > 0
        qtmodeltester.check(model)
