"""A training run's folder: config, source, metrics and checkpoints.

    RUN_DIR/config.json     the resolved config (and the params)
    RUN_DIR/env.twl         the source the run trained on
    RUN_DIR/metrics.csv     one row per iteration
    RUN_DIR/last.safetensors, best.safetensors   checkpoints

Checkpoints are safetensors (no pickle: loading never runs code), written to a temporary
file and renamed into place, so a run killed at any moment leaves loadable files. Their
metadata names the env and the network's shape; loading checks both.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or made for another env or network."""


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    def create(self, config: dict, source_text: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
        atomic_write_text(self.path / "env.twl", source_text)

    def config(self) -> dict:
        try:
            return json.loads((self.path / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{self.path} is not a training run (config.json: {exc})") from None

    def append_metrics(self, row: Any) -> None:
        data = asdict(row) if not isinstance(row, dict) else row
        path = self.path / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(data))
            if new:
                writer.writeheader()
            writer.writerow(data)
            f.flush()
            os.fsync(f.fileno())

    def save(self, name: str, model: torch.nn.Module, meta: dict,
             optimizer: Optional[torch.optim.Optimizer] = None) -> Path:
        """Weights (and the optimizer's state, for resuming) in one safetensors file."""
        path = self.path / f"{name}.safetensors"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        meta = dict(meta)
        if optimizer is not None:
            state = optimizer.state_dict()
            for index, slots in state["state"].items():
                for key, value in slots.items():
                    tensors[f"optimizer/{index}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
            meta["optimizer_groups"] = state["param_groups"]
            tensors["rng/torch"] = torch.get_rng_state()
        save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})
        os.replace(tmp, path)
        return path

    def best_score(self) -> Optional[tuple]:
        """(difficulty, success rate, mean return) of the `best` checkpoint, if it is readable."""
        try:
            with open(self.path / "best.safetensors", "rb") as f:
                header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
            meta = {k: json.loads(v) for k, v in header.get("__metadata__", {}).items()}
            return (int(meta["difficulty"]), float(meta["success_rate"]), float(meta.get("mean_return", float("-inf"))))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def load(self, name: str, model: torch.nn.Module, expect: dict) -> dict:
        """Load checkpoint `name` into `model`; `expect` lists metadata that must match."""
        path = self.path / f"{name}.safetensors"
        if not path.exists():
            raise CheckpointError(f"{path} does not exist")
        try:
            tensors = load_file(str(path))
            with open(path, "rb") as f:
                header_len = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(header_len))
            meta = {k: json.loads(v) for k, v in header.get("__metadata__", {}).items()}
        except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None
        for key, value in expect.items():
            if meta.get(key) != value:
                raise CheckpointError(f"{path} was trained for {key} = {meta.get(key)!r}, not {value!r}")
        weights = {k: v for k, v in tensors.items() if not k.startswith(("optimizer/", "rng/"))}
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise CheckpointError(f"{path} does not fit this network: {str(exc).splitlines()[0]}") from None
        meta["_tensors"] = tensors
        return meta


def restore_optimizer(optimizer: torch.optim.Optimizer, meta: dict) -> None:
    """Put the optimizer state and torch's RNG saved by `RunDir.save` back."""
    tensors = meta.get("_tensors", {})
    groups = meta.get("optimizer_groups")
    if groups is None:
        raise CheckpointError("this checkpoint has no optimizer state to resume from")
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optimizer/"):
            _, index, slot = key.split("/", 2)
            state.setdefault(int(index), {})[slot] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"the optimizer state does not fit: {exc}") from None
    if "rng/torch" in tensors:
        torch.set_rng_state(tensors["rng/torch"])


def find_run(path: Optional[str]) -> RunDir:
    if path is None or not Path(path).is_dir():
        raise CheckpointError(f"{path} is not a training run folder")
    return RunDir(Path(path))
