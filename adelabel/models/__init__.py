"""The architecture registry: ``--arch NAME`` looks its builder up here."""
from __future__ import annotations

from collections.abc import Callable

from adelabel.errors import AdelabelError
from adelabel.models.base import SequenceLabeler
from adelabel.models.recurrent import RecurrentTagger, builder
from adelabel.models.seq2seq import Seq2SeqTagger
from adelabel.models import transformer

ARCHITECTURES: dict[str, Callable[..., SequenceLabeler]] = {
    "rnn": builder(RecurrentTagger, cell="rnn", bidirectional=False),
    "birnn": builder(RecurrentTagger, cell="rnn", bidirectional=True),
    "gru": builder(RecurrentTagger, cell="gru", bidirectional=False),
    "bigru": builder(RecurrentTagger, cell="gru", bidirectional=True),
    "lstm": builder(RecurrentTagger, cell="lstm", bidirectional=False),
    "bilstm": builder(RecurrentTagger, cell="lstm", bidirectional=True),
    "seq2seq": builder(Seq2SeqTagger),
    "transformer": transformer.build,
}


def build_model(arch: str, **kwargs) -> SequenceLabeler:
    try:
        build = ARCHITECTURES[arch]
    except KeyError:
        raise AdelabelError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}") from None
    try:
        return build(**kwargs)
    except (TypeError, ValueError) as err:
        raise AdelabelError(f"bad hyperparameters for {arch!r}: {err}") from None
