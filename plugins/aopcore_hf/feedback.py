"""A local Hugging Face causal LM as FeedbackLLM (writes prompts) and as Judge (reads P(A), P(B), P(C)): the ``local``
plugins. Their model runs in transformers here, or in a vLLM engine (vllm/feedback.py) when ``engine`` resolves to
vllm (local_llm.py says when); constructing the plugin class builds the one its options name.
"""

from __future__ import annotations

from collections.abc import Sequence

from aopcore import JudgeItem, Verdict, record_usage
from aopcore.memory import releasable
from aopcore_hf.generation import (
    GenerationSettings,
    decode_responses,
    encode_queries,
    generate_rollouts,
)
from aopcore_hf.local_llm import CachedLLM, LocalJudgeOptions, LocalLLMOptions, letter_ids, letter_verdict
from aopcore_hf.models import SharedModel, choose_device, shared_causal_lm

__all__ = [
    "LocalFeedbackLLM",
    "LocalJudgeOptions",
    "LocalLLMOptions",
    "LocalModelJudge",
]  # the options live in local_llm


class LocalFeedbackLLM(CachedLLM):
    """Runs a local causal LM (default: the packaged SmolLM2) to write prompts; fully offline, seeded."""

    Options = LocalLLMOptions

    def __new__(cls, options: LocalLLMOptions | None = None):  # None: unpickling, which passes no arguments
        if (
            cls is LocalFeedbackLLM and options is not None and options.engine == "vllm"
        ):  # the plugin on the other engine
            from aopcore_hf.vllm.feedback import VLLMFeedbackLLM

            return VLLMFeedbackLLM(options)
        return super().__new__(cls)

    def __init__(self, options: LocalLLMOptions) -> None:
        super().__init__(options)
        self._shared: SharedModel | None = None  # loaded at the first request the response cache cannot answer

    @staticmethod
    def import_libraries(options: LocalLLMOptions) -> None:
        """What this component's stages import (``aopcore.memory.freeze_survivors``): transformers, unless vLLM runs it."""
        from aopcore_hf.models import import_libraries

        if options.engine != "vllm":
            import_libraries()

    @property
    def model(self):
        return self._loaded().model

    @property
    def tokenizer(self):
        return self._loaded().tokenizer

    def _loaded(self) -> SharedModel:
        if self._shared is None:
            o = self.options
            self._shared = shared_causal_lm(o.model, choose_device(o.device, o.dtype))
            releasable(self)
        return self._shared

    def release_models(self) -> None:
        """Let the model go until the next request (a trainer makes room for its weights and Adam states)."""
        self._shared = None

    def _generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[str]:
        """The call's prompts in padded batches of ``batch_size``, after ``torch.manual_seed`` of the call's first
        seed: the same prompts and seeds give the same replies. The global random streams are put back afterwards
        (aopcore.rngguard)."""
        from aopcore.rngguard import preserved_global_rng

        o = self.options
        settings = GenerationSettings(  # the nucleus draw: a third of decoding went to transformers' top-p sort
            o.max_new_tokens, o.do_sample, o.temperature, o.top_p, 0, o.max_prompt_tokens, o.batch_size, draw="nucleus"
        )
        queries = encode_queries(self.tokenizer, prompts, o.max_prompt_tokens)
        with preserved_global_rng():
            rollouts = generate_rollouts(
                self.model, self.tokenizer, queries, settings, seed=seeds[0], desc=f"feedback x{len(prompts)}"
            )
        record_usage(
            feedback_calls=len(prompts),
            tokens_generated=sum(len(r.response) for r in rollouts),
            prompt_tokens=sum(len(q) for q in queries),
        )
        return decode_responses(self.tokenizer, rollouts)


class LocalModelJudge:
    """Reads the local model's next-token probabilities of A, B and C after the paper's judge prompt."""

    Options = LocalJudgeOptions

    def __new__(cls, options: LocalJudgeOptions | None = None):  # None: unpickling, which passes no arguments
        if cls is LocalModelJudge and options is not None and options.engine == "vllm":
            from aopcore_hf.vllm.feedback import VLLMJudge

            return VLLMJudge(options)
        return super().__new__(cls)

    def __init__(self, options: LocalJudgeOptions) -> None:
        import torch

        self.options = options
        self.choice = choose_device(options.device, options.dtype)
        self._shared = shared_causal_lm(options.model, self.choice)  # the feedback LLM's copy when it is the same model
        self.model, self.tokenizer = self._shared.model, self._shared.tokenizer
        self.letters = letter_ids(self.tokenizer)
        self._torch = torch

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        from aopcore.judge_prompt import judge_prompt

        torch = self._torch
        o = self.options
        queries = encode_queries(
            self.tokenizer, [judge_prompt(it.question, it.answer_a, it.answer_b) for it in items], o.max_prompt_tokens
        )
        out: list[Verdict] = []
        pad = self.tokenizer.pad_token_id
        with torch.no_grad():
            for start in range(0, len(queries), o.batch_size):
                chunk = queries[start : start + o.batch_size]
                width = max(len(q) for q in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for row, q in enumerate(chunk):
                    ids[row, width - len(q) :] = torch.tensor(q)
                    mask[row, width - len(q) :] = 1
                positions = (mask.cumsum(1) - 1).clamp(min=0)
                logits = self.model(
                    input_ids=ids.to(self.choice.device),
                    attention_mask=mask.to(self.choice.device),
                    position_ids=positions.to(self.choice.device),
                    logits_to_keep=1,
                ).logits[:, -1, :]
                probs = torch.softmax(logits.float()[:, self.letters], dim=-1).cpu()
                for it, p in zip(items[start : start + o.batch_size], probs):
                    pa, pb, pc = (float(x) for x in p)
                    out.append(letter_verdict(it.id, pa, pb, pc, o.tie_margin))
        record_usage(judge_calls=len(items))
        return out
