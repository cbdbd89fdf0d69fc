"""Faster decoding for the models that are only run, on a CPU without bf16 units: speed and what each computes.

    .venv/bin/python benchmarks/cpu_decode_precision.py --out benchmarks/results/cpu_decode_precision.json

On an AVX2-only CPU bf16 is emulated (4-6x slower than float32), so the quickstart runs float32 there. This
measures the other low-precision paths PyTorch has for such a CPU on SmolLM2-135M, against float32 in the same
process:

- ``int8-dynamic``: ``torch.ao.quantization.quantize_dynamic`` on every linear layer (int8 weights per channel,
  activations quantized to int8 per call);
- ``fp16-weights``: FBGEMM's fp16-weight, float32-activation product for calls of at most 64 rows (decoding) and
  float32 above that (prefill, where it is slower);

speed: greedy decoding at the quickstart's shapes (evaluation: 12 rows, 24 tokens; rollouts and test answers: 8
rows; the feedback LLM: 16 rows after 267 prompt tokens, 72 tokens); fidelity: on 8 questions in the chat template,
how many greedy answers equal float32's, and how far float32's answers' log-probs move under the variant (mean
absolute difference per token). A variant a user could take for float32 needs both: faster, and answers that
float32 would give.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import emit  # noqa: E402
from quickstart_profile import decode_seconds  # noqa: E402

QUESTIONS = [
    "How do I keep bread from going stale?",
    "Why is the sky blue?",
    "What should I do if my landlord keeps my deposit?",
    "Explain like I'm five: how do vaccines work?",
    "Why do cakes sink in the middle?",
    "Is it safe to take ibuprofen with coffee?",
    "Change my view: remote work is better for everyone.",
    "How does a refrigerator move heat outside?",
]
SHAPES = [(8, 48, 24), (12, 60, 24), (16, 267, 72)]  # rows, prompt tokens, new tokens


def load() -> tuple[Any, Any]:
    import torch

    from aopcore_hf.models import DeviceChoice, load_causal_lm

    model, tokenizer = load_causal_lm("smollm2-135m-instruct", DeviceChoice("cpu", torch.float32))
    return model.eval(), tokenizer


def int8_dynamic(model: Any) -> Any:
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec, dtype=torch.qint8)


def fp16_weights(model: Any, rows: int = 64) -> Any:
    import torch

    class HalfWeightLinear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear) -> None:
            super().__init__()
            self.weight = linear.weight
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.packed = torch.fbgemm_pack_gemm_matrix_fp16(linear.weight.detach())
            self.bias = torch.zeros(linear.out_features) if linear.bias is None else linear.bias

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.reshape(-1, x.shape[-1])
            if flat.shape[0] > rows:
                return torch.nn.functional.linear(x, self.weight, self.bias)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = torch.fbgemm_linear_fp16_weight_fp32_activation(flat.contiguous(), self.packed, self.bias)
            return out.reshape(*x.shape[:-1], -1)

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, HalfWeightLinear(child))
    return model


def fidelity(reference: Any, variant: Any, tokenizer: Any) -> dict[str, float]:
    import torch

    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in QUESTIONS
    ]
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    width = enc.input_ids.shape[1]
    with torch.no_grad():
        ref = reference.generate(**enc, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        var = variant.generate(**enc, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        mask = torch.cat([enc.attention_mask, (ref[:, width:] != tokenizer.pad_token_id).long()], dim=1)

        def logprobs(model: Any) -> torch.Tensor:
            logits = model(input_ids=ref, attention_mask=mask).logits[:, width - 1 : -1].float()
            return torch.log_softmax(logits, -1).gather(-1, ref[:, width:, None]).squeeze(-1)

        moved = (logprobs(variant) - logprobs(reference)).abs()
    return {
        "greedy_answers_equal": sum(bool(torch.equal(a, b)) for a, b in zip(ref, var)),
        "of": len(QUESTIONS),
        "logprob_abs_diff_mean": round(float(moved.mean()), 4),
        "logprob_abs_diff_max": round(float(moved.max()), 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per shape and variant (the median is kept)")
    ap.add_argument("--small", action="store_true", help="the first shape only (the tests' form)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch

    from aopcore_hf.models import cpu_has_native_bf16

    reference, tokenizer = load()
    variants: dict[str, Any] = {"float32": reference}
    prepare: dict[str, float] = {}  # seconds to make the variant from a loaded float32 model
    for name, make in (("int8-dynamic", int8_dynamic), ("fp16-weights", fp16_weights)):
        model = load()[0]
        start = time.perf_counter()
        variants[name] = make(model)
        prepare[name] = time.perf_counter() - start
    speed: dict[str, dict[str, float]] = {}
    for rows, prompt, new in SHAPES[:1] if args.small else SHAPES:
        key = f"{rows}x{prompt}+{new}"
        times: dict[str, list[float]] = {name: [] for name in variants}
        for model in variants.values():
            decode_seconds(model, rows, prompt, 2)  # warm-up
        for _ in range(args.repeats):  # alternating, so drift hits every variant alike
            for name, model in variants.items():
                times[name].append(decode_seconds(model, rows, prompt, new))
        median = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
        speed[key] = {
            **{f"{name}_s": round(t, 2) for name, t in median.items()},
            **{
                f"{name}_over_float32": round(t / median["float32"], 2)
                for name, t in median.items()
                if name != "float32"
            },
        }
    result = {
        "benchmark": "cpu_decode_precision",
        "cpu": {"capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_native_bf16()},
        "threads": torch.get_num_threads(),
        "prepare_s": {k: round(v, 2) for k, v in prepare.items()},
        "decode": speed,
        "fidelity": {
            "int8-dynamic": fidelity(reference, variants["int8-dynamic"], tokenizer),
            # fp16 weights in every product, prefill and the log-prob pass included (the timed variant computes
            # calls of more than 64 rows in float32)
            "fp16-weights": fidelity(reference, fp16_weights(load()[0], rows=10**9), tokenizer),
        },
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
