"""``adelabel tune``: hyperparameter search with optuna over the ranges the config schema declares.

Each trial draws values for the searched keys (:func:`adelabel.config.search_space`, narrowed or
widened by ``--space``), layers them on the run's config as ``--set`` would, and trains on the
prepared data exactly as ``train`` does. After every epoch the trial reports its dev F1, so a pruner
(hyperband or median) can stop a trial that trails the others. The study lives in an SQLite file
(``--storage sqlite:///PATH``): a killed search carries on from it, and ``optuna-dashboard`` reads it.
The best trial's config is written as a TOML file that ``train --config`` takes.

optuna rather than a search of our own: it has the samplers (TPE, random, grid), the pruners
(successive halving / hyperband, median), resumable storage and the plots.
"""
from __future__ import annotations

import difflib
import itertools
import json
import os
import random
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from adelabel import atomic
from adelabel.config import MAX_SEED, Config, ConfigBuilder, search_space, to_toml
from adelabel.errors import AdelabelError, OptionError, one_of
from adelabel.progress import duration

SAMPLERS = ("tpe", "random", "grid")
STUDY = "adelabel"
"""A storage file holds one study, so one file is one architecture's search."""
PRUNERS = ("hyperband", "median", "none")


def _optuna():
    try:
        import optuna
    except ImportError:
        raise AdelabelError("tune needs optuna: pip install 'adelabel[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def parse_space(arch: str, task: str, assignments: list[str]) -> dict[str, dict]:
    """The schema's search space for ``arch``, with ``--space`` entries laid over it:
    ``key=LOW..HIGH`` (a range; ``log:LOW..HIGH`` samples it on a log scale), ``key=A,B,C`` (choices) or
    ``key=VALUE`` (fixed, searched no more)."""
    space = search_space(arch, task)
    known = ConfigBuilder(arch, task).keys
    for item in assignments:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise OptionError(f"--space {item!r}: expected KEY=LOW..HIGH, KEY=log:LOW..HIGH, KEY=A,B,C or KEY=VALUE")
        if key not in known:
            near = difflib.get_close_matches(key, list(known), n=1)
            raise OptionError(f"--space {key}: unknown key" + (f" (did you mean {near[0]}?)" if near else ""))
        if "." not in key:  # arch and seed: what a study is of, and what it is measured under
            raise OptionError(f"--space {key}: not searched (a study searches model.* and train.* keys; "
                              + ("give --arch instead)" if key == "arch" else "fix it with --set seed=N)"))
        log = raw.startswith("log:")
        if ".." in raw:
            if known[key].annotation not in (int, float):  # pydantic would read 0.06 as a true/false
                raise OptionError(f"--space {key}: not a number, so not a range; give its choices as A,B")
            low, _, high = raw.removeprefix("log:").partition("..")
            try:
                low_value, high_value = float(low), float(high)
            except ValueError:
                raise OptionError(f"--space {key}: expected numbers in LOW..HIGH, got {raw!r}") from None
            if not low_value < high_value:
                raise OptionError(f"--space {key}: the range {raw} is empty (LOW must be below HIGH)")
            if log and low_value <= 0:
                raise OptionError(f"--space {key}: a log range must be above 0, got {raw!r}")
            space[key] = {"low": low_value, "high": high_value, **({"log": True} if log else {})}
        else:
            choices = [c.strip() for c in raw.split(",")]
            if any(not c for c in choices):
                raise OptionError(f"--space {key}: an empty choice in {raw!r}")
            space[key] = {"choices": choices}
    return check_space(arch, task, space)


def _same_once_typed(stored: str, space: dict[str, dict], arch: str, task: str) -> bool:
    try:
        return check_space(arch, task, json.loads(stored)) == space
    except (AdelabelError, ValueError, TypeError, AttributeError):
        return False


def check_space(arch: str, task: str, space: dict[str, dict]) -> dict[str, dict]:
    """Every value of ``space`` must be one the schema takes for ``arch`` (a choice of "abc" for a
    number, a range past a bound, a key it refuses). Returns ``space`` with each choice as the schema
    reads it (``--space model.layers=1,2`` gives 1 and 2, not "1" and "2"), so that the study, its
    dashboard and ``best_params`` hold numbers and true/false."""
    out = {}
    for key, spec in space.items():
        section, _, leaf = key.partition(".")
        read = []
        for value in spec.get("choices", [spec.get("low"), spec.get("high")]):
            try:
                config = ConfigBuilder(arch, task).add({section: {leaf: value}}, f"--space {key}").build()
            except AdelabelError as err:
                raise OptionError(str(err).replace(f"--space {key}: {key}:", f"--space {key}:")) from None
            schema = getattr(getattr(config, section), leaf)
            # optuna holds None, bool, int, float and str; a value of another type keeps its spelling.
            read.append(schema if schema is None or isinstance(schema, (bool, int, float, str)) else value)
        out[key] = {"choices": read} if "choices" in spec else spec
    return out


def _integer(key: str, arch: str, task: str) -> bool:
    section, _, leaf = key.partition(".")
    builder = ConfigBuilder(arch, task)
    cls = builder.family if section == "model" else Config.model_fields["train"].annotation
    return cls.model_fields[leaf].annotation is int


def _suggest(trial, key: str, spec: dict, integer: bool):
    if "choices" in spec:
        return trial.suggest_categorical(key, spec["choices"])
    if integer:
        return trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=spec.get("log", False))
    return trial.suggest_float(key, spec["low"], spec["high"], log=spec.get("log", False))


def _grid(space: dict[str, dict], integer: dict[str, bool]) -> dict[str, list]:
    """A grid sampler's points: the choices, or a range's ends and middle (geometric on a log scale)."""
    grid = {}
    for key, spec in space.items():
        if "choices" in spec:
            grid[key] = list(spec["choices"])
            continue
        low, high = spec["low"], spec["high"]
        middle = (low * high) ** 0.5 if spec.get("log") else (low + high) / 2
        points = [low, middle, high]
        grid[key] = sorted({int(round(p)) for p in points}) if integer[key] else points
    return grid


WORK_PREFIX = "adelabel-tune-"
"""Trials train in ``<tmp>/adelabel-tune-<pid>-XXXX/``, removed when the search ends."""


def _alive(pid: int) -> bool:
    """Whether another process ``pid`` runs on this machine (this process's own pid, reused in a
    container from a killed run's, is not one)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    try:  # killed but not yet reaped by its parent (a driver script's): a zombie runs nothing
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):  # no /proc (macOS): the signal's answer stands
        return True


FAILED_BY = "failed_by"
"""A trial's user attribute: the error that failed it (a trial a kill stopped has none)."""


def _failed(study, trial, err: BaseException) -> None:
    """``trial`` told as failed; one failed by an error (not a kill, not Ctrl-C) is marked so that the
    search carried on draws past its settings, where a killed trial's are drawn again (the seed)."""
    import optuna

    if isinstance(err, Exception):
        trial.set_user_attr(FAILED_BY, type(err).__name__)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _trial_seed(seed: int, before: int) -> int:
    """The sampler's seed for the trial that has ``before`` trials before it in a study of ``seed``."""
    import numpy as np

    return int(np.random.SeedSequence([seed, before]).generate_state(1)[0]) % (MAX_SEED + 1)


def _sweep_work_folders() -> None:
    """Remove the trial folders of searches whose process is gone (killed: nothing removed them then);
    they hold a trial's weights and optimiser state."""
    for folder in Path(tempfile.gettempdir()).glob(f"{WORK_PREFIX}*-*"):
        pid = folder.name.removeprefix(WORK_PREFIX).partition("-")[0]
        if pid.isdigit() and folder.is_dir() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


PROCESS = "process"
"""A trial's user attribute naming the process that runs it, ``host:pid``."""


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _gone(trial) -> bool:
    """Whether a running trial's process is gone, so that the trial never reports: one of this machine
    whose process is not running, or one an earlier version ran (no process recorded). Another
    machine's, or a live process's (several searches may share a study), may still report."""
    host, _, pid = str(trial.user_attrs.get(PROCESS, "")).rpartition(":")
    if not pid.isdigit():
        return True
    return host == socket.gethostname() and not _alive(int(pid))


def _taken(study, trial, point: dict) -> bool:
    """Whether another trial of the study has tried ``point`` (complete or pruned), or an earlier one
    of a live search is trying it."""
    import optuna

    states = optuna.trial.TrialState
    for other in study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED, states.RUNNING)):
        if other.number == trial.number or {k: other.params.get(k) for k in point} != point:
            continue
        if other.state != states.RUNNING or (other.number < trial.number and not _gone(other)):
            return True
    return False


# A size whose layer a fixed key switches off changes nothing, so it is not searched.
IDLE_WITHOUT = {"model.gate_size": ("model.gate", False), "model.char_size": ("model.chars", "none")}


def searchable(space: dict[str, dict], base: Config, fixed_keys: Sequence[str]) -> dict[str, dict]:
    """``space`` less the keys fixed with ``--set`` and those they make idle (IDLE_WITHOUT)."""
    idle = {key for key, (switch, off) in IDLE_WITHOUT.items()
            if switch in fixed_keys and getattr(base.model, switch.partition(".")[2], None) == off}
    return {k: v for k, v in space.items() if k not in fixed_keys and k not in idle}


def check_precisions(base: Config, space: dict, device: str) -> None:
    """As train checks the precision, but before a study records a thing: fp16 on a CPU would fail
    every trial."""
    from adelabel.precision import check_precision
    from adelabel.tagger import pick_device

    where = pick_device(device)
    for value in space.get("train.precision", {}).get("choices", [base.train.precision]):
        check_precision(value, where, "--space train.precision" if "train.precision" in space else "train.precision")


def checked_space(base: Config, data_dir: str | Path, trials: int, storage: str, sampler: str, pruner: str,
                  space_overrides: list[str] | None, device: str, fixed_keys: Sequence[str] = (),
                  say: Callable[[str], None] = lambda _: None) -> dict:
    """The space a search of ``base`` runs over, once every option of it is checked: the command line
    calls it before it makes the folder a search writes into, so a wrong option leaves nothing behind."""
    from adelabel.prepare import read_manifest

    _optuna()
    if sampler not in SAMPLERS:
        raise OptionError(f"--sampler: expected {one_of(SAMPLERS)}, got {sampler!r}")
    if pruner not in PRUNERS:
        raise OptionError(f"--pruner: expected {one_of(PRUNERS)}, got {pruner!r}")
    if trials < 1:
        raise OptionError(f"--trials: expected at least 1, got {trials}")
    arch, task = base.arch, base.task
    space = searchable(parse_space(arch, task, list(space_overrides or [])), base, fixed_keys)
    manifest = read_manifest(data_dir)
    if not manifest["splits"]["train"].get("negative_sentences", 1) and space.pop("train.negative_fraction", None):
        # Labelled text, or data prepared without ADE-NEG: the share drawn of sentences it lacks changes nothing.
        say("train.negative_fraction is not searched: the training split holds no sentence without entities")
    check_precisions(base, space, device)
    if "://" not in storage:
        raise OptionError(f"--storage {storage}: expected a database URL, e.g. sqlite:///tune/{arch}.db")
    _check_not_another_database(storage)
    return space


def _check_not_another_database(storage: str) -> None:
    """Refuse an SQLite file that holds tables but no optuna study: optuna would add its own beside
    another program's."""
    import sqlite3

    path = Path(storage.removeprefix("sqlite:///")) if storage.startswith("sqlite:///") else None
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = sorted(row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    except sqlite3.Error:
        return  # not a database at all: optuna says so, in its words ("cannot open it as a study")
    if tables and "studies" not in tables:
        shown = ", ".join(tables[:3]) + (", ..." if len(tables) > 3 else "")
        raise OptionError(f"--storage {storage}: a database of something else (tables {shown}), not an optuna "
                          "study; give a new file")


def tune(base: Config, data_dir: str | Path, out: str | Path, trials: int, storage: str, sampler: str = "tpe",
         pruner: str = "hyperband", space_overrides: list[str] | None = None, device: str = "auto",
         report: str | Path | None = None, log: Callable[[str], None] | None = print,
         fixed_keys: Sequence[str] = ()) -> dict:
    """Run (or carry on) a study until it holds ``trials`` finished trials (complete or pruned); write
    the best config to ``out`` (TOML) and return a summary. ``fixed_keys``: keys the base config sets
    that are searched no more (``--set``)."""
    from adelabel.prepare import read_manifest
    from adelabel.train import Diverged, checkpoint_dir, train

    optuna = _optuna()
    say = log or (lambda _: None)
    space = checked_space(base, data_dir, trials, storage, sampler, pruner, space_overrides, device, fixed_keys, say)
    arch, task = base.arch, base.task
    manifest = read_manifest(data_dir)
    pruners = {"hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=base.train.max_epochs),
               "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
               "none": lambda: optuna.pruners.NopPruner()}
    try:  # its sampler is set below, once the space is known
        study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize",
                                    load_if_exists=True, pruner=pruners[pruner]())
    except Exception as err:  # noqa: BLE001 - sqlalchemy's and optuna's many kinds of "cannot open"
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise OptionError(f"--storage {storage}: cannot open it as a study ({first})") from None
    data_key = str(Path(data_dir).resolve())
    data_files = manifest.get("files", {})
    base_values = {**base.to_dict()}
    # What every trial starts from besides the searched keys: a study's best config is written from it,
    # so a study carries on only from the settings its trials trained with.
    settings = json.dumps(base_values, sort_keys=True)
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    # A study none of whose trials finished holds no result its settings must stay comparable with (a
    # search stopped by an error in its first trial): it takes this run's.
    if not study.user_attrs or not study.get_trials(deepcopy=False, states=counted):
        study.set_user_attr("arch", arch)
        study.set_user_attr("task", task)
        study.set_user_attr("data", data_key)
        study.set_user_attr("data_files", data_files)
        study.set_user_attr("space", json.dumps(space, sort_keys=True))
        study.set_user_attr("base", settings)
    elif (study.user_attrs.get("arch"), study.user_attrs.get("task")) != (arch, task):
        raise OptionError(f"--storage {storage}: holds a study of {study.user_attrs.get('task')} "
                          f"{study.user_attrs.get('arch')!r}, not of {task} {arch!r}")
    elif study.user_attrs.get("space") != json.dumps(space, sort_keys=True):
        if space_overrides and _same_once_typed(study.user_attrs["space"], space, arch, task):
            # Begun by a version that kept --space choices as text: optuna refuses a parameter's choices
            # changing, so the study carries on with its own spelling of the same values.
            space = json.loads(study.user_attrs["space"])
        elif space_overrides:
            raise OptionError(f"--storage {storage}: its study searched another space; use a new storage file "
                              "(or the --space it was started with)")
        # Begun by a version whose default space differed: it carries on over its own space, where every
        # value is one this version trains.
        space = json.loads(study.user_attrs["space"])
        try:
            check_space(arch, task, space)
        except OptionError as err:
            raise OptionError(f"--storage {storage}: its study searched a space this version cannot train "
                              f"({str(err).removeprefix('--space ')}); use a new storage file") from None
        say(f"carrying on the study in {storage} over the space it began with: {', '.join(sorted(space))}")
        check_precisions(base, space, device)
    if study.user_attrs.get("data") != data_key:
        raise OptionError(f"--storage {storage}: its study trained on {study.user_attrs.get('data')}, not "
                          f"--data {data_dir}")
    if study.user_attrs.get("data_files", data_files) != data_files:  # scored on other dev splits
        raise OptionError(f"--storage {storage}: --data {data_dir} was prepared again since its study began "
                          "(the files' checksums differ); use a new storage file")
    if "data_files" not in study.user_attrs:  # a study begun before the checksums were recorded
        study.set_user_attr("data_files", data_files)
    if study.user_attrs.get("base", settings) != settings:
        raise OptionError(f"--storage {storage}: its trials trained from other settings (--set, --epochs or "
                          "--config differ from those it started with); use a new storage file")
    fixed = {k: v["choices"][0] for k, v in space.items() if "choices" in v and len(v["choices"]) == 1}
    searched = {k: v for k, v in space.items() if k not in fixed}
    integer = {k: _integer(k, arch, task) for k in searched}
    # The grid's points are put to the study one by one (below): optuna's GridSampler counts a failed
    # or killed trial's point as tried and gives points by trial number, so a carried-on grid search
    # would skip points.
    samplers = {"tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
                "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
                "grid": lambda seed: optuna.samplers.RandomSampler(seed=seed)}
    if "base" not in study.user_attrs:  # a study begun before the settings were recorded
        study.set_user_attr("base", settings)
    # Trials a killed search left running will never report: they failed.
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if _gone(stale):
            study._storage.set_trial_state_values(stale._trial_id, optuna.trial.TrialState.FAIL)
    counted_trials = lambda: study.get_trials(deepcopy=False, states=counted)  # noqa: E731
    finished: Callable[[], list] = counted_trials
    if sampler == "grid":
        grid = _grid(searched, integer)
        points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
        random.Random(base.seed).shuffle(points)
        if trials > len(points):
            say(f"the grid has {len(points)} points: {len(points)} trials, not {trials}")
            trials = len(points)

        def tried() -> list[dict]:
            done = [t.params for t in counted_trials()]
            return [p for p in points if p in done]

        def missing() -> list[dict]:
            """The points no trial has tried, none holds in a live search and none waits with."""
            live = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
            held = [{**t.system_attrs.get("fixed_params", {}), **t.params} for t in study.get_trials(
                deepcopy=False, states=live) if t.state == optuna.trial.TrialState.WAITING or not _gone(t)]
            done = [t.params for t in counted_trials()]
            return [p for p in points if p not in done and p not in held]

        finished = tried  # a grid search counts the points tried, each once
    durations: list[float] = []
    _sweep_work_folders()
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))
    try:
        while (done := len(finished())) < trials:
            number = done + 1
            # ask() takes the oldest waiting trial: one a kill left between these two calls goes first.
            if sampler == "grid" and not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
                todo = missing()
                if not todo:
                    say("every point of the grid is tried, or being tried by another search of this study")
                    break
                study.enqueue_trial(todo[0], skip_if_exists=False)
            # Seeded afresh for each trial, by the study's seed and the trials before it (counted, or live in
            # another search of the study): a search killed and carried on draws the settings the
            # uninterrupted one would (the killed trial's again), and so does a study extended by --trials.
            alive = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                     if not _gone(t)]
            erred = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
                     if FAILED_BY in t.user_attrs]
            study.sampler = samplers[sampler](_trial_seed(base.seed, done + len(alive) + len(erred)))
            trial = study.ask()
            trial.set_user_attr(PROCESS, _this_process())
            values = {}
            # Switches first: a key its switch's value makes idle (char_size with chars = none) is not drawn,
            # so a trial neither reports nor is told apart by a value it never used. A grid keeps every
            # key: its points are whole combinations.
            for k, spec in sorted(searched.items(), key=lambda item: item[0] in IDLE_WITHOUT):
                switch, off = IDLE_WITHOUT.get(k, (None, None))
                if sampler != "grid" and switch in values and values[switch] == off:
                    continue
                values[k] = _suggest(trial, k, spec, integer[k])
            values.update(fixed)
            try:
                config = _config(base_values, values, arch, task)
            except BaseException as err:
                _failed(study, trial, err)
                raise
            if sampler == "grid" and _taken(study, trial, {k: values[k] for k in searched}):
                # Two searches of one study can enqueue the same point at once: the later trial gives way.
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                say(f"study trial #{trial.number}: its grid point is tried by another search; taking another")
                continue
            shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
            left = f"; about {duration(sum(durations) / len(durations) * (trials - number + 1))} left" \
                if durations else ""
            # The study's own number (from 0, what optuna-dashboard and the best-trial line show) beside
            # this search's count, which a carried-on search continues.
            say(f"trial {number}/{trials} (study trial #{trial.number}): {shown}{left}")
            started = time.perf_counter()
            model = work / f"trial-{trial.number}"

            def report_epoch(epoch: int, f1: float) -> None:
                trial.report(f1, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            epoch_log = (lambda line: say(f"  trial {number}/{trials} {line}")) if log is not None else None
            try:
                # Not scored on test: a search picks by dev, and a test F1 beside each trial invites picking by it.
                metrics = train(config, data_dir, model, device=device, log=epoch_log, on_epoch=report_epoch,
                                score_test=False)
            except optuna.TrialPruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                say(f"trial {number}/{trials}: pruned")
            except Diverged:  # settings this search may draw (a learning rate too high): a trial that lost
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                say(f"trial {number}/{trials}: diverged (its loss became NaN before any epoch was kept)")
            except BaseException as err:
                _failed(study, trial, err)
                raise
            else:
                study.tell(trial, metrics["dev"]["f1"])
                say(f"trial {number}/{trials}: dev F1 {metrics['dev']['f1']:.4f} (best {study.best_value:.4f})")
            finally:
                shutil.rmtree(model, ignore_errors=True)
                shutil.rmtree(checkpoint_dir(model), ignore_errors=True)
            durations.append(time.perf_counter() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise AdelabelError(f"--storage {storage}: no trial of the study finished unpruned; run more --trials")
    best = study.best_trial
    best_config = _config(base_values, {**fixed, **best.params}, arch, task)
    atomic.write_text(Path(out), f"# adelabel tune: study trial #{best.number} of {study.study_name}, dev F1 "
                                 f"{best.value:.4f}\n" + to_toml(best_config))
    if report is not None:
        write_report(study, Path(report), say)
    return {"study": study.study_name, "trials": len(study.trials), "complete": len(complete),
            "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
            "best_trial": best.number, "best_value": best.value,
            # values fixed with --space KEY=VALUE belong to the best configuration as much as the searched ones
            "best_params": {**fixed, **best.params}, "config": str(out)}


is_tune_report = atomic.holding("history.png", only=("importances.png",))
"""A folder `tune --report` wrote: its pictures and nothing else."""


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _config(base: dict, values: dict, arch: str, task: str) -> Config:
    builder = ConfigBuilder(arch, task).add({k: v for k, v in base.items() if k not in ("arch", "task")}, "config")
    nested: dict = {}
    for key, value in values.items():
        section, _, leaf = key.partition(".")
        nested.setdefault(section, {})[leaf] = value
    return builder.add(nested, "tune").build()


def write_report(study, folder: Path, say: Callable[[str], None]) -> None:
    """history.png (each trial's dev F1 and the best so far) and importances.png (how much each
    searched key explains of the dev F1), with matplotlib's headless backend."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    # optuna marks its matplotlib plots experimental and warns when importances come out equal;
    # neither is news to a user reading the pictures.
    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    warnings.filterwarnings("ignore", category=UserWarning, message=".*quantiles.*")
    warnings.filterwarnings("ignore", category=UserWarning, message=".*too small to compute importances.*")
    from matplotlib import pyplot as plt
    from optuna.visualization import matplotlib as plots

    atomic.check_output_dir(folder, "--report", is_tune_report)
    with atomic.atomic_dir(folder, is_tune_report) as tmp:
        plots.plot_optimization_history(study)
        plt.gcf().set_size_inches(7, 4.5)
        plt.tight_layout()
        plt.savefig(tmp / "history.png", dpi=100)
        plt.close("all")
        try:
            plots.plot_param_importances(study)
            plt.gcf().set_size_inches(7, 4.5)
            plt.tight_layout()
            plt.savefig(tmp / "importances.png", dpi=100)
        except (ValueError, RuntimeError) as err:  # too few finished trials, or nothing varied
            say(f"no importances.png: {err}")
        plt.close("all")
