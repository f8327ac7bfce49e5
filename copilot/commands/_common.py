"""Helpers shared by CLI subcommands: resolving directories, the embedder and the index."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from copilot.core.protocols import Embedder
from copilot.services import paths

BACKENDS = ("onnx", "torch")


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="onnx",
        help="embedding backend: onnx (fast, default) or torch (the reference)",
    )


def add_content_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--content",
        metavar="DIR",
        help="content pack directory (default: $COPILOT_CONTENT_DIR or the bundled sample pack)",
    )


def data_dir(args: argparse.Namespace) -> Path:
    return paths.data_dir(getattr(args, "data_dir", None))


def content_dir(args: argparse.Namespace) -> Path:
    return paths.content_dir(getattr(args, "content", None))


def embedder(args: argparse.Namespace) -> Embedder:
    """The embedder named by ``--backend`` (ONNX by default; exported on first use)."""
    from copilot.services.embedders import load_embedder

    return load_embedder(getattr(args, "backend", "onnx"), data_dir(args))


def print_json(payload: Any) -> None:
    json.dump(payload, sys.stdout, ensure_ascii=False, separators=(",", ":"))
    sys.stdout.write("\n")


def progress_bar(label: str, *, enabled: bool = True) -> Any:
    """A callback ``(done, total)`` drawing a one-line progress bar on stderr when it is a TTY."""
    interactive = enabled and sys.stderr.isatty()

    def draw(done: int, total: int) -> None:
        if not interactive or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return draw
