"""One co-pilot per user and data directory: a second start raises the first and exits 0."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QDir
from pytestqt.qtbot import QtBot

from copilot.qt.single_instance import (
    RAISE,
    SendResult,
    SingleInstanceServer,
    send_to_running_instance,
    server_name,
)

pytestmark = pytest.mark.gui

REPO_ROOT = Path(__file__).resolve().parents[3]
unix_only = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix domain sockets")


@pytest.fixture
def server(qapp: Any, data_dir: Path) -> Iterator[SingleInstanceServer]:
    instance = SingleInstanceServer(server_name(data_dir))
    assert instance.listen()
    yield instance
    instance.close()


def _raw_exchange(path: str, payload: bytes) -> tuple[threading.Thread, list[bytes]]:
    """Talk to the server from a thread over a plain Unix socket.

    Not `send_to_running_instance`: PySide6 keeps the GIL while it blocks, so in one process the
    server could not answer. Real senders are other processes (the tests below start them).
    """
    replies: list[bytes] = []

    def exchange() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(path)
            client.sendall(payload)
            data = b""
            while data.count(b"\n") < payload.count(b"\n"):
                chunk = client.recv(64)
                if not chunk:
                    break
                data += chunk
            replies.append(data)

    thread = threading.Thread(target=exchange)
    thread.start()
    return thread, replies


def _copilot(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", COPILOT_EXIT_AFTER_FIRST_PAINT="1")
    return subprocess.Popen(
        [sys.executable, "-m", "copilot", "--data-dir", str(data_dir), *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_exit(qtbot: QtBot, process: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        qtbot.waitUntil(lambda: process.poll() is not None, timeout=20_000)
    finally:
        if process.poll() is None:
            process.kill()
    out, _err = process.communicate(timeout=5)
    return int(process.returncode), out


def test_second_copilot_raises_the_first_and_exits_0(
    qtbot: QtBot, server: SingleInstanceServer, data_dir: Path
) -> None:
    with qtbot.waitSignal(server.sig_raise_requested, timeout=20_000):
        process = _copilot(data_dir)
    code, out = _wait_exit(qtbot, process)
    assert code == 0
    assert out == ""  # it did not start a window of its own


def test_toggle_flag_sends_toggle(
    qtbot: QtBot, server: SingleInstanceServer, data_dir: Path
) -> None:
    with (
        qtbot.assertNotEmitted(server.sig_raise_requested),
        qtbot.waitSignal(server.sig_toggle_requested, timeout=20_000),
    ):
        process = _copilot(data_dir, "--toggle")
    assert _wait_exit(qtbot, process)[0] == 0


@unix_only
def test_commands_are_acknowledged(qtbot: QtBot, server: SingleInstanceServer) -> None:
    with qtbot.waitSignal(server.sig_toggle_requested, timeout=5000):
        thread, replies = _raw_exchange(server.full_server_name, b"toggle\nreboot\n")
        qtbot.waitUntil(lambda: bool(replies), timeout=5000)
    thread.join()
    assert replies == [b"ok\nunknown\n"]


def test_no_instance_is_reported_quickly(qapp: Any, data_dir: Path) -> None:
    assert send_to_running_instance(server_name(data_dir), RAISE) is SendResult.NO_INSTANCE


def test_a_live_instance_keeps_its_name(server: SingleInstanceServer) -> None:
    other = SingleInstanceServer(server.name)
    assert other.listen() is False
    assert server.is_listening()


@unix_only
def test_stale_socket_left_by_a_crash_is_replaced(qtbot: QtBot, qapp: Any, data_dir: Path) -> None:
    name = server_name(data_dir)
    path = os.path.join(QDir.tempPath(), name)
    # What a killed instance leaves behind: a socket file nobody listens on.
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(path)
    crashed.close()
    assert os.path.exists(path)
    assert send_to_running_instance(name, RAISE) is SendResult.NO_INSTANCE

    instance = SingleInstanceServer(name)
    try:
        assert instance.listen() is True
        with qtbot.waitSignal(instance.sig_raise_requested, timeout=5000):
            thread, replies = _raw_exchange(instance.full_server_name, b"raise\n")
            qtbot.waitUntil(lambda: bool(replies), timeout=5000)
        thread.join()
        assert replies == [b"ok\n"]
    finally:
        instance.close()
    assert not os.path.exists(path)  # a clean exit leaves nothing behind


def test_names_differ_per_data_dir(tmp_path: Path) -> None:
    first, second = server_name(tmp_path / "a"), server_name(tmp_path / "b")
    assert first != second
    assert server_name(tmp_path / "a") == first
    assert len(first) < 60  # Unix socket paths are limited to ~100 bytes
