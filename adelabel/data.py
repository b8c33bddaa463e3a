"""Sentences → tensors: word ids, lengths, mask and tag ids, in batches bucketed by length."""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from adelabel.corpus import Sentence
from adelabel.tags import spans_to_tags, tags_to_spans
from adelabel.text import tokenize
from adelabel.vocab import Vocabs

IGNORE = -100
"""Tag id for padding positions; ``cross_entropy`` skips it, so padding never reaches the loss."""


@dataclass
class Example:
    """One tokenised sentence, ready for batching."""

    tokens: list[tuple[int, int]]
    pieces: list[str]    # the tokens' text, as written (for models with their own tokeniser)
    words: list[int]
    chars: list[tuple[int, ...]]  # each token's character ids
    tags: list[int] | None = None
    pairs: list[tuple[int, int, int, int]] = field(default_factory=list)
    """Candidate (drug, effect or dose) pairs as token ranges: drug first, drug end, other first, other end."""
    pair_gold: list[int] | None = None  # 1 where the corpus relates the pair
    label: int | None = None  # the sentence's class (a classifier's target)
    # A teacher's probabilities (adelabel/teacher.py), when training learns from one:
    soft_tags: torch.Tensor | None = None  # (tokens, tags) each token's tag probabilities
    soft_sentence: float | None = None      # that the sentence reports an event
    soft_pairs: list[float] | None = None   # that each of ``pairs`` is related


@dataclass
class Batch:
    """What every architecture takes: padded word and character ids, lengths, mask and (when training)
    tag ids."""

    words: torch.Tensor      # (batch, time) long, 0 = padding
    chars: torch.Tensor      # (distinct spellings + 1, longest word) character ids; row 0 is padding
    spellings: torch.Tensor  # (batch, time) long: each token's row in ``chars``, 0 on padding
    lengths: torch.Tensor    # (batch,) long, on the CPU as packing requires
    mask: torch.Tensor       # (batch, time) bool, True on real tokens
    pieces: list[list[str]]  # each sentence's tokens as written
    tags: torch.Tensor | None = None  # (batch, time) long, IGNORE on padding
    pairs: torch.Tensor | None = None  # (pairs, 5) long: row in the batch, then the example's token ranges
    pair_gold: torch.Tensor | None = None  # (pairs,) float, 1 for a related pair (when training)
    labels: torch.Tensor | None = None  # (batch,) long, each sentence's class (training a classifier)
    soft_tags: torch.Tensor | None = None      # (batch, time, tags) a teacher's tag probabilities, 0 on padding
    soft_sentence: torch.Tensor | None = None  # (batch,) a teacher's sentence probabilities
    soft_pairs: torch.Tensor | None = None     # (pairs,) a teacher's pair probabilities

    def to(self, device: torch.device) -> "Batch":
        """The batch on ``device``; to a GPU through pinned memory, so the copy does not wait on the host
        and overlaps the work already queued."""
        if device.type == "cuda":
            move = lambda t: None if t is None else t.pin_memory().to(device, non_blocking=True)  # noqa: E731
        else:
            move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Batch(move(self.words), move(self.chars), move(self.spellings), self.lengths, move(self.mask),
                     self.pieces, move(self.tags), move(self.pairs), move(self.pair_gold), move(self.labels),
                     move(self.soft_tags), move(self.soft_sentence), move(self.soft_pairs))


def encode(text: str, vocabs: Vocabs, tag_ids: dict[str, int] | None = None,
           tags: Sequence[str] | None = None, tokens: list[tuple[int, int]] | None = None) -> Example:
    tokens = tokenize(text) if tokens is None else tokens
    pieces = [text[s:e] for s, e in tokens]
    words, chars = vocabs.lookup(pieces)
    return Example(tokens, pieces, words, chars, None if tags is None else [tag_ids[t] for t in tags])


def collate(examples: Sequence[Example]) -> Batch:
    lengths = torch.tensor([len(e.words) for e in examples], dtype=torch.long)
    width = int(lengths.max()) if len(examples) else 0
    real = torch.arange(width)[None, :] < lengths[:, None]  # row-major, as the flat lists below run
    words = torch.zeros(len(examples), width, dtype=torch.long)
    words[real] = torch.tensor([w for e in examples for w in e.words], dtype=torch.long)
    # Each distinct spelling is stored once: "the", "of" and "," fill a batch, and the character
    # encoder costs as much per row as the recurrent layer does per token.
    distinct: dict[tuple[int, ...], int] = {}
    rows = [distinct.setdefault(c, len(distinct) + 1) for e in examples for c in e.chars]
    spelled = torch.tensor([0] + [len(c) for c in distinct], dtype=torch.long)  # row 0: padding
    chars = torch.zeros(len(spelled), max(int(spelled.max()), 1), dtype=torch.long)
    chars[torch.arange(chars.shape[1])[None, :] < spelled[:, None]] = torch.tensor(
        list(itertools.chain.from_iterable(distinct)), dtype=torch.long)
    spellings = torch.zeros(len(examples), width, dtype=torch.long)
    spellings[real] = torch.tensor(rows, dtype=torch.long)
    tags = None
    if all(e.tags is not None for e in examples):
        tags = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        tags[real] = torch.tensor([t for e in examples for t in e.tags], dtype=torch.long)
    mask = real
    pairs = torch.tensor([(i, *p) for i, e in enumerate(examples) for p in e.pairs], dtype=torch.long).reshape(-1, 5)
    gold = None
    if all(e.pair_gold is not None for e in examples):
        gold = torch.tensor([g for e in examples for g in e.pair_gold], dtype=torch.float)
    labels = None
    if examples and all(e.label is not None for e in examples):
        labels = torch.tensor([e.label for e in examples], dtype=torch.long)
    soft_tags = soft_sentence = soft_pairs = None
    if examples and all(e.soft_tags is not None for e in examples):
        soft_tags = torch.zeros(len(examples), width, examples[0].soft_tags.shape[1])
        for i, e in enumerate(examples):
            soft_tags[i, :len(e.words)] = e.soft_tags
        if all(e.soft_sentence is not None for e in examples):
            soft_sentence = torch.tensor([e.soft_sentence for e in examples], dtype=torch.float)
        if all(e.soft_pairs is not None for e in examples):
            soft_pairs = torch.tensor([p for e in examples for p in e.soft_pairs], dtype=torch.float)
    return Batch(words, chars, spellings, lengths, mask, [e.pieces for e in examples], tags, pairs, gold, labels,
                 soft_tags, soft_sentence, soft_pairs)


def bucketed(examples: Sequence[Example], batch_size: int, shuffle: bool = False,
             generator: torch.Generator | None = None) -> Iterator[tuple[list[int], Batch]]:
    """Batches of similar-length examples, with the indices of the examples each one holds.

    Sorting by length keeps padding to a few positions per batch; with ``shuffle`` the sort is made
    over a random permutation (so equal-length sentences mix) and the batch order is shuffled.
    Empty sentences (no tokens) are left out: there is nothing to tag in them.
    """
    order = list(range(len(examples)))
    if shuffle:
        order = torch.randperm(len(examples), generator=generator).tolist()
    order = [i for i in order if examples[i].words]
    order.sort(key=lambda i: len(examples[i].words))
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]
    for chunk in chunks:
        yield chunk, collate([examples[i] for i in chunk])


def token_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Entities of an IOB2 tag sequence as token ranges ``(first, end, label)``, end exclusive."""
    return tags_to_spans([(i, i + 1) for i in range(len(tags))], tags)


def candidate_pairs(spans: Sequence[tuple[int, int, str]]) -> list[tuple[int, int]]:
    """Every (drug, other) pair of a sentence's entities, as indices into ``spans``: what a relation
    scorer chooses from."""
    return [(d, o) for d, (_, _, dl) in enumerate(spans) if dl == "DRUG"
            for o, (_, _, ol) in enumerate(spans) if ol != "DRUG"]


def encode_labelled(sentences: Sequence[Sentence], vocab: Vocabs, classes: Sequence[str]) -> list[Example]:
    """Examples whose target is the sentence's class (:func:`~adelabel.corpus.sentence_class`)."""
    from adelabel.corpus import sentence_class

    ids = {c: i for i, c in enumerate(classes)}
    out = []
    for s in sentences:
        example = encode(s.text, vocab)
        example.label = ids[sentence_class(s)]
        out.append(example)
    return out


def encode_sentences(sentences: Sequence[Sentence], vocab: Vocabs, tags: Sequence[str]) -> list[Example]:
    """Gold-tagged examples, with every candidate pair of their gold entities and which are related."""
    ids = {t: i for i, t in enumerate(tags)}
    out = []
    for s in sentences:
        tokens = tokenize(s.text)
        tag_names = spans_to_tags(tokens, s.spans)[0]
        example = encode(s.text, vocab, ids, tag_names, tokens=tokens)
        # Token ranges of the gold spans, in the order of s.spans (which the relations index).
        # A token belongs to a span when they overlap, as in spans_to_tags (which tags it).
        covered = [[i for i, (a, b) in enumerate(tokens) if a < end and b > start] for start, end, _ in s.spans]
        # A span the tags cannot hold (on no token, or on a token another entity takes: two mentions in
        # one word) is no gold entity, so no pair of it is gold either: prepare says how many were lost.
        held = set(token_spans(tag_names))
        ranges = [(c[0], c[-1] + 1, label) if c and (c[0], c[-1] + 1, label) in held else None
                  for c, (_, _, label) in zip(covered, s.spans)]
        related = set(s.relations)
        pairs = [(d, o) for d, o in candidate_pairs([r or (0, 0, "") for r in ranges])
                 if ranges[d] is not None and ranges[o] is not None]
        example.pairs = [(*ranges[d][:2], *ranges[o][:2]) for d, o in pairs]
        example.pair_gold = [int((d, o) in related) for d, o in pairs]
        out.append(example)
    return out
