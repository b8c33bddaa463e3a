"""Whole-process tagging speed and memory of `adelabel tag`, model load included.

Builds N lines of abstract text from the real corpus (each line: all corpus sentences of one PubMed
abstract, joined by spaces; abstracts cycled until N lines), runs the CLI on it as a user would, and
reports sentences/s (median of --repeats runs) and peak resident memory. Running the same at N/5
lines shows whether memory grows with the input.

    python benchmarks/tag_speed.py --model models/bilstm --lines 10000
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adelabel.corpus.ade import read_ade  # noqa: E402
from adelabel.text import split_sentences  # noqa: E402


def make_input(corpus: Path, lines: int, path: Path) -> int:
    sentences, _ = read_ade(corpus)
    docs: dict[str, list[str]] = defaultdict(list)
    for s in sentences:
        docs[s.doc_id].append(s.text)
    abstracts = [" ".join(texts) for _, texts in sorted(docs.items())]
    n_sentences = 0
    with path.open("w", encoding="utf-8") as fh:
        for i in range(lines):
            text = abstracts[i % len(abstracts)]
            n_sentences += len(split_sentences(text))
            fh.write(text + "\n")
    return n_sentences


def run_cli(*args: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `adelabel ARGS...` process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *args])
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"adelabel {' '.join(args)} failed with status {status}")
    return seconds, usage.ru_maxrss / 1024


def run_once(model: Path, src: Path, out: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one `adelabel tag` process."""
    return run_cli("tag", str(src), "--model", str(model), "--output", str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "bilstm")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "ade-v2")
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in (args.lines // 5, args.lines):
            src = tmp / f"in{n}.txt"
            n_sentences = make_input(args.corpus, n, src)
            runs = [run_once(args.model, src, tmp / "out.jsonl") for _ in range(args.repeats)]
            secs = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            print(f"{n:>6,} lines, {n_sentences:>7,} sentences: median {secs:6.1f} s over {args.repeats} runs "
                  f"-> {n_sentences / secs:7,.0f} sentences/s, {n / secs:6,.0f} lines/s; peak RSS {rss:,.0f} MiB")


if __name__ == "__main__":
    main()
