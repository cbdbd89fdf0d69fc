"""The testbed's promise: RL on the testbed policy raises the accuracy of the category it trains on, and not of
the others, beyond seed noise, within seconds on a CPU. A real run: `aopcore run` with the testbed policy, PPO, the
verifier reward, and the pool curriculum given a pool of one category only, under three seeds."""

import json
import os
import statistics
from pathlib import Path

import pytest

from aopcore_testbed import sets
from aopcore_testbed.skills import CATEGORIES

from helpers import run_cli

ROOT = Path(__file__).parents[2]
TRAINED = "maximum"


def accuracy(path: Path) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        by.setdefault(r["category"], []).append(r["reward"])
    return {c: sum(v) / len(v) for c, v in by.items()}


@pytest.mark.slow
def test_training_on_one_category_raises_it_and_not_the_others(tmp_path):
    pool = tmp_path / "only-maximum.jsonl"
    pool.write_text(
        "".join(
            json.dumps({"id": q.id, "text": q.text, "category": q.category}) + "\n"
            for q in sets.build_sets()["pool"]
            if q.category == TRAINED
        )
    )
    config = f"""
[experiment]
name = "one-category"
output_dir = "{tmp_path}"
seeds = [0, 1, 2]
iterations = 2
records_per_iteration = 40
passes = 4

[data]
heldout = "testbed:heldout"
test_prompts = "testbed:test"
test_size = 7

[trainer]
plugin = "ppo"
model = "testbed-tiny"
device = "cpu"
batch_size = 16
mini_batch_size = 8
learning_rate = 1e-4
init_kl_coef = 0.05
eval_max_new_tokens = 4
eval_batch_size = 64
generation = {{ max_new_tokens = 4, temperature = 1.0 }}

[reward]
plugin = "verifier"

[judge]
plugin = "verifier"

[embedder]
plugin = "sentence-transformers"
device = "cpu"

[arms.focus]
curriculum = "pool"
pool = "{pool}"
"""
    (tmp_path / "c.toml").write_text(config)
    result = run_cli("run", str(tmp_path / "c.toml"), env={"OMP_NUM_THREADS": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "one-category"
    gains: dict[str, list[float]] = {c: [] for c in CATEGORIES}
    for seed in (0, 1, 2):
        before = accuracy(run / f"seed-{seed}" / "sft" / "evaluation.jsonl")
        after = accuracy(run / f"seed-{seed}" / "arms" / "focus" / "iter-02" / "evaluation.jsonl")
        prompts = [
            json.loads(line)
            for line in (run / f"seed-{seed}" / "arms" / "focus" / "iter-02" / "prompts.jsonl").read_text().splitlines()
        ]
        assert {p["category"] for p in prompts} == {TRAINED}
        for c in CATEGORIES:
            gains[c].append(after[c] - before[c])
    print(
        "accuracy gains per seed:", json.dumps({c: [round(g, 3) for g in v] for c, v in gains.items()})
    )  # shown with -s
    trained = gains.pop(TRAINED)
    others = [g for per in gains.values() for g in per]
    noise = statistics.pstdev(others)  # how far an untrained category moves between seeds and categories
    assert min(trained) > 0.1, trained  # every seed improves the trained category
    assert statistics.mean(trained) > statistics.mean(others) + 3 * noise, (trained, gains)
    # no untrained category improves (some lose a little: a tiny model's shared weights interfere, see docs/testbed.md)
    assert all(statistics.mean(per) < 0.1 for per in gains.values()), gains


@pytest.mark.slow
def test_comparison_benchmark_writes_labelled_results_and_figures(tmp_path):
    """benchmarks/testbed_compare.py in a small form: 3 arms (AOP, the online learnability, the per-step oracle) x 2
    seeds x 2 iterations of 16 prompts; equal-step and equal-compute verdicts, figures."""
    import subprocess
    import sys

    out, figures = tmp_path / "compare.json", tmp_path / "img"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "testbed_compare.py"),
        "--seeds",
        "0",
        "1",
        "--iterations",
        "2",
        "--arms",
        "aop",
        "learnability",
        "oracle",
        "--run-dir",
        str(tmp_path),
        "--out",
        str(out),
        "--figures",
        str(figures),
        "--set",
        "experiment.records_per_iteration=16",
        "--set",
        "experiment.passes=1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (
        result["complete"] is False
        and result["scope"].startswith("REDUCED")
        and result["arms"] == ["aop", "learnability", "oracle"]
    )
    for arm in ("aop", "learnability", "oracle"):
        for seed in ("0", "1"):
            rows = result["accuracy"][arm][seed]
            assert [r["iteration"] for r in rows] == [0, 1, 2] and sum(rows[1]["trained_on"].values()) == 16
            assert set(rows[1]["by_category"]) == set(CATEGORIES)
    # the online arm trained from the per-step channel: its steps were recorded, and fed iteration 2 (ctx.steps)
    assert (tmp_path / "testbed-compare" / "seed-0" / "arms" / "learnability" / "iter-01" / "steps.jsonl").exists()
    # the oracle measured the whole pool in its prompts stage (8 answers per prompt, booked as choosing compute) and
    # drew every step from it: more distinct prompts than its 16-prompt plan
    oracle = tmp_path / "testbed-compare" / "seed-0" / "arms" / "oracle"
    measured = json.loads((oracle / "curriculum" / "oracle-pass-rates-iter-01.json").read_text())
    assert len(measured["rates"]) == 560 and measured["samples"] == 8
    drawn = {
        g["prompt_id"]
        for line in (oracle / "iter-01" / "steps.jsonl").read_text().splitlines()
        for g in json.loads(line)["groups"]
    }
    planned = {json.loads(line)["id"] for line in (oracle / "iter-01" / "prompts.jsonl").read_text().splitlines()}
    assert len(drawn) == 16 and drawn != planned  # passes=1: one draw of 16 per step, chosen from the whole pool
    assert result["compute"]["oracle"][1]["choosing"]["policy_samples"] == 8 * 560
    pair = next(
        d for d in result["area_under_curve"]["differences"] if (d["arm_a"], d["arm_b"]) == ("aop", "learnability")
    )
    assert pair["ci_low"] <= pair["estimate"] <= pair["ci_high"] and set(pair["per_seed"]) == {"0", "1"}
    eq = result["equal_compute"]["differences"][0]
    assert "at equal compute" in eq["sentence"] and eq["verdict"].startswith("no conclusion (2 seeds")
    aop_compute = [r["compute"]["estimate"] for r in result["equal_compute"]["curves"]["aop"]]
    assert aop_compute[0] == 0 and aop_compute[1] < aop_compute[2]  # training plus choosing, cumulative
    assert sorted(p.name for p in figures.iterdir()) == [
        "testbed_accuracy.png",
        "testbed_allocation.png",
        "testbed_categories.png",
        "testbed_compute.png",
    ]
