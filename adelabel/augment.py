"""Dose copies (``train.dose_copies``): training sentences written again with a dose after a drug.

Safety narratives give doses after drug names ("warfarin 5 mg daily caused bleeding") far more often
than the ADE corpus's adverse-event sentences do, so a tagger trained on the corpus alone reads a dose
as a sign that no event is reported: on the test split a dose after the drug took the probed
sentences the default tagger reports from 73% to 54-65% (``benchmarks/dose_probe.py``, README). A share of each class's
training sentences is copied with a dose phrase written after a drug, the gold spans moved past it:
the same share of the sentences with and without events, so that a dose tells nothing of the class.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

import regex

from adelabel.corpus import Sentence

_NUMBERS = ("0.25", "0.5", "1", "1.5", "2", "2.5", "3", "5", "10", "20", "25", "40", "50", "75", "100", "150",
            "200", "250", "300", "400", "500", "600", "800", "1000")
_UNITS = ("mg", "mg", "mg", "g", "mcg", "microg", "mg/kg", "mg/day", "mg/kg/day", "mg/m2", "IU", "units", "mg/d",
          "ml")
_FREQUENCIES = ("", "", "daily", "twice daily", "per day", "b.i.d.", "q.d.", "t.i.d.", "weekly", "i.v.", "orally",
                "p.o.", "a day", "intravenously", "once daily", "every 8 h")
_WORD = regex.compile(r"[^\W_][\w-]*")


def dose_phrase(rng: random.Random) -> str:
    """A dose as case reports write one: "300 mg daily", "2.5 mg/kg", now and then in brackets."""
    phrase = f"{rng.choice(_NUMBERS)} {rng.choice(_UNITS)}"
    frequency = rng.choice(_FREQUENCIES)
    phrase = f"{phrase} {frequency}" if frequency else phrase
    return f"({phrase})" if rng.random() < 0.15 else phrase


def _stands_alone(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is a word between spaces (not "clozapine" in "clozapine-induced")."""
    return text[end:end + 1] == " " and (start == 0 or text[start - 1] == " ")


def drug_end(sentence: Sentence, drugs: set[str]) -> int | None:
    """Where a dose can follow a drug: after the sentence's first annotated drug that stands as a word,
    else after the first word that names a drug of the training split (the ADE-NEG sentences annotate
    none)."""
    text = sentence.text
    for start, end, label in sorted(sentence.spans):
        if label == "DRUG" and _stands_alone(text, start, end):
            return end
    for m in _WORD.finditer(text):
        if m.group().lower() in drugs and _stands_alone(text, m.start(), m.end()):
            return m.end()
    return None


def with_phrase(sentence: Sentence, at: int, phrase: str, dose_label: str | None = None) -> Sentence:
    """``sentence`` with ``phrase`` written at character ``at`` (after a space), its spans moved past it.
    With ``dose_label`` (data prepared with doses), the phrase, its brackets aside, is a span of that
    type related to the annotated drug it follows, as the corpus annotates a dose: unlabelled, it
    taught the tagger that a dose is none."""
    shift = len(phrase) + 1
    spans = [(s + (shift if s >= at else 0), e + (shift if e > at else 0), label) for s, e, label in sentence.spans]
    copy = replace(sentence, text=f"{sentence.text[:at]} {phrase}{sentence.text[at:]}", spans=spans)
    drug = next((k for k, (_, e, label) in enumerate(sentence.spans) if label == "DRUG" and e == at), None)
    if dose_label is None or drug is None:
        return copy
    bracketed = phrase.startswith("(")
    dose = (at + 1 + bracketed, at + 1 + len(phrase) - bracketed, dose_label)
    order = sorted([*spans, dose])
    index = {span: order.index(span) for span in order}
    relations = [(index[spans[d]], index[spans[o]]) for d, o in sentence.relations] + [(index[spans[drug]], index[dose])]
    return replace(copy, spans=order, relations=relations)


def dose_copies(sentences: Sequence[Sentence], share: float, seed: int, dose_label: str | None = None) -> list[Sentence]:
    """Copies of ``share`` of the sentences with events and ``share`` of those without (as many as
    have a drug to write a dose after), each with a dose after its drug; the same ``seed`` draws the
    same copies. ``dose_label``: the data's dose type, which a dose after an annotated drug is given
    (:func:`with_phrase`); the ADE-NEG sentences annotate nothing, so their doses stay unlabelled."""
    if share <= 0:
        return []
    drugs = {s.text[a:b].lower() for s in sentences for a, b, label in s.spans if label == "DRUG"}
    if not drugs:  # no drug type: nothing to write a dose after
        return []
    rng = random.Random(seed)
    out = []
    for negative in (False, True):
        group = [s for s in sentences if s.negative == negative]
        places = [(s, at) for s in group if (at := drug_end(s, drugs)) is not None]
        chosen = rng.sample(places, min(len(places), round(share * len(group))))
        out += [with_phrase(s, at, dose_phrase(rng), dose_label) for s, at in chosen]
    return out
