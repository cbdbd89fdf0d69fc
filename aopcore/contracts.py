"""Component contracts checked before the first stage, adapters for what users already have, and stage-output checks.

The protocols are structural, so nothing stops an object with a misspelt method or a
different call shape from reaching the loop, where it would fail hours later (after
``sft/policy`` was saved). :func:`check_components` checks every component against its
protocol up front — methods present, callable, and callable the way the experiment calls
them (``inspect.signature(...).bind``) — and reports one line per problem, naming the
component.

Adapters turn plain callables into components (the experiment applies :func:`adapt` to
every component it is given):

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
from pathlib import Path
from typing import Any

from aopcore.errors import RuntimeFailure
from aopcore.fingerprint import class_name, describe, forwards_attributes
from aopcore.records import TrainStats, Verdict

log = logging.getLogger("aopcore")

_P = Path("policy")
# role -> method -> (positional args, keyword args) the experiment passes, and the protocol's signature for messages
CALLS: dict[str, dict[str, tuple[tuple[Any, ...], dict[str, Any], str]]] = {
    "trainer": {
        "initial_policy": ((_P,), {"seed": 0}, "initial_policy(out, *, seed)"),
        "generate": ((_P, ["q"]), {"seed": 0, "sample": False}, "generate(policy, prompts, *, seed, sample=False)"),
        "train": (
            (_P, [], None),
            {"passes": 1, "out": _P, "seed": 0},
            "train(policy, prompts, reward, *, passes, out, seed)",
        ),
    },
    "reward": {"score": ((["q"], ["a"]), {}, "score(prompts, responses) -> list[float]")},
    "feedback": {"complete": ((["p"],), {}, "complete(prompts) -> list[str]")},
    "judge": {"judge": (([],), {}, "judge(items) -> list[Verdict]")},
    "embedder": {"embed": ((["t"],), {}, "embed(texts) -> array")},
    "curriculum": {"prompts": ((None,), {}, "prompts(ctx) -> list[Prompt]")},
}
PROTOCOL = {
    "trainer": "PolicyTrainer",
    "reward": "RewardModel",
    "feedback": "FeedbackLLM",
    "judge": "Judge",
    "embedder": "Embedder",
    "curriculum": "PromptCurriculum",
}
NOT_TRAIN_STATS = ("dict", "list", "tuple", "None", "float", "int", "str", "Path")


def _label(where: str, obj: Any) -> str:
    return f"{where} ({type(obj).__name__})"


def is_proxy(obj: Any) -> bool:
    """An object that forwards attribute lookups (e.g. the CLI's lazily built plugins): checking it would build it."""
    return forwards_attributes(obj)


def check_component(role: str, obj: Any, where: str | None = None) -> list[str]:
    """Problems of ``obj`` as a component of ``role`` (trainer, reward, ...), one line each.

    Proxies (objects with ``__getattr__``, such as the CLI's lazily built plugins) are not checked:
    a registered plugin's class was written against the protocol, and looking would build it.
    """
    where = where or role
    problems: list[str] = []
    if is_proxy(obj):
        return problems
    for method, (args, kwargs, shape) in CALLS[role].items():
        fn = getattr(obj, method, None)
        if fn is None:
            problems.append(f"{_label(where, obj)}: has no {method}() method; a {PROTOCOL[role]} needs {shape}")
            continue
        if not callable(fn):
            problems.append(f"{_label(where, obj)}: {method} is not callable; a {PROTOCOL[role]} needs {shape}")
            continue
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue  # builtins and C extensions: nothing to inspect
        if role == "trainer" and method == "train" and accepts_keyword(fn, "scratch"):
            kwargs = {**kwargs, "scratch": _P}  # passed to every train() that takes it
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            problems.append(f"{_label(where, obj)}: {method}{sig} cannot be called as {shape} ({exc})")
            continue
        if role == "trainer" and method == "train":
            ret = sig.return_annotation
            text = ret if isinstance(ret, str) else getattr(ret, "__name__", str(ret))
            if ret is not inspect.Signature.empty and str(text).split("[")[0].strip() in NOT_TRAIN_STATS:
                problems.append(
                    f"{_label(where, obj)}: train() is annotated to return {text}; it must return aopcore.TrainStats"
                )
    return problems


def accepts_keyword(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes keyword ``name`` (by name or through ``**kwargs``): new optional arguments reach only those that do."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.name == name and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) or p.kind == p.VAR_KEYWORD
        for p in params
    )


def takes_keyword(obj: Any, method: str, name: str) -> bool:
    """Whether ``obj.<method>`` takes keyword ``name``, read from the class behind a lazily built component (its
    module is imported, nothing is built); True when it cannot be told (another proxy, a factory function)."""
    from aopcore.executors.resources import declared_class_and_options

    if is_proxy(obj):
        cls, _ = declared_class_and_options(obj)
        fn = getattr(cls, method, None) if cls is not None else None
        return True if fn is None else accepts_keyword(fn, name)
    fn = getattr(obj, method, None)
    return fn is not None and accepts_keyword(fn, name)


# ---- adapters ---------------------------------------------------------------------------------
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


# ---- stage outputs ----------------------------------------------------------------------------
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


def component_name(where: str, obj: Any) -> str:
    from aopcore.executors.resources import unwrap

    obj = unwrap(obj)
    name = getattr(type(obj), "plugin_name", None)  # a lazily built plugin: its registered name
    return f"{where} ({name(obj)})" if callable(name) else _label(where, obj)


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
