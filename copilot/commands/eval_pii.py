"""``copilot eval pii``: precision, recall and F2 of redaction on labelled PII spans."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from copilot.commands import _common
from copilot.core.redaction import PiiType, redact

# Our detector types as the data sets name them (presidio-research names by default).
DATASET_TYPES: dict[PiiType, str] = {
    PiiType.CARD: "CREDIT_CARD",
    PiiType.CVV: "CVV",
    PiiType.IBAN: "IBAN_CODE",
    PiiType.SORT_CODE_ACCOUNT: "UK_BANK_DETAILS",
    PiiType.US_SSN: "US_SSN",
    PiiType.UK_NINO: "UK_NINO",
    PiiType.EMAIL: "EMAIL_ADDRESS",
    PiiType.PHONE: "PHONE_NUMBER",
    PiiType.PASSWORD: "PASSWORD",
}
# Other spellings of the same types found in public data sets.
ALIASES: dict[str, str] = {
    "IBAN": "IBAN_CODE",
    "CARD": "CREDIT_CARD",
    "CREDIT_CARD_NUMBER": "CREDIT_CARD",
    "SSN": "US_SSN",
    "EMAIL": "EMAIL_ADDRESS",
    "PHONE": "PHONE_NUMBER",
    "NINO": "UK_NINO",
}
COVERED = frozenset(DATASET_TYPES.values())


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pii",
        help="score redaction against labelled PII spans",
        description=__doc__ + ' Format: cases.jsonl {"text", "spans": [{"type", "start", "end"}]}.'
        " A predicted span that overlaps a labelled span of the same type is a hit; labelled"
        " types we do not detect (PERSON, LOCATION, ...) are left out of the score.",
    )
    parser.add_argument(
        "--cases",
        type=Path,
        help="cases.jsonl (default: shared/eval/pii/presidio_a/cases.jsonl when present)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


@dataclass(frozen=True, slots=True)
class Span:
    type: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    spans: tuple[Span, ...]


def dataset_type(name: str) -> str:
    upper = name.strip().upper()
    return ALIASES.get(upper, upper)


def read_cases(path: Path) -> list[Case]:
    """Read cases.jsonl, failing with the file, line number and reason."""
    from copilot.cli import UserError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    cases = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise UserError(f'{where}: expected an object with a "text" string')
        spans = []
        for span in record.get("spans") or []:
            try:
                spans.append(
                    Span(dataset_type(str(span["type"])), int(span["start"]), int(span["end"]))
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise UserError(f'{where}: each span needs "type", "start" and "end"') from exc
        cases.append(Case(record["text"], tuple(spans)))
    if not cases:
        raise UserError(f"{path} holds no cases")
    return cases


def _overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def f_beta(precision: float, recall: float, beta: float = 2.0) -> float:
    b2 = beta * beta
    denominator = b2 * precision + recall
    return (1 + b2) * precision * recall / denominator if denominator else 0.0


@dataclass
class _Tally:
    predicted: int = 0
    correct: int = 0
    support: int = 0
    found: int = 0

    def scores(self) -> dict[str, float | int]:
        precision = self.correct / self.predicted if self.predicted else 0.0
        recall = self.found / self.support if self.support else 0.0
        return {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f2": round(f_beta(precision, recall), 4),
            "support": self.support,
            "predicted": self.predicted,
        }


def score(cases: Sequence[Case], predictions: Sequence[Iterable[Span]]) -> dict[str, Any]:
    """Per-type and overall precision, recall and F2 over the types we detect.

    A prediction is correct when it overlaps a labelled span of its type; a labelled span is
    found when a prediction of its type overlaps it.
    """
    tallies: dict[str, _Tally] = {}
    overall = _Tally()
    not_covered: set[str] = set()
    for case, predicted in zip(cases, predictions, strict=True):
        gold = [s for s in case.spans if s.type in COVERED]
        not_covered.update(s.type for s in case.spans if s.type not in COVERED)
        predicted = list(predicted)
        for p in predicted:
            tally = tallies.setdefault(p.type, _Tally())
            hit = any(g.type == p.type and _overlaps(g, p) for g in gold)
            for t in (tally, overall):
                t.predicted += 1
                t.correct += hit
        for g in gold:
            tally = tallies.setdefault(g.type, _Tally())
            hit = any(p.type == g.type and _overlaps(g, p) for p in predicted)
            for t in (tally, overall):
                t.support += 1
                t.found += hit
    return {
        "types": {name: tallies[name].scores() for name in sorted(tallies)},
        "overall": overall.scores(),
        "cases": len(cases),
        "not_covered": sorted(not_covered),
    }


def predict(text: str) -> list[Span]:
    return [Span(DATASET_TYPES[r.type], r.start, r.end) for r in redact(text).spans]


def default_cases() -> Path:
    from copilot.services import paths

    return paths.shared_eval_dir() / "pii" / "presidio_a" / "cases.jsonl"


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError

    path: Path | None = args.cases
    if path is None:
        path = default_cases()
        if not path.is_file():
            raise UserError("give --cases FILE (no shared evaluation data beside this checkout)")
    cases = read_cases(path)
    started = time.perf_counter()
    predictions = [predict(case.text) for case in cases]
    elapsed = time.perf_counter() - started
    result = score(cases, predictions)
    result["mean_ms_per_case"] = round(1000 * elapsed / len(cases), 4)
    if args.json:
        _common.print_json(result)
        return 0
    print(f"{path}: {len(cases)} cases, {result['mean_ms_per_case']:.3f} ms per case")
    header = (
        f"{'type':<16} {'precision':>9} {'recall':>7} {'F2':>7} {'support':>8} {'predicted':>9}"
    )
    print(header)
    print("-" * len(header))
    rows = [*result["types"].items(), ("overall", result["overall"])]
    for name, s in rows:
        print(
            f"{name:<16} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['f2']:>7.3f}"
            f" {s['support']:>8} {s['predicted']:>9}"
        )
    if result["not_covered"]:
        print("not covered (left out of the score): " + ", ".join(result["not_covered"]))
    return 0
