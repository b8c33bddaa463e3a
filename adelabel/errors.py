"""Errors a user can act on.

Everything the toolkit raises on bad input is an :class:`AdelabelError`; the command line prints its
message and exits with status 2 instead of showing a traceback.
"""
from __future__ import annotations

from pathlib import Path


class AdelabelError(Exception):
    """An error caused by input or environment, with a message meant for the user."""

    every_rank = False
    """Met by every process of a torchrun run alike, where each could meet its own: rank 0 says it."""


class InputError(AdelabelError):
    """Bad content in a file, located by file name and (where known) line number."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")

    def __reduce__(self):  # rebuilt whole in another process (a Ray or tag --workers worker's error)
        return type(self), (self.path, self.reason, self.line)


class OptionError(AdelabelError, ValueError):
    """A value given to a command-line option or an API argument that it cannot take.

    ``argument``: the Python argument a message begins with (``threshold: ...``), which the command
    line names as its option (``--threshold: ...``): one check serves both, each naming what its user
    typed."""

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument

    def __reduce__(self):
        return type(self), (str(self), self.argument)

    def as_option(self) -> str:
        message = str(self)
        if self.argument and message.startswith(self.argument):
            return "--" + self.argument.replace("_", "-") + message[len(self.argument):]
        return message


class ArgumentTypeError(AdelabelError, TypeError):
    """An API argument of a type it cannot take (a list where a text is expected, a number for a path)."""


def one_of(names) -> str:
    """Allowed values as an error message lists them: "a, b or c"."""
    names = list(names)
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


class EmulatedPrecisionWarning(RuntimeWarning):
    """bf16 asked of a CPU without native bf16 (adelabel.precision.emulated). The commands say it as a
    note of their own and ignore this warning; their worker processes ignore it too. (Here, where the
    command line can name it without importing torch, which reads its log level when first imported.)"""
