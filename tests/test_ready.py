"""The ready tagger shipped in the package: small, proved at load, the default where the user has
trained none, and what the README's first steps run."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from adelabel.errors import AdelabelError
from conftest import ROOT


def test_the_ready_tagger_is_small_and_loads_proved(monkeypatch, tmp_path):
    from adelabel import Tagger
    from adelabel.pretrained import READY, default_model

    size = sum(p.stat().st_size for p in READY.rglob("*") if p.is_file())
    assert size <= 15 * 2**20, f"{size / 2**20:.1f} MiB"
    config = json.loads((READY / "config.json").read_text())
    assert config["stored_in"] == "float16"
    # It records its teachers and data as the README's recipe names them, not by folders of the machine
    # that trained it (which `train --config READY` would print back to the user).
    assert config["teacher"] == ["models/bilstm", "models/transformer"]
    assert not any(Path(v).is_absolute() for v in (*config["teacher"], config["data"]["dir"], config["data"]["corpus"]))
    monkeypatch.chdir(tmp_path)  # no models/bilstm here
    assert default_model() == READY
    # A damaged models/bilstm is named, not quietly replaced by the ready tagger.
    (tmp_path / "models" / "bilstm").mkdir(parents=True)
    with pytest.raises(AdelabelError, match="models/bilstm"):
        Tagger.load(device="cpu")
    (tmp_path / "models" / "bilstm").rmdir()
    tagger = Tagger.load(device="cpu")
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in tagger.model.parameters())
    analysis = tagger.analyze("Severe hepatitis developed two weeks after isoniazid was started.")
    labels = {(e.text, e.label) for e in analysis.entities}
    assert ("isoniazid", "DRUG") in labels and analysis.relations, analysis.to_dict()


def test_invisible_characters_change_no_decision_and_no_entity_ends_on_one():
    """Text pasted from a PDF or web page: soft hyphens and zero-width spaces are read as absent, and the
    offsets still index the text as given."""
    from adelabel import Tagger
    from adelabel.pretrained import READY

    tagger = Tagger.load(str(READY), device="cpu")
    plain = "Clozapine-induced agranulocytosis and methotrexate pneumonitis."
    pasted = "\u200bClozapine\u200b-induced\x00 agranulo\u00adcytosis and metho\u00adtrexate\u200bpneu\u00admonitis."
    want, got = tagger.analyze(plain), tagger.analyze(pasted)
    assert [(e.label, e.text.replace("\u00ad", "").replace("\u200b", " ")) for e in got.entities] == \
        [(e.label, e.text) for e in want.entities] != []
    assert all(pasted[e.start:e.end] == e.text and e.text[0].isalpha() and e.text[-1].isalpha() for e in got.entities)
    assert got.ade == want.ade and [e.score for e in got.entities] == [e.score for e in want.entities]


@pytest.mark.parametrize("between", [" \u200b", "\u200b ", "\u00ad ", " \ufeff", "\x00 ", " \u2060", " \u200e",
                                     " \u0301"])
def test_an_invisible_character_after_a_full_stop_still_ends_the_sentence(between):
    """Read as absent by the sentence rule too: one sentence of two made a drug of the first the cause of
    the second's effect."""
    from adelabel import Tagger
    from adelabel.pretrained import READY
    from adelabel.text import split_sentences

    first, second = "Patients were treated with cisplatin.", "Hearing loss was reported in a patient receiving ibuprofen."
    text = first + between + second
    assert split_sentences(text) == [(0, len(first)), (len(first) + len(between), len(text))]
    tagger = Tagger.load(str(READY), device="cpu")
    got, want = tagger.analyze(text), tagger.analyze(first + " " + second)
    pairs = lambda a: [(a.entities[r.drug].text, a.entities[r.effect].text) for r in a.relations]  # noqa: E731
    assert pairs(got) == pairs(want) == [("ibuprofen", "Hearing loss")]


def test_the_readmes_first_steps_run(tmp_path):
    """The commands the README gives right after installing, run as written (abstracts.txt being
    sentences of our own)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("so right after installing, with no training:", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    (tmp_path / "abstracts.txt").write_text((ROOT / "corpora/sample/example.txt").read_text(encoding="utf-8"),
                                            encoding="utf-8")
    outputs = []
    for command in commands:
        command = re.sub(r"^adelabel ", f"{sys.executable} -m adelabel ", command)
        command = re.sub(r"^python ", f"{sys.executable} ", command)
        done = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr)
        outputs.append(done.stdout)
        if " tag " in command:  # the model it chose is named: a short run of train would change it
            assert "tagging with " in done.stderr and "(the ready tagger); --model chooses another" in done.stderr
            # but not before an error, which stays one line
            missing = subprocess.run(command.replace("abstracts.txt", "missing.txt"), shell=True, capture_output=True,
                                     text=True, cwd=tmp_path)
            assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
            # nor before an error the input's first lines hold (an empty file, another encoding)
            (tmp_path / "empty.txt").write_bytes(b"")
            (tmp_path / "utf16.txt").write_text("Rash after naproxen.\n", encoding="utf-16")
            for bad in ("empty.txt", "utf16.txt"):
                refused = subprocess.run(command.replace("abstracts.txt", bad), shell=True, capture_output=True,
                                         text=True, cwd=tmp_path)
                assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    # `tag`: a record per line of the file, entities in them; the Python line: the drug and its effect.
    records = [json.loads(line) for line in outputs[0].splitlines()]
    assert len(records) == len((tmp_path / "abstracts.txt").read_text(encoding="utf-8").splitlines())
    assert any(r["entities"] for r in records) and any(r["relations"] for r in records)
    assert "text='Clozapine'" in outputs[1] and "text='agranulocytosis'" in outputs[1], outputs[1]


def test_the_model_card_gives_the_shipped_models_scores():
    from adelabel.pretrained import READY

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    card = readme.split("### The ready tagger", 1)[1].split("\n## ", 1)[0]
    test = json.loads((READY / "metrics.json").read_text())["test"]
    for value in (test["micro"]["f1"], test["annotated_only"]["micro"]["f1"], test["sentences"]["f1"]):
        assert f"{value:.4f}" in card


def test_the_ready_tagger_scores_what_its_metrics_say(real_corpus):
    """The stored scores are the shipped weights' own: the test split rebuilt from the corpus (seed 13)
    and scored again by the path `evaluate` takes, not numbers carried over from a run before packaging."""
    import torch

    from adelabel import Tagger
    from adelabel.corpus.ade import read_ade
    from adelabel.data import encode_sentences
    from adelabel.evaluate import evaluate_examples
    from adelabel.inference import predict
    from adelabel.pretrained import READY
    from adelabel.split import split_by_document

    torch.set_num_threads(2)
    stored = json.loads((READY / "metrics.json").read_text())["test"]
    sentences = split_by_document(read_ade(real_corpus)[0], 13)["test"]
    tagger = Tagger.load(str(READY), device="cpu")
    examples = encode_sentences(sentences, tagger.vocabs, tagger.tags)
    with tagger.running():
        predicted = predict(tagger.model, examples, 256, tagger.device, threshold=0.0)
        result = evaluate_examples(tagger.model, examples, [s.negative for s in sentences], tagger.tags, 256,
                                   tagger.device, predicted)
    for path in (("micro", "f1"), ("annotated_only", "micro", "f1"), ("sentences", "f1"), ("relations", "f1"),
                 ("annotated_only", "relations", "f1")):
        got, want = result, stored
        for key in path:
            got, want = got[key], want[key]
        assert got == pytest.approx(want, abs=1e-6), path


def test_the_ready_tagger_is_exported_from_a_copy_not_inside_the_package(capsys, tmp_path):
    """An export writes its graphs into the model folder: inside site-packages, often read-only and left
    behind by `pip uninstall`. Both commands say to copy the tagger out first."""
    from adelabel.pretrained import READY
    from conftest import run_cli

    code, _, err = run_cli(capsys, "export", "--model", READY, "--format", "onnx")
    assert code == 2 and f"--model {READY}: is the ready tagger, inside the installed package; copy it out" in err
    assert not (READY / "onnx").exists()
    (tmp_path / "in.txt").write_text("Rash after naproxen.\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "tag", tmp_path / "in.txt", "--model", READY, "--backend", "onnx")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"the ready tagger has no ONNX export; copy it out of the package and export the copy: cp -r {READY}" in err


def test_no_entity_holds_an_emoji_or_another_symbol_alone():
    """Patients' and social-media text: a pictograph, a mark without a letter or a private-use character
    is never part of an entity (no entity of the corpus holds one, so the model never learnt where one
    ends an effect); letters, digits and the corpus's own symbols (+, <, =) still can be."""
    from adelabel import Tagger
    from adelabel.pretrained import READY
    from adelabel.text import outside_entities

    assert all(map(outside_entities, ["😀", "★", "™", "°", "\u0301\u0301", "\ue000", "🏽", "•", "·", "‣", "∙", "⁃"]))
    assert not any(map(outside_entities, ["+", "<", "=", "a\u0301", "2", "-", "µ"]))
    tagger = Tagger.load(str(READY), device="cpu")
    for symbol in ("😀", "★", "™"):
        text = f"Azithromycin-induced ototoxicity {symbol} in a patient."
        assert [(e.text, e.label) for e in tagger(text)] == [("Azithromycin", "DRUG"), ("ototoxicity", "AE")], symbol
    tagger.threshold = 0.0
    assert tagger("\u0301\u0301\u0301 \u0301") == []
    # A bulleted line (a user's list of reactions): the bullet is no part of the effect.
    assert ("Fever", "AE") in [(e.text, e.label) for e in tagger("\u2022 Fever after vancomycin.")]


def test_effects_listed_under_a_lead_in_are_related_to_its_drug_one_by_one():
    """A safety narrative's list: "Adverse reactions to lamotrigine:" and a dashed item per effect. Each
    item on a sentence of its own lost its drug; kept with the lead-in, the model ran one effect across
    the dash into the next item's. A mark need not have a space after it."""
    from adelabel import Tagger
    from adelabel.pretrained import READY

    tagger = Tagger.load(str(READY), device="cpu")
    for mark in ("- ", "* ", "– ", "• ", "-", "•"):  # "*" or "–" before a letter: a footnote, a range
        text = f"Adverse reactions to lamotrigine:\n{mark}toxic epidermal necrolysis\n{mark}hepatitis"
        analysis = tagger.analyze(text)
        names = [(e.text, e.label) for e in analysis.entities]
        assert names == [("lamotrigine", "DRUG"), ("toxic epidermal necrolysis", "AE"), ("hepatitis", "AE")], mark
        assert [(names[r.drug][0], names[r.effect][0]) for r in analysis.relations] == [
            ("lamotrigine", "toxic epidermal necrolysis"), ("lamotrigine", "hepatitis")], mark
        assert all(text[e.start:e.end] == e.text for e in analysis.entities)


def test_a_symbol_forced_out_of_an_entity_leaves_valid_tags():
    """The entity a model ran on past a symbol begins again after it (strict IOB2 would drop it)."""
    from adelabel.inference import _symbols_outside

    names = ["O", "B-DRUG", "I-DRUG", "B-AE", "I-AE"]

    def tagged(tags, texts):
        return [names[t] for t in _symbols_outside([names.index(t) for t in tags], texts, names)]
    assert tagged(["B-AE", "I-AE", "O"], ["★", "fever", "."]) == ["O", "B-AE", "O"]
    assert tagged(["B-AE", "I-AE", "I-AE"], ["rash", "😀", "fever"]) == ["B-AE", "O", "B-AE"]
    assert tagged(["B-DRUG", "I-DRUG", "I-AE"], ["x", "™", "y"]) == ["B-DRUG", "O", "I-AE"]  # another type: as it was
    assert tagged(["B-AE", "I-AE"], ["dry", "mouth"]) == ["B-AE", "I-AE"]


def test_typographic_punctuation_stays_out_of_the_ready_taggers_entities():
    """Text copied from PubMed's XML, a word processor or a PDF: Unicode hyphens, curly quotes, an
    ellipsis, full-width commas, arrows. The ready tagger knows ASCII only; it reads each such mark as
    its ASCII look-alike, and no entity begins or ends on one."""
    from adelabel import Tagger
    from adelabel.pretrained import READY

    tagger = Tagger.load(str(READY), device="cpu")
    cases = {
        "Intravenous azithromycin\u2010induced ototoxicity.": [("azithromycin", "DRUG"), ("ototoxicity", "AE")],
        "Aspirin caused \u201crash\u201d.": [("Aspirin", "DRUG"), ("rash", "AE")],
        "Aspirin caused rash\u2026 and fever.": [("Aspirin", "DRUG"), ("rash", "AE"), ("fever", "AE")],
        "Aspirin caused rash\uff0cfever\uff0cand hepatitis\u3002": [
            ("Aspirin", "DRUG"), ("rash", "AE"), ("fever", "AE"), ("hepatitis", "AE")],
        "Aspirin caused rash \u2192 hospitalization.": [("Aspirin", "DRUG"), ("rash", "AE")],
    }
    for text, expected in cases.items():
        entities = tagger(text)
        assert [(e.text, e.label) for e in entities] == expected, text
        assert all(text[e.start:e.end] == e.text for e in entities)
