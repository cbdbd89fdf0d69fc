"""The sequence tier's reward and judge: each task's own reasoning-gym scorer, from the question text alone."""

from __future__ import annotations

from collections.abc import Sequence

from aopcore import JudgeItem, Verdict, record_usage
from aopcore_testbed.sequence.options import SequenceJudgeOptions, SequenceRewardOptions
from aopcore_testbed.sequence.tasks import score


class SequenceReward:
    """The task's ``score_answer`` of the response (0 to 1, partial credit included), or 1/0 with ``exact``.

    The entry reasoning-gym scores against is rebuilt from the question (``tasks.score``), so any process that has
    the prompt and the response gets the same reward.
    """

    Options = SequenceRewardOptions

    def __init__(self, options: SequenceRewardOptions | None = None) -> None:
        self.options = options or SequenceRewardOptions()

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        o = self.options
        out = []
        for prompt, response in zip(prompts, responses, strict=True):
            s = score(prompt, response)
            out.append(o.unverifiable if s is None else (float(s == 1.0) if o.exact else s))
        return out


class SequenceJudge:
    """Pairwise verdicts from the tasks' scores: the higher-scored answer wins; equal scores tie ("C"). With
    ``exact``, only a score of 1 counts, so the judge agrees with an exact reward."""

    Options = SequenceJudgeOptions

    def __init__(self, options: SequenceJudgeOptions | None = None) -> None:
        self.options = options or SequenceJudgeOptions()

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        out = []
        for item in items:
            a, b = score(item.question, item.answer_a) or 0.0, score(item.question, item.answer_b) or 0.0
            if self.options.exact:
                a, b = float(a == 1.0), float(b == 1.0)
            choice = "A" if a > b else "B" if b > a else "C"
            out.append(Verdict(item.id, choice, raw=f"a={a:.3f} b={b:.3f}"))
        record_usage(judge_calls=len(items))
        return out
