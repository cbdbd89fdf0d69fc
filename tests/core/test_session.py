"""CurriculumSession: a curriculum held across the rounds of a loop aopcore does not own."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aopcore import (
    Budget,
    CurriculumContext,
    CurriculumSession,
    EvalRecord,
    Experiment,
    InputError,
    Prompt,
    Provenance,
    Question,
    stage_seed,
)
from aopcore.records import read_jsonl
from aopcore.steps import RolloutGroup, StepBatch

ROOT = Path(__file__).resolve().parents[2]
AOP = {"targeting": "per-category", "prompt_style": "compact", "draws": 4}


def writer():
    from aopcore_testbed.writer import TestbedWriter

    return TestbedWriter()


def wrong(texts):  # a policy that answers everything wrong: every category is weak
    return ["no idea"] * len(texts)


class SeedCurriculum:
    """Prompts that show everything the context derives: the seed, the base seed, history, evaluation, iterations."""

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        rng = random.Random(ctx.seed)
        mean = sum(e.reward for e in ctx.evaluation) / max(1, len(ctx.evaluation))
        out = []
        for n in range(ctx.budget):
            cat = ctx.categories[rng.randrange(len(ctx.categories))]
            text = (
                f"{cat} q{rng.randrange(10**6)} seed={ctx.seed} base={ctx.base_seed} hist={len(ctx.history)} "
                f"eval={mean:.4f} of={ctx.iterations} arm={ctx.arm}"
            )
            out.append(
                Prompt(f"{ctx.arm}-{ctx.iteration}-{n}", text, cat, Provenance("seeds", ctx.iteration, "generated"))
            )
        return out


class NoEval(SeedCurriculum):
    uses_evaluation = False


def _heldout():
    return [Question(f"h{k}", f"question {k}?", cat) for k, cat in enumerate(["a", "b", "c"] * 2)]


def test_seeds_history_and_prompts_match_an_experiment(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "toy"))
    from toy_components import LengthJudge, LengthReward, MarginJudgeOptions, ToyTrainer, ToyTrainerOptions

    heldout = _heldout()
    exp = Experiment(
        name="e",
        output_dir=tmp_path,
        trainer=ToyTrainer(ToyTrainerOptions()),
        reward=LengthReward(),
        arms={"mine": SeedCurriculum()},
        heldout=heldout,
        test_prompts=heldout[:2],
        judge=LengthJudge(MarginJudgeOptions()),
        budget=Budget(3, 4, 1),
        seed=11,
    )
    exp.run()
    run = tmp_path / "e"
    session = CurriculumSession(
        SeedCurriculum(), heldout=heldout, state_dir=tmp_path / "s", budget=4, seed=11, rounds=3, name="mine"
    )
    for r in (1, 2, 3):
        ev_path = (
            run / "sft" / "evaluation.jsonl"
            if r == 1
            else run / "arms" / "mine" / f"iter-{r - 1:02d}" / "evaluation.jsonl"
        )
        got = session.next_prompts(evaluation=read_jsonl(ev_path, EvalRecord))
        want = read_jsonl(run / "arms" / "mine" / f"iter-{r:02d}" / "prompts.jsonl", Prompt)
        assert [p.text for p in got] == [p.text for p in want]
        assert f"seed={stage_seed(11, f'arms/mine/iter-{r:02d}/prompts')} " in got[0].text
        assert f"hist={4 * (r - 1)} " in got[0].text
        session.end_round()
    # the same files in the same places as a run directory
    for rel in (
        "sft/evaluation.jsonl",
        "arms/mine/iter-02/evaluation.jsonl",
        "arms/mine/iter-03/prompts.jsonl",
        "fingerprint.json",
        "stages/arms__mine__iter-03__prompts.json",
    ):
        assert (tmp_path / "s" / rel).exists(), rel


def test_round_trip_with_generate_reward_and_ledger(tmp_path):
    calls = []

    def generate(texts, seed=0):
        calls.append(seed)
        from aopcore import record_usage

        record_usage(tokens_generated=3 * len(texts))
        return wrong(texts)

    s = CurriculumSession(
        "aop",
        options=AOP,
        heldout="testbed:heldout",
        state_dir=tmp_path,
        budget=8,
        feedback="testbed-writer",
        reward="verifier",
        rounds=2,
        seed=3,
    )
    first = s.next_prompts(generate=generate)
    assert len(first) == 8 and s.round == 1 and calls == [stage_seed(3, "sft/evaluation")]
    assert len({p.id for p in first}) == 8 and all(p.provenance.curriculum == "aop" for p in first)
    s.end_round()
    second = s.next_prompts(generate=generate)
    assert calls[-1] == stage_seed(3, "evaluation/iter-1")
    assert {p.id for p in second}.isdisjoint(p.id for p in first) or second != first
    ledger = {r["stage"]: r for r in s.ledger()}
    assert ledger["sft/evaluation"]["tokens_generated"] == 3 * len(s.heldout)
    assert (
        ledger["sft/evaluation"]["reward_calls"] == len(s.heldout)
        and ledger["sft/evaluation"]["used_for_choosing"] is True
    )
    assert ledger["arms/session/iter-01/prompts"]["feedback_calls"] >= 1
    assert ledger["arms/session/iter-01/prompts"]["categories"]
    with pytest.raises(InputError, match="past the session's rounds=2"):
        s.end_round()
        s.next_prompts(generate=generate)


def test_resumed_session_returns_stored_prompts_without_the_curriculum(tmp_path):
    kwargs = dict(options=AOP, heldout="testbed:heldout", state_dir=tmp_path, budget=6, reward="verifier", rounds=3)
    calls = []

    def feedback(prompt):
        calls.append(prompt)
        return writer().complete([prompt])[0]

    s = CurriculumSession("aop", feedback=feedback, **kwargs)
    a = s.next_prompts(generate=wrong)
    n = len(calls)
    again = CurriculumSession("aop", feedback=feedback, **kwargs)
    assert again.round == 0  # round 1 was not ended: a restarted loop gets it again
    assert again.next_prompts() == a and len(calls) == n  # no evaluation needed, no feedback call made
    again.end_round()
    third = CurriculumSession("aop", feedback=feedback, **kwargs)
    assert third.round == 1
    assert third.next_prompts(round=1) == a  # a loop resuming from its own checkpoint names its round
    with pytest.raises(InputError, match="round 3 is not available"):
        third.next_prompts(round=3)


def test_a_changed_setup_refuses_in_one_line(tmp_path):
    kwargs = dict(heldout=_heldout(), state_dir=tmp_path, budget=4, rounds=2)
    CurriculumSession(NoEval(), **kwargs).next_prompts()
    with pytest.raises(InputError) as err:
        CurriculumSession(NoEval(), **{**kwargs, "budget": 5})
    assert len(err.value.problems) == 1 and "session.budget: 4 -> 5" in str(err.value)
    CurriculumSession(NoEval(), **{**kwargs, "budget": 5}, allow_changes=True)  # recorded, continues
    assert (tmp_path / "fingerprint-changes.jsonl").exists()


def test_open_ended_rounds(tmp_path):
    with pytest.raises(InputError, match="rounds=None"):
        CurriculumSession(
            "sop", options=AOP, heldout="testbed:heldout", state_dir=tmp_path / "a", budget=4, feedback=writer()
        )
    # a curriculum that chooses every round from the rollouts alone (uses_evaluation False) is fine open-ended
    bandit = CurriculumSession(
        "category-bandit",
        options={"pool": "testbed:pool"},
        heldout="testbed:heldout",
        state_dir=tmp_path / "c",
        budget=4,
    )
    assert len(bandit.next_prompts()) == 4
    s = CurriculumSession(SeedCurriculum(), heldout=_heldout(), state_dir=tmp_path / "b", budget=2)
    ev = [EvalRecord("h0", "question 0?", "a", "x", 0.5)]
    for r in (1, 2, 3):
        assert f"of={r} " in s.next_prompts(evaluation=ev)[0].text  # ctx.iterations is the current round
        s.end_round()


def test_input_errors_name_the_key(tmp_path):
    with pytest.raises(InputError, match=r"session.options.draws: "):
        CurriculumSession(
            "aop", options={"draws": "many"}, heldout="testbed:heldout", state_dir=tmp_path, budget=4, feedback=writer()
        )
    with pytest.raises(InputError, match=r"session.curriculum: unknown curriculum plugin 'aopp'; did you mean 'aop'"):
        CurriculumSession("aopp", heldout="testbed:heldout", state_dir=tmp_path, budget=4)
    with pytest.raises(InputError, match="curriculum needs a feedback"):
        CurriculumSession("aop", heldout="testbed:heldout", state_dir=tmp_path, budget=4)
    s = CurriculumSession(
        "aop", options=AOP, heldout="testbed:heldout", state_dir=tmp_path / "x", budget=4, feedback=writer()
    )
    with pytest.raises(InputError, match="pass evaluation="):
        s.next_prompts()
    with pytest.raises(InputError, match="has no reward"):
        s.next_prompts(generate=wrong)


CONFIG = """\
[experiment]
name = "loop"
output_dir = "state"
seed = 5
iterations = 2
records_per_iteration = 6

[data]
heldout = "testbed:heldout"

[feedback]
plugin = "testbed-writer"

[reward]
plugin = "verifier"

[arms.aop]
curriculum = "aop"
targeting = "per-category"
prompt_style = "compact"
draws = 4
"""


def test_from_config_equals_the_python_session(tmp_path):
    cfg = tmp_path / "loop.toml"
    cfg.write_text(CONFIG)
    s = CurriculumSession.from_config(cfg)
    assert (s.name, s.seed, s.budget, s.rounds) == ("aop", 5, 6, 2)
    prompts = s.next_prompts(generate=wrong)
    assert (tmp_path / "state" / "loop" / "arms" / "aop" / "iter-01" / "prompts.jsonl").exists()
    # the same setup from Python objects and names opens the same state folder (same fingerprint) and resumes it
    same = CurriculumSession(
        "aop",
        options={k: AOP[k] for k in AOP} | {"draws": 4},
        heldout="testbed:heldout",
        state_dir=tmp_path / "state" / "loop",
        budget=6,
        feedback="testbed-writer",
        reward="verifier",
        seed=5,
        rounds=2,
        name="aop",
    )
    assert same.next_prompts() == prompts


def test_from_config_errors(tmp_path):
    cfg = tmp_path / "loop.toml"
    cfg.write_text(CONFIG.replace("draws = 4", "drawz = 4"))
    with pytest.raises(InputError) as err:
        CurriculumSession.from_config(cfg)
    assert f"{cfg}:21: arms.aop.drawz: unknown key (did you mean 'draws'?)" in str(err.value)
    cfg.write_text(CONFIG + '\n[arms.vanilla]\ncurriculum = "vanilla"\n')
    with pytest.raises(InputError, match="pass arm=NAME"):
        CurriculumSession.from_config(cfg)
    with pytest.raises(InputError, match="no arm 'eva'"):
        CurriculumSession.from_config(cfg, arm="eva")
    assert (
        CurriculumSession.from_config(cfg, arm="aop", state_dir=tmp_path / "elsewhere").store.root
        == tmp_path / "elsewhere"
    )


def test_plain_callables_are_adapted_everywhere(tmp_path):
    w = writer()
    from aopcore_curricula.curricula import AOPCurriculum
    from aopcore_curricula.options import ScoreBasedOptions

    # the report: a plain function as CurriculumContext.feedback failed with "'function' object has no attribute 'complete'"
    ctx = CurriculumContext(
        arm="x",
        iteration=1,
        iterations=1,
        budget=4,
        seed=0,
        categories=["addition", "counting"],
        evaluation=[
            EvalRecord("h1", "What is 2 plus 2?", "addition", "5", 0.0),
            EvalRecord("h2", "How many letters are in 'abc'?", "counting", "3", 1.0),
        ],
        history=[],
        workdir=tmp_path / "w",
        feedback=lambda prompt: w.complete([prompt])[0],
        reward=lambda prompts, completions, **kw: [0.0] * len(prompts),
    )
    (tmp_path / "w").mkdir()
    assert ctx.feedback.complete(["hi"]) and ctx.reward.score(["a"], ["b"]) == [0.0]
    assert len(AOPCurriculum(ScoreBasedOptions(**AOP)).prompts(ctx)) == 4
    seen = []

    def reward(prompts, completions, categories=None, **kw):
        seen.extend(categories)
        return [0.0] * len(prompts)

    s = CurriculumSession(
        lambda c: SeedCurriculum().prompts(c),
        heldout="testbed:heldout",
        state_dir=tmp_path / "s",
        budget=3,
        reward=reward,
        feedback=lambda p: "",
        embedder=lambda texts: [[1.0]] * len(texts),
    )
    assert len(s.next_prompts(generate=wrong)) == 3
    assert seen and all(c is not None for c in seen)  # the held-out questions' categories reach a TRL-style reward


class Online:
    """An online curriculum: draws the planned prompt whose category had the lowest reward so far."""

    uses_evaluation = False

    def prompts(self, ctx):
        return [Prompt(f"p{ctx.iteration}-{k}", f"q {k}", "ab"[k % 2]) for k in range(ctx.budget)]

    def selector(self, ctx, planned):
        return _Selector(planned, ctx)


class _Selector:
    def __init__(self, planned, ctx):
        self.planned, self.seen = planned, {c: [] for c in "ab"}
        for b in ctx.steps:  # earlier rounds' batches
            self.observe(b)
        self.rng = random.Random(ctx.seed)
        self.earlier = len(ctx.steps)

    def draw(self, n, draw):
        mean = {c: sum(v) / len(v) if v else 0.0 for c, v in self.seen.items()}
        cat = min(mean, key=lambda c: (mean[c], c))
        pool = [p for p in self.planned if p.category == cat]
        return [self.rng.choice(pool) for _ in range(n)]

    def observe(self, batch: StepBatch):
        for g in batch.groups:
            self.seen[g.category].append(g.mean)


def test_stream_steps_and_end_round(tmp_path):
    s = CurriculumSession(Online(), heldout=_heldout(), state_dir=tmp_path, budget=4, rounds=2)
    s.next_prompts()
    stream = s.stream()
    assert stream is not None and stream.online
    assert (s.scratch() / "stream.jsonl").parent == tmp_path / "scratch" / "arms__session__iter-01__train"
    for _ in range(3):
        batch = stream.next(2)
        stream.report(
            stream.draws - 1, [RolloutGroup(p.id, p.category, (1.0 if p.category == "a" else 0.0,)) for p in batch]
        )
    s.end_round(stream)
    steps = tmp_path / "arms" / "session" / "iter-01" / "steps.jsonl"
    assert len(steps.read_text().splitlines()) == 3 and not (tmp_path / "scratch").exists()
    assert json.loads((tmp_path / "stages" / "arms__session__iter-01__train.json").read_text())["stream"]["draws"] == 3
    s.next_prompts()
    assert len(s.context(2).steps) == 3  # ctx.steps: the earlier rounds' batches
    assert s.stream().selector.earlier == 3
    plain = CurriculumSession(NoEval(), heldout=_heldout(), state_dir=tmp_path / "p", budget=2, rounds=1)
    plain.next_prompts()
    assert plain.stream() is None  # a curriculum that takes no part: no stream, nothing changes


KILLED = """
import os, signal, sys, json
sys.path.insert(0, {tests!r})
from aopcore import CurriculumSession
from aopcore_testbed.writer import TestbedWriter
w = TestbedWriter()
calls = {{"n": 0, "round2": 0}}
def feedback(prompt):
    calls["n"] += 1
    calls["round2"] += os.path.exists({marker!r})
    if {kill} and calls["round2"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # mid-round 2, after a feedback call
    return w.complete([prompt])[0]
s = CurriculumSession("aop", options={aop!r}, heldout="testbed:heldout", state_dir={state!r}, budget=6, feedback=feedback,
                      reward="verifier", rounds=2)
out = []
while s.round < 2:
    out.append([p.text for p in s.next_prompts(generate=lambda t: ["no idea"] * len(t))])
    open({marker!r}, "w").close()
    s.end_round()
print(json.dumps({{"rounds": out, "calls": calls["n"]}}))
"""


def _script(tmp_path, state, kill):
    return KILLED.format(
        tests=str(Path(__file__).resolve().parents[1]),
        kill=kill,
        marker=str(tmp_path / f"{state}.marker"),
        aop=AOP,
        state=str(tmp_path / state),
    )


def test_sigkill_mid_round_resumes_with_the_same_prompts(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    whole = subprocess.run(
        [sys.executable, "-c", _script(tmp_path, "whole", False)], capture_output=True, text=True, env=env, timeout=300
    )
    assert whole.returncode == 0, whole.stderr
    killed = subprocess.run(
        [sys.executable, "-c", _script(tmp_path, "killed", True)], capture_output=True, text=True, env=env, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "killed" / "stages" / "arms__session__iter-01__train.json").exists()
    assert not (tmp_path / "killed" / "stages" / "arms__session__iter-02__prompts.json").exists()
    (tmp_path / "killed.marker").unlink()
    resumed = subprocess.run(
        [sys.executable, "-c", _script(tmp_path, "killed", True)], capture_output=True, text=True, env=env, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(whole.stdout), json.loads(resumed.stdout)
    assert b["rounds"] == a["rounds"][1:]  # the resumed loop continues with round 2, and round 2 is the same
    assert b["calls"] < a["calls"]  # round 1 was not chosen again
    attempts = json.loads((tmp_path / "killed" / "stages" / "arms__session__iter-02__prompts.json").read_text())
    assert attempts["attempts"] == 2 and attempts["lost_wall_s"] > 0


# ---- generated prompts that a verifiable reward can score (issue 31, item 5) -----------------------------------------
def test_writer_answers_travel_with_each_generated_question_and_the_round_record_audits_them(tmp_path):
    from aopcore_testbed.skills import skill_of

    s = CurriculumSession(
        "aop",
        options={**AOP, "answers": "writer"},
        heldout="testbed:heldout",
        state_dir=tmp_path,
        budget=8,
        feedback="testbed-writer",
        reward="verifier",
        rounds=1,
    )
    prompts = s.next_prompts(generate=wrong)
    assert [p.metadata["answer"] for p in prompts] == [skill_of(p.text).solve(p.text) for p in prompts]
    stored = (tmp_path / "arms" / "session" / "iter-01" / "prompts.jsonl").read_text()
    assert stored.count('"answer"') == 8  # the answers are in the run store, read back on resume
    record = {r["stage"]: r for r in s.ledger()}["arms/session/iter-01/prompts"]["audit"]
    assert record["with_answer"] == 8 and record["heldout_overlap"] == 0
    assert record["label_checked"] == 8 and record["label_agreement"] == 1.0  # the writer's checker tells each category


def test_solve_decides_answers_and_questions_it_cannot_answer_are_dropped_and_booked(tmp_path):
    from aopcore_testbed.skills import skill_of

    def solve(question):  # knows only addition
        skill = skill_of(question)
        return skill.solve(question) if skill is not None and skill.name == "addition" else None

    s = CurriculumSession(
        "aop",
        options=AOP,
        heldout="testbed:heldout",
        state_dir=tmp_path,
        budget=4,
        feedback="testbed-writer",
        reward="verifier",
        rounds=1,
        solve=solve,
    )
    prompts = s.next_prompts(generate=wrong)
    assert {skill_of(p.text).name for p in prompts} == {"addition"}
    assert all(p.metadata["answer"] == solve(p.text) for p in prompts)
    audit = {r["stage"]: r for r in s.ledger()}["arms/session/iter-01/prompts"]["audit"]
    assert audit["generation_dropped"]["no answer"] > 0 and audit["with_answer"] == 4
    assert "solve" in json.loads((tmp_path / "fingerprint.json").read_text())


def test_generated_copies_of_heldout_questions_are_dropped_and_counted(tmp_path):
    from aopcore_curricula.generators import ScoreBasedGenerator
    from aopcore_curricula.options import ScoreBasedOptions

    heldout = ["What is 2 + 3?", "What is 4 + 4?"]
    evaluation = [EvalRecord(f"h{k}", q, "addition", "no", 0.0) for k, q in enumerate(heldout)]

    class Copier:
        def complete(self, prompts):
            return ["1. what is 2+3?\n2. What is 4 + 4 ?\n3. What is 1 + 1?"] * len(prompts)

    gen = ScoreBasedGenerator(ScoreBasedOptions(**{**AOP, "draws": 1, "max_draws_factor": 1.0}), "aop")
    out, log = gen.generate(
        evaluation, 1, feedback=Copier(), embedder=None, categories=["addition"], history=[], iteration=1, seed=0
    )
    assert [p.text for p in out] == ["What is 1 + 1?"]
    assert log.dropped["held-out question"] == 2


def test_a_curriculum_that_reads_no_evaluation_is_not_evaluated_for(tmp_path):
    calls = []

    def generate(texts):
        calls.append(len(texts))
        return wrong(texts)

    bandit = CurriculumSession(
        "category-bandit",
        options={"pool": "testbed:pool"},
        heldout="testbed:heldout",
        state_dir=tmp_path,
        budget=4,
        reward="verifier",
        rounds=1,
    )
    assert len(bandit.next_prompts(generate=generate)) == 4
    assert calls == [] and not (tmp_path / "sft" / "evaluation.jsonl").exists()
    assert "sft/evaluation" not in {r["stage"] for r in bandit.ledger()}


def test_heldout_takes_a_column_mapping_from_python_and_its_errors_speak_python(tmp_path):
    data = tmp_path / "quiz.jsonl"
    data.write_text("".join(json.dumps({"q": f"What is {k} + 1?", "topic": "plus"}) + "\n" for k in range(3)))
    s = CurriculumSession(
        SeedCurriculum(),
        heldout={"source": str(data), "text": "q", "category": "topic"},
        state_dir=tmp_path / "s",
        budget=2,
        rounds=1,
    )
    assert [q.text for q in s.heldout] == ["What is 0 + 1?", "What is 1 + 1?", "What is 2 + 1?"] and s.categories == [
        "plus"
    ]
    with pytest.raises(InputError) as err:
        CurriculumSession(SeedCurriculum(), heldout=str(data), state_dir=tmp_path / "t", budget=2, rounds=1)
    assert '{"source": "...", "text": "COLUMN"' in str(err.value) and 'text = "' not in str(err.value)


def test_a_refused_change_names_the_sessions_own_argument(tmp_path):
    CurriculumSession(SeedCurriculum(), heldout=[Question("q", "x?", "a")], state_dir=tmp_path, budget=2, rounds=1)
    with pytest.raises(InputError) as err:
        CurriculumSession(SeedCurriculum(), heldout=[Question("q", "x?", "a")], state_dir=tmp_path, budget=3, rounds=1)
    assert "CurriculumSession(..., allow_changes=True)" in str(err.value) and "--allow-changed-config" not in str(
        err.value
    )


def test_a_trl_reward_that_needs_dataset_columns_is_refused_in_one_line(tmp_path):
    def correct(prompts, completions, answer, **kwargs):
        return [float(c == a) for c, a in zip(completions, answer)]

    with pytest.raises(InputError) as err:
        CurriculumSession(
            SeedCurriculum(), heldout=[Question("q", "x?", "a")], state_dir=tmp_path, budget=2, rounds=1, reward=correct
        )
    assert len(err.value.problems) == 1 and "correct() needs the dataset column(s) answer" in err.value.problems[0]


def test_a_kwargs_reward_that_scores_every_heldout_answer_alike_is_not_silent(tmp_path, caplog):
    def correct(prompts, completions, **kwargs):  # looks for a column the evaluation does not pass
        return [float(c == a) for c, a in zip(completions, kwargs.get("answer", [None] * len(completions)))]

    s = CurriculumSession(
        SeedCurriculum(),
        heldout=[Question("q1", "x?", "a"), Question("q2", "y?", "a")],
        state_dir=tmp_path,
        budget=2,
        rounds=1,
        reward=correct,
    )
    with caplog.at_level("WARNING", logger="aopcore"):
        s.next_prompts(generate=wrong)
    record = {r["stage"]: r for r in s.ledger()}["sft/evaluation"]
    assert "gave every one of 2 held-out answers 0.0" in record["warning"]
    assert "gave every one of 2 held-out answers 0.0" in caplog.text


def test_a_feedback_reply_from_the_cache_or_generated_leaves_the_policys_random_stream_alike(tmp_path):
    """The cause of 'three runs, three trajectories': a local LLM reseeds torch's global generator when it generates
    and not when its reply is cached, so the policy's sampling after it differed; feedback calls are RNG-neutral now."""
    torch = pytest.importorskip("torch")
    cache: dict[str, str] = {}

    class CachingWriter:  # as the local feedback LLM: torch.manual_seed(seed) and sampling on a miss only
        def complete(self, prompts):
            misses = [p for p in prompts if p not in cache]
            if misses:
                torch.manual_seed(0)
                torch.rand(len(misses))
                cache.update(zip(misses, writer().complete(misses)))
            return [cache[p] for p in prompts]

    def policy_after_a_round(folder):
        s = CurriculumSession(
            "aop",
            options=AOP,
            heldout="testbed:heldout",
            state_dir=folder,
            budget=4,
            feedback=CachingWriter(),
            reward="verifier",
            rounds=1,
        )
        torch.manual_seed(123)
        prompts = s.next_prompts(generate=wrong)
        return [p.text for p in prompts], torch.rand(4).tolist()

    cold = policy_after_a_round(tmp_path / "cold")
    assert cache  # the first run generated
    warm = policy_after_a_round(tmp_path / "warm")  # every reply from the cache
    assert warm == cold


def test_the_audit_shows_prompts_that_are_not_what_their_label_says_and_copies_of_heldout_questions(tmp_path):
    from aopcore.engine.prompt_audit import audit, label_checker
    from aopcore_testbed.writer import TestbedWriter

    prompts = [
        Prompt("a", "What is 2 + 3?", "bigger"),
        Prompt("b", "What is 4 + 4?", "addition"),
        Prompt("c", "Shout it!", "shout", metadata={"answer": "IT"}),
    ]
    checker = label_checker(
        CurriculumSession(
            SeedCurriculum(),
            heldout=[Question("q", "x?", "a")],
            state_dir=tmp_path,
            budget=2,
            rounds=1,
            feedback=TestbedWriter(),
        ).feedback
    )  # through the counting wrapper
    out = audit(prompts, ["what is 4+4"], checker)  # the same question once normalised
    assert out["heldout_overlap"] == 1 and out["with_answer"] == 1
    assert out["label_checked"] == 2 and out["label_agreement"] == 0.5  # "bigger" is an addition question


def test_the_audit_does_not_build_a_feedback_model_that_has_no_label_checker(tmp_path):
    s = CurriculumSession(
        SeedCurriculum(), heldout=[Question("q", "x?", "a")], state_dir=tmp_path, budget=2, rounds=1, feedback="local"
    )
    s.next_prompts(evaluation=[EvalRecord("q", "x?", "a", "y", 0.0)])
    assert s.feedback.inner.built is False  # the local LLM was never loaded for the audit
    assert "label_checked" not in {r["stage"]: r for r in s.ledger()}["arms/session/iter-01/prompts"]["audit"]
