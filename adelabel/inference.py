"""The one inference path: texts -> sentences -> batches -> model outputs -> spans -> relations -> records.

``adelabel tag``, ``adelabel evaluate``, training's dev scoring and the Python :class:`~adelabel.Tagger`
all go through :func:`predict` (examples to tags, spans, pair scores and sentence probabilities) and,
for raw text, :func:`analyze` (text to sentences and back to offsets in the text), so the scores
describe exactly what users get.

Three scores, each its own and each calibrated on dev (Platt scaling): an entity's ``score`` is the
probability that it is exactly right given that its sentence reports an event (from its tags' mean
probability); a relation's ``score`` the probability that the sentence relates the pair (from the
relation head's); a sentence's ``ade`` the probability that it reports an adverse drug event (from the
gate's). A
sentence is reported when ``ade`` reaches the model's threshold and, for a model with a relation head,
the tagger finds a pair in it to relate (a drug and an effect or dose): every ADE sentence of the corpus
relates at least one (:func:`reports`). Only reported sentences carry entities and relations, and each
carries at least its best-scoring pair.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from adelabel.data import Example, bucketed, candidate_pairs, collate, encode, token_spans
from adelabel.models.base import SequenceLabeler, gate_passes
from adelabel.text import bullets_for_marks, outside_entities, split_sentences, tokenize, windows
from adelabel.vocab import Vocabs

MAX_TOKENS = 256
"""A sentence longer than this is tagged in pieces (adelabel.text.windows): the CRF's and Viterbi's
cost grows with length, and its probabilities lose precision over thousands of steps."""
RELATION_THRESHOLD = 0.5


def _malloc_trim():
    # Every batch allocates tensors of a new shape; glibc keeps the freed pieces in a fragmented heap,
    # and a long `adelabel tag` run grew by ~30 MB per 1,000 abstracts. Handing free pages back after
    # each chunk keeps memory bounded by one chunk; it costs about 15% of tagging speed (the pages are
    # faulted in again), which we pay for a process that can run over any file. Other C libraries
    # have no such call.
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


release_memory = _malloc_trim()


class Prediction(NamedTuple):
    tags: list[int]                          # one tag id per token
    confidence: list[float]                  # each tag's probability (given that the sentence reports an ADE)
    sentence: float                          # the gate's probability that the sentence reports an ADE (1 without)
    spans: list[tuple[int, int, str]]        # the decoded entities as token ranges (first, end, label)
    pairs: list[tuple[int, int, float]]      # every (drug, other) pair of ``spans``, its calibrated probability
    span_scores: list[float] = []            # each span's calibrated probability of being exactly right
    reported: bool = True                    # reported at the threshold predict ran with (see reports)


def pairs_decide(model: SequenceLabeler) -> bool:
    """Whether a sentence needs a pair to be reported: the model has a gate and a relation head, and
    its types hold DRUG and another to pair it with (other types, Chemical and Disease say, have no
    pairs, and their sentences are reported on the gate alone)."""
    return model.gate is not None and model.relation is not None and _pairs_types(tuple(model.tags))


@functools.lru_cache(maxsize=None)
def _pairs_types(tags: tuple[str, ...]) -> bool:
    types = {t[2:] for t in tags if t != "O"}
    return "DRUG" in types and len(types) > 1


@functools.lru_cache(maxsize=None)
def effect_types(tags: tuple[str, ...]) -> frozenset[str]:
    """The types a drug's pair must reach for a sentence to report an event: all but DRUG, and not DOSE
    beside an effect type (a drug and its dose alone report no adverse event)."""
    others = {t[2:] for t in tags if t != "O"} - {"DRUG"}
    return frozenset(others - {"DOSE"} or others)


def reports(model: SequenceLabeler, prediction: Prediction, threshold: float) -> bool:
    """Whether a sentence, predicted with the gate open, is reported at this gate threshold: its ``ade``
    reaches the threshold and, where :func:`pairs_decide`, it holds a pair to relate (a drug and an
    effect; a drug and a dose alone do not report an event, unless the model knows no effect type). Every ADE sentence of the corpus relates a drug to an effect; a sentence the gate
    passes without one was a false report more often than not (on the test split this rule took
    all-sentence entity F1 up by 0.3 to 0.7 points for each of three seeds, sentence F1 by 0.6 on
    average). Threshold 0 tags every sentence, pair or not, as with no gate."""
    if model.gate is None or threshold <= 0:
        return True
    if not gate_passes(prediction.sentence, threshold):
        return False
    if not pairs_decide(model):
        return True
    effects = effect_types(tuple(model.tags))
    return any(prediction.spans[o][2] in effects for _, o, _ in prediction.pairs)


def platt(probs: torch.Tensor, calibration: torch.Tensor) -> torch.Tensor:
    """Probabilities through a fitted Platt scaling ``[scale, shift]`` of their logits."""
    raw = torch.logit(probs.double().clamp(1e-7, 1 - 1e-7))
    return torch.sigmoid(raw * float(calibration[0]) + float(calibration[1]))


@torch.inference_mode()
def predict(model: SequenceLabeler, examples: Sequence[Example], batch_size: int, device: torch.device,
            threshold: float | None = None, progress: Callable[[int], None] | None = None) -> list[Prediction]:
    """Tags, entities, pair scores and sentence probabilities of each example, in input order.

    ``threshold`` overrides the model's gate threshold (0 tags every sentence); a sentence that is not
    reported (:func:`reports`) has no entities and no pairs. A model that can run its gate alone
    (:meth:`~adelabel.models.base.SequenceLabeler.screen`) tags only the sentences it passes: the
    others could report nothing whatever their tags."""
    model.eval()
    gate = float(model.gate_threshold) if threshold is None else threshold
    out = [Prediction([], [], 0.0, [], [], [], reported=False)] * len(examples)  # a sentence without tokens
    todo, logits = _screen(model, examples, batch_size, device, gate, out, progress)
    chosen = [examples[i] for i in todo]
    for picked, batch in bucketed(chosen, batch_size):
        indices = [todo[k] for k in picked]
        batch = batch.to(device)
        if logits is None:
            output = model(batch)
        else:
            output = model(batch, gate=False)._replace(sentence=torch.stack([logits[i] for i in indices]))
        decoded = model.decode(output, batch, threshold)
        tags, conf, sentence = (t.cpu().tolist() for t in decoded)
        for row, i in enumerate(indices):
            tags[row] = _tidied(tags[row][:len(examples[i].pieces)], examples[i], model.tags)
        spans = [token_spans([model.tags[t] for t in tags[row]]) for row in range(len(indices))]
        candidates = [candidate_pairs(s) for s in spans]
        rows = [(row, *spans[row][d][:2], *spans[row][o][:2]) for row, pairs in enumerate(candidates)
                for d, o in pairs]
        related = model.relate(output, torch.tensor(rows, dtype=torch.long, device=device).reshape(-1, 5)).cpu()
        probs = iter(platt(related, model.relation_calibration).tolist() if model.relation is not None
                     else related.tolist())
        scores = iter(model.entity_scores(output, batch.mask, decoded.tags, conf, spans))
        for row, i in enumerate(indices):
            n = len(examples[i].words)
            pairs = [(d, o, next(probs)) for d, o in candidates[row]]
            pred = Prediction(tags[row][:n], conf[row][:n], sentence[row], spans[row], pairs,
                              [next(scores) for _ in spans[row]])
            if not reports(model, pred, gate):
                pred = Prediction([0] * n, conf[row][:n], sentence[row], [], [], [], reported=False)
            out[i] = pred
        if progress is not None:
            progress(len(indices))
    return out


def _tidied(tags: list[int], example: Example, names: Sequence[str]) -> list[int]:
    """A sentence's decoded ``tags`` under the rules the corpus's entities keep and a model may not:
    no symbol inside an entity, no punctuation at its ends, no number cut in two."""
    tags = _bare_edges(_symbols_outside(tags, example.pieces, names), example.tokens, example.pieces, names)
    return _whole_numbers(tags, example.tokens, example.pieces, names)


_PARTNERS = {")": "(", "]": "[", "}": "{", "(": ")", "[": "]", "{": "}", '"': '"', "\u201c": "\u201d",
             "\u201d": "\u201c", "\u00ab": "\u00bb", "\u00bb": "\u00ab"}


def _bare_edges(tags: list[int], tokens: Sequence[tuple[int, int]], texts: Sequence[str],
                names: Sequence[str]) -> list[int]:
    """``tags`` with each entity's first and last tokens holding a letter or a digit: a token of
    punctuation or symbols at either end is tagged O. Stay: a bracket or quote whose partner is inside
    the entity, a point or comma that begins a number (".5 mg"), and a percent or plus sign written
    onto the token before it ("0.1%", "Na+"). Of the corpus's 9,892 DRUG, AE and DOSE mentions 4
    begin or end otherwise, while a model runs an entity on over marks it has seldom seen:
    "azithromycin‐" with a Unicode hyphen, "“rash”", "rash →"."""
    if not any(tags):
        return tags

    def touching(a: int, b: int) -> bool:
        return tokens[a][1] == tokens[b][0]

    def bare(k: int, inside: range) -> bool:
        if any(c.isalnum() for c in texts[k]):
            return False
        if k == inside.start and texts[k] in ".," and k + 1 < inside.stop and touching(k, k + 1) \
                and texts[k + 1][0].isdigit():
            return False
        if k == inside.stop - 1 and texts[k] in "%+" and k > inside.start and touching(k - 1, k):
            return False
        partner = _PARTNERS.get(texts[k])
        return partner is None or not any(partner in texts[j] for j in inside if j != k)

    out = list(tags)
    for a, b, label in token_spans([names[t] for t in tags]):
        start, end = a, b
        while start < end and bare(start, range(start, end)):
            start += 1
        while end > start and bare(end - 1, range(start, end)):
            end -= 1
        if (start, end) != (a, b):
            out[a:b] = [0] * (b - a)
            if end > start:
                out[start:end] = [names.index(f"B-{label}")] + [names.index(f"I-{label}")] * (end - start - 1)
    return out


def _symbols_outside(tags: list[int], texts: Sequence[str], names: Sequence[str]) -> list[int]:
    """``tags`` with each token :func:`~adelabel.text.outside_entities` holds tagged O, and an entity
    the model ran on past it begun again after it (I-X there becomes B-X), so the tags stay valid IOB2:
    "★ fever" keeps its effect."""
    out, forced = list(tags), None
    for k, t in enumerate(tags):
        if t and outside_entities(texts[k]):
            out[k], forced = 0, names[t][2:]
            continue
        if forced is not None and names[t] == f"I-{forced}":
            out[k] = names.index(f"B-{forced}")
        forced = None
    return out


def _in_number(k: int, tokens: Sequence[tuple[int, int]], texts: Sequence[str]) -> bool:
    """Whether tokens ``k - 1`` and ``k`` are parts of one number written without spaces: the
    tokeniser cuts "0.25" into 0 . 25 and "1,000" into 1 , 000."""
    def joined(a: int) -> bool:  # tokens a and a + 1 touch
        return 0 <= a and a + 1 < len(tokens) and tokens[a][1] == tokens[a + 1][0]

    if not joined(k - 1):
        return False
    if texts[k] in ".," and joined(k):
        return texts[k - 1][-1].isdigit() and texts[k + 1][0].isdigit()
    return texts[k - 1] in ".," and joined(k - 2) and texts[k - 2][-1].isdigit() and texts[k][0].isdigit()


def _whole_numbers(tags: list[int], tokens: Sequence[tuple[int, int]], texts: Sequence[str],
                   names: Sequence[str]) -> list[int]:
    """``tags`` with each entity that begins or ends inside a number widened over the number's other
    parts (where they are tagged O): a dose cut to "25 mg/day" from "0.25 mg/day", or to "000 mg" from
    "1,000 mg", states another dose, where the whole number is what the text says."""
    if not any(tags) or not any(t in ".," for t in texts):
        return tags
    out = list(tags)
    for a, b, label in token_spans([names[t] for t in tags]):
        start, end = a, b
        while start > 0 and out[start - 1] == 0 and _in_number(start, tokens, texts):
            start -= 1
        while end < len(out) and out[end] == 0 and _in_number(end, tokens, texts):
            end += 1
        if (start, end) != (a, b):
            out[start:end] = [names.index(f"B-{label}")] + [names.index(f"I-{label}")] * (end - start - 1)
    return out


def _screen(model: SequenceLabeler, examples: Sequence[Example], batch_size: int, device: torch.device,
            gate: float, out: list[Prediction], progress: Callable[[int], None] | None
            ) -> tuple[list[int], dict[int, torch.Tensor] | None]:
    """The examples left to tag, and the gate logits of those, from the gate run alone; the sentences
    it closes get their predictions in ``out`` here. Every example with its logits None when the gate
    is open (threshold 0) or the model can't run it alone."""
    everything = [i for i, e in enumerate(examples) if e.words]
    if gate <= 0 or model.gate is None:
        return everything, None
    todo: list[int] = []
    logits: dict[int, torch.Tensor] = {}
    for indices, batch in bucketed(examples, batch_size):
        screened = model.screen(batch.to(device))
        if screened is None:
            return everything, None
        sentence = model.sentence_probability(screened)
        passes = gate_passes(sentence, gate).tolist()
        for row, (i, p) in enumerate(zip(indices, sentence.tolist())):
            if passes[row]:
                todo.append(i)
                logits[i] = screened[row]
            else:
                n = len(examples[i].words)
                out[i] = Prediction([0] * n, [0.0] * n, p, [], [], [], reported=False)
        if progress is not None:
            progress(len(indices) - sum(passes))
    return sorted(todo), logits


MAX_TEXT_TOKENS = 20_000
"""A text a classifier reads at once, at most (about 400 MiB at its peak for the default classifier): a
longer one is read in nearly equal parts of at most this many tokens, one at a time, and its logits are
their mean weighted by length."""


def _parts(example: Example) -> list[Example]:
    n = len(example.words)
    step = -(-n // -(-n // MAX_TEXT_TOKENS))  # nearly equal parts: no short last one outweighing its size
    return [Example(example.tokens[a:a + step], example.pieces[a:a + step], example.words[a:a + step],
                    example.chars[a:a + step]) for a in range(0, n, step)]


@torch.inference_mode()
def classify(model, examples: Sequence[Example], batch_size: int, device: torch.device) -> list[list[float] | None]:
    """A sentence classifier's calibrated class probabilities for each example, in input order (None
    for an example without tokens: there is nothing to classify). Training's dev scores, ``evaluate``
    and ``tag`` all read texts here, so a text longer than MAX_TEXT_TOKENS is read in parts by all."""
    model.eval()
    out: list[list[float] | None] = [None] * len(examples)
    whole = [i for i, e in enumerate(examples) if len(e.words) <= MAX_TEXT_TOKENS]
    for indices, batch in bucketed([examples[i] for i in whole], batch_size):
        probs = model.probabilities(model(batch.to(device))).cpu().tolist()
        for row, k in enumerate(indices):
            out[whole[k]] = probs[row]
    for i, example in enumerate(examples):
        if len(example.words) > MAX_TEXT_TOKENS:
            # The parts' logits, averaged by length, go through the calibration once, as a whole text's do
            # (the calibration was fitted on such averages: the model's output is its logits).
            logits = [model(collate([p]).to(device))[0].double() * len(p.words) for p in _parts(example)]
            mean = torch.stack(logits).sum(0) / len(example.words)
            out[i] = model.probabilities(mean[None].float())[0].cpu().tolist()
    return out


@dataclass
class Classification:
    """A text's class: ``label`` (None for a text without a word) and every class's probability."""

    text: str
    label: str | None
    scores: dict[str, float]

    def to_dict(self) -> dict:
        return {"text": self.text, "label": self.label, "scores": self.scores}


def classify_texts(model, vocabs: Vocabs, texts: Sequence[str], device: torch.device,
                   threshold: float | None = None, batch_size: int = 128) -> list[Classification]:
    """Each text classified whole, as :func:`classify` reads every text (a line of ``adelabel tag``
    input is one text, however many sentences it holds); ``threshold`` overrides a two-class model's
    tuned one."""
    out = []
    for text, p in zip(texts, classify(model, [encode(t, vocabs) for t in texts], batch_size, device)):
        if p is None:
            out.append(Classification(text, None, {}))
            continue
        label = model.classes[int(model.decide(torch.tensor([p]), threshold)[0])]
        out.append(Classification(text, label, {c: round(v, 4) for c, v in zip(model.classes, p)}))
    release_memory()
    return out


def reported_pairs(prediction: Prediction, effects: frozenset[str] = frozenset()) -> list[tuple[int, int, float]]:
    """The pairs a sentence reports: those the head scores at least 0.5, else the best one, a drug and
    an effect where there is one (``effects``: :func:`effect_types`), since that pair reported it."""
    pairs = prediction.pairs
    chosen = [p for p in pairs if p[2] >= RELATION_THRESHOLD]
    effect = [p for p in pairs if prediction.spans[p[1]][2] in effects]
    if effect and not any(p in effect for p in chosen):
        # A drug-dose pair scored high does not stand in for the effect that reported the sentence.
        best = max(effect, key=lambda p: p[2])
        chosen = sorted([*chosen, best], key=pairs.index)
    elif not chosen and pairs:
        chosen = [max(pairs, key=lambda p: p[2])]
    return chosen


@dataclass(frozen=True)
class Entity:
    """An entity found in a text: characters ``start:end`` of it (end exclusive)."""

    start: int
    end: int
    label: str
    text: str
    score: float
    """The probability that the entity is exactly right (type and both ends), given that its sentence
    reports an adverse event (whether it does is the sentence's ``ade``): its tags' mean probability,
    calibrated on dev."""

    def to_dict(self) -> dict:
        """Its fields, as a JSONL record of `adelabel tag` holds them."""
        # Not dataclasses.asdict, which deep-copies every field: 0.56 of the 9.3 s `tag` took on 10,000 lines.
        return dict(self.__dict__)


@dataclass(frozen=True)
class Relation:
    """A drug and the effect (or dose) the text relates it to, as indices into the entities."""

    drug: int
    effect: int
    type: str
    score: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SentenceScore:
    """A sentence of a text (characters ``start:end``), its probability of reporting an adverse drug
    event, and whether it is reported (:func:`reports`: ``ade`` reached the threshold and a pair to
    relate was found in it; every sentence without a gate or at threshold 0, except one with no token,
    such as a line of invisible characters, which has nothing to report). Only reported sentences
    carry entities and relations. A sentence of more than MAX_TOKENS tokens is read, and decided, in
    pieces: it is reported when one of them is, and its ``ade`` is their highest."""

    start: int
    end: int
    ade: float
    reported: bool = False

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Analysis:
    """What a text reports: its entities and relations (from the sentences that report an ADE) and
    every sentence's probability of reporting one; ``ade`` is the highest of them."""

    text: str
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    sentences: list[SentenceScore] = field(default_factory=list)

    @property
    def ade(self) -> float:
        """The highest of its sentences' probabilities of reporting an adverse drug event (0 for none)."""
        return max((s.ade for s in self.sentences), default=0.0)

    def to_dict(self) -> dict:
        """The JSONL record `adelabel tag` writes for the text (``ade`` included, which
        ``dataclasses.asdict`` would leave out)."""
        return {"text": self.text, "entities": [e.to_dict() for e in self.entities],
                "relations": [r.to_dict() for r in self.relations],
                "sentences": [s.to_dict() for s in self.sentences], "ade": round(self.ade, 4)}


def pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sentence ``text[start:end]`` as one piece, or as windows of at most MAX_TOKENS tokens."""
    if end - start <= MAX_TOKENS:  # every token holds a character: no need to tokenise to know
        return [(start, end)]
    tokens = tokenize(text[start:end])
    if len(tokens) <= MAX_TOKENS:
        return [(start, end)]
    return [(start + tokens[a][0], start + tokens[b - 1][1]) for a, b in windows(text[start:end], tokens, MAX_TOKENS)]


def analyze(model: SequenceLabeler, vocabs: Vocabs, texts: Sequence[str], device: torch.device,
            threshold: float | None = None, batch_size: int = 128) -> list[Analysis]:
    """Split each text into sentences (and over-long ones into pieces), predict them all in length
    buckets, and map entities, relations and sentence probabilities back to each text's offsets."""
    sentences = [split_sentences(t) for t in texts]
    parts = [[(k, p) for k, (s, e) in enumerate(sents) for p in pieces(t, s, e)] for t, sents in zip(texts, sentences)]
    marked = [bullets_for_marks(t) for t in texts]  # over the whole text: a long sentence's window starts mid-line
    examples = [encode(m[a:b], vocabs) for m, ps in zip(marked, parts) for _, (a, b) in ps]
    predictions = iter(predict(model, examples, batch_size, device, threshold))
    examples_iter = iter(examples)
    effects = effect_types(tuple(model.tags))
    out = []
    for text, sents, ps in zip(texts, sentences, parts):
        result = Analysis(text)
        ade, reported = [0.0] * len(sents), [False] * len(sents)
        for k, (offset, _) in ps:
            pred, example = next(predictions), next(examples_iter)
            ade[k] = max(ade[k], pred.sentence)
            reported[k] = reported[k] or pred.reported
            first = len(result.entities)
            for (a, b, label), score in zip(pred.spans, pred.span_scores):
                start, end = offset + example.tokens[a][0], offset + example.tokens[b - 1][1]
                result.entities.append(Entity(start, end, label, text[start:end], round(score, 4)))
            for d, o, p in reported_pairs(pred, effects):
                kind = f"DRUG-{pred.spans[o][2]}"
                result.relations.append(Relation(first + d, first + o, kind, round(p, 4)))
        result.sentences = [SentenceScore(s, e, round(p, 4), r) for (s, e), p, r in zip(sents, ade, reported)]
        out.append(result)
    release_memory()
    return out
