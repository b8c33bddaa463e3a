"""Tagging text with a trained model: the ``Tagger`` users import, and the prediction loop training
uses to score the dev set (one code path, so the scores describe what users get)."""
from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from adelabel import model_dir
from adelabel.data import Example, bucketed, encode
from adelabel.models.base import SequenceLabeler
from adelabel.tags import tags_to_spans
from adelabel.text import split_sentences
from adelabel.vocab import Vocabs

DEFAULT_MODEL = Path("models/bilstm")


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


@dataclass(frozen=True)
class Entity:
    """An entity found in a text: characters ``start:end`` of it (end exclusive)."""

    start: int
    end: int
    label: str
    text: str
    score: float
    """Probability the model gives the entity: the mean of its tags' probabilities, times the gate's
    probability that the sentence holds entities at all."""

    def to_dict(self) -> dict:
        return asdict(self)


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        from adelabel.errors import AdelabelError
        raise AdelabelError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(device)


class Prediction(NamedTuple):
    tags: list[int]          # one tag id per token
    confidence: list[float]  # each tag's probability (given that the sentence holds entities, with a gate)
    sentence: float          # the gate's probability that the sentence holds entities (1.0 without a gate)


@torch.inference_mode()
def predict(model: SequenceLabeler, examples: Sequence[Example], batch_size: int, device: torch.device,
            threshold: float | None = None) -> list[Prediction]:
    """Tags, confidences and sentence probabilities of each example, in input order.

    ``threshold`` overrides the model's gate threshold (0 tags every sentence)."""
    model.eval()
    out = [Prediction([], [], 0.0)] * len(examples)
    for indices, batch in bucketed(examples, batch_size):
        batch = batch.to(device)
        tags, conf, sentence = (t.cpu().tolist() for t in model.decode(model(batch), batch, threshold))
        for row, i in enumerate(indices):
            n = len(examples[i].words)
            out[i] = Prediction(tags[row][:n], conf[row][:n], sentence[row])
    return out


class Tagger:
    """A loaded model that turns text into entities with character offsets.

    >>> tagger = Tagger.load("models/bilstm")
    >>> tagger("Intravenous azithromycin-induced ototoxicity.")
    """

    def __init__(self, model: SequenceLabeler, config: dict, vocabs: Vocabs, device: torch.device,
                 threshold: float | None = None) -> None:
        self.model, self.config, self.vocabs, self.device = model, config, vocabs, device
        self.tags: list[str] = list(config["tags"])
        self.threshold = threshold

    @classmethod
    def load(cls, path: str | Path = DEFAULT_MODEL, device: str = "auto", threshold: float | None = None) -> "Tagger":
        """Load a saved model. ``threshold`` overrides the gate threshold tuned in training: lower finds
        more entities and more false ones, 0 tags every sentence as if it reported an adverse event."""
        dev = pick_device(device)
        model, config, vocabs = model_dir.load(path, dev)
        return cls(model, config, vocabs, dev, threshold)

    def tag_sentences(self, sentences: Sequence[str], batch_size: int = 128) -> list[list[Entity]]:
        """Entities of each sentence (offsets index that sentence)."""
        examples = [encode(s, self.vocabs) for s in sentences]
        results = predict(self.model, examples, batch_size, self.device, self.threshold)
        out = []
        for text, ex, (ids, conf, sentence) in zip(sentences, examples, results):
            tags = [self.tags[i] for i in ids]
            entities = []
            for start, end, label in tags_to_spans(ex.tokens, tags):
                covered = [c for (s, _), c in zip(ex.tokens, conf) if start <= s < end]
                score = sentence * sum(covered) / len(covered)
                entities.append(Entity(start, end, label, text[start:end], round(score, 4)))
            out.append(entities)
        return out

    def pipe(self, texts: Iterable[str], batch_size: int = 256) -> Iterator[list[Entity]]:
        """Entities of each text (which may hold several sentences), in input order, streaming.

        Texts are read ``batch_size`` at a time, so memory stays flat however many there are.
        """
        chunk: list[str] = []
        for text in texts:
            chunk.append(text)
            if len(chunk) >= batch_size:
                yield from self._tag_texts(chunk)
                chunk = []
        if chunk:
            yield from self._tag_texts(chunk)

    def _tag_texts(self, texts: Sequence[str]) -> list[list[Entity]]:
        pieces = [split_sentences(t) for t in texts]
        flat = [t[s:e] for t, spans in zip(texts, pieces) for s, e in spans]
        tagged = iter(self.tag_sentences(flat))
        out = []
        for spans in pieces:
            entities = []
            for offset, _ in spans:
                entities += [Entity(e.start + offset, e.end + offset, e.label, e.text, e.score)
                             for e in next(tagged)]
            out.append(entities)
        release_memory()
        return out

    def __call__(self, text: str) -> list[Entity]:
        return self._tag_texts([text])[0]

