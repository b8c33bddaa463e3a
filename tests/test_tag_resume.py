"""`tag --resume`: a killed JSONL run carries on from its last complete record, and only the same
command on the same input may carry it on."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_cli
from adelabel import tagging_io
from adelabel.partial import partial_path

LINES = [f"Patient {i} developed a rash after taking carbamazepine. Fever resolved." if i % 3 else
         f"Case {i}: hepatitis attributed to isoniazid." for i in range(40)]


def spans(path: Path) -> list:
    """Each record's text, entities, relations and sentences, the sentences' probabilities to 2 decimals
    (a tiny model finds few entities; its probabilities still tell the records apart, and a batch made
    up otherwise moves them in the last digits)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [(r.get("line"), r["text"], [(e["start"], e["end"], e["label"]) for e in r["entities"]],
             [(p["drug"], p["effect"]) for p in r["relations"]],
             [(s["start"], s["end"], s["reported"], round(s["ade"], 2)) for s in r["sentences"]]) for r in records]


def interrupt_after(monkeypatch, records: int) -> None:
    """The run is interrupted (Ctrl-C) as it writes record ``records`` + 1."""
    write, seen = tagging_io.write_jsonl, []

    def writing(out, analysis, fields):
        if len(seen) == records:
            raise KeyboardInterrupt
        seen.append(1)
        write(out, analysis, fields)
    monkeypatch.setattr(tagging_io, "write_jsonl", writing)


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def test_a_killed_run_resumes_to_the_output_of_an_uninterrupted_one(capsys, monkeypatch, tmp_path, source,
                                                                    tiny_model_dir):
    tag = ["tag", source, "--model", tiny_model_dir, "--batch-size", "8", "-q"]
    assert run_cli(capsys, *tag, "--output", tmp_path / "whole.jsonl")[0] == 0
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 13)
        with pytest.raises(KeyboardInterrupt):
            tagging_io.tag_stream(str(source), tiny_model_dir, "jsonl", out, 8, "cpu")
    assert not out.exists() and len(partial_path(out).read_text().splitlines()) == 13
    with open(partial_path(out), "a", encoding="utf-8") as fh:
        fh.write('{"text": "Patient 13 devel')  # a record the kill cut short
    from adelabel.tagger import Tagger

    chunks, analyze_pipe = [], Tagger.analyze_pipe
    monkeypatch.setattr(Tagger, "analyze_pipe", lambda self, texts, **k: chunks.append(list(texts)) or
                        analyze_pipe(self, chunks[-1], **k))
    code, _, err = run_cli(capsys, *tag, "--output", out, "--resume")
    assert code == 0, err
    # Carried on from the start of the chunk the kill cut into (records 8 to 15, in chunks of 8), so the
    # chunks are those of the uninterrupted run, and so are the bytes, scores included.
    assert [c[0] for c in chunks] == [LINES[8], LINES[16], LINES[24], LINES[32]]
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert spans(out) == spans(tmp_path / "whole.jsonl")
    assert json.loads((tmp_path / "out.jsonl.meta.json").read_text())["lines"] == len(LINES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl", "out.jsonl.meta.json",
                                                          "whole.jsonl", "whole.jsonl.meta.json"]
    # Finished, there is nothing left to carry on.
    code, _, err = run_cli(capsys, *tag, "--output", out, "--resume")
    assert code == 2 and f"--resume {out}: no partial output of an earlier run" in err, err


def test_only_the_same_command_on_the_same_input_resumes(capsys, monkeypatch, tmp_path, source, tiny_model_dir):
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 5)
        with pytest.raises(KeyboardInterrupt):
            tagging_io.tag_stream(str(source), tiny_model_dir, "jsonl", out, 8, "cpu")
    tag = ["tag", source, "--model", tiny_model_dir, "--output", out, "--resume", "-q"]
    code, _, err = run_cli(capsys, *tag, "--threshold", "0.1")
    assert code == 2 and "the earlier run differs in provenance.sentence_threshold (" in err, err
    code, _, err = run_cli(capsys, *tag, "--input-format", "jsonl")
    assert code == 2 and "differs in input_format" in err, err
    with monkeypatch.context() as patch:  # the same version number, other code: tags that may differ
        patch.setattr(tagging_io, "code_fingerprint", lambda: "0" * 16)
        code, _, err = run_cli(capsys, *tag)
        assert code == 2 and "the earlier run differs in provenance.adelabel_code (" in err, err
    with open(source, "a", encoding="utf-8") as fh:
        fh.write("One more line.\n")
    code, _, err = run_cli(capsys, *tag)
    assert code == 2 and "differs in mtime_ns, size" in err, err
    assert len(partial_path(out).read_text().splitlines()) == 5  # refused runs leave it as it was
    # A run without --resume starts afresh, over the partial file.
    assert run_cli(capsys, *tag[:-2], "-q")[0] == 0
    assert len(out.read_text().splitlines()) == len(LINES) + 1 and not partial_path(out).exists()


def test_resume_refuses_what_it_cannot_carry_on(capsys, tmp_path, source, tiny_model_dir):
    tag = ["tag", source, "--model", tiny_model_dir, "--resume", "-q"]
    for extra, message in (
            (["--output", tmp_path / "o.conll", "--format", "conll"], "--resume: carries on jsonl written to a file "
                                                                       "(--output FILE) from an input file, not --format conll"),
            ([], "not standard input or output"),
            (["--output", tmp_path / "o.jsonl", "--ray"], "--resume: carries on what plain `tag` wrote"),
            (["--output", tmp_path / "o.jsonl"], f"--resume {tmp_path / 'o.jsonl'}: no partial output")):
        code, _, err = run_cli(capsys, *tag, *extra)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (extra, err)


def test_an_error_in_the_input_leaves_no_partial_output(capsys, tmp_path, tiny_model_dir):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "Rash after carbamazepine."}\n' * 20 + "not json\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "tag", source, "--model", tiny_model_dir, "--input-format", "jsonl",
                           "--output", out, "--batch-size", "4", "-q")
    assert code == 2 and f"{source}:21:" in err, err
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]


def test_a_resume_keeps_the_whole_records_only(tmp_path):
    """What a power cut can leave in a file not synced as it grew (a stretch of zeros, a line of stale
    bytes) ends the records kept, as a record cut short does."""
    from adelabel.partial import _kept_records

    good = [json.dumps({"text": f"line {i}", "entities": []}).encode() + b"\n" for i in range(3)]
    path = tmp_path / "partial"
    path.write_bytes(b"".join(good))
    assert _kept_records(path) == (3, len(b"".join(good)))
    for tail in (b'{"text": "cut', b"\0" * 40 + b"\n" + good[2], b"[1, 2]\n" + good[2], b"\xff\n" + good[2]):
        path.write_bytes(good[0] + good[1] + tail)
        assert _kept_records(path) == (2, len(good[0] + good[1])), tail


def test_a_failed_write_names_the_output_and_keeps_the_records(tmp_path, tiny_model_dir):
    """A full disk (here, a file-size limit) is one line naming the output, not standard output, and
    what was written stays for --resume."""
    import resource
    import subprocess
    import sys

    from conftest import ROOT

    source = tmp_path / "in.txt"
    source.write_text("Severe hepatitis developed after isoniazid was started.\n" * 5000, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "tag", str(source), "--model", str(tiny_model_dir),
                           "--output", str(out), "-q"], capture_output=True, text=True,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000)))
    assert done.returncode == 2 and done.stderr == f"adelabel: error: {out}: cannot write (File too large); the " \
        f"records tagged so far are kept beside {out}: the same command with --resume carries on\n", done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not out.exists()
    assert partial_path(out).stat().st_size > 0


def test_a_partial_output_longer_than_its_input_is_an_error_in_the_input(capsys, monkeypatch, tmp_path, source,
                                                                        tiny_model_dir):
    """More records than the input has lines, the input looking unchanged: it changed all the same, no
    resume could match it, and nothing is kept."""
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 5)
        with pytest.raises(KeyboardInterrupt):
            tagging_io.tag_stream(str(source), tiny_model_dir, "jsonl", out, 8, "cpu")
    first = partial_path(out).read_text(encoding="utf-8").splitlines(keepends=True)[0]
    with open(partial_path(out), "a", encoding="utf-8") as fh:
        fh.write(first * 50)
    code, _, err = run_cli(capsys, "tag", source, "--model", tiny_model_dir, "--output", out, "--resume", "-q")
    assert code == 2 and f"{source}: has 40 lines, fewer than the 55 records the partial output" in err, err
    assert not partial_path(out).exists() and not out.exists()


def test_a_kill_as_a_run_finishes_leaves_its_whole_output_under_the_name(capsys, monkeypatch, tmp_path, source,
                                                                         tiny_model_dir):
    """The state went first and the rename second: a kill between them left every record under the partial
    name, which a resume refused for want of the state. The rename now goes first."""
    from adelabel import partial

    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as patch:
        patch.setattr(partial, "_drop_state", lambda *args: None)  # killed just after the rename
        code, _, err = run_cli(capsys, "tag", source, "--model", tiny_model_dir, "--output", out, "-q")
    assert code == 0 and len(out.read_text(encoding="utf-8").splitlines()) == len(LINES)
    assert not partial_path(out).exists() and (tmp_path / ".out.jsonl.partial.json").is_file()
    code, _, err = run_cli(capsys, "tag", source, "--model", tiny_model_dir, "--output", out, "--resume", "-q")
    assert code == 2 and "no partial output of an earlier run to carry on (it finished" in err, err
    code, _, err = run_cli(capsys, "tag", source, "--model", tiny_model_dir, "--output", out, "-q")
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl", "out.jsonl.meta.json"]


def test_a_resumed_runs_progress_counts_only_its_own_work(capsys, monkeypatch):
    """Without a terminal the bar is a line at every tenth: a resumed run's first line comes at the first
    tenth past what was done before, and its rate leaves that work out."""
    from adelabel import progress

    clock = iter(range(100))  # a second passes between two readings of the clock
    monkeypatch.setattr(progress.time, "perf_counter", lambda: float(next(clock)))
    bar = progress.Progress(1000, "tagging", "B", initial=650)
    for _ in range(35):
        bar.update(10)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["tagging: 70%", "tagging: 80%", "tagging: 90%", "tagging: 100%"]
    assert lines[0] == "tagging: 70% (50 B/s, 6 s left)"  # this run's 50 bytes in its first second, not 700


def test_a_full_disk_keeps_its_resume_hint_when_the_close_fails_again(capsys, monkeypatch, tmp_path, source,
                                                                     tiny_model_dir):
    """A full disk refuses the buffer's rest again when the file is closed: that second refusal must not
    replace the message that says what is kept and how to carry on."""
    import errno

    from adelabel import partial

    class FullDisk:
        """The partial file on a disk that fills after 2,000 characters: what is refused stays buffered."""

        def __init__(self, fh):
            self.fh, self.pending = fh, ""

        def write(self, text: str) -> int:
            self.pending += text
            self.flush()
            return len(text)

        def flush(self) -> None:
            room = 2000 - self.fh.tell()
            self.fh.write(self.pending[:max(room, 0)])
            self.fh.flush()
            self.pending = self.pending[max(room, 0):]
            if self.pending:
                raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            try:
                self.flush()
            finally:
                self.fh.close()

        def __getattr__(self, name):
            return getattr(self.fh, name)

    opened = partial._open_locked
    monkeypatch.setattr(partial, "_open_locked", lambda *a: FullDisk(opened(*a)))
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "tag", source, "--model", tiny_model_dir, "--output", out, "-q")
    assert code == 2 and err == f"adelabel: error: {out}: cannot write (No space left on device); the records " \
        f"tagged so far are kept beside {out}: the same command with --resume carries on\n", err
    assert not out.exists() and 0 < partial_path(out).stat().st_size <= 2000


def test_a_resume_through_a_linked_output_carries_on_the_file_it_writes(capsys, monkeypatch, tmp_path, source,
                                                                        tiny_model_dir):
    """A link given as --output is written through: the partial file sits beside what it names, and the
    resume cuts back that file, not a stale one beside the link."""
    tag = ["tag", source, "--model", tiny_model_dir, "--batch-size", "8", "-q"]
    assert run_cli(capsys, *tag, "--output", tmp_path / "whole.jsonl")[0] == 0
    (tmp_path / "real").mkdir()
    link = tmp_path / "out.jsonl"
    link.symlink_to(tmp_path / "real" / "target.jsonl")
    partial_path(link).write_text("{}\n" * 20)  # stale, beside the link
    with monkeypatch.context() as patch:
        interrupt_after(patch, 13)
        with pytest.raises(KeyboardInterrupt):
            tagging_io.tag_stream(str(source), tiny_model_dir, "jsonl", link, 8, "cpu")
    code, _, err = run_cli(capsys, *tag, "--output", link, "--resume")
    assert code == 0, err
    assert (tmp_path / "real" / "target.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
