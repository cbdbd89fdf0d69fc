"""Optional capabilities of components, as small runtime-checkable Protocols.

A component has a capability when it has the member (duck typing: a third-party plugin need not import these
classes; ``isinstance`` checks the member's presence). The core asks these functions, not ``getattr``, so the
optional parts of the plugin contract are visible to a type checker and listed in one place (docs/plugins.md).
A trainer's keyword capabilities (``train(stream=)``, ``train(scratch=)``) are read from its signature, here only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from aopcore.contracts import accepts_keyword, takes_keyword
from aopcore.storage.fingerprint import forwards_attributes

_MISSING = object()


@runtime_checkable
class ChoosesPerStep(Protocol):
    """A curriculum that chooses every training step's prompts (the per-step channel, :mod:`aopcore.steps`)."""

    def selector(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class ObservesSteps(Protocol):
    """A curriculum that watches each training step's rollouts without choosing them."""

    def observe_step(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class UsesEvaluation(Protocol):
    """A curriculum that says whether it chooses from ``ctx.evaluation``: True (default), False, or "first"."""

    uses_evaluation: bool | Literal["first"]


@runtime_checkable
class RequiresComponents(Protocol):
    """A curriculum (or its factory) that needs other components, e.g. ``("feedback", "embedder")``."""

    requires: Sequence[str]


@runtime_checkable
class NeedsIterations(Protocol):
    """A curriculum that writes one pool for every iteration and splits it, so it must know how many there are."""

    needs_iterations: bool


@runtime_checkable
class Binds(Protocol):
    """A component that uses others (a reward-margin judge): given every built component before first use."""

    def bind(self, components: dict[str, Any]) -> None: ...


@runtime_checkable
class StreamTrainer(Protocol):
    """A trainer whose ``train`` takes ``stream=`` (draws each step's prompts) and/or ``scratch=`` (a
    crash-surviving folder for its mid-stage checkpoints). Detected from the signature by the functions below."""

    def train(
        self,
        policy: Path,
        prompts: Sequence[Any],
        reward: Any,
        *,
        passes: int,
        out: Path,
        seed: int,
        stream: Any = None,
        scratch: Path | None = None,
    ) -> Any: ...


@runtime_checkable
class ImportsLibraries(Protocol):
    """A component class that names the libraries its stages import, to be imported before a run's first stage
    (``aopcore.memory.freeze_survivors``). A static or class method, given the options: no component is built and
    no model loaded for it."""

    @staticmethod
    def import_libraries(options: Any) -> None: ...


def _member(obj: Any, capability: type, name: str) -> Any:
    """``obj.<name>`` when ``obj`` has the capability, else a marker. A proxy that forwards attributes (a lazily
    built plugin, an adapter) is asked directly: from Python 3.12 a Protocol check does not call ``__getattr__``."""
    if forwards_attributes(obj):
        return getattr(obj, name, _MISSING)
    return getattr(obj, name) if isinstance(obj, capability) else _MISSING


def chooses_per_step(curriculum: Any) -> bool:
    """Whether a curriculum chooses per step (has ``selector``)."""
    return callable(_member(curriculum, ChoosesPerStep, "selector"))


def observes_steps(curriculum: Any) -> bool:
    """Whether a curriculum wants the per-step channel at all (chooses per step, or only watches)."""
    return chooses_per_step(curriculum) or callable(_member(curriculum, ObservesSteps, "observe_step"))


def reads_evaluation(curriculum: Any, iteration: int) -> bool:
    """Whether ``curriculum`` chooses iteration ``iteration``'s prompts from the evaluation before it.

    ``uses_evaluation``: True (every iteration; the default), False (never: vanilla), or "first" (only the SFT
    policy's: SOP).
    """
    uses = _member(curriculum, UsesEvaluation, "uses_evaluation")
    uses = True if uses is _MISSING else uses
    return iteration == 1 if uses == "first" else bool(uses)


def required_components(component: Any) -> set[str]:
    needs = _member(component, RequiresComponents, "requires")
    return set() if needs is _MISSING else set(needs)


def needs_iterations(curriculum: Any) -> bool:
    needs = _member(curriculum, NeedsIterations, "needs_iterations")
    return False if needs is _MISSING else bool(needs)


def import_libraries(component: Any) -> None:
    """Import what ``component``'s stages will import, without building it where it is not built yet (a lazily built
    plugin declares its class and options: ``declared()``); nothing where its class has no ``import_libraries``."""
    declared = getattr(type(component), "declared", None)
    cls, options = declared(component) if callable(declared) else (type(component), getattr(component, "options", None))
    if cls is not None and isinstance(cls, ImportsLibraries):
        cls.import_libraries(options)


def binds(component: Any) -> bool:
    """Whether a component takes the other components (``bind``) before first use."""
    return callable(_member(component, Binds, "bind"))


def trains_from_stream(trainer: Any) -> bool:
    """Whether ``trainer.train`` takes ``stream`` (a bound method's signature, or a declared ``train_keywords``)."""
    return takes_keyword(trainer, "train", "stream")


def train_accepts(trainer: Any, keyword: str) -> bool:
    """Whether this trainer's ``train`` accepts ``keyword`` (``stream``, ``scratch``) when called."""
    return accepts_keyword(trainer.train, keyword)


__all__ = [
    "ChoosesPerStep",
    "ObservesSteps",
    "UsesEvaluation",
    "RequiresComponents",
    "NeedsIterations",
    "Binds",
    "StreamTrainer",
    "chooses_per_step",
    "observes_steps",
    "reads_evaluation",
    "required_components",
    "needs_iterations",
    "binds",
    "trains_from_stream",
    "train_accepts",
]
