"""Character-level word features: a CNN over each token's characters, max-pooled to one vector.

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
        self.conv = nn.Conv1d(char_dim, filters, kernel, padding=kernel // 2)
        self.out_dim = filters

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """(batch, time, chars) ids → (batch, time, filters)."""
        b, t, w = chars.shape
        flat = chars.reshape(b * t, w)
        x = self.conv(self.embedding(flat).transpose(1, 2))  # (b*t, filters, w)
        # Padding characters must not win the max: push them to -inf, then zero all-padding tokens.
        pad = (flat == 0)[:, None, :]
        x = x.masked_fill(pad, float("-inf")).max(dim=2).values
        x = x.masked_fill(torch.isinf(x), 0.0)
        return x.reshape(b, t, -1)
