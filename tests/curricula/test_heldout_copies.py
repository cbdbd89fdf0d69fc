"""A prompt that repeats a held-out question word for word is never trained on (issue 31: "5 of 24 repeated a held-out
question"): vanilla, pool and the online curricula's pools drop such copies as score-based generation does, counted
under ``held-out question`` in the iteration's generation log and so in the round record's audit. The held-out
questions reach a curriculum as ``ctx.heldout`` even where it reads no evaluation (vanilla, category-bandit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aopcore import CurriculumSession, Prompt, Question, RuntimeFailure
from aopcore.engine.prompt_audit import normalised
from aopcore.records import read_jsonl
from aopcore.registry import load_registry
from aopcore.testing import make_context
from aopcore_curricula.curricula import PoolCurriculum, VanillaCurriculum
from aopcore_curricula.options import PoolOptions, VanillaGenerationOptions

from helpers.fakes import HashEmbedder, ScriptedLLM

CATS = ["askbaking", "askvet"]
HELDOUT = ["What is the best flour for bread?", "How often should I feed my cat?"]
COPY = "what is the BEST flour for bread ?!"  # the first held-out question, once normalised


class CopyingWriter(ScriptedLLM):
    """Writes what ScriptedLLM writes, and a copy of a held-out question last in every reply (a small model copies)."""

    def _answer(self, prompt: str) -> str:
        lines = super()._answer(prompt).splitlines()
        return "\n".join([*lines, f"{len(lines) + 1}. {COPY}"])


def copies(prompts) -> list[str]:
    keys = {normalised(t) for t in HELDOUT}
    return [p.text for p in prompts if normalised(p.text) in keys]


def dropped(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())["dropped"]


VANILLA = VanillaGenerationOptions(questions_per_call=3, keywords_per_category=2, n_clusters=2, pca_components=4)


def test_vanilla_drops_heldout_copies_from_its_pool_without_an_evaluation(tmp_path):
    writer = CopyingWriter()
    ctx = make_context(
        tmp_path, categories=CATS, budget=3, iterations=2, feedback=writer, embedder=HashEmbedder(), heldout=HELDOUT
    )
    ctx.evaluation = []  # vanilla reads no evaluation; the held-out questions come as ctx.heldout
    chosen = VanillaCurriculum(VANILLA).prompts(ctx)
    pool = json.loads((tmp_path / "pool.log.json").read_text())
    assert writer.calls == pool["calls"] > 0
    assert dropped(tmp_path, "pool.log.json")["held-out question"] == writer.calls  # one copy in every reply
    assert not copies(chosen) and not copies(read_jsonl(tmp_path / "pool.jsonl", Prompt))


def pool_file(tmp_path: Path) -> Path:
    rows = [{"id": f"bake-{k}", "text": f"Baking question number {k}?", "category": "askbaking"} for k in range(4)]
    rows.insert(2, {"id": "bake-copy", "text": COPY, "category": "askbaking"})
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pool_never_chooses_a_heldout_copy_and_counts_it(tmp_path):
    pool = pool_file(tmp_path)
    work = tmp_path / "work"
    ctx = make_context(
        work, rewards={"askbaking": 0.2}, budget=4, embedder=HashEmbedder(), heldout=[*HELDOUT, "Unrelated?"]
    )
    chosen = PoolCurriculum(PoolOptions(pool=str(pool), temperature=0.1)).prompts(ctx)
    assert sorted(p.id for p in chosen) == [f"bake-{k}" for k in range(4)]  # all but the copy: 4 of 5
    assert dropped(work, "iter-01.log.json") == {"held-out question": 1}
    ctx.budget = 5  # the pool holds 5, of which one may not be trained on
    with pytest.raises(RuntimeFailure, match=r"pool has 4 unused prompts .* \(1 held-out questions left out\)"):
        PoolCurriculum(PoolOptions(pool=str(pool))).prompts(ctx)


@pytest.mark.parametrize("name", ["learnability", "category-bandit"])
def test_online_curricula_leave_heldout_copies_out_of_their_pools(tmp_path, name):
    pool = pool_file(tmp_path)
    cur = load_registry().get("curriculum", name).build({"pool": str(pool)})
    work = tmp_path / "work"
    ctx = make_context(work, rewards={"askbaking": 0.5}, budget=4, heldout=HELDOUT)
    if name == "category-bandit":
        ctx.evaluation = []  # it reads none (uses_evaluation = False)
    planned = cur.prompts(ctx)
    assert sorted(p.id for p in planned) == [f"bake-{k}" for k in range(4)]
    assert dropped(work, "iter-01.log.json") == {"held-out question": 1}
    drawn = [p for d in range(20) for p in cur.selector(ctx, planned).draw(4, d)]  # the per-step channel's draws
    assert drawn and not copies(drawn)


def test_a_sessions_round_record_counts_the_copies_vanilla_dropped(tmp_path):
    heldout = [Question(f"h{k}", text, cat) for k, (text, cat) in enumerate(zip(HELDOUT, CATS))]
    s = CurriculumSession(
        "vanilla",
        options=VANILLA.model_dump(),
        heldout=heldout,
        state_dir=tmp_path / "state",
        budget=3,
        rounds=2,
        feedback=CopyingWriter(),
        embedder=HashEmbedder(),
    )
    prompts = s.next_prompts()  # vanilla reads no evaluation: no policy needed
    audit = {r["stage"]: r for r in s.ledger()}["arms/session/iter-01/prompts"]["audit"]
    assert audit["heldout_overlap"] == 0 and not copies(prompts)
    assert audit["generation_dropped"]["held-out question"] > 0
    assert not copies(read_jsonl(s.layout.curriculum_dir(s.name) / "pool.jsonl", Prompt))  # the later rounds' too


def test_the_testbed_oracle_leaves_out_heldout_copies_too(tmp_path):
    options = {"weights": {"askbaking": 1.0}, "pool": str(pool_file(tmp_path))}
    cur = load_registry().get("curriculum", "oracle").build(options)
    work = tmp_path / "work"
    chosen = cur.prompts(make_context(work, categories=["askbaking"], budget=4, evaluation=[], heldout=HELDOUT))
    assert sorted(p.id for p in chosen) == [f"bake-{k}" for k in range(4)]
    assert dropped(work, "iter-01.log.json") == {"held-out question": 1}


def test_a_copy_is_the_same_question_once_case_punctuation_and_spacing_are_ignored_but_not_operators(tmp_path):
    """Deleting every non-word character made 'What is 9 + 8?' a copy of 'What is 9 - 8?': testbed:pool held 7 such
    false copies of testbed:heldout, which score-based generation dropped and de-duplication merged."""
    from aopcore.data.sources import load_source

    assert normalised("What is 2+3?") == normalised("what is 2 + 3") == normalised("  WHAT is 2 +3 ?!")
    assert normalised("What is 9 + 8?") != normalised("What is 9 - 8?")
    assert normalised("A well-known fact?") == normalised("a well known fact")
    assert normalised("What is 8 * 3?") != normalised("What is 8 / 3?")
    keys = {normalised(q.text) for q in load_source("testbed:heldout", tmp_path)}
    assert not [q for q in load_source("testbed:pool", tmp_path) if normalised(q.text) in keys]
