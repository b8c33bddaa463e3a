"""How `adelabel tag --workers N` scales on this machine: each setting tags a short and a long input of
one-sentence lines (the test split's sentences, cycled), whole process, and the difference between the
two gives the steady rate apart from the fixed cost of starting the processes and loading the model.
That fixed cost is printed too: it says from how many lines more workers pay.

    python benchmarks/workers_scaling.py --data data --settings cpu:1 cpu:4 cpu:8 cpu:15 cuda:1 cuda:4
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_lines(data: Path, n: int, path: Path) -> None:
    texts = [json.loads(line)["text"] for line in (data / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    path.write_text("".join(texts[i % len(texts)] + "\n" for i in range(n)), encoding="utf-8")


def seconds(model: Path, lines: Path, device: str, workers: int, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "adelabel", "tag", str(lines), "--model", str(model), "--device", device,
                    "--workers", str(workers), "--output", str(out), "--quiet"], cwd=ROOT, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="a prepared data folder (its test.jsonl)")
    parser.add_argument("--model", type=Path, default=ROOT / "adelabel/pretrained/ade-bilstm")
    parser.add_argument("--short", type=int, default=10_000, help="lines of the short input")
    parser.add_argument("--long", type=int, default=60_000, help="lines of the long input")
    parser.add_argument("--settings", nargs="+", default=["cpu:1", "cpu:2"], help="DEVICE:WORKERS, each timed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        short, long = Path(tmp, "short.txt"), Path(tmp, "long.txt")
        write_lines(args.data, args.short, short)
        write_lines(args.data, args.long, long)
        print(f"{'device':6} {'workers':>7} {'short s':>8} {'long s':>8} {'steady sentences/s':>19} {'fixed s':>8}")
        for setting in args.settings:
            device, workers = setting.split(":")
            a = seconds(args.model, short, device, int(workers), Path(tmp, "out.jsonl"))
            b = seconds(args.model, long, device, int(workers), Path(tmp, "out.jsonl"))
            rate = (args.long - args.short) / (b - a) if b > a else float("nan")
            print(f"{device:6} {workers:>7} {a:8.1f} {b:8.1f} {rate:19,.0f} {a - args.short / rate:8.1f}", flush=True)


if __name__ == "__main__":
    main()
