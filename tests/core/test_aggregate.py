"""Aggregate statistics against values computed by hand, on small fixed tables."""

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from aopcore.analysis.aggregate import (
    aggregate,
    human_judge_labels,
    judge_agreement,
    reward_sentence,
    verdict,
    winrate_sentence,
)
from aopcore.analysis.aggregate_report import write_aggregate
from aopcore.analysis.stats import (
    Interval,
    binomial,
    clustered_bootstrap_counts,
    clustered_bootstrap_mean,
    cohen_kappa,
    quantile,
    t_interval,
    t_quantile,
    two_level_bootstrap_mean,
)

# ---- the statistics ------------------------------------------------------------------------------------------------


def test_t_quantiles_match_the_printed_table():
    # two-sided 95% critical values of Student's t, from any printed table
    for df, t in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)):
        assert t_quantile(0.975, df) == pytest.approx(t, abs=1e-4)
    assert t_quantile(0.025, 4) == pytest.approx(-2.7764, abs=1e-4)


def test_t_interval_on_three_values_by_hand():
    # values 1, 2, 4: mean 7/3 = 2.33333; s^2 = (16/9 + 1/9 + 25/9) / 2 = 7/3, s = 1.527525;
    # se = s / sqrt(3) = 0.881917; t(0.975, 2) = 4.302653; half = 3.794583 -> [-1.461250, 6.127916]
    iv = t_interval([1.0, 2.0, 4.0])
    assert iv.estimate == pytest.approx(2.333333, abs=1e-6)
    assert iv.low == pytest.approx(-1.461250, abs=1e-5)
    assert iv.high == pytest.approx(6.127916, abs=1e-5)
    assert iv.n == 3 and iv.covers_zero()
    one = t_interval([0.7])
    assert one.estimate == 0.7 and not one.defined  # one seed: no interval across seeds
    same = t_interval([0.4, 0.4, 0.4])
    assert (same.low, same.high) == pytest.approx((0.4, 0.4)) and not same.covers_zero()


def test_cohen_kappa_on_a_two_by_two_table_by_hand():
    # human A / judge A: 20, A/B: 5, B/A: 10, B/B: 15 (n = 50)
    # p_o = 35/50 = 0.7; human A 25/50, judge A 30/50 -> p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5 = 0.4
    human = ["A"] * 20 + ["A"] * 5 + ["B"] * 10 + ["B"] * 15
    judge = ["A"] * 20 + ["B"] * 5 + ["A"] * 10 + ["B"] * 15
    assert cohen_kappa(human, judge) == pytest.approx(0.4)
    assert cohen_kappa(["A", "B"], ["A", "B"]) == 1.0
    assert cohen_kappa(["A", "A"], ["A", "A"]) == 1.0  # no chance-free disagreement possible
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError):
        cohen_kappa(["A"], [])


def test_quantile_interpolates_between_order_statistics():
    assert quantile([0.0, 1.0, 2.0, 3.0], 0.5) == 1.5
    assert quantile([0.0, 10.0], 0.025) == pytest.approx(0.25)


def test_binomial_draws_follow_the_binomial_distribution():
    import random

    rng = random.Random(0)
    for n, p in ((30, 0.2), (200, 0.35), (200, 0.8)):  # waiting-time path, BTRS path, flipped BTRS path
        draws = Counter(binomial(rng, n, p) for _ in range(20000))
        pmf = {k: math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)}
        mean = sum(k * c for k, c in draws.items()) / 20000
        assert mean == pytest.approx(n * p, rel=0.01)
        for k in range(n + 1):
            if pmf[k] > 0.02:  # every likely value appears about as often as the pmf says
                assert draws[k] / 20000 == pytest.approx(pmf[k], abs=0.01), (n, p, k)
    assert binomial(rng, 10, 0.0) == 0 and binomial(rng, 10, 1.0) == 10


def test_two_level_bootstrap_on_a_tiny_case_by_hand():
    # two seeds with one prompt each (values 1 and 0): resampling seeds gives pooled means 0, 0.5, 1 with
    # probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5% percentiles are 0 and 1
    iv = clustered_bootstrap_mean([[1.0], [0.0]], resamples=4000, seed=1)
    assert iv.estimate == 0.5 and (iv.low, iv.high) == (0.0, 1.0)


def test_two_level_bootstrap_respects_seed_clustering():
    # 5 seeds x 100 prompts; [A wins, B wins, ties] per seed. The seeds disagree strongly, so the clustered interval
    # must be much wider than the one that treats all 500 prompts as one sample; the estimate is the pooled rate.
    disagreeing = [[70, 30, 0], [30, 70, 0], [80, 20, 0], [25, 75, 0], [60, 40, 0]]
    stats = {"diff": lambda t: (t[0] - t[1]) / sum(t)}
    clustered = clustered_bootstrap_counts(disagreeing, stats, seed=0)["diff"]
    naive = clustered_bootstrap_counts([[sum(c) for c in zip(*disagreeing)]], stats, seed=0)["diff"]
    assert clustered.estimate == naive.estimate == pytest.approx((265 - 235) / 500)
    assert clustered.high - clustered.low > 3 * (naive.high - naive.low)
    assert clustered.covers_zero()
    again = clustered_bootstrap_counts(disagreeing, stats, seed=0)["diff"]
    assert again == clustered  # seeded: reruns give the same report


def test_two_level_mean_bootstrap_by_hand():
    # three seeds, one question each (differences 0, 0, 1): a replicate is the mean of 3 seeds drawn with replacement,
    # k/3 with k ~ Binomial(3, 1/3): P(0) = 8/27, P(1/3) = 12/27, P(2/3) = 6/27, P(1) = 1/27 = 3.7% > 2.5%,
    # so the percentiles are 0 and 1
    iv = two_level_bootstrap_mean([[0.0], [0.0], [1.0]], resamples=4000, seed=3)
    assert iv.estimate == pytest.approx(1 / 3) and (iv.low, iv.high) == (0.0, 1.0) and iv.n == 3
    # every seed has the same mean 0.5 (a t-interval across seeds would be [0.5, 0.5]), but the questions vary:
    # a replicate is the mean of 12 fair coin flips, Binomial(12, 1/2) / 12; P(X <= 2) = 79/4096 = 1.9% and
    # P(X <= 3) = 299/4096 = 7.3%, so the percentiles are 3/12 and 9/12: question noise widens the interval
    coins = [[1.0, 0.0, 1.0, 0.0]] * 3
    assert (t_interval([0.5, 0.5, 0.5]).low, t_interval([0.5, 0.5, 0.5]).high) == pytest.approx((0.5, 0.5))
    iv = two_level_bootstrap_mean(coins, resamples=4000, seed=3)
    assert iv.estimate == 0.5 and (iv.low, iv.high) == (0.25, 0.75)
    # the estimate weighs each seed once, whatever its number of questions: (1 + 0) / 2, not 3/4
    assert two_level_bootstrap_mean([[1.0, 1.0], [0.0]], resamples=10).estimate == 0.5
    assert not two_level_bootstrap_mean([]).defined


# ---- sentences -----------------------------------------------------------------------------------------------------


def test_sentence_says_no_detectable_difference_when_the_interval_covers_zero():
    assert verdict("aop", "sop", Interval(0.02, -0.01, 0.05, 5), seeds=5) == "no detectable difference"
    assert verdict("aop", "sop", Interval(0.04, 0.01, 0.07, 5), seeds=5) == "aop is higher"
    assert verdict("aop", "sop", Interval(-0.04, -0.07, -0.01, 5), seeds=5) == "sop is higher"
    assert (
        verdict("aop", "sop", Interval(0.04, float("nan"), float("nan"), 1), seeds=1)
        == "no conclusion (1 seed; the interval needs >= 3)"
    )


def test_sentence_draws_no_conclusion_from_a_degenerate_interval():
    # the newcomer's case: two seeds with the same difference gave "+0.036 (95% CI +0.036 to +0.036): vanilla is higher"
    flat = Interval(0.036, 0.036, 0.036, 2)
    assert verdict("vanilla", "pool", flat, seeds=2) == "no conclusion (2 seeds; the interval needs >= 3)"
    assert verdict("vanilla", "pool", Interval(0.04, 0.01, 0.07, 2), seeds=2).startswith("no conclusion (2 seeds")
    # enough seeds, but zero width or identical per-seed values: still no verdict
    assert (
        verdict("vanilla", "pool", Interval(0.036, 0.036, 0.036, 3), seeds=3)
        == "no conclusion (3 seeds; the seeds do not vary)"
    )
    assert (
        verdict("vanilla", "pool", Interval(0.036, 0.02, 0.05, 3), seeds=3, seeds_vary=False)
        == "no conclusion (3 seeds; the seeds do not vary)"
    )
    text = reward_sentence("vanilla", "pool", 1, 0.5, 0.464, flat)
    assert text.endswith("(95% CI +0.036 to +0.036): no conclusion (2 seeds; the interval needs >= 3).")
    text = reward_sentence("aop", "sop", 3, 0.61, 0.57, Interval(0.04, 0.01, 0.07, 5))
    assert text == (
        "aop vs sop, iteration 3 (5 seeds): held-out reward 0.610 vs 0.570, difference +0.040 "
        "(95% CI +0.010 to +0.070): aop is higher."
    )
    rates = {
        "a_win_rate": Interval(0.3, 0, 0, 200),
        "b_win_rate": Interval(0.4, 0, 0, 200),
        "tie_rate": Interval(0.3, 0, 0, 200),
        "difference": Interval(-0.1, -0.18, -0.02, 200),
    }
    assert winrate_sentence("aop", "sop", 2, rates, 5).endswith(
        "win-rate difference -10.0 points (95% CI -18.0 to -2.0): sop wins more often."
    )
    rates["difference"] = Interval(-0.1, -0.18, 0.02, 200)
    assert winrate_sentence("aop", "sop", 2, rates, 5).endswith("no detectable difference.")


# ---- the aggregate of a small, hand-made multi-seed run directory --------------------------------------------------


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _evaluation(path: Path, rewards: list[float]) -> None:
    _jsonl(
        path,
        [
            {"question_id": f"h{n}", "question": "?", "category": "c" + str(n % 2), "answer": "x", "reward": r}
            for n, r in enumerate(rewards)
        ],
    )


# per seed, per arm: the two held-out rewards at iteration 1 (means: a 0.5/0.6/0.7, b 0.4/0.6/0.5, c 0.1/0.2/0.3)
HELDOUT = {
    0: {"a": [0.4, 0.6], "b": [0.3, 0.5], "c": [0.0, 0.2]},
    1: {"a": [0.5, 0.7], "b": [0.5, 0.7], "c": [0.1, 0.3]},
    2: {"a": [0.6, 0.8], "b": [0.4, 0.6], "c": [0.2, 0.4]},
}
# judge verdicts a-vs-b at iteration 1, per seed (None = dropped)
VERDICTS = {0: ["A", "A", "B", "C"], 1: ["A", "C", "C", None], 2: ["B", "B", "A", "A"]}


@pytest.fixture
def multiseed_root(tmp_path: Path) -> Path:
    root = tmp_path / "exp"
    root.mkdir()
    (root / "multiseed.json").write_text(
        json.dumps({"arms": ["a", "b", "c"], "seeds": [0, 1, 2], "config": {"experiment": {}}})
    )
    for s, arms in HELDOUT.items():
        run = root / f"seed-{s}"
        (run / "stages").mkdir(parents=True)
        (run / "config.json").write_text("{}")
        _evaluation(run / "sft" / "evaluation.jsonl", [0.1, 0.1 * s])
        for arm, rewards in arms.items():
            _evaluation(run / "arms" / arm / "iter-01" / "evaluation.jsonl", rewards)
            (run / "arms" / arm / "iter-01" / "train.json").write_text(json.dumps({"episodes": 24}))
            for stage, kind, wall in (
                ("prompts", "prompts", 1.0),
                ("evaluation", "evaluate", 2.0),
                ("train", "train", 5.0),
            ):
                (run / "stages" / f"arms__{arm}__iter-01__{stage}.json").write_text(
                    json.dumps(
                        {
                            "stage": f"arms/{arm}/iter-01/{stage}",
                            "kind": kind,
                            "arm": arm,
                            "wall_s": wall + s,
                            "feedback_calls": 1 if kind == "prompts" else 0,
                        }
                    )
                )
        _jsonl(
            run / "judge" / "a-vs-b" / "iter-01.jsonl",
            [{"item_id": f"q{n}", "choice": c, "orders": [c, c]} for n, c in enumerate(VERDICTS[s])],
        )
    (root / "seed-0" / "stages" / "report.json").write_text(json.dumps({"stage": "report", "kind": "report"}))
    # a human tally in seed 0: majorities A, B, B, C against the judge's A, A, B, C
    (root / "seed-0" / "tables").mkdir()
    (root / "seed-0" / "tables" / "human_eval.json").write_text(
        json.dumps(
            {
                "items": [
                    {"pair": "a-vs-b", "iteration": 1, "question": f"q{n}", "majority": m} for n, m in enumerate("ABBC")
                ]
            }
        )
    )
    return root


def test_aggregate_numbers_match_hand_computation(multiseed_root: Path):
    data = aggregate(multiseed_root, resamples=2000)
    assert data["arms"] == ["a", "b", "c"] and data["iterations"] == [0, 1]
    assert data["seeds_found"] == [0, 1, 2] and data["seeds_finished"] == [0]

    # arm a, iteration 1: seed means 0.5, 0.6, 0.7 -> mean 0.6, s = 0.1, half = 4.302653 * 0.1 / sqrt(3) = 0.248414
    a1 = next(r for r in data["heldout"]["a"] if r["iteration"] == 1)
    assert (a1["estimate"], a1["ci_low"], a1["ci_high"]) == pytest.approx((0.6, 0.351586, 0.848414), abs=1e-6)
    assert a1["per_seed"] == {"0": 0.5, "1": 0.6, "2": 0.7}
    # iteration 0 is the SFT evaluation, the same for every arm: seed means 0.05, 0.1, 0.15
    a0 = next(r for r in data["heldout"]["a"] if r["iteration"] == 0)
    assert a0["estimate"] == pytest.approx(0.1)

    diffs = {(d["arm_a"], d["arm_b"]): d for d in data["heldout_differences"]}
    # a - b per question: seed 0 (0.1, 0.1), seed 1 (0, 0), seed 2 (0.2, 0.2): the questions agree within a seed, so
    # a replicate is the mean of 3 seeds drawn from {0.1, 0, 0.2}; all three 0 (or all 0.2) has probability
    # 1/27 = 3.7% > 2.5%, so the interval is [0, 0.2]: it touches zero
    ab = diffs["a", "b"]
    assert (ab["estimate"], ab["ci_low"], ab["ci_high"], ab["n"], ab["questions"]) == pytest.approx(
        (0.1, 0.0, 0.2, 3, 6), abs=1e-9
    )
    assert ab["per_seed"] == {"0": 0.1, "1": 0.0, "2": 0.2} and ab["verdict"] == "no detectable difference"
    # b - c per seed: 0.3, 0.4, 0.2 (each question the same) -> [0.2, 0.4], above zero
    bc = diffs["b", "c"]
    assert (bc["estimate"], bc["ci_low"], bc["ci_high"]) == pytest.approx((0.3, 0.2, 0.4), abs=1e-9)
    assert bc["verdict"] == "b is higher"
    # a - c: 0.4 on every question of every seed -> interval [0.4, 0.4]: a degenerate interval, no verdict
    ac = diffs["a", "c"]
    assert (ac["estimate"], ac["ci_low"], ac["ci_high"]) == pytest.approx((0.4, 0.4, 0.4), abs=1e-9)
    assert ac["verdict"] == "no conclusion (3 seeds; the seeds do not vary)"

    # pooled verdicts: A 5, B 3, ties 3, dropped 1 -> n = 11; a wins 5/11, b wins 3/11, difference 2/11
    (w,) = data["winrates"]
    assert (w["wins_a"], w["wins_b"], w["ties"], w["dropped"], w["n_seeds"]) == (5, 3, 3, 1, 3)
    assert w["a_win_rate"]["estimate"] == pytest.approx(5 / 11, abs=1e-6)
    assert w["difference"]["estimate"] == pytest.approx(2 / 11, abs=1e-6) and w["difference"]["n"] == 11
    assert w["difference"]["ci_low"] <= 2 / 11 <= w["difference"]["ci_high"]
    assert w["per_seed"] == {"0": [2, 1, 1, 0], "1": [1, 0, 2, 1], "2": [2, 2, 0, 0]}

    # compute: 24 episodes per iteration; choosing = prompts (1 + s) + evaluation (2 + s) wall s, mean over seeds 3 + 2*1 = 5
    c1 = next(r for r in data["compute"]["a"] if r["iteration"] == 1)
    assert c1["episodes"]["estimate"] == 24
    assert c1["choosing"]["wall_s"] == pytest.approx(5.0) and c1["train"]["wall_s"] == pytest.approx(6.0)
    assert c1["choosing"]["feedback_calls"] == pytest.approx(1.0)

    conclusions = {(c["arm_a"], c["arm_b"]): c for c in data["conclusions"]}
    assert conclusions["a", "b"]["heldout"].endswith("no detectable difference.")
    assert conclusions["a", "c"]["heldout"].endswith("no conclusion (3 seeds; the seeds do not vary).")
    assert conclusions["b", "c"]["heldout"].endswith("b is higher.")
    assert conclusions["a", "b"]["winrate"].startswith(
        "a vs b, iteration 1: a wins 45.5%, b wins 27.3%, ties 27.3% of 11"
    )
    assert conclusions["a", "c"]["winrate"] is None  # never judged

    # judge vs humans: agree on 3 of 4; kappa = (0.75 - 5/16) / (1 - 5/16) = 0.636364
    agree = data["judge_agreement"]
    assert agree["items"] == 4 and agree["agreement"] == 0.75
    assert agree["cohen_kappa"] == pytest.approx(0.636364, abs=1e-6)
    assert list(agree["per_seed"]) == ["0"]


def test_judge_labels_skip_dropped_verdicts(multiseed_root: Path):
    run = multiseed_root / "seed-1"
    labels = human_judge_labels(
        run, [{"pair": "a-vs-b", "iteration": 1, "question": q, "majority": "A"} for q in ("q0", "q3")]
    )
    assert [(r["question"], r["judge"]) for r in labels] == [("q0", "A")]  # q3 was dropped by the judge
    assert judge_agreement([]) is None


def test_aggregate_files_are_written(multiseed_root: Path):
    files = write_aggregate(multiseed_root)
    assert {"aggregate/aggregate.json", "aggregate/aggregate.md"} <= set(files)
    md = (multiseed_root / "aggregate" / "aggregate.md").read_text()
    assert "a vs c, iteration 1 (3 seeds): held-out reward 0.600 vs 0.200, difference +0.400" in md
    assert "agrees with the human majority on 75.0% of 4 items (Cohen's kappa 0.636" in md
    pytest.importorskip("matplotlib")
    assert "aggregate/aggregate.html" in files
    page = (multiseed_root / "aggregate" / "aggregate.html").read_text()
    assert page.count("<img") >= 4 and "no detectable difference" in page
    assert "agrees with the human majority on 75.0% of 4 items (Cohen&#x27;s kappa 0.636" in page  # the same sentence


def test_human_eval_results_report_judge_agreement(tmp_path: Path):
    """`aopcore human-eval results` sets the LLM judge beside the human majority (un-shuffled) and stores the items."""
    import sqlite3

    from aopcore_eval import human_eval

    from helpers import run_cli

    run = tmp_path / "run"
    (run / "stages").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    for arm in ("a", "b"):
        _jsonl(
            run / "arms" / arm / "iter-01" / "test_answers.jsonl",
            [{"id": f"q{n}", "question": f"question {n}", "answer": f"{arm} answer {n}"} for n in range(4)],
        )
    _jsonl(
        run / "judge" / "a-vs-b" / "iter-01.jsonl",
        [{"item_id": f"q{n}", "choice": c, "orders": [c, c]} for n, c in enumerate(["A", "A", "B", "C"])],
    )
    human_eval.prepare(run, [("a", "b")], [1], sample=4, raters=["r1", "r2", "r3"], seed=0)
    wanted = dict(zip(("q0", "q1", "q2", "q3"), ("A", "B", "B", "C")))  # the majority we vote for, in the (a, b) frame
    db = sqlite3.connect(run / human_eval.DB_NAME)
    for item, shown_a in db.execute("SELECT id, arm_shown_a FROM items").fetchall():
        choice = wanted[item.split(":")[2]]
        shown = choice if shown_a == "a" else {"A": "B", "B": "A", "C": "C"}[choice]  # what a rater clicked
        other = {"A": "C", "B": "C", "C": "A"}[shown]
        db.executemany(
            "INSERT INTO votes VALUES (?, ?, ?, 0)", [("r1", item, shown), ("r2", item, shown), ("r3", item, other)]
        )
    db.commit()
    db.close()
    result = run_cli("human-eval", "results", str(run))
    assert result.returncode == 0, result.stderr
    # judge A, A, B, C vs humans A, B, B, C: 3 of 4, kappa (0.75 - 5/16) / (11/16) = 0.636
    assert "LLM judge vs human majority: 75.0% agreement on 4 items, Cohen's kappa 0.636" in result.stdout
    tally = json.loads((run / "tables" / "human_eval.json").read_text())
    assert [i["majority"] for i in tally["items"]] == ["A", "B", "B", "C"]
    assert tally["judge_agreement"]["cohen_kappa"] == pytest.approx(0.636364, abs=1e-6)
