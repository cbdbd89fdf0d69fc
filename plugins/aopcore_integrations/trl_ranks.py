"""The collectives that let one prompt stream serve every process of a multi-process TRL run.

Why: TRL reads an ``IterableDataset`` in every process (it forces ``dispatch_batches=False``) and each process takes
its contiguous slice of each generation batch; each process scores only its slice. So rank 0 owns the stream and
the run directory: it draws and broadcasts each draw's rows, and gathers every process's rewards before reporting
them to the stream once. Every process calls these at the same points of the same loop, so they pair up.
"""

from __future__ import annotations

from typing import Any


def rank_and_world() -> tuple[int, int]:
    """(rank, processes) of the initialised process group; (0, 1) without one."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a TRL dependency
        return 0, 1
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` in every process (``obj`` is ignored elsewhere)."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_all(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order, in every process."""
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
