"""Component contracts checked before the first stage: each component against its protocol's call shapes.

The protocols are structural, so nothing stops an object with a misspelt method or a different call shape from
reaching the loop, where it would fail hours later (after ``sft/policy`` was saved). :func:`check_component` checks
a component up front (methods present, callable, and callable the way the experiment calls them:
``inspect.signature(...).bind``) and reports one line per problem, naming the component.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aopcore.storage.fingerprint import forwards_attributes

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


def component_name(where: str, obj: Any) -> str:
    from aopcore.executors.resources import unwrap

    obj = unwrap(obj)
    name = getattr(type(obj), "plugin_name", None)  # a lazily built plugin: its registered name
    return f"{where} ({name(obj)})" if callable(name) else _label(where, obj)
