"""Evaluation answers through vLLM (``generation_backend = "vllm"``), imported only when chosen.

Written against vLLM's documented offline API (``LLM(...).generate`` with token-id prompts and
``SamplingParams``; temperature 0 is greedy). It has NOT been run by aopcore's tests or its GPU check:
vLLM is too large to bring to the offline GPU machine those run on. Training rollouts never use it,
since vLLM holds its own copy of the weights, not the policy being trained.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aopcore.errors import InputError
from aopcore_hf.generation import GenerationSettings


class VLLMGenerator:
    """One vLLM engine per checkpoint folder; ``close`` frees its GPU memory before training resumes."""

    def __init__(self, model_path: str, *, dtype: str = "auto", seed: int = 0, gpu_memory_utilization: float = 0.3) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:  # a config chose vllm on a machine without it
            raise InputError("generation_backend = \"vllm\" needs the vllm package (pip install vllm)") from exc
        self.model_path = model_path
        self.llm: Any = LLM(model=model_path, tokenizer=model_path, dtype=dtype, seed=seed,
                            gpu_memory_utilization=gpu_memory_utilization)

    def generate(self, queries: Sequence[list[int]], settings: GenerationSettings, *, seed: int | None, eos: int | None) -> list[list[int]]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=settings.temperature if settings.do_sample else 0.0,
                                top_p=settings.top_p if settings.do_sample else 1.0,
                                top_k=settings.top_k if settings.do_sample and settings.top_k > 0 else -1,
                                max_tokens=settings.max_new_tokens, seed=seed)
        outputs = self.llm.generate([{"prompt_token_ids": list(q)} for q in queries], params, use_tqdm=False)
        responses = []
        for out in outputs:
            ids = list(out.outputs[0].token_ids)
            responses.append(ids[: ids.index(eos) + 1] if eos is not None and eos in ids else ids)
        return responses

    def close(self) -> None:
        import gc

        self.llm = None
        gc.collect()
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - freeing memory is best effort
            pass
