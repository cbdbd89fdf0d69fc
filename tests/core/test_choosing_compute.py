"""What a curriculum spends through its context is choosing compute, booked by the framework without its help.

A curriculum that samples the policy, scores with the reward model, embeds and asks the feedback LLM through
``ctx`` books nothing itself; the prompts stage's ledger, the aggregate's compute data and its Markdown and HTML
tables show every call, once (a component that books its own calls is not counted twice)."""

import json
import re
from pathlib import Path

import pytest

from aopcore import Budget, Experiment, Prompt, Provenance, Question, record_usage, run_seeds
from aopcore.analysis.aggregate import aggregate
from aopcore.analysis.aggregate_report import markdown

import toy_components as toy
from helpers.fakes import HashEmbedder, ScriptedLLM

CATS = ["askbaking", "askvet"]
HELDOUT = [Question(f"h{i}", f"{c} held-out question {i}?", c) for i, c in enumerate(CATS * 3)]
REWARD_CALLS, SAMPLES, EMBEDDED, FEEDBACK = 768, 40, 25, 3


class Spender:
    """Spends through its context and books nothing: 768 reward calls (one at a time), 40 samples, 25 embeddings, 3 LLM calls."""

    uses_evaluation = False  # its evaluations are not choosing cost: what is booked is only what it spends itself

    def prompts(self, ctx):
        texts = [f"{ctx.categories[k % 2]} candidate {k}" for k in range(SAMPLES)]
        answers = ctx.generate(texts, sample=True, seed=ctx.seed)
        for k in range(REWARD_CALLS):
            ctx.reward.score([texts[k % SAMPLES]], [answers[k % SAMPLES]])
        ctx.embedder.embed(iter(texts[:EMBEDDED]))  # a generator is counted too
        ctx.feedback.complete([f'Write 2 questions about "{c}".' for c in (CATS + CATS[:1])])
        return [
            Prompt(
                f"{ctx.arm}-{ctx.iteration}-{n}",
                texts[n],
                ctx.categories[n % 2],
                Provenance("spender", ctx.iteration, "test"),
            )
            for n in range(ctx.budget)
        ]


class Thrifty(Spender):
    """Spends nothing through its context: its choosing ledger stays at zero."""

    def prompts(self, ctx):
        return [
            Prompt(
                f"{ctx.arm}-{ctx.iteration}-{n}",
                f"{ctx.categories[n % 2]} fixed {n}",
                ctx.categories[n % 2],
                Provenance("thrifty", ctx.iteration, "test"),
            )
            for n in range(ctx.budget)
        ]


class SelfBookingReward(toy.LengthReward):
    def score(self, prompts, responses):
        record_usage(reward_calls=len(prompts))
        return super().score(prompts, responses)


class SelfBookingEmbedder(HashEmbedder):
    def embed(self, texts):
        texts = list(texts)
        record_usage(embedder_calls=len(texts))
        return super().embed(texts)


def experiment(root: Path, seed: int, reward=None, embedder=None) -> Experiment:
    return Experiment(
        name="c",
        output_dir=root / "x",
        trainer=toy.ToyTrainer(toy.ToyTrainerOptions()),
        reward=reward or toy.LengthReward(),
        arms={"spender": Spender(), "thrifty": Thrifty()},
        heldout=HELDOUT,
        test_prompts=[],
        feedback=ScriptedLLM(),
        embedder=embedder or HashEmbedder(),
        budget=Budget(iterations=2, records_per_iteration=4, passes=1),
        seed=seed,
    )


def prompts_stage(root: Path, seed: int, arm: str, i: int) -> dict:
    return json.loads((root / f"seed-{seed}" / "stages" / f"arms__{arm}__iter-{i:02d}__prompts.json").read_text())


def test_context_calls_are_booked_for_the_curriculum_and_shown_per_arm_in_the_aggregate(tmp_path: Path):
    root = tmp_path / "multi"
    run_seeds(lambda s: experiment(tmp_path, s), [0, 1], root=root)
    for seed in (0, 1):
        for i in (1, 2):
            rec = prompts_stage(root, seed, "spender", i)
            assert (rec["reward_calls"], rec["policy_samples"], rec["embedder_calls"], rec["feedback_calls"]) == (
                REWARD_CALLS,
                SAMPLES,
                EMBEDDED,
                FEEDBACK,
            ), rec
            assert (
                rec["tokens_generated"] > 0
            )  # the toy trainer books the tokens of its samples itself: kept as they are
            assert not {"reward_calls", "policy_samples", "embedder_calls", "feedback_calls"} & set(
                prompts_stage(root, seed, "thrifty", i)
            )

    data = aggregate(root)
    spender = {r["iteration"]: r["choosing"] for r in data["compute"]["spender"]}
    thrifty = {r["iteration"]: r["choosing"] for r in data["compute"]["thrifty"]}
    assert spender[1]["reward_calls"] == REWARD_CALLS and spender[2]["reward_calls"] == 2 * REWARD_CALLS  # cumulative
    assert (spender[1]["policy_samples"], spender[1]["embedder_calls"], spender[1]["feedback_calls"]) == (
        SAMPLES,
        EMBEDDED,
        FEEDBACK,
    )
    assert thrifty[2]["reward_calls"] == thrifty[2]["policy_samples"] == thrifty[2]["embedder_calls"] == 0

    md = markdown(data)
    header = next(
        line for line in md.splitlines() if line.startswith("| arm | iteration | held-out reward | training episodes")
    )
    cols = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in md.splitlines() if line.startswith("| spender | 1 |"))
    cells = dict(zip(cols, (c.strip() for c in row.strip("|").split("|"))))
    assert cells["choosing reward calls"] == str(REWARD_CALLS)
    assert (cells["choosing policy samples"], cells["choosing embedder calls"]) == (str(SAMPLES), str(EMBEDDED))
    assert cells["choosing feedback calls"] == f"{FEEDBACK:.1f}"

    from aopcore_eval.aggregate_html import write_aggregate_html

    page = (root / write_aggregate_html(root)[0]).read_text()
    table = page[page.index("Reward against compute spent") :]
    assert "choosing reward calls" in table
    assert re.search(
        rf"<td>spender</td><td>1</td>(<td>[^<]*</td>){{3}}<td>{SAMPLES}</td><td>[^<]*</td><td>{REWARD_CALLS}</td><td>{EMBEDDED}</td>",
        table,
    ), table[:3000]


def test_components_that_book_their_own_calls_are_not_counted_twice(tmp_path: Path):
    exp = experiment(tmp_path, 0, reward=SelfBookingReward(), embedder=SelfBookingEmbedder())
    exp.run()
    rec = json.loads((tmp_path / "x" / "c" / "stages" / "arms__spender__iter-01__prompts.json").read_text())
    assert (rec["reward_calls"], rec["embedder_calls"], rec["policy_samples"]) == (REWARD_CALLS, EMBEDDED, SAMPLES)


@pytest.mark.slow
def test_one_generate_call_samples_a_repeated_prompt_independently():
    """What docs/plugins.md promises about ``ctx.generate``: with ``sample=True`` a prompt that appears k times in one
    call gets k independent samples (the HF trainers sample every row on its own); greedy gives k identical answers;
    the same texts and seed give the same samples again (a resume chooses alike)."""
    from aopcore_hf.models import resolve_model
    from aopcore_hf.options import GenerationOptions, PolicyOptions
    from aopcore_hf.policy import HFPolicyBase

    folder = Path(resolve_model("testbed-tiny"))
    policy = HFPolicyBase(
        PolicyOptions(model=str(folder), device="cpu", generation=GenerationOptions(max_new_tokens=4, temperature=1.0))
    )
    texts = ["What is 9 - 3?"] * 32 + ["What is 'qej' spelled backwards?"] * 8  # the start policy is unsure of both
    sampled = policy.generate(folder, texts, seed=5, sample=True)
    assert len(set(sampled[:32])) >= 3 and len(set(sampled[32:])) >= 2  # repeats drew different answers
    assert policy.generate(folder, texts, seed=5, sample=True) == sampled
    assert policy.generate(folder, texts, seed=6, sample=True) != sampled
    assert len(set(policy.generate(folder, texts, seed=5)[:32])) == 1  # greedy: one answer per prompt


def test_a_session_books_what_its_curriculum_spends_through_the_context(tmp_path):
    """The loop-you-do-not-own path books choosing compute like the experiment's prompts stage."""
    from aopcore import CurriculumSession

    session = CurriculumSession(
        Spender(),
        heldout=HELDOUT,
        state_dir=tmp_path / "state",
        budget=4,
        reward=toy.LengthReward(),
        embedder=HashEmbedder(),
        feedback=ScriptedLLM(),
        rounds=2,
    )
    session.next_prompts(generate=lambda texts: ["an answer"] * len(texts))
    prompts_stage = [r for r in session.ledger() if r["stage"].endswith("iter-01/prompts")]
    assert len(prompts_stage) == 1
    rec = prompts_stage[0]
    assert (rec["reward_calls"], rec["policy_samples"], rec["embedder_calls"], rec["feedback_calls"]) == (
        REWARD_CALLS,
        SAMPLES,
        EMBEDDED,
        FEEDBACK,
    )
