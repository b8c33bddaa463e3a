"""Maintainers: store a trained model folder as the package's ready tagger, with half-precision
weights (adelabel/pretrained/ade-bilstm/).

    python tools/package_model.py models/ready
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adelabel import model_dir  # noqa: E402
from adelabel.pretrained import READY  # noqa: E402


def main(source: Path) -> None:
    model, config, vocabs = model_dir.load(source, "cpu")
    # The teachers are recorded as the maintainer's absolute folders; a user's copy should name them as
    # the README's recipe does (models/bilstm), not by a path on the machine that trained them.
    if config.get("teacher"):
        config["teacher"] = [_relative(t) for t in config["teacher"]]
    metrics = json.loads((source / model_dir.METRICS).read_text(encoding="utf-8"))
    model_dir.save(READY, model, config, vocabs, metrics=metrics, log=source / model_dir.LOG, half=True)
    size = sum(p.stat().st_size for p in READY.rglob("*") if p.is_file())
    print(f"wrote {READY} ({size / 2**20:.1f} MiB)")


def _relative(folder: str) -> str:
    """A teacher's folder relative to the repository's root (its last two parts if outside it)."""
    path = Path(folder).absolute()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(Path(path.parent.name, path.name))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
