"""What a round's prompts are, beside how many of each label: the round record shows it, so a clean allocation
cannot hide prompts that are not what their label says, copies of held-out questions, or missing answers.

- ``heldout_overlap``: prompts whose text equals a held-out question once case, punctuation and spacing are
  normalised (training on them inflates the held-out score).
- ``label_checked``/``label_agreement``: where a checker can tell a question's category (a feedback LLM with a
  ``category_of(question) -> str | None`` method, such as the testbed's writer), how many prompts it could tell
  and the share whose label matches.
- ``generation_dropped``: what the curriculum's generation log says it dropped, by reason.
- ``with_answer``: prompts carrying a reference answer (``metadata["answer"]``) for a verifiable reward.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aopcore.records import Prompt
from aopcore.storage.rundir import curriculum_log_names

_SYMBOLS = "+\\-*/=<>%^×÷−"  # they change what a question asks: kept, each as a word of its own
_SYMBOL = re.compile(f"[{_SYMBOLS}]")
_PUNCT = re.compile(f"[^\\w\\s{_SYMBOLS}]")
_JOINT = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")  # a hyphen between letters joins words ("well-known"): a space


def normalised(text: str) -> str:
    """Lower case, punctuation as spaces, single spaces: 'What is 2+3?' and 'what is 2 + 3' are one question.

    Operators stay (as words of their own): 'What is 9 + 8?' and 'What is 9 - 8?' are two questions, which deleting
    every non-word character made one (testbed:pool then held 7 false "copies" of testbed:heldout)."""
    text = _PUNCT.sub(" ", _JOINT.sub(" ", text.lower()))
    return " ".join(_SYMBOL.sub(r" \g<0> ", text).split())


def label_checker(component: Any) -> Callable[[str], str | None] | None:
    """The component's ``category_of`` (through counting wrappers), or None when it has none.

    A plugin not built yet is asked through its declared class, so a feedback model that has no checker is never
    loaded for the audit alone."""
    for _ in range(4):
        if component is None:
            return None
        inner = vars(component).get("inner") if hasattr(component, "__dict__") else None
        if inner is not None and type(component).__name__ == "CallCounter":
            component = inner
            continue
        declared = getattr(type(component), "declared", None)
        if callable(declared):  # a lazily built plugin: look at its class first
            cls, _ = component.declared()
            if cls is None or not callable(getattr(cls, "category_of", None)):
                return None
        fn = getattr(component, "category_of", None)
        return fn if callable(fn) else None
    return None


def generation_log(workdir: Path, iteration: int) -> Path | None:
    """The generation log the built-in curricula write for an iteration (``iter-RR.log.json``; a pool's at iteration 1)."""
    return next((workdir / n for n in curriculum_log_names(iteration) if (workdir / n).is_file()), None)


def audit(
    prompts: Sequence[Prompt],
    heldout: Iterable[str],
    checker: Callable[[str], str | None] | None = None,
    generation_log: Path | None = None,
) -> dict[str, Any]:
    """The audit block of a round record (see the module doc); label fields only when a checker is given, and
    ``generation_dropped`` (questions dropped while generating, by reason: no answer, held-out question, ...) when the
    curriculum wrote a generation log."""
    keys = {normalised(t) for t in heldout}
    out: dict[str, Any] = {
        "heldout_overlap": sum(normalised(p.text) in keys for p in prompts),
        "with_answer": sum(p.metadata.get("answer") is not None for p in prompts),
    }
    if checker is not None:
        told = [(p.category, checker(p.text)) for p in prompts]
        told = [(label, real) for label, real in told if real is not None]
        out["label_checked"] = len(told)
        out["label_agreement"] = round(sum(label == real for label, real in told) / len(told), 4) if told else None
    if generation_log is not None and generation_log.is_file():
        try:
            out["generation_dropped"] = dict(json.loads(generation_log.read_text()).get("dropped") or {})
        except (OSError, ValueError, AttributeError):
            pass  # a curriculum's own log in another shape: nothing to show
    return out


__all__ = ["audit", "generation_log", "label_checker", "normalised"]
