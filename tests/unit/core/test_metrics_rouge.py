"""ROUGE-1/2/L on examples small enough to count by hand."""

from __future__ import annotations

import pytest

from copilot.core.metrics import (
    RougeScore,
    lcs_length,
    rouge_l,
    rouge_n,
    rouge_scores,
    rouge_tokens,
)

CANDIDATE = "the cat sat on the mat"
REFERENCE = "the cat lay on the mat"


def test_tokens_are_lower_case_alphanumeric_runs() -> None:
    assert rouge_tokens("£38.00, Hub-3! KS-40211873") == ["38", "00", "hub", "3", "ks", "40211873"]
    assert rouge_tokens("  ... ") == []


def test_rouge_1_counts_shared_words() -> None:
    # the, the, cat, on, mat are shared: 5 of 6 on each side.
    assert rouge_n(CANDIDATE, REFERENCE, 1) == pytest.approx(RougeScore(5 / 6, 5 / 6, 5 / 6))


def test_rouge_2_counts_shared_bigrams() -> None:
    # the cat, on the, the mat are shared: 3 of 5 bigrams on each side.
    assert rouge_n(CANDIDATE, REFERENCE, 2) == pytest.approx(RougeScore(0.6, 0.6, 0.6))


def test_repeated_words_are_clipped_to_the_reference_count() -> None:
    score = rouge_n("the the the", "the cat", 1)
    assert score.precision == pytest.approx(1 / 3)
    assert score.recall == pytest.approx(1 / 2)
    assert score.f == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))  # 0.4


def test_rouge_l_uses_the_longest_common_subsequence() -> None:
    # Lin (2004)'s example: "police killed the gunman" vs "police kill the gunman" -> LCS 3.
    score = rouge_l("police kill the gunman", "police killed the gunman")
    assert score == pytest.approx(RougeScore(0.75, 0.75, 0.75))
    # Word order matters for L but not for 1: "the gunman kill police" keeps only 2 in order.
    reordered = rouge_l("the gunman kill police", "police killed the gunman")
    assert reordered.f == pytest.approx(0.5)
    assert rouge_n("the gunman kill police", "police killed the gunman", 1).f == pytest.approx(0.75)


def test_lcs_length() -> None:
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4  # the textbook example
    assert lcs_length(list("bdcaba"), list("abcbdab")) == 4
    assert lcs_length([], ["a"]) == 0


def test_empty_texts_score_zero() -> None:
    assert rouge_n("", REFERENCE, 1) == RougeScore(0.0, 0.0, 0.0)
    assert rouge_l(CANDIDATE, "") == RougeScore(0.0, 0.0, 0.0)
    assert rouge_n("a", "b c", 2) == RougeScore(0.0, 0.0, 0.0)  # no bigram in the candidate


def test_rouge_scores_takes_the_best_reference_for_each_metric() -> None:
    scores = rouge_scores(CANDIDATE, ["a dog barked", REFERENCE, "cat sat on the mat the"])
    assert scores["rouge1"] == pytest.approx(1.0)  # the third has the same words
    assert scores["rouge2"] == pytest.approx(0.8)  # cat sat, sat on, on the, the mat: 4 of 5
    assert scores["rougeL"] == pytest.approx(5 / 6)  # the second and the third both keep 5
    assert rouge_scores(CANDIDATE, []) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
