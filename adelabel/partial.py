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

from adelabel.atomic import named_errors, replace_synced, sync_file, write_text
from adelabel.errors import AdelabelError, InputError
from adelabel.versions import differences

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


def _kept_records(path: Path) -> tuple[int, int]:
    """The number of whole records at the start of ``path`` and the bytes they fill: lines that end in a
    newline and hold a JSON object. A kill can cut the last one short; a power cut can leave a stretch
    of zeros or stale bytes (the file is not synced as it grows): the records stop before either."""
    count = length = 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                whole = line.endswith(b"\n") and isinstance(json.loads(line), dict)
            except ValueError:  # UnicodeDecodeError included
                whole = False
            if not whole:
                break
            count += 1
            length += len(line)
    return count, length


def _open_locked(partial: Path, output: Path, resume: bool) -> IO[str]:
    """``partial`` open for appending, with this process's lock on it. Opened before it is locked, the
    file may meanwhile have been finished by the run that held it (renamed to the output) or replaced:
    then it is opened again, so a run never writes into a file no longer under the partial name."""
    for _ in range(3):
        # Appending, not "w": a file another run is writing must not be emptied before its lock is seen.
        fh = open(partial, "a+", encoding="utf-8", newline="")
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise AdelabelError(f"--output {output}: another `adelabel tag` is writing it") from None
            except OSError:
                pass  # a file system without locks: unguarded
        try:
            same = os.path.samestat(os.fstat(fh.fileno()), os.stat(partial))
        except FileNotFoundError:
            same = False
        except OSError:
            fh.close()
            raise
        if same:
            return fh
        fh.close()
        if resume:
            raise _refuse(output, "another `adelabel tag` finished it meanwhile")
    raise AdelabelError(f"--output {output}: other `adelabel tag` runs keep replacing it")


@contextmanager
def resumable_file(output: Path, state: dict, resume: bool) -> Iterator[tuple[IO[str], int]]:
    """An open file beside ``output`` for JSONL records and the number of records it holds already
    (0 unless ``resume``); when the block completes the file replaces ``output``. ``state``: the
    input's identity and the tags' provenance (see the module's docstring).

    Stopped (a kill, Ctrl-C, a worker's death, a full disk), the partial file stays for a later
    ``resume``, and an error says so. An error in the input removes it: the input must change, and
    with it the state a resume requires."""
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
        differs = [key for key, _, _ in differences(saved if isinstance(saved, dict) else {}, state)]
        if differs:
            raise _refuse(output, f"the earlier run differs in {', '.join(differs)} (the input changed, or "
                                  "another model, threshold, precision, backend or adelabel code)")
    kept = (f"the records tagged so far are kept beside {output}: the same command with --resume "
            "carries on")
    with named_errors(output, partial):
        try:
            fh = _open_locked(partial, output, resume)
        except OSError as err:
            raise AdelabelError(f"{output}: cannot write here ({err.strerror})") from None
        with _closing(fh):
            if resume:
                done, length = _kept_records(partial)
                fh.truncate(length)  # a record cut short by the kill
            else:
                fh.truncate(0)
                write_text(state_file, json.dumps(state, indent=2) + "\n")
            try:
                yield fh, done
            except KeyboardInterrupt:  # Ctrl-C, or a TERM (the command line turns it into this)
                _flush(fh)
                raise KeyboardInterrupt(f"stopped; {kept}") from None
            except InputError:
                partial.unlink(missing_ok=True)
                state_file.unlink(missing_ok=True)
                raise
            except AdelabelError as err:
                _flush(fh)
                raise AdelabelError(f"{err}; {kept}") from None
            except OSError as err:
                if err.filename is not None and not str(err.filename).startswith(str(partial)):
                    raise  # not this file's: the command line names what failed
                _flush(fh)
                raise AdelabelError(f"{output}: cannot write ({err.strerror or err}); {kept}") from None
            sync_file(fh)
            replace_synced(partial, output)
            # After the rename: a kill between the two leaves the finished output and a state with no partial
            # file (a resume says the run finished), where the other order left a finished output under the
            # partial name that no resume would take. A run begun in between wrote a state of its own: it stays.
            _drop_state(state_file, state)


def keep_records(fh: IO[str], partial: Path, count: int) -> int:
    """The partial output ``fh`` (open on ``partial``) cut back to its first ``count`` records; ``count``."""
    length = 0
    with open(partial, "rb") as whole:
        for _ in range(count):
            length += len(next(whole))
    fh.flush()
    fh.truncate(length)
    return count


def _drop_state(path: Path, state: dict) -> None:
    try:
        if json.loads(path.read_text(encoding="utf-8")) == state:
            path.unlink()
    except (OSError, ValueError, UnicodeDecodeError):
        pass


@contextmanager
def _closing(fh: IO[str]) -> Iterator[IO[str]]:
    """``fh``, closed on the way out; when an error is already on its way, one from the close (a full
    disk refusing the buffer's rest again) does not replace it: its message says what is kept."""
    try:
        yield fh
    except BaseException:
        try:
            fh.close()
        except OSError:
            pass
        raise
    fh.close()


def _flush(fh: IO[str]) -> None:
    """What was written, on its way to the file, where a full disk lets it."""
    try:
        fh.flush()
    except OSError:
        pass
