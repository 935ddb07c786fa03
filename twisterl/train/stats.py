"""Running statistics merged batch by batch (Chan et al.), for reward, observation and
bonus normalisation."""

from __future__ import annotations

import numpy as np


class RunningVariance:
    """Mean and variance of a stream of numbers, merged batch by batch (Chan et al.)."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def update(self, x: np.ndarray) -> None:
        n = x.size
        if n == 0:
            return
        mean, var = float(x.mean()), float(x.var())
        delta, total = mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var = (self.var * self.count + var * n + delta ** 2 * self.count * n / total) / total
        self.count = total

    def state(self) -> dict:
        return {"return_mean": self.mean, "return_var": self.var, "return_count": self.count}

    def load(self, state: dict) -> None:
        if "return_var" in state:
            self.mean, self.var = float(state["return_mean"]), float(state["return_var"])
            self.count = float(state["return_count"])


class RunningMeanVar:
    """Per-feature mean and variance of a stream of rows `[B, F]`, merged batch by batch."""

    def __init__(self, size: int):
        self.mean, self.var, self.count = np.zeros(size), np.ones(size), 1e-4

    def update(self, rows: np.ndarray) -> None:
        n = rows.shape[0]
        if n == 0:
            return
        mean, var = rows.mean(0), rows.var(0)
        delta, total = mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + var * n + delta ** 2 * self.count * n / total) / total
        self.count = total

    def state(self, prefix: str) -> dict:
        return {f"{prefix}_mean": self.mean.tolist(), f"{prefix}_var": self.var.tolist(), f"{prefix}_count": self.count}

    def load(self, state: dict, prefix: str) -> None:
        if f"{prefix}_var" in state:
            self.mean = np.asarray(state[f"{prefix}_mean"], dtype=np.float64)
            self.var = np.asarray(state[f"{prefix}_var"], dtype=np.float64)
            self.count = float(state[f"{prefix}_count"])
