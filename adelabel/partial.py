"""`tag --output FILE` for JSONL: written under a partial name that a killed run leaves behind, so that
`tag --resume` carries on from its last complete record instead of tagging a large file again.

The partial file sits beside the output as ``.NAME.partial`` with ``.NAME.partial.json`` saying what
it is a part of: the input file (path, size and modification time), the input format and the
provenance of the tags (model folders, weights' checksums, thresholds, precision, backend,
version). A resume is refused unless all of them are as they were, since records tagged under other
settings, or of another input, must not end up in one output. Each record is one line, so what a
kill left is the complete lines plus at most one cut short, which is dropped.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from adelabel.atomic import current_umask, replace_synced, sync_file, write_text
from adelabel.errors import AdelabelError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second run there is unguarded
    fcntl = None

STATE_VERSION = 1


def partial_path(output: Path) -> Path:
    return output.parent / f".{output.name}.partial"


def _state_path(output: Path) -> Path:
    return output.parent / f".{output.name}.partial.json"


def input_identity(source: str, input_format: str) -> dict:
    """What ties a partial output to its input: a file changed since (appended to, edited) has another
    size or modification time."""
    stat = os.stat(source)
    return {"input": str(Path(source).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "input_format": input_format}


def _refuse(output: Path, why: str) -> AdelabelError:
    return AdelabelError(f"--resume {output}: {why}; run without --resume to tag the file from its start")


def _complete_lines(path: Path) -> tuple[int, int]:
    """The number of complete (newline-ended) lines of ``path`` and the byte length they fill."""
    count = length = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            count += 1
            length += len(line)
    return count, length


@contextmanager
def resumable_file(output: Path, state: dict, resume: bool) -> Iterator[tuple[IO[str], int]]:
    """An open file beside ``output`` for JSONL records and the number of records it holds already
    (0 unless ``resume``); when the block completes the file replaces ``output``. ``state``: the
    input's identity and the tags' provenance (see the module's docstring).

    Interrupted (a kill, Ctrl-C), the partial file stays for a later ``resume``; a failure with its
    cause known (an error in the input, a full disk) removes it, as the next run has to start over."""
    if output.is_symlink():  # written through, as atomic_file writes: the file it names is replaced
        output = Path(os.path.realpath(output))
    partial, state_file = partial_path(output), _state_path(output)
    state = {"version": STATE_VERSION, **state}
    done = 0
    if resume:
        if not partial.is_file() or not state_file.is_file():
            raise _refuse(output, "no partial output of an earlier run to carry on (it finished, failed, or "
                                  "wrote elsewhere)")
        try:
            saved = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise _refuse(output, f"{state_file} cannot be read ({err})") from None
        differs = sorted(k for k in set(state) | set(saved if isinstance(saved, dict) else {})
                         if not isinstance(saved, dict) or saved.get(k) != state.get(k))
        if differs:
            raise _refuse(output, f"the earlier run differs in {', '.join(differs)} (the input changed, or "
                                  "another model, threshold, precision or backend)")
    try:
        # Appending, not "w": a file another run is writing must not be emptied before its lock is seen.
        fh = open(partial, "a+", encoding="utf-8", newline="")
    except OSError as err:
        raise AdelabelError(f"{output}: cannot write here ({err.strerror})") from None
    with fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AdelabelError(f"--output {output}: another `adelabel tag` is writing it") from None
            except OSError:
                pass  # a file system without locks: unguarded
        if resume:
            done, length = _complete_lines(partial)
            fh.truncate(length)  # a record cut short by the kill
        else:
            fh.truncate(0)
            os.chmod(partial, 0o666 & ~current_umask())
            write_text(state_file, json.dumps(state, indent=2) + "\n")
        try:
            yield fh, done
        except KeyboardInterrupt:  # Ctrl-C, or a TERM (the command line turns it into this)
            fh.flush()
            raise KeyboardInterrupt(f"stopped; the records tagged so far are kept beside {output}: the same "
                                    "command with --resume carries on") from None
        except SystemExit:
            raise
        except BaseException:
            partial.unlink(missing_ok=True)
            state_file.unlink(missing_ok=True)
            raise
        sync_file(fh)
        replace_synced(partial, output)
    state_file.unlink(missing_ok=True)
