"""Offset-preserving tokenisation and sentence splitting.

Tokens are ``(start, end)`` character offsets into the text they came from, so every later stage can
map back to the user's characters exactly.
"""
from __future__ import annotations

import re

import regex

# Runs of letters/digits, or any single other visible non-space character. Hyphens and slashes therefore become
# tokens of their own, which is what lets "azithromycin-induced" expose the drug name "azithromycin" and
# "mg/m2" its parts: the ADE annotators often marked a drug inside such a compound.
# The match spans are the tokens, found by the `regex` engine, whose \w takes in combining marks
# ("A\u0301bc" is one token), as the models were trained. This was nltk's RegexpTokenizer with the same
# pattern, which does exactly this finditer; importing nltk took 2 of the 3.5 seconds an `adelabel tag`
# process needed before tagging its first line, in every worker process too.
# Invisible characters, which text copied from PDFs and web pages carries, are no tokens of their own,
# so no entity starts or ends on one. A format character (\p{Cf}: a soft hyphen, a zero-width joiner, a
# bidi mark) between letters stays inside the word ("metho\u00adtrexate" is one token, looked up as
# "methotrexate", see adelabel/vocab.py); a zero-width space marks a break between words, and control
# characters (\p{Cc}: NUL, DEL) that are not white space are skipped like it.
# (regex's V1 syntax for the set difference, which runs faster than a lookahead per character.)
# The joiners U+200C and U+200D count as word characters (\w) too: kept out of a word's ends all the same.
# Other default-ignorable characters (\p{DI}: a variation selector after a word, a combining grapheme
# joiner, Hangul fillers) are invisible too, and read as format characters are.
# A word does not begin with a combining mark: one left at a word's start (PDF debris, "\u0301Clozapine")
# is skipped as the invisible characters are, so no entity starts on it.
_TOKEN = regex.compile(r"[^\W_\p{Cf}\p{DI}\p{M}][^\W_\p{Cf}\p{DI}]*(?:[[\p{Cf}\p{DI}]--\u200b]+[^\W_\p{Cf}\p{DI}]+)*"
                       r"|[^\w\s\p{Cf}\p{Cc}\p{DI}]|_", regex.V1)

# A sentence ends at . ! ? or an ellipsis (with the closing quotes and brackets after it, which belong
# to it) when whitespace and then an upper-case letter (of any script), a lower-case Greek letter
# ("α-interferon", "β-blockers" begin sentences as their names), a name that is lower-case only at its
# start ("rHuEPO", "mAb", "tPA", "pH", "d-Penicillamine", "alpha-interferon"), a digit, an opening
# bracket or quote follows. A rule rather than
# nltk's Punkt because Punkt needs a trained model (a download) to know biomedical abbreviations, and
# its untrained default splits after "i.v." and "e.g."; the rule also keeps a sentence intact when the
# following word is lower-case ("approx. 5 mg", "vs. placebo"). Single letters with dots ("i.v.",
# "p.o.", "U.S.") never end one: a drug and its dose or effect split apart could not be related, where
# two sentences run together still can.
# (The lookahead turns away ASCII lower case, nearly every continuation, at the speed of `re`;
# _starts_sentence judges what it lets through.)
_STOPS = ".!?…．。"
_CLOSES = "\"')\\]”’»"  # in a character class: the quotes and brackets that close a sentence
_LOWER_START = r"[a-z]+[A-Z]|(?:alpha|beta|gamma|delta|kappa|[dl])-[A-Za-z]"
_SENTENCE_END = re.compile(rf"""(?<=[{_STOPS}])(?P<close>[{_CLOSES}]*)\s+(?=[^\sa-z]|{_LOWER_START})""")
_OPENERS = frozenset("0123456789([\"'“‘«")


def _starts_sentence(c: str) -> bool:
    # An ASCII lower-case letter gets past _SENTENCE_END's lookahead only as the start of such a name.
    return c in _OPENERS or c.isupper() or c.istitle() or "α" <= c <= "ω" or "a" <= c <= "z"


# Titles keep their case: "ms." is milliseconds ("QTc was 520 ms."), "MS." multiple sclerosis. The
# clinical shorthands ("max.", "wk.", "pts.", "no.", "vol. 3, pp. 12", "Grindelia spp.", "Cap.
# Amoxicillin", "serum conc. 45 mg/L") may end a sentence now and then, where two run together;
# splitting one at them parted a drug from its effect far more often. Those that are words in capitals
# ("inhaled NO.", "disorder NOS.", "with CF.", "body WT.") end sentences so written ("VS." and "APPROX." do not), and a
# time after a number or a slash is a unit ("for 3 min.", "3 mug/kg/min."): those end sentences.
_ABBREVIATIONS = re.compile(r"(?:\b(?!(?:NOS?|CF|WT|HT|CAPS?)\.)(?i:vs|prof|et al|approx|cf|resp|incl|refs?|max|pts?"
                            r"|nos?|vol|pp|vit|wt|ht|tabs?|caps?|inj|syp|susp|oint|conc|avg|suppl|spp)\."
                            r"|\b(?<!\d )(?<![\d/])(?i:min|wks?|mos?|yrs?)\."
                            r"|\b(?i:figs?)\.|\b(?:Dr|Mr|Mrs|Ms|St|ca)\."
                            r"|(?<![\w.])(?:[^\W\d_]\.){2,})$")
_LONGEST_ABBREVIATION = 12  # characters before a break that can hold one ("U.S.A.", "approx.") and its boundary
# Letters with dots ("p.o.", "i.v.", "O.S.") do end a sentence when the next word is one that begins
# sentences and never continues a dose, a route or a name ("100 mg p.o. The rash began"); "e.g." and
# "i.e." stay continuations whatever follows.
_DOTTED = re.compile(r"(?<![\w.])(?!(?i:e\.g|i\.e)\.$)(?:[^\W\d_]\.){2,}$")
_OPENING_WORD = re.compile(r"(?:The|This|These|That|Those|There|It|He|She|They|We|His|Her|Its|Their|Our|In|On|At"
                           r"|After|Before|During|Within|Following|Upon|Over|Two|Three|Four|Five|Six|Several|Both|All"
                           r"|However|Then|Thereafter|Subsequently|Later|Finally|Although|Because|Since|When|While"
                           r"|Despite)\b")
# A sentence so far that is only a list item's number ("1.", "12.") is no sentence of its own.
_ITEM_NUMBER = re.compile(r"\s*\(?\d{1,3}\.")
# Inside brackets opened this close to a break, the break is no sentence end: "(max. ALT 900 U/L)",
# "(see Table 2. Grade 3)". An opener with no closer within that reach (a typo, a smiley, a bracket
# the text never closes) holds nothing.
_BRACKET_REACH = 250
_BRACKET = re.compile(r"[()\[\]]")
_CLOSER = re.compile(r"[)\]]")
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""Where a line-based reader (Python's str.splitlines, Ray's read_text, brat's) ends a line."""
_BREAKS = re.escape(LINE_BREAKS)
# One line break: CRLF is one, not two (a lone \r only where no \n follows, so that a blank line is
# never a CRLF taken for two breaks).
_LINE_BREAK = rf"(?:\r\n|\r(?!\n)|[{re.escape(LINE_BREAKS.replace(chr(13), ''))}])"
# Where a text breaks: always at a blank line and at the characters that end a paragraph or page
# however many there are (U+2029, which word processors write between paragraphs; a form feed, which
# PDF extraction writes between pages; the separators U+001C-U+001E); and at a line break before a list
# item (a bullet, or a number or letter with a stop or bracket, then a space), except in a list whose
# lead-in ends with a colon ("Adverse reactions to lamotrigine:"), where the items stay with it until
# one ends a sentence (:func:`_list_breaks`). A single line break is white space, as in text
# hard-wrapped to a width, whose sentences cross line ends.
_ANY_LINE_BREAK = re.compile(rf"[{_BREAKS}]")
_PARAGRAPH_END = "\x0c\x1c\x1d\x1e\u2029"
BULLETS = "•▪◦‣∙·⁃●■□►▶➢➤✓✔"
"""Characters that open a list item (beside DASHES)."""
DASHES = "-*–"
"""The marks that open a list item at a line's start and are also a word's hyphen or a dash elsewhere
(not "—", which begins a wrapped line's aside as often as an item)."""
# An item's mark is followed by white space; a hyphen or a bullet may be followed by a letter too
# ("-hepatitis", "•Fever"), not by a digit (a negative number, a line begun with "-5"). A star or an en
# dash before a letter begins a footnote ("*Corresponding author"), Markdown's emphasis or a range.
_ITEM_OPENER = rf"(?:[{re.escape(DASHES)}{BULLETS}]\s|[-{BULLETS}](?=[^\W\d_]))"
_HARD_BREAK = regex.compile(rf"{_LINE_BREAK}(?:[^\S{_BREAKS}]*{_LINE_BREAK})+"
                            rf"|(?P<item>{_LINE_BREAK})(?=[ \t]*{_ITEM_OPENER})"
                            rf"|{_LINE_BREAK}(?=[ \t]*(?:\(?\d{{1,3}}[.)]|\(?[a-z]\))\s)"
                            rf"|[{_PARAGRAPH_END}]")
_ITEM_AHEAD = re.compile(rf"[ \t]*{_ITEM_OPENER}")
_ENDS_SENTENCE = re.compile(rf"[{_STOPS}][{_CLOSES}]*\s*$")
_SOFT_BREAKS = frozenset(";,:")


_ITEM_MARK = re.compile(rf"(?:^|(?<=[{_BREAKS}]))([ \t]*)(?:[{re.escape(DASHES)}](?=\s)|-(?=[^\W\d_]))")


def bullets_for_marks(text: str) -> str:
    """``text`` with each list item's dash or star (first on its line, before white space or a letter) written as a
    bullet, one character for one so that every offset holds. A bullet is in no entity
    (:func:`outside_entities`): the items under a lead-in that ends with a colon are one sentence with
    it, and an effect listed there ends at its own line ("- toxic epidermal necrolysis\n- hepatitis"
    is two effects, not one across the dash)."""
    if not any(mark in text for mark in DASHES):
        return text
    return _ITEM_MARK.sub(lambda m: m.group(1) + "•", text)


def tokenize(text: str) -> list[tuple[int, int]]:
    """Character spans of the tokens of ``text``."""
    return [m.span() for m in _TOKEN.finditer(text)]


# Tokens made only of pictographs and other symbols (emoji, ★, ™, °), modifiers, marks without a letter,
# private-use characters or list bullets (BULLETS: •, ·, ▪, ...). No entity of the ADE
# corpus holds one, so a model has never learnt where they end one: left to it, "ototoxicity 😀" came
# out as one effect, and a bulleted "• Fever" as an effect of two tokens. Tagged O whatever the model says.
_NO_ENTITY = regex.compile(rf"[\p{{So}}\p{{Sk}}\p{{Mn}}\p{{Me}}\p{{Co}}\p{{Cn}}{BULLETS}]+")


def outside_entities(piece: str) -> bool:
    """Whether a token is one no entity may hold (see _NO_ENTITY)."""
    return _NO_ENTITY.fullmatch(piece) is not None


# Written into a line of its own (a CoNLL comment), each line break becomes a space, which keeps every
# offset of the line.
LINE_BREAKS_TO_SPACE = str.maketrans(dict.fromkeys(LINE_BREAKS, " "))


# The sentence rule reads invisible characters (format and control characters, default-ignorables, a
# combining mark after no letter) as spaces, as the tokens do: "cisplatin.\u200b Hearing loss" is two
# sentences, and no sentence starts or ends on one. One character for one keeps every offset.
_INVISIBLE = regex.compile(r"[\p{Cf}\p{DI}[\p{Cc}--[\t " + "".join(f"\\u{ord(c):04x}" for c in LINE_BREAKS)
                           + r"]]]|(?<![\p{L}\p{N}\p{M}])\p{M}+", regex.V1)
_ASCII_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f]")


def _as_visible(text: str) -> str:
    if text.isascii() and not _ASCII_INVISIBLE.search(text):
        return text
    return _INVISIBLE.sub(lambda m: " " * len(m.group()), text)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (a line that may hold a whole abstract).

    Each span is trimmed of surrounding white space (and invisible characters); a text of only white
    space has no sentences.
    """
    text = _as_visible(text)
    spans: list[tuple[int, int]] = []
    block = 0
    hard_breaks = _list_breaks(text, _HARD_BREAK.finditer(text)) if _ANY_LINE_BREAK.search(text) else []
    for hard in [*hard_breaks, None]:
        end = hard.start() if hard else len(text)
        _split_block(text, block, end, spans)
        block = hard.end() if hard else end
    out = []
    for s, e in spans:
        piece = text[s:e]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            out.append((s + lead, s + lead + len(stripped)))
    return out


def _list_breaks(text: str, breaks) -> list:
    """The hard breaks that break: a bulleted item's is skipped while the line before it ends with a
    colon, or is an item of such a list that ends no sentence, so that "Adverse reactions to
    lamotrigine:" and the effects listed under it are one sentence, whose drug and effects can be
    related; up to LIST_CHARACTERS, past which a list (of drugs on admission, say) is a list. A numbered
    item ("1. Cisplatin") always breaks: its number's stop would end the sentence before it."""
    kept, after, listing, since = [], 0, False, 0
    for hard in breaks:
        line = text[after:hard.start()]
        # A paragraph or page separator before the item breaks all the same.
        # A blank line between the lead-in and its items, or between items, is still the list's.
        item = hard.group("item") is not None or _ITEM_AHEAD.match(text, hard.end()) is not None
        if item and not any(c in _PARAGRAPH_END for c in hard.group()):
            lead = line.rstrip().endswith(":")
            if lead and not listing:
                since = hard.start()  # the items' characters are counted, not the lead-in's paragraph
            if (lead or (listing and not _ENDS_SENTENCE.search(line))) and hard.start() - since < LIST_CHARACTERS:
                listing = True
                after = hard.end()
                continue
        listing = False
        kept.append(hard)
        after = hard.end()
    return kept


LIST_CHARACTERS = 1_000
"""How long the items under a lead-in may run in its sentence (about 200 tokens)."""


def _split_block(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    """The sentences of ``text[start:end]``, a stretch with no hard break, appended to ``spans``."""
    opened: list[int] = []  # where the brackets still open in the sentence so far were opened
    scanned = start
    for m in _SENTENCE_END.finditer(text, start, end):
        for b in _BRACKET.finditer(text, scanned, m.end("close")):  # few: not a loop over every character
            if b.group() in "([":
                opened.append(b.start())
            elif opened:
                opened.pop()
        scanned = m.end("close")
        # Only the few characters before the break can hold an abbreviation: searching from the
        # text's start made splitting quadratic in a line's length.
        if (not _starts_sentence(text[m.end()])
                or _abbreviation_before(text, m.start(), m.end())
                or _ITEM_NUMBER.fullmatch(text, start, m.start())
                or (opened and m.start() - opened[-1] <= _BRACKET_REACH
                    and _CLOSER.search(text, m.end(), min(end, opened[-1] + _BRACKET_REACH)))):
            continue
        spans.append((start, m.end("close")))
        start, opened = m.end(), []
        scanned = start
    spans.append((start, end))


def _abbreviation_before(text: str, stop: int, following: int) -> bool:
    """Whether the stop at ``stop`` ends an abbreviation that carries the sentence on to ``following``."""
    found = _ABBREVIATIONS.search(text, max(0, stop - _LONGEST_ABBREVIATION), stop)
    return found is not None and not (_DOTTED.search(found.group()) and _OPENING_WORD.match(text, following))


def windows(text: str, tokens: list[tuple[int, int]], max_tokens: int) -> list[tuple[int, int]]:
    """Cut a sentence of more than ``max_tokens`` tokens into pieces of at most that many, each
    ending after the last ``;``, ``,`` or ``:`` in the second half of its window where there is one.

    A model reads a piece at a time, so a line with no sentence breaks (a table, a list of terms)
    costs memory and time in proportion to its length, and no token is ever dropped. Returns
    ``(first, last)`` token index ranges, end exclusive.
    """
    pieces, first = [], 0
    while len(tokens) - first > max_tokens:
        limit = first + max_tokens
        cut = next((i + 1 for i in range(limit - 1, first + max_tokens // 2, -1)
                    if text[tokens[i][0]:tokens[i][1]] in _SOFT_BREAKS), limit)
        pieces.append((first, cut))
        first = cut
    pieces.append((first, len(tokens)))
    return pieces
