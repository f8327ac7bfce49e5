"""``copilot eval summary``: ROUGE-1/2/L F of the live summary against reference summaries."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from copilot.commands import _common
from copilot.core.conversation import Conversation, Role, TurnEventError, parse_turn_event
from copilot.core.metrics import percentile, rouge_scores
from copilot.core.summary import summarise

METRICS = ("rouge1", "rouge2", "rougeL")
# Synthetic times for turns that carry none: the summary only uses them for "as of".
_START = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="score the live summary against reference summaries (ROUGE)",
        description=__doc__
        + ' Format: cases.jsonl {"id", "turns": [{"role", "text"}], "references": [str, ...]}.'
        " Turns are redacted through the real conversation model first; intents and flags are"
        " not used. Scores are ROUGE F, the best over each case's references, averaged; the"
        " lead baseline (first customer turn + last agent turn) is scored the same way.",
    )
    parser.add_argument(
        "--cases",
        type=Path,
        help="cases.jsonl (default: the content pack's eval/summary_cs.jsonl)",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="write one <id>.txt summary each")
    _common.add_content_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    turns: tuple[tuple[str, str], ...]  # (role, text)
    references: tuple[str, ...]


def read_cases(path: Path) -> list[Case]:
    """Read cases.jsonl, failing with the file, line number and reason."""
    from copilot.cli import UserError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    cases: list[Case] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected a JSON object")
        turns = record.get("turns")
        refs = record.get("references")
        if not isinstance(turns, list) or not turns:
            raise UserError(f'{where}: "turns" must be a non-empty list')
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise UserError(f'{where}: "references" must be a non-empty list of strings')
        pairs = []
        for i, turn in enumerate(turns, start=1):
            if not isinstance(turn, dict) or not isinstance(turn.get("text"), str):
                raise UserError(f'{where}: turn {i} needs "role" and "text"')
            pairs.append((str(turn.get("role", "")), turn["text"]))
        case_id = str(record.get("id") or f"case-{number}")
        cases.append(Case(case_id, tuple(pairs), tuple(refs)))
    if not cases:
        raise UserError(f"{path} holds no cases")
    return cases


def conversation_of(case: Case) -> Conversation:
    """The case's turns applied through `Conversation.apply` (so they are redacted)."""
    from copilot.cli import UserError

    conversation = Conversation()
    for i, (role, text) in enumerate(case.turns, start=1):
        event = {
            "conversation_id": case.id,
            "turn_id": f"t{i}",
            "role": role,
            "text": text,
            "ts": (_START + dt.timedelta(seconds=30 * i)).isoformat(),
        }
        try:
            conversation = conversation.apply(parse_turn_event(event))
        except TurnEventError as exc:
            raise UserError(f"case {case.id!r}, turn {i}: {exc}") from exc
    return conversation


def lead_baseline(conversation: Conversation) -> str:
    """First customer turn + last agent turn: the baseline a summary has to beat."""
    first = next((t.text for t in conversation.turns if t.role is Role.CUSTOMER), "")
    last = next((t.text for t in reversed(conversation.turns) if t.role is Role.AGENT), "")
    return f"{first}\n{last}".strip()


def _mean(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    return {m: round(sum(r[m] for r in rows) / len(rows), 4) for m in METRICS}


def evaluate(cases: Sequence[Case], out: Path | None = None) -> dict[str, Any]:
    """Summarise every case turn by turn (as live) and score the final summaries."""
    ours: list[dict[str, float]] = []
    lead: list[dict[str, float]] = []
    per_turn_ms: list[float] = []  # CPU time of this thread: a busy machine's waits excluded
    wall_ms: list[float] = []
    per_case: list[dict[str, Any]] = []
    for case in cases:
        conversation = conversation_of(case)
        turns = conversation.turns
        summary = None
        for n in range(1, len(turns) + 1):
            wall, cpu = time.perf_counter(), time.thread_time()
            summary = summarise(turns[:n])
            per_turn_ms.append(1000 * (time.thread_time() - cpu))
            wall_ms.append(1000 * (time.perf_counter() - wall))
        assert summary is not None  # read_cases guarantees at least one turn
        text = summary.as_text()
        scores = rouge_scores(text, case.references)
        baseline = rouge_scores(lead_baseline(conversation), case.references)
        ours.append(scores)
        lead.append(baseline)
        per_case.append({"id": case.id, **{m: round(scores[m], 4) for m in METRICS}})
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", case.id).strip("._") or "case"
            (out / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
    return {
        "cases": len(cases),
        "summary": _mean(ours),
        "lead_baseline": _mean(lead),
        "ms_per_turn": {
            "mean": round(sum(per_turn_ms) / len(per_turn_ms), 4),
            "p50": round(percentile(per_turn_ms, 50), 4),
            "p95": round(percentile(per_turn_ms, 95), 4),
            "max": round(max(per_turn_ms), 4),
            "wall_p50": round(percentile(wall_ms, 50), 4),
            "wall_p95": round(percentile(wall_ms, 95), 4),
        },
        "per_case": per_case,
    }


def default_cases(args: argparse.Namespace) -> Path:
    return _common.content_dir(args) / "eval" / "summary_cs.jsonl"


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError

    path: Path = args.cases or default_cases(args)
    if not path.is_file():
        raise UserError(f"no summary cases at {path} (give --cases FILE)")
    result = evaluate(read_cases(path), args.out)
    result["source"] = str(path)
    if args.json:
        _common.print_json(result)
        return 0
    print(f"{path}: {len(result['per_case'])} conversations")
    header = f"{'':<24} {'ROUGE-1':>8} {'ROUGE-2':>8} {'ROUGE-L':>8}"
    print(header)
    print("-" * len(header))
    for label, key in (("summary", "summary"), ("lead baseline", "lead_baseline")):
        s = result[key]
        print(f"{label:<24} {s['rouge1']:>8.4f} {s['rouge2']:>8.4f} {s['rougeL']:>8.4f}")
    ms = result["ms_per_turn"]
    print(
        f"summarise per turn (CPU): mean {ms['mean']:.3f} ms, p50 {ms['p50']:.3f} ms,"
        f" p95 {ms['p95']:.3f} ms, max {ms['max']:.3f} ms;"
        f" wall p50 {ms['wall_p50']:.3f} ms, p95 {ms['wall_p95']:.3f} ms"
    )
    if args.out:
        print(f"summaries written to {args.out}")
    return 0
