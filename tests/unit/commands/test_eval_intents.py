"""``copilot eval intents`` on tiny labelled files, with the hashing embedder instead of MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copilot.cli import main
from copilot.commands import _common, eval_intents
from copilot.services.embedders import HashingEmbedder

TRAIN = {
    "card_arrival": ["where is my new card", "my card has not arrived", "card still not here"],
    "top_up": ["how do I top up", "top up my account", "add money top up"],
    "pin_change": ["change my pin", "new pin number please", "how to change pin"],
}


@pytest.fixture(autouse=True)
def _hashing_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "embedder", lambda args: HashingEmbedder(dimension=128))


def _jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    train = [(t, label) for label, texts in TRAIN.items() for t in texts]
    train += [("what is the weather", "oos"), ("tell me a joke", "oos")]
    test = [
        ("my card has still not arrived", "card_arrival"),
        ("top up my account please", "top_up"),
        ("I want to change my pin", "pin_change"),
        ("purple saxophone elephants", "oos"),
    ]
    return _jsonl(tmp_path / "train.jsonl", train), _jsonl(tmp_path / "test.jsonl", test)


def test_json_report(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    train, test = files
    assert main(["eval", "intents", "--train", str(train), "--test", str(test), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    report = json.loads(out)
    assert report["cases"] == 4
    assert report["train_examples"] == 9 and report["train_oos_examples"] == 2
    assert report["in_scope_accuracy"] == pytest.approx(1.0)
    assert report["oos_recall"] == pytest.approx(1.0)
    assert report["accuracy"] == pytest.approx(1.0)
    assert report["predict_ms_per_utterance"] < 50


def test_shots_keep_n_per_intent(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    train, test = files
    args = ["eval", "intents", "--train", str(train), "--test", str(test), "--json"]
    assert main([*args, "--shots", "2", "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train_examples"] == 6 and report["shots"] == 2
    assert main([*args, "--shots", "2", "--label-names"]) == 0
    assert json.loads(capsys.readouterr().out)["train_examples"] == 9


def test_keep_shots_is_seeded_and_keeps_all_oos() -> None:
    pairs = [(f"t{i}", "a" if i % 2 else "b") for i in range(20)] + [("x", "oos"), ("y", "oos")]
    kept = eval_intents.keep_shots(pairs, 3, seed=1)
    assert kept == eval_intents.keep_shots(pairs, 3, seed=1)
    assert kept != eval_intents.keep_shots(pairs, 3, seed=2)
    assert sum(label == "a" for _, label in kept) == 3
    assert sum(label == "oos" for _, label in kept) == 2


def test_text_report_lists_errors(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    train, test = files
    assert main(["eval", "intents", "--train", str(train), "--test", str(test)]) == 0
    out = capsys.readouterr().out
    assert "accuracy:" in out and "oos recall:" in out and "macro-F1:" in out


def test_default_is_the_pack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "intents", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["intents"] >= 25
    assert report["train"].endswith("intents.yaml")
    assert report["cases"] >= 100


def test_bad_file_is_a_readable_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"text": "hi"}\n')
    assert main(["eval", "intents", "--train", str(bad), "--test", str(bad)]) == 2
    assert "train.jsonl:1" in capsys.readouterr().err
