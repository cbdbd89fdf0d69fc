"""Fan-out of per-step metrics to the trackers named in ``report_to``, where installed."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

log = logging.getLogger("aopcore")

_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}


class Trackers:
    def __init__(self, names: list[str], *, run_name: str, logdir: Path) -> None:
        self.sinks = []
        for name in names:
            if importlib.util.find_spec(_PACKAGES[name]) is None:
                log.warning(
                    "report_to=%s: package %r is not installed; metrics for it are skipped", name, _PACKAGES[name]
                )
                continue
            if name == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(log_dir=str(logdir / "tensorboard"))
                self.sinks.append((lambda m, s, w=writer: [w.add_scalar(k, v, s) for k, v in m.items()], writer.close))
            elif name == "wandb":
                import wandb

                run = wandb.init(name=run_name, reinit=True)
                self.sinks.append((lambda m, s, r=run: r.log(m, step=s), run.finish))
            elif name == "trackio":
                import trackio

                trackio.init(project="aopcore", name=run_name)
                self.sinks.append((lambda m, s: trackio.log(m, step=s), trackio.finish))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for write, _ in self.sinks:
            write(metrics, step)

    def close(self) -> None:
        for _, close in self.sinks:
            close()
