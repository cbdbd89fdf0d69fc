"""The few collectives our PPO step needs, for one process or for a data-parallel group under accelerate.

The step is written once against ``Comm``: with ``LocalComm`` every collective is the identity, so the
single-process trainer runs exactly the code each rank of a group runs, which is what makes a
2-process run reproduce a 1-process one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

T = TypeVar("T")


class LocalComm:
    """One process: no wrapping, no communication."""

    rank = 0
    world = 1
    is_main = True
    steps_in_backward = False

    def prepare(
        self, module: torch.nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        return module, optimizer

    def unwrap(self, module: torch.nn.Module) -> torch.nn.Module:
        return module

    def all_gather_object(self, obj: T) -> list[T]:
        return [obj]

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the main rank only and give every rank its result."""
        return fn()

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        return obj

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm(self, params: list[torch.nn.Parameter], max_norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)

    def barrier(self) -> None:
        pass


class AccelerateComm:
    """A rank of a group started by ``accelerate launch`` or ``torchrun`` (DDP; DeepSpeed through its config)."""

    def __init__(self, accelerator: Any) -> None:
        self.accelerator = accelerator
        self.rank = accelerator.process_index
        self.world = accelerator.num_processes
        self.is_main = accelerator.is_main_process
        # under DeepSpeed, accelerate's backward also steps the optimizer
        self.steps_in_backward = str(accelerator.distributed_type).endswith("DEEPSPEED")

    def prepare(
        self, module: torch.nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        return self.accelerator.prepare(module, optimizer)

    def unwrap(self, module: torch.nn.Module) -> torch.nn.Module:
        return self.accelerator.unwrap_model(module)

    def all_gather_object(self, obj: T) -> list[T]:
        if self.world == 1:  # e.g. one GPU under a DeepSpeed config: accelerate starts no process group
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def on_main(self, fn: Callable[[], T]) -> T:
        if self.world == 1:
            return fn()
        box: list[Any] = [None]
        error: BaseException | None = None
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except Exception as exc:  # noqa: BLE001 - every rank must hear of it, or the others wait forever
                error, box[0] = exc, ("error", f"{type(exc).__name__}: {exc}")
        torch.distributed.broadcast_object_list(box, src=0)
        if error is not None:
            raise error
        status, value = box[0]
        if status == "error":
            raise RuntimeError(f"the main rank failed: {value}")
        return value

    def broadcast_object(self, obj: T) -> T:
        if self.world == 1:
            return obj
        box: list[Any] = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(tensor, reduction="sum")

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def clip_grad_norm(self, params: list[torch.nn.Parameter], max_norm: float) -> None:
        self.accelerator.clip_grad_norm_(params, max_norm)

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()
