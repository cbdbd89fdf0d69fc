"""What every Hugging Face PolicyTrainer shares: policy_0 (optionally via SFT) and batched generation."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aopcore import record_usage
from aopcore_hf.generation import (
    GenerationSettings,
    decode_responses,
    encode_queries,
    generate_rollouts,
)
from aopcore_hf.models import choose_device
from aopcore_hf.options import PolicyOptions
from aopcore_hf.policy_io import PolicyCache, write_pointer


class HFPolicyBase:
    def __init__(self, options: PolicyOptions) -> None:
        self.options = options
        self.choice = choose_device(options.device, options.dtype)
        self.cache = PolicyCache()

    def initial_policy(self, out: Path, *, seed: int) -> None:
        if self.options.sft is None:
            write_pointer(out, self.options.model)
            return
        from aopcore_hf.sft import run_sft

        run_sft(self.options.model, self.options.sft, out, choice=self.choice, seed=seed, system=self.options.system_prompt)

    def eval_settings(self) -> GenerationSettings:
        g = self.options.generation
        return GenerationSettings(
            max_new_tokens=self.options.eval_max_new_tokens or g.max_new_tokens, do_sample=self.options.eval_do_sample,
            temperature=g.temperature, top_p=g.top_p, top_k=g.top_k, max_prompt_tokens=g.max_prompt_tokens,
            batch_size=self.options.eval_batch_size,
        )

    def rollout_settings(self, batch_size: int) -> GenerationSettings:
        g = self.options.generation
        return GenerationSettings(g.max_new_tokens, g.do_sample, g.temperature, g.top_p, g.top_k, g.max_prompt_tokens, batch_size)

    def generate(self, policy: Path, prompts: Sequence[str], *, seed: int, sample: bool = False) -> list[str]:
        model, tokenizer = self.cache.load(Path(policy), self.choice)
        settings = self.rollout_settings(self.options.eval_batch_size) if sample else self.eval_settings()
        queries = encode_queries(tokenizer, prompts, settings.max_prompt_tokens, system=self.options.system_prompt)
        rollouts = generate_rollouts(model, tokenizer, queries, settings, seed=seed, desc=f"answer {len(prompts)} prompts")
        record_usage(tokens_generated=sum(len(r.response) for r in rollouts))
        return decode_responses(tokenizer, rollouts)
