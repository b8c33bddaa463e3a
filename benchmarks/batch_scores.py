"""Whether a text's output depends on the batch it is tagged in: each sentence of prepared splits
tagged alone (`Tagger.analyze`) and all in one stream (`Tagger.analyze_pipe`), compared record for
record. Prints how many records differ in their decisions (entities, relations, reported sentences)
and how many in any score.

    python benchmarks/batch_scores.py --data data --model adelabel/pretrained/ade-bilstm
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def decisions(record: dict) -> tuple:
    return ([(e["start"], e["end"], e["label"]) for e in record["entities"]],
            [(r["drug"], r["effect"]) for r in record["relations"]], [s["reported"] for s in record["sentences"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--splits", nargs="+", default=["test", "dev"])
    parser.add_argument("--model", default=str(ROOT / "adelabel" / "pretrained" / "ade-bilstm"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from adelabel import Tagger

    tagger = Tagger.load(args.model, device="cpu")
    texts = [json.loads(line)["text"] for split in args.splits
             for line in (args.data / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    streamed = [a.to_dict() for a in tagger.analyze_pipe(texts)]
    alone = [tagger.analyze(text).to_dict() for text in texts]
    print(f"{len(texts):,} texts: decisions differ in {sum(decisions(a) != decisions(b) for a, b in zip(streamed, alone))}, "
          f"any score in {sum(a != b for a, b in zip(streamed, alone))}")


if __name__ == "__main__":
    main()
