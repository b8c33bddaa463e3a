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

from adelabel.models.base import run_recurrent


def _per_token(features: torch.Tensor, spellings: torch.Tensor) -> torch.Tensor:
    # An embedding lookup rather than features[spellings]: its CPU backward sums in a fixed order, so a
    # seeded run repeats bit for bit (indexing's accumulate does not).
    return nn.functional.embedding(spellings, features)


class CharCNN(nn.Module):
    def __init__(self, char_vocab_size: int, filters: int = 50, char_dim: int = 30, kernel: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(char_vocab_size, char_dim, padding_idx=0)
        # The convolution is one linear map over each window of `kernel` characters (the function of
        # nn.Conv1d), computed as a sum of table lookups: each window position's share of the map,
        # precomputed for every character of the vocabulary, about 1.8 times as fast on the CPU as
        # the map over the windows, which was itself a third faster than nn.Conv1d at these sizes.
        self.kernel = kernel
        self.window = nn.Linear(kernel * char_dim, filters)
        self.out_dim = filters

    def forward(self, chars: torch.Tensor, spellings: torch.Tensor) -> torch.Tensor:
        """Character ids of distinct spellings (spellings, width) and each token's spelling row
        (batch, time) → features (batch, time, filters). Row 0 of ``chars`` is padding."""
        half, width = self.kernel // 2, chars.shape[1]
        shares = self.window.weight.view(self.out_dim, self.kernel, -1)
        # The padding character's row stays zero and learns nothing, as nn.Embedding's padding_idx keeps it.
        embedding = torch.cat([self.embedding.weight.new_zeros(1, shares.shape[2]), self.embedding.weight[1:]])
        tables = torch.einsum("vc,fkc->kvf", embedding, shares)  # (kernel, characters, filters)
        # A window centred on padding must not win the max: its centre's share is -inf. (Padding
        # beside a character adds nothing: the padding character's embedding is zero.)
        centre = torch.cat([tables.new_full((1, self.out_dim), float("-inf")), tables[half, 1:]])
        padded = nn.functional.pad(chars, (half, self.kernel - 1 - half))
        x = self.window.bias + sum(
            nn.functional.embedding(padded[:, k:k + width], centre if k == half else tables[k])
            for k in range(self.kernel))
        x = x.max(dim=1).values
        x = x.masked_fill(torch.isinf(x), 0.0)  # the all-padding row
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
        _, (last, _) = run_recurrent(self.lstm, packed)
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
