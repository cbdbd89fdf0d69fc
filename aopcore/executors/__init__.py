"""Executors: how an experiment's stage graph runs.

The default (no executor) runs every stage in this process, one at a time, in ``Experiment.stages()``
order. :class:`~aopcore.executors.ray_executor.RayExecutor` hands stages whose dependencies are done to
a Ray cluster as tasks, so arms run side by side. Either way the run directory is the single source of
truth (a stage is done when its record exists), so either executor resumes the other's run.

Ray is imported only when the Ray executor is chosen; the core needs no Ray installed.
"""

from __future__ import annotations

from typing import Any

from aopcore.executors.graph import critical_path, expected_wall_time

__all__ = ["critical_path", "executor_for", "expected_wall_time", "named_executor"]


def named_executor(name: str) -> Any:
    """``Experiment.run(executor="ray")``: the executor of that name with its defaults (None for "local")."""
    if name == "local":
        return None
    if name == "ray":
        from aopcore.executors.ray_executor import RayExecutor

        return RayExecutor()
    from aopcore.errors import InputError

    raise InputError(f"executor {name!r}: expected 'local' or 'ray'")


def executor_for(plan: Any) -> Any:
    """The executor a resolved config asks for (``[experiment] executor``), or None for the local one."""
    exp = plan.config.experiment
    if getattr(exp, "executor", "local") != "ray":
        return None
    from aopcore.executors.ray_executor import RayExecutor

    return RayExecutor(address=exp.ray_address)
