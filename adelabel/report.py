"""Report folders: what ``adelabel evaluate --report DIR`` writes beside the printed scores.

    metrics.json      every score (the same as --json)
    errors.jsonl      each sentence with a mistake: false positive and negative entities and relations
    reliability.png   the sentence probability's reliability diagram (predicted vs observed rate)
    entity_reliability.png, relation_reliability.png   the same for entity and relation scores (the
                      sentences with annotations, gate open; judged against exact matches)

and for a sentence classifier:

    metrics.json      every score (the same as --json)
    errors.jsonl      each misclassified text with its gold and predicted class and the scores
    confusion.png     the confusion matrix (rows gold, columns predicted)
    roc.png, pr.png   ROC and precision-recall curves of the positive class (two classes)
    reliability.png   the positive class's probability against the observed rate (two classes)

Plots with matplotlib's Agg backend, which needs no display.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from adelabel.atomic import atomic_dir, holding
from adelabel.evaluate import calibration_bins


is_report = holding("metrics.json", "errors.jsonl", only=(
    "per_type.png", "entity_confusion.png", "confusion.png", "roc.png", "pr.png", "reliability.png",
    "entity_reliability.png", "relation_reliability.png"))
"""A folder `evaluate --report` wrote: these files and nothing else (a user's own files in it are
refused, not deleted with the folder)."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    # Class and type names are the data's: a pair of "$" in them ("$", "$$" price tiers) is text, not
    # mathematics for matplotlib to parse (it fails on most such pairs).
    matplotlib.rcParams["text.parse_math"] = False
    # A name in a script the bundled font lacks (CJK, say) is drawn as boxes; the warning per glyph would
    # bury the scores printed above it.
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning)
    from matplotlib import pyplot as plt

    return plt


def reliability_diagram(labels: Sequence[bool], probs: Sequence[float], path: Path, bins: int = 10,
                        what: str = "reporting an ADE", counted: str = "sentences") -> None:
    """Observed frequency against predicted probability, in equal bins; ``counted``: what the number
    beside each point counts (the sentences, entities or pairs in its bin, and where they come from)."""
    plt = _pyplot()

    centres, rates, counts = zip(*calibration_bins(labels, probs, bins))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(centres, rates, marker="o", label="this model")
    for x, y, n in zip(centres, rates, counts):
        ax.annotate(f"{n}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel(f"predicted probability of {what} (bin mean)")
    ax.set_ylabel(f"observed frequency of {what}")
    ax.set_title(f"Reliability of the probability of {what}\n(numbers: {counted})", fontsize=10)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def training_curves(records: Sequence[dict], path: Path) -> None:
    """``curves.png``: each epoch's mean training loss and dev F1, the kept (best) epoch marked."""
    plt = _pyplot()

    epochs = [r["epoch"] for r in records]
    fig, (loss_ax, f1_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_ax.plot(epochs, [r["loss"] for r in records], marker="o")
    loss_ax.set_title("training loss (mean per batch)")
    f1_ax.plot(epochs, [r["dev_f1"] for r in records], marker="o", color="tab:green")
    best = max(records, key=lambda r: r["dev_f1"])
    f1_ax.scatter([best["epoch"]], [best["dev_f1"]], s=120, facecolors="none", edgecolors="black",
                  label=f"kept: epoch {best['epoch']}, {best['dev_f1']:.4f}")
    f1_ax.set_title("dev F1")
    f1_ax.legend(loc="lower right")
    for ax in (loss_ax, f1_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


DIAGRAMS = {"reliability.png": "reporting an ADE", "entity_reliability.png": "an entity being exactly right",
            "relation_reliability.png": "a pair being related"}
COUNTED = {"reliability.png": "sentences per bin", "entity_reliability.png": "entities per bin, annotated sentences",
           "relation_reliability.png": "pairs per bin, annotated sentences"}


def type_bars(result: dict, path: Path) -> None:
    """``per_type.png``: precision, recall and F1 of each entity type (and micro), for both protocols."""
    plt = _pyplot()

    types = [k for k, v in result.items() if isinstance(v, dict) and "f1" in v and "support" in v
             and k not in ("macro", "weighted", "relations", "relations_every_pair", "sentences")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (title, scores) in zip(axes, (("all sentences, as `tag` outputs them", result),
                                          ("annotated sentences, gate open", result["annotated_only"]))):
        for k, measure in enumerate(("precision", "recall", "f1")):
            # A type predicted only in ADE-NEG sentences has no row among the annotated ones: none found there.
            values = [scores.get(t, {}).get(measure, 0.0) for t in types]
            bars = ax.bar([x + (k - 1) * 0.27 for x in range(len(types))], values, width=0.27, label=measure)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(range(len(types)), types)
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(folder: Path, result: dict, mistakes: list[dict],
                 diagrams: dict[str, tuple[Sequence[float], Sequence[bool]]],
                 confusion: tuple[Sequence[str], Sequence[Sequence[int]]] | None = None, ade: bool = True) -> None:
    """``diagrams``: file name (a key of :data:`DIAGRAMS`) -> (probabilities, outcomes); ``confusion``:
    an entity-type confusion (labels, matrix) drawn as entity_confusion.png; ``ade``: the data is the ADE
    corpus's (else the sentence decision is worded as holding an entity)."""
    with atomic_dir(folder, is_report) as tmp:
        if "annotated_only" in result:
            type_bars(result, tmp / "per_type.png")
        if confusion is not None:
            confusion_plot(confusion[1], confusion[0], tmp / "entity_confusion.png",
                           "Entity types, annotated sentences\n(spans matched by their boundaries)")
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        with (tmp / "errors.jsonl").open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(m, ensure_ascii=False) + "\n" for m in mistakes)
        for name, (probs, outcomes) in diagrams.items():
            if probs:
                what = DIAGRAMS[name] if ade or name != "reliability.png" else "holding an entity"
                reliability_diagram(outcomes, probs, tmp / name, what=what, counted=COUNTED[name])


def confusion_plot(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: Path,
                   title: str = "Confusion matrix") -> None:
    plt = _pyplot()
    size = 2.5 + 0.6 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion, cmap="Blues")
    top = max((max(row) for row in confusion), default=0)
    for i, row in enumerate(confusion):
        for j, n in enumerate(row):
            ax.text(j, i, f"{n:,}", ha="center", va="center", color="white" if n > top / 2 else "black")
    # Slanted names end under their column (anchored at their right end), not centred across two.
    slant = {"rotation": 45, "ha": "right", "rotation_mode": "anchor"} if len(classes) > 4 else {}
    ax.set_xticks(range(len(classes)), classes, **slant)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def operating_point(is_positive: Sequence[bool], scores: Sequence[float], cut: float) -> tuple[float, float, float | None]:
    """False positive rate, recall and precision (None when nothing is decided positive) of deciding
    "positive" where a score reaches ``cut``: the point the plots mark, computed rather than taken from
    the curve's nearest cut, which may lie on the other side of it."""
    gold = np.asarray(is_positive, dtype=bool)
    decided = np.asarray(scores) >= cut
    hits = float((gold & decided).sum())
    precision = hits / float(decided.sum()) if decided.any() else None
    return float((~gold & decided).sum()) / max(1, int((~gold).sum())), hits / max(1, int(gold.sum())), precision


def curve_plots(is_positive: Sequence[bool], scores: Sequence[float], positive: str, result: dict,
                folder: Path) -> None:
    """roc.png and pr.png of the positive class, with the chosen threshold marked."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _pyplot()
    fpr, tpr, _ = roc_curve(is_positive, scores)
    precision, recall, _ = precision_recall_curve(is_positive, scores)
    cut = result["threshold"]
    point_fpr, point_tpr, point_precision = operating_point(is_positive, scores, cut)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.plot(fpr, tpr, label=f"ROC-AUC {result['roc_auc']:.3f}")
    ax.plot(point_fpr, point_tpr, "o", label=f"threshold {cut:g}")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC curve: {positive}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(folder / "roc.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision, label=f"average precision {result['average_precision']:.3f}")
    if point_precision is not None:
        ax.plot(point_tpr, point_precision, "o", label=f"threshold {cut:g}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Precision-recall curve: {positive}")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(folder / "pr.png", dpi=100)
    plt.close(fig)


def write_classifier_report(folder: Path, result: dict, mistakes: list[dict], gold: Sequence[int],
                            probs: Sequence[Sequence[float]]) -> None:
    with atomic_dir(folder, is_report) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        with (tmp / "errors.jsonl").open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(m, ensure_ascii=False) + "\n" for m in mistakes)
        confusion_plot(result["confusion"], result["classes"], tmp / "confusion.png")
        if "positive" in result and 0 < sum(g == result["classes"].index(result["positive"]) for g in gold) < len(gold):
            pos = result["classes"].index(result["positive"])
            is_positive, scores = [g == pos for g in gold], [p[pos] for p in probs]
            curve_plots(is_positive, scores, result["positive"], result, tmp)
            reliability_diagram(is_positive, scores, tmp / "reliability.png", what=result["positive"], counted="texts per bin")
