"""A vLLM engine in a worker process of the vLLM environment, shared by everything in this process that asks for it.

vLLM cannot live in aopcore's environment (it pins an older transformers: docs/gpu.md "vLLM"), so the engine runs
in ``plugins/aopcore_hf/vllm/worker.py`` under the vLLM environment's Python and this module speaks to it over a
Unix socket. Token ids go in and come out; tokenising and decoding stay here, with aopcore's tokenizer. Starting
an engine costs tens of seconds, so engines are kept per role and model shape (``shared_engine``) and new weights
(another checkpoint, or the policy after a training step) are handed over by folder (``reload``), not by restart.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aopcore.errors import InputError, RuntimeFailure

log = logging.getLogger(__name__)
WORKER = Path(__file__).with_name("worker.py")
ROOT = Path(__file__).resolve().parents[3]  # the source checkout (plugins/aopcore_hf/vllm/ -> root)
START_TIMEOUT_S = float(os.environ.get("AOPCORE_VLLM_START_TIMEOUT", "900"))
# keys in config.json that do not change the shape of the model: checkpoints that differ only there share an engine
_NOT_SHAPE = {"dtype", "torch_dtype", "transformers_version", "_name_or_path", "architectures_version", "use_cache"}


def vllm_python() -> str | None:
    """The Python that has vLLM: $AOPCORE_VLLM_PYTHON (set but empty: none), the checkout's .venv-vllm, or this one if
    vLLM imports here."""
    if "AOPCORE_VLLM_PYTHON" in os.environ:
        return os.environ["AOPCORE_VLLM_PYTHON"] or None
    candidate = ROOT / ".venv-vllm" / "bin" / "python"
    if candidate.exists():
        return str(candidate)
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    return None


def vllm_available() -> bool:
    """Whether a vLLM environment is here to use (what ``engine = "auto"`` asks): a Python found that can run."""
    python = vllm_python()
    return python is not None and os.access(python, os.X_OK)


def require_vllm_python(what: str) -> str:
    python = vllm_python()
    if python is not None and not os.access(python, os.X_OK):
        raise InputError(
            f"AOPCORE_VLLM_PYTHON={python}: no such Python (it should name a Python that has vllm installed)"
        )
    if python is None:
        raise InputError(
            f"{what} needs vLLM: run `bash scripts/setup-vllm.sh` (it makes .venv-vllm) or set "
            "AOPCORE_VLLM_PYTHON to a Python that has vllm installed (docs/gpu.md)"
        )
    return python


def model_shape_key(folder: str | Path) -> str:
    """What must match for two checkpoints to share one engine: their config.json, less dtype and bookkeeping."""
    config = json.loads((Path(folder) / "config.json").read_text())
    return hashlib.sha256(
        json.dumps({k: v for k, v in config.items() if k not in _NOT_SHAPE}, sort_keys=True).encode()
    ).hexdigest()[:16]


class VLLMEngine:
    """One ``vllm.LLM`` in a worker process. Not thread-safe across calls: one request at a time (a lock)."""

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        seed: int = 0,
        max_model_len: int = 2048,
        gpu_memory_utilization: float = 0.3,
        kv_cache_gib: int = 2,
        enforce_eager: bool | None = None,
        python: str | None = None,
    ) -> None:
        from multiprocessing.connection import Listener

        self.python = python or require_vllm_python("generation with vLLM")
        self.model = str(model)
        self.weights = self.model  # the folder whose weights the engine holds now
        self.max_model_len = max_model_len
        self.stamp: tuple | None = None  # what its users know of those weights (vllm.generation: names, times, sizes)
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="aopcore-vllm-"))
        self.log_path = self._dir / "worker.log"
        authkey = secrets.token_bytes(32)
        listener = Listener(str(self._dir / "socket"), family="AF_UNIX", authkey=authkey)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update(
            AOPCORE_VLLM_AUTHKEY=authkey.hex(),
            VLLM_ENABLE_V1_MULTIPROCESSING="0",
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
            TOKENIZERS_PARALLELISM="false",
        )
        env.setdefault(
            "VLLM_CPU_KVCACHE_SPACE", str(int(kv_cache_gib))
        )  # the CPU backend's KV cache in GiB (its default: 4)
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        # by path: the vLLM environment has no aopcore; the worker imports only the standard library and vLLM
        with open(self.log_path, "wb") as out:
            self._proc = subprocess.Popen(
                [self.python, str(WORKER), listener.address],
                cwd=self._dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._conn = self._accept(listener)
        cuda = shutil.which("nvidia-smi") is not None
        self.info = self._call(
            "start",
            timeout=START_TIMEOUT_S,
            model=self.model,
            tokenizer=self.model,
            skip_tokenizer_init=True,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            enforce_eager=not cuda if enforce_eager is None else enforce_eager,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=True,
        )
        log.info("vLLM %s engine for %s started in %.1f s", self.info["vllm"], self.model, self.info["seconds"])
        atexit.register(self.close)

    def _accept(self, listener) -> Any:
        result: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: result.update(conn=listener.accept()), daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.5)
            if self._proc.poll() is not None and thread.is_alive():
                listener.close()
                raise RuntimeFailure(
                    f"the vLLM worker ({self.python}) exited with status {self._proc.returncode} before "
                    f"connecting:\n{self.log_tail()}"
                )
        listener.close()
        return result["conn"]

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no worker log)"

    def _call(self, command: str, *, timeout: float | None = None, **kwargs) -> Any:
        with self._lock:
            if self._conn is None:
                raise RuntimeFailure("the vLLM engine was closed")
            try:
                self._conn.send((command, kwargs))
                while not self._conn.poll(1.0):  # wake up now and then to notice a worker that died
                    if self._proc.poll() is not None:
                        raise EOFError
                    if timeout is not None:
                        timeout -= 1.0
                        if timeout <= 0:
                            raise RuntimeFailure(
                                f"vLLM did not answer {command!r} in time; worker log:\n{self.log_tail()}"
                            )
                reply = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise RuntimeFailure(
                    f"the vLLM worker stopped during {command!r} (status {self._proc.poll()}):\n{self.log_tail()}"
                ) from exc
        if reply[0] == "error":
            raise RuntimeFailure(f"vLLM {command}: {reply[1]}\n{reply[2]}")
        return reply[1]

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        stop_token_ids: Sequence[int] = (),
        seed: int | None = None,
        ignore_eos: bool = False,
        seeds: Sequence[int] | None = None,
    ) -> list[list[int]]:
        """Token ids generated for each prompt (greedy when temperature is 0). A seed gives each prompt its own
        stream (seed + index), so a sample does not depend on what else is in the batch; ``seeds`` names each
        prompt's seed instead (the feedback LLM's, from its request: the same prompt, the same stream)."""
        if not prompts:
            return []
        params = dict(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k if top_k > 0 else -1,
            stop_token_ids=list(stop_token_ids),
            ignore_eos=ignore_eos,
            detokenize=False,
        )
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        if seeds is None and seed is not None:
            seeds = [seed + i for i in range(len(prompts))]
        seeds = None if temperature == 0 or seeds is None else [int(s) for s in seeds]
        return self._call("generate", prompts=[list(p) for p in prompts], params=params, seeds=seeds)

    def prompt_logprobs(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        """log P(last token | the tokens before it) for each prompt."""
        return self._call("prompt_logprobs", prompts=[list(p) for p in prompts]) if prompts else []

    def reload(self, folder: str | Path) -> float:
        """Replace the engine's weights with those in ``folder`` (safetensors of the same model shape); seconds taken."""
        seconds = self._call("reload", path=str(folder))
        self.weights = str(folder)
        return seconds

    def close(self) -> None:
        if getattr(self, "_conn", None) is not None:
            try:
                self._call("stop", timeout=30)
            except Exception:  # noqa: BLE001 - stopping is best effort; the process is ended below
                pass
            self._conn.close()
            self._conn = None
        proc = getattr(self, "_proc", None)
        if proc is not None:
            stop_process(proc)
        shutil.rmtree(getattr(self, "_dir", ""), ignore_errors=True)


def stop_process(proc: subprocess.Popen) -> None:
    """End a vLLM process (engine worker or server): SIGTERM, 30 s to exit, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_engines: dict[tuple, VLLMEngine] = {}


def shared_engine(role: str, model: str | Path, **options: Any) -> VLLMEngine:
    """The engine of ``role`` ("policy", "feedback", ...) for this model shape and options, started on first use.
    A policy checkpoint of the same shape reuses it after ``reload``; another shape replaces it."""
    key = (role, model_shape_key(model), tuple(sorted(options.items())))
    engine = _engines.get(key)
    if engine is None:
        for old in [k for k in _engines if k[0] == role]:  # one engine per role: free the memory of the last shape
            _engines.pop(old).close()
        engine = _engines[key] = VLLMEngine(str(model), **options)
    return engine


def close_all() -> None:
    while _engines:
        _engines.popitem()[1].close()
