"""Which process of a distributed launch this is, from the launcher's environment (torchrun, accelerate launch).

Read from ``RANK``/``WORLD_SIZE`` rather than ``torch.distributed`` because a session is opened before the trainer
initialises the process group: only process 0 may write a run directory's ``config.json``/``fingerprint.json``.
"""

from __future__ import annotations

import os


def process_rank() -> int:
    """This process's global rank (0 outside a distributed launch)."""
    return int(os.environ.get("RANK", "0") or 0)


def launch_world_size() -> int:
    """Processes in the launch (1 outside a distributed launch)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_main_process() -> bool:
    """Whether this process owns the run directory's files (rank 0)."""
    return process_rank() == 0
