import pytest

from aopcore import Question, Verdict
from aopcore.analysis.stats import WinRate, wilson_interval
from aopcore.analysis.tables import markdown_table
from aopcore.engine.judging import judge_pair, tally


def test_wilson_interval_matches_hand_computation():
    # p = 0.5, n = 100, z = 1.96: centre 0.5, half = 1.96*sqrt(0.0025 + 0.0000960)/1.038416 = 0.0961...
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.40383, abs=1e-4)
    assert hi == pytest.approx(0.59617, abs=1e-4)
    # zero successes: lower bound 0, upper z^2/(n+z^2) = 3.8415/13.8415
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 0.0)


def test_winrate_row_percentages():
    rate = WinRate("aop", "sop", 2, wins_a=6, wins_b=1, ties=3, dropped=2)
    row = rate.as_row()
    assert rate.n == 10
    assert (row["a_wins_pct"], row["b_wins_pct"], row["ties_pct"]) == (60.0, 10.0, 30.0)
    assert row["dropped"] == 2
    assert "| 2 | 60.00 [" in markdown_table([rate])


class ScriptedJudge:
    """Answers from a dict keyed by item id; records what it was shown."""

    def __init__(self, answers):
        self.answers = answers
        self.seen = []

    def judge(self, items):
        self.seen.extend(items)
        return [Verdict(it.id, self.answers[it.id]) for it in items]


QS = [Question(f"q{i}", f"question {i}") for i in range(4)]


def test_both_orders_win_needs_agreement_and_drops_unusable():
    judge = ScriptedJudge(
        {
            "q0:ab": "A",
            "q0:ba": "B",  # a wins in both orders -> A
            "q1:ab": "A",
            "q1:ba": "A",  # position bias: disagrees -> tie
            "q2:ab": "B",
            "q2:ba": None,  # unusable in one order -> dropped
            "q3:ab": "C",
            "q3:ba": "C",  # tie
        }
    )
    verdicts = judge_pair(judge, QS, ["a"] * 4, ["b"] * 4, both_orders=True, seed=0)
    assert [v.choice for v in verdicts] == ["A", "C", None, "C"]
    swapped = [it for it in judge.seen if it.id.endswith(":ba")]
    assert all(it.answer_a == "b" and it.answer_b == "a" for it in swapped)
    rate = tally("x", "y", 1, verdicts)
    assert (rate.wins_a, rate.wins_b, rate.ties, rate.dropped) == (1, 0, 2, 1)


def test_single_order_is_randomised_and_mapped_back():
    class PrefersAnswerTextA:
        def judge(self, items):
            return [Verdict(it.id, "A" if it.answer_a == "good" else "B") for it in items]

    qs = [Question(f"q{i}", "?") for i in range(40)]
    verdicts = judge_pair(PrefersAnswerTextA(), qs, ["good"] * 40, ["bad"] * 40, both_orders=False, seed=3)
    assert all(v.choice == "A" for v in verdicts)  # arm a always wins once mapped back


def test_judge_returning_wrong_count_is_an_error():
    class Short:
        def judge(self, items):
            return []

    with pytest.raises(RuntimeError, match="0 verdicts for 8 items"):
        judge_pair(Short(), QS, ["a"] * 4, ["b"] * 4, both_orders=True, seed=0)
