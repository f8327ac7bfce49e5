"""Quality metrics used by ``copilot eval``: pure functions over ids and labels."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass


def reciprocal_rank(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """1/rank of the first relevant id within the top `k`, else 0."""
    for rank, item in enumerate(ranked[:k], start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def hit_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1.0 when any relevant id is in the top `k` (Recall@k as the eval README defines it)."""
    return 1.0 if any(item in relevant for item in ranked[:k]) else 0.0


def retrieval_scores(
    rankings: Sequence[Sequence[str]], relevants: Sequence[Collection[str]]
) -> dict[str, float]:
    """MRR@10, P@1 and Recall@5 averaged over queries."""
    n = len(rankings)
    if n == 0:
        return {"mrr@10": 0.0, "p@1": 0.0, "recall@5": 0.0}
    pairs = list(zip(rankings, relevants, strict=True))
    return {
        "mrr@10": sum(reciprocal_rank(r, rel, 10) for r, rel in pairs) / n,
        "p@1": sum(hit_at(r, rel, 1) for r, rel in pairs) / n,
        "recall@5": sum(hit_at(r, rel, 5) for r, rel in pairs) / n,
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- ROUGE (Lin 2004), as the rouge-score package computes it without stemming ----------------

_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class RougeScore:
    """Precision, recall and F1 of one candidate against one reference."""

    precision: float
    recall: float
    f: float


def _prf(overlap: int, candidate_total: int, reference_total: int) -> RougeScore:
    precision = overlap / candidate_total if candidate_total else 0.0
    recall = overlap / reference_total if reference_total else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return RougeScore(precision, recall, f)


def rouge_tokens(text: str) -> list[str]:
    """Lower-case alphanumeric runs: "£38.00, Hub-3!" -> ["38", "00", "hub", "3"]."""
    return _ROUGE_TOKEN.findall(text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(candidate: str, reference: str, n: int = 1) -> RougeScore:
    """ROUGE-N: clipped n-gram overlap between `candidate` and `reference`."""
    cand = _ngrams(rouge_tokens(candidate), n)
    ref = _ngrams(rouge_tokens(reference), n)
    overlap = sum((cand & ref).values())
    return _prf(overlap, sum(cand.values()), sum(ref.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (O(len a * len b))."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> RougeScore:
    """ROUGE-L: longest common subsequence of the whole token sequences (not summary-level)."""
    cand = rouge_tokens(candidate)
    ref = rouge_tokens(reference)
    return _prf(lcs_length(cand, ref), len(cand), len(ref))


def rouge_scores(candidate: str, references: Sequence[str]) -> dict[str, float]:
    """ROUGE-1/2/L F of `candidate`, each the best over `references` (0.0 with none)."""
    best = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for reference in references:
        best["rouge1"] = max(best["rouge1"], rouge_n(candidate, reference, 1).f)
        best["rouge2"] = max(best["rouge2"], rouge_n(candidate, reference, 2).f)
        best["rougeL"] = max(best["rougeL"], rouge_l(candidate, reference).f)
    return best
