"""Writing results so that a kill never leaves a mixed or truncated one under the real name.

Everything goes to a temporary name beside the target (same folder, so the final rename stays on
one file system and is atomic) and is renamed into place only when complete. A folder that already
exists is first moved aside and deleted after the new one is in place: a kill between those two
renames leaves no folder under the name, never a mix of old and new files.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from adelabel.errors import AdelabelError

TMP_MARK = ".tmp-"
OLD_MARK = ".old-"


def check_output_dir(path: Path, option: str) -> None:
    """Refuse, before any work, an output folder that cannot be written: a file, or a missing parent."""
    if path.exists() and not path.is_dir():
        raise AdelabelError(f"{option} {path}: is a file, not a folder")
    parent = path.absolute().parent
    if parent.exists() and not parent.is_dir():
        raise AdelabelError(f"{option} {path}: {parent} is not a folder")


def check_output_file(path: Path, option: str) -> None:
    """Refuse, before any work, an output file whose folder is missing or which names a folder."""
    if path.is_dir():
        raise AdelabelError(f"{option} {path}: is a folder, not a file")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise AdelabelError(f"{option} {path}: folder {parent} does not exist")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def _naming(target: Path, tmp: Path) -> Iterator[None]:
    """A failed write into ``tmp`` (a full disk, a quota) becomes an error naming ``target``."""
    try:
        yield
    except OSError as err:
        if err.filename is None or str(err.filename).startswith(str(tmp)):
            raise AdelabelError(f"{target}: cannot write ({err.strerror or err})") from None
        raise


def _sweep(target: Path) -> None:
    """Remove what an earlier, killed write of ``target`` left beside it."""
    for stale in target.parent.glob(f".{target.name}{TMP_MARK}*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    for stale in target.parent.glob(f".{target.name}{OLD_MARK}*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """A fresh temporary folder beside ``target``; when the block completes it replaces ``target``."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise AdelabelError(f"{target}: is a file, not a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{TMP_MARK}", dir=target.parent))
        # mkdtemp makes a private folder; the result should have the permissions any new folder gets.
        tmp.chmod(0o777 & ~_umask())
    except OSError as err:
        raise AdelabelError(f"{target}: cannot write here ({err.strerror})") from None
    try:
        with _naming(target, tmp):
            yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}{OLD_MARK}", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_file(target: str | Path, mode: str = "w") -> Iterator[IO]:
    """An open temporary file beside ``target``; when the block completes it replaces ``target``."""
    target = Path(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}{TMP_MARK}", dir=target.absolute().parent)
    except OSError as err:
        raise AdelabelError(f"{target}: cannot write here ({err.strerror})") from None
    tmp = Path(name)
    try:
        os.chmod(fd, 0o666 & ~_umask())
        with _naming(target, tmp), os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> None:
    with atomic_file(target) as fh:
        fh.write(text)


def remove_dir(target: str | Path) -> None:
    """Delete a folder so that a kill midway leaves nothing under its name (it is renamed first)."""
    target = Path(target)
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}{OLD_MARK}", dir=target.parent))
        os.replace(target, old / target.name)
        shutil.rmtree(old, ignore_errors=True)
