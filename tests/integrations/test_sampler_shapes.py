"""aopcore's curricula behind the sampler/gate shape (prime-rl) and the data-source shape (slime).

The adapters are the two files under ``examples/integrations/``, loaded as a user would copy them. prime-rl and
slime are not installed: the stand-ins below follow their published interfaces and call orders
(prime-rl 559b447, ``src/prime_rl/orchestrator/curriculum/{base,samplers/base,gates/base}.py``,
``train_source.py``; slime 624b824, ``slime/rollout/data_source.py``, ``slime/rollout/sglang_rollout.py``
``generate_rollout_async``, ``slime/rollout/filter_hub/base_types.py``, ``train.py``; verifiers a60a606
``verifiers/v1/{episode,trace}.py`` for the episode fields). Rewards are the testbed verifier's, scoring a
simulated policy's answers (right with a per-category probability, fixed per prompt and completion).
"""

from __future__ import annotations

import abc
import collections
import hashlib
import importlib.util
import json
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aopcore import CurriculumSession
from aopcore.errors import InputError
from aopcore.records import EvalRecord, Question, write_jsonl
from aopcore.steps import read_batches
from aopcore_testbed.skills import skill_of
from aopcore_testbed.verifier import VerifierReward

ROOT = Path(__file__).resolve().parents[2]
# training pass rates of the simulated policy; the held-out evaluation says 0.5 everywhere, so only rollouts tell
RATES = {"uppercase": 1.0, "maximum": 0.0}
GROUP = 4
VERIFIER = VerifierReward()


def _u(*parts: object) -> float:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big") / 2**32


def policy_rewards(prompt_id: str, text: str, category: str, n: int = GROUP) -> list[float]:
    """The verifier's rewards for n sampled answers: right with the category's pass rate (fixed per prompt, k)."""
    right = skill_of(text).solve(text)
    rate = RATES.get(category, 0.5)
    answers = [right if _u(prompt_id, k) < rate else "I do not know" for k in range(n)]
    return VERIFIER.score([text] * n, answers)


def heldout_generate(texts: list[str]) -> list[str]:
    """The start policy on the held-out questions: half right in every category."""
    return [skill_of(t).solve(t) if _u("heldout", t) < 0.5 else "no idea" for t in texts]


def session(state_dir: Path, curriculum: str = "learnability", **options: Any) -> CurriculumSession:
    opts = {"pool": "testbed:pool", **options} if curriculum == "learnability" else options
    return CurriculumSession(
        curriculum, options=opts, heldout="testbed:heldout", state_dir=state_dir, budget=16, reward="verifier", rounds=6
    )


def load_example(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"aopcore_example_{name}", ROOT / "examples/integrations" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------- prime-rl stand-in
class TaskSampler(Iterator, abc.ABC):
    """prime_rl.orchestrator.curriculum.samplers.base.TaskSampler as published."""

    @abc.abstractmethod
    def __next__(self) -> Any: ...

    def observe(self, group: list[Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {}


class AdmissionGate:
    """prime_rl.orchestrator.curriculum.gates.base.AdmissionGate as published."""

    def admit(self, group: list[Any]) -> bool:
        return True

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {}


class Curriculum:
    """prime_rl.orchestrator.curriculum.base.Curriculum: on_result, state_dict, load_state_dict as published."""

    def __init__(self, sampler: Any, gates: dict[str, Any]) -> None:
        self.sampler, self.gates = sampler, gates

    def on_result(self, group: list[Any]) -> bool:
        keys = {episode.task.key for episode in group}
        assert len(keys) == 1 and None not in keys
        self.sampler.observe(group)
        decisions = [gate.admit(group) for gate in self.gates.values()]
        assert all(isinstance(d, bool) for d in decisions)
        return all(decisions)

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "gates": {n: g.state_dict() for n, g in self.gates.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert set(state) == {"sampler", "gates"} and set(state["gates"]) == set(self.gates)
        self.sampler.load_state_dict(state["sampler"])
        for name, gate in self.gates.items():
            gate.load_state_dict(state["gates"][name])


@dataclass(frozen=True)
class Task:  # vf.Task: the loop reads .key; the env reads the data
    key: str
    text: str


@dataclass
class Agent:
    trainable: bool = True


@dataclass
class Trace:  # vf.Trace: reward (sum of weighted rewards), has_error, agent
    task: Task
    reward: float
    agent: Agent = field(default_factory=Agent)
    has_error: bool = False


@dataclass
class Episode:  # vf.Episode: task (a TraceTask with .key), traces, num_output_tokens
    task: Task
    traces: list[Trace]
    num_output_tokens: int = 7


@pytest.fixture
def prime_rl(monkeypatch):
    module = types.ModuleType("prime_rl.orchestrator.curriculum")
    module.TaskSampler, module.AdmissionGate = TaskSampler, AdmissionGate
    for name in ("prime_rl", "prime_rl.orchestrator"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "prime_rl.orchestrator.curriculum", module)
    return load_example("prime_rl_sampler")


class PrimeLoop:
    """The orchestrator's use of a Curriculum: a task per fresh group, up to ``inflight`` groups at once, finished
    out of order; each finalized group goes to on_result; a step trains ``batch`` admitted groups; a checkpoint
    after every step keeps the curriculum's state_dict."""

    def __init__(self, curriculum: Curriculum, *, inflight: int, batch: int, seed: int, max_wait: int) -> None:
        self.curriculum, self.inflight, self.batch, self.max_wait = curriculum, inflight, batch, max_wait
        self.rng = __import__("random").Random(seed)
        self.drawn: list[str] = []
        self.finished: list[tuple[str, tuple[float, ...]]] = []
        self.trained: list[str] = []
        self.rejected: list[tuple[str, tuple[float, ...]]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.tasks: dict[str, Task] = {}

    def run(self, steps: int, *, stop_after_groups: int | None = None) -> None:
        flight: list[tuple[int, Task]] = []
        admitted = 0
        for _ in range(steps):
            while admitted < self.batch:
                while len(flight) < self.inflight:
                    task = next(self.curriculum.sampler)
                    self.drawn.append(task.key)
                    flight.append((len(self.drawn), task))
                oldest = flight[0][0] <= len(self.drawn) - self.max_wait
                _, task = flight.pop(0 if oldest else self.rng.randrange(len(flight)))
                text, cat = self.tasks[task.key].text, self.categories[task.key]
                rewards = policy_rewards(task.key, text, cat)
                group = [Episode(task, [Trace(task, r)]) for r in rewards]
                self.finished.append((task.key, tuple(rewards)))
                if self.curriculum.on_result(group):
                    admitted += 1
                    self.trained.append(task.key)
                else:
                    self.rejected.append((task.key, tuple(rewards)))
                if stop_after_groups is not None and len(self.finished) >= stop_after_groups:
                    return  # killed mid-step
            admitted -= self.batch
            self.checkpoints.append(json.loads(json.dumps(self.curriculum.state_dict())))  # as torch.save keeps it

    def to_task(self, prompt: Any) -> Task:
        task = Task(prompt.id, prompt.text)
        self.tasks[task.key] = task
        self.categories[task.key] = prompt.category
        return task

    categories: dict[str, str] = {}


def prime_run(
    prime_rl,
    state_dir: Path,
    *,
    curriculum: str = "learnability",
    lag: int = 8,
    per_round: int = 64,
    max_wait: int = 8,
    **options: Any,
) -> tuple[PrimeLoop, Any]:
    s = session(state_dir, curriculum, **options)
    holder: dict[str, PrimeLoop] = {}
    sampler = prime_rl.AopcoreTaskSampler(
        s, lambda p: holder["loop"].to_task(p), draws_per_round=per_round, lag=lag, generate=heldout_generate
    )
    loop = PrimeLoop(
        Curriculum(sampler, {"aopcore": prime_rl.AopcoreGate(sampler)}), inflight=6, batch=8, seed=1, max_wait=max_wait
    )
    loop.categories = {}
    holder["loop"] = loop
    return loop, sampler


def heard(s: CurriculumSession, feed: Any) -> list[tuple[str, tuple[float, ...]]]:
    """Every group the curriculum was told of: ended rounds' steps.jsonl, and the open round's stream."""
    out = []
    for r in range(1, s.round + 1):
        path = s.layout.steps(s.name, r)
        batches = read_batches(path) if path.exists() else feed.stream.batches()
        out += [(g.prompt_id, g.rewards) for b in batches for g in b.groups]
    return out


def test_prime_rl_sampler_moves_draws_to_what_the_rollouts_say_is_learnable(prime_rl, tmp_path):
    loop, sampler = prime_run(prime_rl, tmp_path / "s")
    loop.run(24)  # 192 groups trained over three 64-draw rounds
    cats = [loop.categories[k] for k in loop.drawn]
    pool = [q.category for q in s_pool()]
    share = {c: pool.count(c) / len(pool) for c in set(pool)}
    rigged = share["uppercase"] + share["maximum"]
    late = [c for c in cats[64:]]  # round 2 on: chosen with the rollouts' pass rates
    late_share = sum(c in RATES for c in late) / len(late)
    first = sum(c in RATES for c in cats[:16]) / 16
    assert late_share < rigged / 2 < first, (first, late_share, rigged)
    m = sampler.metrics()
    # only the groups still in flight when a round ended were not heard (at most inflight - 1 per round's end)
    assert m["round"] == 4 and 0 < m["voided_groups"] <= 5 * 3


def s_pool() -> list[Question]:
    from aopcore_testbed.sets import load

    return load("pool")


def load_heldout() -> list[Question]:
    from aopcore_testbed.sets import load

    return load("heldout")


def test_prime_rl_every_reward_reaches_the_curriculum_once(prime_rl, tmp_path):
    loop, sampler = prime_run(prime_rl, tmp_path / "s")
    loop.run(12)
    s = sampler.feed.session
    said, done = collections.Counter(heard(s, sampler.feed)), collections.Counter(loop.finished)
    assert not said - done  # nothing heard that did not finish, nothing heard twice
    # every finished group was heard, except those still in flight when round 1 ended (late: admitted, not heard)
    assert sum((done - said).values()) == sampler.metrics()["late_groups"] <= 5
    assert s.round == 2 and s.layout.steps(s.name, 1).exists()


def test_prime_rl_gate_rejections_are_booked_and_not_trained(prime_rl, tmp_path):
    loop, sampler = prime_run(
        prime_rl,
        tmp_path / "s",
        curriculum="dynamic-filter",
        wrap="learnability",
        wrap_options={"pool": "testbed:pool"},
        max_extra_fraction=0.3,
    )
    loop.run(10)  # 80 admitted groups
    assert loop.rejected, "the filter rejected nothing"
    assert all(len(set(r)) == 1 for _, r in loop.rejected)  # zero-variance groups only
    assert len(loop.trained) == 80 and len(loop.finished) == 80 + len(loop.rejected)
    s = sampler.feed.session
    record = next(rec for rec in s.ledger() if rec["stage"] == "arms/session/iter-01/train")
    kept = [k for b in read_batches(s.layout.steps(s.name, 1)) for k in b.kept]
    assert kept.count(False) == record["dropped_groups"] > 0  # booked in round 1's record
    assert len(loop.rejected) == kept.count(False) + sampler.feed.stream.dropped_groups


def test_prime_rl_resumed_from_a_checkpoint_draws_what_an_uninterrupted_run_draws(prime_rl, tmp_path):
    whole, _ = prime_run(prime_rl, tmp_path / "whole")
    whole.run(30)
    first, _ = prime_run(prime_rl, tmp_path / "crashed")
    first.run(11, stop_after_groups=93)  # killed in step 12, after the round-1/2 boundary
    state = first.checkpoints[9]  # the checkpoint after step 10 (groups of step 11 are lost)
    again, sampler = prime_run(prime_rl, tmp_path / "crashed")  # a new orchestrator on the same state_dir
    again.curriculum.load_state_dict(state)
    again.run(10)
    p = state["sampler"]["position"]
    assert first.drawn[:p] == whole.drawn[:p]
    assert 64 < p and len(again.drawn) > 64
    assert again.drawn == whole.drawn[p : p + len(again.drawn)]


def test_prime_rl_groups_lost_in_flight_are_voided_and_late_ones_admitted(prime_rl, tmp_path):
    loop, sampler = prime_run(prime_rl, tmp_path / "s", lag=3, max_wait=10**9)  # a straggler outlives the lag
    loop.run(8)
    m = sampler.metrics()
    assert m["voided_groups"] > 0 and m["late_groups"] > 0
    assert m["late_groups"] <= m["voided_groups"]
    assert len(loop.trained) == 64  # a late group is admitted: the loop decides


def test_prime_rl_lag_must_fit_in_a_round(prime_rl, tmp_path):
    with pytest.raises(InputError, match="draws_per_round: 8 must be more than lag=8"):
        prime_rl.AopcoreTaskSampler(session(tmp_path / "s"), lambda p: p, draws_per_round=8, lag=8)


# ---------------------------------------------------------------------------------------------- slime stand-in
@dataclass
class Sample:  # slime.utils.types.Sample: the fields a data source and a filter use
    group_index: int | None = None
    index: int | None = None
    prompt: str = ""
    response: str = ""
    response_length: int = 0
    label: str | None = None
    reward: float | None = None
    metadata: dict = field(default_factory=dict)

    def get_reward_value(self, args: Any) -> float:
        return self.reward if not args.reward_key else self.reward[args.reward_key]


class DataSource(abc.ABC):  # slime.rollout.data_source.DataSource as published
    @abc.abstractmethod
    def get_samples(self, num_samples: int) -> list[list[Sample]]: ...

    @abc.abstractmethod
    def add_samples(self, samples: list[list[Sample]]) -> None: ...

    @abc.abstractmethod
    def save(self, rollout_id: int) -> None: ...

    @abc.abstractmethod
    def load(self, rollout_id: int | None = None) -> None: ...

    @abc.abstractmethod
    def __len__(self) -> int: ...


@pytest.fixture
def slime(monkeypatch):
    for name in ("slime", "slime.rollout", "slime.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    ds, ty = types.ModuleType("slime.rollout.data_source"), types.ModuleType("slime.utils.types")
    ds.DataSource, ty.Sample = DataSource, Sample
    monkeypatch.setitem(sys.modules, "slime.rollout.data_source", ds)
    monkeypatch.setitem(sys.modules, "slime.utils.types", ty)
    return load_example("slime_data_source")


CONFIG = """
[experiment]
name = "slime"
seed = 0
iterations = 8
records_per_iteration = 16

[data]
heldout = "testbed:heldout"

[reward]
plugin = "verifier"

[arms.slime]
curriculum = "{curriculum}"
{options}
"""


def slime_args(tmp_path: Path, *, curriculum: str, options: str, run: str, load: bool = False, **kw: Any) -> Any:
    cfg = tmp_path / f"{curriculum}.toml"
    cfg.write_text(CONFIG.format(curriculum=curriculum, options=options))
    start = tmp_path / "start-eval.jsonl"  # the start policy's held-out evaluation
    heldout = load_heldout()
    answers = heldout_generate([q.text for q in heldout])
    rewards = VERIFIER.score([q.text for q in heldout], answers)
    write_jsonl(start, [EvalRecord(q.id, q.text, q.category, a, r) for q, a, r in zip(heldout, answers, rewards)])
    base = dict(
        aopcore_config=str(cfg),
        aopcore_state_dir=str(tmp_path / run / "aopcore"),
        aopcore_draws_per_round=40,
        rollout_batch_size=8,
        over_sampling_batch_size=4,
        n_samples_per_prompt=GROUP,
        reward_key=None,
        apply_chat_template=False,
        save=str(tmp_path / run / "ckpt"),
        load=str(tmp_path / run / "ckpt") if load else None,
        num_rollout=12,
        save_interval=2,
        partial_rollout=False,
        filter=True,
        aopcore_initial_evaluation=str(start),
    )
    return types.SimpleNamespace(**{**base, **kw})


def slime_generate_rollout(args: Any, rollout_id: int, source: Any, module: Any, log: dict[str, list]) -> list:
    """slime's generate_rollout_async: sample in chunks until rollout_batch_size groups pass the filter; groups
    finish out of order; the rest is aborted; then the all-samples hook with every finished group."""
    rng = __import__("random").Random(rollout_id)
    target, data, all_data, pending, remaining = args.rollout_batch_size, [], [], [], 0
    while len(data) < target:
        while remaining < target:
            groups = source.get_samples(args.over_sampling_batch_size)
            log["drawn"] += [g[0].metadata["aopcore_id"] for g in groups]
            pending += groups
            remaining += len(groups)
        group = pending.pop(rng.randrange(len(pending)))  # asyncio.wait(FIRST_COMPLETED)
        text, cat = group[0].prompt, group[0].metadata["aopcore_category"]
        for sample, r in zip(group, policy_rewards(group[0].metadata["aopcore_id"], text, cat)):
            sample.reward, sample.response_length = r, 5
        all_data.append(group)
        keep = module.keep_group(args, group) if args.filter else True  # call_dynamic_filter: a bool is keep
        if not keep:
            log["rejected"].append(group)
            remaining -= 1
            continue
        data.append(group)
    # abort(): without --partial-rollout the unfinished groups are dropped
    log["finished"] += all_data
    module.report_rollout(args, sorted(all_data, key=lambda g: g[0].index), source.get_samples)
    return sorted(data, key=lambda g: g[0].index)


def slime_train(args: Any, module: Any, *, until: int | None = None) -> dict[str, list]:
    """slime's train.py: the data source by path, load(start_rollout_id - 1), a rollout each step, save every
    save_interval rollouts."""
    source = module.AopcoreDataSource(args)  # RolloutManager: load_function(args.data_source_path)(args)
    start = 0
    if args.load:
        saved = sorted(int(p.stem.rsplit("_", 1)[1]) for p in Path(args.load, "rollout").glob("aopcore_state_*.json"))
        start = saved[-1] + 1
    source.load(start - 1)
    log: dict[str, list] = {"drawn": [], "rejected": [], "finished": [], "trained": [], "source": [source]}
    for rollout_id in range(start, args.num_rollout):
        log["trained"] += slime_generate_rollout(args, rollout_id, source, module, log)
        if (rollout_id + 1) % args.save_interval == 0:
            source.save(rollout_id)
        if until is not None and rollout_id == until:
            break  # killed
    return log


LEARN = 'pool = "testbed:pool"'


def test_slime_data_source_moves_draws_and_hears_every_reward_once(slime, tmp_path):
    args = slime_args(tmp_path, curriculum="learnability", options=LEARN, run="a", filter=False)
    log = slime_train(args, slime)
    source = log["source"][0]
    cats = [source.feed.session.layout and _category(source, pid) for pid in log["drawn"]]
    pool = [q.category for q in s_pool()]
    rigged = (pool.count("uppercase") + pool.count("maximum")) / len(pool)
    late = cats[40:]  # round 2 on
    assert sum(c in RATES for c in late) / len(late) < rigged / 2
    finished = [(g[0].metadata["aopcore_id"], tuple(s.reward for s in g)) for g in log["finished"]]
    # a rollout ends with every group finished or aborted, so every finished group is heard, once
    assert collections.Counter(heard(source.feed.session, source.feed)) == collections.Counter(finished)
    assert source.feed.late == 0
    assert len(log["trained"]) == 12 * args.rollout_batch_size


def _category(source: Any, prompt_id: str) -> str:
    return {q.id: q.category for q in s_pool()}[prompt_id]


def test_slime_filter_rejections_are_booked_and_not_trained(slime, tmp_path):
    opts = 'wrap = "learnability"\nwrap_options = { pool = "testbed:pool" }\nmax_extra_fraction = 0.3'
    args = slime_args(tmp_path, curriculum="dynamic-filter", options=opts, run="f")
    log = slime_train(args, slime)
    assert log["rejected"] and all(len({s.reward for s in g}) == 1 for g in log["rejected"])
    trained = {id(g) for g in log["trained"]}
    assert not any(id(g) in trained for g in log["rejected"])
    s = log["source"][0].feed.session
    dropped = sum(
        k is False for r in range(1, s.round) for b in read_batches(s.layout.steps(s.name, r)) for k in b.kept
    )
    dropped += log["source"][0].feed.stream.dropped_groups
    assert dropped == len(log["rejected"])


def test_slime_resumed_from_a_checkpoint_draws_what_an_uninterrupted_run_draws(slime, tmp_path):
    whole = slime_train(slime_args(tmp_path, curriculum="learnability", options=LEARN, run="w"), slime)
    slime_train(slime_args(tmp_path, curriculum="learnability", options=LEARN, run="c"), slime, until=6)  # saved at 5
    saved = json.loads((tmp_path / "c/ckpt/rollout/aopcore_state_5.json").read_text())
    assert saved["position"] % 40 != 0  # mid-round: the round's stream replays its log
    again = slime_train(slime_args(tmp_path, curriculum="learnability", options=LEARN, run="c", load=True), slime)
    assert len(again["drawn"]) > 20
    assert again["drawn"] == whole["drawn"][-len(again["drawn"]) :]


def test_slime_refuses_partial_rollout(slime, tmp_path):
    source = slime.AopcoreDataSource(slime_args(tmp_path, curriculum="learnability", options=LEARN, run="p"))
    with pytest.raises(RuntimeError, match="without --partial-rollout"):
        source.add_samples([[Sample()] * GROUP])
