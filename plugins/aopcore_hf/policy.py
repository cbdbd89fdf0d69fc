"""What every Hugging Face PolicyTrainer shares: policy_0 (optionally via SFT) and batched generation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aopcore import record_usage
from aopcore_hf.generation import (
    GenerationSettings,
    Rollout,
    decode_responses,
    encode_queries,
    generate_rollouts,
)
from aopcore_hf.models import DeviceChoice, choose_device
from aopcore_hf.options import PolicyOptions
from aopcore_hf.policy_io import POINTER, PolicyCache, write_pointer


class HFPolicyBase:
    def __init__(self, options: PolicyOptions) -> None:
        self.options = options
        self.choice = choose_device(options.device, options.dtype)
        self.cache = PolicyCache()

    @staticmethod
    def import_libraries(options: PolicyOptions) -> None:
        """What a trainer with these options imports in its stages (``aopcore.memory.freeze_survivors``)."""
        from aopcore_hf.models import import_libraries

        sft, lora = options.sft, getattr(options, "lora", None)
        import_libraries(sft=sft is not None, lora=lora is not None or (sft is not None and sft.lora is not None))

    def initial_policy(self, out: Path, *, seed: int) -> None:
        if self.options.sft is None:
            write_pointer(out, self.options.model)
            return
        from aopcore_hf.sft import run_sft

        run_sft(
            self.options.model, self.options.sft, out, choice=self.choice, seed=seed, system=self.options.system_prompt
        )

    def check_policy(self, path: Path) -> str | None:
        """Why ``generate`` could not load the policy folder ``path`` (None: it can); the experiment asks before recording a stage."""
        path = Path(path)
        if (path / POINTER).exists():
            return None
        if not (path / "config.json").is_file():
            return "no config.json (save_pretrained writes one)"
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            return "no weights (*.safetensors or *.bin)"
        return None

    def eval_settings(self) -> GenerationSettings:
        g = self.options.generation
        return GenerationSettings(
            max_new_tokens=self.options.eval_max_new_tokens or g.max_new_tokens,
            do_sample=self.options.eval_do_sample,
            temperature=g.temperature,
            top_p=g.top_p,
            top_k=g.top_k,
            max_prompt_tokens=g.max_prompt_tokens,
            batch_size=self.options.eval_batch_size,
            backend=self.options.generation_backend,
            draw=g.draw,
        )

    def rollout_settings(self, batch_size: int) -> GenerationSettings:
        g = self.options.generation
        return GenerationSettings(
            g.max_new_tokens,
            g.do_sample,
            g.temperature,
            g.top_p,
            g.top_k,
            g.max_prompt_tokens,
            min(g.batch_size or batch_size, max(batch_size, 1)),
            self.options.generation_backend,
            g.draw,
        )

    def generate(self, policy: Path, prompts: Sequence[str], *, seed: int, sample: bool = False) -> list[str]:
        settings = self.rollout_settings(self.options.eval_batch_size) if sample else self.eval_settings()
        if settings.backend == "vllm":
            return self._generate_vllm(Path(policy), prompts, settings, seed=seed)
        model, tokenizer = self.cache.load(Path(policy), self.inference_choice())
        queries = encode_queries(tokenizer, prompts, settings.max_prompt_tokens, system=self.options.system_prompt)
        rollouts = generate_rollouts(
            model, tokenizer, queries, settings, seed=seed, desc=f"answer {len(prompts)} prompts"
        )
        record_usage(tokens_generated=sum(len(r.response) for r in rollouts))
        return decode_responses(tokenizer, rollouts)

    def inference_choice(self) -> DeviceChoice:
        """Device and dtype of the policy when it only answers (evaluations, test answers)."""
        return self.choice

    def rollouts(
        self, model, tokenizer, queries: Sequence[list[int]], settings: GenerationSettings, *, world: int = 1
    ) -> list[Rollout]:
        """Training rollouts from ``model`` as it is now: through vLLM (its weights handed to the engine) when
        ``generation_backend = "vllm"`` and one process trains; otherwise ``generate_rollouts``."""
        if settings.backend == "vllm" and world == 1:
            return self._vllm_policy().rollouts(model, tokenizer, queries, settings)
        return generate_rollouts(model, tokenizer, queries, settings)

    def _vllm_policy(self):
        from aopcore_hf.vllm.generation import VLLMPolicy

        if getattr(self, "_vllm", None) is None:
            g, o = self.options.generation, self.options
            longest_answer = max(g.max_new_tokens, o.eval_max_new_tokens or 0)
            self._vllm = VLLMPolicy(dtype=o.vllm_dtype, max_model_len=g.max_prompt_tokens + longest_answer + 8)
        return self._vllm

    def _generate_vllm(
        self, policy: Path, prompts: Sequence[str], settings: GenerationSettings, *, seed: int
    ) -> list[str]:
        """Answers through the policy's vLLM engine (vllm/generation.py): one engine per process, the checkpoint's
        weights reloaded into it, so the engine starts once for all evaluations and answers of a run."""
        from transformers import AutoTokenizer

        from aopcore_hf.models import resolve_model
        from aopcore_hf.policy_io import policy_source
        from aopcore_hf.vllm.generation import local_folder

        folder = local_folder(resolve_model(policy_source(policy)))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        queries = encode_queries(tokenizer, prompts, settings.max_prompt_tokens, system=self.options.system_prompt)
        responses = self._vllm_policy().generate(folder, queries, settings, seed=seed, eos=tokenizer.eos_token_id)
        rollouts = [Rollout(q, r) for q, r in zip(queries, responses)]
        record_usage(tokens_generated=sum(len(r.response) for r in rollouts))
        return decode_responses(tokenizer, rollouts)
