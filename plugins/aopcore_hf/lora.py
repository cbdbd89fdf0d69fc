"""LoRA adapters on the trained policy (PEFT): the policy's weights frozen, a low-rank update trained beside them.

Why: Adam's two moments of every weight are most of a training stage's memory (for SmolLM2, 1.1 GB of its 3.7 GB
peak on a CPU), and a frozen weight needs no weight gradient in the backward pass. Under bf16 autocast the frozen
weights are held in bf16 (autocast would cast them to bf16 at every use anyway, and a weight that takes no update
needs no float32 master copy). A stage still starts from and saves a plain model: the adapters' updates are added
to the stage's float32 input weights before the save, so evaluations, answers, the next stage's reference and every
other reader see an ordinary checkpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aopcore.errors import InputError

ALL_LINEAR = "all-linear"


class LoraOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1, description="Rank of each adapter.")
    alpha: float = Field(32.0, gt=0, description="Scale numerator: the update is (alpha / r) * B @ A.")
    dropout: float = Field(
        0.0, ge=0, lt=1, description="Dropout on the adapter's input (0: the same forward as merged weights)."
    )
    target_modules: list[str] | Literal["all-linear"] = Field(
        ALL_LINEAR, description='Module names that get adapters; "all-linear": every linear layer but the output layer.'
    )


def require_peft() -> None:
    try:
        import peft  # noqa: F401
    except ImportError as exc:
        raise InputError(
            "trainer.lora needs the package 'peft': pip install 'aopcore[hf]' (or pip install peft)"
        ) from exc


def attach(model: Any, options: LoraOptions) -> Any:
    """``model`` wrapped with fresh adapters (B = 0: the wrapped model computes what ``model`` did). The adapters
    are float32 whatever the frozen weights' dtype: they are the trained weights, with Adam's states beside them."""
    require_peft()
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    adapted = get_peft_model(model, config)
    for p in adapted.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return adapted


def is_adapted(model: Any) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def _adapted_layers(model: Any) -> Iterator[tuple[str, Any]]:
    """(name in the plain model, LoRA layer) for every layer that carries an adapter."""
    from peft.tuners.lora import LoraLayer

    for name, module in model.get_base_model().named_modules():
        if isinstance(module, LoraLayer) and module.active_adapters:
            yield name, module


def _delta(layer: Any) -> Any:
    """The layer's weight update from its active adapters, (alpha / r) * B @ A summed, in float32."""
    return sum(layer.get_delta_weight(a).float() for a in layer.active_adapters)


def deltas(model: Any) -> dict[str, Any]:
    """Each adapted layer's weight update, in float32, by the layer's name in the plain model."""
    import torch

    with torch.no_grad():
        return {name: _delta(layer) for name, layer in _adapted_layers(model)}


def fold(model: Any, updates: dict[str, Any]) -> Any:
    """``model`` (a plain one) with ``updates`` added to its layers' weights, in the weights' dtype.

    Into new tensors, not in place: a model just read holds its weights in a private mapping of the file, and
    writing into one copies it page by page (0.8 s for SmolLM2 where a new tensor takes 0.2 s)."""
    import torch

    with torch.no_grad():
        for name, delta in updates.items():
            weight = model.get_submodule(name).weight
            weight.data = weight.data + delta.to(device=weight.device, dtype=weight.dtype)
    return model


@contextlib.contextmanager
def sampling(model: Any) -> Iterator[Any]:
    """The model computing with its adapters folded into the weights, for the duration (decoding: an unfolded
    layer runs two more small matmuls at every token, about a quarter more decoding time for SmolLM2 on a CPU).

    The weights are copied before and restored after, so training goes on from bit-identical frozen weights
    (folding and subtracting again would round, and in bf16 by up to 2^-9 of each weight every step)."""
    if not is_adapted(model):
        yield model
        return
    import torch

    layers = list(_adapted_layers(model))
    kept = []
    with torch.no_grad():
        for _, layer in layers:
            weight = layer.get_base_layer().weight
            kept.append(weight.detach().clone())
            weight.add_(_delta(layer).to(weight.dtype))  # in the weights' dtype: these weights only sample
    try:
        with model.disable_adapter():
            yield model
    finally:
        with torch.no_grad():
            for (_, layer), weight in zip(layers, kept):
                layer.get_base_layer().weight.copy_(weight)


@contextlib.contextmanager
def adapters_off(model: Any) -> Iterator[Any]:
    """The frozen weights alone, in eval mode, for the duration: a LoRA stage's reference policy (its input), with
    no copy of its own to read and hold. Where the model has no adapters, the model itself."""
    if not is_adapted(model):
        yield model
        return
    training = model.training
    model.eval()
    try:
        with model.disable_adapter():
            yield model
    finally:
        model.train(training)


def reloaded(spec: str, choice: Any, updates: dict[str, Any]) -> Any:
    """A stage's result as a plain model: ``spec``'s weights read again in ``choice`` (float32: the frozen copy
    trained against was rounded) plus the adapters' ``updates`` (:func:`deltas`). The caller drops the adapted model
    first; what it freed goes back to the system before the second copy is read, so the stage's end is not its peak."""
    from aopcore.memory import release_freed_memory
    from aopcore_hf.models import load_causal_lm_weights

    release_freed_memory()  # PEFT's wrappers refer to each other: the collector frees them, glibc keeps the pages
    return fold(load_causal_lm_weights(spec, choice), updates)


def merged(model: Any) -> Any:
    """The plain model with the adapters added to its weights for good (in the weights' dtype); ``model`` itself
    when it has none."""
    return model.merge_and_unload() if is_adapted(model) else model
