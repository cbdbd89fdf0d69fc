"""Executors without a cluster: what stages ask for, the critical path, the run-directory lock, clear refusals."""

import fcntl
import threading
import time
from pathlib import Path

import pytest

from aopcore import Budget, Experiment, InputError, Question
from aopcore.engine.build import resolve
from aopcore.executors import critical_path, executor_for, expected_wall_time
from aopcore.executors.lock import held_by_stage, lock_path, wait_for_stages
from aopcore.executors.ray_executor import RayExecutor
from aopcore.executors.resources import component_resources, ray_options, stage_resources

import toy_components as toy


def library_experiment(tmp_path: Path) -> Experiment:
    heldout = [Question("h0", "how?", "a"), Question("h1", "why?", "b")]
    return Experiment(
        name="lib",
        output_dir=tmp_path,
        trainer=toy.ToyTrainer(toy.ToyTrainerOptions()),
        reward=toy.LengthReward(),
        arms={"s": toy.StaticCurriculum(toy.StaticOptions()), "w": toy.WeakestCurriculum()},
        heldout=heldout,
        test_prompts=heldout,
        judge=toy.LengthJudge(toy.MarginJudgeOptions()),
        budget=Budget(iterations=2, records_per_iteration=4, passes=1),
    )


def test_live_objects_and_ray_give_one_clear_line(tmp_path: Path):
    for executor in (RayExecutor(), "ray"):
        with pytest.raises(InputError) as err:
            library_experiment(tmp_path).run(executor)
        assert len(err.value.problems) == 1 and "local executor" in err.value.problems[0]
        assert not (tmp_path / "lib").exists()  # refused before the run directory was touched
    with pytest.raises(InputError, match="expected 'local' or 'ray'"):
        library_experiment(tmp_path).run("dask")
    assert library_experiment(tmp_path).run("local").run_dir.exists()  # the default, by name


def test_config_chooses_the_executor_and_it_does_not_change_the_run(toy_config):
    local = resolve(toy_config())
    assert executor_for(local) is None  # the default needs no Ray
    ray_plan = resolve(toy_config(), ['experiment.executor="ray"', 'experiment.ray_address="auto"'])
    executor = executor_for(ray_plan)
    assert isinstance(executor, RayExecutor) and executor.address == "auto"
    assert local.snapshot() == ray_plan.snapshot()  # either executor resumes the other's run directory
    experiment = ray_plan.build()
    assert experiment.source == (ray_plan.file, ('experiment.executor="ray"', 'experiment.ray_address="auto"'))


def test_bad_executor_value_is_one_line(toy_config):
    from helpers import run_cli

    out = run_cli("validate", str(toy_config()), "--set", 'experiment.executor="slurm"')
    assert out.returncode == 2 and "experiment.executor" in out.stderr and "Traceback" not in out.stderr


class Declared:
    resources = {"num_gpus": 2, "accelerator_type:A100": 1}

    def __init__(self, options=None):
        self.options = options


class PerKind:
    @staticmethod
    def resources(options, kind):
        return {"num_gpus": options.gpus if kind == "train" else 1}

    def __init__(self, options):
        self.options = options


class Opts:
    def __init__(self, device="auto", gpus=4):
        self.device, self.gpus = device, gpus


def test_components_declare_resources_and_stages_take_the_largest(tmp_path: Path):
    assert component_resources(Declared(), "train") == {"num_gpus": 2, "accelerator_type:A100": 1}
    assert component_resources(PerKind(Opts()), "train") == {"num_gpus": 4}
    assert component_resources(PerKind(Opts()), "answers") == {"num_gpus": 1}
    assert component_resources(Declared.__new__(toy.LengthReward), "train") == {}  # no declaration, no device: nothing
    assert component_resources(type("Dev", (), {"options": Opts("cuda:0")})(), "evaluate") == {"num_gpus": 1}
    assert component_resources(type("Cpu", (), {"options": Opts("cpu")})(), "evaluate") == {}
    experiment = library_experiment(tmp_path)
    experiment.trainer = PerKind(Opts(gpus=2))
    experiment.reward = Declared()
    by_id = {s.id: stage_resources(experiment, s) for s in experiment.stages()}
    assert by_id["arms/s/iter-01/train"] == {
        "num_gpus": 2,
        "accelerator_type:A100": 1,
        "num_cpus": 1,
    }  # max of trainer and reward
    assert by_id["arms/s/iter-01/answers"] == {"num_gpus": 1, "num_cpus": 1}
    assert by_id["arms/s/iter-01/prompts"] == {"num_cpus": 1}  # curriculum without feedback: a CPU
    assert by_id["judge/s-vs-w/iter-01"] == {"num_cpus": 1}  # the toy judge declares nothing and has no device
    assert ray_options({"num_cpus": 1, "num_gpus": 2, "memory": 1e9, "A100": 1}) == {
        "num_cpus": 1,
        "num_gpus": 2,
        "memory": 1_000_000_000,
        "resources": {"A100": 1},
    }


def test_hf_components_ask_for_gpus_from_their_options():
    pytest.importorskip("torch")
    from aopcore_hf.options import PPOOptions
    from aopcore_hf.ppo import PPOPolicyTrainer

    gpu = PPOOptions(device="cuda", batch_size=8, mini_batch_size=4, num_processes=4, num_machines=2)
    assert component_resources(PPOPolicyTrainer(gpu), "train") == {"num_gpus": 2}  # this machine's share of the group
    assert component_resources(PPOPolicyTrainer(gpu), "answers") == {"num_gpus": 1}
    assert component_resources(PPOPolicyTrainer(PPOOptions(device="cpu")), "train") == {}


def test_critical_path_of_the_stage_graph(tmp_path: Path):
    experiment = library_experiment(tmp_path)
    graph = experiment.stages()
    times = {"sft": 10, "evaluate": 1, "prompts": 2, "train": 5, "answers": 1, "judge": 1, "report": 0.5}
    length, chain = critical_path(graph, times)
    # sft and its evaluation, then one arm's prompts -> train -> evaluation twice, the last judge, tables, report
    assert chain[:2] == ["sft/policy", "sft/evaluation"] and chain[-3:] == ["judge/s-vs-w/iter-02", "tables", "report"]
    assert length == 10 + 1 + (2 + 5 + 1) * 2 + 1 + 0.5 + 0.5
    assert critical_path(graph, lambda s: 1.0)[0] < len(graph)  # arms overlap: shorter than one stage after another
    from aopcore.executors.graph import simulate

    gpu = lambda s: 1 if s.kind in ("sft", "evaluate", "train", "answers") else 0  # noqa: E731
    one, two, many = (simulate(graph, lambda s: times[s.kind], gpu, n) for n in (1, 2, 8))
    assert many == pytest.approx(length)  # enough GPUs: the critical path
    assert length < two < one < sum(times[s.kind] for s in graph)  # one GPU still overlaps the CPU-only stages
    plan = expected_wall_time(graph, times)
    assert plan["serial_s"] == sum(times[s.kind] for s in graph) and plan["speedup"] > 1


def test_a_new_run_waits_for_stages_still_running(tmp_path: Path):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    released = []

    def stage() -> None:
        with held_by_stage(run):
            time.sleep(0.5)
            released.append(time.perf_counter())

    worker = threading.Thread(target=stage)
    worker.start()
    time.sleep(0.1)
    wait_for_stages(run)  # blocks until the stage above lets go
    assert released and time.perf_counter() >= released[0]
    worker.join()
    assert lock_path(run) == tmp_path / "runs" / ".x.lock" and not list(
        run.iterdir()
    )  # nothing added to the run directory
    with open(lock_path(run), "ab") as handle:  # and nothing is left locked
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


class WritesWithFeedback(toy.StaticCurriculum):
    requires = ("feedback",)


def test_waits_keep_the_local_orders_cache_hits_and_twins(tmp_path: Path):
    heldout = [Question("h0", "how?", "a"), Question("h1", "why?", "b")]
    arms = {
        "a": WritesWithFeedback(toy.StaticOptions()),
        "b": WritesWithFeedback(toy.StaticOptions()),
        "c": toy.WeakestCurriculum(),
    }
    experiment = Experiment(
        name="w",
        output_dir=tmp_path,
        trainer=toy.ToyTrainer(toy.ToyTrainerOptions()),
        reward=toy.LengthReward(),
        arms=arms,
        heldout=heldout,
        test_prompts=heldout,
        judge=toy.LengthJudge(toy.MarginJudgeOptions()),
        feedback=toy.EchoFeedback(toy.EchoFeedbackOptions()),
        budget=Budget(iterations=2, records_per_iteration=4, passes=1),
    )
    experiment.prepare()
    # feedback-written prompts of one iteration, and judging of one iteration, share the response cache: in order
    assert experiment.waits_for("arms/b/iter-01/prompts") == ["arms/a/iter-01/prompts"]
    assert experiment.waits_for("arms/c/iter-01/prompts") == []  # c writes without the feedback LLM
    assert experiment.waits_for("arms/a/iter-02/prompts") == []  # nothing earlier in its iteration
    assert experiment.waits_for("judge/a-vs-c/iter-02") == ["judge/a-vs-b/iter-02"]
    assert experiment.waits_for("judge/a-vs-b/iter-02") == []
    # a training may be a twin of an earlier arm's until both arms' prompts are known
    for stage_id in ("sft/policy", "sft/evaluation", "arms/b/iter-01/prompts"):
        experiment.run_stage(stage_id)
    assert experiment.waits_for("arms/b/iter-01/train") == ["arms/a/iter-01/prompts"]
    experiment.run_stage("arms/a/iter-01/prompts")
    assert experiment.waits_for("arms/b/iter-01/train") == []  # the static pool names prompts per arm: not twins


def test_requests_are_checked_against_the_clusters_nodes():
    executor = RayExecutor()
    cpu_only = [{"CPU": 8.0, "memory": 1e10}, {"CPU": 2.0}]
    assert executor._fit(cpu_only, "arms/a/iter-01/train", {"num_cpus": 1, "num_gpus": 1}) == {
        "num_cpus": 1
    }  # device=auto: CPU
    gpus = [{"CPU": 16.0, "GPU": 2.0}, {"CPU": 4.0}]
    assert executor._fit(gpus, "arms/a/iter-01/train", {"num_cpus": 1, "num_gpus": 2}) == {"num_cpus": 1, "num_gpus": 2}
    with pytest.raises(
        InputError, match="stage arms/a/iter-01/train asks for num_cpus=1, num_gpus=4, more than any node"
    ):
        executor._fit(gpus, "arms/a/iter-01/train", {"num_cpus": 1, "num_gpus": 4})
    with pytest.raises(InputError, match="A100=1"):
        executor._fit(gpus, "judge/x", {"num_cpus": 1, "A100": 1})  # a custom resource no node offers
