"""Tagging on Ray Data: the callable class for map_batches, and ``adelabel tag --ray`` on a local Ray."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from adelabel.errors import AdelabelError
from conftest import ROOT, run_cli


def test_the_map_batches_class_adds_our_fields_to_each_row(tiny_model_dir):
    from adelabel import Tagger
    from adelabel.ray_tagging import RayTagger

    texts = ["Severe hepatitis developed after isoniazid.", "", "Rash on day 3. Lithium was stopped."]
    batch = {"id": np.array([3, 1, 2]), "text": np.array(texts, dtype=object)}
    out = RayTagger(tiny_model_dir)(batch)
    assert list(out["id"]) == [3, 1, 2] and list(out["text"]) == texts
    expected = [a.to_dict() for a in Tagger.load(tiny_model_dir, device="cpu").analyze_pipe(texts)]
    for key in ("entities", "relations", "sentences", "ade"):
        assert list(out[key]) == [e[key] for e in expected]
    with pytest.raises(AdelabelError, match='needs a "text" column'):
        RayTagger(tiny_model_dir)({"body": np.array(["a"])})
    # As tag refuses such records: a missing value (pandas' NaN) or a number is not tagged as "nan", and an
    # input column named like a result is not overwritten.
    with pytest.raises(AdelabelError, match=r'row 1 of a batch: "text" is nan \(float\), not a string'):
        RayTagger(tiny_model_dir)({"text": np.array(["a", float("nan")], dtype=object)})
    with pytest.raises(AdelabelError, match="the column 'ade' is one adelabel writes"):
        RayTagger(tiny_model_dir)({"text": np.array(["a"]), "ade": np.array([1])})


def test_without_ray_the_option_is_a_one_line_error(capsys, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, err = run_cli(capsys, "tag", ROOT / "corpora/sample/example.txt", "--model", tiny_model_dir, "--ray",
                           "--output", tmp_path / "out.jsonl")
    assert code == 2 and err.strip() == "adelabel: error: --ray: needs Ray Data: pip install 'adelabel[ray]'"


@pytest.mark.processes
def test_tag_on_a_local_ray_writes_what_tag_writes_in_input_order(tiny_model_dir, tmp_path):
    import ray.data  # noqa: F401  (in the test extras: missing, the test fails, never skips)
    lines = (ROOT / "corpora/sample/example.txt").read_text(encoding="utf-8").splitlines()
    rows = [{"pmid": f"0{100 + i}", "n": i, "text": line} for i, line in enumerate(lines * 3)]
    src = tmp_path / "in.jsonl"
    # A blank line is a record of no text, as without Ray.
    src.write_text("".join(json.dumps(r) + "\n" + ("\n" if i == 1 else "") for i, r in enumerate(rows)),
                   encoding="utf-8")
    out = tmp_path / "tagged.jsonl"
    # The address file a `ray start` leaves (here of a cluster long gone): Ray would join it; --ray with no
    # RAY_ADDRESS starts its own. A short folder: Ray's socket paths must fit in 107 bytes.
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:6390\n")
    env = {"OMP_NUM_THREADS": "1", "RAY_ADDRESS": "", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "RAY_TMPDIR": str(ray_tmp)}
    done = subprocess.run([sys.executable, "-m", "adelabel", "tag", str(src), "--model", str(tiny_model_dir),
                           "--input-format", "jsonl", "--ray", "--workers", "1", "--batch-size", "4",
                           "--output", str(out)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(rows) + 1} records written" in done.stderr
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    plain = subprocess.run([sys.executable, "-m", "adelabel", "tag", str(src), "--model", str(tiny_model_dir),
                            "--input-format", "jsonl"], capture_output=True, text=True, cwd=ROOT, check=True)
    expected = [json.loads(line) for line in plain.stdout.splitlines()]
    assert [r.get("pmid") for r in got] == [r["pmid"] for r in rows[:2]] + [None] + [r["pmid"] for r in rows[2:]]
    assert got == expected  # the same records as without Ray, the input's fields untouched
    meta = json.loads((tmp_path / "tagged.jsonl.meta.json").read_text())
    assert meta["lines"] == len(rows) + 1 and meta["model"] == str(tiny_model_dir.resolve())
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_an_error_a_ray_worker_met_is_our_one_line():
    import ray
    import pickle

    from ray import cloudpickle

    from adelabel.errors import InputError
    from adelabel.ray_tagging import _ours

    met = InputError("models/bilstm", "model folder not found", 3)
    # As the driver gets it: pickled across from the worker, and made an instance of the cause's class
    # whose message is Ray's whole traceback.
    arrived = pickle.loads(cloudpickle.dumps(ray.exceptions.RayTaskError("_LineTagger.__init__", "Traceback ...", met)))
    ours = _ours(arrived.as_instanceof_cause())
    assert type(ours) is InputError and str(ours) == "models/bilstm:3: model folder not found"
    assert _ours(ray.exceptions.RayTaskError("f", "tb", ValueError("x"))) is None


def test_ray_refuses_lines_its_reader_would_split(capsys, tiny_model_dir, tmp_path):
    import ray.data  # noqa: F401  (in the test extras: missing, the test fails, never skips)
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "fine"}\n{"text": "a\u2028b"}\n', encoding="utf-8")
    code, _, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--input-format", "jsonl", "--ray",
                           "--output", tmp_path / "out.jsonl")
    assert code == 2 and "in.jsonl:2: holds U+2028, where Ray's reader would split or misread the line" in err, err
    assert not (tmp_path / "out.jsonl").exists()
    # A line ending converted twice, CR CR LF: Ray's reader would see an empty line after it, and every
    # later record would land one line down. A plain CRLF is fine.
    src = tmp_path / "in.txt"
    src.write_bytes(b"Aspirin-induced rash.\r\nfine\r\r\nMethotrexate hepatitis.\n")
    code, _, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--ray", "--output", tmp_path / "out.jsonl")
    assert code == 2 and "in.txt:2: holds U+000D, where Ray's reader would split" in err, err


def test_ray_options_are_checked_before_ray_starts(capsys, tiny_model_dir, tmp_path):
    text = ROOT / "corpora/sample/example.txt"
    for args, message in ((["--format", "conll"], "--ray writes jsonl, not conll"),
                          (["--backend", "onnx"], "--ray: runs the torch backend"),
                          (["--workers", "0"], "--workers: expected a whole number of at least 1, got 0")):
        code, _, err = run_cli(capsys, "tag", text, "--model", tiny_model_dir, "--ray", *args)
        assert code == 2 and message in err, err


def test_ray_checks_the_model_and_device_before_reading_the_input(capsys, tiny_model_dir, tmp_path):
    import ray.data  # noqa: F401  (in the test extras: missing, the test fails, never skips)
    src = tmp_path / "in.txt"
    src.write_text("fine\na\u2028b\n", encoding="utf-8")  # input --ray refuses, at its line 2
    for args, message in ((["--precision", "fp16", "--device", "cpu"], "fp16"),
                          (["--model", tmp_path / "nowhere"], "nowhere")):
        code, _, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--ray", *args)
        assert code == 2 and message in err and "in.txt:2" not in err, err


def test_quiet_silences_what_ray_writes_to_standard_error_and_only_that(capfd):
    # Ray's C++ core writes to descriptor 2 directly: --quiet sends it nowhere while Ray runs.
    import os

    from adelabel.ray_tagging import _stderr_silenced

    with _stderr_silenced(True):
        os.write(2, b"core_worker.cc: noise\n")
        print("INFO streaming_executor", file=sys.stderr)
    print("after", file=sys.stderr)
    with _stderr_silenced(False):
        os.write(2, b"kept\n")
    assert capfd.readouterr().err == "after\nkept\n"


@pytest.mark.processes
def test_a_terminated_ray_tag_exits_as_plain_tag_does_and_leaves_no_temporary_file(tiny_model_dir, tmp_path):
    """Ray's driver installs its own TERM handler (exit status 15); ours unwinds like Ctrl-C: 143."""
    import os
    import signal
    import time

    import ray.data  # noqa: F401  (in the test extras: missing, the test fails, never skips)
    source = tmp_path / "many.txt"
    source.write_text("Clozapine-induced agranulocytosis after lithium, with tremor and rash.\n" * 40_000, encoding="utf-8")
    env = {"OMP_NUM_THREADS": "1", "RAY_ADDRESS": "", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.Popen([sys.executable, "-m", "adelabel", "tag", str(source), "--model", str(tiny_model_dir), "--ray",
                            "--workers", "1", "--output", str(tmp_path / "o.jsonl"), "-q"], stderr=subprocess.PIPE,
                           text=True, cwd=ROOT, env=env)
    deadline = time.time() + 240
    while not list(tmp_path.glob(".o.jsonl.tmp-*")) and time.time() < deadline and run.poll() is None:
        time.sleep(0.1)
    assert run.poll() is None, run.stderr.read()[-3000:]
    assert list(tmp_path.glob(".o.jsonl.tmp-*"))  # killed while writing, not before it began
    os.kill(run.pid, signal.SIGTERM)
    assert run.wait(120) == 143, run.stderr.read()[-3000:]
    assert not list(tmp_path.glob("*o.jsonl*"))


def test_an_ensemble_with_a_classifier_is_refused_with_or_without_ray(capsys, tiny_model_dir, tmp_path, monkeypatch):
    """As without --ray: a classifier among several --model folders is refused by name, not loaded alone
    (the Ray actor took the first folder and dropped the rest)."""
    from adelabel import tagging_io
    from adelabel.errors import OptionError
    from adelabel.ray_tagging import RayTagger

    classifier = tmp_path / "cls"
    monkeypatch.setattr(tagging_io, "task_of", lambda m: "classify" if Path(m) == classifier else "tag")
    text = ROOT / "corpora/sample/example.txt"
    for ray in ([], ["--ray"]):
        code, _, err = run_cli(capsys, "tag", text, "--model", classifier, "--model", tiny_model_dir, *ray)
        assert code == 2 and "--model: an ensemble is of taggers; give one classifier" in err, err
    with pytest.raises(OptionError, match="an ensemble is of taggers"):
        RayTagger([classifier, tiny_model_dir])


def test_a_cluster_nothing_answers_for_is_one_line_not_a_hang(capsys, tiny_model_dir, tmp_path, monkeypatch):
    """Ray's driver retried an address nothing answered on without end, silent under --quiet."""
    import ray.data  # noqa: F401  (in the test extras: missing, the test fails, never skips)
    src = tmp_path / "in.txt"
    src.write_text("Rash after lamotrigine.\n", encoding="utf-8")
    for address, reason in (("127.0.0.1:1", "Connection refused"), ("ray://127.0.0.1:1", "Connection refused")):
        monkeypatch.setenv("RAY_ADDRESS", address)
        code, _, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--ray", "--output", tmp_path / "o.jsonl",
                               "-q")
        assert code == 2 and err.strip() == f"adelabel: error: --ray: cannot reach the cluster RAY_ADDRESS={address} " \
                                            f"names ({reason})", err
    monkeypatch.setenv("RAY_ADDRESS", "localhost:99999")  # taken modulo 65536 by the system, it named another
    code, _, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--ray", "--output", tmp_path / "o.jsonl", "-q")
    assert code == 2 and "names port 99999, which no port is (1 to 65535)" in err, err
    assert not list(tmp_path.glob("*o.jsonl*"))


def test_a_stopped_ray_run_says_so_in_its_own_line(capsys, tiny_model_dir, tmp_path, monkeypatch):
    """Stopped (Ctrl-C, a TERM), the last line was Ray's "execution failed", which reads as bad data."""
    import adelabel.ray_tagging

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(adelabel.ray_tagging, "tag_with_ray", stopped)
    src = tmp_path / "in.txt"
    src.write_text("Rash after lamotrigine.\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--ray", "--output", tmp_path / "o.jsonl")
    assert code == 130 and err.splitlines()[-1] == (f"adelabel: stopped; {tmp_path / 'o.jsonl'} is left as it was "
                                                    "(--ray writes it whole, when complete)"), err
