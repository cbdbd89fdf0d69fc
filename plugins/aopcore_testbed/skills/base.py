"""What every testbed category provides: question generation, the answer from the question text, and checking."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Skill:
    """One category. Subclasses set ``name``, ``patterns`` and implement ``make``, ``solve_match`` and ``distractor``.

    ``patterns`` are the phrasings the category's questions use; ``solve`` recognises a question by them,
    so the answer is always recomputed from the question text (no answer key is stored anywhere).
    ``numeric`` answers are compared as numbers, word answers as words (``case_sensitive`` for upper case).
    """

    name: str = ""
    description: str = ""
    numeric: bool = True
    case_sensitive: bool = False

    @property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        raise NotImplementedError

    def make(self, rng: random.Random) -> str:
        """A new question of this category."""
        raise NotImplementedError

    def universe(self) -> list[str]:
        """Every question this category can make (finite: the policy's vocabulary is built from them)."""
        raise NotImplementedError

    def solve_match(self, m: re.Match[str]) -> str:
        raise NotImplementedError

    def distractor(self, question: str) -> str:
        """The plausible wrong answer the SFT data mixes in (the policy's wrong habit that RL has to unlearn)."""
        raise NotImplementedError

    def hard(self, question: str) -> bool:
        """Half of each category is 'hard': the SFT data shows the right answer less often there."""
        return sum(map(ord, question)) % 2 == 1

    def solve(self, question: str) -> str | None:
        """The correct answer (canonical text), or None if ``question`` is not one of this category's questions."""
        for pattern in self.patterns:
            if m := pattern.search(question):
                return self.solve_match(m)
        return None

    def check(self, question: str, response: str) -> bool | None:
        """Whether ``response`` answers ``question`` correctly; None if the question is not of this category."""
        from aopcore_testbed.skills.answers import first_number, first_word, numbers_in

        expected = self.solve(question)
        if expected is None:
            return None
        if self.numeric:
            value = first_number(response, numbers_in(question))
            return value is not None and value == float(expected)
        word = first_word(response)
        if word is None:
            return False
        return word == expected if self.case_sensitive else word.lower() == expected.lower()


def _made_up_words(n: int, lengths: tuple[int, int], seed: str) -> tuple[str, ...]:
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        out["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(*lengths)))] = None
    return tuple(out)


# Fixed lists of made-up words, so the policy's word-level vocabulary covers every question and answer.
# The checks do not use them: any word is checked from the question text.
THREE_LETTER = _made_up_words(80, (3, 3), "testbed/words3")
ANY_LENGTH = _made_up_words(120, (2, 7), "testbed/words")
