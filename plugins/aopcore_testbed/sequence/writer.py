"""``testbed-seq-writer``: the testbed writer for the sequence tier, writing reasoning-gym questions on request.

It reads the curricula's prompts exactly as ``testbed-writer`` does (aopcore_testbed.writer: the count, a named
target category, the per-domain score summary, the answer request) and answers in the same chat-like text; what it
writes are new reasoning-gym questions of the task and level the prompt asks for (``tasks.make``: a draw from
``reasoning_gym.create_dataset`` with that level's config, seeded from the prompt and the writer's seed). A
category is ``<task>_<level>``, e.g. ``spell_backward_hard``; :meth:`SequenceWriter.category_of` tells which one a
question really is, from its text.
"""

from __future__ import annotations

import random

from aopcore_testbed.options import WriterOptions
from aopcore_testbed.sequence.tasks import CATEGORIES, answer_of, category_of, make
from aopcore_testbed.writer import TestbedWriter


class SequenceWriter(TestbedWriter):
    """Writes new questions of the requested reasoning-gym task and level; see the module docstring."""

    Options = WriterOptions
    CATEGORIES = CATEGORIES

    @staticmethod
    def category_of(question: str) -> str | None:
        return category_of(question)

    def write(self, category: str, rng: random.Random) -> str:
        return make(category, rng)

    def answer(self, category: str, question: str) -> str:
        return answer_of(question) or ""
