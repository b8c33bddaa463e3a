"""The architecture registry: ``--arch NAME`` looks its builder up here."""
from __future__ import annotations

from collections.abc import Callable

from adelabel.errors import AdelabelError
from adelabel.models import bilstm
from adelabel.models.base import SequenceLabeler

ARCHITECTURES: dict[str, Callable[..., SequenceLabeler]] = {
    "bilstm": bilstm.build,
}


def build_model(arch: str, **kwargs) -> SequenceLabeler:
    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        raise AdelabelError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}") from None
    try:
        return builder(**kwargs)
    except TypeError as err:
        raise AdelabelError(f"bad hyperparameters for {arch!r}: {err}") from None
