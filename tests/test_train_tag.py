"""A real (short) training run on the sample corpus, then tagging through the API and the CLI."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from adelabel import Entity, Tagger
from adelabel.prepare import read_manifest, read_split
from conftest import ROOT, SAMPLE


def run_cli(*args, stdin=None, cwd=None):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd)


def test_prepare_writes_splits_vectors_and_manifest(sample_data):
    manifest = read_manifest(sample_data)
    assert manifest["misaligned_boundaries"] == 0
    assert manifest["splits"]["train"]["documents"] == 120
    assert manifest["vectors"]["coverage"]["train"]["tokens"] == 1.0
    docs = {n: {s.doc_id for s in read_split(sample_data, n)} for n in ("train", "dev", "test")}
    assert not (docs["train"] & docs["test"]) and not (docs["dev"] & docs["test"])
    assert (sample_data / "train.conll").read_text(encoding="utf-8").count("B-DRUG") > 100


def test_training_learns_and_records_the_run(sample_model):
    metrics = json.loads((sample_model / "metrics.json").read_text())
    # The sample is small but regular: a wiring mistake would leave F1 near 0.
    assert metrics["dev"]["micro"]["f1"] > 0.7
    assert metrics["test"]["micro"]["f1"] > 0.6
    log = [json.loads(l) for l in (sample_model / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == metrics["epochs_run"] and {"loss", "dev_f1", "sentences_per_second"} <= set(log[0])
    assert log[-1]["loss"] < log[0]["loss"]
    config = json.loads((sample_model / "config.json").read_text())
    assert config["versions"]["torch"] and config["train"]["max_epochs"] == 25 and config["seed"] == 13


def test_prepare_is_reproducible(sample_data, tmp_path):
    from adelabel.prepare import prepare

    again = tmp_path / "again"
    prepare(SAMPLE, again, seed=13, w2v_epochs=5, log=lambda _: None)
    for path in sample_data.iterdir():
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name


def test_training_is_reproducible(sample_data, tmp_path):
    from adelabel.config import resolve
    from adelabel.train import train

    config = resolve("bilstm", overrides=["train.max_epochs=2", "model.hidden_size=16"])
    a = train(config, sample_data, tmp_path / "a", device="cpu", log=None)
    b = train(config, sample_data, tmp_path / "b", device="cpu", log=None)
    assert a == b
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_tagger_offsets_and_pipe(sample_model):
    tagger = Tagger.load(sample_model, device="cpu")
    lines = (SAMPLE / "example.txt").read_text(encoding="utf-8").splitlines()
    results = list(tagger.pipe(lines, batch_size=4))
    assert len(results) == len(lines)
    found = 0
    for line, entities in zip(lines, results):
        for e in entities:
            assert isinstance(e, Entity) and line[e.start:e.end] == e.text and 0 < e.score <= 1
            found += 1
        alone = tagger(line)
        # Batch composition changes float rounding in the last digits of a score, never an entity.
        assert [(e.start, e.end, e.label) for e in entities] == [(e.start, e.end, e.label) for e in alone]
        assert all(abs(a.score - b.score) < 1e-3 for a, b in zip(entities, alone))
    assert found > 10
    # With the gate open every sentence is tagged: the entities of gated tagging and more.
    opened = Tagger.load(sample_model, device="cpu", threshold=0.0)
    for line, entities in zip(lines, results):
        everything = {(e.start, e.end, e.label) for e in opened(line)}
        assert {(e.start, e.end, e.label) for e in entities} <= everything
    assert tagger("") == [] and tagger("   ") == []
    # Offsets of a sentence inside a line index the line, not the sentence.
    text = "The patient recovered. Lamotrigine-induced rash was seen."
    assert all(text[e.start:e.end] == e.text for e in tagger(text))


def test_cli_tag_jsonl_and_conll(sample_model, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("Clozapine-induced agranulocytosis was diagnosed in a 24-year-old man.\n\nNo drugs. Nothing else.\n", encoding="utf-8")
    out = run_cli("tag", str(src), "--model", str(sample_model))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(l) for l in out.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["Clozapine-induced agranulocytosis was diagnosed in a 24-year-old man.", "", "No drugs. Nothing else."]
    assert rows[1] == {"text": "", "entities": [], "relations": [], "sentences": [], "ade": 0.0}
    for r in rows:
        assert set(r) == {"text", "entities", "relations", "sentences", "ade"}
        for e in r["entities"]:
            assert set(e) == {"start", "end", "label", "text", "score"} and r["text"][e["start"]:e["end"]] == e["text"]
            assert 0 < e["score"] <= 1
        for rel in r["relations"]:
            assert r["entities"][rel["drug"]]["label"] == "DRUG" and r["entities"][rel["effect"]]["label"] == "AE"
            assert rel["type"] == "DRUG-AE" and 0 < rel["score"] <= 1
        assert r["ade"] == max((s["ade"] for s in r["sentences"]), default=0.0)
    assert [(s["start"], s["end"]) for s in rows[2]["sentences"]] == [(0, 9), (10, 23)]
    # The first line reports an event: its drug and its effect are found and paired.
    assert rows[0]["relations"] and rows[0]["ade"] >= 0.5
    piped = run_cli("tag", "-", "--model", str(sample_model), stdin=src.read_text())
    assert piped.stdout == out.stdout
    # stdin goes through the corpus files' line reader: a bad byte names <stdin> and its line, an empty
    # pipe writes nothing and is no error, a byte-order mark is not part of the first line's text.
    raw = lambda data: subprocess.run([sys.executable, str(ROOT / "cli.py"), "tag", "-", "--model", str(sample_model)],  # noqa: E731
                                      input=data, capture_output=True)
    bad = raw(b"Rash.\n\xff after naproxen\n")
    assert bad.returncode == 2 and b"<stdin>:2: not UTF-8 text" in bad.stderr and bad.stderr.count(b"\n") == 1
    empty = raw(b"")
    assert empty.returncode == 0 and empty.stdout == b""
    marked = raw(b"\xef\xbb\xbfRash.\n")
    assert marked.returncode == 0 and json.loads(marked.stdout)["text"] == "Rash."
    written = run_cli("tag", str(src), "--model", str(sample_model), "--output", str(tmp_path / "o.jsonl"),
                      "--threshold", "0.25")
    assert written.returncode == 0 and (tmp_path / "o.jsonl").read_text() != ""
    sidecar = json.loads((tmp_path / "o.jsonl.meta.json").read_text())
    assert sidecar["sentence_threshold"] == 0.25 and sidecar["lines"] == 3
    # It names the weights, precision and backend too: outputs of other runs do not look alike.
    manifest = json.loads((sample_model / "manifest.json").read_text())
    assert sidecar["weights"] == manifest["files"]["model.safetensors"]
    assert (sidecar["precision"], sidecar["backend"]) == ("fp32", "torch")
    conll = run_cli("tag", str(src), "--model", str(sample_model), "--format", "conll")
    assert conll.returncode == 0, conll.stderr
    lines = conll.stdout.split("\n")
    meta = json.loads(lines[0].removeprefix("# model = "))
    assert meta["arch"] == "bilstm" and 0 < meta["sentence_threshold"] < 1 and meta["relation_threshold"] == 0.5
    assert lines[1] == "# text = Clozapine-induced agranulocytosis was diagnosed in a 24-year-old man."
    assert any(line.startswith("# relation = DRUG-AE ") and '"Clozapine"' in line for line in lines)
    assert "Clozapine\tB-DRUG" in lines
    # A blank input line is its comment and a blank line: it never runs into the next sentence.
    blank = lines.index("# text = ")
    assert lines[blank + 1] == "" and lines[blank + 2] == "# text = No drugs. Nothing else."


def test_cli_tag_brat_standoff(sample_model, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("Clozapine-induced agranulocytosis was diagnosed in a 24-year-old man.\n\nA 58-year-old woman developed Stevens-Johnson syndrome ten days after starting lamotrigine.\n", encoding="utf-8")
    folder = tmp_path / "brat"
    out = run_cli("tag", str(src), "--model", str(sample_model), "--format", "brat", "--output", str(folder))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in folder.iterdir()) == [f"00000{i}.{x}" for i in (1, 2, 3) for x in ("ann", "txt")]
    relations = 0
    for i, line in enumerate(src.read_text(encoding="utf-8").splitlines(), start=1):
        text = (folder / f"00000{i}.txt").read_text(encoding="utf-8")
        assert text == line
        ids = {}
        for row in (folder / f"00000{i}.ann").read_text(encoding="utf-8").splitlines():
            if row.startswith("T"):
                key, (label, start, end), surface = row.split("\t")[0], row.split("\t")[1].split(), row.split("\t")[2]
                assert text[int(start):int(end)] == surface and label in ("DRUG", "AE")
                ids[key] = label
            else:
                key, spec = row.split("\t")
                kind, arg1, arg2 = spec.split()
                assert kind == "DRUG-AE" and ids[arg1.split(":")[1]] == "DRUG" and ids[arg2.split(":")[1]] == "AE"
                relations += 1
    assert relations >= 2
    assert json.loads((tmp_path / "brat.meta.json").read_text())["lines"] == 3


def test_brat_names_keep_input_order_past_the_width(sample_model, tmp_path, monkeypatch):
    """Past 999,999 lines a name grows a digit; every name is then widened so that name order stays
    input order, and the folder can be tagged into again. Shown with one-digit names and 105 lines
    (names of one, two and three digits)."""
    from adelabel import atomic, tagging_io

    monkeypatch.setattr(atomic, "BRAT_DIGITS", 1)
    src = tmp_path / "in.txt"
    src.write_text("".join(f"Line {i}: lamotrigine-induced rash.\n" for i in range(1, 106)), encoding="utf-8")
    folder = tmp_path / "brat"
    for _ in range(2):  # the second run replaces the folder the first one wrote
        assert tagging_io.tag_stream(str(src), sample_model, "brat", folder, 64, "cpu") == 105
    names = sorted(p.name for p in folder.glob("*.txt"))
    assert names == [f"{i:03d}.txt" for i in range(1, 106)]
    assert [(folder / n).read_text(encoding="utf-8") for n in names] == src.read_text(encoding="utf-8").splitlines()
    assert sorted(p.name for p in folder.glob("*.ann")) == [n.replace(".txt", ".ann") for n in names]


def test_the_python_api_analyzes_sentences_and_relations(sample_model):
    tagger = Tagger.load(sample_model, device="cpu")
    text = "The patient recovered. Lamotrigine-induced rash was seen."
    result = tagger.analyze(text)
    assert [(s.start, s.end) for s in result.sentences] == [(0, 22), (23, 57)]
    assert result.ade == max(s.ade for s in result.sentences)
    assert [e.text for e in result.entities] == [e.text for e in tagger(text)]
    assert all(text[e.start:e.end] == e.text for e in result.entities)
    # A reported sentence with a drug and an effect carries its pair.
    both = tagger.analyze("Clozapine-induced agranulocytosis was diagnosed in a 24-year-old man.")
    assert [(both.entities[r.drug].text, both.entities[r.effect].text) for r in both.relations] == \
        [("Clozapine", "agranulocytosis")]
    assert [a.to_dict() for a in tagger.analyze_pipe([text, ""])] == [result.to_dict(), tagger.analyze("").to_dict()]


def test_cli_evaluate(sample_model, sample_data, tmp_path):
    out = run_cli("evaluate", "--model", str(sample_model), "--data", str(sample_data), "--json", str(tmp_path / "s.json"),
                  "--report", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    assert "micro" in out.stdout and "ADE-NEG" in out.stdout
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["micro"]["f1"] == json.loads((sample_model / "metrics.json").read_text())["test"]["micro"]["f1"]
    # Leaving the ADE-NEG sentences out loses no gold entity; tagging each annotated sentence with the
    # gate open finds at least the entities the gated run found.
    only = scores["annotated_only"]["micro"]
    assert only["support"] == scores["micro"]["support"] and only["recall"] >= scores["micro"]["recall"]
    assert "annotations only" in out.stdout
    gate = scores["gate"]
    assert 0 < gate["threshold"] < 1 and f"threshold {gate['threshold']}" in out.stdout
    # metrics.json says what it scored: which model, on which split of which data.
    assert scores["evaluated"]["model"] == str(sample_model.resolve()) and scores["evaluated"]["split"] == "test"
    assert scores["evaluated"]["data"] == str(sample_data.resolve())
    assert gate["annotated_sentences_passed"] > gate["negative_sentences_passed"]
    # The relation head pairs what the tagger finds; with the gate open on annotated sentences it finds
    # most pairs of this regular sample.
    assert scores["annotated_only"]["relations"]["f1"] > 0.6 and scores["relations"]["support"] > 0
    # --json - is stdout, for a pipe: the JSON alone there, the tables on stderr (none with -q, which
    # leaves the JSON alone), no file named '-'.
    piped = run_cli("evaluate", "--model", str(sample_model), "--data", str(sample_data), "--json", "-",
                    cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["micro"] == scores["micro"] and "annotations only" in piped.stderr
    assert not (tmp_path / "-").exists()
    quiet = run_cli("evaluate", "--model", str(sample_model), "--data", str(sample_data), "--json", "-", "-q",
                    cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == piped.stdout, quiet.stderr
    assert "relations (drug -> effect, both spans exact)" in out.stdout
    assert not re.search(r"^(relations\w*|sentences)\s+\d", out.stdout, re.M)  # not rows of the entity tables
    sentences = scores["sentences"]
    assert sentences["roc_auc"] > 0.8 and 0 <= sentences["ece"] <= 0.2 and "ECE" in out.stdout
    report = tmp_path / "report"
    assert json.loads((report / "metrics.json").read_text()) == scores
    for name in ("reliability.png", "entity_reliability.png", "relation_reliability.png", "per_type.png",
                 "entity_confusion.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Entity and relation scores are probabilities fitted on dev: honest on test too, and ranked so
    # that a right entity usually outscores a wrong one.
    entity = scores["annotated_only"]["entity_probability"]
    assert entity["count"] > 0 and entity["ece"] < 0.2 and entity["roc_auc"] > 0.6
    assert "entity score (exactly right): ECE" in out.stdout
    mistakes = [json.loads(line) for line in (report / "errors.jsonl").read_text().splitlines()]
    # Every sentence listed has a mistake, and the counts add up to the scores.
    assert all(m["false_positives"] or m["false_negatives"] or m["relations_false_positives"]
               or m["relations_false_negatives"] for m in mistakes)
    missed = sum(len(m["false_negatives"]) for m in mistakes)
    assert missed == round(scores["micro"]["support"] * (1 - scores["micro"]["recall"]))
    # One threshold, one spelling, wherever metrics.json gives it.
    assert sentences["threshold"] == gate["threshold"] == scores["evaluated"]["sentence_threshold"]
    # A --json inside the report folder would be deleted with it: refused before any work.
    out = run_cli("evaluate", "--model", str(sample_model), "--data", str(sample_data),
                  "--json", str(report / "s.json"), "--report", str(report))
    assert out.returncode == 2 and "lies inside" in out.stderr and "the --report folder, which is replaced whole" \
        in out.stderr and (report / "metrics.json").is_file()


def test_evaluate_says_what_its_scores_mean(sample_model, sample_data, tmp_path):
    """Found by a review of evaluate's outputs: relation errors named by their texts alone could not tell
    two mentions apart; a model scored on a split of data prepared with another seed (its own training
    documents among them) scored high without a word; dev's scores were printed as test's; with the gate
    open, the threshold line still said a pair was needed."""
    from adelabel.pretrained import READY
    from adelabel.prepare import prepare

    report = tmp_path / "open"
    out = run_cli("evaluate", "--model", str(sample_model), "--data", str(sample_data), "--threshold", "0",
                  "--report", str(report), "--split", "dev")
    assert out.returncode == 0, out.stderr
    assert "(gate threshold 0)" in out.stdout and "a pair to relate" not in out.stdout
    assert "dev chose the model's epoch, thresholds and calibration" in out.stdout and "warning" not in out.stderr
    assert [c[:15] for c in json.loads((report / "metrics.json").read_text())["evaluated"]["caveats"]] == [
        "dev chose the m"]
    # The split it learnt from says so too (it was the one split scored without a word).
    out = run_cli("evaluate", "--model", str(sample_model), "--data", str(sample_data), "--split", "train", "-q",
                  "--json", str(tmp_path / "train.json"))
    assert out.returncode == 0 and "the model learnt from the train split" in out.stdout, out.stderr
    mistakes = [json.loads(line) for line in (report / "errors.jsonl").read_text().splitlines()]
    assert any(m["relations_false_positives"] or m["relations_false_negatives"] for m in mistakes)
    assert any(m["false_positives"] for m in mistakes)
    for m in mistakes:  # a false positive with its score, to rank them by; a false negative has none
        assert all(0 <= e["score"] <= 1 for e in m["false_positives"]) and not any("score" in e for e in m["false_negatives"])
        for p in m["relations_false_positives"] + m["relations_false_negatives"]:
            assert m["text"][p["drug_start"]:p["drug_end"]] == p["drug"]
            assert m["text"][p["effect_start"]:p["effect_end"]] == p["effect"]
    other = tmp_path / "seed7"
    prepare(SAMPLE, other, seed=7, w2v_epochs=1, log=lambda _: None)
    out = run_cli("evaluate", "--model", str(sample_model), "--data", str(other))
    assert out.returncode == 0, out.stderr
    assert re.search(rf"warning: \d+ of the \d+ documents of {other}/test are in {sample_model}'s training split "
                     rf"\({sample_data}\): they score high for it", out.stderr), out.stderr
    assert "dev chose" not in out.stdout and "(gate threshold 0." in out.stdout
    # metrics.json keeps the warning, for whoever collects the JSON files and not the terminal's lines.
    out = run_cli("evaluate", "--model", str(sample_model), "--data", str(other), "-q", "--json", "-")
    [caveat] = json.loads(out.stdout[out.stdout.index("{"):])["evaluated"]["caveats"]
    assert "documents of" in caveat and caveat.endswith("they score high for it")
    # A model whose training folder is not there to read (the ready tagger's is relative, "data") is told
    # by the seed alone.
    out = run_cli("evaluate", "--model", str(READY), "--data", str(other), "-q")
    assert out.returncode == 0 and f"warning: {READY} was trained on data prepared with seed 13, {other} with seed 7" \
        in out.stderr, out.stderr
    # The same documents in each split (the same seed, without the ADE-NEG sentences): nothing to say.
    same = tmp_path / "no-negatives"
    prepare(SAMPLE, same, seed=13, w2v_epochs=1, include_negative=False, log=lambda _: None)
    out = run_cli("evaluate", "--model", str(sample_model), "--data", str(same))
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr


@pytest.mark.parametrize("args, message", [
    (["tag", "nofile.txt", "--model", "{model}"], "nofile.txt: file not found"),
    (["tag", "{bad}", "--model", "{model}"], "bad.txt:2: not UTF-8"),
    (["tag", "{bad}", "--model", "{tmp}/nomodel"], "{tmp}/nomodel: model folder not found"),
    (["tag", "{bad}", "--model", "{model}", "--threshold", "1.5"], "--threshold: expected a number between 0 and 1"),
    (["train", "--arch", "nosuch"], "--arch: unknown architecture 'nosuch'"),
    (["prepare", "--corpus", "{tmp}/nocorpus"], "{tmp}/nocorpus: corpus folder not found"),
    (["evaluate", "--model", "{model}", "--data", "{tmp}"], "{tmp}/test.jsonl: prepared split not found"),
])
def test_cli_errors_are_one_clear_line(sample_model, tmp_path, args, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe\n")
    args = [a.format(model=sample_model, bad=bad, tmp=tmp_path) for a in args]
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert message.format(tmp=tmp_path) in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_an_ensemble_scores_at_its_smallest_members_batch_in_any_order(tiny_model_dir, sample_data, tmp_path):
    """evaluate scores an ensemble at its members' smallest eval_batch_size (a transformer's 64 beside a
    bilstm's 256), not at whichever member came first."""
    from conftest import train_small

    small = train_small(sample_data, tmp_path / "small", "train.max_epochs=1", "model.hidden_size=8",
                        "model.dense_size=8", "model.char_size=8", "train.eval_batch_size=7")
    assert Tagger.load(tiny_model_dir, device="cpu").config["train"]["eval_batch_size"] == 256
    for members in ([tiny_model_dir, small], [small, tiny_model_dir]):
        assert Tagger.load(members, device="cpu").config["train"]["eval_batch_size"] == 7


def test_standard_input_of_a_byte_order_mark_alone_is_empty_as_a_file_of_one_is(sample_model, tmp_path):
    """An editor's empty file is a byte-order mark: refused as a file, it gave one empty record on stdin."""
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "tag", "-", "--model", str(sample_model), "-q"],
                          input=b"\xef\xbb\xbf", capture_output=True)
    assert done.returncode == 0 and done.stdout == b"", done
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf")
    out = run_cli("tag", str(tmp_path / "bom.txt"), "--model", str(sample_model), "-q")
    assert out.returncode == 2 and out.stderr.strip().endswith("bom.txt: file is empty"), out.stderr


def test_one_model_given_twice_as_an_ensemble_is_warned_of(sample_model, sample_data, tmp_path):
    (tmp_path / "in.txt").write_text("Rash after naproxen.\n")
    for args in (["tag", str(tmp_path / "in.txt"), "-q"], ["evaluate", "--data", str(sample_data), "-q"]):
        out = run_cli(*args, "--model", str(sample_model), "--model", str(sample_model / ".." / sample_model.name))
        assert out.returncode == 0 and out.stderr.startswith(f"warning: --model {sample_model}/../{sample_model.name} "
                                                             "given twice"), out.stderr
        out = run_cli(*args, "--model", str(sample_model))
        assert out.returncode == 0 and "warning" not in out.stderr, out.stderr


def test_an_ensemble_of_taggers_is_used_like_one(sample_model, sample_data, tmp_path):
    import shutil

    from adelabel.atomic import sha256

    from adelabel.models.ensemble import Ensemble

    lines = (SAMPLE / "example.txt").read_text(encoding="utf-8").splitlines()
    one = Tagger.load(sample_model, device="cpu")
    alone = Tagger(Ensemble([one.model]), one.config, one.vocabs, one.device)
    twice = Tagger.load([sample_model, sample_model], device="cpu")
    # Averaging copies of one model changes nothing: the same entities, relations and sentences.
    for a, b in zip(alone.analyze_pipe(lines), twice.analyze_pipe(lines)):
        assert a.to_dict() == b.to_dict()
    assert sum(len(a.entities) for a in twice.analyze_pipe(lines)) > 10
    # An entity's score is calibrated in an ensemble as in its members: the members' calibrated scores,
    # averaged. (The ensemble decodes from averaged marginals, not by the CRF: compare the spans both find.)
    matched = 0
    for a, b in zip(one.analyze_pipe(lines), twice.analyze_pipe(lines)):
        mine = {(e.start, e.end, e.label): e.score for e in a.entities}
        for e in b.entities:
            if (e.start, e.end, e.label) in mine:
                assert e.score == pytest.approx(mine[(e.start, e.end, e.label)], abs=1e-4)
                matched += 1
    assert matched > 10
    # Threads sharing one ensemble get each their own answers: its members' outputs travel with each
    # forward pass (Output.members), not on the module, where another call would overwrite them.
    from concurrent.futures import ThreadPoolExecutor

    from adelabel.data import bucketed, encode

    [(_, first), (_, second)] = list(bucketed([encode(t, twice.vocabs) for t in lines[:4]], 2))
    pairs = torch.tensor([[0, 0, 1, 1, 2], [1, 1, 2, 0, 1]])
    with torch.inference_mode():
        out = twice.model(first)
        related = twice.model.relate(out, pairs)
        twice.model(second)
        assert torch.equal(twice.model.relate(out, pairs), related)
    texts = lines * 3
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda t: twice.analyze(t).to_dict(), texts)) == [twice.analyze(t).to_dict() for t in texts]
    # Outputs say an ensemble made them, and of what.
    from adelabel.tagging_io import provenance

    made_by = provenance(twice, [sample_model, sample_model])
    arch = one.config["arch"]
    assert made_by["arch"] == f"ensemble of {arch}, {arch}" and len(made_by["model"]) == 2
    # Against the model alone: the same sentence probabilities (the members' calibrated ones, averaged).
    for a, b in zip(one.analyze_pipe(lines), twice.analyze_pipe(lines)):
        assert [s.ade for s in a.sentences] == pytest.approx([s.ade for s in b.sentences], abs=2e-4)
    out = run_cli("evaluate", "--model", str(sample_model), "--model", str(sample_model), "--data", str(sample_data))
    assert out.returncode == 0 and f"{sample_model} + {sample_model} on" in out.stdout, out.stderr
    f1 = float(out.stdout.split("all sentences")[1].split("micro")[1].split()[2])
    assert abs(f1 - json.loads((sample_model / "metrics.json").read_text())["test"]["micro"]["f1"]) < 0.1
    # Members must read the text alike: another vocabulary is refused, naming the member.
    other = tmp_path / "other"
    shutil.copytree(sample_model, other)
    vocab = json.loads((other / "vocab.json").read_text())
    vocab["words"][5], vocab["words"][6] = vocab["words"][6], vocab["words"][5]
    (other / "vocab.json").write_text(json.dumps(vocab))
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["files"]["vocab.json"] = sha256(other / "vocab.json")
    (other / "manifest.json").write_text(json.dumps(manifest))
    out = run_cli("tag", "-", "--model", str(sample_model), "--model", str(other), stdin="Rash.\n")
    assert out.returncode == 2 and f"{other}: its vocabulary differs from" in out.stderr


def test_a_full_standard_output_is_one_line_and_the_bare_command_shows_help_only():
    with open("/dev/full", "w") as full:  # Linux's device that is always full
        done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "tag", str(SAMPLE / "example.txt"), "-q"],
                              stdout=full, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 2 and done.stderr == \
        "adelabel: error: standard output: cannot write (No space left on device)\n", done.stderr
    bare = run_cli()
    assert "Usage: adelabel" in bare.stdout + bare.stderr and "adelabel: error" not in bare.stderr, bare.stderr


def test_a_terminated_tag_keeps_its_records_for_resume_and_nothing_under_the_real_name(tmp_path):
    import signal
    import time

    source = tmp_path / "many.txt"
    source.write_text("Clozapine-induced agranulocytosis after lithium, with tremor and rash.\n" * 40_000, encoding="utf-8")
    run = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "tag", str(source), "--output", str(tmp_path / "o.jsonl"),
                            "-q"], stderr=subprocess.PIPE, text=True)
    partial = tmp_path / ".o.jsonl.partial"
    deadline = time.monotonic() + 120
    while not (partial.is_file() and partial.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)  # until tagging is under way, however fast the machine loads the model
    run.send_signal(signal.SIGTERM)
    assert run.wait(60) == 143  # 128 + TERM's 15, as a shell reports it (Ctrl-C's is 130)
    assert run.stderr.read() == f"adelabel: stopped; the records tagged so far are kept beside {tmp_path / 'o.jsonl'}: " \
        "the same command with --resume carries on\n"
    # No o.jsonl: what it tagged is kept under the partial name (tests/test_tag_resume.py carries it on).
    assert sorted(p.name for p in tmp_path.iterdir()) == [".o.jsonl.partial", ".o.jsonl.partial.json", "many.txt"]
    assert (tmp_path / ".o.jsonl.partial").read_text(encoding="utf-8").count("\n") > 0


@pytest.mark.parametrize("fmt", ["conll", "html", "brat"])
def test_a_stopped_tag_of_an_output_written_whole_says_it_left_it_as_it_was(capsys, monkeypatch, tmp_path, fmt,
                                                                          tiny_model_dir):
    from adelabel import tagging_io
    from conftest import run_cli

    source = tmp_path / "in.txt"
    source.write_text("Rash after naproxen.\n", encoding="utf-8")

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    if fmt == "html":
        from adelabel import html_view

        monkeypatch.setattr(html_view.HtmlWriter, "write", stopped)
    else:  # a Ctrl-C (or a TERM, which the command line turns into one) as the first record is written
        monkeypatch.setattr(tagging_io, f"write_{fmt}", stopped)
    out = tmp_path / ("out" if fmt == "brat" else f"out.{fmt}")
    code, _, err = run_cli(capsys, "tag", source, "--model", tiny_model_dir, "--format", fmt, "--output", out, "-q")
    assert code == 130 and err == f"adelabel: stopped; {out} is left as it was (a {fmt} output takes its place " \
        "only when complete)\n", err
    assert not out.exists()


def test_evaluate_scores_in_the_models_own_eval_batch_size(sample_model, sample_data, tmp_path, capsys, monkeypatch):
    """train.eval_batch_size ("sentences per batch when scoring") holds for evaluate as for training's dev
    scoring: a transformer saved with 64 is not scored 256 at a time."""
    import shutil

    from adelabel import inference
    from adelabel.atomic import sha256
    from conftest import run_cli

    folder = tmp_path / "m"
    shutil.copytree(sample_model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["train"]["eval_batch_size"] = 7
    (folder / "config.json").write_text(json.dumps(config))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["config.json"] = sha256(folder / "config.json")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    sizes = []
    real = inference.predict
    monkeypatch.setattr(inference, "predict", lambda model, examples, batch_size, *a, **k: (
        sizes.append(batch_size), real(model, examples, batch_size, *a, **k))[1])
    code, _, err = run_cli(capsys, "evaluate", "--model", folder, "--data", sample_data)
    assert code == 0, err
    assert sizes and set(sizes) == {7}


def test_the_type_bars_draw_a_type_predicted_only_in_ade_neg_sentences(tmp_path):
    """A type with no gold entity in the split, predicted only in an ADE-NEG sentence, has a row over
    every sentence and none over the annotated ones: drawn there as nothing found, not a KeyError
    that lost the whole report."""
    from adelabel.report import type_bars

    row = {"precision": 0.5, "recall": 1.0, "f1": 0.67, "support": 2}
    none = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    result = {"DRUG": row, "DOSE": none, "micro": row,
              "annotated_only": {"DRUG": row, "micro": row}}
    type_bars(result, tmp_path / "per_type.png")
    assert (tmp_path / "per_type.png").stat().st_size > 0
