"""Train every architecture on the same prepared split with the same seed, and write one table.

For each configuration: entity F1 (seqeval, strict IOB2) per type and micro over all test sentences,
micro F1 over the test sentences with annotations (gate open), the epoch kept and epochs run,
median seconds per training epoch, peak memory of the training process, and whole-process tagging
speed and peak memory of `adelabel tag` on lines of abstract text (as benchmarks/tag_speed.py).

    python benchmarks/compare.py --data data            # all of them, one after another (hours on a CPU)
    python benchmarks/compare.py --only bilstm,bilstm-no-crf  # some of them, by short name

Results accumulate in benchmarks/out/compare.jsonl (a configuration already there is not trained
again; delete the line to redo it) and the table is written to benchmarks/out/compare.md.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tag_speed import ROOT, make_input, run_cli, run_once  # noqa: E402

# name, architecture, config overrides (everything else: `adelabel config --arch ARCH`)
CONFIGURATIONS = [
    ("bilstm", "bilstm", []),
    ("bilstm, classic (words only, softmax, no gate)", "bilstm", ["model.chars=none", "model.crf=false",
                                                                  "model.gate=false"]),
    ("bilstm, char BiLSTM instead of CNN", "bilstm", ["model.chars=lstm"]),
    ("bilstm, no CRF", "bilstm", ["model.crf=false"]),
    ("lstm", "lstm", []),
    ("bigru", "bigru", []),
    ("gru", "gru", []),
    ("birnn", "birnn", []),
    ("rnn", "rnn", []),
    ("seq2seq", "seq2seq", []),
    ("transformer", "transformer", []),
    ("transformer, softmax instead of CRF", "transformer", ["model.crf=false"]),
]


def slug(name: str) -> str:
    """A configuration's short name, for --only and its model folder: "bilstm, no CRF" -> bilstm-no-crf."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def train(arch: str, overrides: list[str], data: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `adelabel train` process."""
    args = ["train", "--arch", arch, "--data", str(data), "--out", str(out), "--device", "cpu"]
    for item in overrides:
        args += ["--set", item]
    return run_cli(*args)


def measure(name: str, arch: str, overrides: list[str], data: Path, out: Path, tag_input: Path,
            tag_sentences: int) -> dict:
    model = out / slug(name)
    seconds, train_rss = train(arch, overrides, data, model)
    metrics = json.loads((model / "metrics.json").read_text(encoding="utf-8"))
    log = [json.loads(line) for line in (model / "train_log.jsonl").read_text(encoding="utf-8").splitlines()]
    tag_seconds, tag_rss = run_once(model, tag_input, out / "tagged.jsonl")
    test = metrics["test"]
    return {
        "name": name, "arch": arch, "overrides": overrides,
        "AE": test["AE"]["f1"], "DRUG": test["DRUG"]["f1"], "micro": test["micro"]["f1"],
        "annotated_micro": test["annotated_only"]["micro"]["f1"], "dev_micro": metrics["dev"]["micro"]["f1"],
        "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
        "seconds_per_epoch": statistics.median(r["seconds"] for r in log), "train_minutes": seconds / 60,
        "train_peak_mib": train_rss, "tag_sentences_per_second": tag_sentences / tag_seconds,
        "tag_peak_mib": tag_rss,
    }


def table(rows: list[dict]) -> str:
    head = ("| configuration | AE F1 | DRUG F1 | micro F1 | micro F1, annotated sentences | best epoch / run | "
            "s per epoch | training, min | training peak MiB | tagging sentences/s | tagging peak MiB |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['name']} | {r['AE']:.3f} | {r['DRUG']:.3f} | **{r['micro']:.3f}** | {r['annotated_micro']:.3f} | "
        f"{r['best_epoch']} / {r['epochs_run']} | {r['seconds_per_epoch']:.0f} | {r['train_minutes']:.1f} | "
        f"{r['train_peak_mib']:,.0f} | {r['tag_sentences_per_second']:,.0f} | {r['tag_peak_mib']:,.0f} |\n"
        for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "ade-v2",
                        help="where the text to tag comes from")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--tag-lines", type=int, default=2_000)
    parser.add_argument("--only", default="", help="comma-separated short names, e.g. bilstm,bilstm-no-crf "
                                                   "(default: all)")
    args = parser.parse_args()
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    unknown = wanted - {slug(name) for name, _, _ in CONFIGURATIONS}
    if unknown:
        raise SystemExit(f"unknown configuration(s) {', '.join(sorted(unknown))}; known: "
                         + ", ".join(slug(name) for name, _, _ in CONFIGURATIONS))
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "compare.jsonl"
    done = {}
    if results_path.is_file():
        done = {r["name"]: r for r in map(json.loads, results_path.read_text(encoding="utf-8").splitlines())}
    with tempfile.TemporaryDirectory() as tmp:
        tag_input = Path(tmp) / "abstracts.txt"
        tag_sentences, _ = make_input(args.corpus, args.tag_lines, tag_input)
        for name, arch, overrides in CONFIGURATIONS:
            if (wanted and slug(name) not in wanted) or name in done:
                continue
            print(f"== {name}", file=sys.stderr, flush=True)
            done[name] = measure(name, arch, overrides, args.data, args.out, tag_input, tag_sentences)
            with results_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(done[name]) + "\n")
    rows = [done[name] for name, _, _ in CONFIGURATIONS if name in done]
    text = table(rows)
    (args.out / "compare.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
