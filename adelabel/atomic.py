"""Writing results so that a kill never leaves a mixed or truncated one under the real name.

Everything goes to a temporary name beside the target (same folder, so the final rename stays on
one file system and is atomic) and is renamed into place only when complete. A folder that already
exists is first moved aside and deleted after the new one is in place: a kill between those two
renames leaves no folder under the name, never a mix of old and new files.
"""
from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from adelabel.errors import AdelabelError, OptionError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, and no sweeping of what a killed write left
    fcntl = None

TMP_MARK = ".tmp-"
OLD_MARK = ".old-"
GONE_MARK = ".gone-"  # a folder being deleted: swept, never put back


Kind = Callable[[Path], bool]
"""Whether a folder is one adelabel wrote of a kind (a model folder, a data folder, ...)."""


def json_with(name: str, *keys: str) -> Kind:
    """The kind of folder whose file ``name`` is a JSON object holding ``keys``."""
    def test(folder: Path) -> bool:
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            return False
        return isinstance(data, dict) and all(k in data for k in keys)
    return test


BRAT_DIGITS = 6
"""Digits of the names `tag --format brat` writes (``000001.txt``); past 999,999 lines every name is
widened to the width of the last (adelabel.tagging_io.widen_brat_names)."""


def brat_folder(folder: Path) -> bool:
    """Whether ``folder`` holds what `tag --format brat` writes: a .txt and a .ann for each of the numbers
    1 to N, all named at one width. Corpora often name their files by number too (PubMed IDs, n2c2's
    ``100035.txt``), and a folder replaced whole must not be one of them."""
    names = [p.name for p in folder.iterdir()]
    if not all(re.fullmatch(rf"\d{{{BRAT_DIGITS},}}\.(txt|ann)", name) for name in names):
        return False
    stems = {name[:-4] for name in names}
    return len({len(stem) for stem in stems}) == 1 and len(names) == 2 * len(stems) \
        and {int(stem) for stem in stems} == set(range(1, len(stems) + 1))


is_model_dir = json_with("manifest.json", "format_version", "files")
is_data_dir = json_with("manifest.json", "labels", "splits")
KINDS: tuple[tuple[str, Kind], ...] = (("a prepared data folder", is_data_dir), ("a model folder", is_model_dir),
                                       ("`tag --format brat` output", brat_folder))
"""The kinds a refused output folder is named by, when it is one of them but not of the kind asked for."""


def kind_of(folder: Path, other_than: Kind | None = None,
            kinds: tuple[tuple[str, Kind], ...] = KINDS) -> str | None:
    """Which of adelabel's kinds of folder ``folder`` is (its name in ``kinds``), if any but ``other_than``."""
    try:
        if not folder.is_dir():
            return None
        return next((what for what, test in kinds if test is not other_than and test(folder)), None)
    except OSError:  # a folder that can be entered but not listed: none of adelabel's, as far as can be told
        return None


def _report_kind(folder: Path, other_than: Kind) -> str | None:
    """Whether a folder refused as an output is a report of another command, to name it so. Only here:
    a report is known by a file or two (a folder holding a history.png is not thereby tune's), too
    little to refuse outputs inside such folders by, as check_not_inside does for KINDS."""
    from adelabel.report import is_report  # here, not at start: these modules import this one
    from adelabel.tune import is_tune_report

    return kind_of(folder, other_than, (("an `evaluate --report` folder", is_report),
                                        ("a `tune --report` folder", is_tune_report)))


LISTS = "manifest.json"
"""A model or data folder's list of the files adelabel wrote in it, under ``files``."""
ADDED_LATER = frozenset({"onnx"})  # `adelabel export` writes onnx/ into a model folder after it


def holding(*required: str, only: Iterable[str]) -> Kind:
    """The kind of folder, with no manifest of its own (a report), that holds the files ``required``
    and nothing but names of ``only``: anything else in it is someone's, which replacing it would delete."""
    def test(folder: Path) -> bool:
        return all((folder / name).is_file() for name in required)
    test.names = frozenset(only) | frozenset(required)  # type: ignore[attr-defined]
    return test


def foreign(folder: Path, kind: Kind | None = None) -> str | None:
    """The first entry of ``folder`` that adelabel did not write there (a user's notes, another
    prepared data folder put inside it), which replacing the folder would delete: one its
    ``manifest.json`` does not list, or for a kind made by :func:`holding`, one not of its names; None
    when there is none or the folder has no manifest."""
    names = getattr(kind, "names", None)
    if names is not None:
        return next((p.name for p in sorted(folder.iterdir()) if p.name not in names), None)
    try:
        files = json.loads((folder / LISTS).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, UnicodeDecodeError, RecursionError, AttributeError):
        return None
    if not isinstance(files, dict):
        return None
    listed = {name.split("/")[0] for name in files} | {LISTS} | ADDED_LATER
    return next((p.name for p in sorted(folder.iterdir()) if p.name not in listed and not _leftover(p.name, listed)),
                None)


def _leftover(name: str, listed: set[str]) -> bool:
    """Whether ``name`` is what a killed write of one of the ``listed`` entries left beside it (an
    export's ``.onnx.tmp-...``): adelabel's own, swept by the next such write."""
    marks = "|".join(map(re.escape, (TMP_MARK, OLD_MARK, GONE_MARK)))
    match = re.fullmatch(rf"\.(.+?)(?:{marks}).*", name, re.DOTALL)
    return match is not None and match.group(1) in listed


def ours(folder: Path, kind: Kind) -> bool:
    """Whether ``folder`` may be replaced whole: it is empty, or adelabel wrote it as this kind and
    nothing else is in it."""
    return not any(folder.iterdir()) or (kind(folder) and foreign(folder, kind) is None)


def check_output_dir(path: Path, option: str, kind: Kind) -> None:
    """Refuse, before any work, an output folder that cannot be written (a file, a missing parent) or
    that holds something adelabel did not write there: a folder is replaced whole, so anything else in
    it would be lost."""
    if str(path) == "-":  # standard output to --json and tag's --output; a folder named "-" is a slip
        raise AdelabelError(f"{option} -: this is a folder, which cannot go to standard output; give a folder's name")
    refuse_loop(path, option)
    if path.exists() and not path.is_dir():
        raise AdelabelError(f"{option} {path}: is a file, not a folder")
    here = Path.cwd()
    if path.is_dir() and (path.resolve() == here or path.resolve() in here.parents):
        # Replaced whole, it would leave the shell standing in a deleted folder that looks empty.
        raise AdelabelError(f"{option} {path}: is the working folder{' or holds it' if path.resolve() != here else ''} "
                            "(the output replaces its folder whole); give another folder")
    parent = path.absolute().parent
    if parent.exists() and not parent.is_dir():
        raise AdelabelError(f"{option} {path}: {parent} is not a folder")
    check_not_inside(path, option, "folder", export=getattr(kind, "export", False))
    check_writable(path, option)
    if path.is_dir() and not ours(path, kind):
        other = foreign(path, kind) if kind(path) else None
        if other is not None:
            raise AdelabelError(f"{option} {path}: holds {other}, which adelabel did not write there (the folder is "
                                "replaced whole); move it away, or give another folder")
        found = kind_of(path, other_than=kind) or _report_kind(path, kind)
        if found:
            raise AdelabelError(f"{option} {path}: is {found}, not what this command writes (its output replaces "
                                "the folder whole); give a new or empty folder")
        raise AdelabelError(f"{option} {path}: a folder adelabel did not write (it is replaced whole); "
                            "give a new or empty folder")


def loops(path: Path) -> bool:
    """Whether ``path`` is a symbolic link that leads back to itself (it names no file to read or write)."""
    try:
        os.stat(path)
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def refuse_loop(path: Path, option: str) -> None:
    """A link that leads back to itself names no place to write: the write replaced the link."""
    if os.path.islink(path) and loops(path):
        raise AdelabelError(f"{option} {path}: a symbolic link that leads back to itself; remove it or give "
                            "another path")


def check_output_file(path: Path, option: str) -> None:
    """Refuse, before any work, an output file whose folder is missing, which names a folder, or which
    lies inside one of adelabel's folders."""
    refuse_loop(path, option)
    if path.is_dir():
        raise AdelabelError(f"{option} {path}: is a folder, not a file")
    parent = path.absolute().parent
    if not parent.is_dir():
        above = next((a for a in (parent, *parent.parents) if a.exists()), None)
        if above is not None and not above.is_dir():  # out.txt/result.jsonl: a file where a folder should be
            raise AdelabelError(f"{option} {path}: {above} is a file, not a folder")
        raise AdelabelError(f"{option} {path}: folder {parent} does not exist")
    if is_stream(path):  # /dev/stdout, /dev/fd/N, a pipe: written in place, by a descriptor already open
        return
    check_not_inside(path, option, "file")
    check_writable(path, option)


def check_writable(path: Path, option: str) -> None:
    """Refuse, before any work, an output whose folder (or the nearest one of its folders that exists,
    for one to be made) cannot be written: a read-only disk or a folder without write permission would
    otherwise be found only when the results are complete."""
    child = Path(os.path.realpath(path))  # a link is written through, where it leads
    above = child.parent
    while not above.exists() and above != above.parent:
        above, child = above.parent, above
    if not above.is_dir():
        return  # named by the checks that follow, or by the write itself
    try:  # a real write: permissions alone do not tell of a read-only disk, or of root on /sys
        # Named as a killed write of the output leaves its temporary files, so that one a kill left
        # here is swept by the next write, and is no stranger in a model folder (export's onnx/).
        fd, probe = tempfile.mkstemp(prefix=f".{child.name}{TMP_MARK}{os.getpid()}-", dir=above)
    except OSError as err:
        raise AdelabelError(f"{option} {path}: cannot write in {above} ({err.strerror})") from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


def check_not_inside(path: Path, option: str, what: str, export: bool = False) -> None:
    """Refuse an output inside a model, data or brat folder: it would overwrite one of that folder's
    files, or be an entry its manifest does not list, lost (or in the way) when the folder is written
    again. ``export``: the output is a model's ``onnx/`` export, which the model folder expects."""
    full = Path(os.path.realpath(path))  # a link is written through, where it leads
    for above in full.parents:
        if export and above == full.parent and full.name in ADDED_LATER:
            continue
        if found := kind_of(above):
            raise AdelabelError(f"{option} {path}: lies inside {above}, {found} (which is replaced whole when "
                                f"written again); give a {what} outside it")


def check_apart(output: str | Path, option: str, inputs: Iterable[str | Path | None],
                why: str = "which this command reads; writing there would destroy what is read") -> None:
    """Refuse, before any work, an output that is one of the ``inputs`` a command reads (files or
    folders), lies inside an input folder, or, a folder replaced whole, holds an input: writing it would
    destroy what is read (a corpus inside the data folder it prepares, a split or a model's file
    overwritten by a report). ``why`` ends the message: other outputs, not inputs, say so."""
    out = Path(os.path.realpath(output))  # realpath: a link loop is no error here (the write names it)
    for item in inputs:
        if item is None or str(item) == "-":
            continue
        source = Path(os.path.realpath(item))
        if out == source:
            how = "is"
        elif source in out.parents:
            how = "lies inside"
        elif out in source.parents:
            how = "holds"
        else:
            continue
        raise OptionError(f"{option} {output}: {how} {item}, {why}")


def current_umask() -> int:
    """The process's file-creation mask: read by setting it, so set back at once."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def named_errors(target: Path, tmp: Path) -> Iterator[None]:
    """A failed write into ``tmp`` (a full disk, a quota) becomes an error naming ``target``."""
    try:
        yield
    except BrokenPipeError:  # the reader of a pipe stopped: the command line ends quietly
        raise
    except OSError as err:
        if err.filename is None or str(err.filename).startswith(str(tmp)):
            raise AdelabelError(f"{target}: cannot write ({err.strerror or err})") from None
        raise


def _sweep(target: Path) -> None:
    """Clear what an earlier, killed write of ``target`` left beside it. A kill between the two renames
    of a replacement leaves the old folder aside and none under the name: it is put back first."""
    for mark in (TMP_MARK, GONE_MARK):
        for stale in target.parent.glob(f".{target.name}{mark}*"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    restore_aside(target)
    for aside in target.parent.glob(f".{target.name}{OLD_MARK}*"):
        shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | Path, kind: Kind, exclusive: bool = False) -> Iterator[Path]:
    """A fresh temporary folder beside ``target``; when the block completes it replaces ``target``,
    which must be missing, empty or a folder adelabel wrote (see :func:`ours`). A link is written
    through, as :func:`atomic_file` does: the folder it names is replaced, on its own disk, and the link
    stays. ``exclusive``: ``target`` must still be missing (or empty) when the block completes, else
    :class:`Taken` (another process made it meanwhile), and nothing of another's is swept away."""
    target = Path(target).absolute()
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    if target.name in ("", ".", ".."):
        raise AdelabelError(f"{target}: name a folder of its own, not the current or parent one")
    check_output_dir(target, "output", kind)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if exclusive:  # another process may be writing its own: only the folders of writers gone
            _sweep_dead_folders(target)
        else:
            _sweep(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{TMP_MARK}", dir=target.parent))
        held = _hold(tmp) if exclusive else None
        # mkdtemp makes a private folder; the result should have the permissions any new folder gets.
        tmp.chmod(0o777 & ~current_umask())
    except OSError as err:
        raise AdelabelError(f"{target}: cannot write here ({err.strerror})") from None
    complete = False
    try:
        with named_errors(target, tmp):
            yield tmp
        if exclusive:
            try:
                os.rename(tmp, target)  # never onto a folder with anything in it
            except OSError:
                if target.exists():
                    raise Taken(f"{target}: made by another process just now") from None
                raise
            return
        complete = True
        with named_errors(target, target):
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}{OLD_MARK}", dir=target.parent))
                os.replace(target, old / target.name)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
    finally:
        if complete and tmp.exists() and not os.path.lexists(target):
            # Ctrl-C or a TERM between moving the old folder aside and renaming the new one in: the new one
            # is whole, so it takes the name (the next write sweeps the old one away).
            try:
                os.replace(tmp, target)
            except OSError:
                pass  # the next write of target puts the old one back
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if held is not None:
            os.close(held)


def _sweep_dead_folders(target: Path) -> None:
    """Remove the temporary folders of ``target`` that killed exclusive writes left: such a writer holds
    a lock on its folder (:func:`_hold`) until it ends, however it ends."""
    if fcntl is None:
        return
    for stale in target.parent.glob(f".{glob.escape(target.name)}{TMP_MARK}*"):
        _remove_if_abandoned(stale, folder=True)


def restore_aside(target: str | Path) -> bool:
    """Put back the folder a killed replacement of ``target`` moved aside (``.NAME.old-*/NAME``) when
    nothing holds the name: a kill between the two renames leaves it so, and a reader would otherwise
    find no folder (or take another). Whether one was put back."""
    target = Path(target).absolute()
    if os.path.lexists(target):
        return False
    for aside in sorted(target.parent.glob(f".{glob.escape(target.name)}{OLD_MARK}*")):
        if (aside / target.name).is_dir():
            try:
                os.replace(aside / target.name, target)
            except OSError:
                return False
            shutil.rmtree(aside, ignore_errors=True)
            return True
    return False


class Taken(AdelabelError):
    """An exclusive :func:`atomic_dir`'s target, made by another process while this one wrote its own."""


def is_stream(path: Path) -> bool:
    """Whether ``path`` is a pipe or a device, or names one of this process's descriptors
    (``/dev/stdout``, which links to whatever the shell redirected it to, a file too): written in place
    rather than replaced."""
    parts = Path(os.path.abspath(path)).parts
    if len(parts) > 1 and parts[1] in ("dev", "proc"):
        return True
    return path.exists() and not path.is_file() and not path.is_dir()


@contextmanager
def atomic_file(target: str | Path, mode: str = "w") -> Iterator[IO]:
    """An open temporary file beside ``target``; when the block completes it replaces ``target``.

    A link is written through (the file it names is replaced; the link stays), and a pipe or device
    (``/dev/stdout``, a named pipe) is written in place: there is no file there to replace."""
    target = Path(target)
    encoding = {} if "b" in mode else {"encoding": "utf-8"}
    if is_stream(target):
        # Appending: opening /dev/stdout anew for writing would truncate the file the shell redirected it
        # to, losing what `>>` kept or what was written before.
        with named_errors(target, target), open(target, mode.replace("w", "a"), **encoding) as fh:
            yield fh
        return
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # realpath, unlike resolve, leaves a loop for the write to name
    _sweep_dead(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}{TMP_MARK}{os.getpid()}-", dir=target.absolute().parent)
    except OSError as err:
        raise AdelabelError(f"{target}: cannot write here ({err.strerror})") from None
    tmp = Path(name)
    held = _hold(tmp)  # while this process writes, no other's sweep may take its temporary file
    try:
        os.chmod(fd, 0o666 & ~current_umask())
        with named_errors(target, tmp), os.fdopen(fd, mode, **encoding) as fh:
            yield fh
            sync_file(fh)
        replace_synced(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        if held is not None:
            os.close(held)


def _hold(path: Path) -> int | None:
    """A descriptor holding an exclusive lock on ``path`` until it is closed (the lock also ends with
    the process, however it ends); None where there are no such locks (Windows)."""
    if fcntl is None:
        return None
    held = os.open(path, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    return held


def _sweep_dead(target: Path) -> None:
    """Remove the temporary files of ``target`` that a killed write left beside it: a writer holds a
    lock on its own while it writes (:func:`_hold`), which its end releases, so a file whose lock can be
    taken was left by a writer gone, in any process, container or host sharing the folder. Only names
    this module makes (``.NAME.tmp-PID-XXXXXXXX``) are looked at."""
    if fcntl is None:
        return
    pattern = re.compile(re.escape(f".{target.name}{TMP_MARK}") + r"[0-9]{1,12}-[a-z0-9_]{8}")
    for stale in target.absolute().parent.glob(f".{glob.escape(target.name)}{TMP_MARK}*"):
        if pattern.fullmatch(stale.name):
            _remove_if_abandoned(stale, folder=False)


def _remove_if_abandoned(stale: Path, folder: bool) -> None:
    """Remove ``stale`` (a temporary file, or a ``folder``) unless its writer still holds its lock
    (:func:`_hold`): the lock ends with the writer however it ends, so a free one means a writer gone."""
    try:
        probe = os.open(stale, os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if folder else 0))
    except OSError:  # gone meanwhile, a link (or not of the kind looked for), or not ours to read
        return
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.rmtree(stale, ignore_errors=True) if folder else stale.unlink()
    except OSError:  # held by a living writer, or not ours to remove
        pass
    finally:
        os.close(probe)


def sync_file(fh: IO) -> None:
    """``fh``'s content on disk, before it is renamed into place: after a power cut (not a kill, which the
    rename alone covers) the name may otherwise hold an empty file, and a checkpoint's state would be
    lost, not an epoch."""
    fh.flush()
    try:
        os.fsync(fh.fileno())
    except OSError as err:  # a file system that cannot sync (some FUSE mounts): the rename stands
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


def replace_synced(source: Path, target: Path) -> None:
    """``source`` renamed to ``target``, the rename itself on disk."""
    with named_errors(target, target):
        os.replace(source, target)
        _sync_folder(target.absolute().parent)


def _sync_folder(folder: Path) -> None:
    """The folder's entries (a rename into it) on disk; where a system cannot open a folder to sync it
    (Windows), the rename stands as it is."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(target: str | Path, text: str) -> None:
    with atomic_file(target) as fh:
        fh.write(text)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def remove_dir(target: str | Path) -> None:
    """Delete a folder so that a kill midway leaves nothing under its name (it is renamed first); what
    such a kill leaves aside is swept by the next write or removal of the same name."""
    target = Path(target).absolute()
    if target.parent.is_dir():
        _sweep(target)
    if target.exists():
        gone = Path(tempfile.mkdtemp(prefix=f".{target.name}{GONE_MARK}", dir=target.parent))
        try:
            os.replace(target, gone / target.name)
        finally:
            # Past the rename, a Ctrl-C or TERM (raised here as KeyboardInterrupt) still lets the removal
            # end: left aside, a checkpoint's state stayed on disk until the next run of the same name.
            try:
                shutil.rmtree(gone, ignore_errors=True)
            except KeyboardInterrupt:
                shutil.rmtree(gone, ignore_errors=True)
                raise
