"""The ledger tells the whole truth: tokens booked once, calls counted for plain objects, lost time booked, choosing cost honest."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aopcore import Budget, Experiment, Question, TrainStats, Verdict, record_usage
from aopcore.analysis.report import ledger_summary

import toy_components as toy
from helpers.fakes import HashEmbedder, ScriptedLLM

TESTS_DIR = Path(__file__).resolve().parents[1] / "toy"  # toy_components
CATS = ["askbaking", "askvet", "legaladvice"]
HELDOUT = [Question(f"h{i}", f"{c} held-out question {i}?", c) for i, c in enumerate(CATS * 2)]
TESTS = [Question(f"t{i}", f"test {i}") for i in range(4)]


def make(tmp_path: Path, **kw) -> Experiment:
    args = dict(
        name="l",
        output_dir=tmp_path,
        trainer=toy.ToyTrainer(toy.ToyTrainerOptions()),
        reward=toy.LengthReward(),
        arms={"static": toy.StaticCurriculum(toy.StaticOptions())},
        heldout=HELDOUT,
        test_prompts=TESTS,
        budget=Budget(iterations=2, records_per_iteration=6, passes=1),
        seed=4,
    )
    args.update(kw)
    return Experiment(**args)


def stage(result, stage_id: str) -> dict:
    return next(r for r in result.ledger if r["stage"] == stage_id)


class SelfReporting(toy.ToyTrainer):
    """Books its tokens with record_usage and also returns them in TrainStats: they must count once."""

    def train(self, policy, prompts, reward, *, passes, out, seed) -> TrainStats:
        stats = super().train(policy, prompts, reward, passes=passes, out=out, seed=seed)
        record_usage(tokens_generated=stats.tokens_generated)
        return stats


def test_train_tokens_are_booked_once(tmp_path: Path):
    reporting = make(tmp_path / "a", trainer=SelfReporting(toy.ToyTrainerOptions())).run()
    silent = make(tmp_path / "b").run()
    expected = 6 * 5  # the toy trainer's TrainStats: 5 tokens a step, 6 steps
    assert stage(reporting, "arms/static/iter-01/train")["tokens_generated"] == expected
    assert stage(silent, "arms/static/iter-01/train")["tokens_generated"] == expected


class PlainLLM(ScriptedLLM):
    """A feedback LLM that never calls record_usage."""


class PlainJudge:
    """A judge that never calls record_usage."""

    def __init__(self) -> None:
        self.items = 0

    def judge(self, items):
        self.items += len(items)
        return [Verdict(it.id, "A" if len(it.answer_a) >= len(it.answer_b) else "B") for it in items]


def test_plain_feedback_and_judge_calls_are_counted_and_self_reporting_ones_once(tmp_path: Path):
    from aopcore_curricula.curricula import AOPCurriculum
    from aopcore_curricula.options import ScoreBasedOptions

    opts = ScoreBasedOptions(samples_per_category=1, draws=2, questions_per_call=6, parallel_calls=2)
    llm, judge = PlainLLM(), PlainJudge()
    result = make(
        tmp_path / "plain",
        arms={"aop": AOPCurriculum(opts), "static": toy.StaticCurriculum(toy.StaticOptions())},
        feedback=llm,
        embedder=HashEmbedder(),
        judge=judge,
    ).run()
    booked = sum(r.get("feedback_calls", 0) for r in result.ledger)
    assert booked == llm.calls >= 4  # two iterations, at least two draws each
    assert sum(r.get("judge_calls", 0) for r in result.ledger) == judge.items > 0  # identical answers are not sent

    class Reporting(PlainLLM):
        def complete(self, prompts):
            record_usage(feedback_calls=len(prompts))
            return super().complete(prompts)

    llm2 = Reporting()
    result = make(
        tmp_path / "reporting",
        arms={"aop": AOPCurriculum(opts)},
        feedback=llm2,
        embedder=HashEmbedder(),
        judge=toy.LengthJudge(toy.MarginJudgeOptions()),
    ).run()
    assert sum(r.get("feedback_calls", 0) for r in result.ledger) == llm2.calls


def test_vanilla_evaluations_are_not_booked_as_choosing(tmp_path: Path):
    from aopcore_curricula.curricula import AOPCurriculum, VanillaCurriculum
    from aopcore_curricula.options import ScoreBasedOptions, VanillaGenerationOptions

    arms = {
        "vanilla": VanillaCurriculum(
            VanillaGenerationOptions(questions_per_call=4, keywords_per_category=1, n_clusters=2, pca_components=2)
        ),
        "aop": AOPCurriculum(
            ScoreBasedOptions(samples_per_category=1, draws=2, questions_per_call=6, parallel_calls=2)
        ),
    }
    run = make(tmp_path, arms=arms, feedback=ScriptedLLM(), embedder=HashEmbedder()).run().run_dir
    records = {
        r["stage"]: r for r in json.loads("[" + ",".join(p.read_text() for p in (run / "stages").glob("*.json")) + "]")
    }
    assert records["arms/vanilla/iter-01/evaluation"]["used_for_choosing"] is False
    assert (
        records["arms/aop/iter-01/evaluation"]["used_for_choosing"] is True
    )  # iteration 2's prompts are chosen from it
    assert records["arms/aop/iter-02/evaluation"]["used_for_choosing"] is False  # the last: nothing is chosen from it
    summary = ledger_summary(run)
    vanilla_eval = sum(records[f"arms/vanilla/iter-{i:02d}/evaluation"]["wall_s"] for i in (1, 2))
    assert summary[("vanilla", "evaluate")]["wall_s"] == pytest.approx(vanilla_eval)
    assert summary[("vanilla", "choosing")]["wall_s"] == pytest.approx(
        sum(records[f"arms/vanilla/iter-{i:02d}/prompts"]["wall_s"] for i in (1, 2))
    )


class FailsOnce(toy.ToyTrainer):
    failed = False

    def train(self, policy, prompts, reward, *, passes, out, seed):
        if not FailsOnce.failed:
            FailsOnce.failed = True
            time.sleep(0.4)
            raise RuntimeError("out of memory")
        return super().train(policy, prompts, reward, passes=passes, out=out, seed=seed)


def test_time_lost_to_a_failed_attempt_is_booked(tmp_path: Path):
    with pytest.raises(RuntimeError, match="out of memory"):
        make(tmp_path, trainer=FailsOnce(toy.ToyTrainerOptions())).run()
    result = make(tmp_path, trainer=FailsOnce(toy.ToyTrainerOptions())).run()
    rec = stage(result, "arms/static/iter-01/train")
    assert (
        rec["attempts"] == 2 and 0.35 <= rec["lost_wall_s"] < 30
    )  # slept 0.4 s; file times are coarser than time.time()
    assert "lost_wall_s" not in stage(result, "arms/static/iter-02/train")  # finished at its first attempt
    assert not (result.run_dir / "attempts").exists()  # emptied as stages finish, then removed with the run


KILLED_STAGE = """
import sys, time
sys.path.insert(0, {tests!r})
import toy_components as toy
from aopcore import Budget, Experiment, Question
from aopcore.ledger import Attempt
Attempt.heartbeat_s = 0.1
heldout = [Question(f"h{{i}}", f"q {{i}}?", c) for i, c in enumerate(["a", "b"] * 2)]
Experiment(name="k", output_dir={out!r}, trainer=toy.ToyTrainer(toy.ToyTrainerOptions(step_delay_s=float(sys.argv[1]))),
           reward=toy.LengthReward(), arms={{"static": toy.StaticCurriculum(toy.StaticOptions())}}, heldout=heldout,
           test_prompts=heldout, budget=Budget(1, 20, 1)).run()
"""


@pytest.mark.slow
def test_time_lost_to_a_sigkill_is_booked(tmp_path: Path):
    script = tmp_path / "run.py"
    script.write_text(KILLED_STAGE.format(tests=str(TESTS_DIR), out=str(tmp_path)))
    proc = subprocess.Popen([sys.executable, str(script), "0.1"])  # 20 steps of 0.1 s
    attempt = tmp_path / "k" / "attempts" / "arms__static__iter-01__train.json"
    deadline = time.time() + 60
    while not attempt.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert subprocess.run([sys.executable, str(script), "0.1"], timeout=120).returncode == 0
    rec = json.loads((tmp_path / "k" / "stages" / "arms__static__iter-01__train.json").read_text())
    assert rec["attempts"] == 2 and 0.7 <= rec["lost_wall_s"] <= 2.0
