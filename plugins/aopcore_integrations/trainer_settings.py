"""The trainer's settings as part of a session's setup: a state folder answers one training run.

A :class:`~aopcore.CurriculumSession` fingerprints what shapes its prompts when it opens, before the trainer
exists. The trainer's settings (learning rate, batch sizes, generation settings, seed, ...) shape them too:
the rollouts the curriculum hears back depend on them. They are kept in ``state_dir/trainer.json`` on the
first ``train()`` and compared on every later one:

- changed settings are refused in one line (``allow_changes=True`` continues and records the change);
- a fresh run (no ``resume_from_checkpoint``) into a folder where a round has ended already belongs to
  another run (it would replay that run's draws and never record its own rewards): refused in one line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aopcore.errors import InputError
from aopcore.storage.store import atomic_write_json

FILE = "trainer.json"
CHANGES = "trainer-changes.jsonl"
# TrainingArguments/GRPOConfig fields that change what is trained or drawn (logging, saving and paths do not)
TRAINING_KEYS = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "warmup_ratio",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "optim",
    "seed",
    "data_seed",
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "bf16",
    "fp16",
    "num_generations",
    "generation_batch_size",
    "steps_per_generation",
    "num_iterations",
    "max_completion_length",
    "max_prompt_length",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "beta",
    "epsilon",
    "epsilon_high",
    "loss_type",
    "scale_rewards",
    "reward_weights",
    "mask_truncated_completions",
    "use_vllm",
)


def settings(args: Any) -> dict[str, Any]:
    """The training-relevant fields of a trainer config, as JSON values."""
    out: dict[str, Any] = {}
    for key in TRAINING_KEYS:
        if hasattr(args, key):
            value = getattr(args, key)
            out[key] = value if isinstance(value, (int, float, str, bool, type(None))) else str(value)
    return out


def check_settings(root: Path, args: Any, *, resuming: bool, ended_rounds: int, allow_changes: bool = False) -> None:
    """Store the trainer's settings on the first run; refuse a changed setup or another run's folder (module doc)."""
    path = Path(root) / FILE
    now = settings(args)
    if not resuming and ended_rounds:
        raise InputError(
            f"{root}: this state folder holds another training run ({ended_rounds} round(s) ended); a fresh run "
            "would replay its draws: pass resume_from_checkpoint to continue it, or give the session a new state_dir"
        )
    if not path.exists():
        atomic_write_json(path, now)
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    changed = [
        f"{k}: {old.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(old) | set(now)) if old.get(k) != now.get(k)
    ]
    if not changed:
        return
    if not allow_changes:
        raise InputError(
            f"{root}: the trainer's settings differ from the run this state folder holds ({'; '.join(changed[:4])}); "
            "rerun with the same settings, give the session a new state_dir, or continue anyway with "
            "TRLCurriculum(..., allow_changes=True)"
        )
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "changes": changed, "previous": old}
    with open(Path(root) / CHANGES, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
    atomic_write_json(path, now)


__all__ = ["check_settings", "settings", "TRAINING_KEYS"]
