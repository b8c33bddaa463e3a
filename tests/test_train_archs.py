"""Every architecture goes through the same training loop, model format, scorer and Tagger."""
from __future__ import annotations

import json

import pytest
import torch

from adelabel import Tagger
from adelabel.config import resolve
from adelabel.data import encode_sentences
from adelabel.evaluate import evaluate_examples
from adelabel.prepare import read_split
from adelabel.train import train
from conftest import SAMPLE
from test_transformer import checkpoint  # noqa: F401  (the fixture)

SMALL = {
    "seq2seq": ["model.hidden_size=32", "model.char_size=8", "model.decoder_size=32", "model.tag_dim=8",
                "model.beam=2"],
    "transformer": ["train.lr=0.001", "train.batch_size=16", "train.patience=4"],
}


@pytest.mark.parametrize("arch", ["rnn", "birnn", "gru", "bigru", "lstm", "seq2seq", "transformer"])
def test_train_save_load_evaluate_and_tag(arch, sample_data, tmp_path, request):
    overrides = ["train.max_epochs=4", "train.lr=0.01"] + SMALL.get(arch, ["model.hidden_size=32", "model.char_size=8"])
    if arch == "transformer":  # a window longer than the tiny encoder's 64 positions: read as 64, and said
        overrides += [f"model.encoder={request.getfixturevalue('checkpoint')}", "model.window=100", "model.stride=32"]
    config = resolve(arch, overrides=overrides)
    out = tmp_path / arch
    said: list[str] = []
    metrics = train(config, sample_data, out, device="cpu", log=None, warn=said.append)
    assert metrics["epochs_run"] == 4 and json.loads((out / "config.json").read_text())["arch"] == arch
    assert [s for s in said if "model.window" in s] == (
        ["warning: model.window = 100 is more than the encoder has positions for: it reads windows of 64 sub-tokens, 32 shared"]
        if arch == "transformer" else [])

    tagger = Tagger.load(out, device="cpu")
    sentences = read_split(sample_data, "test")
    examples = encode_sentences(sentences, tagger.vocabs, tagger.tags)
    reloaded = evaluate_examples(tagger.model, examples, [s.negative for s in sentences], tagger.tags,
                                 config.train.eval_batch_size,
                                 torch.device("cpu"))
    # The saved model scores exactly what the trained one scored: nothing is lost in the format.
    assert {**reloaded, "f1": reloaded["micro"]["f1"]} == metrics["test"]
    lines = (SAMPLE / "example.txt").read_text(encoding="utf-8").splitlines()
    results = list(Tagger.load(out, threshold=0.0).analyze_pipe(lines))
    assert len(results) == len(lines)
    assert all(bool(a.sentences) == bool(line.strip()) and all(0 <= s.start < s.end <= len(line) for s in a.sentences)
               for line, a in zip(lines, results))
    found = [(line, e) for line, a in zip(lines, results) for e in a.entities]
    assert all(line[e.start:e.end] == e.text for line, e in found)
    # The tiny test transformer reads every word as [UNK] and cannot find anything; the others do.
    assert found or arch == "transformer"


def test_frozen_embeddings_keep_the_vectors_and_learn_the_rest(sample_data, tmp_path):
    import torch

    from adelabel import Tagger
    from adelabel.embeddings import read_vectors
    from conftest import train_small

    folder = train_small(sample_data, tmp_path / "m", "model.freeze_embeddings=true", "train.max_epochs=2",
                         "model.hidden_size=8", "model.char_size=8", "train.word_dropout=0.3")
    tagger = Tagger.load(folder, device="cpu")
    table = tagger.model.words.embedding.weight.detach()
    words, vectors = read_vectors(sample_data / "vectors.bin")
    rows = [tagger.vocabs.words[w] for w in words]
    assert torch.equal(table[rows], torch.from_numpy(vectors))  # the vectors, as read
    # <unk> learnt (word dropout shows it in training): it is no longer the random start it had.
    from adelabel.train import build_vocab
    from adelabel.prepare import read_split

    _, start = build_vocab(words, vectors, read_split(sample_data, "train"), 13)
    assert not torch.equal(table[1], start[1])


def test_a_frozen_run_begun_before_rows_could_learn_is_named_on_resume(sample_data, tmp_path, monkeypatch):
    """A run begun when model.freeze_embeddings fixed the whole word table (its optimizer held no table)
    and killed: carried on by this version, whose optimizer holds it, it is told why, not 'corrupt'."""
    from adelabel import train as training
    from adelabel.config import resolve
    from adelabel.errors import InputError

    config = resolve("bilstm", overrides=["model.freeze_embeddings=true", "model.hidden_size=8", "train.max_epochs=2"])
    monkeypatch.setattr(training, "_freeze_vector_rows", lambda model, rows: 0)  # the earlier behaviour

    def killed(epoch, f1):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.train(config, sample_data, tmp_path / "m", device="cpu", log=None, on_epoch=killed)
    monkeypatch.undo()
    with pytest.raises(InputError, match="its optimizer trained other weights than this version would"):
        training.train(config, sample_data, tmp_path / "m", device="cpu", log=None, resume=True)
