"""What the ``local`` feedback LLM and judge share across the engines that run their model (transformers in
feedback.py, vLLM in vllm/feedback.py): the options, with ``engine = "auto"`` resolved when they are validated, the
response cache and the judge's verdict rule.

``auto`` is resolved at validation, so the run's config.json and fingerprint record the engine that ran, and a
resume on a machine that would resolve it otherwise is refused instead of switching engines part-way. The feedback
LLM's ``auto`` picks vLLM where a vLLM environment exists (it made the quickstart faster: docs/gpu.md "vLLM"); the
judge's default stays transformers, since it is the measuring instrument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aopcore import Verdict, record_usage
from aopcore.options import OutputPath
from aopcore_hf.models import ModelPreflight, ModelRef


class LocalLLMOptions(ModelPreflight, BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: ModelRef = Field(
        "smollm2-135m-instruct", description="Hub id, folder (relative to the config file), or offline alias."
    )
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="auto: for the feedback LLM on transformers, bfloat16 on a CUDA card or a CPU with native bf16 "
        "(AMX, AVX512-BF16), else float32 (resolved when the config is read and recorded in the run's config.json); "
        "for the judge, bf16 on CUDA and float32 on a CPU.",
    )
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    do_sample: bool = True
    batch_size: int = Field(
        8,
        ge=1,
        description="Not used by the feedback LLM: it generates each reply alone, so a reply does not depend on the "
        "prompts beside it (padding a batch changes the sampled tokens).",
    )
    max_prompt_tokens: int = Field(1536, ge=16, description="Long prompts keep their end (the instructions come last).")
    seed: int = 0
    cache: bool = Field(
        True, description="Reuse responses to identical requests (SQLite under the aopcore cache folder)."
    )
    cache_path: OutputPath | None = Field(
        None,
        description="Cache file (relative to the config file); default ~/.cache/aopcore/llm-cache.sqlite (or $AOPCORE_CACHE).",
    )
    engine: Literal["auto", "transformers", "vllm"] = Field(
        "auto",
        description="What runs the model: transformers, or a vLLM engine (then dtype auto means bfloat16, and device "
        "and batch_size are vLLM's to choose). auto: vllm where a vLLM environment exists "
        "(scripts/setup-vllm.sh, $AOPCORE_VLLM_PYTHON), else transformers; resolved when the config "
        "is read and recorded in the run's config.json.",
    )

    resolves_dtype: ClassVar[bool] = (
        True  # the feedback LLM: dtype auto becomes bfloat16 where the CPU computes it natively
    )

    @model_validator(mode="after")
    def _resolve_engine(self):
        if self.engine == "auto":
            from aopcore_hf.vllm.engine import vllm_available

            self.engine = "vllm" if vllm_available() else "transformers"
        if self.engine == "transformers" and self.dtype == "auto" and self.resolves_dtype:
            from aopcore_hf.models import inference_dtype

            self.dtype = inference_dtype(self.device, self.dtype)
        return self

    def preflight(self, ctx) -> list[str]:
        from aopcore_hf.vllm.engine import vllm_available

        problems = super().preflight(ctx)
        if self.engine == "vllm" and not vllm_available():
            problems.append(
                "engine: vllm needs a vLLM environment: run `bash scripts/setup-vllm.sh` or set AOPCORE_VLLM_PYTHON "
                'to a Python that has vllm (or choose engine = "transformers")'
            )
        return problems


# In every cache key of a local LLM's reply: replies cached before each prompt had its own seed (they depended on the
# other prompts generated beside them) are not reused, so everything in the cache is what a cold call would give.
SAMPLING_SCHEME = "per-prompt-seed"


def reply_seed(key: str) -> int:
    """The sampling seed of one request: from its cache key (model, prompt, sampling settings, seed, engine), never
    from the other prompts of the call, so a reply is the same whether its neighbours were cached or generated."""
    return int(key[:16], 16) >> 1  # 63 bits: a valid seed for torch and for vLLM


class CachedLLM:
    """A local LLM's ``complete``: identical requests answered from the response cache, the rest by ``_generate``.

    Each missing request is generated once, with :func:`reply_seed` of its key, so a reply is a function of the
    request alone: a call with every, some or none of its prompts cached returns the same replies.
    """

    engine_name = "transformers"  # what runs the model; another engine's responses are cached under their own keys

    def __init__(self, options: LocalLLMOptions) -> None:
        from aopcore.storage.llmcache import ResponseCache

        self.options = options
        self.cache: ResponseCache | None = ResponseCache(options.cache_path) if options.cache else None

    def request_keys(self, prompts: Sequence[str]) -> list[str]:
        """The cache key of each prompt's request (also the source of its sampling seed)."""
        from aopcore.storage.llmcache import cache_key

        o = self.options
        params = o.model_dump(
            include={"max_new_tokens", "temperature", "top_p", "do_sample", "seed", "max_prompt_tokens"}
        )
        params["sampling"] = SAMPLING_SCHEME
        if self.engine_name != "transformers":  # another engine samples other responses: never answered from these
            params.update(engine=self.engine_name, dtype=o.dtype)
        elif o.dtype not in ("auto", "float32"):  # nor another precision (float32 keys stay as they were)
            params.update(dtype=o.dtype)
        return [cache_key("local", o.model, p, params) for p in prompts]

    def complete(self, prompts: Sequence[str]) -> list[str]:
        keys = self.request_keys(prompts)
        replies = self.cache.get_many(keys) if self.cache is not None else {}
        cached = sum(k in replies for k in keys)
        if cached:
            record_usage(cached_calls=cached)
        todo = {k: p for k, p in zip(keys, prompts) if k not in replies}  # a repeated request is generated once
        fresh = self._generate(list(todo.values()), [reply_seed(k) for k in todo]) if todo else []
        for key, text in zip(todo, fresh):
            replies[key] = text
            if self.cache is not None:
                self.cache.put(key, text, {"provider": "local", "model": self.options.model})
        return [replies[k] for k in keys]

    def _generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[str]:
        """One reply per prompt, sampled with its own seed and independent of the other prompts given with it."""
        raise NotImplementedError


class LocalJudgeOptions(LocalLLMOptions):
    resolves_dtype: ClassVar[bool] = (
        False  # the measuring instrument: float32 on a CPU whatever the CPU, unless the config says
    )
    tie_margin: float = Field(0.0, ge=0, description="Answer C when P(A) and P(B) differ by less than this.")
    batch_size: int = Field(8, ge=1, description="Items read per forward pass.")
    # the judge is the measuring instrument: its default does not change with what is installed (vLLM's bfloat16
    # changed 6 of 16 greedy answers at near-ties, docs/gpu.md; close verdicts flip alike); "vllm" or "auto" opt in
    engine: Literal["auto", "transformers", "vllm"] = Field(
        "transformers",
        description="What runs the model: transformers (float32 on a CPU), or a vLLM engine (dtype auto: "
        "bfloat16). auto: vllm where a vLLM environment exists, else transformers (resolved "
        "when the config is read). The default stays transformers so verdicts do not depend "
        "on what is installed.",
    )


def letter_ids(tokenizer) -> list[int]:
    """The token ids of A, B and C, whose probabilities after the judge prompt are the verdict."""
    return [tokenizer(x, add_special_tokens=False)["input_ids"][-1] for x in ("A", "B", "C")]


def letter_verdict(item_id: str, pa: float, pb: float, pc: float, tie_margin: float) -> Verdict:
    """The local judge's rule on P(A), P(B), P(C): C on a tie (within ``tie_margin``) or when C is the likeliest."""
    choice = "C" if abs(pa - pb) < tie_margin or pc >= max(pa, pb) else ("A" if pa > pb else "B")
    return Verdict(item_id, choice, raw=f"P(A)={pa:.3f} P(B)={pb:.3f} P(C)={pc:.3f}")
