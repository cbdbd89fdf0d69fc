"""A run directory never answers a different question: reruns with a changed setup are refused with what changed."""

import json
import logging
from pathlib import Path

import pytest

from aopcore import Budget, Experiment, InputError, Question, TrainStats
from aopcore.storage.fingerprint import describe

import toy_components as toy
from helpers import run_cli

HELDOUT = [Question(f"h{i}", f"held-out question {i}", cat) for i, cat in enumerate(["a", "b", "c"] * 2)]
TESTS = [Question(f"t{i}", f"test {i}") for i in range(6)]


class ForeignTrainer:
    """A trainer from another stack: its configuration is plain attributes, not a pydantic model."""

    def __init__(self, learning_rate: float = 1e-5, api_key: str = "sk-secret-value") -> None:
        self.learning_rate = learning_rate
        self.api_key = api_key  # never written anywhere

    def _toy(self) -> toy.ToyTrainer:
        return toy.ToyTrainer(toy.ToyTrainerOptions(learning_rate=self.learning_rate * 50_000))

    def initial_policy(self, out: Path, *, seed: int) -> None:
        self._toy().initial_policy(out, seed=seed)

    def generate(self, policy: Path, prompts, *, seed: int, sample: bool = False) -> list[str]:
        return self._toy().generate(policy, prompts, seed=seed, sample=sample)

    def train(self, policy: Path, prompts, reward, *, passes: int, out: Path, seed: int) -> TrainStats:
        return self._toy().train(policy, prompts, reward, passes=passes, out=out, seed=seed)


def make(tmp_path: Path, **kw) -> Experiment:
    args = dict(
        name="fp",
        output_dir=tmp_path,
        trainer=ForeignTrainer(),
        reward=toy.LengthReward(),
        arms={"static": toy.StaticCurriculum(toy.StaticOptions())},
        heldout=HELDOUT,
        test_prompts=TESTS,
        judge=None,
        budget=Budget(iterations=1, records_per_iteration=4, passes=1),
        seed=1,
    )
    args.update(kw)
    return Experiment(**args)


def refused(tmp_path: Path, **kw) -> str:
    with pytest.raises(InputError) as info:
        make(tmp_path, **kw).run()
    assert len(info.value.problems) == 1 and "\n" not in info.value.problems[0]  # one line
    return info.value.problems[0]


def test_changed_learning_rate_is_refused_with_what_changed(tmp_path: Path):
    make(tmp_path).run()
    before = (tmp_path / "fp" / "arms" / "static" / "iter-01" / "train.json").read_bytes()
    line = refused(tmp_path, trainer=ForeignTrainer(learning_rate=2e-5))
    assert "trainer.learning_rate: 1e-05 -> 2e-05" in line
    assert "allow_changes=True" in line and "--allow-changed-config" in line and "another run name" in line
    assert (tmp_path / "fp" / "arms" / "static" / "iter-01" / "train.json").read_bytes() == before


def test_changed_curriculum_options_are_refused(tmp_path: Path):
    make(tmp_path).run()
    line = refused(tmp_path, arms={"static": toy.StaticCurriculum(toy.StaticOptions(pool=["Only this?"]))})
    assert "arms.static.pool: " in line and '"Only this?"' in line


def test_fewer_test_prompts_are_refused(tmp_path: Path):
    make(tmp_path).run()
    line = refused(tmp_path, test_prompts=TESTS[:3])
    assert "data.test_prompts: 6 -> 3 questions (hash " in line


def test_same_count_different_questions_are_refused(tmp_path: Path):
    make(tmp_path).run()
    changed = [Question(q.id, q.text + " (reworded)", q.category) for q in HELDOUT]
    assert "data.heldout: 6, same count, questions (hash" in refused(tmp_path, heldout=changed)


def test_allow_changes_continues_and_records_the_override(tmp_path: Path):
    make(tmp_path).run()
    make(tmp_path, trainer=ForeignTrainer(learning_rate=2e-5), allow_changes=True).run()
    entries = [json.loads(x) for x in (tmp_path / "fp" / "fingerprint-changes.jsonl").read_text().splitlines()]
    assert (
        entries[-1]["changes"] == ["trainer.learning_rate: 1e-05 -> 2e-05"]
        and entries[-1]["allowed_by"] == "allow_changes"
    )
    ran = []
    make(tmp_path, trainer=ForeignTrainer(learning_rate=2e-5), after_stage=ran.append).run()  # now the stored setup
    assert ran == []


def test_changed_package_versions_warn_but_continue(tmp_path: Path):
    make(tmp_path).run()
    path = tmp_path / "fp" / "fingerprint.json"
    stored = json.loads(path.read_text())
    stored["versions"]["torch"] = "0.0.1"
    path.write_text(json.dumps(stored))
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("aopcore").addHandler(handler)
    try:
        make(tmp_path).run()
    finally:
        logging.getLogger("aopcore").removeHandler(handler)
    assert any("package versions changed" in m and "torch 0.0.1 ->" in m for m in seen)
    entry = json.loads((tmp_path / "fp" / "fingerprint-changes.jsonl").read_text().splitlines()[-1])
    assert entry["changes"] == [] and entry["versions"][0].startswith("torch 0.0.1 ->")


def test_credentials_are_never_written(tmp_path: Path):
    make(tmp_path).run()
    for name in ("fingerprint.json", "config.json"):
        assert "sk-secret-value" not in (tmp_path / "fp" / name).read_text()
    assert "api_key" not in json.dumps(describe(ForeignTrainer()))


def test_objects_may_describe_themselves(tmp_path: Path):
    class Versioned(toy.LengthReward):
        def __init__(self, version: str) -> None:
            self.version_tag = version

        def fingerprint(self):
            return {"reward-model": "mine", "revision": self.version_tag}

    make(tmp_path, reward=Versioned("r1")).run()
    assert "reward.revision: r1 -> r2" in refused(tmp_path, reward=Versioned("r2"))


def test_cli_rerun_with_changed_option_is_refused_then_allowed(toy_config, tmp_path: Path):
    config = toy_config(iterations="1")
    assert run_cli("run", str(config)).returncode == 0
    changed = run_cli("run", str(config), "--set", "trainer.learning_rate=0.9")
    assert changed.returncode == 2, changed.stderr
    errors = [line for line in changed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "trainer.learning_rate: 0.5 -> 0.9" in errors[0] and "Traceback" not in changed.stderr
    kept = run_cli("run", str(config), "--set", 'experiment.keep_checkpoints="last"')  # does not shape results
    assert kept.returncode == 0, kept.stderr
    allowed = run_cli("run", str(config), "--set", "trainer.learning_rate=0.9", "--allow-changed-config")
    assert allowed.returncode == 0, allowed.stderr
    assert "trainer.learning_rate: 0.5 -> 0.9" in (tmp_path / "runs" / "toy" / "fingerprint-changes.jsonl").read_text()


def test_a_change_the_config_snapshot_and_the_experiment_both_describe_is_listed_once(tmp_path: Path):
    from aopcore.storage.fingerprint import differences, experiment_fingerprint

    def fingerprint(records: int) -> dict:
        exp = make(tmp_path, budget=Budget(iterations=1, records_per_iteration=records, passes=1))
        snapshot = {"experiment": {"records_per_iteration": records, "iterations": 1}, "data": {"heldout": "h.jsonl"}}
        return experiment_fingerprint(exp, snapshot)

    old, new = fingerprint(16), fingerprint(8)
    assert old["config"]["experiment"]["records_per_iteration"] == 16  # both places hold it
    assert differences(old, new) == ["experiment.records_per_iteration: 16 -> 8"]
    # a snapshot-only key keeps its config. name
    new["config"]["data"]["heldout"] = "other.jsonl"
    assert differences(old, new) == [
        "config.data.heldout: h.jsonl -> other.jsonl",
        "experiment.records_per_iteration: 16 -> 8",
    ]


def test_trainstats_import_is_the_public_one():
    assert TrainStats(steps=1, episodes=1).tokens_generated == 0


def test_describing_never_builds_a_lazy_component():
    """The CLI's components are built on first use; a fingerprint (or a check) must not build them."""
    from aopcore.contracts import check_component
    from aopcore.engine.build import LazyComponent

    class Impl:
        kind, name = "reward", "expensive"

        def build(self, options):
            raise AssertionError("built")

    lazy = LazyComponent(Impl(), toy.MarginJudgeOptions())
    assert describe(lazy) == "aopcore.engine.build.LazyComponent" and not lazy.built
    assert check_component("reward", lazy) == [] and not lazy.built
