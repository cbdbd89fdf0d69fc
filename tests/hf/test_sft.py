"""Supervised fine-tuning (aopcore_hf.sft) on a tiny GPT-2: tied weights reload cleanly, no deprecated TRL settings."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains a tiny model


def test_sft_of_a_tied_model_reloads_its_best_epoch_without_a_missing_keys_warning(tmp_path: Path, capfd):
    """SmolLM2 and GPT-2 tie lm_head to the embeddings; reloading the best SFT epoch used to warn about lm_head.weight."""
    torch = pytest.importorskip("torch")
    from aopcore_hf.models import choose_device, load_causal_lm
    from aopcore_hf.options import SFTOptions
    from aopcore_hf.sft import run_sft

    from helpers.tiny_models import save_tiny_gpt2

    base = save_tiny_gpt2(tmp_path / "gpt2")
    out = tmp_path / "sft"
    out.mkdir()
    run_sft(
        str(base),
        SFTOptions(dataset="builtin:dolly-mini", max_epochs=2, limit=16, batch_size=8, learning_rate=5e-3),
        out,
        choice=choose_device("cpu"),
        seed=0,
    )
    err = capfd.readouterr().err
    assert "missing keys" not in err, err[-2000:]
    model, _ = load_causal_lm(str(out), choose_device("cpu"))
    before, _ = load_causal_lm(str(base), choose_device("cpu"))
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # still tied after the reload
    assert not torch.equal(model.transformer.wte.weight, before.transformer.wte.weight)  # and it is the trained model


def test_sft_uses_the_current_checkpointing_api_and_prints_no_deprecation(tmp_path: Path):
    """TRL's SFTConfig sets the deprecated `gradient_checkpointing` unless `activation_checkpointing` is given."""
    import warnings

    import pytest

    pytest.importorskip("trl")
    from aopcore_hf.models import choose_device
    from aopcore_hf.options import SFTOptions
    from aopcore_hf.sft import run_sft, sft_config

    from helpers.tiny_models import save_tiny_gpt2

    options = SFTOptions(dataset="builtin:dolly-mini", max_epochs=1, limit=16, batch_size=8, learning_rate=5e-3)
    assert sft_config(options, tmp_path / "work", choice=choose_device("cpu"), seed=0).activation_checkpointing is True
    base = save_tiny_gpt2(tmp_path / "gpt2")
    (tmp_path / "sft").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_sft(str(base), options, tmp_path / "sft", choice=choose_device("cpu"), seed=0)
    assert (tmp_path / "sft" / "sft.json").exists()
    deprecated = [str(w.message) for w in caught if "checkpointing" in str(w.message)]
    assert not deprecated, deprecated


def test_one_epoch_saves_no_checkpoint_and_several_keep_the_best(tmp_path: Path):
    """One epoch has no best epoch to choose: no mid-run checkpoint (model and Adam states) is written and read back."""
    pytest.importorskip("trl")
    from aopcore_hf.models import choose_device
    from aopcore_hf.options import SFTOptions
    from aopcore_hf.sft import sft_config

    def config(epochs: int):
        options = SFTOptions(dataset="builtin:dolly-mini", max_epochs=epochs, limit=16)
        return sft_config(options, tmp_path / "work", choice=choose_device("cpu"), seed=0)

    one, two = config(1), config(2)
    assert one.save_strategy == "no" and one.load_best_model_at_end is False
    assert two.save_strategy == "epoch" and two.load_best_model_at_end is True
    assert two.metric_for_best_model == "eval_loss" and one.eval_strategy == "epoch"  # losses still logged


def test_sft_checkpointing_when_float32_is_on_exactly_where_float32_trains(tmp_path: Path):
    """Read through the policy's options it is resolved (config.json records it); an SFTOptions used alone is
    resolved when TRL's config is made."""
    pytest.importorskip("trl")
    from aopcore_hf.models import choose_device, native_bf16
    from aopcore_hf.options import PolicyOptions, SFTOptions
    from aopcore_hf.sft import sft_config

    def policy(precision: str) -> object:
        sft = {"dataset": "builtin:dolly-mini", "mixed_precision": precision, "gradient_checkpointing": "when-float32"}
        return PolicyOptions(device="cpu", sft=sft).sft.gradient_checkpointing

    assert policy("no") is True and policy("bf16") is False
    assert policy("native") is (not native_bf16("cpu"))

    def trl(precision: str) -> bool:
        options = SFTOptions(
            dataset="builtin:dolly-mini", mixed_precision=precision, gradient_checkpointing="when-float32"
        )
        return sft_config(options, tmp_path / "work", choice=choose_device("cpu"), seed=0).activation_checkpointing

    assert trl("no") is True and trl("bf16") is False


def test_sft_precision_native_follows_the_cpu_and_bf16_runs_under_autocast(tmp_path: Path):
    """``native`` becomes bf16 exactly where the CPU computes bf16, and is recorded resolved; a bf16 SFT keeps its
    weights float32 (autocast) and still trains them."""
    pytest.importorskip("trl")
    import torch

    from aopcore_hf.models import choose_device, native_bf16
    from aopcore_hf.options import PolicyOptions, SFTOptions
    from aopcore_hf.sft import run_sft, sft_autocast_bf16

    from helpers.tiny_models import save_tiny_gpt2

    resolved = PolicyOptions(device="cpu", sft={"dataset": "builtin:dolly-mini", "mixed_precision": "native"})
    assert resolved.sft.mixed_precision == ("bf16" if native_bf16("cpu") else "no")
    cpu = choose_device("cpu")
    assert sft_autocast_bf16("bf16", cpu) and not sft_autocast_bf16("no", cpu) and not sft_autocast_bf16("auto", cpu)

    base = save_tiny_gpt2(tmp_path / "gpt2")
    (tmp_path / "sft").mkdir()
    options = SFTOptions(
        dataset="builtin:dolly-mini", max_epochs=1, limit=16, batch_size=8, learning_rate=5e-3, mixed_precision="bf16"
    )
    run_sft(str(base), options, tmp_path / "sft", choice=cpu, seed=0)
    from safetensors.torch import load_file

    before, after = load_file(base / "model.safetensors"), load_file(tmp_path / "sft" / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in after.values())
    assert max(float((after[k] - before[k]).abs().max()) for k in before) > 1e-4
