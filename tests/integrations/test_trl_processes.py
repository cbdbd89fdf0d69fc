"""TRLCurriculum across processes (torchrun, gloo on CPU): one stream per run, the same draws as one process with the
same generation batch, and a SIGKILLed 2-process run resumed from its checkpoint draws what an uninterrupted one does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
from aopcore.steps import read_batches  # noqa: E402

from helpers.tiny_models import save_tiny_gpt2  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

DRIVER = r"""
import os, signal, sys
from pathlib import Path
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import GRPOConfig, GRPOTrainer
from aopcore import CurriculumSession, Prompt, Question
from aopcore_integrations.trl import TRLCurriculum

out, policy, per_device, kill_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rank = int(os.environ.get("RANK", "0"))


class Lowest:  # every draw after the first two goes to the category with the lowest mean reward seen (an online curriculum)
    def __init__(self, planned):
        self.by_cat, self.seen = {}, {}
        for p in planned:
            self.by_cat.setdefault(p.category, []).append(p)

    def draw(self, n, draw):
        cats = sorted(self.by_cat)
        cat = cats[draw] if draw < len(cats) else min(cats, key=lambda c: (sum(self.seen.get(c, [0.5])) / len(self.seen.get(c, [0.5])), c))
        pool = self.by_cat[cat]
        return [pool[(draw * n + k) % len(pool)] for k in range(n)]

    def observe(self, batch):
        for g in batch.groups:
            self.seen.setdefault(g.category, []).extend(g.rewards)


class Online:
    uses_evaluation = False

    def prompts(self, ctx):
        return [Prompt(f"{c}{i}", f"say {w} {i}", c) for c, w in (("e", "good"), ("h", "bad")) for i in range(ctx.budget // 2)]

    def selector(self, ctx, planned):
        return Lowest(list(planned))


def reward(prompts, completions, aopcore_draw, **_):  # a function of the prompt and the draw: runs agree on rewards
    return [(1.0 if "good" in p else 0.0) + 0.25 * (d % 3) + (0.5 if "bad 1" in p else 0.0) for p, d in zip(prompts, aopcore_draw)]


class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == kill_at and rank == 0:
            os.kill(os.getpid(), signal.SIGKILL)


session = CurriculumSession(Online(), heldout=[Question("q1", "say good", "e"), Question("q2", "say bad", "h")],
                            state_dir=out / "session", budget=8, rounds=2)
aop = TRLCurriculum(session, every=3)
model, tokenizer = AutoModelForCausalLM.from_pretrained(policy), AutoTokenizer.from_pretrained(policy)
tokenizer.padding_side = "left"
config = GRPOConfig(output_dir=str(out / "trl"), per_device_train_batch_size=per_device, num_generations=4, max_completion_length=3,
                    temperature=1.0, learning_rate=1e-3, beta=0.0, max_steps=6, logging_steps=1, save_strategy="steps", save_steps=2,
                    report_to="none", use_cpu=True, seed=0, shuffle_dataset=False, disable_tqdm=True)
trainer = GRPOTrainer(model=model, reward_funcs=aop.reward(reward), args=config, train_dataset=aop.dataset(),
                      processing_class=tokenizer, callbacks=[aop.callback, Kill()])
last = get_last_checkpoint(str(out / "trl")) if (out / "trl").is_dir() else None
trainer.train(resume_from_checkpoint=last)
print("steps", trainer.state.global_step, flush=True)
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("procs")
    script = folder / "driver.py"
    script.write_text(DRIVER)
    return script, save_tiny_gpt2(folder / "gpt2")


def _run(driver: tuple[Path, Path], out: Path, *, processes: int, kill_at: int = 0) -> subprocess.CompletedProcess:
    script, policy = driver
    per_device = 8 // processes  # the same generation batch (8 completions: 2 prompts x 4) in all
    launch = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        if processes > 1
        else [sys.executable]
    )
    return subprocess.run(
        [*launch, str(script), str(out), str(policy), str(per_device), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )


def _drawn(out: Path) -> list[list[tuple[str, tuple[float, ...]]]]:
    """Per round: every group's prompt id and rewards, in draw order."""
    return [
        [
            (g.prompt_id, g.rewards)
            for b in read_batches(out / "session" / "arms" / "session" / f"iter-{r:02d}" / "steps.jsonl")
            for g in b.groups
        ]
        for r in (1, 2)
    ]


@pytest.mark.slow
def test_two_processes_draw_what_one_process_draws_and_resume_after_sigkill(driver, tmp_path: Path):
    one = _run(driver, tmp_path / "one", processes=1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run(driver, tmp_path / "two", processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    expected = _drawn(tmp_path / "one")
    assert [len(r) for r in expected] == [6, 6]  # 3 steps a round, one draw of 2 prompts per step
    assert {pid[0] for pid, _ in expected[0][4:]} == {"h"}  # the online choice happened: later draws went to "h"
    assert _drawn(tmp_path / "two") == expected
    # every completion's reward reached the stream once: 4 per group, from both processes' slices
    assert all(len(rw) == 4 for r in expected for _, rw in r)
    # rank 0 alone wrote the checkpoint's curriculum files
    saved = json.loads((tmp_path / "two" / "trl" / "checkpoint-6" / "aopcore_round.json").read_text())
    assert saved == {"round": 2, "reported": 6}

    killed = _run(driver, tmp_path / "resumed", processes=2, kill_at=3)
    assert killed.returncode != 0 and not (tmp_path / "resumed" / "session" / "rounds" / "round-02.json").exists()
    assert (tmp_path / "resumed" / "trl" / "checkpoint-2").is_dir()
    resumed = _run(driver, tmp_path / "resumed", processes=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _drawn(tmp_path / "resumed") == expected


def test_accelerate_cpu_launch_that_started_one_of_several_processes_is_refused(monkeypatch):
    """``accelerate launch --cpu --num_processes 2`` runs its simple launcher: one process, MASTER_PORT set, no WORLD_SIZE."""
    from types import SimpleNamespace

    from aopcore.errors import InputError
    from aopcore.steps import PlannedSelector, PromptStream
    from aopcore_integrations.trl import StreamFeed

    args = SimpleNamespace(
        shuffle_dataset=False,
        world_size=1,
        max_steps=2,
        num_generations=2,
        generation_batch_size=4,
        steps_per_generation=1,
        num_iterations=1,
        gradient_accumulation_steps=1,
    )
    feed = StreamFeed(PromptStream(PlannedSelector([], passes=1, seed=0)), row=lambda t: {"prompt": t}, max_steps=2)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_PORT", "29500")
    with pytest.raises(InputError, match="torchrun --nproc_per_node N"):
        feed.configure(args)
    monkeypatch.delenv("MASTER_PORT")  # accelerate launch --cpu with one process: allowed
    feed.configure(args)
    assert feed.n == 2 and feed.world == 1
