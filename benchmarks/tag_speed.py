"""Whole-process tagging speed and memory of `adelabel tag`, model load included.

Builds N lines of abstract text from the real corpus (each line: all corpus sentences of one PubMed
abstract, joined by spaces; abstracts cycled until N lines), runs the CLI on it as a user would, and
reports sentences/s (median of --repeats runs), tokens/s as a ratio to a bare BiLSTM forward pass
timed in the same run (the yardstick of issue #7), and peak memory. Running the same at N/5
lines shows whether memory grows with the input.

    python benchmarks/tag_speed.py --model models/bilstm --lines 10000
    python benchmarks/tag_speed.py --unit sentence --lines 50000 --repeats 1   # one sentence per line
    python benchmarks/tag_speed.py --unit sentence --lines 50000 --precision bf16   # tag --precision bf16
    python benchmarks/tag_speed.py --lines 5000 --against OTHER/cli.py OTHER_MODEL   # side by side
    python benchmarks/tag_speed.py --lines 500 --model models/bilstm --model models/transformer   # an ensemble

``--against`` times another checkout's ``cli.py`` (an older commit, in a git worktree) with a model it
reads, alternating with this one on the same input, and prints the ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adelabel.corpus.ade import read_ade  # noqa: E402
from adelabel.text import split_sentences, tokenize  # noqa: E402


def make_input(corpus: Path, lines: int, path: Path, unit: str = "abstract") -> tuple[int, int]:
    """``lines`` lines of corpus text: whole abstracts (their sentences joined by spaces) or single
    sentences, cycled. Returns the number of sentences and of tokens written."""
    sentences, _ = read_ade(corpus)
    if unit == "sentence":
        texts = sorted({s.text for s in sentences})
    else:
        docs: dict[str, list[str]] = defaultdict(list)
        for s in sentences:
            docs[s.doc_id].append(s.text)
        texts = [" ".join(t) for _, t in sorted(docs.items())]
    n_sentences = n_tokens = 0
    with path.open("w", encoding="utf-8") as fh:
        for i in range(lines):
            text = texts[i % len(texts)]
            parts = split_sentences(text)
            n_sentences += len(parts)
            n_tokens += sum(len(tokenize(text[a:b])) for a, b in parts)
            fh.write(text + "\n")
    return n_sentences, n_tokens


def bare_bilstm_tokens_per_second(seconds: float = 5.0) -> float:
    """The yardstick: torch fp32 ``nn.LSTM(200, 200, bidirectional=True)``, inference mode, batches of
    64 x 30 tokens, 2 threads; tokens per second over ``seconds`` after a warm-up."""
    import torch

    torch.set_num_threads(2)
    lstm = torch.nn.LSTM(200, 200, bidirectional=True, batch_first=True).eval()
    x = torch.randn(64, 30, 200)
    with torch.inference_mode():
        for _ in range(5):
            lstm(x)
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            lstm(x)
            n += 1
    return n * 64 * 30 / (time.perf_counter() - start)


def tree_memory(pid: int) -> int:
    """Bytes of memory process ``pid`` and its descendants hold now, as their summed proportional set
    sizes (each shared page divided among the processes sharing it, so the torch libraries that every
    worker maps count once); Linux only, 0 elsewhere."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, grown = {pid}, True
    while grown:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        tree |= more
        grown = bool(more)
    total = 0
    for p in tree:
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:"))
    return total


def run_cli(*args: str, cli: Path = ROOT / "cli.py", quiet: bool = False) -> tuple[float, float]:
    """Wall seconds and peak memory (MiB) of one `adelabel ARGS...` run (``quiet``: its stdout dropped):
    the largest of its processes' peak RSS and, sampled every 0.2 s, the memory all its processes hold
    together (``--workers N`` starts N more, each with the model)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(cli), *args], stdout=subprocess.DEVNULL if quiet else None)
    peak, done = [0], threading.Event()

    def sample() -> None:  # not proc.poll(), which would reap the process before wait4 reads its usage
        while not done.wait(0.2):
            peak[0] = max(peak[0], tree_memory(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if status != 0:
        raise SystemExit(f"adelabel {' '.join(args)} failed with status {os.waitstatus_to_exitcode(status)}")
    # The kernel's figure is the largest single process's peak; the samples add a run's processes up.
    return seconds, max(usage.ru_maxrss * 1024, peak[0]) / 2**20


def model_options(models: list[Path]) -> list[str]:
    return [a for m in models for a in ("--model", str(m))]


def run_once(models: list[Path], src: Path, out: Path, cli: Path = ROOT / "cli.py") -> tuple[float, float]:
    """Seconds and peak memory (MiB) of one `adelabel tag` run."""
    return run_cli("tag", str(src), *model_options(models), "--output", str(out), cli=cli)


def side_by_side(args, tmp: Path) -> None:
    other_cli, other_model = Path(args.against[0]), Path(args.against[1])
    src = tmp / "in.txt"
    n_sentences, _ = make_input(args.corpus, args.lines, src, args.unit)
    runs: dict[str, list] = {"other": [], "this": []}
    for _ in range(args.repeats):
        runs["other"].append(run_once([other_model], src, tmp / "o.jsonl", other_cli))
        runs["this"].append(run_once(args.model, src, tmp / "o.jsonl"))
    rates = {k: n_sentences / statistics.median(r[0] for r in v) for k, v in runs.items()}
    this = " + ".join(str(m) for m in args.model)
    for name, label in (("other", f"{other_cli} {other_model}"), ("this", f"{ROOT / 'cli.py'} {this}")):
        print(f"{label}: {n_sentences:,} sentences, {rates[name]:,.0f} sentences/s (median of {args.repeats}), "
              f"peak memory {max(r[1] for r in runs[name]):,.0f} MiB")
    print(f"ratio this / other: {rates['this'] / rates['other']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append",
                        help="model folder (default models/bilstm); repeat it to time an ensemble")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "ade-v2")
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--unit", choices=("abstract", "sentence"), default="abstract",
                        help="what a line holds: a whole abstract, or one sentence")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="adelabel tag --workers")
    parser.add_argument("--precision", default="fp32", help="adelabel tag --precision (fp32, or bf16)")
    parser.add_argument("--backend", default="torch", help="adelabel tag --backend (torch or onnx)")
    parser.add_argument("--against", nargs=2, metavar=("CLI", "MODEL"))
    args = parser.parse_args()
    args.model = args.model or [ROOT / "models" / "bilstm"]
    if args.against and (args.precision, args.backend, args.workers) != ("fp32", "torch", 1):
        # The other checkout may not know these options; both sides must run alike.
        parser.error("--against times both checkouts with tag's defaults: drop --precision, --backend, --workers")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.against:
            side_by_side(args, tmp)
            return
        bare = bare_bilstm_tokens_per_second()
        print(f"bare BiLSTM forward (200 -> 2 x 200, batch 64 x 30, 2 threads): {bare:,.0f} tokens/s")
        for n in (args.lines // 5, args.lines):
            src = tmp / f"in{n}.txt"
            n_sentences, n_tokens = make_input(args.corpus, n, src, args.unit)
            runs = [run_cli("tag", str(src), *model_options(args.model), "--output", str(tmp / "out.jsonl"),
                            "--workers", str(args.workers), "--precision", args.precision, "--backend", args.backend)
                    for _ in range(args.repeats)]
            secs = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            print(f"{n:>6,} lines, {n_sentences:>7,} sentences, {n_tokens:>9,} tokens: median {secs:6.1f} s over "
                  f"{args.repeats} runs -> {n_sentences / secs:7,.0f} sentences/s, {n_tokens / secs:8,.0f} tokens/s "
                  f"(ratio to the bare BiLSTM {n_tokens / secs / bare:.2f}); peak memory {rss:,.0f} MiB")


if __name__ == "__main__":
    main()
