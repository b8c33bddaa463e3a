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
        """The sentence :meth:`to_dict` wrote, checked: a ``ValueError`` says what in it is not so (a
        prepared file edited by hand would otherwise fail later, far from its line, or train on nonsense)."""
        if not isinstance(d, dict):
            raise ValueError("expected a JSON object")
        text, negative = d.get("text"), d.get("negative", False)
        doc_id, label = d.get("doc_id", ""), d.get("label", "")
        if not isinstance(text, str) or not text.strip():
            raise ValueError('"text": expected a string with a word in it')
        if not (isinstance(doc_id, str) and isinstance(label, str) and isinstance(negative, bool)):
            raise ValueError('"doc_id" and "label" are strings, "negative" true or false')
        spans = []
        for span in _list(d.get("spans"), "spans"):
            if not (isinstance(span, list) and len(span) == 3 and all(_whole(x) for x in span[:2])
                    and isinstance(span[2], str) and span[2].strip()):
                raise ValueError(f"spans: expected [start, end, type] each, found {span!r}")
            start, end, kind = span
            if not 0 <= start < end <= len(text):
                raise ValueError(f"span {span!r} is not within the text's {len(text)} characters, end after start")
            spans.append((start, end, kind))
        if negative and spans:
            raise ValueError("a negative sentence (no adverse event) with spans")
        # Tags hold one entity per token: prepare writes spans apart, and one crossing another would be
        # lost from the tags (and from the scores' support) without a word.
        ordered = sorted(spans)
        if clash := next(((a, b) for a, b in zip(ordered, ordered[1:]) if b[0] < a[1]), None):
            raise ValueError(f"spans {list(clash[0])!r} and {list(clash[1])!r} overlap (one tag per token: "
                             "prepare writes none that do)")
        relations = []
        for pair in _list(d.get("relations", []), "relations"):
            if not (isinstance(pair, list) and len(pair) == 2 and all(_whole(x) for x in pair)):
                raise ValueError(f"relations: expected [drug, other] span indices each, found {pair!r}")
            if not all(0 <= i < len(spans) for i in pair) or pair[0] == pair[1]:
                raise ValueError(f"relation {pair!r} names a span the sentence does not have, or one span twice")
            if not relates(spans[pair[0]][2], spans[pair[1]][2]):
                raise ValueError(f"relation {pair!r} goes from type {spans[pair[0]][2]!r} to type "
                                 f"{spans[pair[1]][2]!r}: relations go from a DRUG to another type")
            if (pair[0], pair[1]) in relations:
                raise ValueError(f"relation {pair!r} given twice")
            relations.append((pair[0], pair[1]))
        return cls(text=text, spans=spans, doc_id=doc_id, negative=negative, relations=relations, label=label)


def relates(first: str, second: str) -> bool:
    """Whether a relation may go from an entity of type ``first`` to one of ``second``: from a DRUG to
    another type, the pairs the relation head scores (adelabel/data.py, candidate_pairs)."""
    return first == "DRUG" and second != "DRUG"


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _list(value: object, key: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list")
    return value


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
