"""The sequence tier's categories: reasoning-gym tasks at fixed difficulty levels, a task x level each.

Each :class:`Task` names a reasoning-gym dataset, the config it always uses (``fixed``), and per level the values of
one of the task's difficulty attributes (the attribute and its config fields are those of the task's curriculum in
``reasoning_gym.coaching``; tests/testbed/test_sequence_tier.py checks the names). Questions are reasoning-gym's own
(``reasoning_gym.create_dataset(name, size=, seed=, **config)``) and answers are scored by the dataset's own
``score_answer(answer, entry)``. The entry is rebuilt from the question text (every task here states its whole
problem in the question), so the reward needs nothing but the prompt and the response, like the bandit tier's
verifier; a test checks the rebuilt answer is the one reasoning-gym generated.

Each question is reasoning-gym's text on one line (runs of white space become one space) ending in a full stop
(``one_line``): the curricula exchange questions with the feedback LLM as lines of text, and drop a line that does
not end like a sentence as cut off. The task's words are unchanged.

The tasks were chosen so that answers are short sequences a character-level policy samples token by token (3-30
characters) and prompts stay short: spelling a word backwards, adding or subtracting two numbers, reversing a
list of words.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class Level:
    """One difficulty level: the config values of the task's difficulty attribute, and the SFT plan for it."""

    config: dict[str, Any]
    examples: int  # SFT records of this category
    correct: float  # the share of them that show the right answer (the rest show the task's wrong habit)
    clean: float = 1.0  # the share of the right answers shown as they are (the rest end in the task's ``suffix``)


@dataclass(frozen=True)
class Task:
    """A reasoning-gym task: how to recognise and solve its questions from their text, and its wrong habit."""

    dataset: str  # reasoning-gym's name for it
    attribute: str  # the difficulty attribute in reasoning_gym.coaching the levels move
    fixed: dict[str, Any]  # config every level shares
    levels: dict[str, Level]
    pattern: re.Pattern[str]  # matches this task's questions; groups feed ``solve`` and ``level_of``
    solve: Callable[[re.Match[str]], str]  # the answer reasoning-gym gives, from the question text
    level_of: Callable[[re.Match[str]], str | None]  # which level the question is, from its text
    habit: Callable[[re.Match[str]], str]  # the plausible wrong answer the SFT data mixes in (always wrong)
    suffix: str = ""  # a format habit: what a right answer the SFT data does not show clean ends in (never exact)
    wording: str = ""  # the question's fixed words (what the policy's tokenizer is trained on)
    description: str = ""

    def config(self, level: str) -> dict[str, Any]:
        return {**self.fixed, **self.levels[level].config}


# ---- spell_backward ---------------------------------------------------------------------------------------------


def _spell(m: re.Match[str]) -> str:
    return m.group(1)[::-1]


def _spell_habit(m: re.Match[str]) -> str:
    word, answer = m.group(1), m.group(1)[::-1]
    return word if word.lower() != answer.lower() else answer[:-1]  # copying the word; a palindrome loses a letter


# ---- basic_arithmetic -------------------------------------------------------------------------------------------


def _arith(m: re.Match[str]) -> str:
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return str(a + b if op == "+" else a - b)


def _arith_level(m: re.Match[str]) -> str | None:
    top = max(int(m.group(1)), int(m.group(3)))  # reasoning-gym draws each number from 0 to 10 ** num_digits
    return "easy" if top <= 10 else "hard" if top <= 100 else None


def _arith_habit(m: re.Match[str]) -> str:
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    if b == 0:
        return str(a + 10)
    return str(a - b if op == "+" else a + b)  # the other operation


# ---- word_sequence_reversal -------------------------------------------------------------------------------------


def _words(m: re.Match[str]) -> list[str]:
    return m.group(1).split(", ")


def _reverse(m: re.Match[str]) -> str:
    return ", ".join(reversed(_words(m)))


def _reverse_level(m: re.Match[str]) -> str | None:
    n = len(_words(m))
    return "easy" if n == 2 else "hard" if n == 3 else None


def _reverse_habit(m: re.Match[str]) -> str:
    words = _words(m)
    same = ", ".join(words)
    return same if same != _reverse(m) else ", ".join(words[:-1])  # the words as given


TASKS: dict[str, Task] = {
    "spell_backward": Task(
        dataset="spell_backward",
        attribute="word_len",  # coaching levels 3, 5, 7, 9, 11: easy and hard are its first two
        fixed={},
        levels={
            "easy": Level({"min_word_len": 3, "max_word_len": 3}, examples=800, correct=0.9, clean=0.3),
            "hard": Level({"min_word_len": 5, "max_word_len": 5}, examples=1200, correct=0.9, clean=0.3),
        },
        pattern=re.compile(r"^Spell this word backward \(example: sun -> nus\): ([A-Za-z0-9]+)\.$"),
        solve=_spell,
        level_of=lambda m: {3: "easy", 5: "hard"}.get(len(m.group(1))),
        habit=_spell_habit,
        suffix=".",
        wording="Spell this word backward (example: sun -> nus): .",
        description="spelling an English word backwards (3 letters, then 5)",
    ),
    "basic_arithmetic": Task(
        dataset="basic_arithmetic",
        attribute="num_digits",  # coaching levels 1, 2, 3, 4: easy and hard are its first two
        fixed={
            "min_terms": 2,
            "max_terms": 2,
            "operators": ("+", "-"),
            "allow_parentheses": False,
            "allow_negation": False,
        },
        levels={
            "easy": Level({"min_digits": 1, "max_digits": 1}, examples=600, correct=0.8, clean=0.4),
            "hard": Level({"min_digits": 2, "max_digits": 2}, examples=600, correct=0.5),
        },
        pattern=re.compile(r"^Calculate (\d+) ([+-]) (\d+)\.$"),
        solve=_arith,
        level_of=_arith_level,
        habit=_arith_habit,
        suffix=".0",
        wording="Calculate + . Calculate - .",
        description="adding or subtracting two numbers (up to 10, then up to 100)",
    ),
    "word_sequence_reversal": Task(
        dataset="word_sequence_reversal",
        attribute="words",  # coaching levels start at 10 words, far beyond a tiny policy: 2, then 3
        fixed={},
        levels={
            "easy": Level({"min_words": 2, "max_words": 2}, examples=1300, correct=0.9, clean=0.3),
            "hard": Level({"min_words": 3, "max_words": 3}, examples=300, correct=0.4),
        },
        pattern=re.compile(
            r"^Solve the following problem\. Provide you answer as a comma-separated list of words with a space "
            r"after the comma\. Reverse this list of words: ([A-Za-z0-9]+(?:, [A-Za-z0-9]+)+)\.$"
        ),
        solve=_reverse,
        level_of=_reverse_level,
        habit=_reverse_habit,
        suffix=".",
        wording="Solve the following problem. Provide you answer as a comma-separated list of words with a space "
        "after the comma. Reverse this list of words: , .",
        description="reversing a list of words (2 words, then 3)",
    ),
}

CATEGORIES = [f"{task}_{level}" for task, t in TASKS.items() for level in t.levels]


def split_category(category: str) -> tuple[Task, str]:
    """(task, level) of a category name such as ``spell_backward_hard``."""
    name, _, level = category.rpartition("_")
    if name not in TASKS or level not in TASKS[name].levels:
        raise KeyError(category)
    return TASKS[name], level


def match(question: str) -> tuple[str, Task, re.Match[str]] | None:
    """(task name, task, match) for a question one of the tasks asks, else None."""
    for name, task in TASKS.items():
        if m := task.pattern.match(question.strip()):
            return name, task, m
    return None


def category_of(question: str) -> str | None:
    """The category (task and level) ``question`` belongs to, from its text alone; None if it is none of them."""
    found = match(question)
    if found is None:
        return None
    name, task, m = found
    level = task.level_of(m)
    return f"{name}_{level}" if level else None


def answer_of(question: str) -> str | None:
    """The reference answer, from the question text (None when no task asks it)."""
    found = match(question)
    return None if found is None else found[1].solve(found[2])


def habit_of(question: str) -> str:
    """The task's plausible wrong answer to ``question`` (what the SFT data shows when it shows a wrong one)."""
    found = match(question)
    if found is None:
        raise ValueError(f"not a sequence-tier question: {question[:60]!r}")
    return found[1].habit(found[2])


@cache
def _dataset(name: str):
    """The reasoning-gym dataset object whose ``score_answer`` scores ``name``'s answers (built once)."""
    import reasoning_gym

    return reasoning_gym.create_dataset(name, size=1, seed=0, **TASKS[name].config(next(iter(TASKS[name].levels))))


def score(question: str, response: str) -> float | None:
    """The task's own score of ``response`` (reasoning-gym's ``score_answer``), or None for a question of no task."""
    found = match(question)
    if found is None:
        return None
    name, task, m = found
    entry = {"question": question, "answer": task.solve(m), "metadata": {"source_dataset": name}}
    return float(_dataset(name).score_answer(response.strip(), entry))


def one_line(question: str) -> str:
    """reasoning-gym's question as the tier asks it: one line, ending in a full stop (see the module docstring)."""
    text = " ".join(question.split())
    return text if text.endswith((".", "?", "!")) else text + "."


def make(category: str, rng: random.Random) -> str:
    """A new question of ``category``, drawn from reasoning-gym with a seed from ``rng``."""
    return draw(category, 1, rng.randrange(2**31))[0]


def draw(category: str, n: int, seed: int, exclude: set[str] | None = None, *, at_most: bool = False) -> list[str]:
    """``n`` distinct questions of ``category`` from reasoning-gym (seeded), none in ``exclude`` (which grows);
    with ``at_most``, fewer when the level has no more (adding numbers up to 10 has 242 questions).

    Questions whose text falls into another level (a 3-digit draw that happens to use two small numbers) are
    skipped, so every question's category is the one its text says.
    """
    import reasoning_gym

    task, level = split_category(category)
    name = category.rsplit("_", 1)[0]
    exclude = set() if exclude is None else exclude
    out: list[str] = []
    size = max(4 * n, 16)
    for attempt in range(20):
        ds = reasoning_gym.create_dataset(name, size=size, seed=seed + attempt * 7919, **task.config(level))
        for entry in ds:
            q = one_line(entry["question"])
            if q in exclude or category_of(q) != category:
                continue
            exclude.add(q)
            out.append(q)
            if len(out) == n:
                return out
    if at_most and out:
        return out
    raise RuntimeError(f"testbed-seq: category {category} ran out of distinct questions")
