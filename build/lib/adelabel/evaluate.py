"""Entity-level scoring with seqeval in strict IOB2 mode, the way the ADE literature reports it."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from adelabel.data import Example
from adelabel.models.base import SequenceLabeler, gate_passes
from adelabel.tagger import predict
from adelabel.tags import OUTSIDE


def score(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Precision, recall, F1 and support per entity type, plus ``micro`` and ``macro`` averages.

    Strict mode counts an entity only when its type and both boundaries match exactly.
    """
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted)):
        raise ValueError("gold and predicted tag sequences differ in shape")
    report = classification_report([list(g) for g in gold], [list(p) for p in predicted], mode="strict",
                                    scheme=IOB2, output_dict=True, zero_division=0)
    out = {}
    for name, row in report.items():
        key = {"micro avg": "micro", "macro avg": "macro", "weighted avg": "weighted"}.get(name, name)
        out[key] = {"precision": float(row["precision"]), "recall": float(row["recall"]),
                    "f1": float(row["f1-score"]), "support": int(row["support"])}
    if "micro" not in out:  # seqeval leaves the averages out when no entity exists anywhere
        out["micro"] = out["macro"] = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    return out


def format_table(result: dict) -> str:
    rows = [f"{'':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    types = sorted(k for k, v in result.items()
                   if isinstance(v, dict) and "f1" in v and k not in ("micro", "macro", "weighted"))
    for name in types + ["micro", "macro"]:
        r = result[name]
        rows.append(f"{name:<10}{r['precision']:>10.4f}{r['recall']:>10.4f}{r['f1']:>10.4f}{r['support']:>10}")
    return "\n".join(rows)


GATE_THRESHOLDS = [i / 20 for i in range(1, 20)]


def evaluate_examples(model: SequenceLabeler, examples: Sequence[Example], negative: Sequence[bool],
                      tags: Sequence[str], batch_size: int, device: torch.device, tune_gate: bool = False) -> dict:
    """seqeval scores of ``model`` on gold-tagged examples, plus how often it fires on ADE-NEG sentences.

    The headline scores count every sentence, ADE-NEG ones included, since that is what tagging real
    abstracts meets. ``annotated_only`` scores just the sentences with adverse-event relations, tagged
    with the gate open: the protocol of most published ADE results, whose models are only ever shown
    sentences known to report an adverse event. With ``tune_gate`` the model's gate threshold is first
    set to the one that gives the best micro-F1 here (training does this on the dev split).
    """
    predicted = predict(model, examples, batch_size, device, threshold=0.0)
    kept = [i for i, e in enumerate(examples) if e.words]
    gold = [[tags[t] for t in examples[i].tags] for i in kept]

    def tagged(threshold: float) -> list[list[str]]:
        return [[tags[t] if gate_passes(predicted[i].sentence, threshold) else OUTSIDE for t in predicted[i].tags]
                for i in kept]

    gated = model.gate is not None
    if gated and tune_gate:
        best = max(GATE_THRESHOLDS, key=lambda t: score(gold, tagged(t))["micro"]["f1"])
        model.gate_threshold.fill_(best)
    # Compared unrounded, as decoding compares it: the buffer holds a float32 near the grid value.
    threshold = float(model.gate_threshold) if gated else 0.0
    pred = tagged(threshold)
    result = score(gold, pred)
    annotated = [k for k, i in enumerate(kept) if not negative[i]]
    open_gate = tagged(0.0)
    result["annotated_only"] = score([gold[k] for k in annotated], [open_gate[k] for k in annotated])
    on_negative = [p for k, p in enumerate(pred) if negative[kept[k]]]
    fired = sum(t.startswith("B-") for p in on_negative for t in p)
    result["negative_sentences"] = len(on_negative)
    result["entities_per_1000_negative"] = 1000 * fired / len(on_negative) if on_negative else 0.0
    if gated:
        opened = [gate_passes(predicted[i].sentence, threshold) for i in kept]
        result["gate"] = {
            "threshold": round(threshold, 4),
            "annotated_sentences_passed": sum(opened[k] for k in annotated) / max(len(annotated), 1),
            "negative_sentences_passed": sum(o for k, o in enumerate(opened) if negative[kept[k]])
            / max(len(on_negative), 1),
        }
    return result
