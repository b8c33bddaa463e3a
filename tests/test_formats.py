"""Your own data: CoNLL/BIO files and brat standoff folders, with entity types from the data."""
from __future__ import annotations

import json

import pytest

from conftest import SAMPLE, run_cli
from adelabel.errors import InputError

CONLL = """-DOCSTART- -X- O O

Naloxone\tB-Chemical
reverses\tO
the\tO
antihypertensive\tO
effect\tO
of\tO
clonidine\tB-Chemical
.\tO

Hypotension\tB-Disease
followed\tO
.\tO

-DOCSTART- -X- O O

Lidocaine\tB-Chemical
-\tO
induced\tO
cardiac\tI-Disease
asystole\tI-Disease
.\tO

No\tO
findings\tO
.\tO
"""


def test_conll_reads_documents_types_and_repairs_i_after_o(tmp_path):
    from adelabel.corpus.conll import read_conll_corpus, write_conll

    path = tmp_path / "bc5.conll"
    path.write_text(CONLL, encoding="utf-8")
    sentences, report = read_conll_corpus(path)
    assert [s.doc_id for s in sentences] == ["bc5.conll#doc1"] * 2 + ["bc5.conll#doc2"] * 2
    assert report.repaired == 1 and report.entities == {"Chemical": 3, "Disease": 2}
    third = sentences[2]
    assert [third.text[a:b] for a, b, _ in third.spans] == ["Lidocaine", "cardiac asystole"]
    assert sentences[3].negative and not sentences[0].negative
    # Round trip: what write_conll writes reads back to the same spans.
    from adelabel.tags import spans_to_tags
    from adelabel.text import tokenize

    again = tmp_path / "again.conll"
    rows = []
    for s in sentences:
        tokens = tokenize(s.text)
        rows.append((s.doc_id, [s.text[a:b] for a, b in tokens], spans_to_tags(tokens, s.spans)[0]))
    write_conll(again, rows)
    # The documents come back too: a split of data read again keeps each one whole.
    assert [(s.doc_id, s.text, s.spans) for s in read_conll_corpus(again)[0]] == \
        [(s.doc_id, s.text, s.spans) for s in sentences]


def test_bioes_and_bilou_files_read_as_the_same_entities(tmp_path):
    """flair writes BIOES, spaCy BILOU: S-/U- a one-token entity, E-/L- an entity's last token."""
    from adelabel.corpus.conll import read_conll_corpus

    iob2 = "Naproxen\tB-DRUG\ninduced\tO\nsevere\tB-AE\nrenal\tI-AE\nfailure\tI-AE\n.\tO\n"
    bioes = "Naproxen\tS-DRUG\ninduced\tO\nsevere\tB-AE\nrenal\tI-AE\nfailure\tE-AE\n.\tO\n"
    bilou = "Naproxen\tU-DRUG\ninduced\tO\nsevere\tB-AE\nrenal\tI-AE\nfailure\tL-AE\n.\tO\n"
    read = {}
    for name, text in (("iob2", iob2), ("bioes", bioes), ("bilou", bilou)):
        (tmp_path / name).write_text(text, encoding="utf-8")
        read[name] = read_conll_corpus(tmp_path / name)
    spans = {name: [(s.text, s.spans) for s in sentences] for name, (sentences, _) in read.items()}
    assert spans["bioes"] == spans["bilou"] == spans["iob2"] != []
    assert [read[n][1].converted for n in ("iob2", "bioes", "bilou")] == [0, 2, 2]
    assert "BIOES/BILOU tags read as IOB2 (S-/U- as B-, E-/L- as I-): 2" in read["bioes"][1].summary()


def test_strict_refuses_an_i_tag_after_o_naming_the_line(capsys, tmp_path):
    path = tmp_path / "bc5.conll"
    path.write_text(CONLL, encoding="utf-8")
    code, _, err = run_cli(capsys, "prepare", "--corpus", path, "--out", tmp_path / "d", "--strict")
    assert code == 2 and "bc5.conll:21: tag I-Disease continues no Disease entity" in err, err


def test_prepare_and_train_on_conll_with_its_own_types(capsys, tmp_path):
    path = tmp_path / "bc5.conll"
    path.write_text(CONLL * 6, encoding="utf-8")  # enough documents for three splits
    code, _, err = run_cli(capsys, "prepare", "--corpus", path, "--out", tmp_path / "d", "--w2v-epochs", "1")
    assert code == 0, err
    assert "I- tags that continued no entity of their type, read as B- (an entity start): 6" in err
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["labels"] == ["Chemical", "Disease"] and manifest["format"] == "conll"
    code, _, err = run_cli(capsys, "train", "--data", tmp_path / "d", "--out", tmp_path / "m", "--epochs", "1",
                           "--set", "model.hidden_size=8", "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "m" / "config.json").read_text())["tags"] == [
        "O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]
    # Types that pair nothing, and a model without a relation head: no relation line, rather than
    # zeros that read as a failure; and no words of the ADE corpus for another corpus's sentences.
    code, out, err = run_cli(capsys, "evaluate", "--model", tmp_path / "m", "--data", tmp_path / "d")
    assert code == 0, err
    assert "relation" not in out and "ADE" not in out and "adverse" not in out, out
    assert "1 without entities)" in out and "sentence decision (holds an entity)" in out


def test_data_without_relations_trains_no_relation_head(capsys, sample_data, tmp_path):
    """CoNLL carries no relations: a DRUG/AE tagger trained from it has no head to relate pairs, so the
    rule that a reported sentence needs one (meant for ADE data) does not hide its entities."""
    from adelabel import Tagger

    code, _, err = run_cli(capsys, "prepare", "--corpus", sample_data / "train.conll", "--out", tmp_path / "d",
                           "--dim", "8", "--w2v-epochs", "1", "-q")
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--data", tmp_path / "d", "--out", tmp_path / "m", "--epochs", "1",
                           "--set", "model.hidden_size=8")
    assert code == 0 and "the training split relates no pairs: no relation head" in err
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"]["relations"] is False
    from adelabel.inference import pairs_decide

    assert not pairs_decide(Tagger.load(tmp_path / "m").model)
    # Without a sentence free of entities the gate would learn to pass everything: none is trained.
    code, _, err = run_cli(capsys, "prepare", "--corpus", sample_data / "train.conll", "--out", tmp_path / "p",
                           "--dim", "8", "--w2v-epochs", "1", "--no-negatives", "-q")
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--data", tmp_path / "p", "--out", tmp_path / "g", "--epochs", "1",
                           "--set", "model.hidden_size=8")
    assert code == 0 and "every sentence of the training split holds an entity: no sentence gate" in err
    assert json.loads((tmp_path / "g" / "config.json").read_text())["model"]["gate"] is False


def _analysis(text, spans, relations):
    from adelabel.inference import Analysis, Entity, Relation

    return Analysis(text, [Entity(a, b, label, text[a:b], 0.9) for a, b, label in spans],
                    [Relation(d, e, "DRUG-AE", 0.9) for d, e in relations])


def test_brat_written_by_tag_reads_back(tmp_path):
    from adelabel.corpus.brat import read_brat
    from adelabel.tagging_io import write_brat

    texts = [("Rash after lamotrigine. Lithium was stopped.", [(0, 4, "AE"), (11, 22, "DRUG"), (24, 31, "DRUG")],
              [(1, 0)]),
             ("Nothing to see here.", [], [])]
    for number, (text, spans, relations) in enumerate(texts, start=1):
        write_brat(tmp_path, number, _analysis(text, spans, relations))
    sentences, report = read_brat(tmp_path)
    assert [(s.doc_id, s.text) for s in sentences] == [("000001", "Rash after lamotrigine."),
                                                      ("000001", "Lithium was stopped."),
                                                      ("000002", "Nothing to see here.")]
    assert sentences[0].spans == [(0, 4, "AE"), (11, 22, "DRUG")] and sentences[0].relations == [(1, 0)]
    assert sentences[1].spans == [(0, 7, "DRUG")] and sentences[2].negative
    assert report.relations == 1 and report.entities == {"AE": 1, "DRUG": 2}
    # An entity across a line break is written in pieces, as brat's editor writes it: brat checks the text
    # against the pieces joined by a space, and refuses one span whose text has a space for the break.
    write_brat(tmp_path, 3, _analysis("Stevens-Johnson\rsyndrome after lamotrigine.", [(0, 24, "AE")], []))
    assert (tmp_path / "000003.ann").read_text(encoding="utf-8").splitlines() == ["T1\tAE 0 15;16 24\tStevens-Johnson syndrome"]
    write_brat(tmp_path, 4, _analysis("severe \u2028 rash, and more", [(0, 13, "AE")], []))
    assert (tmp_path / "000004.ann").read_text(encoding="utf-8").splitlines() == ["T1\tAE 0 6;9 13\tsevere rash"]
    back = {s.doc_id: s for s in read_brat(tmp_path)[0]}
    assert back["000003"].spans == [(0, 24, "AE")] and back["000004"].spans == [(0, 13, "AE")]


def test_brat_errors_name_the_files(capsys, tmp_path):
    (tmp_path / "a.txt").write_text("Short text.", encoding="utf-8")
    (tmp_path / "a.ann").write_text("T1\tAE 0 40\tShort text. and more\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "prepare", "--corpus", tmp_path, "--out", tmp_path.parent / "d-brat")
    assert code == 2 and "a.ann:1: T1 spans characters 0-40, past the end of" in err and "a.txt" in err, err
    (tmp_path / "a.ann").write_text("T1\tAE 0 5\tShort\nR1\tDRUG-AE Arg1:T2 Arg2:T1\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "prepare", "--corpus", tmp_path, "--out", tmp_path.parent / "d-brat")
    assert code == 2 and "a.ann:2: R1 names T2, which no T line defines" in err, err
    for ann, message in (("T1\tAE 0 5\tShort\nT1\tAE 6 10\ttext\n", "a.ann:2: T1 is defined twice"),
                         ("T1\tAE 0 5\tShort\nT2\tDRUG 6 10\ttext\nR1\tDRUG-AE Arg1:T2 Arg2:T1\n"
                          "R1\tDRUG-AE Arg1:T2 Arg2:T2\n", "a.ann:4: R1 is defined twice"),
                         ("T1\tAE 5 0\tShort\n", "a.ann:1: T1 spans characters 5-0: its end is not after its start"),
                         ("T1\tAE 0 3;4\tShort\n", "a.ann:1: not a brat annotation line"),  # a fragment cut short
                         ("T1\tAE 0 " + "9" * 5000 + "\tShort\n", "a.ann:1: not a brat annotation line")):
        (tmp_path / "a.ann").write_text(ann, encoding="utf-8")
        code, _, err = run_cli(capsys, "prepare", "--corpus", tmp_path, "--out", tmp_path.parent / "d-brat")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_brat_texts_without_annotations_and_subfolders_are_counted(tmp_path):
    from adelabel.corpus.brat import read_brat
    from adelabel.errors import InputError

    (tmp_path / "a.txt").write_text("Aspirin caused rash.", encoding="utf-8")
    (tmp_path / "a.ann").write_text("T1\tDRUG 0 7\tAspirin\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("Nobody annotated this.", encoding="utf-8")
    (tmp_path / "more").mkdir()
    sentences, report = read_brat(tmp_path)
    assert len(sentences) == 1 and report.left_out["texts without a .ann beside them"] == 1
    # A relation written from the effect to the drug (n2c2's ADE-Drug) is the same drug -> effect pair.
    (tmp_path / "a.ann").write_text("T1\tDRUG 0 7\tAspirin\nT2\tAE 15 19\trash\nR1\tADE-Drug Arg1:T2 Arg2:T1\n",
                                    encoding="utf-8")
    sentences, report = read_brat(tmp_path)
    assert sentences[0].relations == [(0, 1)] and report.relations == 1 and report.relation_labels == {"ADE-Drug": 1}
    assert "relations: 1 (ADE-Drug 1)" in report.summary() and not any("note:" in line for line in report.summary())
    # Two labels between the same types are learnt as one relation: kept, and the report says so.
    (tmp_path / "a.ann").write_text("T1\tDRUG 0 7\tAspirin\nT2\tAE 15 19\trash\nT3\tAE 8 14\tcaused\n"
                                    "R1\tCauses Arg1:T1 Arg2:T2\nR2\tTreats Arg1:T1 Arg2:T3\n", encoding="utf-8")
    sentences, report = read_brat(tmp_path)
    assert sorted(sentences[0].relations) == [(0, 1), (0, 2)] and report.relation_labels == {"Causes": 1, "Treats": 1}
    assert any(line.startswith("note: the relation labels Causes, Treats of DRUG-AE pairs are learnt as one")
               for line in report.summary())
    # Labels on different pair types (n2c2's ADE-Drug, Dosage-Drug) are told apart by the types.
    (tmp_path / "a.ann").write_text("T1\tDRUG 0 7\tAspirin\nT2\tAE 15 19\trash\nT3\tDOSE 8 14\tcaused\n"
                                    "R1\tADE-Drug Arg1:T2 Arg2:T1\nR2\tDosage-Drug Arg1:T3 Arg2:T1\n", encoding="utf-8")
    sentences, report = read_brat(tmp_path)
    assert len(sentences[0].relations) == 2 and not any("note:" in line for line in report.summary())
    # A relation between two drugs, or two entities neither of which is a DRUG, is counted as left out.
    (tmp_path / "a.ann").write_text("T1\tDRUG 0 7\tAspirin\nT2\tDRUG 15 19\trash\nR1\tDDI Arg1:T1 Arg2:T2\n",
                                    encoding="utf-8")
    sentences, report = read_brat(tmp_path)
    assert sentences[0].relations == [] and report.relations == 0
    assert report.left_out["relations not between a DRUG and another type (relations go from a drug)"] == 1
    assert report.left_out["subfolders (not read; give each as --corpus)"] == 1
    with pytest.raises(InputError, match=r"b\.txt: has no annotations beside it"):
        read_brat(tmp_path, strict=True)


def test_format_options_are_checked(capsys, tmp_path):
    code, _, err = run_cli(capsys, "prepare", "--corpus", tmp_path, "--format", "conll", "--out", tmp_path / "d")
    assert code == 2 and "--format conll reads a file of token<TAB>tag lines; this is a folder" in err
    code, _, err = run_cli(capsys, "prepare", "--corpus", tmp_path, "--format", "xml", "--out", tmp_path / "d")
    assert code == 2 and "--format: expected auto, ade, labelled, conll or brat, got 'xml'" in err
    code, _, err = run_cli(capsys, "cv", "--corpus", tmp_path, "--format", "conll")
    assert code == 2 and "--format conll reads a file of token<TAB>tag lines; this is a folder" in err


def test_cv_reads_a_conll_file_by_its_documents(capsys, sample_data, tmp_path):
    """cv takes prepare's formats: a CoNLL file's -DOCSTART- documents are dealt into folds whole."""
    out = tmp_path / "cv"
    # Types of its own, as prepare reads them (not --types's DRUG and AE).
    corpus = tmp_path / "bc5.conll"
    corpus.write_text((sample_data / "train.conll").read_text(encoding="utf-8").replace("-DRUG", "-Chemical")
                      .replace("-AE", "-Disease"), encoding="utf-8")
    code, _, err = run_cli(capsys, "cv", "--corpus", corpus, "--format", "conll", "--folds", "2",
                           "--epochs", "1", "--dim", "8", "--w2v-epochs", "1", "--out", out, "-q",
                           "--set", "model.hidden_size=8", "--set", "model.char_size=8", "--set", "model.gate_size=8")
    assert code == 0, err
    settings = json.loads((out / "settings.json").read_text())
    assert settings["format"] == "conll" and settings["labels"] == [] and settings["reader"] == 5
    # A run begun by an earlier CoNLL reader (none recorded, or 2) is not carried on by this one.
    for earlier in ({k: v for k, v in settings.items() if k != "reader"}, {**settings, "reader": 4}):
        (out / "settings.json").write_text(json.dumps(earlier))
        code, _, err = run_cli(capsys, "cv", "--corpus", corpus, "--format", "conll", "--folds", "2", "--epochs", "1",
                               "--dim", "8", "--w2v-epochs", "1", "--out", out, "-q", "--set", "model.hidden_size=8",
                               "--set", "model.char_size=8", "--set", "model.gate_size=8")
        assert code == 2 and "other settings (reader " in err and "-> 5)" in err, err
    (out / "settings.json").write_text(json.dumps(settings))
    assert json.loads((out / "fold-01" / "data" / "manifest.json").read_text())["labels"] == ["Chemical", "Disease"]
    assert "Chemical.f1" in json.loads((out / "cv.json").read_text())["summary"]
    tested = [{json.loads(line)["doc_id"] for line in (out / f"fold-0{k}" / "data" / "test.jsonl").read_text().splitlines()}
              for k in (1, 2)]
    documents = {json.loads(line)["doc_id"] for line in (sample_data / "train.jsonl").read_text().splitlines()}
    assert tested[0] | tested[1] == documents and not tested[0] & tested[1]


def test_brat_overlaps_duplicates_crlf_and_discontinuous_entities(tmp_path):
    from adelabel.corpus.brat import read_brat

    text = "Aspirin caused severe nausea.\r\nIt stopped."
    (tmp_path / "a.txt").write_bytes(text.encode("utf-8"))
    (tmp_path / "a.ann").write_text(
        "T1\tDRUG 0 7\tAspirin\n"
        "T2\tAE 15 28\tsevere nausea\n"
        "T3\tAE 22 28\tnausea\n"          # nested in T2: the outer one is kept
        "T4\tAE 15 28\tsevere nausea\n"   # T2 again: one entity
        "T5\tAE 31 33;35 41\tIt topped\n"  # discontinuous: left out, relations to it too
        "R1\tCause Arg1:T1 Arg2:T4\n"
        "R2\tCause Arg1:T1 Arg2:T5\n"
        "R3\tCause Arg1:T1 Arg2:T3\n"
        "R4\tCause Arg1:T1 Arg2:T2\n", encoding="utf-8")  # R1 again, over T4's twin
    sentences, report = read_brat(tmp_path)
    first = sentences[0]
    assert first.text == "Aspirin caused severe nausea."
    assert first.spans == [(0, 7, "DRUG"), (15, 28, "AE")] and first.relations == [(0, 1)]
    assert sentences[1].text == "It stopped." and sentences[1].negative
    assert report.left_out["discontinuous entities"] == 1
    assert report.left_out["nested or crossing entities (the outer or longer one kept)"] == 1
    assert report.left_out["relations across sentences (or with an entity left out)"] == 2
    assert report.left_out["relations given twice (kept once)"] == 1 and report.relations == 1


def test_a_conll_token_may_be_a_hash(tmp_path):
    from adelabel.corpus.conll import read_conll_corpus

    path = tmp_path / "t.conll"
    path.write_text("# text = a comment\nItem\tO\n#\tO\n5\tB-Dose\nmg\tI-Dose\n", encoding="utf-8")
    [sentence] = read_conll_corpus(path)[0]
    assert sentence.text == "Item # 5 mg" and sentence.spans == [(7, 11, "Dose")]


def test_conll_columns_keep_tokens_whole_and_count_comments(tmp_path):
    from adelabel.corpus.conll import read_conll_corpus

    # Tab-separated: a token may hold a space; space-separated: a no-break space stays in its token, and
    # "# O" is the token "#" (a comment is "# key = value" or a line whose last field is no tag).
    path = tmp_path / "t.conll"
    path.write_text("# sent_id = 1\n# tag set: B-DOSE I-DOSE O\nGiven\tO\t\n5 mg\tB-DOSE\nin\tO\nNew York\tB-LOC\n\n"
                    "# a note\nGiven VB O\n5\u00a0mg CD B-DOSE\n# SYM O\n2 CD B-DOSE\n", encoding="utf-8")
    sentences, report = read_conll_corpus(path)
    assert [s.text for s in sentences] == ["Given 5 mg in New York", "Given 5\u00a0mg # 2"]
    assert sentences[0].spans == [(6, 10, "DOSE"), (14, 22, "LOC")]
    assert sentences[1].spans == [(6, 10, "DOSE"), (13, 14, "DOSE")]
    assert report.comments == 3 and "comment lines (starting '# ') skipped: 3" in report.summary()
    # tag's relations, in its CoNLL comments, are read back; those that do not fit the tags are counted.
    path.write_text('# text = Aspirin caused rash.\n# relation = DRUG-AE 0 "Aspirin" -> 1 "rash" 0.9\n'
                    '# relation = DRUG-AE 0 "Aspirin" -> 1 "fever" 0.9\n# relation = DRUG-AE 0 "Aspirin" -> 7 "x" 0.9\n'
                    '# relation = DRUG-AE 1 "rash" -> 0 "Aspirin" 0.9\n# relation = something else\n'
                    "Aspirin\tB-DRUG\ncaused\tO\nrash\tB-AE\n", encoding="utf-8")
    [sentence], report = read_conll_corpus(path)
    assert sentence.relations == [(0, 1)] and report.relations == 1
    assert report.left_out == {"whose entity texts are not the tagged ones": 1, "naming an entity the tags do not hold": 1,
                               "not from a DRUG to another type": 1, "not in the form tag --format conll writes": 1}
    assert "relations ('# relation =' lines): 1" in report.summary()
    # Lines ending in CR alone read as one line: refused at its tag, not split into tokens.
    path.write_bytes(b"Aspirin B-DRUG\rrash B-AE\r")
    with pytest.raises(InputError, match=r"t\.conll:1: a carriage return inside the line"):
        read_conll_corpus(path)
    # A type no brat .ann line could hold (tag's brat output, read back, failed on it).
    path.write_text("Aspirin\tB-DR UG\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"t\.conll:1: entity type 'DR UG' holds white space"):
        read_conll_corpus(path)
    # A control character would be split at (NUL) or read as white space (form feed) by the tokeniser,
    # so that the token's tag no longer matched what prepare's tokens held.
    for char, code in (("\x00", "0000"), ("\x0c", "000C"), ("\x85", "0085")):
        path.write_text(f"Rash\tB-AE\nafter\tO\nasp{char}irin\tB-DRUG\n", encoding="utf-8")
        with pytest.raises(InputError, match=rf"t\.conll:3: token .* holds the control character U\+{code}"):
            read_conll_corpus(path)


def test_a_corpus_named_by_numbers_is_not_taken_for_tag_s_brat_output(tmp_path, capsys):
    from adelabel.atomic import brat_folder

    def folder(name, *stems):
        (tmp_path / name).mkdir()
        for stem in stems:
            for suffix in (".txt", ".ann"):
                (tmp_path / name / f"{stem}{suffix}").write_text("")
        return tmp_path / name

    assert brat_folder(folder("ours", "000001", "000002")) and brat_folder(folder("wide", "0000001", "0000002"))
    assert not brat_folder(folder("n2c2", "100035", "100039")) and not brat_folder(folder("pmids", "12345678"))
    assert not brat_folder(folder("mixed", "000001", "0000002"))
    (tmp_path / "ours" / "000003.txt").write_text("")  # a text without its .ann
    assert not brat_folder(tmp_path / "ours")
    (tmp_path / "in.txt").write_text("Clozapine-induced agranulocytosis.\n")
    code, _, err = run_cli(capsys, "tag", tmp_path / "in.txt", "--format", "brat", "--output", tmp_path / "n2c2")
    assert code == 2 and "a folder adelabel did not write" in err, err
    assert sorted(p.name for p in (tmp_path / "n2c2").iterdir())[0] == "100035.ann"


def test_a_brat_text_is_split_as_tag_splits_a_paragraph(tmp_path, capsys):
    """A single line break is white space (wrapped notes: an entity may cross it); a blank line or a list
    item ends a sentence."""
    from adelabel.corpus.brat import read_brat

    folder = tmp_path / "b"
    folder.mkdir()
    text = "Aspirin caused severe\nrash. It was\r\nstopped.\n\nNo fever\n- Warfarin"
    (folder / "t.txt").write_bytes(text.encode("utf-8"))
    (folder / "t.ann").write_text("T1\tDRUG 0 7\tAspirin\nT2\tAE 15 26\tsevere rash\nR1\tADE Arg1:T1 Arg2:T2\n"
                                  "T3\tDRUG 57 65\tWarfarin\n")
    sentences, report = read_brat(folder)
    assert [s.text for s in sentences] == ["Aspirin caused severe rash.", "It was  stopped.", "No fever", "- Warfarin"]
    assert sentences[0].spans == [(0, 7, "DRUG"), (15, 26, "AE")] and sentences[0].relations == [(0, 1)]
    assert sentences[3].spans == [(2, 10, "DRUG")] and report.relations == 1 and not report.left_out
    (folder / "u.txt").write_text("x")
    (folder / "u.ann").symlink_to(tmp_path / "gone.ann")  # a link to nothing
    code, _, err = run_cli(capsys, "prepare", "--corpus", folder, "--out", tmp_path / "o", "-q")
    assert code == 2 and err.strip().endswith("u.ann: file not found") and "Traceback" not in err, err


def test_prepared_conll_files_keep_their_documents(sample_data):
    """prepare's .conll files open each document with its id, so preparing from them again deals whole
    abstracts into splits, as preparing from the corpus did (each sentence was its own document)."""
    from adelabel.corpus.conll import read_conll_corpus

    for name in ("train", "dev", "test"):
        rows = [json.loads(line) for line in (sample_data / f"{name}.jsonl").read_text().splitlines()]
        again, report = read_conll_corpus(sample_data / f"{name}.conll")
        assert [s.doc_id for s in again] == [r["doc_id"] for r in rows]
        assert report.documents == len({r["doc_id"] for r in rows})


def test_a_docstart_filler_is_no_document_id(tmp_path):
    """CoNLL-2002 opens each document with "-DOCSTART- -DOCSTART- O", others with one filler of their
    own: the same value on every line names no document, and each line still opens one."""
    from adelabel.corpus.conll import read_conll_corpus

    for filler in ("-DOCSTART-", "X"):
        path = tmp_path / "nl.conll"
        path.write_text("".join(f"-DOCSTART-\t{filler}\tO\n\nword{k}\tB-PER\n.\tO\n\n" for k in range(4)),
                        encoding="utf-8")
        sentences, report = read_conll_corpus(path)
        assert report.documents == 4 and len({s.doc_id for s in sentences}) == 4


def test_a_docstart_line_is_split_into_columns_as_token_lines_are(tmp_path):
    """A -DOCSTART- line ending in a tab, or with spaces around its tab-separated id, still names its
    document (its columns are read as a token line's are)."""
    from adelabel.corpus.conll import read_conll_corpus

    path = tmp_path / "ids.conll"
    path.write_text("".join(f"-DOCSTART-\t {pmid} \tO\t\n\nword{k}\tB-PER\n.\tO\n\n"
                            for k, pmid in enumerate(["1001", "1002", "1003"])), encoding="utf-8")
    sentences, report = read_conll_corpus(path)
    assert [s.doc_id for s in sentences] == ["1001", "1002", "1003"] and report.documents == 3


def test_tag_conll_output_read_back_keeps_each_input_line_one_document(tmp_path):
    """`tag --format conll` writes a "# text =" comment per input line (a whole abstract, say) before its
    sentences: read back without -DOCSTART- lines, each line's sentences are one document."""
    from adelabel.corpus.conll import read_conll_corpus

    path = tmp_path / "tagged.conll"
    path.write_text("# model = {}\n# text = Rash. Lithium stopped.\n# sentence = 0-5 ade=0.9 reported=yes\n"
                    "Rash\tB-AE\n.\tO\n\n# sentence = 6-22 ade=0.1 reported=no\nLithium\tB-DRUG\nstopped\tO\n.\tO\n\n"
                    "# text = \n\n# text = Fever.\n# sentence = 0-6 ade=0.2 reported=no\nFever\tO\n.\tO\n\n",
                    encoding="utf-8")
    sentences, report = read_conll_corpus(path)
    assert [s.doc_id for s in sentences] == ["tagged.conll#text1"] * 2 + ["tagged.conll#text3"]
    assert report.documents == 2


def test_entities_the_tags_cannot_hold_are_counted(tmp_path):
    """Two entities inside one token ("poisoningNaCl"): the token holds one tag, so one entity is lost
    to training and to the scored gold; prepare says so instead of only counting boundaries."""
    from adelabel.prepare import prepare

    corpus = tmp_path / "brat"
    corpus.mkdir()
    for k in range(6):
        (corpus / f"d{k}.txt").write_text("poisoningNaCl occurred. Aspirin caused rash.", encoding="utf-8")
        (corpus / f"d{k}.ann").write_text("T1\tAE 0 9\tpoisoning\nT2\tDRUG 9 13\tNaCl\nT3\tDRUG 24 31\tAspirin\n"
                                          "T4\tAE 39 43\trash\nR1\tCause Arg1:T3 Arg2:T4\n", encoding="utf-8")
    said: list[str] = []
    prepare(corpus, tmp_path / "d", format="brat", seed=1, dim=8, w2v_epochs=1, log=said.append)
    [line] = [s for s in said if s.startswith("entities the tags cannot hold")]
    assert line.endswith(": 6")


def test_a_resumed_run_keeps_the_heads_it_started_with(sample_data, tmp_path, monkeypatch):
    """A run begun with a relation head (by a version without the rule, here the rule switched off) and
    killed is carried on with that head: its checkpoint holds the head's weights."""
    from adelabel import train as training
    from adelabel.config import resolve
    from adelabel.prepare import prepare

    prepare(sample_data / "train.conll", tmp_path / "d", format="conll", dim=8, w2v_epochs=1, log=lambda _: None)
    config = resolve("bilstm", overrides=["model.hidden_size=8", "train.max_epochs=2"])
    monkeypatch.setattr(training, "_heads_the_data_can_train", lambda config, *a: config)

    def killed(epoch, f1):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.train(config, tmp_path / "d", tmp_path / "m", device="cpu", log=None, on_epoch=killed)
    monkeypatch.undo()
    said: list[str] = []
    training.train(config, tmp_path / "d", tmp_path / "m", device="cpu", log=said.append, resume=True)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"]["relations"] is True
    assert not any("no relation head" in line for line in said)


def test_sentences_without_an_entity_of_the_chosen_types_keep_the_gate(tmp_path):
    """--types DOSE --no-negatives: most training sentences hold no DOSE though none is ADE-NEG; the gate
    has sentences to reject, so it stays."""
    from adelabel.config import resolve
    from adelabel.prepare import prepare
    from adelabel.train import train

    prepare(SAMPLE, tmp_path / "d", labels=("DOSE",), include_negative=False, dim=8, w2v_epochs=1, log=lambda _: None)
    said: list[str] = []
    train(resolve("bilstm", overrides=["model.hidden_size=8", "train.max_epochs=1"]), tmp_path / "d", tmp_path / "m",
          device="cpu", log=said.append)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"]["gate"] is True
    assert not any("no sentence gate" in line for line in said)


def test_cv_prints_relations_as_na_without_gold_pairs():
    from adelabel.cv import format_summary, summarise

    fold = {"Chemical": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 5},
            "micro": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 5},
            "relations": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}}
    printed = format_summary({"summary": summarise([fold, fold]), "folds": [{}, {}],
                              "settings": {"config": {"task": "tag"}}})
    assert next(line for line in printed.splitlines() if "relations" in line).endswith("n/a (no gold pair)")
    # No pair predicted either: its precision is undefined too, and left out rather than averaged as 0.
    fold["relations"]["predicted"] = 0
    stats = summarise([fold, fold])
    assert "relations.precision" not in stats
    printed = format_summary({"summary": stats, "folds": [{}, {}], "settings": {"config": {"task": "tag"}}})
    assert next(line for line in printed.splitlines() if "relations" in line).endswith("n/a (no gold pair)")


def test_cv_prints_each_pair_type_under_the_pooled_relations():
    from adelabel.cv import format_summary, summarise

    def scores(f1):
        return {"precision": f1, "recall": f1, "f1": f1, "support": 5}

    fold = {"DRUG": scores(0.9), "micro": scores(0.9),
            "relations": {**scores(0.7), "types": {"DRUG-AE": scores(0.72), "DRUG-DOSE": scores(0.41)}}}
    no_dose = {**fold, "relations": {**scores(0.7), "types": {"DRUG-AE": scores(0.72)}}}  # a split without doses
    lines = format_summary({"summary": summarise([fold, no_dose]), "folds": [{}, {}],
                            "settings": {"config": {"task": "tag"}}}).splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("relations"))
    assert "0.7000" in lines[at] and lines[at + 1].strip().startswith("DRUG-AE") and "0.7200" in lines[at + 1]
    assert "folds)" not in lines[at + 1]  # both folds have their DRUG-AE score
    assert lines[at + 2].strip().startswith("DRUG-DOSE") and lines[at + 2].endswith("(1 of 2 folds)")


def test_a_saved_model_with_dev_f1_0_is_warned_of(sample_data, tmp_path, monkeypatch):
    from adelabel import tasks
    from adelabel.config import resolve
    from adelabel.train import train

    scored = tasks.TagTask.evaluate
    monkeypatch.setattr(tasks.TagTask, "evaluate", lambda self, *a, **k: {**scored(self, *a, **k), "f1": 0.0})
    said: list[str] = []
    train(resolve("bilstm", overrides=["model.hidden_size=8", "train.max_epochs=1"]), sample_data, tmp_path / "m",
          device="cpu", log=said.append)
    assert any(line.startswith("warning: the saved model scores F1 0 on dev") for line in said)


def test_evaluate_prints_each_pair_type_under_the_pooled_relations():
    from adelabel.cli import _relation_line
    from adelabel.evaluate import relation_scores

    ae, dose = (0, 1, 3, 4, "AE"), (0, 1, 7, 8, "DOSE")
    pooled, *types = _relation_line("relations", relation_scores([{ae}], [{ae, dose}])).splitlines()
    assert pooled == "relations: P 0.5000 R 1.0000 F1 0.6667 (1 gold pairs)"
    # A type with no gold pair says how many were predicted all the same: each one false.
    assert types == ["  DRUG-AE: P 1.0000 R 1.0000 F1 1.0000 (1 gold pairs)",
                     "  DRUG-DOSE: n/a (no gold pair; 1 predicted, each a false positive)"]


def test_html_and_conll_give_each_sentence_its_own_entities_and_pairs():
    """The writers take each sentence's entities and pairs as slices of the line's (entities in order
    of the text), not by scanning all of them for every sentence."""
    import io
    import re

    from adelabel.html_view import HtmlWriter
    from adelabel.inference import SentenceScore
    from adelabel.tagging_io import write_conll

    text = "Aspirin and rash. Lithium gave tremor and acne."
    analysis = _analysis(text, [(0, 7, "DRUG"), (12, 16, "AE"), (18, 25, "DRUG"), (31, 37, "AE"), (42, 46, "AE")],
                         [(2, 4), (0, 1), (2, 3)])
    analysis.sentences = [SentenceScore(0, 17, 0.9, True), SentenceScore(18, 47, 0.8, True)]
    out = io.StringIO()
    page = HtmlWriter(out, {})
    page.write(analysis, {})
    page.close()
    first, second = out.getvalue().split('<div class="sentence"')[1:]
    assert re.findall(r'data-label="(\w+)"', first) == ["DRUG", "AE"] and "<bdi>Aspirin</bdi> &rarr; <bdi>rash</bdi>" in first
    assert re.findall(r'data-label="(\w+)"', second) == ["DRUG", "AE", "AE"]
    assert re.findall(r"<li><bdi>(\w+)</bdi> &rarr; <bdi>(\w+)</bdi>", second) == [("Lithium", "acne"), ("Lithium", "tremor")]  # as given
    out = io.StringIO()
    write_conll(out, analysis, {})
    tags = [line.split("\t")[1] for line in out.getvalue().splitlines() if "\t" in line]
    assert tags == ["B-DRUG", "O", "B-AE", "O", "B-DRUG", "O", "B-AE", "O", "B-AE", "O"]


def test_brat_as_annotation_tools_write_it(tmp_path):
    """brat's editor writes a mention across a line end as two fragments, and a relation may come before
    the entities it names; n2c2's drugs are typed "Drug", which relations do not go from."""
    from adelabel.corpus.brat import read_brat

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "n.txt").write_text("Lisinopril for essential\nhypertension caused cough.\n", encoding="utf-8")
    (folder / "n.ann").write_text("R1\tADE-Drug Arg1:T3 Arg2:T1\n"
                                  "T1\tDRUG 0 10\tLisinopril\n"
                                  "T2\tReason 15 24;25 37\tessential hypertension\n"
                                  "T3\tADE 45 50\tcough\n"
                                  "T4\tADE 0 3;45 50\tLis cough\n", encoding="utf-8")  # discontinuous indeed
    [sentence], report = read_brat(folder)
    assert sentence.spans == [(0, 10, "DRUG"), (15, 37, "Reason"), (45, 50, "ADE")]
    assert sentence.relations == [(0, 2)] and report.left_out == {"discontinuous entities": 1}
    (folder / "n.ann").write_text("T1\tDrug 0 10\tLisinopril\nT3\tADE 45 50\tcough\nR1\tADE-Drug Arg1:T3 Arg2:T1\n",
                                  encoding="utf-8")
    _, report = read_brat(folder)
    assert report.relations == 0
    assert "note: relations go from entities of type DRUG, and Drug is another type; rename it DRUG in the .ann " \
           "files to learn its relations" in report.summary()
    (folder / "n.ann").write_text("R1\tADE-Drug Arg1:T3 Arg2:T9\nT3\tADE 45 50\tcough\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"n\.ann:1: R1 names T9, which no T line defines"):
        read_brat(folder)


def test_brat_fragments_bom_comments_crlf_triggers_and_names(tmp_path):
    """A fragmented entity's offsets and text are checked as a single span's are (they were filed as
    discontinuous and left out without a word); a .ann holding only a byte-order mark is empty; free
    comments may repeat; a mention written with a space across a CRLF holds; an event's trigger is no
    entity; hidden files and upper-case suffixes are counted, not read."""
    from adelabel.corpus.brat import read_brat

    txt, ann = tmp_path / "x.txt", tmp_path / "x.ann"
    txt.write_text("Aspirin caused severe rash.", encoding="utf-8")
    for fragments, message in (("0 7;8 14\tsevere rash", r"x\.ann:2: T2: .* has 'Aspirin caused' at 0 7;8 14, not 'severe rash'"),
                               ("15 21;22 9999\tsevere rash", r"x\.ann:2: T2 spans characters 22-9999, past the end of"),
                               ("15 21;26 22\tsevere rash", r"x\.ann:2: T2 spans characters 26-22: its end is not after"),
                               ("15 22;20 26\tsevere rash", r"x\.ann:2: T2: its fragments 15 22;20 26 overlap")):
        ann.write_text(f"T1\tDRUG 0 7\tAspirin\nT2\tAE {fragments}\n", encoding="utf-8")
        with pytest.raises(InputError, match=message):
            read_brat(tmp_path)
    # Fragments in any order are one span when white space alone parts them.
    ann.write_text("T1\tDRUG 0 7\tAspirin\nT2\tAE 22 26;15 21\tsevere rash\nR1\tADE Arg1:T1 Arg2:T2\n", encoding="utf-8")
    [sentence], _ = read_brat(tmp_path)
    assert sentence.spans == [(0, 7, "DRUG"), (15, 26, "AE")] and sentence.relations == [(0, 1)]
    with pytest.raises(InputError, match=r"x\.ann:2: T2 is a discontinuous entity \(fragments 0 7;15 21 parted"):
        ann.write_text("T1\tDRUG 0 7\tAspirin\nT2\tAE 0 7;15 21\tAspirin severe\n", encoding="utf-8")
        read_brat(tmp_path, strict=True)
    ann.write_bytes(b"\xef\xbb\xbf")
    [sentence], report = read_brat(tmp_path)
    assert sentence.spans == [] and report.documents == 1
    ann.write_text("# TODO check\nT1\tDRUG 0 7\tAspirin\n# TODO check\n#\n#\n#1\tAnnotatorNotes T1\tok\n",
                   encoding="utf-8")
    [sentence], report = read_brat(tmp_path)
    assert sentence.spans == [(0, 7, "DRUG")] and report.left_out["event, attribute, normalisation or note lines"] == 5
    txt.write_bytes(b"Aspirin caused severe\r\nrash.")
    ann.write_text("T1\tDRUG 0 7\tAspirin\nT2\tAE 15 27\tsevere rash\n", encoding="utf-8")
    [sentence], _ = read_brat(tmp_path)
    assert sentence.spans == [(0, 7, "DRUG"), (15, 27, "AE")]
    txt.write_text("Aspirin caused severe rash.", encoding="utf-8")
    ann.write_text("T1\tDRUG 0 7\tAspirin\nT2\tAE 15 26\tsevere rash\nT3\tADE_trigger 8 14\tcaused\n"
                   "E1\tADE_trigger:T3 Drug:T1 Effect:T2\n", encoding="utf-8")
    [sentence], report = read_brat(tmp_path)
    assert sentence.spans == [(0, 7, "DRUG"), (15, 26, "AE")]
    assert report.left_out["event triggers (T lines an E line marks its event with; no entities)"] == 1
    (tmp_path / "._x.ann").write_bytes(b"\x00\x05\x16\x07\xff\xfe")
    (tmp_path / "y.TXT").write_text("Rash.", encoding="utf-8")
    (tmp_path / "y.ANN").write_text("T1\tAE 0 4\tRash\n", encoding="utf-8")
    [sentence], report = read_brat(tmp_path)
    assert report.left_out["hidden files (names starting with '.')"] == 1
    assert report.left_out["files whose suffix is not .txt or .ann in lower case (y.ANN; rename them)"] == 2


def test_a_long_brat_document_keeps_each_sentence_s_entities(tmp_path):
    """Each sentence finds its entities by a binary search over them sorted by start (a scan of every
    entity for each sentence made a long document's reading quadratic)."""
    from adelabel.corpus.brat import read_brat

    n = 3_000
    text, lines, at = [], [], 0
    for k in range(n):
        sentence = f"Drug{k} caused rash{k}. "
        drug, rash = (at, at + len(f"Drug{k}")), (at + len(f"Drug{k} caused "), at + len(f"Drug{k} caused rash{k}"))
        lines += [f"T{2 * k + 1}\tDRUG {drug[0]} {drug[1]}\tDrug{k}", f"T{2 * k + 2}\tAE {rash[0]} {rash[1]}\trash{k}",
                  f"R{k + 1}\tADE Arg1:T{2 * k + 1} Arg2:T{2 * k + 2}"]
        text.append(sentence)
        at += len(sentence)
    (tmp_path / "big.txt").write_text("".join(text), encoding="utf-8")
    (tmp_path / "big.ann").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sentences, report = read_brat(tmp_path)
    assert len(sentences) == n and report.relations == n and all(s.relations == [(0, 1)] for s in sentences)
    assert [s.spans for s in sentences[-2:]] == [[(0, 8, "DRUG"), (16, 24, "AE")], [(0, 8, "DRUG"), (16, 24, "AE")]]
    assert sentences[-1].text == "Drug2999 caused rash2999."


def test_a_named_pipe_given_as_the_corpus_is_named_so(tmp_path, capsys):
    import os

    pipe = tmp_path / "ff.conll"
    os.mkfifo(pipe)
    code, _, err = run_cli(capsys, "prepare", "--corpus", pipe, "--out", tmp_path / "d")
    assert code == 2 and "ff.conll: is a pipe or a device, not a corpus folder" in err, err


def test_conll_written_by_tag_reads_back_with_its_relations(tmp_path):
    """tag --format conll writes each relation as a comment naming its entities by their place in the
    line; prepare reads them back as relations of the sentences that hold both (they were dropped)."""
    import io

    from adelabel.corpus.conll import read_conll_corpus
    from adelabel.inference import SentenceScore
    from adelabel.tagging_io import write_conll

    out = io.StringIO()
    text = 'Rash after lamotrigine-induced use. Lithium caused "tremor" too.'
    analysis = _analysis(text, [(0, 4, "AE"), (11, 22, "DRUG"), (36, 43, "DRUG"), (51, 59, "AE")], [(1, 0), (2, 3)])
    analysis.sentences = [SentenceScore(0, 35, 0.9, True), SentenceScore(36, len(text), 0.9, True)]
    write_conll(out, analysis, {})
    nothing = _analysis("Nothing here.", [], [])
    nothing.sentences = [SentenceScore(0, 13, 0.1, False)]
    write_conll(out, nothing, {})
    (tmp_path / "t.conll").write_text(out.getvalue(), encoding="utf-8")
    sentences, report = read_conll_corpus(tmp_path / "t.conll")
    assert [(s.spans, s.relations) for s in sentences] == [([(0, 4, "AE"), (11, 22, "DRUG")], [(1, 0)]),
                                                           ([(0, 7, "DRUG"), (15, 25, "AE")], [(0, 1)]), ([], [])]
    assert sentences[1].text[15:25] == '" tremor "' and report.relations == 2 and not report.left_out
    assert sentences[0].doc_id == sentences[1].doc_id != sentences[2].doc_id
