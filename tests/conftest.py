"""Shared fixtures: no test touches the developer's real data, and Qt renders offscreen."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CONTENT = REPO_ROOT / "knowledge"


@pytest.fixture(autouse=True)
def _isolated_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own data directory through $COPILOT_DATA_DIR."""
    path = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("COPILOT_DATA_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def _no_api_on_the_default_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """An app started by a test does not bind the real default port (8765), which a developer's
    running co-pilot or a parallel test may hold; tests of the API give it a free port."""
    try:
        from copilot.qt import ingest_bridge
        from copilot.services.ingest_server import DEFAULT_PORT
    except ImportError:  # no Qt: nothing starts the in-app API
        return
    apply = ingest_bridge.IngestApiController.apply

    def apply_off_the_default_port(self: object, settings: object) -> None:
        if getattr(settings, "port", None) == DEFAULT_PORT:
            settings = settings.model_copy(update={"enabled": False})  # type: ignore[attr-defined]
        apply(self, settings)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest_bridge.IngestApiController, "apply", apply_off_the_default_port)


@pytest.fixture
def data_dir(_isolated_data_dir: Path) -> Path:
    return _isolated_data_dir


@pytest.fixture
def sample_content() -> Path:
    """The bundled sample content pack (read-only: copy it before changing anything)."""
    return SAMPLE_CONTENT


@pytest.fixture
def fake_embedder():  # type: ignore[no-untyped-def]
    from copilot.services.embedders import HashingEmbedder

    return HashingEmbedder()


@pytest.fixture(scope="session")
def real_embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The bundled MiniLM through the default (ONNX) backend, exported once per test session.

    The reference torch backend has its own tests in tests/unit/services/test_embedders.py.
    """
    from copilot.services.embedders import load_embedder

    yield load_embedder("onnx", tmp_path_factory.mktemp("model-cache"))


# --- keyring: tests never read or write the developer's real keyring -----------------------------


def _memory_keyring_class() -> type:
    from keyring.backend import KeyringBackend
    from keyring.errors import PasswordDeleteError

    class _MemoryKeyring(KeyringBackend):
        """A keyring backend holding passwords in a dict: usable, private to one test."""

        priority = 1

        def __init__(self) -> None:
            super().__init__()
            self.passwords: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.passwords.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.passwords[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            if self.passwords.pop((service, username), None) is None:
                raise PasswordDeleteError(username)

    return _MemoryKeyring


@pytest.fixture(autouse=True)
def _no_real_keyring() -> Iterator[None]:
    """Every test starts with the "no keyring" backend, never the developer's real one."""
    import keyring.core
    from keyring.backends import fail

    # Read the private slot rather than get_keyring(): that would probe the real backends.
    previous = keyring.core._keyring_backend
    keyring.core.set_keyring(fail.Keyring())
    yield
    keyring.core._keyring_backend = previous


@pytest.fixture
def memory_keyring(_no_real_keyring: None) -> Iterator[object]:
    """An in-memory keyring backend installed as keyring's backend; its ``passwords`` dict holds
    ``(service, name) -> secret``."""
    import keyring

    backend = _memory_keyring_class()()
    keyring.set_keyring(backend)
    yield backend


# --- Qt: a test must not leave threads or timers running -------------------------------------


@pytest.fixture
def qt_leak_guard() -> Iterator[None]:
    """Fail the test if it leaves a new non-daemon thread alive or a QTimer it started active.

    Used autouse by tests/unit/qt and tests/unit/ui (their conftest.py). Timers are tracked by
    wrapping ``QTimer.start`` for the duration of the test.
    """
    import shiboken6
    from PySide6.QtCore import QTimer

    threads_before = {thread.ident for thread in threading.enumerate()}
    started: list[QTimer] = []
    original_start = QTimer.start

    def tracking_start(self: QTimer, *args: object) -> None:
        started.append(self)
        original_start(self, *args)

    QTimer.start = tracking_start  # type: ignore[method-assign]
    try:
        yield
    finally:
        QTimer.start = original_start  # type: ignore[method-assign]
    leaked = [
        thread.name
        for thread in threading.enumerate()
        if thread.ident not in threads_before and thread.is_alive() and not thread.daemon
    ]
    active = [
        repr(timer)
        for timer in dict.fromkeys(started)
        if shiboken6.isValid(timer) and timer.isActive()
    ]
    for timer in started:  # stop them so one leak does not fire into the next test
        if shiboken6.isValid(timer):
            timer.stop()
    if leaked or active:
        pytest.fail(f"the test left threads {leaked} and active timers {active} running")


# --- the panel: one loaded sample pack per session (hashing embedder, fast) -------------------


@pytest.fixture(scope="session")
def hashing_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A `PanelBackend` (assistant, index) for the sample pack with the `HashingEmbedder`.

    Built once per session (~3-6 s: it builds the index and trains the sentiment head); the
    assistant is shared, so tests must use conversation ids of their own.
    """
    from copilot.qt.conversations_vm import load_backend
    from copilot.services.embedders import HashingEmbedder

    data = tmp_path_factory.mktemp("panel-data")
    backend = load_backend(SAMPLE_CONTENT, data, HashingEmbedder())
    yield backend
    close = getattr(backend.index, "close", None)
    if close is not None:
        close()
