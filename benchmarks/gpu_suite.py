"""The GPU check: one prepared, offline run that writes one JSON of figures and stops (docs/gpu.md).

Sections, each in its own try/except under a time budget (a failing or slow section records why and the
others still run; the JSON is rewritten after every section, so even a killed run leaves its figures):

- ``environment``: versions, the card.
- ``ppo_ours``: our PPO at the paper's settings on a GPT-2-medium-sized model (24 layers, width 1024, 16 heads,
  50,257-token vocabulary, random weights), batch 16 / mini-batch 8, 4 PPO epochs, 64 new tokens, prompts of
  512 tokens; a GPT-2-medium-sized sequence classifier as the reward model. Seconds per step, episodes/s,
  generated tokens/s, peak GPU memory, and the time per epoch over the paper's 2,000 records x 2 passes
  extrapolated from the measured steps, beside the paper's "about 1.5 hours per epoch on an A100".
- ``ppo_trl``: the same for TRL 1.12.0's PPOTrainer (``trl.experimental.ppo``) on the same card and models.
- ``generation``: plain ``generate`` against the static-cache (compiled on CUDA) and continuous-batching
  backends: tokens/s and whether the greedy tokens are identical (float32, TF32 off, so that equal is exact).
- ``precision``: bf16 autocast against float32 on one fixed batch: PPO losses, KL and gradient norm.
- ``vllm``: where a Python with vLLM exists and on a card only: the vLLM engine (generation_backend = "vllm") on the
  paper-sized policy, tokens/s against plain, one in-place weight reload. vLLM does not fit in the carried wheels,
  so on the offline GPU machine it records why it skipped (run ``--sections generation,vllm`` where vLLM is installed).
- ``experiment``: the whole experiment loop through the CLI on the device at a reduced size (SFT, evaluation,
  curricula, PPO, test answers, judging, report) with the real Hugging Face plugins on tiny random models.

Models and tokenizers are built in-process (no hub, no downloads). ``--cpu-smoke`` runs the same code at tiny
sizes on the CPU (CI: tests/e2e/test_benchmarks.py).

    bash scripts/gpu-check.sh                                   # on the GPU machine (installs the carried wheels)
    python benchmarks/gpu_suite.py --cpu-smoke --out /tmp/gpu_suite.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PAPER_A100_HOURS_PER_EPOCH = 1.5  # "took about 1.5 hours on an A100 GPU per epoch" (paper, section 5.4)
PAPER_RECORDS, PAPER_PASSES = 2000, 2
BF16_TOLERANCE = {"relative": 0.05, "absolute": 0.001}  # |bf16 - fp32| <= relative * |fp32| + absolute


@dataclass(frozen=True)
class Sizes:
    name: str
    n_layer: int
    n_embd: int
    n_head: int
    vocab: int
    prompt_tokens: int
    new_tokens: int
    batch: int
    mini_batch: int
    ppo_epochs: int
    ppo_steps: int  # timed steps, after one warm-up step (CUDA start-up, compilation)
    trl_steps: int
    gen_prompts: int
    gen_batch: int
    gen_repeats: int  # calls per backend; the last is timed, the first includes compilation
    budgets: dict[str, float] = field(default_factory=dict)  # seconds per section
    deadline_s: float = 330.0


PAPER = Sizes(
    "paper",
    24,
    1024,
    16,
    50257,
    512,
    64,
    16,
    8,
    4,
    ppo_steps=4,
    trl_steps=3,
    gen_prompts=32,
    gen_batch=16,
    gen_repeats=2,
    budgets={
        "environment": 10,
        "setup": 30,
        "ppo_ours": 100,
        "ppo_trl": 65,
        "generation": 90,
        "precision": 20,
        "experiment": 60,
        "vllm": 120,
    },
    deadline_s=320.0,
)
TINY = Sizes(
    "tiny",
    2,
    64,
    2,
    512,
    24,
    8,
    4,
    2,
    1,
    ppo_steps=1,
    trl_steps=1,
    gen_prompts=6,
    gen_batch=4,
    gen_repeats=1,
    budgets={
        "environment": 10,
        "setup": 20,
        "ppo_ours": 30,
        "ppo_trl": 60,
        "generation": 40,
        "precision": 20,
        "experiment": 60,
        "vllm": 120,
    },
    deadline_s=240.0,
)
SECTIONS = ("environment", "setup", "ppo_ours", "ppo_trl", "generation", "precision", "experiment", "vllm")


class SectionTimeout(Exception):
    pass


@dataclass
class Context:
    sizes: Sizes
    device: str
    work: Path
    policy: Path | None = None
    reward: Path | None = None
    tiny_policy: Path | None = None
    tiny_reward: Path | None = None
    results: dict = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


# ---------------------------------------------------------------- models and data, built in-process


def word_tokenizer(vocab_size: int):
    """A word-level tokenizer over the words w0, w1, ...: one word, one token, so prompt lengths are exact."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[EOS]": 1, "[UNK]": 2, **{f"w{i}": i + 3 for i in range(vocab_size - 3)}}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]")


def build_models(folder: Path, sizes: Sizes, device: str, *, init_range: float = 0.02) -> tuple[Path, Path]:
    """A GPT-2 causal LM and a GPT-2 sequence classifier (the reward model) of ``sizes``, random weights, saved in float32."""
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    tok = word_tokenizer(sizes.vocab)
    common = dict(
        vocab_size=sizes.vocab,
        n_positions=max(1024, sizes.prompt_tokens + sizes.new_tokens + 64),
        n_embd=sizes.n_embd,
        n_layer=sizes.n_layer,
        n_head=sizes.n_head,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
        initializer_range=init_range,
    )
    paths = []
    for name, cls, extra in (
        ("policy", GPT2LMHeadModel, {}),
        ("reward", GPT2ForSequenceClassification, {"num_labels": 1}),
    ):
        torch.manual_seed(0)
        with torch.device(device):  # initialising 355M parameters on the card takes a second, on a CPU many
            model = cls(GPT2Config(**common, **extra))
        model.save_pretrained(folder / name)
        tok.save_pretrained(folder / name)
        paths.append(folder / name)
        del model
    return paths[0], paths[1]


def prompt_texts(sizes: Sizes, count: int, seed: int = 0) -> list[str]:
    """Prompts longer than ``prompt_tokens`` words: the plain template's query is truncated to exactly that length."""
    rng = random.Random(seed)
    return [
        " ".join(f"w{rng.randrange(sizes.vocab - 3)}" for _ in range(sizes.prompt_tokens + 8)) for _ in range(count)
    ]


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


# ---------------------------------------------------------------- sections


def section_environment(ctx: Context, out: dict) -> None:
    import importlib.metadata as md

    import torch

    def version(name: str) -> str | None:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None

    out.update(
        python=platform.python_version(),
        machine=platform.machine(),
        cpus=os.cpu_count(),
        device=ctx.device,
        sizes=ctx.sizes.name,
        cuda=torch.version.cuda,
        cuda_available=torch.cuda.is_available(),
        **{p: version(p) for p in ("torch", "transformers", "accelerate", "trl", "datasets", "pydantic", "aopcore")},
    )
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )


def section_setup(ctx: Context, out: dict) -> None:
    t0 = time.perf_counter()
    ctx.policy, ctx.reward = build_models(ctx.work / "models", ctx.sizes, ctx.device)
    ctx.tiny_policy, ctx.tiny_reward = build_models(ctx.work / "tiny", TINY, "cpu", init_range=0.3)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(ctx.policy)
    params = (
        12 * config.n_layer * config.n_embd**2 + config.vocab_size * config.n_embd + config.n_positions * config.n_embd
    )
    out.update(
        model=f"GPT-2 config n_layer={config.n_layer} n_embd={config.n_embd} n_head={config.n_head} "
        f"vocab={config.vocab_size}, random weights",
        parameters_m=round(params / 1e6, 1),
        reward_model="GPT-2 sequence classifier of the same size (the paper's DeBERTa-v3-large has 435M)",
        build_s=round(time.perf_counter() - t0, 1),
    )


def section_ppo_ours(ctx: Context, out: dict) -> None:
    import torch

    from aopcore import Prompt
    from aopcore_hf import generation
    from aopcore_hf.options import PPOOptions
    from aopcore_hf.ppo import PPOPolicyTrainer
    from aopcore_hf.ppo.memory import autocast_dtype
    from aopcore_hf.rewards import ClassifierOptions, SequenceClassifierReward

    s = ctx.sizes
    reward = SequenceClassifierReward(
        ClassifierOptions(model=str(ctx.reward), device=ctx.device, max_length=s.prompt_tokens + s.new_tokens)
    )
    opts = PPOOptions(
        model=str(ctx.policy),
        device=ctx.device,
        batch_size=s.batch,
        mini_batch_size=s.mini_batch,
        ppo_epochs=s.ppo_epochs,
        learning_rate=1.41e-5,
        generation={
            "max_new_tokens": s.new_tokens,
            "temperature": 0.9,
            "top_k": 0,
            "top_p": 1.0,
            "max_prompt_tokens": s.prompt_tokens,
        },
    )
    trainer = PPOPolicyTrainer(opts)
    amp = autocast_dtype(opts.mixed_precision, trainer.choice)
    out.update(
        batch_size=s.batch,
        mini_batch_size=s.mini_batch,
        ppo_epochs=s.ppo_epochs,
        new_tokens=s.new_tokens,
        prompt_tokens=s.prompt_tokens,
        mixed_precision=str(amp) if amp else "no",
        generation_backend=generation.resolve_backend(opts.generation_backend, torch.device(ctx.device).type),
    )
    texts = prompt_texts(s, s.batch * (s.ppo_steps + 1))
    prompts = [Prompt(str(i), t, "c") for i, t in enumerate(texts)]
    free_memory()
    t0 = time.perf_counter()
    stats = trainer.train(ctx.policy, prompts, reward, passes=1, out=ctx.work / "ours", seed=0)
    wall = time.perf_counter() - t0
    steps = stats.metrics
    warm = steps[1:] or steps
    step_s = mean([m["time/step_s"] for m in warm])
    tokens = sum(m["tokens/response_len_mean"] * s.batch for m in warm)
    steps_per_epoch = math.ceil(PAPER_RECORDS * PAPER_PASSES / s.batch)
    out.update(
        steps=len(steps),
        wall_s=round(wall, 2),
        first_step_s=round(steps[0]["time/step_s"], 2),
        step_s=round(step_s, 3),
        episodes_per_s=round(s.batch / step_s, 3),
        generated_tokens_per_s=round(tokens / sum(m["time/step_s"] for m in warm), 1),
        response_len_mean=round(mean([m["tokens/response_len_mean"] for m in warm]), 1),
        peak_memory_gib=peak_gib(),
        fits_24gb_card=None if peak_gib() is None else peak_gib() < 22.0,
        generation_backend_fell_back=out["generation_backend"] in generation._failed_auto,
        skipped_minibatches=sum(m["ppo/skipped_minibatches"] for m in steps),
        epoch_extrapolation={
            "records": PAPER_RECORDS,
            "passes": PAPER_PASSES,
            "steps": steps_per_epoch,
            "hours": round(steps_per_epoch * step_s / 3600, 3),
            "paper_a100_hours": PAPER_A100_HOURS_PER_EPOCH,
            "note": "measured steps at these sizes x the steps of one PPO epoch (2,000 records seen "
            "twice, batch 16); reward scoring included",
        },
    )


def section_ppo_trl(ctx: Context, out: dict) -> None:
    try:
        import trl
        from trl.experimental.ppo import PPOConfig, PPOTrainer
    except ImportError as exc:
        out.update(
            status="skipped",
            reason=f"TRL 1.12.0's PPOTrainer is not importable here ({exc}); "
            "scripts/gpu-check.sh installs it from the carried wheel",
        )
        return
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback

    from aopcore_hf.generation import encode_queries

    s = ctx.sizes
    tok = AutoTokenizer.from_pretrained(ctx.policy)
    tok.padding_side = "left"
    episodes = s.batch * (s.trl_steps + 1)
    queries = encode_queries(tok, prompt_texts(s, episodes), s.prompt_tokens)  # the very queries our PPO trains on
    data = Dataset.from_dict({"input_ids": queries})
    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if ctx.cuda:
                torch.cuda.synchronize()
            ends.append(time.perf_counter())

    bf16 = ctx.cuda and torch.cuda.is_bf16_supported()
    config = PPOConfig(
        output_dir=str(ctx.work / "trl"),
        per_device_train_batch_size=s.batch,
        num_mini_batches=s.batch // s.mini_batch,
        num_ppo_epochs=s.ppo_epochs,
        response_length=s.new_tokens,
        total_episodes=episodes,
        temperature=0.9,
        learning_rate=1.41e-5,
        report_to="none",
        bf16=bf16,
        fp16=False,
        use_cpu=not ctx.cuda,
        save_strategy="no",
        num_sample_generations=0,
        local_rollout_forward_batch_size=s.batch,
        seed=0,
        stop_token="eos",
    )
    trainer = PPOTrainer(
        args=config,
        processing_class=tok,
        model=AutoModelForCausalLM.from_pretrained(ctx.policy),
        ref_model=AutoModelForCausalLM.from_pretrained(ctx.policy),
        reward_model=AutoModelForSequenceClassification.from_pretrained(ctx.reward),
        value_model=AutoModelForSequenceClassification.from_pretrained(ctx.reward),
        train_dataset=data,
        eval_dataset=data.select(range(s.batch)),
        callbacks=[Clock()],
    )
    free_memory()
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    if not ends:
        raise RuntimeError("TRL's PPOTrainer reported no finished step")
    times = [ends[0] - t0] + [b - a for a, b in zip(ends, ends[1:])]
    warm = times[1:] or times
    step_s = mean(warm)
    out.update(
        trl_version=trl.__version__,
        algorithm="PPOv2: separate value model, score at the end, fixed KL",
        mixed_precision="bf16" if bf16 else "no",
        steps=len(times),
        wall_s=round(wall, 2),
        first_step_s=round(times[0], 2),
        step_s=round(step_s, 3),
        episodes_per_s=round(s.batch / step_s, 3),
        generated_tokens_per_s=round(s.batch * s.new_tokens / step_s, 1),
        peak_memory_gib=peak_gib(),
    )
    del trainer


def section_generation(ctx: Context, out: dict) -> None:
    """Speed at the paper's size as evaluation and test answers run (weights in bf16 on a card, as ``dtype = "auto"``
    loads them), and exactness on a small model with peaked logits in float32 with TF32 off: there, equal greedy
    tokens are exact arithmetic's verdict. (At the paper's size in bf16, padding to other shapes changes the
    rounding, and a random model's near-ties then flip some tokens; that agreement is recorded for information.)"""
    import torch

    from aopcore_hf.generation import GenerationSettings, generate_rollouts
    from aopcore_hf.models import DeviceChoice, choose_device, load_causal_lm
    from aopcore_hf.ppo.memory import autocast

    s = ctx.sizes
    choice = choose_device(ctx.device, "auto")  # bf16 on a card that has it, float32 on a CPU

    def queries_for(vocab: int, longest: int, count: int) -> list[list[int]]:
        rng = random.Random(1)
        return [
            [rng.randrange(3, vocab) for _ in range(rng.randrange(longest // 4, longest + 1))] for _ in range(count)
        ]

    def run(model, tok, queries, backend: str, new_tokens: int, precision) -> tuple[list[list[int]], float]:
        settings = GenerationSettings(
            max_new_tokens=new_tokens, do_sample=False, batch_size=s.gen_batch, backend=backend
        )
        if ctx.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast(ctx.device, precision):
            rollouts = generate_rollouts(model, tok, queries, settings)
        if ctx.cuda:
            torch.cuda.synchronize()
        return [r.response for r in rollouts], time.perf_counter() - t0

    # speed: the paper-sized model, 64 greedy tokens, batch 16
    model, tok = load_causal_lm(str(ctx.policy), choice)
    queries = queries_for(s.vocab, s.prompt_tokens, s.gen_prompts)
    speed: dict = {
        "prompts": len(queries),
        "prompt_tokens_mean": round(mean([len(q) for q in queries]), 1),
        "new_tokens": s.new_tokens,
        "batch_size": s.gen_batch,
        "weights": str(choice.dtype),
    }
    out["speed"] = speed
    run(model, tok, queries[:2], "plain", 2, None)  # CUDA start-up
    plain: list[list[int]] | None = None
    for backend in ("plain", "static", "continuous"):
        entry: dict = {}
        speed[backend] = entry
        try:
            calls = [
                run(model, tok, queries, backend, s.new_tokens, None)
                for _ in range(1 if backend == "plain" else s.gen_repeats)
            ]
            responses, seconds = calls[-1]
            tokens = sum(len(r) for r in responses)
            entry.update(
                first_call_s=round(calls[0][1], 2),
                s=round(seconds, 3),
                tokens=tokens,
                tokens_per_s=round(tokens / seconds, 1),
            )
            if plain is None:
                plain = responses
            else:
                entry["speedup_over_plain"] = round(entry["tokens_per_s"] / speed["plain"]["tokens_per_s"], 2)
                entry["same_tokens_as_plain"] = (
                    f"{sum(a == b for a, b in zip(responses, plain))}/{len(plain)} (information: rounding)"
                )
        except SectionTimeout:
            raise
        except Exception as exc:  # noqa: BLE001 - one backend failing is a figure too
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:600])
    del model
    free_memory()

    # exactness: a small model with peaked logits, float32, TF32 off
    if ctx.cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    small, small_tok = load_causal_lm(str(ctx.tiny_policy), DeviceChoice(ctx.device, torch.float32))
    small_queries = queries_for(TINY.vocab, 96, 2 * s.gen_batch + 1)  # a short last batch: the static path fills it up
    exact: dict = {
        "model": f"GPT-2 {TINY.n_layer} layers x {TINY.n_embd}, initializer range 0.3",
        "prompts": len(small_queries),
        "new_tokens": 16,
        "weights": "float32",
        "tf32": False,
    }
    out["exactness"] = exact
    reference, _ = run(small, small_tok, small_queries, "plain", 16, None)
    for backend in ("static", "continuous"):
        try:
            responses, _ = run(small, small_tok, small_queries, backend, 16, None)
            same = sum(a == b for a, b in zip(responses, reference))
            exact[backend] = {"identical_to_plain": f"{same}/{len(reference)}", "all_identical": same == len(reference)}
        except SectionTimeout:
            raise
        except Exception as exc:  # noqa: BLE001
            exact[backend] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:600]}


def section_precision(ctx: Context, out: dict) -> None:
    """bf16 autocast vs float32 through the PPO code's own forward and loss on one fixed batch: the rollouts are
    treated as sampled from the reference model, and the policy is the reference with its weights perturbed, so the
    KL, the probability ratios and both losses are all away from their trivial values."""
    import torch

    from aopcore_hf.generation import Rollout
    from aopcore_hf.models import DeviceChoice, load_causal_lm
    from aopcore_hf.ppo import PolicyWithValue, ValueHead, pad_batch, response_forward
    from aopcore_hf.ppo import functional as pm
    from aopcore_hf.ppo.memory import autocast

    s = ctx.sizes
    if ctx.cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    choice = DeviceChoice(ctx.device, torch.float32)
    model, _ = load_causal_lm(str(ctx.policy), choice)
    ref, _ = load_causal_lm(str(ctx.policy), choice)
    ref.eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1 and float(p.std()) > 0:
                p.add_((torch.randn(p.shape, generator=gen) * 0.05 * float(p.std())).to(p.device))
    rng = random.Random(2)
    rollouts = [
        Rollout(
            [rng.randrange(3, s.vocab) for _ in range(s.prompt_tokens)],
            [rng.randrange(3, s.vocab) for _ in range(s.new_tokens - (i % 4) * (s.new_tokens // 8))],
        )
        for i in range(s.mini_batch)
    ]
    rb = pad_batch(rollouts, 0).to(ctx.device)
    mask = rb.mask
    scores = torch.randn(len(rollouts), generator=gen).to(ctx.device)
    torch.manual_seed(0)
    module = PolicyWithValue(model, ValueHead(model.config.hidden_size).to(ctx.device))
    module.eval()  # no dropout: both precisions see the same network

    def measure(amp) -> dict:
        module.zero_grad(set_to_none=True)
        with torch.no_grad(), autocast(ctx.device, amp):
            values = module(rb)[1]
            ref_logprobs, _, _ = response_forward(ref, None, rb)
        with autocast(ctx.device, amp):
            logprobs, vpreds, _ = module(rb)
        rewards, kl = pm.token_rewards(scores, logprobs.detach(), ref_logprobs, mask, 0.2)
        advantages, returns = pm.gae(rewards, values, mask, 1.0, 0.95)
        advantages = pm.masked_whiten(advantages, mask)
        terms = pm.ppo_loss(
            logprobs,
            ref_logprobs,
            advantages,
            vpreds,
            values,
            returns,
            mask,
            cliprange=0.2,
            cliprange_value=0.2,
            vf_coef=0.1,
            ratio_threshold=float("inf"),
        )
        terms.loss.backward()
        grad_norm = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in module.parameters() if p.grad is not None))
        return {
            "kl": float(kl.sum(dim=1).mean()),
            "policy_loss": float(terms.policy_loss.detach()),
            "value_loss": float(terms.value_loss.detach()),
            "loss": float(terms.loss.detach()),
            "ratio_mean": float(terms.ratio_mean.detach()),
            "grad_norm": float(grad_norm),
            "_logprobs": logprobs.detach().float(),
        }

    fp32 = measure(None)
    bf16 = measure(torch.bfloat16)
    diff = (fp32.pop("_logprobs") - bf16.pop("_logprobs")).abs() * mask
    rel, absolute = BF16_TOLERANCE["relative"], BF16_TOLERANCE["absolute"]
    agree = {
        k: abs(bf16[k] - fp32[k]) <= rel * abs(fp32[k]) + absolute for k in ("kl", "policy_loss", "value_loss", "loss")
    }
    out.update(
        batch=f"{len(rollouts)} x ({s.prompt_tokens} + up to {s.new_tokens}) tokens",
        float32=fp32,
        bf16_autocast=bf16,
        logprob_abs_diff_max=round(float(diff.max()), 4),
        logprob_abs_diff_mean=round(float(diff.sum() / mask.sum()), 5),
        tolerance=f"|bf16 - fp32| <= {rel} x |fp32| + {absolute} for KL and the losses",
        within_tolerance=agree,
        agree=all(agree.values()),
    )


E2E_CONFIG = """\
[experiment]
name = "gpu-e2e"
output_dir = "{runs}"
seed = 0
iterations = {iterations}
records_per_iteration = {records}
passes = 1
plugins = ["toy_components"]   # two curricula that need no feedback LLM (tests/toy/toy_components.py)
plugin_paths = ["{tests}"]

[data]
heldout = "builtin:heldout"
categories = ["askbaking", "askdocs", "legaladvice"]
heldout_per_category = 1
test_prompts = "builtin:test-prompts"
test_size = 4

[trainer]
plugin = "ppo"
model = "{policy}"
device = "{device}"
batch_size = 4
mini_batch_size = 2
ppo_epochs = 2
eval_max_new_tokens = 8
eval_batch_size = 4

[trainer.generation]
max_new_tokens = 8
{sft}
[reward]
plugin = "sequence-classifier"
model = "{reward}"
device = "{device}"

[judge]
plugin = "reward-margin"
margin = 0.0

[arms.static]
curriculum = "toy-static"

[arms.weakest]
curriculum = "toy-weakest"
"""
E2E_SFT = """
[trainer.sft]
dataset = "builtin:dolly-mini"
limit = 8
max_epochs = 1
batch_size = 4
max_length = 64
"""


def section_experiment(ctx: Context, out: dict, *, timeout: float) -> None:
    runs = ctx.work / "e2e-runs"
    config = ctx.work / "e2e.toml"
    # the CPU smoke runs one short iteration without SFT (the tests cover SFT on the CPU) to stay within a minute
    sft = E2E_SFT if ctx.cuda else ""
    iterations, records = (2, 8) if ctx.cuda else (1, 4)
    config.write_text(
        E2E_CONFIG.format(
            runs=runs,
            tests=ROOT / "tests" / "toy",
            policy=ctx.tiny_policy,
            reward=ctx.tiny_reward,
            device=ctx.device,
            sft=sft,
            iterations=iterations,
            records=records,
        )
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "AOPCORE_CACHE": str(ctx.work / "cache")}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "aopcore.cli", "run", str(config)],
            capture_output=True,
            text=True,
            timeout=max(timeout - 3, 1),
            env=env,
            cwd=ctx.work,
        )
    except subprocess.TimeoutExpired as exc:  # keep what finished: the stage records say how far it got
        proc = subprocess.CompletedProcess(
            exc.cmd,
            -9,
            "",
            (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or ""),
        )
        out["timed_out"] = True
    wall = time.perf_counter() - t0
    run = runs / "gpu-e2e"
    stages = sorted(p.stem for p in (run / "stages").glob("*.json")) if (run / "stages").exists() else []
    kinds: dict[str, int] = {}
    for p in (run / "stages").glob("*.json") if stages else []:
        kind = json.loads(p.read_text()).get("kind", "?")
        kinds[kind] = kinds.get(kind, 0) + 1
    reports = {name: (run / name).exists() for name in ("report.md", "report.html")}
    out.update(
        returncode=proc.returncode,
        wall_s=round(wall, 1),
        sft=bool(sft),
        iterations=iterations,
        device=ctx.device,
        stages=len(stages),
        stage_kinds=kinds,
        reports=reports,
        completed=proc.returncode == 0 and all(reports.values()),
    )
    if proc.returncode != 0:
        out["stderr_tail"] = proc.stderr[-2000:]
        if out.get("timed_out"):
            raise SectionTimeout(f"aopcore run did not finish within {timeout:.0f} s")
        raise RuntimeError(f"aopcore run exited {proc.returncode}")


# ---------------------------------------------------------------- the driver


def section_vllm(ctx: Context, out: dict) -> None:
    """vLLM (generation_backend = "vllm") where a Python with vLLM exists (AOPCORE_VLLM_PYTHON or .venv-vllm): the engine
    started in its worker process on the paper-sized policy (bf16), the generation section's queries greedily, tokens/s
    against plain, and one in-place weight reload (how PPO hands its weights over). vLLM does not fit in the carried
    wheels, so on the offline GPU machine this section says so and skips; on CPUs tests/hf/test_vllm.py covers the path."""
    from aopcore_hf.vllm.engine import VLLMEngine, vllm_python

    if vllm_python() is None:
        out.update(
            status="skipped",
            reason="no Python with vLLM here (vLLM is hundreds of MB: it does not fit in the 64 MiB of "
            "carried wheels); set AOPCORE_VLLM_PYTHON to one to measure it",
        )
        return
    if not ctx.cuda:
        out.update(
            status="skipped",
            reason="CPU run: tests/hf/test_vllm.py covers vLLM on the CPU (an engine start costs tens of s)",
        )
        return
    s = ctx.sizes
    rng = random.Random(1)
    queries = [
        [rng.randrange(3, s.vocab) for _ in range(rng.randrange(s.prompt_tokens // 4, s.prompt_tokens + 1))]
        for _ in range(s.gen_prompts)
    ]
    t0 = time.perf_counter()
    engine = VLLMEngine(
        str(ctx.policy), dtype="bfloat16", max_model_len=s.prompt_tokens + s.new_tokens + 8, gpu_memory_utilization=0.3
    )
    try:
        out.update(start_s=round(time.perf_counter() - t0, 1), vllm=engine.info.get("vllm"))
        engine.generate(queries[:2], max_tokens=2)  # warm-up
        t0 = time.perf_counter()
        responses = engine.generate(queries, max_tokens=s.new_tokens)
        seconds = time.perf_counter() - t0
        tokens = sum(len(r) for r in responses)
        out.update(
            prompts=len(queries),
            new_tokens=s.new_tokens,
            s=round(seconds, 3),
            tokens=tokens,
            tokens_per_s=round(tokens / seconds, 1),
        )
        plain = ctx.results.get("sections", {}).get("generation", {}).get("speed", {}).get("plain", {})
        if plain.get("tokens_per_s"):
            out["speedup_over_plain"] = round(out["tokens_per_s"] / plain["tokens_per_s"], 2)
        out["reload_s"] = round(engine.reload(str(ctx.policy)), 2)
        out["same_tokens_after_reload"] = engine.generate(queries[:4], max_tokens=8) == [r[:8] for r in responses[:4]]
    finally:
        engine.close()


def summary(results: dict) -> dict:
    sec = results["sections"]
    ours, trl, gen, prec = (sec.get(k, {}) for k in ("ppo_ours", "ppo_trl", "generation", "precision"))
    out: dict = {}
    if "episodes_per_s" in ours and "episodes_per_s" in trl:
        out["ours_over_trl_episodes_per_s"] = round(ours["episodes_per_s"] / trl["episodes_per_s"], 3)
    if "epoch_extrapolation" in ours:
        out["hours_per_epoch_extrapolated"] = ours["epoch_extrapolation"]["hours"]
        out["paper_a100_hours_per_epoch"] = PAPER_A100_HOURS_PER_EPOCH
    for backend in ("static", "continuous"):
        if "speedup_over_plain" in gen.get("speed", {}).get(backend, {}):
            out[f"{backend}_over_plain_tokens_per_s"] = gen["speed"][backend]["speedup_over_plain"]
        if "all_identical" in gen.get("exactness", {}).get(backend, {}):
            out[f"{backend}_greedy_identical"] = gen["exactness"][backend]["all_identical"]
    if "agree" in prec:
        out["bf16_agrees_with_fp32"] = prec["agree"]
    if "speedup_over_plain" in sec.get("vllm", {}):
        out["vllm_over_plain_tokens_per_s"] = sec["vllm"]["speedup_over_plain"]
    if "completed" in sec.get("experiment", {}):
        out["experiment_completed"] = sec["experiment"]["completed"]
    out["sections_ok"] = [k for k, v in sec.items() if v.get("status") == "ok"]
    out["sections_not_ok"] = {k: v.get("status") for k, v in sec.items() if v.get("status") != "ok"}
    return out


def write(results: dict, path: Path) -> None:
    results["summary"] = summary(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def run_section(name: str, fn: Callable[[], None], out: dict, budget: float) -> None:
    """Run one section under a wall-clock budget (SIGALRM); record ok, timeout, skipped or failed, and the seconds."""

    def expire(signum, frame):
        raise SectionTimeout(f"over its budget of {budget:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, budget)
    t0 = time.perf_counter()
    try:
        fn()
        out.setdefault("status", "ok")
    except SectionTimeout as exc:
        out.update(status="timeout", error=str(exc))
    except subprocess.TimeoutExpired:
        out.update(status="timeout", error=f"over its budget of {budget:.0f} s")
    except Exception as exc:  # noqa: BLE001 - a failing section must not cost the others their figures
        out.update(
            status="failed", error=f"{type(exc).__name__}: {exc}"[:1000], traceback=traceback.format_exc()[-3000:]
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        out.update(seconds=round(time.perf_counter() - t0, 1), budget_s=budget)
        print(f"[gpu_suite] {name}: {out['status']} in {out['seconds']} s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_out = (
        Path(os.environ["OUT"]) / "gpu_suite.json"
        if os.environ.get("OUT")
        else ROOT / "benchmarks" / "results" / "gpu_suite.json"
    )
    ap.add_argument("--out", type=Path, default=default_out)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (what CI runs)")
    ap.add_argument("--device", default="auto", help="auto: cuda when available")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes on --device")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ", ".join(SECTIONS))
    args = ap.parse_args(argv)
    started = time.perf_counter()
    import torch

    device = "cpu" if args.cpu_smoke else args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = TINY if args.cpu_smoke or args.tiny else PAPER
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        print(f"gpu_suite: unknown section(s) {', '.join(unknown)}; expected {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    results: dict = {
        "benchmark": "gpu_suite",
        "sizes": asdict(sizes),
        "device": device,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sections": {},
    }
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as tmp:
        ctx = Context(sizes, device, Path(tmp), results=results)
        for name in SECTIONS:
            if name not in wanted and name != "setup":
                continue
            out: dict = {}
            results["sections"][name] = out
            left = sizes.deadline_s - (time.perf_counter() - started)
            budget = min(sizes.budgets[name], left - 5)
            if name not in ("environment", "setup") and results["sections"].get("setup", {}).get("status") != "ok":
                out.update(status="skipped", reason="setup (building the models) failed", seconds=0)
            elif budget < 5:
                out.update(
                    status="skipped",
                    reason=f"out of time: {left:.0f} s left of the {sizes.deadline_s:.0f} s deadline",
                    seconds=0,
                )
            else:
                fn = globals()[f"section_{name}"]
                call = (
                    (lambda fn=fn, out=out, b=budget: fn(ctx, out, timeout=b))
                    if name == "experiment"
                    else (lambda fn=fn, out=out: fn(ctx, out))
                )
                run_section(name, call, out, budget)
                free_memory()
                if name in ("ppo_ours", "ppo_trl", "generation"):
                    torch._dynamo.reset()  # compiled graphs and CUDA graphs hold memory the next section needs
            results["wall_s"] = round(time.perf_counter() - started, 1)
            write(results, args.out)
    print(json.dumps(results["summary"], indent=2))
    print(f"[gpu_suite] wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
