"""``adelabel tag --format html``: one self-contained page (styles and script inline, nothing fetched)
with each sentence's entities marked by type, its drug -> effect pairs, its probability of reporting
an adverse drug event, and a filter for the sentences that report one. Written as the lines are
tagged, so memory stays flat however long the input."""
from __future__ import annotations

import json
from bisect import bisect_left
from html import escape as escape_markup
from typing import IO

from adelabel.inference import Analysis

# An HTML parser folds a CR (and CRLF) into LF and drops NUL from text, which would put every mark after
# one a character early. As character references they keep their place: a CR stays a CR, and a NUL
# becomes one U+FFFD.
_PARSED_AWAY = str.maketrans({"\r": "&#13;", "\x00": "&#0;"})


def escape(text: str) -> str:
    """``text`` as page text that the browser reads back with every character where it was."""
    return escape_markup(text).translate(_PARSED_AWAY)


PALETTE = ["#fdd49e", "#a6dba0", "#9ecae1", "#fbb4ae", "#decbe4", "#fed9a6", "#ccebc5", "#e5d8bd"]
FIXED = {"DRUG": "#9ecae1", "AE": "#fbb4ae", "DOSE": "#a6dba0"}

_STYLE = """
body { font: 15px/1.6 system-ui, sans-serif; margin: 0 auto; max-width: 60em; padding: 1em; color: #222; }
header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ddd; padding: .5em 0; }
header h1 { font-size: 1.2em; margin: 0; } .model { color: #666; font-size: .85em; margin: .2em 0; }
.line { border-bottom: 1px solid #eee; padding: .4em 0; } .line-number { color: #999; font-size: .8em; }
.sentence { margin: .3em 0; padding: .2em .5em; border-left: 4px solid #ddd; }
.sentence[data-reports="1"] { border-left-color: #d7301f; }
.ade { float: right; font-size: .8em; color: #666; } .sentence[data-reports="1"] .ade { color: #d7301f; font-weight: 600; }
mark { border-radius: 3px; padding: 0 2px; } mark::after { content: attr(data-label); font-size: .65em;
  margin-left: 3px; color: #555; vertical-align: super; }
/* A direction override in the text (U+202E) must not turn an entity or its label around, nor run on. */
.text, mark, mark::after, .relations li { unicode-bidi: isolate; }
.relations { margin: .1em 0 .2em 1em; padding: 0; list-style: none; font-size: .9em; color: #444; }
body.only-ade .sentence[data-reports="0"] { display: none; }
"""

_SCRIPT = """
const box = document.getElementById("only-ade"), counter = document.getElementById("shown");
function count() {
  const all = document.querySelectorAll(".sentence");
  const shown = Array.from(all).filter(s => getComputedStyle(s).display !== "none").length;
  counter.textContent = shown + " of " + all.length + " sentences shown";
}
box.addEventListener("change", () => { document.body.classList.toggle("only-ade", box.checked); count(); });
count();
"""


_OTHERS = [c for c in PALETTE if c not in FIXED.values()]
"""Colours for other types: never DRUG's, AE's or DOSE's, so a sixth type is not read as a drug."""


def colour(label: str, order: dict[str, int]) -> str:
    if label in FIXED:
        return FIXED[label]
    order.setdefault(label, len(order))
    return _OTHERS[order[label] % len(_OTHERS)]


class HtmlWriter:
    """Writes the page's head, then one section per tagged line, then the filter's script."""

    def __init__(self, out: IO[str], meta: dict, unit: str = "line") -> None:
        # ``unit``: what one record of the input is, "line" or "paragraph", as each section is headed.
        self.out, self.number, self.colours, self.unit = out, 0, {}, unit
        out.write(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>adelabel</title>'
                  f"<style>{_STYLE}</style></head>\n<body>\n<header><h1>adelabel</h1>"
                  f'<p class="model">{escape(json.dumps(meta))}</p>'
                  f'<label><input type="checkbox" id="only-ade"> only sentences that report an adverse drug '
                  f'event</label> &middot; <span id="shown"></span></header>\n<main>\n')

    def write(self, analysis: Analysis, fields: dict) -> None:
        self.number += 1
        text = analysis.text
        head = escape(json.dumps(fields, ensure_ascii=False)) if fields else ""
        # Entities come in order of the text, and relations by their drug: per sentence, a slice of each
        # (a 2 MB line holds tens of thousands of sentences, which scanning every entity made quadratic).
        starts = [ent.start for ent in analysis.entities]
        by_drug: dict[int, list] = {}
        for number, r in enumerate(analysis.relations):
            by_drug.setdefault(r.drug, []).append((number, r))
        parts = [f'<section class="line" data-line="{self.number}"><div class="line-number">{self.unit} {self.number} {head}</div>']
        for sentence in analysis.sentences:
            s, e = sentence.start, sentence.end
            first, end = bisect_left(starts, s), bisect_left(starts, e)
            html, pos = [], s
            for ent in analysis.entities[first:end]:
                html.append(escape(text[pos:ent.start]))
                html.append(f'<mark data-start="{ent.start}" data-end="{ent.end}" data-label="{escape(ent.label)}" '
                            f'style="background:{colour(ent.label, self.colours)}" '
                            f'title="{escape(ent.label)} {ent.score:.2f}">{escape(text[ent.start:ent.end])}</mark>')
                pos = ent.end
            html.append(escape(text[pos:e]))
            pairs = [r for _, r in sorted(p for k in range(first, end) for p in by_drug.get(k, ()))]
            relations = "".join(f"<li><bdi>{escape(analysis.entities[r.drug].text)}</bdi> &rarr; "
                                f"<bdi>{escape(analysis.entities[r.effect].text)}</bdi> <small>{escape(r.type)} {r.score:.2f}</small></li>"
                                for r in pairs)
            reports = int(sentence.reported)
            parts.append(f'<div class="sentence" data-start="{s}" data-end="{e}" data-ade="{sentence.ade}" '
                         f'data-reports="{reports}"><span class="ade">ADE {sentence.ade:.2f}</span>'
                         f'<p class="text">{"".join(html)}</p>'
                         + (f'<ul class="relations">{relations}</ul>' if relations else "") + "</div>")
        parts.append("</section>\n")
        self.out.write("".join(parts))

    def close(self) -> None:
        self.out.write(f"</main>\n<script>{_SCRIPT}</script>\n</body></html>\n")
