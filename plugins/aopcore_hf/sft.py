"""Supervised fine-tuning for policy_0 with TRL's SFTTrainer on Dolly-format data (paper section 5.2).

Trains up to ``max_epochs`` and keeps the epoch with the best validation loss,
stopping once it has not improved for ``patience`` epochs.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

from aopcore_hf import lora
from aopcore_hf.dataset_io import load_dolly
from aopcore_hf.generation import format_prompt
from aopcore_hf.models import DeviceChoice, load_causal_lm
from aopcore_hf.options import SFTOptions
from aopcore_hf.policy_io import save_policy


def dolly_prompt(row: dict[str, str]) -> str:
    return row["instruction"] + (f"\n\n{row['context']}" if row.get("context") else "")


def sft_autocast_bf16(mixed_precision: str, choice: DeviceChoice) -> bool:
    """Whether SFT runs under bf16 autocast (float32 weights and Adam states either way): on a CPU that computes
    bf16 (``native``), its matrix products run at several times float32's rate."""
    if mixed_precision == "native":
        from aopcore_hf.models import native_precision

        mixed_precision = native_precision(choice.device)
    if mixed_precision == "auto":
        return choice.device.startswith("cuda") and "bfloat16" in str(choice.dtype)
    return mixed_precision == "bf16"


def sft_config(options: SFTOptions, work: Path, *, choice: DeviceChoice, seed: int):
    """TRL's SFTConfig for one SFT run: evaluate and save every epoch, keep the best by validation loss.

    One epoch has no best to choose: then nothing is saved mid-run (a checkpoint of SmolLM2 with its Adam states
    is about 1.6 GB written and read back) and the model as trained is the result.

    Activation checkpointing (TRL's default for SFT) is set by its current name: TRL still sets the deprecated
    ``gradient_checkpointing`` otherwise, and transformers warns about it on every run.
    """
    from trl import SFTConfig

    from aopcore_hf.options import float32_layers, resolve_checkpointing

    cpu = not choice.device.startswith("cuda")
    choose_best = options.max_epochs > 1
    return SFTConfig(
        output_dir=str(work),
        num_train_epochs=options.max_epochs,
        learning_rate=options.learning_rate,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        max_length=options.max_length,
        eval_strategy="epoch",
        save_strategy="epoch" if choose_best else "no",
        load_best_model_at_end=choose_best,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        save_total_limit=options.patience + 1,
        logging_strategy="epoch",
        report_to="none",
        seed=seed,
        use_cpu=cpu,
        bf16=sft_autocast_bf16(options.mixed_precision, choice),
        completion_only_loss=True,
        activation_checkpointing=resolve_checkpointing(
            options.gradient_checkpointing,
            float32=float32_layers(sft_autocast_bf16(options.mixed_precision, choice), choice),
        ),
    )


def run_sft(
    model_spec: str,
    options: SFTOptions,
    out: Path,
    *,
    choice: DeviceChoice,
    seed: int,
    system: str | None = None,
    base_dir: Path | None = None,
) -> dict[str, float]:
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    rows = load_dolly(options.dataset, base_dir, limit=options.limit)
    rng = random.Random(seed)
    rng.shuffle(rows)
    n_val = max(1, int(len(rows) * options.validation_fraction))
    # LoRA under bf16 autocast: the frozen weights in bf16 (the same products, without a cast at every use)
    autocast = sft_autocast_bf16(options.mixed_precision, choice)
    import torch

    frozen = DeviceChoice(choice.device, torch.bfloat16) if options.lora is not None and autocast else choice
    model, tokenizer = load_causal_lm(model_spec, frozen)
    if options.lora is not None:
        model = lora.attach(model, options.lora)
    tokenizer.padding_side = "right"

    def to_example(row: dict[str, str]) -> dict[str, str]:
        return {
            "prompt": format_prompt(tokenizer, dolly_prompt(row), system=system),
            "completion": row["response"].strip() + tokenizer.eos_token,
        }

    train = Dataset.from_list([to_example(r) for r in rows[n_val:]])
    val = Dataset.from_list([to_example(r) for r in rows[:n_val]])
    work = out / "sft-checkpoints"
    config = sft_config(options, work, choice=choice, seed=seed)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=train,
        eval_dataset=val,
        processing_class=tokenizer,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=options.patience)] if options.max_epochs > 1 else [],
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for noisy in (PrinterCallback, ProgressCallback):  # they print raw log dicts to stdout; losses go to sft.json
        trainer.remove_callback(noisy)
    initial = trainer.evaluate()["eval_loss"]
    trainer.train()
    tokenizer.padding_side = "left"
    state = trainer.state
    trained = trainer.model
    if options.lora is not None and frozen != choice:  # policy_0: the float32 weights read again plus the update
        updates = lora.deltas(trained)
        del trainer, trained, model  # the frozen copy goes before the float32 one comes
        trained = lora.reloaded(model_spec, choice, updates)
    save_policy(lora.merged(trained), tokenizer, out)
    shutil.rmtree(work, ignore_errors=True)
    # per-epoch evaluations only (train() starts a fresh history, but do not rely on it)
    evals = [e["eval_loss"] for e in state.log_history if "eval_loss" in e and e.get("epoch", 0) > 0]
    logging.getLogger("aopcore").info(
        "sft: validation loss %.3f before, %s per epoch; kept the best epoch",
        initial,
        ", ".join(f"{v:.3f}" for v in evals),
    )
    summary = {
        "epochs": float(state.epoch or 0),
        "initial_eval_loss": initial,
        "eval_loss_per_epoch": evals,
        "train_loss_per_epoch": [e["loss"] for e in state.log_history if "loss" in e],
        "best_eval_loss": min(evals) if evals else None,
        "train_records": len(train),
        "validation_records": len(val),
    }
    (out / "sft.json").write_text(json.dumps(summary, indent=2))  # beside the policy it produced, in the run directory
    return summary
