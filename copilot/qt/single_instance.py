"""One running co-pilot per user and data directory.

The first ``copilot`` listens on a local socket (a Unix domain socket, or a named pipe on Windows)
whose name is derived from the user and the data directory. A second ``copilot`` connects, sends
``raise`` and exits 0; ``copilot --toggle`` sends ``toggle`` (show or hide: bind it to a
desktop-wide hotkey). Two copies with different ``--data-dir`` are independent, which is what
demos and tests need.

Protocol: one line per command (``raise`` or ``toggle``), answered with ``ok`` (or ``unknown``)
before the receiving side acts on it, so the sender can exit at once.

A crash leaves the socket file behind; `SingleInstanceServer.listen` notices that nobody answers on
it and removes it.
"""

from __future__ import annotations

import enum
import getpass
import hashlib
import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

_log = logging.getLogger(__name__)

RAISE = "raise"
TOGGLE = "toggle"
COMMANDS: tuple[str, ...] = (RAISE, TOGGLE)
DEFAULT_TIMEOUT_MS = 1000
_MAX_LINE = 64


def server_name(data_dir: Path) -> str:
    """The local socket name for this user and data directory (short: Unix paths are limited)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers): the uid still separates users
        user = ""
    uid = getattr(os, "getuid", lambda: 0)()
    key = f"{user}\0{uid}\0{Path(data_dir).expanduser().resolve()}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return f"agent-copilot-{digest}"


class SendResult(enum.Enum):
    """What happened to a command sent to a running instance."""

    DELIVERED = "delivered"
    NO_INSTANCE = "no instance"
    NOT_RESPONDING = "not responding"


def send_to_running_instance(
    name: str, command: str, *, timeout_ms: int = DEFAULT_TIMEOUT_MS
) -> SendResult:
    """Send ``command`` to the instance listening on ``name``, if there is one.

    Blocking, with no event loop needed: call it before the QApplication exists. Meant for another
    process: PySide6 keeps the GIL during the blocking waits, so a server in the same process could
    not answer until they time out.

    Args:
        name: from `server_name`.
        command: ``"raise"`` or ``"toggle"``.
        timeout_ms: for connecting, and again for the answer.

    Returns:
        DELIVERED when the running instance acknowledged the command, NO_INSTANCE when nothing
        listens (or only a stale socket file is left), NOT_RESPONDING when something accepted the
        connection but did not answer in time (a frozen instance).
    """
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r} (expected one of {COMMANDS})")
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(timeout_ms):
        return SendResult.NO_INSTANCE
    try:
        socket.write(f"{command}\n".encode("ascii"))
        if not socket.waitForBytesWritten(timeout_ms):
            return SendResult.NOT_RESPONDING
        reply = b""
        while b"\n" not in reply and len(reply) < _MAX_LINE:
            if not socket.bytesAvailable() and not socket.waitForReadyRead(timeout_ms):
                return SendResult.NOT_RESPONDING
            reply += bytes(socket.readAll().data())
        answer = reply.split(b"\n", 1)[0].strip()
        return SendResult.DELIVERED if answer == b"ok" else SendResult.NOT_RESPONDING
    finally:
        socket.abort()


class SingleInstanceServer(QObject):
    """Listens for commands from later ``copilot`` invocations; lives on the GUI thread.

    Signals:
        sig_raise_requested(): another ``copilot`` was started: show and raise the window.
        sig_toggle_requested(): ``copilot --toggle``: show the window if hidden, else hide it.
    """

    sig_raise_requested = Signal()
    sig_toggle_requested = Signal()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self._server = QLocalServer(self)
        # Only the same user may connect: the socket name alone is guessable.
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        self._buffers: dict[QLocalSocket, bytes] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def full_server_name(self) -> str:
        """The socket path (Unix) or pipe name, once listening."""
        return self._server.fullServerName()

    def is_listening(self) -> bool:
        return self._server.isListening()

    def listen(self) -> bool:
        """Start listening; remove a stale socket left by a crash.

        Returns:
            True when listening, False when another live instance already owns the name (the
            caller should then send it a command instead) or the socket cannot be created.
        """
        # Probe first: with access options set, Qt binds in a private directory and renames the
        # socket into place, which would silently take the name from a live instance.
        probe = QLocalSocket()
        probe.connectToServer(self._name)
        alive = probe.waitForConnected(DEFAULT_TIMEOUT_MS // 4)
        probe.abort()
        if alive:
            return False
        # Nobody answers: whatever socket file is there was left by a crash.
        QLocalServer.removeServer(self._name)
        if self._server.listen(self._name):
            return True
        _log.warning("cannot listen on %s: %s", self._name, self._server.errorString())
        return False

    def close(self) -> None:
        """Stop listening and drop open connections (the socket file is removed)."""
        for socket in list(self._buffers):
            socket.abort()
        self._buffers.clear()
        self._server.close()

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            if socket is None:
                break
            self._buffers[socket] = b""
            socket.readyRead.connect(lambda socket=socket: self._read(socket))
            socket.disconnected.connect(lambda socket=socket: self._forget(socket))
            if socket.bytesAvailable():
                self._read(socket)

    def _forget(self, socket: QLocalSocket) -> None:
        self._buffers.pop(socket, None)
        socket.deleteLater()

    def _read(self, socket: QLocalSocket) -> None:
        if socket not in self._buffers:
            return
        data = self._buffers[socket] + bytes(socket.readAll().data())
        commands: list[str] = []
        while b"\n" in data:
            line, data = data.split(b"\n", 1)
            command = line.strip().decode("ascii", errors="replace")
            known = command in COMMANDS
            socket.write(b"ok\n" if known else b"unknown\n")
            if known:
                commands.append(command)
            else:
                _log.warning("ignoring unknown instance command %r", command)
        if len(data) > _MAX_LINE:  # not our protocol: do not buffer forever
            socket.abort()
            return
        self._buffers[socket] = data
        socket.flush()
        # Acknowledge first, act second: the sender is waiting to exit.
        for command in commands:
            if command == RAISE:
                self.sig_raise_requested.emit()
            else:
                self.sig_toggle_requested.emit()
