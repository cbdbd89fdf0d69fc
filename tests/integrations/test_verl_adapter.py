"""The veRL adapter (aopcore_integrations.verl) against veRL 0.9.1's own classes, in veRL's own virtualenv.

veRL pins transformers below what the main environment has, so the real checks run tests/integrations/verl/drive.py under
.venv-verl/bin/python (scripts/setup-verl.sh makes it; CI runs that script). The driver builds the dataloader
with RayPPOTrainer._create_dataloader (create_rl_dataset with data.custom_cls, the StatefulDataLoader, veRL's
collate_fn), turns each batch into a DataProto, rewards it as veRL's reward stage would (simulated rollouts,
per-category pass rates), calls on_batch_end, and checkpoints/resumes the dataloader as veRL does.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aopcore.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
VERL_PY = ROOT / ".venv-verl" / "bin" / "python"
DRIVE = ROOT / "tests" / "integrations" / "verl" / "drive.py"
needs_verl = pytest.mark.skipif(
    not VERL_PY.exists(),
    reason=".venv-verl is absent: run `bash scripts/setup-verl.sh` (veRL 0.9.1 in its own virtualenv; CI runs it)",
)


def test_options_problems_are_input_errors_naming_the_key():
    from aopcore_integrations.verl import parse_options

    with pytest.raises(InputError) as exc:
        parse_options({"aopcore": {"state_dir": "s", "curriculum": "aop", "stepz_per_round": 2}})
    assert exc.value.problems == ["data.aopcore.stepz_per_round: unknown key"]
    with pytest.raises(InputError) as exc:
        parse_options({"aopcore": {"state_dir": "s", "curriculum": "aop", "evaluation": "generate"}})
    assert exc.value.problems == [
        "data.aopcore.heldout: needed without data.aopcore.config (or name an aopcore TOML in config)",
        "data.aopcore.budget: needed without data.aopcore.config (or name an aopcore TOML in config)",
        'data.aopcore.generate: evaluation = "generate" needs a function, "module:function" (texts -> answers with the current policy)',
    ]
    with pytest.raises(InputError, match="data.aopcore: missing"):
        parse_options({})
    opts = parse_options(
        {"aopcore": {"state_dir": "s", "curriculum": "aop", "heldout": "testbed:heldout", "budget": 8}}
    )
    assert opts.evaluation == "rollouts" and opts.steps_per_round is None


def test_module_imports_without_verl():
    """The adapter module loads where veRL is not installed; only AopcoreDataset needs veRL."""
    code = (
        "import sys, aopcore_integrations.verl as v; assert 'verl' not in sys.modules and 'torch' not in sys.modules; "
        "print(v.RoundDriver.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "RoundDriver"


def _drive(tmp: Path, run: str, *extra: str, rc: int = 0) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        str(VERL_PY),
        str(DRIVE),
        "--work",
        str(tmp / "work"),
        "--state",
        str(tmp / run / "state"),
        "--out",
        str(tmp / f"{run}.jsonl"),
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == rc, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(tmp / f"{run}.log", "a", encoding="utf-8") as fh:
        fh.write(proc.stdout + proc.stderr)
    return [json.loads(line) for line in (tmp / f"{run}.jsonl").read_text().splitlines()]


def _share(steps: list[dict], rnd: int, cats: set[str]) -> float:
    drawn = [c for s in steps if s["round"] == rnd for c in s["categories"]]
    return sum(c in cats for c in drawn) / len(drawn)


@needs_verl
@pytest.mark.verl
@pytest.mark.slow
def test_verl_dataset_follows_the_rollouts_and_resumes(tmp_path):
    steps = _drive(tmp_path, "a")
    # 3 rounds x 2 steps x 8 prompts, one dataloader batch = one draw
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert [s["round"] for s in steps] == [1, 1, 2, 2, 3, 3]
    assert all(len(s["ids"]) == 8 for s in steps)
    # round 1 chose from the start policy's evaluation (subtraction weakest); rounds 2-3 from on_batch_end's
    # rewards, where the simulated policy gets subtraction right and fails reversal and counting
    weak, learned = {"reversal", "counting"}, {"subtraction"}
    print({r: collections.Counter(c for s in steps if s["round"] == r for c in s["categories"]) for r in (1, 2, 3)})
    assert _share(steps, 2, weak) > _share(steps, 1, weak) + 0.2
    assert _share(steps, 3, weak) > _share(steps, 1, weak) + 0.2
    assert _share(steps, 2, learned) < _share(steps, 1, learned)
    # the state folder: per-step batches grouped per prompt (rollout.n = 4 responses each), in run-directory formats
    state = tmp_path / "a" / "state"
    batches = [json.loads(line) for line in (state / "arms/verl/iter-01/steps.jsonl").read_text().splitlines()]
    assert [b["draw"] for b in batches] == [0, 1]
    assert all(len(b["groups"]) == 8 and all(len(g["rewards"]) == 4 for g in b["groups"]) for b in batches)
    assert [g["prompt_id"] for g in batches[0]["groups"]] == steps[0]["ids"]
    rev = [r for b in batches for g in b["groups"] if g["category"] in weak for r in g["rewards"]]
    assert rev and sum(rev) / len(rev) < 0.4
    evaluation = [json.loads(line) for line in (state / "arms/verl/iter-01/evaluation.jsonl").read_text().splitlines()]
    assert {e["question_id"] for e in evaluation} >= set(steps[0]["ids"])  # round 2 chose from round 1's rollouts
    assert (state / "fingerprint.json").exists() and (state / "stages/arms__verl__iter-02__prompts.json").exists()

    # the same setup named by an aopcore config (data.aopcore.config = tests/integrations/verl/aop.toml), killed after step 4
    # (round 3 not chosen yet) and resumed from veRL's checkpoint of step 3 (mid round 2): the prompts of the
    # inline run, before and after the crash
    _drive(tmp_path, "b", "--curriculum", "toml", "--save-at", "3", "--crash-at", "4", rc=3)
    resumed = _drive(tmp_path, "b", "--curriculum", "toml", "--resume", str(tmp_path / "b" / "ckpt" / "global_step_3"))
    assert [s["step"] for s in resumed] == [1, 2, 3, 4, 4, 5, 6]
    assert [s["ids"] for s in resumed[4:]] == [s["ids"] for s in steps[3:]]
    assert [s["ids"] for s in resumed[:4]] == [s["ids"] for s in steps[:4]]


@needs_verl
@pytest.mark.verl
@pytest.mark.slow
def test_verl_online_curriculum_chooses_per_step_and_resumes(tmp_path):
    """An online curriculum (category-bandit) through the same hooks: every dataloader batch is chosen from the
    rewards on_batch_end reported so far, and a resume replays the reports into a fresh selector."""
    online = ("--curriculum", "category-bandit", "--rounds", "2", "--steps-per-round", "4")
    steps = _drive(tmp_path, "e", *online)
    assert [s["round"] for s in steps] == [1, 1, 1, 1, 2, 2, 2, 2]
    # the simulated policy passes conversion/maximum/uppercase 50-80% of the time (rewards that vary within a
    # group: |advantage| > 0) and the others 10% or 90% (mostly zero-variance groups): the bandit moves to the former
    varied = {"conversion", "maximum", "uppercase"}
    first = sum(c in varied for c in steps[0]["categories"]) / 8
    later = sum(c in varied for s in steps[4:] for c in s["categories"]) / 32
    print([collections.Counter(s["categories"]) for s in steps])
    assert first < 0.7 and later > 0.8 and later > first + 0.3
    # checkpoint at round 1's last step (veRL saves before that step's on_batch_end), killed in round 2
    _drive(tmp_path, "f", *online, "--save-at", "4", "--crash-at", "6", rc=3)
    resumed = _drive(tmp_path, "f", *online, "--resume", str(tmp_path / "f" / "ckpt" / "global_step_4"))
    assert [s["step"] for s in resumed] == [1, 2, 3, 4, 5, 6, 5, 6, 7, 8]
    assert [s["ids"] for s in resumed[6:]] == [s["ids"] for s in steps[4:]]
    # killed between veRL's checkpoint and that step's on_batch_end: the step's rewards are lost (veRL does not
    # redo the step); the dataset resumes without them, says so, and trains on
    _drive(tmp_path, "h", *online, "--save-at", "2", "--crash-before-report", rc=3)
    resumed = _drive(tmp_path, "h", *online, "--resume", str(tmp_path / "h" / "ckpt" / "global_step_2"))
    assert [s["step"] for s in resumed] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert resumed[2]["ids"] == steps[2]["ids"]  # draw 2 saw reports up to draw 0 only (lag 1): unaffected
    assert "the rollouts of draw 1 were not reported before the crash" in (tmp_path / "h.log").read_text()
