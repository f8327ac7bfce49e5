"""``copilot eval pii`` on a tiny cases file written by the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copilot.cli import main
from copilot.commands.eval_pii import Case, Span, f_beta, score

CASES = [
    {
        "text": "my card 4111 1111 1111 1111 and call 07700 900123",
        "spans": [
            {"type": "CREDIT_CARD", "start": 8, "end": 27},
            {"type": "PHONE_NUMBER", "start": 37, "end": 49},
        ],
    },
    {
        "text": "Mail Jane Doe at jane@example.com, IBAN GB82WEST12345698765432",
        "spans": [
            {"type": "PERSON", "start": 5, "end": 13},
            {"type": "EMAIL_ADDRESS", "start": 17, "end": 33},
            {"type": "IBAN", "start": 40, "end": 62},  # the other spelling of IBAN_CODE
        ],
    },
    # a labelled phone number we miss, and a card-like number that is not labelled
    {
        "text": "reach me at 12 34 56, ref 4111 1111 1111 1111",
        "spans": [{"type": "PHONE_NUMBER", "start": 12, "end": 20}],
    },
    {"text": "nothing to see here", "spans": []},
]


@pytest.fixture
def cases_file(tmp_path: Path) -> Path:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in CASES) + "\n", encoding="utf-8")
    return path


def test_json_report(cases_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "pii", "--cases", str(cases_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases"] == 4
    assert report["not_covered"] == ["PERSON"]
    card = report["types"]["CREDIT_CARD"]
    assert (card["precision"], card["recall"], card["support"]) == (0.5, 1.0, 1)
    phone = report["types"]["PHONE_NUMBER"]
    assert (phone["precision"], phone["recall"], phone["support"]) == (1.0, 0.5, 2)
    assert report["types"]["IBAN_CODE"]["recall"] == 1.0
    assert report["types"]["EMAIL_ADDRESS"]["f2"] == 1.0
    overall = report["overall"]
    assert overall["support"] == 5
    assert overall["recall"] == pytest.approx(0.8)
    assert overall["precision"] == pytest.approx(0.8)


def test_human_report_is_a_table(cases_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "pii", "--cases", str(cases_file)]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "recall" in out and "F2" in out
    assert any(line.startswith("CREDIT_CARD ") for line in out.splitlines())
    assert "not covered (left out of the score): PERSON" in out


def test_bad_cases_file_is_a_readable_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "spans": []}\n{not json\n', encoding="utf-8")
    assert main(["eval", "pii", "--cases", str(path)]) == 2
    assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err
    assert main(["eval", "pii", "--cases", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_overlap_counts_as_a_hit_and_f2_weighs_recall() -> None:
    case = Case("x" * 30, (Span("CREDIT_CARD", 5, 20),))
    result = score([case], [[Span("CREDIT_CARD", 10, 25), Span("CREDIT_CARD", 26, 29)]])
    card = result["types"]["CREDIT_CARD"]
    assert (card["precision"], card["recall"]) == (0.5, 1.0)
    assert f_beta(0.5, 1.0) == pytest.approx(5 * 0.5 / (4 * 0.5 + 1.0))
    assert f_beta(0.0, 0.0) == 0.0
