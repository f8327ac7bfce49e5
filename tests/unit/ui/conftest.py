"""Every Qt test here fails if it leaves a worker thread or an active QTimer behind."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_leaked_threads_or_timers(qt_leak_guard: None) -> None:
    """See `qt_leak_guard` in tests/conftest.py."""
