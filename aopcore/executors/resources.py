"""What each stage asks a cluster for, from what its components declare.

A component class declares ``resources``: a dict of Ray resource requests (``num_cpus``, ``num_gpus``,
``memory`` in bytes, or any custom resource name), or a function ``resources(options, kind)`` of its
options and the stage kind (a PPO trainer asks for its processes' GPUs to train, one GPU to generate).
Without a declaration, a component whose options have a ``device`` other than "cpu" asks for one GPU
and anything else for nothing (an API-backed feedback LLM or judge). A stage asks for the largest
request of each resource among the components it uses, and one CPU unless a component says otherwise.
"""

from __future__ import annotations

from typing import Any

# which components a stage kind uses ("arm": the arm's curriculum)
KIND_COMPONENTS: dict[str, tuple[str, ...]] = {
    "sft": ("trainer",),
    "evaluate": ("trainer", "reward"),
    "prompts": ("arm", "feedback", "embedder"),
    "train": ("trainer", "reward"),
    "answers": ("trainer",),
    "judge": ("judge",),
}


def unwrap(component: Any) -> Any:
    """The component behind the experiment's call-counting wrapper (feedback LLMs and judges)."""
    from aopcore.ledger import CallCounter

    while isinstance(component, CallCounter):
        component = component.inner
    return component


def declared_class_and_options(component: Any) -> tuple[type | None, Any]:
    """The class and options of a component, without building it when it is a lazily built one (one whose type has
    ``declared()``: :class:`aopcore.engine.build.LazyComponent`)."""
    component = unwrap(component)
    if component is None:
        return None, None
    if is_lazy(component):  # read the declaration from the class, build nothing
        return type(component).declared(component)
    return type(component), getattr(component, "options", None)


def is_lazy(component: Any) -> bool:
    """A component built on first use, which can say what it is without being built (``declared()`` on its type)."""
    return callable(getattr(type(component), "declared", None))


def component_resources(component: Any, kind: str) -> dict[str, float]:
    cls, options = declared_class_and_options(component)
    if cls is None:
        return {}
    declared = getattr(cls, "resources", None)
    if callable(declared):
        return dict(declared(options, kind) or {})
    if isinstance(declared, dict):
        return dict(declared)
    device = getattr(options, "device", None)
    return {"num_gpus": 1.0} if isinstance(device, str) and device != "cpu" else {}


def stage_resources(experiment: Any, stage: Any) -> dict[str, float]:
    """The resource request of one stage (largest of each resource over the components it uses)."""
    names = KIND_COMPONENTS.get(stage.kind, ())
    components = [
        experiment.arms.get(stage.arm) if name == "arm" else getattr(experiment, name, None) for name in names
    ]
    if stage.kind == "judge":  # a judge that uses other components (a reward-margin judge) needs what they need
        cls, _ = declared_class_and_options(experiment.judge)
        if cls is not None and hasattr(cls, "bind"):
            components.append(experiment.reward)
    merged: dict[str, float] = {}
    for component in components:
        for key, value in component_resources(component, stage.kind).items():
            merged[key] = max(merged.get(key, 0.0), float(value))
    merged.setdefault("num_cpus", 1.0)
    return merged


def ray_options(request: dict[str, float]) -> dict[str, Any]:
    """A request as keyword arguments of Ray's ``.options()``: known keys as they are, the rest as custom resources."""
    out: dict[str, Any] = {}
    custom: dict[str, float] = {}
    for key, value in request.items():
        if key in ("num_cpus", "num_gpus"):
            out[key] = value
        elif key == "memory":
            out[key] = int(value)
        else:
            custom[key] = value
    if custom:
        out["resources"] = custom
    return out
