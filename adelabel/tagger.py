"""The ``Tagger`` users import: a loaded model that turns text into entities, relations and the
probability that each sentence reports an adverse drug event. The work is done by the one inference
path in :mod:`adelabel.inference`, which ``tag`` and ``evaluate`` use too."""
from __future__ import annotations

import itertools
import numbers
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import ContextManager, TypeVar, overload

import torch

from adelabel import model_dir
from adelabel.errors import AdelabelError, ArgumentTypeError, InputError, OptionError
from adelabel.inference import Analysis, Classification, Entity, Relation, SentenceScore, analyze, classify_texts
from adelabel.models.base import SequenceLabeler, threshold_of, threshold_text
from adelabel.precision import autocast, check_precision, lower_recurrent, warn_emulated
from adelabel.vocab import Vocabs

__all__ = ["Tagger", "Classifier", "Entity", "Relation", "SentenceScore", "Analysis", "Classification", "pick_device"]

if hasattr(os, "register_at_fork"):
    # A process forked from one whose torch ran a parallel region (a pipeline's Pool on Linux, whose
    # default start is fork) inherits a thread pool it cannot use, and hangs in its first forward pass
    # for ever; one thread in the child runs, and its siblings use the other cores.
    os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))


T = TypeVar("T")

_DEVICE = re.compile(r"auto|cpu(?::\d+)?|cuda(?::\d+)?")


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` (a GPU when torch sees one), ``cpu``, ``cuda`` or ``cuda:N`` (or a ``torch.device`` of
    those); anything else is refused."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise OptionError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}", "device")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cpu"):  # torch's "cpu:0": one CPU device whatever the index
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OptionError(f"device {device}: torch sees no CUDA device on this machine", "device")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise OptionError(f"device {device}: torch sees {torch.cuda.device_count()} CUDA device(s)", "device")
    return torch.device(device)


def check_threshold(threshold: float | None, name: str = "threshold") -> float | None:
    """``threshold`` as a float (numpy's numbers too), or None; refused unless between 0 and 1, in an
    error naming it as ``name`` (the argument, or the command line's option)."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
        raise OptionError(f"{name}: expected a number between 0 and 1, got {threshold!r}",
                          "threshold" if name == "threshold" else None)
    return float(threshold)


def check_backend(backend: str) -> str:
    if backend not in ("torch", "onnx"):
        raise OptionError(f"backend: expected torch or onnx, got {backend!r}", "backend")
    return backend


def _folders(method: str, path) -> list[str | Path]:
    """The model folders ``path`` names: one str or path-like object (a Path, an os.DirEntry), or a
    sequence of them (an ensemble)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else \
        list(path) if isinstance(path, Sequence) and not isinstance(path, (bytes, bytearray)) else None
    if paths is not None:
        paths = [os.fspath(p) if isinstance(p, os.PathLike) and not isinstance(p, Path) else p for p in paths]
    if paths is None or not all(isinstance(p, (str, Path)) for p in paths):
        wrong = path if paths is None else next(p for p in paths if not isinstance(p, (str, Path)))
        raise ArgumentTypeError(f"{method}: a model folder is a str or Path, not {_a(type(wrong).__name__)}")
    if not paths:
        raise OptionError(f"{method}: no model folder given")
    if any(p == "" for p in paths):
        raise OptionError(f"{method}: a model folder path is empty")
    return paths


class _Threshold:
    """A model's ``threshold`` attribute, checked when set as ``load``'s argument is: a pipeline that sets
    it to 5 or "0.5" hears so, rather than getting no entities or a TypeError from deep inside."""

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> "_Threshold": ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> float | None: ...

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return obj.__dict__.get("_threshold", obj.__dict__.get("threshold"))  # "threshold": pickled before

    def __set__(self, obj, value) -> None:
        value = check_threshold(value)
        if value is not None:
            type(obj)._refuse_threshold(obj.model, f"this {type(obj).__name__.lower()}", value)
        obj.__dict__["_threshold"] = value


class _Loaded:
    """What a loaded Tagger and Classifier share: the checked threshold attribute and the precision,
    fixed at loading (bf16 on a CPU casts a tagger's layers when it is made)."""

    threshold = _Threshold()
    folders: tuple[Path, ...] = ()
    """The model folders loaded (an ensemble's members in order), absolute: what a pipeline logs as the
    source of its tags (empty for one made otherwise than by ``load``, or unpickled from an earlier adelabel)."""

    @property
    def precision(self) -> str:
        """fp32, bf16 or fp16, as loaded."""
        return self.__dict__.get("_precision", self.__dict__.get("precision", "fp32"))

    @property
    def decision_threshold(self) -> float | None:
        """The threshold in force: ``threshold`` where set, else the one tuned on dev and saved with the
        model (a tagger's sentence gate, a two-class classifier's positive class); None where the model
        decides without one (a tagger without a gate, a classifier of more than two classes)."""
        if self.threshold is not None:
            return self.threshold
        saved = self._saved_threshold()
        return None if saved is None else threshold_of(saved)

    def __repr__(self) -> str:
        """What a pipeline's log should say of it: the folders, the device, and the threshold in force."""
        folders = [str(f) for f in self.folders] or "(not loaded from a folder)"
        threshold = self.decision_threshold
        backend = getattr(self, "backend", None)
        return (f"{type(self).__name__}({folders if isinstance(folders, str) else ', '.join(folders)}; "
                f"{self.config.get('arch', '?')}, {self.device}, {self.precision}"
                + (f", {backend}" if backend and backend != "torch" else "")
                + (f"; threshold {threshold_text(threshold)}" + (" (set)" if self.threshold is not None else " (the model's)")
                   if threshold is not None else "") + ")")


class Tagger(_Loaded):
    """A loaded model that turns text into entities with character offsets.

    >>> tagger = Tagger.load()   # models/bilstm, or the ready tagger shipped in the package
    >>> tagger("Intravenous azithromycin-induced ototoxicity.")
    """

    def __init__(self, model: SequenceLabeler, config: dict, vocabs: Vocabs, device: torch.device,
                 threshold: float | None = None, precision: str = "fp32", backend: str = "torch") -> None:
        """Use :meth:`load`. ``model`` becomes this tagger's own: in bf16 on a CPU its recurrent layers
        are cast in place."""
        self.model, self.config, self.vocabs, self.device = model, config, vocabs, device
        self.backend = backend
        self.tags: list[str] = list(config["tags"])
        self.threshold = threshold
        self._precision = check_precision(precision, device)
        # bf16 on a CPU: a recurrent tagger's BiLSTMs in bf16, the rest fp32, no autocast (see lower_recurrent).
        self._lowered = precision == "bf16" and device.type == "cpu" and lower_recurrent(model)

    @classmethod
    def load(cls, path: str | Path | Sequence[str | Path] | None = None, device: str | torch.device = "auto",
             threshold: float | None = None, precision: str = "fp32", backend: str = "torch") -> "Tagger":
        """Load a saved model (default: ``models/bilstm`` if there is one, else the ready tagger shipped
        in the package, adelabel/pretrained), or several as an ensemble (adelabel/models/ensemble.py: taggers trained
        on the same prepared data, whose probabilities are averaged). ``threshold`` overrides the gate
        threshold tuned in training: lower finds more entities and more false ones, 0 tags every
        sentence as if it reported an adverse event. ``precision`` bf16 (or fp16 on a GPU) runs the
        forward pass under autocast. ``backend="onnx"`` runs it in onnxruntime, from the graphs
        ``adelabel export --format onnx`` wrote into the folder (one recurrent tagger, on the CPU)."""
        threshold = check_threshold(threshold)
        if path is None:
            from adelabel.pretrained import default_model

            path = default_model()
        check_backend(backend)
        dev = pick_device("cpu" if backend == "onnx" and device == "auto" else device)
        check_precision(precision, dev)
        if backend == "onnx" and (dev.type != "cpu" or precision != "fp32"):
            raise OptionError("backend onnx: runs on the CPU in fp32 (its int8 form comes from "
                              "`adelabel export --quantize`)", "backend")
        warn_emulated(precision, dev)
        paths = _folders("Tagger.load", path)
        for p in paths:
            if model_dir.task_of(p) == "classify":
                raise InputError(p, "is a sentence classifier, not a tagger; load it with adelabel.Classifier.load")
        if backend == "onnx" and len(paths) > 1:
            raise OptionError("backend onnx: runs one model, not an ensemble", "backend")
        loaded = [model_dir.load(p, dev) for p in paths]
        model, config, vocabs = loaded[0]
        if backend == "onnx":
            from adelabel.onnx_backend import attach, check_exportable

            check_exportable(config, Path(paths[0]), "backend onnx: runs")
            model = attach(model, paths[0])
        if len(loaded) > 1:
            from adelabel.models.ensemble import Ensemble

            for p, (other, _, other_vocabs) in zip(paths[1:], loaded[1:]):
                if other.tags != model.tags:
                    raise InputError(p, f"its tags {other.tags} differ from {paths[0]}'s {model.tags}; an "
                                        "ensemble's members tag the same types")
                if other_vocabs.words.items != vocabs.words.items or other_vocabs.chars.items != vocabs.chars.items:
                    raise InputError(p, f"its vocabulary differs from {paths[0]}'s; an ensemble's members "
                                        "must be trained on the same prepared data")
                # A member without a gate (or relation head) would make the ensemble report every
                # sentence (or pair every drug with every effect) without saying so.
                for key, name in (("gate", "sentence gate (model.gate)"), ("relation", "relation head (model.relations)")):
                    if (getattr(other, key) is None) != (getattr(model, key) is None):
                        has = "has a" if getattr(other, key) is not None else "has no"
                        raise InputError(p, f"{has} {name}, unlike {paths[0]}; an ensemble's members all have "
                                            "one or none do")
            model = Ensemble([m for m, _, _ in loaded]).to(dev).eval()
            # Scored at the smallest member's batch (a transformer's 64 beside a bilstm's 256), whatever
            # the order of the members.
            smallest = min(c["train"]["eval_batch_size"] for _, c, _ in loaded)
            config = {**config, "arch": "ensemble of " + ", ".join(c["arch"] for _, c, _ in loaded),
                      "ensemble": [str(p) for p in paths], "train": {**config["train"], "eval_batch_size": smallest}}
        if threshold is not None:
            cls._refuse_threshold(model, paths[0], threshold)
        if getattr(model, "onnx_quantized", False):
            backend = "onnx-int8"
        tagger = cls(model, config, vocabs, dev, threshold, precision, backend)
        tagger.folders = tuple(Path(p).resolve() for p in paths)
        return tagger

    def _saved_threshold(self):
        return self.model.gate_threshold if self.model.gate is not None else None

    @staticmethod
    def _refuse_threshold(model, name: str, value: float, argument: str | None = "threshold") -> None:
        """A threshold refused where ``model`` (``name`` says which) has no gate to apply it to; 0,
        "tag every sentence", is what such a model does, so a pipeline that always passes it may."""
        if model.gate is None and value != 0:
            raise OptionError(f"threshold: {name} has no sentence gate (model.gate = false); it tags every sentence",
                              argument)

    def analyze(self, text: str) -> Analysis:
        """Entities, relations and each sentence's probability of reporting an adverse drug event."""
        return self._analyze([_one_text("Tagger.analyze()", "tagger.analyze_pipe(texts)", text)], self.threshold)[0]

    def pipe(self, texts: Iterable[str], batch_size: int = 1024) -> Iterator[list[Entity]]:
        """Entities of each text (which may hold several sentences), in input order, streaming.

        Texts are read ``batch_size`` at a time, so memory stays flat however many there are.
        """
        return (a.entities for a in self._checked_pipe("pipe", texts, batch_size))

    def analyze_pipe(self, texts: Iterable[str], batch_size: int = 1024) -> Iterator[Analysis]:
        """:meth:`analyze` for each text, in input order, streaming as :meth:`pipe` does."""
        return self._checked_pipe("analyze_pipe", texts, batch_size)

    def _checked_pipe(self, name: str, texts: Iterable[str], batch_size: int) -> Iterator[Analysis]:
        one = "tagger.analyze(text)" if name == "analyze_pipe" else "tagger(text)"
        # The threshold as it is now: a stream read later, or another thread setting the attribute
        # meanwhile, does not change what this one reports.
        threshold = self.threshold
        return checked_stream(f"Tagger.{name}", one, texts, batch_size,
                              lambda chunk: self._analyze(chunk, threshold))

    def running(self) -> ContextManager:
        """The context this tagger's forward passes run in at its precision."""
        # Lowered bf16 layers run as cast, with autocast off as for fp32 (a caller's own would change them).
        return autocast(self.device, "fp32" if self._lowered else self.precision)

    def _analyze(self, texts: Sequence[str], threshold: float | None) -> list[Analysis]:
        """``threshold``: the tagger's at this call, or the one a stream was started with."""
        with self.running():
            return analyze(self.model, self.vocabs, texts, self.device, threshold)

    def __call__(self, text: str) -> list[Entity]:
        """The entities of the sentences of ``text`` that report an adverse drug event, with character
        offsets into ``text``; :meth:`analyze` gives the relations and sentence probabilities too."""
        return self._analyze([_one_text("Tagger()", "tagger.pipe(texts)", text)], self.threshold)[0].entities


def checked_stream(method: str, one: str, texts: Iterable[str], batch_size: int,
                   process: Callable[[Sequence[str]], list]) -> Iterator:
    """``process`` over ``texts`` in chunks of ``batch_size``, in input order and streaming, so memory
    stays flat however many there are. The arguments are checked here, when ``method`` is called
    (``one`` names the call for a single text); a text that is not a str is refused, naming its index,
    when the stream reaches it, after the results of the texts before it."""
    if isinstance(texts, (str, bytes)):
        raise ArgumentTypeError(f"{method}() takes an iterable of texts, not a single string; "
                                f"call {one} for one text")
    # Iterated, a DataFrame gives its column names: a column of texts would come back as one empty answer.
    # (A dict gives its keys, which may well be the texts: dict.fromkeys(lines) drops repeated ones.)
    if hasattr(texts, "columns") and hasattr(texts, "iloc"):
        raise ArgumentTypeError(f"{method}() takes an iterable of texts, not {_a(type(texts).__name__)}, whose "
                                "iteration gives its column names; pass the column of texts (df['text'])")
    try:
        texts = iter(texts)
    except TypeError:
        raise ArgumentTypeError(f"{method}() takes an iterable of texts, not {_a(type(texts).__name__)}") from None
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise OptionError(f"batch_size: expected a whole number of at least 1, got {batch_size!r}", "batch_size")
    return _chunks(method, texts, int(batch_size), process)


CHUNK_CHARACTERS = 200_000
"""A chunk ends at ``batch_size`` texts or at this many characters, whichever comes first: many short
texts make one pool to sort by length (tight batches, about a fifth faster than chunks of 256
one-sentence lines), while long ones (abstracts) keep a chunk, and so memory, bounded."""


def chunked(items: Iterable[T], batch_size: int, length: Callable[[T], int] = len) -> Iterator[list[T]]:
    """``items`` in lists that end at ``batch_size`` items or at CHUNK_CHARACTERS of text (``length``
    of each item), whichever comes first."""
    chunk: list[T] = []
    size = 0
    for item in items:
        chunk.append(item)
        size += length(item)
        if len(chunk) >= batch_size or size >= CHUNK_CHARACTERS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _chunks(method: str, texts: Iterator[str], batch_size: int, process) -> Iterator:
    wrong: list[Exception] = []

    def checked() -> Iterator[str]:
        for index in itertools.count():
            try:
                text = next(texts)
            except StopIteration:
                return
            except Exception as err:  # the source failed (a database cursor, say): raised, as a wrong text is,
                wrong.append(err)     # once the texts read before it are answered
                return
            try:
                if not isinstance(text, str):
                    raise ArgumentTypeError(f"{method}(): text {index} is of type "
                                            f"{type(text).__name__}, not a str{_missing(text)}")
                _no_lone_surrogate(f"{method}(): text {index}", text)
            except AdelabelError as err:
                wrong.append(err)  # raised once the texts before it are answered, not lost with their chunk
                return
            yield text

    for chunk in chunked(checked(), batch_size):
        yield from process(chunk)
    if wrong:
        raise wrong[0]


def _one_text(method: str, several: str, text) -> str:
    """``text`` if it is a str; else a TypeError naming its type (pointing a list to ``several``)."""
    if not isinstance(text, str):
        hint = f"; for several texts use {several}" if isinstance(text, (list, tuple)) else ""
        raise ArgumentTypeError(f"{method} takes a str, not {_a(type(text).__name__)}{hint or _missing(text)}")
    _no_lone_surrogate(method, text)
    return text


def _a(name: str) -> str:
    """A type's name with its article: a float, an int."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _missing(value) -> str:
    """A hint when ``value`` is how pandas marks a missing text (NaN, None, pd.NA)."""
    try:  # a number that is not equal to itself is NaN; an array or a Series is none of these
        missing = value is None or type(value).__name__ == "NAType" or (
            isinstance(value, numbers.Number) and bool(value != value))
    except Exception:
        missing = False
    return "; a missing value (NaN, None)? drop or fill those first: texts.dropna() or texts.fillna('')" \
        if missing else ""


_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_lone_surrogate(where: str, text: str) -> None:
    """Refuse half of a UTF-16 pair (what ``os.fsdecode`` makes of bytes that are not UTF-8): no output
    could encode it, so it would fail at the writing, after the work."""
    if found := _SURROGATE.search(text):
        raise OptionError(f"{where}: the text holds U+{ord(found.group()):04X} at {found.start()}, half of a "
                          "surrogate pair, not a character (decode the bytes as UTF-8, or with errors='replace')")


class Classifier(_Loaded):
    """A loaded sentence classifier (``adelabel train --task classify``): each text gets a label and
    every class's calibrated probability.

    >>> classifier = Classifier.load("models/bigru-classify")
    >>> classifier("Intravenous azithromycin-induced ototoxicity.").label
    """

    def __init__(self, model, config: dict, vocabs: Vocabs, device: torch.device,
                 threshold: float | None = None, precision: str = "fp32") -> None:
        """Use :meth:`load`."""
        self.model, self.config, self.vocabs, self.device = model, config, vocabs, device
        self.classes: list[str] = list(config["classes"])
        self.threshold = threshold
        self._precision = check_precision(precision, device)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto", threshold: float | None = None,
             precision: str = "fp32") -> "Classifier":
        """Load a saved classifier. ``threshold`` overrides, for a two-class model, the threshold on the
        positive class's probability tuned on dev; ``precision`` as for :meth:`Tagger.load`."""
        threshold = check_threshold(threshold)
        dev = pick_device(device)
        check_precision(precision, dev)
        warn_emulated(precision, dev)
        [path] = _folders("Classifier.load", [path])
        if model_dir.task_of(path) == "tag":
            raise InputError(path, "is a tagger, not a sentence classifier; load it with adelabel.Tagger.load")
        model, config, vocabs = model_dir.load(path, dev)
        if threshold is not None:
            cls._refuse_threshold(model, path, threshold)
        classifier = cls(model, config, vocabs, dev, threshold, precision)
        classifier.folders = (Path(path).resolve(),)
        return classifier

    def _saved_threshold(self):
        return self.model.threshold if self.model.positive is not None else None

    @staticmethod
    def _refuse_threshold(model, name: str, value: float, argument: str | None = "threshold") -> None:
        """A threshold refused where ``model`` (``name`` says which) decides among more than two classes."""
        if model.positive is None:
            raise OptionError(f"threshold: {name} decides among {len(model.classes)} classes by the most "
                              "probable; a threshold applies to two-class models only", argument)

    def __call__(self, text: str) -> Classification:
        """``text`` classified as one text: its label and every class's probability."""
        return self._classify([_one_text("Classifier()", "classifier.pipe(texts)", text)], self.threshold)[0]

    def pipe(self, texts: Iterable[str], batch_size: int = 1024) -> Iterator[Classification]:
        """Each text's :class:`Classification`, in input order, streaming ``batch_size`` at a time."""
        threshold = self.threshold  # as for Tagger.pipe: the threshold the stream was started with
        return checked_stream("Classifier.pipe", "classifier(text)", texts, batch_size,
                              lambda chunk: self._classify(chunk, threshold))

    def _classify(self, texts: Sequence[str], threshold: float | None) -> list[Classification]:
        with autocast(self.device, self.precision):
            return classify_texts(self.model, self.vocabs, texts, self.device, threshold)
