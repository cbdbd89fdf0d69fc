"""Toy components that misbehave on request, for the fault suite (tests/e2e/test_faults.py).

Each behaves exactly like its tests/toy/toy_components.py counterpart unless the environment variable
``AOPCORE_FAULT`` names a fault, so a rerun "after the fix" (the variable unset) is the same experiment
(the environment is not part of a run's fingerprint) and must finish with the outputs of a clean run.

``AOPCORE_FAULT_DELAY`` (seconds per training step) slows a run down for tests that act while it runs.

Faults: ``nan-reward``, ``none-reward``, ``string-reward`` (on held-out scoring), ``nan-train-reward`` (only
while training, after a mid-stage checkpoint was written), ``judge-a``, ``judge-tie``, ``short-generate``,
``enospc`` / ``emfile`` (the trainer's save fails as a full disk or a process out of file handles would
make it: an injected writer, for machines where no small file system can be mounted).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Sequence
from pathlib import Path

from aopcore import TrainStats, Verdict, hookimpl

import toy_components as toy


def fault() -> str:
    return os.environ.get("AOPCORE_FAULT", "")


class FaultyTrainer(toy.ToyTrainer):
    """The toy trainer, plus a mid-stage checkpoint in ``scratch`` (resumed from, as real trainers do)."""

    Options = toy.ToyTrainerOptions

    def __init__(self, options: toy.ToyTrainerOptions) -> None:
        delay = os.environ.get("AOPCORE_FAULT_DELAY")  # slow steps for tests that act mid-run (not in the fingerprint)
        super().__init__(options.model_copy(update={"step_delay_s": float(delay)}) if delay else options)

    def initial_policy(self, out: Path, *, seed: int) -> None:
        super().initial_policy(out, seed=seed)
        os.chmod(out / "policy.json", 0o600)  # as save_pretrained leaves weights under some setups

    def generate(self, policy: Path, prompts: Sequence[str], *, seed: int, sample: bool = False) -> list[str]:
        out = super().generate(policy, prompts, seed=seed, sample=sample)
        return out[:-1] if fault() == "short-generate" and len(out) > 1 else out

    def train(self, policy: Path, prompts, reward, *, passes: int, out: Path, seed: int, scratch: Path) -> TrainStats:
        checkpoint = Path(scratch) / "checkpoint.json"
        if checkpoint.exists():  # resume: the checkpoint's logits, but (like a careless trainer) not its random state
            start = Path(scratch) / "start"
            start.mkdir(exist_ok=True)
            (start / "policy.json").write_text(checkpoint.read_text())
            policy = start
        checkpoint.write_text((Path(policy) / "policy.json").read_text())
        if fault() == "nan-train-reward":  # the weights went bad before the bad reward surfaced: a poisoned checkpoint
            checkpoint.write_text(json.dumps({"*": [float("nan")] * 3}))
        if fault() in ("enospc", "emfile"):
            code = errno.ENOSPC if fault() == "enospc" else errno.EMFILE
            raise OSError(code, os.strerror(code), str(out / "policy.json"))
        stats = super().train(policy, prompts, reward, passes=passes, out=out, seed=seed)
        os.chmod(out / "policy.json", 0o600)
        return stats


class FaultyReward(toy.LengthReward):
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list:
        values: list = super().score(prompts, responses)
        bad = {"nan-reward": float("nan"), "none-reward": None, "string-reward": "0.5"}
        if fault() in bad and len(values) > 3:  # held-out scoring (batches); training scores one at a time
            values[3] = bad[fault()]
        if fault() == "nan-train-reward" and len(values) == 1:
            values[0] = float("nan")
        return values


class FaultyJudge(toy.LengthJudge):
    Options = toy.MarginJudgeOptions

    def judge(self, items):
        verdicts = super().judge(items)
        if fault() in ("judge-a", "judge-tie"):
            word = "a" if fault() == "judge-a" else "tie"
            return [Verdict(v.item_id, word, raw=word) for v in verdicts]  # type: ignore[arg-type]
        return verdicts


@hookimpl
def register_trainers(register):
    register("toy-faulty", FaultyTrainer)


@hookimpl
def register_reward_models(register):
    register("toy-faulty", FaultyReward)


@hookimpl
def register_judges(register):
    register("toy-faulty", FaultyJudge)


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text())
