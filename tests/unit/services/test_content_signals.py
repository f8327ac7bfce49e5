"""Loading ``signals.yaml``: the real pack loads; mistakes come with path, key and reason."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from copilot.core.sentiment import SentimentLabel
from copilot.core.signals import FlagKind, SignalConfigError, analyse_turn
from copilot.services.content_signals import (
    load_signal_config,
    read_sentiment_cases,
    vader_lexicon,
)

PACK = Path(__file__).resolve().parents[3] / "knowledge"


def pack_with(tmp_path: Path, yaml_text: str) -> Path:
    content = tmp_path / "pack"
    content.mkdir()
    (content / "signals.yaml").write_text(yaml_text, encoding="utf-8")
    return content


def test_the_real_pack_loads() -> None:
    config = load_signal_config(PACK)
    assert {rule.kind for rule in config.rules} == set(FlagKind)
    assert len(config.sentiment.lexicon.valence) > 7000  # VADER plus the pack's additions
    assert config.sentiment.lexicon.valence["useless"] < 0  # the pack's value wins
    assert config.sentiment.lexicon.phrases["still waiting"] < 0
    assert config.sentiment.head is None  # only trained when an embedder is supplied


def test_vader_lexicon_includes_emoji() -> None:
    lexicon = vader_lexicon()
    assert lexicon["great"] > 0 > lexicon["terrible"]
    assert lexicon["😠"] < 0 < lexicon["😀"]
    assert load_signal_config(PACK).sentiment.lexicon.valence["👍"] > 0  # added by the pack


def test_a_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    content = pack_with(tmp_path, "version: 1\nflags:\n  churn_risk: [unclosed\n")
    with pytest.raises(SignalConfigError) as info:
        load_signal_config(content)
    message = str(info.value)
    assert str(content / "signals.yaml") in message
    assert "invalid YAML" in message and "line" in message


@pytest.mark.parametrize(
    ("yaml_text", "key", "reason"),
    [
        (
            "flags:\n  churn_rsik:\n    patterns: [cancel*]\n",
            "flags.churn_rsik",
            "unknown flag kind",
        ),
        (
            "flags:\n  churn_risk:\n    patterns:\n      - {match: 'cancel (my|the'}\n",
            "flags.churn_risk.patterns[0].match",
            "unclosed group",
        ),
        (
            "flags:\n  churn_risk:\n    patterns:\n      - {match: cancel, weight: high}\n",
            "flags.churn_risk.patterns[0].weight",
            "expected a number",
        ),
        (
            "flags:\n  urgency:\n    levels: {low: 2, medium: 1}\n    patterns: [urgent]\n",
            "flags.urgency.levels",
            "thresholds must rise",
        ),
        (
            "flags:\n  urgency:\n    scope: forever\n    patterns: [urgent]\n",
            "flags.urgency.scope",
            "is not 'recent' or 'conversation'",
        ),
        ("flags:\n  urgency:\n    patterns: []\n", "flags.urgency.patterns", "at least one"),
        ("sentiment:\n  lexicon: {useless: -9}\n", "sentiment.lexicon.useless", "outside"),
        (
            "sentiment:\n  thresholds: {negative_below: 0.5, positive_above: 0.1}\n",
            "sentiment.thresholds",
            "must be lower",
        ),
        ("sentimnet: {}\n", "sentimnet", "unknown key"),
        ("negation:\n  cues: ['(not']\n", "negation.cues[0]", "unclosed group"),
    ],
)
def test_a_bad_value_names_path_key_and_reason(
    tmp_path: Path, yaml_text: str, key: str, reason: str
) -> None:
    content = pack_with(tmp_path, yaml_text)
    with pytest.raises(SignalConfigError) as info:
        load_signal_config(content)
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{content / 'signals.yaml'}: {key}: ")


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SignalConfigError, match="file not found"):
        load_signal_config(tmp_path)


def test_a_minimal_pack_works_without_vader(tmp_path: Path) -> None:
    content = pack_with(
        tmp_path,
        "sentiment:\n  base_lexicon: none\n  lexicon: {sorted: 2.0}\n"
        "flags:\n  human_request:\n    patterns: ['speak to (a|the) manager']\n",
    )
    config = load_signal_config(content)
    signals = analyse_turn("Sorted, now let me speak to the manager", turn_id="t", config=config)
    assert signals.sentiment.label is SentimentLabel.POSITIVE
    assert [f.kind for f in signals.flags] == [FlagKind.HUMAN_REQUEST]


def test_sentiment_cases_report_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text('{"text": "fine", "label": "neutral"}\n{"text": "ok", "label": "meh"}\n')
    with pytest.raises(SignalConfigError) as info:
        read_sentiment_cases(path)
    assert info.value.key == "line 2.label"
    assert "'meh'" in info.value.reason


def test_the_pack_sentiment_sets_are_big_and_balanced() -> None:
    for name, minimum in (("eval/sentiment_cs.jsonl", 150), ("signals/sentiment_train.jsonl", 150)):
        cases = read_sentiment_cases(PACK / name)
        counts = Counter(label for _, label in cases)
        assert len(cases) >= minimum
        assert min(counts.values()) >= len(cases) // 4, counts
    evaluation = {text for text, _ in read_sentiment_cases(PACK / "eval/sentiment_cs.jsonl")}
    training = {text for text, _ in read_sentiment_cases(PACK / "signals/sentiment_train.jsonl")}
    assert not evaluation & training  # the head never sees the evaluation turns


def test_signals_set_is_valid_json_with_known_kinds() -> None:
    lines = (PACK / "eval/signals_cs.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines:
        record = json.loads(line)
        assert set(record["expected"]) <= {k.value for k in FlagKind}
        assert all(t["role"] in ("customer", "agent", "system") for t in record["turns"])


def test_the_head_is_trained_once_and_cached(tmp_path: Path, fake_embedder: object) -> None:
    content = tmp_path / "pack"
    shutil.copytree(PACK, content, ignore=shutil.ignore_patterns("articles"))
    cache = tmp_path / "cache"
    config = load_signal_config(content, embedder=fake_embedder, cache_dir=cache)  # type: ignore[arg-type]
    head = config.sentiment.head
    assert head is not None and head.dimension == 64
    files = list(cache.glob("sentiment_head_*.json"))
    assert len(files) == 1
    again = load_signal_config(content, embedder=fake_embedder, cache_dir=cache)  # type: ignore[arg-type]
    assert again.sentiment.head is not None
    assert np.allclose(again.sentiment.head.weights, head.weights)
    text = "Brilliant, thank you, all sorted."
    vector = fake_embedder.embed([text])[0]  # type: ignore[attr-defined]
    scored = analyse_turn(text, turn_id="t", config=again, embedding=vector)
    assert scored.sentiment.used_embedding
    assert scored.sentiment.label is SentimentLabel.POSITIVE


@pytest.mark.slow
def test_the_real_head_helps_on_the_pack_set(tmp_path: Path, real_embedder: object) -> None:
    from copilot.core.sentiment import score_turn

    config = load_signal_config(PACK, embedder=real_embedder, cache_dir=tmp_path)  # type: ignore[arg-type]
    cases = read_sentiment_cases(PACK / "eval/sentiment_cs.jsonl")
    vectors = real_embedder.embed([text for text, _ in cases])  # type: ignore[attr-defined]

    def macro_recall(predicted: list[SentimentLabel]) -> float:
        recalls = []
        for label in SentimentLabel:
            pairs = [(p, g) for p, (_, g) in zip(predicted, cases, strict=True) if g is label]
            recalls.append(sum(p is g for p, g in pairs) / len(pairs))
        return sum(recalls) / len(recalls)

    lexicon_only = [score_turn(text, config.sentiment).label for text, _ in cases]
    with_head = [
        score_turn(text, config.sentiment, embedding=vectors[i]).label
        for i, (text, _) in enumerate(cases)
    ]
    assert macro_recall(lexicon_only) >= 0.85
    assert macro_recall(with_head) >= macro_recall(lexicon_only)


def test_the_cached_head_keeps_its_ngram_part(tmp_path: Path, fake_embedder: object) -> None:
    content = tmp_path / "pack"
    shutil.copytree(PACK, content, ignore=shutil.ignore_patterns("articles"))
    cache = tmp_path / "cache"
    head = load_signal_config(content, embedder=fake_embedder, cache_dir=cache).sentiment.head  # type: ignore[arg-type]
    assert head is not None and head.ngrams is not None and head.ngram_share == pytest.approx(0.3)
    again = load_signal_config(content, embedder=fake_embedder, cache_dir=cache).sentiment.head  # type: ignore[arg-type]
    assert again is not None and again.ngrams is not None
    assert again.ngrams.vocabulary == head.ngrams.vocabulary
    text = "Sooo fed up, nothing works"
    vector = fake_embedder.embed([text])[0]  # type: ignore[attr-defined]
    features = [0.0, 0.0, 0.0, 0.0]
    assert again.probabilities(vector, features, text) == pytest.approx(
        head.probabilities(vector, features, text), abs=1e-6
    )


def test_a_damaged_head_cache_is_retrained(tmp_path: Path, fake_embedder: object) -> None:
    content = tmp_path / "pack"
    shutil.copytree(PACK, content, ignore=shutil.ignore_patterns("articles"))
    cache = tmp_path / "cache"
    load_signal_config(content, embedder=fake_embedder, cache_dir=cache)  # type: ignore[arg-type]
    (cached,) = cache.glob("sentiment_head_*.json")
    raw = json.loads(cached.read_text())
    raw["ngrams"]["weights"] = raw["ngrams"]["weights"][:1]  # wrong shape
    cached.write_text(json.dumps(raw))
    head = load_signal_config(content, embedder=fake_embedder, cache_dir=cache).sentiment.head  # type: ignore[arg-type]
    assert head is not None and head.ngrams is not None
    assert head.ngrams.weights.shape == (3, len(head.ngrams.vocabulary))


def test_ngram_part_learns_what_the_embedding_cannot(fake_embedder: object) -> None:
    """Variant spellings defeat a word-level embedding; the n-gram part still sees them."""
    from copilot.core.sentiment import score_turn
    from copilot.services.content_signals import train_sentiment_head

    config = load_signal_config(PACK).sentiment
    examples = [
        (f"{word} {filler}", label)
        for word, label in (
            ("zorgly", SentimentLabel.NEGATIVE),
            ("blimpish", SentimentLabel.POSITIVE),
            ("quetzal", SentimentLabel.NEUTRAL),
        )
        for filler in ("today", "again", "the router", "my bill", "this week", "at home")
    ]
    import dataclasses

    plain = dataclasses.replace(
        config,
        head=train_sentiment_head(examples, config, fake_embedder, ngram_share=0.0),  # type: ignore[arg-type]
        head_weight=1.0,
    )
    mixed = dataclasses.replace(
        config,
        head=train_sentiment_head(examples, config, fake_embedder, ngram_share=0.7),  # type: ignore[arg-type]
        head_weight=1.0,
    )
    # unseen spellings: a word-hashing embedding cannot link them, character n-grams can
    unseen = ["zorglyyy modem", "blimpishly engineer", "quetzals letter"]
    wanted = [SentimentLabel.NEGATIVE, SentimentLabel.POSITIVE, SentimentLabel.NEUTRAL]
    vectors = fake_embedder.embed(unseen)  # type: ignore[attr-defined]
    got = [score_turn(t, mixed, embedding=vectors[i]).label for i, t in enumerate(unseen)]
    assert got == wanted
    plain_got = [score_turn(t, plain, embedding=vectors[i]).label for i, t in enumerate(unseen)]
    assert plain_got != wanted
