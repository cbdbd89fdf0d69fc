"""Multi-process PPO: the trainer launches a data-parallel group for one training stage and serves it rewards.

The experiment (curricula, feedback calls, judging) stays in one process; only training fans out.
The group is started with ``accelerate launch`` (NCCL on GPUs; an accelerate config file such as
DeepSpeed ZeRO-1/2 passes through) or, on CPU, with ``torchrun`` (accelerate starts CPU groups only
through MPI), and each rank runs ``PPOPolicyTrainer.train_with``. The reward model is never loaded in
the workers: the main rank sends decoded texts back to this process, which scores them with whatever
RewardModel the experiment holds (a plugin, or an object handed in by an embedding application).

    python -m aopcore_hf.ppo_launch JOB.json     # what each rank runs; not meant to be called by hand
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
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

from aopcore import Prompt, RewardModel, RuntimeFailure, TrainStats
from aopcore.records import to_dict
from aopcore_hf.options import PPOOptions

log = logging.getLogger("aopcore")
AUTHKEY_ENV = "AOPCORE_REWARD_SERVICE_KEY"  # a per-launch random key; never written to disk


def train_distributed(options: PPOOptions, policy: Path, prompts: Sequence[Prompt], reward: RewardModel, *,
                      passes: int, out: Path, seed: int) -> TrainStats:
    out.mkdir(parents=True, exist_ok=True)
    authkey = secrets.token_bytes(16)
    with Listener(("127.0.0.1", 0), authkey=authkey) as listener, tempfile.TemporaryDirectory(prefix="aopcore-ppo-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({
            "options": options.model_dump(mode="json"), "policy": str(Path(policy).resolve()), "out": str(Path(out).resolve()),
            "prompts": [to_dict(p) for p in prompts], "passes": passes, "seed": seed, "address": list(listener.address),
        }))
        cmd = launch_command(options, job)
        log.info("ppo: %d processes: %s", options.num_processes, " ".join(cmd))
        # its own process group, so that stopping the launcher also stops every rank it started
        proc = subprocess.Popen(cmd, env={**os.environ, AUTHKEY_ENV: authkey.hex()}, start_new_session=True)
        try:
            stats = serve_rewards(listener, proc, reward)
        finally:
            stop_group(proc)
    if stats is None:
        raise RuntimeFailure(f"the {options.num_processes} PPO processes failed (exit status {proc.returncode}); their log is above")
    return stats


def launch_command(options: PPOOptions, job: Path) -> list[str]:
    from aopcore_hf.models import choose_device

    worker = ["-m", "aopcore_hf.ppo_launch", str(job)]
    n = str(options.num_processes)
    if options.accelerate_config or choose_device(options.device, options.dtype).device != "cpu":
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", n, "--main_process_port", str(free_port())]
        if options.accelerate_config:
            cmd += ["--config_file", options.accelerate_config]
        elif options.num_processes > 1:
            cmd += ["--multi_gpu"]
        return cmd + worker
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", n] + worker


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


def serve_rewards(listener: Listener, proc: subprocess.Popen, reward: RewardModel) -> TrainStats | None:
    """Answer the main rank's scoring requests until the group exits; returns its stats (None on failure)."""
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
            from aopcore_hf.ppo import score_and_book

            try:
                scores = score_and_book(reward, prompts, responses)
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
                raise
            conn.send(("ok", scores))
        elif kind == "done":
            stats = TrainStats.from_dict(payload)
    proc.wait()
    return stats if proc.returncode == 0 else None


def worker_main(job_path: str) -> None:
    from accelerate import Accelerator

    from aopcore_hf.models import choose_device
    from aopcore_hf.ppo import PPOPolicyTrainer
    from aopcore_hf.ppo_comm import AccelerateComm

    job = json.loads(Path(job_path).read_text())
    options = PPOOptions.model_validate(job["options"])
    accelerator = Accelerator(cpu=choose_device(options.device, options.dtype).device == "cpu")
    comm = AccelerateComm(accelerator)
    trainer = PPOPolicyTrainer(options)
    trainer.choice = replace(trainer.choice, device=str(accelerator.device))
    conn = Client(tuple(job["address"]), authkey=bytes.fromhex(os.environ[AUTHKEY_ENV])) if comm.is_main else None

    def score(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        assert conn is not None
        conn.send(("score", (list(prompts), list(responses))))
        status, value = conn.recv()
        if status != "ok":
            raise RuntimeError(f"the reward model failed: {value}")
        return value

    prompts = [Prompt.from_dict(p) for p in job["prompts"]]
    stats = trainer.train_with(comm, Path(job["policy"]), prompts, score, passes=job["passes"], out=Path(job["out"]), seed=job["seed"])
    if conn is not None:
        conn.send(("done", to_dict(stats)))
        conn.close()


if __name__ == "__main__":
    worker_main(sys.argv[1])
