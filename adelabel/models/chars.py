"""Character-level word features: a CNN over each word's characters, max-pooled to one vector.

It lets a tagger recognise a drug name its word vectors never saw by its shape and affixes
("-mycin", "-olol", capitals and digits).
"""
from __future__ import annotations

import torch
from torch import nn


class CharCNN(nn.Module):
    def __init__(self, char_vocab_size: int, char_dim: int = 30, filters: int = 50, kernel: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(char_vocab_size, char_dim, padding_idx=0)
        # The convolution is written as one linear map over each window of `kernel` characters: the
        # same function as nn.Conv1d, about a third faster on the CPU for these small sizes.
        self.kernel = kernel
        self.window = nn.Linear(kernel * char_dim, filters)
        self.out_dim = filters

    def forward(self, chars: torch.Tensor, spellings: torch.Tensor) -> torch.Tensor:
        """Character ids of distinct spellings (spellings, width) and each token's spelling row
        (batch, time) → features (batch, time, filters). Row 0 of ``chars`` is padding."""
        x = self.embedding(chars)
        half = self.kernel // 2
        x = nn.functional.pad(x, (0, 0, half, self.kernel - 1 - half))
        width = chars.shape[1]
        x = self.window(torch.cat([x[:, k:k + width] for k in range(self.kernel)], dim=-1))
        # Padding characters must not win the max: push them to -inf, then zero all-padding rows.
        x = x.masked_fill((chars == 0)[..., None], float("-inf")).max(dim=1).values
        x = x.masked_fill(torch.isinf(x), 0.0)
        # An embedding lookup rather than x[spellings]: its CPU backward sums in a fixed order, so a
        # seeded run repeats bit for bit (indexing's accumulate does not).
        return nn.functional.embedding(spellings, x)
