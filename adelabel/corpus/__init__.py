"""Corpus readers: every format becomes a list of :class:`Sentence` with character spans."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

Span = tuple[int, int, str]
"""``(start, end, label)`` in characters of the sentence text, end exclusive."""


@dataclass
class Sentence:
    """One sentence and its gold entity spans; the unit every later stage works on."""

    text: str
    spans: list[Span] = field(default_factory=list)
    doc_id: str = ""
    negative: bool = False
    """True for sentences the corpus lists as holding no adverse drug event (ADE-NEG)."""
    relations: list[tuple[int, int]] = field(default_factory=list)
    """(drug, effect or dose) pairs the sentence relates, as indices into ``spans``."""
    label: str = ""
    """The sentence's class in a labelled-text corpus; "" in the ADE corpus (see :func:`sentence_class`)."""

    def to_dict(self) -> dict:
        out = {"doc_id": self.doc_id, "text": self.text, "spans": [list(s) for s in self.spans],
               "negative": self.negative, "relations": [list(r) for r in self.relations]}
        if self.label:
            out["label"] = self.label
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Sentence":
        spans = [(int(s), int(e), str(lab)) for s, e, lab in d["spans"]]
        relations = [(int(a), int(b)) for a, b in d.get("relations", [])]
        if any(not (0 <= a < len(spans) and 0 <= b < len(spans)) for a, b in relations):
            raise ValueError("a relation names a span the sentence does not have")
        return cls(text=d["text"], spans=spans, doc_id=str(d.get("doc_id", "")),
                   negative=bool(d.get("negative", False)), relations=relations, label=str(d.get("label", "")))


ADE_CLASS, NEG_CLASS = "ADE", "NEG"


def sentence_class(sentence: Sentence) -> str:
    """What a sentence classifier learns a sentence to be: its label in a labelled-text corpus; in
    the ADE corpus, NEG for the ADE-NEG sentences and ADE for those that report an adverse event."""
    return sentence.label or (NEG_CLASS if sentence.negative else ADE_CLASS)


@dataclass
class EntityReport:
    """What a reader of entity annotations (CoNLL, brat) found: the counts both report."""

    path: str = ""
    documents: int = 0
    sentences: int = 0
    negative_sentences: int = 0
    entities: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def count(self, sentences: Sequence[Sentence]) -> None:
        self.sentences = len(sentences)
        self.negative_sentences = sum(s.negative for s in sentences)
        self.entities = Counter(label for s in sentences for *_, label in s.spans)

    def counts(self) -> list[str]:
        return [f"sentences: {self.sentences:,} ({self.negative_sentences:,} without entities)",
                "entities: " + (", ".join(f"{t} {n:,}" for t, n in sorted(self.entities.items())) or "none")]
