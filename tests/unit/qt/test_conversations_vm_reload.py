"""Reloading the backend: `IndexWatcher` notices a new live index; `load_backend` learns the
agents' intent corrections."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from copilot.qt.conversations_vm import IndexWatcher, live_generation

pytestmark = pytest.mark.gui


def swap_current(index_dir: Path, name: str) -> None:
    """What `copilot index` does: a new generation folder, then CURRENT replaced by a rename."""
    (index_dir / name).mkdir(parents=True, exist_ok=True)
    temp = index_dir / ".CURRENT.tmp-test"
    temp.write_text(name + "\n", encoding="utf-8")
    os.replace(temp, index_dir / "CURRENT")


@pytest.fixture
def watcher(qapp: Any, tmp_path: Path) -> Iterator[IndexWatcher]:
    index_dir = tmp_path / "index"
    swap_current(index_dir, "gen-000001")
    watcher = IndexWatcher(index_dir, "gen-000001", debounce_ms=50)
    yield watcher
    watcher.stop()
    watcher.deleteLater()


def test_a_swapped_in_generation_is_reported_once(qtbot: QtBot, watcher: IndexWatcher) -> None:
    seen: list[str] = []
    watcher.sig_generation_changed.connect(seen.append)
    with qtbot.waitSignal(watcher.sig_generation_changed, timeout=3000):
        swap_current(watcher.index_dir, "gen-000002")
    assert seen == ["gen-000002"]
    # And the next one too: the watch survives CURRENT being renamed over.
    with qtbot.waitSignal(watcher.sig_generation_changed, timeout=3000):
        swap_current(watcher.index_dir, "gen-000003")
    qtbot.wait(200)
    assert seen == ["gen-000002", "gen-000003"]
    assert watcher.generation == "gen-000003"


def test_other_changes_in_the_folder_are_not_a_new_generation(
    qtbot: QtBot, watcher: IndexWatcher
) -> None:
    with qtbot.assertNotEmitted(watcher.sig_generation_changed, wait=400):
        (watcher.index_dir / "gen-000009").mkdir()  # a candidate, built but not live
        (watcher.index_dir / ".tmp-gen-000010-1").mkdir()
        (watcher.index_dir / "CURRENT").write_text("garbage\n", encoding="utf-8")
    assert live_generation(watcher.index_dir) is None  # damaged: not acted on


def test_watching_starts_before_the_first_index_exists(qtbot: QtBot, tmp_path: Path) -> None:
    index_dir = tmp_path / "data" / "index"
    watcher = IndexWatcher(index_dir, None, debounce_ms=50)
    try:
        with qtbot.waitSignal(watcher.sig_generation_changed, timeout=3000) as changed:
            swap_current(index_dir, "gen-000001")
        assert changed.args == ["gen-000001"]
    finally:
        watcher.stop()
        watcher.deleteLater()


@pytest.mark.slow
def test_the_app_backend_learns_the_agents_intent_corrections(
    sample_content: Path, data_dir: Path, hashing_backend: Any
) -> None:
    from copilot.core.conversation import Conversation, Role, Turn
    from copilot.core.feedback import FeedbackAction, FeedbackKind
    from copilot.qt.conversations_vm import load_backend
    from copilot.services.embedders import HashingEmbedder
    from copilot.services.feedback_store import FeedbackStore, feedback_db_path

    words = "the kestrel plug by the telly goes dark when the kettle is on"

    def intent_of(backend: Any) -> str | None:
        conversation = Conversation(conversation_id="learn").apply(
            Turn("learn", "t1", Role.CUSTOMER, words, dt.datetime.now(dt.UTC))
        )
        guess = backend.assistant.analyse(conversation).intent
        return guess.intent if guess else None

    before = intent_of(hashing_backend)
    target = "faulty_device" if before != "faulty_device" else "smart_home_device_offline"
    with FeedbackStore(feedback_db_path(data_dir)) as store:
        store.record(
            FeedbackAction(
                kind=FeedbackKind.INTENT_CORRECTED,
                conversation_id="c1",
                intent=before,
                corrected_intent=target,
                query=words,
            )
        )
    backend = load_backend(sample_content, data_dir, HashingEmbedder())
    assert intent_of(backend) == target
    backend.index.close()
