"""No wasted judge call: identical answers are ties without asking, booked in the ledger and shown in the report."""

from __future__ import annotations

import json
from pathlib import Path

from aopcore import Budget, Experiment, JudgeItem, JudgingPlan, Prompt, Question, Verdict
from aopcore.analysis.report import LEDGER_HEADER, ledger_rows
from aopcore.engine.judging import PairVerdict, judge_pair, tally
from aopcore.ledger import StageMeter
from aopcore.records import read_jsonl, write_jsonl

import toy_components as toy

QS = [Question(f"q{i}", f"question {i}?") for i in range(40)]


class RecordingJudge:
    """Prefers the longer answer; remembers every item it was asked about."""

    def __init__(self) -> None:
        self.asked: list[JudgeItem] = []

    def judge(self, items):
        self.asked += items
        return [
            Verdict(
                it.id,
                "C" if len(it.answer_a) == len(it.answer_b) else "A" if len(it.answer_a) > len(it.answer_b) else "B",
            )
            for it in items
        ]


def test_identical_answers_skip_the_judge_in_both_orders_mode():
    judge = RecordingJudge()
    a = ["long answer", "same", "x", " same "]
    b = ["short", "same", "longer one", "same"]
    with StageMeter("judge") as meter:
        verdicts = judge_pair(judge, QS[:4], a, b, both_orders=True, seed=0)
    assert [v.choice for v in verdicts] == ["A", "C", "B", "C"]
    assert [v.identical for v in verdicts] == [False, True, False, True]
    assert [v.orders for v in verdicts] == [("A", "A"), ("C",), ("B", "B"), ("C",)]
    assert {it.id for it in judge.asked} == {"q0:ab", "q0:ba", "q2:ab", "q2:ba"}
    assert meter.counts["judge_calls_saved"] == 4
    rate = tally("x", "y", 1, verdicts)
    assert (rate.wins_a, rate.wins_b, rate.ties) == (1, 1, 2)


def test_skipping_identical_items_leaves_the_other_items_order_draws_alone():
    """Single-order mode draws a swap per item; an identical item must not shift the draws (and verdicts) of the rest."""
    a = [f"answer {i} " + "+" * (i % 3) for i in range(40)]
    b = [f"answer {i} " + "+" * ((i + 1) % 3) for i in range(40)]
    all_differ, some_same = RecordingJudge(), RecordingJudge()
    first = judge_pair(all_differ, QS, a, b, both_orders=False, seed=5)
    b_same = [a[i] if i % 4 == 0 else b[i] for i in range(40)]
    with StageMeter("judge") as meter:
        second = judge_pair(some_same, QS, a, b_same, both_orders=False, seed=5)
    asked_first = {it.id: (it.answer_a, it.answer_b) for it in all_differ.asked}
    for it in some_same.asked:
        assert asked_first[it.id] == (it.answer_a, it.answer_b)  # same position for the same item
    assert len(some_same.asked) == 30 and meter.counts["judge_calls_saved"] == 10
    assert all(s == f for i, (f, s) in enumerate(zip(first, second)) if i % 4)
    assert all(s.choice == "C" and s.identical for s in second[::4])


def test_the_identical_flag_survives_the_verdict_file_and_old_files_still_read(tmp_path: Path):
    write_jsonl(
        tmp_path / "v.jsonl", [PairVerdict("q0", "C", ("C",), identical=True), PairVerdict("q1", "A", ("A", "A"))]
    )
    assert [v.identical for v in read_jsonl(tmp_path / "v.jsonl", PairVerdict)] == [True, False]
    (tmp_path / "old.jsonl").write_text(json.dumps({"item_id": "q2", "choice": "B", "orders": ["B", "B"]}) + "\n")
    assert read_jsonl(tmp_path / "old.jsonl", PairVerdict) == [PairVerdict("q2", "B", ("B", "B"))]


class SharedPool(toy.StaticCurriculum):
    """The same prompts, with the same ids, whichever arm asks: as AOP and SOP share their first iteration."""

    def prompts(self, ctx):
        return [
            Prompt(p.id.replace(ctx.arm, "shared", 1), p.text, p.category, p.provenance) for p in super().prompts(ctx)
        ]


def test_twin_arms_are_judged_without_a_single_call_and_the_ledger_says_so(tmp_path: Path):
    """Two arms that train the same policy (like AOP and SOP at iteration 1): all ties, no judge call, saving booked."""
    judge = toy.LengthJudge(toy.MarginJudgeOptions())
    heldout = [Question(f"h{i}", f"held-out question {i}", cat) for i, cat in enumerate(["a", "b", "c"] * 2)]
    tests = [Question(f"t{i}", f"test {i}") for i in range(5)]
    arms = {
        "first": SharedPool(toy.StaticOptions()),
        "twin": SharedPool(toy.StaticOptions()),
        "other": toy.WeakestCurriculum(),
    }
    result = Experiment(
        name="twins",
        output_dir=tmp_path,
        trainer=toy.ToyTrainer(toy.ToyTrainerOptions()),
        reward=toy.LengthReward(),
        arms=arms,
        heldout=heldout,
        test_prompts=tests,
        judge=judge,
        judging=JudgingPlan(pairs=[("first", "twin"), ("first", "other")]),
        budget=Budget(iterations=2, records_per_iteration=6, passes=1),
        seed=3,
    ).run()
    run = result.run_dir
    twin_answers = [(run / "arms" / arm / "iter-01" / "test_answers.jsonl").read_text() for arm in ("first", "twin")]
    assert twin_answers[0] == twin_answers[1]
    twins = [w for w in result.winrates if w.arm_b == "twin"]
    assert twins and all(w.ties == len(tests) and w.wins_a == w.wins_b == 0 for w in twins)
    verdicts = read_jsonl(run / "judge" / "first-vs-twin" / "iter-01.jsonl", PairVerdict)
    assert all(v.identical for v in verdicts)
    judge_stages = [r for r in result.ledger if r["kind"] == "judge"]
    saved = sum(r.get("judge_calls_saved", 0) for r in judge_stages)
    assert saved >= 2 * 2 * len(tests)  # both orders, both iterations of the twin pair
    assert sum(r.get("judge_calls", 0) for r in judge_stages) + saved == 2 * 2 * 2 * len(tests)
    rows = {(r[0], r[1]): dict(zip(LEDGER_HEADER, r)) for r in ledger_rows(run)}
    assert int(rows[("(shared)", "judge")]["judge calls saved (identical answers)"]) == saved
    assert "judge calls saved (identical answers)" in (run / "report.md").read_text()


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_says_how_each_curriculum_chose_its_prompts(tmp_path: Path):
    """Only prompts written from an evaluation were 'chosen for the weakest categories'; vanilla and pool were not."""
    from aopcore.analysis.report import targeting, write_markdown_report

    run = tmp_path / "run"
    (run / "config.json").parent.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"experiment": {"iterations": 2}}))
    ev = lambda low, high: [
        {"question_id": "h0", "question": "q", "category": low, "answer": "", "reward": 0.1},  # noqa: E731
        {"question_id": "h1", "question": "q", "category": high, "answer": "", "reward": 0.9},
    ]
    _write(run / "sft" / "evaluation.jsonl", ev("askdocs", "askbaking"))
    for arm in ("vanilla", "sop", "aop", "pool", "focus"):
        _write(run / "arms" / arm / "iter-01" / "evaluation.jsonl", ev("askbaking", "askdocs"))
    gen = lambda arm, call, sample: {
        "curriculum": arm,
        "iteration": 1,
        "source": "generated",
        "feedback_call": call,  # noqa: E731
        "draw": 0,
        "sample_ids": sample,
    }
    for i in (1, 2):
        _write(
            run / "arms" / "vanilla" / f"iter-{i:02d}" / "prompts.jsonl",
            [
                {
                    "id": f"v{i}",
                    "text": "t",
                    "category": "askdocs",
                    "provenance": {**gen("vanilla", "vanilla-r0-c1", []), "iteration": 0},  # written up front
                }
            ],
        )
        _write(  # a plugin's curriculum that weighs categories by ctx.evaluation and names no samples (the scaffold's)
            run / "arms" / "focus" / f"iter-{i:02d}" / "prompts.jsonl",
            [
                {
                    "id": f"f{i}",
                    "text": "t",
                    "category": "askdocs",
                    "provenance": {"curriculum": "focus", "iteration": i, "source": "template"},
                }
            ],
        )
        _write(
            run / "arms" / "sop" / f"iter-{i:02d}" / "prompts.jsonl",
            [{"id": f"s{i}", "text": "t", "category": "askdocs", "provenance": gen("sop", "sop-i01-d0", ["h0", "h1"])}],
        )
        _write(
            run / "arms" / "aop" / f"iter-{i:02d}" / "prompts.jsonl",
            [
                {
                    "id": f"a{i}",
                    "text": "t",
                    "category": "askdocs",
                    "provenance": gen("aop", f"aop-i{i:02d}-d0", ["h0", "h1"]),
                }
            ],
        )
        _write(
            run / "arms" / "pool" / f"iter-{i:02d}" / "prompts.jsonl",
            [
                {
                    "id": f"p{i}",
                    "text": "t",
                    "category": "askdocs",
                    "provenance": {"curriculum": "pool", "iteration": i, "source": "pool"},
                }
            ],
        )
    rows = {arm: {r["iteration"]: r for r in its} for arm, its in targeting(run).items()}
    assert not rows["vanilla"][2]["targeted"] and rows["vanilla"][2]["weakest_before"] == []
    assert not rows["pool"][1]["targeted"] and "fixed candidate pool" in rows["pool"][1]["basis"]
    # SOP's iteration-2 prompts were written at iteration 1 from the SFT evaluation (askdocs weakest), not iteration 1's
    assert rows["sop"][2]["evaluated_at"] == 0 and rows["sop"][2]["weakest_before"][0][0] == "askdocs"
    # one weakest category shown for prompts that went to one category (of the evaluation's two)
    assert rows["aop"][2]["evaluated_at"] == 1 and rows["aop"][2]["weakest_before"] == [("askbaking", 0.1)]
    write_markdown_report(run)
    lines = {
        ln.split("**")[1] + ln.split(":")[0][-2:]: ln
        for ln in (run / "report.md").read_text().splitlines()
        if ln.startswith("- **")
    }
    assert "static pool written before the first iteration, not chosen from an evaluation" in lines["vanilla 2"]
    # what the report cannot know, it does not claim: no "static pool", no "not chosen from an evaluation"
    assert "template prompts (their provenance names no evaluation samples)" in lines["focus 2"]
    assert "static" not in lines["focus 2"] and "not chosen" not in lines["focus 2"]
    assert "weakest" not in lines["vanilla 2"] and "weakest" not in lines["pool 1"]
    assert "weakest categories of the SFT policy's evaluation (written at iteration 1): askdocs" in lines["sop 2"]
    assert "weakest categories of the iteration-1 evaluation: askbaking" in lines["aop 2"]
