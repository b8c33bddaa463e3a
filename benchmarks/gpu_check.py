"""The GPU check: does adelabel train, score and tag on this machine's GPU as it does on its CPU?

Trains each architecture for two epochs on the GPU (the command a user types; the bilstm under torchrun
in bf16, as several GPUs would train it), scores the model on
the test split on the GPU and on the CPU (the F1s must agree within half a point: same weights, other
kernels) and on the GPU in bf16, the three scorings at once, and tags 50,000 one-sentence lines on the GPU: once as a
whole `adelabel tag` process (model load included), then 10,000 of them in this process in fp32 and in
bf16 (the tagging alone, with peak GPU memory). Prints training and tagging throughput and peak memory; writes
everything to WORK/gpu_check.json after each architecture. Exit status 1 when CPU and GPU disagree,
2 when a step fails.

    benchmarks/gpu_check.sh                       # data/ prepared, both architectures
    python benchmarks/gpu_check.py --data data --arch bilstm --work /tmp/gpu
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from tag_speed import run_cli  # noqa: E402


def score_three_ways(model: Path, data: Path, device: str, work: Path) -> dict:
    """Test-split F1 of ``model`` on the GPU in fp32 and bf16 and on the CPU in fp32, the three
    `adelabel evaluate` processes at once: they check agreement, not speed, and one alone leaves most of
    the machine idle. Each process is given its share of the cores, so that they do not fight over them."""
    runs = {"gpu": (device, "fp32"), "gpu_bf16": (device, "bf16"), "cpu": ("cpu", "fp32")}
    cores = len(os.sched_getaffinity(0))
    threads = {"cpu": max(1, cores // 2), "gpu": max(1, cores // 4), "gpu_bf16": max(1, cores // 4)}
    procs: dict[str, subprocess.Popen] = {}
    outs = {name: work / f"{model.name}-{name}.json" for name in runs}
    start = time.perf_counter()
    try:
        for name, (dev, precision) in runs.items():
            procs[name] = subprocess.Popen(
                [sys.executable, str(ROOT / "cli.py"), "evaluate", "--model", str(model), "--data", str(data),
                 "--device", dev, "--precision", precision, "--json", str(outs[name]), "--quiet"],
                stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": str(threads[name])})
        for name, proc in procs.items():
            if proc.wait() != 0:
                raise SystemExit(f"adelabel evaluate --model {model} ({name}) failed with status {proc.returncode}")
    finally:
        for proc in procs.values():  # one failed: the others would run on, orphaned, holding the GPU
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    result: dict = {name: {"all_sentences_f1": m["micro"]["f1"], "annotated_f1": m["annotated_only"]["micro"]["f1"]}
                    for name, m in ((n, json.loads(outs[n].read_text())) for n in runs)}
    result["scoring_seconds"] = round(time.perf_counter() - start, 1)
    return result


def torchrun(args: list[str]) -> float:
    """Wall seconds of `torchrun --standalone --nproc_per_node 1 -m adelabel ARGS...`."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               "-m", "adelabel", *args]
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise SystemExit(f"torchrun -m adelabel {' '.join(args)} failed")
    return time.perf_counter() - start


def one_sentence_lines(data: Path, n: int, path: Path) -> None:
    """``n`` lines, each one sentence of the test split, cycled."""
    texts = [json.loads(line)["text"] for line in (data / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(texts[i % len(texts)] + "\n")


def tag_in_process(model: Path, lines: Path, device: str, precision: str, limit: int = 10_000) -> dict:
    """Sentences/s (model loaded, the lines read from disk) and peak GPU memory of tagging the first
    ``limit`` of ``lines``."""
    import torch

    sys.path.insert(0, str(ROOT))
    from adelabel import Tagger

    tagger = Tagger.load(model, device=device, precision=precision)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start, n = time.perf_counter(), 0
    with lines.open(encoding="utf-8") as fh:
        for _ in tagger.analyze_pipe(line.rstrip("\n") for line, _ in zip(fh, range(limit))):
            n += 1
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else 0.0
    return {"sentences_per_second": round(n / seconds), "peak_gpu_mib": round(peak)}


def main() -> int:
    began = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="a prepared data folder")
    parser.add_argument("--arch", action="append", help="bilstm and/or transformer (default: both)")
    parser.add_argument("--encoder", type=Path, help="the transformer's encoder folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--work", type=Path, default=Path("gpu-check"), help="folder for models and results")
    parser.add_argument("--lines", type=int, default=50_000, help="one-sentence lines to tag")
    parser.add_argument("--device", default="cuda", help="cuda (or cpu, to try the script itself)")
    args = parser.parse_args()
    if args.device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", args.device):
        raise SystemExit(f"gpu_check: --device: expected cuda, cuda:N or cpu, got {args.device!r}")
    if not (args.data / "manifest.json").is_file():
        raise SystemExit(f"gpu_check: --data {args.data}: not a prepared data folder (no manifest.json; "
                         "`adelabel prepare --out DIR` makes one)")

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device here", file=sys.stderr)
        return 2
    card = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    report: dict = {"card": card, "torch": torch.__version__, "cuda": torch.version.cuda, "archs": {}}
    print(f"{card}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    # Absolute: torchrun runs in the repository's root, the other steps here.
    args.work, args.data = args.work.resolve(), args.data.resolve()
    if args.encoder is not None:
        args.encoder = args.encoder.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    lines = args.work / "lines.txt"
    one_sentence_lines(args.data, args.lines, lines)
    agree = True
    for arch in args.arch or ["bilstm", "transformer"]:
        model = args.work / arch
        extra = ["--encoder", str(args.encoder)] if arch == "transformer" and args.encoder else []
        train = ["train", "--arch", arch, "--data", str(args.data), "--out", str(model), "--epochs", "2",
                 "--device", args.device, "--set", "train.patience=2", "--quiet", *extra]
        if arch == "bilstm":  # as several GPUs train it: under torchrun (one process here), in bf16
            seconds = torchrun(train + ["--precision", "bf16"])
        else:
            seconds, _ = run_cli(*train)
        log = [json.loads(line) for line in (model / "train_log.jsonl").read_text().splitlines()]
        row = {"train_seconds": round(seconds, 1),
               "train_sentences_per_second": round(max(r["sentences_per_second"] for r in log)),
               **score_three_ways(model, args.data, args.device, args.work)}
        gaps = [abs(row["gpu"][k] - row["cpu"][k]) for k in ("all_sentences_f1", "annotated_f1")]
        row["cpu_gpu_agree"] = max(gaps) <= 0.005
        agree &= row["cpu_gpu_agree"]
        out = args.work / f"{arch}-tagged.jsonl"
        tag_seconds, rss = run_cli("tag", str(lines), "--model", str(model), "--device", args.device, "--output", str(out))
        row["tag_process"] = {"sentences_per_second": round(args.lines / tag_seconds), "seconds": round(tag_seconds, 1),
                              "peak_rss_mib": round(rss)}
        for precision in ("fp32", "bf16"):
            row[f"tag_{precision}"] = tag_in_process(model, lines, args.device, precision)
        report["archs"][arch] = row
        report["seconds"] = round(time.perf_counter() - began)
        print(json.dumps({arch: row}, indent=1), flush=True)
        (args.work / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'arch':<12}{'train sent/s':>13}{'tag process':>12}{'tag fp32':>9}{'bf16':>8}{'GPU MiB':>9}"
          f"{'F1 gpu':>8}{'F1 cpu':>8}{'F1 bf16':>8}  agree")
    for arch, r in report["archs"].items():
        print(f"{arch:<12}{r['train_sentences_per_second']:>13,}{r['tag_process']['sentences_per_second']:>12,}"
              f"{r['tag_fp32']['sentences_per_second']:>9,}"
              f"{r['tag_bf16']['sentences_per_second']:>8,}{r['tag_fp32']['peak_gpu_mib']:>9,}"
              f"{r['gpu']['annotated_f1']:>8.4f}{r['cpu']['annotated_f1']:>8.4f}{r['gpu_bf16']['annotated_f1']:>8.4f}"
              f"  {'yes' if r['cpu_gpu_agree'] else 'NO'}")
    print(f"{report['seconds']} s in all")
    return 0 if agree else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit as failed:  # a step that failed says so in words; 1 stays "CPU and GPU disagree"
        if isinstance(failed.code, str):
            print(failed.code, file=sys.stderr)
            sys.exit(2)
        raise
