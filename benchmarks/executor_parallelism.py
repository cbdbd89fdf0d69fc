"""Executor parallelism: wall time of the Ray executor over the local one, against the dependency graph's ideal.

The experiment is the toy one (tests/toy/toy_components.py) with 3 arms x 4 iterations whose stages sleep
instead of computing (training sleeps per step, prompt writing per feedback call, answering per
batch), so two cores do not cap what the graph allows. The ideal is the critical path of
``Experiment.stages()`` with the stage times the local run measured, over their sum (what one process
does). The Ray run starts its own local instance with ``--workers`` logical CPUs; its start-up time is
reported apart from the run. This module is also the plugin module of the sleeping components.

    .venv/bin/python benchmarks/executor_parallelism.py --out benchmarks/results/executor_parallelism.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pydantic import ConfigDict

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests" / "toy"  # toy_components, a plugin module named in the config below
sys.path[:0] = [str(HERE), str(TESTS)]

from aopcore import hookimpl  # noqa: E402

import toy_components as toy  # noqa: E402


class SleepyTrainerOptions(toy.ToyTrainerOptions):
    generate_delay_s: float = 0.0  # per generate() call: an evaluation or the test answers


class SleepyTrainer(toy.ToyTrainer):
    Options = SleepyTrainerOptions

    def generate(self, policy, prompts, *, seed, sample=False):
        time.sleep(self.options.generate_delay_s)
        return super().generate(policy, prompts, seed=seed, sample=sample)


class SleepyCurriculumOptions(toy.StaticOptions):
    model_config = ConfigDict(extra="forbid")
    delay_s: float = 0.0  # the feedback calls that write an iteration's prompts


class SleepyCurriculum(toy.StaticCurriculum):
    Options = SleepyCurriculumOptions

    def prompts(self, ctx):
        time.sleep(self.options.delay_s)
        return super().prompts(ctx)


@hookimpl
def register_trainers(register):
    register("sleepy", SleepyTrainer)


@hookimpl
def register_curricula(register):
    register("sleepy", SleepyCurriculum)


def write_config(folder: Path, name: str, args: argparse.Namespace) -> Path:
    arms = "".join(
        f'\n[arms.arm{k}]\ncurriculum = "sleepy"\ndelay_s = {args.prompt_s}\npool = ["q{k}a?", "q{k}b?"]\n'
        for k in range(args.arms)
    )
    text = f'''[experiment]
name = "{name}"
output_dir = "{folder}"
seed = 3
iterations = {args.iterations}
records_per_iteration = {args.records}
passes = 1
plugins = ["toy_components", "executor_parallelism"]
plugin_paths = ["{TESTS}", "{HERE}"]

[data]
heldout_per_category = 1
test_size = 4

[trainer]
plugin = "sleepy"
step_delay_s = {args.train_s / args.records}
generate_delay_s = {args.generate_s}

[reward]
plugin = "toy-length"

[judge]
plugin = "toy-length"
{arms}'''
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--records", type=int, default=8, help="prompts per iteration (training steps)")
    parser.add_argument("--train-s", type=float, default=3.0, help="seconds one training stage sleeps")
    parser.add_argument("--prompt-s", type=float, default=1.0, help="seconds one prompts stage sleeps")
    parser.add_argument("--generate-s", type=float, default=0.5, help="seconds one evaluation or answers stage sleeps")
    parser.add_argument(
        "--workers", type=int, default=6, help="logical CPUs of the local Ray instance (stages at once)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import ray
    from _output import emit

    from aopcore.engine.build import resolve
    from aopcore.executors import critical_path
    from aopcore.executors.ray_executor import RayExecutor

    tmp = Path(tempfile.mkdtemp(prefix="aopcore-executor-bench-"))
    try:
        local = resolve(write_config(tmp, "local", args)).build()
        t0 = time.perf_counter()
        local.run()
        local_s = time.perf_counter() - t0
        records = {r["stage"]: r for r in local.store.stage_records()}
        graph = local.stages()
        serial_s = sum(records[s.id]["wall_s"] for s in graph)
        ideal_s, chain = critical_path(graph, lambda s: records[s.id]["wall_s"])

        executor = RayExecutor(init_options={"num_cpus": args.workers, "log_to_driver": False})
        t0 = time.perf_counter()
        executor._connect(ray)
        startup_s = time.perf_counter() - t0
        parallel = resolve(write_config(tmp, "ray", args)).build()
        t0 = time.perf_counter()
        parallel.run(executor)
        ray_s = time.perf_counter() - t0
        executor.close()

        same = all(
            (tmp / "local" / rel).read_bytes() == (tmp / "ray" / rel).read_bytes()
            for rel in (
                "tables/winrates.json",
                *(
                    f"arms/arm{k}/iter-{i:02d}/{f}"
                    for k in range(args.arms)
                    for i in range(1, args.iterations + 1)
                    for f in ("prompts.jsonl", "evaluation.jsonl")
                ),
            )
        )
        hosts = sorted({json.loads(p.read_text())["worker"] for p in (tmp / "ray" / "stages").glob("*.json")})
        emit(
            {
                "arms": args.arms,
                "iterations": args.iterations,
                "stages": len(graph),
                "ray_workers": args.workers,
                "stage_sleep_s": {
                    "train": args.train_s,
                    "prompts": args.prompt_s,
                    "evaluate_or_answers": args.generate_s,
                },
                "local_s": round(local_s, 2),
                "local_stage_sum_s": round(serial_s, 2),
                "ideal_critical_path_s": round(ideal_s, 2),
                "critical_path": chain,
                "ray_s": round(ray_s, 2),
                "ray_startup_s": round(startup_s, 2),
                "ray_worker_processes": len(hosts),
                "ratio_ray_over_local": round(ray_s / local_s, 3),
                "ratio_ideal": round(ideal_s / serial_s, 3),
                "ray_over_ideal": round(ray_s / ideal_s, 3),
                "identical_results": same,
            },
            args.out,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
