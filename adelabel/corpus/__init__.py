"""Corpus readers: every format becomes a list of :class:`Sentence` with character spans."""
from __future__ import annotations

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

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "text": self.text, "spans": [list(s) for s in self.spans],
                "negative": self.negative, "relations": [list(r) for r in self.relations]}

    @classmethod
    def from_dict(cls, d: dict) -> "Sentence":
        spans = [(int(s), int(e), str(lab)) for s, e, lab in d["spans"]]
        relations = [(int(a), int(b)) for a, b in d.get("relations", [])]
        if any(not (0 <= a < len(spans) and 0 <= b < len(spans)) for a, b in relations):
            raise ValueError("a relation names a span the sentence does not have")
        return cls(text=d["text"], spans=spans, doc_id=str(d.get("doc_id", "")),
                   negative=bool(d.get("negative", False)), relations=relations)
