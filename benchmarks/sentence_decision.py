"""Three ways to decide that a sentence reports an ADE, compared on trained taggers without training
anything: for each, the threshold giving the best entity micro-F1 on dev, then entity micro-F1 over all
test sentences and the test sentence-decision F1.

- gate: the sentence's ``ade`` reaches the threshold (the rule before the pair condition);
- gate + pair: and the tagger finds a pair in it to relate (adelabel.inference.reports, the default);
- gate + n-grams + pair: the gate's logit stacked (logistic regression fitted on dev, 5-fold
  out-of-fold scores for choosing the threshold) with a word 1-2-gram and character 3-5-gram TF-IDF
  logistic regression trained on the training split's sentences; not in adelabel (tried, not kept);
- gate + abstract + pair: the gate's logit stacked with the highest and the mean logit of the other
  sentences of the same abstract (PubMed ID) and the abstract's size, as a tagger could when a line
  holds a whole abstract; not in adelabel (tried, not kept).

    python benchmarks/sentence_decision.py --data data models/bilstm models/bilstm-s14 models/bilstm-s15
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from adelabel.data import encode_sentences
from adelabel.evaluate import GATE_THRESHOLDS, _entity_tags, score, sentence_scores
from adelabel.inference import predict, reports
from adelabel.prepare import read_split
from adelabel.tagger import Tagger


def ngram_scores(data: str) -> dict[str, np.ndarray]:
    train = [s for s in read_split(data, "train") if s.text.strip()]
    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3, sublinear_tf=True)
    texts = [s.text for s in train]
    x = hstack([words.fit_transform(texts), chars.fit_transform(texts)]).tocsr()
    lr = LogisticRegression(C=4.0, max_iter=2000).fit(x, [not s.negative for s in train])
    out = {}
    for split in ("dev", "test"):
        texts = [s.text for s in read_split(data, split)]
        out[split] = lr.decision_function(hstack([words.transform(texts), chars.transform(texts)]).tocsr())
    return out


def abstract_features(gate: np.ndarray, docs: list[str]) -> np.ndarray:
    """Per sentence: its gate logit, the highest and the mean logit of the other sentences of its
    abstract (-8, a sure "no", where it has none) and the log of the abstract's size."""
    members: dict[str, list[int]] = {}
    for i, doc in enumerate(docs):
        members.setdefault(doc, []).append(i)
    rows = []
    for i, doc in enumerate(docs):
        others = [gate[j] for j in members[doc] if j != i] or [-8.0]
        rows.append([gate[i], max(others), float(np.mean(others)), math.log(len(members[doc]))])
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", default="data")
    args = parser.parse_args()
    torch.set_num_threads(2)
    ngrams = ngram_scores(args.data)
    print("| model | decision | threshold | all-sentence entity F1 | sentence F1 |\n|---|---|---|---|---|")
    for path in args.models:
        tagger = Tagger.load([path], device="cpu")
        model, tags = tagger.model, tagger.tags
        split = {}
        for name in ("dev", "test"):
            sentences = read_split(args.data, name)
            examples = encode_sentences(sentences, tagger.vocabs, tags)
            predicted = predict(model, examples, 256, tagger.device, threshold=0.0)
            kept = [i for i, e in enumerate(examples) if e.words]
            split[name] = dict(predicted=predicted, kept=kept, gold=[[tags[t] for t in examples[i].tags] for i in kept],
                               labels=np.array([not sentences[i].negative for i in kept]),
                               gate=np.array([math.log(max(predicted[i].sentence, 1e-6) / max(1 - predicted[i].sentence, 1e-6)) for i in kept]),
                               pair=np.array([bool(predicted[i].pairs) for i in kept]),
                               ngram=ngrams[name][kept], docs=[sentences[i].doc_id for i in kept])

        def decide(name, probs, t, with_pair):
            s = split[name]
            return [bool(p >= t) and (not with_pair or bool(q)) for p, q in zip(probs, s["pair"])]

        def result(name, passes):
            s = split[name]
            f1 = score(s["gold"], _entity_tags(s["predicted"], s["kept"], tags, passes))["micro"]["f1"]
            return f1, sentence_scores(s["labels"].tolist(), [0.0] * len(passes), 0.5, passes)["f1"]

        stack = np.column_stack
        features = {name: stack([split[name]["gate"], split[name]["ngram"]]) for name in split}
        fitted = LogisticRegression().fit(features["dev"], split["dev"]["labels"])
        dev_stacked = cross_val_predict(LogisticRegression(), features["dev"], split["dev"]["labels"], cv=5,
                                        method="predict_proba")[:, 1]
        context = {name: abstract_features(split[name]["gate"], split[name]["docs"]) for name in split}
        fitted_context = LogisticRegression().fit(context["dev"], split["dev"]["labels"])
        dev_context = cross_val_predict(LogisticRegression(), context["dev"], split["dev"]["labels"], cv=5,
                                        method="predict_proba")[:, 1]
        ways = [("gate", 1 / (1 + np.exp(-split["dev"]["gate"])), 1 / (1 + np.exp(-split["test"]["gate"])), False),
                ("gate + pair", 1 / (1 + np.exp(-split["dev"]["gate"])), 1 / (1 + np.exp(-split["test"]["gate"])), True),
                ("gate + n-grams + pair", dev_stacked, fitted.predict_proba(features["test"])[:, 1], True),
                ("gate + abstract + pair", dev_context, fitted_context.predict_proba(context["test"])[:, 1], True)]
        for label, dev_p, test_p, with_pair in ways:
            best = max(GATE_THRESHOLDS, key=lambda t: result("dev", decide("dev", dev_p, t, with_pair))[0])
            f1, sentence_f1 = result("test", decide("test", test_p, best, with_pair))
            print(f"| {path} | {label} | {best:.2f} | {f1:.4f} | {sentence_f1:.4f} |", flush=True)
        assert decide("test", 1 / (1 + np.exp(-split["test"]["gate"])), 0.3, True) == \
            [reports(model, split["test"]["predicted"][i]._replace(sentence=float(1 / (1 + np.exp(-g)))), 0.3)
             for i, g in zip(split["test"]["kept"], split["test"]["gate"])]


if __name__ == "__main__":
    main()
