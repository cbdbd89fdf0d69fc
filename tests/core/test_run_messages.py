"""What a user reads after a run: clear lines for wrong arms/iterations/roots, a tidy run directory."""
import json
from pathlib import Path

from helpers import run_cli


def _run_dir(root: Path, arms=("aop", "sop"), iterations=(1,)) -> Path:
    (root / "stages").mkdir(parents=True)
    (root / "config.json").write_text("{}")
    for arm in arms:
        for i in iterations:
            path = root / "arms" / arm / f"iter-{i:02d}" / "test_answers.jsonl"
            path.parent.mkdir(parents=True)
            path.write_text("".join(json.dumps({"id": f"q{n}", "question": f"q {n}", "answer": f"{arm} {n}"}) + "\n"
                                    for n in range(3)))
    return root


def _one_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


def test_human_eval_names_the_arms_and_iterations_that_exist(tmp_path: Path):
    run = _run_dir(tmp_path / "run")
    line = _one_error(run_cli("human-eval", "serve", str(run), "--pair", "aop:sopp", "--iteration", "1"))
    assert "unknown arm 'sopp'" in line and "(arms: aop, sop)" in line
    line = _one_error(run_cli("human-eval", "serve", str(run), "--pair", "aop:sop"))  # default --iteration 2
    assert "iteration 2 has no test answers for both aop and sop (iterations with answers: 1)" in line


def test_human_eval_on_a_multiseed_root_points_at_a_seed(tmp_path: Path):
    root = tmp_path / "testbed"
    for seed in (0, 1):
        _run_dir(root / f"seed-{seed}")
    (root / "multiseed.json").write_text(json.dumps({"seeds": [0, 1], "arms": ["aop", "sop"]}))
    for action in ("results", "serve"):
        line = _one_error(run_cli("human-eval", action, str(root)))
        assert f"this is a multi-seed run: use {root}/seed-N (seeds: 0, 1)" in line


def test_a_finished_run_leaves_no_empty_work_folders(tmp_path: Path):
    import toy_components as toy

    from aopcore import Budget, Experiment, Question

    class CheckpointingTrainer(toy.ToyTrainer):
        """Takes a scratch folder for mid-stage checkpoints, so the run creates scratch/ (and attempts/)."""

        def train(self, policy, prompts, reward, *, passes, out, seed, scratch: Path):
            assert scratch.is_dir()
            (scratch / "step-1").write_text("checkpoint")
            return super().train(policy, prompts, reward, passes=passes, out=out, seed=seed)

    heldout = [Question(f"h{i}", f"held-out question {i}", c) for i, c in enumerate("abab")]
    exp = Experiment(name="tidy", output_dir=tmp_path, trainer=CheckpointingTrainer(toy.ToyTrainerOptions()),
                     reward=toy.LengthReward(), arms={"static": toy.StaticCurriculum(toy.StaticOptions())},
                     heldout=heldout, test_prompts=[Question("t0", "test 0")], judge=None,
                     budget=Budget(iterations=1, records_per_iteration=4, passes=1), seed=0)
    exp.run()
    run = tmp_path / "tidy"
    assert (run / "stages" / "report.json").exists()
    assert not (run / "attempts").exists() and not (run / "scratch").exists()
    assert (run / "train-index").is_dir() and (run / "fingerprint.json").exists()  # kept: a rerun reads them
    # something left behind (a crash's checkpoint) is never deleted by the tidy-up
    (run / "scratch" / "arms__static__iter-02__train").mkdir(parents=True)
    Experiment(name="tidy", output_dir=tmp_path, trainer=CheckpointingTrainer(toy.ToyTrainerOptions()),
               reward=toy.LengthReward(), arms={"static": toy.StaticCurriculum(toy.StaticOptions())},
               heldout=heldout, test_prompts=[Question("t0", "test 0")], judge=None,
               budget=Budget(iterations=1, records_per_iteration=4, passes=1), seed=0).run()
    assert (run / "scratch" / "arms__static__iter-02__train").is_dir()


def test_a_short_testbed_test_set_covers_every_category():
    from aopcore_testbed import sets
    from aopcore_testbed.skills import CATEGORIES

    built = sets.build_sets()
    for name in ("heldout", "test"):
        first = built[name][: len(CATEGORIES)]  # test_size = 7 takes these
        assert sorted(q.category for q in first) == sorted(CATEGORIES), name
        packaged = [json.loads(line)["category"] for line in (sets.DATA / f"{name}.jsonl").read_text().splitlines()]
        assert sorted(packaged[: len(CATEGORIES)]) == sorted(CATEGORIES), f"{name}.jsonl: rerun python -m aopcore_testbed.sets"


def test_the_plugin_guide_test_snippet_passes_against_a_fresh_scaffold(tmp_path: Path):
    """docs/plugins.md's `aopcore.testing` example runs as written against `aopcore new-plugin curriculum focus`."""
    import os
    import re
    import subprocess
    import sys

    guide = (Path(__file__).parents[2] / "docs" / "plugins.md").read_text()
    section = guide.split("## Testing with `aopcore.testing`", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "def test_" in snippet
    pkg = tmp_path / "pkg"
    assert run_cli("new-plugin", "curriculum", "focus", "--dir", str(pkg)).returncode == 0
    (pkg / "tests" / "test_from_the_guide.py").write_text(snippet)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_from_the_guide.py"],
                            cwd=pkg, env={**env, "PYTHONPATH": str(pkg)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_sft_uses_the_current_checkpointing_api_and_prints_no_deprecation(tmp_path: Path):
    """TRL's SFTConfig sets the deprecated `gradient_checkpointing` unless `activation_checkpointing` is given."""
    import warnings

    import pytest

    pytest.importorskip("trl")
    from aopcore_hf.models import choose_device
    from aopcore_hf.options import SFTOptions
    from aopcore_hf.sft import run_sft, sft_config
    from helpers.tiny_models import save_tiny_gpt2

    options = SFTOptions(dataset="builtin:dolly-mini", max_epochs=1, limit=16, batch_size=8, learning_rate=5e-3)
    assert sft_config(options, tmp_path / "work", choice=choose_device("cpu"), seed=0).activation_checkpointing is True
    base = save_tiny_gpt2(tmp_path / "gpt2")
    (tmp_path / "sft").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_sft(str(base), options, tmp_path / "sft", choice=choose_device("cpu"), seed=0)
    assert (tmp_path / "sft" / "sft.json").exists()
    deprecated = [str(w.message) for w in caught if "checkpointing" in str(w.message)]
    assert not deprecated, deprecated
