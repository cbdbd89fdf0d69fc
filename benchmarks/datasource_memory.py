"""Reading a large data file: peak memory and time of the data sources, against loading every raw row first.

Writes an HH-RLHF-shaped file (`harmless-base/test.jsonl.gz`, dialogues of about 1 kB) with --rows rows, then
reads it three ways, each in a fresh subprocess (memory: peak RSS added by the read, after imports):
- baseline: every raw row parsed into a list first (what a reader that materialises the file holds);
- all: the `file` data source, every question kept (prompts only: chosen/rejected are dropped while reading);
- limit: the same with test_size = --limit (reading stops there).

    .venv/bin/python benchmarks/datasource_memory.py --rows 100000 --out benchmarks/results/datasource_memory.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _output import emit  # noqa: E402

TURN = (
    "\n\nHuman: I keep burning the bottom of my bread in the oven, what could be wrong with it? Row {i}.\n\nAssistant: "
)


def write(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for i in range(rows):
            dialogue = (TURN.format(i=i) + "Check the rack position and the thermostat. " * 4) * 3
            fh.write(json.dumps({"chosen": dialogue + "Lower it.", "rejected": dialogue + "No idea."}) + "\n")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(mode: str, path: str, limit: int) -> dict:
    from aopcore.data.sources import SourceSpec, read_source
    from aopcore.registry import load_registry

    registry = load_registry()  # imports and plugins first: every mode pays them, before the measurement
    before = _rss_mb()
    start = time.perf_counter()
    if mode == "baseline":
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        n = len(rows)
    else:
        n = len(read_source(registry, SourceSpec(path), Path("."), limit=limit if mode == "limit" else None))
    return {
        "mode": mode,
        "questions": n,
        "seconds": round(time.perf_counter() - start, 3),
        "added_peak_rss_mb": round(_rss_mb() - before, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.limit)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "harmless-base" / "test.jsonl.gz"
        write(path, args.rows)
        size_mb = path.stat().st_size / 2**20
        runs = {}
        for mode in ("baseline", "all", "limit"):
            out = subprocess.run(
                [sys.executable, __file__, "--limit", str(args.limit), "--child", mode, str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    base = max(runs["baseline"]["added_peak_rss_mb"], 0.1)
    emit(
        {
            "rows": args.rows,
            "file_mb_gz": round(size_mb, 1),
            "limit": args.limit,
            "runs": runs,
            "all_over_baseline_memory": round(runs["all"]["added_peak_rss_mb"] / base, 3),
            "limit_over_baseline_memory": round(runs["limit"]["added_peak_rss_mb"] / base, 3),
            "all_over_baseline_time": round(runs["all"]["seconds"] / max(runs["baseline"]["seconds"], 1e-3), 2),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
