"""``copilot eval sentiment`` on a tiny labelled file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copilot.cli import main


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    path = tmp_path / "cases.jsonl"
    rows = [
        ("Brilliant, that's sorted it, thank you!", "positive"),
        ("Absolutely useless, still waiting.", "negative"),
        ("What time does the engineer arrive?", "neutral"),
        ("I'm fed up with this.", "positive"),  # deliberately mislabelled
    ]
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    return path


def test_json_report(cases: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "sentiment", "--cases", str(cases), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["cases"] == 4
    assert report["accuracy"] == pytest.approx(0.75)
    assert report["per_label"] == {"negative": 1.0, "neutral": 1.0, "positive": 0.5}
    assert report["macro_recall"] == pytest.approx((1.0 + 1.0 + 0.5) / 3)
    assert report["confusion"]["positive"] == {"negative": 1, "neutral": 0, "positive": 1}
    assert report["ms_per_turn"] < 50
    assert out.count("\n") == 1


def test_text_report_lists_errors(cases: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "sentiment", "--cases", str(cases), "--errors", "5"]) == 0
    out = capsys.readouterr().out
    assert "macro-recall:  0.8333" in out
    assert "I'm fed up with this." in out


def test_default_is_the_pack_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "sentiment", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases"] >= 150
    assert report["macro_recall"] >= 0.8


def test_bad_label_is_a_readable_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hello", "label": "happy"}\n')
    assert main(["eval", "sentiment", "--cases", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 1.label" in err and "'happy'" in err


def test_train_fits_a_head_on_another_file_and_lets_it_decide(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_embedder: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from copilot.commands import _common

    monkeypatch.setattr(_common, "embedder", lambda _args: fake_embedder)
    train = tmp_path / "train.jsonl"
    rows = [
        (f"{word} {filler}", label)
        for word, label in (
            ("zorgly", "negative"),
            ("blimpish", "positive"),
            ("quetzal", "neutral"),
        )
        for filler in ("today", "again", "the router", "my bill", "this week", "at home")
    ]
    train.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    test = tmp_path / "test.jsonl"
    test.write_text(
        "".join(
            json.dumps({"text": t, "label": lab}) + "\n"
            for t, lab in (
                ("zorgly modem", "negative"),
                ("blimpish engineer", "positive"),
                ("quetzal letter", "neutral"),
            )
        )
    )
    args = ["--data-dir", str(tmp_path / "data"), "eval", "sentiment"]
    assert main([*args, "--cases", str(test), "--train", str(train), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["macro_recall"] == 1.0  # the lexicon alone knows none of these words
    assert report["head"]["turns"] == 18 and report["head"]["train"] == str(train)
    assert main([*args, "--cases", str(test), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macro_recall"] < 1.0
