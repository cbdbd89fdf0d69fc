"""``testbed-writer``: a FeedbackLLM that writes testbed questions in the categories the curriculum's prompt asks for.

It reads the same prompts the curricula send a real LLM (aopcore_curricula.templates: vanilla keyword prompts,
score-based prompts with llm or per-category targeting, paper or compact style) and answers in text, as a chat
model would: a preamble line, then a numbered list, or ``domain | question`` lines when the prompt asks for that
format. The curricula parse and de-duplicate that text exactly as they do a real model's reply, so a curriculum
runs here as it runs against Gemini, with the difference that every question it ends up with is checkable.

What it reads from a prompt:
- the number of questions ("Write 5 ...", "a set of 50 questions");
- a named target domain (the first quoted name or r/name that is a testbed category: 'does worst in the domain
  "x"', 'a forum about "x"'): every question goes there;
- otherwise (the paper's prompt, llm targeting) the "Mean score per domain" summary: questions go to domains
  with weight (1 - score) ** focus, the way a capable model follows "primarily focused on domains that have
  received a low score", each labelled "domain | question";
- otherwise the first category named in the prompt's last lines (a custom ``category_wording``).
A prompt that names none of the testbed's categories gets a refusal, as a real model's off-topic reply would
(the parser drops it). A prompt that asks for a reference answer with each question (a curriculum's
``answers = "writer"``) gets "Answer: <answer>" after every question: the writer knows it, since every question it
writes is a testbed task solved from its text. :meth:`TestbedWriter.category_of` tells which category a question
really is, so a round record can show whether the curriculum's labels agree.
The reply depends only on the writer's seed and the prompt text: deterministic, and different for every draw.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from typing import ClassVar

from aopcore import record_usage
from aopcore_testbed.options import WriterOptions
from aopcore_testbed.skills import CATEGORIES, SKILLS, skill_of

_COUNT = re.compile(r"\b(?:write|set of)\s+(?:exactly\s+)?(\d{1,4})\b", re.I)
_NAMED = re.compile(r'"([^"\n]{2,40})"|\br/([A-Za-z0-9_]+)')
_SUMMARY = re.compile(r"^\s*([A-Za-z0-9_]+):\s*(-?\d+(?:\.\d+)?)\s*$", re.M)
_DOMAIN_FORMAT = re.compile(r"domain \| question")
_ANSWER_REQUEST = re.compile(r"reference answer", re.I)


def _category(label: str, categories: Sequence[str] = CATEGORIES) -> str | None:
    key = re.sub(r"[^a-z0-9]", "", label.lower())
    return next((c for c in categories if re.sub(r"[^a-z0-9]", "", c) == key), None)


class TestbedWriter:
    """Writes checkable questions in the requested categories; see the module docstring for what it reads.

    A tier with other categories subclasses it and sets ``CATEGORIES`` and overrides ``write``, ``answer`` and
    ``category_of`` (the sequence tier's writer does).
    """

    Options = WriterOptions
    CATEGORIES: ClassVar[list[str]] = CATEGORIES

    def __init__(self, options: WriterOptions | None = None) -> None:
        self.options = options or WriterOptions()

    def complete(self, prompts: Sequence[str]) -> list[str]:
        replies = [self._reply(p) for p in prompts]
        # no tokenizer: words stand in for tokens, so equal-compute comparisons see what a feedback call reads and writes
        record_usage(
            feedback_calls=len(prompts),
            prompt_tokens=sum(len(p.split()) for p in prompts),
            tokens_generated=sum(len(r.split()) for r in replies),
        )
        return replies

    @staticmethod
    def category_of(question: str) -> str | None:
        """The testbed category ``question`` really is (from its phrasing), or None: the label checker."""
        skill = skill_of(question)
        return skill.name if skill is not None else None

    def write(self, category: str, rng: random.Random) -> str:
        """A new question of ``category``."""
        return SKILLS[category].make(rng)

    def answer(self, category: str, question: str) -> str:
        """The reference answer to ``question`` (one the writer wrote for ``category``)."""
        return SKILLS[category].solve(question) or ""

    def _rng(self, prompt: str) -> random.Random:
        digest = hashlib.sha256(f"{self.options.seed}\0{prompt}".encode()).hexdigest()
        return random.Random(int(digest[:16], 16))

    def requested(self, prompt: str) -> tuple[int, dict[str, float] | str | None]:
        """(number of questions, target): a category name, per-domain weights, or None if nothing usable is asked."""
        m = _COUNT.search(prompt)
        n = int(m.group(1)) if m else 10
        for quoted, reddit in _NAMED.findall(prompt):
            if cat := _category(quoted or reddit, self.CATEGORIES):
                return n, cat
        scores = {c: float(s) for name, s in _SUMMARY.findall(prompt) if (c := _category(name, self.CATEGORIES))}
        if scores:
            return n, {c: max(1.0 - s, 0.0) ** self.options.focus + 1e-3 for c, s in scores.items()}
        tail = prompt[-400:].lower()
        found = [(m.start(), c) for c in self.CATEGORIES if (m := re.search(rf"\b{c}\b", tail))]
        return n, min(found)[1] if found else None

    def _reply(self, prompt: str) -> str:
        rng = self._rng(prompt)
        n, target = self.requested(prompt)
        if target is None:
            return f"I'm sorry, I can only write questions about {', '.join(self.CATEGORIES)}."
        if isinstance(target, str):
            cats = [target] * n
        else:
            names = sorted(target)
            cats = rng.choices(names, weights=[target[c] for c in names], k=n)
        lines = [f"Here are {n} questions:"] if self.options.preamble else []
        labelled = bool(_DOMAIN_FORMAT.search(prompt))
        answered = bool(_ANSWER_REQUEST.search(prompt))
        for i, cat in enumerate(cats, start=1):
            q = self.write(cat, rng)
            line = f"{cat} | {q}" if labelled else f"{i}. {q}"
            lines.append(f"{line} Answer: {self.answer(cat, q)}" if answered else line)
        return "\n".join(lines)
