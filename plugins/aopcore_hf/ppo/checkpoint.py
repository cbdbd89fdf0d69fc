"""Mid-stage checkpoints of our PPO, so a training stage killed after hours resumes at its last save.

The experiment hands ``train()`` a stable ``scratch`` folder per training stage that survives a
crash (and is removed once the stage is recorded). Every ``save_every_steps`` steps the trainer
saves there everything the next step depends on: the policy and value head, the optimiser state,
the KL controller, every rank's RNG states, the step counter and the metrics and token count so
far. A resumed stage loads the latest save and redoes only the steps after it; on CPU the result
is bit-identical to an uninterrupted stage (``tests/hf/test_ppo_resume.py``).

Layout: ``scratch/ppo-step-00000040/{state.pt, rng-0.pt, ..., meta.json}``; a save is written
under ``.partial`` and renamed, so a kill during a save leaves the previous one intact.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("aopcore")
PREFIX = "ppo-step-"


class PPOCheckpoints:
    """Saves and finds the checkpoints of one PPO stage in ``scratch`` (disabled without a folder or a period)."""

    def __init__(self, scratch: Path | None, every: int | None, comm: Any, job: dict[str, Any]) -> None:
        self.scratch = Path(scratch) if scratch is not None else None
        self.every = every or 0
        self.comm = comm
        self.job = json.loads(json.dumps(job, sort_keys=True, default=str))

    @property
    def enabled(self) -> bool:
        return self.scratch is not None and self.every > 0

    def due(self, step: int, total: int) -> bool:
        return self.enabled and step % self.every == 0 and step < total  # the last step is saved as the policy itself

    def latest(self) -> Path | None:
        """The newest complete save of this job (same options, prompts and seed), if any."""
        if not self.enabled or not self.scratch.is_dir():
            return None
        for folder in sorted(self.scratch.glob(f"{PREFIX}*[0-9]"), reverse=True):
            try:
                meta = json.loads((folder / "meta.json").read_text())
            except (OSError, ValueError):
                continue
            if meta.get("job") != self.job:
                log.info("ppo: ignoring %s: it was saved by a different training job", folder)
                continue
            if meta.get("world") != self.comm.world:
                log.warning(
                    "ppo: ignoring %s: saved by %s processes, now %s", folder, meta.get("world"), self.comm.world
                )
                continue
            return folder
        return None

    def save(
        self,
        step: int,
        *,
        module: torch.nn.Module,
        optimizer: Any,
        kl_value: float,
        metrics: list[dict[str, float]],
        tokens_generated: int,
        stream_completed: int | None = None,
    ) -> None:
        """``stream_completed``: the per-step stream's ``completed`` at this step (aopcore.steps), restored with it."""
        assert self.scratch is not None
        final = self.scratch / f"{PREFIX}{step:08d}"
        partial = final.with_name(final.name + ".partial")
        if self.comm.is_main:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        self.comm.barrier()
        torch.save(rng_state(), partial / f"rng-{self.comm.rank}.pt")
        if self.comm.is_main:
            torch.save(
                {
                    "module": module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "kl_value": kl_value,
                    "metrics": metrics,
                    "tokens_generated": tokens_generated,
                    "step": step,
                    "stream_completed": stream_completed,
                },
                partial / "state.pt",
            )
            (partial / "meta.json").write_text(json.dumps({"job": self.job, "step": step, "world": self.comm.world}))
        self.comm.barrier()
        if self.comm.is_main:
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
            for old in self.scratch.glob(f"{PREFIX}*[0-9]"):
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
            log.info("ppo: saved step %d to %s", step, final)
        self.comm.barrier()

    def restore(self, folder: Path, *, module: torch.nn.Module, optimizer: Any, device: str) -> dict[str, Any]:
        """Load a save into ``module`` and ``optimizer`` and restore this rank's RNG; returns step, metrics, tokens, kl_value
        and stream_completed (None when saved without a stream)."""
        state = torch.load(folder / "state.pt", map_location=device, weights_only=False)
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(torch.load(folder / f"rng-{self.comm.rank}.pt", weights_only=False))
        log.info("ppo: resumed from step %d (%s)", state["step"], folder)
        return {
            **{k: state[k] for k in ("step", "metrics", "tokens_generated", "kl_value")},
            "stream_completed": state.get("stream_completed"),
        }


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
