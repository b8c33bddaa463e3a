"""``adelabel train``: the one training loop every architecture goes through.

A run keeps a checkpoint folder beside its model folder (``models/bilstm.checkpoint/``) while it
trains: the run's config, the epoch log, and after every epoch the weights, the optimiser, the random
states, the best weights so far and the early-stopping counters. ``adelabel train --resume`` carries
a killed run on from its last finished epoch and ends with the weights an uninterrupted run would
have. The model folder itself is written once, complete, at the end (adelabel/atomic.py).
"""
from __future__ import annotations

import gc
import hashlib
import io
import json
import math
import os
import pickle
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

import numpy as np
import torch

from adelabel import atomic, distributed, model_dir
from adelabel.config import Config, validate_saved
from adelabel.corpus import Sentence
from adelabel.data import Example, bucketed
from adelabel.embeddings import read_vectors
from adelabel.errors import AdelabelError, InputError, OptionError
from adelabel.precision import autocast, check_precision, grad_scaler
from adelabel.progress import Progress as Bar, duration
from adelabel.prepare import MANIFEST, VECTORS, check_listed, read_manifest, read_split
from adelabel.tagger import pick_device
from adelabel.tasks import TASKS
from adelabel.text import tokenize
from adelabel.versions import versions
from adelabel.vocab import UNK, Vocab, Vocabs, normalize

RUN, STATE, SUMS = "run.json", "state.pt", "state.sha256"


def checkpoint_dir(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    if not out_dir.name:  # ".", "..", "/": the folder's own name, where it has one
        out_dir = out_dir.resolve()
    if not out_dir.name:
        raise OptionError(f"{out_dir}: names no model folder (the file system's root)")
    return out_dir.with_name(out_dir.name + ".checkpoint")


def check_no_checkpoint(out_dir: str | Path) -> None:
    """Refuse a new run into ``out_dir`` while the checkpoint folder beside it holds something: a
    killed run's (to carry on with --resume), or files adelabel did not write."""
    ckpt = checkpoint_dir(out_dir)
    if (ckpt / RUN).is_file():
        if _running(ckpt):
            raise AdelabelError(f"{ckpt}: another `adelabel train` is running into {out_dir} now; let it finish, or "
                                "give another --out")
        raise AdelabelError(f"{ckpt}: a checkpoint of an unfinished run is here; continue it with "
                            f"`adelabel train --resume {out_dir}`, or delete the folder to start afresh")
    if ckpt.exists() or ckpt.is_symlink():
        raise AdelabelError(f"{ckpt}: is in the way of this run's checkpoint and holds none adelabel wrote (no "
                            f"{RUN}); move it, or give another --out")


def _running(ckpt: Path) -> bool:
    """Whether a live run holds the checkpoint (its lock on the run file, :func:`_owned`)."""
    if fcntl is None:
        return False
    try:
        with open(ckpt / RUN, "rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: a resume taking it meanwhile is not refused
    except BlockingIOError:
        return True
    except OSError:
        pass  # gone meanwhile, or a file system without locks: nothing tells
    return False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_vocab(words: Sequence[str], vectors: np.ndarray, train: Sequence[Sentence],
                seed: int, scale_rows: int | None = None) -> tuple[Vocabs, torch.Tensor]:
    """Word vocabulary = words with vectors + training words without; rows without a vector start
    random. Character vocabulary = characters of the training text.

    The random rows are scaled like the pretrained ones (the first ``scale_rows``: those after them
    may hold zeros for a vectors file's part) so neither dominates at the start.
    """
    train_words = Counter(normalize(s.text[a:b]) for s in train for a, b in tokenize(s.text))
    vocab = Vocab.for_words(list(words) + sorted(train_words))
    chars = Vocab.for_words(sorted({c for s in train for c in s.text if not c.isspace()}))
    dim = vectors.shape[1]
    std = float(vectors[:scale_rows].std()) if vectors[:scale_rows].size else 0.1
    gen = torch.Generator().manual_seed(seed)
    matrix = torch.randn(len(vocab), dim, generator=gen) * std
    matrix[0] = 0.0  # padding
    known = torch.tensor([vocab[w] for w in words], dtype=torch.long)
    if len(known):
        matrix[known] = torch.from_numpy(vectors)
    return Vocabs(vocab, chars), matrix


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A generator fixed by the run's seed, the epoch and a stream number.

    Each epoch's draws start afresh from (seed, epoch): a resumed run needs no generator state, and
    under torchrun every rank draws the same sample and batch order (stream 0) while each rank's word
    dropout has its own stream.
    """
    return torch.Generator().manual_seed((seed * 100_003 + epoch) * 1_009 + stream)


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


def run_epoch(loss_of: torch.nn.Module, model, optimizer, scaler: torch.amp.GradScaler, batches: list,
              cfg: Config, dropout_gen: torch.Generator, unk: int, device: torch.device,
              progress: Callable[[int, int], None]) -> float:
    """One pass over ``batches``; returns the mean batch loss (NaN or infinite when the run diverged).
    ``loss_of(batch)`` is ``model``'s loss (under torchrun through DistributedDataParallel, which
    averages gradients over ranks)."""
    hp = cfg.train
    model.train()
    total, counted = 0.0, 0
    for n, batch in enumerate(batches, start=1):
        batch = batch.to(device)
        if hp.word_dropout > 0:
            drop = (torch.rand(batch.words.shape, generator=dropout_gen) < hp.word_dropout).to(device) & batch.mask
            batch.words = batch.words.masked_fill(drop, unk)
        with autocast(device, hp.precision):
            loss = loss_of(batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp.clip_norm)
        scaler.step(optimizer)
        scaler.update()
        value = loss.item()
        # Under fp16 the scaler skips a step whose gradients overflowed and lowers its scale (a loss
        # that overflowed gives such gradients): a non-finite loss is left out of the epoch's mean
        # then, and only an epoch of nothing else is divergence.
        if math.isfinite(value) or not scaler.is_enabled():
            total += value
            counted += 1
        progress(n, len(batches))
    if not batches:
        return 0.0
    return total / counted if counted else float("nan")


class Diverged(AdelabelError):
    """The loss became NaN or infinite before any epoch could be kept (judged on every rank's loss)."""

    every_rank = True


# Dropout masks (and seq2seq's scheduled sampling) draw from torch's global generator; its state is
# checkpointed so a resumed run goes on exactly as an uninterrupted one (on a CPU; a GPU's atomic adds
# make even two uninterrupted runs there part).
def _random_states(device: torch.device) -> dict:
    states = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def _restore_random_states(states: dict, device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


def start_run(config: Config, data_dir: str | Path, out_dir: str | Path, device: str,
              teacher: Sequence[str] = ()) -> Path:
    """Create the checkpoint folder of a new run; refuse to overwrite one a killed run left."""
    check_no_checkpoint(out_dir)
    ckpt = checkpoint_dir(out_dir)
    # Absolute paths: a run may be resumed from another working directory.
    # The data's checksums too: a run resumes only on the data it started with.
    run = {"config": config.to_dict(), "data": str(Path(data_dir).resolve()), "out": str(Path(out_dir).resolve()),
           "device": device, "data_files": read_manifest(data_dir).get("files", {}), "teacher": list(teacher),
           "teacher_files": _teacher_files(teacher), "versions": versions()}
    try:
        # Exclusive: of two runs started into one --out at once, one trains; the other would replace its
        # checkpoint, and a resume could then mix the two runs' files.
        with atomic.atomic_dir(ckpt, atomic.json_with(RUN, "config", "data"), exclusive=True) as tmp:
            (tmp / RUN).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
            (tmp / model_dir.LOG).touch()
    except atomic.Taken:
        raise AdelabelError(f"{ckpt}: another `adelabel train` into {out_dir} started just now; let it finish, "
                            "or give another --out") from None
    return ckpt


def _run_file(ckpt: Path) -> dict:
    """The run file of a checkpoint already read and checked by :func:`read_run` (or just written)."""
    try:
        run = json.loads((ckpt / RUN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return run if isinstance(run, dict) else {}


def _versions_moved(started) -> str:
    """What of the versions a run started under (its run file's) differs now (``torch 2.13.0 -> 2.14.0``),
    or ''. A run file from before versions were recorded in it says nothing."""
    now = versions()
    if not isinstance(started, dict):
        return ""
    return ", ".join(f"{k} {started.get(k, 'unrecorded')} -> {now.get(k, 'none')}"
                     for k in sorted(set(started) | set(now)) if started.get(k) != now.get(k))


def read_run(path: str | Path) -> tuple[Path, dict]:
    """The checkpoint folder ``path`` names (itself, or the one beside a model folder) and its run."""
    path = Path(path)
    ckpt = path if (path / RUN).is_file() else checkpoint_dir(path)
    if not (ckpt / RUN).is_file():
        # A whole model folder and no checkpoint: its run finished (a kill that came after it was saved
        # says killed), or a new run into it was killed before its first checkpoint. Which, nothing here
        # tells, so no resume claims success.
        whole = path.is_dir() and atomic.is_model_dir(path)
        raise InputError(path, "no checkpoint of an unfinished run here (nothing to resume)" + (
            "; it holds a whole model: a run that finished, or one stopped before it saved a checkpoint, "
            "which trains again from the start" if whole else ""))
    try:
        run = json.loads((ckpt / RUN).read_text(encoding="utf-8"))
        if not isinstance(run, dict) or not isinstance(run.get("config"), dict) or not all(
                isinstance(run.get(k), str) for k in ("data", "out", "device")):
            raise ValueError("expected config, data, out and device")
        run["config"] = validate_saved(run["config"], str(ckpt / RUN))
        run.setdefault("teacher", [])
        if not isinstance(run["teacher"], list) or not all(isinstance(t, str) for t in run["teacher"]):
            raise ValueError("teacher: expected a list of folders")
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise InputError(ckpt / RUN, f"corrupt run file ({err})") from None
    if ckpt.resolve() != checkpoint_dir(run["out"]).resolve():
        # Moved since (to another disk or machine, say): the run carries on where its checkpoint is now,
        # saving its model beside it, not at the place it left, where another run may be.
        if not ckpt.name.endswith(".checkpoint") or ckpt.name == ".checkpoint":
            raise InputError(ckpt, "a moved checkpoint keeps its name, MODEL.checkpoint (the model is saved "
                                   "beside it as MODEL); rename it back")
        run["out"] = str(ckpt.resolve().with_name(ckpt.name.removesuffix(".checkpoint")))
    gone = [t for t in run["teacher"] if not Path(t).is_dir()]
    if gone:
        raise InputError(gone[0], "model folder not found: the teacher this run started with")
    if _teacher_files(run["teacher"]) != run.get("teacher_files", {}):
        raise InputError(ckpt / RUN, "the teacher's model folder changed since the run started; the run can "
                                     "only resume with the teacher it started with")
    if read_manifest(run["data"]).get("files", {}) != run.get("data_files", {}):
        raise InputError(Path(run["data"]) / MANIFEST, "the data folder changed since the run started; "
                                                       "the run can only resume on the data it started with")
    return ckpt, run


def _teacher_files(teacher: Sequence[str]) -> dict[str, str]:
    """Each teacher folder's manifest checksum (which covers its weights), or "" where it has none."""
    return {t: atomic.sha256(Path(t) / model_dir.MANIFEST) if (Path(t) / model_dir.MANIFEST).is_file() else ""
            for t in teacher}


@dataclass
class RunState:
    """Where a run stands after an epoch: what early stopping and the learning-rate schedule need,
    and what a checkpoint saves."""

    epoch: int = 0
    best_f1: float = -1.0
    best_epoch: int = 0
    stale: int = 0  # epochs since dev F1 last rose
    best_state: dict | None = None
    records: list = field(default_factory=list)


@dataclass
class Setup:
    task: object
    vocabs: Vocabs
    matrix: torch.Tensor
    manifest: dict
    examples: dict[str, list[Example]]
    from_vectors: torch.Tensor  # per vocabulary row: whether its start came from a word vector


def _freeze_vector_rows(model: torch.nn.Module, from_vectors: torch.Tensor) -> int:
    """``model.freeze_embeddings``: the rows that came from a vector stay as they are, and <unk> and the
    training words without one learn, as they would unfrozen (fixed, they would stay random). Returns
    the number of weights so fixed."""
    from adelabel.models.recurrent import WordEncoder

    learns = (~from_vectors).to(torch.float32).unsqueeze(1)
    frozen = 0
    for module in model.modules():
        if isinstance(module, WordEncoder):
            module.embedding.weight.requires_grad_(True)
            # A row whose gradient is always 0 is never moved by Adam (its moments stay 0).
            module.embedding.weight.register_hook(lambda grad: grad * learns)
            frozen += int(from_vectors.sum()) * module.embedding.weight.shape[1]
    return frozen


def load_data(config: Config, data_dir: str | Path) -> Setup:
    """The prepared splits encoded for ``config.task``, with the vocabulary and its embedding matrix."""
    manifest = read_manifest(data_dir)
    splits = {name: read_split(data_dir, name) for name in ("train", "dev", "test")}
    if config.task == "tag" and config.train.dose_copies > 0:
        from adelabel.augment import dose_copies

        dose = "DOSE" if "DOSE" in manifest.get("labels", []) else None
        splits["train"] = splits["train"] + dose_copies(splits["train"], config.train.dose_copies, config.seed, dose)
    task = TASKS[config.task](manifest, splits, data_dir)
    check_listed(data_dir, Path(data_dir) / VECTORS)  # the vocabulary and the model's rows come from it
    words, vectors = read_vectors(Path(data_dir) / VECTORS)
    # Words a vectors file lacked, given the encoder's part alone, come last: they are no file vector.
    with_file_vector = words[:len(words) - manifest["vectors"].get("encoder_only", 0)]
    vocabs, matrix = build_vocab(words, vectors, splits["train"], config.seed, scale_rows=len(with_file_vector))
    examples = {name: task.encode(sents, vocabs) for name, sents in splits.items()}
    from_vectors = torch.zeros(len(vocabs.words), dtype=torch.bool)
    from_vectors[[vocabs.words[w] for w in with_file_vector]] = True
    return Setup(task, vocabs, matrix, manifest, examples, from_vectors)


def _heads_the_data_can_train(config: Config, train: Sequence, out_dir, resume: bool,
                              say: Callable[[str], None]) -> Config:
    """``config`` without the heads its training split cannot teach: a relation head where no pair is
    related (CoNLL carries no relations; trained on unrelated pairs only, it would relate nothing, and
    the rule that a reported sentence needs a pair would hide every entity of a corpus with a DRUG
    type), a gate where every sentence holds an entity (shown nothing to reject, it would pass all). A
    resumed run keeps what its checkpoint was built with."""
    heads = [k for k in ("relations", "gate") if getattr(config.model, k, False)]
    if not heads:
        return config
    if resume:
        built = read_run(out_dir)[1]["config"].model
        drop = {k: False for k in heads if not getattr(built, k, True)}
    else:
        drop = {}
        if "relations" in heads and not any(any(e.pair_gold or ()) for e in train):
            drop["relations"] = False
            say("the training split relates no pairs: no relation head (model.relations = false)")
        if "gate" in heads and all(any(e.tags) for e in train if e.words):
            drop["gate"] = False
            say("every sentence of the training split holds an entity: no sentence gate (model.gate = false)")
    return config.model_copy(update={"model": config.model.model_copy(update=drop)}) if drop else config


def train(config: Config, data_dir: str | Path, out_dir: str | Path, device: str = "auto",
          log: Callable[[str], None] | None = print, resume: bool = False,
          on_epoch: Callable[[int, float], None] | None = None, teacher: Sequence[str | Path] = (),
          score_test: bool = True, warn: Callable[[str], None] | None = None, notes: Sequence[str] = ()) -> dict:
    """Train ``config.arch`` for ``config.task`` on a prepared data folder; save the best model (by dev
    F1: entity micro-F1 for a tagger, the positive class's or the macro F1 for a classifier) to
    ``out_dir`` and return its metrics. ``resume`` carries on the run whose checkpoint is beside
    ``out_dir``. ``log=None`` trains without a word of progress (warnings still go to stderr).
    ``on_epoch(epoch, dev_f1)`` is called after each epoch is checkpointed (``tune`` reports to its
    pruner there; an exception it raises ends the run).
    ``teacher``: model folders (one, or several as an ensemble) whose probabilities the model learns
    beside the gold labels, weighted by ``train.distil`` (adelabel/teacher.py). Under torchrun, each
    process trains on its share of the batches (adelabel/distributed.py). ``score_test=False`` (a tune
    trial, chosen on dev) leaves the test split unread, and says nothing of a saved model that learnt
    nothing (the trial's score says it). ``warn``: where warnings go (default: ``log``, else stderr,
    for they are worth a line where progress is silenced); cv names the fold in them. ``notes``: the
    command's own warnings, said there once the data and settings are read."""
    w = distributed.world()
    say = (log or (lambda _: None)) if w.main else (lambda _: None)
    # Warnings are worth a line even where progress is silenced (--quiet, cv's and tune's runs).
    warn = (warn or log or (lambda message: print(message, file=sys.stderr, flush=True))) if w.main else (lambda _: None)
    hp, seed = config.train, config.seed
    dev_ = pick_device(device)
    check_precision(hp.precision, dev_, "train.precision")
    seed_everything(seed)
    data = load_data(config, data_dir)
    task, examples, unk = data.task, data.examples, data.vocabs.words[UNK]
    held = sum(task.negatives["train"])
    if hp.negative_fraction == 0 and held:
        # The gate would learn to pass every sentence, a classifier would never meet its NEG class.
        raise AdelabelError(f"train.negative_fraction: 0 never shows the training split's {held:,} sentences "
                            "without entities; prepare the data with --no-negatives to leave them out")
    # Settings this data or task gives nothing to act on: said, since the saved config records them.
    defaults = type(hp).model_fields
    if not held and hp.negative_fraction != defaults["negative_fraction"].default:
        notes = [*notes, f"warning: train.negative_fraction = {hp.negative_fraction} changes nothing: the training "
                         "split holds no sentence without entities (labelled text has none)"]
    if config.task != "tag" and hp.dose_copies:
        notes = [*notes, f"warning: train.dose_copies = {hp.dose_copies} changes nothing: doses are written into a "
                         "tagger's training sentences, and this trains a classifier"]
    for note in notes:  # the command's warnings, once the data and settings passed: an error stays one line
        warn(note)
    if not resume and Path(out_dir).is_dir() and any(Path(out_dir).iterdir()):
        # Said once the data is read, while there is time to stop: tag and evaluate use models/bilstm.
        # A warning, not progress: a script's -q run replaces a model too.
        warn(f"warning: {out_dir} holds a model; this run replaces it when it finishes (--out chooses another folder)")
    # Joined after the checks every rank meets alike (the data, the settings), which rank 0 alone then
    # reports; past joining each rank speaks for itself.
    dev_ = distributed.start(w, dev_)
    config = _heads_the_data_can_train(config, examples["train"], out_dir, resume, say)
    sizes = {"vocab_size": len(data.vocabs.words), "char_vocab_size": len(data.vocabs.chars),
             "embedding_dim": data.matrix.shape[1]}
    _check_fits(task, config, sizes, dev_)  # before a teacher's pass, which would be lost
    teacher = _teachers(teacher, out_dir, resume)
    if teacher:
        # Loading the teacher builds modules, which draws from torch's generator: the student starts
        # from the weights it would have had without one.
        with torch.random.fork_rng(devices=[dev_] if dev_.type == "cuda" else []):
            _teach(config, data, data_dir, teacher, dev_, say, quiet=log is None or not w.main)
    model = task.build(config, **sizes, vectors=data.matrix).to(dev_)
    asked = getattr(config.model, "window", None)
    if "window" in config.model.model_fields_set and getattr(model, "window", asked) < asked and not resume:
        # The encoder has position embeddings for so many sub-tokens; the setting stays as given. (The
        # default, set by nobody, is cut to a small encoder's length without a word.)
        warn(f"warning: model.window = {asked} is more than the encoder has positions for: it reads windows of "
             f"{model.window} sub-tokens, {model.stride} shared")
    frozen = 0
    if getattr(config.model, "freeze_embeddings", False):
        frozen = _freeze_vector_rows(model, data.from_vectors.to(dev_))
    # The fused kernel updates the 3M-entry embedding table in one pass instead of a dozen (about 5x
    # faster on the CPU: a fifth of the training time otherwise).
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=hp.lr, fused=True)
    scaler = grad_scaler(dev_, hp.precision)
    if resume:
        ckpt = checkpoint_dir(out_dir)
    else:
        ckpt = distributed.on_main(w, lambda: start_run(config, data_dir, out_dir, device, teacher)) \
            or checkpoint_dir(out_dir)
    with ExitStack() as held:
        distributed.on_main(w, lambda: held.enter_context(_owned(ckpt, True)))
        run = load_checkpoint(ckpt, model, optimizer, scaler, dev_, w) if resume else RunState()
        if resume:
            best = (f"best dev F1 {run.best_f1:.4f} at epoch {run.best_epoch}" if run.best_epoch
                    else "no epoch scored yet")  # not "best dev F1 -1.0000 at epoch 0"
            say(f"resuming {config.arch} from {ckpt} after epoch {run.epoch} ({best})")
            moved = _versions_moved(_run_file(ckpt).get("versions"))
            if moved:
                # Not refused (an upgrade between a kill and its resume is the user's to make), but said,
                # and recorded beside the model: its epochs before and after ran different code.
                warn(f"warning: this run started under other versions ({moved}); its epochs from here on run "
                     "under these, and the model folder's config.json records both")
            before = next((r.get("processes") for r in reversed(run.records) if isinstance(r, dict)), None)
            if isinstance(before, int) and before != w.size:
                # Allowed (a GPU machine's run carried on elsewhere), but each step now averages another
                # number of batches, so the rest of the run learns with another effective batch size.
                warn(f"warning: this run's epochs so far ran as {before} process{'es' * (before > 1)}, these run as "
                     f"{w.size}: each step now averages {w.size} batch{'es' * (w.size > 1)} rather than {before} "
                     "(train_log.jsonl records each epoch's)")
        model.distil = hp.distil if teacher else 0.0
        loss_of = distributed.wrap(model, w, dev_)
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad) - frozen
        say(f"training {config.arch} ({config.task}) on {len(examples['train']):,} sentences ({dev_.type}"
            f"{f' x {w.size} processes' if w.size > 1 else ''}, {hp.precision}), {n_params:,} trainable "
            f"parameters; checkpoints in {ckpt}/")
        if task.dev_blind:
            warn(f"warning: {task.dev_blind}, so dev F1 is 0 whatever the model: the first epoch will be kept and "
                 "nothing is tuned on dev; prepare the data with another --seed, or from more documents")
        lr = optimizer.param_groups[0]["lr"]
        spent, epochs_here = 0.0, 0  # for the time left: this process's epochs, dev scoring included
        while run.epoch < hp.max_epochs and run.stale < hp.patience:
            run.epoch += 1
            epochs_here += 1
            started = time.perf_counter()
            gen = epoch_generator(seed, run.epoch)
            sample = epoch_sample(examples["train"], task.negatives["train"], hp.negative_fraction, gen)
            batches = [b for _, b in bucketed(sample, hp.batch_size, shuffle=True, generator=gen)]
            mine = distributed.shard(batches, w)
            with Bar(len(mine), f"epoch {run.epoch}", "batch", quiet=log is None or not w.main or not sys.stderr.isatty()) as bar:
                loss = run_epoch(loss_of, model, optimizer, scaler, mine, config,
                                 epoch_generator(seed, run.epoch, stream=1 + w.rank), unk, dev_, lambda n, total: bar.update())
            seconds = time.perf_counter() - started
            # The mean over ranks (each trained on as many batches), the same on every rank: a NaN on any
            # one rank has reached every rank's weights through the averaged gradients, and every rank stops.
            losses = distributed.gather(loss, w)
            loss = sum(losses) / len(losses)
            if not math.isfinite(loss):
                # The weights are NaN or infinite from here on, and every later epoch's would be too: the run
                # stops, keeping the best epoch before it if there was one.
                if run.best_state is None:
                    if w.main:
                        atomic.remove_dir(ckpt)  # a resumed run would diverge again
                    raise Diverged(f"train: the loss became {loss} in epoch {run.epoch} (train.lr = {hp.lr}); the run "
                                   "diverged before any epoch scored on dev, and no model is saved: train again with "
                                   "a lower train.lr")
                warn(f"epoch {run.epoch:>3}  loss {loss}: the run diverged; stopping with the best epoch, "
                     f"{run.best_epoch} (a lower train.lr may train further)")
                run.epoch -= 1  # this epoch's weights are not kept, nor counted
                break
            with autocast(dev_, hp.precision):
                # Tuning has predicted dev with these weights: scoring reuses it rather than predicting again.
                tuned = task.tune(model, examples["dev"], "dev", hp.eval_batch_size, dev_)
                dev = task.evaluate(model, examples["dev"], "dev", hp.eval_batch_size, dev_, tuned=tuned)
            f1 = distributed.agree(dev["f1"], w)
            trained_at = lr
            improved = f1 > run.best_f1
            if improved:
                run.best_f1, run.best_epoch, run.stale = f1, run.epoch, 0
                run.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                # A dev F1 that stopped rising usually means steps too large to settle into a minimum; one
                # no better than a constant answer (0 for a tagger, every text positive for a classifier) means
                # a model that has learnt nothing yet, which smaller steps would only slow: on 242 texts a
                # classifier's rate halved from its first epoch's every-text-positive F1 down to 6e-8.
                run.stale, lr = run.stale + 1, lr * (hp.lr_decay if run.best_f1 > task.floor else 1.0)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            fields, summary = task.record(dev)
            run.records.append({"epoch": run.epoch, "loss": loss, "dev_f1": f1, **fields, "seconds": seconds,
                                "sentences_per_second": len(sample) / seconds, "lr": trained_at,
                                # a resumed run may go on elsewhere: each epoch says where it ran
                                "device": str(dev_), "processes": w.size})
            # Each rank's own generator state (they drew different dropout masks): a resumed run restores
            # each rank's, so that it goes on as the uninterrupted run would.
            states = distributed.gather(_random_states(dev_), w)
            distributed.on_main(w, lambda: save_checkpoint(ckpt, run, model, optimizer, scaler, states))
            spent += time.perf_counter() - started
            left = spent / epochs_here * (hp.max_epochs - run.epoch) if run.stale < hp.patience else 0.0
            say(f"epoch {run.epoch:>3}  loss {loss:.4f}  {summary}  {len(sample) / seconds:,.0f} sent/s  "
                f"{seconds:.1f}s" + ("  *" if improved else "") + (f"  (at most {duration(left)} left)" if left else ""))
            if on_epoch is not None:
                on_epoch(run.epoch, f1)
        if run.stale >= hp.patience:
            say(f"no better dev F1 for {run.stale} epochs; stopped")
        # DDP holds the process group that finish destroys: left alive, it outlived the group and aborted
        # the process at the exit ("terminate called without an active exception"; 6 of 15 runs of a
        # small two-process DDP script, none when it was freed). Its cycles need a collection to go.
        del loss_of
        gc.collect()
        return finish(config, data, model, run, data_dir, out_dir, ckpt, dev_, w, say, warn, teacher, score_test)


@contextmanager
def _owned(ckpt: Path, main: bool) -> Iterator[None]:
    """This process's hold on a run's checkpoint while it trains: a second `train --resume` of it (in
    another terminal, a scheduler's retry) would write the same state and sums, and a kill could then
    leave neither resumable. An exclusive lock on its run file, which the system drops with the process."""
    if not main or fcntl is None:  # ranks past the first never write it; no fcntl on Windows
        yield
        return
    finished = InputError(ckpt, "no checkpoint of an unfinished run here (nothing to resume): the run "
                                "finished just now")
    try:
        fh = open(ckpt / RUN, "rb")
    except FileNotFoundError:
        raise finished from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AdelabelError(f"{ckpt}: another `adelabel train` is running this checkpoint; let it finish, or "
                                "stop it before carrying the run on") from None
        except OSError:
            pass  # a file system without locks (Lustre, some NFS mounts): the run trains unguarded
        try:  # held: but the run that held it before may have finished and removed the folder meanwhile
            same = os.path.samestat(os.fstat(fh.fileno()), os.stat(ckpt / RUN))
        except FileNotFoundError:
            same = False
        if not same:
            raise finished
        yield


def _teachers(teacher: Sequence[str | Path], out_dir, resume: bool) -> list[str]:
    """The teacher folders of this run: as given, or for a resumed run those it started with (which
    must be unchanged, :func:`read_run`)."""
    given = [str(Path(t).resolve()) for t in teacher]
    if not resume:
        return given
    ckpt, run = read_run(out_dir)
    if given and given != run["teacher"]:
        raise AdelabelError(f"{ckpt}: the run started with teacher {run['teacher'] or 'none'}, not {given}")
    return run["teacher"]


def _teach(config: Config, data: Setup, data_dir, teacher: list[str], device: torch.device,
           say: Callable[[str], None], quiet: bool) -> None:
    """The teacher's probabilities on the training sentences, attached to their examples."""
    from adelabel.teacher import check_task, load_teacher, teach

    check_task(config.task)
    loaded = load_teacher(teacher, data.manifest, data.task.tags, device)
    sentences = read_split(data_dir, "train")
    started = time.perf_counter()
    with Bar(len(sentences), "teacher", "sentence", quiet=quiet) as bar:
        teach(loaded, sentences, data.examples["train"], device, bar.update)
    del loaded
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the teacher's memory goes back before the student trains
    say(f"teacher ({', '.join(teacher)}) read {len(sentences):,} training sentences in "
        f"{duration(time.perf_counter() - started)}; its weight in the loss (train.distil): {config.train.distil}")


def save_checkpoint(ckpt: Path, run: RunState, model, optimizer, scaler, states: list[dict]) -> None:
    """The state after an epoch; ``states``: each rank's random generators (:func:`_random_states`)."""
    buffer = io.BytesIO()
    try:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                    "best": run.best_state, "random": states[0], "random_ranks": states, "epoch": run.epoch,
                    "best_f1": run.best_f1, "best_epoch": run.best_epoch, "stale": run.stale,
                    "records": run.records}, buffer)
        data = buffer.getbuffer()
        # Bytes damaged on disk load as weights all the same (torch checks no sum): the state's SHA-256 is
        # recorded beside that of the state on disk, ahead of the new state itself, so a kill between the
        # two writes leaves a state whose sum is listed either way.
        old = [atomic.sha256(ckpt / STATE)] if (ckpt / STATE).is_file() else []
        sums = [*old, hashlib.sha256(data).hexdigest()]
        atomic.write_text(ckpt / SUMS, json.dumps(sums) + "\n")
        with atomic.atomic_file(ckpt / STATE, "wb") as fh:
            fh.write(data)
    except (RuntimeError, OSError) as err:  # a full disk: torch reports a failed write as a RuntimeError
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0][:200]
        raise AdelabelError(f"{ckpt / STATE}: cannot write ({reason}); the checkpoint of the epoch before is "
                            "kept: free space and carry on with --resume") from None
    write_log(ckpt, run)


def write_log(ckpt: Path, run: RunState) -> None:
    """The epoch log, written whole from the run's records: a kill mid-write never leaves a torn line,
    the epochs of a resumed run follow those before it, and a kill between the state and the log
    costs the log nothing (the model folder's is written from the state's records too)."""
    atomic.write_text(ckpt / model_dir.LOG, "".join(json.dumps(r) + "\n" for r in run.records))


def _recorded_sums(ckpt: Path) -> list[str]:
    """The SHA-256 sums a checkpoint's state may have."""
    try:
        sums = json.loads((ckpt / SUMS).read_text(encoding="utf-8"))
    except FileNotFoundError:  # written before every state: a state without it cannot be proved sound
        raise InputError(ckpt / SUMS, "missing: the checkpoint's state cannot be checked, so it is taken for "
                                      "damaged; delete the folder to start afresh") from None
    except (OSError, ValueError) as err:
        raise InputError(ckpt / SUMS, f"corrupt checksum file ({err}); the checkpoint is damaged") from None
    if not isinstance(sums, list) or not all(isinstance(x, str) for x in sums):
        raise InputError(ckpt / SUMS, "corrupt checksum file (expected a list of SHA-256 sums)")
    return sums


def _refuse_a_lost_state(ckpt: Path) -> None:
    """Refuse a checkpoint whose state is gone after an epoch finished: starting over would throw its
    epochs away without a word. Its sums are written before each state, so a kill before the first
    state's rename leaves one sum and no epoch in the log; a second sum, or an epoch logged, means a
    state was there."""
    sums = _recorded_sums(ckpt) if (ckpt / SUMS).exists() else []  # a damaged one is named there
    try:
        log = (ckpt / model_dir.LOG).read_text(encoding="utf-8") if (ckpt / model_dir.LOG).is_file() else ""
    except (OSError, ValueError):
        log = None  # unreadable: damaged as well, named here rather than started over
    logged = sum(bool(line.strip()) for line in (log or "").splitlines())
    if len(sums) > 1 or logged or log is None:
        epochs = f"{logged} finished epoch{'s' * (logged != 1)}" if logged else "a finished epoch"
        raise InputError(ckpt / STATE, f"missing, though the checkpoint records {epochs}: the run cannot carry on "
                                       "from them; delete the folder to start afresh")


def load_checkpoint(ckpt: Path, model, optimizer, scaler, device: torch.device,
                    w: distributed.World | None = None) -> RunState:
    """The state after the last finished epoch (a run killed before its first epoch ended starts anew)."""
    if not (ckpt / STATE).exists():
        _refuse_a_lost_state(ckpt)
        return RunState()
    if not (ckpt / STATE).is_file():  # a folder, say: carrying on from nothing would silently start over
        raise InputError(ckpt / STATE, "not a file; the checkpoint is damaged (delete the folder to start afresh)")
    sums = _recorded_sums(ckpt)
    if atomic.sha256(ckpt / STATE) not in sums:
        raise InputError(ckpt / STATE, "corrupt checkpoint (its SHA-256 is not the one recorded when it was "
                                       "written: the file changed since); delete the folder to start afresh")
    try:
        # On the CPU: the random states must be CPU tensors; the weights move to the device on loading.
        state = torch.load(ckpt / STATE, map_location="cpu", weights_only=True)
        kinds = {"epoch": int, "best_epoch": int, "stale": int, "best_f1": (int, float), "best": dict, "records": list}
        if not isinstance(state, dict) or not all(isinstance(state.get(k), t) for k, t in kinds.items()):
            raise ValueError(f"{', '.join(kinds)}: one is missing or of the wrong type")
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:
            # A sound file of another model (run.json edited, a checkpoint copied in): not "corrupt".
            lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
            raise InputError(ckpt / STATE, "holds the weights of another model than run.json describes ("
                                           f"{lines[0][:200] if lines else err}); delete the folder to start "
                                           "afresh") from None
        try:
            optimizer.load_state_dict(state["optimizer"])
        except ValueError as err:
            if "parameter group" not in str(err):
                raise
            # The state is sound; the weights trained differ (model.freeze_embeddings fixed the whole
            # word table before, it fixes the rows that came from a vector now).
            raise InputError(ckpt / STATE, "its optimizer trained other weights than this version would "
                                           "(a run begun before model.freeze_embeddings changed); carry it on "
                                           "with the adelabel that began it, or delete the folder to start "
                                           "afresh") from None
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        ranks = state.get("random_ranks") or [state["random"]]
        # The same number of processes: each takes its own; else (a one-process run carried on under
        # torchrun, say) each takes rank 0's.
        mine = ranks[w.rank] if w is not None and len(ranks) == w.size else ranks[0]
        _restore_random_states(mine, device)
        return RunState(state["epoch"], state["best_f1"], state["best_epoch"], state["stale"], state["best"],
                        state["records"])
    except (RuntimeError, ValueError, KeyError, TypeError, EOFError, OSError, pickle.UnpicklingError) as err:
        # torch's message for bytes that are no checkpoint runs to many lines of advice that does not apply.
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise InputError(ckpt / STATE, f"corrupt checkpoint ({type(err).__name__}: {first})") from None


TRAINING_COPIES = 4
"""Copies of the weights training holds: the weights, their gradients and Adam's two moments."""


def _check_fits(task, config: Config, sizes: dict, device: torch.device) -> None:
    """Refuse settings whose weights alone would not fit in the memory free to train them: each size
    is within its bounds, but together (model.hidden_size=8192 with model.layers=32: 50 billion
    parameters) they had the system kill the run without a word."""
    if config.arch == "transformer":  # its size is its pretrained encoder's, not the settings'
        return
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # sizes only: no memory, no random draw
        count = sum(p.numel() for p in task.build(config, **sizes, vectors=None).parameters())
    need = count * 4 * TRAINING_COPIES
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    if device.type != "cuda" and local.isdigit():  # torchrun's processes on one machine share its memory
        need *= max(1, int(local))
    free = _free_memory(device)
    if free is not None and need > free:
        raise AdelabelError(f"model settings: {count:,} parameters, about {need / 2**30:.1f} GiB to train (weights, "
                            f"gradients and Adam's two moments), more than the {free / 2**30:.1f} GiB free on "
                            f"{device}; give smaller model sizes (model.hidden_size, model.layers, ...)")


def _free_memory(device: torch.device) -> int | None:
    """Bytes free to allocate on ``device`` (None where it cannot be told)."""
    if device.type == "cuda":  # and what torch's cache holds free (an earlier fold's or trial's blocks)
        return torch.cuda.mem_get_info(device)[0] + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def finish(config: Config, data: Setup, model, run: RunState, data_dir, out_dir, ckpt: Path,
           device: torch.device, w: distributed.World, say: Callable[[str], None],
           warn: Callable[[str], None], teacher: Sequence[str] = (), score_test: bool = True) -> dict:
    """The best epoch's weights, calibrated on dev, scored on dev and test and saved (by rank 0)."""
    hp = config.train
    model.load_state_dict(run.best_state)
    metrics = {"best_epoch": run.best_epoch, "epochs_run": run.epoch}

    def save() -> None:
        with autocast(device, hp.precision):
            data.task.calibrate(model, data.examples["dev"], "dev", hp.eval_batch_size, device)
            for name in ("dev", "test") if score_test else ("dev",):
                metrics[name] = data.task.evaluate(model, data.examples[name], name, hp.eval_batch_size, device)
        manifest = data.manifest
        saved = {**config.to_dict(), **data.task.saved(), "embedding_dim": int(data.matrix.shape[1]),
                 # Resolved, as a resumed run passes it: the same run records the same folder however it went.
                 "data": {"dir": str(Path(data_dir).resolve()), **{k: manifest[k] for k in ("corpus", "seed", "labels", "splits")},
                          "vectors": {k: v for k, v in manifest["vectors"].items() if k != "coverage"}},
                 "versions": versions(), "device": str(device), "processes": w.size,
                 **({"teacher": list(teacher)} if teacher else {})}
        started = _run_file(ckpt).get("versions")
        if _versions_moved(started):
            saved["versions_at_start"] = started
        write_log(ckpt, run)
        model_dir.save(out_dir, model, saved, data.vocabs, metrics=metrics, log=ckpt / model_dir.LOG)
        atomic.remove_dir(ckpt)
        tested = f"test F1 {metrics['test']['f1']:.4f}; " if score_test else ""
        say(f"best epoch {run.best_epoch}: dev F1 {metrics['dev']['f1']:.4f}, {tested}saved to {out_dir}/")
        if not score_test:
            pass  # a tune trial: its folder goes, and the search prints its dev F1
        elif metrics["dev"]["f1"] == 0 and not data.task.dev_blind:
            warn("warning: the saved model scores F1 0 on dev (it finds nothing right yet): more epochs, or another "
                 "train.lr")
        elif 0 < metrics["dev"]["f1"] <= data.task.floor and not data.task.dev_blind:
            warn(f"warning: the saved model scores F1 {metrics['dev']['f1']:.4f} on dev, no better than giving every "
                 "text one class (it has learnt nothing yet): more epochs, a higher train.patience, or another train.lr")

    distributed.on_main(w, save)  # a collective step: every rank is past the save here
    distributed.stop(w)
    return metrics
