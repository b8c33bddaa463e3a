"""Decoding, masking and the model format, on tiny untrained models (fast, no corpus needed)."""
from __future__ import annotations

import itertools
import json

import pytest
import torch

from adelabel import model_dir
from adelabel.data import collate, encode
from adelabel.decode import iob2_constraints, viterbi
from adelabel.errors import AdelabelError, InputError
from adelabel.models import build_model
from adelabel.tags import tag_set
from adelabel.vocab import Vocab, Vocabs

TAGS = tag_set(["DRUG", "AE"])


def brute_force(scores, start, trans):
    best, best_path = None, None
    for path in itertools.product(range(scores.shape[1]), repeat=scores.shape[0]):
        total = start[path[0]] + sum(scores[t, k] for t, k in enumerate(path))
        total += sum(trans[a, b] for a, b in zip(path, path[1:]))
        if best is None or total > best:
            best, best_path = total, list(path)
    return best_path


def test_viterbi_matches_brute_force_with_padding():
    gen = torch.Generator().manual_seed(0)
    start, trans = iob2_constraints(TAGS)
    for trial in range(20):
        lengths = [1, 3, 4, 2]
        scores = torch.randn(len(lengths), 4, len(TAGS), generator=gen)
        # learned-looking transitions on top of the hard constraints, as a CRF would have
        t = trans + torch.randn(len(TAGS), len(TAGS), generator=gen) * (trial % 2)
        mask = torch.arange(4)[None, :] < torch.tensor(lengths)[:, None]
        paths = viterbi(scores, mask, start, t)
        for b, n in enumerate(lengths):
            assert paths[b, :n].tolist() == brute_force(scores[b, :n], start, t)
            assert paths[b, n:].tolist() == [0] * (4 - n)


def test_constrained_decoding_never_emits_invalid_iob2():
    start, trans = iob2_constraints(TAGS)
    scores = torch.full((1, 3, len(TAGS)), -5.0)
    scores[0, :, TAGS.index("I-AE")] = 5.0  # the argmax would be I-AE I-AE I-AE
    path = [TAGS[i] for i in viterbi(scores, torch.ones(1, 3, dtype=torch.bool), start, trans)[0]]
    assert path[0] != "I-AE" and all(not (a == "O" and b.startswith("I-")) for a, b in zip(path, path[1:]))


def tiny_vocabs():
    words = Vocab.for_words(["rash", "after", "naproxen", "a", "long", "sentence", "."])
    chars = Vocab.for_words(sorted(set("rashfternpoxlgci.")))
    return Vocabs(words, chars)


# Tiny sizes, and the plainest model of each family unless a test asks for more.
SIZES = {"seq2seq": {"hidden_size": 6, "decoder_size": 7, "tag_dim": 3, "beam": 1, "chars": "none", "gate": False,
                     "relations": False}}
PLAIN = {"hidden_size": 6, "dense_size": 5, "chars": "none", "crf": False, "gate": False, "relations": False}


def fit(model, examples, epochs: int, lr: float, shuffle=None) -> None:
    """Plain mini-batch training, for tests that check a model can learn a task."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        if shuffle is not None:
            shuffle(examples)
        for i in range(0, len(examples), 32):
            batch = collate(examples[i:i + 32])
            loss = model.loss(model(batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def tiny_model(vocabs, arch="bilstm", **hyper):
    torch.manual_seed(0)
    settings = {**SIZES.get(arch, PLAIN), "dropout": 0.0, **hyper}
    return build_model(arch, tags=TAGS, vocab_size=len(vocabs.words), char_vocab_size=len(vocabs.chars),
                       embedding_dim=8, **settings).eval()


@pytest.mark.parametrize("arch, options", [
    ("bilstm", {}), ("bilstm", {"chars": "cnn", "char_size": 4}), ("bilstm", {"chars": "lstm", "char_size": 4}),
("bilstm", {"crf": True}), ("bilstm", {"gate": True, "crf": True}),
    ("rnn", {"layers": 2}), ("birnn", {}), ("gru", {"crf": True}), ("bigru", {"layers": 2, "gate": True}),
    ("lstm", {"chars": "cnn", "char_size": 4}),
    ("seq2seq", {}), ("seq2seq", {"attention": "multiplicative", "peek": True, "gate": True}),
    ("seq2seq", {"beam": 3, "chars": "lstm", "char_size": 4, "layers": 2}),
])
def test_padding_never_changes_a_prediction(arch, options):
    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, arch, **options)
    short = encode("rash after naproxen", vocabs)
    long = encode("a long long sentence after a long rash after naproxen .", vocabs)
    alone = model(collate([short]))
    batch = collate([long, short])
    padded = model(batch)
    assert torch.allclose(alone.scores[0], padded.scores[1, :3], atol=1e-6)
    if options.get("gate"):
        assert torch.allclose(alone.sentence[0], padded.sentence[1], atol=1e-6)
    assert batch.mask.sum().item() == len(long.words) + 3
    tags_alone, conf_alone, sent_alone = model.decode(model(collate([short])), collate([short]), threshold=0.0)
    tags_padded, conf_padded, sent_padded = model.decode(model(batch), batch, threshold=0.0)
    assert torch.equal(tags_alone[0], tags_padded[1, :3])
    assert torch.allclose(conf_alone[0], conf_padded[1, :3], atol=1e-5)
    assert torch.allclose(sent_alone[0], sent_padded[1], atol=1e-6)


def test_collate_stores_each_spelling_once():
    vocabs = tiny_vocabs()
    a, b = encode("rash after naproxen", vocabs), encode("naproxen rash", vocabs)
    batch = collate([a, b])
    assert len(batch.chars) == 1 + 3  # the padding row and three distinct spellings
    assert batch.spellings[1, 2] == 0  # padding position
    for row, example in enumerate((a, b)):
        spelled = batch.chars[batch.spellings[row, :len(example.words)]].tolist()
        assert [tuple(c for c in ids if c) for ids in spelled] == example.chars
        assert example.chars[0] == tuple(vocabs.chars[c] for c in example.pieces[0])


def test_loss_ignores_padding():
    vocabs = tiny_vocabs()
    model = tiny_model(vocabs)
    ids = {t: i for i, t in enumerate(TAGS)}
    short = encode("rash after naproxen", vocabs, ids, ["B-AE", "O", "B-DRUG"])
    longer = encode("a long long sentence", vocabs, ids, ["O", "O", "O", "O"])
    l1 = model.loss(model(collate([short])), collate([short]))
    l2 = model.loss(model(collate([longer])), collate([longer]))
    batch = collate([short, longer])
    # The pair's loss is the token-weighted mean of the two sentences' own: padding adds nothing.
    assert torch.allclose(model.loss(model(batch), batch), (l1 * 3 + l2 * 4) / 7, atol=1e-6)


def test_gated_loss_tags_only_sentences_with_entities_and_gates_all():
    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, gate=True, crf=True)
    ids = {t: i for i, t in enumerate(TAGS)}
    positive = encode("rash after naproxen", vocabs, ids, ["B-AE", "O", "B-DRUG"])
    negative = encode("a long long sentence", vocabs, ids, ["O", "O", "O", "O"])
    batch = collate([positive, negative])
    out = model(batch)
    alone = collate([positive])
    token_loss = model.crf.nll(model(alone).scores, alone.tags, alone.mask)
    gate_loss = torch.nn.functional.binary_cross_entropy_with_logits(out.sentence, torch.tensor([1.0, 0.0]))
    assert torch.allclose(model.loss(out, batch), token_loss + gate_loss, atol=1e-5)
    # A batch of sentences without entities trains the gate alone.
    only_negative = collate([negative])
    out = model(only_negative)
    assert torch.allclose(model.loss(out, only_negative),
                          torch.nn.functional.binary_cross_entropy_with_logits(out.sentence, torch.zeros(1)))


def test_gate_loss_never_reaches_the_tagger():
    """The gate learns from every sentence, the tagger from annotated ones only: the gate's gradient
    must stop at the features it reads."""
    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, gate=True, chars="cnn", char_size=4)
    ids = {t: i for i, t in enumerate(TAGS)}
    batch = collate([encode("a long long sentence", vocabs, ids, ["O", "O", "O", "O"])])
    out = model(batch)
    torch.nn.functional.binary_cross_entropy_with_logits(out.sentence, torch.zeros(1)).backward()
    tagger = [p for name, p in model.named_parameters() if not name.startswith("gate.")]
    assert tagger and all(p.grad is None or not p.grad.any() for p in tagger)
    assert all(p.grad is not None and p.grad.any() for p in model.gate.parameters())


@torch.no_grad()
def test_gate_threshold_closes_sentences_and_is_saved(tmp_path):
    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, gate=True)
    with torch.no_grad():
        model.dense[-1].bias.copy_(torch.tensor([-9.0, 9.0, -9.0, -9.0, -9.0]))  # B-DRUG everywhere
    batch = collate([encode("rash after naproxen", vocabs), encode("naproxen", vocabs)])
    out = model(batch)
    opened = model.decode(out, batch, threshold=0.0)
    assert (opened.tags[batch.mask] == TAGS.index("B-DRUG")).all()
    assert not model.decode(out, batch, threshold=1.01).tags.any()
    low, high = sorted(opened.sentence.tolist())
    assert low < high
    split = model.decode(out, batch, threshold=(low + high) / 2)
    # Exactly the sentence below the threshold is closed.
    assert [bool(split.tags[row, 0]) for row in range(2)] == [p == high for p in opened.sentence.tolist()]
    model.gate_threshold.fill_(0.375)
    config = {"tags": TAGS, "embedding_dim": 8}
    model_dir.save(tmp_path, model, config, vocabs)
    loaded, _, _ = model_dir.load(tmp_path)
    assert float(loaded.gate_threshold) == 0.375


def test_the_gate_threshold_is_half_the_best_sentence_f1_on_dev(monkeypatch):
    """tune_gate calibrates the gate, then sets the threshold that maximises F1 for a calibrated
    probability: half the best sentence-decision F1 on dev. Here two groups of dev sentences: 250 the
    gate rates 0.8 (200 report an ADE) and 300 it rates 0.2 (50 do). Calibrated, they read about 0.8
    and 1/6 (Platt's targets pull them a little towards 1/2); passing the first group gives F1 0.8
    (passing both 0.625), so the threshold is 0.4."""
    from adelabel import evaluate
    from adelabel.data import encode
    from adelabel.inference import Prediction

    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, gate=True)
    rated = [0.8] * 250 + [0.2] * 300
    reports_ade = [True] * 200 + [False] * 50 + [True] * 50 + [False] * 250
    examples = [encode("rash after naproxen", vocabs) for _ in rated]
    pair = [(0, 1, "DRUG"), (2, 3, "AE")]
    monkeypatch.setattr(evaluate, "predict", lambda *a, **k: [
        Prediction([1, 0, 3], [0.9] * 3, p, pair, [(0, 1, 0.9)], [0.9, 0.9]) for p in rated])
    evaluate.tune_gate(model, examples, [not r for r in reports_ade], 8, torch.device("cpu"))
    assert float(model.gate_threshold) == pytest.approx(0.4)
    calibrated = torch.sigmoid(torch.logit(torch.tensor([0.8, 0.2], dtype=torch.float64)) * float(model.gate_scale)
                               + float(model.gate_shift))
    assert calibrated.tolist() == pytest.approx([0.8, 1 / 6], abs=3e-3)
    # A model that finds no pair in any sentence: every threshold's F1 is 0, and half of it, 0, would
    # open the gate to every sentence. The threshold stays a real one.
    monkeypatch.setattr(evaluate, "decision_f1s", lambda *a: dict.fromkeys(evaluate.GATE_THRESHOLDS, 0.0))
    evaluate.tune_gate(model, examples, [not r for r in reports_ade], 8, torch.device("cpu"))
    assert float(model.gate_threshold) == 0.5


def test_scoring_dev_reuses_the_predictions_tuning_made():
    """Training tunes the gate on dev, then scores dev: tune_gate hands over its predictions (gate open,
    newly calibrated), and scoring them gives what predicting dev again gives."""
    from adelabel import evaluate

    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, gate=True, crf=True, relations=True)
    ids = {t: i for i, t in enumerate(TAGS)}
    gold = {"naproxen": "B-DRUG", "rash": "B-AE"}
    texts = ["rash after naproxen", "a long sentence .", "naproxen rash", "after a sentence .", "rash after a naproxen",
             "a sentence ."]
    examples = [encode(t, vocabs, ids, [gold.get(w, "O") for w in t.split()]) for t in texts]
    for e in examples:
        e.pairs = [(d, d + 1, a, a + 1) for d, w in enumerate(e.pieces) if w == "naproxen"
                   for a, v in enumerate(e.pieces) if v == "rash"]
        e.pair_gold = [1] * len(e.pairs)
    fit(model, examples, 3, 0.05)  # a little: a gate that separates dev perfectly has nothing to calibrate
    negative = [not any(w in gold for w in t.split()) for t in texts]
    cpu = torch.device("cpu")
    tuned = evaluate.tune_gate(model, examples, negative, 4, cpu)
    assert len(tuned) == len(examples) and float(model.gate_scale) != 1.0
    again = evaluate.predict(model, examples, 4, cpu, threshold=0.0)
    # To float32 rounding: tuning reads the logit back from a float32 probability near 1.
    assert [p.sentence for p in tuned] == pytest.approx([p.sentence for p in again], abs=1e-5)
    assert [p.spans for p in tuned] == [p.spans for p in again]
    reused = evaluate.evaluate_examples(model, examples, negative, TAGS, 4, cpu, predicted=tuned)
    fresh = evaluate.evaluate_examples(model, examples, negative, TAGS, 4, cpu)

    def flat(value, key=""):  # the calibrated probabilities agree to float rounding
        if isinstance(value, dict):
            return {k: v for name, inner in value.items() for k, v in flat(inner, f"{key}.{name}").items()}
        return {key: value}

    assert flat(reused) == pytest.approx(flat(fresh), abs=1e-5)


def reseal(folder):
    """Recompute a model folder's manifest, so a test reaches the checks behind the checksums."""
    manifest = json.loads((folder / model_dir.MANIFEST).read_text())
    manifest["files"] = {name: model_dir.sha256(folder / name) for name in manifest["files"]}
    (folder / model_dir.MANIFEST).write_text(json.dumps(manifest))


def test_model_directory_round_trip(tmp_path):
    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, chars="cnn", char_size=4)
    config = {"tags": TAGS, "embedding_dim": 8}
    model_dir.save(tmp_path, model, config, vocabs, metrics={"best_epoch": 1})
    loaded, cfg, vocabs2 = model_dir.load(tmp_path)
    batch = collate([encode("rash after naproxen", vocabs)])
    assert torch.equal(model(batch).scores, loaded(batch).scores)
    assert vocabs2.words.items == vocabs.words.items and cfg["tags"] == TAGS
    # The saved config is the whole resolved one, defaults included.
    assert cfg["model"]["chars"] == "cnn" and cfg["model"]["layers"] == 1 and cfg["train"]["patience"] == 5
    manifest = json.loads((tmp_path / model_dir.MANIFEST).read_text())
    assert set(manifest["files"]) == {"config.json", "vocab.json", "model.safetensors", "metrics.json"}
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.tmp-*"))


def _saved(tmp_path):
    vocabs = tiny_vocabs()
    folder = tmp_path / "model"
    model_dir.save(folder, tiny_model(vocabs, gate=True), {"tags": TAGS, "embedding_dim": 8,
                                                           "data": {"labels": ["DRUG", "AE"]}}, vocabs)
    return folder


def _flip_a_byte(folder):
    weights = folder / model_dir.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))


def _edit_json(name, change):
    def edit(folder):
        path = folder / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return edit


def _nan_weights(folder):
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / model_dir.WEIGHTS))
    state["dense.0.weight"][0, 0] = float("nan")
    save_file(state, str(folder / model_dir.WEIGHTS))


def _threshold(folder):
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / model_dir.WEIGHTS))
    state["gate_threshold"].fill_(5.0)
    save_file(state, str(folder / model_dir.WEIGHTS))


def _int_weights(folder):
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / model_dir.WEIGHTS))
    state["dense.0.weight"] = state["dense.0.weight"].to(torch.int8)
    save_file(state, str(folder / model_dir.WEIGHTS))


def _truncate(folder):
    weights = folder / model_dir.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:100])


@pytest.mark.parametrize("damage, reseal_it, message", [
    (_flip_a_byte, False, r"model\.safetensors: checksum mismatch"),
    (_edit_json("vocab.json", lambda v: {**v, "words": v["words"][::-1]}), False, r"vocab\.json: checksum mismatch"),
    (_edit_json("config.json", lambda c: {**c, "tags": c["tags"][::-1]}), False, r"config\.json: checksum mismatch"),
    (lambda f: (f / model_dir.VOCAB).unlink(), False, r"vocab\.json: missing from the model folder"),
    (lambda f: (f / model_dir.MANIFEST).unlink(), False, r"manifest\.json: missing from the model folder"),
    (_edit_json("vocab.json", lambda v: {**v, "words": v["words"][::-1]}), True, r"vocab\.json: words: must be strings starting with '<pad>', '<unk>'"),
    (_edit_json("vocab.json", lambda v: {**v, "words": v["words"][:-1]}), True, r"model\.safetensors: weights do not match config\.json/vocab\.json"),
    (_edit_json("vocab.json", lambda v: {**v, "chars": v["chars"][:-1] + ["ab"]}), True, r"vocab\.json: chars: 'ab' is not one character"),
    (_edit_json("config.json", lambda c: {**c, "tags": ["O", "I-DRUG", "B-DRUG", "B-AE", "I-AE"]}), True, r"config\.json: tags: .* are not IOB2 tags"),
    (_edit_json("config.json", lambda c: {**c, "tags": ["O", "B-AE", "I-AE", "B-DRUG", "I-DRUG"]}), True, r"config\.json: tags: .* do not match the data's labels"),
    (_edit_json("config.json", lambda c: {**c, "tags": ["O", "B-DRUG", "I-DRUG"], "data": {"labels": ["DRUG"]}}), True, r"model\.safetensors: weights do not match"),
    (_edit_json("config.json", lambda c: {**c, "model": {**c["model"], "hidden_sise": 3}}), True, r"config\.json: model\.hidden_sise: unknown key \(did you mean model\.hidden_size\?\)"),
    (_edit_json("config.json", lambda c: {**c, "model": {**c["model"], "crf": "yes please"}}), True, r"config\.json: model\.crf: expected true or false"),
    (_edit_json("config.json", lambda c: {**c, "format_version": 1}), True, r"config\.json: model format 1 .* rebuild it with `adelabel train --arch bilstm"),
    # Saved values keep their JSON types: a string, a real or a true where a whole number belongs is damage.
    (_edit_json("config.json", lambda c: {**c, "model": {**c["model"], "hidden_size": "8"}}), True, r"config\.json: model\.hidden_size: expected a whole number, got '8'"),
    (_edit_json("config.json", lambda c: {**c, "model": {**c["model"], "hidden_size": True}}), True, r"config\.json: model\.hidden_size: expected a whole number, got True"),
    (_edit_json("config.json", lambda c: {**c, "model": {**c["model"], "gate": 1}}), True, r"config\.json: model\.gate: expected true or false, got 1"),
    (_edit_json("config.json", lambda c: {**c, "model": {**c["model"], "hidden_size": 10 ** 12}}), True, r"config\.json: model\.hidden_size: must be <= 8192"),
    (_edit_json("config.json", lambda c: {**c, "model": "bilstm"}), True, r"config\.json: model: expected a table of settings"),
    (_edit_json("config.json", lambda c: {**c, "arch": ["bilstm"]}), True, r"config\.json: arch: unknown architecture \['bilstm'\]"),
    # An older format named in config.json does not skip the manifest's checksums.
    (_edit_json("config.json", lambda c: {**c, "format_version": 3}), False, r"config\.json: checksum mismatch"),
    (lambda f: (f / model_dir.CONFIG).write_text("{not json"), True, r"config\.json: corrupt JSON"),
    (_nan_weights, True, r"model\.safetensors: dense\.0\.weight: holds NaN"),
    (_threshold, True, r"model\.safetensors: gate_threshold 5\.0 is not in \[0, 1\]"),
    (_truncate, True, r"model\.safetensors: corrupt weights file"),
    (_int_weights, True, r"model\.safetensors: dense\.0\.weight: stored as torch\.int8, not as real numbers"),
    # The tokeniser of a transformer reads every file of assets/: none may be there unsaved.
    (lambda f: (f / model_dir.ASSETS).mkdir(), False, r"assets: not listed in manifest\.json"),
    (lambda f: ((f / model_dir.ASSETS).mkdir(), (f / model_dir.ASSETS / "added_tokens.json").write_text("{}")), True,
     r"assets/added_tokens\.json: not listed in manifest\.json"),
    (_edit_json("config.json", lambda c: {**c, "data": {**c.get("data", {}), "labels": 5}}), True,
     r"config\.json: data\.labels: expected a list of entity types"),
    (_edit_json("config.json", lambda c: {**c, "embedding_dim": 10 ** 8}), True,
     r"model\.safetensors: weights do not match config\.json/vocab\.json"),
])
def test_a_damaged_model_folder_is_refused_naming_the_file(tmp_path, damage, reseal_it, message):
    folder = _saved(tmp_path)
    model_dir.load(folder)
    damage(folder)
    if reseal_it and (folder / model_dir.MANIFEST).exists():
        reseal(folder)
    with pytest.raises(InputError, match=message):
        model_dir.load(folder)


def test_missing_folder_and_format_3_migration(tmp_path):
    with pytest.raises(InputError, match="model folder not found"):
        model_dir.load(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a model folder"):
        model_dir.load(tmp_path / "file")
    # A format-3 folder (no manifest; seq2seq without its step counter) is read as format 4.
    from safetensors.torch import load_file, save_file

    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, "seq2seq")
    folder = tmp_path / "old"
    model_dir.save(folder, model, {"tags": TAGS, "embedding_dim": 8}, vocabs)
    (folder / model_dir.MANIFEST).unlink()
    _edit_json("config.json", lambda c: {**c, "format_version": 3})(folder)
    state = load_file(str(folder / model_dir.WEIGHTS))
    del state["steps"]
    save_file(state, str(folder / model_dir.WEIGHTS))
    loaded, cfg, _ = model_dir.load(folder)
    batch = collate([encode("rash after naproxen", vocabs)])
    assert torch.equal(model(batch).scores, loaded(batch).scores) and int(loaded.steps) == 0


def test_format_4_is_read_with_raw_entity_and_relation_scores(tmp_path):
    from safetensors.torch import load_file, save_file

    from adelabel.atomic import sha256

    vocabs = tiny_vocabs()
    model = tiny_model(vocabs)
    folder = tmp_path / "v4"
    model_dir.save(folder, model, {"tags": TAGS, "embedding_dim": 8}, vocabs)
    state = load_file(str(folder / model_dir.WEIGHTS))
    del state["entity_calibration"], state["relation_calibration"]
    save_file(state, str(folder / model_dir.WEIGHTS))
    _edit_json("config.json", lambda c: {**c, "format_version": 4})(folder)
    _edit_json(model_dir.MANIFEST, lambda m: {"format_version": 4, "files": {
        **m["files"], "config.json": sha256(folder / "config.json"),
        model_dir.WEIGHTS: sha256(folder / model_dir.WEIGHTS)}})(folder)
    loaded, _, _ = model_dir.load(folder)
    assert loaded.entity_calibration.tolist() == [1.0, 0.0] == loaded.relation_calibration.tolist()


def test_platt_scaling_makes_overconfident_scores_honest():
    from adelabel.evaluate import fit_platt, probability_scores
    from adelabel.inference import platt

    gen = torch.Generator().manual_seed(0)
    truth = torch.rand(4000, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    outcome = (torch.rand(4000, generator=gen, dtype=torch.float64) < truth).tolist()
    overconfident = torch.sigmoid(4 * torch.logit(truth))  # right ranking, far too sure
    scale, shift = fit_platt(overconfident, outcome)
    fixed = platt(overconfident, torch.tensor([scale, shift])).tolist()
    before = probability_scores(outcome, overconfident.tolist())
    after = probability_scores(outcome, fixed)
    assert before["ece"] > 0.1 and after["ece"] < 0.03 and 0.2 < scale < 0.35
    assert after["roc_auc"] == pytest.approx(before["roc_auc"])  # a monotone map keeps the ranking
    assert fit_platt([0.9, 0.8], [True, True]) == (1.0, 0.0)  # one class: nothing to fit
    # A dev split the model separates perfectly (a toy corpus) keeps probabilities, not 0 and 1.
    sure = torch.tensor([1 - 1e-6] * 10 + [1e-6] * 10, dtype=torch.float64)
    scale, shift = fit_platt(sure, [True] * 10 + [False] * 10)
    fixed = platt(sure, torch.tensor([scale, shift]))
    assert 0.85 < float(fixed[0]) < 0.95 and 0.05 < float(fixed[-1]) < 0.15, (scale, shift)


def test_a_save_replaces_the_old_folder_whole(tmp_path):
    vocabs = tiny_vocabs()
    folder = tmp_path / "model"
    model_dir.save(folder, tiny_model(vocabs), {"tags": TAGS, "embedding_dim": 8}, vocabs, metrics={"run": 1})
    (folder / "stray.txt").write_text("left by hand")
    # A file adelabel did not write would go with the folder: refused, naming it, the folder untouched.
    with pytest.raises(AdelabelError, match="holds stray.txt, which adelabel did not write there"):
        model_dir.save(folder, tiny_model(vocabs), {"tags": TAGS, "embedding_dim": 8}, vocabs)
    assert (folder / "stray.txt").is_file() and (folder / "metrics.json").is_file()
    (folder / "stray.txt").unlink()
    # What a killed `adelabel export` left (its temporary onnx folder) is adelabel's own: no obstacle.
    (folder / ".onnx.tmp-k1ll3d").mkdir()
    (folder / ".notes.tmp-x").mkdir()  # but a name that only looks like one, of no entry of the folder, is not
    with pytest.raises(AdelabelError, match="holds .notes.tmp-x, which adelabel did not write there"):
        model_dir.save(folder, tiny_model(vocabs), {"tags": TAGS, "embedding_dim": 8}, vocabs)
    (folder / ".notes.tmp-x").rmdir()
    model_dir.save(folder, tiny_model(vocabs), {"tags": TAGS, "embedding_dim": 8}, vocabs)
    # Nothing of the first save survives, not its metrics.
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "manifest.json", "model.safetensors", "vocab.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@torch.no_grad()
def test_crf_partition_decode_and_marginals_match_brute_force():
    from adelabel.models.crf import CRF

    torch.manual_seed(1)
    crf = CRF(TAGS)
    with torch.no_grad():
        crf.transitions.normal_()
        crf.start.normal_()
        crf.end.normal_()
    lengths = [3, 1, 2]
    scores = torch.randn(3, 3, len(TAGS))
    mask = torch.arange(3)[None, :] < torch.tensor(lengths)[:, None]
    start, trans = crf._params()
    paths = crf.decode(scores, mask)
    marg = crf.marginals(scores, mask)
    log_z = crf.log_partition(scores, mask)
    for b, n in enumerate(lengths):
        totals = {}
        for path in itertools.product(range(len(TAGS)), repeat=n):
            total = start[path[0]] + crf.end[path[-1]] + sum(scores[b, t, k] for t, k in enumerate(path))
            totals[path] = total + sum(trans[x, y] for x, y in zip(path, path[1:]))
        stacked = torch.stack(list(totals.values()))
        assert torch.allclose(log_z[b], torch.logsumexp(stacked, 0), atol=1e-4)
        assert tuple(paths[b, :n].tolist()) == max(totals, key=lambda p: totals[p].item())
        probs = (stacked - log_z[b]).exp()
        for t in range(n):
            for k in range(len(TAGS)):
                want = sum(p for path, p in zip(totals, probs) if path[t] == k)
                assert abs(marg[b, t, k].item() - float(want)) < 1e-4
        gold = torch.tensor([list(paths[b, :n]) + [0] * (3 - n)])
        gold_score = crf.gold_score(scores[b:b + 1], gold, mask[b:b + 1])
        assert torch.allclose(gold_score[0], totals[tuple(paths[b, :n].tolist())], atol=1e-4)


def test_epoch_sample_keeps_positives_and_a_share_of_negatives():
    from adelabel.train import epoch_sample

    examples = list(range(1000))
    negative = [i % 5 != 0 for i in examples]  # 200 positives, 800 negatives
    sample = epoch_sample(examples, negative, 0.25, torch.Generator().manual_seed(0))
    assert set(range(0, 1000, 5)) <= set(sample)
    assert 150 < sum(negative[i] for i in sample) < 250
    assert epoch_sample(examples, negative, 1.0, torch.Generator()) == examples


def test_entity_scores_are_numbers_where_no_entity_exists():
    # A cross-validation fold, or a small corpus's split, may hold no entity of a type, or none at all:
    # every score is a finite number (0, as seqeval's zero_division scores a type), never NaN.
    import math

    from adelabel.evaluate import score

    for gold, predicted in (([["O", "O"]], [["B-DRUG", "O"]]), ([["O", "O"]], [["O", "O"]]), ([], [])):
        result = score(gold, predicted)
        assert result["micro"]["f1"] == 0.0 and result["macro"]["f1"] == 0.0
        assert all(math.isfinite(v) for row in result.values() for v in row.values())


def test_sentence_scores_by_hand():
    from adelabel.evaluate import relation_scores, sentence_scores

    r = sentence_scores([True, True, False, False], [0.9, 0.4, 0.6, 0.1], threshold=0.5)
    assert (r["precision"], r["recall"], r["f1"]) == (0.5, 0.5, 0.5)
    assert r["roc_auc"] == 0.75  # 3 of the 4 positive-negative pairs are ordered right
    assert abs(r["brier"] - (0.01 + 0.36 + 0.36 + 0.01) / 4) < 1e-9
    # Bins: 0.1 (label 0), 0.4 (1), 0.6 (0), 0.9 (1): each alone, |p - y| = 0.1, 0.6, 0.6, 0.1.
    assert abs(r["ece"] - (0.1 + 0.6 + 0.6 + 0.1) / 4) < 1e-9
    a, b, c, d = ((0, 1, i, i + 1, "AE") for i in range(2, 6))
    pooled = {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3, "predicted": 3}
    assert relation_scores([{a, b}, {c}], [{a}, {c, d}]) == {**pooled, "types": {"DRUG-AE": pooled}}


def test_relation_scores_are_also_given_per_pair_type():
    """With doses, one pooled relation F1 hides how each pair type fares: a dose is few and easy."""
    from adelabel.evaluate import relation_scores

    ae, ae2, dose = (0, 1, 3, 4, "AE"), (0, 1, 5, 6, "AE"), (0, 1, 7, 8, "DOSE")
    r = relation_scores([{ae, ae2, dose}], [{ae, dose, (0, 1, 9, 10, "DOSE")}])
    assert (r["support"], r["predicted"], r["f1"]) == (3, 3, 2 / 3)
    assert r["types"]["DRUG-AE"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2, "predicted": 1}
    assert r["types"]["DRUG-DOSE"] == {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1, "predicted": 2}
    # One type is scored per type too: a fold whose split names no dose still averages its DRUG-AE row.
    assert list(relation_scores([{ae}], [{ae2}])["types"]) == ["DRUG-AE"]


def test_the_relation_head_learns_which_drug_goes_with_which_effect():
    """Sentences "a b c d": which of two drugs pairs with the effect depends on a cue word only the
    context gives; pairing every drug with the effect is right half the time."""
    import random

    from adelabel.inference import predict

    torch.manual_seed(0)
    rng = random.Random(0)
    vocabs = Vocabs(Vocab.for_words(["drug", "fx", "left", "right", "x"]), Vocab.for_words([]))
    ids = {t: i for i, t in enumerate(TAGS)}

    def example():
        cue = rng.choice(["left", "right"])
        words = ["drug", "x", "fx", "x", "drug", cue]
        tags = ["B-DRUG", "O", "B-AE", "O", "B-DRUG", "O"]
        ex = encode(" ".join(words), vocabs, ids, tags)
        ex.pairs, ex.pair_gold = [(0, 1, 2, 3), (4, 5, 2, 3)], [int(cue == "left"), int(cue == "right")]
        return ex

    model = tiny_model(vocabs, relations=True)
    fit(model, [example() for _ in range(256)], epochs=30, lr=0.02)
    held_out = [example() for _ in range(50)]
    right = 0
    for ex, pred in zip(held_out, predict(model, held_out, 64, torch.device("cpu"), threshold=0.0)):
        spans = [s[:2] for s in pred.spans]
        if spans != [(0, 1), (2, 3), (4, 5)]:
            continue
        best = max(pred.pairs, key=lambda p: p[2])
        right += (best[0] == 0) == bool(ex.pair_gold[0])
    assert right >= 45


def test_a_sentence_is_reported_only_with_a_pair_to_relate():
    """The gate passes both sentences; the one in which the tagger finds an effect but no drug is not
    reported (no entities, no pairs), unless the threshold is 0 (tag every sentence)."""
    from adelabel.inference import analyze, predict, reports

    class FirstAnEffectThenDrugs(torch.nn.Module):
        def forward(self, states):
            scores = torch.full((*states.shape[:2], len(TAGS)), -9.0)
            scores[..., TAGS.index("B-DRUG")] = 9.0
            scores[:, 0] = -9.0
            scores[:, 0, TAGS.index("B-AE")] = 9.0
            return scores

    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, gate=True, relations=True, crf=True)
    model.dense = FirstAnEffectThenDrugs()
    examples = [encode("rash after naproxen", vocabs), encode("naproxen", vocabs)]
    gated = predict(model, examples, 8, torch.device("cpu"), threshold=1e-6)
    assert [len(p.spans) for p in gated] == [3, 0] and gated[0].pairs and not gated[1].pairs
    assert not any(gated[1].tags)
    opened = predict(model, examples, 8, torch.device("cpu"), threshold=0.0)
    assert [len(p.spans) for p in opened] == [3, 1]
    assert [reports(model, p, 1e-6) for p in opened] == [True, False]
    assert [reports(model, p, 0.0) for p in opened] == [True, True]
    assert not reports(model, opened[0], 1.01)  # the gate still decides first
    text = "Rash after naproxen. Naproxen"
    analysis = analyze(model, vocabs, [text], torch.device("cpu"), threshold=1e-6)[0]
    assert [s.reported for s in analysis.sentences] == [True, False]
    assert all(e.end <= 20 for e in analysis.entities) and analysis.relations


def test_only_a_drug_and_another_type_make_the_pair_decide():
    """Types with nothing to pair (Chemical and Disease, DRUG alone) are reported on the gate alone;
    without a gate every sentence is reported, entities or not."""
    from adelabel.inference import Prediction, analyze, pairs_decide, reports

    vocabs = tiny_vocabs()
    no_pair = Prediction([0], [1.0], 0.9, [], [])
    for tags, decides in ((TAGS, True), (["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"], False),
                          (["O", "B-DRUG", "I-DRUG"], False)):
        torch.manual_seed(0)
        model = build_model("bilstm", tags=tags, vocab_size=len(vocabs.words), char_vocab_size=len(vocabs.chars),
                            embedding_dim=8, **{**PLAIN, "gate": True, "relations": True})
        assert pairs_decide(model) == decides
        assert reports(model, no_pair, 0.5) != decides
    # A drug and its dose alone report no adverse event, where the model knows an effect type.
    dosed = ["O", "B-DRUG", "I-DRUG", "B-AE", "I-AE", "B-DOSE", "I-DOSE"]
    for tags, expected in ((dosed, [True, False]), (["O", "B-DRUG", "I-DRUG", "B-DOSE", "I-DOSE"], [None, True])):
        model = build_model("bilstm", tags=tags, vocab_size=len(vocabs.words), char_vocab_size=len(vocabs.chars),
                            embedding_dim=8, **{**PLAIN, "gate": True, "relations": True})
        for other, want in zip(("AE", "DOSE"), expected):
            if want is not None:
                pair = Prediction([0, 0], [1.0, 1.0], 0.9, [(0, 1, "DRUG"), (1, 2, other)], [(0, 1, 0.2)])
                assert reports(model, pair, 0.5) == want, (tags, other)
    # The pair a reported sentence carries, when none reaches 0.5, is the drug and effect that reported it.
    from adelabel.inference import effect_types, reported_pairs

    both = Prediction([0] * 3, [1.0] * 3, 0.9, [(0, 1, "DRUG"), (1, 2, "AE"), (2, 3, "DOSE")], [(0, 1, 0.2), (0, 2, 0.4)])
    assert reported_pairs(both, effect_types(tuple(dosed))) == [(0, 1, 0.2)]
    assert reported_pairs(both._replace(pairs=[(0, 2, 0.4)]), effect_types(tuple(dosed))) == [(0, 2, 0.4)]
    # A drug-dose pair above 0.5 keeps the best drug-effect pair beside it: that one reported the sentence.
    assert reported_pairs(both._replace(pairs=[(0, 1, 0.48), (0, 2, 0.62)]), effect_types(tuple(dosed))) == \
        [(0, 1, 0.48), (0, 2, 0.62)]
    plain = tiny_model(vocabs)  # no gate
    assert not pairs_decide(plain)
    analysis = analyze(plain.eval(), vocabs, ["Rash after naproxen. A long sentence"], torch.device("cpu"))[0]
    assert [s.reported for s in analysis.sentences] == [True, True]


def test_a_saved_config_is_completed_by_the_schema_not_the_packaged_file(monkeypatch):
    """A model saved before a key existed is rebuilt as it was trained: the missing key takes the
    schema's default (which keeps the old behaviour), not the value today's adelabel/configs file
    recommends for new runs (here a packaged bilstm file setting gate_size 50; the schema says 100)."""
    from adelabel import config as config_module
    from adelabel.config import ConfigBuilder, validate_saved
    from adelabel.models import build_model

    packaged = config_module._packaged
    monkeypatch.setattr(config_module, "_packaged", lambda arch, task="tag": (
        "[model]\ngate_size = 50\n" if arch == "bilstm" else packaged(arch, task)))
    assert ConfigBuilder("bilstm").build().model.gate_size == 50
    old = {"arch": "bilstm", "task": "tag", "model": {"hidden_size": 200, "dropout": 0.5}, "train": {"batch_size": 32}}
    config = validate_saved(old, "config.json")
    assert (config.model.gate_size, config.model.hidden_size, config.train.lr) == (100, 200, 0.001)
    model = build_model("bilstm", tags=["O", "B-DRUG", "I-DRUG"], vocab_size=10, char_vocab_size=10,
                        embedding_dim=8, hidden_size=200)
    assert model.hyper["gate_size"] == 100


def test_the_gate_screens_sentences_before_the_tagger_runs():
    """With the gate in effect, a recurrent tagger runs its BiLSTM, head and relation head on the
    sentences the gate passes only, and predicts exactly what tagging every sentence predicts."""
    from adelabel.inference import predict

    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, gate=True, crf=True, relations=True, chars="cnn", char_size=4)
    ids = {t: i for i, t in enumerate(TAGS)}
    texts = ["rash after naproxen", "naproxen", "a long sentence .", "rash", "naproxen rash after a naproxen",
             "a long long sentence .", "sentence rash after naproxen .", "after a sentence ."]
    gold = {"naproxen": "B-DRUG", "rash": "B-AE"}
    fit(model, [encode(t, vocabs, ids, [gold.get(w, "O") for w in t.split()]) for t in texts], 40, 0.05)
    model.eval()
    examples = [encode(t, vocabs) for t in texts]
    cpu = torch.device("cpu")
    seen = []
    hook = model.dense.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    screened = predict(model, examples, 3, cpu, threshold=0.5)
    hook.remove()
    passed = sum(p.sentence >= 0.5 for p in screened)
    assert sum(seen) == passed == 5  # the tagger's layers read the five passed sentences only
    model.screen = lambda batch: None  # as a model whose gate reads the tagger's states
    tagged = predict(model, examples, 3, cpu, threshold=0.5)
    assert [p.reported for p in screened] == [p.reported for p in tagged] == [True, False, False, False, True,
                                                                              False, True, False]
    for a, b in zip(screened, tagged):
        assert a.spans == b.spans and [p[:2] for p in a.pairs] == [p[:2] for p in b.pairs]
        assert abs(a.sentence - b.sentence) < 1e-6
        assert all(abs(x - y) < 1e-5 for x, y in zip(a.span_scores, b.span_scores))


def test_the_character_cnn_is_a_convolution_max_pooled_over_each_spelling():
    """The table lookups compute the same function as a 3-wide convolution over the characters, padding
    windows left out of the max, the all-padding row zero; the padding character learns nothing."""
    from adelabel.models.chars import CharCNN

    torch.manual_seed(0)
    cnn = CharCNN(40, filters=6, char_dim=5)
    chars = torch.randint(1, 40, (30, 9))
    lengths = torch.randint(1, 10, (30,))
    chars[torch.arange(9)[None, :] >= lengths[:, None]] = 0
    chars[0] = 0
    spellings = torch.randint(0, 30, (4, 7))
    features = cnn(chars, spellings)
    weight = cnn.window.weight.view(6, 3, 5).permute(0, 2, 1)  # (filters, char_dim, kernel)
    conv = torch.nn.functional.conv1d(cnn.embedding(chars).transpose(1, 2), weight, cnn.window.bias, padding=1)
    expected = torch.stack([conv[s, :, :int(n)].max(dim=1).values if n else torch.zeros(6)
                            for s, n in enumerate((chars != 0).sum(1))])
    assert torch.allclose(features, expected[spellings], atol=1e-5)
    features.sum().backward()
    assert not cnn.embedding.weight.grad[0].any() and cnn.embedding.weight.grad[1:].any()


def test_the_relation_head_pools_each_range_of_its_own_sentence():
    from adelabel.models.relation import _pool

    torch.manual_seed(0)
    states = torch.randn(3, 10, 4)
    row, first, end = torch.randint(0, 3, (50,)), torch.randint(0, 10, (50,)), torch.randint(0, 11, (50,))
    pooled = _pool(states, row, first, end)
    for p in range(50):
        r, a, b = int(row[p]), int(first[p]), int(end[p])
        assert torch.equal(pooled[p], states[r, a:b].max(dim=0).values if b > a else torch.zeros(4))


def test_the_relation_head_scores_many_pairs_in_bounded_groups(monkeypatch):
    # A sentence naming dozens of drugs and effects has thousands of pairs: tagging scores them in
    # groups, so memory is bounded, with the logits of scoring them at once.
    from adelabel.models import relation
    from adelabel.models.relation import RelationHead

    torch.manual_seed(0)
    head = RelationHead(8, 0.0).eval()
    states = torch.randn(3, 40, 8)
    first = torch.randint(0, 39, (500, 2))
    pairs = torch.cat([torch.randint(0, 3, (500, 1)), first[:, :1], first[:, :1] + 1, first[:, 1:], first[:, 1:] + 1], 1)
    with torch.no_grad():
        whole = head(states, pairs)
        monkeypatch.setattr(relation, "POOLED_VALUES", 40 * 8 * 7)  # groups of 7 pairs
        gathered = []
        monkeypatch.setattr(relation, "take", lambda table, index: gathered.append(index.numel()) or table[index])
        assert torch.allclose(head(states, pairs), whole, atol=1e-6)
    assert max(gathered) <= 7 * 40 and len(gathered) >= 3 * 500 // 7


def test_training_tags_only_the_sentences_whose_tags_the_loss_reads():
    """With a gate and no teacher, a training step runs the tagger's BiLSTM and head on the sentences holding
    entities only, and its loss and every gradient equal those of tagging the whole batch."""
    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, gate=True, crf=True, relations=True, chars="cnn", char_size=4)
    ids = {t: i for i, t in enumerate(TAGS)}
    gold = {"naproxen": "B-DRUG", "rash": "B-AE"}
    texts = ["a long long sentence .", "rash after naproxen", "after a sentence .", "naproxen rash after a naproxen",
             "a sentence ."]
    examples = [encode(t, vocabs, ids, [gold.get(w, "O") for w in t.split()]) for t in texts]
    for e in examples:
        drugs = [i for i, w in enumerate(e.pieces) if w == "naproxen"]
        effects = [i for i, w in enumerate(e.pieces) if w == "rash"]
        e.pairs = [(d, d + 1, a, a + 1) for d in drugs for a in effects]
        e.pair_gold = [1] * len(e.pairs)
    batch = collate(examples)
    model.train()
    assert model.tagged_rows(batch).tolist() == [False, True, False, True, False]

    def step():
        model.zero_grad()
        loss = model.loss(model(batch), batch)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    seen = []
    hook = model.dense.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    loss, grads = step()
    hook.remove()
    assert sum(seen) == 2
    model.tagged_rows = lambda batch: None  # tag every sentence, as before
    whole_loss, whole_grads = step()
    assert torch.allclose(loss, whole_loss, atol=1e-6)
    assert grads.keys() == whole_grads.keys()
    for name in grads:
        assert torch.allclose(grads[name], whole_grads[name], atol=1e-6), name
    del model.tagged_rows
    batch.soft_tags = torch.zeros(*batch.tags.shape, len(TAGS))
    model.distil = 0.5
    assert model.tagged_rows(batch) is None  # a teacher's tags are learnt on every sentence
    model.distil = 0.0
    assert model.tagged_rows(batch) is not None  # unless its weight is 0
    model.eval()
    assert model.tagged_rows(batch) is None  # inference tags every sentence it is given


def test_training_on_some_sentences_keeps_the_heads_lower_precision():
    """Under CUDA's autocast the dense head gives bf16 (or fp16) and index_copy does not promote a mix of
    dtypes, as the CPU's autocast does: the tagged sentences' scores are spread into zeros of their own
    dtype (a GPU run of `train --precision bf16` failed here). The hook plays the GPU's part on a CPU."""
    vocabs = tiny_vocabs()
    model = tiny_model(vocabs, gate=True, crf=True)
    ids = {t: i for i, t in enumerate(TAGS)}
    texts = ["a sentence .", "rash after naproxen"]
    tags = [["O"] * 3, ["B-AE", "O", "B-DRUG"]]
    batch = collate([encode(t, vocabs, ids, g) for t, g in zip(texts, tags)])
    model.train()
    hook = model.dense.register_forward_hook(lambda module, args, out: out.to(torch.bfloat16))
    try:
        out = model(batch)
    finally:
        hook.remove()
    assert out.scores.dtype == torch.bfloat16 and out.states.dtype == torch.float32
    assert not out.scores[0].any() and out.scores[1].any()
    model.loss(out, batch).backward()
    grads = [p.grad for p in model.dense.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.any() for g in grads)


def test_packed_recurrent_layers_leave_bf16_autocast_for_fp32():
    """CUDA's autocast would run cuDNN's recurrent layers in fp16 under bf16, with no loss scaling:
    run_recurrent takes packed layers (the taggers', gates', classifiers' and character BiLSTM's) out of
    a bf16 autocast, in fp32, and leaves them under an fp16 one. The hooks see what the layer sees."""
    from adelabel.models.base import run_packed
    from adelabel.models.chars import CharLSTM

    rnn = torch.nn.LSTM(4, 3, batch_first=True, bidirectional=True)
    chars = CharLSTM(char_vocab_size=12, size=6, char_dim=4)
    seen = []
    for layer in (rnn, chars.lstm):
        layer.register_forward_pre_hook(lambda m, args: seen.append((torch.is_autocast_enabled("cpu"),
                                                                      args[0].data.dtype)))
    x, lengths = torch.randn(3, 6, 4), torch.tensor([6, 1, 1])  # mostly padding: the packed path
    words = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])
    for dtype, inside in ((torch.bfloat16, (False, torch.float32)), (torch.float16, (True, torch.float32))):
        seen.clear()
        with torch.autocast("cpu", dtype=dtype):
            out = run_packed(rnn, x, lengths)
            features = chars(words, torch.tensor([[0, 1]]))
        assert seen == [inside, inside], dtype
        assert out.dtype == torch.float32 and not out[1:, 1:].any() and features.shape == (1, 2, 6)
    seen.clear()
    run_packed(rnn, x, lengths)
    assert seen == [(False, torch.float32)]


def test_dropout_keeps_each_element_with_the_right_probability_and_scales_it():
    from adelabel.models.dropout import Dropout

    torch.manual_seed(0)
    drop = Dropout(0.3)
    x = torch.ones(200, 500, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient goes through the kept elements, scaled
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError):
        Dropout(1.0)


def test_an_edited_task_is_reported_as_damage_not_believed(tmp_path):
    """Tagger.load reads a folder's task before loading it whole; an edited config.json must come out
    as the checksum mismatch it is, not as "a sentence classifier"."""
    from adelabel import Tagger

    folder = _saved(tmp_path)
    _edit_json("config.json", lambda c: {**c, "task": "classify"})(folder)
    with pytest.raises(InputError, match=r"config\.json: checksum mismatch"):
        Tagger.load(folder)


def test_roc_auc_counts_ties_half_and_needs_no_pairwise_table():
    """The probability that a positive outranks a negative, ties half: one sort (sklearn), where the
    table of every positive against every negative took gigabytes on a large split. 400,000 scores
    would need 40 billion comparisons the old way."""
    import tracemalloc

    from adelabel.evaluate import probability_scores

    assert probability_scores([True, False, True, False], [0.9, 0.5, 0.5, 0.1])["roc_auc"] == 0.875
    labels = [k % 2 == 0 for k in range(400_000)]
    tracemalloc.start()
    auc = probability_scores(labels, [(k % 1000) / 1000 for k in range(400_000)])["roc_auc"]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert abs(auc - 0.499) < 1e-9 and peak < 500 * 2 ** 20  # a positive 2j/1000 outranks j of 500 negatives
