"""Reading an answer out of free text: numbers (digits, "1,200", "twelve") and single words.

Policies answer "12", "12.", "The answer is 12", "3 + 9 = 12", "twelve" or "12 apples"; all of these mean 12.
The answer is taken after the last "=" or "answer is"/"answer:" marker when one is present, else from the start,
and only the first number (or word) counts, so listing several guesses never earns credit for a later one.
An answer that starts by restating the question's numbers ("5 - 0 is a subtraction", "The largest of 1, 5 and 9
is 9") is read after the restatement, so echoing the question never earns credit by coincidence.
"""

from __future__ import annotations

import re

_UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SMALL = {w: i for i, w in enumerate(_UNITS)} | _TENS
_SCALE = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_WORD = "|".join(sorted([*_SMALL, *_SCALE], key=len, reverse=True))
_WORDS_RUN = re.compile(rf"\b(?:{_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_WORD}))*\b")
_DIGITS = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|(?<![\w.])-?\d+(?:\.\d+)?")
# what stands between the numbers of a restated question: "5 - 0", "1, 5, and 9", "0 minus 0", "1 and 6"
_JOINER = re.compile(r"\s*(?:[-+*/x,]|,?\s*and|minus|plus|or|times)?\s*", re.I)
_MARKER = re.compile(r"(?:answer\s*(?:is|:)|=|result\s*(?:is|:)|equals)", re.I)


def answer_segment(text: str) -> str:
    """The part of a response that holds the answer: after the last answer marker, if any."""
    marks = list(_MARKER.finditer(text))
    return text[marks[-1].end() :] if marks else text


def words_to_int(phrase: str) -> int | None:
    """'one thousand two hundred and five' -> 1205; None if not a number phrase."""
    total, current = 0, 0
    tokens = [t for t in re.split(r"[\s-]+", phrase.lower()) if t and t != "and"]
    if not tokens:
        return None
    for tok in tokens:
        if tok in _SMALL:
            current += _SMALL[tok]
        elif tok == "hundred":
            current = max(current, 1) * 100
        elif tok in _SCALE:
            total += max(current, 1) * _SCALE[tok]
            current = 0
        else:
            return None
    return total + current


def _value(m: re.Match) -> float:
    return float(m.group().replace(",", ""))


def numbers_in(text: str) -> list[float]:
    """The numbers written in digits in ``text``, in order ("1,200" is one number)."""
    return [_value(m) for m in _DIGITS.finditer(text)]


def first_number(text: str, restated: tuple[float, ...] | list[float] = ()) -> float | None:
    """The first number written in digits or in words in the answer segment of ``text``.

    ``restated``: the question's numbers. When the segment's first numbers are exactly these, in order (the answer
    restates the question), the answer is read after them.
    """
    seg = answer_segment(text)
    if restated:
        found = list(_DIGITS.finditer(seg))[: len(restated)]
        if (
            len(found) == len(restated)
            and [_value(m) for m in found] == [float(x) for x in restated]
            and all(_JOINER.fullmatch(seg[a.end() : b.start()]) for a, b in zip(found, found[1:]))
        ):
            seg = seg[found[-1].end() :]
    found: list[tuple[int, float]] = []
    if m := _DIGITS.search(seg):
        found.append((m.start(), _value(m)))
    if m := _WORDS_RUN.search(seg.lower()):
        value = words_to_int(m.group())
        if value is not None:
            found.append((m.start(), float(value)))
    return min(found)[1] if found else None


# lead-in words of answers like "The reversed word is 'god'." ("IT" in capitals can be an upper-case answer)
_FILLER = {
    "the",
    "answer",
    "is",
    "it",
    "its",
    "word",
    "reversed",
    "reverse",
    "backwards",
    "in",
    "capital",
    "capitals",
    "letters",
    "uppercase",
    "upper",
    "case",
    "of",
    "result",
    "that",
    "would",
    "be",
    "spelled",
    "here",
    "a",
    "written",
    "becomes",
    "gives",
    "sure",
    "ok",
    "okay",
}
_QUOTED = re.compile(r"[\"'‘“`]([A-Za-z]+)[\"'’”`]")


def first_word(text: str) -> str | None:
    """The answer word: the first quoted word of the answer segment, else its first word that is not a lead-in."""
    seg = answer_segment(text)
    if m := _QUOTED.search(seg):
        return m.group(1)
    for word in re.findall(r"[A-Za-z]+", seg):
        if word.isupper() and len(word) > 1 or word.lower() not in _FILLER:
            return word
    return None


def number_matches(response: str, expected: int) -> bool:
    value = first_number(response)
    return value is not None and value == expected
