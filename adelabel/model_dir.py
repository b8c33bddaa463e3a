"""The saved-model format: a folder any architecture is written to and read from the same way.

    config.json        format version, architecture and task, the resolved config, tags (a tagger) or
                       classes (a classifier), data manifest, versions
    vocab.json         the word and character lists (row i of an embedding is entry i)
    model.safetensors  the weights: safetensors holds only tensors, so loading runs no pickled code
    metrics.json       dev and test scores of the run that made it
    train_log.jsonl    one line per epoch
    curves.png         each epoch's training loss and dev F1, the kept epoch marked
    assets/            files some architectures need to be rebuilt (the transformer's tokeniser)
    manifest.json      the SHA-256 of every file above

A folder is written under a temporary name and renamed into place when complete (adelabel/atomic.py),
so it is never a mix of two runs. Loading proves it before use: every file's checksum, the config
against the schema, the tags against IOB2 and the data's labels, the vocabulary's reserved entries,
every tensor's shape against config and vocabulary, and every weight finite.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes, load_file, save_file

from adelabel import atomic
from adelabel.atomic import sha256
from adelabel.config import Config, validate_saved
from adelabel.corpus.files import read_json_object
from adelabel.errors import AdelabelError, InputError
from adelabel.models.base import SequenceLabeler
from adelabel.tags import tag_set
from adelabel.vocab import PAD, UNK, Vocabs

FORMAT_VERSION = 5
# 2: the architecture family (renamed settings and weights, gate threshold); 3: gate modules of their
# own (SentenceGate, PooledGate); 4: manifest.json of checksums, the config validated by the schema,
# seq2seq's sampling-schedule step count saved as a buffer, the relation head; 5: the calibration of
# entity and relation scores, sentence classifiers.
MIGRATES_FROM = (3, 4)
CONFIG, VOCAB, WEIGHTS, METRICS, LOG = "config.json", "vocab.json", "model.safetensors", "metrics.json", "train_log.jsonl"
MANIFEST, ASSETS, CURVES = "manifest.json", "assets", "curves.png"
is_model_dir = atomic.is_model_dir


def _json(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def save(directory: str | Path, model: SequenceLabeler, config: dict, vocabs: Vocabs, metrics: dict | None = None,
         log: Path | None = None, half: bool = False) -> None:
    """Write a complete model folder in place of ``directory``. ``config`` holds what the run
    recorded (seed, train settings, data, versions); architecture and model settings come from
    ``model`` itself. ``log``: the run's epoch log, copied in. ``half``: the parameters stored as
    fp16 (half the size; widened to fp32 on loading); thresholds and calibrations keep fp32."""
    config = {**config, "format_version": FORMAT_VERSION, "arch": model.arch, "model": model.hyper,
              **({"stored_in": "float16"} if half else {})}
    params = {name for name, _ in model.named_parameters()}
    state = {k: (v.half() if half and k in params and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    with atomic.atomic_dir(directory, is_model_dir) as tmp:
        (tmp / CONFIG).write_text(_json(config), encoding="utf-8")
        (tmp / VOCAB).write_text(json.dumps(vocabs.to_json(), ensure_ascii=False), encoding="utf-8")
        try:
            save_file(state, str(tmp / WEIGHTS))
        except SafetensorError as err:  # a full disk or a file-size limit, in safetensors' words
            raise AdelabelError(f"{directory / WEIGHTS}: cannot write ({err})") from None
        # safetensors makes its file private (0600); the weights are as readable as the rest of the folder.
        (tmp / WEIGHTS).chmod((tmp / CONFIG).stat().st_mode & 0o777)
        if metrics is not None:
            (tmp / METRICS).write_text(_json(metrics), encoding="utf-8")
        if log is not None:
            shutil.copyfile(log, tmp / LOG)
            records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]
            if records:
                from adelabel.report import training_curves

                training_curves(records, tmp / CURVES)
        model.save_assets(tmp / ASSETS)
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        (tmp / MANIFEST).write_text(_json({"format_version": FORMAT_VERSION,
                                           "files": {name: sha256(tmp / name) for name in files}}),
                                    encoding="utf-8")


WORD_TABLE = "words.embedding.weight"
"""The word vectors' table in a model's weights (a recurrent model's; a transformer reads word pieces)."""


def _missing(path: Path) -> str:
    """Why a model folder's file cannot be read: gone, or something else in its place."""
    if os.path.lexists(path):
        return "is a folder, not a file" if path.is_dir() else "not a readable file (a pipe, a device or a broken link)"
    return "missing from the model folder"


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise InputError(path, _missing(path))
    return read_json_object(path)


def check_files(directory: Path) -> None:
    """Refuse a model folder whose files are not those its manifest lists (missing, changed, added to
    its tokeniser's assets), naming the first."""
    manifest = _read_json(directory / MANIFEST)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise InputError(directory / MANIFEST, "lists no files")
    for name in (CONFIG, VOCAB, WEIGHTS):
        if name not in files:
            raise InputError(directory / MANIFEST, f"does not list {name}")
    for name, digest in files.items():
        path = directory / name
        if Path(name).is_absolute() or ".." in Path(name).parts:  # a checksum of a file outside proves nothing
            raise InputError(directory / MANIFEST, f"lists {name!r}, which is not a file of the model folder")
        if not path.is_file():
            raise InputError(path, _missing(path) + " (listed in manifest.json)")
        if sha256(path) != digest:
            raise InputError(path, "checksum mismatch (changed or damaged since it was saved)")
    # The tokeniser reads whatever files its folder holds (an added_tokens.json changes how text is cut):
    # assets/ may hold only what was saved with the model. Other unlisted files (a user's notes, onnx/
    # with its own checks) are never read.
    folder = directory / ASSETS
    if folder.exists() or folder.is_symlink():
        extra = sorted(p.relative_to(directory).as_posix() for p in folder.rglob("*") if p.is_file()) \
            if folder.is_dir() else [ASSETS]
        extra = [name for name in extra if name not in files]
        if extra or not any(name.startswith(ASSETS + "/") for name in files):
            raise InputError(directory / (extra[0] if extra else ASSETS),
                             "not listed in manifest.json: assets/ holds only the files saved with the model, "
                             "which its tokeniser reads; remove it")


def _check_tags(tags, labels, path: Path) -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InputError(path, "tags: expected a list of strings")
    found = [t[2:] for t in tags[1::2]]
    if tags != tag_set(found) or len(set(found)) != len(found):
        raise InputError(path, f"tags: {tags} are not IOB2 tags in the order training writes them "
                               "(O, then B-X and I-X for each type)")
    odd = next((t for t in found if not t or any(c.isspace() for c in t)), None)
    if odd is not None:
        # As the corpus readers refuse: brat's T lines and CoNLL's columns could not hold it.
        raise InputError(path, f"tags: entity type {odd!r} is empty or holds white space")
    if labels is not None and list(labels) != found:
        raise InputError(path, f"tags: {tags} do not match the data's labels {labels}")
    return tags


def _check_classes(classes, positive, path: Path) -> dict:
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes) \
            or len(set(classes)) != len(classes):
        raise InputError(path, f"classes: expected a list of two or more distinct names, got {classes!r}")
    if (positive is None) != (len(classes) > 2) or (positive is not None and positive not in classes):
        raise InputError(path, f"positive: expected one of the two classes (null with more), got {positive!r}")
    return {"classes": classes, "positive": positive}


def task_of(directory: str | Path) -> str | None:
    """The task of a model folder ("tag" or "classify") as its config says, read before loading it
    whole (which checks everything); None when that cannot be read, for :func:`load` to explain."""
    directory = Path(directory)
    try:
        # Only regular files: a pipe would wait forever, /dev/zero hash forever (load names either).
        if not (directory / CONFIG).is_file() or ((directory / MANIFEST).exists() and not (directory / MANIFEST).is_file()):
            return None
        if (directory / MANIFEST).exists():
            # An edited config.json must be reported as damage by load, not believed here.
            listed = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))["files"][CONFIG]
            if listed != sha256(directory / CONFIG):
                return None
        task = json.loads((directory / CONFIG).read_text(encoding="utf-8")).get("task", "tag")
    except (OSError, ValueError, AttributeError, TypeError, KeyError, RecursionError):
        return None
    return task if task in ("tag", "classify") else None


def _check_vocab(data: dict, path: Path) -> Vocabs:
    try:
        vocabs = Vocabs.from_json(data)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(path, f"not a vocabulary ({type(err).__name__}: {err})") from None
    for name, vocab in (("words", vocabs.words), ("chars", vocabs.chars)):
        if vocab.items[:2] != [PAD, UNK] or not all(isinstance(w, str) for w in vocab.items):
            raise InputError(path, f"{name}: must be strings starting with {PAD!r}, {UNK!r}")
    # A word's characters are looked up one by one: a longer entry would never be found, and its row
    # would stand for nothing.
    if (odd := next((c for c in vocabs.chars.items[2:] if len(c) != 1), None)) is not None:
        raise InputError(path, f"chars: {odd!r} is not one character")
    return vocabs


def _migrate(state: dict, arch: str) -> dict:
    """Formats 3 and 4 -> 5: the same tensors, plus (3) seq2seq's step counter (its schedule starts
    afresh) and an identity calibration of the gate, and (3, 4) of entity and relation scores."""
    if arch == "seq2seq" and "steps" not in state:
        state = {**state, "steps": torch.zeros((), dtype=torch.long)}
    if "gate_threshold" in state and "gate_scale" not in state:  # format 3: an uncalibrated gate
        state = {**state, "gate_scale": torch.tensor(1.0), "gate_shift": torch.tensor(0.0)}
    for name in ("entity_calibration", "relation_calibration"):  # formats 3 and 4: raw scores
        state.setdefault(name, torch.tensor([1.0, 0.0]))
    return state


def saved_config(directory: str | Path) -> tuple[dict, Config]:
    """A model folder's config.json, as read (migrated from older formats, its manifest checked), and
    the run config it holds, checked against the schema."""
    directory = Path(directory)
    if not directory.is_dir():
        if directory.exists():
            raise InputError(directory, "is a file, not a model folder")
        if not atomic.restore_aside(directory):  # a retraining killed between its two renames left it aside
            raise InputError(directory, "model folder not found (train one with `adelabel train`)")
    config = _read_json(directory / CONFIG)
    version = config.get("format_version")
    if type(version) is not int:  # 5.0 equals 5 and True equals 1, to Python
        raise InputError(directory / CONFIG, f"format_version: expected a whole number, got {version!r}")
    if version != FORMAT_VERSION and version not in MIGRATES_FROM:
        arch = config.get("arch", "ARCH")
        data = config.get("data", {}).get("dir", "DATA") if isinstance(config.get("data"), dict) else "DATA"
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            raise InputError(directory / CONFIG, f"model format {version} was made by a newer adelabel than this "
                                                 f"one (which reads format {FORMAT_VERSION}); upgrade adelabel")
        raise InputError(directory / CONFIG, f"model format {version!r} (made by an older adelabel) is not "
                                             f"{FORMAT_VERSION}, the one this version reads; rebuild it with "
                                             f"`adelabel train --arch {arch} --data {data} --out {directory}`")
    # Formats 4 and 5 always have a manifest; one beside an older format is checked too, or editing the
    # format in config.json would pass files its checksums no longer match.
    if version == FORMAT_VERSION or version == 4 or (directory / MANIFEST).exists():
        check_files(directory)
    elif isinstance(config.get("model"), dict):
        config["model"].setdefault("relations", False)  # format 3 had no relation head
    try:
        validated = validate_saved(config, str(directory / CONFIG))
    except AdelabelError as err:
        raise InputError(directory / CONFIG, str(err).removeprefix(f"{directory / CONFIG}: ")) from None
    if version == FORMAT_VERSION:
        _check_keys(config, validated.task, directory / CONFIG)
    return config, validated


SAVED = frozenset({"format_version", "arch", "task", "seed", "model", "train", "embedding_dim", "data", "versions",
                   "device", "processes", "teacher", "stored_in", "versions_at_start"})
"""The top-level keys of a model's config.json (format 5) besides its head's (HEADS)."""
HEADS = {"tag": {"tags"}, "classify": {"classes", "positive"}}


def _check_keys(config: dict, task: str, path: Path) -> None:
    """No key the format does not have (an edit's typo, or another task's head), and those read by
    name of the kind they are read as."""
    if unknown := sorted(set(config) - SAVED - HEADS[task]):
        raise InputError(path, f"{unknown[0]}: unknown key in a {task} model's config")
    if config.get("stored_in", "float16") != "float16":
        raise InputError(path, f"stored_in: expected \"float16\" (or no key: float32), got {config['stored_in']!r}")
    if not isinstance(config.get("data", {}), dict):
        raise InputError(path, f"data: expected a table of the data's settings, got {config['data']!r}")


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file. Its library takes a path as UTF-8 text only; a folder whose
    name holds other bytes (made on Linux, where a name is bytes) is read into memory instead."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return load_bytes(path.read_bytes())
    return load_file(str(path))


def load(directory: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict, Vocabs]:
    """Model, config and vocabulary of a saved model folder, proved before use (see the module's doc)."""
    try:
        return _load(Path(directory), device)
    except OSError as err:  # a name too long, a folder it may not read: said as any other damage is
        raise InputError(err.filename or directory, err.strerror or str(err)) from None


def _load(directory: Path, device: torch.device | str) -> tuple[torch.nn.Module, dict, Vocabs]:
    from adelabel.models import build_classifier, build_model

    config, validated = saved_config(directory)
    if validated.task == "tag":
        labels = config.get("data", {}).get("labels") if isinstance(config.get("data"), dict) else None
        if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            raise InputError(directory / CONFIG, f"data.labels: expected a list of entity types, got {labels!r}")
        head = {"tags": _check_tags(config.get("tags"), labels, directory / CONFIG)}
    else:
        head = _check_classes(config.get("classes"), config.get("positive"), directory / CONFIG)
    dim = config.get("embedding_dim")
    if not isinstance(dim, int) or dim < 1:
        raise InputError(directory / CONFIG, f"embedding_dim: expected a positive whole number, got {dim!r}")
    vocabs = _check_vocab(_read_json(directory / VOCAB), directory / VOCAB)

    weights = directory / WEIGHTS
    if not weights.is_file():
        raise InputError(weights, _missing(weights))
    try:
        state = _read_weights(weights)
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(weights, f"corrupt weights file ({err})") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float32):
            # save writes these two; float8's kinds cannot even be checked for NaN here.
            raise InputError(weights, f"{name}: stored as {tensor.dtype}, which adelabel never writes (float16 "
                                      "or float32)")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise InputError(weights, f"{name}: holds NaN or infinite values")
    if config.get("format_version") != FORMAT_VERSION:
        state = _migrate(state, validated.arch)
    # Before the model is built at the sizes config.json and vocab.json give, which could be any.
    table = state.get(WORD_TABLE)
    if table is not None and tuple(table.shape) != (len(vocabs.words), dim):
        raise InputError(weights, f"weights do not match config.json/vocab.json: {WORD_TABLE} is "
                                  f"{tuple(table.shape)}, not {len(vocabs.words)} words x embedding_dim {dim}")
    assets = directory / ASSETS if (directory / ASSETS).is_dir() else None
    build = build_model if validated.task == "tag" else build_classifier
    model = build(validated.arch, **head, vocab_size=len(vocabs.words), char_vocab_size=len(vocabs.chars),
                  embedding_dim=dim, assets=assets, **validated.model.model_dump())
    for name, want in model.state_dict().items():
        # load_state_dict would cast integers into weights (and reals into counters) without a word.
        if name in state and state[name].is_floating_point() != want.is_floating_point():
            raise InputError(weights, f"{name}: stored as {state[name].dtype}, not as "
                                      f"{'real numbers' if want.is_floating_point() else 'whole numbers'}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = " ".join(str(err).splitlines()[1:3]).strip()
        raise InputError(weights, "weights do not match config.json/vocab.json: " + first) from None
    if getattr(model, "gate", None) is not None and not 0.0 <= float(model.gate_threshold) <= 1.0:
        raise InputError(weights, f"gate_threshold {float(model.gate_threshold)} is not in [0, 1]")
    if validated.task == "classify":
        if not 0.0 <= float(model.threshold) <= 1.0:
            raise InputError(weights, f"threshold {float(model.threshold)} is not in [0, 1]")
        if not float(model.temperature) > 0.0:
            raise InputError(weights, f"temperature {float(model.temperature)} is not positive")
    model.to(device).eval()
    return model, {**config, **validated.to_dict()}, vocabs

