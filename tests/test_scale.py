"""Scale: mixed precision, several training processes (DDP over gloo on the CPU, as torchrun starts
them), and the package run as ``python -m adelabel``. The GPU side of the same code is checked by
benchmarks/gpu_check.sh on a GPU machine."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run_cli, train_small

TINY = ("model.hidden_size=8", "model.dense_size=8", "model.char_size=8", "model.gate_size=8")


def test_the_package_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "adelabel", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and "tag" in done.stdout


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "gpu_check: --device: expected cuda, cuda:N or cpu, got 'tpu'"),
    (["--device", "cpu", "--data", "/nonexistent"], "gpu_check: --data /nonexistent: not a prepared data folder"),
])
def test_the_gpu_check_refuses_bad_arguments_in_one_line_before_any_work(args, message, tmp_path):
    """Exit 2 (1 means the CPU and the GPU disagree), not a traceback after the work began."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), *args, "--work", str(tmp_path / "w")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith(message) and len(done.stderr.splitlines()) == 1, done.stderr
    assert not (tmp_path / "w").exists()


def test_the_command_line_imports_torch_only_once_a_command_has_set_its_log_level():
    """torch reads TORCH_CPP_LOG_LEVEL when first imported; `train` sets it (-q, and every torchrun rank
    but the first) before its own imports, so nothing the command line runs first may import torch."""
    code = ("import sys, adelabel.cli\nsys.argv = ['adelabel', 'train', '--help']\ntry:\n    adelabel.cli.main()\n"
            "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("training", [True, False])
def test_a_cpu_without_native_bf16_runs_the_recurrent_layers_in_fp32_under_autocast(monkeypatch, training):
    """oneDNN has no bf16 LSTM on an AVX2-only CPU: under bf16 autocast its kernel failed to build, and
    `train --precision bf16` ended in a traceback there. Such a CPU runs the layer in fp32."""
    from adelabel import precision
    from adelabel.models.base import run_packed

    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(6, 5, batch_first=True, bidirectional=True).train(training)
    x, lengths = torch.randn(4, 7, 6), torch.tensor([7, 5, 7, 6])
    with torch.no_grad():
        plain = run_packed(rnn, x, lengths)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = run_packed(rnn, x, lengths)
    assert mixed.dtype == torch.float32 and torch.equal(mixed, plain)


def test_bf16_on_a_cpu_without_it_says_it_runs_emulated(capsys, monkeypatch, tiny_model_dir, sample_data, tmp_path):
    from adelabel import precision

    source = tmp_path / "in.txt"
    source.write_text("Rash after naproxen.\n", encoding="utf-8")
    for native in (False, True):
        monkeypatch.setattr(precision, "native_bf16", lambda: native)
        code, out, err = run_cli(capsys, "tag", source, "--model", tiny_model_dir, "--precision", "bf16",
                                 "--device", "cpu")
        assert code == 0 and out.count("\n") == 1, err
        said = "warning: bf16: this CPU has no native bfloat16 arithmetic (AVX-512 BF16 or AMX); bf16 runs " \
               "emulated here, slower than fp32\n"
        assert (said in err) != native, err
    # Said once the inputs passed their checks: an error stays one line.
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    # evaluate says it too (the Python API's warning is the commands' to print, as their own line).
    code, _, err = run_cli(capsys, "evaluate", "--model", tiny_model_dir, "--data", sample_data, "--precision", "bf16",
                           "--device", "cpu", "-q")
    assert code == 0 and err.count("bf16 runs emulated here") == 1 and "EmulatedPrecisionWarning" not in err, err
    code, _, err = run_cli(capsys, "tag", tmp_path / "none.txt", "--model", tiny_model_dir, "--precision", "bf16",
                           "--device", "cpu")
    assert code == 2 and err.strip() == f"adelabel: error: {tmp_path / 'none.txt'}: file not found", err


def test_bf16_training_on_the_cpu_saves_fp32_weights_that_load_anywhere(sample_data, tmp_path):
    from adelabel import Tagger

    out = train_small(sample_data, tmp_path / "bf16", "train.max_epochs=1", "train.precision=bf16", *TINY)
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["precision"] == "bf16"
    tagger = Tagger.load(out, device="cpu")
    assert all(p.dtype == torch.float32 for p in tagger.model.parameters())
    text = "Severe hepatitis developed after two weeks of isoniazid."
    # bf16 inference goes the same path and returns the same kind of result: on the CPU with the
    # tagger's and the gate's BiLSTMs in bf16 and every other layer as saved.
    low = Tagger.load(out, device="cpu", precision="bf16")
    assert [s.end for s in low.analyze(text).sentences] == [len(text)]
    assert low.model.rnn.weight_hh_l0.dtype == low.model.gate.rnn.weight_hh_l0.dtype == torch.bfloat16
    lowered = {n for n, p in low.model.named_parameters() if p.dtype == torch.bfloat16}
    assert lowered and all(n.startswith(("rnn.", "gate.rnn.")) for n in lowered)
    assert abs(low.analyze(text).sentences[0].ade - tagger.analyze(text).sentences[0].ade) < 0.05


def test_an_overflowed_fp16_step_is_skipped_and_not_taken_for_divergence():
    """With loss scaling (fp16), a batch whose loss overflowed skips its step, as the scaler skips steps
    whose gradients did, and leaves the epoch's mean; an epoch of nothing else diverged. Without
    scaling, one non-finite loss is divergence."""
    from types import SimpleNamespace

    from adelabel.train import run_epoch

    class Batch:
        def to(self, device):
            return self

    cfg = SimpleNamespace(train=SimpleNamespace(word_dropout=0.0, clip_norm=5.0, precision="fp32"))

    def epoch(values, scaled):
        model = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.ones_(model.weight)
        losses = iter(values)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu", enabled=scaled, init_scale=2.0)
        mean = run_epoch(lambda batch: model.weight.sum() * next(losses), model, optimizer, scaler,
                         [Batch() for _ in values], cfg, torch.Generator(), 1, torch.device("cpu"), lambda n, t: None)
        return mean, model.weight.item()

    mean, weight = epoch([1.0, float("inf"), 3.0], scaled=True)
    # Steps of 0.1 x 1 and 0.1 x 3 (the inf batch took none); losses 1 x 1 and 0.9 x 3.
    assert weight == pytest.approx(0.6) and mean == pytest.approx((1 + 2.7) / 2)
    mean, weight = epoch([float("inf"), float("nan")], scaled=True)
    assert math.isnan(mean) and weight == 1.0
    assert not math.isfinite(epoch([1.0, float("inf"), 3.0], scaled=False)[0])


def test_fp16_and_unknown_precisions_are_refused_on_the_cpu(capsys, tiny_model_dir, sample_data, tmp_path):
    from adelabel import Tagger
    from adelabel.errors import OptionError

    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", "--precision", "fp16",
                           "--device", "cpu")
    assert code == 2 and err.strip() == "adelabel: error: --precision fp16: runs on a GPU only; on the CPU use bf16"
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", "--set",
                           "train.precision=fp16", "--device", "cpu")
    assert code == 2 and "train.precision fp16: runs on a GPU only" in err
    code, _, err = run_cli(capsys, "tag", ROOT / "corpora/sample/example.txt", "--model", tiny_model_dir,
                           "--precision", "half")
    assert code == 2 and "--precision: expected fp32, bf16, fp16, got 'half'" in err
    code, _, err = run_cli(capsys, "evaluate", "--model", tiny_model_dir, "--data", sample_data, "--precision", "fp16",
                           "--device", "cpu")
    assert code == 2 and "runs on a GPU only" in err
    # The Python API names its own arguments, where the command line names its options.
    with pytest.raises(OptionError, match="^precision fp16: runs on a GPU only"):
        Tagger.load(tiny_model_dir, device="cpu", precision="fp16")
    with pytest.raises(OptionError, match="^device: expected auto, cpu, cuda or cuda:N, got 'tpu'"):
        Tagger.load(tiny_model_dir, device="tpu")
    assert not (tmp_path / "m").exists()


def test_evaluate_in_bf16_scores_like_fp32(capsys, sample_model, sample_data, tmp_path):
    scores = {}
    for precision in ("fp32", "bf16"):
        code, _, err = run_cli(capsys, "evaluate", "--model", sample_model, "--data", sample_data, "--device", "cpu",
                               "--precision", precision, "--json", tmp_path / f"{precision}.json")
        assert code == 0, err
        scored = json.loads((tmp_path / f"{precision}.json").read_text())
        assert scored["evaluated"]["precision"] == precision  # the option reached the run
        scores[precision] = scored["annotated_only"]["micro"]["f1"]
    assert scores["fp32"] > 0.3
    assert abs(scores["bf16"] - scores["fp32"]) <= 0.05, scores


@pytest.mark.processes
def test_two_processes_train_with_ddp_over_gloo_and_resume(sample_data, tmp_path):
    """torchrun with two CPU processes: each trains on half of every epoch's batches, rank 0 alone
    writes; a checkpoint a one-process run left resumes under torchrun too."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on two cores
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    out = tmp_path / "ddp"
    args = ["train", "--data", str(sample_data), "--out", str(out), "--epochs", "2", "--device", "cpu",
            *(x for kv in TINY for x in ("--set", kv))]
    done = subprocess.run(torchrun + ["-m", "adelabel", *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("training bilstm") == 1 and "x 2 processes" in done.stderr
    assert done.stderr.count("find_unused_parameters") <= 1  # rank 0's, not every rank's
    assert json.loads((out / "config.json").read_text())["processes"] == 2
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["processes"], r["device"]) for r in log] == [(1, 2, "cpu"), (2, 2, "cpu")]
    assert not out.with_name("ddp.checkpoint").exists()
    # A refused --out: every rank refuses at once (none waits for the others to join), one says so.
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    refused = subprocess.run(torchrun + ["-m", "adelabel", *[x if x != str(out) else str(foreign) for x in args]],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert refused.returncode != 0 and refused.stderr.count("adelabel: error: --out") == 1, refused.stderr[-3000:]
    assert "via 9" not in refused.stderr, refused.stderr[-3000:]  # torchrun had to kill a rank left waiting
    # Refused after joining, by rank 0 alone (something put in the model's place while it trained): every
    # rank stops at once, and only rank 0 says why (the others learnt only that it had gone).
    taken = tmp_path / "taken"
    run = subprocess.Popen(torchrun + ["-m", "adelabel", *[x if x != str(out) else str(taken) for x in args]],
                           stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path)
    said = []
    for line in run.stderr:
        said.append(line)
        if line.startswith("epoch   1 "):
            taken.mkdir()
            (taken / "keep.txt").write_text("mine")
    assert run.wait(timeout=300) != 0
    errors = [line for line in said if "adelabel: error" in line]
    assert len(errors) == 1 and "a folder adelabel did not write" in errors[0], "".join(said)[-3000:]
    assert "Traceback" not in "".join(line for line in said if line.startswith("[rank")), "".join(said)[-3000:]

    # A one-process run killed after its first epoch carries on under torchrun.
    from test_runs import kill_when

    killed = tmp_path / "killed"
    kill_when([sys.executable, str(ROOT / "cli.py"), "train", "--data", str(sample_data), "--out", str(killed),
               "--epochs", "3", "--device", "cpu", *(x for kv in TINY for x in ("--set", kv))],
              lambda line: line.startswith("epoch   1"))
    resumed = subprocess.run(torchrun + ["-m", "adelabel", "train", "--resume", str(killed)], capture_output=True,
                             text=True, env=env, cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("resuming bilstm") == 1
    # Each step now averages two batches, not one: allowed, and said.
    assert resumed.stderr.count("epochs so far ran as 1 process, these run as 2: each step now averages 2 "
                                "batches rather than 1") == 1, resumed.stderr[-3000:]
    assert [json.loads(line)["epoch"] for line in (killed / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3]

    # A torchrun run killed after its first epoch carries on to the weights of the uninterrupted run:
    # each rank gets back its own random generator (they drew other dropout masks).
    import signal

    three = [x if x != "2" else "3" for x in args]
    whole = subprocess.run(torchrun + ["-m", "adelabel", *three, "-q"], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    # --quiet: no rank's progress, nor DDP's C++ warnings; only adelabel's own (a tiny model's dev F1 0, say)
    assert all(line.startswith("warning: ") for line in whole.stderr.splitlines()), whole.stderr
    cut = tmp_path / "cut"
    run = subprocess.Popen(torchrun + ["-m", "adelabel", *[x if x != str(out) else str(cut) for x in three]],
                           stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path,
                           start_new_session=True)
    for line in run.stderr:
        if "epoch   1 " in line:
            # The launcher and both ranks at once (torchrun starts the ranks in sessions of their own).
            for proc in Path("/proc").iterdir():
                try:
                    if str(cut).encode() in (proc / "cmdline").read_bytes():
                        os.kill(int(proc.name), signal.SIGKILL)
                except (OSError, ValueError):
                    continue
            break
    run.wait(timeout=120)
    assert not cut.exists() and cut.with_name("cut.checkpoint").is_dir()
    again = subprocess.run(torchrun + ["-m", "adelabel", "train", "--resume", str(cut)], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=600)
    assert again.returncode == 0 and "epochs so far ran as" not in again.stderr, again.stderr[-3000:]
    assert (cut / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    from test_runs import log_without_timings  # every epoch's loss and dev scores, not only the kept one's

    assert log_without_timings(cut) == log_without_timings(out)

    # Fewer batches than processes: each rank trains on a batch (the epoch's first again where they run
    # short), where leaving the rest out trained on nothing and saved the starting weights.
    few = subprocess.run(torchrun + ["-m", "adelabel", *[x if x != str(out) else str(tmp_path / "few") for x in args],
                                     "--set", "train.batch_size=1000"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)
    assert few.returncode == 0, few.stderr[-3000:]
    losses = [json.loads(line)["loss"] for line in (tmp_path / "few" / "train_log.jsonl").read_text().splitlines()]
    assert all(loss > 0.1 for loss in losses), losses


def test_jsonl_input_carries_its_fields_to_each_record(capsys, tiny_model_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [{"id": 7, "text": "Severe hepatitis developed after isoniazid."},
            {"pmid": "123", "text": "", "source": {"journal": "X"}},
            {"id": "ü", "text": "Rash on day 3. Lithium was stopped."}]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    code, out, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--input-format", "jsonl")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 3
    for row, record in zip(rows, records):
        assert {k: record[k] for k in row} == row  # every input field, the text included, unchanged
        assert {"entities", "relations", "sentences", "ade"} <= set(record)
    code, out, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--input-format", "jsonl", "--format", "conll")
    assert code == 0, err
    assert '# fields = {"id": 7}' in out.splitlines()[2]
    # Line breaks JSON leaves as they are would split the comment: escaped, the line reads back whole.
    src.write_text(json.dumps({"id": "a\u2028b\x85c\u2029", "text": "Rash."}, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    code, out, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--input-format", "jsonl", "--format", "conll")
    assert code == 0, err
    fields = next(line for line in out.splitlines() if line.startswith("# fields = "))
    assert json.loads(fields.removeprefix("# fields = ")) == {"id": "a\u2028b\x85c\u2029"}
    # The same in JSONL output, a text's own line breaks too: one record per line for splitlines' readers.
    src.write_text(json.dumps({"id": "a\u2028b", "text": "Rash\x85on\u2029day 3."}, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    code, out, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--input-format", "jsonl")
    assert code == 0 and len(out.splitlines()) == 1, out
    record = json.loads(out)
    assert record["id"] == "a\u2028b" and record["text"] == "Rash\x85on\u2029day 3."


def test_standard_output_is_utf8_whatever_the_locale(tiny_model_dir, tmp_path):
    """`adelabel tag f.txt > out.jsonl` on Windows writes in its code page: a β was a traceback there,
    and an è one byte that no JSON reader takes for UTF-8."""
    src = tmp_path / "in.txt"
    src.write_text("Propranolol (a \u03b2-blocker) induced fi\u00e8vre.\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "adelabel", "tag", str(src), "--model", str(tiny_model_dir), "-q"],
                          capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONIOENCODING": "cp1252"}, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert json.loads(done.stdout.decode("utf-8"))["text"] == "Propranolol (a \u03b2-blocker) induced fi\u00e8vre."


@pytest.mark.parametrize("line, message", [
    ('{"text": "a"', "in.jsonl:2: not a JSON object"),
    ('["text"]', 'in.jsonl:2: expected a JSON object with a "text" field, got an array'),
    ('{"id": 3}', 'in.jsonl:2: no "text" string in the record'),
    ('{"text": null}', 'in.jsonl:2: "text" is null, not a string'),
    ('{"text": 5}', 'in.jsonl:2: "text" is a number, not a string'),
    ('{"text": [true]}', 'in.jsonl:2: "text" is an array, not a string'),
    ('{"text": "a", "entities": []}', "in.jsonl:2: field 'entities' is one adelabel writes"),
    ('{"text": "a\tb"}', "in.jsonl:2: not a JSON object (Invalid control character at column 12)"),
])
def test_bad_jsonl_input_is_one_line_naming_file_and_line(capsys, tiny_model_dir, tmp_path, line, message):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "fine"}\n' + line + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--input-format", "jsonl", "--output", out)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_blank_jsonl_line_is_a_record_without_text(capsys, tiny_model_dir, tmp_path):
    """As a blank line of text input is: one record per input line, whatever a JSONL export ends with
    (one blank line aborted the run, after the hours it may have taken)."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "Rash after amoxicillin.", "id": 1}\n\n \t\n{"text": "fine", "id": 2}\n\n',
                   encoding="utf-8")
    code, out, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "--input-format", "jsonl", "-q")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r.get("id") for r in records] == [1, None, None, 2, None], err
    assert [r["text"] for r in records[1:3]] == ["", ""] and not records[1]["entities"] and records[1]["ade"] == 0


def test_a_pipe_is_read_as_standard_input_is(capsys, tiny_model_dir, tmp_path):
    """`adelabel tag <(zcat x.gz)` or a named pipe: read once, start to end (refused before as a file
    not found); --resume, which needs the file again, is refused for it."""
    import threading

    line = "Rash after amoxicillin.\n"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "w", encoding="utf-8") as fh:
            fh.write(line * 3)
    writer = threading.Thread(target=feed)
    writer.start()
    code, out, err = run_cli(capsys, "tag", fifo, "--model", tiny_model_dir, "-q")
    writer.join()
    assert code == 0 and [json.loads(r)["text"] for r in out.splitlines()] == [line.strip()] * 3, err
    code, _, err = run_cli(capsys, "tag", fifo, "--model", tiny_model_dir, "--output", tmp_path / "o.jsonl", "--resume")
    assert code == 2 and "--resume: carries on jsonl written to a file (--output FILE) from an input file, not " \
        "standard input or output, a pipe or a device" in err, err
    # Where a file is read twice (a corpus), a pipe is refused as what it is.
    from adelabel.corpus.files import check_file
    from adelabel.errors import InputError

    with pytest.raises(InputError, match="is a pipe or a device, not a file"):
        check_file(fifo)


def test_a_carriage_return_inside_a_line_is_kept_with_a_warning(capsys, tiny_model_dir, tmp_path):
    """Old Mac line endings: lines end at line feeds only (as wc -l and every JSONL reader count them),
    so such a file is one record; the user is told, once, where."""
    src = tmp_path / "in.txt"
    src.write_bytes(b"Rash after amoxicillin.\r\nHepatitis after isoniazid.\rFever.\rNausea.\r\n")
    code, out, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, "-q")
    assert code == 0 and [json.loads(r)["text"] for r in out.splitlines()] == \
        ["Rash after amoxicillin.", "Hepatitis after isoniazid.\rFever.\rNausea."]
    assert err.count("warning") == 1 and f"{src}:2: a carriage return inside the line is read as part of it" in err


def test_an_error_naming_a_file_is_one_line_whatever_its_name(capsys, tmp_path):
    src = tmp_path / "two\nlines.txt"
    src.write_bytes(b"caf\xe9\n")
    code, _, err = run_cli(capsys, "tag", src, "-q")
    assert code == 2 and err.strip() == f"adelabel: error: {tmp_path}/two\\nlines.txt:1: not UTF-8 text (byte 4 of " \
        "the line: b'\\xe9'); save it as UTF-8, for example with iconv -f ITS-ENCODING -t UTF-8 (often " \
        "WINDOWS-1252 or LATIN1)", err


def test_tag_options_are_checked(capsys, tiny_model_dir, tmp_path):
    text = ROOT / "corpora/sample/example.txt"
    for args, message in ((["--workers", "0"], "--workers: expected a whole number of at least 1, got 0"),
                          (["--input-format", "csv"], "--input-format: expected text, jsonl or paragraphs, got 'csv'"),
                          (["--input-format", "jsonl", "--format", "brat", "--output", str(tmp_path / "b")],
                           "--format brat: a .txt/.ann pair holds no record fields")):
        code, _, err = run_cli(capsys, "tag", text, "--model", tiny_model_dir, *args)
        assert code == 2 and message in err, err


@pytest.mark.processes
def test_two_workers_write_what_one_writes_in_input_order(tiny_model_dir, tmp_path):
    lines = (ROOT / "corpora/sample/example.txt").read_text(encoding="utf-8").splitlines() * 40
    src = tmp_path / "in.txt"
    src.write_text("\n".join(f"{i}. {line}" for i, line in enumerate(lines)) + "\n", encoding="utf-8")
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}.jsonl"
        done = subprocess.run([sys.executable, "-m", "adelabel", "tag", str(src), "--model", str(tiny_model_dir),
                               "--workers", workers, "--batch-size", "16", "--output", str(out)],
                              capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr
        outputs.append(out.read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1]
    assert [json.loads(line)["text"] for line in outputs[1].splitlines()] == src.read_text(encoding="utf-8").splitlines()


def _children(pid: int) -> list[int]:
    """The worker processes ``pid`` spawned (not multiprocessing's resource tracker)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid \
                    and b"spawn_main" in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _tag_with_workers_then(signal_of, tiny_model_dir, tmp_path, wait: float) -> subprocess.CompletedProcess:
    """``tag --workers 2`` on a long input; ``wait`` seconds after its workers start, ``signal_of(parent
    pid, worker pids)``; then what the parent exited with."""
    import time

    src = tmp_path / "in.txt"
    src.write_text("Severe hepatitis developed after isoniazid was started.\n" * 200_000, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "adelabel", "tag", str(src), "--model", str(tiny_model_dir),
                             "--workers", "2", "--output", str(out), "-q"], stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(wait)
    signal_of(proc.pid, _children(proc.pid))
    _, err = proc.communicate(timeout=120)
    assert not out.exists()
    return subprocess.CompletedProcess(proc.args, proc.returncode, sorted(p.name for p in tmp_path.iterdir()), err)


@pytest.mark.processes
def test_ctrl_c_stops_the_workers_quietly(tiny_model_dir, tmp_path):
    """Ctrl-C reaches the whole process group: the parent stops, and no worker prints a traceback (the
    workers still loading the model, where each printed one)."""
    import signal

    done = _tag_with_workers_then(lambda parent, _: os.killpg(parent, signal.SIGINT), tiny_model_dir, tmp_path, 0.5)
    assert done.returncode == 130 and "Traceback" not in done.stderr, done.stderr
    # What was tagged stays for tag --resume, and the stop says so (as a worker's death does, below).
    assert done.stdout == [".out.jsonl.partial", ".out.jsonl.partial.json", "in.txt"]
    assert done.stderr.strip().splitlines()[-1].endswith("the same command with --resume carries on"), done.stderr


@pytest.mark.processes
def test_a_term_to_the_process_group_is_a_stop_not_a_death(tiny_model_dir, tmp_path):
    """systemctl stop, or a scheduler, TERMs every process: the workers must leave stopping to the parent."""
    import signal

    done = _tag_with_workers_then(lambda parent, _: os.killpg(parent, signal.SIGTERM), tiny_model_dir, tmp_path, 2)
    assert done.returncode == 143 and "died" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == [".out.jsonl.partial", ".out.jsonl.partial.json", "in.txt"]


@pytest.mark.processes
def test_a_worker_that_dies_is_one_line(tiny_model_dir, tmp_path):
    import signal

    done = _tag_with_workers_then(lambda _, workers: os.kill(max(workers), signal.SIGKILL), tiny_model_dir, tmp_path, 3)
    assert done.returncode == 2 and done.stderr.strip() == \
        "adelabel: error: --workers: a worker process died (killed, or out of memory); the records tagged so far " \
        f"are kept beside {tmp_path / 'out.jsonl'}: the same command with --resume carries on", done.stderr
    assert done.stdout == [".out.jsonl.partial", ".out.jsonl.partial.json", "in.txt"]


def _load_dying_mid_message():
    """In a worker: every result it sends stops half way, and the worker dies (as a kill -9 or the
    out-of-memory killer can do while a large result is being written)."""
    import struct
    from multiprocessing.connection import Connection

    def send_bytes(self, data):
        self._send(struct.pack("!i", 1 << 20) + b"the first bytes of a long message")
        os._exit(9)

    Connection.send_bytes = Connection.send = send_bytes
    return lambda chunk: chunk


def _load_echo():
    return lambda chunk: None if chunk is None else [text.upper() for text in chunk]


def _load_failing():
    import time

    from adelabel.errors import InputError

    def process(chunk):
        if "slow" in chunk:
            time.sleep(1)
        if "bad" in chunk:
            raise InputError("in.txt", "cannot be read", 3)
        if "unpicklable" in chunk:
            return [lambda: None]
        return chunk
    return process


def _load_refusing():
    raise ValueError("no model here")


def _in_workers_within(seconds: float, *args) -> tuple[list, Exception | None]:
    """What ``in_workers(*args)`` yields, and what it raises, or a failure if it takes longer (a hang)."""
    import threading

    from adelabel.workers import in_workers

    got, raised, done = [], [], threading.Event()

    def run():
        try:
            got.extend(in_workers(*args))
        except Exception as error:  # noqa: BLE001
            raised.append(error)
        done.set()
    threading.Thread(target=run, daemon=True).start()
    assert done.wait(seconds), f"in_workers still running after {seconds} s"
    return got, (raised or [None])[0]


@pytest.mark.processes
def test_a_worker_that_dies_half_way_through_a_result_is_an_error_not_a_hang():
    """concurrent.futures' pool waited for the rest of such a message for ever."""
    from adelabel.errors import AdelabelError

    _, error = _in_workers_within(60, [["a"], ["b"], ["c"]], 2, _load_dying_mid_message, ())
    assert isinstance(error, AdelabelError) and "a worker process died" in str(error), error


@pytest.mark.processes
def test_workers_keep_the_order_and_raise_errors_in_their_place():
    from adelabel.errors import InputError

    chunks = [[f"line {i}", f"more {i}"] for i in range(40)] + [None]
    got, error = _in_workers_within(60, chunks, 3, _load_echo, ())
    assert got == [_load_echo()(c) for c in chunks] and error is None
    # No input, no worker started (this load would fail in one).
    assert _in_workers_within(60, [], 2, _load_refusing, ()) == ([], None)
    got, error = _in_workers_within(60, [["a"]], 2, _load_refusing, ())
    assert got == [] and isinstance(error, ValueError) and str(error) == "no model here"
    # The slow first chunk is given before the second's error, raised with the worker's traceback.
    got, error = _in_workers_within(60, [["slow"], ["bad"], ["c"]], 2, _load_failing, ())
    assert got == [["slow"]] and isinstance(error, InputError) and str(error) == "in.txt:3: cannot be read"
    assert "in process" in str(error.__cause__) and "raise InputError" in str(error.__cause__)
    # A result that cannot be sent back is an error of its own, not a worker's death.
    got, error = _in_workers_within(60, [["a"], ["unpicklable"]], 2, _load_failing, ())
    assert got == [["a"]] and "pickle" in str(error).lower() and "died" not in str(error), error


@pytest.mark.processes
def test_workers_read_no_further_ahead_than_a_slow_chunk_allows():
    """Results that come back early wait for a slow one in order: the input is read at most twice the
    workers' number of chunks times AHEAD ahead of what was given back, however long the slow one takes (the other
    workers were fed the whole input before)."""
    from adelabel.workers import AHEAD, in_workers

    read: list[int] = []

    def chunks():
        yield ["slow"]
        for i in range(100):
            read.append(i)
            yield [f"c{i}"]

    results = in_workers(chunks(), 2, _load_failing, ())
    try:
        assert next(results) == ["slow"] and len(read) <= AHEAD * 2, len(read)
        assert list(results) == [[f"c{i}"] for i in range(100)]
    finally:
        results.close()


@pytest.mark.processes
def test_workers_end_when_their_parent_is_killed(tiny_model_dir, tmp_path):
    """Killed with -9, the parent cannot stop them: they must see it go, whatever they are doing."""
    import signal
    import time

    pids = []
    done = _tag_with_workers_then(lambda parent, workers: (pids.extend(workers), os.kill(parent, signal.SIGKILL)),
                                  tiny_model_dir, tmp_path, 3)
    assert done.returncode == -signal.SIGKILL and len(pids) == 2

    def running(pid):
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    deadline = time.monotonic() + 20
    while any(map(running, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(running, pids))


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_the_dense_recurrent_path_equals_the_packed_one(cell):
    """On a CPU run_packed runs each direction on the dense batch (the backward one reversed within
    each length); outputs and gradients must be those of torch's packed sequence."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from adelabel.models import base

    torch.manual_seed(0)
    for bidirectional in (True, False):
        for layers in (1, 2):
            rnn = getattr(torch.nn, cell)(7, 5, num_layers=layers, bidirectional=bidirectional, batch_first=True)
            x = torch.randn(4, 9, 7, requires_grad=True)
            lengths = torch.tensor([9, 8, 9, 7])  # full enough for the dense path
            packed, _ = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
            expected = pad_packed_sequence(packed, batch_first=True, total_length=9)[0]
            grads = torch.autograd.grad(expected.sum(), [x, *rnn.parameters()])
            dense = base.run_packed(rnn, x, lengths)
            assert float(lengths.sum()) >= base.DENSE_FILL * x.shape[0] * x.shape[1]
            assert torch.allclose(dense, expected, atol=1e-6)
            assert (dense[1, 8:] == 0).all() and (dense[3, 7:] == 0).all()
            for a, b in zip(torch.autograd.grad(dense.sum(), [x, *rnn.parameters()]), grads):
                assert torch.allclose(a, b, atol=1e-5)
            # A sparse batch goes the packed way, with the same result.
            short = torch.tensor([9, 1, 2, 1])
            packed, _ = rnn(pack_padded_sequence(x, short, batch_first=True, enforce_sorted=False))
            assert torch.allclose(base.run_packed(rnn, x, short),
                                  pad_packed_sequence(packed, batch_first=True, total_length=9)[0], atol=1e-6)
    assert "_directions" not in "".join(rnn.state_dict())


def test_tagging_meets_few_recurrent_shapes_and_the_same_outputs():
    """Out of training, run_packed pads a batch to a coarse grid of shapes: oneDNN keeps a kernel for
    every shape an LSTM meets, and a tagger serving texts one call at a time met a new one nearly every call
    (its memory grew by 100 MiB over 4,000 calls). The real positions' outputs are unchanged; GRU and
    RNN layers, which torch runs itself, keep their shapes."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from adelabel.models import base

    torch.manual_seed(0)
    rnn = torch.nn.LSTM(7, 5, bidirectional=True, batch_first=True).eval()
    met = set()
    hooks = [base._direction(rnn, 0, reverse).register_forward_pre_hook(lambda _, args: met.add(args[0].shape[:2]))
             for reverse in (False, True)]
    with torch.inference_mode():
        for batch in range(1, 13):
            for width in range(1, 70):
                x = torch.randn(batch, width, 7)
                lengths = torch.full((batch,), width)
                lengths[0] = max(1, width - 1)
                out = base.run_packed(rnn, x, lengths)
                assert out.shape == (batch, width, 10)
                if width in (9, 33):  # padded to 10 and 36 wide
                    packed, _ = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
                    assert torch.allclose(out, pad_packed_sequence(packed, batch_first=True, total_length=width)[0],
                                          atol=1e-6)
    # Widths on the grid up to 80 (17 of them), by 1, 2, 4, 8 or 12 rows; 828 shapes as given.
    assert len(met) <= 17 * 5 and all(b in (1, 2) or b % 4 == 0 for b, _ in met), sorted(met)
    # Training steps keep their shapes (a seed takes the steps it always took).
    met.clear()
    rnn.train()
    base.run_packed(rnn, torch.randn(3, 9, 7), torch.tensor([9, 9, 8]))
    assert met == {(3, 9)}
    for hook in hooks:
        hook.remove()
    gru = torch.nn.GRU(7, 5, bidirectional=True, batch_first=True).eval()
    base._direction(gru, 0, False).register_forward_pre_hook(lambda _, args: met.add(args[0].shape[:2]))
    met.clear()
    base.run_packed(gru, torch.randn(3, 9, 7), torch.tensor([9, 9, 8]))
    assert met == {(3, 9)}


@pytest.mark.processes
def test_a_reader_that_stops_early_ends_tag_quietly(tiny_model_dir, tmp_path):
    """`adelabel tag big.txt | head -1`: the broken pipe is the reader's choice, not an error (141, as a
    shell reports SIGPIPE; click alone would exit 1)."""
    src = tmp_path / "in.txt"
    src.write_text("Rash after naproxen.\n" * 20_000, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "adelabel", "tag", str(src), "--model", str(tiny_model_dir), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert json.loads(proc.stdout.readline())["text"] == "Rash after naproxen."
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == b"", err


@pytest.mark.processes
def test_an_output_named_by_a_descriptor_is_written_in_place(tiny_model_dir, tmp_path):
    """`--output /dev/stdout` (or /dev/fd/1) is the descriptor the shell opened: no folder to check or
    probe, nothing to rename."""
    src = tmp_path / "in.txt"
    src.write_text("Rash after naproxen.\n", encoding="utf-8")
    for output in ("/dev/stdout", "/dev/fd/1"):
        done = subprocess.run([sys.executable, "-m", "adelabel", "tag", str(src), "--model", str(tiny_model_dir),
                               "--output", output, "-q"], capture_output=True, cwd=ROOT, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0 and done.stderr == b"", done.stderr
        assert json.loads(done.stdout)["text"] == "Rash after naproxen."


def test_under_torchrun_rank_0_says_what_every_rank_meets_and_other_ranks_their_own(capsys, monkeypatch, tmp_path,
                                                                                    sample_data):
    from adelabel import distributed

    train = ["train", "--data", sample_data, "--out", tmp_path / "m", "--set", "model.hiden_size=3"]
    monkeypatch.setenv("RANK", "1")
    code, _, err = run_cli(capsys, *train)
    assert code == 2 and "model.hiden_size: unknown key" in err  # RANK alone silences nothing
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = run_cli(capsys, *train)
    assert code == 2 and err == ""  # rank 0 met the same misspelt key and said so
    # Only train runs under torchrun: another command in a job's environment that sets both speaks.
    code, _, err = run_cli(capsys, "tag", tmp_path / "missing.txt")
    assert code == 2 and "missing.txt: file not found" in err
    # Set by hand, without torchrun's rendezvous: one line on every rank, not a traceback.
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("RANK", "0")
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", "--epochs", "1", "-q")
    assert code == 2 and "WORLD_SIZE 2, RANK 0: cannot join the other processes" in err, err
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(distributed, "JOINING", True)
    code, _, err = run_cli(capsys, *train)
    assert code == 2 and "model.hiden_size: unknown key" in err  # past joining, an error may be this rank's alone


def test_every_rank_gets_as_many_batches_and_none_is_left_out():
    from adelabel.distributed import World, shard

    for n in range(1, 12):
        for size in (1, 2, 3, 8):
            shares = [shard(list(range(n)), World(rank, size)) for rank in range(size)]
            assert len({len(share) for share in shares}) == 1, (n, size, shares)
            assert set().union(*shares) == set(range(n))
            assert sum(map(len, shares)) < n + size  # a round's worth taken again at most
    assert shard([], World(1, 2)) == []


def test_more_gpu_processes_on_a_machine_than_gpus_is_one_line_on_every_rank(monkeypatch):
    from adelabel import distributed
    from adelabel.errors import OptionError

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    for rank in (0, 1):  # rank 0, which has a GPU, refuses too: it would wait for rank 1 for ever
        with pytest.raises(OptionError, match="2 processes on this machine, one GPU each, but torch sees 1"):
            distributed.start(distributed.World(rank, 2, rank), torch.device("cuda"))
        assert not distributed.JOINING


def test_under_torchrun_only_train_runs_and_a_lost_peer_is_one_line(capsys, monkeypatch, tmp_path):
    from adelabel import cli, distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    for rank, local, said in (("0", "0", True), ("1", "1", False), ("4", "0", True)):  # the last: another machine's first
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", local)
        code, _, err = run_cli(capsys, "tag", tmp_path / "in.txt")
        assert code == 2 and ("tag: only train runs under torchrun" in err) == said, err
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    # A rank waiting in a collective step when another stops: gloo's error, said in one line.
    code_in_torch = compile("raise RuntimeError('Connection closed by peer')",
                            os.path.join("site-packages", "torch", "distributed", "distributed_c10d.py"), "exec")

    def waits(*args, **kwargs):
        exec(code_in_torch)

    monkeypatch.delenv("TORCHELASTIC_RUN_ID")  # a job's environment, where evaluate runs (on its own, say)
    monkeypatch.setattr(distributed, "JOINING", True)
    monkeypatch.setattr(cli, "_evaluate", waits)
    code, _, err = run_cli(capsys, "evaluate", "--model", tmp_path, "--data", tmp_path)
    assert code == 2 and err.strip() == ("adelabel: error: rank 1: lost the other processes of this run (one stopped; "
                                         "its message says why)"), err
    # Any other RuntimeError stays a bug's traceback: one raised in the model's forward, which DDP's
    # wrapper calls, or running out of memory, are the rank's own.
    ddp = {}
    exec(compile("def forward(step):\n    return step()\n", os.path.join("site-packages", "torch", "nn", "parallel",
                                                                      "distributed.py"), "exec"), ddp)

    def model_step():
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    for failing in (lambda *a, **k: ddp["forward"](model_step),
                    lambda *a, **k: ddp["forward"](lambda: exec(compile("raise torch.OutOfMemoryError('CUDA out of memory')",
                                                                        os.path.join("site-packages", "torch", "distributed", "x.py"),
                                                                        "exec")))):
        monkeypatch.setattr(cli, "_evaluate", failing)
        with pytest.raises(RuntimeError, match="shapes cannot|out of memory"):
            run_cli(capsys, "evaluate", "--model", tmp_path, "--data", tmp_path)


def test_rank_0_s_own_step_stops_every_rank_with_its_error(monkeypatch):
    """What rank 0 alone does (saving) forwards any error it meets, safetensors' full disk included, so
    the other ranks stop too; each closes the group first (left open at exit, it could abort)."""
    from adelabel import distributed

    stopped, told = [], {}
    monkeypatch.setattr(distributed, "stop", lambda w: stopped.append(w.rank))
    monkeypatch.setattr(distributed, "agree", lambda value, w: told.setdefault("message", value))

    def save():
        raise RuntimeError("Error while serializing: I/O error: File too large")

    with pytest.raises(RuntimeError, match="File too large"):  # rank 0: its own error, as it was raised
        distributed.on_main(distributed.World(0, 2), save)
    assert told["message"] == "RuntimeError: Error while serializing: I/O error: File too large"
    with pytest.raises(distributed.Refused, match="File too large") as refused:  # rank 1: told by rank 0
        distributed.on_main(distributed.World(1, 2), save)
    assert refused.value.every_rank and stopped == [0, 1]
    told.clear()
    told["message"] = None  # nothing went wrong on rank 0: rank 1 goes on, the group open
    assert distributed.on_main(distributed.World(1, 2), save) is None and stopped == [0, 1]
