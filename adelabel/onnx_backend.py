"""``adelabel export --format onnx`` and the ``onnx`` backend: a recurrent tagger's forward pass (words
and characters to tag scores, the gate's logit and the token states) and its relation head run in
onnxruntime; decoding, calibration and everything after stay on the one inference path, so the
output is the one torch gives (the same spans; scores equal to rounding).

The export is written into the model folder, as ``onnx/`` (written whole, like the folder):
``encoder.onnx``, ``relation.onnx`` (a model with a relation head) and ``onnx.json``, which records
the adelabel version, the checksum of the weights it was made from and those of the graphs, so a
graph never runs beside other weights, under another version's inference code, or changed since.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from adelabel import atomic
from adelabel.data import Batch
from adelabel.errors import AdelabelError, InputError, OptionError
from adelabel.versions import __version__

ONNX, META = "onnx", "onnx.json"
ENCODER_INPUTS = ["words", "chars", "spellings", "lengths", "mask"]
GRAPHS = ("encoder.onnx", "relation.onnx")
EXPORTABLE = ("bilstm", "lstm", "bigru", "gru", "birnn", "rnn")


def _replaceable(folder: Path) -> bool:
    """``MODEL/onnx/`` (not a link) lies inside a model folder adelabel wrote, which training into it
    again removes whole: whatever a damaged or earlier export left there is replaced, the fix the
    backend's errors name; a file of another name (a user's notes) is refused, not deleted."""
    return True


_replaceable.export = True  # type: ignore[attr-defined]  # the one output a model folder holds inside it
_replaceable.names = frozenset((*GRAPHS, META))  # type: ignore[attr-defined]


def _onnx():
    try:
        import onnx  # noqa: F401  (the exporter writes through it)
        import onnxruntime
    except ImportError:
        raise OptionError("the onnx backend needs onnx and onnxruntime: pip install 'adelabel[onnx]'") from None
    return onnxruntime


class _Encoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, words, chars, spellings, lengths, mask):
        out = self.model(Batch(words, chars, spellings, lengths, mask, []))
        return (out.scores, out.states) + ((out.sentence,) if out.sentence is not None else ())


def check_exportable(config: dict, directory: Path, what: str) -> None:
    """Refuse a model the graphs cannot hold; ``what`` begins the message (``--format onnx: exports``,
    ``backend onnx: runs``)."""
    argument = "backend" if what.startswith("backend") else None
    if config.get("task") != "tag" or config["arch"] not in EXPORTABLE:
        kind = "classifier" if config.get("task") == "classify" else "tagger"
        raise OptionError(f"{what} the recurrent taggers ({', '.join(EXPORTABLE)}); {directory} is a "
                          f"{config['arch']} {kind}", argument)
    if config["model"].get("chars") == "lstm":
        # Its packed sequences over a batch's spellings do not trace (torch's exporter fails deep inside).
        raise OptionError(f"{what} taggers whose character features are cnn or none; {directory} reads "
                          "characters with an LSTM (model.chars = lstm)", argument)


_COPY_READY = ("copy it out of the package and export the copy: cp -r {} ready-tagger && adelabel export "
               "--model ready-tagger --format onnx")


def _is_ready(directory: Path) -> bool:
    """Whether ``directory`` is the ready tagger inside the installed package, where an export would
    write into site-packages (read-only there for many, and left behind by `pip uninstall`)."""
    from adelabel.pretrained import READY

    return directory.resolve() == READY.resolve()


def export(directory: str | Path, quantize: bool = False) -> Path:
    """Write ``directory/onnx/`` for the recurrent tagger saved in ``directory``; returns that folder.
    ``quantize``: dynamic int8 weights (onnxruntime's quantize_dynamic)."""
    from adelabel import model_dir
    from adelabel.models import base

    _onnx()
    directory = Path(directory)
    if _is_ready(directory):
        raise OptionError(f"--model {directory}: is the ready tagger, inside the installed package; "
                          + _COPY_READY.format(directory))
    model, config, _ = model_dir.load(directory, "cpu")
    check_exportable(config, directory, "--format onnx: exports")
    target = directory / ONNX
    if target.is_symlink():  # replaced whole, the folder it names would lose whatever else it holds
        raise AdelabelError(f"export {target}: is a link; export writes a folder of its own there (remove the link)")
    atomic.check_output_dir(target, "export", _replaceable)
    words = torch.tensor([[2, 3, 4, 0], [5, 6, 0, 0]])
    example = (words, torch.tensor([[0, 0], [1, 2], [2, 3]]), torch.tensor([[1, 2, 1, 0], [2, 1, 0, 0]]),
               torch.tensor([3, 2]), words != 0)
    outputs = _outputs(model)
    dynamic = {"words": {0: "batch", 1: "time"}, "chars": {0: "spellings", 1: "width"},
               "spellings": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "mask": {0: "batch", 1: "time"},
               "scores": {0: "batch", 1: "time"}, "states": {0: "batch", 1: "time"}, "sentence": {0: "batch"}}
    fill, base.DENSE_FILL = base.DENSE_FILL, 0.0  # the dense recurrent path: exact whatever the padding
    try:
        with warnings.catch_warnings(), atomic.atomic_dir(target, _replaceable) as tmp:
            # The tracer warns of the branches fixed on purpose (the dense path; a batch with pairs).
            warnings.simplefilter("ignore")
            torch.onnx.export(_Encoder(model), example, str(tmp / "encoder.onnx"), input_names=ENCODER_INPUTS,
                              output_names=outputs, dynamic_axes=dynamic, opset_version=17, dynamo=False)
            if model.relation is not None:
                states = torch.randn(2, 4, _states_dim(model))
                pairs = torch.tensor([[0, 0, 1, 2, 3], [1, 1, 2, 0, 1]])
                torch.onnx.export(model.relation, (states, pairs), str(tmp / "relation.onnx"),
                                  input_names=["states", "pairs"], output_names=["logits"], opset_version=17,
                                  dynamic_axes={"states": {0: "batch", 1: "time"}, "pairs": {0: "pairs"},
                                                "logits": {0: "pairs"}}, dynamo=False)
            if quantize:
                from onnxruntime.quantization import QuantType, quantize_dynamic

                for name in GRAPHS:
                    if (tmp / name).is_file():
                        # Its advice to pre-process the graph goes to the root logger at WARNING on every
                        # run; a successful export prints nothing else.
                        logging.disable(logging.WARNING)
                        try:
                            quantize_dynamic(str(tmp / name), str(tmp / f"q-{name}"), weight_type=QuantType.QInt8)
                        finally:
                            logging.disable(logging.NOTSET)
                        (tmp / f"q-{name}").replace(tmp / name)
            graphs = {name: atomic.sha256(tmp / name) for name in GRAPHS if (tmp / name).is_file()}
            meta = {"adelabel": __version__, "weights": atomic.sha256(directory / model_dir.WEIGHTS),
                    "graphs": graphs, "arch": config["arch"], "outputs": outputs, "quantized": quantize, "opset": 17}
            (tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    finally:
        base.DENSE_FILL = fill
    return target


def _outputs(model: nn.Module) -> list[str]:
    """The encoder graph's outputs, in order: what export names and attach expects."""
    return ["scores", "states"] + (["sentence"] if model.gate is not None else [])


_INT8_OPERATORS = frozenset({"DynamicQuantizeLinear", "DynamicQuantizeLSTM", "MatMulInteger", "DequantizeLinear"})


def _holds_int8(path: Path) -> bool:
    """Whether a graph computes with int8 weights (what ``--quantize`` stores), read from its operators."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as err:  # noqa: BLE001 - protobuf's DecodeError and others for a damaged file
        raise InputError(path, f"cannot load the ONNX graph ({str(err).splitlines()[0][:200] if str(err) else type(err).__name__})") from None
    return any(node.op_type in _INT8_OPERATORS for node in graph.node)


def _states_dim(model: nn.Module) -> int:
    rnn = model.rnn
    return rnn.hidden_size * (2 if rnn.bidirectional else 1)


class _Session:
    def __init__(self, path: Path) -> None:
        self.path = path
        ort = _onnx()
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # Its own errors come to us as exceptions, said in our one line: its log says only what is fatal
        # (a kernel's failure was logged at ERROR, in colour, before the exception).
        options.log_severity_level = 4
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for a damaged graph
            raise InputError(path, f"cannot load the ONNX graph ({str(err).splitlines()[0][:200]})") from None
        # The exporter leaves out the inputs a model never reads (no gate: no mask; chars = none: no
        # characters), and onnxruntime refuses a name the graph does not declare.
        self.inputs = frozenset(i.name for i in self.session.get_inputs())

    # An onnxruntime session cannot be pickled: a copy (a process started with spawn) opens its graph again.
    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def __call__(self, **inputs: torch.Tensor) -> list[torch.Tensor]:
        feed = {k: v.cpu().numpy() for k, v in inputs.items() if k in self.inputs}
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

        try:
            return [torch.from_numpy(a) for a in self.session.run(None, feed)]
        except InvalidArgument as err:  # a graph that does not fit the model folder (another export put in its place)
            first = (str(err).splitlines() or [type(err).__name__])[0]
            first = first if len(first) <= 300 else first[:300] + "..."
            raise InputError(self.path, f"the graph failed on this model's input ({first}); export again") from None


class _OnnxForward:
    """Stands in for a tagger's ``forward``: the same Output, computed by onnxruntime."""

    def __init__(self, session: _Session, gate: bool) -> None:
        self.session, self.gate = session, gate

    def __call__(self, batch: Batch):
        from adelabel.models.base import Output

        out = self.session(words=batch.words, chars=batch.chars, spellings=batch.spellings,
                           lengths=batch.lengths, mask=batch.mask)
        return Output(out[0], out[2] if self.gate else None, states=out[1])


class _OnnxRelation:
    def __init__(self, session: _Session) -> None:
        self.session = session

    def __call__(self, states: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        from adelabel.models import relation

        if pairs.shape[0] == 0:
            return states.new_zeros(0)
        # The traced graph pools over whole sentences: pairs in groups, as the torch head scores them.
        step = max(1, relation.POOLED_VALUES // (states.shape[1] * states.shape[2]))
        return torch.cat([self.session(states=states, pairs=pairs[i:i + step])[0]
                          for i in range(0, pairs.shape[0], step)])


def _no_screen(batch: Batch) -> None:
    """The graph runs tagger and gate together: there is no gate to run alone."""
    return None


def attach(model: nn.Module, directory: str | Path) -> nn.Module:
    """``model`` (loaded from ``directory``) with its forward pass and relation head run by the graphs
    in ``directory/onnx/``, after checking they were exported from these weights by this version."""
    from adelabel import model_dir

    directory = Path(directory)
    folder = directory / ONNX
    if not (folder / META).is_file():
        if _is_ready(directory):
            raise InputError(directory, f"the ready tagger has no ONNX export; {_COPY_READY.format(directory)}")
        raise InputError(directory, "has no ONNX export; make one with `adelabel export --model "
                                    f"{directory} --format onnx`")
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise InputError(folder / META, f"corrupt ({err})") from None
    if meta.get("adelabel") != __version__:
        raise InputError(folder / META, f"exported by adelabel {meta.get('adelabel')!r}, not {__version__}, "
                                        f"this version; export again with `adelabel export --model {directory} --format onnx`")
    if meta.get("weights") != atomic.sha256(directory / model_dir.WEIGHTS):
        raise InputError(folder / META, "exported from other weights than this model folder's; export again")
    graphs = meta.get("graphs")
    expected = ["encoder.onnx"] + (["relation.onnx"] if model.relation is not None else [])
    if not isinstance(graphs, dict) or sorted(graphs) != sorted(expected):
        raise InputError(folder / META, f"does not list the checksums of {', '.join(expected)}; export again")
    for name in expected:
        if not (folder / name).is_file():
            raise InputError(folder / name, "missing from the ONNX export")
        if atomic.sha256(folder / name) != graphs[name]:
            raise InputError(folder / name, f"checksum mismatch with {META}: the graph was changed or replaced "
                                            "since it was exported; export again")
    outputs = _outputs(model)
    # Written by export with the graphs and not covered by their checksums: an edit is refused, not believed.
    for key, want in (("arch", model.arch), ("outputs", outputs), ("opset", 17)):
        if meta.get(key) != want:
            raise InputError(folder / META, f"{key}: {meta.get(key)!r}, where this model's export has {want!r}; "
                                            "export again")
    if not isinstance(meta.get("quantized"), bool):
        raise InputError(folder / META, f"quantized: expected true or false, got {meta.get('quantized')!r}")
    # The flag names the backend in every output's provenance: checked against the graph's own operators.
    if (int8 := _holds_int8(folder / "encoder.onnx")) != meta["quantized"]:
        raise InputError(folder / META, f"quantized: {str(meta['quantized']).lower()}, where encoder.onnx holds "
                                        f"{'int8' if int8 else 'fp32'} weights; export again")
    encoder = _Session(folder / "encoder.onnx")
    if "words" not in encoder.inputs or not encoder.inputs <= set(ENCODER_INPUTS):
        raise InputError(folder / "encoder.onnx", "not a tagger's encoder graph (its inputs are "
                                                  f"{', '.join(sorted(encoder.inputs))})")
    if (found := [o.name for o in encoder.session.get_outputs()]) != outputs:
        raise InputError(folder / "encoder.onnx", f"not this tagger's encoder graph (its outputs are "
                                                  f"{', '.join(found) or 'none'}, not {', '.join(outputs)}); export again")
    model.forward = _OnnxForward(encoder, gate=model.gate is not None)
    model.onnx_quantized = meta["quantized"]  # said in each output's provenance
    model.screen = _no_screen
    if model.relation is not None:
        model.relation.forward = _OnnxRelation(_Session(folder / "relation.onnx"))
    return model
