"""``adelabel train``: the one training loop every architecture goes through.

A run keeps a checkpoint folder beside its model folder (``models/bilstm.checkpoint/``) while it
trains: the run's config, the epoch log, and after every epoch the weights, the optimiser, the random
states, the best weights so far and the early-stopping counters. ``adelabel train --resume`` carries
a killed run on from its last finished epoch and ends with the weights an uninterrupted run would
have. The model folder itself is written once, complete, at the end (adelabel/atomic.py).
"""
from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from adelabel import atomic, model_dir
from adelabel.config import Config, validate_saved
from adelabel.corpus import Sentence
from adelabel.data import Example, bucketed
from adelabel.embeddings import read_vectors
from adelabel.errors import AdelabelError, InputError
from adelabel.prepare import MANIFEST, VECTORS, read_manifest, read_split
from adelabel.tagger import pick_device
from adelabel.tasks import TASKS
from adelabel.text import tokenize
from adelabel.versions import versions
from adelabel.vocab import UNK, Vocab, Vocabs, normalize

RUN, STATE = "run.json", "state.pt"


def checkpoint_dir(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + ".checkpoint")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_vocab(words: Sequence[str], vectors: np.ndarray, train: Sequence[Sentence],
                seed: int) -> tuple[Vocabs, torch.Tensor]:
    """Word vocabulary = words with vectors + training words without; rows without a vector start
    random. Character vocabulary = characters of the training text.

    The random rows are scaled like the pretrained ones so neither dominates at the start.
    """
    train_words = Counter(normalize(s.text[a:b]) for s in train for a, b in tokenize(s.text))
    vocab = Vocab.for_words(list(words) + sorted(train_words))
    chars = Vocab.for_words(sorted({c for s in train for c in s.text if not c.isspace()}))
    dim = vectors.shape[1]
    std = float(vectors.std()) if vectors.size else 0.1
    gen = torch.Generator().manual_seed(seed)
    matrix = torch.randn(len(vocab), dim, generator=gen) * std
    matrix[0] = 0.0  # padding
    known = torch.tensor([vocab[w] for w in words], dtype=torch.long)
    if len(known):
        matrix[known] = torch.from_numpy(vectors)
    return Vocabs(vocab, chars), matrix


def epoch_sample(examples: Sequence[Example], negative: Sequence[bool], fraction: float,
                 gen: torch.Generator) -> list[Example]:
    """All positive sentences and a fresh random ``fraction`` of the ADE-NEG ones.

    ADE-NEG sentences are 80% of the corpus; seeing all of them every epoch teaches the tagger to stay
    silent, at the cost of recall on sentences that do report an adverse event.
    """
    if fraction >= 1.0:
        return list(examples)
    keep = torch.rand(len(examples), generator=gen) < fraction
    return [e for e, neg, k in zip(examples, negative, keep.tolist()) if not neg or k]


def run_epoch(model, optimizer, sample: list[Example], cfg: Config, gen: torch.Generator, unk: int,
              device: torch.device, progress: Callable[[int, int], None]) -> float:
    """One pass over ``sample`` in shuffled length buckets; returns the mean batch loss."""
    hp = cfg.train
    model.train()
    batches = list(bucketed(sample, hp.batch_size, shuffle=True, generator=gen))
    total = 0.0
    for n, (_, batch) in enumerate(batches, start=1):
        batch = batch.to(device)
        if hp.word_dropout > 0:
            drop = (torch.rand(batch.words.shape, generator=gen) < hp.word_dropout).to(device) & batch.mask
            batch.words = batch.words.masked_fill(drop, unk)
        loss = model.loss(model(batch), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp.clip_norm)
        optimizer.step()
        total += loss.item()
        progress(n, len(batches))
    return total / max(len(batches), 1)


# Training draws only from torch: the run's generator (sampling, batch order, word dropout) and the
# global one (dropout masks, seq2seq's scheduled sampling).
def _random_states(gen: torch.Generator, device: torch.device) -> dict:
    states = {"generator": gen.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def _restore_random_states(states: dict, gen: torch.Generator, device: torch.device) -> None:
    gen.set_state(states["generator"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


def start_run(config: Config, data_dir: str | Path, out_dir: str | Path, device: str) -> Path:
    """Create the checkpoint folder of a new run; refuse to overwrite one a killed run left."""
    ckpt = checkpoint_dir(out_dir)
    if ckpt.exists():
        raise AdelabelError(f"{ckpt}: a checkpoint of an unfinished run is here; continue it with "
                            f"`adelabel train --resume {out_dir}`, or delete the folder to start afresh")
    # Absolute paths: a run may be resumed from another working directory.
    # The data's checksums too: a run resumes only on the data it started with.
    run = {"config": config.to_dict(), "data": str(Path(data_dir).resolve()), "out": str(Path(out_dir).resolve()),
           "device": device, "data_files": read_manifest(data_dir).get("files", {})}
    with atomic.atomic_dir(ckpt, atomic.json_with(RUN, "config", "data")) as tmp:
        (tmp / RUN).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
        (tmp / model_dir.LOG).touch()
    return ckpt


def read_run(path: str | Path) -> tuple[Path, dict]:
    """The checkpoint folder ``path`` names (itself, or the one beside a model folder) and its run."""
    path = Path(path)
    ckpt = path if (path / RUN).is_file() else checkpoint_dir(path)
    if not (ckpt / RUN).is_file():
        raise InputError(path, "no checkpoint of an unfinished run here (nothing to resume)")
    try:
        run = json.loads((ckpt / RUN).read_text(encoding="utf-8"))
        if not isinstance(run, dict) or not isinstance(run.get("config"), dict) or not all(
                isinstance(run.get(k), str) for k in ("data", "out", "device")):
            raise ValueError("expected config, data, out and device")
        run["config"] = validate_saved(run["config"], str(ckpt / RUN))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(ckpt / RUN, f"corrupt run file ({err})") from None
    if read_manifest(run["data"]).get("files", {}) != run.get("data_files", {}):
        raise InputError(Path(run["data"]) / MANIFEST, "the data folder changed since the run started; "
                                                       "the run can only resume on the data it started with")
    return ckpt, run


def train(config: Config, data_dir: str | Path, out_dir: str | Path, device: str = "auto",
          log: Callable[[str], None] | None = print, resume: bool = False,
          on_epoch: Callable[[int, float], None] | None = None) -> dict:
    """Train ``config.arch`` for ``config.task`` on a prepared data folder; save the best model (by dev
    F1: entity micro-F1 for a tagger, the positive class's or the macro F1 for a classifier) to
    ``out_dir`` and return its metrics. ``resume`` carries on the run whose checkpoint is beside
    ``out_dir``. ``log=None`` trains silently. ``on_epoch(epoch, dev_f1)`` is called after each epoch
    is checkpointed (``tune`` reports to its pruner there; an exception it raises ends the run)."""
    say = log or (lambda _: None)
    hp, seed = config.train, config.seed
    seed_everything(seed)
    dev_ = pick_device(device)
    manifest = read_manifest(data_dir)
    splits = {name: read_split(data_dir, name) for name in ("train", "dev", "test")}
    task = TASKS[config.task](manifest, splits, data_dir)
    words, vectors = read_vectors(Path(data_dir) / VECTORS)
    vocabs, matrix = build_vocab(words, vectors, splits["train"], seed)
    examples = {name: task.encode(sents, vocabs) for name, sents in splits.items()}

    model = task.build(config, vocab_size=len(vocabs.words), char_vocab_size=len(vocabs.chars),
                       embedding_dim=matrix.shape[1], vectors=matrix).to(dev_)
    # The fused kernel updates the 3M-entry embedding table in one pass instead of a dozen (about 5x
    # faster on the CPU: a fifth of the training time otherwise).
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=hp.lr, fused=True)
    gen = torch.Generator().manual_seed(seed)
    ckpt = checkpoint_dir(out_dir) if resume else start_run(config, data_dir, out_dir, device)
    log_path = ckpt / model_dir.LOG
    epoch, best_f1, best_epoch, stale, best_state, records = 0, -1.0, 0, 0, None, []
    if resume and (ckpt / STATE).is_file():
        try:
            # On the CPU: the random states must be CPU tensors; the weights move to the device on loading.
            state = torch.load(ckpt / STATE, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            _restore_random_states(state["random"], gen, dev_)
            epoch, best_f1, best_epoch, stale = state["epoch"], state["best_f1"], state["best_epoch"], state["stale"]
            best_state, records = state["best"], state["records"]
        except (RuntimeError, ValueError, KeyError, TypeError, EOFError, OSError) as err:
            raise InputError(ckpt / STATE, f"corrupt checkpoint ({type(err).__name__}: {err})") from None
        say(f"resuming {config.arch} from {ckpt} after epoch {epoch} (best dev F1 {best_f1:.4f} at epoch {best_epoch})")

    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    say(f"training {config.arch} ({config.task}) on {len(examples['train']):,} sentences ({dev_.type}), {n_params:,} trainable "
        f"parameters; checkpoints in {ckpt}/")
    tty = log is not None and sys.stderr.isatty()
    while epoch < hp.max_epochs and stale < hp.patience:
        epoch += 1
        started = time.perf_counter()
        sample = epoch_sample(examples["train"], task.negatives["train"], hp.negative_fraction, gen)

        def progress(n: int, total: int) -> None:
            if tty:
                print(f"\r  epoch {epoch} batch {n}/{total}", end="" if n < total else "\r", file=sys.stderr,
                      flush=True)

        loss = run_epoch(model, optimizer, sample, config, gen, vocabs.words[UNK], dev_, progress)
        seconds = time.perf_counter() - started
        task.tune(model, examples["dev"], "dev", hp.eval_batch_size, dev_)
        dev = task.evaluate(model, examples["dev"], "dev", hp.eval_batch_size, dev_)
        f1 = dev["f1"]
        fields, summary = task.record(dev)
        record = {"epoch": epoch, "loss": loss, "dev_f1": f1, **fields, "seconds": seconds,
                  "sentences_per_second": len(sample) / seconds, "lr": optimizer.param_groups[0]["lr"]}
        improved = f1 > best_f1
        if improved:
            best_f1, best_epoch, stale = f1, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            # A dev F1 that stopped rising usually means steps too large to settle into a minimum.
            for group in optimizer.param_groups:
                group["lr"] *= hp.lr_decay
        records.append(record)
        with atomic.atomic_file(ckpt / STATE, "wb") as fh:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "best": best_state,
                        "random": _random_states(gen, dev_), "epoch": epoch, "best_f1": best_f1,
                        "best_epoch": best_epoch, "stale": stale, "records": records}, fh)
        # Written whole from the checkpoint's records: a kill mid-write never leaves a torn line, and
        # the epochs of a resumed run follow those before it.
        atomic.write_text(log_path, "".join(json.dumps(r) + "\n" for r in records))
        say(f"epoch {epoch:>3}  loss {loss:.4f}  {summary}  {record['sentences_per_second']:,.0f} sent/s  "
            f"{seconds:.1f}s" + ("  *" if improved else ""))
        if on_epoch is not None:
            on_epoch(epoch, f1)
    if stale >= hp.patience:
        say(f"no better dev F1 for {stale} epochs; stopped")

    model.load_state_dict(best_state)
    task.calibrate(model, examples["dev"], "dev", hp.eval_batch_size, dev_)
    metrics = {"best_epoch": best_epoch, "epochs_run": epoch}
    for name in ("dev", "test"):
        metrics[name] = task.evaluate(model, examples[name], name, hp.eval_batch_size, dev_)
    saved = {**config.to_dict(), **task.saved(), "embedding_dim": int(matrix.shape[1]),
             "data": {"dir": str(data_dir), **{k: manifest[k] for k in ("corpus", "seed", "labels", "splits")},
                      "vectors": {k: v for k, v in manifest["vectors"].items() if k != "coverage"}},
             "versions": versions(), "device": str(dev_)}
    model_dir.save(out_dir, model, saved, vocabs, metrics=metrics, log=log_path)
    atomic.remove_dir(ckpt)
    say(f"best epoch {best_epoch}: dev F1 {metrics['dev']['f1']:.4f}, "
        f"test F1 {metrics['test']['f1']:.4f}; saved to {out_dir}/")
    return metrics
