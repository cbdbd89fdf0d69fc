"""The work of the experiment's stages: policy_0, evaluations, prompts, test answers, judging, tables, report.

A mixin of :class:`~aopcore.Experiment` (it reads the experiment's components, budget and run layout); each method is
one stage's body, run under the commit protocol of :mod:`aopcore.engine.stagerun`.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aopcore import contracts
from aopcore.analysis import tables
from aopcore.analysis.stats import WinRate
from aopcore.capabilities import reads_evaluation
from aopcore.engine.experiment_base import ExperimentBase
from aopcore.engine.judging import PairVerdict, judge_pair, tally
from aopcore.engine.validation import chosen_prompts_problem
from aopcore.errors import InputError, RuntimeFailure
from aopcore.ledger import record_usage
from aopcore.protocols import PromptCurriculum
from aopcore.records import EvalRecord, Prompt, category_counts, iter_jsonl, read_jsonl, write_jsonl
from aopcore.storage.rundir import (
    EVALUATION,
    SFT_POLICY,
    TEST_ANSWERS,
    answers_seed_key,
    evaluation_seed_key,
    judge_stage_id,
    stage_seed,
)
from aopcore.storage.store import atomic_directory, atomic_write_text

log = logging.getLogger("aopcore")


class StageWork(ExperimentBase):
    """The stage bodies other than training (:mod:`aopcore.engine.training`)."""

    def _evaluate(self, policy: Path, out: Path, seed: int) -> dict[str, Any]:
        texts = [q.text for q in self.parts.heldout]
        answers = self.parts.trainer.generate(policy, texts, seed=seed)
        if problem := contracts.count_problem("trainer", self.parts.trainer, "generate", answers, len(texts)):
            raise contracts.BadComponentOutput(problem)
        rewards = contracts.checked_rewards(
            self.parts.reward, self.parts.reward.score(texts, answers), texts, ids=[q.id for q in self.parts.heldout]
        )
        record_usage(reward_calls=len(texts))
        records = [EvalRecord(q.id, q.text, q.category, a, r) for q, a, r in zip(self.parts.heldout, answers, rewards)]
        write_jsonl(out, records)
        return {"mean_reward": sum(r.reward for r in records) / len(records)}

    def _make_policy_0(self) -> dict[str, Any] | None:
        with atomic_directory(self._policy_dir(None, 0)) as tmp:
            if self.settings.initial_policy is not None:
                if not Path(self.settings.initial_policy).is_dir():
                    raise InputError(f"initial_policy: {self.settings.initial_policy} is not a policy folder")
                _link_tree(Path(self.settings.initial_policy), tmp)
                return {"reused_from": os.path.relpath(self.settings.initial_policy, self.store.root)}
            self.parts.trainer.initial_policy(tmp, seed=stage_seed(self.settings.seed, SFT_POLICY))
            if problem := contracts.policy_problem(self.parts.trainer, tmp, "initial_policy"):
                raise RuntimeFailure(problem)  # the stage stays unfinished; a fixed trainer completes it
        return None

    def _evaluate_policy_0(self) -> dict[str, Any]:
        return {
            **self._evaluate(
                self._policy_dir(None, 0),
                self._evaluation_path("", 0),
                stage_seed(self.settings.seed, evaluation_seed_key(0)),
            ),
            "used_for_choosing": any(reads_evaluation(c, 1) for c in self.parts.arms.values()),
        }

    def _choose_prompts(self, arm: str, curriculum: PromptCurriculum, i: int) -> dict[str, Any]:
        prev_policy = self._policy_dir(arm, i - 1)
        ctx = self._context(
            arm,
            i,
            generate=lambda seed: (
                lambda texts, sample=False, seed=seed: self.parts.trainer.generate(
                    prev_policy, texts, seed=seed, sample=sample
                )
            ),
        )
        prompts = list(curriculum.prompts(ctx))
        self._check_prompts(arm, i, prompts)
        write_jsonl(self.layout.prompts(arm, i), prompts)
        return {"n_prompts": len(prompts), "categories": category_counts(prompts)}

    def _evaluate_iteration(self, arm: str, i: int) -> dict[str, Any]:
        # booked as choosing cost only where the next iteration's prompts are chosen from it (see aopcore.analysis.report)
        used = {
            "used_for_choosing": i < self.settings.budget.iterations and reads_evaluation(self.parts.arms[arm], i + 1)
        }
        twin = self._twin(arm, i)
        if twin is not None and self._verified(
            f"{self._rel(twin)}/evaluation"
        ):  # same policy, same seed: same evaluation
            atomic_write_text(self._evaluation_path(arm, i), (twin / EVALUATION).read_text())
            return {"reused_from": str(twin.relative_to(self.store.root)), **used}
        return {
            **self._evaluate(
                self._policy_dir(arm, i),
                self._evaluation_path(arm, i),
                stage_seed(self.settings.seed, evaluation_seed_key(i)),
            ),
            **used,
        }

    def _answer_tests(self, arm: str, i: int) -> dict[str, Any]:
        twin = self._twin(arm, i)
        if twin is not None and self._verified(f"{self._rel(twin)}/answers"):
            atomic_write_text(self.layout.test_answers(arm, i), (twin / TEST_ANSWERS).read_text())
            return {"reused_from": str(twin.relative_to(self.store.root))}
        texts = [q.text for q in self.parts.test_prompts]
        answers = self.parts.trainer.generate(
            self._policy_dir(arm, i), texts, seed=stage_seed(self.settings.seed, answers_seed_key(i))
        )
        if problem := contracts.count_problem("trainer", self.parts.trainer, "generate", answers, len(texts)):
            raise contracts.BadComponentOutput(problem)
        write_jsonl(
            self.layout.test_answers(arm, i),
            [{"id": q.id, "question": q.text, "answer": a} for q, a in zip(self.parts.test_prompts, answers)],
        )
        return {"n_answers": len(answers)}

    def _check_prompts(self, arm: str, i: int, prompts: Sequence[Prompt]) -> None:
        want, when = self.settings.budget.records_per_iteration, f"iteration {i}"
        if problem := chosen_prompts_problem(prompts, want, where=f"arms.{arm}", who="curriculum", when=when):
            raise RuntimeFailure(problem)

    def _judge_path(self, a: str, b: str, i: int) -> Path:
        return self.layout.verdicts(a, b, i)

    def _judge_stage(self, a: str, b: str, i: int, stage_id: str) -> dict[str, Any]:
        judge = self.parts.counted_judge
        assert judge is not None  # judge stages exist only with a judge
        ans_a = [o["answer"] for _, o in iter_jsonl(self.layout.test_answers(a, i))]
        ans_b = [o["answer"] for _, o in iter_jsonl(self.layout.test_answers(b, i))]
        raw: list[dict[str, Any]] = []
        verdicts = judge_pair(
            judge,
            self.parts.test_prompts,
            ans_a,
            ans_b,
            both_orders=self.settings.judging.both_orders,
            seed=stage_seed(self.settings.seed, stage_id),
            raw=raw,
        )
        raw_path = self.layout.raw_verdicts(a, b, i)  # what the judge said, for audit
        write_jsonl(raw_path, raw)
        write_jsonl(self._judge_path(a, b, i), verdicts)
        self._written[stage_id] = [self._rel(self._judge_path(a, b, i)), self._rel(raw_path)]
        return {"dropped": sum(v.choice is None for v in verdicts)}

    def _winrates(self) -> list[WinRate]:
        """Win rates of every judged pair and iteration whose judge stage is done, in the stage order."""
        if self.parts.judge is None:
            return []
        out = []
        for a, b in self._pairs():
            for i in self.settings.judged_iterations():
                path = self._judge_path(a, b, i)
                if self.store.is_done(judge_stage_id(a, b, i)) and path.exists():
                    out.append(tally(a, b, i, read_jsonl(path, PairVerdict)))
        return out

    def _write_tables(self, winrates: list[WinRate]) -> dict[str, Any]:
        return {"files": tables.write_winrate_tables(self.layout.tables, winrates)}

    def _write_report(self) -> dict[str, Any]:
        from aopcore.analysis.report import write_reports

        return {"files": write_reports(self.store.root)}


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy, across filesystems) every file of ``src`` into ``dst``."""
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
