"""Multi-seed runs: one ordinary, resumable run directory per seed, one shared SFT policy, one aggregate."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import AOPCORE, run_cli
from helpers.runs import assert_same_outputs, outputs

SEEDS = "[0, 1, 2]"


def multiseed_config(toy_config, **replace: str) -> Path:
    """The toy config with `seed = 7` replaced by a seeds list (and two iterations, to keep it quick)."""
    path = toy_config(iterations="2", **replace)
    path.write_text(path.read_text().replace("seed = 7", f"seeds = {SEEDS}"))
    return path


def comparable(run: Path) -> dict[str, str]:
    """A run's result files without what may differ between an interrupted and an uninterrupted run (times, attempts)."""
    out = outputs(run)
    for rel, text in out.items():
        if rel.startswith("stages/"):
            record = {k: v for k, v in json.loads(text).items() if k != "attempts" and not k.endswith("_s")}
            out[rel] = json.dumps(record, sort_keys=True)
    return out


def stage_mtimes(run: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (run / "stages").glob("*.json")}


def test_sigkill_in_one_seed_then_rerun_finishes_only_the_rest(toy_config, tmp_path: Path):
    config = multiseed_config(toy_config, step_delay_s="0.02")
    root = tmp_path / "runs" / "toy"
    proc = subprocess.Popen([*AOPCORE, "run", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    marker = root / "seed-1" / "stages" / "arms__static__iter-02__prompts.json"  # seed 1 is training iteration 2 now
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (root / "seed-0" / "stages" / "report.json").exists()  # seed 0 had finished
    assert not (root / "seed-1" / "stages" / "arms__static__iter-02__train.json").exists()
    assert not (root / "seed-2").exists() and not (root / "aggregate").exists()
    before = {s: stage_mtimes(root / f"seed-{s}") for s in (0, 1)}

    resumed = run_cli("run", str(config))
    assert resumed.returncode == 0, resumed.stderr
    log = resumed.stderr
    assert "skip  shared-sft/policy" in log  # policy_0 is not trained again
    # seed 0 is untouched, seed 1 resumes at its interrupted stage, seed 2 runs from the start
    for s in (0, 1):
        for name, mtime in before[s].items():
            assert (root / f"seed-{s}" / "stages" / name).stat().st_mtime_ns == mtime, (s, name)
    seed1 = log[log.index("seed 1 (2 of 3)") : log.index("seed 2 (3 of 3)")]
    assert "skip  arms/static/iter-02/prompts" in seed1 and "start arms/static/iter-02/train" in seed1
    seed2 = log[log.index("seed 2 (3 of 3)") :]
    assert "start arms/static/iter-01/prompts" in seed2
    assert "start" not in log[log.index("seed 0 (1 of 3)") : log.index("seed 1 (2 of 3)")]

    # each seed is a complete ordinary run: the resumed seed-1 equals a lone single-seed run with seed = 1
    # (the toy SFT policy does not depend on the seed, so sharing it changes nothing here)
    lone = tmp_path / "lone.toml"
    lone.write_text(
        config.read_text().replace(f"seeds = {SEEDS}", "seed = 1").replace('name = "toy"', 'name = "seed-1"')
    )
    assert run_cli("run", str(lone), cwd=tmp_path).returncode == 0
    expected = comparable(tmp_path / "runs" / "seed-1")
    got = comparable(root / "seed-1")
    assert json.loads(got.pop("stages/sft__policy.json"))["reused_from"] == "../shared-sft/policy"
    expected.pop("stages/sft__policy.json")
    snapshot = json.loads(got.pop("config.json"))
    assert snapshot["experiment"]["seed"] == 1 and "seeds" not in snapshot["experiment"]
    expected.pop("config.json")
    for report in ("report.md", "report.html"):  # they show the run's name and wall times
        assert report in got
        got.pop(report), expected.pop(report)
    assert len(expected) > 30
    assert_same_outputs(got, expected)

    # seeds are independent: the same SFT policy, different RL results
    shared = (root / "shared-sft" / "policy" / "policy.json").read_text()
    assert all((root / f"seed-{s}" / "sft" / "policy" / "policy.json").read_text() == shared for s in (0, 1, 2))
    train = [(root / f"seed-{s}" / "arms" / "static" / "iter-01" / "train.json").read_text() for s in (0, 1, 2)]
    assert len(set(train)) == 3

    data = json.loads((root / "aggregate" / "aggregate.json").read_text())
    assert data["seeds_found"] == [0, 1, 2] and data["seeds_finished"] == [0, 1, 2]
    per_seed = {r["iteration"]: r["per_seed"] for r in data["heldout"]["static"]}
    for s in (0, 1, 2):
        evaluation = [
            json.loads(line)["reward"]
            for line in (root / f"seed-{s}" / "arms" / "static" / "iter-02" / "evaluation.jsonl").open()
        ]
        assert per_seed[2][str(s)] == pytest.approx(sum(evaluation) / len(evaluation), abs=1e-6)
    assert (root / "aggregate" / "aggregate.md").exists() and (root / "aggregate" / "aggregate.html").exists()


def test_seed_and_seeds_are_exclusive_and_checked(toy_config):
    ok = run_cli("validate", str(multiseed_config(toy_config)))
    assert ok.returncode == 0 and "seeds: 0, 1, 2" in ok.stdout
    config = toy_config()
    config.write_text(config.read_text().replace("seed = 7", "seed = 7\nseeds = [0, 1]"))
    result = run_cli("validate", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{config}:1: experiment: seed and seeds are exclusive" in result.stderr
    config.write_text(config.read_text().replace("seed = 7\n", "").replace("seeds = [0, 1]", "seeds = [3, 3]"))
    result = run_cli("validate", str(config))
    assert result.returncode == 2 and "seeds must be distinct (got [3, 3])" in result.stderr
    config.write_text(config.read_text().replace("seeds = [3, 3]", "seeds = []"))
    result = run_cli("validate", str(config))
    assert result.returncode == 2 and "experiment.seeds: List should have at least 1 item" in result.stderr


def test_growing_the_seed_list_runs_only_new_seeds_report_rebuilds_and_a_changed_config_is_refused(
    toy_config, tmp_path: Path
):
    config = multiseed_config(toy_config)
    config.write_text(config.read_text().replace(f"seeds = {SEEDS}", "seeds = [0]"))
    assert run_cli("run", str(config)).returncode == 0
    root = tmp_path / "runs" / "toy"
    first = stage_mtimes(root / "seed-0")
    config.write_text(config.read_text().replace("seeds = [0]", "seeds = [0, 5]"))
    grown = run_cli("run", str(config))
    assert grown.returncode == 0, grown.stderr
    assert stage_mtimes(root / "seed-0") == first
    before = json.loads((root / "aggregate" / "aggregate.json").read_text())
    assert before["seeds_found"] == [0, 5] and before["seeds"] == [0, 5]

    # `aopcore report ROOT` rebuilds every seed's report and the aggregate, with the same numbers (seeded bootstrap)
    for f in (root / "aggregate").iterdir():
        f.unlink()
    (root / "seed-5" / "report.md").unlink()
    report = run_cli("report", str(root))
    assert report.returncode == 0, report.stderr
    assert (root / "seed-5" / "report.md").exists() and str(root / "aggregate" / "aggregate.html") in report.stdout
    assert json.loads((root / "aggregate" / "aggregate.json").read_text()) == before

    changed = run_cli("run", str(config), "--set", "experiment.passes=3")  # each seed's run directory refuses it
    assert changed.returncode == 2 and "seed-0" in changed.stderr and "passes" in changed.stderr, changed.stderr
    assert stage_mtimes(root / "seed-0") == first
    unshared = run_cli("run", str(config), "--set", "experiment.share_sft=false")
    assert unshared.returncode == 2 and "started with share_sft = true" in unshared.stderr
    reordered = run_cli("run", str(config), "--set", "experiment.seeds=[5, 0]")
    assert reordered.returncode == 2 and "shared SFT policy was trained with seed 0" in reordered.stderr
    lone = tmp_path / "lone.toml"
    lone.write_text(config.read_text().replace("seeds = [0, 5]", "seed = 0"))
    single = run_cli("run", str(lone))
    assert single.returncode == 2 and "holds a multi-seed run" in single.stderr


def test_library_factory_without_shared_sft(tmp_path: Path):
    """Embedders: a factory seed -> Experiment; share_sft=False trains policy_0 per seed."""
    from aopcore import Experiment, Question, run_seeds

    from toy_components import LengthReward, StaticCurriculum, StaticOptions, ToyTrainer, ToyTrainerOptions

    built = []

    def make(seed: int) -> Experiment:
        built.append(seed)
        return Experiment(
            name="ignored",
            output_dir=tmp_path / "elsewhere",
            trainer=ToyTrainer(ToyTrainerOptions(initial_logits=[2.0, 1.0, float(seed)])),
            reward=LengthReward(),
            arms={"static": StaticCurriculum(StaticOptions())},
            heldout=[Question(f"h{i}", f"question {i}", c) for i, c in enumerate("abab")],
            test_prompts=[],
        )

    root = tmp_path / "lib"
    result = run_seeds(make, [3, 4], root=root, share_sft=False)
    assert sorted(result.results) == [3, 4] and built[0] == 3 and sorted(set(built)) == [3, 4]
    assert not (root / "shared-sft").exists() and not (tmp_path / "elsewhere").exists()
    for s in (3, 4):  # each seed built its own policy_0, from its own factory call
        assert json.loads((root / f"seed-{s}" / "sft" / "policy" / "policy.json").read_text())["*"][2] == float(s)
        assert "reused_from" not in json.loads((root / f"seed-{s}" / "stages" / "sft__policy.json").read_text())
    assert {"aggregate/aggregate.json", "aggregate/aggregate.md"} <= set(result.files)
    with pytest.raises(TypeError, match="give root="):
        run_seeds(make, [0])
