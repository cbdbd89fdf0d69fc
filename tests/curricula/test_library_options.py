"""Curriculum options do what they say: draws, keywords, category wording, and warnings where defaults are weak."""

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from aopcore import CurriculumContext, EvalRecord
from aopcore_curricula.curricula import AOPCurriculum, VanillaCurriculum
from aopcore_curricula.options import ScoreBasedOptions, VanillaGenerationOptions

from helpers.fakes import HashEmbedder, ScriptedLLM

CATS = ["askbaking", "askvet", "legaladvice", "askhr"]


class BatchLLM(ScriptedLLM):
    """Records the size of every batch it is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def complete(self, prompts):
        self.batches.append(len(prompts))
        return super().complete(prompts)


@pytest.fixture
def warnings_seen():
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    logger = logging.getLogger("aopcore")
    handler = Keep(level=logging.WARNING)
    logger.addHandler(handler)
    yield seen
    logger.removeHandler(handler)


def evaluation(cats=CATS) -> list[EvalRecord]:
    return [
        EvalRecord(f"{c}-{k}", f"{c} question {k}?", c, "an answer", 0.1 * n + 0.01 * k)
        for n, c in enumerate(cats)
        for k in range(4)
    ]


def ctx(
    tmp_path: Path, budget: int, feedback, cats=CATS, embedder=HashEmbedder(), iterations: int = 1
) -> CurriculumContext:
    return CurriculumContext(
        arm="arm",
        iteration=1,
        iterations=iterations,
        budget=budget,
        seed=1,
        categories=list(cats),
        evaluation=evaluation(cats),
        history=[],
        workdir=tmp_path,
        feedback=feedback,
        embedder=embedder,
    )


@pytest.mark.parametrize(("draws", "parallel", "batches"), [(4, 3, [3, 1]), (2, 8, [2]), (5, 5, [5])])
def test_draws_are_all_made_and_no_more_when_the_budget_is_met(tmp_path: Path, draws, parallel, batches):
    llm = BatchLLM()
    opts = ScoreBasedOptions(samples_per_category=2, draws=draws, questions_per_call=6, parallel_calls=parallel)
    prompts = AOPCurriculum(opts).prompts(
        ctx(tmp_path, budget=3, feedback=llm)
    )  # the first call alone meets the budget
    assert len(prompts) == 3
    assert llm.batches == batches and llm.calls == draws


def test_more_draws_only_while_the_budget_is_not_met(tmp_path: Path):
    llm = BatchLLM()
    opts = ScoreBasedOptions(
        samples_per_category=2, draws=2, questions_per_call=2, parallel_calls=8, max_draws_factor=4
    )
    AOPCurriculum(opts).prompts(ctx(tmp_path, budget=7, feedback=llm))  # 2 questions a call: 4 calls are needed
    assert llm.batches[0] == 2  # the draws, not parallel_calls
    assert 4 <= llm.calls <= 8 and all(b <= 8 for b in llm.batches)
    assert llm.batches[1] < 8  # sized from the yield of the draws, not a whole parallel_calls round


def test_a_round_after_the_draws_asks_for_what_the_yield_says_is_missing():
    from aopcore_curricula.generators import extra_round

    assert extra_round(kept=12, calls=12, needed=16, widest=16) == 6  # 4 missing at one a call, times 1.5
    assert extra_round(kept=6, calls=12, needed=16, widest=16) == 16  # 20 calls at that yield: capped
    assert extra_round(kept=15, calls=12, needed=16, widest=16) == 2
    assert extra_round(kept=0, calls=12, needed=16, widest=16) == 16  # nothing kept: no yield to go by


def test_vanilla_keywords_option_and_weak_default_warns_once(tmp_path: Path, warnings_seen):
    llm = ScriptedLLM()
    cats = ["cooking", "gardening-x1", "askbaking"]
    opts = VanillaGenerationOptions(
        questions_per_call=3, keywords={"cooking": ["knife skills", "meal prep"]}, n_clusters=2, pca_components=2
    )
    VanillaCurriculum(opts).prompts(ctx(tmp_path, budget=4, feedback=llm, cats=cats))
    cooking = [p for p in llm.prompts if '"cooking"' in p]
    assert {'about "knife skills"' in p or 'about "meal prep"' in p for p in cooking} == {True}
    assert not any(
        "r/cooking" in p or "r/gardening-x1" in p for p in llm.prompts
    )  # the Reddit wording is for SHP categories
    assert any("the Reddit forum r/askbaking" in p for p in llm.prompts)
    weak = [w for w in warnings_seen if "'gardening-x1' has no keywords" in w]
    assert len(weak) == 1  # once, although several rounds of calls were made
    assert not any("'cooking' has no keywords" in w for w in warnings_seen)


def test_category_wording_is_configurable(tmp_path: Path):
    llm = ScriptedLLM()
    opts = ScoreBasedOptions(
        samples_per_category=2,
        draws=1,
        questions_per_call=6,
        parallel_calls=1,
        targeting="per-category",
        category_wording="our support desk for {category} customers",
    )
    AOPCurriculum(opts).prompts(ctx(tmp_path, budget=3, feedback=llm))
    assert "our support desk for" in llm.prompts[0] and "Reddit" not in llm.prompts[0]
    with pytest.raises(ValidationError, match="must contain {category}"):
        ScoreBasedOptions(category_wording="a forum")


def test_without_an_embedder_truncation_is_warned_and_logged(tmp_path: Path, warnings_seen):
    import json

    opts = VanillaGenerationOptions(questions_per_call=3)
    VanillaCurriculum(opts).prompts(ctx(tmp_path, budget=4, feedback=ScriptedLLM(), embedder=None))
    assert any("no embedder" in w and "not de-duplicated" in w for w in warnings_seen)
    log = json.loads((tmp_path / "pool.log.json").read_text())
    assert log["dropped"]["over target (no embedder: truncated)"] > 0


def test_library_reference_names_every_option():
    """docs/library.md is the embedders' reference: every curriculum option and Experiment option is in it."""
    import dataclasses

    from aopcore import Experiment, TrainStats

    from helpers import ROOT

    text = (ROOT / "docs" / "library.md").read_text()
    names = [
        *VanillaGenerationOptions.model_fields,
        *ScoreBasedOptions.model_fields,
        *(f.name for f in dataclasses.fields(Experiment)),
        *(f.name for f in dataclasses.fields(TrainStats)),
    ]
    assert [n for n in names if f"`{n}`" not in text] == []


class CallKeyedLLM:
    """Like the local feedback LLM: a reply depends on its request and on the call (batch) it came in. One question
    a call, so the draws never meet a budget of 4."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def complete(self, prompts):
        import hashlib

        self.batches.append(len(prompts))
        call = hashlib.sha256("\n".join(sorted(prompts)).encode()).hexdigest()
        out = []
        for p in prompts:
            h = hashlib.sha256(f"{call}:{p}".encode()).hexdigest()
            out.append(f"1. How do I {' '.join(h[i : i + 5] for i in range(0, 20, 5))} for my project at home?")
        return out


def test_sop_and_aop_first_iterations_stay_equal_when_more_rounds_are_needed(tmp_path: Path):
    """SOP writes both iterations' prompts at once (a budget of 8) and AOP only the first's (4): sized from the
    shortfall, their rounds after the draws would differ, and with them the calls and replies. SOP aims its rounds
    at one iteration's budget first, so AOP's calls are a prefix of SOP's and the two first iterations are equal."""
    from aopcore_curricula.curricula import SOPCurriculum

    opts = ScoreBasedOptions(
        samples_per_category=2, draws=2, questions_per_call=1, parallel_calls=8, max_draws_factor=8
    )
    sop_llm, aop_llm = CallKeyedLLM(), CallKeyedLLM()
    (tmp_path / "sop").mkdir()
    (tmp_path / "aop").mkdir()
    sop = SOPCurriculum(opts).prompts(ctx(tmp_path / "sop", budget=4, feedback=sop_llm, iterations=2))
    aop = AOPCurriculum(opts).prompts(ctx(tmp_path / "aop", budget=4, feedback=aop_llm))
    assert aop_llm.batches[0] == 2 and aop_llm.batches[1] < 8  # a round sized from the shortfall
    assert sop_llm.batches[: len(aop_llm.batches)] == aop_llm.batches
    assert [p.text for p in aop] == [p.text for p in sop]
