"""A real (short) training run on the sample corpus, then tagging through the API and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
    src.write_text("Rash developed after lamotrigine.\n\nNo drugs. Nothing else.\n", encoding="utf-8")
    out = run_cli("tag", str(src), "--model", str(sample_model))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(l) for l in out.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["Rash developed after lamotrigine.", "", "No drugs. Nothing else."]
    assert rows[1]["entities"] == []
    for r in rows:
        for e in r["entities"]:
            assert set(e) == {"start", "end", "label", "text", "score"} and r["text"][e["start"]:e["end"]] == e["text"]
    piped = run_cli("tag", "-", "--model", str(sample_model), stdin=src.read_text())
    assert piped.stdout == out.stdout
    conll = run_cli("tag", str(src), "--model", str(sample_model), "--format", "conll")
    assert conll.returncode == 0 and "# text = Rash developed after lamotrigine." in conll.stdout
    assert "lamotrigine\t" in conll.stdout


def test_cli_evaluate(sample_model, sample_data, tmp_path):
    out = run_cli("evaluate", "--model", str(sample_model), "--data", str(sample_data), "--json", str(tmp_path / "s.json"))
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
    assert 0 < gate["threshold"] < 1 and f"threshold {gate['threshold']:.2f}" in out.stdout
    assert gate["annotated_sentences_passed"] > gate["negative_sentences_passed"]


@pytest.mark.parametrize("args, message", [
    (["tag", "nofile.txt", "--model", "{model}"], "nofile.txt: file not found"),
    (["tag", "{bad}", "--model", "{model}"], "bad.txt:2: not UTF-8"),
    (["tag", "{bad}", "--model", "{tmp}/nomodel"], "model folder not found"),
    (["tag", "{bad}", "--model", "{model}", "--threshold", "1.5"], "--threshold: expected a number between 0 and 1"),
    (["train", "--arch", "nosuch"], "--arch: unknown architecture 'nosuch'"),
    (["prepare", "--corpus", "{tmp}/nocorpus"], "corpus folder not found"),
    (["evaluate", "--model", "{model}", "--data", "{tmp}"], "prepared split not found"),
])
def test_cli_errors_are_one_clear_line(sample_model, tmp_path, args, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe\n")
    args = [a.format(model=sample_model, bad=bad, tmp=tmp_path) for a in args]
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
