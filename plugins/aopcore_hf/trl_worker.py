"""What each rank of a multi-process ``grpo``/``rloo`` stage runs: ``python -m aopcore_hf.trl_worker JOB.json``.

:mod:`aopcore_hf.trl_launch` starts the group and serves it; here each rank builds the trainer from the job and runs
TRL's training in the group. The reward model and the prompt stream stay in the launching process: rank 0 asks it for
them (:class:`Link`) and shares the answers with the other ranks over the process group.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from aopcore import Prompt, RuntimeFailure
from aopcore.engine.ranks import process_rank
from aopcore.records import to_dict
from aopcore_hf.ppo.launch import AUTHKEY_ENV


class Link:
    """Rank 0's connection to the launching process (None on the other ranks, which never ask)."""

    def __init__(self, conn: Connection | None) -> None:
        self.conn = conn

    def ask(self, kind: str, payload: Any) -> Any:
        if self.conn is None:
            raise RuntimeFailure(f"rank {process_rank()} asked the launching process for {kind}: only rank 0 does")
        self.conn.send((kind, payload))
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"the launching process failed to answer {kind}: {value}")
        return value


class RemoteReward:
    """The experiment's reward model seen from the group: every rank's rollouts scored in one request by rank 0."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        from aopcore_integrations.trl_ranks import broadcast_from_main, gather_all, rank_and_world

        rank, _ = rank_and_world()
        parts = gather_all((list(prompts), list(responses)))
        scores = None
        if rank == 0:
            scores = self.link.ask("score", ([p for ps, _ in parts for p in ps], [r for _, rs in parts for r in rs]))
        scores = broadcast_from_main(scores)
        start = sum(len(ps) for ps, _ in parts[:rank])
        return list(scores[start : start + len(prompts)])


class RemoteStream:
    """The experiment's :class:`~aopcore.steps.PromptStream`, as rank 0's feed uses it (the other ranks never do)."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def _ask(self, name: str, *args: Any) -> Any:
        return self.link.ask("stream", (name, args))

    @property
    def draws(self) -> int:
        return int(self._ask("draws"))

    @property
    def completed(self) -> int:
        return int(self._ask("completed"))

    def next(self, n: int) -> list[Prompt]:
        return self._ask("next", n)

    def refill(self, n: int) -> list[Prompt]:
        return self._ask("refill", n)

    def report(self, draw: int, groups: Sequence[Any]) -> list[bool]:
        return self._ask("report", draw, list(groups))

    def restore(self, completed: int) -> None:
        self._ask("restore", completed)

    def finish(self) -> None:
        self._ask("finish")


def worker_main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    module, name = job["trainer"].split(":")
    cls = getattr(importlib.import_module(module), name)
    trainer = cls(cls.Options.model_validate(job["options"]))
    if trainer.choice.device.startswith("cuda"):  # each rank loads the policy onto its own GPU
        trainer.choice = replace(trainer.choice, device=f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    conn = (
        Client(tuple(job["address"]), authkey=bytes.fromhex(os.environ[AUTHKEY_ENV])) if process_rank() == 0 else None
    )
    link = Link(conn)
    spec = job["stream"]
    stats = trainer.train_here(
        Path(job["policy"]),
        [Prompt.from_dict(p) for p in job["prompts"]],
        RemoteReward(link),
        passes=job["passes"],
        out=Path(job["out"]),
        seed=job["seed"],
        scratch=Path(job["scratch"]) if job["scratch"] else None,
        stream=RemoteStream(link) if spec is not None else None,
        filtering=bool(spec and spec["filtering"]),
    )
    if conn is not None:
        conn.send(("done", to_dict(stats)))
        conn.close()


if __name__ == "__main__":
    worker_main(sys.argv[1])
