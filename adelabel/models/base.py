"""What every architecture shares: the output it returns, the loss, decoding and the sentence gate.

An architecture maps a :class:`~adelabel.data.Batch` to an :class:`Output`; the training loop, scorer,
model format and tagger call :meth:`SequenceLabeler.loss` and :meth:`SequenceLabeler.decode` and never
ask which architecture they hold.

The sentence gate. In the ADE corpus a drug or a symptom is an entity only in a sentence that reports
an adverse drug event; the same words in the ADE-NEG sentences (80% of an abstract) are not. Asking one
per-token tagger to learn both where the entities are and whether the sentence has any made it timid:
it missed a third of the entities of the sentences that do report an event. With ``gate = true`` the
work is split: the token scores are trained on the sentences that hold entities only, and a gate
(:class:`SentenceGate` for the recurrent models, :class:`PooledGate` for the transformer), trained on
every sentence, decides whether the tagged entities are output. Its threshold is tuned on the dev
split and saved with the weights.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from adelabel.data import IGNORE, Batch
from adelabel.decode import iob2_constraints, viterbi
from adelabel.models.crf import CRF
from adelabel.models.dropout import Dropout, apply_dropout
from adelabel.precision import recurrent_in_fp32


class Output(NamedTuple):
    """What every architecture's forward returns."""

    scores: torch.Tensor                  # (batch, time, tags) per-token tag scores
    sentence: torch.Tensor | None = None  # (batch,) gate logit that the sentence holds an entity
    tags: torch.Tensor | None = None      # (batch, time) the tags, from a model that decodes itself
    states: torch.Tensor | None = None    # (batch, time, dim) token states the relation head reads
    # An ensemble's members' own outputs, which its relate reads: carried here, not kept on the
    # module, so that threads sharing one ensemble do not read each other's.
    members: tuple["Output", ...] | None = None


class Decoded(NamedTuple):
    tags: torch.Tensor        # (batch, time) tag ids, 0 (O) on padding and in sentences the gate closed
    confidence: torch.Tensor  # (batch, time) probability of each tag the tagger chose, 0 on padding
    sentence: torch.Tensor    # (batch,) probability that the sentence holds an entity (1 without a gate)


def max_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over each sentence's real positions: (batch, time, dim) → (batch, dim)."""
    return states.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values


DENSE_FILL = 0.6


def run_recurrent(rnn: nn.RNNBase, packed: PackedSequence) -> tuple[PackedSequence, object]:
    """``rnn(packed)``, in fp32 under bf16 autocast. CUDA's autocast runs cuDNN's recurrent layers in
    fp16 whatever dtype it was given (torch registers a single cast for them, to fp16), and bf16 runs
    no loss scaling, under which fp16's small gradients flush to zero; a CPU's autocast leaves packed
    layers in fp32 already. Under fp16 autocast, whose gradients are scaled, cuDNN keeps its fp16."""
    device = packed.data.device.type
    if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16:
        with torch.autocast(device, enabled=False):
            return rnn(packed.float())
    return rnn(packed)


def run_packed(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``rnn`` over each sentence's real positions only (so the backward direction never reads
    padding, and padding can't change a prediction); padding positions come back as zeros.

    On a CPU each layer and direction runs on the dense padded batch, the backward direction on each
    sentence reversed within its length: the same arithmetic as a packed sequence, but through the
    fused dense kernel, about twice as fast per token as torch's packed path here; a batch whose
    real tokens fill less than DENSE_FILL of it goes the packed way. On a GPU cuDNN's packed kernel
    runs both directions at once.
    """
    dtype = x.dtype
    if rnn.weight_ih_l0.dtype == torch.bfloat16:  # lowered for bf16 tagging (adelabel.precision)
        x = x.to(torch.bfloat16)
    # The dense path computes padding too: it wins while padding is under about half the batch.
    if x.is_cuda or float(lengths.sum()) < DENSE_FILL * x.shape[0] * x.shape[1]:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = run_recurrent(rnn, packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0].to(dtype)
    batch, width = x.shape[0], x.shape[1]
    # Training steps keep their shapes (so a seed takes the steps it always took); an ONNX export is traced
    # without the padding, which serves torch's kernel cache only, not onnxruntime.
    if isinstance(rnn, nn.LSTM) and not rnn.training and not torch.jit.is_tracing():
        x, lengths = _padded_to_grid(x, lengths)
    time = torch.arange(x.shape[1])
    lengths = lengths.to(torch.long)
    real = time[None, :] < lengths[:, None]
    # Position t of sentence b read backwards: len_b - 1 - t; padding stays where it is.
    reverse = torch.where(real, lengths[:, None] - 1 - time[None, :], time[None, :])
    flip = lambda t: t.gather(1, reverse[..., None].expand_as(t))  # noqa: E731
    fp32 = recurrent_in_fp32(x)
    out = x.float() if fp32 else x
    with torch.autocast("cpu", enabled=False) if fp32 else nullcontext():
        for layer in range(rnn.num_layers):
            if layer > 0 and rnn.dropout > 0:
                out = apply_dropout(out, rnn.dropout, rnn.training)
            forward = _direction(rnn, layer, False)(out)[0]
            if rnn.bidirectional:
                forward = torch.cat([forward, flip(_direction(rnn, layer, True)(flip(out))[0])], dim=-1)
            out = forward
    return out.masked_fill(~real[..., None], 0.0)[:batch, :width].to(dtype)


def _padded_to_grid(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` padded with zeros to a batch of 1, 2 or a multiple of 4 sentences and a width on a coarse
    grid (a step of 2 positions up to 16, 4 up to 32, 8 up to 64, then 16), each added sentence of
    length 0.

    oneDNN builds and keeps (up to 1,024) a kernel for every shape an LSTM meets (torch runs GRU and
    RNN layers itself). Tagging texts one call at a time meets a new (sentences, width) nearly every
    call: a tagger serving calls grew from 358 to 458 MiB over 4,000 of them, and a first call of a
    shape costs its kernel's making. On the grid the shapes are a few dozen; the padding costs at
    most a step's positions and three rows, which the real positions never read (the backward
    direction runs within each sentence's length). One or two sentences, a call's commonest batch,
    keep their rows."""
    batch, width = x.shape[0], x.shape[1]
    step = 2 if width <= 16 else 4 if width <= 32 else 8 if width <= 64 else 16
    more_rows, more_steps = 0 if batch <= 2 else -batch % 4, -width % step
    if not (more_rows or more_steps):
        return x, lengths
    return (torch.nn.functional.pad(x, (0, 0, 0, more_steps, 0, more_rows)),
            torch.cat([lengths, lengths.new_zeros(more_rows)]))


def _direction(rnn: nn.RNNBase, layer: int, reverse: bool) -> nn.RNNBase:
    """One layer and direction of ``rnn`` as a one-layer, one-way module sharing its parameters
    (made once and kept on ``rnn``, outside its state dict)."""
    cache = rnn.__dict__.setdefault("_directions", {})
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    params = [getattr(rnn, name + suffix) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
              if hasattr(rnn, name + suffix)]
    one = cache.get(suffix)
    if one is None or any(a is not b for a, b in zip(one.parameters(), params)):
        extra = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
        with torch.device("meta"):  # no weights of its own to allocate: they are rnn's
            one = type(rnn)(int(params[0].shape[1]), rnn.hidden_size, batch_first=True, bias=rnn.bias, **extra)
        for name, param in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), params):
            setattr(one, name, param)
        cache[suffix] = one
    one.train(rnn.training)
    return one


def threshold_of(value) -> float:
    """A threshold (a float32 buffer, or a float) as the shortest decimal that is its float32 value: a
    gate tuned to 0.45 is stored as 0.449999988..., which reads as another number in a report, and
    rounding to a few places made 0.00004 a 0.0 and 0.996 a 1.00 (nothing positive)."""
    return float(np.format_float_positional(np.float32(float(value)), unique=True, trim="-"))


def threshold_text(value: float) -> str:
    """A threshold as printed: every digit it has, none it lacks ("0", "0.407", "0.123456789", "4e-05")."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def gate_passes(sentence, threshold: float):
    """Whether the gate lets a sentence's entities out (a probability or a tensor of them)."""
    return sentence >= threshold


class SentenceGate(nn.Module):
    """The logit that a sentence holds any entity: its own BiLSTM over the features the tagger reads,
    max-pooled over the sentence.

    The features come in detached, so the gate's loss, over three times as many sentences as the
    tagger's, never pulls on the tagger's weights and the tagger learns as if shown annotated
    sentences only. A gate on the tagger's own BiLSTM states cost ``bilstm`` 3 points of F1 on the
    annotated test sentences (0.807 against 0.837).
    """

    def __init__(self, input_dim: int, dropout: float, hidden_size: int = 100) -> None:
        """``hidden_size``: units per direction (``model.gate_size`` of the recurrent taggers)."""
        super().__init__()
        self.dropout = Dropout(dropout)
        self.rnn = nn.LSTM(input_dim, hidden_size, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden_size, 1)

    def forward(self, features: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(batch, time, input_dim) features of the real tokens → (batch,) logits."""
        states = run_packed(self.rnn, self.dropout(features.detach()), batch.lengths)
        return self.out(self.dropout(max_pool(states, batch.mask))).squeeze(-1)


class PooledGate(nn.Module):
    """The logit that a sentence holds any entity: a linear score over the max-pooled states of the
    tagger's own encoder, whose gradient flows back into that encoder.

    For the pretrained transformer, learning the sentence decision inside the encoder is worth more
    than keeping the tagger's training apart: with a :class:`SentenceGate` over its detached states
    it scored 0.710 over all test sentences instead of 0.745 (0.858 instead of 0.838 on the
    annotated ones), and 0.695 instead of 0.747 on dev.
    """

    def __init__(self, input_dim: int, dropout: float) -> None:
        super().__init__()
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(input_dim, 1)

    def forward(self, states: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.out(self.dropout(max_pool(states, batch.mask))).squeeze(-1)


def _holds(batch: Batch) -> torch.Tensor:
    """(batch,) whether each sentence of a training batch holds an entity."""
    return ((batch.tags > 0) & batch.mask).any(dim=1)


class SequenceLabeler(nn.Module):
    """Base class: subclasses implement :meth:`forward`; the loss, IOB2-valid decoding and the gate
    come free. A subclass given a gate returns :attr:`Output.sentence`, the gate's logit."""

    distil = 0.0
    """The weight of a teacher's probabilities in the loss (``train.distil``, set by the training loop
    when it has a teacher); not saved, since only training reads it."""

    def __init__(self, tags: Sequence[str], crf: bool = False, gate: nn.Module | None = None,
                 relation: nn.Module | None = None) -> None:
        """``gate``: a :class:`SentenceGate` or :class:`PooledGate`, or None for no gate; ``relation``:
        a :class:`~adelabel.models.relation.RelationHead` over the states ``forward`` returns, or None."""
        super().__init__()
        self.tags = list(tags)
        self.relation = relation
        # crf = True replaces the per-token softmax by a CRF layer over the same scores.
        self.crf = CRF(tags) if crf else None
        self.gate = gate
        # A buffer, not a parameter: saved with the weights, set by tuning on dev, never by gradients.
        self.register_buffer("gate_threshold", torch.tensor(0.5), persistent=self.gate is not None)
        # Platt scaling of the gate's logit, fitted on dev (adelabel.evaluate.tune_gate): the gate is
        # trained on a sample of the ADE-NEG sentences, so its raw probabilities run high.
        self.register_buffer("gate_scale", torch.tensor(1.0), persistent=self.gate is not None)
        self.register_buffer("gate_shift", torch.tensor(0.0), persistent=self.gate is not None)
        # Platt scaling of an entity's score (its tags' mean probability) and of a pair's relation
        # probability, fitted on dev against exact matches (adelabel.evaluate.calibrate_scores).
        self.register_buffer("entity_calibration", torch.tensor([1.0, 0.0]))
        self.register_buffer("relation_calibration", torch.tensor([1.0, 0.0]))
        start, trans = iob2_constraints(tags)
        # Buffers, not parameters: they move with .to(device) but are fixed rules, not learned.
        self.register_buffer("start_constraints", start, persistent=False)
        self.register_buffer("transition_constraints", trans, persistent=False)

    def forward(self, batch: Batch) -> Output:
        raise NotImplementedError

    def screen(self, batch: Batch) -> torch.Tensor | None:
        """The gate's (batch,) logits, computed without tagging the batch, for a model whose gate reads
        nothing of its tagger; None for any other. Inference then tags only the sentences the gate
        passes, through ``forward(batch, gate=False)``, which such a model must take."""
        return None

    def tagged_rows(self, batch: Batch) -> torch.Tensor | None:
        """The (batch,) rows of a training batch whose tags the loss reads, or None for all of them.

        With a gate and no teacher (or one at weight 0), the tags' loss and the relation head read only
        the sentences that hold entities, a third of an epoch's sample (the rest are ADE-NEG sentences
        the gate learns from): a model may skip tagging the others, as :class:`RecurrentTagger` does."""
        taught = batch.soft_tags is not None and self.distil > 0
        if not self.training or self.gate is None or batch.tags is None or taught:
            return None
        return _holds(batch)

    def save_assets(self, directory: Path) -> None:
        """Write what the model needs besides its weights to be rebuilt (a tokeniser); its builder
        is then given ``assets=directory``. Most models need nothing."""

    def loss(self, out: Output, batch: Batch) -> torch.Tensor:
        """Mean loss over real tokens (padding carries the IGNORE tag and is skipped), plus the gate's
        mean cross-entropy over sentences; with a gate, the tags' gold loss is over the sentences with
        entities only. A batch with a teacher's probabilities (adelabel/teacher.py) mixes, for each,
        ``(1 - distil)`` of the gold loss with ``distil`` of the cross-entropy with them."""
        scores, tags, mask = out.scores, batch.tags, batch.mask
        w = self.distil if batch.soft_tags is not None else 0.0
        total = scores.new_zeros(())
        if self.relation is not None and batch.pair_gold is not None and len(batch.pair_gold):
            logits = self.relation(out.states, batch.pairs)
            target = batch.pair_gold if batch.soft_pairs is None else (1 - w) * batch.pair_gold + w * batch.soft_pairs
            total = nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
        soft, taught_gate = batch.soft_tags, batch.soft_sentence
        if soft is not None and out.sentence is None and taught_gate is not None:
            # This model tags every sentence: the teacher's tags where its gate opens, O where it doesn't.
            opens = taught_gate[:, None, None]
            outside = nn.functional.one_hot(torch.zeros_like(tags), soft.shape[-1]).to(soft.dtype)
            soft = opens * soft + (1 - opens) * outside
        gold_rows = None
        if out.sentence is not None:
            holds = _holds(batch)
            target = holds.float() if w == 0 or taught_gate is None else (1 - w) * holds.float() + w * taught_gate
            total = total + nn.functional.binary_cross_entropy_with_logits(out.sentence.float(), target)
            gold_rows = holds
        gold = self._gold_tags_loss(scores, tags, mask, gold_rows)
        if w == 0:
            return total + gold
        # The teacher's tags are learnt on every sentence, ADE-NEG ones too. A gated teacher's tagger
        # never learnt those (its tags are trained on annotated sentences only), so there they pass
        # on what it generalises to, not what it memorised.
        log_probs = self.crf.log_marginals(scores, mask) if self.crf is not None else scores.float().log_softmax(-1)
        # A tag the student's IOB2 rules forbid there has a log-probability near -10,000: a teacher
        # without those rules (a softmax) must not blow the loss up over it.
        taught = -(soft * log_probs.clamp_min(-30.0)).sum(-1).masked_fill(~mask, 0.0).sum() / mask.sum()
        return total + (1 - w) * gold + w * taught

    def _gold_tags_loss(self, scores: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
                        rows: torch.Tensor | None) -> torch.Tensor:
        """The tags' loss against the gold labels, over ``rows`` of the batch (all when None)."""
        if rows is not None:
            if not rows.any():
                return scores.new_zeros((), dtype=torch.float)
            scores, tags, mask = scores[rows], tags[rows], mask[rows]
        if self.crf is not None:
            return self.crf.nll(scores, tags, mask)
        return nn.functional.cross_entropy(scores.flatten(0, 1), tags.flatten(), ignore_index=IGNORE)

    def relate(self, out: Output, pairs: torch.Tensor) -> torch.Tensor:
        """Probability that each candidate pair (rows as in :attr:`Batch.pairs`) is related; 1 for every
        pair of a model without a relation head (it pairs every drug with every effect)."""
        if self.relation is None:
            return torch.ones(pairs.shape[0], device=pairs.device)
        return torch.sigmoid(self.relation(out.states, pairs).float())

    def entity_scores(self, out: Output, mask: torch.Tensor, tags: torch.Tensor, confidence: Sequence[Sequence[float]],
                      spans: Sequence[Sequence[tuple[int, int, str]]]) -> list[float]:
        """Each span's calibrated score, row by row: its tokens' mean ``confidence`` (the decoded tags'
        probabilities, rows as in the batch) through the entity calibration."""
        from adelabel.inference import platt

        means = [sum(confidence[row][a:b]) / (b - a) for row, found in enumerate(spans) for a, b, _ in found]
        return platt(torch.tensor(means, dtype=torch.float64), self.entity_calibration).tolist()

    def sentence_probability(self, logits: torch.Tensor) -> torch.Tensor:
        """The gate's logits as calibrated probabilities that each sentence reports an event."""
        return torch.sigmoid(logits.float() * self.gate_scale + self.gate_shift)

    def decode(self, out: Output, batch: Batch, threshold: float | None = None) -> Decoded:
        """Best IOB2-valid tags, their probabilities and the gate's sentence probabilities.

        ``threshold`` overrides the model's tuned gate threshold; 0 tags every sentence. With a gate,
        a tag's probability is the one it has given that the sentence holds entities.
        """
        scores, mask = out.scores, batch.mask
        if out.tags is not None:
            tags = out.tags
            confidence = scores.float().softmax(-1).gather(-1, tags[..., None]).squeeze(-1)
        elif self.crf is not None:
            tags = self.crf.decode(scores, mask)
            confidence = self.crf.marginals(scores, mask).gather(-1, tags[..., None]).squeeze(-1)
        else:
            log_probs = scores.float().log_softmax(-1)
            tags = viterbi(log_probs, mask, self.start_constraints, self.transition_constraints)
            confidence = log_probs.gather(-1, tags[..., None]).squeeze(-1).exp()
        if out.sentence is None:
            sentence = torch.ones(scores.shape[0], device=scores.device)
        else:
            sentence = self.sentence_probability(out.sentence)
            passes = gate_passes(sentence, float(self.gate_threshold) if threshold is None else threshold)
            tags = tags.masked_fill(~passes[:, None], 0)
        # Marginals are computed in log space; rounding may carry one a hair past 1.
        return Decoded(tags, confidence.clamp(0.0, 1.0).masked_fill(~mask, 0.0), sentence)
