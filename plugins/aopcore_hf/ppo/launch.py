"""Multi-process PPO: the trainer launches a data-parallel group for one training stage and serves it rewards.

The experiment (curricula, feedback calls, judging) stays in one process; only training fans out.
The group is started with ``accelerate launch`` (NCCL on GPUs; an accelerate config file such as
DeepSpeed ZeRO-1/2 passes through) or, on CPU, with ``torchrun`` (accelerate starts CPU groups only
through MPI), and each rank runs ``PPOPolicyTrainer.train_with``. The reward model is never loaded in
the workers: the main rank sends decoded texts back to this process, which scores them with whatever
RewardModel the experiment holds (a plugin, or an object handed in by an embedding application).

Across machines (``num_machines > 1``) the same launchers run once per machine and meet at the
rendezvous on machine 0 (``main_address:main_port``). Machine 0 is where the training stage runs: its
launcher holds global rank 0, which talks to the reward service here, so the per-launch key never
leaves this machine. The other machines run ``join``, a loop that starts their share of ranks for
each training stage; those ranks receive the job (policy, prompts, seed) from rank 0 over the group.

    python -m aopcore_hf.ppo.worker JOB.json                          # what each rank runs (not by hand)
    python -m aopcore_hf.ppo.launch join CONFIG.toml --machine-rank K  # on machine K of a multi-machine group

This module launches and serves; the ranks' side is :mod:`aopcore_hf.ppo.worker` (which imports the trainer),
so the trainer and its launcher do not import each other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from aopcore import Prompt, RewardModel, RuntimeFailure, TrainStats
from aopcore.records import to_dict
from aopcore_hf.options import PPOOptions
from aopcore_hf.ppo.scoring import score_and_book

log = logging.getLogger("aopcore")
AUTHKEY_ENV = "AOPCORE_REWARD_SERVICE_KEY"  # a per-launch random key; never written to disk


def train_distributed(
    options: PPOOptions,
    policy: Path,
    prompts: Sequence[Prompt],
    reward: RewardModel,
    *,
    passes: int,
    out: Path,
    seed: int,
) -> TrainStats:
    out.mkdir(parents=True, exist_ok=True)
    authkey = secrets.token_bytes(16)
    host = options.reward_service_address
    with Listener((host, 0), authkey=authkey) as listener, tempfile.TemporaryDirectory(prefix="aopcore-ppo-") as tmp:
        job = Path(tmp) / "job.json"
        # the main rank runs on this machine: a wildcard listener is reached through the loopback
        connect = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        job.write_text(
            json.dumps(
                {
                    "options": options.model_dump(mode="json"),
                    "policy": str(Path(policy).resolve()),
                    "out": str(Path(out).resolve()),
                    "prompts": [to_dict(p) for p in prompts],
                    "passes": passes,
                    "seed": seed,
                    "address": [connect, listener.address[1]],
                }
            )
        )
        cmd = launch_command(options, job)
        where = (
            f" on {options.num_machines} machines (rendezvous {options.main_address}:{options.main_port})"
            if options.num_machines > 1
            else ""
        )
        log.info("ppo: %d processes%s: %s", options.num_processes, where, " ".join(cmd))
        # its own process group, so that stopping the launcher also stops every rank it started
        proc = subprocess.Popen(cmd, env={**os.environ, AUTHKEY_ENV: authkey.hex()}, start_new_session=True)
        try:
            stats = serve_rewards(listener, proc, reward)
        finally:
            stop_group(proc)
    if stats is None:
        raise RuntimeFailure(
            f"the {options.num_processes} PPO processes failed (exit status {proc.returncode}); their log is above"
        )
    return stats


def launch_command(
    options: PPOOptions, job: Path, *, machine_rank: int = 0, worker_module: str = "aopcore_hf.ppo.worker"
) -> list[str]:
    """The launcher command for this machine's share of the group (all of it when num_machines is 1).

    ``options``: PPO's launcher settings (the TRL trainers pass theirs in the same shape); ``worker_module``: what each
    rank runs with the job file."""
    from aopcore_hf.models import choose_device

    worker = ["-m", worker_module, str(job)]
    n, machines = options.num_processes, options.num_machines
    if options.accelerate_config or choose_device(options.device, options.dtype).device != "cpu":
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(n)]
        if machines > 1:
            cmd += [
                "--num_machines",
                str(machines),
                "--machine_rank",
                str(machine_rank),
                "--main_process_ip",
                options.main_address,
                "--main_process_port",
                str(options.main_port),
            ]
        else:
            cmd += ["--main_process_port", str(free_port())]
        if options.accelerate_config:
            cmd += ["--config_file", options.accelerate_config]
        elif n > 1:
            cmd += ["--multi_gpu"]
        return cmd + worker
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    if machines > 1:  # static rendezvous: global ranks follow machine ranks, so rank 0 is on machine 0
        return (
            torchrun
            + [
                "--nnodes",
                str(machines),
                "--node_rank",
                str(machine_rank),
                "--nproc_per_node",
                str(n // machines),
                "--master_addr",
                options.main_address,
                "--master_port",
                str(options.main_port),
            ]
            + worker
        )
    return torchrun + ["--standalone", "--nnodes", "1", "--nproc_per_node", str(n)] + worker


def stop_group(proc: subprocess.Popen) -> None:
    """Stop the launcher and every rank it started: politely, then not."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left
    proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_rewards(
    listener: Listener,
    proc: subprocess.Popen,
    reward: RewardModel,
    handlers: Mapping[str, Callable[[Any], Any]] | None = None,
) -> TrainStats | None:
    """Answer the main rank's scoring requests until the group exits; returns its stats (None on failure).

    ``handlers``: further requests the main rank may send (``(kind, payload)`` answered ``("ok", handler(payload))``);
    the TRL trainers serve the curriculum's prompt stream this way."""
    handlers = dict(handlers or {})
    accepted: queue.Queue[Connection] = queue.Queue()

    def accept() -> None:
        while True:
            try:
                accepted.put(listener.accept())
                return
            except AuthenticationError:
                continue  # not our main rank (wrong key); keep waiting for it
            except OSError:
                return  # the group died before connecting; the loop below notices

    threading.Thread(target=accept, daemon=True).start()
    conn: Connection | None = None
    stats: TrainStats | None = None
    while True:
        if conn is None:
            try:
                conn = accepted.get(timeout=0.2)
            except queue.Empty:
                if proc.poll() is not None:
                    break
                continue
        try:
            ready = conn.poll(0.2)
            message = conn.recv() if ready else None
        except (EOFError, OSError):
            break  # the main rank closed its end (done, or died)
        if message is None:
            if proc.poll() is not None:
                break
            continue
        kind, payload = message
        if kind == "score":
            prompts, responses = payload
            try:
                scores = score_and_book(reward, prompts, responses)
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
                raise
            conn.send(("ok", scores))
        elif kind in handlers:
            try:
                answer = handlers[kind](payload)
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
                raise
            conn.send(("ok", answer))
        elif kind == "done":
            stats = TrainStats.from_dict(payload)
    proc.wait()
    return stats if proc.returncode == 0 else None


def check_joined(local: PPOOptions, main: PPOOptions, rank: int) -> None:
    """A joined machine must launch the group the main machine expects (else the ranks would disagree on shares)."""
    keys = ("num_processes", "num_machines", "main_address", "main_port", "device", "dtype", "accelerate_config")
    differ = [k for k in keys if getattr(local, k) != getattr(main, k)]
    if differ:
        raise RuntimeError(
            f"rank {rank}: this machine's trainer options differ from machine 0's in {', '.join(differ)}; "
            "join with the experiment's config"
        )


def join(
    config: Path, machine_rank: int, *, overrides: Sequence[str] = (), once: bool = False, retry_s: float = 5.0
) -> int:
    """Machine ``machine_rank`` of a multi-machine group: start this machine's ranks for each training stage.

    Runs until stopped (or after one stage with ``once``). A launcher that finds no rendezvous (machine 0 is
    between stages) times out and is started again.
    """
    from aopcore.errors import InputError

    options = joined_options(config, overrides)
    if not 1 <= machine_rank < options.num_machines:
        raise InputError(
            f"--machine-rank must be in 1..{options.num_machines - 1} (trainer.num_machines = {options.num_machines}); "
            "machine 0 is the one that runs the experiment"
        )
    with tempfile.TemporaryDirectory(prefix="aopcore-ppo-join-") as tmp:
        spec = Path(tmp) / "join.json"
        spec.write_text(json.dumps({"options": options.model_dump(mode="json")}))
        while True:
            cmd = launch_command(options, spec, machine_rank=machine_rank)
            log.info(
                "ppo join: machine %d of %d, rendezvous %s:%d",
                machine_rank,
                options.num_machines,
                options.main_address,
                options.main_port,
            )
            proc = subprocess.Popen(cmd, start_new_session=True)
            try:
                status = proc.wait()
            finally:
                stop_group(proc)
            if once:
                return status
            if status:
                time.sleep(retry_s)


def joined_options(config: Path, overrides: Sequence[str] = ()) -> PPOOptions:
    """The [trainer] section of the experiment's config: a joining machine needs its launcher settings only
    (no data, no API keys; paths do not matter, the job comes from rank 0)."""
    from pydantic import ValidationError

    from aopcore.engine.config import apply_overrides, read_toml
    from aopcore.errors import InputError
    from aopcore.options import validation_context

    raw, _ = read_toml(Path(config))
    apply_overrides(raw, list(overrides))
    section = dict(raw.get("trainer") or {})
    if section.pop("plugin", None) != "ppo":
        raise InputError(f'{config}: trainer.plugin must be "ppo" to join a PPO group')
    try:  # paths resolve against the config's folder, as on machine 0 (not checked: the job names the files)
        options = PPOOptions.model_validate(section, context=validation_context(Path(config).parent, check_paths=False))
    except ValidationError as exc:
        raise InputError(
            *(
                f"{config}: trainer.{'.'.join(map(str, e['loc']))}: {e['msg']}".replace("trainer.: ", "trainer: ")
                for e in exc.errors()
            )
        ) from None
    if options.num_machines < 2:
        raise InputError(
            f"{config}: trainer.num_machines is {options.num_machines}; joining needs a group of several machines"
        )
    return options


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from aopcore.errors import InputError

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["join"]:
        print(
            "usage: python -m aopcore_hf.ppo.launch join CONFIG --machine-rank K "
            "(the ranks of a group run python -m aopcore_hf.ppo.worker JOB.json)",
            file=sys.stderr,
        )
        return 2
    parser = argparse.ArgumentParser(
        prog="python -m aopcore_hf.ppo.launch join",
        description="Run this machine's share of a multi-machine PPO group, stage after stage.",
    )
    parser.add_argument("config", type=Path, help="the experiment's config (its [trainer] section)")
    parser.add_argument("--machine-rank", type=int, required=True, help="this machine's rank, 1..num_machines-1")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    parser.add_argument("--once", action="store_true", help="exit after one training stage")
    ns = parser.parse_args(args[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        return join(ns.config, ns.machine_rank, overrides=ns.set, once=ns.once)
    except InputError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
