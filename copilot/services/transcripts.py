"""Read turn events from JSON Lines transcripts; a malformed line is reported and skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from copilot.core.conversation import Turn, TurnEventError, parse_turn_event


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a valid turn event, with its number and the reason."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def read_events(path: Path) -> Iterator[Turn | BadLine]:
    """Yield each line's turn (text not yet redacted) or a `BadLine`, in file order.

    Raises:
        OSError: the file cannot be opened.
    """
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield BadLine(str(path), number, f"not valid JSON ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                yield BadLine(str(path), number, "a turn event must be a JSON object")
                continue
            try:
                yield parse_turn_event(obj)
            except TurnEventError as exc:
                yield BadLine(str(path), number, str(exc))
