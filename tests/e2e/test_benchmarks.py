"""The benchmark scripts run and emit their JSON (small forms; the figures themselves live in benchmarks/results)."""

import json
import subprocess
import sys

import pytest

from helpers import ROOT

BENCH = ROOT / "benchmarks"


def run(script: str, *args: str) -> list[dict]:
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout.strip()
    return [json.loads(text)] if text.startswith("{\n") else [json.loads(line) for line in text.splitlines()]


def test_judge_throughput_small():
    (r,) = run("judge_throughput.py", "--calls", "64", "--latency", "0.02", "--concurrency", "8")
    assert r["calls"] == 64 and r["verdicts_A"] == 64 and r["max_in_flight"] == 8 and r["ratio_to_ideal"] > 0


def test_datasource_memory_small():
    (r,) = run("datasource_memory.py", "--rows", "3000", "--limit", "100")
    assert r["runs"]["all"]["questions"] == 3000 and r["runs"]["limit"]["questions"] == 100
    assert r["runs"]["limit"]["seconds"] < r["runs"]["all"]["seconds"]  # reading stopped at the limit


def test_dedup_scale_small():
    (r,) = run("dedup_scale.py", "--sizes", "3000", "--synthetic-embeddings")
    assert r["n"] == 3000 and r["kept"] == 2100


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_suite_cpu_smoke(tmp_path):
    """The GPU check's own code at tiny sizes on the CPU, so it cannot rot before it meets a GPU (docs/gpu.md)."""
    out = tmp_path / "gpu_suite.json"
    run("gpu_suite.py", "--cpu-smoke", "--out", str(out))
    r = json.loads(out.read_text())
    sections = r["sections"]
    assert list(sections) == [
        "environment",
        "setup",
        "ppo_ours",
        "ppo_trl",
        "generation",
        "precision",
        "experiment",
        "vllm",
    ]
    assert all(s["status"] == "ok" for name, s in sections.items() if name not in ("ppo_trl", "vllm")), {
        k: s.get("error") for k, s in sections.items()
    }
    assert (
        sections["vllm"]["status"] == "skipped" and "vLLM" in sections["vllm"]["reason"]
    )  # on a card where vLLM is installed it runs
    # TRL 1.12's PPOTrainer runs where its wheel is installed (the GPU machine); elsewhere the section says why not
    assert sections["ppo_trl"]["status"] == "ok" or "not importable" in sections["ppo_trl"]["reason"]
    ours = sections["ppo_ours"]
    assert ours["steps"] == 2 and ours["episodes_per_s"] > 0 and ours["epoch_extrapolation"]["hours"] > 0
    gen = sections["generation"]
    assert gen["exactness"]["static"]["all_identical"] and gen["exactness"]["continuous"]["all_identical"]
    assert all(gen["speed"][b]["tokens_per_s"] > 0 for b in ("plain", "static", "continuous"))
    assert sections["precision"]["agree"] and sections["precision"]["float32"]["kl"] > 0
    e2e = sections["experiment"]
    assert e2e["completed"] and {"evaluate", "train", "answers", "judge", "report"} <= set(e2e["stage_kinds"])
    assert r["summary"]["paper_a100_hours_per_epoch"] == 1.5


@pytest.mark.slow
def test_eval_throughput_small():
    (r,) = run("eval_throughput.py", "--prompts", "4", "--new-tokens", "4", "--batch-size", "4")
    assert r["identical_answers"] == "4/4" and r["speedup"] > 0


@pytest.mark.parametrize("trainer", ["grpo", "ppo"])
def test_smollm_benchmark_config_validates_for_both_trainers(trainer, tmp_path):
    """benchmarks/smollm_testbed.py runs for an hour, so CI checks what it would run: the config it derives from
    examples/testbed.toml (SmolLM2 policy, short-answer system prompt, only the chosen arms) passes preflight."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import tomllib

    from smollm_testbed import config_text, parser

    from helpers import run_cli

    args = parser().parse_args(["--trainer", trainer, "--arms", "vanilla", "learnability", "--run-dir", str(tmp_path)])
    text = config_text(args)
    parsed = tomllib.loads(text)
    assert parsed["trainer"]["plugin"] == trainer and parsed["trainer"]["model"] == "smollm2-135m-instruct"
    assert (
        sorted(parsed["arms"]) == ["learnability", "vanilla"]
        and "Reply with just the answer" in parsed["trainer"]["system_prompt"]
    )
    cfg = ROOT / "examples" / f".smollm-test-{trainer}-{tmp_path.name}.toml"  # beside the base: its relative paths hold
    cfg.write_text(text)
    try:
        result = run_cli("validate", str(cfg))
    finally:
        cfg.unlink()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_quickstart_profile_records_the_machines_speed_beside_each_run(tmp_path):
    """The calibration figure (SmolLM2 decoding, float32, fixed inputs) that lets an absolute wall time be read
    across days; the ratios compare it too, and still read results committed before it existed."""
    sys.path.insert(0, str(BENCH))
    from quickstart_profile import _bracket, ratios

    out = subprocess.run(
        [sys.executable, str(BENCH / "quickstart_profile.py"), "--calibrate", str(tmp_path / "c.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    calibration = json.loads((tmp_path / "c.json").read_text())
    assert 1 < calibration["decode_ms_per_step"] < 5000
    run = _bracket(calibration, {**calibration, "decode_ms_per_step": calibration["decode_ms_per_step"] + 10})
    assert run["decode_ms_per_step"] == round(calibration["decode_ms_per_step"] + 5, 1)  # before and after, averaged
    side = {"wall_s": 200.0, "cpu_s": 400.0, "peak_rss_mb": 3000.0, "model_loads_total": 9, "by_kind": {}}
    new = {**side, "wall_s": 100.0, "decode_ms_per_step": 90.0}
    assert ratios(new, {**side, "decode_ms_per_step": 60.0})["decode_ms_per_step"] == 1.5
    older = ratios(new, side)  # a committed result from before the calibration
    assert older["wall_s"] == 0.5 and "decode_ms_per_step" not in older


def test_quickstart_floor_counts_the_quickstarts_own_stages():
    """The floor multiplies each kind of work by how often the quickstart does it: those counts must be the stage
    graph's (less AOP's first iteration, SOP's twin, whose training, evaluation and answers are copied)."""
    sys.path.insert(0, str(BENCH))
    from quickstart_floor import counts

    from aopcore.engine.build import resolve

    plan = resolve(ROOT / "examples" / "quickstart.toml")
    kinds = [s.kind for s in plan.build().stages()]
    n = counts(plan.snapshot())
    twin = 1  # aop iteration 1
    assert n["ppo_steps"] == (kinds.count("train") - twin) * 2  # 8 records x 2 passes in batches of 8
    assert n["evaluations"] == kinds.count("evaluate") - twin
    assert n["answers"] == kinds.count("answers") - twin
    assert n["sft"] == kinds.count("sft") == 1
    assert n["feedback_rounds"] == 3  # vanilla's pool, SOP's prompts, AOP's second iteration


@pytest.mark.slow
def test_cpu_decode_precision_tells_a_faithful_variant_from_another_model():
    """fp16 weights with float32 activations give float32's greedy answers; int8 dynamic quantization (activations
    in 8 bits too) gives a different model: the reason it is not the quickstart's precision on AVX2 CPUs."""
    (r,) = run("cpu_decode_precision.py", "--small", "--repeats", "1")
    fp16, int8 = r["fidelity"]["fp16-weights"], r["fidelity"]["int8-dynamic"]
    assert fp16["greedy_answers_equal"] == fp16["of"] and fp16["logprob_abs_diff_mean"] < 0.01
    assert int8["greedy_answers_equal"] < int8["of"] and int8["logprob_abs_diff_mean"] > 0.5
    assert set(r["decode"]["8x48+24"]) >= {"float32_s", "int8-dynamic_over_float32", "fp16-weights_over_float32"}
