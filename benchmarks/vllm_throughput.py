"""vLLM against aopcore's transformers backends, ratios measured in one run (docs/gpu.md "vLLM").

1. ``throughput``: SmolLM2-135M (the packaged model), B prompts in one call for B in --sizes (16, 64, 256), greedy,
   --new-tokens new tokens: generated tokens/s of the ``plain``, ``static`` and ``continuous`` backends (transformers,
   float32, as aopcore runs on a CPU) and of vLLM (bfloat16, its default here, and float32). Greedy agreement of each
   with ``plain`` at the smallest size (answers equal as token lists).
2. ``quickstart``: examples/quickstart.toml at the reduced sizes of tests/e2e/test_quickstart_e2e.py through the CLI, on
   three sides: ``plain`` (no vLLM), ``feedback`` (vLLM for the feedback LLM only: what ``engine = "auto"`` picks) and
   ``vllm`` (also the policy's generation: evaluation, test answers, PPO rollouts): wall time, the peak memory of the
   whole process tree (sampled every 0.5 s) and the feedback work done. The runs alternate (--quickstart-order, by
   default plain, feedback, vllm, vllm, feedback, plain), so a load that drifts on a shared machine hits all sides
   alike; each run records the load average before and after it, and the ratios use each side's mean.

    nice -n 10 .venv/bin/python benchmarks/vllm_throughput.py --out benchmarks/results/vllm_throughput.json
    nice -n 10 .venv/bin/python benchmarks/vllm_throughput.py --skip-throughput --out benchmarks/results/vllm_throughput.json

With --out naming an existing file, the parts not run this time (--skip-...) keep what that file holds. A short check
of the quickstart part: ``--skip-throughput --quickstart-order vllm --quickstart-set experiment.iterations=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests"), str(ROOT / "tests" / "e2e"), str(HERE)]
from _output import emit  # noqa: E402


def prompts(n: int) -> list[str]:
    base = [json.loads(line)["text"] for line in (ROOT / "aopcore" / "data" / "heldout.jsonl").read_text().splitlines()]
    return [base[i % len(base)] + ("" if i < len(base) else f" (variant {i // len(base)})") for i in range(n)]


def throughput(sizes: list[int], new_tokens: int, backends: list[str], partial=None) -> dict:
    from aopcore_hf.generation import GenerationSettings, encode_queries, generate_rollouts
    from aopcore_hf.models import choose_device, load_causal_lm, resolve_model
    from aopcore_hf.vllm.engine import VLLMEngine

    folder = resolve_model("smollm2-135m-instruct")
    model, tok = load_causal_lm(folder, choose_device("cpu", "float32"))
    eos = tok.eos_token_id
    rows: dict[str, dict] = {}
    answers: dict[str, list] = {}
    engines = {}
    for name in backends:
        if name.startswith("vllm"):
            t0 = time.perf_counter()
            engines[name] = VLLMEngine(
                folder,
                dtype="float32" if name == "vllm-fp32" else "bfloat16",
                max_model_len=512,
                kv_cache_gib=int(os.environ.get("VLLM_CPU_KVCACHE_SPACE", "4")),
            )
            rows.setdefault(name, {})["start_s"] = round(time.perf_counter() - t0, 1)
    for size in sizes:
        queries = encode_queries(tok, prompts(size), 256)
        for name in backends:  # interleaved per size, so load on a shared machine hits every backend alike
            t0 = time.perf_counter()
            if name.startswith("vllm"):
                out = engines[name].generate(queries, max_tokens=new_tokens, stop_token_ids=[eos])
                out = [r[: r.index(eos) + 1] if eos in r else r for r in out]
            else:
                settings = GenerationSettings(max_new_tokens=new_tokens, do_sample=False, batch_size=size, backend=name)
                out = [r.response for r in generate_rollouts(model, tok, queries, settings)]
            seconds = time.perf_counter() - t0
            tokens = sum(len(r) for r in out)
            rows.setdefault(name, {})[str(size)] = {
                "seconds": round(seconds, 2),
                "tokens": tokens,
                "tokens_per_s": round(tokens / seconds, 1),
            }
            if size == sizes[0]:
                answers[name] = out
            print(f"{name} B={size}: {tokens} tokens in {seconds:.1f} s", file=sys.stderr, flush=True)
        if partial is not None:  # what is measured so far survives a run stopped part-way
            partial({"backends": rows, "sizes_done": sizes[: sizes.index(size) + 1]})
    for engine in engines.values():
        engine.close()
    ratios = {
        name: {
            str(s): round(rows[name][str(s)]["tokens_per_s"] / rows["plain"][str(s)]["tokens_per_s"], 2) for s in sizes
        }
        for name in backends
        if name != "plain" and "plain" in rows
    }
    agreement = {
        name: f"{sum(a == b for a, b in zip(answers[name], answers['plain']))}/{len(answers['plain'])}"
        for name in backends
        if name != "plain" and "plain" in answers
    }
    return {
        "model": "smollm2-135m-instruct",
        "new_tokens": new_tokens,
        "greedy": True,
        "transformers_dtype": "float32",
        "backends": rows,
        "tokens_per_s_over_plain": ratios,
        f"greedy_answers_equal_to_plain_at_B{sizes[0]}": agreement,
    }


class TreeMemory:
    """Peak resident memory of a process and all its descendants (sampled)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(0.5):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


# what each side of the quickstart comparison sets: vLLM nowhere, for the feedback LLM only, everywhere
SIDES = {
    "plain": ['trainer.generation_backend="plain"', 'feedback.engine="transformers"'],
    "feedback": ['trainer.generation_backend="plain"', 'feedback.engine="vllm"'],
    "vllm": ['trainer.generation_backend="vllm"', 'feedback.engine="vllm"'],
}


def quickstart(side: str, out: Path, extra: list[str] = ()) -> dict:
    """One reduced quickstart through the CLI (a fresh process, so engine starts and model loads count)."""
    from test_quickstart_e2e import TINY

    args = [
        sys.executable,
        "-m",
        "aopcore.cli",
        "run",
        str(ROOT / "examples" / "quickstart.toml"),
        "--set",
        f'experiment.output_dir="{out}"',
        "--set",
        f'feedback.cache_path="{out / "llm-cache.sqlite"}"',
    ]
    for item in [*TINY, *SIDES[side], *extra]:
        args += ["--set", item]
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TQDM_DISABLE": "1"}
    )
    memory = TreeMemory(proc.pid)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    peak = memory.stop()
    if proc.returncode != 0:
        raise SystemExit(f"quickstart ({side}) failed:\n{stderr[-3000:]}")
    stages = [json.loads(p.read_text()) for p in (out / "quickstart" / "stages").glob("*.json")]
    by_kind: dict[str, float] = {}
    for s in stages:
        by_kind[s["kind"]] = round(by_kind.get(s["kind"], 0.0) + s.get("wall_s", 0.0), 1)
    # sampled feedback differs between engines (bf16 against float32), so the work each side's feedback did is kept
    feedback = [s for s in stages if s["kind"] == "prompts"]
    work = {
        "feedback_calls": sum(s.get("feedback_calls", 0) for s in feedback),
        "feedback_tokens_generated": sum(s.get("tokens_generated", 0) for s in feedback),
    }
    if work["feedback_tokens_generated"]:
        work["prompts_stage_s_per_feedback_token"] = round(
            by_kind.get("prompts", 0.0) / work["feedback_tokens_generated"], 3
        )
    return {
        "wall_s": round(wall, 1),
        "peak_rss_gib": round(peak / 2**30, 2),
        "stage_wall_s_by_kind": by_kind,
        **work,
        "load_average_1_5_15_before": load_before,
        "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
    }


def quickstart_comparison(
    order: list[str], extra: list[str], partial=None, *, concurrent: bool = False, workdir: Path | None = None
) -> dict:
    """The reduced quickstart without and with vLLM, in ``order`` (e.g. plain, vllm, vllm, plain); ratios of the means.
    ``partial`` receives the summary after every run, so a comparison stopped part-way keeps what it measured. With
    ``concurrent`` all runs start together: under a load that drifts a lot, both sides then meet the same load at every
    moment (and each other's). ``workdir`` keeps the run directories (stage records) instead of a temporary folder."""
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = workdir or Path(tmp)
        if concurrent:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(order)) as pool:
                futures = [pool.submit(quickstart, name, base / f"{i}-{name}", extra) for i, name in enumerate(order)]
                runs = [{"side": name, **f.result()} for name, f in zip(order, futures)]
            return summarise(order, runs, concurrent=True)
        for i, name in enumerate(order):
            row = quickstart(name, base / f"{i}-{name}", extra)
            runs.append({"side": name, **row})
            print(
                f"quickstart {name}: {row['wall_s']} s, {row['peak_rss_gib']} GiB, load {row['load_average_1_5_15_before']}"
                f" -> {row['load_average_1_5_15_after']}",
                file=sys.stderr,
                flush=True,
            )
            if partial is not None and i < len(order) - 1:
                partial(summarise(order, runs))
    return summarise(order, runs)


def summarise(order: list[str], runs: list[dict], *, concurrent: bool = False) -> dict:
    result: dict = {"order": order, "concurrent": concurrent, "runs": runs, "complete": len(runs) == len(order)}
    sides = {name: [r for r in runs if r["side"] == name] for name in SIDES}
    for name, rows in sides.items():
        if rows:
            result[f"{name}_mean"] = {
                key: round(sum(r.get(key, 0) for r in rows) / len(rows), 2)
                for key in ("wall_s", "peak_rss_gib", "feedback_calls", "feedback_tokens_generated")
            }
            result[f"{name}_mean"]["runs"] = len(rows)
    if sides["plain"]:
        plain = result["plain_mean"]
        for name in ("vllm", "feedback"):
            if not sides[name]:
                continue
            other = result[f"{name}_mean"]
            result[f"wall_ratio_{name}_over_plain"] = round(other["wall_s"] / plain["wall_s"], 2)
            result[f"wall_ratio_plain_over_{name}"] = round(
                plain["wall_s"] / other["wall_s"], 2
            )  # > 1: that side was faster
            result[f"peak_memory_ratio_{name}_over_plain"] = round(other["peak_rss_gib"] / plain["peak_rss_gib"], 2)
            result[f"{name}_faster"] = other["wall_s"] < plain["wall_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,64,256")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--backends", default="plain,static,continuous,vllm,vllm-fp32")
    parser.add_argument("--skip-quickstart", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--quickstart-order",
        default="plain,feedback,vllm,vllm,feedback,plain",
        help="the quickstart runs, in order (comma-separated; plain: no vLLM, feedback: vLLM for the feedback "
        "LLM only, vllm: for the policy's generation too); alternate them on a shared machine",
    )
    parser.add_argument(
        "--quickstart-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra --set for every quickstart run (repeatable), e.g. experiment.iterations=1 for a short check",
    )
    parser.add_argument(
        "--quickstart-concurrent",
        action="store_true",
        help="start the quickstart runs together instead of one after another (a heavily loaded machine)",
    )
    parser.add_argument(
        "--quickstart-dir", type=Path, help="keep the quickstart run directories here (default: a temporary folder)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    order = [s.strip() for s in args.quickstart_order.split(",") if s.strip()]
    if not args.skip_quickstart and (not order or set(order) - set(SIDES)):
        parser.exit(
            2, f"error: --quickstart-order {args.quickstart_order!r}: give {', '.join(SIDES)}, comma-separated\n"
        )
    import torch

    kept: dict = {}
    if args.out and args.out.exists():  # the parts not run this time keep what the file holds
        try:
            kept = json.loads(args.out.read_text())
        except json.JSONDecodeError:
            parser.exit(2, f"error: --out {args.out}: not JSON; remove it or name another file\n")
    result: dict = {
        **kept,
        "benchmark": "vllm_throughput",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other "
        "work (runs under nice; load varies during the run)",
        "torch_threads": torch.get_num_threads(),
    }
    if not args.skip_throughput:
        result.pop("throughput_partial", None)
        result["throughput"] = throughput(
            [int(s) for s in args.sizes.split(",")],
            args.new_tokens,
            args.backends.split(","),
            partial=lambda part: emit({**result, "throughput_partial": part}, args.out),
        )
        emit(result, args.out)
    else:
        result["machine"] = kept.get("machine", result["machine"])  # it describes the throughput run kept in the file
    if not args.skip_quickstart:
        head = {
            "config": "examples/quickstart.toml with tests/e2e/test_quickstart_e2e.py's TINY overrides"
            + (f" and {args.quickstart_set}" if args.quickstart_set else ""),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other work",
            "measured_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        result["quickstart"] = {
            **head,
            **quickstart_comparison(
                order,
                args.quickstart_set,
                partial=lambda part: emit({**result, "quickstart": {**head, **part}}, args.out),
                concurrent=args.quickstart_concurrent,
                workdir=args.quickstart_dir,
            ),
        }
    emit(result, args.out)


if __name__ == "__main__":
    main()
