"""End to end: the running app serves the ingest API, and posted turns appear live in its panel."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from websockets.sync.client import connect

from copilot.app import CopilotApp
from copilot.core.feedback import FeedbackKind
from copilot.services.embedders import HashingEmbedder
from copilot.services.feedback_memory import MemoryFeedbackSink
from copilot.services.ingest_server import ensure_token
from copilot.services.secrets import SecretStore
from copilot.services.settings import settings_path

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("qt_leak_guard")]

T = TypeVar("T")
DEMO = next((Path(__file__).resolve().parents[2] / "knowledge" / "demos").glob("05-*.jsonl"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _enable_api(data_dir: Path, port: int) -> None:
    settings_path(data_dir).write_text(
        f"schema_version = 2\n\n[sources.ingest_api]\nenabled = true\nport = {port}\n",
        encoding="utf-8",
    )


def off_gui_thread(qtbot: QtBot, fn: Callable[[], T], timeout_ms: int = 10_000) -> T:
    """Run a client call on its own thread: the app answers it on the GUI thread, which must
    keep running (a client is another process in real life)."""
    future: Future[T] = Future()

    def work() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    thread = threading.Thread(target=work, name="api-client")
    thread.start()
    qtbot.waitUntil(future.done, timeout=timeout_ms)
    thread.join()
    return future.result()


class Client:
    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, data, headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()


@pytest.fixture
def make_app(
    qapp: QApplication, data_dir: Path, hashing_backend: Any
) -> Iterator[Callable[..., CopilotApp]]:
    sheet, palette, style = qapp.styleSheet(), qapp.palette(), qapp.style().name()
    apps: list[CopilotApp] = []

    def make(**kwargs: Any) -> CopilotApp:
        app = CopilotApp(
            qapp,
            data_dir,
            use_tray=False,
            model_loader=lambda backend, data: HashingEmbedder(),
            backend_loader=lambda content, data, embedder: hashing_backend,
            **kwargs,
        )
        apps.append(app)
        assert app.start()
        return app

    yield make
    for app in apps:
        app.shutdown()
        app.window.close()
        app.window.deleteLater()
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)
    qapp.setStyle(style)


def test_turns_posted_to_the_running_app_appear_live_in_its_panel(
    qtbot: QtBot,
    make_app: Callable[..., CopilotApp],
    data_dir: Path,
    memory_keyring: Any,
) -> None:
    port = _free_port()
    _enable_api(data_dir, port)
    sink = MemoryFeedbackSink()
    app = make_app(feedback_sink=sink)
    qtbot.waitUntil(lambda: app.window.sources_text() == f"Ingest API :{port}", timeout=10_000)
    token, saved = ensure_token(SecretStore())  # what `copilot token` prints
    assert saved
    client = Client(port, token)
    panel = app.panel
    events = [
        {**json.loads(line), "conversation_id": "e2e-legal"}
        for line in DEMO.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]

    with connect(
        f"ws://127.0.0.1:{port}/v1/stream?conversation=e2e-legal",
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=5,
    ) as stream:
        status, body = off_gui_thread(qtbot, lambda: client.request("POST", "/v1/turns", events))
        assert status == 200, body
        assert {r["status"] for r in body["results"]} == {"applied"}
        last_generation = body["results"][-1]["generation"]

        # The switcher has the conversation and its snapshot renders in the sections.
        assert "e2e-legal" in panel.conversations.conversation_ids()
        qtbot.waitUntil(
            lambda: (
                (s := panel.conversations.snapshot("e2e-legal")) is not None
                and s.generation >= last_generation
            ),
            timeout=10_000,
        )
        combo = panel.header.combo
        assert [combo.itemText(i) for i in range(combo.count())] == [combo.currentText()]
        qtbot.waitUntil(lambda: "CRITICAL" in combo.currentText(), timeout=5000)
        assert panel.vm.snapshot is panel.conversations.snapshot("e2e-legal")
        assert "my solicitor" in panel.transcript.text()
        assert app.window.last_update_text().startswith("Updated ")

        # The same snapshot over HTTP and pushed on the stream.
        status, fetched = off_gui_thread(
            qtbot, lambda: client.request("GET", "/v1/conversations/e2e-legal/snapshot")
        )
        assert status == 200
        assert fetched["turn_count"] == len(events)
        assert "legal_threat" in {flag["kind"] for flag in fetched["flags"]}

        def newest_pushed() -> dict[str, Any]:
            while True:
                message = json.loads(stream.recv(timeout=5))
                if message.get("generation", 0) >= last_generation:
                    return dict(message)

        assert off_gui_thread(qtbot, newest_pushed) == fetched

    # Feedback from another front end lands in the app's feedback store.
    suggestion = fetched["suggestions"][0]
    status, body = off_gui_thread(
        qtbot,
        lambda: client.request(
            "POST",
            "/v1/feedback",
            {
                "kind": "accept",
                "conversation_id": "e2e-legal",
                "suggestion_id": suggestion["id"],
                "item_id": suggestion["item_id"],
                "sent_text": suggestion["text"],
            },
        ),
    )
    assert (status, body["recorded"]) == (200, True)
    accepted = sink.of_kind(FeedbackKind.ACCEPT)
    assert [a.conversation_id for a in accepted] == ["e2e-legal"]


def test_a_port_already_in_use_is_shown_and_the_app_carries_on(
    qtbot: QtBot, make_app: Callable[..., CopilotApp], data_dir: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _enable_api(data_dir, port)
        app = make_app(feedback_sink=MemoryFeedbackSink())
        qtbot.waitUntil(lambda: "in use" in app.window.sources_text(), timeout=10_000)
    assert f"port {port}" in app.window.sources_text()
    qtbot.waitUntil(lambda: app.panel.input.edit.isEnabled(), timeout=10_000)
    app.panel.conversations.submit_text("I was charged twice", "customer")
    qtbot.waitUntil(lambda: app.panel.vm.snapshot is not None, timeout=10_000)
