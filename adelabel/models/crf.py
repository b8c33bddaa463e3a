"""A linear-chain CRF output layer: learned tag-transition scores on top of per-token scores.

Written here rather than taken from pytorch-crf because it is short, and because it has to share the
IOB2 constraints and the Viterbi decoder with the softmax head: invalid transitions get a fixed large
negative score, so training never spends probability mass on them and decoding never emits them.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from adelabel.decode import iob2_constraints, viterbi
from adelabel.models.lookup import take


class CRF(nn.Module):
    def __init__(self, tags: Sequence[str]) -> None:
        super().__init__()
        k = len(tags)
        self.transitions = nn.Parameter(torch.zeros(k, k))
        self.start = nn.Parameter(torch.zeros(k))
        self.end = nn.Parameter(torch.zeros(k))
        start, trans = iob2_constraints(tags)
        self.register_buffer("start_constraints", start, persistent=False)
        self.register_buffer("transition_constraints", trans, persistent=False)

    def _params(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.start + self.start_constraints, self.transitions + self.transition_constraints

    def _forward_scores(self, scores: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Log-sum of all paths ending in each tag, at every position (the forward algorithm)."""
        start, trans = self._params()
        alpha = start[None, :] + scores[:, 0]
        alphas = [alpha]
        for t in range(1, scores.shape[1]):
            step = torch.logsumexp(alpha[:, :, None] + trans[None], dim=1) + scores[:, t]
            alpha = torch.where(mask[:, t, None], step, alpha)
            alphas.append(alpha)
        return alphas

    def log_partition(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._forward_scores(scores, mask)[-1] + self.end[None], dim=1)

    def gold_score(self, scores: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        start, trans = self._params()
        tags = tags.masked_fill(~mask, 0)
        emit = scores.gather(2, tags[..., None]).squeeze(-1).masked_fill(~mask, 0.0).sum(1)
        steps = take(trans.flatten(), tags[:, :-1] * trans.shape[1] + tags[:, 1:])
        steps = steps.masked_fill(~mask[:, 1:], 0.0).sum(1)
        last = tags.gather(1, (mask.sum(1) - 1).clamp(min=0)[:, None]).squeeze(1)
        return take(start, tags[:, 0]) + emit + steps + take(self.end, last)

    def nll(self, scores: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of the gold paths, per real token (the scale of a softmax loss)."""
        scores = scores.float()
        return (self.log_partition(scores, mask) - self.gold_score(scores, tags, mask)).sum() / mask.sum()

    def decode(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        start, trans = self._params()
        # Viterbi knows no end scores: fold them into the last real position's scores.
        scores = scores.float().clone()
        last = (mask.sum(1) - 1).clamp(min=0)
        rows = torch.arange(scores.shape[0], device=scores.device)
        scores[rows, last] += self.end
        return viterbi(scores, mask, start, trans)

    def marginals(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Probability of each tag at each position under the CRF (forward-backward)."""
        return self.log_marginals(scores, mask).exp()

    def log_marginals(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Log-probability of each tag at each position under the CRF (differentiable: a teacher's
        probabilities are learnt through it)."""
        scores = scores.float()
        start, trans = self._params()
        alphas = self._forward_scores(scores, mask)
        length = scores.shape[1]
        beta = self.end[None].expand(scores.shape[0], -1)
        betas = [beta]
        for t in range(length - 1, 0, -1):
            step = torch.logsumexp(trans[None] + (scores[:, t] + beta)[:, None, :], dim=2)
            beta = torch.where(mask[:, t, None], step, beta)
            betas.append(beta)
        betas.reverse()
        alpha = torch.stack(alphas, 1)
        beta = torch.stack(betas, 1)
        log_z = torch.logsumexp(alphas[-1] + self.end[None], dim=1)
        return alpha + beta - log_z[:, None, None]
