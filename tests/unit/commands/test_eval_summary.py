"""``copilot eval summary`` on a tiny file, and the pack's own summary set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copilot.cli import main

CARD = "4111 1111 1111 1111"


def write_cases(path: Path, cases: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


def tiny(tmp_path: Path) -> Path:
    return write_cases(
        tmp_path / "cases.jsonl",
        [
            {
                "id": "double/charge",
                "turns": [
                    {"role": "customer", "text": "Hi"},
                    {"role": "agent", "text": "Hello, how can I help?"},
                    {"role": "customer", "text": "I was charged £38 twice for Fibre 500."},
                    {"role": "agent", "text": "I've raised a refund of £38 for you."},
                ],
                "references": [
                    "Customer was charged £38 twice for Fibre 500. Agent raised a £38 refund."
                ],
            },
            {
                "id": "card",
                "turns": [
                    {"role": "customer", "text": f"I want to pay, my card is {CARD}"},
                    {"role": "agent", "text": "Please don't read it out, I'll transfer you."},
                ],
                # The lead baseline is exactly this, once redacted: it scores 1.0 here.
                "references": [
                    "I want to pay, my card is [CARD •••• 1111]\n"
                    "Please don't read it out, I'll transfer you."
                ],
            },
        ],
    )


def test_json_scores_both_the_summary_and_the_lead_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        main(["eval", "summary", "--cases", str(tiny(tmp_path)), "--out", str(out), "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["cases"] == 2
    assert [c["id"] for c in result["per_case"]] == ["double/charge", "card"]
    for key in ("summary", "lead_baseline"):
        assert set(result[key]) == {"rouge1", "rouge2", "rougeL"}
        assert all(0.0 <= v <= 1.0 for v in result[key].values())
    # The summary of the first case shares most words with its reference.
    assert result["per_case"][0]["rouge1"] > 0.5
    assert result["ms_per_turn"]["max"] < 50
    written = sorted(p.name for p in out.iterdir())
    assert written == ["card.txt", "double_charge.txt"]
    text = (out / "double_charge.txt").read_text(encoding="utf-8")
    assert text.startswith("Issue: The customer was charged £38 twice for Fibre 500.")
    assert "Agent raised a refund of £38 for the customer" in text
    card = (out / "card.txt").read_text(encoding="utf-8")
    assert CARD not in card and "[CARD •••• 1111]" in card


def test_lead_baseline_scores_one_against_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tiny(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    write_cases(path, [json.loads(lines[1])])
    assert main(["eval", "summary", "--cases", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["lead_baseline"] == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_table_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "summary", "--cases", str(tiny(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "2 conversations" in out
    assert "lead baseline" in out and "ROUGE-L" in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"id": "x", "turns": [], "references": ["r"]}', '"turns" must be a non-empty list'),
        ('{"id": "x", "turns": [{"role": "agent", "text": "hi"}]}', '"references" must be'),
        ('{"id": "x", "turns": [{"role": "bot", "text": "hi"}], "references": ["r"]}', "role"),
    ],
)
def test_bad_input_names_the_line_and_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    assert main(["eval", "summary", "--cases", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err


def test_default_cases_come_from_the_content_pack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "eval").mkdir()
    tiny(tmp_path / "eval").rename(tmp_path / "eval" / "summary_cs.jsonl")
    assert main(["eval", "summary", "--content", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cases"] == 2
    assert main(["eval", "summary", "--content", str(tmp_path / "nowhere")]) == 2
    assert "no summary cases" in capsys.readouterr().err


def test_the_packs_summary_set_is_well_formed(sample_content: Path) -> None:
    lines = (sample_content / "eval" / "summary_cs.jsonl").read_text(encoding="utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip()]
    assert len(cases) >= 20
    assert len({c["id"] for c in cases}) == len(cases)
    for case in cases:
        assert 8 <= len(case["turns"]) <= 20, case["id"]
        assert {t["role"] for t in case["turns"]} == {"customer", "agent"}, case["id"]
        assert len(case["references"]) == 2, case["id"]
        for reference in case["references"]:
            sentences = [s for s in reference.replace("?", ".").split(". ") if s.strip()]
            assert 2 <= len(sentences) <= 4, (case["id"], reference)
