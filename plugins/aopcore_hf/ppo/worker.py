"""What each rank of a multi-process PPO group runs: ``python -m aopcore_hf.ppo.worker JOB.json``.

:mod:`aopcore_hf.ppo.launch` starts the group and serves it rewards; each rank started here reads the job
(options, policy, prompts, seed), joins the group through accelerate and runs
``PPOPolicyTrainer.train_with``; the main rank asks the launching process for every batch's scores. The
trainer imports its launcher, and only this module imports both.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.connection import Client
from pathlib import Path

from aopcore import Prompt
from aopcore.records import to_dict
from aopcore_hf.options import PPOOptions
from aopcore_hf.ppo.launch import AUTHKEY_ENV, check_joined


def worker_main(job_path: str) -> None:
    from accelerate import Accelerator

    from aopcore_hf.models import choose_device
    from aopcore_hf.ppo import PPOPolicyTrainer
    from aopcore_hf.ppo.comm import AccelerateComm

    job = json.loads(Path(job_path).read_text())
    local = PPOOptions.model_validate(job["options"])
    accelerator = Accelerator(cpu=choose_device(local.device, local.dtype).device == "cpu")
    comm = AccelerateComm(accelerator)
    if local.num_machines > 1:  # machines that joined know only their launcher settings: the job comes from rank 0
        job = comm.broadcast_object(job)
        check_joined(local, PPOOptions.model_validate(job["options"]), comm.rank)
    options = PPOOptions.model_validate(job["options"])
    trainer = PPOPolicyTrainer(options)
    trainer.choice = replace(trainer.choice, device=str(accelerator.device))
    conn = Client(tuple(job["address"]), authkey=bytes.fromhex(os.environ[AUTHKEY_ENV])) if comm.is_main else None

    def score(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        assert conn is not None
        conn.send(("score", (list(prompts), list(responses))))
        status, value = conn.recv()
        if status != "ok":
            raise RuntimeError(f"the reward model failed: {value}")
        return value

    prompts = [Prompt.from_dict(p) for p in job["prompts"]]
    stats = trainer.train_with(
        comm, Path(job["policy"]), prompts, score, passes=job["passes"], out=Path(job["out"]), seed=job["seed"]
    )
    if conn is not None:
        conn.send(("done", to_dict(stats)))
        conn.close()


if __name__ == "__main__":
    worker_main(sys.argv[1])
