"""The verifier: a RewardModel and a Judge that check answers against the question text alone."""

from __future__ import annotations

from collections.abc import Sequence

from aopcore import JudgeItem, Verdict, record_usage
from aopcore_testbed.options import VerifierJudgeOptions, VerifierRewardOptions
from aopcore_testbed.skills import check


class VerifierReward:
    """1.0 for a correct answer, 0.0 for a wrong one (configurable), recomputed from the question every time.

    A binary reward is enough here: the policy starts with partial skill in every category, so sampled answers
    are right often enough for RL to learn from (see docs/testbed.md).
    """

    Options = VerifierRewardOptions

    def __init__(self, options: VerifierRewardOptions | None = None) -> None:
        self.options = options or VerifierRewardOptions()

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        o = self.options
        out = []
        for prompt, response in zip(prompts, responses, strict=True):
            ok = check(prompt, response)
            out.append(o.unverifiable if ok is None else (o.correct if ok else o.wrong))
        return out


class VerifierJudge:
    """Pairwise verdicts from correctness: a correct answer beats a wrong one; otherwise a tie ("C")."""

    Options = VerifierJudgeOptions

    def __init__(self, options: VerifierJudgeOptions | None = None) -> None:
        self.options = options or VerifierJudgeOptions()

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        out = []
        for item in items:
            a, b = check(item.question, item.answer_a), check(item.question, item.answer_b)
            choice = "A" if a and not b else "B" if b and not a else "C"
            out.append(Verdict(item.id, choice, raw=f"a={'correct' if a else 'wrong'} b={'correct' if b else 'wrong'}"))
        record_usage(judge_calls=len(items))
        return out
