"""Document-level train/dev/test splits: no abstract straddles two splits."""
from __future__ import annotations

import random
from collections.abc import Sequence

from adelabel.corpus import Sentence
from adelabel.errors import AdelabelError

SPLITS = ("train", "dev", "test")


FRACTIONS = (0.8, 0.1, 0.1)
"""Shares of the documents in train, dev and test."""


def split_by_document(sentences: Sequence[Sentence], seed: int) -> dict[str, list[Sentence]]:
    """Shuffle the documents with ``seed`` and cut them into train/dev/test by FRACTIONS.

    The documents are sorted before shuffling so the split depends only on the seed and the set of
    document IDs, not on file order.
    """
    docs = sorted({s.doc_id for s in sentences})
    if len(docs) < 3:
        raise AdelabelError(f"holds {len(docs)} document(s); splitting into train/dev/test needs at least 3")
    random.Random(seed).shuffle(docs)
    n_train = round(FRACTIONS[0] * len(docs))
    n_dev = max(1, round(FRACTIONS[1] * len(docs)))
    n_train = min(n_train, len(docs) - n_dev - 1)
    assignment = {d: "train" for d in docs[:n_train]}
    assignment.update({d: "dev" for d in docs[n_train:n_train + n_dev]})
    assignment.update({d: "test" for d in docs[n_train + n_dev:]})
    out: dict[str, list[Sentence]] = {name: [] for name in SPLITS}
    for s in sentences:
        out[assignment[s.doc_id]].append(s)
    return out
