"""adelabel export --format onnx and the onnx backend: the same spans as torch, refused where it
cannot be right."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import ROOT, run_cli
from adelabel.errors import InputError

import onnxruntime  # noqa: F401,E402  (in the test extras: missing, these tests fail, never skip)


@pytest.fixture(scope="module")
def exported(sample_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx") / "bilstm"
    shutil.copytree(sample_model, folder)
    from adelabel.onnx_backend import export

    export(folder)
    return folder


def test_the_onnx_backend_gives_torchs_spans_relations_and_scores(exported, sample_data):
    from adelabel import Tagger

    texts = [json.loads(line)["text"] for split in ("dev", "test")
             for line in (sample_data / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    texts.append(" ".join(texts[:6]))  # an abstract-sized line
    torch_ = list(Tagger.load(exported, device="cpu").analyze_pipe(texts, batch_size=7))
    onnx_tagger = Tagger.load(exported, backend="onnx")
    assert onnx_tagger.backend == "onnx"  # not torch's run again under another name
    onnx = list(onnx_tagger.analyze_pipe(texts, batch_size=7))
    assert sum(len(a.entities) for a in torch_) > 10 and len(onnx) == len(torch_) == len(texts)
    for a, b in zip(torch_, onnx):
        assert [(e.start, e.end, e.label) for e in a.entities] == [(e.start, e.end, e.label) for e in b.entities]
        assert [(r.drug, r.effect, r.type) for r in a.relations] == [(r.drug, r.effect, r.type) for r in b.relations]
        assert all(abs(x.score - y.score) <= 2e-3 for x, y in zip(a.entities + a.relations, b.entities + b.relations))
        assert all(abs(x.ade - y.ade) <= 2e-3 for x, y in zip(a.sentences, b.sentences))


def test_an_onnx_tagger_copies_and_scores_many_pairs_in_groups(exported, monkeypatch):
    # A copy (pickled, as for a process started with spawn) opens its graphs again; a sentence with
    # many pairs is scored in groups, with the same result.
    import copy
    import pickle

    from adelabel import Tagger
    from adelabel.models import relation

    tagger = Tagger.load(exported, backend="onnx")
    # A training sentence of the sample (two drugs, two effects: four candidate pairs), so the small model
    # relates some on any machine; a sentence it never saw found no effect on some.
    text = "Combined treatment with simvastatin and warfarin was followed by necrotizing myopathy and rhabdomyolysis."
    want = tagger.analyze(text).to_dict()
    assert pickle.loads(pickle.dumps(tagger)).analyze(text).to_dict() == want
    assert copy.deepcopy(tagger).analyze(text).to_dict() == want
    monkeypatch.setattr(relation, "POOLED_VALUES", 1)  # one pair at a time
    assert Tagger.load(exported, backend="onnx", threshold=0.0).analyze(text).to_dict()["relations"] == \
        Tagger.load(exported, device="cpu", threshold=0.0).analyze(text).to_dict()["relations"] != []


def test_tag_and_evaluate_take_the_backend(capsys, exported, sample_data, tmp_path):
    results = {}
    for backend in ("torch", "onnx"):
        code, _, err = run_cli(capsys, "evaluate", "--model", exported, "--data", sample_data, "--backend", backend,
                               "--json", tmp_path / f"{backend}.json")
        assert code == 0, err
        scored = json.loads((tmp_path / f"{backend}.json").read_text())
        assert scored["evaluated"]["backend"] == backend  # the option reached the run, not only the parser
        results[backend] = scored["micro"]["f1"]
    assert results["onnx"] == results["torch"]
    code, out, err = run_cli(capsys, "tag", ROOT / "corpora/sample/example.txt", "--model", exported, "--backend", "onnx",
                             "--output", tmp_path / "tagged.jsonl")
    assert code == 0 and len((tmp_path / "tagged.jsonl").read_text().splitlines()) == \
        len((ROOT / "corpora/sample/example.txt").read_text().splitlines()), err
    assert json.loads((tmp_path / "tagged.jsonl.meta.json").read_text())["backend"] == "onnx"


def test_a_quantized_export_loads_and_tags(exported, tmp_path):
    from adelabel import Tagger
    from adelabel.onnx_backend import export

    folder = tmp_path / "q"
    shutil.copytree(exported, folder)
    shutil.rmtree(folder / "onnx")
    export(folder, quantize=True)
    assert json.loads((folder / "onnx" / "onnx.json").read_text())["quantized"] is True
    assert (folder / "onnx" / "encoder.onnx").stat().st_size < (exported / "onnx" / "encoder.onnx").stat().st_size / 2
    # Weights in int8 move the scores a little, not the decisions on the sample's sentences, mostly.
    texts = (ROOT / "corpora/sample/example.txt").read_text(encoding="utf-8").splitlines()
    full, small = Tagger.load(exported, backend="onnx"), Tagger.load(folder, backend="onnx")
    assert small.backend == "onnx-int8"  # the quantized graphs, said so in every output's provenance
    # An onnx.json edited to call them fp32 is refused: the provenance would name the wrong backend.
    meta = folder / "onnx" / "onnx.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "quantized": False}))
    with pytest.raises(InputError, match=r"quantized: false, where encoder.onnx holds int8 weights; export again"):
        Tagger.load(folder, backend="onnx")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "quantized": True}))
    pairs = list(zip(full.analyze_pipe(texts), small.analyze_pipe(texts)))
    same = sum([(e.start, e.end, e.label) for e in a.entities] == [(e.start, e.end, e.label) for e in b.entities]
               for a, b in pairs)
    assert same >= 0.8 * len(texts), same
    assert all(abs(x.ade - y.ade) <= 0.1 for a, b in pairs for x, y in zip(a.sentences, b.sentences))


def test_a_graph_that_fails_on_the_models_input_is_one_line(capsys, exported, monkeypatch):
    """Another export's graph put in place (and listed so) passes every check at load, then meets word
    ids past its table: onnxruntime's failure is named by its graph, not a traceback."""
    import onnxruntime

    def fails(self, *args, **kwargs):
        raise onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument(
            "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : indices element out of data bounds, idx=71")

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", fails)
    code, _, err = run_cli(capsys, "tag", ROOT / "corpora/sample/example.txt", "--model", exported, "--backend", "onnx")
    assert code == 2 and "encoder.onnx: the graph failed on this model's input ([ONNXRuntimeError]" in err, err
    assert len(err.strip().splitlines()) == 1


def test_bad_exports_and_options_are_one_line_errors(capsys, exported, tiny_model_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(exported, folder)
    meta = folder / "onnx" / "onnx.json"
    text = ROOT / "corpora/sample/example.txt"
    meta.write_text(meta.read_text().replace('"adelabel": "', '"adelabel": "0.0.1-'))
    code, _, err = run_cli(capsys, "tag", text, "--model", folder, "--backend", "onnx")
    assert code == 2 and "exported by adelabel '0.0.1-" in err and "export again" in err
    code, _, err = run_cli(capsys, "tag", text, "--model", tiny_model_dir, "--backend", "onnx")
    assert code == 2 and "has no ONNX export; make one with `adelabel export" in err
    (folder / "onnx" / "encoder.onnx").write_bytes(b"not a graph")
    meta.write_text(meta.read_text().replace('"adelabel": "0.0.1-', '"adelabel": "'))
    code, _, err = run_cli(capsys, "tag", text, "--model", folder, "--backend", "onnx")
    assert code == 2 and "encoder.onnx: checksum mismatch with onnx.json" in err
    # Listed as it is now, the damaged graph is still refused, by onnxruntime.
    from adelabel.atomic import sha256

    signed = json.loads(meta.read_text())
    meta.write_text(json.dumps({**signed, "graphs": {**signed["graphs"], "encoder.onnx": sha256(folder / "onnx" / "encoder.onnx")}}))
    code, _, err = run_cli(capsys, "tag", text, "--model", folder, "--backend", "onnx")
    assert code == 2 and "encoder.onnx: cannot load the ONNX graph" in err
    # Another graph in its place (listed so): its inputs say it is no tagger's encoder.
    shutil.copy(folder / "onnx" / "relation.onnx", folder / "onnx" / "encoder.onnx")
    meta.write_text(json.dumps({**signed, "graphs": {**signed["graphs"], "encoder.onnx": sha256(folder / "onnx" / "encoder.onnx")}}))
    code, _, err = run_cli(capsys, "tag", text, "--model", folder, "--backend", "onnx")
    assert code == 2 and "encoder.onnx: not a tagger's encoder graph" in err
    del signed["graphs"]  # an export that does not list its graphs' checksums
    meta.write_text(json.dumps(signed))
    code, _, err = run_cli(capsys, "tag", text, "--model", folder, "--backend", "onnx")
    assert code == 2 and "does not list the checksums of encoder.onnx, relation.onnx" in err
    code, _, err = run_cli(capsys, "tag", text, "--model", folder, "--backend", "tensorrt")
    assert code == 2 and "--backend: expected torch or onnx, got 'tensorrt'" in err
    code, _, err = run_cli(capsys, "export", "--model", folder, "--format", "tflite")
    assert code == 2 and "--format: expected onnx" in err
    # The fix those errors name works whatever the damage: export replaces the model's onnx/ folder.
    meta.write_text('{"adelabel": ')
    code, _, err = run_cli(capsys, "export", "--model", folder, "-q")
    assert code == 0 and err == "", err
    code, _, err = run_cli(capsys, "tag", text, "--model", folder, "--backend", "onnx", "-q")
    assert code == 0, err
    # A file of another name there is someone's: refused, not deleted with the export it sits beside.
    (folder / "onnx" / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "export", "--model", folder, "-q")
    assert code == 2 and "holds notes.txt, which adelabel did not write there" in err, err
    assert (folder / "onnx" / "notes.txt").read_text() == "mine"
    # A link there is refused: the folder it names may hold other things, which replacing would lose.
    shutil.rmtree(folder / "onnx")
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "other.onnx").write_text("mine")
    (folder / "onnx").symlink_to(tmp_path / "serving")
    code, _, err = run_cli(capsys, "export", "--model", folder)
    assert code == 2 and "onnx: is a link" in err and (tmp_path / "serving" / "other.onnx").read_text() == "mine"


@pytest.mark.parametrize("setting", ["model.gate=false", "model.chars=none"])
def test_taggers_without_a_gate_or_characters_export_and_tag_as_torch_does(sample_data, tmp_path, setting):
    """The exporter leaves out the inputs such a model never reads; the backend feeds what the graph
    declares."""
    from adelabel import Tagger
    from adelabel.onnx_backend import export
    from conftest import train_small

    folder = train_small(sample_data, tmp_path / "m", setting, "train.max_epochs=3", "model.hidden_size=16")
    export(folder)
    texts = (ROOT / "corpora/sample/example.txt").read_text(encoding="utf-8").splitlines() + ["", "Rash."]
    torch_ = [a.to_dict() for a in Tagger.load(folder).analyze_pipe(texts)]
    onnx_ = [a.to_dict() for a in Tagger.load(folder, backend="onnx").analyze_pipe(texts)]
    strip = lambda rows: [{**r, "entities": [{k: v for k, v in e.items() if k != "score"} for e in r["entities"]],  # noqa: E731
                           "relations": [(x["drug"], x["effect"]) for x in r["relations"]], "sentences": len(r["sentences"]),
                           "ade": round(r["ade"], 4)} for r in rows]
    assert strip(onnx_) == strip(torch_)


def test_a_character_lstm_tagger_is_refused_before_export(capsys, sample_data, tmp_path):
    from conftest import train_small

    folder = train_small(sample_data, tmp_path / "m", "model.chars=lstm", "train.max_epochs=1", "model.hidden_size=8")
    code, _, err = run_cli(capsys, "export", "--model", folder)
    assert code == 2 and "reads characters with an LSTM (model.chars = lstm)" in err and "Traceback" not in err
    assert not (folder / "onnx").exists()
    code, _, err = run_cli(capsys, "tag", ROOT / "corpora/sample/example.txt", "--model", folder, "--backend", "onnx")
    assert code == 2 and "--backend onnx: runs taggers whose character features are cnn or none" in err, err


def test_an_export_edited_or_replaced_by_hand_is_refused(capsys, exported, tmp_path):
    """What onnx.json says beside the checksums (arch, outputs, opset, quantized) is checked, not
    believed, and a graph whose outputs are not this tagger's is named before it runs."""
    import onnx
    from onnx import TensorProto, helper

    from adelabel.atomic import sha256

    folder = tmp_path / "m"
    shutil.copytree(exported, folder)
    meta = folder / "onnx" / "onnx.json"
    signed = json.loads(meta.read_text())
    text = ROOT / "corpora/sample/example.txt"
    for edit, message in (({"quantized": "no"}, "quantized: expected true or false, got 'no'"),
                          # The flag names the backend in every output's provenance: checked against the graph.
                          ({"quantized": True}, "quantized: true, where encoder.onnx holds fp32 weights; export again"),
                          ({"arch": "bigru"}, "arch: 'bigru', where this model's export has 'bilstm'"),
                          ({"outputs": ["scores"]}, "outputs: ['scores'], where this model's export has")):
        meta.write_text(json.dumps({**signed, **edit}))
        code, _, err = run_cli(capsys, "tag", text, "--model", folder, "--backend", "onnx")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    # A graph that reads the words and returns them: the inputs of an encoder, one output.
    graph = helper.make_graph([helper.make_node("Identity", ["words"], ["scores"])], "g",
                              [helper.make_tensor_value_info("words", TensorProto.INT64, ["b", "t"])],
                              [helper.make_tensor_value_info("scores", TensorProto.INT64, ["b", "t"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "onnx" / "encoder.onnx")
    meta.write_text(json.dumps({**signed, "graphs": {**signed["graphs"], "encoder.onnx": sha256(folder / "onnx" / "encoder.onnx")}}))
    code, _, err = run_cli(capsys, "tag", text, "--model", folder, "--backend", "onnx")
    assert code == 2 and "encoder.onnx: not this tagger's encoder graph (its outputs are scores, not scores, " \
        "states, sentence)" in err, err


def test_onnxruntime_keeps_its_own_log_lines_off_stderr(exported):
    """A graph's failure reaches the user as adelabel's one line: onnxruntime's own coloured log line
    (written to the process's stderr, past Python) would be a second."""
    from adelabel.onnx_backend import _Session

    # 4: fatal only. At 3 a kernel's failure was still logged (at ERROR, in colour) before its exception.
    assert _Session(exported / "onnx" / "encoder.onnx").session.get_session_options().log_severity_level == 4
