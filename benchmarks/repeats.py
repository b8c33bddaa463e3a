"""Does a seeded training run repeat weight for weight on the real corpus? Trains the default
architecture for a few epochs three times: twice in fresh processes, and once in a process that has
just trained another config (as a ``tune`` trial does), then prints each run's weight checksum and dev
F1. The three checksums must be equal.

    python benchmarks/repeats.py --data data --epochs 2          # about 4 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path


def run(data: str, epochs: int, out: Path, warm_up: bool) -> str:
    import torch

    from adelabel.config import ConfigBuilder
    from adelabel.train import train

    torch.set_num_threads(2)
    if warm_up:
        other = ConfigBuilder("bilstm", "tag").add({"train": {"max_epochs": 1},
                                                     "model": {"hidden_size": 100, "gate_size": 200}}, "other").build()
        train(other, data, out / "other", device="cpu", log=None)
    config = ConfigBuilder("bilstm", "tag").add({"train": {"max_epochs": epochs}}, "repeats").build()
    metrics = train(config, data, out / "model", device="cpu", log=None)
    digest = hashlib.sha256((out / "model" / "model.safetensors").read_bytes()).hexdigest()[:16]
    return f"{digest}  dev F1 {metrics['dev']['f1']:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--one", choices=("fresh", "after-another"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(run(args.data, args.epochs, Path(tmp), args.one == "after-another"))
        return
    lines = []
    for one in ("fresh", "fresh", "after-another"):
        done = subprocess.run([sys.executable, __file__, "--data", args.data, "--epochs", str(args.epochs),
                               "--one", one], capture_output=True, text=True, check=True)
        lines.append(done.stdout.strip().splitlines()[-1])
        print(f"{one:>13}: {lines[-1]}", flush=True)
    same = len({line.split()[0] for line in lines}) == 1
    print("the same weights every time" if same else "the runs differ")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
