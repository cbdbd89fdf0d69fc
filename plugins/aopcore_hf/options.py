"""Option models of the Hugging Face family (validated from the config's sections)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aopcore_hf.models import model_problem


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class SFTOptions(_Options):
    dataset: str = Field(description="Dolly-format data (instruction, context, response): JSONL path, builtin:NAME or hf:databricks/databricks-dolly-15k.")
    max_epochs: int = Field(4, ge=1, description="Upper bound on epochs; training stops when validation loss stops improving (paper: 4).")
    patience: int = Field(1, ge=1, description="Epochs without validation improvement before stopping.")
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    learning_rate: float = 5e-5
    batch_size: int = 8
    max_length: int = 512
    limit: int | None = Field(None, ge=1, description="Use only the first N records (quick runs).")


class GenerationOptions(_Options):
    max_new_tokens: int = Field(64, ge=1, description="Response length during PPO rollouts (paper: 64).")
    do_sample: bool = Field(True, description="Sample rollouts (PPO explores by sampling); false decodes greedily, for reproducibility checks.")
    temperature: float = Field(0.9, gt=0, description="Sampling temperature during rollouts (paper: 0.9).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling (paper: 1.0, i.e. off).")
    top_k: int = Field(0, ge=0, description="Top-k sampling; 0 disables it (paper: off).")
    max_prompt_tokens: int = Field(512, ge=8, description="Queries are truncated to this many tokens (paper: 512).")


class PolicyOptions(_Options):
    model: str = Field("smollm2-135m-instruct", description="Hub id, local folder, or offline alias (smollm2-135m-instruct).")
    device: str = Field("auto", description="auto picks CUDA when available.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto: bf16 on CUDA where supported, else float32.")
    system_prompt: str | None = Field(None, description="Optional system message for chat-template models.")
    sft: SFTOptions | None = Field(None, description="Supervised fine-tuning that produces policy_0; omit to start from `model` as is.")
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    eval_max_new_tokens: int | None = Field(None, description="Answer length for evaluation and test answers (default: generation.max_new_tokens).")
    eval_do_sample: bool = Field(False, description="Greedy decoding for evaluation by default, so rewards compare policies, not samples.")
    eval_batch_size: int = Field(16, ge=1)
    report_to: list[Literal["tensorboard", "wandb", "trackio"]] = Field(default_factory=list, description="Trackers that receive per-step metrics where installed.")

    def preflight(self, base_dir: Path) -> list[str]:
        problems = []
        if problem := model_problem(self.model, base_dir):
            problems.append(f"model: {problem}")
        if self.sft and not self.sft.dataset.startswith(("builtin:", "hf:")) and not Path(self.sft.dataset).is_file():
            problems.append(f"sft.dataset: data file not found: {self.sft.dataset}")
        return problems

    def with_base_dir(self, base_dir: Path) -> "PolicyOptions":
        """Make relative model and data paths relative to the config file."""
        update: dict = {}
        if (base_dir / self.model).exists() and not Path(self.model).is_absolute():
            update["model"] = str((base_dir / self.model).resolve())
        if self.sft and not self.sft.dataset.startswith(("builtin:", "hf:")) and not Path(self.sft.dataset).is_absolute():
            update["sft"] = self.sft.model_copy(update={"dataset": str((base_dir / self.sft.dataset).resolve())})
        return self.model_copy(update=update) if update else self


class PPOOptions(PolicyOptions):
    """Classic TRL PPO with the paper's hyperparameters as defaults."""

    learning_rate: float = 1.41e-5
    batch_size: int = Field(16, ge=1, description="Rollouts per PPO step (paper: 16).")
    mini_batch_size: int = Field(8, ge=1, description="Rollouts per optimiser step (paper: 8).")
    ppo_epochs: int = Field(4, ge=1, description="Optimisation epochs over each batch.")
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    init_kl_coef: float = 0.2
    adap_kl_ctrl: bool = True
    target: float = Field(6.0, description="Target KL of the adaptive controller.")
    horizon: int = 10000
    ratio_threshold: float = Field(10.0, description="Skip a mini-batch whose mean probability ratio exceeds this.")
    whiten_advantages: bool = True
    max_grad_norm: float | None = None
    num_processes: int = Field(1, ge=1, description="Data-parallel training processes (DDP through accelerate; gloo on CPU, NCCL on GPUs). "
                                                    "Each takes batch_size / num_processes rollouts; results match one process.")
    accelerate_config: str | None = Field(None, description="An accelerate config file (e.g. DeepSpeed ZeRO-1/2) passed through to `accelerate launch`.")

    @model_validator(mode="after")
    def _batches_divide(self) -> "PPOOptions":
        if self.batch_size % self.mini_batch_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of mini_batch_size ({self.mini_batch_size})")
        if self.mini_batch_size % self.num_processes:
            raise ValueError(f"mini_batch_size ({self.mini_batch_size}) must be a multiple of num_processes ({self.num_processes})")
        return self


class TRLOptions(PolicyOptions):
    """Shared by the TRL-backed GRPO and RLOO trainers."""

    learning_rate: float = 1e-6
    batch_size: int = Field(16, ge=1, description="Completions per optimiser step (global).")
    num_generations: int = Field(4, ge=2, description="Completions sampled per prompt (group size).")
    beta: float = Field(0.05, ge=0, description="KL coefficient to the reference policy.")
    extra: dict[str, object] = Field(default_factory=dict, description="Passed through to TRL's GRPOConfig/RLOOConfig.")
