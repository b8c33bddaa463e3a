"""BIO (IOB2) tags: the training encoding of character spans, and its exact inverse."""
from __future__ import annotations

from collections.abc import Sequence

from adelabel.corpus import Span

OUTSIDE = "O"


def tag_set(labels: Sequence[str]) -> list[str]:
    """All IOB2 tags for ``labels``, "O" first so that tag id 0 means outside."""
    return [OUTSIDE] + [f"{p}-{lab}" for lab in labels for p in ("B", "I")]


def spans_to_tags(tokens: Sequence[tuple[int, int]], spans: Sequence[Span]) -> tuple[list[str], int]:
    """IOB2 tags for ``tokens`` given non-overlapping character ``spans``.

    Returns the tags and how many span boundaries fell inside a token rather than between tokens;
    such a span is widened to the tokens it touches (the only lossy case of the encoding).
    """
    tags = [OUTSIDE] * len(tokens)
    misaligned = 0
    starts = [s for s, _ in tokens]
    ends = [e for _, e in tokens]
    for start, end, label in sorted(spans):
        inside = [i for i, (s, e) in enumerate(tokens) if s < end and e > start]
        if not inside:
            misaligned += 2
            continue
        misaligned += (start not in starts) + (end not in ends)
        tags[inside[0]] = f"B-{label}"
        for i in inside[1:]:
            tags[i] = f"I-{label}"
    return tags, misaligned


def tags_to_spans(tokens: Sequence[tuple[int, int]], tags: Sequence[str]) -> list[Span]:
    """Character spans of the entities in an IOB2 tag sequence.

    Follows seqeval's strict IOB2 reading, so the spans a tagger outputs are exactly the entities the
    scorer counts: an entity starts at ``B-X`` and continues over following ``I-X``; an ``I-X`` that does
    not continue an entity of type X starts no entity.
    """
    spans: list[Span] = []
    start = end = -1
    label = None
    for (s, e), tag in zip(tokens, tags):
        prefix, _, lab = tag.partition("-")
        if prefix == "I" and lab == label:
            end = e
            continue
        if label is not None:
            spans.append((start, end, label))
            label = None
        if prefix == "B":
            start, end, label = s, e, lab
    if label is not None:
        spans.append((start, end, label))
    return spans
