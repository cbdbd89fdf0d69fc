"""Contracts checked before the first stage, adapters for what users already have, and stage outputs checked at the boundary."""

import json
from pathlib import Path

import pytest

from aopcore import Budget, Experiment, InputError, Prompt, Question, RuntimeFailure
from aopcore.contracts import RewardFunction, check_component

import toy_components as toy

HELDOUT = [Question(f"h{i}", f"held-out question {i}", cat) for i, cat in enumerate(["a", "b", "c"] * 2)]
TESTS = [Question(f"t{i}", f"test {i}", "general") for i in range(4)]


def make(tmp_path: Path, **kw) -> Experiment:
    args = dict(
        name="c",
        output_dir=tmp_path,
        trainer=toy.ToyTrainer(toy.ToyTrainerOptions()),
        reward=toy.LengthReward(),
        arms={"static": toy.StaticCurriculum(toy.StaticOptions())},
        heldout=HELDOUT,
        test_prompts=TESTS,
        budget=Budget(iterations=2, records_per_iteration=4, passes=1),
        seed=2,
    )
    args.update(kw)
    return Experiment(**args)


def refused(tmp_path: Path, **kw) -> list[str]:
    with pytest.raises(InputError) as info:
        make(tmp_path, **kw)
    assert not (tmp_path / "c").exists()  # before any stage: nothing was written
    return info.value.problems


def test_a_component_with_a_missing_method_is_refused_before_any_stage(tmp_path: Path):
    class Misspelt:
        def scores(self, prompts, responses):
            return [0.0] * len(prompts)

    problems = refused(tmp_path, reward=Misspelt())
    assert problems == [
        "reward (Misspelt): has no score() method; a RewardModel needs score(prompts, responses) -> list[float]"
    ]


def test_wrong_call_shapes_are_refused_with_one_line_each(tmp_path: Path):
    class OldTrainer(toy.ToyTrainer):
        def train(self, policy, prompts, reward, passes, out):  # no seed
            raise AssertionError("never called")

    class Judge:
        judge = "not a method"

    problems = refused(tmp_path, trainer=OldTrainer(toy.ToyTrainerOptions()), judge=Judge())
    assert len(problems) == 2
    assert problems[0].startswith(
        "trainer (OldTrainer): train(policy, prompts, reward, passes, out) cannot be called as "
        "train(policy, prompts, reward, *, passes, out, seed)"
    )
    assert problems[1].startswith("judge (Judge): judge is not callable")


def test_a_train_annotated_to_return_a_dict_is_refused_up_front(tmp_path: Path):
    class DictTrainer(toy.ToyTrainer):
        def train(self, policy, prompts, reward, *, passes, out, seed) -> dict:
            return {}

    assert refused(tmp_path, trainer=DictTrainer(toy.ToyTrainerOptions())) == [
        "trainer (DictTrainer): train() is annotated to return dict; it must return aopcore.TrainStats"
    ]


def test_a_curriculum_that_needs_feedback_is_reported_before_any_stage(tmp_path: Path):
    from aopcore_curricula.curricula import AOPCurriculum
    from aopcore_curricula.options import ScoreBasedOptions

    problems = refused(tmp_path, arms={"aop": AOPCurriculum(ScoreBasedOptions())})
    assert problems == ["arms.aop: curriculum needs a [feedback] LLM and none is configured"]


class Flaky(toy.ToyTrainer):
    """A trainer whose train() writes nothing until the user fixes it (a class attribute: the same setup)."""

    broken = True
    returns_dict = False

    def train(self, policy, prompts, reward, *, passes, out, seed):
        stats = super().train(policy, prompts, reward, passes=passes, out=out, seed=seed)
        if Flaky.broken:
            (out / "policy.json").unlink()
        return stats.__dict__ if Flaky.returns_dict else stats


def test_a_trainer_that_writes_nothing_leaves_the_stage_unfinished_and_a_fixed_one_completes_the_run(tmp_path: Path):
    Flaky.broken, Flaky.returns_dict = True, False
    with pytest.raises(RuntimeFailure, match=r"trainer \(Flaky\): train\(\) wrote nothing into its output folder"):
        make(tmp_path, trainer=Flaky(toy.ToyTrainerOptions())).run()
    run = tmp_path / "c"
    assert (run / "stages" / "sft__policy.json").exists()
    assert not (run / "stages" / "arms__static__iter-01__train.json").exists()
    assert not (run / "arms" / "static" / "iter-01" / "policy").exists()

    Flaky.broken = False
    result = make(tmp_path, trainer=Flaky(toy.ToyTrainerOptions())).run()
    assert (run / "arms" / "static" / "iter-02" / "policy" / "policy.json").exists()
    assert {r["stage"] for r in result.ledger} >= {"arms/static/iter-01/train", "arms/static/iter-02/train", "report"}


def test_a_train_that_returns_a_dict_is_a_clear_error_naming_the_trainer(tmp_path: Path):
    Flaky.broken, Flaky.returns_dict = False, True
    try:
        with pytest.raises(RuntimeFailure, match=r"trainer \(Flaky\): train\(\) returned dict, not aopcore.TrainStats"):
            make(tmp_path, trainer=Flaky(toy.ToyTrainerOptions())).run()
    finally:
        Flaky.returns_dict = False
    assert not (tmp_path / "c" / "stages" / "arms__static__iter-01__train.json").exists()


def test_a_policy_the_trainer_cannot_load_is_not_recorded(tmp_path: Path):
    class Checked(toy.ToyTrainer):
        def initial_policy(self, out, *, seed):
            (out / "junk.txt").write_text("not a policy")

        def check_policy(self, path):
            return None if (path / "policy.json").exists() else "no policy.json"

    with pytest.raises(
        RuntimeFailure, match=r"the policy initial_policy\(\) wrote cannot be loaded \(no policy.json\)"
    ):
        make(tmp_path, trainer=Checked(toy.ToyTrainerOptions())).run()
    assert not (tmp_path / "c" / "stages" / "sft__policy.json").exists()


def test_a_trl_style_reward_function_inside_a_real_run(tmp_path: Path):
    seen: list[list] = []

    def length_reward(prompts, completions, categories=None, **kwargs):  # the signature TRL's GRPOTrainer calls
        seen.append(list(categories))
        return [len(c.split()) / 10.0 for c in completions]

    result = make(tmp_path, reward=length_reward).run()
    run = result.run_dir
    rows = [json.loads(x) for x in (run / "arms" / "static" / "iter-02" / "evaluation.jsonl").read_text().splitlines()]
    sft = [json.loads(x) for x in (run / "sft" / "evaluation.jsonl").read_text().splitlines()]
    assert (
        sum(r["reward"] for r in rows) / len(rows) > sum(r["reward"] for r in sft) / len(sft) + 0.2
    )  # it trained on it
    assert ["a", "b", "c", "a", "b", "c"] in seen  # held-out categories at evaluation
    trained = {c for batch in seen if len(batch) == 1 for c in batch}  # the toy trainer scores one prompt at a time
    assert trained and trained <= {"a", "b", "c"}  # the training prompts' own categories, never None
    assert json.loads((run / "fingerprint.json").read_text())["reward"]["function"].endswith("length_reward")


def test_reward_function_adapter_rejects_wrong_counts_and_none():
    with pytest.raises(RuntimeError, match="returned 1 scores for 2 completions"):
        RewardFunction(lambda p, c, **kw: [1.0]).score(["a", "b"], ["x", "y"])
    with pytest.raises(RuntimeError, match="returned None"):
        RewardFunction(lambda p, c, **kw: [1.0, None]).score(["a", "b"], ["x", "y"])


def test_plain_callables_serve_as_feedback_judge_and_curriculum(tmp_path: Path):
    def judge(question, answer_a, answer_b):
        return "A" if len(answer_a) >= len(answer_b) else "B"

    def curriculum(ctx):
        return [Prompt(f"{ctx.iteration}-{n}", f"q {n}", ctx.categories[n % 3]) for n in range(ctx.budget)]

    result = make(
        tmp_path, judge=judge, arms={"plain": curriculum, "static": toy.StaticCurriculum(toy.StaticOptions())}
    ).run()
    assert len(result.winrates) == 2
    assert check_component("feedback", lambda p: p) == [
        "feedback (function): has no complete() method; a FeedbackLLM needs complete(prompts) -> list[str]"
    ]


def test_a_generate_that_returns_too_few_answers_is_named(tmp_path: Path):
    class Short(toy.ToyTrainer):
        def generate(self, policy, prompts, *, seed, sample=False):
            return super().generate(policy, prompts, seed=seed, sample=sample)[:-1]

    with pytest.raises(RuntimeFailure, match=r"trainer \(Short\): generate\(\) returned 5 items for 6 inputs"):
        make(tmp_path, trainer=Short(toy.ToyTrainerOptions())).run()


def test_train_gets_a_stable_scratch_folder_that_survives_a_failed_attempt(tmp_path: Path):
    seen: list[tuple[Path, bool]] = []

    class Resumable(toy.ToyTrainer):
        def train(self, policy, prompts, reward, *, passes, out, seed, scratch: Path):
            seen.append((scratch, (scratch / "ckpt").exists()))
            if len(seen) == 1:
                (scratch / "ckpt").write_text("half-way")  # the trainer's own partial checkpoint
                raise RuntimeError("killed half-way")
            return super().train(policy, prompts, reward, passes=passes, out=out, seed=seed)

    with pytest.raises(RuntimeError, match="killed half-way"):
        make(tmp_path, trainer=Resumable(toy.ToyTrainerOptions())).run()
    make(tmp_path, trainer=Resumable(toy.ToyTrainerOptions())).run()
    assert seen[0][0] == seen[1][0] and seen[1][1]  # the same folder, with what the first attempt left
    assert not seen[0][0].exists()  # removed once the stage was recorded


def test_adapters_keep_the_class_names_existing_fingerprints_record():
    """The adapters live in aopcore.callables; fingerprint.json of a run directory written before records them as
    aopcore.contracts.*, and a changed name would refuse to resume that run."""
    from aopcore import contracts
    from aopcore.storage.fingerprint import describe

    def fn(*args, **kwargs):
        return None

    for adapter in (
        contracts.RewardFunction,
        contracts.FeedbackFunction,
        contracts.JudgeFunction,
        contracts.EmbedFunction,
        contracts.CurriculumFunction,
    ):
        assert describe(adapter(fn))["class"] == f"aopcore.contracts.{adapter.__name__}"
