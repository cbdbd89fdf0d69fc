"""Reward models: any sequence classifier, SteamSHP (pairwise FLAN-T5), and an offline relevance model.

All score decoded text, batch internally, truncate safely and run in eval mode
under no_grad, so the same (prompt, response) always gets the same score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aopcore import record_usage
from aopcore_hf.models import ModelPreflight, ModelRef, choose_device, resolve_model


class _RMOptions(ModelPreflight, BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(
        512, ge=16, description="Inputs are truncated to this many tokens (question first, then answer)."
    )


class ClassifierOptions(_RMOptions):
    model: ModelRef = Field(
        "OpenAssistant/reward-model-deberta-v3-large-v2",
        description="Any AutoModelForSequenceClassification reward model.",
    )
    label_index: int = Field(0, ge=0, description="Which logit is the reward.")


def _load(auto_class_name: str, options: _RMOptions):
    """Tokenizer, model (eval mode, on the chosen device and dtype) and device, for any reward-model family."""
    import transformers

    choice = choose_device(options.device, options.dtype)
    path = resolve_model(options.model)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = getattr(transformers, auto_class_name).from_pretrained(path, dtype=choice.dtype).to(choice.device).eval()
    return tokenizer, model, choice.device


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, start + size)


class SequenceClassifierReward:
    """Reward = a sequence-classification logit over (question, answer), e.g. the paper's DeBERTa RM."""

    Options = ClassifierOptions

    def __init__(self, options: ClassifierOptions) -> None:
        import torch

        self.options = options
        self.tokenizer, self.model, self.device = _load("AutoModelForSequenceClassification", options)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self._torch = torch

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        out: list[float] = []
        with self._torch.no_grad():
            for sl in _batches(len(prompts), self.options.batch_size):
                enc = self.tokenizer(
                    list(prompts[sl]),
                    list(responses[sl]),
                    truncation="longest_first",
                    max_length=self.options.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                logits = self.model(**enc).logits
                out.extend(logits[:, self.options.label_index].float().tolist())
        record_usage(reward_model_pairs=len(prompts))
        return out


class SteamSHPOptions(_RMOptions):
    model: ModelRef = Field("stanfordnlp/SteamSHP-flan-t5-large", description="SteamSHP FLAN-T5 (large or xl).")


class SteamSHPReward:
    """SteamSHP scores one response as RESPONSE A against an empty RESPONSE B: reward = P("A")."""

    Options = SteamSHPOptions
    TEMPLATE = "POST: {post}\n\n RESPONSE A: {a}\n\n RESPONSE B: .\n\n Which response is better? RESPONSE"

    def __init__(self, options: SteamSHPOptions) -> None:
        import torch

        self.options = options
        self.tokenizer, self.model, self.device = _load("AutoModelForSeq2SeqLM", options)
        self.token_a = self.tokenizer("A", add_special_tokens=False)["input_ids"][-1]
        self.token_b = self.tokenizer("B", add_special_tokens=False)["input_ids"][-1]
        self._torch = torch

    def _inputs(self, post: str, answer: str) -> str:
        # keep the answer whole where possible: truncate the post first (SteamSHP's own advice)
        ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        budget = max(self.options.max_length - len(ids) - 40, 16)
        post_ids = self.tokenizer(post, add_special_tokens=False)["input_ids"][:budget]
        return self.TEMPLATE.format(post=self.tokenizer.decode(post_ids), a=answer)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        torch = self._torch
        out: list[float] = []
        with torch.no_grad():
            for sl in _batches(len(prompts), self.options.batch_size):
                texts = [self._inputs(p, r) for p, r in zip(prompts[sl], responses[sl])]
                enc = self.tokenizer(
                    texts, truncation=True, max_length=self.options.max_length, padding=True, return_tensors="pt"
                ).to(self.device)
                start = torch.full(
                    (len(texts), 1), self.model.config.decoder_start_token_id, dtype=torch.long, device=self.device
                )
                logits = self.model(**enc, decoder_input_ids=start).logits[:, 0, :].float()
                pair = torch.softmax(logits[:, [self.token_a, self.token_b]], dim=-1)
                out.extend(pair[:, 0].tolist())
        record_usage(reward_model_pairs=len(prompts))
        return out


class RelevanceOptions(ModelPreflight, BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: ModelRef = Field(
        "all-minilm-l6-v2", description="Sentence-transformers model (offline alias: all-minilm-l6-v2)."
    )
    device: str = "auto"
    min_words: int = Field(8, ge=0, description="Answers shorter than this are penalised in proportion.")
    repetition_penalty: float = Field(1.0, ge=0, description="Weight of the penalty for repeated word trigrams.")


class OfflineRelevanceReward:
    """Offline stand-in: cosine(question, answer) under MiniLM, minus penalties for short or repetitive answers.

    Signal: rewards on-topic, substantive, non-degenerate answers. Limits: it cannot tell a correct
    answer from a fluent wrong one and knows nothing of safety or tone; use a trained RM for real work.
    """

    Options = RelevanceOptions

    def __init__(self, options: RelevanceOptions) -> None:
        from aopcore_hf.embedder import EmbedderOptions, SentenceEmbedder

        self.options = options
        self.embedder = SentenceEmbedder(EmbedderOptions(model=options.model, device=options.device))

    @staticmethod
    def import_libraries(options: RelevanceOptions) -> None:
        """What this component's stages import (``aopcore.memory.freeze_survivors``)."""
        from aopcore_hf.models import import_libraries

        import_libraries(causal_lm=False, sentences=True)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        import numpy as np

        q = self.embedder.embed(list(prompts))
        a = self.embedder.embed([r if r.strip() else "." for r in responses])
        cos = (q * a).sum(axis=1)
        out = []
        for c, r in zip(cos, responses):
            words = r.lower().split()
            short = max(0.0, 1.0 - len(words) / self.options.min_words) if self.options.min_words else 0.0
            trigrams = [tuple(words[i : i + 3]) for i in range(max(len(words) - 2, 0))]
            repeated = 1.0 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0
            out.append(float(np.round(c - short - self.options.repetition_penalty * repeated, 6)))
        record_usage(reward_model_pairs=len(prompts))
        return out
