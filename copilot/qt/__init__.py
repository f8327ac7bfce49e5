"""qt layer."""

# PySide6 6.12 loses a reference to True on every Signal.emit(); the interpreter aborts after a
# few hundred emits. Patched here, before any module of this layer can emit (see the module).
from copilot.qt.pyside_fix import apply as _apply_pyside_fix

_apply_pyside_fix()
