"""A tagger serving one call at a time, as in a pipeline: `Tagger.analyze` on texts of 1 to 12 prepared
sentences drawn at random, in rounds. Prints each round's resident memory and seconds, so that growth
(kernels kept for each new shape) and the first calls' cost can be seen. For another checkout, put its
folder first on the path: PYTHONPATH=/tmp/base python benchmarks/serving_memory.py ...

    python benchmarks/serving_memory.py --data data --rounds 10 --calls 400
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def resident_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--model", default=None, help="a model folder (default: the ready tagger)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import adelabel
    from adelabel import Tagger
    from adelabel.pretrained import READY

    tagger = Tagger.load(args.model or READY, device="cpu")
    print(f"adelabel from {Path(adelabel.__file__).parent}, model {tagger.folders[0]}")
    sentences = [json.loads(line)["text"] for line in (args.data / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    draw = random.Random(0)
    for number in range(1, args.rounds + 1):
        start = time.perf_counter()
        for _ in range(args.calls):
            tagger.analyze(" ".join(draw.choice(sentences) for _ in range(draw.randint(1, 12))))
        print(f"round {number}: {resident_mib():.0f} MiB resident, {time.perf_counter() - start:.2f} s", flush=True)


if __name__ == "__main__":
    main()
