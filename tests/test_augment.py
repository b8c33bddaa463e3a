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


def test_with_doses_in_the_data_a_dose_written_after_an_annotated_drug_is_a_related_dose():
    """Data prepared with --types DRUG,AE,DOSE: an unlabelled dose taught the tagger that a dose is
    none (0 DOSE spans on test sentences, against 10 without copies). The ADE-NEG copies annotate
    nothing, as the corpus's ADE-NEG sentences do; the same seed draws the same copies either way."""
    sentences = corpus()
    plain, dosed = dose_copies(sentences, 0.5, 3), dose_copies(sentences, 0.5, 3, "DOSE")
    assert [s.text for s in plain] == [s.text for s in dosed]
    for copy in dosed:
        if copy.negative:
            assert copy.spans == [] and copy.relations == []
            continue
        named = [(copy.text[a:b], label) for a, b, label in copy.spans]
        dose = next(k for k, (_, label) in enumerate(named) if label == "DOSE")
        assert named[dose][0] in copy.text and not named[dose][0].startswith("(") and not named[dose][0].endswith(")")
        pairs = {(named[d][0], named[o][0]) for d, o in copy.relations}
        assert pairs == {("warfarin", "bleeding"), ("warfarin", named[dose][0])}, copy
    assert any(not s.negative for s in dosed)


def test_training_labels_the_doses_of_data_with_doses(sample_data, tmp_path):
    import json
    import shutil

    from adelabel.config import resolve
    from adelabel.train import load_data

    data = tmp_path / "dose-data"
    shutil.copytree(sample_data, data)
    manifest = json.loads((data / "manifest.json").read_text())
    (data / "manifest.json").write_text(json.dumps({**manifest, "labels": ["DRUG", "AE", "DOSE"]}))
    setup = load_data(resolve("bilstm", overrides=["train.dose_copies=0.3"]), data)
    from adelabel.prepare import read_split

    tags = setup.task.tags
    copies = setup.examples["train"][len(read_split(data, "train")):]
    assert copies and any(tags[t] == "B-DOSE" for e in copies for t in e.tags)
