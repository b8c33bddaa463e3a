"""An attention encoder–decoder that writes the tag sequence one tag at a time.

Encoder: word embeddings (+ character features) → stacked BiLSTM. Decoder: an LSTM cell that, at
step t, reads the tag it emitted at t-1, the encoder state of token t and an attention summary of the
whole sentence (additive, Bahdanau et al. 2015, or multiplicative, Luong et al. 2015, scored against
its previous state), and optionally the encoder's max-pooled summary of the sentence at every step
("peeking", Cho et al. 2014). Tagging emits exactly one tag per token, so the alignment of step t to
token t is known; the decoder is given that state directly rather than left to find it by attention.

Training feeds the gold previous tag with probability ``teacher_forcing``; with ``sampling_decay``
= k > 0 that probability falls over training batches i as k / (k + exp(i / k)) (scheduled sampling,
Bengio et al. 2015), so the decoder learns to continue from its own mistakes. Decoding is greedy
(``beam = 1``) or a beam search, both under the IOB2 constraints the other taggers decode with.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from adelabel.data import Batch
from adelabel.models.base import Output, SentenceGate, SequenceLabeler, max_pool, run_packed
from adelabel.models.dropout import Dropout
from adelabel.models.recurrent import WordEncoder
from adelabel.models.relation import RelationHead


class Encoded(NamedTuple):
    states: torch.Tensor   # (batch, time, 2 * hidden) encoder states, zero on padding
    keys: torch.Tensor     # (batch, time, decoder) the states projected once for attention
    summary: torch.Tensor  # (batch, 2 * hidden) max-pooled states
    mask: torch.Tensor     # (batch, time)

    def repeat(self, k: int) -> "Encoded":
        return Encoded(*(t.repeat_interleave(k, dim=0) for t in self))


class Seq2SeqTagger(SequenceLabeler):
    # No defaults here: the config schema (adelabel/config.py) holds them, and build_model fills them in.
    # No crf option: the decoder writes the tag sequence itself.
    def __init__(self, tags: Sequence[str], vocab_size: int, char_vocab_size: int, embedding_dim: int, *,
                 hidden_size: int, layers: int, decoder_size: int, tag_dim: int, attention: str, peek: bool,
                 teacher_forcing: float, sampling_decay: float, beam: int, dropout: float,
                 freeze_embeddings: bool, chars: str, char_size: int, gate: bool, relations: bool) -> None:
        if attention not in ("additive", "multiplicative"):
            raise ValueError(f"attention must be additive or multiplicative, not {attention!r}")
        if beam < 1 or not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError("beam must be at least 1 and teacher_forcing between 0 and 1")
        states = 2 * hidden_size
        words = WordEncoder(vocab_size, embedding_dim, char_vocab_size, chars, char_size, freeze_embeddings)
        super().__init__(tags, gate=SentenceGate(words.out_dim, dropout) if gate else None,
                         relation=RelationHead(states, dropout) if relations else None)
        self.words = words
        self.dropout = Dropout(dropout)
        self.encoder = nn.LSTM(self.words.out_dim, hidden_size, num_layers=layers, bidirectional=True,
                               batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.additive = attention == "additive"
        self.keys = nn.Linear(states, decoder_size, bias=False)
        if self.additive:
            self.query = nn.Linear(decoder_size, decoder_size)
            self.energy = nn.Linear(decoder_size, 1, bias=False)
        self.start = len(tags)  # the "previous tag" of the first step
        self.tag_embedding = nn.Embedding(len(tags) + 1, tag_dim)
        self.init_state = nn.Linear(states, 2 * decoder_size)
        self.peek = peek
        self.decoder = nn.LSTMCell(tag_dim + 2 * states + (states if peek else 0), decoder_size)
        self.out = nn.Linear(decoder_size + 2 * states, len(tags))
        self.teacher_forcing, self.sampling_decay, self.beam = teacher_forcing, sampling_decay, beam
        # Training batches seen, for the sampling schedule: a buffer, so a resumed run goes on with it.
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    # The IOB2 rules as scores for "tag j after tag i", with a last row for the start of a sentence.
    def _allowed(self) -> torch.Tensor:
        return torch.cat([self.transition_constraints, self.start_constraints[None]])

    def _encode(self, batch: Batch, words: torch.Tensor | None = None) -> Encoded:
        """Encoder states of a batch; ``words``: its word features, when already computed."""
        words = self.words(batch) if words is None else words
        states = run_packed(self.encoder, self.dropout(words), batch.lengths)
        return Encoded(states, self.keys(states), max_pool(states, batch.mask), batch.mask)

    def _initial(self, enc: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = torch.tanh(self.init_state(enc.summary)).chunk(2, dim=-1)
        return h.contiguous(), c.contiguous()

    def _step(self, enc: Encoded, t: int, previous: torch.Tensor,
              state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Tag scores at step ``t`` given the previous tags and decoder state, and the next state."""
        h = state[0]
        if self.additive:
            energy = self.energy(torch.tanh(enc.keys + self.query(h)[:, None])).squeeze(-1)
        else:
            energy = torch.bmm(enc.keys, h[:, :, None]).squeeze(-1)
        weights = energy.masked_fill(~enc.mask, float("-inf")).softmax(dim=-1)
        context = torch.bmm(weights[:, None], enc.states).squeeze(1)
        aligned = enc.states[:, t]
        parts = [self.tag_embedding(previous), aligned, context] + ([enc.summary] if self.peek else [])
        state = self.decoder(self.dropout(torch.cat(parts, dim=-1)), state)
        scores = self.out(self.dropout(torch.cat([state[0], context, aligned], dim=-1)))
        return scores, state

    def teacher_forcing_ratio(self) -> float:
        if self.sampling_decay <= 0:
            return self.teacher_forcing
        k = self.sampling_decay
        return self.teacher_forcing * k / (k + math.exp(min(int(self.steps) / k, 700.0)))

    def forward(self, batch: Batch) -> Output:
        words = self.words(batch)
        enc = self._encode(batch, words)
        sentence = self.gate(words, batch) if self.gate is not None else None
        if self.training:
            if batch.tags is None:
                raise ValueError("training seq2seq needs the gold tags (teacher forcing)")
            return Output(self.teacher_forced(enc, batch.tags), sentence, states=enc.states)
        scores, tags = self.greedy(enc) if self.beam == 1 else self.beam_search(enc, self.beam)
        return Output(scores, sentence, tags, states=enc.states)

    def teacher_forced(self, enc: Encoded, gold: torch.Tensor, ratio: float | None = None) -> torch.Tensor:
        """Scores of every step, each step fed the gold previous tag with probability ``ratio`` (by
        default the scheduled one) and the decoder's own best guess otherwise."""
        if ratio is None:
            ratio = self.teacher_forcing_ratio()
            self.steps += 1
        gold = gold.clamp(min=0)  # padding's IGNORE becomes O; its scores never reach the loss
        batch, time = gold.shape
        allowed = self._allowed()
        previous = torch.full((batch,), self.start, dtype=torch.long, device=gold.device)
        state, out = self._initial(enc), []
        for t in range(time):
            scores, state = self._step(enc, t, previous, state)
            out.append(scores)
            if ratio < 1.0:
                # Its own guess as decoding would make it: the best tag the IOB2 rules allow.
                own = (scores.detach().float().log_softmax(-1) + allowed[previous]).argmax(dim=-1)
                previous = torch.where(torch.rand(batch, device=gold.device) < ratio, gold[:, t], own)
            else:
                previous = gold[:, t]
        return torch.stack(out, dim=1)

    def greedy(self, enc: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
        """Each step's scores and the best allowed tag at each step, fed to the next."""
        batch, time = enc.mask.shape
        allowed = self._allowed()
        previous = torch.full((batch,), self.start, dtype=torch.long, device=enc.mask.device)
        state, scores_out, tags_out = self._initial(enc), [], []
        for t in range(time):
            scores, state = self._step(enc, t, previous, state)
            choice = (scores.float().log_softmax(-1) + allowed[previous]).argmax(dim=-1)
            previous = choice.masked_fill(~enc.mask[:, t], 0)
            scores_out.append(scores)
            tags_out.append(previous)
        return torch.stack(scores_out, dim=1), torch.stack(tags_out, dim=1)

    def beam_search(self, enc: Encoded, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The best-scoring allowed tag sequence among ``width`` kept at every step, and the scores
        of each of its steps. A sentence past its end extends every beam with O at no cost, so
        padding never changes its result."""
        batch, time = enc.mask.shape
        n = len(self.start_constraints)
        device = enc.mask.device
        allowed = self._allowed()
        wide = enc.repeat(width)
        state = self._initial(wide)
        previous = torch.full((batch * width,), self.start, dtype=torch.long, device=device)
        # All beams start equal: only the first may expand at step 0, or the beam holds copies.
        total = torch.full((batch, width), float("-inf"), device=device)
        total[:, 0] = 0.0
        finished = torch.full((n,), float("-inf"), device=device)
        finished[0] = 0.0
        rows = torch.arange(batch, device=device)
        history: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for t in range(time):
            scores, state = self._step(wide, t, previous, state)
            step = (scores.float().log_softmax(-1) + allowed[previous]).view(batch, width, n)
            step = torch.where(enc.mask[:, t, None, None], step, finished)
            total, best = (total[:, :, None] + step).view(batch, -1).topk(width, dim=1)
            parent, tag = best // n, best % n
            history.append((scores.view(batch, width, n), parent, tag))
            flat = (parent + rows[:, None] * width).view(-1)
            state = (state[0][flat], state[1][flat])
            previous = tag.view(-1)
        tags = torch.zeros(batch, time, dtype=torch.long, device=device)
        step_scores = enc.states.new_zeros(batch, time, n)
        beam = torch.zeros(batch, dtype=torch.long, device=device)  # topk sorts: beam 0 is the best
        for t in range(time - 1, -1, -1):
            scores, parent, tag = history[t]
            tags[:, t] = tag[rows, beam]
            beam = parent[rows, beam]
            step_scores[:, t] = scores[rows, beam]
        return step_scores, tags

