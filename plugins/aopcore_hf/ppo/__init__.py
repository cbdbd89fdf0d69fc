"""Classic PPO (ours): the trainer (:mod:`.trainer`), its pure tensor terms (:mod:`.functional`), memory
placement (:mod:`.memory`), mid-stage checkpoints (:mod:`.checkpoint`), the data-parallel group's
communication (:mod:`.comm`), reward scoring (:mod:`.scoring`), and the multi-process launcher (:mod:`.launch`)
with what each rank runs (:mod:`.worker`, started as ``python -m aopcore_hf.ppo.worker``).

``from aopcore_hf.ppo import PPOPolicyTrainer`` (and the trainer's other public names) works as it did when PPO
was one module; those names are read from :mod:`.trainer` on first use, so importing a light part of the
package (the launcher) does not import the trainer.
"""

from __future__ import annotations

from typing import Any

_TRAINER_NAMES = frozenset(
    {
        "PPOPolicyTrainer",
        "PolicyWithValue",
        "ValueHead",
        "RolloutBatch",
        "pad_batch",
        "response_forward",
        "VALUE_HEAD",
        "STATE",
        "Score",
        "score_and_book",
    }
)


def __getattr__(name: str) -> Any:
    if name in _TRAINER_NAMES:
        from aopcore_hf.ppo import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
