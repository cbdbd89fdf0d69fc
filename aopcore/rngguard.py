"""Calls that leave the process's global random streams as they found them.

Why: a local feedback LLM seeds and samples with torch's global generator (``torch.manual_seed`` before each
batch). When its reply comes from the response cache that code does not run, so the policy's sampling that
follows started from another random state: the same script gave one trajectory with a warm cache and another
with a cold one. A feedback call wrapped here restores Python's ``random``, NumPy's and torch's (CPU and CUDA)
global states afterwards, so a cached and a generated reply leave the policy's stream alike. Only modules already
imported are saved: nothing heavy is imported for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def preserved_global_rng() -> Iterator[None]:
    """Save the global random states of random, numpy and torch on entry; put them back on exit (also on error)."""
    import random

    saved: list[Callable[[], Any]] = []
    state = random.getstate()
    saved.append(lambda: random.setstate(state))
    np = sys.modules.get("numpy")
    if np is not None:
        np_state = np.random.get_state()
        saved.append(lambda: np.random.set_state(np_state))
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_rng_state"):
        cpu = torch.get_rng_state()
        saved.append(lambda: torch.set_rng_state(cpu))
        cuda = getattr(torch, "cuda", None)
        if cuda is not None and cuda.is_available() and cuda.is_initialized():
            gpu = cuda.get_rng_state_all()
            saved.append(lambda: cuda.set_rng_state_all(gpu))
    try:
        yield
    finally:
        for restore in saved:
            restore()


def rng_neutral(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run inside :func:`preserved_global_rng`."""

    def call(*args: Any, **kwargs: Any) -> Any:
        with preserved_global_rng():
            return fn(*args, **kwargs)

    call.__wrapped__ = fn  # type: ignore[attr-defined]
    return call


__all__ = ["preserved_global_rng", "rng_neutral"]
