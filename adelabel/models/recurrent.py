"""Recurrent taggers: word embeddings (+ character features) → a stacked RNN, GRU or LSTM, one- or
two-directional → time-distributed dense head → per-token tag scores (softmax or CRF).

``bilstm`` with a softmax head and no character features is the classic ADE tagger; the options are
what we found to help it (see configs/bilstm.toml).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from adelabel.data import Batch
from adelabel.models.base import Output, SentenceGate, SequenceLabeler, run_packed
from adelabel.models.chars import char_encoder
from adelabel.models.dropout import Dropout
from adelabel.models.relation import RelationHead

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class WordEncoder(nn.Module):
    """Word embeddings, optionally with character features appended: what every recurrent model reads."""

    def __init__(self, vocab_size: int, embedding_dim: int, char_vocab_size: int, chars: str, char_size: int,
                 freeze_embeddings: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.embedding.weight.requires_grad = not freeze_embeddings
        self.chars = char_encoder(chars, char_vocab_size, char_size)
        self.out_dim = embedding_dim + (self.chars.out_dim if self.chars is not None else 0)

    def forward(self, batch: Batch) -> torch.Tensor:
        x = self.embedding(batch.words)
        if self.chars is not None:
            x = torch.cat([x, self.chars(batch.chars, batch.spellings)], dim=-1)
        return x


class RecurrentTagger(SequenceLabeler):
    # No defaults here: the config schema (adelabel/config.py) holds them, and build_model fills them in.
    def __init__(self, tags: Sequence[str], vocab_size: int, char_vocab_size: int, embedding_dim: int, *,
                 cell: str, bidirectional: bool, hidden_size: int, layers: int, dense_size: int, dropout: float,
                 freeze_embeddings: bool, chars: str, char_size: int, crf: bool, gate: bool, relations: bool,
                 gate_size: int) -> None:
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        states = hidden_size * (2 if bidirectional else 1)
        words = WordEncoder(vocab_size, embedding_dim, char_vocab_size, chars, char_size, freeze_embeddings)
        super().__init__(tags, crf=crf, gate=SentenceGate(words.out_dim, dropout, gate_size) if gate else None,
                         relation=RelationHead(states, dropout) if relations else None)
        self.words = words
        self.dropout = Dropout(dropout)
        # Dropout between stacked layers; torch applies it to the outputs of every layer but the last.
        self.rnn = CELLS[cell](self.words.out_dim, hidden_size, num_layers=layers, bidirectional=bidirectional,
                               batch_first=True, dropout=dropout if layers > 1 else 0.0)
        # The "time-distributed dense" head: the same small MLP applied at every position.
        self.dense = nn.Sequential(nn.Linear(states, dense_size), nn.Tanh(), Dropout(dropout),
                                   nn.Linear(dense_size, len(tags)))

    def forward(self, batch: Batch, gate: bool = True) -> Output:
        """``gate=False`` leaves the gate out (its logits come from :meth:`screen`)."""
        words = self.words(batch)
        sentence = self.gate(words, batch) if self.gate is not None and gate else None
        rows = self.tagged_rows(batch)
        if rows is None:
            out = run_packed(self.rnn, self.dropout(words), batch.lengths)
            return Output(self.dense(self.dropout(out)), sentence, states=out)
        # Training with a gate: the tagger runs on the sentences that hold entities only, whose tags
        # and pairs are all the loss reads of it; the others' scores and states stay zero.
        index = rows.nonzero().squeeze(1)
        size, time = words.shape[:2]
        if not len(index):
            states = words.new_zeros(size, time, self.rnn.hidden_size * (2 if self.rnn.bidirectional else 1))
            return Output(words.new_zeros(size, time, len(self.tags)), sentence, states=states)
        lengths = batch.lengths[index.cpu()]
        width = int(lengths.max())
        out = run_packed(self.rnn, self.dropout(words.index_select(0, index)[:, :width]), lengths)
        tagged = self.dense(self.dropout(out))

        def spread(part: torch.Tensor) -> torch.Tensor:
            # Zeros of the part's own dtype: under CUDA's autocast the head gives bf16 or fp16, and
            # index_copy there, unlike on a CPU, does not promote a mix of dtypes.
            whole = part.new_zeros(size, time, part.shape[-1])
            return whole.index_copy(0, index, nn.functional.pad(part, (0, 0, 0, time - width)))

        return Output(spread(tagged), sentence, states=spread(out))

    def screen(self, batch: Batch) -> torch.Tensor | None:
        # The gate has a BiLSTM of its own over the word features: on a sentence it closes (about 4 in
        # 5 of an abstract's), the tagger's BiLSTM, head, CRF and relation head need not run at all.
        return None if self.gate is None else self.gate(self.words(batch), batch)


def builder(model_class: type[nn.Module], **fixed):
    """The registry's ``build`` function for a model that reads words through a :class:`WordEncoder`, a
    tagger or a sentence classifier: ``fixed`` hyperparameters (a cell, a direction) are set, and word
    vectors copied in."""

    def build(vectors: torch.Tensor | None = None, **inputs) -> nn.Module:
        model = model_class(**inputs, **fixed)
        if vectors is not None:
            model.words.embedding.weight.data.copy_(vectors)
        return model

    return build
