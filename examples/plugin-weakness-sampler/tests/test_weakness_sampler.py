"""The example plugin's own tests, written with aopcore.testing as any plugin author would."""

from collections import Counter

import aopcore_weakness_sampler as plugin
import pytest
from aopcore_weakness_sampler import WeaknessSampler, WeaknessSamplerOptions
from pydantic import ValidationError

from aopcore import InputError
from aopcore.options import PreflightContext, validation_context
from aopcore.registry import load_registry
from aopcore.testing import check_curriculum, make_context

REWARDS = {"askbaking": 0.1, "askdocs": 0.4, "legaladvice": 0.9}


def sampler(**options) -> WeaknessSampler:
    return WeaknessSampler(WeaknessSamplerOptions(**options))


def test_honours_the_curriculum_contract(tmp_path):
    # exact budget, unique ids, only the experiment's categories, deterministic, resume-safe
    check_curriculum(sampler, make_context(tmp_path, rewards=REWARDS, budget=4, iterations=3))


def test_weakest_category_gets_most_prompts(tmp_path):
    ctx = make_context(tmp_path, rewards={"askbaking": 0.0, "legaladvice": 1.0}, budget=6)
    counts = Counter(p.category for p in sampler(temperature=0.1).prompts(ctx))
    assert counts == {"askbaking": 6}  # exp(-10) leaves the strong category almost no weight
    flat = Counter(
        p.category
        for p in sampler(temperature=100).prompts(make_context(tmp_path / "flat", rewards=REWARDS, budget=12))
    )
    assert len(flat) == 3  # a high temperature spreads over every category


def test_never_repeats_a_prompt_and_records_why_it_was_chosen(tmp_path):
    iterations = check_curriculum(sampler, make_context(tmp_path, rewards={"askbaking": 0.2}, budget=3, iterations=2))
    ids = [p.id for it in iterations for p in it]
    assert len(ids) == len(set(ids)) == 6
    assert {p.provenance.extra["category_mean_reward"] for it in iterations for p in it} == {0.2}


def test_an_exhausted_pool_is_an_input_error_naming_the_key(tmp_path):
    pool = tmp_path / "small.jsonl"
    pool.write_text("".join(f'{{"id": "s{k}", "text": "question {k}?", "category": "askbaking"}}\n' for k in range(3)))
    with pytest.raises(InputError, match=r"arms\.test\.pool: .*small\.jsonl has 3 unused prompts .* needs 4"):
        sampler(pool=str(pool)).prompts(make_context(tmp_path / "w", rewards={"askbaking": 0.0}, budget=4))


def test_preflight_compares_the_pool_with_the_whole_run(tmp_path):
    ctx = PreflightContext(
        config_file=tmp_path / "c.toml",
        base_dir=tmp_path,
        section="arms.s",
        iterations=3,
        records_per_iteration=3,
        categories=["askbaking"],
    )
    (problem,) = WeaknessSamplerOptions().preflight(ctx)  # 6 askbaking prompts, 9 needed
    assert (
        problem == "pool: holds 6 prompts in the experiment's categories; 3 iterations x 3 records_per_iteration need 9"
    )
    assert (
        WeaknessSamplerOptions().preflight(
            PreflightContext(
                tmp_path / "c.toml", tmp_path, "arms.s", iterations=2, records_per_iteration=3, categories=["askbaking"]
            )
        )
        == []
    )


def test_pool_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "mine.jsonl").write_text('{"id": "m1", "text": "question?", "category": "askbaking"}\n')
    options = WeaknessSamplerOptions.model_validate({"pool": "mine.jsonl"}, context=validation_context(tmp_path))
    assert options.pool == str((tmp_path / "mine.jsonl").resolve())
    with pytest.raises(ValidationError, match="file not found: .*missing.jsonl"):
        WeaknessSamplerOptions.model_validate({"pool": "missing.jsonl"}, context=validation_context(tmp_path))


def test_a_bad_pool_line_is_named(tmp_path):
    pool = tmp_path / "badpool.jsonl"
    pool.write_text('{"id": "a", "text": "ok?", "category": "askbaking"}\n\n\n{"id": "b", "text": \n')
    with pytest.raises(InputError, match=r"badpool\.jsonl:4: not valid JSON"):
        sampler(pool=str(pool))


def test_registers_through_its_hook():
    impl = load_registry([plugin], entry_points=False).get("curriculum", "weakness-sampler")
    assert isinstance(impl.build({"temperature": 0.3}), WeaknessSampler)
    with pytest.raises(ValidationError, match="temprature"):
        impl.build({"temprature": 0.3})  # a misspelt option is an error, not ignored
