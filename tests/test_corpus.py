"""The ADE reader on the real corpus and on small files that exercise its quirks and bad input."""
from __future__ import annotations

import re

import numpy as np
import pytest

from adelabel.corpus.ade import read_ade, resolve_overlaps
from adelabel.corpus.conll import read_conll_corpus, write_conll
from adelabel.errors import InputError
from adelabel.split import split_by_document
from adelabel.tags import spans_to_tags, tags_to_spans
from adelabel.text import tokenize
from conftest import SAMPLE

SENT = "naproxen rash: we saw rash after naproxen."


def write_corpus(tmp_path, ae_lines, neg_lines=("1 NEG Nothing happened with naproxen.",), dose_lines=None):
    (tmp_path / "DRUG-AE.rel").write_text("".join(l + "\n" for l in ae_lines), encoding="utf-8")
    (tmp_path / "ADE-NEG.txt").write_text("".join(l + "\n" for l in neg_lines), encoding="utf-8")
    if dose_lines is not None:
        (tmp_path / "DRUG-DOSE.rel").write_text("".join(l + "\n" for l in dose_lines), encoding="utf-8")
    return tmp_path


@pytest.fixture(scope="module")
def real(real_corpus):
    return read_ade(real_corpus)


def test_real_corpus_counts_and_location(real):
    sentences, report = real
    assert report.lines == {"DRUG-AE.rel": 6170, "ADE-NEG.txt": 15118}
    # 3,861 distinct relation sentences plus the ADE-NEG ones not also listed with relations.
    assert sum(not s.negative for s in sentences) == 3861
    assert report.unlocatable == 0 and report.malformed_lines == 0
    assert report.located_by_offsets == report.mentions
    # The consistent-offset rule matters: hundreds of mentions are not their sentence's first occurrence.
    assert report.not_first_occurrence > 100
    assert report.duplicate_spans > 0 and report.nested_dropped > 0
    # Every relation line becomes a pair, but those whose drug sits inside its effect's span.
    assert report.relations + report.relations_dropped == 6170 and report.relations_dropped < 200
    assert sum(len(s.relations) for s in sentences) == report.relations
    # Six ADE-NEG lines are listed twice; each sentence is kept once.
    assert report.duplicate_negative_lines == 6 and report.negative_also_positive == 0


def test_real_corpus_round_trips_through_bio(real):
    sentences, _ = real
    for s in sentences:
        tokens = tokenize(s.text)
        tags, misaligned = spans_to_tags(tokens, s.spans)
        assert misaligned == 0, s.text
        assert tags_to_spans(tokens, tags) == s.spans, s.text


def test_real_corpus_quirks(real):
    sentences, _ = real
    by_text = {s.text: s for s in sentences}
    s = by_text["Intravenous azithromycin-induced ototoxicity."]
    assert [(s.text[a:b], lab) for a, b, lab in s.spans] == [("azithromycin", "DRUG"), ("ototoxicity", "AE")]
    # Spans never overlap after the overlap policy, and no mention keeps surrounding spaces.
    for s in sentences:
        for (a1, b1, _), (a2, b2, _) in zip(s.spans, s.spans[1:]):
            assert b1 <= a2
        assert all(s.text[a:b] == s.text[a:b].strip() for a, b, _ in s.spans)
    # A drug named in an ADE-NEG sentence is not an entity there.
    neg = [s for s in sentences if s.negative and "methotrexate" in s.text.lower()]
    assert neg and all(not s.spans for s in neg)


def test_dose_only_when_asked(real_corpus):
    sentences, report = read_ade(real_corpus, labels=("DRUG", "AE", "DOSE"), include_negative=False)
    assert report.entities["DOSE"] > 150
    assert all(not s.negative for s in sentences)


def test_split_is_by_document_and_seeded(real):
    sentences, _ = real
    a = split_by_document(sentences, seed=1)
    b = split_by_document(sentences, seed=1)
    c = split_by_document(sentences, seed=2)
    docs = {name: {s.doc_id for s in part} for name, part in a.items()}
    assert not docs["train"] & docs["dev"] and not docs["train"] & docs["test"] and not docs["dev"] & docs["test"]
    assert {k: [s.text for s in v] for k, v in a.items()} == {k: [s.text for s in v] for k, v in b.items()}
    assert docs["test"] != {s.doc_id for s in c["test"]}
    n = len(docs["train"]) + len(docs["dev"]) + len(docs["test"])
    assert abs(len(docs["train"]) / n - 0.8) < 0.01


def test_offsets_pick_the_consistent_occurrence(tmp_path):
    # Document: "1\n\n" + SENT, so the sentence starts at 3. The second "rash" (21) and the second
    # "naproxen" (32) are annotated; a first-match search would pick the first ones.
    line = f"1|{SENT}|rash|{3 + 22}|{3 + 26}|naproxen|{3 + 33}|{3 + 41}"
    sentences, report = read_ade(write_corpus(tmp_path, [line]))
    pos = [s for s in sentences if not s.negative][0]
    assert pos.spans == [(22, 26, "AE"), (33, 41, "DRUG")]
    assert report.not_first_occurrence == 2


def test_relation_lines_of_one_sentence_merge(tmp_path):
    text = "Rash and fever after naproxen, not after aspirin."
    lines = [f"7|{text}|Rash|3|7|naproxen|24|32", f"7|{text}|fever|12|17|naproxen|24|32"]
    sentences, report = read_ade(write_corpus(tmp_path, lines))
    pos = [s for s in sentences if not s.negative]
    assert len(pos) == 1 and len(pos[0].spans) == 3
    assert report.duplicate_spans == 1
    # Spans sorted: Rash (AE), fever (AE), naproxen (DRUG); both effects pair with the drug.
    assert pos[0].relations == [(2, 0), (2, 1)]


def test_relations_become_pair_labels_over_token_ranges(tmp_path):
    from adelabel.data import encode_sentences
    from adelabel.tags import tag_set
    from adelabel.vocab import Vocab, Vocabs

    text = "Rash after naproxen and aspirin."
    sentences, _ = read_ade(write_corpus(tmp_path, [f"7|{text}|Rash|3|7|naproxen|14|22",
                                                    f"7|{text}|Rash|3|7|aspirin|27|34"]))
    [pos] = [s for s in sentences if not s.negative]
    vocabs = Vocabs(Vocab.for_words([]), Vocab.for_words([]))
    [example] = encode_sentences([pos], vocabs, tag_set(["DRUG", "AE"]))
    # Tokens: Rash after naproxen and aspirin . -> drugs at 2 and 4, the effect at 0.
    assert example.pairs == [(2, 3, 0, 1), (4, 5, 0, 1)] and example.pair_gold == [1, 1]


def test_a_span_inside_a_token_keeps_its_relation():
    from adelabel.corpus import Sentence
    from adelabel.data import encode_sentences
    from adelabel.tags import tag_set
    from adelabel.vocab import Vocab, Vocabs

    # "toxicity" is annotated inside the token "ototoxicity": tagged as the whole token, and paired.
    text = "Severe ototoxicity after azithromycin."
    sentence = Sentence(text, [(9, 18, "AE"), (25, 37, "DRUG")], relations=[(1, 0)])
    [example] = encode_sentences([sentence], Vocabs(Vocab.for_words([]), Vocab.for_words([])), tag_set(["DRUG", "AE"]))
    assert example.pairs == [(3, 4, 1, 2)] and example.pair_gold == [1]


def test_two_mentions_in_one_token_give_no_gold_pair_no_prediction_could_match():
    """The tags hold one entity per token: of a drug and its effect written as one word, the later
    takes the token. The pair is no gold pair (prepare counts the lost entity): kept, it had the
    effect's token range for both ends, and recall counted a miss no tagger could avoid."""
    from adelabel.corpus import Sentence
    from adelabel.data import encode_sentences
    from adelabel.tags import tag_set
    from adelabel.vocab import Vocab, Vocabs

    text = "Oxaliplatinneurotoxicity was seen after cisplatin."
    sentence = Sentence(text, [(0, 11, "DRUG"), (11, 24, "AE"), (40, 49, "DRUG")], relations=[(0, 1), (2, 1)])
    [example] = encode_sentences([sentence], Vocabs(Vocab.for_words([]), Vocab.for_words([])), tag_set(["DRUG", "AE"]))
    assert example.pairs == [(4, 5, 0, 1)] and example.pair_gold == [1]


def test_a_nested_drug_loses_its_relation_and_is_counted(tmp_path):
    text = "Heparin-induced thrombocytopenia."
    sentences, report = read_ade(write_corpus(tmp_path, [f"7|{text}|Heparin-induced thrombocytopenia|3|35|Heparin|3|10"]))
    [pos] = [s for s in sentences if not s.negative]
    assert pos.spans == [(0, 32, "AE")] and pos.relations == []
    assert report.relations_dropped == 1


def test_overlap_policy_keeps_outer():
    spans = [(0, 32, "AE"), (0, 7, "DRUG"), (5, 40, "AE"), (50, 55, "DRUG"), (50, 55, "DRUG")]
    assert resolve_overlaps(spans) == [(5, 40, "AE"), (50, 55, "DRUG")]
    # The literature's variant: every span that overlaps another goes, both of them.
    assert resolve_overlaps(spans, policy="drop") == [(50, 55, "DRUG")]


def test_overlaps_drop_removes_both_mentions_and_their_relation(tmp_path):
    text = "Heparin-induced thrombocytopenia and a rash after naproxen."
    corpus = write_corpus(tmp_path, [f"7|{text}|Heparin-induced thrombocytopenia|3|35|Heparin|3|10",
                                     f"7|{text}|rash|42|46|naproxen|53|61"])
    [pos] = [s for s in read_ade(corpus, overlaps="drop")[0] if not s.negative]
    report = read_ade(corpus, overlaps="drop")[1]
    assert [text[a:b] for a, b, _ in pos.spans] == ["rash", "naproxen"] and pos.relations == [(1, 0)]
    assert report.overlapping_dropped == 2 and report.relations_dropped == 1
    assert any("overlapping spans dropped, both" in line for line in report.summary())
    [outer] = [s for s in read_ade(corpus)[0] if not s.negative]
    assert len(outer.spans) == 3  # the default keeps the outer mention


def test_overlaps_option_is_checked(capsys, tmp_path):
    from conftest import run_cli

    from conftest import SAMPLE

    code, _, err = run_cli(capsys, "prepare", "--corpus", SAMPLE, "--overlaps", "inner", "--out", tmp_path / "d")
    assert code == 2 and err.strip() == "adelabel: error: --overlaps: expected outer or drop, got 'inner'", err
    conll = tmp_path / "x.conll"
    conll.write_text("Rash\tB-AE\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "prepare", "--corpus", str(conll), "--overlaps", "drop", "--out", str(tmp_path / "d"))
    assert code == 2 and err.strip() == \
        "adelabel: error: --overlaps drop: applies to the ADE corpus's files, not to conll data", err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("line, message", [
    ("1|A rash.|rash|5|9|aspirin", "expected 8"),
    ("1|A rash.|rash|x|9|A|3|4", "not integers"),
    ("1|A rash.|rash|5|9|aspirin|10|17", "does not occur"),
    ("1|A rash.|rash|5|12|A|3|4", "do not match its length"),
    ("1|A rash.|rash|-5|-1|A|3|4", "offsets -5--1 of 'rash' are negative"),
    ("1|A rash.|rash|9|5|A|3|4", "offsets 9-5 of 'rash' end before they begin"),
    ("1|A r\x00ash.|rash|5|9|A|3|4", "control character U+0000 at column 6"),
    ("PMC1|A rash.|rash|5|9|A|3|4", "PubMed ID 'PMC1' is not a number"),
    ("\u0661|A rash.|rash|5|9|A|3|4", "PubMed ID '\u0661' is not a number"),  # int() reads an Arabic-Indic 1
    ("1|A rash.|rash|5|9|A|3_|4", "offsets of 'A' are not integers: '3_', '4'"),
    ("1|A rash.|rash| 5|9|A|3|4", "offsets of 'rash' are not integers: ' 5', '9'"),
    ("1|A rash.|rash|\uff15|9|A|3|4", "not integers"),
    ("1||rash|5|9|A|3|4", "empty sentence"),
    ("1|A rash.|rash|5|9|A|3|4|note", "offsets of '5' are not integers: '9', 'A' (the line has 9 '|'-separated "
                                     "fields, not 8: a field too many?)"),
    ("1|A rash.|rash|5|9|A|3|4\r3|A rash.|rash|5|9|A|3|4", "a carriage return at column 25, inside the line"),
])
def test_malformed_lines_reported_with_file_and_line(tmp_path, line, message):
    good = "2|Fever after aspirin.|Fever|3|8|aspirin|15|22"
    corpus = write_corpus(tmp_path, [good, line])
    sentences, report = read_ade(corpus)
    assert report.malformed_lines == 1
    assert "DRUG-AE.rel:2: " in report.problems[0] and message in report.problems[0]
    assert any(s.spans for s in sentences)
    with pytest.raises(InputError, match=r"DRUG-AE\.rel:2: .*" + re.escape(message)):
        read_ade(corpus, strict=True)


def test_a_corpus_whose_every_relation_line_is_malformed_is_refused(capsys, tmp_path):
    from conftest import run_cli

    (tmp_path / "c").mkdir()
    corpus = write_corpus(tmp_path / "c", ["2\tFever after aspirin.\tFever\t3\t8\taspirin\t15\t22"])  # tabs, not |
    code, _, err = run_cli(capsys, "prepare", "--corpus", corpus, "--out", tmp_path / "o", "-q")
    assert code == 2 and "c: no DRUG, AE entity read; a tagger needs some" in err, err
    assert not (tmp_path / "o").exists()


def test_quiet_prepare_still_says_that_lines_were_skipped(capsys, tmp_path):
    """--quiet silences the report, but not the news that some of the corpus was left out."""
    import shutil

    from conftest import SAMPLE, run_cli

    shutil.copytree(SAMPLE, tmp_path / "c")
    rel = tmp_path / "c" / "DRUG-AE.rel"
    lines = rel.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace("|", "#")
    rel.write_text("".join(lines), encoding="utf-8")
    code, out, err = run_cli(capsys, "prepare", "--corpus", tmp_path / "c", "--out", tmp_path / "o", "-q")
    assert code == 0 and out == "", err
    assert err.strip().splitlines() == [f"{tmp_path / 'c'}: 1 malformed line(s) skipped (first: {rel}:3: expected 8 "
                                        "'|'-separated fields, found 1)"], err
    code, _, err = run_cli(capsys, "prepare", "--corpus", SAMPLE, "--out", tmp_path / "o2", "-q")
    assert code == 0 and err == "", err


def test_offsets_outside_the_sentence_drop_their_line(tmp_path):
    good = "1|A rash.|rash|5|9|A|3|4"
    stray = "1|A rash.|rash|905|909|A|3|4"  # 'rash' 900 characters past where the sentence is
    corpus = write_corpus(tmp_path, [good, stray])
    sentences, report = read_ade(corpus)
    assert report.malformed == {"offsets outside the sentence": 1}
    assert "DRUG-AE.rel:2: offsets 905-909 of 'rash' fall outside its sentence" in report.problems[0]
    assert "malformed lines skipped: 1 (offsets outside the sentence 1)" in report.summary()
    [pos] = [s for s in sentences if not s.negative]
    assert pos.spans == [(0, 1, "DRUG"), (2, 6, "AE")]
    with pytest.raises(InputError, match=r"DRUG-AE\.rel:2: offsets 905-909"):
        read_ade(corpus, strict=True)
    # --strict names the first malformed line in the files' order, though a line whose offsets fall outside
    # its sentence is found only after every line is read.
    corpus = write_corpus(tmp_path, [good, stray, "1|A rash.|rash"], ["x NEG Bad id."])
    with pytest.raises(InputError, match=r"DRUG-AE\.rel:2: offsets 905-909"):
        read_ade(corpus, strict=True)
    corpus = write_corpus(tmp_path, ["1|A rash.|rash"], ["x NEG Bad id."])
    with pytest.raises(InputError, match=r"DRUG-AE\.rel:1: "):
        read_ade(corpus, strict=True)


def test_an_id_written_with_leading_zeros_is_the_same_document(tmp_path):
    """Else one abstract's sentences could land in two splits."""
    corpus = write_corpus(tmp_path, ["0042|A rash.|rash|5|9|A|3|4", "42|Fever after aspirin.|Fever|3|8|aspirin|15|22"],
                          ["00042 NEG Nothing happened."])
    sentences, _ = read_ade(corpus)
    assert {s.doc_id for s in sentences} == {"42"}


def test_duplicate_negative_lines_are_counted_apart(tmp_path):
    corpus = write_corpus(tmp_path, ["1|A rash.|rash|5|9|A|3|4"],
                          ["1 NEG Nothing happened.", "1 NEG Nothing happened.", "1 NEG A rash.", "x NEG Bad id."])
    sentences, report = read_ade(corpus)
    assert report.duplicate_negative_lines == 1 and report.negative_also_positive == 1
    assert report.malformed == {"PubMed ID not a number": 1}
    assert [s.text for s in sentences if s.negative] == ["Nothing happened."]


def test_every_line_is_counted_blank_repeated_or_control_ones_too(tmp_path):
    """Blank lines and a line repeating a relation were dropped with no count of their own; a line of only
    separator characters (U+001C-U+001F, which str.strip() takes for white space) passed as blank."""
    corpus = write_corpus(tmp_path, ["1|A rash.|rash|5|9|A|3|4", "", " \t", "1|A rash.|rash|5|9|A|3|4", "\x1c"],
                          ["1 NEG Nothing happened.", "", "\x1d\x1e"])
    sentences, report = read_ade(corpus)
    assert report.blank_lines == 3 and report.duplicate_relation_lines == 1 and report.relations == 1
    assert report.malformed_lines == 2 and report.lines == {"DRUG-AE.rel": 5, "ADE-NEG.txt": 3}
    assert "blank lines skipped: 3" in report.summary() and any("lines repeating a pair: 1" in line
                                                                for line in report.summary())
    with pytest.raises(InputError, match=r"DRUG-AE\.rel:5:"):
        read_ade(corpus, strict=True)


def test_malformed_negative_line(tmp_path):
    corpus = write_corpus(tmp_path, ["2|Fever after aspirin.|Fever|3|8|aspirin|15|22"], ["1 POS oops", "1 NEG fine."])
    with pytest.raises(InputError, match=r"ADE-NEG\.txt:1: expected 'PubMed-ID NEG sentence', found '1 POS oops'"):
        read_ade(corpus, strict=True)
    sentences, report = read_ade(corpus)
    assert report.malformed_lines == 1 and len(sentences) == 2


def test_non_utf8_empty_and_missing_files(tmp_path):
    corpus = write_corpus(tmp_path, ["2|Fever after aspirin.|Fever|3|8|aspirin|15|22"])
    (corpus / "ADE-NEG.txt").write_bytes(b"1 NEG fine.\n1 NEG caf\xe9 au lait\n")
    with pytest.raises(InputError, match=r"ADE-NEG\.txt:2: not UTF-8"):
        read_ade(corpus)
    (corpus / "ADE-NEG.txt").write_bytes(b"")
    with pytest.raises(InputError, match=r"ADE-NEG\.txt: file is empty"):
        read_ade(corpus)
    (corpus / "ADE-NEG.txt").unlink()
    with pytest.raises(InputError, match=r"ADE-NEG\.txt: file not found"):
        read_ade(corpus)
    assert read_ade(corpus, include_negative=False)[0]
    with pytest.raises(InputError, match="corpus folder not found"):
        read_ade(tmp_path / "nowhere")
    with pytest.raises(InputError, match="DRUG-DOSE.rel: file not found"):
        read_ade(corpus, labels=("DRUG", "AE", "DOSE"), include_negative=False)


def test_conll_round_trip(tmp_path):
    path = tmp_path / "x.conll"
    write_conll(path, [("12345", ["Rash", "after", "naproxen"], ["B-AE", "O", "B-DRUG"])])
    assert path.read_text().startswith("-DOCSTART-\t12345\tO\n\n")
    [s] = read_conll_corpus(path)[0]
    assert s.text == "Rash after naproxen" and s.spans == [(0, 4, "AE"), (11, 19, "DRUG")] and s.doc_id == "12345"
    path.write_text("Rash\tB-AE\nafter\tX-Y\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"x\.conll:2: tag 'X-Y'"):
        read_conll_corpus(path)[0]


def test_pretrained_vectors_text_format_and_bad_file(tmp_path):
    from adelabel.embeddings import read_pretrained, select_vectors

    good = tmp_path / "vec.txt"
    good.write_text("3 2\nNaproxen 0.1 0.2\nnaproxen 0.5 0.5\nrash 0.3 0.4\n", encoding="utf-8")
    kv, merged = select_vectors(read_pretrained(good).kv, keep={"rash"}, max_words=1)
    # Keys are normalised; the first (most frequent) of two entries that normalise alike wins.
    assert list(kv.index_to_key) == ["naproxen", "rash"] and kv["naproxen"].tolist() == pytest.approx([0.1, 0.2])
    assert merged == 1
    bad = tmp_path / "vec.bin"
    bad.write_bytes(b"not vectors at all")
    with pytest.raises(InputError, match=r"vec\.bin: cannot read as word2vec binary format"):
        read_pretrained(bad)
    # Text under a binary name: its digits read as bytes gave words like '00' and values like 1e+29.
    (tmp_path / "text.bin").write_bytes(good.read_bytes())
    with pytest.raises(InputError, match=r"text\.bin: holds word2vec text, not binary, though its name ends in \.bin"):
        read_pretrained(tmp_path / "text.bin")
    # A true binary file (gensim's own writer) is read as one.
    read_pretrained(good).kv.save_word2vec_format(str(tmp_path / "true.bin"), binary=True)
    assert sorted(read_pretrained(tmp_path / "true.bin").kv.index_to_key) == ["Naproxen", "naproxen", "rash"]
    # A header that undercounts its rows: the rows past its count were dropped, unsaid.
    raw = (tmp_path / "true.bin").read_bytes()
    (tmp_path / "fewer.bin").write_bytes(raw.replace(b"3 2\n", b"2 2\n", 1))
    with pytest.raises(InputError, match=r"fewer\.bin: holds more than the 2 rows its header counts"):
        read_pretrained(tmp_path / "fewer.bin")
    nan = tmp_path / "nan.txt"
    nan.write_text("2 2\nrash 0.1 0.2\nfever nan 0.5\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"nan\.txt: the vector of 'fever' \(and 0 more\) holds NaN"):
        read_pretrained(nan)
    with pytest.raises(InputError, match="vectors file not found"):
        read_pretrained(tmp_path / "none.bin")



@pytest.mark.parametrize("content, message", [
    ("3 2\nrash 0.1 0.2\nfever 0.3\nnausea 0.5 0.6\n", r"v\.txt:3: expected a word and 2 numbers, found 2 fields"),
    ("2 2\nrash 0.1 0.2\nfever abc 0.4\n", r"v\.txt:3: 'abc' is not a number"),
    ("\ufeff2 2\nrash 0.1 0.2\nfever 0.3 0.4\n", r"v\.txt:1: begins with a byte-order mark"),
    ("1 2\nrash 0.1 0.2\nfever 0.3 0.4\n", r"v\.txt:1: its header says 1 vectors, but 2 lines follow"),
    ("3 2\nrash 0.1 0.2\n\nfever 0.3 0.4\n", r"v\.txt:3: a blank line between vectors"),
    ("rash 0.1 0.2\nfever 0.3 0.4\n\n", r"v\.txt:3: a blank line, which a file without a 'count dim' header"),
    ("", r"v\.txt: file is empty"),
    ("0 5\n", r"v\.txt: holds no vectors \(its header counts none\)"),
    ("2 0\nrash\nfever\n", r"v\.txt:1: its header gives vectors of dimension 0"),
    ("rash\nfever\n", r"v\.txt:1: a word without numbers"),
    ("99999999999999 200\nrash 0.1\n", r"v\.txt:1: its header says 99,999,999,999,999 vectors of 200 numbers: more than"),
])
def test_a_bad_vectors_file_is_named_with_its_line(tmp_path, content, message):
    from adelabel.embeddings import read_pretrained

    (tmp_path / "v.txt").write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_pretrained(tmp_path / "v.txt")


def test_vectors_without_a_header_twice_given_or_not_utf8_are_read_and_counted(tmp_path, capsys):
    from adelabel.embeddings import read_pretrained

    (tmp_path / "glove.txt").write_text("rash 0.1 0.2\nfever 0.3 0.4\n", encoding="utf-8")
    assert read_pretrained(tmp_path / "glove.txt").kv.index_to_key == ["rash", "fever"]
    (tmp_path / "v.txt").write_bytes(b"3 2\nrash 0.1 0.2\nrash 0.3 0.4\nfe\xffver 0.5 0.6\n")
    read = read_pretrained(tmp_path / "v.txt")
    assert (read.duplicates, read.not_utf8) == (1, 1) and read.kv["rash"].tolist() == pytest.approx([0.1, 0.2])
    assert None not in read.kv.index_to_key
    # Split as gensim splits (a tab inside a word stays), and read through gzip as gensim reads it.
    import gzip

    (tmp_path / "v.vec.gz").write_bytes(gzip.compress(b"2 2\nfe\tver 0.1 0.2\nrash 0.3 0.4 \n"))
    assert read_pretrained(tmp_path / "v.vec.gz").kv.index_to_key == ["fe\tver", "rash"]


def test_the_text_vectors_reader_reads_what_gensim_reads(tmp_path):
    """Our one-pass reader of text vectors gives gensim's words and vectors, header or none."""
    from gensim.models import KeyedVectors

    from adelabel.embeddings import read_pretrained

    rng = np.random.default_rng(0)
    words = ["rash", "Naproxen", "fe\tver", "naïve", "x" * 40, "1,5-dihydro", "\u00e9t\u00e9"]
    vectors = rng.standard_normal((len(words), 7)).astype(np.float32)
    body = "".join(f"{w} " + " ".join(repr(float(x)) for x in row) + (" \r\n" if i % 2 else "\n")
                   for i, (w, row) in enumerate(zip(words, vectors)))
    for name, text in (("head.txt", f"{len(words)} 7\n" + body), ("glove.txt", body)):
        (tmp_path / name).write_text(text, encoding="utf-8", newline="")
        ours = read_pretrained(tmp_path / name).kv
        theirs = KeyedVectors.load_word2vec_format(str(tmp_path / name), binary=False, no_header=name == "glove.txt")
        assert ours.index_to_key == theirs.index_to_key == words
        assert np.array_equal(ours.vectors, theirs.vectors)


def test_prepare_with_a_text_vectors_file_keeps_its_first_entries_and_the_corpus_words(tmp_path):
    """`prepare --vectors FILE`: the file's first entries (by frequency) and every corpus word it holds
    are kept, each with the file's vector, and what was left out is said."""
    from adelabel.embeddings import read_vectors
    from adelabel.prepare import prepare

    rows = {"zzfrequent": [0.5, -0.5, 0.25], "zzrare": [1.0, 1.0, 1.0], "pancreatitis": [0.1, 0.2, 0.3],
            "ciprofloxacin": [0.4, 0.5, 0.6]}
    (tmp_path / "v.txt").write_text(f"{len(rows)} 3\n" + "".join(f"{w} {' '.join(map(str, v))}\n"
                                                                 for w, v in rows.items()), encoding="utf-8")
    said: list[str] = []
    prepare(SAMPLE, tmp_path / "data", vectors=tmp_path / "v.txt", max_vectors=1, log=said.append)
    words, matrix = read_vectors(tmp_path / "data" / "vectors.bin")
    kept = dict(zip(words, matrix.tolist()))
    assert "zzrare" not in kept and kept["zzfrequent"] == pytest.approx(rows["zzfrequent"])
    assert kept["pancreatitis"] == pytest.approx(rows["pancreatitis"])
    assert kept["ciprofloxacin"] == pytest.approx(rows["ciprofloxacin"])
    assert any("3 of its 4 entries kept; 1 left out" in line for line in said), said


def test_reading_a_text_vectors_file_shows_its_progress_in_bytes(tmp_path, capsys, monkeypatch):
    from adelabel import progress
    from adelabel.embeddings import read_pretrained

    (tmp_path / "v.txt").write_text("2 2\nrash 0.1 0.2\nfever 0.3 0.4\n", encoding="utf-8")
    clock = iter([0.0, 0.5])  # the bar starts at 0 s; the file is read by 0.5 s
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock, 0.5))
    read_pretrained(tmp_path / "v.txt", quiet=False)
    size = (tmp_path / "v.txt").stat().st_size
    assert capsys.readouterr().err == f"reading v.txt: 100% ({2 * size} B/s, 0 s left)\n"
    bar = progress.Progress(10**9, "reading", "B", scale=True)
    clock = iter([1.0])
    bar.started = 0.0
    bar.update(2 * 10**8)  # 200 MB in its first second
    assert capsys.readouterr().err == "reading: 20% (200.0 MB/s, 4 s left)\n"
    bar = progress.Progress(9_999_600, "reading", "B", scale=True)
    clock = iter([1.0])
    bar.started = 0.0
    bar.update(999_960)  # rounds up to the next unit, not to "1000.0 kB/s"
    assert capsys.readouterr().err == "reading: 10% (1.0 MB/s, 9 s left)\n"
