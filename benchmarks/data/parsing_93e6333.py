# The prompt filter as it was at commit 93e6333 (plugins/aopcore_curricula/parsing.py), kept verbatim as the
# baseline of benchmarks/prompt_filter.py. Not imported by aopcore.
"""Turn whatever an LLM wrote into questions, never crashing, and say what was dropped and why.

Handles JSON (lists of strings or of {"category", "question"} objects, also inside
code fences), numbered lists, bullets, "category: question" or "[category] question"
labels, prose, refusals and empty text.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

REFUSAL = re.compile(r"^\s*(i'?m sorry|i cannot|i can'?t|as an ai|i am unable|i'm unable|sorry, but)", re.I)
LIST_MARK = re.compile(r"^\s*(?:\d{1,3}[.)\]:-]|[-*•·]|\(\d{1,3}\)|q\d{1,3}[.:)])\s*", re.I)
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


@dataclass
class ParseResult:
    items: list[ParsedItem] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)

    def merge(self, other: ParseResult) -> None:
        self.items.extend(other.items)
        self.dropped.update(other.dropped)


def _clean(text: str) -> str:
    text = text.strip().strip('"').strip("'").strip()
    text = re.sub(r"^\*\*(.+?)\*\*$", r"\1", text)
    return re.sub(r"\s+", " ", text)


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
        if not isinstance(data, list):
            continue
        for entry in data:
            if isinstance(entry, str):
                result.items.append(ParsedItem(_clean(entry)))
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
                result.items.append(ParsedItem(_clean(text), cat))
            else:
                result.dropped["json item not text"] += 1
        return True
    return False


def parse_questions(
    raw: str | None, categories: list[str], *, min_chars: int = 12, max_chars: int = 600
) -> ParseResult:
    result = ParseResult()
    if raw is None or not raw.strip():
        result.dropped["empty response"] += 1
        return result
    if REFUSAL.match(raw) and "?" not in raw[:400]:
        result.dropped["refusal"] += 1
        return result
    if not _from_json(raw, categories, result):
        lines = [ln for ln in raw.splitlines() if ln.strip()]
        if len(lines) == 1 and raw.count("?") > 1:  # prose: several questions in one paragraph
            lines = [s.strip() + "?" for s in raw.split("?") if s.strip()]
        for line in lines:
            listed = bool(LIST_MARK.match(line))
            body = LIST_MARK.sub("", line, count=1).strip()
            category = None
            m = LABEL.match(body)
            if m:
                label = m.group("b") or m.group("p") or m.group("c")
                category = normalise_category(label, categories)
                if category is not None:
                    body = m.group("q")
                elif m.group("b") or m.group("p"):
                    result.dropped["unknown category"] += 1
                    continue
            body = _clean(body)
            if not listed and category is None and (PREAMBLE.match(body) or body.endswith(":")):
                result.dropped["preamble"] += 1
                continue
            if not listed and category is None and "?" not in body:
                result.dropped["prose, not a question"] += 1
                continue
            result.items.append(ParsedItem(body, category))
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
