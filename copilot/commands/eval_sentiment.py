"""``copilot eval sentiment``: macro-recall, accuracy, per-label recall and the confusion matrix
of the sentiment scorer on labelled turns ({"text", "label"} JSON lines)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from copilot.commands import _common

LABELS = ("negative", "neutral", "positive")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sentiment",
        help="score the sentiment of labelled turns (macro-recall, accuracy, confusion)",
        description=__doc__,
    )
    parser.add_argument(
        "--cases",
        type=Path,
        help="cases.jsonl with {text, label} (default: the content pack's eval/sentiment_cs.jsonl)",
    )
    _common.add_content_option(parser)
    parser.add_argument(
        "--embeddings",
        action="store_true",
        help="also use the embedding head (loads the model; trains the head on first use)",
    )
    parser.add_argument(
        "--train",
        type=Path,
        metavar="FILE",
        help="train the embedding head on these labelled turns instead of the pack's (implies "
        "--embeddings) and let it decide alone (its most probable label)",
    )
    _common.add_backend_option(parser)
    parser.add_argument(
        "--errors", type=int, default=0, metavar="N", help="list up to N misclassified turns"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def evaluate(gold: list[str], predicted: list[str]) -> dict[str, Any]:
    """Macro-recall, accuracy, per-label recall and the confusion matrix (gold -> predicted)."""
    confusion = {g: dict.fromkeys(LABELS, 0) for g in LABELS}
    for g, p in zip(gold, predicted, strict=True):
        confusion[g][p] += 1
    per_label: dict[str, float | None] = {}
    for label in LABELS:
        total = sum(confusion[label].values())
        per_label[label] = confusion[label][label] / total if total else None
    recalls = [r for r in per_label.values() if r is not None]
    return {
        "macro_recall": sum(recalls) / len(recalls) if recalls else 0.0,
        "accuracy": sum(confusion[label][label] for label in LABELS) / len(gold) if gold else 0.0,
        "per_label": per_label,
        "confusion": confusion,
        "cases": len(gold),
    }


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError
    from copilot.core.sentiment import score_turn
    from copilot.core.signals import SignalConfigError, analyse_turn
    from copilot.services import content_signals, paths

    content = _common.content_dir(args)
    cases_path: Path = args.cases or content / content_signals.SENTIMENT_EVAL_FILE
    embedder = _common.embedder(args) if args.embeddings or args.train else None
    trained: dict[str, Any] | None = None
    try:
        config = content_signals.load_signal_config(
            content,
            embedder=embedder if args.train is None else None,
            cache_dir=paths.models_dir(_common.data_dir(args)) if embedder else None,
        )
        cases = content_signals.read_sentiment_cases(cases_path)
        if args.train is not None and embedder is not None:
            config, trained = _with_trained_head(config, args.train, embedder)
    except (SignalConfigError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    if not cases:
        raise UserError(f"{cases_path} holds no cases")
    texts = [text for text, _ in cases]
    vectors = embedder.embed(texts) if embedder is not None else None
    if embedder is not None and config.sentiment.head is None:
        raise UserError(f"{content / 'signals.yaml'}: sentiment.head is not configured")

    started = time.perf_counter()
    scores = [
        score_turn(text, config.sentiment, embedding=None if vectors is None else vectors[i])
        for i, text in enumerate(texts)
    ]
    sentiment_ms = (time.perf_counter() - started) * 1000 / len(texts)
    started = time.perf_counter()
    for i, text in enumerate(texts):
        analyse_turn(
            text,
            turn_id=str(i),
            config=config,
            embedding=None if vectors is None else vectors[i],
        )
    signals_ms = (time.perf_counter() - started) * 1000 / len(texts)

    gold = [str(label) for _, label in cases]
    predicted = [str(s.label) for s in scores]
    result = evaluate(gold, predicted)
    result["method"] = "lexicon+embedding-head" if vectors is not None else "lexicon"
    if trained is not None:
        result["head"] = trained
    result["ms_per_turn"] = round(sentiment_ms, 4)
    result["ms_per_turn_all_signals"] = round(signals_ms, 4)
    errors = [
        {"text": text, "label": g, "predicted": p, "score": round(s.score, 3)}
        for (text, _), g, p, s in zip(cases, gold, predicted, scores, strict=True)
        if g != p
    ]
    if args.json:
        payload = dict(result)
        if args.errors:
            payload["errors"] = errors[: args.errors]
        _common.print_json(payload)
        return 0
    print(f"cases:         {result['cases']}  ({cases_path})")
    print(f"method:        {result['method']}")
    if trained is not None:
        print(
            f"head:          trained on {trained['train']} ({trained['turns']} turns, "
            f"{trained['seconds']} s), deciding alone (most probable label)"
        )
    print(f"macro-recall:  {result['macro_recall']:.4f}")
    print(f"accuracy:      {result['accuracy']:.4f}")
    for label in LABELS:
        recall = result["per_label"][label]
        print(f"  recall {label:<9} {'n/a' if recall is None else f'{recall:.4f}'}")
    print("confusion (rows: gold, columns: predicted)")
    print(" " * 12 + "".join(f"{label:>10}" for label in LABELS))
    for g in LABELS:
        print(f"{g:<12}" + "".join(f"{result['confusion'][g][p]:>10}" for p in LABELS))
    print(f"time per turn: {sentiment_ms:.4f} ms sentiment, {signals_ms:.4f} ms all signals")
    for error in errors[: args.errors]:
        print(
            f"  {error['label']:>8} -> {error['predicted']:<8} {error['score']:+.2f}  "
            f"{error['text']}"
        )
    return 0


def _with_trained_head(config: Any, train: Path, embedder: Any) -> tuple[Any, dict[str, Any]]:
    """The signal config with a head trained on ``train`` and its blend calibrated there."""
    import dataclasses

    from copilot.services import content_signals

    started = time.perf_counter()
    examples = content_signals.read_sentiment_cases(train)
    head = content_signals.train_sentiment_head(examples, config.sentiment, embedder)
    # A head fitted on the domain's own turns (balanced class weights) decides alone: no
    # thresholds to tune, so nothing is fitted to the cases it is evaluated on.
    sentiment = dataclasses.replace(config.sentiment, head=head, head_weight=1.0)
    info: dict[str, Any] = {
        "train": str(train),
        "turns": len(examples),
        "ngram_share": head.ngram_share,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return dataclasses.replace(config, sentiment=sentiment), info
