"""The Rust learner (`twisterl._core.Learner`): the PPO and AlphaZero updates in Rust, on the
weights of the same networks the torch learners train.

The network stays a torch module, so checkpoints, evals and exports are the same for
either learner: the Rust learner starts from the module's weights, updates its own copy,
and `push` writes them back after each update. Adam's moments go into the torch optimizer's
state before a checkpoint (`write_optimizer`) and come back from it on resume
(`read_optimizer`), so a run resumes across learners.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from .. import _core
from .nets import InputLayer, ObsNorm, ResidualBlock, policy_layers

Slot = Optional[tuple[nn.Parameter, bool]]
"""One Rust parameter tensor: the torch parameter it is (and whether Rust holds it
transposed), or None for a tensor torch does not train (an `ObsNorm`, a missing bias)."""


def rust_parameters(policy: nn.Module) -> list[Slot]:
    """The torch parameter behind each of the Rust learner's parameter tensors, in its order
    (the order `twisterl.train.nets.policy_layers` exports layers in)."""
    slots: list[Slot] = []

    def walk(module: nn.Module) -> None:
        if isinstance(module, nn.Sequential):
            for child in module:
                walk(child)
        elif isinstance(module, ResidualBlock):
            walk(module.body)
        elif isinstance(module, ObsNorm):
            slots.extend([None, None])
        elif isinstance(module, InputLayer):
            slots.extend([(module.weight, True), (module.bias, False)])
        elif isinstance(module, (nn.Linear, nn.Conv2d, nn.LayerNorm)):
            slots.append((module.weight, False))
            slots.append((module.bias, False) if module.bias is not None else None)

    from .nets import BasicPolicy
    if isinstance(policy, BasicPolicy):
        walk(policy.embedding)
        walk(policy.common)
    else:
        walk(policy.trunk)
    walk(policy.policy_head)
    walk(policy.value_head)
    if isinstance(getattr(policy, "log_std", None), nn.Parameter):
        slots.append((policy.log_std, False))
    return slots


def _flat(param: nn.Parameter, transposed: bool) -> np.ndarray:
    t = param.detach().to("cpu", torch.float32)
    return np.ascontiguousarray((t.t() if transposed else t).reshape(-1).numpy())


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


class RustLearner:
    """Updates a torch module's weights with the Rust learner (Adam as `torch.optim.Adam`:
    `lr`, `eps`, `weight_decay`; clipping to `max_grad_norm` when given)."""

    def __init__(self, policy: nn.Module, *, lr: float, eps: float, weight_decay: float = 0.0,
                 max_grad_norm: Optional[float] = None, threads: int = 1):
        self.policy = policy
        self.slots = rust_parameters(policy)
        trained = [s[0] for s in self.slots if s is not None]
        params = list(policy.parameters())
        if len(trained) != len(params) or any(a is not b for a, b in zip(trained, params)):
            raise TypeError(f"{type(policy).__name__} has parameters the Rust learner does not train; "
                            "use learner \"torch\" for it")
        self.continuous = isinstance(getattr(policy, "log_std", None), nn.Parameter)
        inputs, trunk, policy_head, value_head = policy_layers(policy)
        log_std = _flat(policy.log_std, False).tolist() if self.continuous else None
        frozen = [s is None for s in self.slots[:len(self.slots) - self.continuous]]
        self.learner = _core.Learner(inputs, trunk, policy_head, value_head, log_std=log_std, frozen=frozen, lr=lr,
                                     eps=eps, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                                     threads=max(1, threads))

    @property
    def lr(self) -> float:
        return self.learner.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.learner.lr = value

    def ppo_step(self, data: dict, rows: np.ndarray, *, clip_coef: float, vf_coef: float, ent_coef: float,
                 norm_adv: bool, clip_vloss: bool, sparse: bool) -> dict:
        """One PPO minibatch update on `rows` of a rollout from `_core.collect` (its arrays
        as collection gives them, `[steps, envs, ...]`)."""
        def flat(key: str, dtype, width: Optional[int] = None) -> np.ndarray:
            x = np.ascontiguousarray(data[key], dtype=dtype)
            return x.reshape(-1) if width is None else x.reshape(-1, width)

        if sparse:
            nnz = data["obs_indices"].shape[-1]
            obs, counts = flat("obs_indices", np.uint32, nnz), flat("obs_counts", np.uint32)
        else:
            obs, counts = flat("obs", np.float32, data["obs"].shape[-1]), None
        a = self.learner.num_actions
        if self.continuous:
            actions, values = np.zeros(0, np.int64), flat("action_values", np.float32, a)
            masks = np.zeros((0, a), bool)
        else:
            actions, values, masks = flat("actions", np.int64), np.zeros((0, a), np.float32), flat("masks", bool, a)
        return self.learner.ppo_step(obs, counts, actions, values, masks, flat("logp", np.float32),
                                     flat("advantages", np.float32), flat("returns", np.float32),
                                     flat("values", np.float32), np.ascontiguousarray(rows, dtype=np.int64),
                                     clip_coef=clip_coef, vf_coef=vf_coef, ent_coef=ent_coef, norm_adv=norm_adv,
                                     clip_vloss=clip_vloss)

    def az_step(self, obs: np.ndarray, counts: Optional[np.ndarray], masks: np.ndarray, target: np.ndarray,
                z: np.ndarray, rows: np.ndarray, value_coef: float) -> dict:
        """One AlphaZero update on `rows` of the replay buffer's arrays."""
        if counts is not None:
            obs, counts = np.ascontiguousarray(obs, dtype=np.uint32), np.ascontiguousarray(counts, dtype=np.uint32)
        else:
            obs = _f32(obs)
        return self.learner.az_step(obs, counts, np.ascontiguousarray(masks, dtype=bool), _f32(target), _f32(z),
                                    np.ascontiguousarray(rows, dtype=np.int64), value_coef=value_coef)

    def runtime_policy(self) -> "_core.Policy":
        """The current network as a runtime policy (the same as `to_rust` of the pushed module)."""
        return self.learner.policy()

    def push(self) -> None:
        """Write the learner's weights into the torch module."""
        with torch.no_grad():
            for slot, value in zip(self.slots, self.learner.parameters()):
                if slot is None:
                    continue
                param, transposed = slot
                shape = param.t().shape if transposed else param.shape
                t = torch.from_numpy(np.asarray(value)).reshape(shape)
                param.copy_((t.t() if transposed else t).to(param.device, param.dtype))

    def pull(self) -> None:
        """Read the torch module's weights (and frozen layers, such as an `ObsNorm`'s
        statistics) into the learner."""
        inputs, trunk, policy_head, value_head = policy_layers(self.policy)
        fresh = _core.Learner(inputs, trunk, policy_head, value_head,
                              log_std=_flat(self.policy.log_std, False).tolist() if self.continuous else None)
        self.learner.set_parameters([np.asarray(v) for v in fresh.parameters()])

    def write_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Put Adam's moments and step count into a torch Adam over the same module, the state
        `torch.optim.Adam` would have after the same steps."""
        m, v, steps = self.learner.optimizer_state()
        trained = [(slot, mk, vk) for slot, mk, vk in zip(self.slots, m, v) if slot is not None]
        for (param, transposed), mk, vk in trained:
            shape = param.t().shape if transposed else param.shape

            def back(x: np.ndarray) -> torch.Tensor:
                t = torch.from_numpy(np.asarray(x)).reshape(shape)
                return (t.t() if transposed else t).contiguous().to(param.device, param.dtype)

            optimizer.state[param] = {"step": torch.tensor(float(steps)), "exp_avg": back(mk),
                                      "exp_avg_sq": back(vk)}

    def read_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Take Adam's moments and step count from a torch Adam over the same module (an
        empty state, as before the first step, is zeros)."""
        m, v, steps = [], [], 0
        for slot, mk in zip(self.slots, self.learner.optimizer_state()[0]):
            size = int(np.asarray(mk).size)
            if slot is None:
                m.append(np.zeros(size, np.float32))
                v.append(np.zeros(size, np.float32))
                continue
            state = optimizer.state.get(slot[0], {})
            if "exp_avg" not in state:
                m.append(np.zeros(size, np.float32))
                v.append(np.zeros(size, np.float32))
                continue
            m.append(_flat(state["exp_avg"], slot[1]))
            v.append(_flat(state["exp_avg_sq"], slot[1]))
            steps = int(float(state["step"]))
        self.learner.set_optimizer_state(m, v, steps)


def rust_supports(policy: nn.Module) -> Optional[str]:
    """None when the Rust learner can train `policy`, else why not."""
    try:
        policy_layers(policy)
    except TypeError as exc:
        return str(exc)
    trained = [s[0] for s in rust_parameters(policy) if s is not None]
    params = list(policy.parameters())
    if len(trained) != len(params) or any(a is not b for a, b in zip(trained, params)):
        return f"{type(policy).__name__} has parameters outside the layers the Rust learner trains"
    return None


def pick_learner(name: str, policy: nn.Module, device: torch.device) -> str:
    """"rust" or "torch" for a config's `learner`. "auto" is Rust when the update runs on the
    CPU and the Rust learner trains the whole network (it is the faster there, see
    docs/benchmarks.md), torch otherwise; "rust" for a network or device it cannot serve is
    a ValueError saying why."""
    why = rust_supports(policy)
    if name == "auto":
        return "rust" if why is None and device.type == "cpu" else "torch"
    if name == "rust":
        if why is not None:
            raise ValueError(f"learner \"rust\" cannot train this network: {why}; use learner \"torch\"")
        if device.type != "cpu":
            raise ValueError(f"learner \"rust\" runs on the CPU; device is {device}. Use learner \"torch\" to "
                             "learn on a GPU")
    return name
