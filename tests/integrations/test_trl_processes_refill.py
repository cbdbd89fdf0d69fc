"""aopcore's own grpo with a filtering curriculum (dynamic-filter: ``keep`` and DAPO refill) in 2 processes
(``num_processes = 2``: torchrun workers, gloo on CPU): the experiment's process keeps the stream and the reward, so
its stream draws, drops and refills what a 1-process stage with the same global batch does, and a 2-process stage
SIGKILLed mid-stage and run again resumes from its checkpoint and draws what an uninterrupted one draws."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1"}

STAGE = r"""
import json, os, signal, sys
from pathlib import Path
from aopcore.registry import load_registry
from aopcore.steps import open_stream
from aopcore.testing import make_context
from aopcore_hf.models import resolve_model
from aopcore_testbed.skills import CATEGORIES, skill_of

folder, processes, kill_at = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


class Reward:
    # a function of the prompt and its place in the group, not of the completion: 1- and 2-process runs agree on it.
    # "uppercase"/"maximum" groups are certain (zero variance: the filter drops them), the others vary.
    calls = 0

    def score(self, prompts, responses):
        Reward.calls += 1
        if Reward.calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        def one(k, p):
            cat = getattr(skill_of(p), "name", "")
            return 1.0 if cat == "uppercase" else 0.0 if cat == "maximum" else float(k % 4 == 0)
        return [one(k, p) for k, p in enumerate(prompts)]


registry = load_registry()
curriculum = registry.get("curriculum", "dynamic-filter").build(
    {"wrap": "learnability", "wrap_options": {"pool": "testbed:pool"}, "max_extra_fraction": 0.5, "skip_probability": 0.0})
ctx = make_context(folder / "ctx", rewards={c: 0.5 for c in CATEGORIES}, budget=8)
plan = curriculum.prompts(ctx)
stream = open_stream(curriculum, ctx, plan, passes=1, log=folder / "scratch" / "stream.jsonl")
trainer = registry.get("trainer", "grpo").build({
    "model": "testbed-tiny", "device": "cpu", "learning_rate": 1e-4, "batch_size": 8, "num_generations": 4,
    "beta": 0.0, "save_every_steps": 1, "num_processes": processes, "generation": {"max_new_tokens": 4, "temperature": 1.0}})
stats = trainer.train(Path(resolve_model("testbed-tiny")), plan, Reward(), passes=1, out=folder / "policy", seed=0,
                      scratch=folder / "scratch", stream=stream)
stream.finish()
(folder / "seen.json").write_text(json.dumps({
    "steps": stats.steps, "tokens": stats.tokens_generated, "calls": Reward.calls, "summary": stream.summary(),
    "batches": [[b.draw, [[g.prompt_id, list(g.rewards)] for g in b.groups], list(b.kept)] for b in stream.batches()]}))
"""


def _stage(script: Path, folder: Path, *, processes: int, kill_at: int = 0) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(script), str(folder), str(processes), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=900,
        env=ENV,
    )


@pytest.mark.slow
@pytest.mark.torchrun
def test_two_process_refilling_stage_draws_what_one_process_draws_and_resumes_after_sigkill(tmp_path: Path):
    script = tmp_path / "stage.py"
    script.write_text(STAGE)
    one = _stage(script, tmp_path / "one", processes=1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _stage(script, tmp_path / "two", processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (json.loads((tmp_path / d / "seen.json").read_text()) for d in ("one", "two"))
    assert a["steps"] == 4 and a["summary"]["refills"] > 0 and a["summary"]["dropped_groups"] > 0  # the filter acted
    assert b["batches"] == a["batches"] and b["summary"] == a["summary"] and b["steps"] == a["steps"]
    assert b["calls"] == a["calls"]  # one scoring request per generation (draw or refill), all ranks' rollouts in it
    assert all(len(rw) == 4 for _, groups, _ in b["batches"] for _, rw in groups)  # every completion reported once
    assert (tmp_path / "two" / "policy" / "config.json").exists()

    killed = _stage(script, tmp_path / "resumed", processes=2, kill_at=a["calls"] - 1)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert list((tmp_path / "resumed" / "scratch" / "trl").glob("checkpoint-*"))  # killed after a checkpoint
    resumed = _stage(script, tmp_path / "resumed", processes=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    c = json.loads((tmp_path / "resumed" / "seen.json").read_text())
    assert c["batches"] == a["batches"] and c["summary"] == a["summary"] and c["steps"] == a["steps"]
    assert 0 < c["calls"] < a["calls"]  # it generated only what the checkpoint did not cover


def test_batch_that_does_not_split_over_the_processes_and_uneven_refills_are_refused_before_launching(tmp_path: Path):
    from aopcore.errors import InputError
    from aopcore.registry import load_registry
    from aopcore.steps import open_stream
    from aopcore.testing import make_context
    from aopcore_testbed.skills import CATEGORIES

    registry = load_registry()
    with pytest.raises(ValueError, match=r"batch_size \(6\) must be a multiple of num_processes \(4\)"):
        registry.get("trainer", "grpo").build({"model": "testbed-tiny", "batch_size": 6, "num_processes": 4})
    curriculum = registry.get("curriculum", "dynamic-filter").build(
        {"wrap": "learnability", "wrap_options": {"pool": "testbed:pool"}}
    )
    ctx = make_context(tmp_path / "ctx", rewards={c: 0.5 for c in CATEGORIES}, budget=4)
    plan = curriculum.prompts(ctx)
    stream = open_stream(curriculum, ctx, plan, passes=1, log=tmp_path / "stream.jsonl")
    trainer = registry.get("trainer", "rloo").build(
        {"model": "testbed-tiny", "device": "cpu", "batch_size": 6, "num_generations": 3, "num_processes": 2}
    )
    with pytest.raises(InputError, match=r"num_generations \(3\) must be a multiple of num_processes \(2\)"):
        trainer.train(Path("unused"), plan, None, passes=1, out=tmp_path / "p", seed=0, stream=stream)
