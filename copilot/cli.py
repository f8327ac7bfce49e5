"""The ``copilot`` command: subcommands live in ``copilot.commands``, one module each."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from copilot import __version__

# Each module defines ``register(subparsers)`` and sets ``func`` on its parser(s).
COMMAND_MODULES: tuple[str, ...] = (
    "copilot.commands.index",
    "copilot.commands.search",
    "copilot.commands.replay",
    "copilot.commands.model",
    "copilot.commands.eval",
    "copilot.commands.bench",
    "copilot.commands.screenshot",
    "copilot.commands.demo",
    "copilot.commands.feedback",
    "copilot.commands.gaps",
    "copilot.commands.harvest",
    "copilot.commands.erase",
    "copilot.commands.serve",
    "copilot.commands.llm",
    "copilot.commands.vcon",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="copilot",
        description="Agent Co-pilot: live assistance beside a customer-service agent's main tool.",
        epilog="Without a COMMAND, opens the co-pilot window (or raises the one already running).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _app_only_args(argv: Sequence[str]) -> argparse.Namespace | None:
    """The parsed options when ``argv`` just opens the window (no COMMAND, no help), else None.

    Opening the window is the path where start-up time shows: this skips importing every command
    module (numpy and the evaluation code among them, ~0.2 s) to build a parser it does not need.
    """
    if any(arg in ("-h", "--help", "--version") for arg in argv):
        return None
    parser = argparse.ArgumentParser(prog="copilot", add_help=False, exit_on_error=False)
    _add_global_options(parser)
    try:
        args, rest = parser.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit):
        # The full parser reports the mistake with the usual message.
        return None
    return None if rest else args


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where user data lives (default: $COPILOT_DATA_DIR or the platform data directory)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "--toggle",
        action="store_true",
        help="show or hide the running co-pilot window (bind it to a desktop-wide hotkey)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    words = list(sys.argv[1:] if argv is None else argv)
    args = _app_only_args(words) or build_parser().parse_args(words)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        # No subcommand: open the desktop app. Qt is imported on this path only.
        from copilot import app

        func = app.main
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"copilot: error: {exc}", file=sys.stderr)
        return 2


class UserError(Exception):
    """An error caused by input the user can fix; printed without a traceback."""


if __name__ == "__main__":
    raise SystemExit(main())
