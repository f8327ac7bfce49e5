"""``copilot bench ...``: speed measurements that print numbers (record them in BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any

from copilot.commands._group import register_group

BENCH_MODULES: tuple[str, ...] = (
    "copilot.commands.bench_search",
    "copilot.commands.bench_turn",
    "copilot.commands.bench_embed",
    "copilot.commands.bench_feedback",
    "copilot.commands.bench_startup",
    "copilot.commands.bench_ingest",
)


def register(subparsers: Any) -> None:
    register_group(
        subparsers,
        "bench",
        help="measure speed and print numbers",
        description=__doc__ or "",
        modules=BENCH_MODULES,
    )
