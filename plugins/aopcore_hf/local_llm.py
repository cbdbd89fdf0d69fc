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
        description="Prompts per forward pass of the feedback LLM on transformers. A call's prompts are generated "
        "together, in an order fixed by the call, so the batch size is part of every cache key.",
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


# In every cache key of a local LLM's reply: replies cached under an earlier sampling scheme (each prompt alone, or a
# batch that depended on which prompts were cached) are not reused, so everything in the cache is what a cold call
# of the same prompts would give.
SAMPLING_SCHEME = "per-call-batch/nucleus-draw"  # the draw: aopcore_hf.sampling


def reply_seed(key: str) -> int:
    """A sampling seed from a cache key: 63 bits, valid for torch and for vLLM."""
    return int(key[:16], 16) >> 1


def call_key(request_keys: Sequence[str]) -> str:
    """The key of a call: its distinct requests, sorted, so it does not depend on their order or repeats."""
    import hashlib

    return hashlib.sha256("\n".join(sorted(set(request_keys))).encode()).hexdigest()


def reply_key(call: str, request_key: str) -> str:
    """The cache key of one reply: the request *within its call*, since the call's prompts are sampled together."""
    import hashlib

    return hashlib.sha256(f"{call}:{request_key}".encode()).hexdigest()


class CachedLLM:
    """A local LLM's ``complete``: a call answered from the response cache, else generated as one batch.

    A call's distinct requests are generated together (fast: one padded batch instead of one pass per prompt), in
    the order of their keys and with seeds from their keys, so a reply is a function of its request and of the call
    it came in: the same call gives the same replies whether none, some or all of it was cached (a partly cached
    call is generated whole and the cached replies kept), and in whatever order its prompts come. The same prompt
    in another call is another sample, as with any batched sampler.
    """

    engine_name = "transformers"  # what runs the model; another engine's responses are cached under their own keys

    def __init__(self, options: LocalLLMOptions) -> None:
        from aopcore.storage.llmcache import ResponseCache

        self.options = options
        self.cache: ResponseCache | None = ResponseCache(options.cache_path) if options.cache else None

    def request_keys(self, prompts: Sequence[str]) -> list[str]:
        """The key of each prompt's request: model, prompt, sampling settings, seed and engine."""
        from aopcore.storage.llmcache import cache_key

        o = self.options
        params = o.model_dump(
            include={"max_new_tokens", "temperature", "top_p", "do_sample", "seed", "max_prompt_tokens"}
        )
        params["sampling"] = SAMPLING_SCHEME
        if self.engine_name != "transformers":  # another engine samples other responses: never answered from these
            params.update(engine=self.engine_name, dtype=o.dtype)
        else:
            params.update(batch_size=o.batch_size)  # the padded batches change the sampled tokens
            if o.dtype not in ("auto", "float32"):  # nor another precision
                params.update(dtype=o.dtype)
        return [cache_key("local", o.model, p, params) for p in prompts]

    def complete(self, prompts: Sequence[str]) -> list[str]:
        keys = self.request_keys(prompts)
        text_of = dict(zip(keys, prompts))
        distinct = sorted(text_of)  # a repeated request is generated once; the order is the call's, not the caller's
        call = call_key(distinct)
        stored = {k: reply_key(call, k) for k in distinct}
        found = self.cache.get_many(list(stored.values())) if self.cache is not None else {}
        replies = {k: found[stored[k]] for k in distinct if stored[k] in found}
        cached = sum(k in replies for k in keys)
        if cached:
            record_usage(cached_calls=cached)
        if len(replies) < len(distinct):  # the whole call, so a partly cached one samples what a cold one does
            fresh = self._generate([text_of[k] for k in distinct], [reply_seed(stored[k]) for k in distinct])
            for key, text in zip(distinct, fresh):
                if key in replies:
                    continue
                replies[key] = text
                if self.cache is not None:
                    self.cache.put(stored[key], text, {"provider": "local", "model": self.options.model})
        return [replies[k] for k in keys]

    def _generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[str]:
        """One reply per prompt of a call (in the call's order, each with its seed): a function of these arguments."""
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
