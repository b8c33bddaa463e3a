"""What a user sees around the results: the version, progress on stderr (silenced by --quiet), and
the training curves saved beside a model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run_cli


def test_version(capsys):
    from adelabel.versions import __version__

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"adelabel {__version__}"


def test_every_command_can_be_quieted_for_scripts():
    import typer.main

    from adelabel.cli import app

    commands = typer.main.get_command(app).commands
    assert {"prepare", "train", "evaluate", "tag", "export"} <= set(commands)
    lacking = [name for name, command in commands.items() if name != "config"  # prints its result only
               and not any("--quiet" in p.opts for p in command.params)]
    assert lacking == []


def test_tag_reports_progress_in_plain_lines_unless_quiet(capsys, tiny_model_dir, tmp_path):
    src = tmp_path / "in.txt"
    # Several chunks; more bytes than characters (non-ASCII, CRLF endings), which must still end at 100%.
    src.write_bytes("Rash after 5 \u00b5g lamotrigine \u2014 \u00e9ruption.\r\n".encode("utf-8") * 3000)
    code, _, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--output", tmp_path / "out.jsonl",
                           "--batch-size", "300")
    assert code == 0
    lines = err.strip().splitlines()
    # Not a terminal: one plain line per tenth, no carriage returns, ending at 100%.
    assert 5 <= len(lines) <= 11 and "\r" not in err, err
    assert all(line.startswith("tagging: ") and "B/s" in line and "left)" in line for line in lines)
    assert lines[-1].startswith("tagging: 100%")
    code, _, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--output", tmp_path / "out.jsonl", "--quiet")
    assert code == 0 and err == ""


def test_a_model_folder_holds_its_training_curves(tiny_model_dir):
    manifest = json.loads((tiny_model_dir / "manifest.json").read_text())
    assert "curves.png" in manifest["files"]
    assert (tiny_model_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prepare_shows_word2vec_progress(capsys, tmp_path):
    code, _, err = run_cli(capsys, "prepare", "--corpus", ROOT / "corpora/sample", "--out", tmp_path / "d",
                           "--w2v-epochs", "2")
    assert code == 0, err
    assert "word2vec: 50% (" in err and "word2vec: 100% (" in err
    code, _, err = run_cli(capsys, "prepare", "--corpus", ROOT / "corpora/sample", "--out", tmp_path / "d2",
                           "--w2v-epochs", "2", "--quiet")
    assert code == 0 and err == ""


def test_the_entity_confusion_counts_every_gold_and_predicted_span():
    from adelabel.data import Example
    from adelabel.evaluate import NO_ENTITY, entity_confusion
    from adelabel.inference import Prediction

    tags = ["O", "B-AE", "I-AE", "B-DRUG", "I-DRUG"]
    # gold: AE at 0-2, DRUG at 3-4, AE at 5-6; predicted: DRUG at 0-2 (wrong type), DRUG at 3-4 (right),
    # AE at 4-5 (no gold there); the AE at 5-6 is missed.
    gold = [1, 2, 0, 3, 0, 1]
    example = Example(tokens=[(i, i + 1) for i in range(6)], pieces=["w"] * 6, words=[1] * 6, chars=None, tags=gold)
    predicted = Prediction([], [], 1.0, [(0, 2, "DRUG"), (3, 4, "DRUG"), (4, 5, "AE")], [], [0.9, 0.9, 0.9])
    labels, matrix = entity_confusion([example], [predicted], tags, [0])
    assert labels == ["AE", "DRUG", NO_ENTITY]
    assert matrix == [[0, 1, 1],   # gold AE: one taken for a DRUG, one missed
                      [0, 1, 0],   # gold DRUG: found
                      [1, 0, 0]]   # an AE where there is none


def test_evaluate_reports_progress_unless_quiet(capsys, tiny_model_dir, sample_data):
    code, out, err = run_cli(capsys, "evaluate", "--model", tiny_model_dir, "--data", sample_data)
    assert code == 0 and "scoring: 100% (" in err and "micro" in out
    code, out, err = run_cli(capsys, "evaluate", "--model", tiny_model_dir, "--data", sample_data, "--quiet")
    assert code == 0 and err == "" and "micro" in out


def test_the_python_api_is_typed_and_listed(tiny_model_dir):
    """A type checker reads the hints of an installed copy only beside a py.typed; the lazily imported
    names must still be what `dir(adelabel)` and editors list; a loaded tagger's precision is fixed."""
    import adelabel
    from adelabel import Tagger

    assert (Path(adelabel.__file__).parent / "py.typed").is_file()
    assert set(adelabel.__all__) <= set(dir(adelabel))
    tagger = Tagger.load(tiny_model_dir, device=torch.device("cpu"))
    with pytest.raises(AttributeError):
        tagger.precision = "fp16"  # it failed deep in oneDNN at the next call
    assert tagger.precision == "fp32"
    with pytest.raises(AttributeError, match="has no attribute 'Tager'"):
        adelabel.Tager


def test_a_loaded_tagger_answers_alike_however_it_is_called(tiny_model_dir):
    """A caller's own autocast changes no fp32 result; torch's "cpu:0" and any sequence of folders are
    taken; a pickled copy (a worker's) carries the model, not the spellings looked up so far."""
    import collections
    import pickle

    from adelabel import Tagger
    from adelabel.errors import OptionError

    text = "Severe rash and fever after lamotrigine. Nausea followed naproxen."
    tagger = Tagger.load(tiny_model_dir, device="cpu")
    plain = tagger.analyze(text).to_dict()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert tagger.analyze(text).to_dict() == plain
    assert Tagger.load(collections.UserList([tiny_model_dir]), device=torch.device("cpu", 0)).analyze(text).to_dict() \
        == plain
    assert tagger.vocabs._seen and not pickle.loads(pickle.dumps(tagger)).vocabs._seen
    assert pickle.loads(pickle.dumps(tagger)).analyze(text).to_dict() == plain
    with pytest.raises(OptionError) as caught:
        list(tagger.pipe([text], batch_size=0))
    assert caught.value.as_option().startswith("--batch-size: ")


def test_time_left_is_never_written_as_none_while_work_is_left():
    from adelabel.progress import duration

    assert [duration(s) for s in (0, 0.1, 0.6, 59.6, 61, 3700)] == \
        ["0 s", "1 s", "1 s", "1 min 00 s", "1 min 01 s", "1 h 01 min"]


def _tag_in_child(text: str) -> list:
    return [(e.start, e.end, e.label) for e in _FORKED(text)]


_FORKED = None


def test_a_tagger_loaded_before_a_fork_tags_in_the_forked_workers():
    """multiprocessing's default start on Linux is fork: a child inherited torch's thread pool of a
    parent that had run a parallel region, and hung in its first forward pass for ever."""
    import multiprocessing

    from adelabel import Tagger
    from adelabel.pretrained import READY

    global _FORKED
    _FORKED = Tagger.load(READY, device="cpu", threshold=0.0)
    texts = ["Intravenous azithromycin-induced ototoxicity.", "Clozapine-induced agranulocytosis."] * 2
    torch.set_num_threads(2)
    expected = [_tag_in_child(t) for t in texts]  # the parent's pool runs, as a pipeline's would
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map_async(_tag_in_child, texts).get(timeout=120) == expected
    assert torch.get_num_threads() == 2  # the parent keeps its threads


def test_a_stream_keeps_the_threshold_it_was_started_with():
    from adelabel import Tagger
    from adelabel.pretrained import READY

    tagger = Tagger.load(READY, device="cpu")
    texts = ["Intravenous azithromycin-induced ototoxicity.", "Clozapine-induced agranulocytosis."] * 3
    tagger.threshold = 1.0  # nothing reported
    strict = tagger.analyze_pipe(texts, batch_size=2)
    tagger.threshold = 0.0  # every sentence
    loose = tagger.pipe(texts, batch_size=2)
    assert not any(s.reported for a in strict for s in a.sentences)
    assert all(loose_entities for loose_entities in loose)


def test_a_tagger_says_what_it_is_in_a_log():
    from adelabel import Tagger
    from adelabel.pretrained import READY

    tagger = Tagger.load(READY, device="cpu")
    assert repr(tagger) == f"Tagger({READY}; bilstm, cpu, fp32; threshold {tagger.decision_threshold} (the model's))"
    tagger.threshold = 0.25
    assert str(tagger).endswith("; threshold 0.25 (set))")
    tagger.threshold = 0.123456789  # as given, not rounded
    assert str(tagger).endswith("; threshold 0.123456789 (set))")
