"""``aopcore`` command line: run, validate, plugins, report.

Exit status: 0 success; 2 bad input (one line per problem, no traceback); 1 runtime failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from aopcore.errors import AopcoreError, InputError
from aopcore.records import JSONLDecodeError


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, a scheduler, ``kill``) as an exception, so it unwinds and cleans up like Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM during cleanup ends the process at once
    raise Terminated()


def _config_file(args: argparse.Namespace) -> None:
    """``run quickstart`` / ``validate quickstart`` with no such file: the packaged example (aopcore.devtools.examples)."""
    from aopcore.devtools.examples import config_argument

    args.config, note = config_argument(args.config)
    if note:
        print(note)


def _cmd_validate(args: argparse.Namespace) -> int:
    from aopcore.engine.build import resolve

    _config_file(args)
    plan = resolve(args.config, args.set)
    arms = ", ".join(f"{a} ({impl.name})" for a, (impl, _) in plan.arms.items())
    seeds = plan.config.experiment.seeds
    per_seed = f"; seeds: {', '.join(map(str, seeds))}" if seeds else ""
    print(f"{args.config}: OK — arms: {arms}; trainer: {plan.components['trainer'][0].name}{per_seed}")
    for line in plan.summary():  # what really came in, per source and category
        print(f"  {line}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from aopcore.engine.build import resolve
    from aopcore.engine.experiment import configure_logging

    configure_logging(args.verbose)
    _config_file(args)
    plan = resolve(args.config, args.set)  # preflight before anything expensive
    for line in plan.summary():
        print(f"loaded {line}")
    from aopcore.executors import executor_for

    executor = executor_for(plan)  # None: stages run here, one at a time; "ray": on a Ray cluster
    from aopcore.memory import freeze_survivors

    if plan.config.experiment.seeds is not None:
        from aopcore.engine.multiseed import run_plan

        freeze_survivors()  # this process runs the seeds' experiments: its libraries need no more walks
        multi = run_plan(plan, executor, allow_changes=args.allow_changed_config, wait=args.wait)
        print(f"run finished: {os.path.normpath(multi.root)} (seeds {', '.join(map(str, multi.results))})")
        from aopcore.storage.rundir import RunLayout

        folder = RunLayout.of(multi.root).aggregate_dir
        page = folder / "aggregate.html"
        print(f"aggregate: {os.path.normpath(page if page.exists() else folder / 'aggregate.md')}")
        return 0
    experiment = plan.build(allow_changes=args.allow_changed_config)
    from aopcore.engine.multiseed import check_single_run_root

    check_single_run_root(experiment.store.root)
    # this process runs one experiment: its libraries and components need no more walks of the cyclic collector
    freeze_survivors(experiment.parts.components())
    result = experiment.run(executor, wait=args.wait)
    shown = Path(os.path.normpath(result.run_dir))  # "examples/../runs/x" reads as "runs/x"
    print(f"run finished: {shown}")
    print(f"report: {shown / 'report.html' if (shown / 'report.html').exists() else shown / 'report.md'}")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from aopcore.registry import load_registry

    registry = load_registry(args.load or [])
    failed = [p for p in registry.problems if p.distribution == "(config)" and p.plugin in (args.load or [])]
    if failed:  # a module the user named: bad input, not a broken third-party plugin to warn about
        raise InputError(*(f"--load {p.plugin}: the module failed to import ({p.error})" for p in failed))
    if args.details:
        from aopcore.devtools.docgen import plugin_details

        print(plugin_details(registry, args.details), end="")
        return 0
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
    from aopcore.analysis.aggregate import is_multiseed_root, seed_dirs
    from aopcore.analysis.report import write_reports
    from aopcore.errors import RuntimeFailure
    from aopcore.storage.integrity import damaged_message, first_damage
    from aopcore.storage.store import require_run_dir

    if (damage := first_damage(args.run_dir)) is not None:  # name the damaged file instead of failing on it
        raise RuntimeFailure(damaged_message(args.run_dir, damage))
    if is_multiseed_root(args.run_dir):  # every seed's report, then the aggregate across seeds
        from aopcore.analysis.aggregate_report import write_aggregate

        for run_dir in seed_dirs(args.run_dir).values():
            for f in write_reports(run_dir):
                print(run_dir / f)
        for f in write_aggregate(args.run_dir):
            print(Path(args.run_dir) / f)
        return 0
    run_dir = require_run_dir(args.run_dir)
    for f in write_reports(run_dir):
        print(run_dir / f)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    """Check every finished stage's outputs against the hashes in its record; changes nothing. Exit 1 when damaged."""
    from aopcore.engine.multiseed import MANIFEST
    from aopcore.storage.integrity import run_roots, verify_run
    from aopcore.storage.store import require_run_dir

    if not (Path(args.run_dir) / MANIFEST).exists():
        require_run_dir(args.run_dir)
    damaged = 0
    for root in run_roots(args.run_dir):
        result = verify_run(root)
        for d in result.damage:
            print(d.line(root))
        old = (
            f"; {len(result.unverifiable)} stage(s) recorded before output hashes, not checked"
            if result.unverifiable
            else ""
        )
        if result.ok:
            print(f"{root}: OK, {result.stages} finished stage(s), {result.files} file(s) match their records{old}")
        else:
            stages = result.damaged_stages()
            damaged += len(stages)
            print(
                f"{root}: {len(stages)} damaged stage(s): {', '.join(stages)}{old}; `aopcore run` with this run's "
                "config recomputes them and the stages that depend on them"
            )
    return 1 if damaged else 0


def _cmd_config_reference(args: argparse.Namespace) -> int:
    from aopcore.devtools.docgen import config_reference
    from aopcore.registry import load_registry

    registry = load_registry()
    known = sorted({impl.distribution for impl in registry.all()})
    if unknown := [d for d in args.distribution or [] if d not in known]:
        raise InputError(
            f"--distribution {', '.join(unknown)}: no installed plugins from it (distributions: {', '.join(known)})"
        )
    print(config_reference(registry, distributions=args.distribution or None), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from aopcore import __version__

    parser = argparse.ArgumentParser(prog="aopcore", description="RLHF with on-policy prompt curricula.")
    parser.add_argument("--version", action="version", version=f"aopcore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run (or resume) an experiment")
    p.add_argument(
        "config",
        type=Path,
        help="a config file, or the name of a packaged example (aopcore examples): ./NAME.toml, written when missing",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. experiment.iterations=2",
    )
    p.add_argument(
        "--allow-changed-config",
        action="store_true",
        help="continue a run directory whose config, data or components changed (recorded in fingerprint-changes.jsonl)",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="if another driver is running this run directory, wait for it to finish (default: refuse at once, exit 2)",
    )
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("validate", help="check a config without running it")
    p.add_argument(
        "config",
        type=Path,
        help="a config file, or the name of a packaged example (aopcore examples): ./NAME.toml, written when missing",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.set_defaults(func=_cmd_validate)
    p = sub.add_parser("plugins", help="list every registered implementation and where it comes from")
    p.add_argument("--load", action="append", metavar="MODULE", help="also load this plugin module")
    p.add_argument(
        "--details",
        metavar="NAME",
        help="one implementation's description, options (defaults, bounds), package and version",
    )
    p.set_defaults(func=_cmd_plugins)
    p = sub.add_parser("config-reference", help="print the configuration reference (Markdown) from the option models")
    p.add_argument(
        "--distribution",
        action="append",
        metavar="DIST",
        help="only plugins from this distribution (repeatable); default: every installed plugin, grouped by distribution",
    )
    p.set_defaults(func=_cmd_config_reference)
    p = sub.add_parser(
        "report", help="(re)write the report of a run directory (of every seed and the aggregate, for a multi-seed run)"
    )
    p.add_argument("run_dir", type=Path)
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser(
        "verify",
        help="check a run directory's finished outputs against the hashes in their stage records (changes nothing)",
    )
    p.add_argument("run_dir", type=Path)
    p.set_defaults(func=_cmd_verify)
    from aopcore.devtools import apidoc, envreport, examples, scaffold  # scaffold, API reference: for plugin authors

    examples.add_parser(sub)  # the shipped example configs (a pip user has no checkout)
    envreport.add_parser(sub)  # `aopcore env`: what a bug report needs
    scaffold.add_parser(sub)
    apidoc.add_parser(sub)
    from aopcore.registry import add_plugin_commands

    for problem in add_plugin_commands(sub):  # plugin families add theirs (rm-bench, human-eval, ...)
        print(f"warning: plugin {problem.plugin} ({problem.distribution}): {problem.error}", file=sys.stderr)
    return parser


def main(argv: list[str] | None = None) -> int:
    # An offline run does not phone home: TRL's trainers ask huggingface_hub to report their use from their constructor
    # (a background request to huggingface.co at every SFT stage). A user's own setting, 0 included, wins.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    # leave a handler someone else installed alone (an embedding program); signals are the main thread's only
    installed = (
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and threading.current_thread() is threading.main_thread()
    )
    if installed:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args)
    except InputError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except AopcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except JSONLDecodeError as exc:  # a damaged file the command read: name it (verify says whether more is damaged)
        print(
            f"error: {exc}; the file is damaged: `aopcore verify RUN_DIR` lists damage, `aopcore run` recomputes it",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is the machine's (a full disk, permissions, limits)
        from aopcore.oserrors import environment_error, os_error_line

        cause = environment_error(exc)
        if cause is None:
            raise
        print(f"error: {os_error_line(cause)}", file=sys.stderr)  # no space, no permission, read-only, too many files
        return 1
    except Terminated:
        print("stopped (SIGTERM); rerun the same command to resume", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
