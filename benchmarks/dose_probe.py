"""How much a dose written after the drug moves a tagger's sentence decision.

Safety narratives give doses ("warfarin 5 mg daily caused bleeding") far more often than the ADE
corpus's sentences do. For each annotated sentence of a prepared split whose first drug stands as a
word of its own (not inside "clozapine-induced"), a phrase is written after that drug; each phrase's
sentences are tagged, and the mean `ade` probability and the number of sentences reported are printed
beside those of the same sentences unchanged (the first row). A sentence changed so still reports
the same event.

    python benchmarks/dose_probe.py --data data --split test --model adelabel/pretrained/ade-bilstm
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
# Words that are no dose, then doses. The doses are written unlike those `train.dose_copies` trains on
# (adelabel/augment.py: other numbers, "x", "q12h", "micrograms", "twice a day" in words), so the
# probe measures what the model generalises, not the phrases it was shown.
PHRASES = ["therapy", "tablets", "2 x 500 mg", "7.5 mg/day", "(35 mg orally twice a day)", "120 micrograms q12h",
           "0.1 mg/kg every 12 hours"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", nargs="+", default=[str(ROOT / "adelabel" / "pretrained" / "ade-bilstm")])
    args = parser.parse_args()
    torch.set_num_threads(2)
    from adelabel import Tagger
    from adelabel.augment import drug_end, with_phrase
    from adelabel.prepare import read_split

    # Where training's dose copies write a dose: after the first annotated drug that stands as a word.
    chosen = [(s, at) for s in read_split(args.data, args.split)
              if not s.negative and (at := drug_end(s, set())) is not None]
    print(f"{len(chosen)} annotated sentences of {args.data / args.split} with a drug standing as a word")
    for model in args.model:
        tagger = Tagger.load(model, device="cpu")
        print(f"\n{model}\n{'written after the drug':28s} mean ade  reported")
        for phrase in [None, *PHRASES]:
            texts = [s.text if phrase is None else with_phrase(s, at, phrase).text for s, at in chosen]
            results = list(tagger.analyze_pipe(texts))
            reported = sum(any(s.reported for s in a.sentences) for a in results)
            print(f"{phrase or '(nothing)':28s} {sum(a.ade for a in results) / len(results):8.3f}  {reported:5d} "
                  f"({reported / len(results):.1%})")


if __name__ == "__main__":
    main()
