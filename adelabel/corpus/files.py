"""Reading text files line by line with errors that name the file and line."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

from adelabel.atomic import loops
from adelabel.errors import InputError


def not_a_file(path: Path, streams: bool = False) -> str | None:
    """Why ``path`` cannot be read as a file, or None: nothing there, a folder, or (unless ``streams``:
    read once, from start to end) a pipe or a device."""
    if path.is_dir():
        return "is a folder, not a file"
    if not path.exists():
        return "a symbolic link that leads back to itself" if loops(path) else "file not found"
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
    if stdin and sys.stdin is None:  # started with its standard input closed (`<&-`)
        raise InputError(name, "standard input is closed: nothing to read")
    with ExitStack() as stack:
        fh = sys.stdin.buffer if stdin else stack.enter_context(name.open("rb"))
        # The first bytes, not the first line: a UTF-16 file's blank or short first line is one byte
        # ("\n", its zero byte starting line 2) and told nothing.
        _refuse_wide(name, fh.peek(_SNIFFED)[:_SNIFFED] if hasattr(fh, "peek") else b"")
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                # Counted from 1, as lines and JSON columns are.
                raise InputError(name, f"not UTF-8 text (byte {err.start + 1} of the line: "
                                       f"{raw[err.start:err.start + 1]!r}); save it as UTF-8, for example with "
                                       "iconv -f ITS-ENCODING -t UTF-8 (often WINDOWS-1252 or LATIN1)",
                                 number) from None
            if raw == b"\xef\xbb\xbf":  # what an editor saves for an empty file: no line, on stdin too
                continue
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


_SNIFFED = 64  # bytes looked at for a wide encoding


def _refuse_wide(name: str | Path, head: bytes) -> None:
    """UTF-16 or UTF-32 text, as Windows tools save it: with its byte-order mark it is no UTF-8, and
    without one its ASCII reads as valid UTF-8 with zero bytes beside every letter, which would be
    tagged as garbage without a word said. So would a file that begins with zero bytes only (one cut
    short by a crash)."""
    boms = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
            (b"\xfe\xff", "UTF-16"))
    encoding = next((e for bom, e in boms if head.startswith(bom)), None)
    how = f"it begins with a {encoding} byte-order mark"
    if encoding is None and head:
        zeros = head.count(0)
        if zeros == len(head):
            raise InputError(name, "begins with zero bytes, not text (a file cut short by a crash?)", 1)
        # ASCII in UTF-32 is three zero bytes in four, in UTF-16 one in two.
        encoding = "UTF-32" if zeros * 10 >= len(head) * 7 else "UTF-16" if zeros * 3 >= len(head) else None
        how = f"{'three zero bytes' if encoding == 'UTF-32' else 'a zero byte'} beside every letter"
    if encoding is not None:
        raise InputError(name, f"is {encoding} text ({how}); adelabel reads UTF-8: convert it, for example with "
                               f"iconv -f {encoding} -t UTF-8", 1)


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
