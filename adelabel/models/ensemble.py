"""An ensemble of taggers trained on the same data folder (other seeds, other architectures): it
tags with the mean of its members' probabilities and is used wherever one tagger is.

Per token, each member's tag probabilities (the CRF's marginals, or the softmax) are averaged and the
best IOB2-valid sequence is decoded from the mean; a sentence's probability of reporting an event,
a pair's probability of being related and an entity's score are the means of the members' calibrated ones, and the gate's
threshold is the mean of theirs. Members must share the tags and the vocabulary (the same prepared
data gives the same vocabulary), so one encoding of the text serves them all.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from adelabel.data import Batch
from adelabel.models.base import Output, SequenceLabeler


def _marginals(model: SequenceLabeler, out: Output, mask: torch.Tensor) -> torch.Tensor:
    if model.crf is not None and out.tags is None:
        return model.crf.marginals(out.scores, mask)
    return out.scores.float().softmax(-1)


class Ensemble(SequenceLabeler):
    def __init__(self, members: Sequence[SequenceLabeler]) -> None:
        if len({tuple(m.tags) for m in members}) != 1:
            raise ValueError("an ensemble's members must share their tags")
        super().__init__(members[0].tags)
        self.members = nn.ModuleList(members)
        gated = [m for m in members if m.gate is not None]
        # A marker, not a module that runs: the gate decision comes from the members' probabilities.
        self.gate = nn.Identity() if len(gated) == len(members) else None
        if self.gate is not None:
            self.gate_threshold.fill_(sum(float(m.gate_threshold) for m in members) / len(members))
        self.relation = nn.Identity() if all(m.relation is not None for m in members) else None

    def forward(self, batch: Batch) -> Output:
        from adelabel.inference import platt

        outputs = tuple(m(batch) for m in self.members)
        probs = torch.stack([_marginals(m, o, batch.mask) for m, o in zip(self.members, outputs)]).mean(0)
        sentence = None
        if self.gate is not None:
            each = [platt(torch.sigmoid(o.sentence.float()), torch.stack([m.gate_scale, m.gate_shift]))
                    for m, o in zip(self.members, outputs)]
            sentence = torch.logit(torch.stack(each).mean(0).clamp(1e-7, 1 - 1e-7)).float()
        # Log probabilities: decoding's log-softmax leaves them as they are.
        return Output(probs.clamp_min(1e-12).log(), sentence, members=outputs)

    def entity_scores(self, out: Output, mask: torch.Tensor, tags: torch.Tensor, confidence, spans) -> list[float]:
        """The mean of the members' calibrated scores for each span, each member's from its own
        probabilities of the tags the ensemble decoded (its calibration was fitted on those): an
        ensemble of one model with itself scores as the model does."""
        each = []
        for m, o in zip(self.members, out.members):
            own = _marginals(m, o, mask).gather(-1, tags[..., None]).squeeze(-1).clamp(0.0, 1.0).cpu().tolist()
            each.append(torch.tensor(m.entity_scores(o, mask, tags, own, spans), dtype=torch.float64))
        return torch.stack(each).mean(0).tolist() if each else []

    def relate(self, out: Output, pairs: torch.Tensor) -> torch.Tensor:
        from adelabel.inference import platt

        if self.relation is None:
            return torch.ones(pairs.shape[0], device=pairs.device)
        each = [platt(m.relate(o, pairs), m.relation_calibration).float()
                for m, o in zip(self.members, out.members)]
        return torch.stack(each).mean(0)
