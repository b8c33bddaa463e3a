"""Fetching the ADE corpus v2 files, refusing any copy that is not byte-for-byte the expected one.

The corpus has no versioned release: it lives in several public copies that have drifted (line
endings, re-encodings, fixed or added lines), and every reported score depends on the exact lines
read. The SHA-256 digests in :data:`CORPUS_FILES` pin the version the numbers were measured on, so
a download either yields exactly those bytes or fails loudly instead of silently training and
scoring on a different corpus.

A file only reaches its final name once it is complete and verified: it is streamed into a
temporary file beside the target, hashed while written, and moved into place with ``os.replace``
(atomic on one file system). Whatever goes wrong, the temporary file is removed, so a later run
never mistakes a partial download for the corpus.
"""
from __future__ import annotations

import glob
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from adelabel.atomic import current_umask, sha256 as file_digest
from adelabel.corpus.ade import AE_FILE, DOSE_FILE, NEG_FILE
from adelabel.errors import AdelabelError

DEFAULT_BASE_URL = "https://raw.githubusercontent.com/trunghlt/AdverseDrugReaction/master/ADE-Corpus-V2/"
DEFAULT_DEST = Path("corpora/ade-v2")

CORPUS_FILES: dict[str, tuple[str, int]] = {
    AE_FILE: ("542cdc483ccc94927762eaf2c9a8ecac49a6c10037dda2895be6a6e20160f75a", 1_423_024),
    DOSE_FILE: ("78b46dfcdc1325d7f81e5e01f5a424e380e4b38fafca02f6e8f67064ca73f2db", 59_669),
    NEG_FILE: ("8f506c159042ce354fbf26981dc39971dde8f09b1158d94106eab1e516e53fcf", 2_308_469),
}
"""File name -> (SHA-256 hex digest, size in bytes) of the corpus version the results refer to."""

CHUNK_SIZE = 64 * 1024
USER_AGENT = "adelabel-corpus-download"


def download_corpus(dest: Path = DEFAULT_DEST, base_url: str = DEFAULT_BASE_URL,
                    files: dict[str, tuple[str, int]] | None = None, timeout: float = 60.0,
                    progress: Callable[[str], None] | None = None, force: bool = False) -> list[Path]:
    """Download ``files`` (default :data:`CORPUS_FILES`) from ``base_url`` into ``dest``.

    A file already in ``dest`` with the expected size and digest is kept as it is unless ``force``.
    One with other content (a copy of another version, the user's own edit) is refused, before
    anything is fetched, unless ``force``: replacing it would lose it. ``progress`` receives one
    line per file.
    ``timeout`` (seconds) applies to connecting and to each wait for data.

    Returns the paths of all files, in the order of ``files``. Raises :class:`AdelabelError` naming
    the file and URL on any network, HTTP, size or checksum failure; files verified before the
    failure stay in place.
    """
    dest = Path(dest)
    files = CORPUS_FILES if files is None else files
    report = progress or (lambda _line: None)
    if dest.exists() and not dest.is_dir():
        raise AdelabelError(f"--out {dest}: is a file, not a folder")
    from adelabel.atomic import check_not_inside, kind_of

    if found := kind_of(dest):
        raise AdelabelError(f"--out {dest}: is {found}, not a corpus folder; choose another --out")
    check_not_inside(dest, "--out", "folder")
    # The folders this call makes, deepest first: a failure removes them again.
    created = [p for p in [dest, *dest.absolute().parents] if not p.exists()]
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AdelabelError(f"--out {dest}: cannot create the folder ({err.strerror or err})") from err
    try:
        return _download(dest, base_url, files, timeout, report, force)
    except BaseException:
        for folder in created:  # a failure leaves no empty folder behind (one with verified files stays)
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _download(dest: Path, base_url: str, files: dict[str, tuple[str, int]], timeout: float,
              report: Callable[[str], None], force: bool) -> list[Path]:
    for name in files:
        # The name becomes both a path and part of a URL; anything but a bare file name could
        # write outside ``dest``.
        if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
            raise AdelabelError(f"not a plain file name in the corpus file list: {name!r}")
    present = {name: not force and _matches(dest / name, sha256.lower(), size)
               for name, (sha256, size) in files.items()}
    for name, intact in present.items():
        if not force and not intact and (dest / name).exists():
            raise AdelabelError(f"{dest / name}: present, but not the pinned version of the corpus (another copy, a "
                                "portion of it, or edited); nothing was downloaded. Files you have can be used as "
                                "they are (prepare --corpus reads them); --force replaces them, or choose another --out")
    paths = []
    for name, (sha256, size) in files.items():
        target = dest / name
        if present[name]:
            report(f"{name}: already present ({_human_size(size)}, sha256 ok), skipped")
        else:
            _fetch(_file_url(base_url, name), target, name, sha256.lower(), size, timeout)
            report(f"{name}: {_human_size(size)}, sha256 ok")
        paths.append(target)
    return paths


def _file_url(base_url: str, name: str) -> str:
    # Joining by hand rather than with urljoin: urljoin drops the last path segment of a base
    # given without a trailing slash, which would silently fetch from the parent folder.
    return base_url.rstrip("/") + "/" + urllib.parse.quote(name)


def _matches(path: Path, sha256: str, size: int) -> bool:
    """Whether ``path`` is a regular file with exactly the expected size and digest."""
    try:
        # The size check first spares hashing a file that is obviously different.
        if not path.is_file() or path.stat().st_size != size:
            return False
        return file_digest(path) == sha256
    except OSError as err:
        raise AdelabelError(f"cannot read the existing corpus file {path}: {err}") from err


def _fetch(url: str, target: Path, name: str, sha256: str, size: int, timeout: float) -> None:
    """Stream ``url`` into ``target`` via a temporary file; raise AdelabelError unless verified."""
    for stale in target.parent.glob(f".{glob.escape(name)}.*.part"):  # what a killed download left
        stale.unlink(missing_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target.parent)
        # mkstemp makes the file private; the corpus is read by whoever may read the folder.
        os.chmod(fd, 0o666 & ~current_umask())
    except OSError as err:
        raise AdelabelError(f"{name}: cannot create a temporary file in {target.parent}: {err}") from err
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                written, actual = _stream(url, out, name, size, timeout)
        except AdelabelError:
            raise
        except urllib.error.HTTPError as err:
            # Before URLError: HTTPError is a subclass and carries the status the user needs.
            raise AdelabelError(f"{name}: HTTP {err.code} {err.reason} from {url}") from err
        except urllib.error.URLError as err:
            raise AdelabelError(f"{name}: cannot reach {url}: {_describe(err.reason)}") from err
        except (http.client.HTTPException, OSError) as err:
            # TimeoutError, ConnectionResetError and IncompleteRead mid-body end up here, as do
            # local write errors such as a full disk.
            raise AdelabelError(f"{name}: download from {url} failed: {_describe(err)}") from err

        if written != size:
            raise AdelabelError(
                f"{name}: {url} sent {written:,} bytes (sha256 {actual}), expected {size:,} bytes "
                f"(sha256 {sha256}); file refused")
        if actual != sha256:
            raise AdelabelError(
                f"{name}: checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                f"file refused (this is not the corpus version the results were measured on)")
        try:
            os.replace(tmp, target)
        except OSError as err:
            raise AdelabelError(f"{name}: cannot move the verified download to {target}: {err}") from err
    finally:
        # Covers every exit, KeyboardInterrupt included; after a successful replace the
        # temporary name no longer exists.
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _stream(url: str, out: BinaryIO, name: str, size: int, timeout: float) -> tuple[int, str]:
    """Copy the body of ``url`` to ``out``; return the byte count and the SHA-256 hex digest."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest = hashlib.sha256()
    written = 0
    with urllib.request.urlopen(request, timeout=timeout) as response:
        announced = response.headers.get("Content-Length") if response.headers else None
        if announced is not None and announced.strip().isdigit() and int(announced) != size:
            # Refuse before transferring anything: a different length cannot be the pinned file.
            raise AdelabelError(f"{name}: {url} announces {int(announced):,} bytes, "
                                f"expected {size:,}; file refused")
        while chunk := response.read(CHUNK_SIZE):
            written += len(chunk)
            if written > size:
                # Stop early rather than fill the disk with whatever the server keeps sending.
                raise AdelabelError(f"{name}: {url} sent more than the expected {size:,} bytes; "
                                    f"file refused")
            digest.update(chunk)
            out.write(chunk)
        # http.client returns an empty read, not an error, when the peer closes before the
        # announced length; the remaining count is the only sign of the truncation.
        remaining = getattr(response, "length", None)
        if remaining:
            raise AdelabelError(f"{name}: connection to {url} closed after {written:,} of "
                                f"{written + remaining:,} bytes; partial file discarded")
    return written, digest.hexdigest()


def _describe(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, http.client.IncompleteRead):
        return f"connection closed after {len(reason.partial):,} bytes"
    text = str(reason)
    return text if text else type(reason).__name__


def _human_size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1_000_000:.1f} MB"
