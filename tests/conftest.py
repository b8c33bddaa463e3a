"""Shared fixtures: the sample corpus in the repository, and the real corpus beside it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "corpora" / "sample"


def real_corpus_dir() -> Path:
    return Path(os.environ.get("ADELABEL_REAL_CORPUS", ROOT.parent / "shared" / "corpora" / "ade-v2"))


@pytest.fixture(scope="session")
def real_corpus() -> Path:
    path = real_corpus_dir()
    if not (path / "DRUG-AE.rel").is_file():
        # CI always has the corpus; a developer without it is told, not silently skipped past.
        pytest.fail(f"real ADE corpus not found at {path}; set ADELABEL_REAL_CORPUS")
    return path


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    """The sample corpus prepared once per test session."""
    from adelabel.prepare import prepare

    out = tmp_path_factory.mktemp("sample-data")
    prepare(SAMPLE, out, seed=13, w2v_epochs=5, log=lambda _: None)
    return out


@pytest.fixture(scope="session")
def sample_model(sample_data, tmp_path_factory) -> Path:
    """A small bilstm trained on the sample corpus: a real (short) training run."""
    from adelabel.config import resolve
    from adelabel.train import train

    out = tmp_path_factory.mktemp("sample-model") / "bilstm"
    config = resolve("bilstm", overrides=["train.max_epochs=25", "train.batch_size=16", "train.lr=0.005",
                                          "train.patience=25", "model.hidden_size=64"])
    train(config, sample_data, out, device="cpu", log=None)
    return out
