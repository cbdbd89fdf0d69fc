"""Judge throughput: N judge calls against a local OpenAI-compatible server with fixed latency.

The ideal wall time at concurrency C is ceil(N / C) * latency; the goal is at most 1.3x that. One JSON
line per concurrency (stdout, and --out): past some concurrency the client's CPU per call (the SDK's
request and response handling) sets the pace instead of the server's latency, and the sweep shows where.

    .venv/bin/python benchmarks/judge_throughput.py --calls 2000 --latency 0.1 --concurrency 8 16 24 32 64
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import emit_lines  # noqa: E402

from aopcore import JudgeItem  # noqa: E402
from aopcore_providers.llm import OpenAIJudge  # noqa: E402
from aopcore_providers.options import OpenAIOptions  # noqa: E402

TESTS = Path(__file__).resolve().parents[1] / "tests"
# the fake OpenAI-compatible server (tests/helpers/fake_providers.py) in its own process, as a remote server would be
SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from helpers.fake_providers import FakeProviderServer
with FakeProviderServer(latency={latency}) as s:
    print(s.base_url("openai"), flush=True)
    while True:
        time.sleep(3600)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 16, 24, 32, 64])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ["AOPCORE_BENCH_KEY"] = "bench-key"
    # the server runs in its own process, as a remote one would: no shared interpreter lock with the client
    server_proc = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(tests=str(TESTS), latency=args.latency)], stdout=subprocess.PIPE, text=True
    )
    base_url = server_proc.stdout.readline().strip()
    results = []
    try:
        measure(base_url, 16, args.latency, 8)  # warm-up: the SDK's import is a once-per-process cost, not per batch
        for concurrency in args.concurrency:
            results.append(measure(base_url, args.calls, args.latency, concurrency))
    finally:
        server_proc.terminate()
        server_proc.wait()
    emit_lines(results, args.out)


def measure(base_url: str, calls: int, latency: float, concurrency: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        judge = OpenAIJudge(
            OpenAIOptions(
                model="bench",
                api_key_env="AOPCORE_BENCH_KEY",
                base_url=base_url,
                concurrency=concurrency,
                cache_path=str(Path(tmp) / "c.sqlite"),
                timeout=30,
            )
        )
        items = [
            JudgeItem(str(i), f"question {i}? ({concurrency})", f"GOOD answer {i}", f"answer {i}") for i in range(calls)
        ]
        start, cpu = time.perf_counter(), time.process_time()
        verdicts = judge.judge(items)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        start = time.perf_counter()
        judge.judge(items)  # all cached
        cached = time.perf_counter() - start
    ideal = math.ceil(calls / concurrency) * latency
    return {
        "benchmark": "judge_throughput",
        "calls": calls,
        "latency_s": latency,
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "ratio_to_ideal": round(wall / ideal, 3),
        "goal_ratio": 1.3,
        "meets_goal": wall / ideal <= 1.3,
        "max_in_flight": judge.calls.max_in_flight,
        "calls_per_s": round(calls / wall, 1),
        "client_cpu_ms_per_call": round(1000 * cpu / calls, 2),
        "cpu_cores": os.cpu_count(),
        "verdicts_A": sum(v.choice == "A" for v in verdicts),
        "cached_rerun_s": round(cached, 3),
    }


if __name__ == "__main__":
    main()
