"""Option models of the Hugging Face family (validated from the config's sections)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aopcore.options import DataSpec, InputFile, PreflightContext
from aopcore_hf.lora import LoraOptions
from aopcore_hf.models import DeviceChoice, ModelRef, model_problem


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


Checkpointing = bool | Literal["when-float32"]
WHEN_FLOAT32 = (
    ' "when-float32": on where the layers compute in float32 (no bf16 autocast, float32 weights: twice the activation '
    "memory of bf16), off under bf16 autocast; resolved when the config is read, so config.json records which ran "
    '(with mixed_precision = "native": on for AVX2-only CPUs, off where bf16 is native).'
)


def resolve_checkpointing(value: Checkpointing, *, float32: bool) -> bool:
    """``when-float32`` made true or false for this machine: the quickstart's memory then stays under its goal where
    float32 runs (SmolLM2 under LoRA: about 1.2 GB of SFT activations and 0.6 GB of PPO's), and where bf16 runs it
    does not pay for a recomputation whose memory it does not need."""
    return float32 if value == "when-float32" else bool(value)


def float32_layers(autocast_bf16: bool, choice: DeviceChoice) -> bool:
    """Whether a trainer's layers compute in float32: no bf16 autocast, and float32 weights."""
    import torch

    return not autocast_bf16 and choice.dtype == torch.float32


class SFTOptions(_Options):
    dataset: DataSpec = Field(
        description="Dolly-format data (instruction, context, response): a file or folder (.jsonl, .jsonl.gz, .json, .parquet, .csv), builtin:dolly-mini or hf:databricks/databricks-dolly-15k."
    )
    max_epochs: int = Field(
        4, ge=1, description="Upper bound on epochs; training stops when validation loss stops improving (paper: 4)."
    )
    patience: int = Field(1, ge=1, description="Epochs without validation improvement before stopping.")
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(512, ge=8, description="Tokens per training example (longer ones are truncated).")
    limit: int | None = Field(None, ge=1, description="Use only the first N records (quick runs).")
    mixed_precision: Literal["auto", "native", "bf16", "no"] = Field(
        "auto",
        description="bf16: forward and backward under bf16 autocast, float32 weights and Adam states. auto: as the "
        "policy's dtype says (bf16 autocast on CUDA when dtype is bfloat16). native: bf16 where the hardware computes "
        "it (CUDA with bf16; CPUs with AMX or AVX512-BF16), else no; resolved when the config is read (config.json "
        "records which ran).",
    )
    gradient_checkpointing: Checkpointing = Field(
        True,
        description="Recompute activations in the backward pass (TRL's default): less memory, about a quarter more "
        "compute." + WHEN_FLOAT32,
    )
    lora: LoraOptions | None = Field(
        None,
        description="Train LoRA adapters instead of every weight ([trainer.sft.lora]: r, alpha, dropout, "
        "target_modules; needs peft); they are merged into the saved policy_0 (the float32 weights plus the update). "
        "For SmolLM2 about 1.3 GB less at the stage's peak (no gradients or Adam states of the weights, and under bf16 "
        "autocast the frozen weights held in bf16).",
    )


class GenerationOptions(_Options):
    max_new_tokens: int = Field(64, ge=1, description="Response length during PPO rollouts (paper: 64).")
    do_sample: bool = Field(
        True,
        description="Sample rollouts (PPO explores by sampling); false decodes greedily, for reproducibility checks.",
    )
    temperature: float = Field(0.9, gt=0, description="Sampling temperature during rollouts (paper: 0.9).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling (paper: 1.0, i.e. off).")
    top_k: int = Field(0, ge=0, description="Top-k sampling; 0 disables it (paper: off).")
    max_prompt_tokens: int = Field(512, ge=8, description="Queries are truncated to this many tokens (paper: 512).")
    draw: Literal["transformers", "nucleus"] = Field(
        "transformers",
        description="How a sampled token is drawn: transformers' sampler (a sort of the whole vocabulary for top_p < 1 "
        "and torch.multinomial), or nucleus (aopcore_hf.sampling: the same distribution, the nucleus found among the "
        "256 most probable tokens, one uniform variate a row; 8-45 ms a step less for SmolLM2 on a CPU). The draws "
        "differ, so results recorded with one are not reproduced token for token by the other. Plain and static "
        "backends (vLLM and continuous batching sample their own way).",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        description="Rollouts generated per generate call during PPO (default: the whole PPO batch, "
        "or this process's share of it); smaller lowers peak memory, the math is unchanged.",
    )


class PolicyOptions(_Options):
    model: ModelRef = Field(
        "smollm2-135m-instruct",
        description="Hub id, local folder (relative to the config file), or offline alias (smollm2-135m-instruct).",
    )
    device: str = Field("auto", description="auto picks CUDA when available.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bf16 on CUDA where supported, else float32."
    )
    system_prompt: str | None = Field(None, description="Optional system message for chat-template models.")
    sft: SFTOptions | None = Field(
        None, description="Supervised fine-tuning that produces policy_0; omit to start from `model` as is."
    )
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    eval_max_new_tokens: int | None = Field(
        None, ge=1, description="Answer length for evaluation and test answers (default: generation.max_new_tokens)."
    )
    eval_do_sample: bool = Field(
        False, description="Greedy decoding for evaluation by default, so rewards compare policies, not samples."
    )
    eval_batch_size: int = Field(16, ge=1)
    generation_backend: Literal["auto", "plain", "static", "continuous", "vllm"] = Field(
        "auto",
        description="How evaluation, test answers and rollouts are generated: plain `generate`; `static` (static KV cache, "
        "compiled decoding step on CUDA); `continuous` (transformers' continuous batching); `vllm` (a vLLM engine in "
        "the vLLM environment, scripts/setup-vllm.sh: evaluation, test answers and, for `ppo` in one process, "
        "rollouts with the trained weights handed over each step; GRPO/RLOO rollouts then use auto). auto: static "
        "on CUDA, else plain. See docs/gpu.md.",
    )
    vllm_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description='What the vLLM engine computes in (generation_backend = "vllm"); auto: bfloat16. float32 gives '
        "the plain backend's greedy tokens; bfloat16 is faster and differs on near-ties (docs/gpu.md).",
    )
    report_to: list[Literal["tensorboard", "wandb", "trackio"]] = Field(
        default_factory=list, description="Trackers that receive per-step metrics where installed."
    )

    @model_validator(mode="after")
    def _resolve_sft_precision(self) -> PolicyOptions:
        """SFT's ``native`` precision becomes what this policy's device computes, and its ``when-float32``
        checkpointing true or false, so config.json records both."""
        if self.sft is not None and self.sft.mixed_precision == "native":
            from aopcore_hf.models import native_precision

            self.sft.mixed_precision = native_precision(self.device)
        if self.sft is not None and self.sft.gradient_checkpointing == "when-float32":
            from aopcore_hf.models import choose_device
            from aopcore_hf.sft import sft_autocast_bf16

            choice = choose_device(self.device, self.dtype)
            bf16 = sft_autocast_bf16(self.sft.mixed_precision, choice)
            self.sft.gradient_checkpointing = float32_layers(bf16, choice)
        return self

    def preflight(self, ctx: PreflightContext) -> list[str]:
        problems = []
        if problem := model_problem(self.model, ctx.base_dir):
            problems.append(f"model: {problem}")
        if self.sft and (problem := sft_data_problem(self.sft.dataset, ctx.base_dir, self.sft.limit)):
            problems.append(f"sft.dataset: {problem}")
        return problems


def sft_data_problem(spec: str, base_dir: Path, limit: int | None) -> str | None:
    """Read the SFT records now (a hub data set: its first record), so bad data shows before training."""
    from aopcore.errors import InputError
    from aopcore_hf.dataset_io import load_dolly

    try:
        load_dolly(spec, base_dir, limit=1 if spec.startswith("hf:") else limit)
    except InputError as exc:
        return "; ".join(exc.problems)
    return None


class PPOOptions(PolicyOptions):
    """Classic TRL PPO with the paper's hyperparameters as defaults."""

    learning_rate: float = Field(1.41e-5, gt=0)
    batch_size: int = Field(16, ge=1, description="Rollouts per PPO step (paper: 16).")
    mini_batch_size: int = Field(8, ge=1, description="Rollouts per optimiser step (paper: 8).")
    ppo_epochs: int = Field(4, ge=1, description="Optimisation epochs over each batch.")
    gamma: float = Field(1.0, ge=0, le=1, description="Discount factor.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    cliprange: float = Field(0.2, gt=0, description="Policy ratio clipping.")
    cliprange_value: float = Field(0.2, gt=0, description="Value clipping.")
    vf_coef: float = Field(0.1, ge=0, description="Value-loss coefficient.")
    init_kl_coef: float = Field(0.2, ge=0, description="Initial KL coefficient.")
    adap_kl_ctrl: bool = True
    target: float = Field(6.0, gt=0, description="Target KL of the adaptive controller.")
    horizon: int = Field(10000, ge=1, description="Horizon of the adaptive KL controller.")
    ratio_threshold: float = Field(
        10.0, gt=0, description="Skip a mini-batch whose mean probability ratio exceeds this."
    )
    whiten_advantages: bool = True
    max_grad_norm: float | None = Field(None, gt=0, description="Clip gradients to this norm (default: no clipping).")
    save_every_steps: int | None = Field(
        None,
        ge=1,
        description="Save a mid-stage checkpoint (policy, value head, optimiser, KL controller, "
        "RNG states) every N PPO steps into the stage's scratch folder; a killed stage resumes from the latest "
        "(one process; num_processes > 1 does not save yet). Default: off (a killed stage restarts).",
    )
    mixed_precision: Literal["auto", "native", "bf16", "no"] = Field(
        "auto",
        description="bf16: float32 master weights and Adam states, forward passes under bf16 autocast; on a CPU the "
        "evaluations and the reference then run a bf16 copy of the policy. no: train in `dtype` (pure bf16 on CUDA "
        "when dtype is auto: updates of the paper's learning rate round away). auto: bf16 on CUDA. native: bf16 where "
        "the hardware computes it (CUDA with bf16; CPUs with AMX or AVX512-BF16), else no; resolved when the config "
        "is read, so config.json records which ran and a resume on other hardware is refused.",
    )
    optimizer_in_backward: bool = Field(
        True,
        description="Step Adam inside the backward pass, each parameter as its gradient completes, and free that "
        "gradient: the same update with one model's worth of gradients less memory. Used only where it is the same "
        "update (one process, no max_grad_norm).",
    )
    gradient_checkpointing: Checkpointing = Field(
        False,
        description="Recompute each layer's activations in the backward pass: less memory, about a third more compute."
        + WHEN_FLOAT32,
    )
    lora: LoraOptions | None = Field(
        None,
        description="Train LoRA adapters instead of every weight ([trainer.lora]: r, alpha, dropout, "
        "target_modules; needs peft). Each stage merges them into the weights it saves, so every other stage reads "
        "an ordinary model. About 1.1 GB less memory for SmolLM2 (no Adam states of the weights) and a cheaper "
        "backward pass; the learning rate then wants to be about ten times the full fine-tuning one.",
    )
    reference_placement: Literal["device", "offload", "cpu"] = Field(
        "device",
        description="The frozen reference model: on the training device; `offload`: held in CPU memory and moved to the "
        "device for its one forward per step; `cpu`: computed on the CPU (no GPU memory, slow). With `lora` the "
        "reference is the frozen weights with the adapters off (no copy): `device` only.",
    )
    num_processes: int = Field(
        1,
        ge=1,
        description="Data-parallel training processes (DDP through accelerate; gloo on CPU, NCCL on GPUs). "
        "Each takes batch_size / num_processes rollouts; results match one process.",
    )
    accelerate_config: InputFile | None = Field(
        None, description="An accelerate config file (e.g. DeepSpeed ZeRO-1/2) passed through to `accelerate launch`."
    )
    # a group across machines: machine 0 is where the training stage runs (it holds the main rank and the reward
    # service); every other machine runs `python -m aopcore_hf.ppo.launch join CONFIG --machine-rank K`
    num_machines: int = Field(
        1,
        ge=1,
        description="Machines the data-parallel group spans; num_processes counts the processes of all of them. "
        "Start machines 1.. with `python -m aopcore_hf.ppo.launch join CONFIG --machine-rank K`.",
    )
    main_address: str = Field(
        "127.0.0.1",
        description="Machine 0's address as the other machines reach it: the launchers' rendezvous "
        "(torchrun --master_addr, accelerate --main_process_ip) when num_machines > 1.",
    )
    main_port: int = Field(29500, ge=1, le=65535, description="Rendezvous port on machine 0 when num_machines > 1.")
    reward_service_address: str = Field(
        "127.0.0.1",
        description="Where the reward service listens for the main rank (which runs on machine 0) "
        "with its per-launch key; 0.0.0.0 for every interface (e.g. ranks in containers).",
    )

    @model_validator(mode="after")
    def _batches_divide(self) -> PPOOptions:
        if self.batch_size % self.mini_batch_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of mini_batch_size ({self.mini_batch_size})"
            )
        if self.mini_batch_size % self.num_processes:
            raise ValueError(
                f"mini_batch_size ({self.mini_batch_size}) must be a multiple of num_processes ({self.num_processes})"
            )
        if self.num_processes % self.num_machines:
            raise ValueError(
                f"num_processes ({self.num_processes}) must be a multiple of num_machines ({self.num_machines}): "
                "it counts the processes of every machine"
            )
        if self.lora is not None and self.generation_backend == "vllm":
            raise ValueError(
                "lora: rollouts through vLLM hand it the trained weights by name, which adapters rename; "
                'use generation_backend = "auto" with lora'
            )
        if self.lora is not None and self.reference_placement != "device":
            raise ValueError(
                f'lora: the reference is the frozen weights with the adapters off, no copy to place; reference_placement = "{self.reference_placement}" '
                'applies without lora only (leave it at "device")'
            )
        if self.mixed_precision == "native":
            from aopcore_hf.models import native_precision

            self.mixed_precision = native_precision(self.device)
        if self.gradient_checkpointing == "when-float32":
            from aopcore_hf.models import choose_device
            from aopcore_hf.ppo.memory import autocast_dtype

            choice = choose_device(self.device, self.dtype)
            self.gradient_checkpointing = float32_layers(
                autocast_dtype(self.mixed_precision, choice) is not None, choice
            )
        return self


class TRLOptions(PolicyOptions):
    """Shared by the TRL-backed GRPO and RLOO trainers."""

    learning_rate: float = Field(1e-6, gt=0)
    batch_size: int = Field(16, ge=1, description="Completions per optimiser step (global).")
    num_generations: int = Field(4, ge=2, description="Completions sampled per prompt (group size).")
    beta: float = Field(0.05, ge=0, description="KL coefficient to the reference policy.")
    save_every_steps: int | None = Field(
        None,
        ge=1,
        description="Save a TRL checkpoint every N optimiser steps into the stage's scratch folder "
        "(save_steps); a killed stage resumes from the latest through resume_from_checkpoint. Default: off.",
    )
    extra: dict[str, object] = Field(default_factory=dict, description="Passed through to TRL's GRPOConfig/RLOOConfig.")
    num_processes: int = Field(
        1,
        ge=1,
        description="Data-parallel training processes (torchrun with gloo on CPU, accelerate launch with NCCL on "
        "GPUs), each taking batch_size / num_processes completions; the experiment process keeps the reward model "
        "and the curriculum's stream, so the draws are those of one process.",
    )

    @model_validator(mode="after")
    def _processes_divide(self) -> TRLOptions:
        if self.batch_size % self.num_processes:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of num_processes ({self.num_processes}): "
                "it is the global batch"
            )
        return self
