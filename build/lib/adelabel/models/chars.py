"""Character-level word features: a CNN (max-pooled) or a BiLSTM (final states) over each word's
characters.

They let a tagger recognise a drug name its word vectors never saw by its shape and affixes
("-mycin", "-olol", capitals and digits). Both work on the distinct spellings of a batch (see
:class:`~adelabel.data.Batch`) and hand each token the features of its spelling.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


def _per_token(features: torch.Tensor, spellings: torch.Tensor) -> torch.Tensor:
    # An embedding lookup rather than features[spellings]: its CPU backward sums in a fixed order, so a
    # seeded run repeats bit for bit (indexing's accumulate does not).
    return nn.functional.embedding(spellings, features)


class CharCNN(nn.Module):
    def __init__(self, char_vocab_size: int, filters: int = 50, char_dim: int = 30, kernel: int = 3) -> None:
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
        return _per_token(x, spellings)


class CharLSTM(nn.Module):
    """The last state of a forward and of a backward LSTM over the characters, concatenated."""

    def __init__(self, char_vocab_size: int, size: int = 50, char_dim: int = 30) -> None:
        super().__init__()
        self.embedding = nn.Embedding(char_vocab_size, char_dim, padding_idx=0)
        self.lstm = nn.LSTM(char_dim, size // 2, batch_first=True, bidirectional=True)
        self.out_dim = 2 * (size // 2)

    def forward(self, chars: torch.Tensor, spellings: torch.Tensor) -> torch.Tensor:
        lengths = (chars != 0).sum(dim=1)
        # Packing needs a length of at least 1; the padding row's features are zeroed below.
        packed = pack_padded_sequence(self.embedding(chars), lengths.clamp(min=1).cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, (last, _) = self.lstm(packed)
        x = torch.cat([last[0], last[1]], dim=-1).masked_fill((lengths == 0)[:, None], 0.0)
        return _per_token(x, spellings)


def char_encoder(kind: str, char_vocab_size: int, size: int) -> nn.Module | None:
    """``"cnn"``, ``"lstm"`` or ``"none"`` (no character features: the classic word-only tagger)."""
    if kind == "none" or size == 0:
        return None
    if kind == "cnn":
        return CharCNN(char_vocab_size, size)
    if kind == "lstm":
        return CharLSTM(char_vocab_size, size)
    raise ValueError(f"chars must be cnn, lstm or none, not {kind!r}")
