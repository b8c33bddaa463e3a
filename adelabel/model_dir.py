"""The saved-model format: a directory any architecture is written to and read from the same way.

    config.json        architecture, hyperparameters, tags, training config, data manifest, versions
    vocab.json         the word and character lists (row i of an embedding is entry i)
    model.safetensors  the weights: safetensors holds only tensors, so loading runs no pickled code
    metrics.json       dev and test scores of the run that made it
    train_log.jsonl    one line per epoch
    assets/            files some architectures need to be rebuilt (the transformer's tokeniser)
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from adelabel.errors import InputError
from adelabel.models import build_model
from adelabel.models.base import SequenceLabeler
from adelabel.vocab import Vocabs

FORMAT_VERSION = 3  # 2: the architecture family (renamed settings and weights, gate threshold); 3: gate modules of their own (SentenceGate, PooledGate)
CONFIG, VOCAB, WEIGHTS, METRICS, LOG = "config.json", "vocab.json", "model.safetensors", "metrics.json", "train_log.jsonl"
ASSETS = "assets"


def save(directory: str | Path, model: SequenceLabeler, config: dict, vocabs: Vocabs) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG).write_text(json.dumps({"format_version": FORMAT_VERSION, **config}, indent=2) + "\n",
                                    encoding="utf-8")
    (directory / VOCAB).write_text(json.dumps(vocabs.to_json(), ensure_ascii=False), encoding="utf-8")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    # A folder reused for another architecture must not keep the last one's assets: load would pass them on.
    shutil.rmtree(directory / ASSETS, ignore_errors=True)
    model.save_assets(directory / ASSETS)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise InputError(path, "missing from the model directory")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(path, f"corrupt JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object")
    return data


def load(directory: str | Path, device: torch.device | str = "cpu") -> tuple[SequenceLabeler, dict, Vocabs]:
    """Model, config and vocabulary of a saved model; a clear error for anything missing or corrupt."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "model directory not found (train one with `adelabel train`)")
    config = _read_json(directory / CONFIG)
    if config.get("format_version") != FORMAT_VERSION:
        raise InputError(directory / CONFIG, f"model format {config.get('format_version')!r} is not "
                                             f"{FORMAT_VERSION}, the one this version of adelabel reads")
    try:
        vocabs = Vocabs.from_json(_read_json(directory / VOCAB))
        arch, tags, hyper, dim = config["arch"], config["tags"], config["model"], config["embedding_dim"]
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(directory, f"incomplete model files ({type(err).__name__}: {err})") from None
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise InputError(weights, "missing from the model directory")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(weights, f"corrupt weights file ({err})") from None
    assets = {"assets": directory / ASSETS} if (directory / ASSETS).is_dir() else {}
    model = build_model(arch, tags=tags, vocab_size=len(vocabs.words), char_vocab_size=len(vocabs.chars),
                        embedding_dim=dim, **hyper, **assets)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1:3]
        raise InputError(weights, "weights do not match config.json/vocab.json: " + " ".join(first).strip()) from None
    model.to(device).eval()
    return model, config, vocabs
