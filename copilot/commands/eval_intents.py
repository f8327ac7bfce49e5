"""``copilot eval intents``: accuracy, macro-F1 and, with ``oos`` labels, in-scope accuracy and
out-of-scope recall of the intent classifier trained on one labelled set and tested on another."""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from copilot.commands import _common

OOS = "oos"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "intents",
        help="train the intent classifier on labelled utterances and score it on others",
        description=__doc__
        + " Files are JSON lines {text, label} (label oos: out of scope), or for --train a"
        " taxonomy intents.yaml (its examples, descriptions and out_of_scope list).",
    )
    parser.add_argument(
        "--train",
        type=Path,
        help="train.jsonl or an intents.yaml (default: the content pack's intents.yaml)",
    )
    parser.add_argument(
        "--test",
        type=Path,
        help="test.jsonl (default: the content pack's eval/intents_cs.jsonl)",
    )
    _common.add_content_option(parser)
    parser.add_argument(
        "--shots",
        type=int,
        metavar="N",
        help="keep only N training examples per intent (drawn with --seed); oos lines all stay",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --shots (default 0)")
    parser.add_argument(
        "--label-names",
        action="store_true",
        help="also train on each label's name as an utterance (card_arrival -> 'card arrival'),"
        " as intents.yaml does with each intent's description",
    )
    _common.add_backend_option(parser)
    parser.add_argument(
        "--errors", type=int, default=0, metavar="N", help="list up to N misclassified utterances"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def keep_shots(pairs: list[tuple[str, str]], shots: int, seed: int) -> list[tuple[str, str]]:
    """N examples per label, drawn with `seed`, in the original order; `oos` lines all stay."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, (_, label) in enumerate(pairs):
        by_label[label].append(i)
    rng = random.Random(seed)
    keep: set[int] = set(by_label.pop(OOS, []))
    for label in sorted(by_label):
        members = by_label[label]
        keep.update(members if len(members) <= shots else rng.sample(members, shots))
    return [pair for i, pair in enumerate(pairs) if i in keep]


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    from copilot.cli import UserError
    from copilot.services.content_intents import read_labelled_jsonl

    try:
        return read_labelled_jsonl(path)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError
    from copilot.core.intents import (
        IntentClassifier,
        classification_scores,
        expected_calibration_error,
    )
    from copilot.services import content_intents

    content = _common.content_dir(args)
    train_path: Path = args.train or content / content_intents.INTENTS_FILE
    test_path: Path = args.test or content / content_intents.INTENTS_EVAL_FILE
    if args.shots is not None and args.shots < 1:
        raise UserError("--shots must be at least 1")

    if train_path.is_dir() or train_path.suffix.lower() in (".yaml", ".yml"):
        pack = train_path if train_path.is_dir() else train_path.parent
        if train_path.is_file() and train_path.name != content_intents.INTENTS_FILE:
            raise UserError(
                f"{train_path}: a taxonomy must be named {content_intents.INTENTS_FILE}"
            )
        try:
            taxonomy = content_intents.load_taxonomy(pack)
        except content_intents.IntentTaxonomyError as exc:
            raise UserError(str(exc)) from exc
        train = [(t, label) for t, label in taxonomy.training_examples(with_descriptions=False)]
        train += [(t, OOS) for t in taxonomy.out_of_scope]
        label_texts = {i.id: i.description for i in taxonomy.intents}
        use_label_texts = True  # the taxonomy's descriptions are part of its training data
    else:
        train = _read_pairs(train_path)
        label_texts = {label: label.replace("_", " ") for _, label in train if label != OOS}
        use_label_texts = args.label_names
    test = _read_pairs(test_path)
    if args.shots is not None:
        train = keep_shots(train, args.shots, args.seed)
    examples = [pair for pair in train if pair[1] != OOS]
    oos_examples = [text for text, label in train if label == OOS]
    if use_label_texts:
        present = {label for _, label in examples}
        examples += [
            (text, label) for label, text in sorted(label_texts.items()) if label in present
        ]
    if len({label for _, label in examples}) < 2:
        raise UserError(f"{train_path}: need examples of at least two intents")

    embedder = _common.embedder(args)
    with content_intents.single_blas_thread():
        try:
            classifier = IntentClassifier.train(examples, embedder, oos_examples=oos_examples)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        started = time.perf_counter()
        vectors = embedder.embed([text for text, _ in test])
        embed_ms = (time.perf_counter() - started) * 1000 / max(1, len(test))
        started = time.perf_counter()
        predictions = [classifier.predict_vector(v) for v in vectors]
        predict_ms = (time.perf_counter() - started) * 1000 / max(1, len(test))

    gold = [label for _, label in test]
    predicted = [p.intent_id or OOS for p in predictions]
    result: dict[str, Any] = dict(classification_scores(gold, predicted, oos_label=OOS))
    in_scope = [(p, g) for p, g in zip(predictions, gold, strict=True) if g != OOS]
    result["ece"] = expected_calibration_error(
        [p.confidence for p, _ in in_scope], [p.top[0][0] == g for p, g in in_scope]
    )
    unknown = sorted({g for g in gold if g != OOS} - set(classifier.labels))
    report = classifier.report
    result.update(
        {
            "train": str(train_path),
            "test": str(test_path),
            "train_examples": report.examples,
            "train_oos_examples": report.oos_examples,
            "intents": report.intents,
            "shots": args.shots,
            "seed": args.seed,
            "label_texts": use_label_texts,
            "backend": embedder.name,
            "unknown_test_labels": unknown,
            "train_embed_seconds": round(report.embed_seconds, 3),
            "train_fit_seconds": round(report.fit_seconds, 3),
            "embed_ms_per_utterance": round(embed_ms, 3),
            "predict_ms_per_utterance": round(predict_ms, 4),
            "training": report.to_dict(),
        }
    )
    errors = [
        {"text": text, "label": g, "predicted": p, "confidence": round(pred.confidence, 3)}
        for (text, g), p, pred in zip(test, predicted, predictions, strict=True)
        if g != p
    ]
    if args.json:
        if args.errors:
            result["errors"] = errors[: args.errors]
        _common.print_json(_rounded(result))
        return 0
    print(
        f"train:           {train_path}  ({report.examples} examples, {report.intents} intents,"
        f" {report.oos_examples} oos)"
    )
    print(f"test:            {test_path}  ({len(test)} utterances)")
    print(f"backend:         {embedder.name}")
    if args.shots is not None:
        print(f"shots:           {args.shots} per intent (seed {args.seed})")
    print(f"accuracy:        {result['accuracy']:.4f}")
    print(f"macro-F1:        {result['macro_f1']:.4f}")
    if "oos_recall" in result:
        in_acc = result["in_scope_accuracy"]
        print(f"in-scope acc.:   {'n/a' if in_acc is None else f'{in_acc:.4f}'}")
        print(f"oos recall:      {result['oos_recall']:.4f}")
    print(
        f"ECE (in-scope):  {result['ece']:.4f}  (out-of-fold at training:"
        f" {_fmt(report.ece_before)} raw -> {_fmt(report.ece_after)} calibrated,"
        f" T={report.temperature:.3f})"
    )
    print(
        f"kNN share:       {report.knn_weight}  (cross-validated accuracy"
        f" {_fmt(report.cv_accuracy)})"
    )
    print(f"out of scope:    {report.oos_rule}")
    if report.cv_oos_recall is not None:
        print(
            f"                 (held-out folds: oos recall {report.cv_oos_recall:.3f},"
            f" in-scope rejected {_fmt(report.cv_in_scope_rejection)})"
        )
    print(
        f"training:        {report.embed_seconds:.2f} s embedding + {report.fit_seconds:.2f} s"
        f" fitting"
    )
    print(f"per utterance:   {embed_ms:.2f} ms embedding, {predict_ms:.4f} ms predicting")
    if unknown:
        print(f"labels never seen in training: {', '.join(unknown)}")
    for error in errors[: args.errors]:
        print(
            f"  {error['label']:>24} -> {error['predicted']:<24} {error['confidence']:.2f}"
            f"  {error['text']}"
        )
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
