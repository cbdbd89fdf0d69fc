"""Batched, length-sorted generation with the policy's chat template (or a plain instruction format).

Four backends give the same greedy tokens (tests/hf/test_generation.py) at different speeds:
``plain`` is ``model.generate`` with the dynamic KV cache; ``static`` uses transformers' static cache,
whose decoding step transformers compiles with torch.compile on CUDA (prompts are padded to a few fixed
widths and batches to one size, so it compiles once per width); ``continuous`` is transformers'
continuous-batching ``generate_batch`` (paged attention, requests scheduled as they finish). ``auto``
picks ``static`` on CUDA and ``plain`` elsewhere; when an automatically chosen backend fails, generation
falls back to ``plain`` for the rest of the process and says so once. ``vllm`` (a vLLM engine in its own
environment) lives in ``vllm/generation.py``; where it cannot take part (rollouts of TRL's trainers or of a
multi-process PPO), generation here treats it as ``auto``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

# Used for models without a chat template (e.g. GPT-2); the SFT stage trains on the same format.
PLAIN_TEMPLATE = "### Instruction:\n{prompt}\n\n### Response:\n"
BACKENDS = ("auto", "plain", "static", "continuous", "vllm")
STATIC_WIDTH_STEP = 128  # the static backend pads prompts to a multiple of this: one compiled shape per width
_failed_auto: set[str] = set()  # backends that failed when chosen automatically: not tried again in this process


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
    backend: str = "plain"
    draw: str = (
        "transformers"  # how a sampled token is drawn: transformers' sampler, or "nucleus" (aopcore_hf.sampling)
    )


@dataclass
class Rollout:
    """Token ids of one query and its response (response cut after the first end-of-sequence token)."""

    query: list[int]
    response: list[int]


def encode_queries(
    tokenizer, prompts: Sequence[str], max_prompt_tokens: int, *, system: str | None = None
) -> list[list[int]]:
    out = []
    for p in prompts:
        ids = tokenizer(format_prompt(tokenizer, p, system=system), add_special_tokens=False)["input_ids"]
        out.append(ids[-max_prompt_tokens:])  # keep the end: the generation prompt matters most
    return out


def resolve_backend(backend: str, device_type: str) -> str:
    """The transformers backend for this device: ``auto`` (and ``vllm`` where the vLLM engine is not used) as static/plain."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown generation backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend in ("auto", "vllm"):
        chosen = "static" if device_type == "cuda" else "plain"
        return "plain" if chosen in _failed_auto else chosen
    return backend


def _cut(response: list[int], eos: int | None) -> list[int]:
    return response[: response.index(eos) + 1] if eos is not None and eos in response else response


def _sampling_kwargs(settings: GenerationSettings) -> dict:
    """``generate``'s arguments for the settings' decoding. With ``draw = "nucleus"`` a sample is drawn by
    aopcore_hf.sampling's processor (transformers' distribution in a fraction of its sampler's time on a CPU) and
    taken as the arg-max."""
    if settings.do_sample and settings.draw == "nucleus":
        from transformers import LogitsProcessorList

        from aopcore_hf.sampling import sampling_processor

        draw = sampling_processor(settings.temperature, settings.top_k, settings.top_p)
        return dict(
            do_sample=False, temperature=None, top_p=None, top_k=None, logits_processor=LogitsProcessorList([draw])
        )
    return _config_sampling_kwargs(settings)


def _config_sampling_kwargs(settings: GenerationSettings) -> dict:
    """The settings' decoding as GenerationConfig fields (continuous batching takes no logits processors)."""
    if settings.do_sample:
        return dict(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    return dict(do_sample=False, temperature=None, top_p=None, top_k=None)


def generate_rollouts(
    model,
    tokenizer,
    queries: Sequence[list[int]],
    settings: GenerationSettings,
    *,
    seed: int | None = None,
    desc: str | None = None,
) -> list[Rollout]:
    """Generate for pre-tokenised queries with ``settings.backend``; results follow the order of ``queries``."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    if not queries:
        return []
    device = next(model.parameters()).device
    backend = resolve_backend(settings.backend, device.type)
    was_training = model.training
    model.eval()
    try:
        if backend == "continuous":
            responses = _generate_continuous(model, tokenizer, queries, settings)
        else:
            responses = _generate_padded(model, tokenizer, queries, settings, static=backend == "static", desc=desc)
    except Exception as exc:  # noqa: BLE001 - an automatically chosen fast path must never stop a run
        if settings.backend not in ("auto", "vllm") or backend == "plain":
            raise
        _failed_auto.add(backend)
        log.warning(
            "generation backend %r failed (%s: %s); using 'plain' from now on", backend, type(exc).__name__, exc
        )
        if seed is not None:
            torch.manual_seed(seed)
        responses = _generate_padded(model, tokenizer, queries, settings, static=False, desc=desc)
    finally:
        if was_training:
            model.train()
    return [Rollout(list(q), r) for q, r in zip(queries, responses)]


def _generate_padded(
    model, tokenizer, queries: Sequence[list[int]], settings: GenerationSettings, *, static: bool, desc: str | None
) -> list[list[int]]:
    """``model.generate`` over length-sorted, left-padded batches. With ``static``, every batch has one width (a
    multiple of STATIC_WIDTH_STEP) and ``batch_size`` rows (a short last batch repeats its last row), so the
    compiled decoding step and its static cache are reused from batch to batch and call to call."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(queries)), key=lambda i: len(queries[i]))
    results: list[list[int]] = [[] for _ in queries]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    batches = [order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
    kwargs = dict(
        max_new_tokens=settings.max_new_tokens, pad_token_id=pad, eos_token_id=eos, **_sampling_kwargs(settings)
    )
    if static:
        kwargs["cache_implementation"] = "static"
        longest = max(len(q) for q in queries)
        fixed_width = -(-longest // STATIC_WIDTH_STEP) * STATIC_WIDTH_STEP
        positions = getattr(model.config, "max_position_embeddings", None)
        if positions:  # the padding must not push the cache past the model's positions
            fixed_width = max(longest, min(fixed_width, positions - settings.max_new_tokens))
    with torch.no_grad():
        for batch in tqdm(batches, desc=desc or "generate", disable=desc is None, leave=False):
            rows = batch + [batch[-1]] * (settings.batch_size - len(batch)) if static and len(batches) > 1 else batch
            width = fixed_width if static else max(len(queries[i]) for i in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for row, i in enumerate(rows):
                q = queries[i]
                ids[row, width - len(q) :] = torch.tensor(q)
                mask[row, width - len(q) :] = 1
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
            for row, i in enumerate(batch):
                results[i] = _cut(out[row, width:].tolist(), eos)
    return results


def _generate_continuous(
    model, tokenizer, queries: Sequence[list[int]], settings: GenerationSettings
) -> list[list[int]]:
    """transformers' continuous batching (``generate_batch``); it returns results in the order of the inputs."""
    from transformers import GenerationConfig

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    config = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        pad_token_id=pad,
        eos_token_id=eos,
        **{k: v for k, v in _config_sampling_kwargs(settings).items() if v is not None},
    )
    cuda = next(model.parameters()).device.type == "cuda"
    paged = None
    if not cuda:  # off CUDA transformers sizes the paged cache from the machine's memory: far too large, and slow
        from transformers import ContinuousBatchingConfig

        blocks_each = -(-(max(len(q) for q in queries) + settings.max_new_tokens) // 256)  # 256: the default block size
        paged = ContinuousBatchingConfig(num_blocks=blocks_each * len(queries) + 1, max_batch_tokens=512)
    out = model.generate_batch(
        inputs=[list(q) for q in queries], generation_config=config, continuous_batching_config=paged, warmup=cuda
    )
    outputs = list(out.values())
    failed = [o.error for o in outputs if o.error is not None]
    if len(outputs) != len(queries) or failed:
        raise RuntimeError(
            f"continuous batching returned {len(outputs)} of {len(queries)} results; errors: {failed[:3]}"
        )
    return [_cut(list(o.generated_tokens), eos) for o in outputs]


def decode_responses(tokenizer, rollouts: Sequence[Rollout]) -> list[str]:
    return [tokenizer.decode(r.response, skip_special_tokens=True).strip() for r in rollouts]
