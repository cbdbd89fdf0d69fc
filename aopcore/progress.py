"""Console progress for an application that embeds the loop: one call, no logging setup of its own.

The experiment reports progress through the ``aopcore`` logger (``start``/``skip``/``done`` per
stage, generation summaries, warnings); it adds no handler itself, as a library should not.
``aopcore run`` calls :func:`enable_console_progress`; an embedding application does the same::

    import aopcore
    aopcore.enable_console_progress()          # INFO lines on stderr; verbose=True for DEBUG

Trainers and generation draw tqdm bars on stderr by themselves (set ``TQDM_DISABLE=1`` to hide them).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

_HANDLER_NAME = "aopcore-console"


def enable_console_progress(verbose: bool = False, stream: TextIO | None = None) -> logging.Handler:
    """Send the ``aopcore`` logger's progress lines to ``stream`` (stderr); calling it again replaces the handler."""
    log = logging.getLogger("aopcore")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [h for h in log.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    return handler
