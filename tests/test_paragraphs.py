"""`tag --input-format paragraphs`: hard-wrapped text, each run of lines up to a blank line one text."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from adelabel import tagging_io
from adelabel.partial import partial_path

READY = ROOT / "adelabel" / "pretrained" / "ade-bilstm"

# Narratives wrapped where a user's editor or a PDF export wraps them: sentences, and entities, cross lines.
PARAGRAPHS = ["Intravenous azithromycin-induced\nototoxicity in a child.",
              "We describe a patient who developed severe\nrash after lamotrigine. Fever\nresolved.",
              "Hepatitis was attributed to\nisoniazid."]


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_each_paragraph_is_one_record_tagged_as_the_same_text_on_one_line(capsys, tmp_path):
    # CRLF endings, blank lines of white space, several in a row, and no line feed at the end.
    src = write(tmp_path / "in.txt", "\r\n".join(["", *PARAGRAPHS[0].split("\n"), "  ", "", *PARAGRAPHS[1].split("\n"),
                                                   "\t", *PARAGRAPHS[2].split("\n")]))
    code, out, err = run_cli(capsys, "tag", src, "--model", READY, "--input-format", "paragraphs", "-q")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in records] == PARAGRAPHS
    assert [r["line"] for r in records] == [2, 6, 10]
    # A line feed is white space to the tokeniser and the sentence rule: each paragraph is tagged as its
    # text with spaces for line feeds, tagged as one line, is.
    flat = write(tmp_path / "flat.txt", "".join(p.replace("\n", " ") + "\n" for p in PARAGRAPHS))
    code, out, err = run_cli(capsys, "tag", flat, "--model", READY, "-q")
    assert code == 0, err
    for record, one_line in zip(records, map(json.loads, out.splitlines())):
        for key in ("relations", "sentences", "ade"):
            assert record[key] == one_line[key]
        assert [{**e, "text": e["text"].replace("\n", " ")} for e in record["entities"]] == one_line["entities"]
        for e in record["entities"]:
            assert record["text"][e["start"]:e["end"]] == e["text"]
    # The effect split by a line break and its drug are found and related, as on one line.
    first = records[1]
    assert [(e["text"], e["label"]) for e in first["entities"]] == [("severe\nrash", "AE"), ("lamotrigine", "DRUG")]
    assert [(r["drug"], r["effect"]) for r in first["relations"]] == [(1, 0)]


def test_paragraphs_in_every_output_format(capsys, tmp_path):
    src = write(tmp_path / "in.txt", "\n\n".join(PARAGRAPHS) + "\n")
    code, out, err = run_cli(capsys, "tag", src, "--model", READY, "--input-format", "paragraphs", "--format", "conll",
                             "-q")
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("# fields = ")] == \
        ['# fields = {"line": 1}', '# fields = {"line": 4}', '# fields = {"line": 8}']
    assert "# text = Intravenous azithromycin-induced ototoxicity in a child." in out.splitlines()
    # An entity across a line break: its text a JSON string on the relation's one line.
    assert any(line.startswith('# relation = DRUG-AE 1 "lamotrigine" -> 0 "severe\\nrash" ') for line in out.splitlines())
    brat = tmp_path / "brat"
    code, _, err = run_cli(capsys, "tag", src, "--model", READY, "--input-format", "paragraphs", "--format", "brat",
                           "--output", brat, "-q")
    assert code == 0, err
    assert sorted(p.name for p in brat.iterdir()) == [f"00000{i}.{s}" for i in (1, 2, 3) for s in ("ann", "txt")]
    assert (brat / "000002.txt").read_text(encoding="utf-8") == PARAGRAPHS[1]
    assert "T1\tAE 36 42;43 47\tsevere rash\n" in (brat / "000002.ann").read_text(encoding="utf-8")
    # Read back by prepare's brat reader, each paragraph keeps what tag found: every entity (the one across a
    # line break too) and every relation.
    from adelabel.corpus.brat import read_brat

    code, out, err = run_cli(capsys, "tag", src, "--model", READY, "--input-format", "paragraphs", "-q")
    assert code == 0, err
    sentences, report = read_brat(brat)
    assert not report.left_out
    for number, record in enumerate(map(json.loads, out.splitlines()), 1):
        back = [s for s in sentences if s.doc_id == f"{number:06d}"]
        assert sorted((s.text[a:b], label) for s in back for a, b, label in s.spans) == \
            sorted((e["text"].replace("\n", " "), e["label"]) for e in record["entities"])
        assert sum(len(s.relations) for s in back) == len(record["relations"])
    page = tmp_path / "page.html"
    code, _, err = run_cli(capsys, "tag", src, "--model", READY, "--input-format", "paragraphs", "--format", "html",
                           "--output", page, "-q")
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    assert 'paragraph 3 {&quot;line&quot;: 8}' in html and ">line 1 " not in html


def test_a_killed_paragraphs_run_resumes(capsys, monkeypatch, tmp_path, tiny_model_dir):
    src = write(tmp_path / "in.txt", "\n\n\n".join(PARAGRAPHS * 7) + "\n")
    tag = ["tag", src, "--model", tiny_model_dir, "--input-format", "paragraphs", "--batch-size", "4", "-q"]
    assert run_cli(capsys, *tag, "--output", tmp_path / "whole.jsonl")[0] == 0
    out = tmp_path / "out.jsonl"
    write_jsonl, seen = tagging_io.write_jsonl, []

    def writing(fh, analysis, fields):
        if len(seen) == 9:
            raise KeyboardInterrupt
        seen.append(1)
        write_jsonl(fh, analysis, fields)
    with monkeypatch.context() as patch:
        patch.setattr(tagging_io, "write_jsonl", writing)
        with pytest.raises(KeyboardInterrupt):
            tagging_io.tag_stream(str(src), tiny_model_dir, "jsonl", out, 4, "cpu", input_format="paragraphs")
    assert len(partial_path(out).read_text(encoding="utf-8").splitlines()) == 9
    code, _, err = run_cli(capsys, *tag, "--output", out, "--resume")
    assert code == 0, err
    from test_tag_resume import spans

    assert spans(out) == spans(tmp_path / "whole.jsonl") and len(spans(out)) == 21
    assert [record[0] for record in spans(out)][:3] == [1, 5, 10]


def test_paragraphs_options_are_checked(capsys, tmp_path, tiny_model_dir):
    src = write(tmp_path / "in.txt", PARAGRAPHS[0] + "\n")
    for args, message in ((["--input-format", "csv"], "--input-format: expected text, jsonl or paragraphs, got 'csv'"),
                          (["--input-format", "paragraphs", "--ray"],
                           "--input-format paragraphs: --ray reads one text per line")):
        code, _, err = run_cli(capsys, "tag", src, "--model", tiny_model_dir, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
