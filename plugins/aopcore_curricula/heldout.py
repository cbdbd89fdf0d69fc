"""Never train on a held-out question: a prompt that repeats one word for word leaks the evaluation into training.

Score-based generation (SOP, AOP, eva) drops such copies as it parses (``generators.py``). The curricula that take
prompts from a set (vanilla's written pool, ``pool``, and the online curricula's pools) drop them here, compared as
the round record's audit compares them (:func:`aopcore.engine.prompt_audit.normalised`: case, punctuation and spacing
ignored), and count them under the same reason, ``dropped["held-out question"]``, in the iteration's generation
log, which the round record's ``audit.generation_dropped`` shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from aopcore import CurriculumContext
from aopcore.engine.prompt_audit import normalised
from aopcore.storage.rundir import curriculum_log_names

HELDOUT_COPY = "held-out question"  # the reason's name in every generation log


def heldout_keys(ctx: CurriculumContext, extra: Iterable[str] = ()) -> set[str]:
    """The normalised held-out questions: ``ctx.heldout`` (the experiment and a session give it whether or not an
    evaluation was made), else the evaluation's questions (a hand-built context may carry only those). Not both: a
    round chosen from rollouts (``aopcore_integrations.groups``) has the training questions in its evaluation."""
    texts = [*(ctx.heldout or [r.question for r in ctx.evaluation]), *extra]
    return {normalised(t) for t in texts}


def is_copy(text: str, keys: set[str]) -> bool:
    return normalised(text) in keys


def without_copies(prompts: Sequence[Any], keys: set[str]) -> tuple[list[Any], int]:
    """``prompts`` (anything with a ``text``) less those that are a held-out question, and how many were dropped."""
    kept = [p for p in prompts if not is_copy(p.text, keys)]
    return kept, len(prompts) - len(kept)


def book(ctx: CurriculumContext, dropped: int, **fields: Any) -> None:
    """Write the iteration's generation log for a curriculum that draws from a set (it writes no other):
    ``dropped["held-out question"]`` (0 too, so the record shows the check ran) and ``fields``."""
    from aopcore.storage.store import atomic_write_json

    log: dict[str, Any] = {**fields, "dropped": {HELDOUT_COPY: int(dropped)}}
    atomic_write_json(Path(ctx.workdir) / curriculum_log_names(ctx.iteration)[0], log)


__all__ = ["HELDOUT_COPY", "book", "heldout_keys", "is_copy", "without_copies"]
