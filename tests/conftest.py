"""Shared fixtures and helpers: the sample corpus in the repository, the real corpus beside it, small
prepared data and models, and the command line run in-process.

Markers (registered in pyproject.toml) say what a test needs: ``corpus`` (the real ADE corpus),
``training`` (trains models), ``processes`` (starts other processes). `.ci/run` runs them all.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "corpora" / "sample"

# Two torch processes at 2 threads each on 2 cores slow each other down tenfold: tests pin the
# threads, and the processes they start inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "2")
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _one_process(monkeypatch):
    """Each test starts as a process that has joined no torchrun group: a test whose train tried to join
    (by hand, and failed) set the module's flag for every later one."""
    from adelabel import distributed

    monkeypatch.setattr(distributed, "JOINING", False)


DEVELOPMENT_PORTION = "d6814804939db2e3356c4b7063a573c6d0fddcef9379f9fbf25e5c50539be241"
"""SHA-256 of the development portion's DRUG-AE.rel: the tests' counts and stored scores are its."""


def real_corpus_dir() -> Path:
    """The development portion of the corpus: ADELABEL_REAL_CORPUS if set; else ../shared/corpora/ade-v2
    (where CI has it) if it is there; else ADELABEL_CORPUS (what adelabel itself reads), which may name
    another copy, whose counts are then refused by name."""
    if os.environ.get("ADELABEL_REAL_CORPUS"):
        return Path(os.environ["ADELABEL_REAL_CORPUS"])
    shared = ROOT.parent / "shared" / "corpora" / "ade-v2"
    if (shared / "DRUG-AE.rel").is_file() or not os.environ.get("ADELABEL_CORPUS"):
        return shared
    return Path(os.environ["ADELABEL_CORPUS"])


def pytest_collection_modifyitems(items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "real_corpus" in fixtures:
            item.add_marker("corpus")
        if fixtures & {"sample_model", "tiny_model_dir"}:
            item.add_marker("training")


@pytest.fixture(scope="session")
def real_corpus() -> Path:
    path = real_corpus_dir()
    if not (path / "DRUG-AE.rel").is_file():
        # CI always has the corpus; a developer without it is told, not silently skipped past.
        pytest.fail(f"real ADE corpus not found at {path}; set ADELABEL_CORPUS (or ADELABEL_REAL_CORPUS, "
                    "for the tests alone) to its folder")
    import hashlib

    if hashlib.sha256((path / "DRUG-AE.rel").read_bytes()).hexdigest() != DEVELOPMENT_PORTION:
        pytest.fail(f"{path}: not the development portion of the corpus (../shared/corpora/ade-v2), whose counts "
                    "and scores the tests check; set ADELABEL_REAL_CORPUS to that portion's folder")
    return path


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    """The sample corpus prepared once per test session."""
    from adelabel.prepare import prepare

    out = tmp_path_factory.mktemp("sample-data") / "data"
    prepare(SAMPLE, out, seed=13, w2v_epochs=5, log=lambda _: None)
    return out


def train_small(data: Path, out: Path, *overrides: str) -> Path:
    from adelabel.config import resolve
    from adelabel.train import train

    train(resolve("bilstm", overrides=list(overrides)), data, out, device="cpu", log=None)
    return out


@pytest.fixture(scope="session")
def sample_model(sample_data, tmp_path_factory) -> Path:
    """A small bilstm trained on the sample corpus: a real (short) training run."""
    return train_small(sample_data, tmp_path_factory.mktemp("sample-model") / "bilstm", "train.max_epochs=25",
                       "train.batch_size=16", "train.lr=0.005", "train.patience=25", "model.hidden_size=64")


@pytest.fixture(scope="session")
def tiny_model_dir(sample_data, tmp_path_factory) -> Path:
    """A one-epoch, tiny bilstm: for tests that need a valid model folder, not a good one."""
    return train_small(sample_data, tmp_path_factory.mktemp("tiny-model") / "bilstm", "train.max_epochs=1",
                       "model.hidden_size=8", "model.dense_size=8", "model.char_size=8")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """The command line in this process: exit status, stdout, stderr."""
    from adelabel.cli import run

    code = run([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
