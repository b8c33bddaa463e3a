"""Tagging text with a trained model: the ``Tagger`` users import, and the prediction loop training
uses to score the dev set (one code path, so the scores describe what users get)."""
from __future__ import annotations

import ctypes
import ctypes.util
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from adelabel import model_dir
from adelabel.data import Example, bucketed, encode
from adelabel.errors import OptionError
from adelabel.models.base import SequenceLabeler
from adelabel.tags import tags_to_spans
from adelabel.text import split_sentences, tokenize, windows
from adelabel.vocab import Vocabs

DEFAULT_MODEL = Path("models/bilstm")
MAX_TOKENS = 256
"""A sentence longer than this is tagged in pieces (adelabel.text.windows): the CRF's and Viterbi's
cost grows with length, and its probabilities lose precision over thousands of steps."""


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


_DEVICE = re.compile(r"auto|cpu|cuda(?::\d+)?")


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` (a GPU when torch sees one), ``cpu``, ``cuda`` or ``cuda:N``; anything else is refused."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise OptionError(f"--device: expected auto, cpu, cuda or cuda:N, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OptionError(f"--device {device}: torch sees no CUDA device on this machine")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise OptionError(f"--device {device}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(device)


def check_threshold(threshold: float | None) -> float | None:
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
        raise OptionError(f"threshold: expected a number between 0 and 1, got {threshold!r}")
    return threshold


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
        check_threshold(threshold)
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
        if isinstance(texts, (str, bytes)):
            raise TypeError("Tagger.pipe() takes an iterable of texts, not a single string; "
                            "call tagger(text) for one text")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise OptionError(f"batch_size: expected a whole number of at least 1, got {batch_size!r}")
        return self._pipe(texts, batch_size)

    def _pipe(self, texts: Iterable[str], batch_size: int) -> Iterator[list[Entity]]:
        chunk: list[str] = []
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"Tagger.pipe(): text {index} is a {type(text).__name__}, not a str")
            chunk.append(text)
            if len(chunk) >= batch_size:
                yield from self._tag_texts(chunk)
                chunk = []
        if chunk:
            yield from self._tag_texts(chunk)

    def _tag_texts(self, texts: Sequence[str]) -> list[list[Entity]]:
        pieces = [[piece for s, e in split_sentences(t) for piece in _pieces(t, s, e)] for t in texts]
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
        if not isinstance(text, str):
            hint = "; for several texts use tagger.pipe(texts)" if isinstance(text, (list, tuple)) else ""
            raise TypeError(f"Tagger() takes a str, not a {type(text).__name__}{hint}")
        return self._tag_texts([text])[0]


def _pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sentence ``text[start:end]`` as one piece, or as windows of at most MAX_TOKENS tokens."""
    if end - start <= MAX_TOKENS:  # every token holds a character: no need to tokenise to know
        return [(start, end)]
    tokens = tokenize(text[start:end])
    if len(tokens) <= MAX_TOKENS:
        return [(start, end)]
    return [(start + tokens[a][0], start + tokens[b - 1][1]) for a, b in windows(text[start:end], tokens, MAX_TOKENS)]

