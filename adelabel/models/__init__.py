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
from adelabel.models import transformer

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


def build_model(arch: str, *, tags, vocab_size: int = 0, char_vocab_size: int = 0, embedding_dim: int = 0,
                vectors=None, assets=None, **hyper) -> SequenceLabeler:
    """A fresh model of ``arch``; ``hyper`` are its model settings, checked against the schema, which
    fills in every one not given. The model keeps them as ``model.hyper`` (what a model folder saves)."""
    if arch not in BUILDERS:
        raise AdelabelError(f"unknown architecture {arch!r}; choose from {', '.join(BUILDERS)}")
    settings = ConfigBuilder(arch).add({"model": hyper}, f"{arch} model").build().model.model_dump()
    extra = {"assets": assets} if assets is not None else {}
    try:
        model = BUILDERS[arch](tags=tags, vocab_size=vocab_size, char_vocab_size=char_vocab_size,
                               embedding_dim=embedding_dim, vectors=vectors, **settings, **extra)
    except ValueError as err:
        raise AdelabelError(f"bad hyperparameters for {arch!r}: {err}") from None
    model.arch, model.hyper = arch, settings
    return model
