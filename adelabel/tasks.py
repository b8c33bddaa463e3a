"""What differs between training a tagger and training a sentence classifier; the training loop
(adelabel/train.py) asks its task and never which one it holds.

A task turns a data folder's sentences into examples, builds the model, tunes it on dev after each
epoch (the gate's calibration and threshold; the classifier's temperature and threshold), scores it
(``f1``: the score epochs are chosen by), and says what the model folder must record to rebuild it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from adelabel.config import Config
from adelabel.corpus import ADE_CLASS, NEG_CLASS, Sentence, sentence_class
from adelabel.data import Example, encode_labelled, encode_sentences
from adelabel.errors import AdelabelError
from adelabel.models.base import threshold_text
from adelabel.tags import tag_set
from adelabel.vocab import Vocabs


class TagTask:
    name = "tag"

    def __init__(self, manifest: dict, splits: dict[str, list[Sentence]], data_dir) -> None:
        if not manifest["labels"]:
            raise AdelabelError(f"{data_dir}: this data holds labelled texts without entities; "
                                "train a classifier on it with --task classify")
        self.tags = tag_set(manifest["labels"])
        self.negatives = {name: [s.negative for s in sents] for name, sents in splits.items()}
        # What dev lacks for its F1 to tell one epoch from another (None: nothing).
        self.dev_blind = None if any(s.spans for s in splits["dev"]) else "the dev split holds no entity"
        self.floor = 0.0  # the dev F1 of a tagger that finds nothing

    def encode(self, sentences: Sequence[Sentence], vocabs: Vocabs) -> list[Example]:
        return encode_sentences(sentences, vocabs, self.tags)

    def build(self, config: Config, **inputs):
        from adelabel.models import build_model

        return build_model(config.arch, tags=self.tags, **inputs, **config.model.model_dump())

    def tune(self, model, examples: Sequence[Example], split: str, batch_size: int, device: torch.device):
        """Fit what is tuned on dev; returns what :meth:`evaluate` may reuse of the work (here the
        predictions, with the gate open and its new calibration), or None."""
        from adelabel.evaluate import tune_gate

        return tune_gate(model, examples, self.negatives[split], batch_size, device)

    def calibrate(self, model, examples: Sequence[Example], split: str, batch_size: int,
                  device: torch.device) -> None:
        """Once, on the kept epoch's weights: the entity and relation scores' calibration."""
        from adelabel.evaluate import calibrate_scores

        calibrate_scores(model, examples, self.negatives[split], self.tags, batch_size, device)

    def evaluate(self, model, examples: Sequence[Example], split: str, batch_size: int,
                 device: torch.device, tuned=None) -> dict:
        """``tuned``: what :meth:`tune` returned for these examples and these weights."""
        from adelabel.evaluate import evaluate_examples

        result = evaluate_examples(model, examples, self.negatives[split], self.tags, batch_size, device,
                                   predicted=tuned)
        return {**result, "f1": result["micro"]["f1"]}

    def record(self, result: dict) -> tuple[dict, str]:
        """The epoch log's fields for a dev result, and the text of its log line."""
        fields = {"dev_precision": result["micro"]["precision"], "dev_recall": result["micro"]["recall"],
                  "dev_relation_f1": result["relations"]["f1"]}
        from adelabel.evaluate import no_pairs

        line = (f"dev P {fields['dev_precision']:.4f} R {fields['dev_recall']:.4f} F1 {result['f1']:.4f}"
                + ("" if no_pairs(result["relations"]) else f"  relations F1 {result['relations']['f1']:.4f}"))
        if "gate" in result:
            fields.update(gate_threshold=result["gate"]["threshold"], dev_sentence_f1=result["sentences"]["f1"])
            line += f"  gate {threshold_text(result['gate']['threshold'])} (sentence F1 {result['sentences']['f1']:.4f})"
        return fields, line

    def saved(self) -> dict:
        return {"tags": self.tags}


def positive_class(counts: Counter, format: str = "labelled") -> str | None:
    """Of two classes, the one looked for: ADE in annotated data (the ADE corpus, CoNLL, brat), whose
    classes mean "reports an event" or not whatever their counts; in labelled text the rarer, ties going
    to the later name. None with more than two (their decision is an argmax)."""
    if format != "labelled" and set(counts) == {ADE_CLASS, NEG_CLASS}:
        return ADE_CLASS
    return min(reversed(sorted(counts)), key=lambda c: counts[c]) if len(counts) == 2 else None


def constant_f1(gold: Sequence[str], classes: Sequence[str], positive: str | None) -> float:
    """The best dev F1 a classifier reaches by giving every text one class, as epochs are chosen by
    (the positive class's F1; the macro F1 over the classes dev holds or the model predicts): an
    untrained model's threshold, tuned on dev, gets it by calling every text positive."""
    if not gold:
        return 0.0
    counts = Counter(gold)

    def f1(c: str) -> float:  # of class c when every text is given c: precision its share, recall 1
        share = counts[c] / len(gold)
        return 2 * share / (1 + share)

    if positive is not None:
        return f1(positive)
    return max(f1(c) / len(set(counts) | {c}) for c in classes)


class ClassifyTask:
    name = "classify"

    def __init__(self, manifest: dict, splits: dict[str, list[Sentence]], data_dir) -> None:
        counts = Counter(sentence_class(s) for s in splits["train"])
        if len(counts) < 2:
            raise AdelabelError(f"{data_dir}: the training split holds one class only ({', '.join(counts) or 'none'}); "
                                "a classifier needs at least two")
        # A cross-validation fixes the classes over the whole corpus, so every fold scores the same ones.
        fixed = manifest.get("classifier") or {}
        for name in fixed.get("classes", []):
            counts.setdefault(name, 0)
        self.classes = sorted(counts)
        self.positive = fixed["positive"] if "classes" in fixed else positive_class(counts, manifest.get("format", "ade"))
        for name, sents in splits.items():
            unseen = sorted({sentence_class(s) for s in sents} - set(counts))
            if unseen:
                raise AdelabelError(f"{data_dir}/{name}.jsonl: classes {unseen} are not in the training split")
        self.negatives = {name: [s.negative for s in sents] for name, sents in splits.items()}
        self.dev_blind = None
        self.floor = constant_f1([sentence_class(s) for s in splits["dev"] if s.text.strip()], self.classes,
                                 self.positive)
        if self.positive is not None and all(sentence_class(s) != self.positive for s in splits["dev"]):
            self.dev_blind = f"the dev split holds no text of the positive class, {self.positive}"

    def encode(self, sentences: Sequence[Sentence], vocabs: Vocabs) -> list[Example]:
        return encode_labelled(sentences, vocabs, self.classes)

    def build(self, config: Config, **inputs):
        from adelabel.models import build_classifier

        return build_classifier(config.arch, classes=self.classes, positive=self.positive, **inputs,
                                **config.model.model_dump())

    def tune(self, model, examples: Sequence[Example], split: str, batch_size: int, device: torch.device) -> None:
        from adelabel.classification import tune_classifier

        tune_classifier(model, examples, batch_size, device)
        return None

    def calibrate(self, model, examples: Sequence[Example], split: str, batch_size: int,
                  device: torch.device) -> None:
        """Nothing more: the temperature and threshold are fitted with each epoch's weights."""

    def evaluate(self, model, examples: Sequence[Example], split: str, batch_size: int,
                 device: torch.device, tuned=None) -> dict:
        from adelabel.classification import classifier_metrics

        return classifier_metrics(model, examples, batch_size, device)

    def record(self, result: dict) -> tuple[dict, str]:
        fields = {"dev_macro_f1": result["macro"]["f1"], "dev_accuracy": result["accuracy"]}
        line = f"dev {'F1 (' + result['positive'] + ')' if 'positive' in result else 'macro F1'} {result['f1']:.4f}  " \
               f"accuracy {result['accuracy']:.4f}"
        if "positive" in result:
            fields.update(threshold=result["threshold"], dev_roc_auc=result["roc_auc"])
            line += f"  threshold {threshold_text(result['threshold'])}" + (
                f"  ROC-AUC {result['roc_auc']:.4f}" if result["roc_auc"] is not None else "")
        return fields, line

    def saved(self) -> dict:
        return {"classes": self.classes, "positive": self.positive}


TASKS = {"tag": TagTask, "classify": ClassifyTask}
