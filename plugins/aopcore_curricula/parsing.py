"""Turn whatever an LLM wrote into questions, never crashing, and say what was dropped and why.

Handles JSON (lists of strings or of {"category", "question"} objects, also inside
code fences), numbered lists, bullets, "category: question" or "[category] question"
labels, prose, refusals and empty text.

What is kept must be a whole question (or a request, a task instruction such as reasoning-gym's "Calculate 12 + 5."
or "Spell this word backward ...", or a "CMV:"/"ELI5:" post): small
feedback models stop mid-sentence at the token limit, leave list markers, labels and
copied scores in the text ("1. 2.1.1: What ...", "#Tag: ...", "... (1.99)"), and answer
like an assistant ("I'm ready to help. What's your first question?"). Markers, labels
and scores are stripped; truncated lines, offers and statements are dropped, each
counted under its reason. Measured on real SmolLM2 outputs by benchmarks/prompt_filter.py.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

REFUSAL = re.compile(r"^\s*(i'?m sorry|i cannot|i can'?t|as an ai|i am unable|i'm unable|sorry, but)", re.I)
LIST_MARK = re.compile(r"^\s*(?:\d{1,3}[.)\]:-]|[-*•·]|\(\d{1,3}\)|\[\d{1,3}\]|q\d{1,3}[.:)])\s*", re.I)
# what a model leaves in front of the question once the list marker is gone: "2.1.1:", "Question 3:", "Q:", "#Tag:", "A:"
LEFT_MARK = re.compile(
    r"^\s*(?:\d{1,3}(?:\.\d{1,3})*\s*[.)\]:-]|\[\d{1,3}\]|(?:question|q)\s*\d{0,3}\s*[.:)-]|#\w{1,40}\s*:|[a-h][:)])\s*",
    re.I,
)
# a score or number copied after the question from the examples it was shown: "(1.99)", "score 0.48", "- 1211122121"
SCORE_TAIL = re.compile(
    r"\s*(?:\(\s*(?:score:?\s*)?-?\d+(?:\.\d+)?\s*\)|\bscore:?\s*-?\d+(?:\.\d+)?|\s-\s*\d*)\s*$", re.I
)
CONVENTION = re.compile(
    r"^(?:eli5|cmv)\s*:", re.I
)  # the post conventions of r/explainlikeimfive and r/changemyview stay in the text
QUESTION_START = re.compile(
    r"^(?:(?:what|why|how|when|where|who|whom|which|whose|is|are|was|were|do|does|did|can|could|should|"
    r"would|will|have|has|may|might|shall|am|any|anyone|explain|describe|tell me|recommend|suggest|"
    r"looking for|need|"
    r"calculate|compute|solve|spell|reverse|sort|simplify|evaluate)\b|eli5\s*:|cmv\s*:)",  # task instructions
    re.I,
)
REQUEST = re.compile(r"\b(?:advice|tips?|recommendations?|suggestions?|thoughts|opinions?|experiences?)\b", re.I)
ENDS_SENTENCE = re.compile(r"[?.!)\"'”’]$")
DANGLING = re.compile(
    r"\b(?:a|an|the|to|of|and|or|but|my|your|our|their|in|on|at|for|with|about|from|by|is|are|was|be|"
    r"what|how|why|when|which|that|if|i|i'm|you|we|than|as|very|some)$",
    re.I,
)
ASSISTANT = re.compile(
    r"\b(?:i'?m|i am) (?:ready|here|glad|happy|delighted|available) to (?:help|assist)|\bi'?m here to\b|"
    r"\b(?:how|what) (?:can|may) i (?:help|assist|do for you)|\b(?:can|may) i (?:help|assist) you\b|\bassist you\b|"
    r"\bwhat'?s your (?:first |next )?question|\bquestions? (?:you'?d|you would) like to ask|\bask (?:me\b|your quer)|"
    r"\bi hope (?:this|these|that) helps?\b|\bas an? (?:friendly |helpful )?ai\b|"
    r"\bi'?d be (?:happy|glad) to\b|\bi'?ll (?:be happy|do my best|respond|provide|create)\b|"
    r"\bi'?m not sure i'?m the (?:right|best)\b|\byou(?:'re| are) referring to\b|\blooking forward to your\b|"
    r"^(?:your|these|the) questions?\b.{0,40}\b(?:is|are|were)\b|^your (?:questions?|answers?)\s*:|\bwhich of these questions\b",
    re.I,
)
LABEL = re.compile(
    r"^\s*(?:\[(?P<b>[^\]]{2,40})\]|\((?P<p>[^)]{2,40})\)|(?P<c>(?:r/)?[A-Za-z_ ]{3,30})\s*[:|\-–]\s+)\s*(?P<q>.+)$"
)
PREAMBLE = re.compile(
    r"^(here (are|is)|sure|certainly|okay|ok,|below|these|the following|questions?:|new questions)", re.I
)
FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def normalise_category(label: str, categories: Iterable[str]) -> str | None:
    """Map 'r/AskBaking', 'ask_baking', 'askbaking_train' to a known category, or None."""
    key = re.sub(r"[^a-z0-9]", "", label.lower().strip().removeprefix("r/")).removesuffix("train")
    table = {re.sub(r"[^a-z0-9]", "", c.lower()): c for c in categories}
    aliases = {"eli5": "explainlikeimfive", "cmv": "changemyview"}
    return table.get(key) or table.get(aliases.get(key, ""))


@dataclass
class ParsedItem:
    text: str
    category: str | None = None
    answer: str | None = None  # the reference answer the writer gave with the question (parse_questions(answers=True))


# "What is 2 + 3? Answer: 5" on one line, or "Answer: 5" on the line after the question
ANSWER_IN = re.compile(r"\s+(?:\|\|?\s*)?(?:reference\s+)?answer\s*[:=]\s*", re.I)
ANSWER_LINE = re.compile(r"^\s*(?:[-*]\s*)?(?:reference\s+)?answer\s*[:=]\s*(?P<a>.*)$", re.I)


def _answer_text(raw: str | None) -> str | None:
    text = (raw or "").strip().strip('"“”').strip()
    return text or None


def split_answers(lines: list[str]) -> list[tuple[str, str | None]]:
    """(question line, its answer or None): an answer stays with the question it follows, on its line or the next."""
    out: list[tuple[str, str | None]] = []
    for line in lines:
        only = ANSWER_LINE.match(line)
        if only:
            if out and out[-1][1] is None:
                out[-1] = (out[-1][0], _answer_text(only.group("a")))
            continue
        m = ANSWER_IN.search(line)
        out.append((line[: m.start()], _answer_text(line[m.end() :])) if m else (line, None))
    return out


@dataclass
class ParseResult:
    items: list[ParsedItem] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)

    def merge(self, other: ParseResult) -> None:
        self.items.extend(other.items)
        self.dropped.update(other.dropped)


def _clean(text: str) -> str:
    """Strip quotes, bold, leftover markers and labels, and copied scores, until nothing changes."""
    text = re.sub(r"\s+", " ", text).strip()
    for _ in range(4):
        before = text
        text = SCORE_TAIL.sub("", text).strip().strip('"“”').strip("'").strip()
        text = re.sub(r"^\*\*(.+?)\*\*$", r"\1", text).strip("*").strip()
        if not CONVENTION.match(text):
            text = LEFT_MARK.sub("", text, count=1)
            label = LABEL.match(text)
            if label and label.group("c") and QUESTION_START.match(label.group("q").lstrip('"“')):
                text = label.group("q")  # "Ladakhim Pass: What's ...", "Challenge: \"CMV: ...\"": an unknown label
        if text == before:
            break
    return text


def candidate_lines(raw: str) -> list[str]:
    """The units judged one by one: non-empty lines, or the sentences of a one-paragraph answer."""
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    if len(lines) == 1 and raw.count("?") > 1:  # prose: several questions in one paragraph
        lines = [s.strip() + "?" for s in raw.split("?") if s.strip()]
    return lines


def question_problem(text: str, *, raw_end: str = "", last: bool = False) -> str | None:
    """Why ``text`` (cleaned) is not a whole question a user could post, or None.

    ``raw_end`` is how the line ended before cleaning (a closing quote shows the model finished the item);
    ``last`` marks the response's final line, the one a token limit cuts.
    """
    if REFUSAL.match(text):
        return "refusal"
    if ASSISTANT.search(text):
        return "assistant talk, not a question"
    if "?" not in text and not QUESTION_START.match(text) and not REQUEST.search(text):
        return "statement, not a question"
    if not (ENDS_SENTENCE.search(text) or ENDS_SENTENCE.search(raw_end)) and (
        last or DANGLING.search(text) or "?" not in text
    ):
        return "truncated"  # "What is the best way to", "What happens when you move": no question ends like that
    return None


def _keep_if_question(result: ParseResult, text: str, category: str | None, answer: str | None = None) -> None:
    problem = question_problem(text, raw_end=".")  # a JSON string is a whole item: never cut by the token limit
    if problem:
        result.dropped[problem] += 1
    else:
        result.items.append(ParsedItem(text, category, answer))


def _from_json(raw: str, categories: list[str], result: ParseResult) -> bool:
    candidates = [m.group(1) for m in FENCE.finditer(raw)] or [raw]
    for chunk in candidates:
        start = min([i for i in (chunk.find("["), chunk.find("{")) if i >= 0], default=-1)
        if start < 0:
            continue
        try:
            data = json.loads(chunk[start:])
        except json.JSONDecodeError:
            try:  # trailing prose after the JSON
                data, _ = json.JSONDecoder().raw_decode(chunk[start:])
            except json.JSONDecodeError:
                continue
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        if not isinstance(data, list) or not any(isinstance(e, (str, dict)) for e in data):
            continue  # "[1] How do I ...": a bracketed list marker, not a JSON answer
        for entry in data:
            if isinstance(entry, str):
                _keep_if_question(result, _clean(entry), None)
            elif isinstance(entry, dict):
                text = entry.get("question") or entry.get("text") or entry.get("prompt")
                label = entry.get("category") or entry.get("domain") or entry.get("subreddit")
                if not isinstance(text, str):
                    result.dropped["json item without question"] += 1
                    continue
                cat = normalise_category(label, categories) if isinstance(label, str) else None
                if isinstance(label, str) and cat is None:
                    result.dropped["unknown category"] += 1
                    continue
                answer = entry.get("answer")
                _keep_if_question(result, _clean(text), cat, _answer_text(str(answer)) if answer is not None else None)
            else:
                result.dropped["json item not text"] += 1
        return True
    return False


def parse_questions(
    raw: str | None, categories: list[str], *, min_chars: int = 12, max_chars: int = 600, answers: bool = False
) -> ParseResult:
    """Questions (and, with ``answers``, the reference answer written with each) in ``raw``; drops counted by reason."""
    result = ParseResult()
    if raw is None or not raw.strip():
        result.dropped["empty response"] += 1
        return result
    if REFUSAL.match(raw) and "?" not in raw[:400]:
        result.dropped["refusal"] += 1
        return result
    if not _from_json(raw, categories, result):
        pairs = split_answers(candidate_lines(raw)) if answers else [(ln, None) for ln in candidate_lines(raw)]
        lines = [ln for ln, _ in pairs]
        for n, (line, answer) in enumerate(pairs):
            listed = bool(LIST_MARK.match(line))
            body = LIST_MARK.sub("", line, count=1).strip()
            category = None
            convention = CONVENTION.match(body.lstrip("\"“'* "))
            m = None if convention else LABEL.match(body)
            if m:
                label = m.group("b") or m.group("p") or m.group("c")
                category = normalise_category(label, categories)
                if category is not None:
                    body = m.group("q")
                elif m.group("b") or m.group("p"):
                    result.dropped["unknown category"] += 1
                    continue
            elif convention:
                category = normalise_category(convention.group(0).rstrip(": "), categories)
            raw_end = body.rstrip()[-1:]
            if ASSISTANT.search(
                body
            ):  # before cleaning: 'Your question: "..." is a classic riddle.' loses its label there
                result.dropped["assistant talk, not a question"] += 1
                continue
            body = _clean(body)
            if not listed and category is None and (PREAMBLE.match(body) or body.endswith(":")):
                result.dropped["preamble"] += 1
                continue
            if not listed and category is None and "?" not in body and not CONVENTION.match(body):
                result.dropped["prose, not a question"] += 1
                continue
            if not body or (listed and len(body) < 3):
                result.dropped["list marker without a question"] += 1
                continue
            problem = question_problem(body, raw_end=raw_end, last=n == len(lines) - 1)
            if problem:
                result.dropped[problem] += 1
                continue
            result.items.append(ParsedItem(body, category, answer))
    kept = []
    for item in result.items:
        if len(item.text) < min_chars:
            result.dropped["too short"] += 1
        elif len(item.text) > max_chars:
            result.dropped["too long"] += 1
        elif REFUSAL.match(item.text):
            result.dropped["refusal"] += 1
        else:
            kept.append(item)
    result.items = kept
    return result
