"""Every architecture learns, and the encoder–decoder's decoding modes agree where they must."""
from __future__ import annotations

import random

import pytest
import torch

from adelabel.data import collate, encode
from adelabel.decode import iob2_constraints
from adelabel.errors import AdelabelError
from adelabel.models import BUILDERS, build_model
from adelabel.inference import predict
from adelabel.vocab import Vocab, Vocabs
from test_decode_model import TAGS, fit, tiny_model, tiny_vocabs

RECURRENT = ["rnn", "birnn", "gru", "bigru", "lstm", "bilstm", "seq2seq"]


def parity_task(n: int, rng: random.Random, vocabs: Vocabs) -> list:
    """Strings of a and b; a run of b's is an entity, DRUG when an even number of b's came before it in
    the string and AE when odd (the seed's "count the ones", with letters since digits are normalised). Learning it takes memory of the past (the parity) and of the previous
    token (B- or I-), which is what a recurrent tagger must provide."""
    ids = {t: i for i, t in enumerate(TAGS)}
    examples = []
    for _ in range(n):
        bits = [rng.choice("ab") for _ in range(rng.randint(4, 12))]
        tags, ones = [], 0
        for i, b in enumerate(bits):
            if b == "a":
                tags.append("O")
                continue
            if i > 0 and bits[i - 1] == "b":
                tags.append("I" + tags[-1][1:])
            else:
                tags.append(("B-DRUG", "B-AE")[ones % 2])
            ones += 1
        examples.append(encode(" ".join(bits), vocabs, ids, tags))
    return examples


@pytest.mark.parametrize("arch, options", [(arch, {}) for arch in RECURRENT] + [
    ("bilstm", {"chars": "cnn", "char_size": 8, "crf": True, "gate": True, "relations": False}),  # no pairs to relate here
    ("seq2seq", {"beam": 3, "teacher_forcing": 0.8, "peek": True, "attention": "multiplicative"}),
])
def test_every_recurrent_architecture_learns_the_parity_task(arch, options):
    torch.manual_seed(0)
    rng = random.Random(0)
    vocabs = Vocabs(Vocab.for_words(["a", "b"]), Vocab.for_words(["a", "b"]))
    train, held_out = parity_task(512, rng, vocabs), parity_task(200, rng, vocabs)
    # The plainest model of each family (words only, no gate; softmax, or greedy decoding) unless asked.
    sizes = {"decoder_size": 32, "tag_dim": 8, "beam": 1} if arch == "seq2seq" else {"dense_size": 32, "crf": False}
    settings = {**sizes, "chars": "none", "gate": False, **options}
    model = build_model(arch, tags=TAGS, vocab_size=len(vocabs.words), char_vocab_size=len(vocabs.chars),
                        embedding_dim=8, hidden_size=32, dropout=0.0, **settings)
    fit(model, train, epochs=20, lr=0.01, shuffle=rng.shuffle)
    predicted = predict(model, held_out, 64, torch.device("cpu"))
    correct = sum(p == t for e, pred in zip(held_out, predicted) for p, t in zip(pred.tags, e.tags))
    total = sum(len(e.tags) for e in held_out)
    assert correct / total > 0.98, f"{arch}: {correct / total:.3f} of held-out tags right"


def seq2seq(**options):
    return tiny_model(tiny_vocabs(), "seq2seq", **options)


def test_teacher_forcing_on_the_greedy_path_reproduces_free_running_decoding():
    model = seq2seq()
    vocabs = tiny_vocabs()
    batch = collate([encode("a long long sentence after a long rash after naproxen .", vocabs),
                     encode("rash after naproxen", vocabs)])
    with torch.no_grad():
        enc = model._encode(batch)
        free_scores, free_tags = model.greedy(enc)
        forced = model.teacher_forced(enc, free_tags, ratio=1.0)
        assert torch.allclose(forced[batch.mask], free_scores[batch.mask], atol=1e-6)
        # Fed other previous tags, the decoder's scores change: it does read what it was fed.
        other = (free_tags + 1) % len(TAGS)
        assert not torch.allclose(model.teacher_forced(enc, other, ratio=1.0)[:, 1:], free_scores[:, 1:])
        # With a ratio of 0 it feeds itself its own guesses and never reads the gold tags.
        assert torch.equal(model.teacher_forced(enc, other, ratio=0.0), model.teacher_forced(enc, free_tags, ratio=0.0))


def test_beam_search_of_width_one_is_greedy_and_wider_beams_return_their_own_path():
    vocabs = tiny_vocabs()
    batch = collate([encode("a long long sentence after a long rash after naproxen .", vocabs),
                     encode("rash after naproxen", vocabs), encode("naproxen", vocabs)])
    start, transitions = iob2_constraints(TAGS)
    for seed in range(5):
        torch.manual_seed(seed)
        model = build_model("seq2seq", tags=TAGS, vocab_size=len(vocabs.words), char_vocab_size=len(vocabs.chars),
                            embedding_dim=8, hidden_size=6, decoder_size=7, tag_dim=3, dropout=0.0).eval()
        with torch.no_grad():
            enc = model._encode(batch)
            greedy_scores, greedy_tags = model.greedy(enc)
            beam_scores, beam_tags = model.beam_search(enc, 1)
            assert torch.equal(beam_tags, greedy_tags) and torch.allclose(beam_scores, greedy_scores)
            wide_scores, wide_tags = model.beam_search(enc, 4)
            # The scores returned are those of the returned path: fed that path, the decoder gives them.
            forced = model.teacher_forced(enc, wide_tags, ratio=1.0)
            assert torch.allclose(forced[batch.mask], wide_scores[batch.mask], atol=1e-6)
            assert not wide_tags[~batch.mask].any()
            for row, n in enumerate(batch.lengths.tolist()):
                path = wide_tags[row, :n].tolist()
                assert start[path[0]] == 0 and all(transitions[a, b] == 0 for a, b in zip(path, path[1:]))


def test_scheduled_sampling_lowers_the_teacher_forcing_ratio_over_training():
    model = seq2seq(teacher_forcing=0.9, sampling_decay=10.0)
    ratios = []
    for steps in (0, 10, 40, 100):
        model.steps.fill_(steps)
        ratios.append(model.teacher_forcing_ratio())
    assert 0.8 < ratios[0] <= 0.9 and ratios == sorted(ratios, reverse=True) and ratios[-1] < 0.01
    assert seq2seq(teacher_forcing=0.7).teacher_forcing_ratio() == 0.7


@pytest.mark.parametrize("arch, options, message", [
    ("seq2seq", {"crf": True}, "model.crf: a key of bilstm, lstm, bigru, gru, birnn, rnn or transformer, which "
                               "seq2seq does not take"),
    ("bilstm", {"decoder_size": 8}, "model.decoder_size: a key of seq2seq, which bilstm does not take"),
    ("seq2seq", {"attention": "cosine"}, "model.attention: expected 'additive' or 'multiplicative', got 'cosine'"),
    ("bilstm", {"chars": "bpe"}, "model.chars: expected 'cnn', 'lstm' or 'none', got 'bpe'"),
    ("bilstm", {"no_such_option": 1}, "model.no_such_option: unknown key"),
])
def test_bad_hyperparameters_are_named(arch, options, message):
    with pytest.raises(AdelabelError, match=message):
        tiny_model(tiny_vocabs(), arch, **options)


def test_every_registered_architecture_has_a_default_config():
    from adelabel.config import resolve

    for arch in BUILDERS:
        assert resolve(arch).arch == arch
