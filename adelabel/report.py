"""Report folders: what ``adelabel evaluate --report DIR`` writes beside the printed scores.

    metrics.json      every score (the same as --json)
    errors.jsonl      each sentence with a mistake: false positive and negative entities and relations
    reliability.png   the sentence probability's reliability diagram (predicted vs observed rate)

Plots with matplotlib's Agg backend, which needs no display.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from adelabel.atomic import atomic_dir
from adelabel.evaluate import calibration_bins


def is_report(folder: Path) -> bool:
    return (folder / "metrics.json").is_file() and (folder / "errors.jsonl").is_file()


def reliability_diagram(labels: Sequence[bool], probs: Sequence[float], path: Path, bins: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    centres, rates, counts = zip(*calibration_bins(labels, probs, bins))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(centres, rates, marker="o", label="this model")
    for x, y, n in zip(centres, rates, counts):
        ax.annotate(f"{n}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("predicted probability of reporting an ADE (bin mean)")
    ax.set_ylabel("share of the bin's sentences that do")
    ax.set_title("Sentence probability: reliability")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(folder: Path, result: dict, mistakes: list[dict], labels: Sequence[bool],
                 probs: Sequence[float]) -> None:
    with atomic_dir(folder, is_report) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        with (tmp / "errors.jsonl").open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(m, ensure_ascii=False) + "\n" for m in mistakes)
        if probs:
            reliability_diagram(labels, probs, tmp / "reliability.png")
