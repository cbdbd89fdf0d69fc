"""Kept for compatibility (``python -m aopcore_hf.vllm_serve MODEL``, as earlier docs published it): the server is
:mod:`aopcore_hf.vllm.serve`."""

from __future__ import annotations

from aopcore_hf.vllm.serve import main, serve_command, start_server, stop_server  # noqa: F401

if __name__ == "__main__":
    main()
