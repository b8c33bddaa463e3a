"""Viterbi decoding over per-token tag scores, with transition scores that forbid invalid IOB2."""
from __future__ import annotations

from collections.abc import Sequence

import torch

NOT_ALLOWED = -1e4


def iob2_constraints(tags: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and transition scores: 0 where IOB2 allows a step, a large negative number where not.

    ``I-X`` may only follow ``B-X`` or ``I-X``, and may not start a sentence. Decoding under these
    constraints means every predicted sequence is valid, so no predicted token is lost to the strict
    scorer or to span decoding.
    """
    k = len(tags)
    start = torch.zeros(k)
    trans = torch.zeros(k, k)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            start[j] = NOT_ALLOWED
            for i, prev in enumerate(tags):
                if prev[2:] != tag[2:] or prev == "O":
                    trans[i, j] = NOT_ALLOWED
    return start, trans


def viterbi(scores: torch.Tensor, mask: torch.Tensor, start: torch.Tensor,
            transitions: torch.Tensor) -> torch.Tensor:
    """Best tag path per sentence.

    ``scores`` is (batch, time, tags), ``mask`` (batch, time) with each sentence's real tokens first,
    ``transitions[i, j]`` the score of tag i followed by tag j. Returns (batch, time) tag ids, 0 on
    padding. The loop runs over positions, each step handling the whole batch at once.
    """
    batch, time, k = scores.shape
    if time == 0:
        return torch.zeros(batch, 0, dtype=torch.long, device=scores.device)
    best = start[None, :] + scores[:, 0]
    backpointers = []
    for t in range(1, time):
        # total[b, i, j]: best path ending in i at t-1, then j at t
        total = best[:, :, None] + transitions[None, :, :]
        step_best, step_arg = total.max(dim=1)
        step_best = step_best + scores[:, t]
        live = mask[:, t, None]
        best = torch.where(live, step_best, best)
        # Past a sentence's end the pointer keeps the current tag, so backtracking passes through.
        keep = torch.arange(k, device=scores.device).expand(batch, k)
        backpointers.append(torch.where(live, step_arg, keep))
    path = torch.empty(batch, time, dtype=torch.long, device=scores.device)
    path[:, -1] = best.argmax(dim=1)
    for t in range(time - 2, -1, -1):
        path[:, t] = backpointers[t].gather(1, path[:, t + 1, None]).squeeze(1)
    return path.masked_fill(~mask, 0)
