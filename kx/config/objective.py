"""The objective: the one metric a run is judged by, and which way is better.

Early stopping, the best epoch (and so the exported model), a sweep's trials and SageMaker's tuning
objective all read it through :func:`objective`, never from a metric's name.
"""

from dataclasses import dataclass
from typing import Optional

from omegaconf import DictConfig

from kx.config.choices import Direction, Metric


@dataclass
class ObjectiveConfig:
    """The metric every run reports (its exported model's value) and which way is better."""

    metric: Metric = Metric.val_acc
    direction: Direction = Direction.maximize


@dataclass(frozen=True)
class Objective:
    metric: str = "val_acc"
    direction: str = "maximize"

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def improves(self, value: float, best: Optional[float], min_delta: float = 0.0) -> bool:
        """True when ``value`` beats ``best`` by more than ``min_delta`` (any value beats None)."""
        if best is None:
            return True
        return value > best + min_delta if self.maximize else value < best - min_delta


def objective(cfg: DictConfig) -> Objective:
    """The config's objective: the sweep's when a sweep is chosen, else ``train.objective``."""
    sweep = cfg.get("sweep")
    node = sweep.objective if sweep else cfg.train.objective
    return Objective(str(node.metric), str(node.direction))
