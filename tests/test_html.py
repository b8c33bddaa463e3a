"""``tag --format html`` in a real headless browser (Debian's chromium and chromedriver, driven by
selenium): the page opens with nothing fetched, every mark sits on the characters of its entity, and
the filter hides exactly the sentences that report no adverse drug event."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import ROOT, run_cli

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        pytest.fail("chromedriver not found: install Debian's chromium and chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def test_the_page_marks_entities_on_their_characters_and_filters(capsys, browser, sample_model, tmp_path):
    from selenium.webdriver.common.by import By

    src = ROOT / "corpora/sample/example.txt"
    lines = src.read_text(encoding="utf-8").splitlines()
    page = tmp_path / "tagged.html"
    code, _, err = run_cli(capsys, "tag", src, "--model", sample_model, "--format", "html", "--output", page)
    assert code == 0, err
    code, out, _ = run_cli(capsys, "tag", src, "--model", sample_model)
    records = [json.loads(line) for line in out.splitlines()]
    html = page.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html and "<link" not in html  # self-contained

    browser.get(page.as_uri())
    sections = browser.find_elements(By.CSS_SELECTOR, "section.line")
    assert len(sections) == len(lines)
    marks = 0
    for section, line, record in zip(sections, lines, records):
        found = [(int(m.get_attribute("data-start")), int(m.get_attribute("data-end")), m.get_attribute("data-label"),
                  m.get_attribute("textContent")) for m in section.find_elements(By.TAG_NAME, "mark")]
        expected = [(e["start"], e["end"], e["label"], e["text"]) for e in record["entities"]]
        assert found == expected
        assert all(line[a:b] == text for a, b, _, text in found)
        marks += len(found)
        shown_text = "".join(p.get_attribute("textContent") for p in section.find_elements(By.CSS_SELECTOR, "p.text"))
        assert shown_text.replace(" ", "") == line.replace(" ", "")  # every character, in order
    assert marks > 3
    sentences = browser.find_elements(By.CSS_SELECTOR, ".sentence")
    reports = [s.get_attribute("data-reports") == "1" for s in sentences]
    assert reports == [s["reported"] for r in records for s in r["sentences"]]
    assert any(reports) and not all(reports)
    assert browser.find_element(By.ID, "shown").text == f"{len(sentences)} of {len(sentences)} sentences shown"
    browser.find_element(By.ID, "only-ade").click()
    assert [s.is_displayed() for s in sentences] == reports
    assert browser.find_element(By.ID, "shown").text == f"{sum(reports)} of {len(sentences)} sentences shown"
    browser.find_element(By.ID, "only-ade").click()
    assert all(s.is_displayed() for s in sentences)


def test_marks_keep_their_place_after_characters_a_browser_would_fold(capsys, browser, tmp_path):
    # A browser reads CRLF and CR as LF and drops NUL: written as they are, every mark after one would
    # sit a character early. Each mark's place in the page text must be its entity's offset.
    texts = ["Lithium\x00 toxicity after lithium-induced tremor; clozapine-induced agranulocytosis.",
             "Clozapine-induced\r\nagranulocytosis occurred after\rclozapine and lithium-induced tremor."]
    src, page = tmp_path / "odd.jsonl", tmp_path / "odd.html"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    code, _, err = run_cli(capsys, "tag", src, "--input-format", "jsonl", "--format", "html", "--output", page,
                           "--model", ROOT / "adelabel/pretrained/ade-bilstm", "--threshold", "0")
    assert code == 0, err
    browser.get(page.as_uri())
    places = browser.execute_script("""
        return Array.from(document.querySelectorAll('.sentence')).flatMap(s => {
            let at = Number(s.dataset.start); const out = [];
            for (const node of s.querySelector('p.text').childNodes) {
                if (node.nodeName === 'MARK') out.push([at, Number(node.dataset.start), node.textContent.length,
                                                        Number(node.dataset.end) - Number(node.dataset.start)]);
                at += node.textContent.length;
            }
            return out;
        });""")
    assert len(places) >= 4 and all(at == start and shown == length for at, start, shown, length in places), places


def test_a_direction_override_in_the_text_turns_no_entity_around(capsys, browser, tmp_path):
    """U+202E (right-to-left override) at a line's start reverses its plain text, as it says; each
    entity, drawn from its first character to its last, still reads left to right."""
    src, page = tmp_path / "rlo.txt", tmp_path / "rlo.html"
    src.write_text("\u202eSevere hepatitis developed two weeks after isoniazid was started.\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "tag", src, "--format", "html", "--output", page,
                           "--model", ROOT / "adelabel/pretrained/ade-bilstm", "--threshold", "0")
    assert code == 0, err
    browser.get(page.as_uri())
    ends = browser.execute_script("""
        return Array.from(document.querySelectorAll('mark')).map(m => {
            const text = m.firstChild, at = i => { const r = document.createRange();
                r.setStart(text, i); r.setEnd(text, i + 1); return r.getBoundingClientRect().left; };
            return [at(0), at(text.length - 1)];
        });""")
    assert ends and all(first < last for first, last in ends), ends


def test_other_types_never_take_the_colour_of_drug_ae_or_dose():
    from adelabel.html_view import FIXED, colour

    order: dict[str, int] = {}
    others = [colour(f"Type{k}", order) for k in range(12)]
    assert not set(others) & set(FIXED.values()) and len(set(others[:5])) == 5
