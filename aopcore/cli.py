"""``aopcore`` command line: run, validate, plugins, report.

Exit status: 0 success; 2 bad input (one line per problem, no traceback); 1 runtime failure.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aopcore.errors import AopcoreError, InputError


def _cmd_validate(args: argparse.Namespace) -> int:
    from aopcore.build import resolve

    plan = resolve(args.config, args.set)
    arms = ", ".join(f"{a} ({impl.name})" for a, (impl, _) in plan.arms.items())
    print(f"{args.config}: OK — arms: {arms}; trainer: {plan.components['trainer'][0].name}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from aopcore.build import resolve
    from aopcore.experiment import configure_logging

    configure_logging(args.verbose)
    plan = resolve(args.config, args.set)  # preflight before anything expensive
    experiment = plan.build()
    result = experiment.run()
    print(f"run finished: {result.run_dir}")
    report = result.run_dir / "report.html"
    print(f"report: {report if report.exists() else result.run_dir / 'report.md'}")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from aopcore.registry import load_registry

    registry = load_registry(args.load or [])
    current = None
    for impl in registry.all():
        if impl.kind != current:
            current = impl.kind
            print(f"{impl.kind}:")
        origin = f"{impl.distribution} {impl.version}".strip()
        desc = f" — {impl.description}" if impl.description else ""
        print(f"  {impl.name:<22} {origin} ({impl.plugin}){desc}")
    for problem in registry.problems:
        print(f"plugin {problem.plugin!r} from {problem.distribution} failed to load: {problem.error}", file=sys.stderr)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from aopcore.report import write_reports

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").exists():
        raise InputError(f"{run_dir}: not an aopcore run directory (no config.json)")
    for f in write_reports(run_dir):
        print(run_dir / f)
    return 0


def _cmd_rm_bench(args: argparse.Namespace) -> int:
    try:
        from aopcore_eval.rm_bench import run_rm_bench
    except ImportError as exc:
        raise InputError(f"rm-bench needs the evaluation plugin family: pip install 'aopcore[eval]' ({exc})") from None
    result = run_rm_bench(args.config)
    for name, total in result["totals"].items():
        print(f"{name}: {total}/{result['pairs']} agree ({100 * total / max(result['pairs'], 1):.1f}%)")
    return 0


def _cmd_human_eval(args: argparse.Namespace) -> int:
    try:
        from aopcore_eval import human_eval
    except ImportError as exc:
        raise InputError(f"human-eval needs the evaluation plugin family ({exc})") from None
    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").exists():
        raise InputError(f"{run_dir}: not an aopcore run directory (no config.json)")
    if args.action == "results":
        out = human_eval.results(run_dir)
        print(out["table"], end="")
        print(f"votes: {out['votes']} from {out['raters']} raters on {out['items_rated']} items; Fleiss' kappa: {out['kappa']:.3f}")
        from aopcore.store import atomic_write_json, atomic_write_text

        atomic_write_text(run_dir / "tables" / "human_eval.md", out["table"] + f"\nFleiss' kappa: {out['kappa']:.3f}\n")
        atomic_write_json(run_dir / "tables" / "human_eval.json", out)
        return 0
    pairs = []
    for spec in args.pair or ["aop:sop"]:
        a, sep, b = spec.partition(":")
        if not sep:
            raise InputError(f"--pair {spec!r}: expected ARM_A:ARM_B")
        pairs.append((a, b))
    tokens = human_eval.prepare(run_dir, pairs, args.iteration or [2], args.sample, args.rater or [], seed=args.seed)
    if tokens:
        token_file = run_dir / "human_eval_tokens.txt"
        with open(token_file, "a") as fh:
            token_file.chmod(0o600)
            for name, token in tokens.items():
                fh.write(f"{name}\t{token}\n")
        print(f"new rater tokens written to {token_file} (share each privately)")
    server = human_eval.HumanEvalServer(run_dir, args.host, args.port)
    print(f"serving human evaluation on http://{args.host}:{server.port}/", flush=True)
    server.serve_forever()
    return 0


def _cmd_config_reference(args: argparse.Namespace) -> int:
    from aopcore.docgen import config_reference
    from aopcore.registry import load_registry

    print(config_reference(load_registry()), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aopcore", description="RLHF with on-policy prompt curricula.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run (or resume) an experiment")
    p.add_argument("config", type=Path)
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. experiment.iterations=2")
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("validate", help="check a config without running it")
    p.add_argument("config", type=Path)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.set_defaults(func=_cmd_validate)
    p = sub.add_parser("plugins", help="list every registered implementation and where it comes from")
    p.add_argument("--load", action="append", metavar="MODULE", help="also load this plugin module")
    p.set_defaults(func=_cmd_plugins)
    p = sub.add_parser("rm-bench", help="agreement of candidate reward models with SHP human preferences (paper table 1)")
    p.add_argument("config", type=Path)
    p.set_defaults(func=_cmd_rm_bench)
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
    p.set_defaults(func=_cmd_human_eval)
    p = sub.add_parser("config-reference", help="print the configuration reference (Markdown) from the option models")
    p.set_defaults(func=_cmd_config_reference)
    p = sub.add_parser("report", help="(re)write the report of a run directory")
    p.add_argument("run_dir", type=Path)
    p.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except AopcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
