"""The evaluation family's CLI subcommands: `aopcore rm-bench` and `aopcore human-eval`.

Registered through the `register_commands` hook like any plugin's; the work is imported only
when a command runs, so building the CLI stays cheap.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aopcore import InputError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rm-bench", help="agreement of candidate reward models with SHP human preferences (paper table 1)"
    )
    p.add_argument("config", type=Path)
    p.set_defaults(func=rm_bench)
    p = sub.add_parser("human-eval", help="blinded pairwise human evaluation: serve the web app, or tally the votes")
    p.add_argument("action", choices=["serve", "results"])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--pair", action="append", metavar="ARM_A:ARM_B", help="arms to compare (default aop:sop)")
    p.add_argument("--iteration", action="append", type=int, help="iterations to compare (default 2, as in the paper)")
    p.add_argument("--sample", type=int, default=100, help="test prompts per pair and iteration (paper: 100)")
    p.add_argument("--rater", action="append", help="add a rater by name (a token is generated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.set_defaults(func=human_eval)


def rm_bench(args: argparse.Namespace) -> int:
    from aopcore_eval.rm_bench import run_rm_bench

    result = run_rm_bench(args.config)
    for name, total in result["totals"].items():
        print(f"{name}: {total}/{result['pairs']} agree ({100 * total / max(result['pairs'], 1):.1f}%)")
    return 0


def human_eval(args: argparse.Namespace) -> int:
    from aopcore.storage.store import require_run_dir
    from aopcore_eval import human_eval as app

    _refuse_multiseed_root(args.run_dir)
    run_dir = require_run_dir(args.run_dir)
    if args.action == "results":
        return _results(app, run_dir)
    pairs = []
    for spec in args.pair or ["aop:sop"]:
        a, sep, b = spec.partition(":")
        if not sep:
            raise InputError(f"--pair {spec!r}: expected ARM_A:ARM_B")
        pairs.append((a, b))
    tokens = app.prepare(run_dir, pairs, args.iteration or [2], args.sample, args.rater or [], seed=args.seed)
    if tokens:
        token_file = run_dir / "human_eval_tokens.txt"
        with open(token_file, "a") as fh:
            token_file.chmod(0o600)
            for name, token in tokens.items():
                fh.write(f"{name}\t{token}\n")
        print(f"new rater tokens written to {token_file} (share each privately)")
    server = app.HumanEvalServer(run_dir, args.host, args.port)
    print(f"serving human evaluation on http://{args.host}:{server.port}/", flush=True)
    server.serve_forever()
    return 0


def _refuse_multiseed_root(path: Path) -> None:
    """Human evaluation works on one run: a multi-seed root holds one per seed."""
    from aopcore.analysis.aggregate import is_multiseed_root, seed_dirs
    from aopcore.storage.rundir import RunLayout

    if not (Path(path) / "config.json").exists() and is_multiseed_root(path):
        seeds = ", ".join(str(s) for s in seed_dirs(path)) or "none finished yet"
        raise InputError(f"{path}: this is a multi-seed run: use {RunLayout.of(path).seed_dir('N')} (seeds: {seeds})")


def _results(app, run_dir: Path) -> int:
    from aopcore.analysis.aggregate import human_judge_labels, judge_agreement
    from aopcore.storage.store import atomic_write_json, atomic_write_text

    out = app.results(run_dir)
    out["judge_agreement"] = judge_agreement(human_judge_labels(run_dir, out["items"]))
    agree = out["judge_agreement"]
    agree_line = (
        f"LLM judge vs human majority: {100 * agree['agreement']:.1f}% agreement on {agree['items']} items, "
        f"Cohen's kappa {agree['cohen_kappa'] if agree['cohen_kappa'] is None else format(agree['cohen_kappa'], '.3f')}"
        if agree
        else "LLM judge vs human majority: no item was decided by both"
    )
    print(out["table"], end="")
    print(
        f"votes: {out['votes']} from {out['raters']} raters on {out['items_rated']} items; Fleiss' kappa: {out['kappa']:.3f}"
    )
    print(agree_line)
    atomic_write_text(
        run_dir / "tables" / "human_eval.md", out["table"] + f"\nFleiss' kappa: {out['kappa']:.3f}\n\n{agree_line}\n"
    )
    atomic_write_json(run_dir / "tables" / "human_eval.json", out)
    return 0
