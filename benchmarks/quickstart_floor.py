"""The least the quickstart's fixed work costs on this machine: its model work alone, measured part by part.

    .venv/bin/python benchmarks/quickstart_floor.py --out benchmarks/results/quickstart_floor.json

The quickstart's arms, budgets and stages fix how much model work it does: one SFT, a number of PPO steps, of
evaluations and test answers of trained policies, and of rounds of the feedback LLM. This script builds the
quickstart's own trainer, reward and feedback LLM from ``examples/quickstart.toml`` (the precision and
checkpointing this CPU resolves them to) and times each kind of work once at the quickstart's shapes: the SFT stage,
one PPO stage (its steps, from ``time/step_s``), one evaluation of the held-out questions, one set of test answers
and one round of feedback calls (``draws`` prompts written from the held-out questions, not cached). The floor is
each figure times how often the quickstart does it, with nothing around it: no loading, saving, parsing or
report. Where the floor is above a time goal, no change to what runs around the models meets that goal on this
machine; only faster model arithmetic (bf16 units) or less work does.

The counts: PPO stages are arms x iterations less one where SOP and AOP both run (AOP's first iteration is SOP's
twin, reused), two steps each at the quickstart's budget (8 records x 2 passes, batches of 8); evaluations are
policy_0's and each trained policy's; test answers each trained policy's; feedback rounds are one per prompt stage
(vanilla's pool, SOP's prompts, AOP's second iteration): the fewest the quickstart can make.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import emit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 120.0


def timed(work: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def counts(config: dict[str, Any]) -> dict[str, int]:
    """How often the quickstart does each kind of model work (module docstring)."""
    arms = list(config["arms"])
    iterations = config["experiment"]["iterations"]
    twin = 1 if {"sop", "aop"} <= set(arms) else 0
    trained = len(arms) * iterations - twin
    batches = -(
        -config["experiment"]["records_per_iteration"]
        * config["experiment"]["passes"]
        // config["trainer"]["batch_size"]
    )
    prompt_stages = sum(1 for a in arms if a != "aop") + (iterations - 1 if "aop" in arms else 0)
    return {
        "sft": 1,
        "ppo_steps": trained * batches,
        "evaluations": 1 + trained,
        "answers": trained,
        "feedback_rounds": prompt_stages,
    }


def feedback_prompts(questions: list[str], n: int) -> list[str]:
    """``n`` prompts of the shape SOP and AOP send (the compact score-based template, the held-out questions as the
    examples, made-up scores): their lengths are what the feedback LLM prefills."""
    from aopcore_curricula import templates

    prompts = []
    for i in range(n):
        shown = [questions[(i + k) % len(questions)] for k in range(5)]
        examples = "\n".join(f'- "{q}" score {0.2 + 0.1 * k:.2f}' for k, q in enumerate(shown))
        prompts.append(
            templates.SCORE_BASED_COMPACT.format(
                examples=examples, n=6, venue=f"a forum for question {i}", convention=""
            )
        )
    return prompts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="examples/quickstart.toml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as aopcore run's --set")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import torch

    from aopcore.engine.build import resolve
    from aopcore.records import Prompt

    plan = resolve(ROOT / args.config, args.set)
    snapshot = plan.snapshot()
    build = {
        section: impl.build(options)
        for section, (impl, options) in plan.components.items()
        if section in ("trainer", "reward", "feedback")
    }
    trainer, reward, feedback = build["trainer"], build["reward"], build["feedback"]
    feedback.cache = None  # every round generated, as a cold quickstart does
    heldout = [q.text for q in plan.questions("heldout")]
    tests = [q.text for q in plan.questions("test_prompts")]
    o = trainer.options
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="aopcore-floor-") as tmp:
        work = Path(tmp)
        policy0, trained = work / "policy_0", work / "policy_1"
        policy0.mkdir()
        figures["sft_s"], _ = timed(lambda: trainer.initial_policy(policy0, seed=0))
        trainer.generate(policy0, heldout[:2], seed=0)  # load and warm up: loading is not the floor
        figures["evaluation_s"], _ = timed(lambda: trainer.generate(policy0, heldout, seed=0))
        figures["answers_s"], _ = timed(lambda: trainer.generate(policy0, tests, seed=0))
        prompts = [Prompt(f"p{i}", q, "c") for i, q in enumerate((heldout + tests)[: o.batch_size])]
        trained.mkdir()
        stage_s, stats = timed(
            lambda: trainer.train(
                policy0, prompts, reward, passes=snapshot["experiment"]["passes"], out=trained, seed=0
            )
        )
        steps = [m["time/step_s"] for m in stats.metrics]
        figures["ppo_step_s"] = sum(steps) / len(steps)
        figures["ppo_stage_s"] = stage_s
        shutil.rmtree(trained, ignore_errors=True)
        calls = feedback_prompts(heldout, plan.arms["sop"][1].draws if "sop" in plan.arms else 12)
        feedback.complete(calls[:1])  # load and warm up
        figures["feedback_round_s"], _ = timed(lambda: feedback.complete(calls))
    from quickstart_profile import calibrate

    with tempfile.TemporaryDirectory() as tmp:
        calibrate(Path(tmp) / "calibration.json")
        speed = json.loads((Path(tmp) / "calibration.json").read_text())
    n = counts(snapshot)
    parts = {
        "sft": figures["sft_s"] * n["sft"],
        "ppo_steps": figures["ppo_step_s"] * n["ppo_steps"],
        "evaluations": figures["evaluation_s"] * n["evaluations"],
        "answers": figures["answers_s"] * n["answers"],
        "feedback_rounds": figures["feedback_round_s"] * n["feedback_rounds"],
    }
    floor = sum(parts.values())
    from aopcore_hf.models import cpu_has_native_bf16

    result = {
        "benchmark": "quickstart_floor",
        "config": args.config,
        "set": args.set,
        "cpu": {
            "cores": torch.get_num_threads(),
            "native_bf16": cpu_has_native_bf16(),
            "capability": torch.backends.cpu.get_cpu_capability(),
        },
        "resolved": {
            "trainer.mixed_precision": o.mixed_precision,
            "trainer.gradient_checkpointing": o.gradient_checkpointing,
            "trainer.sft.gradient_checkpointing": o.sft.gradient_checkpointing if o.sft else None,
            "feedback.dtype": feedback.options.dtype,
            "feedback.engine": feedback.engine_name,
        },
        "calibration": speed,  # the machine's speed just after, as quickstart_profile.py measures it
        "counts": n,
        "measured_s": {k: round(v, 2) for k, v in figures.items()},
        "floor_parts_s": {k: round(v, 1) for k, v in parts.items()},
        "floor_s": round(floor, 1),
        "goal_s": GOAL_S,
        "floor_over_goal": round(floor / GOAL_S, 2),
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
