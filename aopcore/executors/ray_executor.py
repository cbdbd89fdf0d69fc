"""The Ray executor: stages whose dependencies are done run at the same time, as Ray tasks.

The driver (``aopcore run`` with ``[experiment] executor = "ray"``) walks ``Experiment.stages()``:
a stage is submitted once its deps (and ``Experiment.waits_for``, which keeps twin reuse exactly as in
order) are done, asking for the resources its components declare (see :mod:`.resources`). Each task
builds the experiment on its worker from the config file (``Experiment.rebuild``, set by ``aopcore.engine.build``,
components built lazily, so a task loads only what its stage uses) and calls ``run_stage``. Stage
records land in the run directory as under the local executor, so the two resume each other; the run
directory, the config and its data must be on storage every node sees.

Progress: the driver logs each stage it queues and each that finishes with its host and worker; the
workers' own ``start``/``done`` lines reach the driver's console through Ray, prefixed with pid and node.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aopcore.errors import AopcoreError, InputError, RuntimeFailure
from aopcore.executors.resources import is_lazy, ray_options, stage_resources, unwrap

log = logging.getLogger("aopcore")

# the Experiment fields a worker takes from the driver's experiment (the rest comes from the config);
# they differ from plan.build() for multi-seed runs (name, output_dir, seed, snapshot, initial_policy)
CARRIED_FIELDS = (
    "name",
    "output_dir",
    "seed",
    "snapshot",
    "initial_policy",
    "budget",
    "judging",
    "categories",
    "keep_checkpoints",
)
COMPONENT_FIELDS = ("trainer", "reward", "judge", "feedback", "embedder")
NEEDS_CONFIG = (
    "the Ray executor builds components on each worker from a config file; an Experiment built from Python "
    "objects runs with the local executor: call experiment.run() without an executor"
)


def import_ray() -> Any:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # every stage's start line names its own stage: show them all
    try:
        import ray
    except ImportError:
        raise InputError('experiment.executor = "ray" needs Ray: pip install "aopcore[ray]"') from None
    return ray


class RayExecutor:
    """Run an experiment's stages as Ray tasks, independent stages at the same time.

    ``address``: the cluster to join (``"auto"``, ``"ray://host:10001"``); None joins ``RAY_ADDRESS`` if set,
    else starts a Ray instance on this machine (``init_options`` go to ``ray.init``, e.g. ``num_cpus``).
    """

    def __init__(self, address: str | None = None, *, init_options: Mapping[str, Any] | None = None) -> None:
        self.address = address
        self.init_options = dict(init_options or {})
        self._started = False
        self._warned_gpu = False

    # ---- driver side ------------------------------------------------------------------------
    def check(self, experiment: Any) -> None:
        """Before the run directory is touched: refuse, in one line, an experiment the workers cannot rebuild
        (one built from Python objects), and connect to the cluster (an unreachable address is bad input)."""
        _config_source(experiment)
        self._connect(import_ray())

    def run(self, experiment: Any) -> None:
        source = _config_source(experiment)
        ray = import_ray()
        self._connect(ray)
        done: set[str] = set()
        for stage in experiment.stages():
            if experiment.store.is_done(stage.id):
                log.info("skip  %-40s (done)", stage.id)
                done.add(stage.id)
        pending = [s for s in experiment.stages() if s.id not in done]
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        requests = {s.id: self._fit(nodes, s.id, stage_resources(experiment, s)) for s in pending}
        plain, gpu = ray.remote(_run_stage_task), ray.remote(max_calls=1)(_run_stage_task)  # CUDA state is per process
        # what every task gets besides its stage id: how to rebuild the experiment, and how the driver runs
        args = (
            experiment.rebuild,
            str(source[0]),
            list(source[1]),
            {name: getattr(experiment, name) for name in CARRIED_FIELDS},
            os.getcwd(),
            log.isEnabledFor(logging.DEBUG),
            os.environ.get("OMP_NUM_THREADS"),
        )
        running: dict[Any, Any] = {}
        failure: BaseException | None = None
        try:
            while pending or running:
                for stage in [s for s in pending if failure is None and self._ready(experiment, s, done)]:
                    remote = gpu if requests[stage.id].get("num_gpus") else plain
                    options = ray_options(requests[stage.id])
                    running[remote.options(**options, name=stage.id.replace("/", ":")).remote(stage.id, *args)] = stage
                    pending.remove(stage)
                    log.info("queue %-40s %s", stage.id, _describe(requests[stage.id]))
                if not running:
                    if failure is not None:
                        break
                    waiting = {
                        s.id: [d for d in (*s.deps, *experiment.waits_for(s.id)) if d not in done] for s in pending
                    }
                    raise RuntimeFailure(
                        f"no stage can start; waiting: {waiting}"
                    )  # a bug in the graph, never bad input
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    stage = running.pop(ref)
                    error = self._finish(ray, ref, stage, experiment, running)
                    if error is None:
                        done.add(stage.id)
                    failure = failure or error  # the first failure is raised once the running stages have ended
        except BaseException:
            for ref in running:  # an interrupted driver stops its stages; their partial writes are swept on resume
                ray.cancel(ref, force=True)
            raise
        if failure is not None:
            raise failure

    @staticmethod
    def _ready(experiment: Any, stage: Any, done: set[str]) -> bool:
        return all(d in done for d in stage.deps) and all(w in done for w in experiment.waits_for(stage.id))

    @staticmethod
    def _finish(ray: Any, ref: Any, stage: Any, experiment: Any, running: dict[Any, Any]) -> BaseException | None:
        """Log a finished task (where it ran, what still runs); its error, if it failed."""
        try:
            info = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - reported as the stage's failure
            error = _unwrap(exc, stage.id)
            log.error("fail  %-40s %s", stage.id, error)
            return error
        where = f"{info['host']} {info['worker']}"
        state = f"{info['wall_s']:.1f}s on {where}" if info["ran"] else f"(done elsewhere) on {where}"
        others = ", ".join(s.id for s in running.values())
        log.info("done  %-40s %s%s", stage.id, state, f"; running: {others}" if others else "")
        if experiment.after_stage and info["ran"]:
            experiment.after_stage(stage.id)
        return None

    def _connect(self, ray: Any) -> None:
        if ray.is_initialized():
            return
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "logging_level": logging.WARNING}
        address = self.address or os.environ.get("RAY_ADDRESS")
        if not address:  # a Ray instance of our own: small object store, we pass only stage ids and small records
            options["object_store_memory"] = 200 * 1024 * 1024
        options.update(self.init_options)
        try:
            ray.init(address=address, **options)
        except ConnectionError as exc:
            raise InputError(f"experiment.ray_address: cannot reach a Ray cluster at {address!r} ({exc})") from None
        self._started = True
        log.info("ray: %s", _describe_cluster(ray))

    def close(self) -> None:
        """Disconnect (and stop the Ray instance this executor started, if any)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def _fit(self, nodes: list[dict[str, float]], stage_id: str, request: dict[str, float]) -> dict[str, float]:
        """Check a request against the cluster's nodes; GPU requests on a cluster without GPUs are dropped (device=auto)."""
        names = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
        if request.get("num_gpus") and not any(n.get("GPU") for n in nodes):
            if not self._warned_gpu:
                log.warning("ray: the cluster has no GPU; stages that would use one run on CPUs")
                self._warned_gpu = True
            request = {k: v for k, v in request.items() if k != "num_gpus"}
        if nodes and not any(all(n.get(names.get(k, k), 0) >= v for k, v in request.items()) for n in nodes):
            raise InputError(
                f"stage {stage_id} asks for {_describe(request)}, more than any node of the Ray cluster has"
            )
        return request


def _config_source(experiment: Any) -> tuple[Path, tuple[str, ...]]:
    source = getattr(experiment, "source", None)
    components = {f: unwrap(getattr(experiment, f, None)) for f in COMPONENT_FIELDS}
    live = [f for f, c in components.items() if c is not None and not is_lazy(c)]
    if source is None or live or getattr(experiment, "rebuild", None) is None:
        raise InputError(NEEDS_CONFIG)
    return Path(source[0]).resolve(), tuple(source[1])


def _unwrap(exc: BaseException, stage_id: str) -> BaseException:
    """The stage's own error where it is one of ours (bad input stays exit status 2), else a RuntimeFailure naming it."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, InputError):  # one problem per line, as raised (pickling joined them)
        return InputError(*"\n".join(cause.problems).splitlines())
    if isinstance(cause, AopcoreError):
        return cause
    from aopcore.oserrors import environment_error, os_error_line

    machine = environment_error(cause) if cause is not None else None
    if machine is not None:  # a full disk on a worker: the same one line as locally
        return RuntimeFailure(f"stage {stage_id} failed on a Ray worker: {os_error_line(machine)}")
    last = (str(exc).strip().splitlines() or [""])[-1]  # e.g. a worker that died: Ray's own one-line reason
    what = f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(exc).__name__}: {last}"
    log.debug("stage %s failed:\n%s", stage_id, exc)
    return RuntimeFailure(f"stage {stage_id} failed on a Ray worker: {what}")


def _describe(request: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(request.items()))


def _describe_cluster(ray: Any) -> str:
    total = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return f"{nodes} node(s), {total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs"


# ---- worker side ----------------------------------------------------------------------------
_built: dict[tuple[Any, ...], Any] = {}  # experiments built in this worker process, reused by its next tasks


def _run_stage_task(
    stage_id: str,
    rebuild: Any,
    config: str,
    overrides: list[str],
    carried: dict[str, Any],
    cwd: str,
    verbose: bool,
    threads: str | None,
) -> dict[str, Any]:
    """One stage on a worker: build the experiment from its config with ``rebuild`` (the driver experiment's
    ``Experiment.rebuild``, i.e. :func:`aopcore.engine.build.rebuild`; once per worker process), run the stage."""
    from aopcore.progress import enable_console_progress

    # Ray sets OMP_NUM_THREADS to a task's CPUs (1); float sums depend on the thread count, so a stage computes
    # bit for bit what the local executor computes only with the thread count a local run has on this machine
    # (its default, or the driver's OMP_NUM_THREADS). Torch reads it when first imported, after this.
    if threads is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = threads

    if Path(cwd).is_dir():  # relative paths in overrides mean what they meant to the driver
        os.chdir(cwd)
    enable_console_progress(verbose, sys.stderr)
    key = (config, tuple(overrides), carried["name"], str(carried["output_dir"]), carried["seed"])
    experiment = _built.get(key)
    if experiment is None:
        experiment = rebuild(config, overrides, carried)
        _built[key] = experiment
    import ray

    from aopcore.executors.lock import held_by_stage

    gpus = ray.get_gpu_ids()
    experiment.worker = f"ray:{os.getpid()}" + (f" gpu {','.join(map(str, gpus))}" if gpus else "")
    started = time.perf_counter()
    with held_by_stage(experiment.store.root):  # a driver resuming after a crash waits for this stage to end
        ran = experiment.run_stage(stage_id)
    record = experiment.store.stage_file(stage_id)
    wall = time.perf_counter() - started
    if ran and record.exists():
        wall = json.loads(record.read_text()).get("wall_s", wall)
    return {"ran": ran, "host": socket.gethostname(), "worker": experiment.worker, "wall_s": wall}
