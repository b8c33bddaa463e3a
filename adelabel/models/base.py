"""What every architecture shares: the loss and decoding over per-token tag scores.

An architecture only maps a :class:`~adelabel.data.Batch` to tag scores (batch, time, tags); the
training loop, scorer, model format and tagger call :meth:`loss` and :meth:`decode` and never ask
which architecture they hold.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from adelabel.data import IGNORE, Batch
from adelabel.decode import iob2_constraints, viterbi
from adelabel.models.crf import CRF


class SequenceLabeler(nn.Module):
    """Base class: subclasses implement :meth:`forward`; softmax loss and IOB2-valid decoding come free."""

    def __init__(self, tags: Sequence[str], crf: bool = False) -> None:
        super().__init__()
        # crf = True replaces the per-token softmax by a CRF layer over the same scores.
        self.crf = CRF(tags) if crf else None
        start, trans = iob2_constraints(tags)
        # Buffers, not parameters: they move with .to(device) but are fixed rules, not learned.
        self.register_buffer("start_constraints", start, persistent=False)
        self.register_buffer("transition_constraints", trans, persistent=False)

    def forward(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean cross-entropy over real tokens; padding carries the IGNORE tag and is skipped."""
        if self.crf is not None:
            return self.crf.nll(scores, batch.tags, batch.mask)
        return nn.functional.cross_entropy(scores.flatten(0, 1), batch.tags.flatten(), ignore_index=IGNORE)

    def decode(self, scores: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Tag ids (batch, time) and each chosen tag's probability, 0 on padding."""
        if self.crf is not None:
            tags = self.crf.decode(scores, batch.mask)
            confidence = self.crf.marginals(scores, batch.mask).gather(-1, tags[..., None]).squeeze(-1)
            return tags, confidence.masked_fill(~batch.mask, 0.0)
        log_probs = scores.float().log_softmax(-1)
        tags = viterbi(log_probs, batch.mask, self.start_constraints, self.transition_constraints)
        confidence = log_probs.gather(-1, tags[..., None]).squeeze(-1).exp()
        return tags, confidence.masked_fill(~batch.mask, 0.0)
