"""vLLM as feedback LLM (writes prompts) and as judge (reads P(A), P(B), P(C)): ``plugin = "vllm"`` in [feedback]/[judge],
or the ``local`` plugins with ``engine = "vllm"`` (what their ``auto`` picks where vLLM is installed).

The same options, prompts, response cache and verdict rule as the ``local`` plugins (local_llm.py); only the model
runs in a vLLM engine (engine.py; feedback and judge on the same model share one) instead of transformers. For a model served
elsewhere, ``vllm serve`` speaks the OpenAI API: use the ``openai`` provider with ``base_url`` (docs/providers.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from aopcore import JudgeItem, Verdict, record_usage
from aopcore_hf.generation import Rollout, decode_responses, encode_queries
from aopcore_hf.local_llm import CachedLLM, LocalJudgeOptions, LocalLLMOptions, letter_ids, letter_verdict

MAX_MODEL_LEN = 2048


class VLLMLLMOptions(LocalLLMOptions):
    engine: Literal["vllm"] = Field("vllm", description="Always vllm: this plugin is the local one on a vLLM engine.")
    device: str = Field("auto", description="Not used: vLLM places its engine itself (a card where there is one).")
    batch_size: int = Field(8, ge=1, description="Not used: vLLM schedules every prompt of a call together.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="What vLLM computes in; auto: bfloat16."
    )
    max_model_len: int = Field(
        MAX_MODEL_LEN, ge=64, description="Longest prompt plus answer the engine holds (prompts keep their end)."
    )


class VLLMJudgeOptions(VLLMLLMOptions):
    tie_margin: float = Field(0.0, ge=0, description="Answer C when P(A) and P(B) differ by less than this.")


def _engine(options: LocalLLMOptions):
    """The shared engine for ``options.model``; ``local`` options (engine = "vllm") have no max_model_len: the default."""
    from transformers import AutoTokenizer

    from aopcore_hf.models import resolve_model
    from aopcore_hf.vllm.engine import shared_engine
    from aopcore_hf.vllm.generation import ENGINE_DTYPES, fit_length, local_folder

    folder = local_folder(resolve_model(options.model))
    # feedback and judge with the same model share one engine: their weights never change
    engine = shared_engine(
        f"model:{folder}",
        folder,
        **fit_length(
            folder,
            dict(
                dtype=ENGINE_DTYPES[options.dtype],
                seed=0,
                max_model_len=getattr(options, "max_model_len", MAX_MODEL_LEN),
            ),
        ),
    )
    return engine, AutoTokenizer.from_pretrained(folder)


class VLLMFeedbackLLM(CachedLLM):
    """Writes prompts with a vLLM engine, cached like ``local``; each prompt sampled with the seed of its request
    (local_llm.reply_seed), so a reply does not depend on which other prompts of the call were cached."""

    Options = VLLMLLMOptions
    engine_name = "vllm"

    def __init__(self, options: LocalLLMOptions) -> None:
        super().__init__(options)
        self.engine, self.tokenizer = _engine(options)

    def _generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[str]:
        o = self.options
        room = self.engine.max_model_len - o.max_new_tokens
        queries = encode_queries(self.tokenizer, prompts, min(o.max_prompt_tokens, room))
        eos = self.tokenizer.eos_token_id
        responses = self.engine.generate(
            queries,
            max_tokens=o.max_new_tokens,
            temperature=o.temperature if o.do_sample else 0.0,
            top_p=o.top_p if o.do_sample else 1.0,
            stop_token_ids=[eos] if eos is not None else [],
            seeds=seeds,
        )
        rollouts = [Rollout(q, r) for q, r in zip(queries, responses)]
        record_usage(
            feedback_calls=len(prompts),
            tokens_generated=sum(len(r) for r in responses),
            prompt_tokens=sum(len(q) for q in queries),
        )
        return decode_responses(self.tokenizer, rollouts)


class VLLMJudge:
    """The local judge's rule (P(A), P(B), P(C) of the next token after the paper's judge prompt) on a vLLM engine:
    each letter's log-probability is read as the last token of the prompt extended by it (prefix caching makes the
    three share one prefill), and the three are renormalised, as the local judge's softmax over their logits does."""

    Options = VLLMJudgeOptions

    def __init__(self, options: LocalJudgeOptions) -> None:
        self.options = options
        self.engine, self.tokenizer = _engine(options)
        self.letters = letter_ids(self.tokenizer)

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        from aopcore.judge_prompt import judge_prompt

        o = self.options
        queries = encode_queries(
            self.tokenizer,
            [judge_prompt(it.question, it.answer_a, it.answer_b) for it in items],
            min(o.max_prompt_tokens, self.engine.max_model_len - 2),
        )
        logprobs = self.engine.prompt_logprobs([q + [letter] for q in queries for letter in self.letters])
        out = []
        for n, it in enumerate(items):
            three = logprobs[3 * n : 3 * n + 3]
            weights = [math.exp(lp - max(three)) for lp in three]
            pa, pb, pc = (w / sum(weights) for w in weights)
            out.append(letter_verdict(it.id, pa, pb, pc, o.tie_margin))
        record_usage(judge_calls=len(items))
        return out
