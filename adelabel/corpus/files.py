"""Reading text files line by line with errors that name the file and line."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from adelabel.errors import InputError


def check_file(path: str | Path) -> Path:
    """``path`` as a Path, or an :class:`InputError` naming it: nothing there, or a folder where a file
    is read."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "is a folder, not a file" if path.is_dir() else "file not found")
    return path


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` of a UTF-8 text file (stdin for ``-``), without the line ending,
    read lazily.

    Raises :class:`InputError` for a missing, empty or non-UTF-8 file, naming the offending line. Empty
    stdin is no error: a pipe that had nothing to say, where an empty file is almost always a mistake (a
    wrong name, a failed export).
    """
    stdin = str(path) == "-"
    name = "<stdin>" if stdin else check_file(path)
    seen_any = False
    with ExitStack() as stack:
        fh = sys.stdin.buffer if stdin else stack.enter_context(name.open("rb"))
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(name, f"not UTF-8 text (byte {err.start} of the line: "
                                       f"{raw[err.start:err.start + 1]!r})", number) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            seen_any = True
            yield number, line.rstrip("\r\n")
    if not seen_any and not stdin:
        raise InputError(name, "file is empty")


def read_json_object(path: str | Path) -> dict:
    """The JSON object in a file adelabel wrote (a config, manifest or result), or an
    :class:`InputError` naming the file when it is not valid JSON or not an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # RecursionError: nesting past the stack
        raise InputError(path, f"corrupt JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object")
    return data
