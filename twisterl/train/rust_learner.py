"""The Rust learner (`twisterl._core.Learner`): the PPO and AlphaZero updates in Rust, on the
weights of the same networks the torch learners train.

The network it trains is a torch module (when torch is installed) or a `NumpyPolicy` (when
it is not); either way checkpoints, evals and exports see the same weights under the same
names. The learner updates its own copy and `push` writes it back after each update. Adam's
state is saved in torch's layout: into the torch optimizer's state (`write_optimizer`,
`read_optimizer`) or as an `AdamState`, so a run resumes across learners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from .. import _core


@dataclass
class Slot:
    """One of the Rust learner's parameter tensors: the network's tensor behind it (`read`
    and `write` it, shaped `shape`), whether the learner holds it transposed, and its index
    among the parameters torch's optimizer steps (None for a tensor training leaves alone,
    such as an `ObsNorm`'s)."""
    read: Callable[[], np.ndarray]
    write: Callable[[np.ndarray], None]
    shape: tuple
    transposed: bool
    index: Optional[int]

    def to_learner(self, x: Any) -> np.ndarray:
        """A tensor shaped as the network's, flat in the learner's layout."""
        x = np.asarray(_numpy(x), np.float32).reshape(self.shape)
        return np.ascontiguousarray((x.T if self.transposed else x).reshape(-1))

    def from_learner(self, flat: np.ndarray) -> np.ndarray:
        """The learner's flat tensor, shaped as the network's."""
        v = np.asarray(flat, np.float32)
        return np.ascontiguousarray(v.reshape(self.shape[::-1]).T if self.transposed else v.reshape(self.shape))

    def get(self) -> np.ndarray:
        return self.to_learner(self.read())

    def set(self, flat: np.ndarray) -> None:
        self.write(self.from_learner(flat))


def _torch_slots(policy) -> list[Slot]:
    """The slots of a torch module, in the order `nets.policy_layers` exports its layers."""
    import torch
    from torch import nn

    from .nets import BasicPolicy, InputLayer, ObsNorm, ResidualBlock
    index = {id(p): k for k, p in enumerate(policy.parameters())}
    slots: list[Slot] = []

    def param(p: nn.Parameter, transposed: bool) -> Slot:
        def write(value: np.ndarray) -> None:
            with torch.no_grad():
                p.copy_(torch.from_numpy(value).to(p.device, p.dtype))

        return Slot(lambda: p.detach().to("cpu", torch.float32).numpy(), write, tuple(p.shape), transposed,
                    index.get(id(p)))

    def frozen(size: int) -> Slot:
        return Slot(lambda: np.zeros(size, np.float32), lambda value: None, (size,), False, None)

    def walk(module: nn.Module) -> None:
        if isinstance(module, nn.Sequential):
            for child in module:
                walk(child)
        elif isinstance(module, ResidualBlock):
            walk(module.body)
        elif isinstance(module, ObsNorm):
            n = module.mean.numel()
            slots.extend([frozen(n * n), frozen(n)])
        elif isinstance(module, InputLayer):
            slots.extend([param(module.weight, True), param(module.bias, False)])
        elif isinstance(module, (nn.Linear, nn.Conv2d, nn.LayerNorm)):
            slots.append(param(module.weight, False))
            out = module.weight.shape[0]
            slots.append(param(module.bias, False) if module.bias is not None else frozen(out))

    if isinstance(policy, BasicPolicy):
        walk(policy.embedding)
        walk(policy.common)
    else:
        walk(policy.trunk)
    walk(policy.policy_head)
    walk(policy.value_head)
    if isinstance(getattr(policy, "log_std", None), nn.Parameter):
        slots.append(param(policy.log_std, False))
    return slots


def _numpy_slots(policy) -> list[Slot]:
    """The slots of a `NumpyPolicy`, in the Rust learner's order."""
    from .netspec import Linear
    trained = [t.name for t in policy.spec.tensors() if not t.buffer]
    index = {name: k for k, name in enumerate(trained)}
    transposed = {f"{layer.prefix}.weight" for layer in policy.spec.trunk
                  if isinstance(layer, Linear) and layer.input_major}
    slots: list[Slot] = []
    for tensor in policy.spec.rust_order():
        name = tensor.name
        if tensor.buffer:  # an ObsNorm: Rust holds it as a diagonal linear layer
            n = tensor.shape[0]
            size = n * n if name.endswith(".mean") else n
            slots.append(Slot(lambda size=size: np.zeros(size, np.float32), lambda value: None, (size,), False, None))
            continue

        def write(value: np.ndarray, name=name) -> None:
            policy.state[name] = value

        slots.append(Slot(lambda name=name: policy.state[name], write, tensor.shape, name in transposed, index[name]))
    return slots


def rust_supports(policy) -> Optional[str]:
    """None when the Rust learner can train `policy` (a torch module or a `NumpyPolicy`),
    else why not."""
    if not hasattr(policy, "parameters"):
        return None
    from .nets import policy_layers
    try:
        policy_layers(policy)
    except TypeError as exc:
        return str(exc)
    indexed = [s.index for s in _torch_slots(policy) if s.index is not None]
    if sorted(indexed) != list(range(sum(1 for _ in policy.parameters()))):
        return f"{type(policy).__name__} has parameters outside the layers the Rust learner trains"
    return None


def choose_learner(name: str, device: str = "cpu") -> str:
    """"rust" or "torch" for a config's `learner` and `device`. "auto" is Rust unless the
    update is to run on a GPU (on the CPU the two learners run the built-in networks at the
    same speed, within 0.8-1.2x, see docs/benchmarks.md, and Rust needs no torch); "torch"
    needs torch installed, "rust" a CPU. A request that cannot be met is a ValueError
    saying why."""
    from .networks import torch_available
    cpu = device == "cpu" or (device == "auto" and not (torch_available() and __import__("torch").cuda.is_available()))
    if name == "auto":
        return "rust" if cpu else "torch"
    if name == "rust" and not cpu:
        raise ValueError(f"learner \"rust\" runs on the CPU; device is {device!r}. Use learner \"torch\" to learn "
                         "on another device")
    if name == "torch" and not torch_available():
        raise ValueError("learner \"torch\" needs torch, which is not installed: pip install 'twisterl[train]', "
                         "or use learner \"rust\"")
    return name


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


class RustLearner:
    """Updates a network's weights with the Rust learner (Adam as `torch.optim.Adam`: `lr`,
    `eps`, `weight_decay`; clipping to `max_grad_norm` when given). `policy` is a torch
    module or a `NumpyPolicy`."""

    def __init__(self, policy, *, lr: float, eps: float, weight_decay: float = 0.0,
                 max_grad_norm: Optional[float] = None, threads: int = 1):
        why = rust_supports(policy)
        if why is not None:
            raise TypeError(f"{why}; use learner \"torch\" for it")
        self.policy = policy
        self.torch = hasattr(policy, "parameters")
        self.slots = _torch_slots(policy) if self.torch else _numpy_slots(policy)
        self.continuous = self._log_std() is not None
        self.hyper = {"lr": lr, "eps": eps, "weight_decay": weight_decay}
        inputs, trunk, policy_head, value_head = self._layers()
        frozen = [s.index is None for s in self.slots[:len(self.slots) - self.continuous]]
        self.learner = _core.Learner(inputs, trunk, policy_head, value_head, log_std=self._log_std(), frozen=frozen,
                                     lr=lr, eps=eps, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                                     threads=max(1, threads))

    def _layers(self):
        if self.torch:
            from .nets import policy_layers
            return policy_layers(self.policy)
        return self.policy.layers()

    def _log_std(self) -> Optional[list]:
        if self.torch:
            p = getattr(self.policy, "log_std", None)
            return None if p is None else p.detach().cpu().float().numpy().tolist()
        ls = self.policy.log_std
        return None if ls is None else ls.tolist()

    @property
    def lr(self) -> float:
        return self.learner.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.learner.lr = value
        self.hyper["lr"] = value

    def ppo_batch(self, data: dict, sparse: bool) -> tuple:
        """A rollout from `_core.collect` (arrays `[steps, envs, ...]`) as the flat, typed
        arrays `ppo_step` reads: made once per update, read by each of its minibatches."""
        def flat(key: str, dtype, width: Optional[int] = None) -> np.ndarray:
            x = np.ascontiguousarray(data[key], dtype=dtype)
            return x.reshape(-1) if width is None else x.reshape(-1, width)

        if sparse:
            obs, counts = flat("obs_indices", np.uint32, data["obs_indices"].shape[-1]), flat("obs_counts", np.uint32)
        else:
            obs, counts = flat("obs", np.float32, data["obs"].shape[-1]), None
        a = self.learner.num_actions
        if self.continuous:
            actions, values, masks = np.zeros(0, np.int64), flat("action_values", np.float32, a), np.zeros((0, a), bool)
        else:
            actions, values, masks = flat("actions", np.int64), np.zeros((0, a), np.float32), flat("masks", bool, a)
        return (obs, counts, actions, values, masks, flat("logp", np.float32), flat("advantages", np.float32),
                flat("returns", np.float32), flat("values", np.float32))

    def ppo_step(self, batch: tuple, rows: np.ndarray, *, clip_coef: float, vf_coef: float, ent_coef: float,
                 norm_adv: bool, clip_vloss: bool) -> dict:
        """One PPO minibatch update on `rows` of a `ppo_batch`."""
        return self.learner.ppo_step(*batch, np.ascontiguousarray(rows, dtype=np.int64), clip_coef=clip_coef,
                                     vf_coef=vf_coef, ent_coef=ent_coef, norm_adv=norm_adv, clip_vloss=clip_vloss)

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
        """The current network as a runtime policy."""
        return self.learner.policy()

    def push(self) -> None:
        """Write the learner's weights into the network."""
        for slot, value in zip(self.slots, self.learner.parameters()):
            slot.set(np.asarray(value))

    def pull(self) -> None:
        """Read the network's weights (and frozen layers, such as an `ObsNorm`'s statistics)
        into the learner."""
        self.learner.load_layers(*self._layers(), log_std=self._log_std())

    def state_dict(self) -> dict:
        """Adam's state as `torch.optim.Adam.state_dict()` gives it (numpy arrays), indexed by
        the network's parameters in torch's order."""
        m, v, steps = self.learner.optimizer_state()
        state = {s.index: {"step": np.array(float(steps), np.float32), "exp_avg": s.from_learner(mk),
                           "exp_avg_sq": s.from_learner(vk)}
                 for s, mk, vk in zip(self.slots, m, v) if s.index is not None}
        if steps == 0:
            state = {}
        group = {"lr": self.hyper["lr"], "betas": [0.9, 0.999], "eps": self.hyper["eps"],
                 "weight_decay": self.hyper["weight_decay"], "amsgrad": False, "maximize": False, "foreach": None,
                 "capturable": False, "differentiable": False, "fused": None, "decoupled_weight_decay": False,
                 "params": sorted(s.index for s in self.slots if s.index is not None)}
        return {"state": dict(sorted(state.items())), "param_groups": [group]}

    def load_state_dict(self, saved: dict) -> None:
        """Take Adam's state from what `state_dict` (or a torch Adam over the same network)
        gave: moments in torch's layouts; a parameter with no state starts from zeros."""
        m, v, steps = [], [], 0
        current = self.learner.optimizer_state()[0]
        for slot, mk in zip(self.slots, current):
            size = int(np.asarray(mk).size)
            entry = saved["state"].get(slot.index, {}) if slot.index is not None else {}
            if "exp_avg" not in entry:
                m.append(np.zeros(size, np.float32))
                v.append(np.zeros(size, np.float32))
                continue
            for out, key in ((m, "exp_avg"), (v, "exp_avg_sq")):
                value = np.asarray(_numpy(entry[key]), np.float32)
                if value.size != size:
                    raise ValueError(f"the optimizer state does not fit: a moment of parameter {slot.index} has "
                                     f"{value.size} values, not {size}")
                out.append(slot.to_learner(value))
            steps = int(np.asarray(_numpy(entry["step"]), np.float64).reshape(-1)[0])
        self.learner.set_optimizer_state(m, v, steps)

    def write_optimizer(self, optimizer) -> None:
        """Put Adam's state into a torch Adam over the same module."""
        import torch
        params = list(self.policy.parameters())
        for index, entry in self.state_dict()["state"].items():
            p = params[index]
            moment = lambda key: torch.from_numpy(entry[key]).to(p.device, p.dtype)  # noqa: E731
            optimizer.state[p] = {"step": torch.tensor(float(entry["step"])), "exp_avg": moment("exp_avg"),
                                  "exp_avg_sq": moment("exp_avg_sq")}

    def read_optimizer(self, optimizer) -> None:
        """Take Adam's state from a torch Adam over the same module."""
        params = list(self.policy.parameters())
        state = {k: dict(optimizer.state[p]) for k, p in enumerate(params) if p in optimizer.state}
        self.load_state_dict({"state": state})


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
