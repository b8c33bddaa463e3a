"""The relation head: which drug a sentence relates to which effect (or dose).

A sentence naming several drugs and effects does not relate each drug to each effect: pairing them
all is wrong for 2.5% of the gold pairs of the ADE corpus even with every span right, and more
where a sentence lists drugs given for other reasons. The head scores each candidate (drug, other)
pair of a sentence from the encoder's token states: each span max-pooled, their product, the words
between them max-pooled, and their signed distance in buckets, through a small MLP. It is trained on
the corpus's DRUG-AE (and DRUG-DOSE) pairs over gold spans, and scores predicted spans when tagging.
"""
from __future__ import annotations

import torch
from torch import nn

from adelabel.models.dropout import Dropout
from adelabel.models.lookup import take

# Signed token distance from the drug to the other entity, in buckets that widen with distance.
_EDGES = torch.tensor([1, 2, 3, 4, 5, 8, 16, 32])
DISTANCE_BUCKETS = 2 * (len(_EDGES) + 1) + 1


def _bucket(distance: torch.Tensor) -> torch.Tensor:
    magnitude = torch.bucketize(distance.abs(), _EDGES.to(distance.device), right=True)
    return (len(_EDGES) + 1) + distance.sign() * magnitude


POOLED_VALUES = 1 << 24
"""Pairs are scored in groups that gather at most this many values (64 MiB in fp32) to pool: the words
between a drug and an effect may span a whole sentence, and a sentence naming dozens of each (a table,
a list of reactions) has thousands of pairs, so one gather for a batch's pairs could take gigabytes."""


def _pool(states: torch.Tensor, row: torch.Tensor, first: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Max over positions [first, end) of sentence ``row`` of ``states``, one range per pair; zeros
    where the range is empty."""
    time = states.shape[1]
    length = (end - first).clamp_min(0)
    # Only as many positions as the longest range: a drug or an effect spans a word or three, and
    # masking whole sentences for each of thousands of pairs was most of the head's time. A traced
    # export (ONNX) would freeze such a width, so it reads whole sentences.
    width = time if torch.jit.is_tracing() else max(int(length.max()), 1)
    offsets = torch.arange(width, device=states.device)
    inside = offsets[None, :] < length[:, None]
    positions = (first[:, None] + offsets[None, :]).clamp(0, time - 1)
    spans = take(states.reshape(-1, states.shape[-1]), row[:, None] * time + positions)
    pooled = spans.masked_fill(~inside[..., None], float("-inf")).max(dim=1).values
    return pooled.masked_fill(~inside.any(dim=1, keepdim=True), 0.0)


class RelationHead(nn.Module):
    def __init__(self, input_dim: int, dropout: float, size: int = 100, distance_dim: int = 16) -> None:
        super().__init__()
        self.distance = nn.Embedding(DISTANCE_BUCKETS, distance_dim)
        self.mlp = nn.Sequential(Dropout(dropout), nn.Linear(4 * input_dim + distance_dim, size), nn.Tanh(),
                                 Dropout(dropout), nn.Linear(size, 1))

    def forward(self, states: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """(batch, time, dim) token states and (pairs, 5) rows of (sentence, drug first, drug end,
        other first, other end) -> (pairs,) logits that the sentence relates the pair."""
        if pairs.shape[0] == 0:
            return states.new_zeros(0)
        step = max(1, POOLED_VALUES // (states.shape[1] * states.shape[2]))
        # Tagging only: a training batch's pairs are few, and scoring them in one go keeps its draws.
        if pairs.shape[0] > step and not torch.is_grad_enabled() and not torch.jit.is_tracing():
            return torch.cat([self(states, pairs[i:i + step]) for i in range(0, pairs.shape[0], step)])
        row, d0, d1, o0, o1 = pairs.unbind(1)
        drug, other = _pool(states, row, d0, d1), _pool(states, row, o0, o1)
        between = _pool(states, row, torch.minimum(d1, o1), torch.maximum(d0, o0))
        x = torch.cat([drug, other, drug * other, between, self.distance(_bucket(o0 - d0))], dim=-1)
        return self.mlp(x).squeeze(-1)
