"""Sentence classifiers: labelled text in, a trained classifier, its scores, plots and records out."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from adelabel import Classifier, Tagger
from adelabel.corpus.labelled import read_labelled
from adelabel.errors import AdelabelError, InputError, OptionError
from conftest import run_cli

WORDS = {
    "ade": "the drug caused a severe rash fever and nausea after treatment".split(),
    "dose": "patients received twenty milligrams daily by mouth for weeks".split(),
    "other": "the study enrolled adults in three centres over two years".split(),
}


def labelled_file(path: Path, classes: list[str], documents: int, seed: int = 1, doc_ids: bool = True) -> Path:
    """A separable labelled corpus: each class draws its words from its own list."""
    rng = random.Random(seed)
    lines = []
    for d in range(documents):
        label = classes[rng.randrange(len(classes))] if len(classes) > 2 else \
            classes[1] if d % 4 == 0 else classes[0]
        for _ in range(3):
            words = rng.sample(WORDS[label], 6)
            lines.append((f"doc{d}\t" if doc_ids else "") + f"{label}\t{' '.join(words)}.")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    """A two-class labelled file prepared and a bigru classifier trained on it (a few seconds)."""
    from adelabel.config import resolve
    from adelabel.prepare import prepare
    from adelabel.train import train

    t = tmp_path_factory.mktemp("classify")
    source = labelled_file(t / "two.tsv", ["other", "ade"], 80, doc_ids=False)
    prepare(source, t / "data", dim=16, w2v_epochs=3, log=lambda _: None, format="labelled")
    config = resolve("bigru", task="classify", overrides=["train.max_epochs=6", "model.hidden_size=16",
                                                          "model.char_size=8", "train.lr=0.01"])
    metrics = train(config, t / "data", t / "model", device="cpu", log=None)
    return {"t": t, "data": t / "data", "model": t / "model", "metrics": metrics}


def test_labelled_files_are_read_in_either_layout_and_bad_lines_counted(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("d1\tA\tfirst text\nd1\tB\tsecond\twith a tab\n\nd2\tA\t  \nno tabs here\nd3\t\tno label\n",
                    encoding="utf-8")
    sentences, numbers, report = read_labelled(path)
    assert [(s.doc_id, s.label, s.text) for s in sentences] == [("d1", "A", "first text"),
                                                               ("d1", "B", "second\twith a tab")]
    assert numbers == [1, 2] and report.columns == 3 and report.blank_lines == 1
    assert report.malformed == {"empty text": 1, "missing tab (expected 3 tab-separated columns)": 1,
                                "empty label": 1}
    with pytest.raises(InputError, match=r"x.tsv:4: empty text"):
        read_labelled(path, strict=True)
    path.write_text("A\tone\nB\ttwo\tthree\n", encoding="utf-8")
    sentences, _, report = read_labelled(path)
    assert report.columns == 2 and [s.text for s in sentences] == ["one", "two\tthree"]
    assert sentences[0].doc_id != sentences[1].doc_id  # without IDs each line is its own document
    # One odd first line (its document ID missing) does not make the document IDs into labels.
    path.write_text("A\tno id\nd1\tA\tone\nd2\tB\ttwo\nd3\tA\tthree\n", encoding="utf-8")
    sentences, numbers, report = read_labelled(path)
    assert report.columns == 3 and set(report.classes) == {"A", "B"} and numbers == [2, 3, 4]
    assert report.malformed == {"missing tab (expected 3 tab-separated columns)": 1}
    # A header line, a byte-order mark where two files were joined, a text without a word, a repeated
    # text and a text given two labels: none becomes a class or a leak between splits.
    rows = ["label\ttext"] + [f"{'yes' if i % 2 else 'no'}\ttext number {i}" for i in range(10)]
    rows += ["\ufeffyes\ttext number 11", "no\t\u200b\x01", "yes\ttext number 1", "no\ttext number 3"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    sentences, numbers, report = read_labelled(path)
    assert dict(report.classes) == {"no": 5, "yes": 6} and report.duplicates == 1 and 1 not in numbers
    assert report.malformed == {"a class with one text (a header line?)": 1,
                                "text without a word (only invisible or control characters)": 1,
                                "a text an earlier line gives another label (the first kept)": 1}
    assert any("x.tsv:15: a text an earlier line gives another label (the first kept): line 5 says 'yes', this one 'no'"
               in p for p in report.problems)
    path.write_text("\n".join(rows[:12]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"x.tsv:1: a class with one text .*: 'label'"):
        read_labelled(path, strict=True)
    # A rare class of one text elsewhere is kept; a stray document ID read as a label is not.
    path.write_text("rare\tfirst text\na\tone\na\ttwo\nb\tthree\nb\tfour\nc\tfive\nabc\tb\tsix\n5\tseven\n",
                    encoding="utf-8")
    sentences, _, report = read_labelled(path)
    assert dict(report.classes) == {"rare": 1, "a": 2, "b": 2, "c": 1, "5": 1}
    path.write_text("# exported\nlabel\ttext\na\tone\na\ttwo\nb\tthree\n", encoding="utf-8")  # the header after a skipped line
    assert dict(read_labelled(path)[2].classes) == {"a": 2, "b": 1}
    path.write_text("sentiment\treview\npos\tgood film\npos\tgreat\nneg\tbad film\nneg\tdull\n", encoding="utf-8")
    assert dict(read_labelled(path)[2].classes) == {"pos": 2, "neg": 2}  # a header of other column names
    path.write_text("is_ade\tsentence text\n1\tgood film\n1\tgreat\n0\tbad film\n0\tdull\n", encoding="utf-8")
    assert dict(read_labelled(path)[2].classes) == {"1": 2, "0": 2}  # a header whose text is column words
    # A spreadsheet's export with an empty last column: trailing tabs are no third column.
    path.write_text("pos\tgood film\t\npos\tgreat\t\nneg\tbad film\t\nneg\tdull\t\n", encoding="utf-8")
    sentences, _, report = read_labelled(path)
    assert report.columns == 2 and dict(report.classes) == {"pos": 2, "neg": 2} and not report.malformed
    path.write_text("d1\ta\tone\n\ufeffd1\tb\ttwo\nd2\ta\tthree\n", encoding="utf-8")  # two files joined
    assert [s.doc_id for s in read_labelled(path)[0]] == ["d1", "d1", "d2"]
    # Some lines of a two-column file with a document ID, a document of several lines among them: no ID
    # becomes a class, no text carries its label.
    rows = [f"{'ADE' if i % 3 else 'NEG'}\tline {i}" for i in range(12)] + ["D7\tADE\tseven", "D7\tNEG\teight",
                                                                        "D8\tNEG\tnine"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    sentences, _, report = read_labelled(path)
    assert dict(report.classes) == {"ADE": 8, "NEG": 4} and not any("\t" in s.text for s in sentences)
    assert report.malformed == {"a document ID read as a label (the text begins with a class and a tab)": 3}
    # Classes written two ways are kept as given, and the report says so.
    path.write_text("ADE\tthe first\nade \tthe second\nNEG\tthe third\nneg\tthe fourth\n", encoding="utf-8")
    report = read_labelled(path)[2]
    assert set(report.classes) == {"ADE", "ade", "NEG", "neg"}
    assert [line for line in report.summary() if line.startswith("note:")] == [
        "note: the classes 'ADE', 'ade' differ only in case and are kept apart; write them one way if they are one class",
        "note: the classes 'NEG', 'neg' differ only in case and are kept apart; write them one way if they are one class"]
    # A control or invisible character in a label would make another class of it; lines ending in CR
    # alone read as one line, its label running into the next.
    path.write_text("ADE\tone\nAD\x00E\ttwo\nNEG\tthree\nA\u200bDE\tfour\nNEG\tfive\n", encoding="utf-8")
    sentences, _, report = read_labelled(path)
    assert dict(report.classes) == {"ADE": 1, "NEG": 2}
    assert report.malformed == {"a label or document ID holding an invisible or control character": 2}
    with pytest.raises(InputError, match=r"x.tsv:2: a label or document ID holding an invisible or control "
                                         r"character: U\+0000"):
        read_labelled(path, strict=True)
    for raw in (b"d1\tADE\tone\rd2\tNEG\ttwo\rd3\tADE\tthree\r", b"ADE\tone\rNEG\ttwo\rADE\tthree\r\n"):
        path.write_bytes(raw)
        sentences, _, report = read_labelled(path)
        assert not sentences and report.malformed == {
            "a carriage return inside the line (a file whose lines end in CR alone? convert them to LF)": 1}
        with pytest.raises(InputError, match=r"x.tsv:1: a carriage return inside the line \(a file whose lines "
                                             r"end in CR alone"):
            read_labelled(path, strict=True)
    # A CoNLL file given as labelled text (its suffix .txt or .tsv) made its words classes and its tags
    # texts, and prepared with an exit status of 0.
    path.write_text("".join(f"-DOCSTART-\tP{k}\tO\nDrug{k}\tB-DRUG\ncaused\tO\nrash\tB-AE\n\n" for k in range(20)),
                    encoding="utf-8")
    with pytest.raises(InputError, match=r"x.tsv: reads as CoNLL \(token<TAB>tag lines: .*give --format conll"):
        read_labelled(path)
    path.write_text("ADE\tRash after B-DRUG.\nNEG\tO\nNEG\tNothing.\nADE\tFever.\n", encoding="utf-8")
    assert len(read_labelled(path)[0]) == 4  # a text that is a tag, here and there, is a text


def test_a_document_stays_in_one_split_and_unseen_labels_are_dropped(tmp_path, capsys):
    source = labelled_file(tmp_path / "three.tsv", ["ade", "dose", "other"], 60)
    code, _, err = run_cli(capsys, "prepare", "--corpus", source, "--out", tmp_path / "d", "--dim", "8",
                           "--w2v-epochs", "1")
    assert code == 0, err
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["format"] == "labelled" and manifest["labels"] == []
    docs = {}
    for split in ("train", "dev", "test"):
        for line in (tmp_path / "d" / f"{split}.jsonl").read_text().splitlines():
            docs.setdefault(json.loads(line)["doc_id"], set()).add(split)
    assert all(len(s) == 1 for s in docs.values()) and len(docs) > 50
    train_classes = set(manifest["splits"]["train"]["classes"])
    assert all(set(manifest["splits"][s]["classes"]) <= train_classes for s in ("dev", "test"))


def test_a_label_missing_from_training_is_dropped_or_refused(tmp_path):
    from adelabel.corpus import Sentence
    from adelabel.prepare import drop_unseen_classes

    rare = Sentence("something rare", doc_id="x", label="rare")
    splits = {"train": [Sentence("a", doc_id="1", label="A"), Sentence("z", doc_id="3", label="B")],
              "dev": [Sentence("b", doc_id="2", label="A"), rare], "test": []}
    said = []
    drop_unseen_classes(splits, {id(rare): 181}, "three.tsv", False, said.append)
    assert [s.label for s in splits["dev"]] == ["A"]
    assert said == ["dev: 1 texts skipped: their label is not in the training split (rare; first at line 181)"]
    splits["dev"].append(rare)
    with pytest.raises(InputError, match=r"three.tsv:181: label 'rare' is in the dev split but not in the training"):
        drop_unseen_classes(splits, {id(rare): 181}, "three.tsv", True, said.append)


def test_a_split_left_empty_by_dropped_labels_is_refused():
    from adelabel.corpus import Sentence
    from adelabel.prepare import drop_unseen_classes

    lone = Sentence("only C here", doc_id="d9", label="C")
    splits = {"train": [Sentence("a", doc_id="1", label="A"), Sentence("z", doc_id="3", label="B")], "dev": [lone],
              "test": [Sentence("b", doc_id="2", label="A")]}
    with pytest.raises(InputError, match="the dev split is left with no text of a class the training split has"):
        drop_unseen_classes(splits, {id(lone): 30}, "c.tsv", False, lambda _: None)
    # A training split left with one class (its documents dealt the others to dev and test) wrote a data
    # folder that train then refused.
    splits = {"train": [Sentence("a", doc_id="1", label="A")], "dev": [lone], "test": [Sentence("b", doc_id="2", label="A")]}
    with pytest.raises(InputError, match=r"c.tsv: the training split holds one class only \(A; C went to dev and "
                                         r"test\); a classifier needs at least two: prepare with another --seed"):
        drop_unseen_classes(splits, {id(lone): 30}, "c.tsv", False, lambda _: None)


def test_texts_apart_only_in_white_space_are_one_text(tmp_path):
    path = tmp_path / "ws.tsv"
    path.write_text("POS\tthe drug caused rash\nNEG\tthe drug caused rash \nPOS\tthe  drug caused\trash\n"
                    "NEG\tnothing at all\n", encoding="utf-8")
    sentences, _, report = read_labelled(path)
    assert [s.text for s in sentences] == ["the drug caused rash", "nothing at all"]
    assert report.duplicates == 1 and "line 1 says 'POS', this one 'NEG'" in report.problems[0]


def test_the_positive_class_of_annotated_data_is_ade_and_a_blind_dev_is_warned_of():
    from collections import Counter

    from adelabel.corpus import Sentence
    from adelabel.tasks import ClassifyTask, positive_class

    assert positive_class(Counter(ADE=10, NEG=5), "ade") == "ADE" == positive_class(Counter(ADE=10, NEG=5), "brat")
    assert positive_class(Counter(ADE=10, NEG=5), "labelled") == "NEG"
    pos, neg = Sentence("x", doc_id="1", label="yes"), Sentence("y", doc_id="2", label="no")
    splits = {"train": [pos, neg, neg], "dev": [neg], "test": [pos]}
    manifest = {"format": "labelled", "classifier": {"classes": ["no", "yes"], "positive": "yes"}}
    task = ClassifyTask(manifest, splits, "d")
    assert task.dev_blind == "the dev split holds no text of the positive class, yes"
    assert ClassifyTask(manifest, {**splits, "dev": [pos, neg]}, "d").dev_blind is None


def test_cv_averages_a_class_s_scores_over_the_folds_that_define_them():
    from adelabel.cv import summarise

    def fold(confusion, per_class):
        return {"classes": ["A", "R"], "confusion": confusion,
                "per_class": {c: dict(zip(("precision", "recall", "f1", "support"), v)) for c, v in per_class.items()}}

    stats = summarise([fold([[3, 0], [0, 0]], {"A": (1, 1, 1, 3), "R": (0, 0, 0, 0)}),      # no R, none predicted
                       fold([[1, 1], [0, 1]], {"A": (1, .5, .6, 2), "R": (.5, 1, .6, 1)}),
                       fold([[2, 1], [0, 0]], {"A": (1, .6, .8, 3), "R": (0, 0, 0, 0)})])   # no R, one predicted
    assert stats["per_class.R.f1"] == {"mean": .6, "std": 0.0, "folds": 1}
    assert stats["per_class.R.precision"]["mean"] == .25 and stats["per_class.R.precision"]["folds"] == 2
    assert "folds" not in stats["per_class.A.f1"]


def test_class_names_with_dollar_signs_are_plotted_as_text(tmp_path):
    from adelabel.report import confusion_plot

    confusion_plot([[1, 0, 0], [0, 1, 0], [0, 0, 1]], ["$", "$$", "price_$5-$10"], tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0
    import warnings

    with warnings.catch_warnings(record=True) as seen:  # a script the font lacks: boxes, not a warning per glyph
        warnings.simplefilter("always")
        confusion_plot([[1, 0], [0, 1]], ["薬物", "副作用"], tmp_path / "cjk.png")
    assert not [w for w in seen if "Glyph" in str(w.message)] and (tmp_path / "cjk.png").is_file()


def test_a_trained_classifier_learns_and_reports_every_score(binary, capsys):
    test = binary["metrics"]["test"]
    assert test["task"] == "classify" and test["positive"] == "ade"  # the rarer class
    assert test["f1"] >= 0.9 and test["roc_auc"] >= 0.95, test
    config = json.loads((binary["model"] / "config.json").read_text())
    assert config["task"] == "classify" and config["classes"] == ["ade", "other"]
    report = binary["t"] / "report"
    code, out, err = run_cli(capsys, "evaluate", "--model", binary["model"], "--data", binary["data"],
                             "--report", report)
    assert code == 0, err
    assert "confusion matrix" in out and "ROC-AUC" in out and "average precision" in out
    assert {p.name for p in report.iterdir()} >= {"metrics.json", "errors.jsonl", "confusion.png", "roc.png",
                                                  "pr.png", "reliability.png"}
    assert all((report / f).read_bytes()[:4] == b"\x89PNG" for f in ("confusion.png", "roc.png", "pr.png"))
    metrics = json.loads((report / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion"])) == len((binary["data"] / "test.jsonl").read_text().splitlines())
    # The threshold can be overridden: 0 calls every text positive.
    code, out, _ = run_cli(capsys, "evaluate", "--model", binary["model"], "--data", binary["data"],
                           "--threshold", "0", "--json", binary["t"] / "all.json")
    everything = json.loads((binary["t"] / "all.json").read_text())
    assert code == 0 and everything["per_class"]["ade"]["recall"] == 1.0
    assert everything["per_class"]["other"]["recall"] == 0.0 and everything["threshold"] == 0.0
    # The threshold reported is the one the scores used, as given or as saved: not rounded (0.00004 was
    # reported as 0.0, 0.996 printed as 1.00), nor the float32 buffer's 0.449999988 beside a 0.45.
    code, out, _ = run_cli(capsys, "evaluate", "--model", binary["model"], "--data", binary["data"],
                           "--threshold", "0.996", "--json", binary["t"] / "high.json")
    high = json.loads((binary["t"] / "high.json").read_text())
    assert code == 0 and high["threshold"] == high["evaluated"]["threshold"] == 0.996 and "threshold 0.996)" in out
    code, out, _ = run_cli(capsys, "evaluate", "--model", binary["model"], "--data", binary["data"],
                           "--threshold", "0.00004", "--json", binary["t"] / "low.json")
    low = json.loads((binary["t"] / "low.json").read_text())
    assert code == 0 and low["threshold"] == low["evaluated"]["threshold"] == 0.00004 and "threshold 4e-05)" in out
    saved = json.loads((binary["t"] / "all.json").read_text())
    code, _, _ = run_cli(capsys, "evaluate", "--model", binary["model"], "--data", binary["data"], "--json",
                         binary["t"] / "saved.json")
    saved = json.loads((binary["t"] / "saved.json").read_text())
    assert code == 0 and saved["threshold"] == saved["evaluated"]["threshold"] and len(repr(saved["threshold"])) < 9


def test_tag_with_a_classifier_writes_one_record_per_line(binary, capsys, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("the drug caused a severe rash\n\nthe study enrolled adults in three centres\n")
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "tag", source, "--model", binary["model"], "--output", out)
    assert code == 0, err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in records] == ["ade", None, "other"]
    assert set(records[0]) == {"text", "label", "scores"} and abs(sum(records[0]["scores"].values()) - 1) < 1e-3
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["task"] == "classify" and meta["positive"] == "ade" and meta["lines"] == 3
    classifier = Classifier.load(binary["model"], device="cpu")
    one = classifier("the drug caused a severe rash")
    assert one.label == "ade" and one.scores == records[0]["scores"]
    assert [c.label for c in classifier.pipe(["the drug caused a severe rash", ""])] == ["ade", None]
    unsure = Classifier.load(binary["model"], device="cpu", threshold=0.0)("the study enrolled adults")
    assert unsure.label == "ade" and unsure.scores["ade"] < 0.5  # 0 calls everything positive


def test_a_classifier_and_a_tagger_are_not_mistaken_for_each_other(binary, tiny_model_dir, sample_data, capsys,
                                                                   tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("text\n")
    cases = [
        (("tag", source, "--model", binary["model"], "--format", "conll"), "is a sentence classifier, which writes jsonl"),
        (("evaluate", "--model", tiny_model_dir, "--data", binary["data"]), "holds labelled texts without entities"),
        (("evaluate", "--model", binary["model"], "--data", sample_data),
         "its test split has classes ['ADE', 'NEG'] that"),
        (("train", "--data", binary["data"], "--out", tmp_path / "o"), "train a classifier on it with --task classify"),
        (("train", "--task", "classify", "--arch", "seq2seq", "--data", binary["data"]), "--arch seq2seq: has no classify model"),
        (("train", "--task", "sort", "--data", binary["data"]), "--task: expected tag or classify, got 'sort'"),
        (("prepare", "--corpus", source, "--format", "ade", "--out", tmp_path / "o"), "the ADE corpus is a folder"),
        (("prepare", "--corpus", tmp_path, "--format", "labelled", "--out", tmp_path / "o"), "this is a folder"),
    ]
    for args, message in cases:
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    with pytest.raises(InputError, match="is a sentence classifier, not a tagger"):
        Tagger.load(binary["model"], device="cpu")
    with pytest.raises(InputError, match="is a tagger, not a sentence classifier"):
        Classifier.load(tiny_model_dir, device="cpu")


def test_a_classifier_folder_is_checked_before_use(binary, tmp_path):
    import shutil

    from adelabel import model_dir
    from adelabel.atomic import sha256

    broken = tmp_path / "m"
    shutil.copytree(binary["model"], broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "positive": "nope"}))
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["files"]["config.json"] = sha256(broken / "config.json")
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AdelabelError, match="positive: expected one of the two classes"):
        model_dir.load(broken)


def test_the_ade_corpus_gives_a_sentence_classifier_its_classes(sample_data):
    from adelabel.config import resolve
    from adelabel.prepare import read_manifest, read_split
    from adelabel.tasks import ClassifyTask

    splits = {name: read_split(sample_data, name) for name in ("train", "dev", "test")}
    task = ClassifyTask(read_manifest(sample_data), splits, sample_data)
    assert task.classes == ["ADE", "NEG"] and task.positive == "ADE"
    assert resolve("bilstm", task="classify").model.pooling == "max"


def test_a_classifier_of_three_classes_decides_by_the_most_probable(tmp_path, capsys):
    from adelabel.config import resolve
    from adelabel.prepare import prepare
    from adelabel.train import train

    source = labelled_file(tmp_path / "three.tsv", ["ade", "dose", "other"], 90)
    prepare(source, tmp_path / "data", dim=16, w2v_epochs=3, log=lambda _: None, format="labelled")
    config = resolve("gru", task="classify", overrides=["train.max_epochs=8", "model.hidden_size=16",
                                                        "model.char_size=8", "train.lr=0.01",
                                                        "model.pooling=attention"])
    metrics = train(config, tmp_path / "data", tmp_path / "model", device="cpu", log=None)
    test = metrics["test"]
    assert "positive" not in test and test["f1"] == test["macro"]["f1"] and test["accuracy"] >= 0.9, test
    lines = len((tmp_path / "data" / "test.jsonl").read_text().splitlines())
    assert sum(map(sum, test["confusion"])) == lines == test["texts"]
    classifier = Classifier.load(tmp_path / "model", device="cpu")
    result = classifier("patients received twenty milligrams daily by mouth")
    assert result.label == "dose" and max(result.scores, key=result.scores.get) == "dose"
    code, out, err = run_cli(capsys, "evaluate", "--model", tmp_path / "model", "--data", tmp_path / "data",
                             "--report", tmp_path / "report")
    assert code == 0 and "positive class" not in out, err
    assert (tmp_path / "report" / "confusion.png").is_file() and not (tmp_path / "report" / "roc.png").exists()
    code, _, err = run_cli(capsys, "evaluate", "--model", tmp_path / "model", "--data", tmp_path / "data",
                           "--threshold", "0.3")
    assert code == 2 and "--threshold: " in err and "a threshold applies to two-class models only" in err
    with pytest.raises(OptionError, match="^threshold: .* a threshold applies to two-class models only"):
        Classifier.load(tmp_path / "model", device="cpu", threshold=0.3)


def test_a_long_line_is_classified_whole_as_evaluate_reads_it(binary, monkeypatch):
    """tag, evaluate, training's dev scores and the API read a text alike: whole, up to MAX_TEXT_TOKENS
    tokens, not averaged over 256-token windows."""
    from adelabel import inference

    classifier = Classifier.load(binary["model"], device="cpu")
    line = " ".join(["the drug caused a severe rash fever and nausea after treatment ."] * 400)
    result = classifier(line)
    assert result.label == "ade" and abs(sum(result.scores.values()) - 1) < 1e-3
    read, real = [], inference.classify
    monkeypatch.setattr(inference, "classify", lambda model, examples, *a: (
        read.extend(len(e.words) for e in examples), real(model, examples, *a))[1])
    classifier(line)
    assert read == [4800]
    # Past MAX_TEXT_TOKENS a text is read in nearly equal parts, one at a time, so memory stays bounded.
    monkeypatch.setattr(inference, "MAX_TEXT_TOKENS", 1000)
    parts, real_parts = [], inference._parts
    monkeypatch.setattr(inference, "_parts", lambda e: (parts.extend(len(p.words) for p in real_parts(e)),
                                                        real_parts(e))[1])
    result = classifier(line)
    assert parts == [960] * 5 and result.label == "ade"


def test_a_missing_classifier_folder_is_named(tmp_path):
    with pytest.raises(InputError, match="model folder not found"):
        Classifier.load(tmp_path / "nothing", device="cpu")
    with pytest.raises(TypeError, match="a model folder is a str or Path"):
        Classifier.load(["a", "b"], device="cpu")


def test_the_plots_mark_the_threshold_s_own_operating_point():
    """Scores 0.3999 and 0.41 around a threshold of 0.40: the marked point is that of deciding >= 0.40,
    not of the nearest cut (0.3999), which would count one more text as positive."""
    from adelabel.report import operating_point

    gold = [True, True, False, False, True]
    scores = [0.9, 0.3999, 0.41, 0.1, 0.2]
    assert operating_point(gold, scores, 0.40) == (0.5, 1 / 3, 0.5)
    assert operating_point(gold, scores, 0.95) == (0.0, 0.0, None)


def test_the_positive_class_is_the_corpus_s_rarer_whatever_the_split(tmp_path):
    """200 "yes" and 199 "no": "no" is the positive class under every seed, though some seed's training
    split holds fewer "yes" (the rarer class of one split used to decide)."""
    from adelabel.prepare import prepare

    source = tmp_path / "even.tsv"
    rows = [f"d{i}\t{'yes' if i < 200 else 'no'}\tword{i % 7} text number {i}" for i in range(399)]
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    chosen = set()
    train_rarer = set()
    for seed in range(1, 7):
        manifest = prepare(source, tmp_path / f"d{seed}", seed=seed, dim=8, w2v_epochs=1, log=lambda _: None,
                           format="labelled")
        chosen.add(manifest["classifier"]["positive"])
        counts = manifest["splits"]["train"]["classes"]
        train_rarer.add(min(sorted(counts, reverse=True), key=counts.get))
    assert chosen == {"no"} and train_rarer == {"no", "yes"}


def test_texts_without_a_word_are_counted_as_unscored(binary):
    from adelabel.classification import classifier_metrics, format_classification
    from adelabel.corpus import Sentence
    from adelabel.data import encode_labelled

    classifier = Classifier.load(binary["model"], device="cpu")
    texts = [Sentence(text="the drug caused a rash", label="ade"), Sentence(text="\u200b", label="other")]
    result = classifier_metrics(classifier.model, encode_labelled(texts, classifier.vocabs, classifier.classes), 8,
                                classifier.device)
    assert result["texts"] == 1 and result["unscored"] == 1
    assert "(1 texts without a word not scored)" in format_classification(result)


def test_a_split_of_texts_without_a_word_scores_zeros_not_a_crash(binary):
    """sklearn refuses an empty split: nothing scored is a zero of each score, and the calibration
    scores are undefined, not a perfect 0."""
    from adelabel.classification import classifier_metrics, format_classification
    from adelabel.corpus import Sentence
    from adelabel.data import encode_labelled

    classifier = Classifier.load(binary["model"], device="cpu")
    texts = [Sentence(text="\u200b", label="ade")]
    result = classifier_metrics(classifier.model, encode_labelled(texts, classifier.vocabs, classifier.classes), 8,
                                classifier.device)
    assert result["texts"] == 0 and result["unscored"] == 1
    assert result["f1"] == 0.0 and result["macro"]["f1"] == 0.0 and result["ece"] is None and result["brier"] is None
    assert "ECE undefined (no text), Brier undefined (no text)" in format_classification(result)


@pytest.mark.parametrize("positive", [0, 1])
def test_calibration_on_a_dev_split_the_model_separates_keeps_its_ranking(monkeypatch, positive):
    """Likelihood drives the temperature of a perfectly separating model towards 0: fitted inside its
    bounds, the bias stays consistent with it. (Clamped after the fit, a bias fitted for 0.007 put every
    text in the positive class, ROC-AUC 0.5, and early stopping kept that epoch.)"""
    import numpy as np
    import torch
    from types import SimpleNamespace

    from adelabel import classification
    from adelabel.models.classifier import calibrated

    rng = np.random.default_rng(0)
    gold = np.array([positive] * 40 + [1 - positive] * 60)
    # Separable, but all below a half and close together: a narrow ranking, the boundary far from 0.5.
    p = np.where(gold == positive, rng.uniform(0.301, 0.31, 100), rng.uniform(0.29, 0.299, 100))
    probs = np.stack([p, 1 - p], 1) if positive == 0 else np.stack([1 - p, p], 1)
    model = SimpleNamespace(temperature=torch.ones(()), bias=torch.zeros(()), threshold=torch.full((), 0.5),
                            positive=positive, classes=["A", "B"])
    monkeypatch.setattr(classification, "classify", lambda *_: probs.tolist())
    examples = [SimpleNamespace(label=int(g)) for g in gold]
    classification.tune_classifier(model, examples, 8, torch.device("cpu"))
    scaled = calibrated(torch.from_numpy(np.log(probs)), float(model.temperature), float(model.bias), positive)
    q = torch.softmax(scaled, -1)[:, positive].numpy()
    assert q[gold == positive].min() > q[gold != positive].max()        # the ranking kept
    assert ((q >= float(model.threshold)) == (gold == positive)).all()  # and the decision right on every text
    assert 0.05 <= float(model.temperature) <= 20.0


def test_constant_f1_is_what_one_class_for_every_text_scores():
    from adelabel.tasks import constant_f1

    # 1 positive in 3: every text positive gives precision 1/3, recall 1, F1 0.5.
    assert constant_f1(["ade", "other", "other"], ["ade", "other"], "ade") == pytest.approx(0.5)
    # Three classes, the macro F1 over those dev holds: the majority class alone, averaged over three.
    assert constant_f1(["a", "a", "b", "c"], ["a", "b", "c"], None) == pytest.approx((2 * 0.5 / 1.5) / 3)
    assert constant_f1([], ["a", "b"], "a") == 0.0


def test_a_classifier_no_better_than_one_class_keeps_its_learning_rate_and_is_warned_of(binary, monkeypatch):
    """An untrained classifier's dev threshold calls every text positive, an F1 above 0: the rate was
    halved from the first epoch on as if that were progress (6e-8 by epoch 25 on 242 texts), and the
    model it saved labelled everything positive without a word."""
    from adelabel import tasks
    from adelabel.config import resolve
    from adelabel.train import train

    scored = tasks.ClassifyTask.evaluate
    monkeypatch.setattr(tasks.ClassifyTask, "evaluate",
                        lambda self, *a, **k: {**scored(self, *a, **k), "f1": self.floor})
    said: list[str] = []
    out = binary["t"] / "floor-model"
    config = resolve("bigru", task="classify", overrides=["train.max_epochs=3", "model.hidden_size=8",
                                                          "model.char_size=8"])
    train(config, binary["data"], out, device="cpu", log=said.append)
    rates = [json.loads(line)["lr"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(rates) == 3 and len(set(rates)) == 1, rates
    assert any(line.startswith("warning: the saved model scores F1") and "no better than giving every text one "
               "class" in line for line in said), said


def test_settings_a_classifier_on_labelled_text_cannot_use_are_said(binary, capsys, tmp_path):
    """train.dose_copies writes doses into a tagger's sentences and train.negative_fraction draws from
    the sentences without entities, which labelled text has none of: both were recorded in the model's
    config and changed nothing, without a word."""
    code, _, err = run_cli(capsys, "train", "--task", "classify", "--arch", "gru", "--data", binary["data"],
                           "--out", tmp_path / "m", "--epochs", "1", "-q", "--set", "model.hidden_size=8",
                           "--set", "model.char_size=8", "--set", "train.dose_copies=0.2",
                           "--set", "train.negative_fraction=0.1")
    assert code == 0, err
    assert "warning: train.negative_fraction = 0.1 changes nothing: the training split holds no sentence without " \
           "entities" in err
    assert "warning: train.dose_copies = 0.2 changes nothing: doses are written into a tagger's training sentences" in err
    code, _, err = run_cli(capsys, "train", "--task", "classify", "--arch", "gru", "--data", binary["data"],
                           "--out", tmp_path / "m2", "--epochs", "1", "-q", "--set", "model.hidden_size=8",
                           "--set", "model.char_size=8")
    assert code == 0 and "warning" not in err, err


def test_a_class_named_macro_is_told_from_the_average():
    from adelabel.classification import format_classification

    row = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 3}
    result = {"classes": ["NEG", "macro"], "per_class": {"NEG": row, "macro": row}, "macro": {**row, "support": 6},
              "accuracy": 0.5, "confusion": [[2, 1], [1, 2]]}
    lines = format_classification(result).splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["NEG", "macro", "macro"]
    assert lines[3].startswith("macro average ") and lines[3].split()[-1] == "6"
