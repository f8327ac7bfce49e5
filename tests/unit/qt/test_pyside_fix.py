"""Emitting signals does not wear down CPython's True (the PySide6 6.12 emit bug is patched)."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QObject, Signal

import copilot.qt  # noqa: F401  (applies the fix)
from copilot.qt import pyside_fix

pytestmark = pytest.mark.gui


class _Emitter(QObject):
    sig_text = Signal(str)
    sig_flag = Signal(bool)


def test_thousands_of_emits_leave_true_alone() -> None:
    emitter = _Emitter()
    received = {"text": 0, "flag": 0}
    emitter.sig_text.connect(lambda _text: received.__setitem__("text", received["text"] + 1))
    emitter.sig_flag.connect(lambda _flag: received.__setitem__("flag", received["flag"] + 1))
    before = sys.getrefcount(True)
    for _ in range(3000):  # more than True's whole reference count when unpatched
        emitter.sig_text.emit("turn")
        emitter.sig_flag.emit(False)
    assert received == {"text": 3000, "flag": 3000}
    # Unpatched, this is 6000 lower (and the interpreter aborts long before).
    assert sys.getrefcount(True) - before > -5


def test_apply_is_idempotent_and_the_probe_gives_back_what_it_took() -> None:
    before = sys.getrefcount(True)
    assert pyside_fix.apply() == pyside_fix.apply()
    assert not pyside_fix.emit_leaks()  # patched (or never broken): nothing is lost
    assert abs(sys.getrefcount(True) - before) <= 2
