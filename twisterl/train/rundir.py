"""A training run's folder: config, source, metrics and checkpoints.

    RUN_DIR/config.json     the resolved config (and the params)
    RUN_DIR/env.twl         the source the run trained on
    RUN_DIR/metrics.csv     one row per iteration
    RUN_DIR/last.safetensors, best.safetensors   checkpoints

Checkpoints are safetensors (no pickle: loading never runs code), written to a temporary
file and renamed into place, so a run killed at any moment leaves loadable files. Their
metadata names the env and its interface (`env_id`: name, source hash, observation shape,
action count, params) and holds a sha256 of the metadata and tensors; loading checks the
header against the file's size, the checksum, every metadata field, and the env.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from .config import MAX_COUNT, MAX_DIFFICULTY, value_error

# A header this large is no checkpoint of ours (a network's header is a few kB).
MAX_HEADER = 100 * 2**20


class CheckpointError(ValueError):
    """A checkpoint or run dir that is missing, corrupt, or made for another env or network."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value),
                                                                                        type(value).__name__)


# ---------------------------------------------------------------- what identifies an env


def source_hash(text: str) -> str:
    """The sha256 of a .twl source, as checkpoints record it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def env_identity(cls, params: dict, source: Optional[str] = None) -> dict:
    """What a checkpoint records of the env it was made for: its name, its interface with
    `params` (observation shape and size, action count, kind, players), the params with
    their defaults filled in, and the sha256 of `source` when given."""
    batch = cls.create(params, 1, 0, 1)
    action_space, _ = cls.spaces(batch)
    shape = [int(v) for v in cls.obs_shape(batch)]
    ident = {"name": cls.name, "obs_shape": shape, "obs_size": math.prod(shape),
             "num_actions": int(action_space.shape[0] if cls.continuous else action_space.n),
             "continuous": bool(cls.continuous), "players": int(cls.players),
             "params": {name: params.get(name, spec.default) for name, spec in cls.params.items()}}
    if source is not None:
        ident["source_sha256"] = source_hash(source)
    return ident


_IDENTITY_WORDS = {"name": "env name", "obs_shape": "observation shape", "obs_size": "observation size",
                   "num_actions": "action count", "continuous": "continuous actions", "players": "players",
                   "params": "params", "source_sha256": "source sha256"}


def check_env(meta: dict, cls, params: dict, source: Optional[str], checkpoint: Path, what: str) -> None:
    """Raise a `CheckpointError` listing what differs between the env a checkpoint was made
    for (its `env_id`, or for older checkpoints its `env`, `obs_size` and `num_actions`) and
    `cls` with `params` (and `source`, when given), which `what` describes."""
    try:
        here = env_identity(cls, params, source)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{what}: the params {params} do not fit {cls.name}: {exc}") from None
    # The plain fields (all a checkpoint had before `env_id`) and `env_id` must both agree.
    flat = {"name": meta.get("env"), "obs_size": meta.get("obs_size"), "num_actions": meta.get("num_actions")}
    differences: list[str] = []
    for saved in (flat, meta.get("env_id") or {}):
        for key, word in _IDENTITY_WORDS.items():
            if saved.get(key) is None or key not in here or saved[key] == here[key]:
                continue
            if key == "params" and _same_params(cls, saved[key], here[key]):
                continue
            mine, theirs = saved[key], here[key]
            if key == "source_sha256":
                mine, theirs = mine[:12], theirs[:12]
            line = f"{word} {mine!r} in {checkpoint.name}, {theirs!r} in {what}"
            if line not in differences:
                differences.append(line)
    if not differences:
        return
    names = {flat["name"], (meta.get("env_id") or {}).get("name")} - {None}
    if names != {here["name"]}:
        head = f"{checkpoint} was trained on {', '.join(sorted(names))}, not on {here['name']} ({what})"
    else:
        head = f"{checkpoint} was made for another {here['name']} than {what}"
    raise CheckpointError(f"{head}: " + "; ".join(differences))


def _same_params(cls, a: Any, b: dict) -> bool:
    """Whether two param dicts give the same values (an enum by name or by number)."""
    try:
        return isinstance(a, dict) and cls.param_vector(a) == cls.param_vector(b)
    except (TypeError, ValueError):
        return False


def _identity_error(value: Any) -> Optional[str]:
    if not isinstance(value, dict):
        return f"must be an object, not {_kind(value)}"
    checks = {"name": ("str",), "obs_size": ("int", 1, MAX_COUNT), "num_actions": ("int", 1, MAX_COUNT),
              "continuous": ("bool",), "players": ("int", 1, 64), "source_sha256": ("str",)}
    for key, args in checks.items():
        if key in value and (error := value_error(value[key], *args)):
            return f"field `{key}` {error}"
    if "obs_shape" in value and (not isinstance(value["obs_shape"], list) or
                                 any(value_error(v, "int", 1, MAX_COUNT) for v in value["obs_shape"])):
        return f"field `obs_shape` must be a list of positive ints, not {value['obs_shape']!r}"
    if "params" in value and not isinstance(value["params"], dict):
        return f"field `params` must be an object, not {_kind(value['params'])}"
    return None


# ---------------------------------------------------------------- checkpoint metadata

# Each metadata field: (kind, lo, hi, NaN allowed), or a function giving an error or None.
META_FIELDS: dict[str, Any] = {
    "env": ("str",),
    "obs_size": ("int", 1, MAX_COUNT),
    "num_actions": ("int", 1, MAX_COUNT),
    "env_id": _identity_error,
    "difficulty": ("int", 0, MAX_DIFFICULTY),
    "iteration": ("int", -1, MAX_COUNT),
    "env_steps": ("int", 0, MAX_COUNT),
    "success_rate": ("float", 0.0, 1.0, True),
    "mean_return": ("float", None, None, True),
    "reward_scale": ("float", 1e-30, 1e30),
    "return_mean": ("float",),
    "return_var": ("float", 0.0, None),
    "return_count": ("float", 0.0, None),
    "best_difficulty": ("int", -1, MAX_DIFFICULTY),
    "best_success": ("float", -1.0, 1.0, True),
    "optimizer_groups": lambda v: None if isinstance(v, list) and all(isinstance(g, dict) for g in v)
    else f"must be a list of objects, not {_kind(v)}",
}
REQUIRED_META = ("env", "difficulty", "iteration")
"""Every checkpoint this version writes has these (PPO's and AlphaZero's)."""


def check_meta(meta: dict, path: Path) -> None:
    """A `CheckpointError` naming `path` and the field for a missing or bad metadata field."""
    for key in REQUIRED_META:
        if key not in meta:
            raise CheckpointError(f"{path}: the metadata field `{key}` is missing")
    for key, rule in META_FIELDS.items():
        if key not in meta:
            continue
        error = rule(meta[key]) if callable(rule) else value_error(meta[key], *rule)
        if error:
            raise CheckpointError(f"{path}: the metadata field `{key}` {error}")


def as_numpy(value: Any) -> np.ndarray:
    """A tensor (torch or numpy) as a contiguous numpy array on the CPU."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().contiguous().numpy()
    return np.ascontiguousarray(value)


def tensor_digest(tensors: dict[str, Any], metadata: dict[str, str]) -> str:
    """The sha256 of a checkpoint's metadata strings (but `sha256`) and its tensors, each
    with its name, dtype (spelled as torch spells it, so the digest does not depend on which
    library wrote the file) and shape, in name order."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in metadata.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(tensors):
        t = as_numpy(tensors[name])
        h.update(json.dumps([name, f"torch.{t.dtype.name}", list(t.shape)]).encode())
        h.update(t.reshape(-1).view(np.uint8).tobytes())
    return h.hexdigest()


def read_header(path: Path) -> dict:
    """The JSON header of a safetensors file, after checking that its length fits the file
    (a `CheckpointError` otherwise, so a file of another format never makes us allocate
    what its first bytes claim)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if size < 8 or length < 2 or 8 + length > size or length > MAX_HEADER:
                raise CheckpointError(f"{path} is not a readable checkpoint (not safetensors): its header length "
                                      f"({length} bytes) does not fit the file ({size} bytes)")
            header = json.loads(f.read(length))
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: its header is not JSON ({exc})") from None
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path} is not a readable checkpoint: its header is not a safetensors header")
    return header


class RunDir:
    """A run dir (see the module doc): its config, metrics and checkpoints."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def create(self, config: dict, source_text: str) -> None:
        """Write config.json and env.twl for a new run."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
        atomic_write_text(self.path / "env.twl", source_text)

    def config(self) -> dict:
        """config.json, its top-level fields checked (the learner's `config` is checked by the
        learner, see `twisterl.training.run_config`); a `CheckpointError` names the field."""
        path = self.path / "config.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{self.path} is not a training run (it has no config.json)") from None
        except OSError as exc:
            raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{path} must hold a JSON object, not {_kind(data)}")
        rules = {"config": lambda v: None if isinstance(v, dict) else f"must be an object, not {_kind(v)}",
                 "env": lambda v: value_error(v, "str"),
                 "obs_size": lambda v: value_error(v, "int", 1, MAX_COUNT),
                 "num_actions": lambda v: value_error(v, "int", 1, MAX_COUNT)}
        for key, rule in rules.items():
            if key not in data:
                raise CheckpointError(f"{path}: the field `{key}` is missing")
            if error := rule(data[key]):
                raise CheckpointError(f"{path}: the field `{key}` {error}")
        optional = {"params": lambda v: None if isinstance(v, dict) else f"must be an object, not {_kind(v)}",
                    "policy": lambda v: None if isinstance(v, dict) else f"must be an object, not {_kind(v)}",
                    "algo": lambda v: None if v in ("ppo", "az") else f"must be \"ppo\" or \"az\", not {v!r}",
                    "env_id": _identity_error}
        for key, rule in optional.items():
            if key in data and (error := rule(data[key])):
                raise CheckpointError(f"{path}: the field `{key}` {error}")
        return data

    def append_metrics(self, row: Any) -> None:
        """One row of metrics.csv (the header first); a missing value is written as nan. A
        row with columns the file lacks (a run resumed by a newer version) rewrites the file
        with them added, nan in the older rows."""
        data = asdict(row) if not isinstance(row, dict) else row
        data = {k: float("nan") if v is None else v for k, v in data.items()}
        path = self.path / "metrics.csv"
        header = None
        if path.exists():
            with open(path, newline="") as f:
                header = next(csv.reader(f), None)
        if header is not None and not set(data) <= set(header):
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            header = header + [k for k in data if k not in header]
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=header, restval="nan")
                writer.writeheader()
                writer.writerows(rows)
            os.replace(tmp, path)
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header or list(data), restval="nan")
            if header is None:
                writer.writeheader()
            writer.writerow(data)
            f.flush()
            os.fsync(f.fileno())

    def save(self, name: str, model: Any, meta: dict, optimizer: Any = None) -> Path:
        """Weights (and the optimizer's state, for resuming) in one safetensors file, with
        `meta` and the sha256 of both (see `tensor_digest`). `model` is a torch module or a
        `NumpyPolicy`; `optimizer` a torch optimizer or the Rust learner's `AdamState`, both
        saved in torch's layout (`optimizer/INDEX/exp_avg`, ...), so either learner resumes
        from either's checkpoint."""
        path = self.path / f"{name}.safetensors"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tensors = {k: as_numpy(v) for k, v in model.state_dict().items()}
        meta = dict(meta)
        if optimizer is not None:
            state = optimizer.state_dict()
            for index, slots in state["state"].items():
                for key, value in slots.items():
                    tensors[f"optimizer/{index}/{key}"] = as_numpy(value)
            meta["optimizer_groups"] = state["param_groups"]
            if hasattr(optimizer, "param_groups"):  # torch's: its RNG goes with it
                import torch
                tensors["rng/torch"] = as_numpy(torch.get_rng_state())
        metadata = {k: json.dumps(v) for k, v in meta.items()}
        metadata["sha256"] = tensor_digest(tensors, metadata)
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
        return path

    def read(self, name: str) -> tuple[dict, dict]:
        """(tensors, metadata) of checkpoint `name`, its header, checksum and metadata fields
        checked; a `CheckpointError` says what is wrong."""
        path = self.path / f"{name}.safetensors"
        if not path.exists():
            raise CheckpointError(f"{path} does not exist")
        raw = read_header(path).get("__metadata__", {})
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None
        digest = raw.get("sha256")
        if digest is not None and tensor_digest(tensors, raw) != digest:
            raise CheckpointError(f"{path} is corrupt: its tensors or metadata do not match its sha256 checksum")
        try:
            meta = {k: json.loads(v) for k, v in raw.items() if k != "sha256"}
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path} is not a readable checkpoint: a metadata value is not JSON "
                                  f"({exc})") from None
        check_meta(meta, path)
        return tensors, meta

    def best_score(self) -> Optional[tuple]:
        """(difficulty, success rate, mean return) of the `best` checkpoint; None if there is
        none yet. A `best` that exists but does not load is a `CheckpointError`."""
        if not (self.path / "best.safetensors").exists():
            return None
        _, meta = self.read("best")
        success = meta.get("success_rate", float("nan"))
        return (meta["difficulty"], float(success), float(meta.get("mean_return", float("-inf"))))

    def load(self, name: str, model: Any, expect: dict,
             check: Optional[Callable[[dict, Path], None]] = None) -> dict:
        """Load checkpoint `name` into `model`; `expect` lists metadata that must match, and
        `check(meta, path)` may refuse the checkpoint (a `CheckpointError`) before the weights
        are loaded. The metadata is returned, with the tensors (optimizer state included) as
        `_tensors`."""
        path = self.path / f"{name}.safetensors"
        tensors, meta = self.read(name)
        if check is not None:
            check(meta, path)
        for key, value in expect.items():
            if meta.get(key) != value:
                raise CheckpointError(f"{path} was trained for {key} = {meta.get(key)!r}, not {value!r}")
        weights = {k: v for k, v in tensors.items() if not k.startswith(("optimizer/", "rng/"))}
        if hasattr(model, "parameters"):  # a torch module takes torch tensors
            import torch
            weights = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
        try:
            model.load_state_dict(weights)
        except (RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{path} does not fit this network: {str(exc).splitlines()[0]}") from None
        meta["_tensors"] = tensors
        return meta


def restore_optimizer(optimizer: Any, meta: dict) -> None:
    """Put the optimizer state (and torch's RNG, for a torch optimizer) saved by
    `RunDir.save` back."""
    tensors = meta.get("_tensors", {})
    groups = meta.get("optimizer_groups")
    if groups is None:
        raise CheckpointError("this checkpoint has no optimizer state to resume from")
    torch_optimizer = hasattr(optimizer, "param_groups")
    state: dict = {}
    try:
        if torch_optimizer:
            import torch
        for key, value in tensors.items():
            if key.startswith("optimizer/"):
                _, index, slot = key.split("/", 2)
                state.setdefault(int(index), {})[slot] = torch.from_numpy(value.copy()) if torch_optimizer else value
        optimizer.load_state_dict({"state": state, "param_groups": groups})
        if torch_optimizer and "rng/torch" in tensors:
            torch.set_rng_state(torch.from_numpy(tensors["rng/torch"].copy()))
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"the optimizer state does not fit: {exc}") from None


def find_run(path: Optional[str]) -> RunDir:
    """The run dir at `path`; a `CheckpointError` if it is no folder."""
    if path is None or not Path(path).is_dir():
        raise CheckpointError(f"{path} is not a training run folder")
    return RunDir(Path(path))
