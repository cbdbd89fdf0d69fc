"""Giving memory back between a process's heavy phases: a finished stage's, a training stage's frozen copy.

Kept apart from the stage runner because trainers call it too (a LoRA stage frees its frozen weights before it
reads the float32 ones), and a trainer plugin has no business importing the engine.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import weakref
from collections.abc import Callable, Iterable
from typing import Any

_releasable: weakref.WeakSet[Any] = weakref.WeakSet()


def releasable(holder: Any) -> None:
    """Register ``holder``, whose ``release_models()`` drops the inference models it keeps between its calls (and
    reloads them, registering again, at its next call): the local feedback LLM between prompt stages. They are let
    go before a training stage, whose weights and optimizer states would otherwise sit beside them."""
    _releasable.add(holder)


def release_idle_models(*, collect: bool = True) -> bool:
    """Drop the models the :func:`releasable` holders keep between calls; whether there were any. ``collect``: run
    the cyclic collector after (a model in a reference cycle would otherwise stay until it next runs)."""
    holders = list(_releasable)  # only those holding a model now: a holder leaves the set when it lets go
    for holder in holders:
        holder.release_models()
        _releasable.discard(holder)
    if holders and collect:
        gc.collect()
    return bool(holders)


def release_freed_memory(*, full: bool = True, idle_models: bool = False) -> None:
    """Give memory that a finished phase freed back to the system (glibc keeps large freed blocks resident in its
    heap, so without this one stage's temporaries, e.g. SFT's, add to the next stage's peak). A no-op elsewhere.

    ``full`` runs the cyclic collector over every generation: a model's modules refer to each other, so only it
    frees a dropped model. It walks every object the process holds (half a million with torch, transformers and
    TRL loaded: 0.3 s), so the stages between trainings collect only the young generations: 37 full collections
    were 10 s of the quickstart's 127.

    ``idle_models``: first drop the models held between calls (:func:`release_idle_models`), in the same collection
    (before a training stage: the trainer's own call then finds nothing to drop and collects nothing)."""
    if idle_models:
        release_idle_models(collect=False)
    gc.collect() if full else gc.collect(1)
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def freeze_survivors(components: Iterable[Any] = ()) -> None:
    """Collect, then leave every surviving object out of the cyclic collector's later walks (``gc.freeze``).

    For a process that runs one experiment, before its first stage: what is alive then is the libraries imported and
    the run's components, which live as long as the process. Every full collection walks each object the process
    holds (0.27 s for the quickstart's half a million), and a run makes dozens of them, explicit and automatic.
    Each component class's optional ``import_libraries(options)`` runs first (:class:`aopcore.capabilities.
    ImportsLibraries`: no component is built), so the libraries its stages would import anyway (transformers,
    TRL, ...: nine in ten of those objects) are imported now and frozen with the rest.

    An object frozen here that later becomes garbage in a reference cycle is never collected, so this is no call
    for a library that runs several experiments in one process, and ``import_libraries`` must load no model."""
    from aopcore.capabilities import import_libraries

    for component in components:
        import_libraries(component)
    gc.collect()
    gc.freeze()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
