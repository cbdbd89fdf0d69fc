"""examples/testbed-seq.toml runs end to end: every arm trains the shipped sequence-tier policy with PPO on sampled
multi-token answers, and the held-out evaluation is recorded per question with its category and reward."""

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("reasoning_gym")

from aopcore_testbed.sequence.tasks import CATEGORIES, score

from helpers import run_cli

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_every_arm_of_the_example_config_runs_on_a_tiny_budget_and_records_held_out_scores_per_category(tmp_path):
    config = (ROOT / "examples" / "testbed-seq.toml").read_text()
    tiny = {
        r"^output_dir = .*$": f'output_dir = "{tmp_path}"',
        r"^seeds = .*$": "seeds = [0]",
        r"^iterations = .*$": "iterations = 1",
        r"^records_per_iteration = .*$": "records_per_iteration = 16",
        r"^passes = .*$": "passes = 1",
        r"^test_size = .*$": "test_size = 12",
        r"^samples = 8$": "samples = 2",
    }
    for pattern, line in tiny.items():
        config, n = re.subn(pattern, line, config, flags=re.M)
        assert n == 1, pattern
    (tmp_path / "c.toml").write_text(config)
    result = run_cli("run", str(tmp_path / "c.toml"), env={"OMP_NUM_THREADS": "1"}, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    seed = tmp_path / "testbed-seq" / "seed-0"
    arms = re.findall(r"^\[arms\.([\w-]+)\]", config, re.M)
    assert len(arms) == 13 and arms[-1] == "oracle"  # the literature's four included; the positive control last
    start = [json.loads(line) for line in (seed / "sft" / "evaluation.jsonl").read_text().splitlines()]
    for arm in arms:
        rows = [
            json.loads(line) for line in (seed / "arms" / arm / "iter-01" / "evaluation.jsonl").read_text().splitlines()
        ]
        assert len(rows) == len(start) == 30 * len(CATEGORIES)
        assert {r["category"] for r in rows} == set(CATEGORIES)
        for r in rows[:12]:  # the recorded reward is the task's own verdict on the recorded answer (exact = true)
            assert r["reward"] == float(score(r["question"], r["answer"]) == 1.0)
    lengths = [len(r["answer"]) for r in start if r["category"].startswith("word_sequence_reversal")]
    assert sum(lengths) / len(lengths) > 8  # answers are sequences, not one token
