"""Score the models a finished ``adelabel cv`` left in its folds again, with today's inference path and
nothing trained: the cross-validation table after a change in how a tagger decides or scores; several
CV folders of the same folds also as one ensemble per fold; and the sentence decision with its
threshold chosen other ways than training chooses it.

    python benchmarks/cv_rescore.py cv/bilstm                   # the table `adelabel cv` prints
    python benchmarks/cv_rescore.py cv/bilstm cv/bilstm-tuned   # each, then the two as an ensemble
    python benchmarks/cv_rescore.py cv/bilstm-5 cv/transformer --json rescore.json   # and every fold's scores
    python benchmarks/cv_rescore.py cv/bilstm-5 cv/bilstm-5-distil --compare          # no ensemble: B against A

With several folders it also compares the ensemble with each member fold by fold (the folds are the
same, so the differences are paired): the mean difference, its standard deviation and on how many
folds the ensemble is ahead. With ``--compare`` it forms no ensemble and compares each folder after
the first with the first, fold by fold (a change of recipe against the one before).

Thresholds, each applied to the fold's test split: the model's own (saved by its training: half the
best sentence-decision F1 on dev, or, for a model trained before that rule, the best dev entity F1),
the one giving the best sentence-decision F1 on dev, half that best F1 (for a calibrated probability
the F1-optimal threshold is half the F1 it reaches: Lipton, Elkan and Narayanaswamy, "Thresholding
classifiers to maximize F1", 2014), and fixed 0.4 and 0.5 (the probability is calibrated, so these
mean the same for every model).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from adelabel.atomic import write_text
from adelabel.cv import _leaves, fold_key, format_summary, summarise
from adelabel.data import encode_sentences
from adelabel.evaluate import decision_f1s, evaluate_examples
from adelabel.inference import predict
from adelabel.prepare import read_split
from adelabel.tagger import Tagger

PAIRED = {"annotated_only.micro.f1": "entity F1, annotated sentences",
          "micro.f1": "entity F1, all sentences",
          "sentences.f1": "sentence F1",
          "annotated_only.relations.f1": "relation F1, annotated sentences",
          "relations.f1": "relation F1, all sentences"}


def folds_of(root: Path) -> tuple[dict, list[Path]]:
    settings = json.loads((root / "settings.json").read_text())
    folds = [root / f"fold-{k:02d}" for k in range(1, settings["folds"] + 1)]
    missing = [str(f) for f in folds if not (f / "result.json").is_file()]
    if missing:
        raise SystemExit(f"{root}: unfinished, no result in {', '.join(missing)}")
    return settings, folds


def scored(paths: list[Path], data: Path) -> dict[str, dict]:
    """Test scores at each way of choosing the threshold (the model's own first)."""
    tagger = Tagger.load([str(p) for p in paths], device="cpu")
    model, tags = tagger.model, tagger.tags
    splits = {}
    for name in ("dev", "test"):
        sentences = read_split(data, name)
        examples = encode_sentences(sentences, tagger.vocabs, tags)
        splits[name] = (examples, [s.negative for s in sentences],
                        predict(model, examples, 256, tagger.device, threshold=0.0))

    def at(threshold: float) -> dict:
        model.gate_threshold.fill_(threshold)
        examples, negative, predicted = splits["test"]
        return evaluate_examples(model, examples, negative, tags, 256, tagger.device, predicted=predicted)

    own = float(model.gate_threshold)
    examples, negative, predicted = splits["dev"]
    kept = [i for i, e in enumerate(examples) if e.words]
    dev_f1 = decision_f1s(model, predicted, kept, [not negative[i] for i in kept])
    best = max(dev_f1, key=dev_f1.get)
    return {"own": at(own), "best sentence F1 on dev": at(best),
            "half the best sentence F1 on dev": at(dev_f1[best] / 2), "0.4": at(0.4), "0.5": at(0.5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", type=Path, help="folders `adelabel cv --out` wrote")
    parser.add_argument("--json", type=Path, help="also write every fold's scores, each way, to this file")
    parser.add_argument("--compare", action="store_true",
                        help="no ensemble: compare each folder after the first with the first, fold by fold")
    args = parser.parse_args()
    if args.compare and len(args.roots) < 2:
        parser.error("--compare needs two folders or more")
    torch.set_num_threads(2)
    runs = [folds_of(r) for r in args.roots]
    for settings, _ in runs[1:]:
        if fold_key(settings) != fold_key(runs[0][0]):
            raise SystemExit(f"{args.roots[0]} and the others are not cross-validations of the same folds")
    ensemble = len(runs) > 1 and not args.compare
    members = [[r] for r in range(len(runs))] + ([list(range(len(runs)))] if ensemble else [])
    everything = {}
    for which in members:
        title = " + ".join(str(args.roots[r]) for r in which)
        per_fold = []
        for k, fold in enumerate(runs[0][1]):
            per_fold.append(scored([runs[r][1][k] / "model" for r in which], fold / "data"))
            print(f"{title}: fold {k + 1}/{len(runs[0][1])} scored", flush=True)
        summary = {"settings": {**runs[which[0]][0]}, "folds": per_fold,
                   "summary": summarise([f["own"] for f in per_fold])}
        print(f"\n{title}, scored now:\n{format_summary(summary)}")
        print(f"{'sentence decision, threshold:':<36}{'entity F1, all':>18}{'sentence F1':>18}{'precision':>18}"
              f"{'recall':>18}")
        for way in per_fold[0]:
            stats = summarise([f[way] for f in per_fold])
            # Models without a sentence gate (cv --no-negatives) have no sentence decision to score.
            cells = "".join(f"{stats[key]['mean']:>9.4f} ± {stats[key]['std']:.4f}" if key in stats else f"{'n/a':>18}"
                            for key in ("micro.f1", "sentences.f1", "sentences.precision", "sentences.recall"))
            print(f"  {way:<34}{cells}")
        print(flush=True)
        everything[title] = per_fold
    roots = [str(r) for r in args.roots]
    if ensemble:
        print("\n".join(paired(everything[" + ".join(roots)], everything[r], f"ensemble against {r} alone")
                        for r in roots))
    for other in roots[1:] if args.compare else []:
        print(paired(everything[other], everything[roots[0]], f"{other} against {roots[0]}"))
    if args.json:
        write_text(args.json, json.dumps(everything, indent=1) + "\n")


def paired(these: list[dict], those: list[dict], title: str) -> str:
    """``these`` folds' scores against ``those``, fold by fold, at each model's own threshold."""
    these, those = [_leaves(f["own"]) for f in these], [_leaves(f["own"]) for f in those]
    lines = [f"{title}, fold by fold:"]
    for key, name in PAIRED.items():
        if not all(key in a and key in b for a, b in zip(these, those)):
            continue  # a score one side lacks (no sentence gate)
        diff = [a[key] - b[key] for a, b in zip(these, those)]
        std = statistics.stdev(diff) if len(diff) > 1 else 0.0
        lines.append(f"  {name:<34}{statistics.fmean(diff) * 100:+6.2f} points (std {std * 100:.2f}), "
                     f"ahead on {sum(d > 0 for d in diff)} of {len(diff)} folds")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
