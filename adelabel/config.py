"""The run configuration: one typed schema that holds every default once.

A run's config is built in layers, each only overriding the one before:

    the schema's defaults (below)
    <- adelabel/configs/ARCH.toml   what differs for that architecture (shipped inside the package)
    <- --config FILE                the user's file
    <- --set section.key=value      and the flags that stand for keys (--seed, --epochs, --encoder)

Every layer is checked against the schema: an unknown key is refused with the nearest known one, and a
value must parse as its field's type ("false", "False" and "0" are False; "abc" is no number).

pydantic rather than plain dataclasses: it parses strings by the declared type (what ``--set`` needs),
checks bounds and choices declared next to each default, forbids unknown keys, and gives every error a
location we can name; with dataclasses we would write and test each of those ourselves.
"""
from __future__ import annotations

import difflib
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10, before the standard library read TOML: its backport
    import tomli as tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator

from adelabel.errors import AdelabelError, InputError, one_of


MAX_SEED = 2**32 - 1
"""numpy's generators (word2vec, the split) take seeds from 0 to this."""
DEFAULT_SEED = 13  # of a run, and of prepare's split: the same number, so one seed names both


MAX_SIZE = 8192
"""The largest layer size (units, features, beam) a config may ask for: past it a typo's extra digits
would be an allocation the machine cannot make, reported as a bad value rather than a crash."""
MAX_LAYERS = 32
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
"""Epochs and batch sizes past these are typos (a run of 10**26 epochs, a batch no memory holds), not
settings: refused as bad values, which TOML's 64-bit integers can also write back."""
# Search ranges the recurrent taggers, seq2seq and the recurrent classifiers share (adelabel tune).
SEARCH_UNITS = {"search": {"choices": [100, 200, 300]}}
SEARCH_LAYERS = {"search": {"choices": [1, 2]}}
SEARCH_DROPOUT = {"search": {"low": 0.2, "high": 0.6}}


class Section(BaseModel):
    # An infinite learning rate trains a model of NaNs: no number in a config may be inf or nan.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class _Heads(Section):
    gate: bool = Field(True, description="sentence gate: entities only from sentences judged to report an ADE")
    relations: bool = Field(True, description="a relation head scoring which drug each effect (or dose) goes with")


class _WordInput(Section):
    freeze_embeddings: bool = Field(False, description="keep the word vectors fixed (`<unk>` and training words without a vector still learn)")
    chars: Literal["cnn", "lstm", "none"] = Field("cnn", description="character features of each word",
                                                  json_schema_extra={"search": {"choices": ["cnn", "lstm", "none"]}})
    char_size: int = Field(50, ge=1, le=MAX_SIZE, description="size of the character features (with `chars = "
                           "\"lstm\"` half a direction, an odd size rounded down)",
                           json_schema_extra={"search": {"choices": [25, 50, 100]}})

    @field_validator("char_size")
    @classmethod
    def _two_directions(cls, size: int, info: ValidationInfo) -> int:
        if info.data.get("chars") == "lstm" and size < 2:
            raise ValueError('with chars = "lstm" it is split between two directions: expected at least 2')
        return size


class RecurrentModel(_Heads, _WordInput):
    """Word vectors (+ character features) -> RNN/GRU/LSTM -> time-distributed dense head -> tags."""

    hidden_size: int = Field(200, ge=1, le=MAX_SIZE, description="units of the recurrent layer, per direction",
                             json_schema_extra=SEARCH_UNITS)
    layers: int = Field(1, ge=1, le=MAX_LAYERS, description="stacked recurrent layers (dropout between them)",
                        json_schema_extra=SEARCH_LAYERS)
    dense_size: int = Field(100, ge=1, le=MAX_SIZE, description="units of the time-distributed dense layer",
                            json_schema_extra={"search": {"choices": [50, 100, 200]}})
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout on inputs, between layers and in the head",
                           json_schema_extra=SEARCH_DROPOUT)
    crf: bool = Field(True, description="a CRF output layer; false gives a softmax per token")
    gate_size: int = Field(100, ge=1, le=MAX_SIZE, description="units per direction of the sentence gate's own BiLSTM",
                           json_schema_extra={"search": {"choices": [50, 100, 200]}})


class Seq2SeqModel(_Heads, _WordInput):
    """BiLSTM encoder; an attending LSTM decoder emits one tag per token."""

    hidden_size: int = Field(200, ge=1, le=MAX_SIZE, description="encoder units per direction",
                             json_schema_extra=SEARCH_UNITS)
    layers: int = Field(1, ge=1, le=MAX_LAYERS, description="encoder layers",
                        json_schema_extra=SEARCH_LAYERS)
    decoder_size: int = Field(200, ge=1, le=MAX_SIZE, description="decoder LSTM units",
                              json_schema_extra=SEARCH_UNITS)
    tag_dim: int = Field(25, ge=1, le=MAX_SIZE, description="size of the previous tag's embedding fed to the decoder")
    attention: Literal["additive", "multiplicative"] = Field("additive", description="Bahdanau or Luong attention")
    peek: bool = Field(False, description="feed the encoder's sentence summary to every decoder step")
    teacher_forcing: float = Field(1.0, ge=0.0, le=1.0, description="probability of feeding the gold previous tag")
    sampling_decay: float = Field(0.0, ge=0.0, description="k > 0: scheduled sampling, the ratio falls as k/(k+exp(batch/k))")
    beam: int = Field(3, ge=1, le=MAX_SIZE, description="beam width when tagging; 1 is greedy")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout on inputs and decoder steps",
                           json_schema_extra=SEARCH_DROPOUT)


def _half_a_window(stride: int, info: ValidationInfo) -> int:
    window = info.data.get("window")
    if window is not None and stride > window // 2:
        raise ValueError(f"two windows share at most half a window: expected at most {window // 2} (window = {window})")
    return stride


class TransformerModel(_Heads):
    """A pretrained encoder fine-tuned for token classification (first sub-token of each word)."""

    encoder: str = Field("", description='a local Hugging Face checkpoint folder; "" = all-MiniLM-L6-v2')
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout before the tag layer",
                           json_schema_extra={"search": {"low": 0.0, "high": 0.3}})
    crf: bool = Field(True, description="a CRF over the token scores; false gives a softmax per token")
    window: int = Field(256, ge=8, description="sub-tokens read at once (at most the encoder's positions)")
    stride: int = Field(64, ge=0, validate_default=True,  # the rule binds the default too (window = 100 alone)
                        description="sub-tokens two windows share (at most half a window)")

    _stride = field_validator("stride")(_half_a_window)


class _Pooled(Section):
    pooling: Literal["max", "mean", "attention"] = Field("max", description="how token states become one sentence vector",
                                                         json_schema_extra={"search": {"choices": ["max", "mean", "attention"]}})


class RecurrentClassifier(_Pooled, _WordInput):
    """Word vectors (+ character features) -> RNN/GRU/LSTM -> pooled over the sentence -> classes."""

    hidden_size: int = Field(200, ge=1, le=MAX_SIZE, description="units of the recurrent layer, per direction",
                             json_schema_extra=SEARCH_UNITS)
    layers: int = Field(1, ge=1, le=MAX_LAYERS, description="stacked recurrent layers (dropout between them)",
                        json_schema_extra=SEARCH_LAYERS)
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout on inputs, between layers and before the output",
                           json_schema_extra=SEARCH_DROPOUT)


class TransformerClassifier(_Pooled):
    """A pretrained encoder fine-tuned to classify sentences (its word states pooled)."""

    encoder: str = Field("", description='a local Hugging Face checkpoint folder; "" = all-MiniLM-L6-v2')
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout before the output layer",
                           json_schema_extra={"search": {"low": 0.0, "high": 0.3}})
    window: int = Field(256, ge=8, description="sub-tokens read at once (at most the encoder's positions)")
    stride: int = Field(64, ge=0, validate_default=True,  # the rule binds the default too (window = 100 alone)
                        description="sub-tokens two windows share (at most half a window)")

    _stride = field_validator("stride")(_half_a_window)


class Train(Section):
    batch_size: int = Field(32, ge=1, le=MAX_BATCH, description="sentences per training batch",
                            json_schema_extra={"search": {"choices": [16, 32, 64]}})
    lr: float = Field(0.001, gt=0.0, description="Adam learning rate",
                      json_schema_extra={"search": {"low": 0.0003, "high": 0.003, "log": True}})
    lr_decay: float = Field(0.5, gt=0.0, le=1.0, description="multiply the learning rate by this after every epoch without a better dev F1 (once one is above what a constant answer scores: 0 for a tagger, every text positive for a classifier)")
    max_epochs: int = Field(30, ge=1, le=MAX_EPOCHS, description="epochs at most")
    patience: int = Field(5, ge=1, le=MAX_EPOCHS, description="epochs without a better dev F1 before stopping")
    clip_norm: float = Field(5.0, gt=0.0, description="gradient norm clipping")
    word_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="share of training tokens replaced by `<unk>` (recurrent and seq2seq models: the transformer reads sub-word pieces)",
                                json_schema_extra={"search": {"low": 0.0, "high": 0.15}})
    negative_fraction: float = Field(0.5, ge=0.0, le=1.0, description="share of ADE-NEG sentences (without entities; a classifier's NEG class) drawn afresh each epoch (where the training split holds none, as labelled text does, another value is warned about: it changes nothing)",
                                     json_schema_extra={"search": {"low": 0.2, "high": 1.0}})
    dose_copies: float = Field(0.0, ge=0.0, le=1.0, description="share of the training sentences with events, and of those without, also trained on with a dose written after a drug (taggers only: a classifier warns that it changes nothing; adelabel/augment.py: for safety narratives, which give doses where the corpus seldom does)")
    eval_batch_size: int = Field(256, ge=1, le=MAX_BATCH, description="sentences per batch when scoring")
    distil: float = Field(0.9, ge=0.0, le=1.0, description="with `train --teacher`: weight of the teacher's probabilities against the gold labels")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="fp32, or mixed precision: bf16 (CPU or GPU) or fp16 (GPU, with loss scaling)")


TASKS = ("tag", "classify")
DEFAULT_TASK = "tag"
FAMILIES: dict[str, dict[str, type[Section]]] = {
    # task: {family: its model section}. A family missing under a task has no architecture for it.
    "tag": {"recurrent": RecurrentModel, "seq2seq": Seq2SeqModel, "transformer": TransformerModel},
    "classify": {"recurrent": RecurrentClassifier, "transformer": TransformerClassifier},
}

ARCHITECTURES: dict[str, tuple[str, str]] = {
    # name: (family, what it is). The models' registry (adelabel/models/__init__.py) builds from the same names.
    "bilstm": ("recurrent", "word2vec + char CNN -> BiLSTM -> dense -> CRF, with the sentence gate (default)"),
    "lstm": ("recurrent", "the same with a left-to-right LSTM"),
    "bigru": ("recurrent", "the same with a bidirectional GRU"),
    "gru": ("recurrent", "the same with a left-to-right GRU"),
    "birnn": ("recurrent", "the same with a bidirectional simple RNN"),
    "rnn": ("recurrent", "the same with a left-to-right simple RNN"),
    "seq2seq": ("seq2seq", "BiLSTM encoder, attending LSTM decoder, beam search"),
    "transformer": ("transformer", "a fine-tuned pretrained transformer encoder -> CRF, with the sentence gate"),
}
DEFAULT_ARCH = "bilstm"


class Config(BaseModel):
    """A whole run: the architecture, its seed, its model hyperparameters and its training settings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    arch: str
    task: Literal["tag", "classify"] = Field("tag", description="tag entities, or classify whole sentences (texts)")
    seed: int = Field(DEFAULT_SEED, ge=0, le=MAX_SEED, description="fixes the initialisation, the batch order and word dropout")
    model: RecurrentModel | Seq2SeqModel | TransformerModel | RecurrentClassifier | TransformerClassifier
    train: Train = Field(default_factory=Train)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


READS_PIECES = (TransformerModel, TransformerClassifier)
"""The model sections whose models read an encoder's sub-word pieces, never the word ids word dropout
replaces."""


TRAIN_BY_FAMILY: dict[str, dict[str, Any]] = {
    # Where a family trains best with other settings than the schema's (recurrent) defaults, for both
    # tasks: a pretrained encoder fine-tunes with small steps for a few epochs, and reads sub-word pieces,
    # not the word ids word dropout replaces.
    "transformer": {"batch_size": 16, "lr": 5e-5, "max_epochs": 8, "patience": 2, "clip_norm": 1.0,
                    "word_dropout": 0.0, "eval_batch_size": 64},
}


SEARCH_OVERRIDES: dict[str, dict[str, dict]] = {
    # Where an architecture's search range differs from the field's (declared with the field, above).
    "transformer": {"train.lr": {"low": 1e-5, "high": 1e-4, "log": True}, "train.batch_size": {"choices": [8, 16, 32]}},
}


def search_space(arch: str, task: str = "tag") -> dict[str, dict]:
    """What ``adelabel tune`` searches for ``arch``: ``section.key`` -> ``{"low", "high"[, "log"]}`` or
    ``{"choices": [...]}``, from the ranges declared beside the schema's defaults."""
    family = FAMILIES[task][ARCHITECTURES[arch][0]]
    space = {f"{section}.{name}": dict(field.json_schema_extra["search"])
             for section, cls in (("model", family), ("train", Train)) for name, field in cls.model_fields.items()
             if isinstance(field.json_schema_extra, dict) and "search" in field.json_schema_extra}
    space.update(SEARCH_OVERRIDES.get(arch, {}))
    if family in READS_PIECES:
        space.pop("train.word_dropout")  # it has no effect there (see ConfigBuilder.build)
    return space


def _packaged(arch: str, task: str = DEFAULT_TASK) -> str:
    folder = resources.files("adelabel").joinpath("configs")
    return (folder if task == "tag" else folder.joinpath(task)).joinpath(f"{arch}.toml").read_text(encoding="utf-8")


def architectures(task: str = DEFAULT_TASK) -> list[str]:
    """The architectures that can be trained for ``task``."""
    return [name for name, (family, _) in ARCHITECTURES.items() if family in FAMILIES[task]]


def _known_keys(family: type[Section]) -> dict[str, Any]:
    """Every key a config may hold, as ``section.key`` (or a top-level name), with its field."""
    keys: dict[str, Any] = {name: field for name, field in Config.model_fields.items()
                            if name not in ("model", "train", "task")}
    for section, cls in (("model", family), ("train", Train)):
        keys.update({f"{section}.{name}": field for name, field in cls.model_fields.items()})
    return keys


def _nearest(key: str, known: list[str]) -> str | None:
    """The known key a misspelt or misplaced ``key`` most likely meant: the same name in another
    section first (``model.lr`` meant ``train.lr``), then the nearest name in any section, then the
    nearest whole key."""
    leaf = key.rpartition(".")[2]
    section = key.partition(".")[0] + "."
    # The key's own section last, so that it wins where a name is in both.
    leaves = {k.rpartition(".")[2]: k for k in sorted(known, key=lambda k: k.startswith(section))}
    near = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.75)
    if near:
        return leaves[near[0]]
    whole = difflib.get_close_matches(key, known, n=1)
    return whole[0] if whole else None


def _flatten(data: dict, source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        # An empty table of an unknown name ([trian]) stays a key of its own, to be refused as unknown.
        if isinstance(value, dict) and (value or key in ("model", "train")):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        elif key in ("model", "train"):
            raise AdelabelError(f"{source}: {key}: expected a section of keys, got {value!r}")
        else:
            flat[key] = value
    return flat


def _describe(error: dict) -> str:
    kind, value = error["type"], error.get("input")
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {value!r}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected a whole number, got {value!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {value!r}"
    if kind == "literal_error":
        return f"expected {error['ctx']['expected']}, got {value!r}"
    if kind == "string_type":
        return f"expected a string, got {value!r}"
    if kind == "finite_number":
        return f"expected a finite number, got {value!r}"
    if kind == "value_error":
        return f"{error['ctx']['error']}, got {value!r}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        limit = next(iter(error["ctx"].values()))
        return f"must be {bound} {limit}, got {value!r}"
    return f"{error['msg']}, got {value!r}"


class ConfigBuilder:
    """Collects the layers of one run's config, checking each key against the schema as it comes."""

    def __init__(self, arch: str, task: str = DEFAULT_TASK, packaged: bool = True) -> None:
        """``packaged``: start from the architecture's file in the package (a new run); False starts from
        the schema alone (a saved model, whose config lacks only keys added since, which the schema's
        defaults fill as that version behaved)."""
        if task not in TASKS:
            raise AdelabelError(f"--task: expected {' or '.join(TASKS)}, got {task!r}")
        if arch not in ARCHITECTURES:
            raise AdelabelError(f"--arch: unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
        if arch not in architectures(task):
            raise AdelabelError(f"--arch {arch}: has no {task} model; for --task {task} choose from "
                                f"{', '.join(architectures(task))}")
        self.arch, self.task, self.packaged = arch, task, packaged
        self.family = FAMILIES[task][ARCHITECTURES[arch][0]]
        self.keys = _known_keys(self.family)
        self.values: dict[str, Any] = {}
        self.origin: dict[str, str] = {}
        if packaged:
            family = ARCHITECTURES[arch][0]
            if family in TRAIN_BY_FAMILY:
                self.add({"train": TRAIN_BY_FAMILY[family]}, f"adelabel/config.py (the {family} family's training)",
                         typed=True)
            self.add(tomllib.loads(_packaged(arch, task)),
                     f"adelabel/configs/{'' if task == 'tag' else task + '/'}{arch}.toml", typed=True)

    def add(self, data: dict, source: str, typed: bool = False) -> "ConfigBuilder":
        """Override with ``data`` (nested like the TOML files); ``source`` names it in errors. ``typed``:
        the values come from a file that has types (TOML, JSON), so each must already be of its
        field's type: ``hidden_size = "200"`` or ``gate = 1`` is refused, not converted (a whole number
        stands for a real one). Untyped values (``--set``'s strings) are parsed by the field's type."""
        for key, value in _flatten(data, source).items():
            if key in ("arch", "task"):
                if source == "--set":
                    raise AdelabelError(f"--set {key}: the {'architecture' if key == 'arch' else 'task'} is chosen "
                                        f"with --{key}, not --set")
                if value != getattr(self, key):
                    raise AdelabelError(f"{source}: {key}: this config is for {value!r}, but --{key} says "
                                        f"{getattr(self, key)!r}")
                continue
            if key not in self.keys:
                # A key of another architecture (a seq2seq config given to bilstm): said so, not a near name.
                owners = [a for a in architectures(self.task)
                          if key in _known_keys(FAMILIES[self.task][ARCHITECTURES[a][0]])]
                if owners:
                    raise AdelabelError(f"{source}: {key}: a key of {one_of(owners)}, which {self.arch} does not take")
                other = next(t for t in FAMILIES if t != self.task)  # a tagger's key given to a classifier, or back
                if any(key in _known_keys(section) for section in FAMILIES[other].values()):
                    raise AdelabelError(f"{source}: {key}: a key of the {other} task's models, not of --task "
                                        f"{self.task}")
                known = [k for k in self.keys if source != "--set" or k != "arch"]
                near = _nearest(key, known)
                hint = f" (did you mean {near}?)" if near else f"; known keys: {', '.join(known)}"
                raise AdelabelError(f"{source}: {key}: unknown key{hint}")
            if typed:
                try:
                    TypeAdapter(self.keys[key].annotation).validate_python(value, strict=True)
                except ValidationError as err:
                    raise AdelabelError(f"{source}: {key}: {_describe(err.errors()[0])}") from None
            elif isinstance(value, str) and "_" in value and _numeric(self.keys[key].annotation):
                # Python's int() and float() read "1_6" as 16, and "1_0e-3" as 0.01: a typo, taken as a number.
                raise AdelabelError(f"{source} {key}={value}: not a number as written (no underscores: "
                                    f"{value.replace('_', '')}?)")
            self.values[key] = value
            self.origin[key] = source
        return self

    def set(self, assignments: list[str], source: str = "--set") -> "ConfigBuilder":
        """``section.key=value`` strings; the value is parsed by the field's type when validated."""
        data: dict[str, Any] = {}
        for item in assignments:
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or not key:
                raise AdelabelError(f"{source} {item!r}: expected KEY=VALUE, for example train.lr=0.002")
            section, dot, leaf = key.partition(".")
            if dot:
                data.setdefault(section, {})
                if not isinstance(data[section], dict):
                    raise AdelabelError(f"{source} {key}: {section!r} is not a section")
                data[section][leaf] = raw
            elif isinstance(data.get(key), dict):  # seed.x=2 then seed=1: the first must not vanish
                raise AdelabelError(f"{source} {item.strip()}: {key} is given keys too ({key}.{next(iter(data[key]))}); "
                                    "it is either a section or a value")
            else:
                data[key] = raw
        return self.add(data, source)

    def build(self) -> Config:
        nested: dict[str, Any] = {"arch": self.arch, "task": self.task, "model": {}, "train": {}}
        for key, value in self.values.items():
            section, dot, leaf = key.partition(".")
            if dot:
                nested[section][leaf] = value
            else:
                nested[key] = value
        try:
            model = self.family.model_validate(nested.pop("model"))
        except ValidationError as err:
            raise self._error(err, "model.") from None
        try:
            config = Config.model_validate({**nested, "model": model})
        except ValidationError as err:
            raise self._error(err) from None
        if self.packaged and self.family in READS_PIECES and config.train.word_dropout:
            # Word dropout replaces word ids, which a transformer never reads: a new run is told, where a
            # saved model is read as it was trained.
            key = "train.word_dropout"
            raise AdelabelError(f"{self.origin.get(key, 'config')}: {key}: the transformer reads sub-word pieces, "
                                "not the word ids word dropout replaces; leave it at 0")
        return config

    def _error(self, err: ValidationError, prefix: str = "") -> AdelabelError:
        first = err.errors()[0]
        key = prefix + ".".join(str(p) for p in first["loc"])
        return AdelabelError(f"{self.origin.get(key, 'config')}: {key}: {_describe(first)}")


def model_folder(path: Path) -> Path | None:
    """The model folder a ``--config`` names (the folder or its config.json), or None for a config file."""
    folder = path if path.is_dir() else path.parent if path.name == "config.json" else None
    return folder if folder is not None and (folder / "config.json").is_file() else None


def resolve(arch: str | None = None, path: str | Path | None = None, overrides: list[str] | None = None,
            task: str | None = None) -> Config:
    """The config of a run: ``arch`` (or the file's ``arch``, else bilstm) for ``task`` (or the file's,
    else tag), the file at ``path`` and ``section.key=value`` overrides, each layered on the schema's
    defaults and checked."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        folder = model_folder(path)
        if folder is not None:
            # A model folder: train again with the settings it was trained with, read as loading reads
            # them (checked, and completed as its format had them).
            from adelabel.model_dir import saved_config

            path, data = folder / "config.json", saved_config(folder)[1].to_dict()
        elif path.is_dir() and (path / "model.safetensors").is_file():
            # A damaged model folder: say so, as loading it would.
            raise InputError(path / "config.json", "missing from the model folder")
        elif not path.exists() or path.is_dir():  # a pipe (`--config <(...)`) is read once, as a file is
            raise InputError(path, "is a folder, not a config file" if path.is_dir() else "config file not found")
        else:
            data = read_config_file(path)
        file_arch = data.get("arch")
        if file_arch is not None and not isinstance(file_arch, str):
            raise InputError(path, f"arch: expected a string, got {file_arch!r}")
        if file_arch is not None and file_arch not in ARCHITECTURES:
            raise InputError(path, f"arch: unknown architecture {file_arch!r}; choose from {', '.join(ARCHITECTURES)}")
        if arch is not None and file_arch is not None and file_arch != arch:
            raise InputError(path, f"arch: this config is for {file_arch!r}, but --arch says {arch!r}")
        file_task = data.get("task")
        if file_task is not None and file_task not in TASKS:
            raise InputError(path, f"task: expected {' or '.join(TASKS)}, got {file_task!r}")
        if task is not None and file_task is not None and file_task != task:
            raise InputError(path, f"task: this config is for {file_task!r}, but --task says {task!r}")
        if (file_arch or file_task) and (arch or file_arch or DEFAULT_ARCH) not in architectures(
                task or file_task or DEFAULT_TASK):
            raise InputError(path, f"arch {arch or file_arch or DEFAULT_ARCH!r} has no "
                                   f"{task or file_task or DEFAULT_TASK} model")
        arch, task = arch or file_arch, task or file_task
    builder = ConfigBuilder(arch or DEFAULT_ARCH, task or DEFAULT_TASK)
    if path is not None:
        builder.add(data, str(path), typed=True)
    return builder.set(list(overrides or [])).build()


_STREAMED: dict[str, str] = {}
"""The text of each config read from a pipe (`--config <(...)`), which a second read would find empty:
a command that resolves its config twice (train, to check --encoder against the arch) reads it once."""


def _numeric(annotation: Any) -> bool:
    """Whether a field's type takes a number (int, float, or one of them beside None or a choice)."""
    if annotation in (int, float):
        return True
    return any(_numeric(a) for a in getattr(annotation, "__args__", ()) if a is not type(None))


def read_config_file(path: Path) -> dict:
    """A TOML config file."""
    try:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
        else:
            if str(path) not in _STREAMED:
                _STREAMED[str(path)] = path.read_text(encoding="utf-8")
            text = _STREAMED[str(path)]
        text = text.removeprefix("\ufeff")  # a BOM some editors write
    except UnicodeDecodeError as err:
        raise InputError(path, f"not UTF-8 text (byte {err.start})") from None
    if not text.strip():  # a failed export or a wrong name, as an empty corpus file is: not "no changes"
        raise InputError(path, "file is empty (a config with no settings holds at least a comment)")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(path, f"not valid TOML ({err})") from None
    except RecursionError:
        raise InputError(path, "not a config: nested deeper than Python reads") from None
    except ValueError:  # tomllib's only other ValueError: an integer of more digits than Python converts
        raise InputError(path, "not a config: holds an integer of thousands of digits") from None


SAVED_KEYS = ("arch", "task", "seed", "model", "train")
"""What of a model folder's config.json is the config it was trained with."""


def validate_saved(data: dict, source: str) -> Config:
    """A config as saved in a model folder, checked against the schema (nothing layered on it)."""
    arch, task = data.get("arch"), data.get("task", DEFAULT_TASK)
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise AdelabelError(f"{source}: arch: unknown architecture {arch!r}")
    if not isinstance(task, str) or task not in TASKS or arch not in architectures(task):
        raise AdelabelError(f"{source}: task: {task!r} is not a task {arch!r} can do")
    for section in ("model", "train"):
        if section in data and not isinstance(data[section], dict):
            raise AdelabelError(f"{source}: {section}: expected a table of settings, got {data[section]!r}")
    return ConfigBuilder(arch, task, packaged=False).add(
        {k: data[k] for k in SAVED_KEYS if k in data}, source, typed=True).build()


def to_toml(config: Config) -> str:
    import tomli_w

    return tomli_w.dumps(config.to_dict())


def reference() -> str:
    """The config reference as Markdown tables, generated from the schema (the README shows it)."""
    import json

    out = []
    sections = [("top level", Config, ("task", "seed")), ("[train]", Train, None)]
    sections += [(f"[model] for {', '.join(a for a, (f, _) in ARCHITECTURES.items() if fam == f)}"
                  + (" with `task = \"classify\"`" if task != "tag" else ""), cls, None)
                 for task, families in FAMILIES.items() for fam, cls in families.items()]
    for title, cls, only in sections:
        out += [f"**{title}**", "", "| key | type | default | what |", "|---|---|---|---|"]
        own_section = "train" if cls is Train else "model"
        for name, field in cls.model_fields.items():
            if only is not None and name not in only:
                continue
            choices = getattr(field.annotation, "__args__", ())
            kind = " \\| ".join(json.dumps(c) for c in choices) if choices else field.annotation.__name__
            out.append(f"| `{name}` | {kind} | `{json.dumps(field.default)}` | {field.description} |")
        out.append("")
        if cls is Config:
            continue
        if cls is Train:
            for family, own in TRAIN_BY_FAMILY.items():
                archs = [a for a, (f, _) in ARCHITECTURES.items() if f == family]
                out += [f"`{'`, `'.join(archs)}` (tagger and classifier) trains with "
                        + ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in own.items())
                        + " (adelabel/config.py, TRAIN_BY_FAMILY).", ""]
        for task in TASKS:
            for arch in architectures(task):
                if FAMILIES[task][ARCHITECTURES[arch][0]] is not cls:
                    continue
                own = tomllib.loads(_packaged(arch, task)).get(own_section, {})
                where = "" if task == "tag" else f"{task}/"
                if own:
                    out += [f"`{arch}` {'' if task == 'tag' else '(' + task + ') '}sets "
                            + ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in own.items())
                            + f" (adelabel/configs/{where}{arch}.toml).", ""]
    return "\n".join(out)
