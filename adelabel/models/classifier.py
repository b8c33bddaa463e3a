"""Sentence classifiers: the same encoders as the taggers, their token states pooled into one vector
per sentence (or text), then a linear layer over the classes.

A classifier's probabilities are calibrated on dev by temperature scaling (one number that divides
the logits, fitted by likelihood; it changes no decision of a multi-class argmax), with two classes
together with a bias on the positive class (Platt scaling of the logit margin); a two-class decision
is a threshold on the positive class's probability, also chosen on dev. All are buffers saved with
the weights. The positive class is the rarer one in training (ADE in the ADE
corpus): the one a user searches for.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from adelabel.data import Batch
from adelabel.models.base import max_pool, run_packed
from adelabel.models.dropout import Dropout
from adelabel.models.recurrent import CELLS, WordEncoder


class Pool(nn.Module):
    """(batch, time, dim) states → (batch, dim): their maximum, their mean, or an attention-weighted
    sum (a learned score per state, softmaxed over the sentence)."""

    def __init__(self, kind: str, dim: int) -> None:
        super().__init__()
        if kind not in ("max", "mean", "attention"):
            raise ValueError(f"pooling must be max, mean or attention, not {kind!r}")
        self.kind = kind
        self.score = nn.Linear(dim, 1) if kind == "attention" else None

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            return max_pool(states, mask)
        if self.kind == "mean":
            return (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        weights = self.score(states).squeeze(-1).masked_fill(~mask, float("-inf")).softmax(-1)
        return (weights[..., None] * states).sum(1)


def calibrated(logits: torch.Tensor, temperature, bias, positive: int | None) -> torch.Tensor:
    """Logits divided by the temperature, the bias added to the positive class's (if there is one)."""
    scaled = logits / temperature
    if positive is None:
        return scaled
    return scaled + nn.functional.one_hot(torch.tensor(positive), logits.shape[-1]).to(scaled) * bias


class SentenceClassifier(nn.Module):
    """Base class: subclasses map a batch to (batch, classes) logits; loss, calibration and the
    decision come free."""

    task = "classify"

    def __init__(self, classes: Sequence[str], positive: str | None) -> None:
        super().__init__()
        self.classes = list(classes)
        self.positive = None if positive is None else self.classes.index(positive)
        # Buffers, not parameters: fitted on dev after every epoch (adelabel.classification), saved.
        self.register_buffer("temperature", torch.tensor(1.0))
        # Added to the positive class's scaled logit (two classes): the shift of the prior that
        # training on a sample of the negatives leaves, which a temperature alone cannot undo.
        self.register_buffer("bias", torch.tensor(0.0))
        self.register_buffer("threshold", torch.tensor(0.5))

    def forward(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def save_assets(self, directory: Path) -> None:
        """Files besides the weights the model needs to be rebuilt (the transformer's tokeniser)."""

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), batch.labels)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return calibrated(logits.float(), self.temperature, self.bias, self.positive).softmax(-1)

    def decide(self, probs: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        """Class ids: with two classes the positive one when its probability reaches the threshold
        (``threshold`` overrides the tuned one), else the most probable class."""
        if self.positive is None:
            return probs.argmax(-1)
        cut = float(self.threshold) if threshold is None else threshold
        return torch.where(probs[:, self.positive] >= cut, self.positive, 1 - self.positive)


class RecurrentClassifier(SentenceClassifier):
    # No defaults here: the config schema (adelabel/config.py) holds them.
    def __init__(self, classes: Sequence[str], positive: str | None, vocab_size: int, char_vocab_size: int,
                 embedding_dim: int, *, cell: str, bidirectional: bool, hidden_size: int, layers: int,
                 dropout: float, pooling: str, freeze_embeddings: bool, chars: str, char_size: int) -> None:
        super().__init__(classes, positive)
        self.words = WordEncoder(vocab_size, embedding_dim, char_vocab_size, chars, char_size, freeze_embeddings)
        self.dropout = Dropout(dropout)
        self.rnn = CELLS[cell](self.words.out_dim, hidden_size, num_layers=layers, bidirectional=bidirectional,
                               batch_first=True, dropout=dropout if layers > 1 else 0.0)
        states = hidden_size * (2 if bidirectional else 1)
        self.pool = Pool(pooling, states)
        self.out = nn.Linear(states, len(classes))

    def forward(self, batch: Batch) -> torch.Tensor:
        states = run_packed(self.rnn, self.dropout(self.words(batch)), batch.lengths)
        return self.out(self.dropout(self.pool(states, batch.mask)))


def build_transformer(classes: Sequence[str], positive: str | None, vocab_size: int = 0, char_vocab_size: int = 0,
                      embedding_dim: int = 0, vectors: torch.Tensor | None = None, **hyper) -> SentenceClassifier:
    from adelabel.models.transformer import EncoderReader, load_encoder

    class TransformerClassifier(EncoderReader, SentenceClassifier):
        def __init__(self, *, encoder: str, dropout: float, pooling: str, window: int, stride: int,
                     assets: Path | None = None) -> None:
            tokenizer, encoder_model = load_encoder(encoder, assets)
            SentenceClassifier.__init__(self, classes, positive)
            self._set_encoder(tokenizer, encoder_model, window, stride)
            hidden = encoder_model.config.hidden_size
            self.dropout = Dropout(dropout)
            self.pool = Pool(pooling, hidden)
            self.out = nn.Linear(hidden, len(classes))

        def forward(self, batch: Batch) -> torch.Tensor:
            return self.out(self.dropout(self.pool(self._token_states(batch), batch.mask)))

    return TransformerClassifier(**hyper)
