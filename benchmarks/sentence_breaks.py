"""How well `split_sentences` finds the corpus's own sentence breaks.

The corpus gives each abstract as separate sentences; joined with a space (in the order the reader
gives them), each abstract is split again, and the breaks found are compared with the corpus's:
breaks missed (two sentences run together), breaks added (a sentence cut in two), and sentences
found whole. A cut parts a drug from its effect; a missed break costs less (README, `adelabel tag`).

    python benchmarks/sentence_breaks.py --corpus ../shared/corpora/ade-v2 [--show 20]
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adelabel.corpus.ade import read_ade  # noqa: E402
from adelabel.text import split_sentences  # noqa: E402


def compare(abstracts: dict[str, list[str]]) -> dict:
    found_whole = total = 0
    missed: list[str] = []
    added: list[str] = []
    for sentences in abstracts.values():
        text = " ".join(sentences)
        gold, start = [], 0
        for s in sentences:
            gold.append((start, start + len(s)))
            start += len(s) + 1
        predicted = split_sentences(text)
        ends, found_ends = {e for _, e in gold[:-1]}, {e for _, e in predicted[:-1]}
        missed += [f"{text[max(0, e - 40):e]} | {text[e + 1:e + 40]}" for e in sorted(ends - found_ends)]
        added += [f"{text[max(0, e - 40):e]} | {text[e:e + 40].lstrip()}" for e in sorted(found_ends - ends)]
        total += len(gold)
        found_whole += len(set(gold) & set(predicted))
    return {"sentences": total, "found_whole": found_whole, "missed": missed, "added": added}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpora/ade-v2"))
    parser.add_argument("--show", type=int, default=0, help="print this many breaks missed and added")
    args = parser.parse_args()
    sentences, _ = read_ade(args.corpus)
    abstracts: dict[str, list[str]] = defaultdict(list)
    for s in sentences:
        if s.text not in abstracts[s.doc_id]:
            abstracts[s.doc_id].append(s.text)
    r = compare(abstracts)
    print(f"{len(abstracts):,} abstracts, {r['sentences']:,} sentences: {r['found_whole']:,} found whole "
          f"({r['found_whole'] / r['sentences']:.2%}); breaks missed {len(r['missed']):,}, added {len(r['added']):,}")
    for kind in ("missed", "added"):
        for line in r[kind][:args.show]:
            print(f"{kind}: {line}")


if __name__ == "__main__":
    main()
