"""The Ray executor on a local Ray instance (this machine's cores): the same run directory as the local executor.

Runs go through the real CLI. The toy experiment has three arms, two of which are twins at iteration 1
(the same prompts from the same policy, as SOP and AOP in the paper), with keep_checkpoints = "last":
the case where parallel execution could differ from the local order. Byte-identical means every file
of the run directory, stage records included, minus the wall times and the host/worker fields.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import AOPCORE, TOY
from helpers.runs import assert_same_outputs

pytest.importorskip("ray")

# when and where a stage ran (and how often a crash cut it short): the only fields allowed to differ
PLACEMENT = ("wall_s", "host", "worker", "attempts", "lost_wall_s")

TWIN_PLUGIN = '''
from aopcore import Prompt, Provenance, hookimpl


class Twin:
    """The same prompts for every arm at iteration 1 (as SOP and AOP), the arm's own afterwards."""

    def __init__(self, options=None):
        pass

    def prompts(self, ctx):
        tag = "shared" if ctx.iteration == 1 else ctx.arm
        cats = ctx.categories
        return [Prompt(f"{tag}-{ctx.iteration}-{n}", f"{cats[n % len(cats)]} {tag} question {n}?", cats[n % len(cats)],
                       Provenance("twin", ctx.iteration)) for n in range(ctx.budget)]


class Short(Twin):
    """Breaks its budget at iteration 2 (a runtime failure in one arm while others run)."""

    def prompts(self, ctx):
        return super().prompts(ctx)[: ctx.budget - (ctx.iteration == 2)]


@hookimpl
def register_curricula(register):
    register("twin", Twin)
    register("short", Short)
'''


def write_config(folder: Path, name: str, *, delay: float = 0.0) -> Path:
    (folder / "twin_plugin.py").write_text(TWIN_PLUGIN)
    text = (TOY / "toy.toml").read_text()
    text = text.replace('name = "toy"', f'name = "{name}"').replace(
        'plugins = ["toy_components"]', 'plugins = ["toy_components", "twin_plugin"]'
    )
    text = text.replace('plugin_paths = ["."]', f'plugin_paths = ["{TOY}", "{folder}"]').replace(
        "step_delay_s = 0.0", f"step_delay_s = {delay}"
    )
    text = text.replace("passes = 2", 'passes = 2\nkeep_checkpoints = "last"')
    text += '\n[arms.a]\ncurriculum = "twin"\n\n[arms.b]\ncurriculum = "twin"\n'
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def outputs(run: Path, name: str) -> dict[str, str]:
    """Every file of a run directory, with the run's name and folder neutralised and placement fields and the ledger dropped."""
    folder = str(run.parent.parent)
    out = {}
    for path in sorted(run.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(run))
        try:
            text = path.read_text().replace(folder, "DIR").replace(name, "RUN")
        except UnicodeDecodeError:  # weights: compared byte for byte
            out[rel] = path.read_bytes()
            continue
        if rel.startswith("stages/"):
            record = json.loads(text)
            for key in PLACEMENT:
                record.pop(key, None)
            for f in [f for f in record.get("outputs", {}) if f.endswith("/train.json")]:
                record["outputs"].pop(
                    f
                )  # its hash covers wall times (PPO's time/step_s); the file is compared without them
            text = json.dumps(record, sort_keys=True)
        if rel == "report.md":
            text = text.split("## Compute ledger")[0]  # the ledger holds wall times and hosts
        if rel == "report.html":
            head, _, rest = text.partition("<h2>Compute ledger")
            text = head + rest[rest.find("<h2>") :]
        out[rel] = text
    return out


def run(config: Path, *extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*AOPCORE, "run", str(config), *extra], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


RAY = ("--set", 'experiment.executor="ray"')


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("reference")
    run(write_config(folder, "reference", delay=0.02))
    return outputs(folder / "runs" / "reference", "reference")


@pytest.mark.slow
def test_ray_executor_writes_the_local_executors_run_directory(tmp_path: Path, reference):
    result = run(write_config(tmp_path, "parallel", delay=0.02), *RAY)
    run_dir = tmp_path / "runs" / "parallel"
    assert_same_outputs(outputs(run_dir, "parallel"), reference)
    assert len(reference) > 60
    records = [json.loads(p.read_text()) for p in (run_dir / "stages").glob("*.json")]
    assert all(r["worker"].startswith("ray:") and r["host"] for r in records)
    # arms ran side by side: the driver had several stages in flight, on more than one worker process
    assert "; running: " in result.stderr
    assert len({r["worker"] for r in records}) >= 2
    # the twin resolved as in order: b's iteration 1 reuses a's training, evaluation and test answers
    b1 = {
        kind: json.loads((run_dir / "stages" / f"arms__b__iter-01__{kind}.json").read_text())
        for kind in ("train", "evaluation", "answers")
    }
    assert all(r.get("reused_from") == "arms/a/iter-01" for r in b1.values())
    assert not (run_dir / "arms" / "a" / "iter-01" / "policy").exists()  # keep_checkpoints = "last", after b reused it
    assert (run_dir / "arms" / "b" / "iter-03" / "policy" / "policy.json").exists()


def kill_midway(config: Path, run_dir: Path, marker: str, *extra: str) -> tuple[dict[str, int], int]:
    """Start a run, SIGKILL its driver once ``marker`` is done; returns the stage records that exist then, and the
    driver's process group (a Ray instance the driver started outlives it there)."""
    proc = subprocess.Popen(
        [*AOPCORE, "run", str(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while not (run_dir / "stages" / marker).exists():
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.time() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "stages").glob("*.json")}, proc.pid


def cleanup_group(pgid: int) -> None:
    """Ray processes the killed driver started (same process group) outlive it; stop them."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def check_resumed(run_dir: Path, before: dict[str, int], log: str, name: str, reference: dict[str, str]) -> None:
    all_stages = {p.name for p in (run_dir / "stages").glob("*.json")}
    assert 3 < len(before) < len(all_stages)  # killed mid-way
    for record, mtime in before.items():  # finished stages were neither redone nor rewritten
        assert (run_dir / "stages" / record).stat().st_mtime_ns == mtime, record
        stage_id = json.loads((run_dir / "stages" / record).read_text())["stage"]
        assert f"start {stage_id}\n" not in log and f"queue {stage_id} " not in log
    assert_same_outputs(outputs(run_dir, name), reference)
    assert not list(run_dir.rglob(".*.tmp"))


@pytest.mark.slow
def test_ray_run_killed_then_resumed_by_the_local_executor(tmp_path: Path, reference):
    config = write_config(tmp_path, "ray-killed", delay=0.02)
    run_dir = tmp_path / "runs" / "ray-killed"
    before, group = kill_midway(config, run_dir, "arms__a__iter-02__prompts.json", *RAY)
    try:
        resumed = run(config)
    finally:
        cleanup_group(group)
    assert "skip  sft/policy" in resumed.stderr
    check_resumed(run_dir, before, resumed.stderr, "ray-killed", reference)
    workers = {json.loads(p.read_text())["worker"] for p in (run_dir / "stages").glob("*.json")}
    assert "local" in workers and any(w.startswith("ray:") for w in workers)  # both executors wrote this run


@pytest.mark.slow
def test_local_run_killed_then_resumed_by_the_ray_executor(tmp_path: Path, reference):
    config = write_config(tmp_path, "local-killed", delay=0.02)
    run_dir = tmp_path / "runs" / "local-killed"
    before, _ = kill_midway(config, run_dir, "arms__a__iter-02__prompts.json")
    resumed = run(config, *RAY)
    check_resumed(run_dir, before, resumed.stderr, "local-killed", reference)
    workers = {json.loads(p.read_text())["worker"] for p in (run_dir / "stages").glob("*.json")}
    assert "local" in workers and any(w.startswith("ray:") for w in workers)


@pytest.mark.slow
def test_parallelism_benchmark_small():
    import sys

    from helpers import ROOT

    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "executor_parallelism.py"),
            "--arms",
            "2",
            "--iterations",
            "2",
            "--train-s",
            "0.4",
            "--prompt-s",
            "0.1",
            "--generate-s",
            "0.1",
            "--workers",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout[out.stdout.index("{") :])
    assert result["identical_results"] is True and result["stages"] == 2 + 2 * 2 * 4 + 2 + 2
    assert (
        0 < result["ratio_ideal"] < 1
        and result["ray_s"] > 0
        and result["ideal_critical_path_s"] < result["local_stage_sum_s"]
    )


@pytest.mark.slow
def test_a_failing_stage_stops_the_run_with_its_error_and_keeps_finished_work(tmp_path: Path):
    config = write_config(tmp_path, "failing")
    config.write_text(config.read_text().replace('[arms.b]\ncurriculum = "twin"', '[arms.b]\ncurriculum = "short"'))
    out = subprocess.run([*AOPCORE, "run", str(config), *RAY], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: arms.b: curriculum returned 11 prompts for iteration 2, budget is 12"]
    assert "Traceback" not in out.stderr.split("fail  arms/b/iter-02/prompts")[-1]
    stages = tmp_path / "runs" / "failing" / "stages"
    assert (stages / "arms__b__iter-01__answers.json").exists() and not (
        stages / "arms__b__iter-02__prompts.json"
    ).exists()
    assert not (stages / "report.json").exists()


QUICKSTART_LIKE = """
[experiment]
name = "{name}"
output_dir = "runs"
iterations = 2
records_per_iteration = 4
passes = 1
keep_checkpoints = "last"

[data]
categories = ["askbaking", "legaladvice", "explainlikeimfive"]
heldout_per_category = 1
test_size = 3

[trainer]
plugin = "ppo"
model = "{policy}"
device = "cpu"
batch_size = 4
mini_batch_size = 4
ppo_epochs = 1
learning_rate = 1e-3
eval_max_new_tokens = 4

[trainer.generation]
max_new_tokens = 4

[reward]
plugin = "offline-relevance"

[feedback]
plugin = "openai"
model = "fake-1"
api_key_env = "AOPCORE_TEST_KEY"
base_url = "{url}"
cache_path = "{name}-cache.sqlite"

[embedder]
plugin = "sentence-transformers"

[judge]
plugin = "reward-margin"
margin = 0.02

[arms.vanilla]
prompt_style = "compact"
questions_per_call = 3
keywords_per_category = 1
max_rounds = 4
n_clusters = 2

[arms.sop]
samples_per_category = 1
draws = 3
questions_per_call = 6
targeting = "per-category"
prompt_style = "compact"
weak_categories = 2
parallel_calls = 3
max_draws_factor = 4

[arms.aop]
samples_per_category = 1
draws = 3
questions_per_call = 6
targeting = "per-category"
prompt_style = "compact"
weak_categories = 2
parallel_calls = 3
max_draws_factor = 4

[evaluation]
pairs = [["aop", "sop"], ["aop", "vanilla"]]
"""


@pytest.mark.slow
def test_quickstart_like_run_is_identical_under_both_executors(tmp_path: Path):
    """The quickstart's arms, curricula, PPO, reward, embedder and judge, with a tiny policy and an OpenAI-compatible
    feedback server on 127.0.0.1 (the workers call it over HTTP like any provider)."""
    pytest.importorskip("torch")
    from helpers.fake_providers import FakeProviderServer
    from helpers.tiny_models import save_tiny_gpt2

    policy = save_tiny_gpt2(tmp_path / "gpt2", init_range=0.6)
    env = {**os.environ, "AOPCORE_TEST_KEY": "test-key"}
    runs = {}
    with FakeProviderServer() as server:
        for name, extra in (("local-run", ()), ("ray-run", RAY)):
            config = tmp_path / f"{name}.toml"
            config.write_text(QUICKSTART_LIKE.format(name=name, policy=policy, url=server.base_url("openai")))
            done = subprocess.run(
                [*AOPCORE, "run", str(config), *extra], capture_output=True, text=True, timeout=600, env=env
            )
            assert done.returncode == 0, done.stderr[-3000:]
            runs[name] = outputs(tmp_path / "runs" / name, name)
    for rel, _text in runs["local-run"].items():
        if rel.endswith("train.json") and not rel.startswith("stages/"):  # PPO metrics hold each step's wall time
            runs["local-run"][rel], runs["ray-run"][rel] = (
                json.dumps([{k: v for k, v in m.items() if k != "time/step_s"} for m in json.loads(r[rel])["metrics"]])
                for r in (runs["local-run"], runs["ray-run"])
            )
    # prompts, policies (bit for bit), evaluations, verdicts, tables, report
    assert_same_outputs(runs["ray-run"], runs["local-run"])
    keys = set(runs["local-run"])
    assert {
        "arms/aop/iter-02/prompts.jsonl",
        "judge/aop-vs-vanilla/iter-02.jsonl",
        "tables/winrates.json",
        "arms/aop/iter-02/policy/model.safetensors",
    } <= keys
    aop_train = json.loads(runs["ray-run"]["stages/arms__aop__iter-01__train.json"])
    assert aop_train["reused_from"] == "arms/sop/iter-01"  # AOP's iteration 1 is SOP's, as in order
