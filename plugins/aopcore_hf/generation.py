"""Batched, length-sorted generation with the policy's chat template (or a plain instruction format)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

# Used for models without a chat template (e.g. GPT-2); the SFT stage trains on the same format.
PLAIN_TEMPLATE = "### Instruction:\n{prompt}\n\n### Response:\n"


def format_prompt(tokenizer, prompt: str, *, system: str | None = None) -> str:
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return (system + "\n\n" if system else "") + PLAIN_TEMPLATE.format(prompt=prompt)


@dataclass
class GenerationSettings:
    max_new_tokens: int = 64
    do_sample: bool = True
    temperature: float = 0.9
    top_p: float = 1.0
    top_k: int = 0
    max_prompt_tokens: int = 512
    batch_size: int = 16


@dataclass
class Rollout:
    """Token ids of one query and its response (response cut after the first end-of-sequence token)."""

    query: list[int]
    response: list[int]


def encode_queries(tokenizer, prompts: Sequence[str], max_prompt_tokens: int, *, system: str | None = None) -> list[list[int]]:
    out = []
    for p in prompts:
        ids = tokenizer(format_prompt(tokenizer, p, system=system), add_special_tokens=False)["input_ids"]
        out.append(ids[-max_prompt_tokens:])  # keep the end: the generation prompt matters most
    return out


def generate_rollouts(model, tokenizer, queries: Sequence[list[int]], settings: GenerationSettings, *,
                      seed: int | None = None, desc: str | None = None) -> list[Rollout]:
    """Generate for pre-tokenised queries; batches are formed from length-sorted queries to cut padding."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    order = sorted(range(len(queries)), key=lambda i: len(queries[i]))
    results: list[Rollout | None] = [None] * len(queries)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    batches = [order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
    was_training = model.training
    model.eval()
    kwargs = dict(max_new_tokens=settings.max_new_tokens, pad_token_id=pad, eos_token_id=eos)
    if settings.do_sample:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    with torch.no_grad():
        for batch in tqdm(batches, desc=desc or "generate", disable=desc is None, leave=False):
            width = max(len(queries[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                q = queries[i]
                ids[row, width - len(q):] = torch.tensor(q)
                mask[row, width - len(q):] = 1
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
            for row, i in enumerate(batch):
                response = out[row, width:].tolist()
                if eos in response:
                    response = response[: response.index(eos) + 1]
                results[i] = Rollout(list(queries[i]), response)
    if was_training:
        model.train()
    return [r for r in results if r is not None]


def decode_responses(tokenizer, rollouts: Sequence[Rollout]) -> list[str]:
    return [tokenizer.decode(r.response, skip_special_tokens=True).strip() for r in rollouts]
