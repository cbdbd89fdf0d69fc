"""Component outputs checked at the call, before anything is recorded from them (rewards, counts, policies, stats)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aopcore.component_checks import _label, component_name
from aopcore.errors import RuntimeFailure
from aopcore.records import TrainStats
from aopcore.storage.fingerprint import describe


def policy_problem(trainer: Any, folder: Path, method: str) -> str | None:
    """Why ``folder`` is not a usable policy written by ``trainer.<method>()``, or None.

    Empty is never usable. A trainer may offer ``check_policy(path) -> str | None`` (a problem,
    or None; raising counts as a problem) to say whether its own ``generate`` can load the folder.
    """
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return f"{_label('trainer', trainer)}: {method}() wrote nothing into its output folder (out={folder.name}); nothing to load the policy from"
    check = getattr(trainer, "check_policy", None)
    if callable(check):
        try:
            problem = check(folder)
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            return f"{_label('trainer', trainer)}: the policy {method}() wrote cannot be loaded ({problem})"
    return None


def count_problem(where: str, obj: Any, method: str, got: Sequence[Any], want: int) -> str | None:
    """A component that returned the wrong number of items (zip would silently drop the rest)."""
    if len(got) != want:
        return f"{component_name(where, obj)}: {method}() returned {len(got)} items for {want} inputs"
    return None


def train_stats(trainer: Any, value: Any) -> TrainStats:
    """The TrainStats a train() returned, or a clear error naming the trainer."""
    if isinstance(value, TrainStats):
        return value
    raise RuntimeFailure(
        f"{_label('trainer', trainer)}: train() returned {type(value).__name__}, not aopcore.TrainStats "
        "(return TrainStats(steps=..., episodes=..., tokens_generated=..., metrics=[...]))"
    )


# ---- values checked where they enter ------------------------------------------------------------
class BadComponentOutput(RuntimeFailure, RuntimeError):
    """A component returned a value the run must not record (NaN, None, a string, a wrong count). Exit status 1.

    Raised at the call, before anything is recorded from it; a training stage that ends with it leaves no
    mid-stage checkpoint behind for the next attempt to resume from.
    """


def _item(prompts: Sequence[str] | None, ids: Sequence[str] | None, k: int) -> str:
    if ids is not None and k < len(ids):
        return f"item {ids[k]!r}"
    if prompts is not None and k < len(prompts):
        text = str(prompts[k])
        return f"item {k} (prompt {text[:60] + '...' if len(text) > 60 else text!r})"
    return f"item {k}"


def output_list(values: Any, expected: int, call: str, kind: str, unit: str, per: str) -> list[Any]:
    """A component's batch output as a list of ``expected`` entries, or a BadComponentOutput naming ``call``."""
    try:
        values = list(values)
    except TypeError:
        raise BadComponentOutput(f"{call} returned {type(values).__name__}, not a list of {kind}") from None
    if len(values) != expected:
        raise BadComponentOutput(f"{call} returned {len(values)} {unit} for {expected} {per}")
    return values


def checked_rewards(
    reward: Any,
    values: Any,
    prompts: Sequence[str],
    *,
    ids: Sequence[str] | None = None,
    where: str = "reward",
    method: str = "score",
) -> list[float]:
    """The rewards as floats, or a BadComponentOutput naming the component, method and first bad item.

    A reward must be a finite real number for every response: None, NaN, infinities, strings and other
    non-numbers are refused (a NaN would silently change which prompts AOP chooses, then break training).
    """
    call = f"{component_name(where, reward)}: {method}()" if method else component_name(where, reward)
    values = output_list(values, len(prompts), call, "rewards", "scores", "completions")
    out = []
    for k, v in enumerate(values):
        problem = None
        if v is None:
            problem = "None"
        elif isinstance(v, (str, bytes, bool)) or not hasattr(v, "__float__"):
            problem = f"a {type(v).__name__} ({v!r:.40})"
        else:
            try:
                f = float(v)
            except (TypeError, ValueError):
                problem = f"a {type(v).__name__} ({v!r:.40})"
            else:
                if f != f or f in (float("inf"), float("-inf")):
                    problem = repr(f)
                out.append(f)
        if problem:
            raise BadComponentOutput(
                f"{call} returned {problem} for {_item(prompts, ids, k)}; a reward must be a finite number"
            )
    return out


class CheckedReward:
    """The reward model as trainers and curricula see it: every ``score`` result checked (:func:`checked_rewards`).

    Every other attribute is the reward model's own.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return checked_rewards(self.inner, self.inner.score(prompts, responses), list(prompts))

    def fingerprint(self) -> Any:
        return describe(self.inner)


def checked_reward(reward: Any) -> Any:
    return reward if reward is None or isinstance(reward, CheckedReward) else CheckedReward(reward)
