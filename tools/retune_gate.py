"""Maintainers: tune a trained tagger's gate threshold again, under the current reporting rule, on the
dev split of its data, and score it again on dev and test (its metrics.json updated). For a model
trained before the rule changed (the ready tagger); its weights are left as they are.

    python tools/retune_gate.py models/ready data models/ready-retuned
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adelabel import model_dir  # noqa: E402
from adelabel.data import encode_sentences  # noqa: E402
from adelabel.evaluate import evaluate_examples, tune_gate  # noqa: E402
from adelabel.prepare import read_split  # noqa: E402


def main(source: Path, data: Path, out: Path) -> None:
    torch.set_num_threads(2)
    model, config, vocabs = model_dir.load(source, "cpu")
    metrics = json.loads((source / model_dir.METRICS).read_text(encoding="utf-8"))
    tags = config["tags"]
    splits = {name: read_split(data, name) for name in ("dev", "test")}
    examples = {name: encode_sentences(s, vocabs, tags) for name, s in splits.items()}
    negative = {name: [x.negative for x in s] for name, s in splits.items()}
    before = float(model.gate_threshold)
    tune_gate(model, examples["dev"], negative["dev"], 256, torch.device("cpu"))
    for name in ("dev", "test"):
        result = evaluate_examples(model, examples[name], negative[name], tags, 256, torch.device("cpu"))
        metrics[name] = {**result, "f1": result["micro"]["f1"]}
    config.pop("format_version", None)
    model_dir.save(out, model, config, vocabs, metrics=metrics, log=source / model_dir.LOG)
    print(f"gate threshold {before:.2f} -> {float(model.gate_threshold):.2f}; test F1 {metrics['test']['f1']:.4f}, "
          f"sentence F1 {metrics['test']['sentences']['f1']:.4f}; saved to {out}/")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
