"""Precision and memory of a PPO run: float32 master weights under bf16 autocast, gradient checkpointing,
and where the frozen reference model lives (docs/gpu.md has the memory estimate these defaults rest on)."""

from __future__ import annotations

import contextlib
import functools
import weakref
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


def inference_choice(choice: DeviceChoice, amp: torch.dtype | None) -> DeviceChoice:
    """Where and in which dtype the policy runs when it is only run (evaluations, answers, the frozen reference).

    On a CPU under bf16 autocast that is a bf16 copy: generating a token there reads every weight once, so half
    the bytes is nearly half the time, and the reference shares the evaluation's copy at half the memory. The
    autocast of float32 weights computes the same bf16 products. Elsewhere the options' choice stands."""
    if amp is not None and torch.device(choice.device).type == "cpu":
        return DeviceChoice(choice.device, amp)
    return choice


@contextlib.contextmanager
def autocast(device: str, amp: torch.dtype | None, *, generating: bool = False) -> Iterator[None]:
    """bf16 autocast (or nothing). Its cache of bf16 weight copies pays only where a weight is used many times
    inside one context, as in generating token after token; on a CPU a single forward casts without keeping them,
    since holding them costs half the model while the backward's activations are resident."""
    if amp is None:
        yield
        return
    kind = torch.device(device).type
    with torch.autocast(device_type=kind, dtype=amp, cache_enabled=generating or kind != "cpu"):
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
        if placement == "device":
            where = inference_choice(where, amp)
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


class AdaptersOffReference:
    """A LoRA stage's reference: the frozen weights the adapters are trained beside are the stage's input policy,
    so its log-probs are the trained model's with the adapters off, without a copy of its own."""

    def __init__(self, adapted: Any, amp: torch.dtype | None) -> None:
        self.model, self.amp = adapted, amp
        self.device = next(adapted.parameters()).device

    def logprobs(self, batch: Any, forward: Callable[..., tuple[torch.Tensor, Any, Any]]) -> torch.Tensor:
        from aopcore_hf import lora

        with torch.no_grad(), lora.adapters_off(self.model) as frozen, autocast(str(self.device), self.amp):
            logprobs, _, _ = forward(frozen, None, batch)
        return logprobs


class AdamInBackward:
    """Adam stepped inside the backward pass, one parameter at a time as soon as its gradient is complete, which is
    then freed: the update of one Adam step after the backward (element-wise, so the same numbers), without ever
    holding every gradient at once (for SmolLM2, 540 MB fewer at the peak). Exact only without gradient clipping
    by global norm and in one process, where the trainer uses it; its ``step`` has nothing left to do.

    The hooks hold this optimizer by a weak reference: a hook that held it (and so the parameters and the Adam
    states) would form a cycle through autograd's C++ side that the garbage collector cannot see, and every
    training stage would leave its optimizer resident (1.5 GB a stage for SmolLM2). ``close`` removes them."""

    steps_in_backward = True

    def __init__(self, params: list[torch.nn.Parameter], **adam: Any) -> None:
        self.params = list(params)
        self.per_param = [torch.optim.Adam([p], **adam) for p in self.params]
        me = weakref.ref(self)
        self._hooks = [
            p.register_post_accumulate_grad_hook(functools.partial(_step_in_backward, me, i))
            for i, p in enumerate(self.params)
        ]

    def _step(self, index: int, p: torch.Tensor) -> None:
        self.per_param[index].step()
        p.grad = None

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for o in self.per_param for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Done in the backward pass."""

    def close(self) -> None:
        """Take the hooks off the parameters (a model that outlives training then backpropagates as usual)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def state_dict(self) -> dict[str, Any]:
        return {"in_backward": [o.state_dict() for o in self.per_param]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for o, s in zip(self.per_param, state["in_backward"], strict=True):
            o.load_state_dict(s)


def _step_in_backward(owner: weakref.ref[AdamInBackward], index: int, p: torch.Tensor) -> None:
    optimizer = owner()
    if optimizer is not None:
        optimizer._step(index, p)
