"""Loads the signals configuration (``knowledge/signals.yaml``) and the sentiment data sets.

Validation lives in `copilot.core.signals.build_signal_config`; this module reads the files,
supplies the VADER base lexicon from the ``vaderSentiment`` package, trains the optional
sentiment head, and puts the file's path into every error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from copilot.core.sentiment import (
    SentimentConfig,
    SentimentHead,
    SentimentLabel,
    lexicon_features,
    score_text,
)
from copilot.core.signals import SignalConfig, SignalConfigError, build_signal_config

if TYPE_CHECKING:
    from copilot.core.protocols import Embedder

SIGNALS_FILE = "signals.yaml"
SENTIMENT_EVAL_FILE = Path("eval") / "sentiment_cs.jsonl"
SIGNALS_EVAL_FILE = Path("eval") / "signals_cs.jsonl"


def signals_path(content: Path) -> Path:
    return content / SIGNALS_FILE


@functools.cache
def vader_lexicon() -> dict[str, float]:
    """VADER's word and emoticon valences, plus a valence for each emoji.

    VADER describes each emoji in words ("face with tears of joy"); an emoji's valence is the sum
    of its description's word valences, clipped to the lexicon's range.
    """
    package = resources.files("vaderSentiment")
    valence: dict[str, float] = {}
    for line in (package / "vader_lexicon.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            try:
                valence[parts[0].strip().lower()] = float(parts[1])
            except ValueError:
                continue
    emoji_file = package / "emoji_utf8_lexicon.txt"
    for line in emoji_file.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or len(parts[0]) != 1:
            continue  # multi-codepoint sequences never survive tokenising as one token
        words = [valence[w] for w in parts[1].lower().split() if w in valence]
        if words:
            valence[parts[0]] = max(-4.0, min(4.0, sum(words)))
    return valence


def read_signals_yaml(path: Path) -> dict[str, Any]:
    """Parse the YAML file; a syntax error is reported with its line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SignalConfigError("", "file not found", path=str(path)) from None
    except OSError as exc:
        raise SignalConfigError("", f"cannot read: {exc.strerror}", path=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SignalConfigError("", f"invalid YAML: {where}{problem}", path=str(path)) from None
    if not isinstance(data, dict):
        raise SignalConfigError("", "expected a mapping at the top level", path=str(path))
    return data


def load_signal_config(
    content: Path, *, embedder: Embedder | None = None, cache_dir: Path | None = None
) -> SignalConfig:
    """Load and validate ``<content>/signals.yaml``.

    Args:
        content: the content pack directory.
        embedder: when given and the file configures ``sentiment.head``, the head is trained on
            the pack's labelled turns with this embedder (or read from ``cache_dir``), so callers
            that pass turn embeddings to `analyse_turn` get the blended score.
        cache_dir: where a trained head is kept between runs (keyed by the training data, the
            lexicon and the model); no caching when None.

    Raises:
        SignalConfigError: with the file path, the key and the reason.
    """
    path = signals_path(content)
    data = read_signals_yaml(path)
    try:
        config = build_signal_config(data, base_lexicon=vader_lexicon())
    except SignalConfigError as exc:
        raise exc.with_path(str(path)) from None
    if embedder is not None and config.head_source:
        head = load_or_train_head(content, config, embedder, cache_dir=cache_dir)
        config = _with_head(config, head)
    return config


def _with_head(config: SignalConfig, head: SentimentHead) -> SignalConfig:
    import dataclasses

    return dataclasses.replace(config, sentiment=dataclasses.replace(config.sentiment, head=head))


def read_sentiment_cases(path: Path) -> list[tuple[str, SentimentLabel]]:
    """Read ``{"text", "label"}`` JSON lines; labels negative / neutral / positive.

    Raises:
        SignalConfigError: naming the file, the line and what is wrong with it.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SignalConfigError("", "file not found", path=str(path)) from None
    cases: list[tuple[str, SentimentLabel]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SignalConfigError(key, f"not JSON: {exc.msg}", path=str(path)) from None
        if not isinstance(record, dict):
            raise SignalConfigError(key, "expected a JSON object", path=str(path))
        text, label = record.get("text"), record.get("label")
        if not isinstance(text, str) or not text.strip():
            raise SignalConfigError(f"{key}.text", "missing or empty", path=str(path))
        try:
            cases.append((text, SentimentLabel(str(label).lower())))
        except ValueError:
            raise SignalConfigError(
                f"{key}.label",
                f"{label!r} is not one of negative, neutral, positive",
                path=str(path),
            ) from None
    return cases


def _head_key(
    examples: Sequence[tuple[str, SentimentLabel]], config: SentimentConfig, model: str
) -> str:
    digest = hashlib.sha256()
    digest.update(model.encode())
    for text, label in examples:
        digest.update(f"{label}\t{text}\n".encode())
    # the lexicon feeds the head's features, so a lexicon edit retrains it too
    for table in (config.lexicon.valence, config.lexicon.phrases, config.lexicon.boosters):
        digest.update(json.dumps(sorted(table.items()), ensure_ascii=False).encode())
    digest.update(json.dumps(sorted(config.lexicon.negations)).encode())
    return digest.hexdigest()[:16]


def train_sentiment_head(
    examples: Sequence[tuple[str, SentimentLabel]],
    config: SentimentConfig,
    embedder: Embedder,
    *,
    c: float = 1.0,
) -> SentimentHead:
    """Fit the softmax-linear head on labelled turns: [embedding, lexicon features] -> label.

    Args:
        examples: (text, label) pairs, every label present.
        config: the sentiment configuration whose lexicon supplies the features.
        embedder: the model whose vectors the pipeline will pass at run time.
        c: inverse regularisation strength of the logistic regression.
    """
    from sklearn.linear_model import LogisticRegression

    labels = tuple(SentimentLabel)
    present = {label for _, label in examples}
    if present != set(labels):
        missing = ", ".join(sorted(set(labels) - present))
        raise ValueError(f"the head's training data has no {missing} examples")
    vectors = embedder.embed([text for text, _ in examples])
    features = np.array(
        [lexicon_features(score_text(text, config)) for text, _ in examples], dtype=np.float32
    )
    x = np.hstack([vectors, features])
    y = np.array([labels.index(label) for _, label in examples])
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    model.fit(x, y)
    order = [list(model.classes_).index(i) for i in range(len(labels))]
    return SentimentHead(
        model=embedder.name,
        labels=labels,
        weights=np.asarray(model.coef_[order], dtype=np.float32),
        bias=np.asarray(model.intercept_[order], dtype=np.float32),
    )


def load_or_train_head(
    content: Path, config: SignalConfig, embedder: Embedder, *, cache_dir: Path | None = None
) -> SentimentHead:
    """The sentiment head for this pack and model, trained on first use and cached."""
    train_path = content / config.head_source
    examples = read_sentiment_cases(train_path)
    key = _head_key(examples, config.sentiment, embedder.name)
    cached = cache_dir / f"sentiment_head_{key}.json" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            raw = json.loads(cached.read_text(encoding="utf-8"))
            weights = np.asarray(raw["weights"], dtype=np.float32)
            bias = np.asarray(raw["bias"], dtype=np.float32)
            if weights.shape[0] == bias.shape[0] == len(raw["labels"]) and all(
                math.isfinite(v) for v in weights.ravel()
            ):
                return SentimentHead(
                    model=str(raw["model"]),
                    labels=tuple(SentimentLabel(label) for label in raw["labels"]),
                    weights=weights,
                    bias=bias,
                )
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is simply retrained
    head = train_sentiment_head(examples, config.sentiment, embedder)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "model": head.model,
                    "labels": [str(label) for label in head.labels],
                    "weights": head.weights.tolist(),
                    "bias": head.bias.tolist(),
                }
            ),
            encoding="utf-8",
        )
        tmp.replace(cached)
    return head
