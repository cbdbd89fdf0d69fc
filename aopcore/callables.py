"""Plain callables as components: what users already have (a TRL reward function, ``fn(prompt) -> str``, ...).

The experiment and the session apply :func:`adapt` to every component they are given:

- reward: a TRL-style reward function ``fn(prompts, completions, **kw) -> list[float]``
  (:class:`RewardFunction`; the prompts' categories are passed as ``categories=[...]``);
- feedback: ``fn(prompt: str) -> str`` (:class:`FeedbackFunction`; ``batched=True`` for
  ``fn(list[str]) -> list[str]``);
- judge: ``fn(question, answer_a, answer_b) -> "A" | "B" | "C" | None`` (:class:`JudgeFunction`);
- embedder: ``fn(texts) -> array``; curriculum: ``fn(ctx) -> list[Prompt]``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aopcore.component_checks import CALLS, is_proxy
from aopcore.output_checks import checked_rewards
from aopcore.records import Verdict
from aopcore.storage.fingerprint import class_name, describe

log = logging.getLogger("aopcore")


class RewardFunction:
    """A TRL-style reward function as a RewardModel: ``fn(prompts, completions, categories=[...], **kw)``.

    The categories of prompts the experiment knows (held-out, test and training prompts) are
    passed as the keyword ``categories`` (None for a prompt it does not know, e.g. an eva
    candidate); other TRL keywords (``completion_ids``, dataset columns) are not.
    """

    def __init__(self, fn: Callable[..., Sequence[float | None]], categories: Mapping[str, str] | None = None) -> None:
        self.fn = fn
        self.known: dict[str, str] = dict(categories or {})

    def learn_categories(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.known.update(pairs)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        out = self.fn(list(prompts), list(responses), categories=[self.known.get(p) for p in prompts])
        return checked_rewards(self, out, list(prompts), where=f"reward function {name}", method="")

    def fingerprint(self) -> Any:
        return {"class": class_name(self), "function": describe(self.fn)}

    def columns_needed(self) -> list[str]:
        """Required parameters beyond prompts and completions: dataset columns (``answer``) aopcore cannot pass."""
        try:
            params = list(inspect.signature(self.fn).parameters.values())
        except (TypeError, ValueError):
            return []
        plain = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        named = {p.name for p in plain[:2] if p.kind != p.KEYWORD_ONLY}  # prompts, completions (by position)
        return [
            p.name
            for p in plain
            if p.default is p.empty and p.name not in named | {"prompts", "completions", "categories"}
        ]

    def reads_keywords(self) -> bool:
        """Whether it takes ``**kwargs``: it may look for dataset columns there and find none."""
        try:
            return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(self.fn).parameters.values())
        except (TypeError, ValueError):
            return False


def reward_columns_problem(reward: Any, where: str) -> str | None:
    """A TRL reward that needs dataset columns, given where aopcore scores held-out answers: refused in one line."""
    if not isinstance(reward, RewardFunction):
        return None
    needed = reward.columns_needed()
    if not needed:
        return None
    name = getattr(reward.fn, "__name__", type(reward.fn).__name__)
    return (
        f"{where}: {name}() needs the dataset column(s) {', '.join(needed)}, which the held-out questions do not carry: "
        f"give a reward(prompts, completions, **kw) that scores held-out answers without them (the TRL trainer keeps {name})"
    )


def uniform_reward_warning(reward: Any, rewards: Sequence[float]) -> str | None:
    """A TRL-style reward that reads ``**kwargs`` and gave every held-out answer the same score: likely columns it lacked."""
    if (
        not isinstance(reward, RewardFunction)
        or not reward.reads_keywords()
        or len(rewards) < 2
        or len(set(rewards)) != 1
    ):
        return None
    name = getattr(reward.fn, "__name__", type(reward.fn).__name__)
    return (
        f"reward function {name}() gave every one of {len(rewards)} held-out answers {rewards[0]}: if it reads dataset "
        "columns from **kwargs, the held-out evaluation passes none (only prompts, completions, categories), so the "
        "curriculum is choosing from a blank evaluation"
    )


class FeedbackFunction:
    """``fn(prompt) -> str`` (or ``fn(prompts) -> list[str]`` with ``batched=True``) as a FeedbackLLM.

    A call that raises yields "" and is counted as ``failed_calls``, as the protocol asks.
    """

    def __init__(self, fn: Callable[..., Any], batched: bool = False) -> None:
        self.fn = fn
        self.batched = batched

    def complete(self, prompts: Sequence[str]) -> list[str]:
        from aopcore.ledger import record_usage

        if self.batched:
            return [str(t) for t in self.fn(list(prompts))]
        out = []
        for prompt in prompts:
            try:
                out.append(str(self.fn(prompt)))
            except Exception as exc:  # one failed call must not lose the batch
                log.warning("feedback function failed (%s: %s); counted, answer left empty", type(exc).__name__, exc)
                record_usage(failed_calls=1)
                out.append("")
        return out

    def fingerprint(self) -> Any:
        return {"class": class_name(self), "function": describe(self.fn), "batched": self.batched}


class JudgeFunction:
    """``fn(question, answer_a, answer_b) -> "A" | "B" | "C" | None`` (C is a tie) as a Judge."""

    def __init__(self, fn: Callable[[str, str, str], Any]) -> None:
        self.fn = fn

    def judge(self, items: Sequence[Any]) -> list[Verdict]:
        out = []
        for item in items:
            raw = self.fn(item.question, item.answer_a, item.answer_b)
            text = "" if raw is None else str(raw).strip()
            choice = text[:1].upper() if text[:1].upper() in ("A", "B", "C") else None
            out.append(Verdict(item.id, choice, raw=text))  # type: ignore[arg-type]
        return out

    def fingerprint(self) -> Any:
        return {"class": class_name(self), "function": describe(self.fn)}


class EmbedFunction:
    def __init__(self, fn: Callable[[Sequence[str]], Any]) -> None:
        self.fn = fn

    def embed(self, texts: Sequence[str]) -> Any:
        return self.fn(list(texts))

    def fingerprint(self) -> Any:
        return {"class": class_name(self), "function": describe(self.fn)}


class CurriculumFunction:
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def prompts(self, ctx: Any) -> list[Any]:
        return list(self.fn(ctx))

    def fingerprint(self) -> Any:
        return {"class": class_name(self), "function": describe(self.fn)}


ADAPTERS: dict[str, Callable[[Any], Any]] = {
    "reward": RewardFunction,
    "feedback": FeedbackFunction,
    "judge": JudgeFunction,
    "embedder": EmbedFunction,
    "curriculum": CurriculumFunction,
}


def adapt(role: str, obj: Any) -> Any:
    """``obj`` itself if it has its protocol's methods; a plain callable wrapped in its role's adapter."""
    if obj is None or role not in ADAPTERS or is_proxy(obj):
        return obj
    if all(hasattr(obj, m) for m in CALLS[role]):
        return obj
    if callable(obj) and not isinstance(obj, type):
        return ADAPTERS[role](obj)
    return obj


# Their published home, and the class names that fingerprints of existing run directories record
# (``aopcore.contracts.RewardFunction``): a run directory written before this module existed resumes.
for _adapter in (RewardFunction, FeedbackFunction, JudgeFunction, EmbedFunction, CurriculumFunction):
    _adapter.__module__ = "aopcore.contracts"
