"""prepare --encoder-vectors: a pretrained encoder's states averaged per word, appended to word2vec."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adelabel import encoder_vectors
from adelabel.embeddings import read_vectors
from conftest import SAMPLE, run_cli
from test_transformer import checkpoint  # noqa: F401  (the tiny BERT fixture)


def test_a_word_gets_the_mean_of_its_states_over_its_occurrences(checkpoint):  # noqa: F811
    from transformers import AutoModel, AutoTokenizer

    texts = ["rash after naproxen .", "Naproxen rash"]
    averages = encoder_vectors.average_states(texts, encoder_vectors.Encoder(str(checkpoint)))
    assert set(averages) == {"rash", "after", "naproxen", "."}  # keys normalised: lower case

    tokenizer, model = AutoTokenizer.from_pretrained(str(checkpoint)), AutoModel.from_pretrained(str(checkpoint))
    expected = []
    for text, pieces in ((texts[0], [3, 4, 5]), (texts[1], [1, 2, 3])):  # na ##pro ##xen
        with torch.no_grad():
            layers = model(**tokenizer(text, return_tensors="pt"), output_hidden_states=True).hidden_states
        states = torch.stack(layers[1:]).mean(0)[0]
        assert tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])[pieces[0]] == "na"
        expected.append(states[pieces].mean(0).numpy())
    assert np.allclose(averages["naproxen"], np.mean(expected, axis=0), atol=1e-5)


def test_appended_block_is_centred_reduced_and_scaled():
    rng = np.random.default_rng(0)
    words = ["a", "b", "c", "d", "unseen"]
    w2v = rng.normal(size=(5, 6)).astype(np.float32)
    averages = {w: rng.normal(size=8) for w in words[:4]}
    both = encoder_vectors.append_encoder_vectors(words, w2v, averages, dim=3)
    assert both.shape == (5, 9) and np.array_equal(both[:, :6], w2v)
    block = both[:, 6:]
    assert np.allclose(block[4], 0.0)  # a word the encoder never read: the centred mean
    assert np.isclose(np.linalg.norm(block[:4], axis=1).mean(), np.linalg.norm(w2v, axis=1).mean(), rtol=1e-5)
    # Four centred points span three dimensions: PCA to three keeps their distances, up to the scale.
    seen = np.array([averages[w] for w in words[:4]])
    before = np.linalg.norm(seen[0] - seen[1]) / np.linalg.norm(seen[2] - seen[3])
    after = np.linalg.norm(block[0] - block[1]) / np.linalg.norm(block[2] - block[3])
    assert np.isclose(before, after, rtol=1e-4)


def test_prepare_reads_the_training_split_only_and_widens_the_vectors(checkpoint, tmp_path, monkeypatch):  # noqa: F811
    from adelabel.prepare import prepare, read_split

    read: list[str] = []
    real = encoder_vectors.average_states
    monkeypatch.setattr(encoder_vectors, "average_states", lambda texts, enc, quiet=True: read.extend(texts) or
                        real(texts, enc, quiet))
    out = tmp_path / "data"
    manifest = prepare(SAMPLE, out, seed=13, w2v_epochs=1, dim=20, log=lambda _: None,
                       encoder_vectors=str(checkpoint))
    assert read == [s.text for s in read_split(out, "train")]
    words, vectors = read_vectors(out / "vectors.bin")
    assert vectors.shape == (len(words), 20 + 16)  # the tiny BERT's 16 dimensions, fewer than DIM
    assert manifest["vectors"]["dim"] == 36
    assert "averaged over the training split (16 dimensions)" in manifest["vectors"]["source"]
    assert np.abs(vectors[:, 20:]).sum(1).min() > 0  # every training word was read by the encoder

    from conftest import train_small

    model = train_small(out, tmp_path / "model", "train.max_epochs=1", "model.hidden_size=8", "model.dense_size=8",
                        "model.char_size=8")
    assert json.loads((model / "config.json").read_text())["embedding_dim"] == 36


def test_training_words_a_vectors_file_lacks_still_get_the_encoder_s_part(checkpoint, tmp_path):  # noqa: F811
    from adelabel.prepare import prepare

    (tmp_path / "v.txt").write_text("2 3\nthe 0.1 0.2 0.3\nof 0.3 0.2 0.1\n", encoding="utf-8")
    said: list[str] = []
    prepare(SAMPLE, tmp_path / "data", seed=13, log=said.append, vectors=tmp_path / "v.txt",
            encoder_vectors=str(checkpoint))
    words, vectors = read_vectors(tmp_path / "data" / "vectors.bin")
    assert words[:2] == ["the", "of"] and len(words) > 100 and vectors.shape[1] == 3 + 16
    assert not vectors[2:, :3].any() and np.abs(vectors[:, 3:]).sum(1).min() > 0
    assert any("training words without a vector in" in line for line in said)
    # The encoder's part is scaled to the file's own rows, not to rows of zeros.
    file_length = np.linalg.norm(vectors[:2, :3], axis=1).mean()
    assert np.linalg.norm(vectors[:, 3:], axis=1).mean() == pytest.approx(file_length, rel=1e-4)
    # The random rows (<unk>) start at the scale of the file's own rows, not of rows of zeros.
    from adelabel.config import resolve
    from adelabel.train import load_data

    setup = load_data(resolve("bilstm"), tmp_path / "data")
    start = torch.randn(len(setup.vocabs.words), vectors.shape[1], generator=torch.Generator().manual_seed(13))
    assert torch.allclose(setup.matrix[1], start[1] * float(vectors[:2].std()))
    # Frozen, they still learn: only the file's rows stay fixed.
    from conftest import train_small
    from adelabel import Tagger

    model = train_small(tmp_path / "data", tmp_path / "m", "model.freeze_embeddings=true", "train.max_epochs=1",
                        "model.hidden_size=8", "model.char_size=8")
    table = Tagger.load(model, device="cpu").model.words.embedding.weight.detach()
    vocab = Tagger.load(model, device="cpu").vocabs.words
    assert np.allclose(table[[vocab["the"], vocab["of"]]].numpy(), vectors[:2])
    moved = [w for w in words[2:] if not np.allclose(table[vocab[w]].numpy(), vectors[words.index(w)])]
    assert moved  # the encoder-only rows are not frozen


def test_a_bad_encoder_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "prepare", "--corpus", SAMPLE, "--out", tmp_path / "d",
                           "--encoder-vectors", tmp_path / "nowhere")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"--encoder-vectors {tmp_path / 'nowhere'}: expected minilm or an encoder checkpoint folder" in err, err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "prepare", "--corpus", SAMPLE, "--out", tmp_path / "d",
                           "--encoder-vectors", tmp_path / "empty")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / 'empty'}: cannot load a Hugging Face encoder from it" in err, err
    assert not (tmp_path / "d").exists()


def test_minilm_names_the_packaged_encoder():
    averages = encoder_vectors.average_states(["Rash after naproxen."], encoder_vectors.Encoder(encoder_vectors.MINILM))
    assert sorted(averages) == [".", "after", "naproxen", "rash"]
    assert averages["rash"].shape == (384,)


@pytest.mark.training
def test_cv_gives_each_fold_the_averages_of_its_own_training_split(checkpoint, tmp_path, capsys, monkeypatch):  # noqa: F811
    from adelabel.prepare import read_split
    from test_cv_tune import TINY

    read: list[list[str]] = []
    real = encoder_vectors.average_states
    monkeypatch.setattr(encoder_vectors, "average_states", lambda texts, enc, quiet=True: read.append(list(texts))
                        or real(texts, enc, quiet))
    out = tmp_path / "cv"
    code, _, err = run_cli(capsys, "cv", "--corpus", SAMPLE, "--folds", "2", "--epochs", "1", "--out", out, "--dim", "8",
                           "--w2v-epochs", "1", "--encoder-vectors", checkpoint, "--quiet", *TINY)
    assert code == 0, err
    for k in (1, 2):
        data = out / f"fold-0{k}" / "data"
        assert read[k - 1] == [s.text for s in read_split(data, "train")]
        assert read_vectors(data / "vectors.bin")[1].shape[1] == 8 + 16
    assert json.loads((out / "settings.json").read_text())["encoder_vectors"] == str(checkpoint)
