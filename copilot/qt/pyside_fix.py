"""Work around a reference-count bug of PySide6 6.12: ``SignalInstance.emit`` drops a `True`.

``Signal.emit()`` from Python returns ``True`` without taking a reference to it, so every emit
(any signal, any arguments, connected or not) leaves CPython's ``True`` one reference short. On
CPython 3.11, where ``True`` is not immortal, its count starts at a few hundred: after that many
emits (a few dozen turns in the panel, each task result of the `TaskRunner` is one) the
interpreter aborts with "Fatal Python error: bool_dealloc". Reproduce with::

    s = SomeQObject(); before = sys.getrefcount(True); s.sig.emit(); sys.getrefcount(True) - before
    # -1 on PySide6 6.12.0 / CPython 3.11; 0 when fixed

`apply` checks for the bug with a private signal and, only when it is present, wraps ``emit`` to
take the reference PySide forgot. It runs when ``copilot.qt`` is imported, before any of our
signals is emitted. Remove this module once PySide6 is fixed (the check then finds nothing and
changes nothing).
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

__all__ = ["apply", "emit_leaks"]

_PROBES = 4
_applied = False


class _Probe(QObject):
    sig_probe = Signal()


def _incref_function() -> Any:
    incref = ctypes.pythonapi.Py_IncRef
    incref.argtypes = [ctypes.py_object]
    incref.restype = None
    return incref


def emit_leaks() -> bool:
    """True when emitting a signal loses a reference to ``True`` (the bug is present)."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(_PROBES):
        probe.sig_probe.emit()
    lost = before - sys.getrefcount(True)
    if lost >= _PROBES:
        incref = _incref_function()
        for _ in range(lost):
            incref(True)  # give back what the probe took
        return True
    return False


def apply() -> bool:
    """Patch ``SignalInstance.emit`` if (and only if) it leaks; idempotent.

    Returns:
        True when the patch is in place.
    """
    global _applied
    if _applied:
        return True
    if not emit_leaks():
        return False
    original = SignalInstance.emit
    incref = _incref_function()

    def emit(self: SignalInstance, *args: Any) -> Any:
        result = original(self, *args)
        incref(result)  # the reference PySide did not take
        return result

    emit.__doc__ = original.__doc__
    SignalInstance.emit = emit  # type: ignore[method-assign]
    _applied = True
    return True
