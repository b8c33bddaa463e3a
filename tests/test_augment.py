"""`train.dose_copies`: training sentences copied with a dose written after a drug."""
from __future__ import annotations

from adelabel.augment import dose_copies
from adelabel.corpus import Sentence


def corpus() -> list[Sentence]:
    positive = []
    for i in range(10):
        text = f"Patient {i} given warfarin developed bleeding."
        drug, effect = text.index("warfarin"), text.index("bleeding")
        positive.append(Sentence(text, [(drug, drug + 8, "DRUG"), (effect, effect + 8, "AE")], doc_id=str(i),
                                 relations=[(0, 1)]))
    positive.append(Sentence("Clozapine-induced agranulocytosis.", [(0, 9, "DRUG"), (18, 33, "AE")], doc_id="c",
                             relations=[(0, 1)]))  # the drug inside a word: nowhere to write a dose
    negative = [Sentence(f"Case {i}: warfarin was continued.", [], doc_id=str(i), negative=True) for i in range(10)]
    negative += [Sentence(f"Case {i}: nothing happened.", [], doc_id=str(i), negative=True) for i in range(30)]
    return positive + negative


def test_a_dose_follows_the_drug_and_every_span_keeps_its_words():
    sentences = corpus()
    copies = dose_copies(sentences, 0.5, seed=1)
    positive = [c for c in copies if not c.negative]
    negative = [c for c in copies if c.negative]
    # Half of each class, as far as it has a drug standing as a word to write a dose after.
    assert len(positive) == round(0.5 * 11) and len(negative) == 10
    for copy in positive:
        original = next(s for s in sentences if s.doc_id == copy.doc_id and not s.negative)
        assert [copy.text[a:b] for a, b, _ in copy.spans] == [original.text[a:b] for a, b, _ in original.spans]
        assert copy.relations == original.relations and copy.text.startswith(original.text[:24] + " ")
        assert copy.text.endswith(" developed bleeding.") and copy.text != original.text
    for copy in negative:  # a drug the training split annotates, named in a sentence without events
        assert copy.text.startswith(f"Case {copy.doc_id}: warfarin ") and copy.text.endswith(" was continued.")
        assert copy.spans == []


def test_copies_are_drawn_by_the_seed_and_only_when_asked():
    sentences = corpus()
    assert dose_copies(sentences, 0.5, seed=1) == dose_copies(sentences, 0.5, seed=1)
    assert dose_copies(sentences, 0.5, seed=1) != dose_copies(sentences, 0.5, seed=2)
    assert dose_copies(sentences, 0.0, seed=1) == []
    # Without a drug type (a corpus of diseases, say) there is no drug to write a dose after.
    assert dose_copies([Sentence("Fever.", [(0, 5, "AE")])], 1.0, seed=1) == []


def test_training_reads_the_copies_beside_the_split(sample_data):
    from adelabel.config import resolve
    from adelabel.prepare import read_split
    from adelabel.train import load_data

    plain = load_data(resolve("bilstm"), sample_data)
    copied = load_data(resolve("bilstm", overrides=["train.dose_copies=0.3"]), sample_data)
    train = read_split(sample_data, "train")
    added = dose_copies(train, 0.3, 13)
    assert 0 < len(added) and len(copied.examples["train"]) == len(plain.examples["train"]) + len(added)
    assert copied.task.negatives["train"][len(train):] == [s.negative for s in added]
    # The splits scored are the corpus's own.
    assert len(copied.examples["dev"]) == len(plain.examples["dev"])
