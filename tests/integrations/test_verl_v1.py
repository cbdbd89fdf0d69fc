"""The veRL V1 adapter (aopcore_integrations.verl_v1) against verl 0.9.1's own V1 trainer classes, in .venv-verl.

tests/integrations/verl/drive_v1.py composes veRL's full config with Hydra (the command in docs/integrations.md), builds the
sync trainer's replay buffer through veRL's custom_sampler loader and its dataloader through _init_dataloader, and
runs steps with prepare_step / ReplayBuffer.sample / _save_checkpoint / _load_checkpoint, on veRL's real
TransferQueue (one test) or an in-process store; the agent loop's generation and the GPU stages after sampling are
simulated (see its docstring).
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aopcore.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
VERL_PY = ROOT / ".venv-verl" / "bin" / "python"
DRIVE = ROOT / "tests" / "integrations" / "verl" / "drive_v1.py"
needs_verl = pytest.mark.skipif(
    not VERL_PY.exists(),
    reason=".venv-verl is absent: run `bash scripts/setup-verl.sh` (veRL 0.9.1 in its own virtualenv; CI runs it)",
)
OURS = {
    "data": {"custom_cls": {"path": "pkg://aopcore_integrations.verl", "name": "AopcoreDataset"}, "gen_batch_size": 1},
    "trainer": {
        "use_v1": True,
        "v1": {
            "trainer_mode": "sync",
            "sampler": {
                "custom_sampler": {"path": "pkg://aopcore_integrations.verl_v1", "name": "AopcoreReplayBuffer"}
            },
        },
    },
}


def _with(**changes: object) -> dict:
    cfg = json.loads(json.dumps(OURS))
    for key, value in changes.items():
        node = cfg
        *parents, last = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def test_every_configuration_without_hooks_is_one_line_naming_the_key():
    from aopcore_integrations.verl_v1 import trainer_problems

    assert trainer_problems(OURS) == []
    assert trainer_problems({"data": {}, "trainer": {}}) == []  # a veRL with only the legacy trainer
    assert trainer_problems(_with(trainer__use_v1=False, trainer__v1={})) == []  # legacy: on_batch_end fires
    cases = {
        "trainer.v1.sampler.custom_sampler": _with(
            trainer__v1__sampler={"custom_sampler": {"path": None, "name": None}}
        ),
        "trainer.use_v1": _with(trainer__use_v1=False),  # the sampler key, on a trainer that never loads it
        "data.custom_cls": _with(data__custom_cls={"path": None, "name": None}),
        "trainer.v1.trainer_mode": _with(trainer__v1__trainer_mode="colocate_async"),
        "data.gen_batch_size": _with(data__gen_batch_size=None),
        "algorithm.filter_groups.enable": _with(algorithm={"filter_groups": {"enable": True}}),
        "reward.reward_model.enable_resource_pool": _with(
            reward={"reward_model": {"enable": True, "enable_resource_pool": False}}
        ),
    }
    for key, cfg in cases.items():
        problems = trainer_problems(cfg)
        assert len(problems) == 1 and problems[0].startswith(key + ":") and "\n" not in problems[0], (key, problems)
        assert re.search(r"set [\w.]+=", problems[0]), problems[0]
    # the V1 line names both keys to set
    line = trainer_problems(cases["trainer.v1.sampler.custom_sampler"])[0]
    assert "trainer.v1.sampler.custom_sampler.path=pkg://aopcore_integrations.verl_v1" in line
    assert "trainer.v1.sampler.custom_sampler.name=AopcoreReplayBuffer" in line
    with pytest.raises(InputError):
        from aopcore_integrations.verl_v1 import check_trainer_config

        class Data(dict):
            def _get_root(self):
                return cases["trainer.use_v1"]

        check_trainer_config(Data())


def test_module_imports_without_verl():
    code = (
        "import sys, aopcore_integrations.verl_v1 as v; assert 'verl' not in sys.modules and 'torch' not in sys.modules; "
        "print(v.trainer_problems.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "trainer_problems"


def docs_command() -> list[str]:
    """The overrides of the V1 command in docs/integrations.md's veRL section (the block after 'V1 trainer')."""
    text = (ROOT / "docs" / "integrations.md").read_text()
    section = text[text.index("## veRL") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    tokens = []
    for line in block.splitlines():
        tokens += [t for t in line.split("#")[0].split() if "=" in t]
    return tokens


def _drive(tmp: Path, run: str, overrides: list[str], *extra: str, rc: int = 0) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    work = tmp / "work"
    sets = [
        *overrides,
        f"data.train_files={work}/train.parquet",
        f"data.val_files={work}/val.parquet",
        "data.train_batch_size=8",
        f"trainer.default_local_dir={tmp / run / 'ckpt'}",
        "+trainer.v1.sampler.sampler_kwargs.poll_interval=0.01",
    ]
    cmd = [str(VERL_PY), str(DRIVE), "--work", str(work), "--out", str(tmp / f"{run}.jsonl"), *extra]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    with open(tmp / f"{run}.log", "a", encoding="utf-8") as fh:
        fh.write(proc.stdout + proc.stderr)
    assert proc.returncode == rc, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp / f"{run}.jsonl"
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def _aop(tmp: Path, run: str) -> list[str]:
    """The docs' command with its two placeholder paths pointed at this test's files (nothing else changed)."""
    return [
        s.replace("/work/curriculum.toml", str(ROOT / "tests" / "integrations" / "verl" / "aop.toml")).replace(
            "/ckpt/aopcore", str(tmp / run / "state")
        )
        for s in docs_command()
    ] + [f"+data.aopcore.initial_evaluation={tmp / 'work' / 'initial_evaluation.jsonl'}"]


def _share(steps: list[dict], rnd: int, cats: set[str]) -> float:
    drawn = [c for s in steps if s["round"] == rnd for c in s["categories"]]
    return sum(c in cats for c in drawn) / len(drawn)


def test_docs_command_has_the_v1_keys():
    cmd = docs_command()
    assert "trainer.v1.sampler.custom_sampler.path=pkg://aopcore_integrations.verl_v1" in cmd
    assert "trainer.v1.sampler.custom_sampler.name=AopcoreReplayBuffer" in cmd
    assert not any(t.startswith("trainer.use_v1") for t in cmd)  # verl 0.9.1's default trainer


@needs_verl
@pytest.mark.slow
def test_docs_command_runs_aop_rounds_on_the_v1_trainer_and_resumes(tmp_path):
    steps = _drive(tmp_path, "a", _aop(tmp_path, "a"))
    per_round = collections.Counter(s["round"] for s in steps)
    assert sorted(per_round) == [1, 2, 3] and len(set(per_round.values())) == 1
    assert all(len(s["ids"]) == 8 for s in steps)
    weak = {"reversal", "counting"}  # the simulated policy fails these 90% of the time
    print({r: collections.Counter(c for s in steps if s["round"] == r for c in s["categories"]) for r in (1, 2, 3)})
    assert _share(steps, 2, weak) > _share(steps, 1, weak) + 0.2
    assert _share(steps, 3, weak) > _share(steps, 1, weak) + 0.2
    state = tmp_path / "a" / "state" / "arms" / "verl"
    batches = [json.loads(line) for line in (state / "iter-01" / "steps.jsonl").read_text().splitlines()]
    assert len(batches) == per_round[1] and all(len(g["rewards"]) == 4 for b in batches for g in b["groups"])
    evaluation = [json.loads(line) for line in (state / "iter-01" / "evaluation.jsonl").read_text().splitlines()]
    assert {e["question_id"] for e in evaluation} >= set(steps[0]["ids"])  # round 2 chose from round 1's rollouts
    # veRL's checkpoint of step k (data.pt written by _save_checkpoint), a crash after step k + 1, and a resume
    # through _load_checkpoint (resume_mode=auto): the prompts of the uninterrupted run
    k = per_round[1] + 1  # mid round 2, round 3 not chosen yet
    _drive(tmp_path, "b", _aop(tmp_path, "b"), "--save-at", str(k), "--crash-at", str(k + 1), rc=3)
    assert (tmp_path / "b" / "ckpt" / f"global_step_{k}" / "data.pt").exists()
    assert (tmp_path / "b" / "ckpt" / "latest_checkpointed_iteration.txt").read_text() == str(k)
    resumed = _drive(tmp_path, "b", _aop(tmp_path, "b"))
    assert [s["step"] for s in resumed] == [*range(1, k + 2), *range(k + 1, len(steps) + 1)]
    assert [s["ids"] for s in resumed[k + 1 :]] == [s["ids"] for s in steps[k:]]


ONLINE = [
    "+data.aopcore.heldout=testbed:heldout",
    "+data.aopcore.budget=16",
    "+data.aopcore.rounds=2",
    "+data.aopcore.steps_per_round=4",
]
BANDIT = "{pool:'testbed:pool',temperature:0.05}"


def _online(tmp: Path, run: str, curriculum: str, options: str) -> list[str]:
    keys = [t for t in docs_command() if not t.startswith(("+data.aopcore.", "reward.", "+reward."))]
    return [
        *keys,
        *ONLINE,
        f"+data.aopcore.curriculum={curriculum}",
        f"+data.aopcore.options={options}",
        f"+data.aopcore.state_dir={tmp / run / 'state'}",
    ]


@needs_verl
@pytest.mark.slow
def test_online_curricula_hear_every_step_and_keep_evicts_and_refills(tmp_path):
    steps = _drive(tmp_path, "e", _online(tmp_path, "e", "category-bandit", BANDIT))
    varied = {"conversion", "maximum", "uppercase"}  # pass rates 50-80%: rewards vary within a group
    first = sum(c in varied for c in steps[0]["categories"]) / 8
    later = sum(c in varied for s in steps[4:] for c in s["categories"]) / 32
    print([collections.Counter(s["categories"]) for s in steps])
    assert [s["round"] for s in steps] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert later > 0.8 and later > first

    # dynamic-filter: zero-variance groups dropped before the update, evicted and refilled through refill_fn
    flt = "{wrap:category-bandit,wrap_options:" + BANDIT + ",max_extra_fraction:0.5}"
    steps = _drive(tmp_path, "f", _online(tmp_path, "f", "dynamic-filter", flt))
    dropped = sum(s["metrics"].get("training/aopcore/dropped_groups", 0) for s in steps)
    refilled = sum(s["metrics"].get("training/aopcore/refilled_groups", 0) for s in steps)
    assert dropped > 0 and refilled == dropped and all(len(s["ids"]) == 8 for s in steps)
    state = tmp_path / "f" / "state" / "arms" / "verl"
    log = [
        json.loads(line) for r in (1,) for line in (state / f"iter-{r:02d}" / "steps.jsonl").read_text().splitlines()
    ]
    refill_draws = [b for b in log if not all(b["kept"])]
    assert sum(k is False for b in log for k in b["kept"]) == sum(
        s["metrics"].get("training/aopcore/dropped_groups", 0) for s in steps if s["round"] == 1
    )
    # the update never sees a dropped group: every (draw, position) trained was kept, every kept one was trained
    kept = {(b["draw"], k) for b in log for k, ok in enumerate(b["kept"]) if ok}
    trained = [tuple(t) for s in steps if s["round"] == 1 for t in s["trained"]]
    assert len(trained) == len(set(trained)) and set(trained) == kept
    for b in refill_draws:
        for g, k in zip(b["groups"], b["kept"]):
            assert k or len(set(g["rewards"])) == 1  # only zero-variance groups are dropped
    # booked as the legacy adapter books them: the round's stage record counts the dropped groups and refills
    record = json.loads((tmp_path / "f" / "state" / "stages" / "arms__verl__iter-01__train.json").read_text())
    round1 = [s for s in steps if s["round"] == 1]
    assert record["dropped_groups"] == sum(s["metrics"].get("training/aopcore/dropped_groups", 0) for s in round1)
    assert record["stream"]["refills"] == sum(s["refills"] for s in round1) > 0

    # resume across refills: data.pt carries the stream's draws, refill draws included
    _drive(tmp_path, "g", _online(tmp_path, "g", "dynamic-filter", flt), "--save-at", "2", "--crash-at", "3", rc=3)
    resumed = _drive(tmp_path, "g", _online(tmp_path, "g", "dynamic-filter", flt))
    assert [s["step"] for s in resumed] == [1, 2, 3, 3, 4, 5, 6, 7, 8]
    assert [s["ids"] for s in resumed[3:]] == [s["ids"] for s in steps[2:]]


@needs_verl
@pytest.mark.parametrize(
    "change,key",
    [
        (
            ["trainer.v1.sampler.custom_sampler.path=null", "trainer.v1.sampler.custom_sampler.name=null"],
            "trainer.v1.sampler.custom_sampler",
        ),
        (["trainer.use_v1=false"], "trainer.use_v1"),
        (["trainer.v1.trainer_mode=colocate_async"], "trainer.v1.trainer_mode"),
    ],
)
def test_veRL_refuses_at_start_what_the_adapter_cannot_serve(tmp_path, change, key):
    """Built as veRL builds them (sampler loader, then create_rl_dataset), before any step: one line naming the key."""
    keys = {t.split("=")[0] for t in change}
    overrides = [t for t in _aop(tmp_path, "r") if t.split("=")[0] not in keys] + change
    _drive(tmp_path, "r", overrides, "--build-only", rc=1)
    err = (tmp_path / "r.log").read_text()
    lines = [ln for ln in err.splitlines() if ln.startswith("aopcore.errors.InputError") or ln.startswith(key + ":")]
    assert lines and any(ln.split("InputError: ")[-1].startswith(key + ":") for ln in lines), err[-2000:]
    assert "built" not in err


@needs_verl
@pytest.mark.slow
def test_real_transfer_queue_gives_the_draws_of_the_in_process_store(tmp_path):
    """The docs' command once more with veRL's real TransferQueue (its controller and storage as Ray actors on a local
    Ray): the replay buffer reads the same tags, rewards and extra_info, so every step trains the same prompts."""
    real = _drive(tmp_path, "t", _aop(tmp_path, "t"), "--real-tq")
    store = _drive(tmp_path, "s", _aop(tmp_path, "s"))
    assert len(real) == len(store) > 0
    assert [s["ids"] for s in real] == [s["ids"] for s in store]
