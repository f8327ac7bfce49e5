"""Quality metrics used by ``copilot eval``: pure functions over ids and labels."""

from __future__ import annotations

from collections.abc import Collection, Sequence


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
