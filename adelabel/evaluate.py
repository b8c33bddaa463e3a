"""Entity-level scoring with seqeval in strict IOB2 mode, the way the ADE literature reports it."""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from adelabel.data import Example
from adelabel.models.base import SequenceLabeler, threshold_of
from adelabel.data import token_spans
from adelabel.inference import Prediction, effect_types, predict, reported_pairs, reports
from adelabel.tags import OUTSIDE


def score(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Precision, recall, F1 and support per entity type, plus ``micro`` and ``macro`` averages.

    Strict mode counts an entity only when its type and both boundaries match exactly.
    """
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted)):
        raise ValueError("gold and predicted tag sequences differ in shape")
    empty = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    if not gold:  # seqeval refuses no sentences at all (a small corpus's split with no annotated one)
        return {"micro": dict(empty), "macro": dict(empty)}
    with warnings.catch_warnings():  # numpy's "mean of empty slice" where no entity exists anywhere
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report([list(g) for g in gold], [list(p) for p in predicted], mode="strict",
                                        scheme=IOB2, output_dict=True, zero_division=0)
    out = {}
    for name, row in report.items():
        key = {"micro avg": "micro", "macro avg": "macro", "weighted avg": "weighted"}.get(name, name)
        # An average over no entity type is NaN in seqeval; scored as zero_division scores a type, 0.
        out[key] = {"precision": _finite(row["precision"]), "recall": _finite(row["recall"]),
                    "f1": _finite(row["f1-score"]), "support": int(row["support"])}
    if "micro" not in out:  # seqeval leaves the averages out when no entity exists anywhere
        out["micro"], out["macro"] = dict(empty), dict(empty)
    return out


def _finite(value) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


NOT_TYPES = {"micro", "macro", "weighted", "relations", "relations_every_pair", "sentences", "entity_probability",
             "relation_probability"}
"""Keys of a result that hold scores but are not entity types."""


def format_table(result: dict) -> str:
    rows = [f"{'':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    types = sorted(k for k, v in result.items() if isinstance(v, dict) and "f1" in v and k not in NOT_TYPES)
    for name in types + ["micro", "macro"]:
        r = result[name]
        rows.append(f"{name:<10}{r['precision']:>10.4f}{r['recall']:>10.4f}{r['f1']:>10.4f}{r['support']:>10}")
    return "\n".join(rows)


GATE_THRESHOLDS = [i / 20 for i in range(1, 20)]


def _entity_tags(predicted: Sequence[Prediction], kept: Sequence[int], tags: Sequence[str],
                 passes: Sequence[bool]) -> list[list[str]]:
    return [[tags[t] if open_ else OUTSIDE for t in predicted[i].tags] for i, open_ in zip(kept, passes)]


def fit_platt(probs, labels) -> tuple[float, float]:
    """``(scale, shift)`` of the Platt scaling ``sigmoid(scale * logit(p) + shift)`` that best predicts
    ``labels`` (log loss); the identity when the labels hold one class only.

    The targets are Platt's own, (N+ + 1) / (N+ + 2) for a positive and 1 / (N- + 2) for a negative,
    not 1 and 0: on a dev split the model separates perfectly (a small corpus, a model that learnt it
    by heart), a fit to 1 and 0 grows its scale without bound and every probability comes out 0 or 1;
    these keep it finite, and on a few thousand examples change nothing else."""
    p = torch.as_tensor(probs, dtype=torch.float64).clamp(1e-7, 1 - 1e-7)
    y = torch.as_tensor(labels, dtype=torch.float64)
    if len(y) == 0 or y.min() == y.max():
        return 1.0, 0.0
    positives = float(y.sum())
    negatives = len(y) - positives
    y = torch.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2)).to(torch.float64)
    raw = torch.logit(p)
    scale = torch.ones((), dtype=torch.float64, requires_grad=True)
    shift = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([scale, shift], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(raw * scale + shift, y)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return float(scale.detach()), float(shift.detach())


def entity_outcomes(examples: Sequence[Example], predicted: Sequence[Prediction], tags: Sequence[str],
                     rows: Sequence[int]) -> tuple[list[float], list[bool]]:
    """Each predicted entity's score and whether it is exactly a gold one (type and both ends)."""
    scores, correct = [], []
    for i in rows:
        gold = set(token_spans([tags[t] for t in examples[i].tags]))
        for span, p in zip(predicted[i].spans, predicted[i].span_scores):
            scores.append(p)
            correct.append(tuple(span) in gold)
    return scores, correct


NO_ENTITY = "(none)"


def entity_confusion(examples: Sequence[Example], predicted: Sequence[Prediction], tags: Sequence[str],
                     rows: Sequence[int]) -> tuple[list[str], list[list[int]]]:
    """Entity types against entity types, spans matched by their boundaries: row = gold type, column =
    predicted type. The ``(none)`` column counts gold entities with no prediction of the same
    boundaries (missed, or cut elsewhere); the ``(none)`` row predictions with no gold entity there."""
    types = sorted({t[2:] for t in tags if t != "O"})
    labels = types + [NO_ENTITY]
    index = {label: k for k, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for i in rows:
        gold = {(a, b): t for a, b, t in token_spans([tags[t] for t in examples[i].tags])}
        guess = {(a, b): t for a, b, t in predicted[i].spans}
        for bounds, t in gold.items():
            matrix[index[t]][index[guess.get(bounds, NO_ENTITY)]] += 1
        for bounds, t in guess.items():
            if bounds not in gold:
                matrix[index[NO_ENTITY]][index[t]] += 1
    return labels, matrix


def pair_outcomes(examples: Sequence[Example], predicted: Sequence[Prediction], tags: Sequence[str],
                   rows: Sequence[int]) -> tuple[list[float], list[bool]]:
    """Each scored candidate pair's probability and whether the corpus relates exactly that pair."""
    scores, correct = [], []
    for i in rows:
        gold = _relations(examples[i], tags)
        spans = predicted[i].spans
        for d, o, p in predicted[i].pairs:
            scores.append(p)
            correct.append((*spans[d][:2], *spans[o][:2], spans[o][2]) in gold)
    return scores, correct


@torch.no_grad()
def calibrate_scores(model: SequenceLabeler, examples: Sequence[Example], negative: Sequence[bool],
                     tags: Sequence[str], batch_size: int, device: torch.device) -> None:
    """Fit the Platt scaling of entity and relation scores on these (dev) examples: over the
    sentences with annotations, tagged with the gate open (an entity's score is the probability it is
    right given that its sentence reports an event), against exact matches."""
    model.entity_calibration.copy_(torch.tensor([1.0, 0.0]))
    model.relation_calibration.copy_(torch.tensor([1.0, 0.0]))
    predicted = predict(model, examples, batch_size, device, threshold=0.0)
    rows = [i for i, e in enumerate(examples) if e.words and not negative[i]]
    model.entity_calibration.copy_(torch.tensor(fit_platt(*entity_outcomes(examples, predicted, tags, rows))))
    if model.relation is not None:
        model.relation_calibration.copy_(torch.tensor(fit_platt(*pair_outcomes(examples, predicted, tags, rows))))


def probability_scores(labels: Sequence[bool], probs: Sequence[float], bins: int = 10) -> dict:
    """How well probabilities predict outcomes: expected calibration error (``bins`` equal-width
    bins), Brier score, ROC-AUC, and how many there were. A score that is undefined (nothing scored;
    for ROC-AUC, outcomes of one kind only) is None, not a number that could be read as a result."""
    from sklearn.metrics import roc_auc_score

    y, p = torch.tensor(labels, dtype=torch.float64), torch.tensor(probs, dtype=torch.float64)
    if not len(p):
        return {"ece": None, "brier": None, "roc_auc": None, "count": 0}
    ece = sum(n / len(p) * abs(mean - rate) for mean, rate, n in calibration_bins(labels, probs, bins))
    # sklearn's ROC-AUC sorts once; comparing every positive with every negative, as before, needed
    # gigabytes on a split of 100,000 sentences.
    both = 0 < int(y.sum()) < len(y)
    auc = float(roc_auc_score(y.numpy(), p.numpy())) if both else None
    return {"ece": ece, "brier": float(((p - y) ** 2).mean()), "roc_auc": auc, "count": len(p)}


@torch.no_grad()
def tune_gate(model: SequenceLabeler, examples: Sequence[Example], negative: Sequence[bool], batch_size: int,
              device: torch.device) -> list[Prediction] | None:
    """Calibrate the gate on these (dev) sentences and set its threshold; training calls this after
    every epoch. First Platt scaling of its logit against the sentences' labels (reports an ADE or
    not), so ``ade`` is a probability one can read; then the threshold: half the best F1 the sentence
    decision (:func:`~adelabel.inference.reports`) reaches on these sentences at any threshold.

    For a calibrated probability the threshold that maximises F1 is half the F1 it reaches (Lipton,
    Elkan and Narayanaswamy, "Thresholding classifiers to maximize F1", 2014). The threshold with the
    best dev entity F1, used before, chased the few hundred sentences of a dev split: over ten folds it
    ranged from 0.25 to 0.6 for one recipe, and the test splits' sentence precision moved with it
    (benchmarks/cv_rescore.py).

    Returns the examples' predictions with the gate open and its new calibration, which
    :func:`evaluate_examples` takes instead of predicting them again (None for a model without a gate).
    """
    if model.gate is None:
        return None
    # The raw logits, read with an identity calibration (undoing the last one would lose saturated ones).
    model.gate_scale.fill_(1.0)
    model.gate_shift.fill_(0.0)
    predicted = predict(model, examples, batch_size, device, threshold=0.0)
    kept = [i for i, e in enumerate(examples) if e.words]
    p = torch.tensor([predicted[i].sentence for i in kept], dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    raw = torch.logit(p)
    labels = torch.tensor([not negative[i] for i in kept], dtype=torch.float64)
    if labels.min() == labels.max():
        return predicted  # one class only (data prepared without ADE-NEG): nothing to calibrate or choose
    scale, shift = fit_platt(p, labels)
    model.gate_scale.fill_(scale)
    model.gate_shift.fill_(shift)
    scale, shift = float(model.gate_scale), float(model.gate_shift)  # as stored (float32), as tagging reads them
    calibrated = torch.sigmoid(raw * scale + shift).tolist()
    for i, q in zip(kept, calibrated):
        predicted[i] = predicted[i]._replace(sentence=q)
    f1s = decision_f1s(model, predicted, kept, [not negative[i] for i in kept])
    best = max(f1s.values())
    # No threshold reports a single ADE sentence rightly (a model that pairs nothing yet): half of 0
    # would be 0, which means "gate open" (every sentence reported); the calibrated midpoint keeps it shut.
    model.gate_threshold.fill_(best / 2 if best > 0 else 0.5)
    return predicted


def positive_f1(gold, decided) -> float:
    """F1 of a yes/no decision against yes/no labels (0 when neither ever says yes)."""
    gold, decided = np.asarray(gold, dtype=bool), np.asarray(decided, dtype=bool)
    total = float(decided.sum() + gold.sum())
    return 2 * float((decided & gold).sum()) / total if total else 0.0


def decision_f1s(model: SequenceLabeler, predicted: Sequence[Prediction], kept: Sequence[int],
                 truth: Sequence[bool]) -> dict[float, float]:
    """The sentence decision's F1 (:func:`~adelabel.inference.reports` against ``truth``, one label per
    index in ``kept``) at each threshold of :data:`GATE_THRESHOLDS`, from predictions made with the
    gate open."""
    return {t: positive_f1(truth, [reports(model, predicted[i], t) for i in kept]) for t in GATE_THRESHOLDS}


def relation_scores(gold: Sequence[set], predicted: Sequence[set]) -> dict:
    """Micro precision, recall and F1 of relation sets: a pair counts only when both of its spans, and
    its type, are exact. ``types`` holds the same scores per pair type (DRUG-AE, DRUG-DOSE), which pooled
    ones would hide (doses are few: 15 pairs in a test split); every fold of a cross-validation has them,
    whichever types its split happens to hold."""
    result = _prf(gold, predicted)
    kinds = sorted({pair[-1] for pairs in (*gold, *predicted) for pair in pairs})
    if kinds:
        result["types"] = {f"DRUG-{k}": _prf([{p for p in g if p[-1] == k} for g in gold],
                                             [{p for p in f if p[-1] == k} for f in predicted]) for k in kinds}
    return result


def _prf(gold: Sequence[set], predicted: Sequence[set]) -> dict:
    hits = sum(len(g & p) for g, p in zip(gold, predicted))
    n_gold, n_pred = sum(map(len, gold)), sum(map(len, predicted))
    precision, recall = hits / n_pred if n_pred else 0.0, hits / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": n_gold, "predicted": n_pred}


def no_pairs(scores: dict) -> bool:
    """Whether relation ``scores`` have no gold pair to be about (types that pair nothing, Chemical and
    Disease say, or data without relations), so their zeros mean "not applicable"."""
    return scores["support"] == 0


def calibration_bins(labels: Sequence[bool], probs: Sequence[float], bins: int = 10) -> list[tuple[float, float, int]]:
    """For each non-empty one of ``bins`` equal-width bins of ``probs``: the mean probability, the share
    of positive labels and the count. What the expected calibration error and the reliability
    diagram are made of."""
    y, p = torch.tensor(labels, dtype=torch.float64), torch.tensor(probs, dtype=torch.float64)
    which = (p * bins).long().clamp(max=bins - 1)
    return [(float(p[which == b].mean()), float(y[which == b].mean()), int((which == b).sum()))
            for b in range(bins) if (which == b).any()]


def sentence_scores(labels: Sequence[bool], probs: Sequence[float], threshold: float,
                    decided: Sequence[bool] | None = None, bins: int = 10) -> dict:
    """The sentence decision: precision, recall and F1 of "reports an ADE", as ``decided`` (by default
    the probability reaching ``threshold``); and of the probability itself, the expected calibration
    error (``bins`` equal-width bins), Brier score and ROC-AUC."""
    y, p = torch.tensor(labels, dtype=torch.float64), torch.tensor(probs, dtype=torch.float64)
    decided = p >= threshold if decided is None else torch.tensor(list(decided), dtype=torch.bool)
    tp = float((decided & (y == 1)).sum())
    precision = tp / float(decided.sum()) if decided.any() else 0.0
    recall = tp / float(y.sum()) if y.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    quality = probability_scores(labels, probs, bins)
    return {"precision": precision, "recall": recall, "f1": f1, "support": int(y.sum()), "threshold": threshold_of(threshold),
            "ece": quality["ece"], "brier": quality["brier"], "roc_auc": quality["roc_auc"]}


def _relations(example: Example, tags: Sequence[str]) -> set:
    return {(*pair, tags[example.tags[pair[2]]][2:]) for pair, g in zip(example.pairs, example.pair_gold) if g}


def _predicted_relations(prediction: Prediction, tags: Sequence[str], every_pair: bool = False) -> set:
    pairs = prediction.pairs if every_pair else reported_pairs(prediction, effect_types(tuple(tags)))
    return {(*prediction.spans[d][:2], *prediction.spans[o][:2], prediction.spans[o][2]) for d, o, _ in pairs}


def evaluate_examples(model: SequenceLabeler, examples: Sequence[Example], negative: Sequence[bool],
                      tags: Sequence[str], batch_size: int, device: torch.device,
                      predicted: Sequence[Prediction] | None = None) -> dict:
    """seqeval scores of ``model`` on gold-tagged examples, with relation and sentence scores and how
    often it fires on ADE-NEG sentences. Reads the model; changes nothing in it.

    The headline scores count every sentence, ADE-NEG ones included, since that is what tagging real
    abstracts meets. ``annotated_only`` scores just the sentences with annotations (not from ADE-NEG,
    those few whose drug lies inside its effect's span included, though they keep no relation), tagged
    with the gate open: the protocol of most published ADE results, whose models are only ever shown
    sentences known to report an adverse event. ``predicted``: the examples' predictions with the gate
    open, when the caller has them already.
    """
    if predicted is None:
        predicted = predict(model, examples, batch_size, device, threshold=0.0)
    kept = [i for i, e in enumerate(examples) if e.words]
    gold = [[tags[t] for t in examples[i].tags] for i in kept]
    gated = model.gate is not None
    # Compared unrounded, as decoding compares it: the buffer holds a float32 near the grid value.
    threshold = float(model.gate_threshold) if gated else 0.0
    opened = [reports(model, predicted[i], threshold) for i in kept]
    pred = _entity_tags(predicted, kept, tags, opened)
    result = score(gold, pred)
    annotated = [k for k, i in enumerate(kept) if not negative[i]]
    open_gate = _entity_tags(predicted, kept, tags, [True] * len(kept))
    result["annotated_only"] = score([gold[k] for k in annotated], [open_gate[k] for k in annotated])
    gold_relations = [_relations(examples[i], tags) for i in kept]
    found = [_predicted_relations(predicted[i], tags) for i in kept]
    result["relations"] = relation_scores(gold_relations, [f if o else set() for f, o in zip(found, opened)])
    result["annotated_only"]["relations"] = relation_scores([gold_relations[k] for k in annotated],
                                                            [found[k] for k in annotated])
    # The rule the head replaces, on the same spans: every drug paired with every effect.
    every = [_predicted_relations(predicted[i], tags, every_pair=True) for i in kept]
    result["annotated_only"]["relations_every_pair"] = relation_scores([gold_relations[k] for k in annotated],
                                                                       [every[k] for k in annotated])
    rows = [kept[k] for k in annotated]
    scores, correct = entity_outcomes(examples, predicted, tags, rows)
    result["annotated_only"]["entity_probability"] = probability_scores(correct, scores)
    scores, correct = pair_outcomes(examples, predicted, tags, rows)
    result["annotated_only"]["relation_probability"] = probability_scores(correct, scores)
    on_negative = [p for k, p in enumerate(pred) if negative[kept[k]]]
    fired = sum(t.startswith("B-") for p in on_negative for t in p)
    result["negative_sentences"] = len(on_negative)
    # A rate over no sentence is undefined (None), as an undefined ROC-AUC is: not a zero that reads as one.
    result["entities_per_1000_negative"] = 1000 * fired / len(on_negative) if on_negative else None
    if gated:
        result["gate"] = {
            "threshold": threshold_of(threshold),
            "annotated_sentences_passed": sum(opened[k] for k in annotated) / len(annotated) if annotated else None,
            "negative_sentences_passed": sum(o for k, o in enumerate(opened) if negative[kept[k]]) / len(on_negative)
            if on_negative else None,
        }
        result["sentences"] = sentence_scores([not negative[i] for i in kept], [predicted[i].sentence for i in kept],
                                              threshold, opened)
    return result


def errors(model: SequenceLabeler, sentences, examples: Sequence[Example], predicted: Sequence[Prediction],
           tags: Sequence[str], threshold: float) -> list[dict]:
    """Per sentence with any mistake, as ``adelabel tag`` would output it: the entities and relations
    it found that the corpus does not have, and those it missed (character offsets into the sentence)."""
    out = []
    for sentence, example, pred in zip(sentences, examples, predicted):
        if not example.words:
            continue
        opened = reports(model, pred, threshold)

        def chars(first: int, end: int) -> tuple[int, int]:
            return example.tokens[first][0], example.tokens[end - 1][1]

        found = {(*chars(a, b), label) for a, b, label in pred.spans} if opened else set()
        # Gold as the scorer sees it: from the gold tags, so a boundary inside a token is widened alike.
        gold = {(*chars(a, b), label) for a, b, label in token_spans([tags[t] for t in example.tags])}
        rel_found = {(*chars(a, b), *chars(c, d), kind) for a, b, c, d, kind in _predicted_relations(pred, tags)} \
            if opened else set()
        rel_gold = {(*chars(a, b), *chars(c, d), kind) for a, b, c, d, kind in _relations(example, tags)}
        if found == gold and rel_found == rel_gold:
            continue
        # A false positive carries the score tag gives it, so that errors can be ranked by how sure the
        # model was; a false negative has none (nothing predicted it).
        scores = {(*chars(a, b), label): score for (a, b, label), score in zip(pred.spans, pred.span_scores)}
        show = lambda spans: [{"start": a, "end": b, "label": lab, "text": sentence.text[a:b],  # noqa: E731
                               **({"score": round(scores[a, b, lab], 4)} if (a, b, lab) in scores and
                                  (a, b, lab) not in gold else {})}
                              for a, b, lab in sorted(spans)]
        # With their offsets: a drug or an effect named twice in a sentence is two mentions, whose pairs
        # would read alike by their texts alone (one found and one missed looked like a contradiction).
        pairs = lambda rels: [{"drug": sentence.text[a:b], "drug_start": a, "drug_end": b, "effect": sentence.text[c:d],  # noqa: E731
                               "effect_start": c, "effect_end": d, "type": f"DRUG-{k}"} for a, b, c, d, k in sorted(rels)]
        out.append({"doc_id": sentence.doc_id, "text": sentence.text, "reports_ade": not sentence.negative,
                    "ade": round(pred.sentence, 4), "reported": bool(opened),
                    "false_positives": show(found - gold), "false_negatives": show(gold - found),
                    "relations_false_positives": pairs(rel_found - rel_gold),
                    "relations_false_negatives": pairs(rel_gold - rel_found)})
    return out
