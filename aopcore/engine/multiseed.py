"""One experiment under several seeds: a resumable sub-run per seed, one shared SFT policy, one aggregate.

Layout under the run directory ``<output_dir>/<name>/``::

    multiseed.json     what every seed shares (config without the seed, share_sft, the SFT seed, arm order)
    shared-sft/        policy_0, trained once when share_sft (the research question is the RL phase)
    seed-<s>/          a complete ordinary run directory per seed (config.json, stages/, arms/, judge/, report)
    aggregate/         aggregate.json, aggregate.md and whatever report formats plugins add (HTML with plots)

Every seed is an ordinary :class:`~aopcore.engine.experiment.Experiment`, so each resumes stage by stage; rerunning
the same command skips finished seeds and finishes the others. The seeds list may grow between runs (new
seeds run, finished ones are kept); anything else that changes the config is refused.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aopcore.engine.experiment import Experiment, ExperimentResult
from aopcore.errors import InputError
from aopcore.ledger import StageMeter
from aopcore.storage.rundir import MULTISEED_MANIFEST, SFT_POLICY, RunLayout, seed_name, stage_seed
from aopcore.storage.store import RunStore, atomic_directory, atomic_write_json, clean_temporaries

log = logging.getLogger("aopcore")

MANIFEST = MULTISEED_MANIFEST


@dataclass
class MultiSeedResult:
    root: Path
    results: dict[int, ExperimentResult] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # aggregate files, relative to root


def seed_dir_name(seed: int) -> str:
    return seed_name(seed)


def seed_snapshot(snapshot: dict[str, Any] | None, seed: int) -> dict[str, Any] | None:
    """A seed's own resolved config: the shared one with ``seed`` set and the ``seeds`` list left out."""
    if snapshot is None:
        return None
    out = copy.deepcopy(snapshot)
    exp = out.setdefault("experiment", {})
    exp["seed"] = seed
    exp.pop("seeds", None)
    return out


def check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds:
        raise InputError("experiment.seeds: give at least one seed")
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise InputError(f"experiment.seeds: seeds are non-negative integers (got {seeds})")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"experiment.seeds: seeds must be distinct (got {seeds})")
    return seeds


def check_single_run_root(root: Path) -> None:
    """A single-seed run must not write into a multi-seed run directory (it would mix the two layouts)."""
    if RunLayout.of(root).manifest.exists():
        raise InputError(
            f"{root}: this run directory holds a multi-seed run (experiment.seeds); "
            "use the same seeds setting or choose another experiment.name"
        )


def _manifest(root: Path, first: Experiment, seeds: list[int], share_sft: bool) -> None:
    """Record what the seeds share; refuse a rerun whose shared SFT policy would differ.

    Everything else that shapes results is checked by each seed's own run directory (its fingerprint), with the
    same message and the same override as a single run.
    """
    if RunLayout.of(root).config.exists():
        raise InputError(
            f"{root}: this run directory holds a single-seed run; "
            "choose another experiment.name for a multi-seed run (finished work is never overwritten)"
        )
    config = seed_snapshot(first.snapshot, 0) or {}
    config.get("experiment", {}).pop("seed", None)
    sft = {"share_sft": share_sft, "sft_seed": seeds[0] if share_sft else None}
    path = RunLayout.of(root).manifest
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("share_sft") and share_sft and old.get("sft_seed") != sft["sft_seed"]:
            raise InputError(
                f"{root}: the shared SFT policy was trained with seed {old.get('sft_seed')} (the first of "
                f"experiment.seeds); keep {old.get('sft_seed')} first or choose another experiment.name"
            )
        if bool(old.get("share_sft")) != share_sft:
            raise InputError(
                f"{root}: this multi-seed run was started with share_sft = {str(bool(old.get('share_sft'))).lower()}; "
                "keep it or choose another experiment.name"
            )
        seeds = list(dict.fromkeys([*old.get("seeds", []), *seeds]))  # seeds only ever accumulate
    atomic_write_json(path, {**sft, "config": config, "arms": list(first.arms), "seeds": seeds})


def shared_policy(root: Path, experiment: Experiment, sft_seed: int) -> Path:
    """policy_0 for every seed, trained once (resumably) with the seed a lone run with ``sft_seed`` would use."""
    layout = RunLayout.of(root)
    store = RunStore(layout.shared_sft)
    policy = layout.shared_policy
    where = layout.rel(policy)
    from aopcore.storage import integrity

    if store.is_done(SFT_POLICY) and policy.exists():
        damage = integrity.verify_run(store.root, [SFT_POLICY]).damage
        if not damage:
            log.info("skip  %-40s (done)", where)
            return policy
        log.warning("damaged: %s; recomputing %s", damage[0].line(store.root), where)
    store.root.mkdir(parents=True, exist_ok=True)
    clean_temporaries(store.root)
    log.info("start %s (seed %d)", where, sft_seed)
    with StageMeter("sft") as meter:
        with atomic_directory(policy) as tmp:
            experiment.trainer.initial_policy(tmp, seed=stage_seed(sft_seed, SFT_POLICY))
    store.mark_done(
        SFT_POLICY,
        {
            "order": 0,
            "arm": None,
            "seed": sft_seed,
            **meter.as_record(),
            "outputs": integrity.output_hashes(store.root, [policy.relative_to(store.root).as_posix()]),
        },
    )
    log.info("done  %s %.1fs", where, meter.wall_s)
    return policy


def seed_experiments(
    experiment: Experiment | Callable[[int], Experiment],
    seeds: Sequence[int],
    root: Path,
    initial_policy: Path | None = None,
) -> dict[int, Experiment]:
    """Each seed's Experiment, placed at ``root/seed-<s>`` (the factory may return any name and output_dir)."""
    out = {}
    for s in seeds:
        base = experiment if isinstance(experiment, Experiment) else experiment(s)
        out[s] = dataclasses.replace(
            base,
            name=seed_dir_name(s),
            output_dir=root,
            seed=s,
            snapshot=seed_snapshot(base.snapshot, s),
            initial_policy=initial_policy,
        )
    return out


def run_seeds(
    experiment: Experiment | Callable[[int], Experiment],
    seeds: Sequence[int],
    *,
    root: Path | str | None = None,
    share_sft: bool = True,
    executor: Any = None,
    aggregate: bool = True,
    wait: bool = False,
) -> MultiSeedResult:
    """Run (or resume) one experiment under each seed, then write the aggregate report.

    ``experiment`` is either an Experiment (each seed is a copy with ``seed`` replaced; ``root`` defaults to its
    run directory) or a factory ``seed -> Experiment`` (then ``root`` is required) for setups where the seed
    changes how components are built. With ``share_sft`` the SFT policy is trained once (seed: the first of
    ``seeds``) and every seed starts from it, so seeds differ only in the RL phase the comparison is about.
    One driver at a time (:mod:`aopcore.storage.runlock`): another driver of ``root`` makes this refuse, or wait with ``wait``.
    """
    seeds = check_seeds(seeds)
    if root is None:
        if not isinstance(experiment, Experiment):
            raise TypeError("run_seeds: give root= when experiment is a factory")
        root = experiment.store.root
    root = Path(root)
    from aopcore.storage.runlock import driver_lock

    with driver_lock(root, wait=wait):  # one driver for the whole multi-seed run; each seed's run holds its own too
        return _run_seeds(experiment, seeds, root, share_sft, executor, aggregate)


def _run_seeds(
    experiment: Experiment | Callable[[int], Experiment],
    seeds: list[int],
    root: Path,
    share_sft: bool,
    executor: Any,
    aggregate: bool,
) -> MultiSeedResult:
    root.mkdir(parents=True, exist_ok=True)
    first = experiment if isinstance(experiment, Experiment) else experiment(seeds[0])
    _manifest(root, first, seeds, share_sft)
    policy = shared_policy(root, first, seeds[0]) if share_sft else None
    result = MultiSeedResult(root)
    for n, (s, exp) in enumerate(seed_experiments(experiment, seeds, root, policy).items(), start=1):
        log.info("seed %d (%d of %d): %s", s, n, len(seeds), exp.store.root)
        try:
            result.results[s] = exp.run(executor)
        except BaseException:
            log.error("seed %d stopped; its finished stages and the finished seeds are kept: rerun to resume", s)
            raise
    if aggregate:
        from aopcore.analysis.aggregate_report import write_aggregate

        result.files = write_aggregate(root)
    return result


def run_plan(plan: Any, executor: Any = None, allow_changes: bool = False, wait: bool = False) -> MultiSeedResult:
    """The CLI's path: a resolved config with ``experiment.seeds`` (see :mod:`aopcore.engine.build`)."""
    exp = plan.config.experiment
    return run_seeds(
        plan.build(allow_changes=allow_changes), exp.seeds, share_sft=exp.share_sft, executor=executor, wait=wait
    )
