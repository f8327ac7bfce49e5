"""``copilot screenshot``: render the co-pilot panel offscreen after replaying a conversation.

The panel is built exactly as the app builds it (window, task runner, view-models, sections),
the conversation's turns are replayed into it, the pipeline is waited for, and the window is
saved as a PNG. Without a display (no ``$DISPLAY`` / ``$WAYLAND_DISPLAY``) Qt's offscreen
platform is used, so it works on a server and in CI.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from copilot.commands import _common

BACKENDS = ("onnx", "torch", "hashing")
DEFAULT_DEMO = "02-"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "screenshot",
        help="render the panel offscreen after replaying a conversation, and save a PNG",
        description=__doc__,
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.png", help="PNG to write")
    parser.add_argument(
        "--conversation",
        type=Path,
        metavar="FILE.jsonl",
        help="turn events to replay (default: the content pack's demos/02-*.jsonl, or the first "
        "demo there)",
    )
    parser.add_argument("--width", type=int, default=420, help="window width in pixels (420)")
    parser.add_argument("--height", type=int, default=900, help="window height in pixels (900)")
    parser.add_argument(
        "--turns",
        type=int,
        metavar="N",
        help="replay only the first N turn events (default: all of them)",
    )
    parser.add_argument(
        "--theme", choices=("light", "dark"), default="light", help="colour scheme (light)"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="onnx",
        help="embedding backend: onnx (default), torch, or hashing (a fast fake for tests: "
        "no meaning, so suggestions and articles are poor)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the pipeline (60)"
    )
    _common.add_content_option(parser)
    parser.set_defaults(func=run)


def needs_offscreen() -> bool:
    """True when Qt has no display to open a window on (Linux without X11 or Wayland)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return False
    if sys.platform.startswith("linux"):
        return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return False


def default_conversation(content: Path) -> Path | None:
    """The content pack's demo 02, else its first demo file, else None."""
    demos = sorted((content / "demos").glob("*.jsonl"))
    preferred = [p for p in demos if p.name.startswith(DEFAULT_DEMO)]
    return (preferred or demos or [None])[0]


def load_embedder(backend: str, data: Path) -> Any:
    if backend == "hashing":
        from copilot.services.embedders import HashingEmbedder

        return HashingEmbedder()
    from copilot.services.embedders import load_embedder as load

    return load(backend, data)


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError

    if args.width < 200 or args.height < 200:
        raise UserError("--width and --height must be at least 200 pixels")
    content = _common.content_dir(args)
    conversation = args.conversation or default_conversation(content)
    if conversation is None:
        raise UserError(f"no demo conversation in {content / 'demos'}: pass --conversation")
    if not conversation.is_file():
        raise UserError(f"no such conversation file: {conversation}")
    if needs_offscreen():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    data = _common.data_dir(args)
    started = time.perf_counter()
    embedder = load_embedder(args.backend, data)
    model_seconds = time.perf_counter() - started
    from copilot.qt.conversations_vm import load_backend

    backend = load_backend(content, data, embedder)
    for warning in backend.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    events = read_conversation(conversation, args.turns)
    path = render_screenshot(
        args.out,
        backend,
        events,
        width=args.width,
        height=args.height,
        theme=args.theme,
        timeout=args.timeout,
        model_seconds=model_seconds,
        model_name=getattr(embedder, "name", ""),
    )
    print(f"saved {path} ({args.width}x{args.height}, {len(events)} turn events replayed)")
    return 0


def read_conversation(path: Path, limit: int | None = None) -> list[Any]:
    """The turn events of a JSONL file (bad lines reported on stderr and skipped)."""
    from copilot.services.transcripts import BadLine, read_events

    events = []
    for event in read_events(path):
        if isinstance(event, BadLine):
            print(f"skipped {event}", file=sys.stderr)
            continue
        events.append(event)
    return events[:limit] if limit is not None else events


def render_screenshot(
    out: Path,
    backend: Any,
    events: list[Any],
    *,
    width: int = 420,
    height: int = 900,
    theme: str = "light",
    timeout: float = 60.0,
    model_seconds: float = 0.0,
    model_name: str = "",
) -> Path:
    """Build the panel, replay ``events``, wait for the pipeline and save the window as a PNG.

    Needs no running QApplication (one is created) and leaves no thread behind.

    Raises:
        copilot.cli.UserError: the pipeline did not finish within ``timeout`` or the PNG could
            not be written.
    """
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from copilot.cli import UserError
    from copilot.qt.tasks import TaskRunner
    from copilot.qt.theme import ThemeManager
    from copilot.services.feedback_memory import MemoryFeedbackSink
    from copilot.ui.main_window import MainWindow
    from copilot.ui.panel import build_panel

    existing = QApplication.instance()
    qapp = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    sheet, palette, style = qapp.styleSheet(), qapp.palette(), qapp.style().name()
    ThemeManager(qapp).apply(theme)
    window = MainWindow(use_tray=False, always_on_top=False)
    runner = TaskRunner()
    panel = build_panel(window, runner, MemoryFeedbackSink())
    try:
        window.setMinimumWidth(min(width, window.minimumWidth()))
        window.setMaximumWidth(max(width, window.maximumWidth()))
        window.resize(width, height)
        window.set_model_ready(model_seconds, model_name)
        window.show()
        panel.conversations.set_backend(backend)
        for event in events:
            panel.conversations.apply_event(event)
        deadline = time.perf_counter() + timeout
        conversations = panel.conversations
        while not (conversations.is_idle() and conversations.snapshot() is not None):
            if time.perf_counter() > deadline:
                raise UserError(f"the pipeline did not finish within {timeout:.0f} s")
            qapp.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.005)
        # Let the layouts settle (word-wrapped labels need two passes) before grabbing.
        for _ in range(5):
            qapp.processEvents()
        window.resize(width, height)
        qapp.processEvents()
        out.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(out)):
            raise UserError(f"could not write {out}")
    finally:
        panel.shutdown()
        runner.shutdown(wait=True)
        window.close()
        window.deleteLater()
        qapp.processEvents()
        qapp.setStyleSheet(sheet)
        qapp.setPalette(palette)
        qapp.setStyle(style)
    return out
