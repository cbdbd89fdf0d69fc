"""The paper's pairwise judge prompt (section 6.1) and a tolerant parser for the judge's answer.

In the core because three plugin families send it (the evaluation family's judges, the providers'
judges, the Hugging Face family's local-model judge): each imports it from here, never from another family.
"""

from __future__ import annotations

import re

JUDGE_PROMPT = (
    "Imagine you are an evaluator who is evaluating answers. You need to evaluate two potential responses to determine "
    "whether any one is more helpful in resolving your issue or following the guidance provided. Consider which response "
    "provides the most practical, informative, and supportive guidance for your situation. Return C if both the responses "
    "are similar in quality and helpfulness. Question/task: {question} Response A: {answer_a} Response B: {answer_b}. "
    "Return answer as single letter: A or B or C. Do not add any additional text to the answer."
)

_PATTERNS = [
    re.compile(r"^\W*([ABC])\W*$"),
    re.compile(r"^\W*([ABC])\b"),
    re.compile(r"\b(?:answer|choice|verdict|response|option)\s*(?:is|:)?\s*\W*([ABC])\b", re.I),
]


def judge_prompt(question: str, answer_a: str, answer_b: str) -> str:
    return JUDGE_PROMPT.format(question=question, answer_a=answer_a, answer_b=answer_b)


def parse_choice(text: str | None) -> str | None:
    """'A', 'B' or 'C' from a judge's reply; None when it is empty, ambiguous or not a verdict."""
    if not text or not text.strip():
        return None
    stripped = text.strip().strip("*").strip()
    for pattern in _PATTERNS:
        m = pattern.search(stripped)
        if m:
            return m.group(1).upper()
    if re.search(r"\btie\b|\bboth (are )?(similar|equal)", stripped, re.I):
        return "C"
    return None
