"""The loop end to end with small in-process components, built in Python (library use, no config)."""

import json
import shutil
from pathlib import Path

import pytest

from aopcore import (
    Budget,
    Experiment,
    InputError,
    Prompt,
    Provenance,
    Question,
    RuntimeFailure,
)
from aopcore.records import read_jsonl

import toy_components as toy

HELDOUT = [Question(f"h{i}", f"held-out question {i}", cat) for i, cat in enumerate(["a", "b", "c"] * 4)]
TESTS = [Question(f"t{i}", f"test {i}") for i in range(6)]


def make(tmp_path: Path, **kw) -> Experiment:
    args = dict(
        name="lib",
        output_dir=tmp_path,
        trainer=toy.ToyTrainer(toy.ToyTrainerOptions()),
        reward=toy.LengthReward(),
        arms={"static": toy.StaticCurriculum(toy.StaticOptions()), "weakest": toy.WeakestCurriculum()},
        heldout=HELDOUT,
        test_prompts=TESTS,
        judge=toy.LengthJudge(toy.MarginJudgeOptions()),
        budget=Budget(iterations=2, records_per_iteration=9, passes=2),
        seed=1,
    )
    args.update(kw)
    return Experiment(**args)


def mean_reward(path: Path) -> float:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return sum(r["reward"] for r in rows) / len(rows)


def test_loop_trains_judges_and_writes_run_directory(tmp_path: Path):
    result = make(tmp_path).run()
    run = result.run_dir
    for arm in ("static", "weakest"):
        for i in (1, 2):
            it = run / "arms" / arm / f"iter-{i:02d}"
            assert len(read_jsonl(it / "prompts.jsonl", Prompt)) == 9
            assert (it / "policy" / "policy.json").exists()
            assert json.loads((it / "train.json").read_text())["episodes"] == 18  # 9 records x 2 passes
        # training on a length reward makes held-out answers longer: the reward must rise
        assert (
            mean_reward(run / "arms" / arm / "iter-02" / "evaluation.jsonl")
            > mean_reward(run / "sft" / "evaluation.jsonl") + 0.3
        )
    assert [(w.arm_a, w.arm_b, w.iteration) for w in result.winrates] == [
        ("static", "weakest", 1),
        ("static", "weakest", 2),
    ]
    assert all(w.n + w.dropped == len(TESTS) for w in result.winrates)
    assert (run / "tables" / "winrates.csv").read_text().startswith("arm_a,arm_b,iteration")
    assert "## Compute ledger" in (run / "report.md").read_text()
    kinds = {r["kind"] for r in result.ledger}
    assert kinds == {"sft", "evaluate", "prompts", "train", "answers", "judge", "report"}
    asked = sum(r.get("judge_calls", 0) for r in result.ledger)
    saved = sum(r.get("judge_calls_saved", 0) for r in result.ledger)  # identical answers are ties without a call
    assert asked + saved == 2 * 2 * len(TESTS) and asked > 0  # both orders


def test_weakest_curriculum_sees_previous_evaluation(tmp_path: Path):
    run = make(tmp_path).run().run_dir
    sft = [json.loads(x) for x in (run / "sft" / "evaluation.jsonl").read_text().splitlines()]
    by_cat = {}
    for r in sft:
        by_cat.setdefault(r["category"], []).append(r["reward"])
    weakest = min(by_cat, key=lambda c: (sum(by_cat[c]) / len(by_cat[c]), c))
    cats = {p.category for p in read_jsonl(run / "arms" / "weakest" / "iter-01" / "prompts.jsonl", Prompt)}
    assert cats == {weakest}


def test_rerun_recomputes_nothing(tmp_path: Path):
    make(tmp_path).run()
    ran = []
    make(tmp_path, after_stage=ran.append).run()
    assert ran == []


def test_budget_is_enforced(tmp_path: Path):
    class Greedy:
        def prompts(self, ctx):
            return [Prompt(str(n), "q", "a", Provenance("greedy", ctx.iteration)) for n in range(ctx.budget + 1)]

    with pytest.raises(
        RuntimeFailure, match="arms.greedy: curriculum returned 10 prompts for iteration 1, budget is 9"
    ):
        make(tmp_path, arms={"greedy": Greedy()}).run()


def test_changed_config_never_overwrites_a_run(tmp_path: Path):
    make(tmp_path, snapshot={"seed": 1}).run()
    before = (tmp_path / "lib" / "sft" / "evaluation.jsonl").read_bytes()
    with pytest.raises(InputError, match="different config"):
        make(tmp_path, snapshot={"seed": 2}).run()
    assert (tmp_path / "lib" / "sft" / "evaluation.jsonl").read_bytes() == before


def test_curriculum_requirements_are_checked_up_front(tmp_path: Path):
    class NeedsLLM(toy.WeakestCurriculum):
        requires = ("feedback",)

    with pytest.raises(InputError, match="arms.x: curriculum needs a \\[feedback\\] LLM"):
        make(tmp_path, arms={"x": NeedsLLM()})


def test_library_example_runs():
    import subprocess
    import sys

    from helpers import ROOT

    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "embed_in_python.py")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "run directory:" in result.stdout and "| replay |" not in result.stdout
    assert "### replay" in result.stdout


def test_aop_and_sop_style_arms_with_same_prompts_train_the_same_policy(tmp_path: Path):
    """Common random numbers: identical prompts from the same policy give identical checkpoints, whatever the arm is called."""

    class SameForAll(toy.StaticCurriculum):
        def prompts(self, ctx):
            return [Prompt(p.id.split("-", 1)[1], p.text, p.category, p.provenance) for p in super().prompts(ctx)]

    exp = make(tmp_path, arms={"first": SameForAll(toy.StaticOptions()), "second": SameForAll(toy.StaticOptions())})
    result = exp.run()
    for i in (1, 2):
        a = (result.run_dir / "arms" / "first" / f"iter-{i:02d}" / "policy" / "policy.json").read_text()
        b = (result.run_dir / "arms" / "second" / f"iter-{i:02d}" / "policy" / "policy.json").read_text()
        assert a == b
    assert all(w.wins_a == w.wins_b == 0 for w in result.winrates)
    # the second arm did not pay for training it would only have repeated
    for i in (1, 2):
        record = json.loads((result.run_dir / "stages" / f"arms__second__iter-{i:02d}__train.json").read_text())
        assert record["reused_from"] == f"arms/first/iter-{i:02d}" and "steps" not in record


def test_replace_keeps_the_given_objects_and_counts_calls_once(tmp_path: Path):
    """Calls are counted in the experiment's own wrappers; its fields keep the objects as given, so
    dataclasses.replace (what multi-seed runs do) wraps them once, never a wrapper again."""
    import dataclasses

    from aopcore.ledger import CallCounter

    exp = make(tmp_path)
    assert exp.judge is not None
    for e in (exp, dataclasses.replace(exp, name="again")):
        assert not isinstance(e.judge, CallCounter)
        assert isinstance(e._counted_judge, CallCounter) and not isinstance(e._counted_judge.inner, CallCounter)


class PendingOnlyExecutor:
    """Runs only the stages not yet done, as the Ray executor (and any executor that plans ahead) does."""

    def run(self, experiment: Experiment) -> None:
        for stage in experiment.stages():
            if not experiment.store.is_done(stage.id):
                experiment.run_stage(stage.id)


def test_a_prune_a_crash_cut_off_is_finished_when_any_executor_resumes(tmp_path: Path):
    """keep_checkpoints = "last": an evaluation commits its record, then removes the previous policy. A driver killed
    between the two left that policy behind, and an executor that skips finished stages never pruned it: the
    resumed run kept a checkpoint an uninterrupted run does not."""
    run = tmp_path / "lib"
    pruned = run / "arms" / "static" / "iter-01" / "policy"
    kept = tmp_path / "kept"

    def keep_a_copy(stage_id: str) -> None:
        if stage_id == "arms/static/iter-01/train":
            shutil.copytree(pruned, kept)

    make(tmp_path, keep_checkpoints="last", after_stage=keep_a_copy).run()
    record = json.loads((run / "stages" / "arms__static__iter-02__evaluation.json").read_text())
    assert record["removes"] == ["arms/static/iter-01/policy"] and not pruned.exists()
    shutil.copytree(kept, pruned)  # as a driver killed between the evaluation's commit and its prune left it
    make(tmp_path, keep_checkpoints="last").run(executor=PendingOnlyExecutor())
    assert not pruned.exists()
    assert (run / "arms" / "static" / "iter-02" / "policy" / "policy.json").exists()  # the last one stays
