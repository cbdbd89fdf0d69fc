"""aopcore's ``grpo``/``rloo`` in several processes: the experiment's process launches TRL's trainer under torchrun
(gloo, CPU) or ``accelerate launch`` (NCCL, GPUs) and serves the group its rewards and the curriculum's prompt stream.

Why the stream stays here: the curriculum's selector, its log and the stage's ledger live in the experiment's process
(as PPO's reward model does, :mod:`aopcore_hf.ppo.launch`). Rank 0 of the group asks for every draw, refill and report
over an authenticated connection and broadcasts to the other ranks (:mod:`aopcore_integrations.trl_ranks`), so this
process's stream ends the stage exactly as it would with one process. The ranks' side is :mod:`aopcore_hf.trl_worker`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import tempfile
from collections.abc import Sequence
from multiprocessing.connection import Listener
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aopcore import Prompt, RewardModel, RuntimeFailure, TrainStats
from aopcore.records import to_dict
from aopcore.steps import PromptStream
from aopcore_hf.ppo.launch import AUTHKEY_ENV, launch_command, serve_rewards, stop_group

log = logging.getLogger("aopcore")
STREAM_CALLS = frozenset({"next", "refill", "report", "restore", "finish"})  # what rank 0 may ask of the stream
STREAM_FIELDS = frozenset({"draws", "completed"})


def filters(stream: PromptStream) -> bool:
    """Whether the stream's curriculum drops groups (its selector has ``keep``): the trainer then refills them."""
    return callable(getattr(stream.selector, "keep", None))


def train_in_processes(
    trainer: Any,
    policy: Path,
    prompts: Sequence[Prompt],
    reward: RewardModel,
    *,
    passes: int,
    out: Path,
    seed: int,
    scratch: Path | None,
    stream: PromptStream | None,
) -> TrainStats:
    """Train one stage in ``trainer.options.num_processes`` processes; returns rank 0's stats."""
    o = trainer.options
    out.mkdir(parents=True, exist_ok=True)
    authkey = secrets.token_bytes(16)
    with (
        Listener(("127.0.0.1", 0), authkey=authkey) as listener,
        tempfile.TemporaryDirectory(prefix="aopcore-trl-") as tmp,
    ):
        job = Path(tmp) / "job.json"
        job.write_text(
            json.dumps(
                {
                    "trainer": f"{type(trainer).__module__}:{type(trainer).__qualname__}",
                    "options": o.model_dump(mode="json"),
                    "policy": str(Path(policy).resolve()),
                    "out": str(Path(out).resolve()),
                    "scratch": str(Path(scratch).resolve()) if scratch is not None else None,
                    "prompts": [to_dict(p) for p in prompts],
                    "passes": passes,
                    "seed": seed,
                    "stream": None if stream is None else {"filtering": filters(stream)},
                    "address": ["127.0.0.1", listener.address[1]],
                }
            )
        )
        launcher = SimpleNamespace(
            num_processes=o.num_processes, num_machines=1, accelerate_config=None, device=o.device, dtype=o.dtype
        )
        cmd = launch_command(launcher, job, worker_module="aopcore_hf.trl_worker")  # type: ignore[arg-type]
        log.info("%s: %d processes: %s", type(trainer).__name__, o.num_processes, " ".join(cmd))
        handlers = {} if stream is None else {"stream": lambda payload: _ask(stream, *payload)}
        proc = subprocess.Popen(cmd, env={**os.environ, AUTHKEY_ENV: authkey.hex()}, start_new_session=True)
        try:
            stats = serve_rewards(listener, proc, reward, handlers)
        finally:
            stop_group(proc)
    if stats is None:
        raise RuntimeFailure(
            f"the {o.num_processes} training processes failed (exit status {proc.returncode}); their log is above"
        )
    return stats


def _ask(stream: PromptStream, name: str, args: Sequence[Any]) -> Any:
    if name in STREAM_FIELDS:
        return getattr(stream, name)
    if name in STREAM_CALLS:
        return getattr(stream, name)(*args)
    raise RuntimeFailure(f"the training group asked the stream for {name!r}, which it does not serve")
