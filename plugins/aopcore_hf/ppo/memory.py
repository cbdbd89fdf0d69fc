"""Precision and memory of a PPO run: float32 master weights under bf16 autocast, gradient checkpointing,
and where the frozen reference model lives (docs/gpu.md has the memory estimate these defaults rest on)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from aopcore_hf.models import DeviceChoice, load_causal_lm


def autocast_dtype(mixed_precision: str, choice: DeviceChoice) -> torch.dtype | None:
    """The autocast dtype of the forward passes, or None for none (``auto``: bf16 on a CUDA card that has it)."""
    if mixed_precision == "auto":
        cuda = choice.device.startswith("cuda") and torch.cuda.is_available()
        mixed_precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    return torch.bfloat16 if mixed_precision == "bf16" else None


def weights_choice(choice: DeviceChoice, amp: torch.dtype | None) -> DeviceChoice:
    """Under autocast the trained weights (and so Adam's states) stay float32: a bf16 weight cannot take an update
    of the paper's learning rate (1.41e-5 relative to weights of ~1e-2 is below bf16's 2^-8 resolution)."""
    return DeviceChoice(choice.device, torch.float32) if amp is not None else choice


def adam_kwargs(device: str) -> dict[str, bool]:
    """The fused Adam kernel on CPUs and CUDA: one pass over each parameter, where the default multi-tensor Adam
    allocates temporaries as large as all the parameters at every step (hundreds of MB for SmolLM2)."""
    return {"fused": True} if torch.device(device).type in ("cpu", "cuda") else {}


@contextlib.contextmanager
def autocast(device: str, amp: torch.dtype | None) -> Iterator[None]:
    if amp is None:
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=amp):
        yield


def enable_gradient_checkpointing(model) -> None:
    """Non-reentrant checkpointing: it works with inputs that need no gradient and keeps dropout's random state."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x; the older name is deprecated there
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


class Reference:
    """The frozen reference policy, placed by ``reference_placement``: ``device`` keeps it on the training device,
    ``offload`` holds it in CPU memory and moves it to the device for its one forward per step, ``cpu`` computes
    its log-probs on the CPU in float32."""

    def __init__(
        self,
        spec: str,
        choice: DeviceChoice,
        placement: str,
        amp: torch.dtype | None,
        *,
        loaded: Callable[[DeviceChoice], Any] | None = None,
    ) -> None:
        """``loaded(where)``: the policy's weights already in memory in that placement and dtype (read-only: the
        generation cache's model), or None; the reference then shares them instead of reading a second copy."""
        self.device = choice.device
        self.placement = placement
        self.amp = amp
        where = DeviceChoice(
            choice.device if placement == "device" else "cpu", torch.float32 if placement == "cpu" else choice.dtype
        )
        self.model = loaded(where) if loaded is not None else None
        self.shared = self.model is not None
        if self.model is None:
            self.model, _ = load_causal_lm(spec, where)
        self.model.eval().requires_grad_(False)

    def logprobs(self, batch: Any, forward: Callable[..., tuple[torch.Tensor, Any, Any]]) -> torch.Tensor:
        """Response log-probs of ``batch`` (on the training device) under the reference model, on the training device."""
        with torch.no_grad():
            if self.placement == "cpu":
                with torch.autocast(device_type="cpu", enabled=False):
                    logprobs, _, _ = forward(self.model, None, batch.to("cpu"))
                return logprobs.to(self.device)
            if self.placement == "offload":
                self.model.to(self.device)
                try:
                    with autocast(self.device, self.amp):
                        logprobs, _, _ = forward(self.model, None, batch)
                finally:
                    self.model.to("cpu")
                return logprobs
            with autocast(self.device, self.amp):
                logprobs, _, _ = forward(self.model, None, batch)
            return logprobs
