"""The vLLM side of aopcore's vLLM engine: run by the vLLM environment's Python, never imported by aopcore.

vLLM lives in its own virtualenv (``.venv-vllm``: it pins a transformers older than aopcore's), so aopcore
starts this file there as a worker process and talks to it over a local socket (``multiprocessing.connection``,
authenticated with a per-worker key; stdlib on both sides). Only the standard library and vLLM are imported here.

Requests are ``(command, kwargs)``; replies ``("ok", value)`` or ``("error", "Type: message", traceback)``:

- ``start``: build ``vllm.LLM(**kwargs)`` (token ids in, token ids out: ``skip_tokenizer_init``).
- ``generate``: ``prompts`` (lists of token ids), ``params`` (``SamplingParams`` keywords), optional ``seeds``
  (one per prompt, so sampled answers do not depend on batching) -> lists of generated token ids.
- ``prompt_logprobs``: ``prompts`` -> the log-probability of each prompt's last token given the rest.
- ``reload``: ``path`` -> seconds; the engine's weights are replaced in place from that folder's safetensors
  (``collective_rpc("reload_weights")``), with no restart.
- ``stop``.
"""

from __future__ import annotations

import os
import sys
import time
import traceback


def _serve(address: str, authkey: bytes) -> None:
    from multiprocessing.connection import Client

    conn = Client(address, family="AF_UNIX", authkey=authkey)
    _exit_with_parent()
    llm = None
    while True:
        try:
            command, kwargs = conn.recv()
        except EOFError:  # aopcore went away: nothing left to serve
            return
        try:
            if command == "stop":
                conn.send(("ok", None))
                return
            if command == "start":
                t0 = time.perf_counter()
                from vllm import LLM

                llm = LLM(**kwargs)
                import vllm

                conn.send(("ok", {"seconds": time.perf_counter() - t0, "vllm": vllm.__version__}))
            elif command == "generate":
                conn.send(("ok", _generate(llm, **kwargs)))
            elif command == "prompt_logprobs":
                conn.send(("ok", _prompt_logprobs(llm, **kwargs)))
            elif command == "reload":
                t0 = time.perf_counter()
                llm.collective_rpc("reload_weights", kwargs={"weights_path": kwargs["path"]})
                llm.reset_prefix_cache()  # cached keys/values were computed by the old weights
                conn.send(("ok", time.perf_counter() - t0))
            else:
                conn.send(("error", f"ValueError: unknown command {command!r}", ""))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to aopcore, which decides
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))


def _exit_with_parent() -> None:
    """End when aopcore's process ends, however it ended (a SIGKILL runs no cleanup): nobody else can talk to us."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _generate(llm, prompts, params, seeds=None):
    from vllm import SamplingParams

    if seeds is None:
        sampling = SamplingParams(**params)
    else:
        sampling = [SamplingParams(**params, seed=s) for s in seeds]
    outputs = llm.generate([{"prompt_token_ids": list(p)} for p in prompts], sampling, use_tqdm=False)
    return [list(o.outputs[0].token_ids) for o in outputs]


def _prompt_logprobs(llm, prompts):
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
    outputs = llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=False)
    values = []
    for prompt, out in zip(prompts, outputs):
        last = out.prompt_logprobs[-1]  # {token id: Logprob} for the prompt's last position (the chosen token included)
        values.append(float(last[prompt[-1]].logprob))
    return values


if __name__ == "__main__":
    _serve(sys.argv[1], bytes.fromhex(os.environ.pop("AOPCORE_VLLM_AUTHKEY")))
