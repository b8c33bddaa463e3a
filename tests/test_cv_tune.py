"""Cross-validation by document and hyperparameter search, on the small sample corpus."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE, run_cli

TINY = ["--set", "model.hidden_size=8", "--set", "model.dense_size=8", "--set", "model.char_size=8",
        "--set", "model.gate_size=8"]


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent.parent / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "cv"
    args = ["cv", "--corpus", SAMPLE, "--folds", "3", "--epochs", "1", "--out", out, "--dim", "8",
            "--w2v-epochs", "1", *TINY]
    return out, args


@pytest.mark.training
def test_cv_folds_by_document_without_leaks_and_carries_on(cv_run, capsys, monkeypatch):
    from gensim.models import KeyedVectors

    from adelabel.text import tokenize
    from adelabel.vocab import normalize

    out, args = cv_run
    code, printed, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "3 folds by document" in printed and "annotated sentences, gate open" in printed
    assert "fold 2/3" in err and re.search(r"about \d+ (s|min \d\d s) left", err)  # progress with an estimate after the first fold
    summary = json.loads((out / "cv.json").read_text())
    assert len(summary["folds"]) == 3
    f1s = [f["test"]["micro"]["f1"] for f in summary["folds"]]
    assert summary["summary"]["micro.f1"]["mean"] == pytest.approx(sum(f1s) / 3)
    tested = []
    for k in (1, 2, 3):
        docs = {}
        for split in ("train", "dev", "test"):
            lines = (out / f"fold-0{k}" / "data" / f"{split}.jsonl").read_text().splitlines()
            docs[split] = {json.loads(line)["doc_id"] for line in lines}
        assert not docs["test"] & (docs["train"] | docs["dev"]) and not docs["dev"] & docs["train"]
        tested.append(docs["test"])
        # The fold's word vectors know no word that only its dev or test sentences hold.
        words = set(KeyedVectors.load_word2vec_format(out / f"fold-0{k}" / "data" / "vectors.bin", binary=True)
                    .key_to_index)
        text = {split: {normalize(json.loads(line)["text"][a:b])
                        for line in (out / f"fold-0{k}" / "data" / f"{split}.jsonl").read_text().splitlines()
                        for a, b in tokenize(json.loads(line)["text"])} for split in ("train", "dev", "test")}
        assert words <= text["train"]
        assert (text["test"] - text["train"]) and not words & (text["test"] - text["train"])
    assert not (tested[0] & tested[1]) and not (tested[1] & tested[2]) and not (tested[0] & tested[2])

    # benchmarks/cv_rescore.py scores a fold's stored model again through the one inference path: at the
    # model's own threshold it gives the scores the fold recorded when it was trained.
    rescore = _benchmark("cv_rescore")
    for k in (1, 2):
        again = rescore.scored([out / f"fold-0{k}" / "model"], out / f"fold-0{k}" / "data")
        recorded = summary["folds"][k - 1]["test"]
        for key in ("micro", "relations", "sentences"):
            assert again["own"][key]["f1"] == pytest.approx(recorded[key]["f1"], abs=1e-12)
        assert again["own"]["annotated_only"]["micro"]["f1"] == pytest.approx(
            recorded["annotated_only"]["micro"]["f1"], abs=1e-12)

    # A run stopped after fold 3's model was saved and before its result was written: the result is read
    # from the model, nothing is trained again.
    before = json.loads((out / "fold-03" / "result.json").read_text())
    (out / "fold-03" / "result.json").unlink()
    kept = (out / "fold-03" / "model" / "model.safetensors").stat().st_mtime_ns
    code, _, err = run_cli(capsys, *args)
    assert code == 0 and err.count("done before") == 2, err
    assert "fold 3/3: trained before the run stopped" in err and "test sentences" not in err, err
    assert (out / "fold-03" / "model" / "model.safetensors").stat().st_mtime_ns == kept
    assert json.loads((out / "fold-03" / "result.json").read_text()) == {k: v for k, v in before.items() if k != "seconds"}
    # Such a model is checked first: its metrics changed since it was saved are named, not averaged.
    (out / "fold-03" / "result.json").unlink()
    metrics = (out / "fold-03" / "model" / "metrics.json").read_text()
    (out / "fold-03" / "model" / "metrics.json").write_text(metrics.replace('"f1": 0', '"f1": 1', 1))
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and err.strip().splitlines()[-1].endswith(
        "fold-03/model/metrics.json: checksum mismatch (changed or damaged since it was saved)"), err
    # A killed run carries on: folds with a result are kept, the one without a result or a model is
    # trained again.
    shutil.rmtree(out / "fold-03" / "model")
    kept = (out / "fold-01" / "model" / "model.safetensors").stat().st_mtime_ns
    code, _, err = run_cli(capsys, *args)
    assert code == 0 and err.count("done before") == 2 and "fold 3/3: " in err
    # Its time left is estimated from the folds done before, whose time their results keep.
    assert re.search(r"fold 3/3: .*test sentences, about \d+ (s|min \d\d s) left", err), err
    assert (out / "fold-01" / "model" / "model.safetensors").stat().st_mtime_ns == kept
    assert json.loads((out / "cv.json").read_text())["summary"]["micro.f1"]["mean"] == pytest.approx(
        summary["summary"]["micro.f1"]["mean"])
    # Each fold records the versions it was trained under; carried on under others (an upgrade between
    # the kill and the rerun), cv.json says which folds were, where it gave the rerun's versions alone.
    from adelabel import cv as cv_module
    from adelabel.versions import versions

    assert all(f["versions"] == versions() for f in json.loads((out / "cv.json").read_text())["folds"])
    assert "folds_under_other_versions" not in json.loads((out / "cv.json").read_text())
    monkeypatch.setattr(cv_module, "versions", lambda: {**versions(), "adelabel_code": "0" * 16})
    code, _, err = run_cli(capsys, *args)
    assert code == 0 and "warning: folds 1, 2, 3 trained under other versions (adelabel's code or a package) than " \
                         "this run's: cv.json gives each fold's" in err, err
    assert json.loads((out / "cv.json").read_text())["folds_under_other_versions"] == [1, 2, 3]
    monkeypatch.undo()
    # Other settings into the same folder are refused rather than mixed with its folds.
    code, _, err = run_cli(capsys, *[a if a != "3" else "4" for a in args])
    assert code == 2 and "holds a cross-validation with other settings (folds 3 -> 4)" in err, err
    # So is a corpus whose content changed since (its checksum, not only its path, is recorded).
    settings = json.loads((out / "settings.json").read_text())
    assert len(settings["corpus_sha256"]) == 64
    (out / "settings.json").write_text(json.dumps({**settings, "corpus_sha256": "0" * 64}))
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "other settings (corpus_sha256)" in err
    (out / "settings.json").write_text(json.dumps(settings))
    # A fold result whose scores are not numbers is damage, named in one line.
    kept_result = (out / "fold-01" / "result.json").read_text()
    (out / "fold-01" / "result.json").write_text(json.dumps({"fold": 1, "test": {"f1": "0.5", "micro": {}}}))
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "fold-01/result.json: corrupt fold result" in err.strip().splitlines()[-1], err
    assert "Traceback" not in err
    # So is one edited deep inside: a NaN, a precision of 5, a deleted F1, a word, another fold's number
    # reached the table (or dropped the fold from a row) before.
    kept = json.loads(kept_result)

    def edited(change) -> dict:
        result = json.loads(kept_result)
        change(result)
        return result

    some = next(k for k in kept["test"] if isinstance(kept["test"][k], dict) and k not in ("micro", "macro"))
    for result, why in ((edited(lambda r: r["test"][some].__setitem__("f1", float("nan"))), f"test.{some}.f1 is nan"),
                        (edited(lambda r: r["test"][some].__setitem__("precision", 5)), f"test.{some}.precision is 5"),
                        (edited(lambda r: r["test"][some].__setitem__("recall", "x")), f"test.{some}.recall is 'x'"),
                        (edited(lambda r: r["test"][some].__setitem__("support", -2)), f"test.{some}.support is -2"),
                        (edited(lambda r: r["test"]["micro"].pop("f1")), "test.micro lacks a precision, recall or F1"),
                        (edited(lambda r: r.__setitem__("fold", 2)), "fold 2, not 1")):
        (out / "fold-01" / "result.json").write_text(json.dumps(result))
        code, _, err = run_cli(capsys, *args)
        last = err.strip().splitlines()[-1]
        assert code == 2 and f"fold-01/result.json: corrupt fold result ({why}" in last, err
        assert last.endswith("; delete fold-01/ to run the fold again")
    # A folder where the result is written: named before any training, not a traceback after it.
    (out / "fold-01" / "result.json").unlink()
    (out / "fold-01" / "result.json").mkdir()
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and err.strip().splitlines()[-1].endswith("fold-01/result.json: is not a file (where the fold's "
                                                               "result is written); remove it"), err
    (out / "fold-01" / "result.json").rmdir()
    (out / "fold-01" / "result.json").write_text(kept_result)


def test_cv_writes_into_no_folder_of_other_things(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "cv", "--corpus", SAMPLE, "--folds", "2", "--out", tmp_path)
    assert code == 2 and "a folder that holds no cross-validation (no settings.json)" in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_cv_says_what_the_reader_skipped_and_takes_strict(capsys, tmp_path, monkeypatch):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "DRUG-AE.rel").write_text("1|Rash after aspirin.|Rash|0|4|aspirin|11|18\n1|Bad line\n"
                                        "2|Fever after naproxen.|Fever|0|5|naproxen|12|20\n")
    (corpus / "ADE-NEG.txt").write_text("3 NEG Nothing happened.\n")
    code, _, err = run_cli(capsys, "cv", "--corpus", corpus, "--out", tmp_path / "strict", "--folds", "3", "--strict")
    assert code == 2 and "DRUG-AE.rel:2: " in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli(capsys, "cv", "--corpus", corpus, "--out", tmp_path / "o", "--folds", "3", "--epochs", "1",
                           "--dim", "8", "--w2v-epochs", "1", "--set", "model.hidden_size=8", "--device", "cpu")
    assert code == 0 and "malformed lines skipped: 1" in err and err.index("malformed") < err.index("fold 1/3"), err
    # --quiet silences progress, not data left out: one line, as prepare -q says it.
    from adelabel import tasks

    scored = tasks.TagTask.evaluate  # models that learnt nothing: each fold warns
    monkeypatch.setattr(tasks.TagTask, "evaluate", lambda self, *a, **k: {**scored(self, *a, **k), "f1": 0.0})
    code, _, err = run_cli(capsys, "cv", "--corpus", corpus, "--out", tmp_path / "q", "--folds", "3", "--epochs", "1",
                           "--dim", "8", "--w2v-epochs", "1", "--set", "model.hidden_size=8", "--device", "cpu", "-q")
    assert code == 0 and "1 malformed line(s) skipped (first: " in err and "DRUG-AE.rel:2" in err, err
    # A fold's warnings name the fold.
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert [line.split(": warning: ")[0] for line in warnings] == ["fold 1/3", "fold 2/3", "fold 3/3"], err


@pytest.mark.parametrize("args, message", [
    (["--folds", "1"], "--folds: cross-validation needs at least 2 folds, got 1"),
    (["--folds", "5000"], "--folds 5000: the corpus has only 150 documents, fewer than folds"),
    (["--format", "labelled"], "--format labelled reads a file of label<TAB>text lines; this is a folder, not a file"),
    (["--set", "train.precision=fp16", "--device", "cpu"], "train.precision fp16: runs on a GPU only"),
])
def test_cv_refuses_impossible_folds(args, message, capsys, tmp_path):
    code, _, err = run_cli(capsys, "cv", "--corpus", SAMPLE, "--out", tmp_path / "o", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()  # a cv folder keeps its first settings: none may be written


@pytest.mark.parametrize("args, message", [
    (["--sampler", "bogus"], "--sampler: expected tpe, random or grid, got 'bogus'"),
    (["--pruner", "x"], "--pruner: expected hyperband, median or none, got 'x'"),
    (["--space", "foo"], "--space 'foo': expected KEY=LOW..HIGH, KEY=log:LOW..HIGH, KEY=A,B,C or KEY=VALUE"),
    (["--storage", "foo.db"], "--storage foo.db: expected a database URL"),
])
def test_a_wrong_tune_option_leaves_no_folder(capsys, monkeypatch, tmp_path, sample_data, args, message):
    """The default --out and --storage live in tune/: made only once every option passed."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "tune", "--data", sample_data, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.training
def test_tune_searches_prunes_resumes_and_writes_a_config_train_takes(sample_data, tmp_path, capsys, monkeypatch):
    import optuna

    storage = f"sqlite:///{tmp_path}/study.db"
    base = ["tune", "--data", sample_data, "--epochs", "1", "--storage", storage, "--out", tmp_path / "best.toml",
            "--sampler", "random", *TINY]
    code, printed, err = run_cli(capsys, *base, "--trials", "2", "--report", tmp_path / "report")
    assert code == 0, err
    assert "2 trials complete" in printed and "trial 2/2 (study trial #1)" in err
    # The best trial is named by the number the progress lines show beside the count.
    best = re.search(r"best: study trial #(\d+)", printed).group(1)
    assert f"(study trial #{best})" in err
    assert (tmp_path / "report" / "history.png").read_bytes()[:4] == b"\x89PNG"
    # The search resumes from its file; a pruned trial is recorded as pruned and leaves no model behind.
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    code, printed, err = run_cli(capsys, *base, "--trials", "3")
    assert code == 0, err
    assert "2 trials complete, 1 pruned" in printed and "trial 3/3: pruned" in err
    study = optuna.load_study(study_name="adelabel", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert study.trials[0].params != study.trials[1].params  # the sampler varied the searched keys
    assert study.trials[2].params not in (study.trials[0].params, study.trials[1].params)  # not drawn again
    assert all("model.hidden_size" not in t.params for t in study.trials)  # a --set key is searched no more
    # The best config holds the best trial's values of the searched keys, is one `train --config` takes,
    # and retrained it scores what its trial scored.
    from adelabel.config import tomllib  # the standard library's, or its backport on Python 3.10

    best_config = tomllib.loads((tmp_path / "best.toml").read_text(encoding="utf-8"))
    assert study.best_params and all(best_config[key.split(".")[0]][key.split(".")[1]] == value
                                     for key, value in study.best_params.items()), (best_config, study.best_params)
    code, _, err = run_cli(capsys, "train", "--config", tmp_path / "best.toml", "--data", sample_data,
                           "--out", tmp_path / "m", "--epochs", "1", "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["dev"]["f1"] == study.best_value
    # Another architecture's study file, or an empty range, is a one-line error.
    for extra, message in [(["--arch", "gru"], "holds a study of tag 'bilstm', not of tag 'gru'"),
                           (["--space", "train.lr=0.01..0.001"], "the range 0.01..0.001 is empty"),
                           (["--set", "train.patience=9"], "its trials trained from other settings"),
                           (["--out", tmp_path / "study.db"], f"--out {tmp_path / 'study.db'}: is")]:
        code, _, err = run_cli(capsys, *base, "--trials", "1", *extra)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    # A study begun by a version whose default space differed carries on over its own space, if this
    # version can train every value of it.
    study = optuna.load_study(study_name="adelabel", storage=storage)
    older = {k: v for k, v in json.loads(study.user_attrs["space"]).items() if k != "train.lr"}
    study.set_user_attr("space", json.dumps(older, sort_keys=True))
    code, _, err = run_cli(capsys, *base, "--trials", "4")
    assert code == 0 and "over the space it began with" in err, err
    assert "train.lr" not in optuna.load_study(study_name="adelabel", storage=storage).trials[3].params
    study.set_user_attr("space", json.dumps({**older, "model.dropout": {"low": 0.0, "high": 5.0}}, sort_keys=True))
    code, _, err = run_cli(capsys, *base, "--trials", "5")
    assert code == 2 and "its study searched a space this version cannot train (model.dropout:" in err, err
    (tmp_path / "text.db").write_text("not a database")
    import sqlite3

    with sqlite3.connect(tmp_path / "other.db") as other:  # another program's: optuna would add its tables
        other.execute("CREATE TABLE patients (id INTEGER)")
    for storage, message in [("study.db", "expected a database URL"),
                             (f"sqlite:///{tmp_path}/other.db", "a database of something else (tables patients), not an "
                                                                "optuna study; give a new file"),
                             ("sqlite:///", "--storage sqlite:///: names no file (expected sqlite:///PATH"),
                             (f"sqlite:///{tmp_path}/text.db", "cannot open it as a study")]:
        code, _, err = run_cli(capsys, "tune", "--data", sample_data, "--storage", storage,
                               "--out", tmp_path / "x.toml", "--trials", "1")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    # The best line names a value fixed with --space as well as the searched ones, as its TOML does.
    monkeypatch.undo()  # trials are pruned no more
    code, printed, err = run_cli(capsys, "tune", "--data", sample_data, "--epochs", "1", "--trials", "1", *TINY,
                                 "--storage", f"sqlite:///{tmp_path}/fixed.db", "--out", tmp_path / "fixed.toml",
                                 "--space", "model.layers=2")
    assert code == 0, err
    assert "model.layers=2" in printed.splitlines()[0] and "layers = 2" in (tmp_path / "fixed.toml").read_text()
    # A size whose layer a trial switched off is not drawn in that trial (nor reported as its value).
    code, printed, err = run_cli(capsys, "tune", "--data", sample_data, "--epochs", "1", "--trials", "1",
                                 "--set", "model.hidden_size=8", "--set", "model.dense_size=8", "--sampler", "random",
                                 "--storage", f"sqlite:///{tmp_path}/idle.db", "--out", tmp_path / "idle.toml",
                                 "--space", "model.chars=none,none", "--space", "model.char_size=8..16")
    assert code == 0, err
    assert "model.chars=none" in printed.splitlines()[0] and "char_size" not in printed.splitlines()[0], printed
    # A trial is chosen on dev: the test split is not scored beside it (nor read at all).
    assert "trial 1/1 best epoch 1: dev F1" in err and "test F1" not in err, err


@pytest.mark.parametrize("args, message", [
    # pydantic would read a drawn 0.06 as "true"; the search must not start to find out.
    (["--space", "model.gate=0..1"], "--space model.gate: not a number, so not a range; give its choices as A,B"),
    (["--space", "seed=1..5"], "--space seed: not searched (a study searches model.* and train.* keys; fix it with --set seed=N)"),
    (["--set", "train.precision=fp16"], "train.precision fp16: runs on a GPU only"),
    (["--space", "train.precision=fp32,fp16"], "--space train.precision fp16: runs on a GPU only"),
    # A range for a key --set or --epochs fixes was dropped without a word.
    (["--space", "model.hidden_size=8..12", "--set", "model.hidden_size=9"],
     "--space model.hidden_size: --set model.hidden_size fixes it; search it or fix it, not both"),
    (["--space", "train.max_epochs=1..3", "--epochs", "2"],
     "--space train.max_epochs: --epochs fixes it; search it or fix it, not both"),
    (["--space", "train.precision=fp32,bf16", "--precision", "fp32"],
     "--space train.precision: --precision fixes it; search it or fix it, not both"),
])
def test_tune_refuses_a_space_or_settings_no_trial_could_train_before_writing_a_study(args, message, sample_data,
                                                                                      tmp_path, capsys):
    code, _, err = run_cli(capsys, "tune", "--data", sample_data, "--device", "cpu", "--storage",
                           f"sqlite:///{tmp_path}/study.db", "--out", tmp_path / "best.toml", "--trials", "1", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "study.db").exists()


@pytest.mark.training
def test_a_study_whose_trials_all_failed_takes_the_settings_of_the_next_run(sample_data, tmp_path, capsys,
                                                                            monkeypatch):
    """A first trial stopped by an error leaves a study with no result: run again with other settings,
    it carries on rather than refusing them as another study's."""
    import optuna

    from adelabel import train as training
    from adelabel.errors import AdelabelError

    storage = f"sqlite:///{tmp_path}/study.db"
    base = ["tune", "--data", sample_data, "--epochs", "1", "--storage", storage, "--out", tmp_path / "best.toml",
            "--trials", "1", "--sampler", "random", *TINY]

    def fails(*args, **kwargs):
        raise AdelabelError("the disk is full")

    real = training.train
    monkeypatch.setattr(training, "train", fails)
    code, _, err = run_cli(capsys, *base, "--set", "train.patience=9")
    assert code == 2 and "the disk is full" in err, err
    monkeypatch.setattr(training, "train", real)
    code, printed, err = run_cli(capsys, *base)
    assert code == 0 and "1 trials complete" in printed, err
    study = optuna.load_study(study_name="adelabel", storage=storage)
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    assert '"patience": 9' not in study.user_attrs["base"]
    # Once a trial has finished, the study's settings are fixed.
    code, _, err = run_cli(capsys, *base, "--set", "train.patience=9")
    assert code == 2 and "its trials trained from other settings" in err, err


@pytest.mark.training
def test_a_grid_search_stops_at_the_end_of_its_grid(sample_data, tmp_path, capsys):
    import optuna

    from adelabel.config import search_space

    storage = f"sqlite:///{tmp_path}/grid.db"
    # Every searched key fixed but model.layers (1 or 2): a grid of two points.
    fixed = ["--set", "model.chars=none", "--set", "model.dropout=0.5", "--set", "train.batch_size=32",
             "--set", "train.lr=0.005", "--set", "train.word_dropout=0.05", "--set", "train.negative_fraction=0.5"]
    assert {a.split("=")[0] for a in TINY + fixed if "=" in a} == set(search_space("bilstm")) - {"model.layers"}
    code, printed, err = run_cli(capsys, "tune", "--data", sample_data, "--epochs", "1", "--storage", storage,
                                 "--out", tmp_path / "g.toml", "--sampler", "grid", "--trials", "5", *TINY, *fixed)
    assert code == 0, err
    assert "the grid has 2 points: 2 trials, not 5" in err and "2 trials complete" in printed
    study = optuna.load_study(study_name="adelabel", storage=storage)
    assert sorted(t.params["model.layers"] for t in study.trials) == [1, 2]


def test_a_study_does_not_carry_on_over_data_prepared_again(sample_data, tmp_path, capsys, monkeypatch):
    """Prepared again (another seed, say), the data folder holds other dev splits, on which trials are
    not comparable with the study's: refused in one line."""
    import shutil

    from adelabel import train as training

    monkeypatch.setattr(training, "train", lambda *a, **k: {"dev": {"f1": 0.5}})
    data = tmp_path / "data"
    shutil.copytree(sample_data, data)
    base = ["tune", "--data", data, "--epochs", "1", "--storage", f"sqlite:///{tmp_path}/s.db",
            "--out", tmp_path / "best.toml", "--sampler", "random", *TINY]
    code, _, err = run_cli(capsys, *base, "--trials", "1")
    assert code == 0, err
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["files"]["dev.jsonl"] = "0" * 64
    (data / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run_cli(capsys, *base, "--trials", "2")
    assert code == 2 and "was prepared again since its study began" in err, err


def test_a_grid_search_stopped_by_a_failed_trial_carries_on_over_every_point_once(sample_data, tmp_path, capsys,
                                                                                   monkeypatch):
    """A grid search stopped by an error (or a kill) in its third trial, run again, tries the points not
    tried yet, each once (optuna's grid sampler counted the failed trial's point as tried, and gave
    points by trial number, skipping some); a study begun with another sampler gets the rest of the grid."""
    import optuna

    from adelabel import train as training
    from adelabel.errors import AdelabelError

    calls, failing = [], [False]

    def train(config, *args, **kwargs):
        calls.append((config.model.layers, config.model.chars))
        if len(calls) == 3 and failing[0]:
            raise AdelabelError("the disk is full")
        return {"dev": {"f1": 0.1 * len(calls)}}

    monkeypatch.setattr(training, "train", train)
    fixed = ["--set", "model.dropout=0.5", "--set", "train.batch_size=32", "--set", "train.lr=0.005",
             "--set", "train.word_dropout=0.05", "--set", "train.negative_fraction=0.5"]
    everything = {(layers, chars) for layers in (1, 2) for chars in ("cnn", "lstm", "none")}
    for grid_first in (True, False):
        storage = f"sqlite:///{tmp_path}/{grid_first}.db"
        base = ["tune", "--data", sample_data, "--epochs", "1", "--storage", storage, "--out", tmp_path / "g.toml",
                "--trials", "6", *TINY, *fixed]
        calls.clear()
        failing[0] = grid_first
        first = ["--sampler", "grid"] if grid_first else ["--sampler", "random", "--trials", "2"]
        code, _, err = run_cli(capsys, *base, *first)
        assert code == (2 if grid_first else 0), err
        failing[0] = False
        code, _, err = run_cli(capsys, *base, "--sampler", "grid")
        assert code == 0, err
        study = optuna.load_study(study_name="adelabel", storage=storage)
        complete = [(t.params["model.layers"], t.params["model.chars"]) for t in study.trials
                    if t.state == optuna.trial.TrialState.COMPLETE]
        assert set(complete) == everything and len(complete) == len(calls) - grid_first, (complete, calls)
        rest = calls[3:] if grid_first else calls[2:]  # the second run's trials
        assert len(set(rest)) == len(rest) and set(rest) == everything - set(calls[:2]), calls


def test_a_grid_search_leaves_a_live_searchs_point_and_takes_a_waiting_one_once(sample_data, tmp_path, capsys,
                                                                                 monkeypatch):
    """Another search running on the study holds a point: it is not trained again here. A point a kill
    left waiting in the study (between queueing and starting it) is trained once, not once more."""
    import socket
    import subprocess
    import sys

    import optuna

    from adelabel import train as training

    calls = []

    def train(config, *args, **kwargs):
        calls.append((config.model.layers, config.model.chars))
        return {"dev": {"f1": 0.5}}

    monkeypatch.setattr(training, "train", train)
    fixed = ["--set", "model.dropout=0.5", "--set", "train.batch_size=32", "--set", "train.lr=0.005",
             "--set", "train.word_dropout=0.05", "--set", "train.negative_fraction=0.5"]
    storage = f"sqlite:///{tmp_path}/grid.db"
    base = ["tune", "--data", sample_data, "--epochs", "1", "--storage", storage, "--out", tmp_path / "g.toml",
            "--sampler", "grid", *TINY, *fixed]
    code, _, err = run_cli(capsys, *base, "--trials", "1")
    assert code == 0 and len(calls) == 1, err
    study = optuna.load_study(study_name="adelabel", storage=storage)
    others = [(layers, chars) for layers in (1, 2) for chars in ("cnn", "lstm", "none") if (layers, chars) != calls[0]]
    held, waiting = others[0], others[1]
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        study.enqueue_trial({"model.layers": held[0], "model.chars": held[1]})
        trial = study.ask()
        trial.set_user_attr("process", f"{socket.gethostname()}:{running.pid}")
        study.enqueue_trial({"model.layers": waiting[0], "model.chars": waiting[1]})
        code, _, err = run_cli(capsys, *base, "--trials", "6")
    finally:
        running.kill()
        running.wait()
    assert code == 0 and "being tried by another search of this study" in err, err
    assert held not in calls and calls.count(waiting) == 1 and sorted(calls) == sorted(set(calls)) and len(calls) == 5


def test_the_search_space_lives_in_the_schema():
    from adelabel.config import search_space

    space = search_space("bilstm")
    assert space["train.lr"] == {"low": 0.0003, "high": 0.003, "log": True}
    assert space["model.chars"] == {"choices": ["cnn", "lstm", "none"]}
    assert search_space("transformer")["train.lr"]["high"] == 1e-4
    assert "model.pooling" in search_space("bigru", "classify")
    # Every searched key has an effect: the transformer reads no word ids, seq2seq searches its own sizes.
    assert "train.word_dropout" not in search_space("transformer") and "train.word_dropout" in search_space("gru")
    assert {"model.hidden_size", "model.decoder_size", "model.layers", "model.dropout"} <= set(search_space("seq2seq"))


def test_a_size_whose_layer_is_switched_off_is_not_searched():
    from adelabel.config import resolve, search_space
    from adelabel.tune import searchable

    fixed = ["model.gate", "model.chars"]
    base = resolve("bilstm", overrides=["model.gate=false", "model.chars=none"])
    left = set(search_space("bilstm")) - set(searchable(search_space("bilstm"), base, fixed))
    assert left == {"model.chars", "model.gate_size", "model.char_size"}
    on = resolve("bilstm", overrides=["model.gate=true", "model.chars=cnn"])
    assert set(search_space("bilstm")) - set(searchable(search_space("bilstm"), on, fixed)) == {"model.chars"}


def test_each_packaged_config_names_its_architecture_and_task(capsys):
    from adelabel.config import resolve

    for path in sorted((ROOT / "adelabel" / "configs").rglob("*.toml")):
        task = "classify" if path.parent.name == "classify" else "tag"
        config = resolve(path=path)
        assert (config.arch, config.task) == (path.stem, task), path
    code, _, err = run_cli(capsys, "config", "--arch", "transformer", "--set", "train.word_dropout=0.1")
    assert code == 2 and "train.word_dropout: the transformer reads sub-word pieces" in err


@pytest.mark.training
def test_cv_of_a_classifier_scores_the_same_classes_in_every_fold(tmp_path, capsys):
    lines = [f"doc{d}\t{'rare' if d % 5 == 0 else 'common'}\t{'drug caused rash' if d % 5 == 0 else 'patient at home'} {d}"
             for d in range(30)]
    (tmp_path / "x.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, printed, err = run_cli(capsys, "cv", "--task", "classify", "--arch", "gru", "--corpus", tmp_path / "x.tsv",
                                 "--folds", "3", "--epochs", "2", "--out", tmp_path / "cv", "--dim", "8",
                                 "--w2v-epochs", "1", "--set", "model.hidden_size=8", "--set", "model.char_size=8")
    assert code == 0, err
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert {f["test"]["positive"] for f in summary["folds"]} == {"rare"}
    assert all(f["test"]["classes"] == ["common", "rare"] for f in summary["folds"])
    assert "rare" in printed and "macro" in printed and "per_class.rare.f1" in summary["summary"]


def test_cv_rescore_compares_folds_pair_by_pair():
    rescore = _benchmark("cv_rescore")

    def fold(f1: float) -> dict:
        scores = {"f1": f1}
        return {"own": {"micro": scores, "relations": scores, "sentences": scores,
                        "annotated_only": {"micro": scores, "relations": scores}}}

    # Three folds: the ensemble is ahead of a by 2, 4 and 0 points, and behind b by 1 point on each.
    everything = {"a": [fold(0.80), fold(0.70), fold(0.75)], "b": [fold(0.83), fold(0.75), fold(0.76)],
                  "a + b": [fold(0.82), fold(0.74), fold(0.75)]}
    against_a = rescore.paired(everything["a + b"], everything["a"], "ensemble against a alone")
    against_b = rescore.paired(everything["a + b"], everything["b"], "ensemble against b alone")
    assert against_a.startswith("ensemble against a alone, fold by fold:")
    assert "entity F1, annotated sentences     +2.00 points (std 2.00), ahead on 2 of 3 folds" in against_a
    assert "sentence F1                        -1.00 points (std 0.00), ahead on 0 of 3 folds" in against_b
    assert against_a.count("ahead on 2 of 3 folds") == 5
    for folds in everything.values():  # models without a sentence gate (cv --no-negatives): no sentence row
        for f in folds:
            del f["own"]["sentences"]
    ungated = rescore.paired(everything["a + b"], everything["a"], "ungated")
    assert "sentence F1" not in ungated and ungated.count("ahead on") == 4


def test_a_killed_searchs_trial_folder_is_swept_by_the_next(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    import tempfile

    from adelabel import tune

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead, alive = tmp_path / f"adelabel-tune-{gone.stdout.strip()}-x1", tmp_path / f"adelabel-tune-{running.pid}-x2"
        reused = tmp_path / f"adelabel-tune-{os.getpid()}-x3"  # a killed run's pid, given to this process
        for folder in (dead, alive, reused):
            (folder / "trial-0.checkpoint").mkdir(parents=True)
        tune._sweep_work_folders()
        assert not dead.exists() and alive.exists() and not reused.exists()
    finally:
        running.kill()
        running.wait()


def test_a_search_fails_the_trials_of_gone_processes_only(sample_data, tmp_path, capsys, monkeypatch):
    """Carrying a study on fails the trials a killed search left running (this machine's, their process
    gone, or an earlier version's), not those of a search still running on the same study, here or on
    another machine; each trial records its process."""
    import os
    import socket
    import subprocess
    import sys

    import optuna

    from adelabel import train as training

    monkeypatch.setattr(training, "train", lambda *a, **k: {"dev": {"f1": 0.5}})
    storage = f"sqlite:///{tmp_path}/study.db"
    base = ["tune", "--data", sample_data, "--epochs", "1", "--storage", storage, "--out", tmp_path / "best.toml",
            "--sampler", "random", *TINY]
    code, _, err = run_cli(capsys, *base, "--trials", "1")
    assert code == 0, err
    study = optuna.load_study(study_name="adelabel", storage=storage)
    assert study.trials[0].user_attrs["process"] == f"{socket.gethostname()}:{os.getpid()}"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owners = {"dead": f"{socket.gethostname()}:{gone.stdout.strip()}", "live": f"{socket.gethostname()}:{running.pid}",
                  "elsewhere": "another-machine:1", "earlier version": None}
        for owner in owners.values():
            trial = study.ask()
            if owner:
                trial.set_user_attr("process", owner)
        code, _, err = run_cli(capsys, *base, "--trials", "2")
        assert code == 0, err
    finally:
        running.kill()
        running.wait()
    states = [t.state.name for t in optuna.load_study(study_name="adelabel", storage=storage).trials]
    assert states == ["COMPLETE", "FAIL", "RUNNING", "RUNNING", "FAIL", "COMPLETE"], states


def test_a_corpus_file_cv_cannot_read_is_one_line(tmp_path, monkeypatch):
    import errno

    from adelabel import cv
    from adelabel.errors import InputError

    (tmp_path / "DRUG-AE.rel").write_text("x")

    def unreadable(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(cv.atomic, "sha256", unreadable)
    with pytest.raises(InputError, match=r"DRUG-AE\.rel: cannot read \(Permission denied\)"):
        cv._content_sha256(tmp_path, "ade")


def test_a_trial_that_diverges_is_a_lost_trial_not_the_end_of_the_search(sample_data, tmp_path, capsys, monkeypatch):
    import optuna

    from adelabel import train as training

    def diverges(*args, **kwargs):
        raise training.Diverged("train: the loss became nan in epoch 1")

    monkeypatch.setattr(training, "train", diverges)
    storage = f"sqlite:///{tmp_path}/study.db"
    code, printed, err = run_cli(capsys, "tune", "--data", sample_data, "--epochs", "1", "--storage", storage,
                                 "--out", tmp_path / "best.toml", "--sampler", "random", "--trials", "2", *TINY)
    assert err.count("diverged (its loss became NaN before any epoch was kept)") == 2, err
    assert code == 2 and err.strip().endswith("no trial of the study finished unpruned; run more --trials")
    study = optuna.load_study(study_name="adelabel", storage=storage)
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]


def test_a_type_one_fold_lacks_keeps_its_row_over_the_folds_that_have_it():
    """A fold whose test documents name no DOSE (seqeval then leaves DOSE out of its report) must not
    drop DOSE from the summary: it is averaged over the folds that have it, and the table says so."""
    from adelabel.cv import format_summary, summarise

    def fold(dose: float | None, auc: float | None) -> dict:
        scores = {"DRUG": {"precision": 0.9, "recall": 0.8, "f1": 0.85}, "micro": {"precision": 0.8, "recall": 0.8, "f1": 0.8},
                  "macro": {"precision": 0.7, "recall": 0.7, "f1": 0.7},
                  "sentences": {"precision": 0.8, "recall": 0.8, "f1": 0.8, "roc_auc": auc}}
        if dose is not None:
            scores["DOSE"] = {"precision": dose, "recall": dose, "f1": dose}
        return scores

    stats = summarise([fold(0.5, 0.9), fold(None, None), fold(0.7, 0.95)])
    assert stats["DOSE.f1"] == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1414, abs=1e-4), "folds": 2}
    assert stats["sentences.roc_auc"]["folds"] == 2 and "folds" not in stats["DRUG.f1"]
    printed = format_summary({"summary": stats, "folds": [{}, {}, {}], "settings": {"config": {"task": "tag"}}})
    dose = next(line for line in printed.splitlines() if line.strip().startswith("DOSE"))
    assert "0.6000" in dose and dose.endswith("(2 of 3 folds)")


def test_a_type_a_fold_holds_none_of_counts_only_its_precision_there():
    """seqeval reports a type the model predicted but the fold's test split holds none of with recall and
    F1 0 (support 0): undefined, so left out of those means (as a fold without the false positive is),
    while the false positives' precision 0 counts. A type no fold holds prints n/a for them."""
    from adelabel.cv import format_summary, summarise

    def scores(value, support):
        return {"precision": value, "recall": value, "f1": value, "support": support}

    def fold(dose, spurious):
        result = {"DRUG": scores(0.9, 10), "micro": scores(0.8, 12), "macro": scores(0.7, 12), "DOSE": dose}
        return {**result, **({"ROUTE": scores(0.0, 0)} if spurious else {})}

    stats = summarise([fold(scores(1.0, 2), False), fold(scores(0.0, 0), True), fold(scores(0.0, 0), True)])
    assert stats["DOSE.f1"] == {"mean": 1.0, "std": 0.0, "folds": 1} and stats["DOSE.recall"]["folds"] == 1
    assert stats["DOSE.precision"]["mean"] == pytest.approx(1 / 3) and "folds" not in stats["DOSE.precision"]
    assert "ROUTE.f1" not in stats and stats["ROUTE.precision"] == {"mean": 0.0, "std": 0.0, "folds": 2}
    printed = format_summary({"summary": stats, "folds": [{}, {}, {}], "settings": {"config": {"task": "tag"}}})
    route = next(line for line in printed.splitlines() if line.strip().startswith("ROUTE"))
    assert route.count("n/a") == 2 and route.endswith("(2 of 3 folds)")
    dose = next(line for line in printed.splitlines() if line.strip().startswith("DOSE"))
    # Its precision is over every fold, its recall and F1 over the one that holds doses: the note says so.
    assert dose.endswith("(precision over 3 of 3 folds, recall over 1 of 3 folds, f1 over 1 of 3 folds)")


def test_a_cv_of_the_checksum_recipe_before_is_still_the_same_corpus(tmp_path):
    from adelabel import cv

    before = cv._content_sha256(SAMPLE, "ade", ("*.rel", "*.txt", "*.ann"))  # every .txt, example.txt too
    now = cv._content_sha256(SAMPLE, "ade")
    assert before != now and cv._same_corpus(before, SAMPLE, "ade", now) and cv._same_corpus(None, SAMPLE, "ade", now)
    assert not cv._same_corpus("0" * 64, SAMPLE, "ade", now)


def test_the_corpus_checksum_covers_what_the_reader_reads_only(tmp_path):
    import shutil

    from adelabel import cv

    corpus = tmp_path / "ade"
    shutil.copytree(SAMPLE, corpus)
    before = cv._content_sha256(corpus, "ade")
    (corpus / "NOTES.txt").write_text("read me")
    (corpus / "example.txt").write_text("another example")
    assert cv._content_sha256(corpus, "ade") == before
    # DRUG-DOSE.rel counts only where the doses are read (--types DRUG,AE,DOSE); a run recorded under the
    # recipe before, which summed it whatever the types, is still this corpus.
    older = cv._content_sha256(corpus, "ade", (cv.AE_FILE, cv.DOSE_FILE, cv.NEG_FILE))
    doses = cv._content_sha256(corpus, "ade", labels=("DRUG", "AE", "DOSE"))
    with (corpus / "DRUG-DOSE.rel").open("a") as fh:
        fh.write("x\n")
    assert cv._content_sha256(corpus, "ade") == before != older
    assert cv._content_sha256(corpus, "ade", labels=("DRUG", "AE", "DOSE")) != doses
    with (corpus / "DRUG-DOSE.rel").open("w") as fh:
        fh.write((SAMPLE / "DRUG-DOSE.rel").read_text())
    assert cv._same_corpus(older, corpus, "ade", before)
    with (corpus / "DRUG-AE.rel").open("a") as fh:
        fh.write("\n")
    assert cv._content_sha256(corpus, "ade") != before
    # A brat folder: each .ann and the .txt beside it; a .txt without one is a note the reader leaves out.
    brat = tmp_path / "brat"
    brat.mkdir()
    (brat / "1.txt").write_text("Rash after naproxen.")
    (brat / "1.ann").write_text("T1\tAE 0 4\tRash\n")
    before = cv._content_sha256(brat, "brat")
    (brat / "notes.txt").write_text("read me")
    now = cv._content_sha256(brat, "brat")
    assert now == before
    # A cross-validation recorded under the recipe before, which took every .txt, is still this corpus.
    assert cv._same_corpus(cv._content_sha256(brat, "brat", ("*.txt", "*.ann")), brat, "brat", now)
    (brat / "1.txt").write_text("Rash after ibuprofen.")
    assert cv._content_sha256(brat, "brat") != before


def test_cv_names_dropped_settings_and_starts_afresh_when_no_fold_finished(capsys, tmp_path, monkeypatch):
    """A first fold stopped by an error leaves settings and data but no result: run again with other
    settings, the folder starts afresh rather than refusing them; once a fold finished, they are refused,
    naming every setting that differs, one dropped included."""
    from adelabel import cv
    from adelabel.errors import AdelabelError

    out = tmp_path / "cv"
    args = ["cv", "--corpus", SAMPLE, "--folds", "2", "--out", out, "--dim", "8", "--w2v-epochs", "1", "-q"]

    def fails(*a, **k):
        raise AdelabelError("the disk is full")

    monkeypatch.setattr(cv, "train", fails)
    code, _, err = run_cli(capsys, *args, "--seed", "7")
    assert code == 2 and "the disk is full" in err and (out / "fold-01" / "data").is_dir()
    # A fold with an epoch in its checkpoint is worth keeping: a mistyped resume is refused, not started afresh.
    state = out / "fold-01" / "model.checkpoint" / "state.pt"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"an epoch")
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "holds a cross-validation with other settings (config.seed 7 -> 13; seed 7 -> 13)" in err, err
    state.unlink()
    # Settings that cannot make folds are refused before the unfinished fold is removed.
    code, _, err = run_cli(capsys, *[a if a != "2" else "1000" for a in args])
    assert code == 2 and "--folds 1000" in err and (out / "fold-01" / "data").is_dir(), err
    scores = {"f1": 0.5, "precision": 0.5, "recall": 0.5}
    monkeypatch.setattr(cv, "train", lambda *a, **k: {"best_epoch": 1, "epochs_run": 1,
                                                      "test": {**scores, "micro": scores}})
    code, _, err = run_cli(capsys, *args[:-1])
    assert code == 0 and "no fold had finished under its settings (config, seed differ); starting afresh" in err, err
    assert json.loads((out / "settings.json").read_text())["seed"] == 13
    settings = json.loads((out / "settings.json").read_text())
    # The seed comes from the config file when --seed is not given (it was always 13).
    (tmp_path / "seed7.toml").write_text("seed = 7\n")
    code, _, err = run_cli(capsys, *args, "--config", tmp_path / "seed7.toml", "--out", tmp_path / "cv7")
    assert code == 0, err
    assert json.loads((tmp_path / "cv7" / "settings.json").read_text())["seed"] == 7
    (out / "settings.json").write_text(json.dumps({**settings, "teacher": ["elsewhere"]}))
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "other settings (teacher [\"elsewhere\"] -> null)" in err, err


def test_cv_refuses_before_writing_a_thing_what_its_first_fold_would(capsys, tmp_path):
    labelled = tmp_path / "lab.tsv"
    labelled.write_text("".join(f"{'ADE' if i % 2 else 'NEG'}\ttext number {i}\n" for i in range(40)))
    code, _, err = run_cli(capsys, "cv", "--corpus", labelled, "--folds", "2", "--out", tmp_path / "o")
    assert code == 2 and "--format labelled: labelled texts have no entities to tag" in err, err
    assert not (tmp_path / "o").exists()
    teacher = tmp_path / "classify-cv"
    teacher.mkdir()
    (teacher / "settings.json").write_text(json.dumps({"config": {"task": "classify"}}))
    code, _, err = run_cli(capsys, "cv", "--corpus", SAMPLE, "--folds", "2", "--out", tmp_path / "t",
                           "--teacher", teacher)
    assert code == 2 and "--teacher: cross-validates a sentence classifier; a teacher is a tagger" in err, err
    assert not (tmp_path / "t").exists()


def test_cv_prints_classes_whose_names_hold_a_dot():
    from adelabel.cv import format_summary, summarise

    def scores(f1):
        return {"precision": f1, "recall": f1, "f1": f1}

    fold = {"per_class": {"v1.pos": scores(0.8), "v1.neg": scores(0.9)}, "macro": scores(0.85), "accuracy": 0.86}
    printed = format_summary({"summary": summarise([fold, fold]), "folds": [{}, {}],
                              "settings": {"config": {"task": "classify"}}})
    assert any(line.startswith("v1.pos") and "0.8000" in line for line in printed.splitlines()), printed
    assert any(line.startswith("v1.neg") and "0.9000" in line for line in printed.splitlines()), printed


def test_space_choices_are_held_as_the_schema_reads_them(sample_data, tmp_path, capsys):
    import optuna

    from adelabel.tune import _same_once_typed, parse_space

    space = parse_space("bilstm", "tag", ["model.layers=1,2", "train.lr=0.001,2e-3", "model.gate=true,false"])
    assert space["model.layers"] == {"choices": [1, 2]} and space["train.lr"] == {"choices": [0.001, 0.002]}
    assert space["model.gate"] == {"choices": [True, False]} and space["model.chars"] == {"choices": ["cnn", "lstm", "none"]}
    # A study an older version began kept the same choices as text: it is the same space, not another.
    older = {**space, "model.layers": {"choices": ["1", "2"]}}
    assert _same_once_typed(json.dumps(older), space, "bilstm", "tag")
    assert not _same_once_typed(json.dumps({**older, "model.layers": {"choices": ["1", "3"]}}), space, "bilstm", "tag")
    storage = f"sqlite:///{tmp_path}/typed.db"
    code, _, err = run_cli(capsys, "tune", "--data", sample_data, "--epochs", "1", "--trials", "1", *TINY,
                           "--storage", storage, "--out", tmp_path / "typed.toml", "--space", "model.layers=1,2")
    assert code == 0, err
    assert optuna.load_study(study_name="adelabel", storage=storage).trials[0].params["model.layers"] in (1, 2)


def test_tune_refuses_an_out_in_a_missing_tune_folder_before_any_trial(capsys, sample_data, tmp_path, monkeypatch):
    """Only the default tune/ folder is made for the run; an --out named into it, with --storage given
    elsewhere, is refused up front, not after the study when the config cannot be written."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "tune", "--data", sample_data, "--out", "tune/x.toml",
                           "--storage", f"sqlite:///{tmp_path}/s.db", "--trials", "1")
    assert code == 2 and "--out tune/x.toml: folder" in err and "does not exist" in err, err
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "tune").exists()


def test_tune_does_not_search_the_share_of_sentences_the_data_lacks(tmp_path, capsys, monkeypatch):
    """Labelled text has no sentence without entities: train.negative_fraction would change nothing."""
    import optuna

    from adelabel import train as training
    from adelabel.prepare import prepare

    rows = [f"d{i // 3}\t{'ADE' if i % 2 else 'NEG'}\tsentence number {i} about {'rash' if i % 2 else 'cats'}"
            for i in range(60)]
    (tmp_path / "l.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    prepare(tmp_path / "l.tsv", tmp_path / "data", format="labelled", w2v_epochs=1, log=lambda _: None)
    monkeypatch.setattr(training, "train", lambda *a, **k: {"dev": {"f1": 0.5}})
    storage = f"sqlite:///{tmp_path}/s.db"
    code, _, err = run_cli(capsys, "tune", "--task", "classify", "--arch", "bigru", "--data", tmp_path / "data",
                           "--epochs", "1", "--trials", "1", "--storage", storage, "--out", tmp_path / "best.toml")
    assert code == 0, err
    assert "train.negative_fraction is not searched" in err
    [study] = optuna.get_all_study_summaries(storage)
    space = json.loads(optuna.load_study(study_name=study.study_name, storage=storage).user_attrs["space"])
    assert "train.negative_fraction" not in space and "train.lr" in space


def test_a_grid_point_another_search_holds_is_given_up_by_the_later_trial():
    """Two searches of one study can enqueue the same grid point at once; the later trial gives way to
    an earlier one of a live search, or to one that finished, never to one whose process is gone."""
    import os
    import socket

    import optuna

    from adelabel import tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    point = {"train.lr": 0.001}

    def running(process: str):
        study.enqueue_trial(point, skip_if_exists=False)
        trial = study.ask()
        trial.set_user_attr(tune.PROCESS, process)
        trial.suggest_float("train.lr", 1e-4, 1e-2)
        return trial

    host = socket.gethostname()
    gone, live, mine = running(f"{host}:999999999"), running(f"{host}:{os.getppid()}"), running(f"{host}:{os.getpid()}")
    assert tune._taken(study, mine, point)          # the live search's earlier trial holds it
    assert not tune._taken(study, live, point)      # the earlier of the two keeps it (a gone one does not count)
    assert not tune._taken(study, gone, {"train.lr": 0.002})
    study.tell(live, state=optuna.trial.TrialState.FAIL)
    assert not tune._taken(study, mine, point)      # failed: the point is free again
    study.tell(gone, 0.5)
    assert tune._taken(study, mine, point)          # tried already


def test_a_stopped_cv_or_tune_says_what_it_keeps(capsys, sample_data, tmp_path, monkeypatch):
    """Ctrl-C or a TERM ended either with status 130 and not a word of how to carry on."""
    from adelabel import cv, tune

    def stop(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(cv, "cross_validate", stop)
    monkeypatch.setattr(tune, "tune", stop)
    code, _, err = run_cli(capsys, "cv", "--corpus", SAMPLE, "--folds", "2", "--out", tmp_path / "cv")
    assert code == 130 and err.strip() == "adelabel: cross-validation stopped; the folds finished (and the fold " \
        f"under way, from its last epoch) are kept in {tmp_path / 'cv'}: the same command carries on", err
    storage = f"sqlite:///{tmp_path}/s.db"
    code, _, err = run_cli(capsys, "tune", "--data", sample_data, "--storage", storage, "--out", tmp_path / "t.toml",
                           "--trials", "1")
    assert code == 130 and err.strip() == f"adelabel: search stopped; the study keeps its finished trials in " \
        f"{storage}: the same command carries on (the trial under way is recorded as failed)", err


@pytest.mark.parametrize("command", ["cv", "tune"])
def test_cv_and_tune_take_train_s_encoder_and_precision(command, capsys, tmp_path, sample_data, monkeypatch):
    """--encoder and --precision mean in cv and tune what they mean in train: the run's config carries
    them (each fold's or trial's training reads its config), and a wrong value is refused alike."""
    from adelabel import cv, tune

    seen = []
    monkeypatch.setattr(cv, "cross_validate", lambda cfg, *a, **k: seen.append(cfg) or {})
    monkeypatch.setattr(cv, "format_summary", lambda summary: "")
    monkeypatch.setattr(tune, "tune", lambda cfg, *a, **k: seen.append(cfg) or {
        "complete": 0, "pruned": 0, "best_trial": 0, "best_value": 0.0, "best_params": {}, "config": "x"})
    where = (["--corpus", SAMPLE, "--out", tmp_path / "cv"] if command == "cv"
             else ["--data", sample_data, "--out", tmp_path / "best.toml", "--storage", f"sqlite:///{tmp_path}/s.db"])
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    code, _, err = run_cli(capsys, command, *where, "--arch", "transformer", "--encoder", encoder,
                           "--precision", "bf16", "--device", "cpu")
    assert code == 0, err
    assert seen[0].arch == "transformer" and seen[0].model.encoder == str(encoder.resolve())
    assert seen[0].train.precision == "bf16"
    for args, message in ((["--encoder", encoder], "--encoder: names the pretrained encoder of --arch transformer, "
                                                   "not of bilstm"),
                          (["--arch", "transformer", "--encoder", tmp_path / "none"], f"--encoder {tmp_path / 'none'}: "
                                                                                      "folder not found"),
                          (["--precision", "half"], "--precision: expected fp32, bf16, fp16, got 'half'"),
                          (["--precision", "fp16", "--device", "cpu"], "--precision fp16: runs on a GPU only; on the "
                                                                        "CPU use bf16")):
        code, _, err = run_cli(capsys, command, *where, *args)
        assert code == 2 and err.strip() == f"adelabel: error: {message}", err
    assert len(seen) == 1


def test_cv_summary_counts_each_score_over_the_folds_that_define_it():
    """A classifier's F1 of its positive class is undefined (not 0) in a fold whose test split holds
    none of it; the note of a row whose precision is defined in more folds than its F1 says so per
    score; the classifier's table shows its calibration scores too."""
    from adelabel.cv import format_summary, summarise

    def fold(support: int, f1: float, predicted: int) -> dict:
        pos = {"precision": 0.5 if predicted else 0.0, "recall": f1, "f1": f1, "support": support}
        neg = {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 10}
        return {"task": "classify", "classes": ["ADE", "NEG"], "positive": "ADE", "f1": f1, "accuracy": 0.9,
                "per_class": {"ADE": pos, "NEG": neg}, "macro": neg,
                "confusion": [[support, 0], [predicted, 10 - predicted]], "ece": 0.05, "brier": 0.1,
                "roc_auc": None, "average_precision": None}

    results = [fold(4, 0.8, 1), fold(4, 0.6, 1), fold(0, 0.0, 2)]
    stats = summarise(results)
    assert stats["f1"] == {"mean": pytest.approx(0.7), "std": pytest.approx(0.1414, abs=1e-4), "folds": 2}
    printed = format_summary({"settings": {"config": {"task": "classify"}, "folds": 3}, "summary": stats,
                              "folds": results})
    ade = next(line for line in printed.splitlines() if line.startswith("ADE"))
    assert ade.endswith("(precision over 3 of 3 folds, recall over 2 of 3 folds, f1 over 2 of 3 folds)"), printed
    assert any(line.startswith("ece") for line in printed.splitlines())
    assert any(line.startswith("brier") for line in printed.splitlines())


def test_a_killed_search_not_yet_reaped_is_no_live_one():
    """A search killed by a driver script that has not waited for it stays a zombie for a while: its
    trial and folder are to be swept by the next run, not left as another search's."""
    import signal
    import subprocess
    import sys
    import time

    from adelabel.tune import _alive

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _alive(child.pid)
        child.send_signal(signal.SIGKILL)
        time.sleep(0.5)  # dead, not waited for: a zombie
        assert not _alive(child.pid)
    finally:
        child.kill()
        child.wait()


def test_cv_seed_wins_over_set_seed_as_in_train(capsys, monkeypatch, tmp_path):
    """The options that stand for keys come after --set: `cv --seed 7 --set seed=5` ran seed 5, unsaid."""
    import adelabel.cv

    seen = {}

    def stop(cfg, *args, **kwargs):
        seen["seed"] = (cfg.seed, kwargs["seed"])
        raise KeyboardInterrupt

    monkeypatch.setattr(adelabel.cv, "cross_validate", stop)
    run_cli(capsys, "cv", "--corpus", ROOT / "corpora" / "sample", "--out", tmp_path / "cv", "--seed", "7",
            "--set", "seed=5")
    assert seen["seed"] == (7, 7)


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_search_killed_and_carried_on_draws_what_the_uninterrupted_one_draws(sampler, sample_data, tmp_path, capsys,
                                                                              monkeypatch):
    """Each trial's sampler is seeded by the study's seed and the trials before it: a killed trial's
    settings are drawn again, and extending a study by --trials draws what a longer search would."""
    import os
    import socket
    import subprocess
    import sys

    import optuna

    from adelabel import train as training

    scores = iter(range(100))  # the trials' dev F1s: TPE reads them, so both searches must see the same
    monkeypatch.setattr(training, "train", lambda *a, **k: {"dev": {"f1": next(scores) % 7 / 10}})

    def search(name: str, trials: int) -> None:
        code, _, err = run_cli(capsys, "tune", "--data", sample_data, "--epochs", "1", "--storage",
                               f"sqlite:///{tmp_path}/{name}.db", "--out", tmp_path / f"{name}.toml", "--sampler",
                               sampler, "--trials", str(trials), *TINY)
        assert code == 0, err

    search("whole", 4)
    scores = iter(range(100))
    search("cut", 2)
    study = optuna.load_study(study_name="adelabel", storage=f"sqlite:///{tmp_path}/cut.db")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    study.sampler = optuna.samplers.RandomSampler(seed=99)  # what the killed trial drew does not matter
    killed = study.ask({"train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    killed.set_user_attr("process", f"{socket.gethostname()}:{gone.stdout.strip()}")
    search("cut", 4)
    params = lambda name: [t.params for t in optuna.load_study(  # noqa: E731
        study_name="adelabel", storage=f"sqlite:///{tmp_path}/{name}.db").trials if t.state.name == "COMPLETE"]
    assert len(params("whole")) == 4 and params("cut") == params("whole")


def test_a_quiet_search_says_nothing_of_each_trial_s_discarded_model(sample_data, tmp_path, capsys, monkeypatch):
    from adelabel import tasks

    scored = tasks.TagTask.evaluate  # a model that learnt nothing: the warning train would give
    monkeypatch.setattr(tasks.TagTask, "evaluate", lambda self, *a, **k: {**scored(self, *a, **k), "f1": 0.0})
    code, printed, err = run_cli(capsys, "tune", "--data", sample_data, "--epochs", "1", "--trials", "1", "-q",
                                 "--storage", f"sqlite:///{tmp_path}/s.db", "--out", tmp_path / "best.toml", *TINY)
    assert code == 0 and "dev F1 0.0000" in printed and err == "", (printed, err)


def test_a_trial_that_failed_by_an_error_is_not_drawn_again_one_killed_is(sample_data, tmp_path, capsys, monkeypatch):
    import optuna

    from adelabel import train as training
    from adelabel.errors import AdelabelError

    def failing(kind):
        def train(*a, **k):
            raise kind("the disk is full") if kind is AdelabelError else kind()
        return train

    storage = f"sqlite:///{tmp_path}/s.db"
    args = ["tune", "--data", sample_data, "--epochs", "1", "--storage", storage, "--out", tmp_path / "best.toml",
            "--sampler", "random", "--trials", "1", *TINY]
    for kind, code in ((AdelabelError, 2), (AdelabelError, 2), (KeyboardInterrupt, 130)):
        monkeypatch.setattr(training, "train", failing(kind))
        assert run_cli(capsys, *args)[0] == code
    monkeypatch.setattr(training, "train", lambda *a, **k: {"dev": {"f1": 0.5}})
    assert run_cli(capsys, *args)[0] == 0
    trials = optuna.load_study(study_name="adelabel", storage=storage).trials
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "FAIL", "COMPLETE"]
    assert trials[0].params != trials[1].params  # an error's settings are not retried for ever
    assert trials[2].params != trials[1].params and trials[3].params == trials[2].params  # a kill's are
