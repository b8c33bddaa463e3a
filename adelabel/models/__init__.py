"""The architecture registry: ``--arch NAME`` looks its builder up here.

The names and their families are listed once, in :data:`adelabel.config.ARCHITECTURES`; a new
architecture is a module here, a line below and a line there.
"""
from __future__ import annotations

from collections.abc import Callable

from adelabel.config import ARCHITECTURES, ConfigBuilder
from adelabel.errors import AdelabelError
from adelabel.models.base import SequenceLabeler
from adelabel.models.recurrent import RecurrentTagger, builder
from adelabel.models.seq2seq import Seq2SeqTagger
from adelabel.models import classifier, transformer
from adelabel.models.classifier import SentenceClassifier

BUILDERS: dict[str, Callable[..., SequenceLabeler]] = {
    "rnn": builder(RecurrentTagger, cell="rnn", bidirectional=False),
    "birnn": builder(RecurrentTagger, cell="rnn", bidirectional=True),
    "gru": builder(RecurrentTagger, cell="gru", bidirectional=False),
    "bigru": builder(RecurrentTagger, cell="gru", bidirectional=True),
    "lstm": builder(RecurrentTagger, cell="lstm", bidirectional=False),
    "bilstm": builder(RecurrentTagger, cell="lstm", bidirectional=True),
    "seq2seq": builder(Seq2SeqTagger),
    "transformer": transformer.build,
}
if set(BUILDERS) != set(ARCHITECTURES):
    raise RuntimeError("adelabel.config.ARCHITECTURES and BUILDERS list different names")
CLASSIFIERS: dict[str, Callable[..., SentenceClassifier]] = {
    name: builder(classifier.RecurrentClassifier, cell=cell, bidirectional=bi)
    for name, cell, bi in (("rnn", "rnn", False), ("birnn", "rnn", True), ("gru", "gru", False),
                           ("bigru", "gru", True), ("lstm", "lstm", False), ("bilstm", "lstm", True))
}
CLASSIFIERS["transformer"] = classifier.build_transformer


def build_model(arch: str, *, tags, vocab_size: int = 0, char_vocab_size: int = 0, embedding_dim: int = 0,
                vectors=None, assets=None, **hyper) -> SequenceLabeler:
    """A fresh model of ``arch``; ``hyper`` are its model settings, checked against the schema, which
    fills in every one not given. The model keeps them as ``model.hyper`` (what a model folder saves)."""
    if arch not in BUILDERS:
        raise AdelabelError(f"unknown architecture {arch!r}; choose from {', '.join(BUILDERS)}")
    settings = ConfigBuilder(arch, packaged=False).add({"model": hyper}, f"{arch} model").build().model.model_dump()
    return _finish(BUILDERS[arch], arch, settings, assets, tags=tags, vocab_size=vocab_size,
                   char_vocab_size=char_vocab_size, embedding_dim=embedding_dim, vectors=vectors)


def build_classifier(arch: str, *, classes, positive: str | None, vocab_size: int = 0, char_vocab_size: int = 0,
                     embedding_dim: int = 0, vectors=None, assets=None, **hyper) -> SentenceClassifier:
    """A fresh sentence classifier of ``arch`` over ``classes`` (``positive``: the class a two-class
    decision thresholds on, None for an argmax over many); settings as for :func:`build_model`."""
    if arch not in CLASSIFIERS:
        raise AdelabelError(f"no {arch!r} classifier; choose from {', '.join(CLASSIFIERS)}")
    settings = ConfigBuilder(arch, "classify", packaged=False).add({"model": hyper}, f"{arch} model").build().model.model_dump()
    return _finish(CLASSIFIERS[arch], arch, settings, assets, classes=classes, positive=positive,
                   vocab_size=vocab_size, char_vocab_size=char_vocab_size, embedding_dim=embedding_dim,
                   vectors=vectors)


def _finish(build: Callable, arch: str, settings: dict, assets, **inputs):
    extra = {"assets": assets} if assets is not None else {}
    try:
        model = build(**inputs, **settings, **extra)
    except ValueError as err:
        raise AdelabelError(f"bad hyperparameters for {arch!r}: {err}") from None
    model.arch, model.hyper = arch, settings
    return model
