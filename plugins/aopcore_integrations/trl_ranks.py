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


def share(rows: list[Any]) -> list[Any]:
    """This process's contiguous share of a global list (TRL's split of a generation batch); equal shares."""
    rank, world = rank_and_world()
    if len(rows) % world:
        raise RuntimeError(f"{len(rows)} rows do not split evenly over {world} processes")
    per = len(rows) // world
    return rows[rank * per : (rank + 1) * per]


def gather_batch(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Every process's scored batch (tensors moved to the CPU for the trip), in rank order, in every process."""
    moved = {k: v.cpu() if hasattr(v, "cpu") else v for k, v in batch.items()}
    return gather_all(moved)
