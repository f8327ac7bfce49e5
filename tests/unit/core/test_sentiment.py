"""The sentiment head's character n-gram part and its decision rule."""

from __future__ import annotations

import pytest

from copilot.core.sentiment import SentimentConfig, SentimentLexicon

CONFIG = SentimentConfig(lexicon=SentimentLexicon(valence={"great": 3.1, "awful": -3.1}))


def test_char_ngrams_pad_words_and_drop_handles_and_links() -> None:
    from copilot.core.sentiment import char_ngrams

    grams = char_ngrams("@user Hi #Great http://x.y/z")
    assert " h" in grams and "hi " in grams and " hi " in grams
    assert " grea" in grams and "reat " in grams and "#" not in "".join(grams)
    assert not any("user" in g or "http" in g for g in grams)
    assert char_ngrams("") == []


def test_a_head_at_full_weight_decides_by_its_most_probable_label() -> None:
    import dataclasses

    import numpy as np

    from copilot.core.sentiment import (
        N_LEXICON_FEATURES,
        NgramModel,
        SentimentHead,
        SentimentLabel,
        score_turn,
    )

    labels = tuple(SentimentLabel)
    # the embedding part is indifferent; the n-gram part says "negative" for the gram " ok "
    ngrams = NgramModel(
        vocabulary={" ok ": 0},
        idf=np.ones(1, dtype=np.float32),
        weights=np.array([[5.0], [0.0], [0.0]], dtype=np.float32),
        bias=np.zeros(3, dtype=np.float32),
    )
    head = SentimentHead(
        model="m",
        labels=labels,
        weights=np.zeros((3, 2 + N_LEXICON_FEATURES), dtype=np.float32),
        bias=np.zeros(3, dtype=np.float32),
        ngrams=ngrams,
        ngram_share=0.5,
    )
    config = dataclasses.replace(CONFIG, head=head, head_weight=1.0)
    vector = np.array([1.0, 0.0], dtype=np.float32)
    scored = score_turn("ok", config, embedding=vector)
    assert scored.used_embedding and scored.label is SentimentLabel.NEGATIVE
    # an unknown gram leaves the n-gram part at its (flat) bias: no label is favoured
    probs = head.probabilities(vector, [0.0] * N_LEXICON_FEATURES, "fine")
    assert probs[SentimentLabel.NEGATIVE] == pytest.approx(1 / 3)
