"""``copilot eval ...``: quality on labelled data sets (formats: shared/eval/README.md)."""

from __future__ import annotations

from typing import Any

from copilot.commands._group import register_group

EVAL_MODULES: tuple[str, ...] = (
    "copilot.commands.eval_intents",
    "copilot.commands.eval_retrieval",
    "copilot.commands.eval_pii",
    "copilot.commands.eval_sentiment",
    "copilot.commands.eval_summary",
)


def register(subparsers: Any) -> None:
    register_group(
        subparsers,
        "eval",
        help="measure quality on a labelled data set",
        description=__doc__ or "",
        modules=EVAL_MODULES,
    )
