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

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "text": self.text, "spans": [list(s) for s in self.spans],
                "negative": self.negative}

    @classmethod
    def from_dict(cls, d: dict) -> "Sentence":
        return cls(text=d["text"], spans=[(int(s), int(e), str(lab)) for s, e, lab in d["spans"]],
                   doc_id=str(d.get("doc_id", "")), negative=bool(d.get("negative", False)))
