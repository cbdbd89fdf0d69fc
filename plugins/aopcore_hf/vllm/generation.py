"""The policy's generation through vLLM (``generation_backend = "vllm"``): evaluation, test answers and PPO rollouts.

One engine per process serves the policy (``engine.shared_engine("policy", ...)``, started on first use, tens of
seconds). Checkpoints are handed to it by folder: evaluating another checkpoint of the same model reloads its weights
in place, and PPO writes the weights it is training into a scratch folder before each step's rollouts and reloads
them, as TRL's vLLM colocate mode does, so rollouts come from the current policy without restarting the engine.
vLLM computes in bfloat16 by default (``vllm_dtype``); PPO recomputes every log-probability with the trained model,
so rollouts sampled from the bf16 copy only make PPO's first epoch slightly off-policy, which its clipping absorbs.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aopcore_hf.generation import GenerationSettings, Rollout

ENGINE_DTYPES = {"auto": "bfloat16", "bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}


def local_folder(spec: str) -> str:
    """A folder vLLM and ``reload`` can read: local paths as they are, hub ids through the hub cache."""
    if Path(spec).is_dir():
        return spec
    from huggingface_hub import snapshot_download

    return snapshot_download(spec, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"])


def _weights_stamp(folder: str) -> tuple:
    return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in Path(folder).glob("*.safetensors")))


def fit_length(folder: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with max_model_len no longer than the model's positions (vLLM refuses more)."""
    import json

    config = json.loads((Path(folder) / "config.json").read_text())
    positions = config.get("max_position_embeddings") or config.get("n_positions")
    return {**options, "max_model_len": min(options["max_model_len"], positions)} if positions else options


def sampling(settings: GenerationSettings) -> dict[str, Any]:
    """GenerationSettings as vLLM sampling keywords (temperature 0: greedy)."""
    if not settings.do_sample:
        return dict(temperature=0.0)
    return dict(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)


class VLLMPolicy:
    """Generation for a HFPolicyBase through the shared policy engine."""

    def __init__(
        self,
        *,
        dtype: str = "auto",
        max_model_len: int = 2048,
        seed: int = 0,
        kv_cache_gib: int = 2,
        gpu_memory_utilization: float = 0.3,
    ) -> None:
        self.engine_options = dict(
            dtype=ENGINE_DTYPES[dtype],
            max_model_len=max_model_len,
            seed=seed,
            kv_cache_gib=kv_cache_gib,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        self._sync: Path | None = None  # where PPO writes the weights it trains
        self.reload_seconds: list[float] = []

    def engine_for(self, folder: str):
        from aopcore_hf.vllm.engine import shared_engine

        engine = shared_engine("policy", folder, **fit_length(folder, self.engine_options))
        stamp = (folder, _weights_stamp(folder))
        if engine.stamp is None and engine.weights == folder:
            engine.stamp = stamp  # just started on this folder
        elif engine.stamp != stamp:  # another checkpoint, or this folder rewritten (PPO's weights after a step)
            self.reload_seconds.append(engine.reload(folder))
            engine.stamp = stamp
        return engine

    def generate(
        self,
        folder: str,
        queries: Sequence[list[int]],
        settings: GenerationSettings,
        *,
        seed: int | None,
        eos: int | None,
    ) -> list[list[int]]:
        engine = self.engine_for(folder)
        out = engine.generate(
            queries,
            max_tokens=settings.max_new_tokens,
            stop_token_ids=[eos] if eos is not None else [],
            seed=seed,
            **sampling(settings),
        )
        return [_cut(r, eos) for r in out]

    def rollouts(self, model, tokenizer, queries: Sequence[list[int]], settings: GenerationSettings) -> list[Rollout]:
        """Rollouts from the weights ``model`` holds now: written to a scratch folder and reloaded into the engine."""
        import torch

        if self._sync is None:
            self._sync = Path(tempfile.mkdtemp(prefix="aopcore-vllm-sync-"))
        t0 = time.perf_counter()
        model.save_pretrained(self._sync)
        self.save_seconds = time.perf_counter() - t0
        seed = int(torch.randint(0, 2**31 - 1, (1,)))  # from torch's generator: reproducible and restored on resume
        responses = self.generate(str(self._sync), queries, settings, seed=seed, eos=tokenizer.eos_token_id)
        return [Rollout(list(q), r) for q, r in zip(queries, responses)]

    def close(self) -> None:
        if self._sync is not None:
            shutil.rmtree(self._sync, ignore_errors=True)
            self._sync = None


def _cut(response: list[int], eos: int | None) -> list[int]:
    return response[: response.index(eos) + 1] if eos is not None and eos in response else response
