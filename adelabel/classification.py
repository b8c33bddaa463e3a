"""Scoring and tuning sentence classifiers: per-class precision/recall/F1, the confusion matrix, and
for two classes ROC-AUC, average precision and the calibration of the positive class's probability.

scikit-learn computes the scores (it is installed with seqeval already, and its ROC and PR curves are
the reference implementations); the calibration bins are the ones the tagger's sentence probability
is judged by (:func:`adelabel.evaluate.calibration_bins`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from adelabel.data import Example
from adelabel.evaluate import GATE_THRESHOLDS, calibration_bins, positive_f1
from adelabel.inference import classify
from adelabel.models.base import threshold_of, threshold_text
from adelabel.models.classifier import calibrated


def _kept(examples: Sequence[Example], probs: Sequence[list[float] | None], classes: int):
    rows = [i for i, p in enumerate(probs) if p is not None]
    gold = np.array([examples[i].label for i in rows], dtype=np.int64)
    return rows, gold, np.array([probs[i] for i in rows], dtype=np.float64).reshape(len(rows), classes)


TEMPERATURES = (0.05, 20.0)
"""The range a classifier's fitted temperature keeps to."""


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def fit_calibration(log_probs: torch.Tensor, target: torch.Tensor, positive: int | None) -> tuple[float, float]:
    """The temperature (within TEMPERATURES) and, with a positive class, its bias that best predict
    ``target`` from the model's log-probabilities (likelihood); (1, 0) where the fit fails."""
    # The temperature is fitted inside its bounds, not clamped after: on a dev split the model separates
    # perfectly, likelihood drives it towards 0 and the bias with it, and a bias fitted for a temperature
    # of 0.007 put every text in the positive class at the clamped 0.05.
    low, high = math.log(TEMPERATURES[0]), math.log(TEMPERATURES[1])
    free = torch.full((), _logit((0.0 - low) / (high - low)), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=positive is not None)
    optimizer = torch.optim.LBFGS([free] + ([bias] if bias.requires_grad else []), max_iter=100,
                                  line_search_fn="strong_wolfe")

    def temperature_of(u: torch.Tensor) -> torch.Tensor:
        return (low + (high - low) * torch.sigmoid(u)).exp()

    def loss_of(temperature, shift) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(calibrated(log_probs, temperature, shift, positive), target)

    def closure():
        optimizer.zero_grad()
        loss = loss_of(temperature_of(free), bias)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    temperature, shift = float(temperature_of(free.detach())), float(bias.detach())
    if not (math.isfinite(temperature) and math.isfinite(shift)) or \
            float(loss_of(temperature, shift)) > float(loss_of(1.0, 0.0)):
        return 1.0, 0.0  # a fit that failed: the model's own probabilities
    return temperature, shift


@torch.no_grad()
def tune_classifier(model, examples: Sequence[Example], batch_size: int, device: torch.device) -> None:
    """Fit the temperature (and with two classes the positive class's bias) on these (dev) examples
    by likelihood, then, with two classes, the threshold on the positive class's calibrated
    probability that gives the best F1."""
    model.temperature.fill_(1.0)
    model.bias.fill_(0.0)
    model.threshold.fill_(0.5)
    _, gold, probs = _kept(examples, classify(model, examples, batch_size, device), len(model.classes))
    if len(np.unique(gold)) < 2:
        return  # one class only: nothing to calibrate against
    log_probs = torch.from_numpy(np.log(np.clip(probs, 1e-12, 1.0)))
    temperature, shift = fit_calibration(log_probs, torch.from_numpy(gold), model.positive)
    model.temperature.fill_(temperature)
    model.bias.fill_(shift)
    if model.positive is not None:
        scaled = calibrated(log_probs, temperature, shift, model.positive)
        calibrated_positive = torch.softmax(scaled, -1)[:, model.positive].numpy()
        is_positive = gold == model.positive
        best = max(GATE_THRESHOLDS, key=lambda t: (positive_f1(is_positive, calibrated_positive >= t), -abs(t - 0.5)))
        model.threshold.fill_(best)


def classifier_metrics(model, examples: Sequence[Example], batch_size: int, device: torch.device,
                       threshold: float | None = None, probs: Sequence[list[float] | None] | None = None) -> dict:
    """Every score of the classifier on gold-labelled examples; ``f1`` is the one training selects
    epochs by: the positive class's F1 with two classes, the macro F1 with more."""
    from sklearn.metrics import (average_precision_score, confusion_matrix, precision_recall_fscore_support,
                                 roc_auc_score)

    if probs is None:
        probs = classify(model, examples, batch_size, device)
    rows, gold, p = _kept(examples, probs, len(model.classes))
    classes = list(model.classes)
    decided = model.decide(torch.from_numpy(p), threshold).numpy() if len(rows) else np.zeros(0, dtype=np.int64)
    labels = list(range(len(classes)))
    if len(rows):
        precision, recall, f1, support = precision_recall_fscore_support(gold, decided, labels=labels, zero_division=0)
    else:  # sklearn refuses an empty split; nothing scored is a zero of each, as for the tagger
        precision = recall = f1 = np.zeros(len(labels))
        support = np.zeros(len(labels), dtype=np.int64)
    present = np.isin(labels, np.concatenate([gold, decided]))
    result: dict = {
        "task": "classify", "classes": classes, "texts": len(rows),
        # A text without a word (data prepared before such lines were skipped) has nothing to classify.
        "unscored": len(examples) - len(rows),
        "per_class": {c: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                          "support": int(support[k])} for k, c in enumerate(classes)},
        # Over the classes the split holds or the model predicts: one absent from both is not a zero.
        "macro": {name: float(values[present].mean()) if present.any() else 0.0
                  for name, values in (("precision", precision), ("recall", recall), ("f1", f1))}
                 | {"support": int(support.sum())},
        "accuracy": float((decided == gold).mean()) if len(rows) else 0.0,
        "confusion": confusion_matrix(gold, decided, labels=labels).tolist() if len(rows) else [],
    }
    if model.positive is None:
        result["f1"] = result["macro"]["f1"]
        return result
    pos = model.positive
    is_positive, score = gold == pos, p[:, pos] if len(rows) else np.zeros(0)
    cut = threshold_of(model.threshold if threshold is None else threshold)
    both = 0 < is_positive.sum() < len(is_positive)
    result.update({
        "positive": classes[pos], "threshold": cut, "f1": float(f1[pos]),
        # Undefined (None) unless the split holds both classes.
        "roc_auc": float(roc_auc_score(is_positive, score)) if both else None,
        "average_precision": float(average_precision_score(is_positive, score)) if both else None,
        # None on an empty split, as the tagger's: a 0.0 would read as a perfect calibration.
        "brier": float(((score - is_positive) ** 2).mean()) if len(rows) else None,
        "ece": sum(n / len(score) * abs(mean - rate)
                   for mean, rate, n in calibration_bins(is_positive.tolist(), score.tolist())) if len(rows) else None,
    })
    return result


def format_classification(result: dict) -> str:
    """The printed report: a row per class and the macro average, the confusion matrix (rows gold,
    columns predicted) and, with two classes, the positive class's ranking and calibration."""
    classes = result["classes"]
    # The average's row is told from a class of that name ("macro" is a fine name for a topic).
    average = next(n for n in ("macro", "macro average", "(macro average)", "") if n not in classes)
    width = max(10, len(average) + 2, *(len(c) + 2 for c in classes))
    rows = [f"{'':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, r in [*result["per_class"].items(), (average, result["macro"])]:
        rows.append(f"{name:<{width}}{r['precision']:>10.4f}{r['recall']:>10.4f}{r['f1']:>10.4f}{r['support']:>10}")
    rows.append(f"accuracy {result['accuracy']:.4f}"
                + (f" ({result['unscored']:,} texts without a word not scored)" if result.get("unscored") else ""))
    rows += ["", "confusion matrix (rows: gold, columns: predicted):",
             f"{'':<{width}}" + "".join(f"{c:>{width}}" for c in classes)]
    rows += [f"{c:<{width}}" + "".join(f"{n:>{width}}" for n in line) for c, line in zip(classes, result["confusion"])]
    if "positive" in result:
        shown = lambda v, why="one class": f"undefined ({why})" if v is None else f"{v:.4f}"  # noqa: E731
        rows += ["", f"{result['positive']} (positive class, threshold {threshold_text(result['threshold'])}): "
                     f"F1 {result['f1']:.4f}, ROC-AUC {shown(result['roc_auc'])}, average precision "
                     f"{shown(result['average_precision'])}; its probability: ECE {shown(result['ece'], 'no text')}, "
                     f"Brier {shown(result['brier'], 'no text')}"]
    return "\n".join(rows)


def misclassified(texts: Sequence[str], doc_ids: Sequence[str], examples: Sequence[Example],
                  probs: Sequence[list[float] | None], model, threshold: float | None = None) -> list[dict]:
    """Each text the classifier got wrong, for error analysis (what ``--report`` writes)."""
    out = []
    for text, doc, example, p in zip(texts, doc_ids, examples, probs):
        if p is None:
            continue
        predicted = int(model.decide(torch.tensor([p]), threshold)[0])
        if predicted != example.label:
            out.append({"doc_id": doc, "text": text, "gold": model.classes[example.label],
                        "predicted": model.classes[predicted],
                        "scores": {c: round(v, 4) for c, v in zip(model.classes, p)}})
    return out
