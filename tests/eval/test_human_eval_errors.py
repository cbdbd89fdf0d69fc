"""`aopcore human-eval` on a wrong arm, iteration or root: one clear line naming what exists."""

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
            path.write_text(
                "".join(
                    json.dumps({"id": f"q{n}", "question": f"q {n}", "answer": f"{arm} {n}"}) + "\n" for n in range(3)
                )
            )
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
