"""A local Hugging Face causal LM as FeedbackLLM (writes prompts) and as Judge (reads P(A), P(B), P(C)).

Either runs the model in transformers or, with ``engine = "vllm"``, in a vLLM engine (vllm_feedback.py). The feedback
LLM's default, ``auto``, picks vLLM where a vLLM environment exists (scripts/setup-vllm.sh): it wrote the quickstart's
prompts several times faster on a CPU (docs/gpu.md "vLLM"). The judge's default stays transformers: it is the
measuring instrument, and bfloat16 moves its probabilities. ``auto`` is resolved when the options are validated, so the run's
config.json and fingerprint record the engine that ran, and a resume on a machine that resolves it otherwise is
refused instead of switching engines part-way.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aopcore import JudgeItem, Verdict, record_usage
from aopcore.options import OutputPath
from aopcore_hf.generation import (
    GenerationSettings,
    decode_responses,
    encode_queries,
    generate_rollouts,
)
from aopcore_hf.models import ModelPreflight, ModelRef, choose_device, load_causal_lm


class LocalLLMOptions(ModelPreflight, BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: ModelRef = Field("smollm2-135m-instruct", description="Hub id, folder (relative to the config file), or offline alias.")
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    do_sample: bool = True
    batch_size: int = Field(8, ge=1)
    max_prompt_tokens: int = Field(1536, ge=16, description="Long prompts keep their end (the instructions come last).")
    seed: int = 0
    cache: bool = Field(True, description="Reuse responses to identical requests (SQLite under the aopcore cache folder).")
    cache_path: OutputPath | None = Field(None, description="Cache file (relative to the config file); default ~/.cache/aopcore/llm-cache.sqlite (or $AOPCORE_CACHE).")
    engine: Literal["auto", "transformers", "vllm"] = Field(
        "auto", description="What runs the model: transformers, or a vLLM engine (then dtype auto means bfloat16, and device "
                            "and batch_size are vLLM's to choose). auto: vllm where a vLLM environment exists "
                            "(scripts/setup-vllm.sh, $AOPCORE_VLLM_PYTHON), else transformers; resolved when the config "
                            "is read and recorded in the run's config.json.")

    @model_validator(mode="after")
    def _resolve_engine(self):
        if self.engine == "auto":
            from aopcore_hf.vllm_engine import vllm_available

            self.engine = "vllm" if vllm_available() else "transformers"
        return self

    def preflight(self, ctx) -> list[str]:
        from aopcore_hf.vllm_engine import vllm_available

        problems = super().preflight(ctx)
        if self.engine == "vllm" and not vllm_available():
            problems.append("engine: vllm needs a vLLM environment: run `bash scripts/setup-vllm.sh` or set AOPCORE_VLLM_PYTHON "
                            "to a Python that has vllm (or choose engine = \"transformers\")")
        return problems


class LocalFeedbackLLM:
    """Runs a local causal LM (default: the packaged SmolLM2) to write prompts; fully offline, seeded."""

    Options = LocalLLMOptions
    engine_name = "transformers"  # what runs the model (a subclass runs it elsewhere; its cache entries are its own)

    def __new__(cls, options: LocalLLMOptions):
        if cls is LocalFeedbackLLM and options.engine == "vllm":  # the same plugin on the other engine
            from aopcore_hf.vllm_feedback import VLLMFeedbackLLM

            cls = VLLMFeedbackLLM
        return super().__new__(cls)

    def __init__(self, options: LocalLLMOptions) -> None:
        from aopcore.llmcache import ResponseCache

        self.options = options
        self.model, self.tokenizer = load_causal_lm(options.model, choose_device(options.device, options.dtype))
        self.cache = ResponseCache(options.cache_path) if options.cache else None

    def complete(self, prompts: Sequence[str]) -> list[str]:
        from aopcore.llmcache import cache_key

        o = self.options
        params = o.model_dump(include={"max_new_tokens", "temperature", "top_p", "do_sample", "seed", "max_prompt_tokens"})
        if self.engine_name != "transformers":  # another engine samples other responses: it must not answer from this one's
            params.update(engine=self.engine_name, dtype=o.dtype)
        keys = [cache_key("local", o.model, p, params) for p in prompts]
        hits = self.cache.get_many(keys) if self.cache is not None else {}
        misses = [i for i, k in enumerate(keys) if k not in hits]
        if hits:
            record_usage(cached_calls=len(prompts) - len(misses))
        fresh = self._generate([prompts[i] for i in misses]) if misses else []
        for i, text in zip(misses, fresh):
            hits[keys[i]] = text
            if self.cache is not None:
                self.cache.put(keys[i], text, {"provider": "local", "model": o.model})
        return [hits[k] for k in keys]

    def _generate(self, prompts: Sequence[str]) -> list[str]:
        o = self.options
        settings = GenerationSettings(o.max_new_tokens, o.do_sample, o.temperature, o.top_p, 0, o.max_prompt_tokens, o.batch_size)
        queries = encode_queries(self.tokenizer, prompts, o.max_prompt_tokens)
        rollouts = generate_rollouts(self.model, self.tokenizer, queries, settings, seed=o.seed, desc=f"feedback x{len(prompts)}")
        record_usage(feedback_calls=len(prompts), tokens_generated=sum(len(r.response) for r in rollouts),
                     prompt_tokens=sum(len(q) for q in queries))
        return decode_responses(self.tokenizer, rollouts)


class LocalJudgeOptions(LocalLLMOptions):
    tie_margin: float = Field(0.0, ge=0, description="Answer C when P(A) and P(B) differ by less than this.")
    # the judge is the measuring instrument: its default does not change with what is installed (vLLM's bfloat16
    # changed 6 of 16 greedy answers at near-ties, docs/gpu.md; close verdicts flip alike); "vllm" or "auto" opt in
    engine: Literal["auto", "transformers", "vllm"] = Field(
        "transformers", description="What runs the model: transformers (float32 on a CPU), or a vLLM engine (dtype auto: "
                                    "bfloat16). auto: vllm where a vLLM environment exists, else transformers (resolved "
                                    "when the config is read). The default stays transformers so verdicts do not depend "
                                    "on what is installed.")


class LocalModelJudge:
    """Reads the local model's next-token probabilities of A, B and C after the paper's judge prompt."""

    Options = LocalJudgeOptions

    def __new__(cls, options: LocalJudgeOptions):
        if cls is LocalModelJudge and options.engine == "vllm":
            from aopcore_hf.vllm_feedback import VLLMJudge

            cls = VLLMJudge
        return super().__new__(cls)

    def __init__(self, options: LocalJudgeOptions) -> None:
        import torch

        self.options = options
        self.choice = choose_device(options.device, options.dtype)
        self.model, self.tokenizer = load_causal_lm(options.model, self.choice)
        self.letters = [self.tokenizer(x, add_special_tokens=False)["input_ids"][-1] for x in ("A", "B", "C")]
        self._torch = torch

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        from aopcore.judge_prompt import judge_prompt

        torch = self._torch
        o = self.options
        queries = encode_queries(self.tokenizer, [judge_prompt(it.question, it.answer_a, it.answer_b) for it in items], o.max_prompt_tokens)
        out: list[Verdict] = []
        pad = self.tokenizer.pad_token_id
        with torch.no_grad():
            for start in range(0, len(queries), o.batch_size):
                chunk = queries[start : start + o.batch_size]
                width = max(len(q) for q in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for row, q in enumerate(chunk):
                    ids[row, width - len(q):] = torch.tensor(q)
                    mask[row, width - len(q):] = 1
                positions = (mask.cumsum(1) - 1).clamp(min=0)
                logits = self.model(input_ids=ids.to(self.choice.device), attention_mask=mask.to(self.choice.device),
                                    position_ids=positions.to(self.choice.device), logits_to_keep=1).logits[:, -1, :]
                probs = torch.softmax(logits.float()[:, self.letters], dim=-1).cpu()
                for it, p in zip(items[start : start + o.batch_size], probs):
                    pa, pb, pc = (float(x) for x in p)
                    choice = "C" if abs(pa - pb) < o.tie_margin or pc >= max(pa, pb) else ("A" if pa > pb else "B")
                    out.append(Verdict(it.id, choice, raw=f"P(A)={pa:.3f} P(B)={pb:.3f} P(C)={pc:.3f}"))
        record_usage(judge_calls=len(items))
        return out
