"""Loads the signals configuration (``knowledge/signals.yaml``) and the sentiment data sets.

Validation lives in `copilot.core.signals.build_signal_config`; this module reads the files,
supplies the VADER base lexicon from the ``vaderSentiment`` package, trains the optional
sentiment head, and puts the file's path into every error.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from copilot.core.sentiment import (
    NgramModel,
    SentimentConfig,
    SentimentHead,
    SentimentLabel,
    char_ngrams,
    lexicon_features,
    score_text,
)
from copilot.core.signals import SignalConfig, SignalConfigError, build_signal_config

if TYPE_CHECKING:
    import numpy.typing as npt

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
    # v2: the head carries a character n-gram part; older caches are retrained
    digest.update(f"v2 ngram_share={config.head_ngram_share}".encode())
    return digest.hexdigest()[:16]


def train_sentiment_head(
    examples: Sequence[tuple[str, SentimentLabel]],
    config: SentimentConfig,
    embedder: Embedder,
    *,
    c: float = 1.0,
    ngram_share: float | None = None,
) -> SentimentHead:
    """Fit the head on labelled turns: [embedding, lexicon features] -> label, plus a character
    n-gram classifier averaged in with ``ngram_share`` (default: the config's).

    Args:
        examples: (text, label) pairs, every label present.
        config: the sentiment configuration whose lexicon supplies the features.
        embedder: the model whose vectors the pipeline will pass at run time.
        c: inverse regularisation strength of the logistic regression.
        ngram_share: the n-gram classifier's share of the probabilities; 0 trains none.
    """
    labels = tuple(SentimentLabel)
    present = {label for _, label in examples}
    if present != set(labels):
        missing = ", ".join(sorted(set(labels) - present))
        raise ValueError(f"the head's training data has no {missing} examples")
    texts = [text for text, _ in examples]
    vectors = embedder.embed(texts)
    features = np.array(
        [lexicon_features(score_text(text, config)) for text in texts], dtype=np.float32
    )
    y = np.array([labels.index(label) for _, label in examples])
    share = config.head_ngram_share if ngram_share is None else ngram_share
    return _fit_head(embedder.name, texts, np.hstack([vectors, features]), y, c=c, share=share)


def _fit_head(
    model_name: str,
    texts: Sequence[str],
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    *,
    c: float,
    share: float,
) -> SentimentHead:
    from sklearn.linear_model import LogisticRegression

    labels = tuple(SentimentLabel)
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    model.fit(x, y)
    order = [list(model.classes_).index(i) for i in range(len(labels))]
    return SentimentHead(
        model=model_name,
        labels=labels,
        weights=np.asarray(model.coef_[order], dtype=np.float32),
        bias=np.asarray(model.intercept_[order], dtype=np.float32),
        ngrams=_train_ngrams(texts, y, len(labels)) if share > 0 else None,
        ngram_share=share if share > 0 else 0.0,
    )


def _train_ngrams(texts: Sequence[str], y: npt.NDArray[np.int64], n_labels: int) -> NgramModel:
    """Sublinear TF-IDF of `char_ngrams` + balanced logistic regression (the head's n-gram part).

    The vectoriser uses the core's own analyser, so run-time features match training exactly.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    # a gram seen once is as likely noise as signal; with tiny packs keep them all
    vectorizer = TfidfVectorizer(
        analyzer=char_ngrams, min_df=2 if len(texts) >= 500 else 1, sublinear_tf=True
    )
    matrix = vectorizer.fit_transform(texts)
    model = LogisticRegression(C=3.0, max_iter=5000, class_weight="balanced")
    model.fit(matrix, y)
    order = [list(model.classes_).index(i) for i in range(n_labels)]
    return NgramModel(
        vocabulary={gram: int(i) for gram, i in vectorizer.vocabulary_.items()},
        idf=np.asarray(vectorizer.idf_, dtype=np.float32),
        weights=np.asarray(model.coef_[order], dtype=np.float32),
        bias=np.asarray(model.intercept_[order], dtype=np.float32),
    )


def _head_to_json(head: SentimentHead) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": head.model,
        "labels": [str(label) for label in head.labels],
        "weights": head.weights.tolist(),
        "bias": head.bias.tolist(),
        "ngram_share": head.ngram_share,
    }
    if head.ngrams is not None:
        grams = sorted(head.ngrams.vocabulary, key=head.ngrams.vocabulary.__getitem__)
        out["ngrams"] = {
            "grams": grams,
            "idf": head.ngrams.idf.tolist(),
            "weights": head.ngrams.weights.tolist(),
            "bias": head.ngrams.bias.tolist(),
        }
    return out


def _head_from_json(raw: dict[str, Any]) -> SentimentHead | None:
    """A cached head, or None when the file does not hold a sound one."""
    labels = tuple(SentimentLabel(label) for label in raw["labels"])
    weights = np.asarray(raw["weights"], dtype=np.float32)
    bias = np.asarray(raw["bias"], dtype=np.float32)
    if not (weights.shape[0] == bias.shape[0] == len(labels) and np.isfinite(weights).all()):
        return None
    ngrams = None
    if raw.get("ngrams"):
        part = raw["ngrams"]
        grams = [str(g) for g in part["grams"]]
        idf = np.asarray(part["idf"], dtype=np.float32)
        n_weights = np.asarray(part["weights"], dtype=np.float32)
        n_bias = np.asarray(part["bias"], dtype=np.float32)
        if n_weights.shape != (len(labels), len(grams)) or idf.shape != (len(grams),):
            return None
        if not (np.isfinite(n_weights).all() and np.isfinite(idf).all()):
            return None
        ngrams = NgramModel(
            vocabulary={g: i for i, g in enumerate(grams)}, idf=idf, weights=n_weights, bias=n_bias
        )
    return SentimentHead(
        model=str(raw["model"]),
        labels=labels,
        weights=weights,
        bias=bias,
        ngrams=ngrams,
        ngram_share=float(raw.get("ngram_share", 0.0)) if ngrams is not None else 0.0,
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
            head = _head_from_json(json.loads(cached.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            head = None  # a damaged cache is simply retrained
        if head is not None:
            return head
    head = train_sentiment_head(examples, config.sentiment, embedder)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps(_head_to_json(head)), encoding="utf-8")
        tmp.replace(cached)
    return head
