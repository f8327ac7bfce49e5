"""A subcommand that only groups further subcommands (``copilot eval``, ``copilot bench``)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any


def register_group(
    subparsers: Any, name: str, *, help: str, description: str, modules: Sequence[str]
) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description
    )
    kinds = parser.add_subparsers(dest=f"{name}_kind", metavar="KIND")
    for module in modules:
        importlib.import_module(module).register(kinds)

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=show_help)
