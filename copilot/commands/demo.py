"""``copilot demo``: open the co-pilot with the sample pack and replay a demo conversation.

The turns arrive at a realistic pace (their time-stamp gaps, compressed to at most 2.5 s each),
so the panel can be watched updating: flags, policy checks, suggested replies, articles and the
summary. The sample pack's knowledge index is built on first use.

On a machine with no display (Linux without ``$DISPLAY`` or ``$WAYLAND_DISPLAY``, and
``QT_QPA_PLATFORM`` not set to ``offscreen``) the demo says so, replays the conversation in the
terminal instead (each snapshot as text) and saves a screenshot of the panel in the data
directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from copilot.commands import _common
from copilot.commands.screenshot import (
    BACKENDS,
    default_conversation,
    load_embedder,
    read_conversation,
    render_screenshot,
)

SCREENSHOT_NAME = "demo-screenshot.png"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="open the co-pilot with the sample pack and replay a demo conversation",
        description=__doc__,
    )
    parser.add_argument(
        "--conversation",
        type=Path,
        metavar="FILE.jsonl",
        help="turn events to replay (default: the pack's demos/02-*.jsonl, or its first demo)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="no pauses between turns (terminal replay only)",
    )
    parser.add_argument(
        "--quit-when-done",
        action="store_true",
        help="close the window once the replay is done and analysed",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="embedding backend (default: the one in the settings; hashing is a fast fake "
        "for tests)",
    )
    parser.add_argument(
        "--content",
        metavar="DIR",
        help="content pack directory (default: the bundled sample pack)",
    )
    parser.set_defaults(func=run)


def has_display() -> bool:
    """Whether a window can be shown (Linux needs X11 or Wayland, unless Qt renders offscreen)."""
    if os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _content(args: argparse.Namespace) -> Path:
    from copilot.services import paths

    if args.content:
        return Path(args.content).expanduser().resolve()
    return paths.sample_content_dir()


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError

    content = _content(args)
    conversation = args.conversation or default_conversation(content)
    if conversation is None or not conversation.is_file():
        raise UserError(f"no demo conversation found ({conversation or content / 'demos'})")
    turns = read_conversation(conversation)
    if not turns:
        raise UserError(f"{conversation} holds no turn events")
    if has_display():
        return _run_window(args, content, turns)
    return _run_headless(args, content, conversation, turns)


def _run_window(args: argparse.Namespace, content: Path, turns: list[Any]) -> int:
    from copilot import app

    loader = None
    if args.backend is not None:
        backend = args.backend

        def loader(_configured: str, data: Path) -> Any:
            return load_embedder(backend, data)

    return app.main(
        args,
        content_dir=content,
        replay=turns,
        quit_after_replay=args.quit_when_done,
        model_loader=loader,
    )


def _run_headless(
    args: argparse.Namespace, content: Path, conversation: Path, turns: list[Any]
) -> int:
    from copilot.core.conversation import Conversation
    from copilot.core.render import snapshot_text
    from copilot.qt.conversations_vm import load_backend
    from copilot.qt.replay import replay_gaps
    from copilot.services.settings import load_settings

    data = _common.data_dir(args)
    print(
        "No display found ($DISPLAY and $WAYLAND_DISPLAY are not set), so the co-pilot window "
        "cannot open here. Replaying the demo in the terminal instead, then saving a screenshot "
        "of the panel.\n"
        "(On a desktop, run `copilot demo` there; to render offscreen, set "
        "QT_QPA_PLATFORM=offscreen.)\n",
        flush=True,
    )
    backend_name = args.backend or load_settings(data).settings.embedding_backend
    print(f"Loading the language model ({backend_name}) and the sample pack…", flush=True)
    started = time.perf_counter()
    embedder = load_embedder(backend_name, data)
    model_seconds = time.perf_counter() - started
    backend = load_backend(content, data, embedder)
    print(f"Ready in {time.perf_counter() - started:.1f} s. Replaying {conversation.name}:\n")
    gaps = replay_gaps(turns)
    state = Conversation()
    for turn, gap in zip(turns, gaps, strict=True):
        if not args.fast and gap:
            time.sleep(gap)
        state = state.apply(turn)
        if not turn.is_final:
            continue
        stored = state.turn(turn.turn_id)
        said = stored.text if stored is not None else ""
        print(f"--- {turn.role.value.upper()} ({turn.turn_id}): {said}")
        snapshot = backend.assistant.analyse(state)
        print(snapshot_text(snapshot))
        print(flush=True)
    out = data / SCREENSHOT_NAME
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    render_screenshot(
        out,
        backend,
        turns,
        model_seconds=model_seconds,
        model_name=getattr(embedder, "name", ""),
    )
    print(f"Screenshot of the panel saved to {out}")
    return 0
