"""examples/embed_in_python.py, the embedding reference: a foreign torch trainer and plain functions, resumed and guarded."""

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
from aopcore import InputError  # noqa: E402

from helpers import ROOT  # noqa: E402


def load_example():
    spec = importlib.util.spec_from_file_location("embed_in_python", ROOT / "examples" / "embed_in_python.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mean_reward(path: Path) -> float:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return sum(r["reward"] for r in rows) / len(rows)


def test_example_runs_resumes_and_refuses_a_changed_trainer(tmp_path: Path, capsys):
    example = load_example()
    result = example.main(tmp_path)
    run = result.run_dir
    assert len(result.winrates) == 6 * 2  # 4 arms, every pair, 2 iterations
    # the foreign torch trainer learned from the TRL-style reward function
    assert (
        mean_reward(run / "arms" / "vanilla" / "iter-02" / "evaluation.jsonl")
        > mean_reward(run / "sft" / "evaluation.jsonl") + 0.3
    )
    records = {r["stage"]: r for r in result.ledger}
    assert (
        records["arms/aop/iter-01/prompts"]["feedback_calls"] >= 4
    )  # a plain function's calls, counted by the experiment
    assert records["arms/vanilla/iter-01/train"]["tokens_generated"] > 0
    assert records["arms/aop/iter-01/train"]["reused_from"] == "arms/sop/iter-01"  # AOP's first iteration is SOP's
    assert not (run / "scratch").exists() or not any(
        (run / "scratch").iterdir()
    )  # checkpoints dropped once stages finished
    assert "run directory:" in capsys.readouterr().out

    ran: list[str] = []
    example.main(tmp_path, after_stage=ran.append)
    assert ran == []  # resumed: nothing recomputed

    with pytest.raises(InputError, match=r"trainer.learning_rate: 0.05 -> 0.1"):
        example.main(tmp_path, trainer=example.TinyTorchTrainer(learning_rate=0.1))


def test_the_example_trainer_resumes_mid_stage_from_its_scratch_checkpoint(tmp_path: Path):
    example = load_example()
    from aopcore import Prompt

    trainer = example.TinyTorchTrainer(save_every_steps=2)
    policy = tmp_path / "p0"
    policy.mkdir()
    trainer.initial_policy(policy, seed=0)
    prompts = [Prompt(f"p{n}", f"my bike chain {n}?", "cycling") for n in range(12)]

    class Stop(Exception):
        pass

    class StopsAtFive:
        calls = 0
        armed = False

        def score(self, prompts, responses):
            StopsAtFive.calls += 1
            if StopsAtFive.armed and StopsAtFive.calls == 5:
                raise Stop
            return example.helpfulness(prompts, responses, categories=["cycling"] * len(prompts))

    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    for folder in (whole, resumed, tmp_path / "s1", tmp_path / "s2"):  # the experiment creates out and scratch
        folder.mkdir()
    a = trainer.train(policy, prompts, StopsAtFive(), passes=2, out=whole, seed=3, scratch=tmp_path / "s1")  # 6 steps
    StopsAtFive.calls, StopsAtFive.armed = 0, True
    with pytest.raises(Stop):
        trainer.train(policy, prompts, StopsAtFive(), passes=2, out=resumed, seed=3, scratch=tmp_path / "s2")
    StopsAtFive.calls, StopsAtFive.armed = 0, False
    b = trainer.train(policy, prompts, StopsAtFive(), passes=2, out=resumed, seed=3, scratch=tmp_path / "s2")
    assert StopsAtFive.calls == 2  # steps 5 and 6 only (it stopped in step 5): the save after step 4 was found
    assert a.metrics == b.metrics and a.tokens_generated == b.tokens_generated
    assert (whole / "policy.pt").read_bytes() == (resumed / "policy.pt").read_bytes()
