"""Kept for compatibility (``python -m aopcore_hf.ppo_launch join ...``, as earlier docs published it): the launcher
is :mod:`aopcore_hf.ppo.launch`."""

from __future__ import annotations

import sys

from aopcore_hf.ppo.launch import *  # noqa: F403
from aopcore_hf.ppo.launch import check_joined, join, joined_options, launch_command, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
