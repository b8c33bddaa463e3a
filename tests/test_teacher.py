"""A tagger learning a teacher's probabilities beside the gold labels (``train --teacher``)."""
from __future__ import annotations

import json

import pytest
import torch

from adelabel.data import collate
from adelabel.prepare import read_manifest, read_split
from conftest import SAMPLE, run_cli, train_small


@pytest.fixture(scope="module")
def taught(sample_data, sample_model):
    """The sample model's probabilities on the sample training split, attached to its examples."""
    from adelabel.tagger import Tagger
    from adelabel.data import encode_sentences
    from adelabel.teacher import load_teacher, teach

    student = Tagger.load(sample_model, device="cpu")
    sentences = read_split(sample_data, "train")
    examples = encode_sentences(sentences, student.vocabs, student.tags)
    teacher = load_teacher([sample_model], read_manifest(sample_data), student.tags, torch.device("cpu"))
    teach(teacher, sentences, examples, torch.device("cpu"))
    return student, examples


def test_the_teacher_gives_every_training_sentence_its_probabilities(taught):
    student, examples = taught
    kept = [e for e in examples if e.words]
    assert kept and all(e.soft_tags.shape == (len(e.words), len(student.tags)) for e in kept)
    for e in kept:
        assert torch.allclose(e.soft_tags.sum(-1), torch.ones(len(e.words)), atol=1e-4)
        assert 0.0 <= e.soft_sentence <= 1.0 and len(e.soft_pairs) == len(e.pairs)
    # The teacher learnt the annotated sentences: its most probable tag is almost always the gold one
    # there. (Not on the ADE-NEG ones, which its gated tagger never learnt: there it passes on the
    # drugs and effects it generalises to, and its gate, below, tells those sentences apart.)
    annotated = [e for e in kept if any(e.tags)]
    agree = sum(int((e.soft_tags.argmax(-1) == torch.tensor(e.tags)).sum()) for e in annotated)
    assert agree / sum(len(e.words) for e in annotated) > 0.95
    holds = [e.soft_sentence for e in kept if any(e.tags)]
    empty = [e.soft_sentence for e in kept if not any(e.tags)]
    assert sum(holds) / len(holds) > sum(empty) / len(empty) + 0.2


def test_a_teacher_of_the_same_tags_in_another_order_teaches_them_in_the_students(taught, sample_data, sample_model):
    """The same corpus prepared from its CoNLL files names its tags in the order they first appear."""
    from adelabel.data import encode_sentences
    from adelabel.errors import InputError
    from adelabel.teacher import load_teacher, teach

    student, examples = taught
    order = list(reversed(student.tags))
    sentences = read_split(sample_data, "train")
    other = encode_sentences(sentences, student.vocabs, order)
    teacher = load_teacher([sample_model], read_manifest(sample_data), order, torch.device("cpu"))
    teach(teacher, sentences, other, torch.device("cpu"))
    columns = [list(student.tags).index(t) for t in order]
    for mine, theirs in zip(examples, other):
        if mine.words:
            assert torch.equal(theirs.soft_tags, mine.soft_tags[:, columns])
    with pytest.raises(InputError, match="--teacher: tags"):
        load_teacher([sample_model], read_manifest(sample_data), [*student.tags, "B-DOSE"], torch.device("cpu"))


def test_the_loss_mixes_gold_and_teacher_by_the_weight(taught):
    student, examples = taught
    model = student.model
    kept = [e for e in examples if e.words]
    chosen = [e for e in kept if any(e.tags)][:12] + [e for e in kept if not any(e.tags)][:12]
    batch = collate(chosen)
    assert batch.soft_tags is not None and batch.pair_gold is not None and len(batch.pair_gold)

    def loss(w: float, **soft) -> float:
        model.distil = w
        b = collate(chosen)
        for name, value in soft.items():
            setattr(b, name, value)
        model.eval()  # no dropout: the same forward pass every time
        with torch.no_grad():
            return float(model.loss(model(b), b))

    gold = loss(0.0)
    # Weight 0: the teacher is ignored, whatever it says.
    assert loss(0.0, soft_tags=torch.rand_like(batch.soft_tags)) == pytest.approx(gold)
    # A teacher that agrees with the gold labels, as one-hot probabilities.
    holds = ((batch.tags > 0) & batch.mask).any(1).float()
    same = {"soft_sentence": holds, "soft_pairs": batch.pair_gold}
    onehot = torch.nn.functional.one_hot(batch.tags.clamp(min=0), len(student.tags)).float()
    onehot = onehot * batch.mask[..., None]
    at_one = loss(1.0, soft_tags=onehot, **same)
    # With the weight all on the teacher, the tags' loss is the cross-entropy of the CRF's marginals
    # with the teacher's tags, over every sentence (the gold loss is over those with entities only);
    # the gate's and the pairs' are as with the gold labels.
    model.distil, rows = 0.0, holds.bool()
    assert 0 < int(rows.sum()) < len(rows)
    with torch.no_grad():
        scores = model(batch).scores
        rest = gold - float(model.crf.nll(scores[rows], batch.tags[rows], batch.mask[rows]))
        log_m = model.crf.log_marginals(scores, batch.mask)
        ce = float(-(onehot * log_m).sum(-1).masked_fill(~batch.mask, 0).sum() / batch.mask.sum())
    assert at_one == pytest.approx(rest + ce, rel=1e-4)
    # Halfway, halfway between.
    half = loss(0.5, soft_tags=onehot, **same)
    assert half == pytest.approx((gold + at_one) / 2, rel=1e-4)
    # The real teacher's probabilities are not the gold labels: another loss.
    assert abs(loss(0.5) - half) > 1e-3


def _student(student, **hyper):
    from adelabel.models import build_model

    torch.manual_seed(0)
    model = build_model("bilstm", tags=student.tags, vocab_size=len(student.vocabs.words),
                        char_vocab_size=len(student.vocabs.chars), embedding_dim=16, hidden_size=8,
                        dense_size=8, char_size=8, **hyper)
    return model.eval()


def test_a_student_without_a_gate_is_taught_the_teachers_gate_in_its_tags(taught):
    student, examples = taught
    model = _student(student, gate=False)
    model.distil = 1.0
    batch = collate([e for e in examples if e.words][:24])
    with torch.no_grad():
        out = model(batch)
        # A teacher whose gate stays shut teaches O everywhere, as a gateless teacher tagging O would.
        batch.soft_sentence = torch.zeros_like(batch.soft_sentence)
        shut = float(model.loss(out, batch))
        all_o = torch.zeros_like(batch.soft_tags)
        all_o[..., 0] = batch.mask.float()
        batch.soft_tags, batch.soft_sentence = all_o, None
        assert shut == pytest.approx(float(model.loss(out, batch)), rel=1e-5)


def test_a_teacher_without_a_gate_leaves_the_students_gate_to_the_gold_labels(taught):
    student, examples = taught
    model = _student(student, crf=False)
    batch = collate([e for e in examples if e.words][:24])
    onehot = torch.nn.functional.one_hot(batch.tags.clamp(min=0), len(student.tags)).float() * batch.mask[..., None]
    with torch.no_grad():
        out = model(batch)
        model.distil = 0.0
        gold = float(model.loss(out, batch))
        # Softmax tags: the cross-entropy with one-hot gold probabilities is the gold loss itself.
        batch.soft_tags, batch.soft_sentence, batch.soft_pairs = onehot, None, batch.pair_gold
        model.distil = 1.0
        assert float(model.loss(out, batch)) == pytest.approx(gold, rel=1e-5)


def test_a_teacher_at_weight_zero_changes_nothing(sample_data, sample_model, tmp_path):
    from adelabel.atomic import sha256
    from adelabel.config import resolve
    from adelabel.train import train

    tiny = ["train.max_epochs=1", "model.hidden_size=8", "model.dense_size=8", "model.char_size=8"]
    train(resolve("bilstm", overrides=tiny), sample_data, tmp_path / "alone", device="cpu", log=None)
    train(resolve("bilstm", overrides=tiny + ["train.distil=0"]), sample_data, tmp_path / "taught", device="cpu",
          log=None, teacher=[sample_model])
    # Loading the teacher draws no number the student's initialisation or dropout would have drawn.
    assert sha256(tmp_path / "alone" / "model.safetensors") == sha256(tmp_path / "taught" / "model.safetensors")


def test_train_with_a_teacher_records_it_and_checks_it(sample_data, sample_model, tmp_path, capsys):
    out = tmp_path / "student"
    code, _, err = run_cli(capsys, "train", "--arch", "bigru", "--data", sample_data, "--out", out, "--epochs", "1",
                           "--teacher", sample_model, "--set", "train.distil=0.7")
    assert code == 0, err
    assert "teacher (" in err and "train.distil): 0.7" in err
    config = json.loads((out / "config.json").read_text())
    assert config["teacher"] == [str(sample_model.resolve())] and config["train"]["distil"] == 0.7
    # A teacher trained on another split of the data may have seen this one's test documents.
    from adelabel.prepare import prepare

    other = tmp_path / "other-data"
    prepare(SAMPLE, other, seed=14, w2v_epochs=1, log=lambda _: None)
    foreign = train_small(other, tmp_path / "foreign", "train.max_epochs=1", "model.hidden_size=8",
                          "model.dense_size=8", "model.char_size=8")
    capsys.readouterr()  # its warnings, if any (a one-epoch model may score F1 0 on dev)
    for args, message in [
        (["--teacher", foreign], "trained on another split of the data (seed, splits differ)"),
        (["--teacher", tmp_path / "nosuch"], "nosuch: model folder not found"),
        (["--teacher", sample_model, "--task", "classify"], "--task classify takes none"),
    ]:
        code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "x", "--epochs", "1", *args)
        assert code == 2 and message in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "train", "--resume", out, "--teacher", sample_model)
    assert code == 2 and "drop --teacher" in err
    # Retrained from its folder (--config), the student's teacher is not carried over unsaid.
    code, _, err = run_cli(capsys, "train", "--config", out, "--data", sample_data, "--out", tmp_path / "again", "-q")
    assert code == 0 and f"warning: {out} was trained with --teacher {sample_model.resolve()}; this run learns from " \
        "the gold labels alone unless it is given --teacher too" in err, err


def test_cv_teaches_each_fold_with_the_same_fold_of_another_cv(tmp_path, capsys):
    tiny = ["--corpus", SAMPLE, "--folds", "2", "--epochs", "1", "--w2v-epochs", "1", "--set", "model.hidden_size=8",
            "--set", "model.dense_size=8", "--set", "model.char_size=8", "-q"]
    code, _, err = run_cli(capsys, "cv", *tiny, "--out", tmp_path / "teacher")
    assert code == 0, err
    code, out, err = run_cli(capsys, "cv", *tiny, "--arch", "bigru", "--out", tmp_path / "student",
                             "--teacher", tmp_path / "teacher")
    assert code == 0, err
    for k in (1, 2):
        config = json.loads((tmp_path / "student" / f"fold-0{k}" / "model" / "config.json").read_text())
        assert config["teacher"] == [str((tmp_path / "teacher" / f"fold-0{k}" / "model").resolve())]
    settings = json.loads((tmp_path / "student" / "settings.json").read_text())
    assert settings["teacher"] == [str((tmp_path / "teacher").resolve())]


def test_cv_takes_a_teacher_of_the_same_folds_only(tmp_path, capsys):
    teacher = tmp_path / "cv-teacher"
    teacher.mkdir()
    (teacher / "settings.json").write_text(json.dumps({"corpus": str(SAMPLE.resolve()), "format": "ade", "folds": 3,
                                                       "seed": 13, "labels": ["DRUG", "AE"], "include_negative": True}))
    base = ["cv", "--corpus", SAMPLE, "--folds", "2", "--epochs", "1", "--out", tmp_path / "cv"]
    code, _, err = run_cli(capsys, *base, "--teacher", teacher)
    assert code == 2 and "--teacher: other folds (folds differ)" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = run_cli(capsys, *base, "--teacher", tmp_path)
    assert code == 2 and "not a cv folder" in err
    code, _, err = run_cli(capsys, *base, "--task", "classify", "--teacher", teacher)
    assert code == 2 and "--task classify takes none" in err
    settings = json.loads((teacher / "settings.json").read_text())
    (teacher / "settings.json").write_text(json.dumps({**settings, "folds": 2}))
    code, _, err = run_cli(capsys, *base, "--teacher", teacher)
    assert code == 2 and "fold 1 is unfinished" in err
    # Same path, other content: the teacher's folds were dealt from a corpus since edited.
    (teacher / "settings.json").write_text(json.dumps({**settings, "folds": 2, "corpus_sha256": "0" * 64}))
    code, _, err = run_cli(capsys, *base, "--teacher", teacher)
    assert code == 2 and "--teacher: other folds (corpus content differ)" in err


def test_a_run_resumes_only_with_the_teacher_it_started_with(sample_data, sample_model, tmp_path):
    import shutil

    from adelabel.config import resolve
    from adelabel.errors import InputError
    from adelabel.train import read_run, start_run

    teacher = tmp_path / "teacher"
    shutil.copytree(sample_model, teacher)
    ckpt = start_run(resolve("bilstm"), sample_data, tmp_path / "student", "cpu", [str(teacher)])
    assert read_run(ckpt)[1]["teacher"] == [str(teacher)]
    (teacher / "manifest.json").write_text((teacher / "manifest.json").read_text() + " ")
    with pytest.raises(InputError, match="the teacher's model folder changed"):
        read_run(ckpt)
