"""The classic ADE tagger: word embeddings → BiLSTM → time-distributed dense layer → softmax per token,
with character features, a sentence summary, a CRF and the sentence gate as options."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from adelabel.data import Batch
from adelabel.models.base import Output, SequenceLabeler, max_pool
from adelabel.models.chars import CharCNN


class BiLSTMTagger(SequenceLabeler):
    def __init__(self, tags: Sequence[str], vocab_size: int, char_vocab_size: int, embedding_dim: int,
                 hidden_size: int = 200, layers: int = 1, dense_size: int = 100, dropout: float = 0.5,
                 freeze_embeddings: bool = False, char_filters: int = 0, crf: bool = False,
                 sentence_context: bool = False, gate: bool = False) -> None:
        super().__init__(tags, crf=crf, gate=gate, gate_input=2 * hidden_size)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.embedding.weight.requires_grad = not freeze_embeddings
        # char_filters = 0 is the classic word-only tagger.
        self.chars = CharCNN(char_vocab_size, filters=char_filters) if char_filters else None
        input_dim = embedding_dim + (char_filters if char_filters else 0)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(input_dim, hidden_size, num_layers=layers, bidirectional=True,
                            batch_first=True, dropout=dropout if layers > 1 else 0.0)
        # Whether a drug or symptom is an entity depends on whether its sentence reports an adverse
        # event at all; sentence_context hands the head a max-pooled summary of the whole sentence.
        self.sentence_context = sentence_context
        head_in = 2 * hidden_size * (2 if sentence_context else 1)
        # The "time-distributed dense" head: the same small MLP applied at every position.
        self.dense = nn.Sequential(nn.Linear(head_in, dense_size), nn.Tanh(), nn.Dropout(dropout),
                                   nn.Linear(dense_size, len(tags)))

    def forward(self, batch: Batch) -> Output:
        x = self.embedding(batch.words)
        if self.chars is not None:
            x = torch.cat([x, self.chars(batch.chars, batch.spellings)], dim=-1)
        x = self.dropout(x)
        # Packing keeps the backward direction from reading padding, so padding can't change a prediction.
        packed = pack_padded_sequence(x, batch.lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=batch.words.shape[1])
        pooled = max_pool(out, batch.mask) if self.sentence_context or self.gate is not None else None
        sentence = self.gate(self.dropout(pooled)).squeeze(-1) if self.gate is not None else None
        if self.sentence_context:
            out = torch.cat([out, pooled[:, None, :].expand_as(out)], dim=-1)
        return Output(self.dense(self.dropout(out)), sentence)


def build(tags: Sequence[str], vocab_size: int, char_vocab_size: int, embedding_dim: int,
          vectors: torch.Tensor | None = None, **hyper) -> BiLSTMTagger:
    model = BiLSTMTagger(tags, vocab_size, char_vocab_size, embedding_dim, **hyper)
    if vectors is not None:
        model.embedding.weight.data.copy_(vectors)
    return model
