"""Knowledge from a teacher: a trained tagger (or an ensemble of them) whose probabilities a new tagger
learns beside the gold labels (``adelabel train --teacher DIR``).

The teacher reads the student's training sentences once, before the first epoch. Per sentence it
gives each token's tag probabilities (its CRF's marginals, or the softmax: for seq2seq, each step's,
given the tags it chose before), the calibrated probability that the sentence reports an event, and
for each candidate pair of the gold entities the calibrated probability that the pair is related.
With ``train.distil`` = w, the student's losses become ``(1 - w) * gold loss + w * cross-entropy with
the teacher's probabilities`` for the tags, the gate and the relation head
(adelabel/models/base.py, ``SequenceLabeler.loss``). A student without a gate learns tags on every
sentence, so it is taught the teacher's tags weighted by the teacher's gate (``O`` for the rest).

The point is speed: the fine-tuned transformer decides better than ``bilstm`` but tags at an eighth of
its pace; a recurrent student of the transformer keeps the recurrent pace. A teacher must have been
trained on the same split (corpus, seed and split sizes agree): one that saw the student's dev or test
documents would pass their labels on, and the student's scores would flatter it.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from adelabel import model_dir
from adelabel.corpus import Sentence
from adelabel.data import Example, bucketed, encode_sentences
from adelabel.config import validate_saved
from adelabel.errors import InputError, OptionError
from adelabel.tagger import Tagger

SAME_SPLIT = ("corpus", "seed", "labels", "splits")


class Teacher(NamedTuple):
    tagger: Tagger
    batch_size: int  # sentences per batch, the smallest its members score with
    order: list[int]  # the teacher's column of each of the student's tags


def check_task(task: str) -> None:
    """A teacher passes tags on: refuse one for a sentence classifier, before any work is done."""
    if task != "tag":
        raise OptionError("--teacher: a teacher passes its tags on to a tagger; --task classify takes none")


def load_teacher(paths: Sequence[str | Path], manifest: dict, tags: Sequence[str], device: torch.device) -> Teacher:
    """The teacher's tagger (an ensemble of several), loaded and checked as ``Tagger.load`` checks any
    model folder (an ensemble's members share their tags); refused, in one line, when it tags other
    types or was trained on another split of the data than ``manifest`` describes."""
    tagger = Tagger.load([str(p) for p in paths], device=str(device))
    # The same tags in another order (the same corpus read from its CoNLL files, say) teach as well.
    if sorted(tagger.tags) != sorted(tags):
        raise InputError(paths[0], f"--teacher: tags {', '.join(tagger.tags)}, the data {', '.join(tags)}")
    sizes = []
    for path in paths:
        source = Path(path) / model_dir.CONFIG
        config = json.loads(source.read_text(encoding="utf-8"))  # proved by Tagger.load
        data = config.get("data", {})
        differ = [k for k in SAME_SPLIT if not _same(k, data.get(k), manifest.get(k))]
        if differ:
            raise InputError(path, f"--teacher: trained on another split of the data ({', '.join(differ)} "
                                   "differ); it may have seen this run's dev or test documents")
        sizes.append(validate_saved(config, str(source)).train.eval_batch_size)
    return Teacher(tagger, min(sizes), [list(tagger.tags).index(t) for t in tags])


def _same(key: str, theirs, ours) -> bool:
    if key == "corpus" and isinstance(theirs, str) and isinstance(ours, str):
        return Path(theirs).resolve() == Path(ours).resolve()
    return theirs == ours


def teach(teacher: Teacher, sentences: Sequence[Sentence], examples: Sequence[Example], device: torch.device,
          progress: Callable[[int], None] | None = None) -> None:
    """Attach the probabilities of ``teacher`` (from :func:`load_teacher`) to ``examples``, the student's
    encoding of ``sentences``: ``soft_tags``, and ``soft_sentence`` and ``soft_pairs`` where the teacher
    has a gate and a relation head."""
    from adelabel.models.ensemble import Ensemble

    tagger = teacher.tagger
    model = tagger.model if isinstance(tagger.model, Ensemble) else Ensemble([tagger.model])
    model.eval()
    # Encoded with the teacher's own vocabulary: the same tokens (one tokeniser), other word ids.
    theirs = encode_sentences(sentences, tagger.vocabs, tagger.tags)
    with torch.inference_mode():
        for indices, batch in bucketed(theirs, teacher.batch_size):
            batch = batch.to(device)
            out = model(batch)
            tags = out.scores.float().exp().cpu()[..., teacher.order]
            sentence = torch.sigmoid(out.sentence.float()).cpu() if out.sentence is not None else None
            pairs = model.relate(out, batch.pairs).float().cpu() if model.relation is not None else None
            row_of = batch.pairs[:, 0].cpu()
            for row, i in enumerate(indices):
                ours = examples[i]
                ours.soft_tags = tags[row, :len(ours.words)].clone()
                ours.soft_sentence = float(sentence[row]) if sentence is not None else None
                ours.soft_pairs = pairs[row_of == row].tolist() if pairs is not None else None
            if progress is not None:
                progress(len(indices))
