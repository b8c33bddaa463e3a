"""How much hard-wrapped text loses when tagged line by line, against --input-format paragraphs.

Each abstract of a prepared split (its sentences in order, joined by spaces) is written three ways:
one abstract per line (the reference), wrapped at --width columns and tagged one line at a time, and
the same wrapped text tagged as paragraphs (a blank line between abstracts). A wrap only turns a space
into a line feed, so every gold span keeps its offsets in the abstract. Each way is tagged by a whole
`adelabel tag` process and scored against the split's gold spans, type and both ends exact, over every
sentence (those of ADE-NEG sentences hold no entity).

    python benchmarks/wrapped_text.py --data data --model adelabel/pretrained/ade-bilstm
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def abstracts(split: Path) -> list[tuple[str, set[tuple[int, int, str]]]]:
    """Each document's sentences joined by a space, with the gold spans at their offsets in it."""
    docs: dict[str, list[dict]] = defaultdict(list)
    for line in split.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        docs[record["doc_id"]].append(record)
    out = []
    for records in docs.values():
        text, gold = "", set()
        for r in records:
            base = len(text) + (1 if text else 0)
            text = f"{text} {r['text']}" if text else r["text"]
            gold |= {(base + s, base + e, label) for s, e, label in r["spans"]}
        out.append((text, gold))
    return out


def wrap(text: str, width: int) -> str:
    """``text`` with spaces turned into line feeds so that no line runs past ``width`` (a word longer
    than that stands on a line of its own): the same characters at the same offsets but those."""
    chars, start, last_space = list(text), 0, None
    for i, c in enumerate(text):
        if c == " ":
            last_space = i
        if i - start >= width and last_space is not None and last_space > start:
            chars[last_space] = "\n"
            start, last_space = last_space + 1, None
    return "".join(chars)


def tag(path: Path, model: str, *extra: str) -> list[dict]:
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "tag", str(path), "--model", model, "-q", *extra],
                          capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def score(found: set, gold: set) -> tuple[float, float, float]:
    right = len(found & gold)
    p = right / len(found) if found else 0.0
    r = right / len(gold) if gold else 0.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default=str(ROOT / "adelabel" / "pretrained" / "ade-bilstm"))
    parser.add_argument("--width", type=int, default=80)
    args = parser.parse_args()
    docs = abstracts(args.data / f"{args.split}.jsonl")
    gold = {(d, *g) for d, (_, spans) in enumerate(docs) for g in spans}
    wrapped = [wrap(text, args.width) for text, _ in docs]
    with tempfile.TemporaryDirectory() as tmp:
        whole, lines, paras = Path(tmp, "whole.txt"), Path(tmp, "lines.txt"), Path(tmp, "paragraphs.txt")
        whole.write_text("".join(t + "\n" for t, _ in docs), encoding="utf-8")
        lines.write_text("".join(w + "\n" for w in wrapped), encoding="utf-8")
        paras.write_text("\n\n".join(wrapped) + "\n", encoding="utf-8")
        found = {"one abstract per line (text)": {(d, e["start"], e["end"], e["label"])
                                                   for d, r in enumerate(tag(whole, args.model)) for e in r["entities"]}}
        # Line by line: each record is one physical line; its offsets move by where the line starts.
        starts = [(d, k) for d, w in enumerate(wrapped) for k in [0] + [i + 1 for i, c in enumerate(w) if c == "\n"]]
        found["wrapped, line by line (text)"] = {(starts[n][0], starts[n][1] + e["start"], starts[n][1] + e["end"],
                                                   e["label"]) for n, r in enumerate(tag(lines, args.model))
                                                  for e in r["entities"]}
        found["wrapped (paragraphs)"] = {(d, e["start"], e["end"], e["label"]) for d, r in
                                         enumerate(tag(paras, args.model, "--input-format", "paragraphs"))
                                         for e in r["entities"]}
    print(f"{len(docs)} abstracts of {args.data / args.split}, {sum(w.count(chr(10)) + 1 for w in wrapped):,} "
          f"lines at {args.width} columns; {len(gold):,} gold entities")
    for name, spans in found.items():
        p, r, f = score(spans, gold)
        print(f"{name:32s} P {p:.4f} R {r:.4f} F1 {f:.4f}")


if __name__ == "__main__":
    main()
