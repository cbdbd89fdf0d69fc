"""The testbed's categories, one module each, and lookup of a question's category from its text alone."""

from __future__ import annotations

from aopcore_testbed.skills.addition import Addition
from aopcore_testbed.skills.base import Skill
from aopcore_testbed.skills.conversion import Conversion
from aopcore_testbed.skills.counting import Counting
from aopcore_testbed.skills.maximum import Maximum
from aopcore_testbed.skills.reversal import Reversal
from aopcore_testbed.skills.subtraction import Subtraction
from aopcore_testbed.skills.uppercase import Uppercase

SKILLS: dict[str, Skill] = {
    s.name: s for s in (Addition(), Subtraction(), Maximum(), Counting(), Reversal(), Uppercase(), Conversion())
}
CATEGORIES = list(SKILLS)


def skill_of(question: str) -> Skill | None:
    """The category whose phrasing ``question`` uses, or None for a question the testbed cannot check."""
    for skill in SKILLS.values():
        if skill.solve(question) is not None:
            return skill
    return None


def check(question: str, response: str) -> bool | None:
    """Correct or not, from the question text alone; None when the question is not checkable."""
    skill = skill_of(question)
    return None if skill is None else skill.check(question, response)


__all__ = ["CATEGORIES", "SKILLS", "Skill", "check", "skill_of"]
