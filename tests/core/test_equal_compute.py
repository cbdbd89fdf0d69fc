"""Equal total compute (aopcore.analysis.aggregate_compute): arms that tie at equal steps differ once choosing is counted.

Synthetic multi-seed run directories in the real layout (stage records, evaluation files), so the numbers are
known: two arms reach the same accuracy per iteration, but one pays ten times the tokens to choose its prompts.
"""

import json
import random

import pytest

from aopcore.analysis.aggregate import aggregate
from aopcore.analysis.aggregate_compute import compute_curve, equal_compute
from aopcore.analysis.aggregate_report import markdown

QUESTIONS = [f"q{k}" for k in range(60)]
ACC = {0: 0.3, 1: 0.5, 2: 0.7}  # both arms, per iteration


def write_seed(root, seed, *, choosing_tokens):
    run = root / f"seed-{seed}"
    (run / "stages").mkdir(parents=True)
    (run / "config.json").write_text("{}")

    def evaluation(path, acc):
        rng = random.Random(f"{seed}-{acc}")  # both arms answer alike per iteration: they tie at equal steps
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "".join(
                json.dumps({"question_id": q, "category": "c", "reward": float(rng.random() < acc + 0.02 * seed)})
                + "\n"
                for q in QUESTIONS
            )
        )

    evaluation(run / "sft" / "evaluation.jsonl", ACC[0])
    order = 0
    for arm, extra in choosing_tokens.items():
        for i in (1, 2):
            evaluation(run / "arms" / arm / f"iter-{i:02d}" / "evaluation.jsonl", ACC[i])
            for kind, usage in (
                ("prompts", {"tokens_generated": extra, "prompt_tokens": extra}),
                ("train", {"tokens_generated": 500}),
                ("evaluate", {"tokens_generated": 120, "used_for_choosing": False}),
            ):
                order += 1
                name = "evaluation" if kind == "evaluate" else kind
                rec = {"stage": f"arms/{arm}/iter-{i:02d}/{name}", "arm": arm, "kind": kind, "order": order, **usage}
                (run / "stages" / f"arms__{arm}__iter-{i:02d}__{name}.json").write_text(json.dumps(rec))
    return run


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "multi"
    for s in range(5):
        write_seed(root, s, choosing_tokens={"cheap": 0, "dear": 2000})
    (root / "multiseed.json").write_text(json.dumps({"seeds": list(range(5)), "arms": ["cheap", "dear"]}))
    return root


def test_compute_counts_training_and_choosing_not_the_report_evaluation(root):
    curve = compute_curve(root / "seed-0", "dear")
    assert curve == {0: 0.0, 1: 500 + 2000 + 2000, 2: 2 * 4500}  # evaluations no curriculum reads are left out
    assert compute_curve(root / "seed-0", "dear", prompt_weight=0.0)[1] == 2500
    assert compute_curve(root / "seed-0", "cheap") == {0: 0.0, 1: 500, 2: 1000}


def test_equal_steps_tie_equal_compute_separates(root):
    data = aggregate(root, resamples=400)
    steps = next(d for d in data["heldout_differences"] if d["iteration"] == 2)
    assert abs(steps["estimate"]) < 1e-9 and steps["verdict"].startswith("no conclusion")  # identical per seed
    pair = data["equal_compute"]["differences"][0]
    assert (pair["arm_a"], pair["arm_b"]) == ("cheap", "dear")
    assert pair["compute"] == 1000  # the largest both reach: cheap's final compute
    # at 1000 tokens cheap is at iteration 2 (0.7), dear between iteration 0 and 1 (1000 / 4500 of the way)
    assert pair["estimate"] > 0.2 and pair["ci_low"] > 0 and pair["verdict"] == "cheap is higher"
    assert pair["sentence"] in [c["equal_compute"] for c in data["conclusions"]]
    md = markdown(data)
    assert "At equal total compute" in md and "cheap vs dear at equal compute (1,000 tokens, 5 seeds)" in md


def test_interpolation_is_linear_in_compute(root):
    runs = {s: root / f"seed-{s}" for s in range(5)}
    out = equal_compute(runs, ["cheap", "dear"], resamples=200)
    curves = out["curves"]
    assert [r["compute"]["estimate"] for r in curves["dear"]] == [0.0, 4500.0, 9000.0]
    t = 1000 / 4500
    expected = (1 - t) * curves["dear"][0]["heldout"]["estimate"] + t * curves["dear"][1]["heldout"]["estimate"]
    assert out["differences"][0]["mean_b"] == pytest.approx(expected, abs=1e-6)
