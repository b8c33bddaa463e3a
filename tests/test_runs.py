"""Kills at awkward moments, as a user's machine delivers them: a run resumes to the weights an
uninterrupted one reaches, and no kill leaves a mixed or truncated result under the real name."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adelabel.atomic import sha256
from conftest import ROOT, SAMPLE

pytestmark = pytest.mark.processes

CLI = [sys.executable, str(ROOT / "cli.py")]


def kill_when(cmd: list[str], ready) -> subprocess.CompletedProcess:
    """Start ``cmd``, read its stderr line by line, and SIGKILL it once ``ready(line)`` is true."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if ready(line):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    return proc


def train_cmd(data: Path, out: Path) -> list[str]:
    return CLI + ["train", "--data", str(data), "--out", str(out), "--epochs", "4", "--device", "cpu",
                  "--set", "model.hidden_size=32", "--set", "train.patience=10"]


def log_without_timings(folder: Path) -> list[dict]:
    rows = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "sentences_per_second")} for r in rows]


def test_a_killed_training_resumes_to_the_same_weights(sample_data, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = subprocess.run(train_cmd(sample_data, whole), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    kill_when(train_cmd(sample_data, killed), lambda line: line.startswith("epoch   2"))
    checkpoint = tmp_path / "killed.checkpoint"
    assert not killed.exists() and (checkpoint / "state.pt").is_file()
    assert len((checkpoint / "train_log.jsonl").read_text().splitlines()) >= 2

    again = subprocess.run(train_cmd(sample_data, killed), capture_output=True, text=True)
    assert again.returncode == 2 and "a checkpoint of an unfinished run is here" in again.stderr
    assert f"--resume {killed}" in again.stderr

    # A damaged checkpoint is one line, not an unpickling traceback.
    saved = (checkpoint / "state.pt").read_bytes()
    (checkpoint / "state.pt").write_bytes(b"garbage\n" * 100)
    damaged = subprocess.run(CLI + ["train", "--resume", str(killed)], capture_output=True, text=True)
    assert damaged.returncode == 2 and "state.pt: corrupt checkpoint (its SHA-256 is not the one recorded" \
        in damaged.stderr, damaged.stderr
    assert len(damaged.stderr.strip().splitlines()) == 1, damaged.stderr
    # Bytes changed inside a tensor load as weights all the same: only the recorded sum tells.
    flipped = bytearray(saved)
    flipped[len(saved) // 2:len(saved) // 2 + 64] = b"\xff" * 64
    (checkpoint / "state.pt").write_bytes(bytes(flipped))
    damaged = subprocess.run(CLI + ["train", "--resume", str(killed)], capture_output=True, text=True)
    assert damaged.returncode == 2 and "corrupt checkpoint (its SHA-256" in damaged.stderr, damaged.stderr
    # Without its sums a state cannot be proved sound: one flipped inside a tensor resumed silently.
    sums = (checkpoint / "state.sha256").read_bytes()
    (checkpoint / "state.sha256").unlink()
    damaged = subprocess.run(CLI + ["train", "--resume", str(killed)], capture_output=True, text=True)
    assert damaged.returncode == 2 and "state.sha256: missing: the checkpoint's state cannot be checked" \
        in damaged.stderr, damaged.stderr
    (checkpoint / "state.sha256").write_bytes(sums)
    # A folder in its place is damage too, not "no epoch finished yet" (which would start over).
    (checkpoint / "state.pt").unlink()
    (checkpoint / "state.pt").mkdir()
    damaged = subprocess.run(CLI + ["train", "--resume", str(killed)], capture_output=True, text=True)
    assert damaged.returncode == 2 and "state.pt: not a file; the checkpoint is damaged" in damaged.stderr
    (checkpoint / "state.pt").rmdir()
    # Gone after epochs finished: named, not started over with their log overwritten.
    log = (checkpoint / "train_log.jsonl").read_bytes()
    damaged = subprocess.run(CLI + ["train", "--resume", str(killed)], capture_output=True, text=True)
    epochs = len(log.splitlines())
    assert damaged.returncode == 2 and f"state.pt: missing, though the checkpoint records {epochs} finished epochs" \
        in damaged.stderr, damaged.stderr
    assert (checkpoint / "train_log.jsonl").read_bytes() == log
    (checkpoint / "state.pt").write_bytes(saved)
    # A sound state of another model than run.json describes is named as such, not as corrupt.
    run = (checkpoint / "run.json").read_text()
    edited = json.loads(run)
    edited["config"]["model"]["hidden_size"] = 16
    (checkpoint / "run.json").write_text(json.dumps(edited))
    other = subprocess.run(CLI + ["train", "--resume", str(killed)], capture_output=True, text=True)
    assert other.returncode == 2 and "state.pt: holds the weights of another model than run.json describes (" \
        in other.stderr and "corrupt" not in other.stderr, other.stderr
    assert len(other.stderr.strip().splitlines()) == 1, other.stderr
    (checkpoint / "run.json").write_text(run)

    # --device is where the run goes on, not a setting of what it learns (a GPU gone, say): taken.
    resumed = subprocess.run(CLI + ["train", "--resume", str(killed), "--device", "cpu"], capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming bilstm" in resumed.stderr
    assert (killed / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    # The weights are as readable as the rest of the folder (safetensors makes its files private).
    assert (whole / "model.safetensors").stat().st_mode == (whole / "config.json").stat().st_mode
    assert json.loads((killed / "metrics.json").read_text()) == json.loads((whole / "metrics.json").read_text())
    # The log of the resumed run is the whole run's: every epoch once, in order.
    assert log_without_timings(killed) == log_without_timings(whole)
    assert not checkpoint.exists()


def test_a_killed_prepare_leaves_the_old_data_folder_whole(tmp_path):
    data = tmp_path / "data"
    first = subprocess.run(CLI + ["prepare", "--corpus", str(SAMPLE), "--out", str(data), "--w2v-epochs", "2"],
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    # Killed while it writes the new splits, with another seed (other documents in each split).
    kill_when(CLI + ["prepare", "--corpus", str(SAMPLE), "--out", str(data), "--seed", "7", "--w2v-epochs", "50"],
              lambda line: line.startswith("training word2vec"))
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before
    # The next prepare clears what the killed one left beside the folder.
    done = subprocess.run(CLI + ["prepare", "--corpus", str(SAMPLE), "--out", str(data), "--seed", "7",
                                 "--w2v-epochs", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["seed"] == 7
    assert all(sha256(data / name) == digest for name, digest in manifest["files"].items())


def test_tag_output_is_whole_or_untouched(tiny_model_dir, tmp_path):
    source = tmp_path / "in.txt"
    lines = (SAMPLE / "example.txt").read_text(encoding="utf-8").splitlines()
    source.write_text("\n".join(lines * 100) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("OLD\n")
    cmd = CLI + ["tag", str(source), "--model", str(tiny_model_dir), "--output", str(out), "--batch-size", "16"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    partial = tmp_path / ".out.jsonl.partial"
    while not (partial.is_file() and partial.stat().st_size) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be killed mid-way"
    proc.kill()
    proc.wait()
    assert out.read_text() == "OLD\n"  # what it wrote is under the partial name, for tag --resume

    # Two runs into one output: the first holds it, the second is refused while it does (or, started
    # after it finished, writes it again); the output is whole, and nothing is left beside it.
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # two torch processes on two cores
    runs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=one_thread, text=True)
            for _ in range(2)]
    ends = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert 0 in [code for code, _ in ends] and all(
        code == 0 or (code == 2 and "another `adelabel tag` is writing it" in err) for code, err in ends), ends
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == lines * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl", "out.jsonl.meta.json"]


def test_the_default_configs_ship_inside_the_package(tmp_path):
    """A plain (non-editable) install finds the configs: they are package data, not repository files."""
    import shutil

    source, target = tmp_path / "source", tmp_path / "site"
    # A copy, so the build leaves nothing in the repository (setuptools builds in the source folder).
    shutil.copytree(ROOT / "adelabel", source / "adelabel", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    shown = subprocess.run([sys.executable, "-c", "from adelabel.cli import main; main()", "config", "--arch",
                            "transformer"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "batch_size = 16" in shown.stdout
    assert str(target) in subprocess.run([sys.executable, "-c", "import adelabel; print(adelabel.__file__)"],
                                         capture_output=True, text=True, cwd=tmp_path, env=env).stdout



def test_backward_passes_repeat_bit_for_bit_on_two_threads():
    """The relation head's and the CRF's gradients, twenty times over, must come out the same to the
    bit. Indexing's backward adds repeated entries (a sentence's many candidate pairs, a tag
    transition seen thousands of times) with atomic adds across threads, in whatever order they
    land: on the real corpus two runs of one seed parted within their first epoch."""
    import torch

    from adelabel.models.crf import CRF
    from adelabel.models.relation import RelationHead

    torch.set_num_threads(2)
    torch.manual_seed(0)
    head, crf = RelationHead(600, 0.0), CRF(["O", "B-DRUG", "I-DRUG", "B-AE", "I-AE"])
    # A batch of the real corpus's: one sentence with two drugs and four effects, others with fewer.
    pairs = torch.tensor([[2, 6, 10, 19, 20], [2, 6, 10, 22, 25], [2, 6, 10, 26, 27]]
                         + [[4, d, d + 1, o, o + 1] for d in (12, 14) for o in (3, 5, 7, 10)] + [[7, 9, 12, 14, 16]])
    states = torch.randn(16, 29, 600, requires_grad=True)
    # Enough tag transitions to be split across threads.
    tags, scores = torch.randint(0, 5, (256, 200)), torch.randn(256, 200, 5)
    mask, weights = torch.ones(256, 200, dtype=torch.bool), torch.rand(256)
    first = None
    for _ in range(20):
        states.grad = None
        crf.zero_grad()
        head(states, pairs).sum().backward()
        (crf.gold_score(scores, tags, mask) * weights).sum().backward()
        grads = [states.grad.clone()] + [p.grad.clone() for p in crf.parameters()]
        first = first or grads
        assert all(torch.equal(a, b) for a, b in zip(grads, first))


def test_a_kill_between_output_and_sidecar_leaves_no_stale_sidecar(tiny_model_dir, tmp_path, monkeypatch):
    """The output and its .meta.json cannot be renamed as one: a kill after the first leaves the new
    output with no sidecar, never with the previous run's (which names another model and count)."""
    from adelabel import tagging_io

    source = tmp_path / "in.txt"
    source.write_text("Rash after naproxen.\nNo event here.\n", encoding="utf-8")
    out, sidecar = tmp_path / "out.jsonl", tmp_path / "out.jsonl.meta.json"
    out.write_text("OLD\n")
    sidecar.write_text('{"lines": 1}\n')

    def killed(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(tagging_io, "write_sidecar", killed)
    with pytest.raises(KeyboardInterrupt):
        tagging_io.tag_stream(str(source), tiny_model_dir, "jsonl", out, 16, "cpu")
    assert len(out.read_text().splitlines()) == 2 and not sidecar.exists()
    monkeypatch.undo()
    # A conll output beside a jsonl run's sidecar: the sidecar no longer describes the file, so it goes.
    tagging_io.tag_stream(str(source), tiny_model_dir, "jsonl", out, 16, "cpu")
    assert json.loads(sidecar.read_text())["lines"] == 2
    tagging_io.tag_stream(str(source), tiny_model_dir, "conll", out, 16, "cpu")
    assert out.read_text().startswith("# model = ") and not sidecar.exists()


def test_a_run_killed_while_it_saves_resumes_with_its_whole_log_and_checks_its_place_first(capsys, sample_data,
                                                                                          tmp_path, monkeypatch):
    """Killed after its last epoch's checkpoint, the log beside it lost: the model folder's log is written
    from the checkpoint's records. And a resume refuses, before any epoch, a folder in its model's place."""
    from adelabel import model_dir
    from conftest import run_cli

    out = tmp_path / "m"
    args = ["--data", sample_data, "--out", out, "--epochs", "2", "--set", "model.hidden_size=8",
            "--set", "train.patience=5", "--quiet"]

    def killed(*a, **k):
        raise KeyboardInterrupt

    real = model_dir.save
    monkeypatch.setattr(model_dir, "save", killed)
    code, _, err = run_cli(capsys, "train", *args)
    assert code == 130, err
    checkpoint = tmp_path / "m.checkpoint"
    (checkpoint / "train_log.jsonl").write_text("")  # the kill came between the state and its log
    monkeypatch.setattr(model_dir, "save", real)
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = (checkpoint / "state.pt").read_bytes()
    code, _, err = run_cli(capsys, "train", "--resume", out)
    assert code == 2 and "where the run saves its model, holds what adelabel did not write" in err, err
    assert (checkpoint / "state.pt").read_bytes() == before and (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    code, _, err = run_cli(capsys, "train", "--resume", out)
    assert code == 0, err
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]


def test_a_moved_checkpoint_carries_on_where_it_is_now(capsys, sample_data, tmp_path, monkeypatch):
    """A killed run's checkpoint moved elsewhere resumes that run and saves its model beside it; another
    run's checkpoint at the place it left is not touched (it was resumed instead, with the moved one's
    settings)."""
    import shutil

    from adelabel import model_dir
    from conftest import run_cli

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_dir, "save", killed)
    args = ["--epochs", "2", "--set", "model.hidden_size=8", "--set", "train.patience=5", "--quiet"]
    for out, seed in ((tmp_path / "m", "1"), (tmp_path / "other" / "m", "7")):
        code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", out, "--seed", seed, *args)
        assert code == 130, err
    monkeypatch.undo()
    moved = tmp_path / "elsewhere" / "n.checkpoint"
    moved.parent.mkdir()
    shutil.move(tmp_path / "m.checkpoint", moved)
    shutil.move(tmp_path / "other" / "m.checkpoint", tmp_path / "m.checkpoint")  # another run in its old place
    before = (tmp_path / "m.checkpoint" / "state.pt").read_bytes()
    code, _, err = run_cli(capsys, "train", "--resume", tmp_path / "elsewhere" / "n")
    assert code == 0, err
    assert json.loads((tmp_path / "elsewhere" / "n" / "config.json").read_text())["seed"] == 1
    assert not moved.exists() and not (tmp_path / "m").exists()
    assert (tmp_path / "m.checkpoint" / "state.pt").read_bytes() == before
    renamed = tmp_path / "renamed"
    shutil.move(tmp_path / "m.checkpoint", renamed)
    code, _, err = run_cli(capsys, "train", "--resume", renamed)
    assert code == 2 and "a moved checkpoint keeps its name, MODEL.checkpoint" in err, err


def test_a_checkpoint_a_live_run_holds_is_not_resumed_twice(capsys, sample_data, tmp_path, monkeypatch):
    """While one process trains from a checkpoint, another `train --resume` of it is refused in one line
    (both would write its state and sums); once the first lets go, it resumes."""
    import subprocess
    import sys

    from adelabel import model_dir
    from conftest import run_cli

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_dir, "save", killed)
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", "--epochs", "2",
                           "--set", "model.hidden_size=8", "--quiet")
    assert code == 130, err
    monkeypatch.undo()
    run_file = tmp_path / "m.checkpoint" / "run.json"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; fh = open(sys.argv[1], 'rb'); "
                               "fcntl.flock(fh, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(run_file)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run_cli(capsys, "train", "--resume", tmp_path / "m")
        assert code == 2 and "another `adelabel train` is running this checkpoint" in err, err
        # A new run into the live run's folder is told so, not to delete the live run's checkpoint.
        code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", "--epochs", "1")
        assert code == 2 and f"another `adelabel train` is running into {tmp_path / 'm'} now" in err, err
    finally:
        holder.kill()
        holder.wait()
    code, _, err = run_cli(capsys, "train", "--resume", tmp_path / "m", "--quiet")
    assert code == 0 and (tmp_path / "m" / "model.safetensors").is_file(), err


def test_a_file_system_without_locks_trains_unguarded(tmp_path, monkeypatch):
    """Lustre without its flock option, some NFS mounts: no lock can be taken, and the run trains
    anyway (the lock only guards against a second resume)."""
    import errno
    import fcntl

    from adelabel import train as training

    def unsupported(fh, op):
        raise OSError(errno.ENOLCK, "No locks available")

    (tmp_path / "run.json").write_text("{}")
    monkeypatch.setattr(fcntl, "flock", unsupported)
    ran = []
    with training._owned(tmp_path, True):
        ran.append("the run's body")
    assert ran == ["the run's body"] and (tmp_path / "run.json").read_text() == "{}"


def test_a_checkpoint_folder_adelabel_did_not_write_and_a_root_folder_are_one_line(capsys, sample_data, tmp_path):
    from conftest import run_cli

    (tmp_path / "m.checkpoint").mkdir()
    (tmp_path / "m.checkpoint" / "thesis.tex").write_text("mine")
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", "--epochs", "1")
    assert code == 2 and "m.checkpoint: is in the way of this run's checkpoint and holds none adelabel wrote" in err
    assert "--resume" not in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli(capsys, "train", "--resume", "/")
    assert code == 2 and "/: names no model folder" in err and len(err.strip().splitlines()) == 1, err


def test_two_runs_into_one_folder_at_once_one_trains(sample_data, tmp_path, monkeypatch):
    """Both passed the check for a checkpoint before either made one: the later one replaced the
    earlier's, and a resume mixed the two runs' files."""
    from adelabel import train as training
    from adelabel.config import resolve
    from adelabel.errors import AdelabelError

    config = resolve("bilstm", None, [], "tag")
    monkeypatch.setattr(training, "check_no_checkpoint", lambda out: None)  # as if at the same moment
    ckpt = training.start_run(config, sample_data, tmp_path / "m", "cpu")
    first = (ckpt / "run.json").read_bytes()
    with pytest.raises(AdelabelError, match=r"another `adelabel train` into .*m started just now"):
        training.start_run(config, sample_data, tmp_path / "m", "cpu")
    assert (ckpt / "run.json").read_bytes() == first


def test_a_resume_of_a_run_that_finished_meanwhile_is_one_line(tmp_path):
    from adelabel import train as training
    from adelabel.errors import InputError

    ckpt = tmp_path / "m.checkpoint"
    ckpt.mkdir()
    with pytest.raises(InputError, match="nothing to resume\\): the run finished just now"):
        with training._owned(ckpt, True):
            pass


def test_a_stopped_training_says_how_to_carry_on(capsys, sample_data, tmp_path, monkeypatch):
    from adelabel import train as training
    from conftest import run_cli

    def stopped(config, data, out, **_):
        (training.checkpoint_dir(out)).mkdir()
        (training.checkpoint_dir(out) / training.RUN).write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", stopped)
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m")
    assert code == 130 and err.strip() == f"adelabel: training stopped; its checkpoint is kept in " \
        f"{tmp_path / 'm.checkpoint'}: `adelabel train --resume {tmp_path / 'm'}` carries on from its last finished epoch"


def test_folders_are_recorded_resolved_however_they_were_typed(sample_data, tmp_path, monkeypatch):
    """`--data ../data` meant nothing from another folder, and a resumed run (which passes the path it
    recorded, resolved) wrote another config.json than the uninterrupted run: both record the folder."""
    import json
    import shutil

    from conftest import ROOT, train_small
    from adelabel.prepare import prepare

    monkeypatch.chdir(ROOT)
    prepare("corpora/sample", tmp_path / "prepared", dim=8, w2v_epochs=1, log=lambda _: None)
    assert json.loads((tmp_path / "prepared" / "manifest.json").read_text())["corpus"] == str(ROOT / "corpora" / "sample")
    shutil.copytree(sample_data, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    train_small(Path("data"), tmp_path / "m", "train.max_epochs=1", "model.hidden_size=8", "model.char_size=8")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["data"]["dir"] == str(tmp_path / "data")


def test_a_run_killed_in_its_first_epoch_resumes_saying_none_was_scored(sample_data, tmp_path):
    killed = tmp_path / "first"
    kill_when(train_cmd(sample_data, killed), lambda line: line.startswith("training "))
    resumed = subprocess.run(CLI + ["train", "--resume", str(killed)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "after epoch 0 (no epoch scored yet)" in resumed.stderr and "-1.0000" not in resumed.stderr, resumed.stderr


def test_resuming_a_folder_with_a_whole_model_and_no_checkpoint_says_what_it_holds(capsys, tiny_model_dir, tmp_path):
    """A TERM after the model was saved, or a new run into the folder killed before its first checkpoint:
    nothing tells the two apart, so the resume does not claim success, and says what the folder holds."""
    from conftest import run_cli

    code, _, err = run_cli(capsys, "train", "--resume", tiny_model_dir)
    assert code == 2 and "no checkpoint of an unfinished run here (nothing to resume); it holds a whole model" in err
    code, _, err = run_cli(capsys, "train", "--resume", tmp_path)  # nothing there at all
    assert code == 2 and err.strip().endswith("no checkpoint of an unfinished run here (nothing to resume)"), err


def test_a_run_resumed_under_other_code_says_so_and_records_both(capsys, sample_data, tmp_path, monkeypatch):
    from adelabel import model_dir, versions as version_module
    from adelabel import train as training
    from conftest import run_cli

    out = tmp_path / "m"
    args = ["--data", sample_data, "--out", out, "--epochs", "2", "--set", "model.hidden_size=8", "--quiet"]
    real = model_dir.save
    monkeypatch.setattr(model_dir, "save", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    code, _, err = run_cli(capsys, "train", *args)
    assert code == 130, err
    started = json.loads((tmp_path / "m.checkpoint" / "run.json").read_text())["versions"]
    assert started == version_module.versions() and len(started["adelabel_code"]) == 16
    monkeypatch.setattr(model_dir, "save", real)
    upgraded = {**started, "adelabel_code": "0" * 16, "torch": "9.9.9"}
    monkeypatch.setattr(training, "versions", lambda: upgraded)
    code, _, err = run_cli(capsys, "train", "--resume", out, "-q")
    assert code == 0 and err.startswith("warning: this run started under other versions (adelabel_code "
                                        f"{started['adelabel_code']} -> 0000000000000000, torch "), err
    saved = json.loads((out / "config.json").read_text())
    assert saved["versions"] == upgraded and saved["versions_at_start"] == started
    code, _, err = run_cli(capsys, "evaluate", "--model", out, "--data", sample_data, "-q")  # and it loads
    assert code == 0, err


def test_training_into_a_folder_holding_a_model_says_it_will_replace_it(capsys, sample_data, tmp_path):
    from conftest import run_cli

    args = ["train", "--data", sample_data, "--out", tmp_path / "m", "--epochs", "1", "--set", "model.hidden_size=8"]
    code, _, err = run_cli(capsys, *args)
    assert code == 0 and "holds a model" not in err, err
    code, _, err = run_cli(capsys, *args)
    assert code == 0 and err.startswith(f"warning: {tmp_path / 'm'} holds a model; this run replaces it when it "
                                        "finishes"), err
    code, _, err = run_cli(capsys, *args, "-q")  # a script's run replaces a model too: a warning, said
    assert code == 0 and f"warning: {tmp_path / 'm'} holds a model" in err, err
