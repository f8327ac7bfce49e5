"""Load and validate the intent taxonomy of a content pack (``knowledge/intents.yaml``).

The file's format is documented at its top. Every problem is reported as
``path: intent 'id': reason`` (all of them at once, in `IntentTaxonomyError.problems`), so a
knowledge manager can fix the file in one pass.

`load_intent_classifier` trains the classifier from the taxonomy at load time (a few seconds:
the examples are embedded in one batch). Agents' intent corrections from the feedback store go in
as ``extra_examples``; the taxonomy file never needs editing for them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from copilot.core.intents import (
    FLAG_LEVELS,
    RESOLUTION_PATTERNS,
    STAKE_LEVELS,
    ClassifierConfig,
    FlagRoutingRule,
    Intent,
    IntentClassifier,
    Layer,
    RoutingPolicy,
    Stakes,
    Taxonomy,
)
from copilot.core.protocols import Embedder

__all__ = [
    "INTENTS_EVAL_FILE",
    "INTENTS_FILE",
    "MIN_EXAMPLES",
    "IntentProblem",
    "IntentTaxonomyError",
    "load_intent_classifier",
    "load_taxonomy",
    "parse_taxonomy",
    "read_labelled_jsonl",
    "single_blas_thread",
]

_log = logging.getLogger(__name__)

INTENTS_FILE = "intents.yaml"
INTENTS_EVAL_FILE = "eval/intents_cs.jsonl"
#: Fewer examples than this cannot teach an intent; the sample pack has at least 12 each.
MIN_EXAMPLES = 3
OOS_LABEL = "oos"

_ID_RE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
_TOP_KEYS = frozenset({"version", "routing", "intents", "out_of_scope"})
_INTENT_KEYS = frozenset({"id", "name", "description", "layer", "stakes", "examples", "articles"})
_STAKES_KEYS = frozenset({"complexity", "emotional_intensity", "resolution_pattern"})
_ROUTING_KEYS = frozenset({"human_only_flags", "min_confidence_autonomous"})
_FLAG_KEYS = frozenset({"kind", "min_level"})
_LAYERS = tuple(str(layer) for layer in Layer)


@dataclass(frozen=True, slots=True)
class IntentProblem:
    """One thing wrong with the taxonomy; `intent_id` is None for file-level problems."""

    path: str
    intent_id: str | None
    reason: str

    def __str__(self) -> str:
        where = f"intent {self.intent_id!r}: " if self.intent_id else ""
        return f"{self.path}: {where}{self.reason}"


class IntentTaxonomyError(ValueError):
    """The taxonomy cannot be used; ``problems`` lists every reason found."""

    def __init__(self, problems: Iterable[IntentProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class _Invalid(Exception):
    """A problem inside one intent; caught per intent so the others are still checked."""


def _text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"{key} must be a non-empty string")
    return " ".join(value.split())


def _choice(value: object, key: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _Invalid(f"{key} is {value!r}; expected one of {', '.join(allowed)}")
    return value


def _unknown_keys(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise _Invalid(f"unknown key(s) {', '.join(unknown)} in {where}")


def _parse_intent(item: object) -> Intent:
    if not isinstance(item, Mapping):
        raise _Invalid("each intent must be a mapping with id, name, description, ...")
    _unknown_keys(item, _INTENT_KEYS, "the intent")
    intent_id = _text(item.get("id"), "id")
    if not _ID_RE.match(intent_id):
        raise _Invalid(f"id {intent_id!r} must be snake_case (a-z, 0-9, _), 2-64 characters")
    stakes = item.get("stakes")
    if not isinstance(stakes, Mapping):
        raise _Invalid(
            "stakes must be a mapping: {complexity, emotional_intensity, resolution_pattern}"
        )
    _unknown_keys(stakes, _STAKES_KEYS, "stakes")
    examples = item.get("examples")
    if not isinstance(examples, list):
        raise _Invalid("examples must be a list of utterances")
    texts = [_text(e, "each example") for e in examples]
    if len(texts) < MIN_EXAMPLES:
        raise _Invalid(f"has {len(texts)} example(s); at least {MIN_EXAMPLES} are needed")
    articles = item.get("articles", [])
    if not isinstance(articles, list) or not all(isinstance(a, str) and a for a in articles):
        raise _Invalid("articles must be a list of article ids")
    seen: set[str] = set()
    for text in texts:
        if text.lower() in seen:
            raise _Invalid(f"example {text!r} is listed twice")
        seen.add(text.lower())
    return Intent(
        id=intent_id,
        name=_text(item.get("name"), "name"),
        description=_text(item.get("description"), "description"),
        layer=Layer(_choice(item.get("layer"), "layer", _LAYERS)),
        stakes=Stakes(
            complexity=_choice(stakes.get("complexity"), "stakes.complexity", STAKE_LEVELS),
            emotional_intensity=_choice(
                stakes.get("emotional_intensity"), "stakes.emotional_intensity", STAKE_LEVELS
            ),
            resolution_pattern=_choice(
                stakes.get("resolution_pattern"), "stakes.resolution_pattern", RESOLUTION_PATTERNS
            ),
        ),
        examples=tuple(texts),
        articles=tuple(articles),
    )


def _parse_routing(data: object) -> RoutingPolicy:
    if data is None:
        return RoutingPolicy()
    if not isinstance(data, Mapping):
        raise _Invalid("routing must be a mapping")
    _unknown_keys(data, _ROUTING_KEYS, "routing")
    rules: list[FlagRoutingRule] = []
    raw_rules = data.get("human_only_flags", [])
    if not isinstance(raw_rules, list):
        raise _Invalid("routing.human_only_flags must be a list of {kind, min_level}")
    for raw in raw_rules:
        if isinstance(raw, str):
            raw = {"kind": raw}
        if not isinstance(raw, Mapping):
            raise _Invalid("each routing.human_only_flags entry must be {kind, min_level}")
        _unknown_keys(raw, _FLAG_KEYS, "routing.human_only_flags")
        kind = _text(raw.get("kind"), "routing.human_only_flags kind")
        level = _choice(raw.get("min_level", "low"), f"min_level of {kind}", FLAG_LEVELS)
        rules.append(FlagRoutingRule(kind=kind, min_level=level))
    threshold = data.get("min_confidence_autonomous", RoutingPolicy().min_confidence_autonomous)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 <= threshold <= 1
    ):
        raise _Invalid(f"routing.min_confidence_autonomous is {threshold!r}; expected 0..1")
    return RoutingPolicy(human_only_flags=tuple(rules), min_confidence_autonomous=float(threshold))


def parse_taxonomy(data: object, path: str = INTENTS_FILE) -> Taxonomy:
    """Validate parsed YAML and build the `Taxonomy`.

    Raises:
        IntentTaxonomyError: listing every problem, each naming `path` and the intent.
    """
    problems: list[IntentProblem] = []

    def problem(intent_id: str | None, reason: str) -> None:
        problems.append(IntentProblem(path, intent_id, reason))

    if not isinstance(data, Mapping):
        raise IntentTaxonomyError(
            [IntentProblem(path, None, "expected a mapping with an `intents:` list")]
        )
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        problem(None, f"unknown top-level key(s) {', '.join(unknown)}")
    routing = RoutingPolicy()
    try:
        routing = _parse_routing(data.get("routing"))
    except _Invalid as exc:
        problem(None, str(exc))
    raw_intents = data.get("intents")
    if not isinstance(raw_intents, list) or not raw_intents:
        problem(None, "`intents:` must be a non-empty list")
        raw_intents = []
    intents: list[Intent] = []
    owner: dict[str, str] = {}  # lower-cased example -> intent id
    for position, item in enumerate(raw_intents, start=1):
        raw_id = item.get("id") if isinstance(item, Mapping) else None
        label = str(raw_id) if raw_id else f"#{position}"
        try:
            intent = _parse_intent(item)
        except _Invalid as exc:
            problem(label, str(exc))
            continue
        if any(existing.id == intent.id for existing in intents):
            problem(intent.id, "duplicate id (each intent id must be unique)")
            continue
        for text in intent.examples:
            other = owner.get(text.lower())
            if other is not None:
                problem(intent.id, f"example {text!r} is also an example of {other!r}")
            owner[text.lower()] = intent.id
        intents.append(intent)
    if intents and len(intents) < 2:
        problem(None, "at least two intents are needed to train a classifier")
    raw_oos = data.get("out_of_scope", [])
    out_of_scope: list[str] = []
    if not isinstance(raw_oos, list):
        problem(None, "out_of_scope must be a list of utterances")
    else:
        for text in raw_oos:
            if not isinstance(text, str) or not text.strip():
                problem(None, f"out_of_scope entry {text!r} must be a non-empty string")
                continue
            clean = " ".join(text.split())
            if clean.lower() in owner:
                problem(None, f"out_of_scope {clean!r} is an example of {owner[clean.lower()]!r}")
            out_of_scope.append(clean)
    if problems:
        raise IntentTaxonomyError(problems)
    return Taxonomy(
        intents=tuple(intents), out_of_scope=tuple(out_of_scope), routing=routing, source=path
    )


def load_taxonomy(content_dir: Path) -> Taxonomy:
    """Read and validate ``intents.yaml`` from a content pack.

    Raises:
        IntentTaxonomyError: the file is missing, is not valid YAML, or has invalid intents.
    """
    path = Path(content_dir) / INTENTS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise IntentTaxonomyError(
            [IntentProblem(str(path), None, f"cannot read: {exc.strerror or exc}")]
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise IntentTaxonomyError(
            [IntentProblem(str(path), None, f"invalid YAML: {where}{reason}")]
        ) from exc
    return parse_taxonomy(data, str(path))


def read_labelled_jsonl(path: Path) -> list[tuple[str, str]]:
    """(text, label) pairs from JSON lines ``{"text", "label"}``; ``oos`` marks out of scope.

    Raises:
        ValueError: naming the file and line of the first bad record.
    """
    pairs: list[tuple[str, str]] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected an object with text and label")
        text, label = record.get("text"), record.get("label")
        if not isinstance(text, str) or not text.strip() or not isinstance(label, str) or not label:
            raise ValueError(f"{path}:{number}: text and label must be non-empty strings")
        pairs.append((text, label))
    return pairs


class single_blas_thread:
    """Limit BLAS to one thread while training.

    The classifier's matrices are small: on the 2-core target, with the embedder and the GUI
    busy, multi-threaded OpenBLAS spins and made a 10-shot Banking77 fit 30x slower
    (5 s against 0.17 s) than one thread.
    """

    def __init__(self) -> None:
        self._limiter: Any = None

    def __enter__(self) -> single_blas_thread:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # optional: without it training is only slower
            return self
        self._limiter = threadpool_limits(limits=1, user_api="blas")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._limiter is not None:
            self._limiter.restore_original_limits()


def load_intent_classifier(
    content_dir: Path,
    embedder: Embedder,
    extra_examples: Sequence[tuple[str, str]] = (),
    *,
    taxonomy: Taxonomy | None = None,
    config: ClassifierConfig | None = None,
) -> tuple[Taxonomy, IntentClassifier]:
    """Load the taxonomy and train the classifier from its examples (a few seconds).

    Args:
        content_dir: the content pack.
        embedder: embeds the examples now and each utterance given as text later.
        extra_examples: (text, intent id) pairs to learn as well, e.g. agents' intent
            corrections from the feedback store. Pairs naming an intent the taxonomy does not
            have (renamed or removed since) are skipped with a warning.
        taxonomy: an already loaded taxonomy (skips reading the file).
        config: classifier hyper-parameters.

    Raises:
        IntentTaxonomyError: the taxonomy is invalid.
    """
    tax = taxonomy or load_taxonomy(content_dir)
    known = set(tax.ids)
    extras = [(text, label) for text, label in extra_examples if label in known and text.strip()]
    skipped = len(extra_examples) - len(extras)
    if skipped:
        _log.warning("skipped %d extra intent example(s) for unknown intents", skipped)
    with single_blas_thread():
        classifier = IntentClassifier.train(
            tax.training_examples(),
            embedder,
            oos_examples=tax.out_of_scope,
            extra_examples=extras,
            config=config,
        )
    return tax, classifier
