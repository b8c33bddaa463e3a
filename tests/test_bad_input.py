"""Bad input, in-process: every case ends in one line on stderr that names the file and line, the
option or the key, with exit status 2, and nothing half-written is left behind."""
from __future__ import annotations

import hashlib
import json
import re
import os
import shutil
import struct
import warnings
from pathlib import Path

import pytest
import torch

from adelabel import Tagger
from adelabel.errors import AdelabelError, InputError, OptionError
from conftest import SAMPLE, run_cli


@pytest.fixture(scope="module")
def place(tmp_path_factory, tiny_model_dir, sample_data):
    """A folder of bad inputs beside a valid model ({m}) and data folder ({d})."""
    t = tmp_path_factory.mktemp("bad")
    (t / "in.txt").write_text("Rash after naproxen.\n", encoding="utf-8")
    (t / "bad.txt").write_bytes(b"fine\n\xff\xfe\n")
    (t / "empty.txt").write_bytes(b"")
    (t / "oneclass.tsv").write_text("a\tRash after naproxen.\na\tFever on day 3.\na\tNo event here.\n")
    (t / "afile").write_text("x")
    (t / "nolabel.tsv").write_text("A\tfine\n\tno label\n", encoding="utf-8")
    (t / "notext.tsv").write_text("A\t \n", encoding="utf-8")
    (t / "twodocs.tsv").write_text("A\tone\nB\ttwo\n", encoding="utf-8")
    (t / "twodocs-skipped.tsv").write_text("A\tone\nB\ttwo\nno tab\n", encoding="utf-8")
    (t / "broken.toml").write_text("[train\nlr = 1\n")
    (t / "empty.toml").write_text("\n  \n")
    (t / "huge.toml").write_text("[model]\nlayers = " + "1" * 5000 + "\n")  # past Python's 4,300 digits
    (t / "deep.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    (t / "typo.toml").write_text("[train]\npatiance = 3\n")
    (t / "wrongtype.toml").write_text("[model]\ncrf = \"sometimes\"\n")
    (t / "quoted.toml").write_text("[model]\nhidden_size = \"200\"\n")
    (t / "gru.toml").write_text('arch = "gru"\n')
    (t / "foo.toml").write_text('arch = "foo"\n')
    (t / "rep").mkdir()
    (t / "s2s-classify.toml").write_text('arch = "seq2seq"\ntask = "classify"\n')
    shutil.copytree(tiny_model_dir, t / "mine")  # a model folder, with the config to train it again in it
    (t / "mine" / "my.toml").write_text("seed = 3\n")
    (t / "vec.bin").write_bytes(b"not vectors")
    (t / "q.meta.json").write_text("Rash after naproxen.\n", encoding="utf-8")
    (t / "emptytable.toml").write_text('arch = "bilstm"\n[trian]\n')
    (t / "nan.jsonl").write_text('{"id": NaN, "text": "x"}\n', encoding="utf-8")
    (t / "twice.jsonl").write_text('{"text": "Rash.", "text": "Fever."}\n', encoding="utf-8")
    (t / "utf16.txt").write_text("Rash after naproxen.\n", encoding="utf-16")  # with its byte-order mark
    (t / "utf16le.txt").write_text("Rash after naproxen.\n", encoding="utf-16-le")  # without
    # A blank first line is one byte in UTF-16 ("\n", its zero byte starting line 2): the first bytes tell.
    (t / "utf16-blank.txt").write_text("\nRash after naproxen.\n", encoding="utf-16-le")
    (t / "utf32.txt").write_text("Rash after naproxen.\n", encoding="utf-32-le")
    (t / "bom-only.txt").write_bytes(b"\xef\xbb\xbf")  # what an editor saves for an empty file
    (t / "blank-lines.txt").write_text("\n  \n\t\n", encoding="utf-8")
    (t / "zeros.txt").write_bytes(bytes(100) + b"Rash after naproxen.\n")
    newer = t / "newer-model"
    shutil.copytree(tiny_model_dir, newer)
    (newer / "config.json").write_text(json.dumps({**json.loads((newer / "config.json").read_text()), "format_version": 99}))
    (t / "deep.jsonl").write_text('{"id": ' + "[" * 100_000 + "]" * 100_000 + ', "text": "x"}\n', encoding="utf-8")
    (t / "digits.jsonl").write_text('{"id": ' + "9" * 5000 + ', "text": "x"}\n', encoding="utf-8")
    (t / "half.jsonl").write_text('{"text": "fine"}\n{"text": "a \\ud800 b"}\n', encoding="utf-8")
    corrupt = t / "corrupt-model"
    shutil.copytree(tiny_model_dir, corrupt)
    (corrupt / "model.safetensors").write_bytes((corrupt / "model.safetensors").read_bytes()[:-8] + b"\0" * 8)
    deep = t / "deep-model"
    shutil.copytree(tiny_model_dir, deep)
    (deep / "config.json").write_text('{"arch": ' + "[" * 100_000 + "]" * 100_000 + "}")
    doses = t / "dose-data"
    shutil.copytree(sample_data, doses)
    manifest = json.loads((doses / "manifest.json").read_text())
    (doses / "manifest.json").write_text(json.dumps({**manifest, "labels": ["DRUG", "AE", "DOSE"]}))
    tampered = t / "tampered-data"
    shutil.copytree(sample_data, tampered)
    with (tampered / "dev.jsonl").open("a") as fh:
        fh.write(json.dumps({"doc_id": "1", "text": "A test sentence leaked in.", "spans": [], "negative": True}) + "\n")
    noted = t / "noted-model"  # a user's notes in a model folder: replacing it would delete them
    shutil.copytree(tiny_model_dir, noted)
    (noted / "notes.txt").write_text("mine")
    (t / "link-into-model.jsonl").symlink_to(t / "corrupt-model" / "metrics.json")
    report = t / "noted-report"  # the same in an evaluate --report folder, which has no manifest
    report.mkdir()
    for name in ("metrics.json", "errors.jsonl", "per_type.png", "notes.txt"):
        (report / name).write_text("{}")
    (t / "noted-tune").mkdir()
    for name in ("history.png", "notes.txt"):
        (t / "noted-tune" / name).write_text("")
    nested = t / "nested-data"  # a data folder prepared inside another
    shutil.copytree(sample_data, nested)
    shutil.copytree(sample_data, nested / "sample")
    vectors = t / "tampered-vectors"  # the vectors file a training reads its vocabulary and rows from
    shutil.copytree(sample_data, vectors)
    raw = bytearray((vectors / "vectors.bin").read_bytes())
    raw[-5] ^= 0xFF
    (vectors / "vectors.bin").write_bytes(bytes(raw))
    nan = t / "nan-vectors"  # damaged, its manifest entry made to match
    shutil.copytree(sample_data, nan)
    header, _, body = (nan / "vectors.bin").read_bytes().partition(b"\n")
    word_end = body.index(b" ") + 1
    (nan / "vectors.bin").write_bytes(header + b"\n" + body[:word_end] + struct.pack("<f", float("nan")) + body[word_end + 4:])
    manifest = json.loads((nan / "manifest.json").read_text())
    manifest["files"]["vectors.bin"] = hashlib.sha256((nan / "vectors.bin").read_bytes()).hexdigest()
    (nan / "manifest.json").write_text(json.dumps(manifest))
    unlisted = t / "unlisted"  # its checksum dropped, so that an edit would pass unseen
    shutil.copytree(sample_data, unlisted)
    manifest = json.loads((unlisted / "manifest.json").read_text())
    del manifest["files"]["train.jsonl"]
    (unlisted / "manifest.json").write_text(json.dumps(manifest))
    long = t / "long-ade"  # a line of a corpus without sentence breaks
    long.mkdir()
    for name in ("DRUG-AE.rel", "DRUG-DOSE.rel", "ADE-NEG.txt"):
        shutil.copy(Path(SAMPLE) / name, long / name)
    with (long / "ADE-NEG.txt").open("a", encoding="utf-8") as fh:
        fh.write("90000099 NEG " + "word " * 1200 + "\n")
    (t / "long.tsv").write_text("ADE\tRash after naproxen.\nNEG\tNo event.\nNEG\t" + "word " * 20_001 + "\n")
    return {"t": t, "m": tiny_model_dir, "d": sample_data, "s": SAMPLE}


CASES = [
    # prepare
    ("prepare --corpus {t}/nowhere --out {t}/o", "{t}/nowhere: corpus folder not found"),
    ("prepare --corpus {t}/triage.tsv --out {t}/o", "{t}/triage.tsv: file not found"),
    ("prepare --corpus {t}/ade-v2.1 --out {t}/o", "{t}/ade-v2.1: corpus folder not found"),
    ("prepare --corpus {t}/oneclass.tsv --out {t}/o", "{t}/oneclass.tsv: every text has the label 'a'; a classifier needs at least two classes"),
    ("prepare --corpus {t}/afile --out {t}/o", "{t}/afile: no sentences read; the first line skipped: {t}/afile:1: missing tab"),
    ("prepare --corpus {t}/afile --format ade --out {t}/o", "--corpus {t}/afile: the ADE corpus is a folder"),
    ("prepare --corpus {t}/in.txt --format labelled --strict --out {t}/o", "{t}/in.txt:1: missing tab (expected 2 tab-separated columns)"),
    ("prepare --corpus {t}/nolabel.tsv --strict --out {t}/o", "{t}/nolabel.tsv:2: empty label"),
    ("prepare --corpus {t}/twodocs.tsv --out {t}/o -q", "{t}/twodocs.tsv: holds 2 document(s); splitting into train/dev/test needs at least 3"),
    # The line on what the reader skipped, said under -q, is said only of a corpus that can be split.
    ("prepare --corpus {t}/twodocs-skipped.tsv --out {t}/o -q", "{t}/twodocs-skipped.tsv: holds 2 document(s)"),
    ("prepare --corpus {t}/notext.tsv --strict --out {t}/o", "{t}/notext.tsv:1: empty text"),
    ("prepare --corpus {t}/bad.txt --out {t}/o", "{t}/bad.txt:2: not UTF-8 text"),
    ("prepare --corpus {t}/empty.txt --out {t}/o", "{t}/empty.txt: file is empty"),
    ("prepare --corpus {s} --format csv --out {t}/o", "--format: expected auto, ade, labelled, conll or brat, got 'csv'"),
    ("prepare --corpus {s} --dim -5 --out {t}/o", "'--dim'"),
    ("prepare --corpus {s} --w2v-epochs 0 --out {t}/o", "'--w2v-epochs'"),
    ("prepare --corpus {s} --seed abc --out {t}/o", "'--seed'"),
    ("prepare --corpus {s} --out {t}/afile", "--out {t}/afile: is a file, not a folder"),
    ("prepare --corpus {s} --out {t}", "--out {t}: a folder adelabel did not write (it is replaced whole)"),
    ("prepare --corpus {s} --types DRUG,FOO --out {t}/o", "--types: expected types from DRUG, AE, DOSE"),
    ("prepare --corpus {s} --vectors {t}/none.bin --out {t}/o", "--vectors {t}/none.bin: file not found"),
    ("prepare --corpus {s} --vectors {t}/vec.bin --out {t}/o", "{t}/vec.bin: cannot read as word2vec binary format"),
    ("prepare --corpus {s} --vectors {t}/vec.bin --dim 50 --out {t}/o",
     "--dim: applies to word2vec trained on the corpus, which --vectors replaces"),
    # train
    ("train --arch nosuch --data {d}", "--arch: unknown architecture 'nosuch'"),
    ("train --task sort --data {d}", "--task: expected tag or classify, got 'sort'"),
    ("train --task classify --arch seq2seq --data {d}", "--arch seq2seq: has no classify model"),
    ("train --task classify --data {d} --out {t}/o --set model.crf=true", "model.crf: a key of the tag task's models, not of --task classify"),
    ("train --data {d} --out {t}/o --set train.patiance=3", "train.patiance: unknown key (did you mean train.patience?)"),
    ("train --data {d} --out {t}/o --set trian.lr=1", "trian.lr: unknown key (did you mean train.lr?)"),
    ("train --data {d} --out {t}/o --set train.lr=abc", "train.lr: expected a number, got 'abc'"),
    ("train --data {d} --out {t}/o --set model.crf=sometimes", "model.crf: expected true or false, got 'sometimes'"),
    ("train --data {d} --out {t}/o --set model.layers=2.5", "model.layers: expected a whole number, got '2.5'"),
    ("train --data {d} --out {t}/o --set model.chars=bpe", "model.chars: expected 'cnn', 'lstm' or 'none', got 'bpe'"),
    ("train --data {d} --out {t}/o --set model.dropout=1.5", "model.dropout: must be < 1.0, got '1.5'"),
    ("train --data {d} --out {t}/o --set lr", "--set 'lr': expected KEY=VALUE"),
    ("train --data {d} --out {t}/o --set train.distil=0.5", "--set train.distil: weighs the probabilities of a --teacher"),
    ("cv --corpus {s} --out {t}/cv --set train.distil=0.5", "--set train.distil: weighs the probabilities of a --teacher"),
    ("tune --data {d} --set train.distil=0.5", "--set train.distil: weighs the probabilities of a --teacher; tune trains without one"),
    ("train --data {d} --out {t}/o --config {t}/gru.toml --set seed=2 --config={t}/typo.toml", "--config: given twice; give one config file"),
    ("cv --corpus {s} --config {t}/gru.toml --out {t}/cv --config {t}/typo.toml", "--config: given twice; give one config file"),
    ("train --data {d} --out {t}/o --epochs 0", "'--epochs'"),
    ("train --data {d} --out {t}/o --device tpu", "--device: expected auto, cpu, cuda or cuda:N, got 'tpu'"),
    ("train --data {d} --out {t}/o --device cuda:x", "--device: expected auto, cpu, cuda or cuda:N, got 'cuda:x'"),
    ("train --data {d} --out {t}/afile", "--out {t}/afile: is a file, not a folder"),
    ("train --data {d} --out -", "--out -: this is a folder, which cannot go to standard output"),
    ("train --data {d} --out {t}", "--out {t}: a folder adelabel did not write"),
    ("train --data {d} --out {d}", "--out {d}: is {d}, which this command reads"),
    ("train --config {t}/none.toml", "{t}/none.toml: config file not found"),
    ("train --config {t}/broken.toml", "{t}/broken.toml: not valid TOML"),
    ("train --config {t}/empty.toml", "{t}/empty.toml: file is empty"),
    ("config --set model.hidden_size=1_6", "--set model.hidden_size=1_6: not a number as written (no underscores: 16?)"),
    ("config --set train.lr=1_0e-3", "--set train.lr=1_0e-3: not a number as written"),
    ("train --config {t}/huge.toml", "{t}/huge.toml: not a config: holds an integer of thousands of digits"),
    ("train --config {t}/deep.toml", "{t}/deep.toml: not a config: nested deeper than Python reads"),
    ("config --arch transformer --set model.window=100",  # its default stride too: saved so, no model could load
     "model.stride: two windows share at most half a window: expected at most 50 (window = 100), got 64"),
    ("train --config {t}/typo.toml", "{t}/typo.toml: train.patiance: unknown key (did you mean train.patience?)"),
    ("train --config {t}/wrongtype.toml", "{t}/wrongtype.toml: model.crf: expected true or false, got 'sometimes'"),
    ("train --config {t}/quoted.toml", "{t}/quoted.toml: model.hidden_size: expected a whole number, got '200'"),
    ("train --data {d} --out {t}/o --set model.hidden_size=1000000000000", "--set: model.hidden_size: must be <= 8192"),
    ("train --data {d} --out {t}/o --epochs 100000000000000000000000000", "Invalid value for '--epochs'"),
    ("config --set train.eval_batch_size=10000000", "--set: train.eval_batch_size: must be <= 65536"),
    ("config --task classify --arch bigru --set model.crf=false",  # was "did you mean model.chars?"
     "--set: model.crf: a key of the tag task's models, not of --task classify"),
    ("config --arch bilstm --set model.pooling=max", "--set: model.pooling: a key of the classify task's models, not of --task tag"),
    ("config --set seed.x=2 --set seed=1", "--set seed=1: seed is given keys too (seed.x); it is either a section or a value"),
    ("train --arch bilstm --config {t}/gru.toml", "{t}/gru.toml: arch: this config is for 'gru', but --arch says 'bilstm'"),
    ("train --config {t}/foo.toml", "{t}/foo.toml: arch: unknown architecture 'foo'"),
    ("train --config {t}/s2s-classify.toml", "{t}/s2s-classify.toml: arch 'seq2seq' has no classify model"),
    ("train --data {d} --out {t}/o --set model.chars=lstm --set model.char_size=1",
     'model.char_size: with chars = "lstm" it is split between two directions: expected at least 2'),
    ("train --data {d} --out {t}/mine --config {t}/mine/my.toml", "--out {t}/mine: holds {t}/mine/my.toml"),
    ("config --arch transformer --set model.window=100 --set model.stride=51",  # was cut to 50 unsaid
     "--set: model.stride: two windows share at most half a window: expected at most 50 (window = 100), got '51'"),
    ("prepare --corpus {s} --types DRUG,DRUG --out {t}/o", "--types: expected types from DRUG, AE, DOSE, comma-separated, each once"),
    ("prepare --corpus {t}/in.txt --format labelled --no-negatives --out {t}/o",
     "--no-negatives: applies to annotated data"),
    ("prepare --corpus {t}/in.txt --format labelled --types DRUG --out {t}/o",
     "--types DRUG: applies to the ADE corpus's files; labelled data have no entities"),
    ("cv --corpus {t}/in.txt --format conll --types DRUG,AE,DOSE", "--types DRUG,AE,DOSE: applies to the ADE corpus's files; conll data name their own"),
    ("cv --corpus {s} --out {t}/afile/x", "--out {t}/afile/x: {t}/afile is not a folder"),
    ("tag {t}/in.txt --model {m} --workers 100000", "--workers 100000: more than this machine's"),
    ("tag {t}/in.txt --model {m} --backend garbage", "--backend: expected torch or onnx, got 'garbage'"),
    ("tag {t}/in.txt --model {m} --output {t}/new/", "--output {t}/new/: names a folder (it ends in /); --format jsonl writes a file"),
    ("evaluate --model {m} --data {d} --json {t}/x/", "Invalid value for '--json': {t}/x/: names a folder (it ends in /)"),
    ("evaluate --model {m} --data {d} --backend garbage", "--backend: expected torch or onnx, got 'garbage'"),
    ("tune --data {d} --out {t}/rep/best.toml --report {t}/rep --storage sqlite:///{t}/s.db",
     "--report {t}/rep: holds {t}/rep/best.toml"),
    ("tune --data {d} --out {t}/best.toml --storage sqlite:///{d}/s.db", "--storage {d}/s.db: lies inside {d}"),
    ("train --data {d} --out {t}/o --set train.negative_fraction=0",
     "train.negative_fraction: 0 never shows the training split's"),
    ("train --data {t}/nodata --out {t}/o", "{t}/nodata/manifest.json: no prepared data here"),
    ("train --data {t}/tampered-data --out {t}/o", "{t}/tampered-data/dev.jsonl: checksum mismatch"),
    ("train --data {d} --out {t}/noted-model", "--out {t}/noted-model: holds notes.txt, which adelabel did not write there"),
    ("prepare --corpus {s} --out {t}/nested-data", "--out {t}/nested-data: holds sample, which adelabel did not write there"),
    ("train --data {t}/tampered-vectors --out {t}/o", "{t}/tampered-vectors/vectors.bin: checksum mismatch"),
    ("train --data {t}/nan-vectors --out {t}/o", "{t}/nan-vectors/vectors.bin: holds NaN or infinite values"),
    ("train --data {t}/unlisted --out {t}/o", "{t}/unlisted/manifest.json: does not list train.jsonl"),
    ("train --resume {t}/o", "{t}/o: no checkpoint of an unfinished run here"),
    ("train --resume {t}/o --set train.lr=1", "--resume carries on a run with the settings it started with; drop --set"),
    ("train --resume {t}/o --seed 0", "--resume carries on a run with the settings it started with; drop --seed"),
    ("train --resume {t}/o --data {d} --device cpu", "--resume carries on a run with the settings it started with; drop --data"),
    ("train --arch transformer --encoder {t}/nodir --out {t}/o", "--encoder {t}/nodir: folder not found"),
    # config
    ("config --arch nosuch", "--arch: unknown architecture 'nosuch'"),
    ("config --config {t}/emptytable.toml", "{t}/emptytable.toml: trian: unknown key"),
    ("config --config {t}", "{t}: is a folder, not a config file"),
    ("prepare --corpus {s} --vectors {d} --out {t}/o", "--vectors {d}: is a folder, not a file"),
    ("prepare --corpus {s} --vectors /dev/null --out {t}/o", "--vectors /dev/null: is a pipe or a device, not a file"),
    ("prepare --corpus {s} --dim 100000 --out {t}/o", "Invalid value for '--dim': Input should be less than or equal to 8192"),
    ("cv --corpus {s} --dim 100000 --out {t}/o", "Invalid value for '--dim': Input should be less than or equal to 8192"),
    ("train --data {d} --out {m}/sub", "--out {m}/sub: lies inside {m}, a model folder (which is replaced whole"),
    ("prepare --corpus {s} --out {d}/sub/data", "--out {d}/sub/data: lies inside {d}, a prepared data folder"),
    ("train --data {d} --encoder {t} --out {t}/o", "--encoder: names the pretrained encoder of --arch transformer, not of bilstm"),
    ("evaluate --model {m} --data {d} --threshold nan", "--threshold: expected a number between 0 and 1, got nan"),
    ("tag {t}/twice.jsonl --model {m} --input-format jsonl", "{t}/twice.jsonl:1: not a JSON object adelabel can read (the key 'text' appears twice)"),
    ("tag {t}/utf16-blank.txt --model {m}", "{t}/utf16-blank.txt:1: is UTF-16 text (a zero byte beside every letter)"),
    ("tag {t}/in.txt --model {m} --output {t}/in.txt/out.jsonl", "--output {t}/in.txt/out.jsonl: {t}/in.txt is a file, not a folder"),
    ("tag {t}/utf32.txt --model {m}", "{t}/utf32.txt:1: is UTF-32 text (three zero bytes beside every letter); "
                                       "adelabel reads UTF-8: convert it, for example with iconv -f UTF-32"),
    ("tag {t}/bom-only.txt --model {m}", "{t}/bom-only.txt: file is empty"),
    ("tag {t}/blank-lines.txt --model {m} --input-format paragraphs", "{t}/blank-lines.txt: holds only blank lines: no paragraph to tag"),
    ("tag {t}/zeros.txt --model {m}", "{t}/zeros.txt:1: begins with zero bytes, not text"),
    ("tag {t}/utf16.txt --model {m}", "{t}/utf16.txt:1: is UTF-16 text (it begins with a UTF-16 byte-order mark); "
                                       "adelabel reads UTF-8: convert it"),
    ("tag {t}/utf16le.txt --model {m} --input-format paragraphs", "{t}/utf16le.txt:1: is UTF-16 text (a zero byte "
                                                                   "beside every letter)"),
    ("tag {t}/nan.jsonl --model {m} --input-format jsonl", "{t}/nan.jsonl:1: not a JSON object adelabel can read (NaN is not a JSON number)"),
    ("tag {t}/in.txt --model {t}/newer-model", "{t}/newer-model/config.json: model format 99 was made by a newer adelabel"),
    ("config --set model.hidden=3", "model.hidden: unknown key (did you mean model.hidden_size?)"),
    # A name put in the wrong section: the same name in the other section, not a near one in this.
    ("config --set model.lr=0.01", "model.lr: unknown key (did you mean train.lr?)"),
    ("config --set train.hidden_size=3", "train.hidden_size: unknown key (did you mean model.hidden_size?)"),
    ("config --set arch=gru", "--set arch: the architecture is chosen with --arch, not --set"),
    # evaluate
    ("evaluate --model {t}/nomodel --data {d}", "{t}/nomodel: model folder not found"),
    ("evaluate --model {t}/afile --data {d}", "{t}/afile: is a file, not a model folder"),
    ("evaluate --model {t}/corrupt-model --data {d}", "{t}/corrupt-model/model.safetensors: checksum mismatch"),
    ("evaluate --model {m} --data {d} --split foo", "--split: expected train, dev or test, got 'foo'"),
    ("evaluate --model {m} --data {d} --json {t}/nodir/s.json", "--json {t}/nodir/s.json: folder"),
    ("evaluate --model {m} --data {d} --json {t}", "--json {t}: is a folder, not a file"),
    ("evaluate --model {m} --data {d} --report {d}", "--report {d}: is a prepared data folder, not what this command writes"),
    ("train --data {d} --out {t}/noted-report", "--out {t}/noted-report: is an `evaluate --report` folder, not what this command writes"),
    ("prepare --corpus {s} --out {m}", "--out {m}: is a model folder, not what this command writes"),
    ("evaluate --model {m} --data {d} --json {d}/test.jsonl", "--json {d}/test.jsonl: lies inside {d}, which this command reads"),
    ("evaluate --model {m} --data {d} --json {m}/config.json", "--json {m}/config.json: lies inside {m}"),
    ("train --data {d} --out {d}/m", "--out {d}/m: lies inside {d}"),
    ("evaluate --model {m} --data {t}/nodata", "{t}/nodata/test.jsonl: prepared split not found"),
    ("evaluate --model {m} --data {t}/dose-data", "--data {t}/dose-data: its entity types ['DRUG', 'AE', 'DOSE'] are not the model's ['DRUG', 'AE']"),
    ("evaluate --model {m} --data {d} --device gpu", "--device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    # tag
    ("tag {t}/none.txt --model {m}", "{t}/none.txt: file not found"),
    ("tag {t} --model {m}", "{t}: is a folder, not a file"),
    ("tag {t}/bad.txt --model {m}", "{t}/bad.txt:2: not UTF-8 text"),
    ("tag {t}/empty.txt --model {m}", "{t}/empty.txt: file is empty"),
    ("tag {t}/in.txt --model {m} --output {t}/in.txt", "--output {t}/in.txt: is the input file"),
    ("tag {t}/in.txt --model {m} --output {t}/../{t.name}/in.txt", "is the input file"),
    ("tag {t}/in.txt --model {m} --output {t}/nodir/o.jsonl", "--output {t}/nodir/o.jsonl: folder"),
    ("tag {t}/in.txt --model {m} --output {m}/config.json", "--output {m}/config.json: lies inside {m}"),
    # Into another model or data folder than the ones read: that folder's files would be overwritten.
    ("tag {t}/in.txt --model {m} --output {t}/corrupt-model/model.safetensors",
     "--output {t}/corrupt-model/model.safetensors: lies inside {t}/corrupt-model, a model folder"),
    ("evaluate --model {m} --data {d} --json {t}/tampered-data/train.jsonl",
     "--json {t}/tampered-data/train.jsonl: lies inside {t}/tampered-data, a prepared data folder"),
    ("tune --data {d} --out {t}/corrupt-model/config.json --storage sqlite:///{t}/s.db",
     "--out {t}/corrupt-model/config.json: lies inside {t}/corrupt-model, a model folder"),
    ("cv --corpus {s} --out {t}/corrupt-model/cv", "--out {t}/corrupt-model/cv: lies inside {t}/corrupt-model, a model folder"),
    # A model folder expects its onnx/ export, from `adelabel export` only.
    ("cv --corpus {s} --out {t}/corrupt-model/onnx", "--out {t}/corrupt-model/onnx: lies inside {t}/corrupt-model, a model folder"),
    # Through a link, where the link leads.
    ("tag {t}/in.txt --model {m} --output {t}/link-into-model.jsonl", "--output {t}/link-into-model.jsonl: lies inside {t}/corrupt-model, a model folder"),
    # A place that cannot be written is refused before the work, not after it.
    ("tag {t}/in.txt --model {m} --output /sys/adelabel.jsonl", "--output /sys/adelabel.jsonl: cannot write in /sys"),
    ("evaluate --model {m} --data {d} --report /sys/adelabel-report", "--report /sys/adelabel-report: cannot write in /sys"),
    ("evaluate --model {m} --data {d} --report {t}/noted-report", "--report {t}/noted-report: holds notes.txt, which adelabel did not write there"),
    ("tune --data {d} --out {t}/best.toml --storage sqlite:///{t}/s.db --report {t}/noted-tune",
     "--report {t}/noted-tune: holds notes.txt, which adelabel did not write there"),
    ("tag {t}/deep.jsonl --model {m} --input-format jsonl", "{t}/deep.jsonl:1: not a JSON object adelabel can read (nested too deeply)"),
    ("tag {t}/digits.jsonl --model {m} --input-format jsonl", "{t}/digits.jsonl:1: not a JSON object adelabel can read (Exceeds the limit"),
    ("tag {t}/half.jsonl --model {m} --input-format jsonl", "{t}/half.jsonl:2: a \\u escape names half of a surrogate pair"),
    ("tag {t}/q.meta.json --model {m} --output {t}/q", "--output {t}/q.meta.json: is {t}/q.meta.json"),
    ("tag {t}/q.meta.json --model {m} --format brat --output {t}/q", "--output {t}/q.meta.json: is {t}/q.meta.json"),
    ("tag {t}/in.txt --model {m} --output {t}", "--output {t}: is a folder, not a file"),
    ("tag {t}/in.txt --model {m} --batch-size 0", "'--batch-size'"),
    ("tag {t}/in.txt --model {m} --format xml", "--format: expected jsonl, conll, brat or html, got 'xml'"),
    ("tag {t}/in.txt --model {m} --format brat", "--format brat writes a folder of .txt/.ann files, not standard output: name the folder with --output"),
    ("tag {t}/in.txt --model {m} --format brat --output {t}/afile", "--output {t}/afile: is a file, not a folder"),
    ("tag {t}/in.txt --model {m} --format brat --output {t}", "--output {t}: a folder adelabel did not write"),
    # A sentence that would take every batch it joined past any memory, in training and scoring.
    ("prepare --corpus {t}/long-ade --out {t}/o", "{t}/long-ade: document 90000099: a sentence of 1,200 tokens (it "
                                                  "begins 'word word"),
    ("prepare --corpus {t}/long.tsv --out {t}/o", "{t}/long.tsv:3: a text of 20,001 tokens"),
    ("tag {t}/in.txt --model {m} --threshold 1.5", "--threshold: expected a number between 0 and 1"),
    ("tag {t}/in.txt --model {m} --threshold abc", "'--threshold'"),
    ("tag {t}/in.txt --model {t}/corrupt-model", "{t}/corrupt-model/model.safetensors: checksum mismatch"),
    ("tag {t}/in.txt --model {t}/deep-model", "{t}/deep-model/config.json: corrupt JSON (maximum recursion depth"),
    ("tag {t}/in.txt --model {t}/afile", "{t}/afile: is a file, not a model folder"),
    ("tag", "Missing argument 'FILE'"),
    ("nosuchcommand", "No such command 'nosuchcommand'"),
]


@pytest.mark.parametrize("command, message", CASES, ids=[c for c, _ in CASES])
def test_bad_input_is_one_line_naming_its_cause(place, capsys, command, message):
    args = [a.format(**place) for a in command.split()]
    code, out, err = run_cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("adelabel: error: "), err
    assert message.format(**place) in lines[0]
    assert out == ""
    # A refused run leaves nothing under the names it would have written.
    assert not (place["t"] / "o").exists()
    assert not [p for p in place["t"].iterdir() if ".tmp-" in p.name]


def test_an_output_is_kept_apart_from_what_is_read_and_written_through_links_and_pipes(tmp_path, capsys, place):
    import os
    import threading

    from adelabel import atomic

    folder, inside = tmp_path / "data", tmp_path / "data" / "corpus.conll"
    folder.mkdir()
    inside.write_text("x")
    for output, inputs, how in ((folder, [inside], "holds"), (inside, [folder], "lies inside"),
                                (tmp_path / "data" / ".." / "data", [folder], "is")):
        with pytest.raises(OptionError, match=f": {how} "):
            atomic.check_apart(output, "--out", inputs)
    atomic.check_apart(tmp_path / "data2", "--out", [folder, None, "-"])  # beside it: fine
    # A link is written through, not replaced by a file; a named pipe is written in place.
    (tmp_path / "real.jsonl").write_text("OLD\n")
    (tmp_path / "link.jsonl").symlink_to("real.jsonl")
    with atomic.atomic_file(tmp_path / "link.jsonl") as fh:
        fh.write("NEW\n")
    assert (tmp_path / "link.jsonl").is_symlink() and (tmp_path / "real.jsonl").read_text() == "NEW\n"
    (tmp_path / "disk" / "model").mkdir(parents=True)  # a folder kept on another disk, linked to
    (tmp_path / "disk" / "model" / "old.txt").write_text("old")
    (tmp_path / "model").symlink_to(tmp_path / "disk" / "model")
    with atomic.atomic_dir(tmp_path / "model", lambda folder: (folder / "old.txt").is_file()) as tmp:
        (tmp / "new.txt").write_text("new")
    assert (tmp_path / "model").is_symlink() and [p.name for p in (tmp_path / "disk" / "model").iterdir()] == ["new.txt"]
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    got = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_text()))
    reader.start()
    with atomic.atomic_file(pipe) as fh:
        fh.write("through\n")
    reader.join(10)
    assert got == ["through\n"] and pipe.is_fifo()
    # `--output -` is standard output, as `-` is standard input; no file named "-" is written.
    code, out, err = run_cli(capsys, "tag", place["t"] / "in.txt", "--model", place["m"], "--output", "-", "--quiet")
    assert code == 0 and out.startswith('{"text": "Rash after naproxen."'), err
    assert not Path("-").exists() and not Path("-.meta.json").exists()


def test_an_output_link_that_leads_back_to_itself_is_refused_not_replaced(tmp_path, capsys, place):
    (tmp_path / "la").symlink_to(tmp_path / "lb")
    (tmp_path / "lb").symlink_to(tmp_path / "la")
    for args in (["tag", place["t"] / "in.txt", "--model", place["m"], "--output", tmp_path / "la"],
                 ["evaluate", "--model", place["m"], "--data", place["d"], "--json", tmp_path / "la"],
                 ["train", "--data", place["d"], "--out", tmp_path / "la"],
                 ["cv", "--corpus", place["s"], "--out", tmp_path / "la"]):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and err.strip().splitlines() == [
            f"adelabel: error: {args[-2]} {tmp_path / 'la'}: a symbolic link that leads back to itself; remove it or "
            "give another path"], err
        assert (tmp_path / "la").is_symlink() and os.readlink(tmp_path / "la") == str(tmp_path / "lb")


def test_a_full_disk_is_named_as_the_output(tmp_path, monkeypatch):
    import errno

    from adelabel import atomic
    from adelabel.errors import AdelabelError

    target = tmp_path / "out.jsonl"
    target.write_text("OLD\n")
    with pytest.raises(AdelabelError, match=r"out\.jsonl: cannot write \(No space left on device\)"):
        with atomic.atomic_file(target) as fh:
            fh.write("new")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "OLD\n" and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_a_folder_the_system_refuses_is_one_line(capsys, tmp_path, monkeypatch):
    """An output folder the system will not make (a read-only or virtual file system), met past every
    check: one line naming it and the system's reason, status 2, no traceback."""
    import errno

    real = Path.mkdir
    refused = tmp_path / "refused"

    def mkdir(self, *args, **kwargs):
        if self == refused:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, _, err = run_cli(capsys, "cv", "--corpus", SAMPLE, "--out", refused, "--folds", "2", "--quiet")
    assert code == 2 and err.strip() == f"adelabel: error: {refused}: Operation not permitted", err

    def vanished(self, *args, **kwargs):  # what only a bug would cause keeps its traceback
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(self))

    monkeypatch.setattr(Path, "mkdir", vanished)
    with pytest.raises(FileNotFoundError):
        run_cli(capsys, "cv", "--corpus", SAMPLE, "--out", refused, "--folds", "2", "--quiet")


def test_errors_cross_process_boundaries_whole():
    """A worker's error (tag --workers, Ray) is pickled to the parent: it arrives with its class, message
    and attributes, not as a failure to rebuild it."""
    import pickle

    from adelabel.errors import InputError, OptionError

    for err in (InputError("in.txt", "not UTF-8", 7), InputError("in.txt", "empty"), OptionError("device: bad", "device")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err) and vars(back) == vars(err)
    assert OptionError("device: bad", "device").as_option() == pickle.loads(pickle.dumps(OptionError("device: bad", "device"))).as_option()


def test_a_file_is_on_disk_before_its_rename(tmp_path, monkeypatch):
    """A power cut after a rename must not leave an empty file under the name (a checkpoint's state,
    whose loss loses the run): the data is synced before the rename, the folder's entry after it."""
    import errno
    import os

    from adelabel import atomic

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append(("sync", os.path.realpath(f"/proc/self/fd/{fd}"))),
                                                        real_fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append(("rename", str(b))), real_replace(a, b))[1])
    target = tmp_path / "state.pt"
    with atomic.atomic_file(target, "wb") as fh:
        fh.write(b"weights")
    assert [kind for kind, _ in events] == ["sync", "rename", "sync"], events
    assert ".state.pt.tmp-" in events[0][1] and events[1][1] == str(target) and events[2][1] == str(tmp_path)
    assert target.read_bytes() == b"weights"
    # A file system that cannot sync a file (some FUSE mounts): the write stands all the same.
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EINVAL, "Invalid argument")))
    with atomic.atomic_file(target, "wb") as fh:
        fh.write(b"again")
    assert target.read_bytes() == b"again"


def test_a_folder_set_aside_by_a_kill_is_put_back(tmp_path):
    from adelabel import atomic

    # A kill between the two renames of a replacement: the old folder aside, none under the name.
    aside = tmp_path / ".data.old-x1"
    (aside / "data").mkdir(parents=True)
    (aside / "data" / "manifest.json").write_text("{}")
    atomic._sweep(tmp_path / "data")
    assert (tmp_path / "data" / "manifest.json").read_text() == "{}" and not aside.exists()
    with pytest.raises(AdelabelError, match="is the working folder"):  # replaced, the shell would stand in a deleted one
        with atomic.atomic_dir(".", atomic.brat_folder):
            pass
    with pytest.raises(AdelabelError, match="a folder adelabel did not write"):
        with atomic.atomic_dir(tmp_path, atomic.brat_folder):
            pass


def test_a_folder_half_deleted_by_a_kill_is_swept_not_put_back(tmp_path):
    from adelabel import atomic

    # Killed while deleting a finished run's checkpoint: the folder aside, part of it gone.
    gone = tmp_path / ".m.checkpoint.gone-x1"
    (gone / "m.checkpoint").mkdir(parents=True)
    (gone / "m.checkpoint" / "run.json").write_text("{}")
    with atomic.atomic_dir(tmp_path / "m.checkpoint", atomic.json_with("run.json")):
        pass  # a new run's checkpoint folder: what was aside is not put back into it
    assert not gone.exists() and not any((tmp_path / "m.checkpoint").iterdir())
    # The next removal of the same name sweeps such a leftover too.
    (gone / "m.checkpoint").mkdir(parents=True)
    atomic.remove_dir(tmp_path / "m.checkpoint")
    assert list(tmp_path.iterdir()) == []


def test_a_removal_interrupted_by_ctrl_c_still_ends(tmp_path, monkeypatch):
    """Ctrl-C or a TERM while a finished run's checkpoint is deleted: the deletion ends, then the stop
    goes on (the checkpoint, with its optimiser state, stayed aside until the next run of the name)."""
    import shutil as shutil_module

    from adelabel import atomic

    (tmp_path / "m.checkpoint").mkdir()
    (tmp_path / "m.checkpoint" / "state.pt").write_bytes(b"0" * 1000)
    real, calls = shutil_module.rmtree, []

    def interrupted(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(atomic.shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic.remove_dir(tmp_path / "m.checkpoint")
    assert list(tmp_path.iterdir()) == []


def test_the_resolved_config_parses_values_by_type(capsys):
    code, out, _ = run_cli(capsys, "config", "--set", "model.crf=False", "--set", "model.gate=0",
                           "--set", "train.lr=2e-3", "--set", "model.chars=none")
    assert code == 0
    assert "crf = false" in out and "gate = false" in out and "lr = 0.002" in out and 'chars = "none"' in out
    code, out, _ = run_cli(capsys, "config", "--arch", "transformer")
    assert code == 0 and "lr = 5e-05" in out and "encoder = " in out and "hidden_size" not in out


def test_a_config_printed_is_a_config_train_takes(tmp_path, capsys):
    from adelabel.config import resolve

    code, out, _ = run_cli(capsys, "config", "--arch", "gru", "--set", "model.layers=2")
    (tmp_path / "gru.toml").write_text(out)
    assert resolve(None, tmp_path / "gru.toml") == resolve("gru", overrides=["model.layers=2"])
    # A pipe, as a shell's `--config <(...)` gives, is read as the file would be.
    import threading

    os.mkfifo(tmp_path / "pipe")
    writer = threading.Thread(target=(tmp_path / "pipe").write_text, args=(out,), daemon=True)
    writer.start()
    assert resolve(None, tmp_path / "pipe") == resolve("gru", overrides=["model.layers=2"])
    writer.join()
    # train resolves its config twice (to check --encoder against the arch): the pipe is read once (a
    # second read would wait for a writer that never comes).
    again: list = []
    reader = threading.Thread(target=lambda: again.append(resolve(None, tmp_path / "pipe")), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert again == [resolve("gru", overrides=["model.layers=2"])]


def test_a_model_folder_is_a_config_train_takes(tmp_path, capsys, tiny_model_dir):
    """Train again with the settings a model was trained with: its folder, or its config.json, as --config."""
    from adelabel.config import resolve, validate_saved

    saved = validate_saved(json.loads((tiny_model_dir / "config.json").read_text()), "saved")
    assert resolve(None, tiny_model_dir) == resolve(None, tiny_model_dir / "config.json") == saved
    # A byte-order mark some editors write, and spaces around a --set value, are no error.
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbfseed = 3\n")
    assert resolve(None, tmp_path / "bom.toml", ["model.chars = lstm", "model.crf = false"]).model.crf is False


def test_the_python_api_says_what_is_wrong(tiny_model_dir):
    with pytest.raises(OptionError, match="threshold: expected a number between 0 and 1, got 5"):
        Tagger.load(tiny_model_dir, threshold=5)
    tagger = Tagger.load(tiny_model_dir, device="cpu")
    import numpy as np

    for many in (np.array(["a", "b"]), torch.tensor([1, 2])):  # no missing value, whatever == says of them
        with pytest.raises(TypeError, match=f"takes a str, not an? {type(many).__name__}$"):
            tagger(many)
    with pytest.raises(TypeError, match="takes a str, not a NoneType; a missing value \\(NaN, None\\)\\? drop or fill"):
        tagger(None)
    with pytest.raises(TypeError, match=r"not a list; for several texts use tagger\.pipe"):
        tagger(["a", "b"])
    with pytest.raises(TypeError, match=r"not a single string; call tagger\(text\)"):
        tagger.pipe("a string")
    with pytest.raises(TypeError, match=r"text 1 is of type int, not a str"):
        list(tagger.pipe(["fine", 3]))
    # Iterated, a DataFrame gives its column names: two texts answered as one. (A dict's keys are texts.)
    assert len(list(tagger.pipe(dict.fromkeys(["Rash after aspirin.", "Fever."])))) == 2

    class DataFrame:  # what pandas' has that a column of texts has not
        columns, iloc = ["text"], None

        def __iter__(self):
            return iter(self.columns)

    with pytest.raises(TypeError, match=r"not a DataFrame, whose iteration gives its column names; pass the "
                                        r"column of texts \(df\['text'\]\)"):
        tagger.analyze_pipe(DataFrame())
    # What it was loaded from, and the threshold in force (the saved one until another is set).
    assert tagger.folders == (Path(tiny_model_dir).resolve(),) and tagger.threshold is None
    assert tagger.decision_threshold == pytest.approx(float(tagger.model.gate_threshold))
    tagger.threshold = 0.25
    assert tagger.decision_threshold == 0.25
    with pytest.raises(OptionError, match="batch_size"):
        tagger.pipe(["fine"], batch_size=0)
    # Each is an AdelabelError too, the one type a pipeline catches for bad input; and refused when
    # the method is called, not when the stream is first read.
    for call in (lambda: tagger(b"bytes"), lambda: tagger.pipe(None), lambda: Tagger.load(5),
                 lambda: Tagger.load(b"models"), lambda: Tagger.load([tiny_model_dir, None])):
        with pytest.raises(AdelabelError) as caught:
            call()
        assert isinstance(caught.value, TypeError), caught.value
    with pytest.raises(AdelabelError, match=r"call tagger\.analyze\(text\) for one text"):
        tagger.analyze_pipe("a string")
    with pytest.raises(OptionError, match="model folder path is empty"):
        Tagger.load("")
    for wrong in (True, 2.0):
        with pytest.raises(OptionError, match="batch_size"):
            tagger.pipe(["fine"], batch_size=wrong)
    with pytest.raises(OptionError, match="threshold"):
        Tagger.load(tiny_model_dir, threshold=True)
    # numpy's numbers and a torch.device are what they say.
    import numpy as np

    numpy_made = Tagger.load(tiny_model_dir, device=torch.device("cpu"), threshold=np.float32(0.25))
    assert numpy_made.threshold == 0.25 and type(numpy_made.threshold) is float
    assert len(list(tagger.pipe(["Rash.", "Fever."], batch_size=np.int64(1)))) == 2
    # Half a surrogate pair (os.fsdecode's way with bytes that are not UTF-8) could never be written out.
    with pytest.raises(OptionError, match=r"Tagger\(\): the text holds U\+DCFF at 5, half of a surrogate pair"):
        tagger("Rash \udcff")
    # A bad text mid-stream: the texts before it are answered first, then the error names its index.
    answered = []
    with pytest.raises(AdelabelError, match="text 5 is of type NoneType"):
        for entities in tagger.pipe(["Rash after naproxen."] * 5 + [None, "never read"]):
            answered.append(entities)
    assert len(answered) == 5
    # So with a source that fails (a database cursor): the texts it gave are answered, then its error.

    def failing():
        yield from ["Rash after naproxen."] * 3
        raise ConnectionError("cursor lost")
    answered = []
    with pytest.raises(ConnectionError, match="cursor lost"):
        for entities in tagger.pipe(failing()):
            answered.append(entities)
    assert len(answered) == 3
    # The threshold attribute is checked when set, as load()'s argument is.
    for wrong in (5, "0.5"):
        with pytest.raises(OptionError, match="threshold: expected a number between 0 and 1"):
            tagger.threshold = wrong
    tagger.threshold = np.float32(0.5)
    assert tagger.threshold == 0.5 and type(tagger.threshold) is float
    import pickle  # one pickled before the attribute was checked held it as "threshold"

    old = pickle.loads(pickle.dumps(tagger))
    old.__dict__["threshold"] = old.__dict__.pop("_threshold")
    assert pickle.loads(pickle.dumps(old)).threshold == 0.5
    from adelabel import SentenceScore

    assert type(tagger.analyze("Rash after naproxen.").sentences[0]) is SentenceScore


def test_an_ensemble_of_gated_and_ungated_taggers_is_refused(sample_data, tiny_model_dir, tmp_path, capsys):
    # Averaged with a member that reports every sentence, the ensemble would silently drop the gate.
    from conftest import train_small

    ungated = train_small(sample_data, tmp_path / "ungated", "train.max_epochs=1", "model.hidden_size=8",
                          "model.dense_size=8", "model.char_size=8", "model.gate=false")
    with pytest.raises(InputError, match=f"{ungated}: has no sentence gate \\(model.gate\\), unlike {tiny_model_dir}"):
        Tagger.load([tiny_model_dir, ungated])
    # Nor is a threshold it could not apply taken when set on the attribute (load refuses it too).
    alone = Tagger.load(ungated, device="cpu")
    with pytest.raises(OptionError, match="threshold: this tagger has no sentence gate"):
        alone.threshold = 0.3
    alone.threshold = None
    # 0, "tag every sentence", is what it does: a pipeline that always passes 0 may.
    alone.threshold = 0.0
    assert Tagger.load(ungated, device="cpu", threshold=0).threshold == 0
    # The command line names the option its user typed.
    code, _, err = run_cli(capsys, "evaluate", "--model", ungated, "--data", sample_data, "--threshold", "0.3")
    assert code == 2 and f"adelabel: error: --threshold: {ungated} has no sentence gate" in err, err


def test_a_huge_line_is_tagged_in_windows_with_probabilities(tiny_model_dir):
    tagger = Tagger.load(tiny_model_dir, device="cpu", threshold=0.0)
    # 300,000 characters with no sentence break: read in windows, every token still tagged.
    text = "naproxen induced rash, fever and nausea in the patient; " * 5400
    entities = tagger(text)
    assert all(0.0 <= e.score <= 1.0 and text[e.start:e.end] == e.text for e in entities)
    from adelabel.inference import pieces as _pieces
    from adelabel.text import tokenize

    pieces = _pieces(text, 0, len(text))
    assert len(pieces) > 100 and all(len(tokenize(text[a:b])) <= 256 for a, b in pieces)
    # The pieces cover every token of the sentence, in order, each once.
    assert [(a + s, a + e) for a, b in pieces for s, e in tokenize(text[a:b])] == tokenize(text)


TINY_RUN = ["--epochs", "1", "--set", "model.hidden_size=8", "--set", "model.dense_size=8", "--set", "model.char_size=8",
            "--quiet"]


def test_numbers_a_run_cannot_use_are_refused_and_a_diverging_run_saves_nothing(capsys, sample_data, tmp_path):
    for args, message in ((["--set", "train.lr=inf"], "train.lr: expected a finite number, got 'inf'"),
                          (["--set", "train.lr=1e400"], "train.lr: expected a finite number, got '1e400'"),
                          (["--set", "seed=-1"], "seed: must be >= 0"),
                          (["--seed", str(2**32)], "Invalid value for '--seed'")):
        code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "never", *args)
        assert code == 2 and message in err, err
    code, _, err = run_cli(capsys, "prepare", "--corpus", SAMPLE, "--out", tmp_path / "d", "--seed", "-1")
    assert code == 2 and "--seed" in err, err
    # A learning rate this large makes the loss NaN at once: one line, no model, no checkpoint to resume.
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", *TINY_RUN,
                           "--set", "train.lr=1e30")
    assert code == 2 and "diverged before any epoch scored on dev, and no model is saved" in err, err
    assert "Traceback" not in err and not any(tmp_path.iterdir()), list(tmp_path.iterdir())


def test_a_run_that_diverges_after_a_kept_epoch_saves_that_epoch(capsys, sample_data, tmp_path, monkeypatch):
    from adelabel import train as training

    epochs = []
    real = training.run_epoch

    def third_goes_nan(*args, **kwargs):  # the loss of epoch 3 is NaN, as a run's that blew up
        loss = real(*args, **kwargs)
        epochs.append(loss)
        return float("nan") if len(epochs) == 3 else loss

    monkeypatch.setattr(training, "run_epoch", third_goes_nan)
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", *TINY_RUN[2:],
                           "--epochs", "5", "--set", "train.patience=5")
    assert code == 0 and len(epochs) == 3, err
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] in (1, 2)
    assert [r["epoch"] for r in map(json.loads, (tmp_path / "m" / "train_log.jsonl").read_text().splitlines())] == [1, 2]


def test_the_learning_rate_decays_only_once_dev_f1_has_risen_above_zero(capsys, sample_data, tmp_path, monkeypatch):
    from adelabel import train as training

    scores = iter([0.0, 0.0, 0.0, 0.5, 0.4, 0.3])  # dev F1 by epoch: nothing found for three epochs
    real = training.distributed.agree

    def scripted(value, w):
        return real(value, w) if isinstance(value, bool) else next(scores)

    monkeypatch.setattr(training.distributed, "agree", scripted)
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", *TINY_RUN[2:],
                           "--epochs", "6", "--set", "train.patience=6", "--set", "train.lr=0.002")
    assert code == 0, err
    log = [json.loads(line) for line in (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in log] == [0.002, 0.002, 0.002, 0.002, 0.002, 0.001]  # each epoch's own
    assert {(r["device"], r["processes"]) for r in log} == {("cpu", 1)}


def test_a_small_corpus_whose_dev_split_has_no_annotated_sentence_trains_and_scores(capsys, tmp_path):
    # Three documents, one annotated: a split without a single entity scores 0 (and n/a where a score is
    # undefined) instead of failing inside seqeval.
    corpus = tmp_path / "three.conll"
    corpus.write_text("-DOCSTART-\tO\n\nAspirin\tB-DRUG\ncaused\tO\nrash\tB-AE\n.\tO\n\n-DOCSTART-\tO\n\nThe\tO\n"
                      "patient\tO\nrecovered\tO\n\n-DOCSTART-\tO\n\nThe\tO\ndog\tO\nran\tO\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "prepare", "--corpus", corpus, "--out", tmp_path / "data", "--quiet")
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--data", tmp_path / "data", "--out", tmp_path / "m", *TINY_RUN)
    assert code == 0, err
    shown = ""
    for split in ("dev", "test"):
        code, out, err = run_cli(capsys, "evaluate", "--model", tmp_path / "m", "--data", tmp_path / "data", "--split", split)
        assert code == 0 and "micro" in out, err
        shown += out
    assert "n/a" in shown


def test_line_breaks_inside_a_jsonl_text_keep_the_conll_output_one_line_per_item(place, capsys, tmp_path):
    source = tmp_path / "breaks.jsonl"
    text = "Rash after naproxen.\nFever\r\nafter\u2028aspirin."
    source.write_text(json.dumps({"id": 1, "text": text}) + "\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "tag", source, "--model", place["m"], "--input-format", "jsonl", "--format", "conll",
                             "--threshold", "0")
    assert code == 0, err
    lines = out.split("\n")
    assert all(not line or line.startswith("# ") or line.count("\t") == 1 for line in lines), lines
    written = next(line for line in lines if line.startswith("# text = ")).removeprefix("# text = ")
    assert len(written) == len(text) and written.split() == text.split()  # the same offsets, breaks as spaces


def test_a_checkpoint_that_cannot_be_written_is_one_line(capsys, sample_data, tmp_path, monkeypatch):
    def full(*args, **kwargs):  # what torch raises when the disk fills under torch.save
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", full)
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", *TINY_RUN)
    assert code == 2 and "state.pt: cannot write ([enforce fail" in err and "--resume" in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("record, message", [
    ({"text": 5}, '"text": expected a string with a word in it'),
    ({"spans": [[0, 99, "DRUG"]]}, "span [0, 99, 'DRUG'] is not within the text's 14 characters"),
    ({"spans": [[8, 2, "DRUG"]]}, "span [8, 2, 'DRUG'] is not within"),
    ({"spans": [[0.5, 8, "DRUG"]]}, "spans: expected [start, end, type] each, found [0.5, 8, 'DRUG']"),
    ({"negative": "no"}, '"negative" true or false'),
    ({"relations": [[0, 0]]}, "relation [0, 0] names a span the sentence does not have, or one span twice"),
    ({"negative": True}, "a negative sentence (no adverse event) with spans"),
    ({"spans": [[0, 8, "DRUG"], [4, 12, "AE"]]}, "spans [0, 8, 'DRUG'] and [4, 12, 'AE'] overlap"),
    ({"spans": [[0, 8, "DRUG"], [0, 8, "DRUG"]]}, "spans [0, 8, 'DRUG'] and [0, 8, 'DRUG'] overlap"),
    ({"spans": [[0, 8, "AE"], [9, 13, "AE"]], "relations": [[1, 0]]},
     "relation [1, 0] goes from type 'AE' to type 'AE': relations go from a DRUG to another type"),
    ({"spans": [[0, 8, "DRUG"], [9, 13, "AE"]], "relations": [[0, 1], [0, 1]]}, "relation [0, 1] given twice"),
    ({"spans": [[0, 8, "DOSE"]]}, "a span of type 'DOSE', which manifest.json's labels (AE, DRUG) do not name"),
    ({"labels": ["DRUG", "DRUG"]}, "manifest.json: labels: expected entity types or classes, each once"),
])
def test_a_prepared_line_edited_by_hand_is_refused_by_its_line(capsys, sample_data, tiny_model_dir, tmp_path,
                                                               record, message):
    """Even with its checksum made to match: such lines failed later with a KeyError or a TypeError,
    or trained and scored as if they were sound."""
    data = tmp_path / "data"
    shutil.copytree(sample_data, data)
    manifest = json.loads((data / "manifest.json").read_text())
    if "labels" in record:
        manifest["labels"] = record["labels"]
    else:
        lines = (data / "test.jsonl").read_text(encoding="utf-8").splitlines()
        line = {"doc_id": "1", "text": "Valproic acid.", "spans": [[0, 8, "DRUG"]], "negative": False,
                "relations": [], **record}
        (data / "test.jsonl").write_text("\n".join([json.dumps(line)] + lines[1:]) + "\n", encoding="utf-8")
        manifest["files"]["test.jsonl"] = hashlib.sha256((data / "test.jsonl").read_bytes()).hexdigest()
    (data / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run_cli(capsys, "evaluate", "--model", tiny_model_dir, "--data", data)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    if "labels" not in record:
        assert f"{data / 'test.jsonl'}:1: not a prepared sentence (" in err or "test.jsonl:1: a span" in err, err


@pytest.mark.parametrize("edit, message", [
    ({"format_version": 5.0}, "config.json: format_version: expected a whole number, got 5.0"),
    ({"format_version": True}, "config.json: format_version: expected a whole number, got True"),
    ({"foo": 1}, "config.json: foo: unknown key in a tag model's config"),
    ({"classes": ["ADE", "NEG"]}, "config.json: classes: unknown key in a tag model's config"),
    ({"stored_in": "int8"}, "config.json: stored_in: expected \"float16\" (or no key: float32), got 'int8'"),
    ({"data": None}, "config.json: data: expected a table of the data's settings, got None"),
])
def test_a_model_config_edited_by_hand_is_refused_by_its_key(capsys, tiny_model_dir, sample_data, tmp_path, edit,
                                                             message):
    """With its checksum made to match: these loaded (and a teacher's "data": null was a traceback)."""
    from adelabel.atomic import sha256

    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **edit}))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["config.json"] = sha256(folder / "config.json")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for args in (["tag", SAMPLE / "example.txt", "--model", folder],
                 ["train", "--data", sample_data, "--teacher", folder, "--out", tmp_path / "o", "--epochs", "1"]):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and err.strip() == f"adelabel: error: {folder}/{message}", err


def _signed_copy(source: Path, folder: Path, edit) -> Path:
    """A copy of a model folder changed by ``edit(folder)``, its manifest's checksums made to match."""
    from adelabel.atomic import sha256

    shutil.copytree(source, folder)
    edit(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {name: sha256(folder / name) if (folder / name).is_file() else digest
                         for name, digest in manifest["files"].items()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _edit_json(name: str, change):
    def edit(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        change(data)
        (folder / name).write_text(json.dumps(data))
    return edit


def _float8(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    name = "words.embedding.weight"
    save_file({**state, name: state[name].to(torch.float8_e4m3fn)}, str(folder / "model.safetensors"))


@pytest.mark.parametrize("edit, message", [
    (_float8, "model.safetensors: words.embedding.weight: stored as torch.float8_e4m3fn, which adelabel never writes "
     "(float16 or float32)"),
    (_edit_json("vocab.json", lambda v: v["chars"].__setitem__(5, "")), "vocab.json: chars: '' is not one character"),
    (_edit_json("config.json", lambda c: (c.__setitem__("tags", ["O", "B-", "I-", *c["tags"][3:]]),
                                          c["data"].__setitem__("labels", ["", *c["data"]["labels"][1:]]))),
     "config.json: tags: entity type '' is empty or holds white space"),
    (_edit_json("config.json", lambda c: (c.__setitem__("tags", ["O", "B-DR\nUG", "I-DR\nUG", *c["tags"][3:]]),
                                          c["data"].__setitem__("labels", ["DR\nUG", *c["data"]["labels"][1:]]))),
     "config.json: tags: entity type 'DR\\nUG' is empty or holds white space"),
    (_edit_json("manifest.json", lambda m: m["files"].__setitem__("/etc/hostname", "0" * 64)),
     "manifest.json: lists '/etc/hostname', which is not a file of the model folder"),
], ids=["float8", "empty-char", "empty-type", "type-with-newline", "absolute-name"])
def test_a_model_folder_signed_again_after_an_edit_is_still_refused(capsys, tiny_model_dir, tmp_path, edit, message):
    """Checksums made to match the edit: the checks past them refuse what adelabel never writes (these
    loaded, or were a traceback)."""
    folder = _signed_copy(tiny_model_dir, tmp_path / "m", edit)
    code, _, err = run_cli(capsys, "tag", SAMPLE / "example.txt", "--model", folder)
    assert code == 2 and err.strip() == f"adelabel: error: {folder}/{message}", err
    with pytest.raises(InputError, match="^" + re.escape(f"{folder}/{message}")):
        Tagger.load(folder)


def test_a_pipe_or_device_in_a_model_folder_is_named_not_waited_on(capsys, tiny_model_dir, tmp_path):
    """Read before the folder is checked (to tell a classifier from a tagger), a pipe as manifest.json
    waited forever and /dev/zero as config.json was hashed forever."""
    pipe = tmp_path / "pipe"
    shutil.copytree(tiny_model_dir, pipe)
    (pipe / "manifest.json").unlink()
    os.mkfifo(pipe / "manifest.json")
    zero = tmp_path / "zero"
    shutil.copytree(tiny_model_dir, zero)
    (zero / "config.json").unlink()
    (zero / "config.json").symlink_to("/dev/zero")
    folder_in_place = tmp_path / "folder"
    shutil.copytree(tiny_model_dir, folder_in_place)
    (folder_in_place / "model.safetensors").unlink()
    (folder_in_place / "model.safetensors").mkdir()
    reason = "not a readable file (a pipe, a device or a broken link)"
    for folder, message in ((pipe, f"manifest.json: {reason}"), (zero, f"config.json: {reason}"),
                            (folder_in_place, "model.safetensors: is a folder, not a file (listed in manifest.json)")):
        code, _, err = run_cli(capsys, "tag", SAMPLE / "example.txt", "--model", folder)
        assert code == 2 and err.strip() == f"adelabel: error: {folder}/{message}", err


def test_a_file_given_for_a_folder_and_a_looping_input_are_named_as_such(capsys, tiny_model_dir, sample_data, tmp_path):
    (tmp_path / "ok.txt").write_text("Rash after naproxen.\n")
    (tmp_path / "la").symlink_to(tmp_path / "lb")
    (tmp_path / "lb").symlink_to(tmp_path / "la")
    for args, message in ((["evaluate", "--model", tiny_model_dir, "--data", tmp_path / "ok.txt"],
                           f"{tmp_path}/ok.txt: is a file, not a prepared data folder"),
                          (["train", "--data", tmp_path / "ok.txt", "--out", tmp_path / "m"],
                           f"{tmp_path}/ok.txt: is a file, not a prepared data folder"),
                          (["train", "--arch", "transformer", "--encoder", tmp_path / "ok.txt", "--out", tmp_path / "m"],
                           f"--encoder {tmp_path}/ok.txt: is a file, not a folder"),
                          (["tag", tmp_path / "la", "--model", tiny_model_dir],
                           f"{tmp_path}/la: a symbolic link that leads back to itself")):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and err.strip() == f"adelabel: error: {message}", err


def test_a_ray_cluster_lifts_the_cap_on_workers_only_for_ray(place, capsys, monkeypatch):
    """RAY_ADDRESS names a cluster for `--ray`; without it the workers are this machine's processes."""
    monkeypatch.setenv("RAY_ADDRESS", "ray://nowhere:10001")
    code, _, err = run_cli(capsys, "tag", f"{place['t']}/in.txt", "--model", place["m"], "--workers", "100000")
    assert code == 2 and "--workers 100000: more than this machine's" in err, err


@pytest.mark.processes
def test_a_write_sweeps_what_a_killed_write_of_the_same_file_left(tmp_path):
    """A writer holds a lock on its temporary file while it writes: the next write of the same file
    removes those whose lock is free (a kill -9 frees it) and leaves a living writer's alone, and
    another file's, whose name only begins alike."""
    import subprocess
    import sys

    from adelabel import atomic

    dead_tmp = tmp_path / ".out.html.tmp-4242-k1ll3d00"
    live_tmp = tmp_path / ".out.html.tmp-4343-wr1t1ng0"
    other = tmp_path / ".out.html.tmp-2024-05.html.tmp-4444-abcdefgh"  # another output's
    for path in (dead_tmp, live_tmp, other):
        path.write_text("partial")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(live_tmp)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        atomic.write_text(tmp_path / "out.html", "done")
        assert not dead_tmp.exists() and live_tmp.exists() and other.exists()
        assert (tmp_path / "out.html").read_text() == "done"
    finally:
        holder.kill()
        holder.wait()
    atomic.write_text(tmp_path / "out.html", "again")  # the writer gone, its file goes too
    assert not live_tmp.exists() and other.exists()


def test_a_stop_between_a_replacements_two_renames_keeps_the_new_folder(tmp_path, monkeypatch):
    """Ctrl-C or a TERM just after the old folder was moved aside deleted the complete new one and left the
    name empty; the new one now takes the name."""
    from adelabel import atomic

    target = tmp_path / "out"
    target.mkdir()
    (target / "run.json").write_text('{"v": "old"}')
    calls, replace = [], atomic.os.replace

    def interrupted(a, b):
        calls.append((a, b))
        if len(calls) == 2:  # the signal lands after the old folder went aside, before the new one is in
            raise KeyboardInterrupt
        replace(a, b)

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_dir(target, atomic.json_with("run.json")) as tmp:
            (tmp / "run.json").write_text('{"v": "new"}')
    assert (target / "run.json").read_text() == '{"v": "new"}'
    monkeypatch.undo()
    with atomic.atomic_dir(tmp_path / "out", atomic.json_with("run.json")) as tmp:
        (tmp / "run.json").write_text('{"v": "newer"}')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the old one swept


def test_a_model_folder_a_kill_left_aside_is_put_back_not_replaced_by_the_ready_tagger(tmp_path, monkeypatch,
                                                                                        tiny_model_dir):
    """A kill between the two renames of a retraining leaves models/.bilstm.old-*/bilstm and no models/bilstm:
    tag and evaluate quietly took the ready tagger instead of the user's model."""
    import shutil

    from adelabel.model_dir import saved_config
    from adelabel.pretrained import USER_DEFAULT, default_model

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model_dir, tmp_path / "models" / ".bilstm.old-k1ll3d" / "bilstm")
    assert default_model() == USER_DEFAULT and (tmp_path / "models" / "bilstm" / "config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["bilstm"]
    shutil.copytree(tiny_model_dir, tmp_path / "elsewhere" / ".m.old-k1ll3d" / "m")
    saved_config(tmp_path / "elsewhere" / "m")  # --model names it: put back too
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["m"]


@pytest.mark.parametrize("command", ["prepare", "evaluate", "export"])
def test_ctrl_c_in_a_command_that_writes_whole_outputs_says_so(command, capsys, monkeypatch, sample_data,
                                                               tiny_model_dir, tmp_path):
    """They ended with status 130 and not a word."""
    import adelabel.evaluate
    import adelabel.onnx_backend
    import adelabel.prepare

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(adelabel.prepare, "prepare", stop)
    monkeypatch.setattr(adelabel.evaluate, "evaluate_examples", stop)
    monkeypatch.setattr(adelabel.onnx_backend, "export", stop)
    args = {"prepare": ["prepare", "--corpus", SAMPLE, "--out", tmp_path / "d"],
            "evaluate": ["evaluate", "--model", tiny_model_dir, "--data", sample_data, "--quiet"],
            "export": ["export", "--model", tiny_model_dir]}[command]
    code, _, err = run_cli(capsys, *args)
    assert code == 130 and err.startswith("adelabel: stopped; ") and len(err.strip().splitlines()) == 1, err


def test_an_exclusive_folder_write_sweeps_only_what_killed_writers_left(tmp_path):
    """A run's checkpoint folder is made exclusively (two runs into one --out: one trains), so what
    another process is writing must stay; a folder a kill -9 left, whose lock is free, goes."""
    import subprocess
    import sys

    from adelabel import atomic

    dead, live = tmp_path / ".m.checkpoint.tmp-k1ll3d00", tmp_path / ".m.checkpoint.tmp-wr1t1ng0"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "run.json").write_text("{}")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(live)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with atomic.atomic_dir(tmp_path / "m.checkpoint", atomic.json_with("run.json"), exclusive=True) as tmp:
            (tmp / "run.json").write_text("{}")
        assert not dead.exists() and live.exists() and (tmp_path / "m.checkpoint" / "run.json").is_file()
    finally:
        holder.kill()
        holder.wait()
    with atomic.atomic_dir(tmp_path / "n.checkpoint", atomic.json_with("run.json"), exclusive=True) as tmp:
        (tmp / "run.json").write_text("{}")
    assert live.exists()  # another target's sweep leaves it
    (tmp_path / "m.checkpoint" / "run.json").unlink()
    with atomic.atomic_dir(tmp_path / "m.checkpoint", atomic.json_with("run.json"), exclusive=True) as tmp:
        (tmp / "run.json").write_text("{}")
    assert not live.exists()  # its writer gone, its folder goes too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.checkpoint", "n.checkpoint"]


def test_model_sizes_within_bounds_that_together_cannot_fit_are_refused_before_any_allocation(capsys, sample_data,
                                                                                            tmp_path, monkeypatch):
    """Each size within its bounds, together 50 billion parameters: the system killed the run, silent."""
    import adelabel.train

    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", "--set",
                           "model.hidden_size=8192", "--set", "model.layers=32", "-q")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(r"model settings: [\d,]+ parameters, about [\d.]+ GiB to train .* more than the [\d.]+ GiB free on "
                     r"cpu; give smaller model sizes", err), err
    assert not (tmp_path / "m").exists()
    # Told by what is free: a small model where little is free is refused too, and trains where it fits.
    monkeypatch.setattr(adelabel.train, "_free_memory", lambda device: 1000)
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", "--epochs", "1", "-q")
    assert code == 2 and "more than the 0.0 GiB free" in err, err
    monkeypatch.setattr(adelabel.train, "_free_memory", lambda device: None)
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", tmp_path / "m", "--epochs", "1",
                           "--set", "model.hidden_size=8", "-q")
    assert code == 0, err


def test_an_option_and_a_set_of_its_key_say_which_value_is_used(capsys, sample_data, tmp_path):
    """`--epochs 1 --set train.max_epochs=2` trained one epoch without a word of the other value. The
    option wins (wrappers pass both) and says so, once the data passed: an error stays one line."""
    args = ["train", "--out", tmp_path / "m", "--epochs", "1", "--set", "train.max_epochs=2", "--seed", "5",
            "--set", "seed=5", "--set", "model.hidden_size=8", "-q"]
    code, _, err = run_cli(capsys, *args, "--data", tmp_path / "none")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no prepared data here" in err, err
    code, _, err = run_cli(capsys, *args, "--data", sample_data)
    assert code == 0 and "warning: --epochs 1 is used, not --set train.max_epochs=2" in err, err
    assert "--seed" not in err  # the same value twice: nothing to say
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["epochs_run"] == 1


@pytest.mark.parametrize("args, message", [
    (["train", "--out", ""], "--out: an empty value"),
    (["train", "--out="], "--out: an empty value"),
    (["evaluate", "--model", ""], "--model: an empty value"),
    (["config", "--arch", ""], "--arch: an empty value"),
    (["tag", "-q", ""], "FILE: an empty value"),  # -q takes none: the empty word is the FILE
    (["train", "--resume", ""], "--resume: an empty value"),  # a flag of tag's, not of train's
])
def test_an_empty_value_is_refused_not_read_as_the_working_folder(args, message, capsys, tmp_path, monkeypatch):
    """`--out "$OUT"` with $OUT unset trained into the working folder, replacing the model folder it was."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and err.strip() == f"adelabel: error: {message} (an unset shell variable?)", err
    assert list(tmp_path.iterdir()) == []


def test_a_name_longer_than_the_system_takes_is_one_line(capsys, tmp_path, tiny_model_dir):
    """The system's refusal of the name, not a traceback (cv and tune check --encoder as train does)."""
    long_file, long_folder = tmp_path / ("n" * 300 + ".txt"), tmp_path / ("e" * 300)
    for args, path in ((["tag", long_file, "--model", tiny_model_dir], long_file),
                       (["cv", "--arch", "transformer", "--encoder", long_folder, "--out", tmp_path / "o"], long_folder)):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and err.strip() == f"adelabel: error: {path}: File name too long", err


def test_a_closed_standard_stream_is_one_line_not_a_traceback(tiny_model_dir, tmp_path):
    """Started with stdin or stdout closed (`<&-`, `>&-`, a daemon's spawn): reading from or writing
    records to it says so; a command whose output goes to --output runs."""
    import subprocess
    import sys

    (tmp_path / "in.txt").write_text("Rash after naproxen.\n", encoding="utf-8")
    tag = f"{sys.executable} -m adelabel tag {{}} --model {tiny_model_dir} -q"

    def shell(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=tmp_path,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)

    closed_in = shell(tag.format("-") + " <&-")
    assert closed_in.returncode == 2 and closed_in.stderr.strip() == \
        "adelabel: error: <stdin>: standard input is closed: nothing to read", closed_in.stderr
    closed_out = shell(tag.format("in.txt") + " >&-")
    assert closed_out.returncode == 2 and closed_out.stderr.strip().startswith(
        "adelabel: error: standard output is closed"), closed_out.stderr
    to_file = shell(tag.format("in.txt") + " --output out.jsonl >&-")
    assert to_file.returncode == 0 and to_file.stderr == "" and json.loads((tmp_path / "out.jsonl").read_text())


def test_a_ctrl_c_while_the_interpreter_shuts_down_is_no_traceback(tmp_path):
    """The work done and written, a signal in an exit hook (torch's take a moment) printed "Exception
    ignored in atexit callback" and a traceback, and exited 0."""
    import subprocess
    import sys

    script = tmp_path / "late.py"
    script.write_text("import atexit, os, signal, sys, time\n"
                      "sys.argv = ['adelabel', 'config', '--arch', 'gru']\n"
                      "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(1)))\n"
                      "from adelabel.cli import main\nmain()\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert 'arch = "gru"' in done.stdout and done.stderr == "" and done.returncode == -2, (done.returncode, done.stderr)


def test_a_config_file_s_distil_without_a_teacher_is_said_not_refused(capsys, tmp_path, monkeypatch):
    """A whole config adelabel wrote from a taught model (adelabel config, tune's best) holds its distil."""
    from adelabel.cli import _check_distil

    (tmp_path / "taught.toml").write_text("[train]\ndistil = 0.5\n")
    (tmp_path / "default.toml").write_text("[train]\ndistil = 0.9\n")
    _check_distil(None, None, config=tmp_path / "taught.toml")
    assert capsys.readouterr().err.startswith(f"warning: {tmp_path / 'taught.toml'}: train.distil = 0.5 weighs the "
                                              "probabilities of a --teacher; this run has none, so it changes nothing")
    _check_distil(None, [tmp_path], config=tmp_path / "taught.toml")  # with a teacher it weighs it
    _check_distil(None, None, config=tmp_path / "default.toml")  # the default is no setting
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "1")  # under torchrun, rank 0 says it
    _check_distil(None, None, config=tmp_path / "taught.toml")
    assert capsys.readouterr().err == ""


def test_a_model_folder_may_be_any_path_like_and_a_bad_one_is_named(tiny_model_dir, monkeypatch, tmp_path):
    from adelabel.errors import EmulatedPrecisionWarning

    entry = next(e for e in os.scandir(Path(tiny_model_dir).parent) if e.name == Path(tiny_model_dir).name)
    assert Tagger.load(entry, device="cpu").folders == (Path(tiny_model_dir).resolve(),)
    assert len(Tagger.load([entry, tiny_model_dir], device="cpu").folders) == 2
    with pytest.raises(InputError, match="File name too long"):
        Tagger.load("x" * 300, device="cpu")
    # A name that is not UTF-8 (Linux's names are bytes): safetensors takes UTF-8 paths only.
    odd = tmp_path / os.fsdecode(b"m\xffodd")
    shutil.copytree(tiny_model_dir, odd)
    assert Tagger.load(odd, device="cpu")("Rash after naproxen.") is not None
    # bf16 on a CPU without bf16 arithmetic runs, slowly: the Python caller hears so, as the command's user does.
    monkeypatch.setattr("adelabel.precision.native_bf16", lambda: False)
    with pytest.warns(EmulatedPrecisionWarning, match="slower than fp32"):
        Tagger.load(tiny_model_dir, device="cpu", precision="bf16")
    monkeypatch.setattr("adelabel.precision.native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmulatedPrecisionWarning)
        Tagger.load(tiny_model_dir, device="cpu", precision="bf16")


def test_a_model_folder_without_its_config_given_as_config_is_named_so(capsys, tiny_model_dir, tmp_path):
    damaged = tmp_path / "m"
    shutil.copytree(tiny_model_dir, damaged)
    (damaged / "config.json").unlink()
    code, _, err = run_cli(capsys, "config", "--config", damaged)
    assert code == 2 and err.strip() == f"adelabel: error: {damaged / 'config.json'}: missing from the model folder", err


def test_an_output_folder_that_is_the_working_folder_is_refused(capsys, sample_data, tmp_path, monkeypatch):
    """Replaced whole, it left the shell in a deleted folder that looked empty."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    code, _, err = run_cli(capsys, "train", "--data", sample_data, "--out", ".", "--epochs", "1")
    assert code == 2 and err.strip() == ("adelabel: error: --out .: is the working folder (the output replaces its "
                                         "folder whole); give another folder"), err
    assert here.is_dir() and Path.cwd() == here
