"""Reading text files line by line with errors that name the file and line."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

from adelabel.errors import InputError


def not_a_file(path: Path, streams: bool = False) -> str | None:
    """Why ``path`` cannot be read as a file, or None: nothing there, a folder, or (unless ``streams``:
    read once, from start to end) a pipe or a device."""
    if path.is_dir():
        return "is a folder, not a file"
    if not path.exists():
        return "file not found"
    if not (streams or path.is_file()):
        return "is a pipe or a device, not a file (read more than once here)"
    return None


def check_file(path: str | Path, streams: bool = False) -> Path:
    """``path`` as a Path, or an :class:`InputError` naming it and :func:`not_a_file`'s reason."""
    path = Path(path)
    if why := not_a_file(path, streams):
        raise InputError(path, why)
    return path


def read_lines(path: str | Path, streams: bool = False,
               warn: Callable[[str], None] | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` of a UTF-8 text file (stdin for ``-``; with ``streams``, a named
    pipe or a device too), without the line ending, read lazily.

    Raises :class:`InputError` for a missing, empty or non-UTF-8 file, naming the offending line. An
    empty stdin or pipe is no error: a pipe that had nothing to say, where an empty file is almost
    always a mistake (a wrong name, a failed export). A line ends at a line feed (after a carriage
    return or not); ``warn`` is told of the first carriage return found inside a line (old Mac or
    mixed line endings), which stays in its line.
    """
    stdin = str(path) == "-"
    name = "<stdin>" if stdin else check_file(path, streams)
    regular = not stdin and name.is_file()
    seen_any = False
    with ExitStack() as stack:
        fh = sys.stdin.buffer if stdin else stack.enter_context(name.open("rb"))
        for number, raw in enumerate(fh, start=1):
            if number == 1:
                _refuse_utf16(name, raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(name, f"not UTF-8 text (byte {err.start} of the line: "
                                       f"{raw[err.start:err.start + 1]!r})", number) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            seen_any = True
            line = line.rstrip("\r\n")
            if warn is not None and "\r" in line:
                warn(f"{name}:{number}: a carriage return inside the line is read as part of it (lines end at "
                     "a line feed); if it should end a line (old Mac or mixed line endings), convert the file, "
                     "for example with tr '\\r' '\\n'")
                warn = None
            yield number, line
    if not seen_any and regular:
        raise InputError(name, "file is empty")


def _refuse_utf16(name: str | Path, first: bytes) -> None:
    """UTF-16 text, as Windows tools save it: with its byte-order mark it is no UTF-8, and without one
    its ASCII reads as valid UTF-8 with a zero byte after every letter, which would be tagged as
    garbage without a word said."""
    bom = first.startswith((b"\xff\xfe", b"\xfe\xff"))
    if bom or (len(first) >= 8 and first.count(0) * 3 >= len(first)):
        how = "it begins with a UTF-16 byte-order mark" if bom else "a zero byte beside every letter"
        raise InputError(name, f"is UTF-16 text ({how}); adelabel reads UTF-8: convert it, for example with "
                               "iconv -f UTF-16 -t UTF-8", 1)


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
