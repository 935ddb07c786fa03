"""The built-in networks without torch: their parameters' names, shapes and initial values,
and their layers as the runtime takes them.

A description (`describe_policy`'s dict) names one of the networks in
`twisterl.train.nets`; this module knows the same networks as numpy arrays, under the names
torch's `state_dict()` gives them, so a checkpoint is the same safetensors file whichever
learner wrote it. `NumpyPolicy` is such a network: what the Rust learner trains when torch
is not installed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

ACTIVATION_TUPLES = {"relu": ("relu",), "tanh": ("tanh",), "gelu": ("gelu_tanh",)}
"""Each activation's name in configs, and its layer tuple in the runtime."""


def describe_policy(obs_kind: str, obs_shape: Sequence[int], num_actions: int, continuous: bool,
                    embedding_size: int, common_layers: Sequence[int], conv_channels: Sequence[int] = (32, 32),
                    init_log_std: float = 0.0, activation: str = "relu", network: str = "auto",
                    norm_obs: bool = False) -> dict:
    """The network for an env, as a description a run dir records (JSON). `network` "auto"
    picks by the env's kind; "actor_critic" asks for separate actor and critic MLPs.
    `norm_obs` (actor-critic and Gaussian networks only) normalises the observation."""
    shape = [int(v) for v in obs_shape]
    norm = {"norm_obs": True} if norm_obs else {}
    if norm_obs and not (continuous or network == "actor_critic"):
        raise ValueError("norm_obs needs separate actor and critic networks over a dense observation "
                         "(network \"actor_critic\", or continuous actions)")
    if network not in ("auto", "actor_critic"):
        raise ValueError(f"network must be \"auto\" or \"actor_critic\", not {network!r}")
    if network == "actor_critic" and not continuous:
        if obs_kind == "sparse":
            raise ValueError("network \"actor_critic\" needs a dense observation; this env's is sparse one-hot")
        if activation not in ACTIVATION_TUPLES:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATION_TUPLES)}, not {activation!r}")
        return {"kind": "actor_critic", "obs_size": math.prod(shape), "num_actions": num_actions,
                "hidden": [embedding_size, *common_layers], "activation": activation, **norm}
    if continuous:
        return {"kind": "gaussian", "obs_size": math.prod(shape), "num_actions": num_actions,
                "hidden": [embedding_size, *common_layers], "init_log_std": init_log_std, **norm}
    if activation not in ACTIVATION_TUPLES:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATION_TUPLES)}, not {activation!r}")
    if obs_kind == "planes":
        return {"kind": "conv", "obs_shape": shape, "num_actions": num_actions, "channels": list(conv_channels),
                "common_layers": list(common_layers), "activation": activation}
    return {"kind": "basic", "obs_size": math.prod(shape), "num_actions": num_actions,
            "embedding_size": embedding_size, "common_layers": list(common_layers), "activation": activation}


_SIZE = (1, 1 << 24)
# The fields of each kind of description: True for a list of sizes, a (lo, hi) int range,
# a tuple of choices, or float for a number. Those after "|" are optional.
_DESC_FIELDS: dict[str, dict[str, Any]] = {
    "basic": {"obs_size": _SIZE, "num_actions": _SIZE, "embedding_size": _SIZE, "common_layers": True,
              "|activation": tuple(ACTIVATION_TUPLES)},
    "conv": {"obs_shape": True, "num_actions": _SIZE, "channels": True, "common_layers": True,
             "|activation": tuple(ACTIVATION_TUPLES)},
    "actor_critic": {"obs_size": _SIZE, "num_actions": _SIZE, "hidden": True, "activation": tuple(ACTIVATION_TUPLES),
                     "|norm_obs": bool},
    "gaussian": {"obs_size": _SIZE, "num_actions": _SIZE, "hidden": True, "|init_log_std": float, "|norm_obs": bool},
}


def check_description(desc: Any) -> None:
    """A ValueError naming the field for a network description `build_policy` cannot build."""
    if not isinstance(desc, dict):
        raise ValueError(f"a network description is an object, not {type(desc).__name__} {desc!r:.40}")
    kind = desc.get("kind")
    if kind not in _DESC_FIELDS:
        raise ValueError(f"unknown policy kind {kind!r}; expected basic, conv, actor_critic or gaussian")
    for key, rule in _DESC_FIELDS[kind].items():
        name = key.lstrip("|")
        if name not in desc:
            if key.startswith("|"):
                continue
            raise ValueError(f"a {kind} network needs `{name}`")
        value = desc[name]
        if rule is True:
            ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and
                                                 _SIZE[0] <= v <= _SIZE[1] for v in value)
            ok = ok and (name != "obs_shape" or len(value) == 3)
        elif rule is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif rule is bool:
            ok = isinstance(value, bool)
        elif isinstance(rule, tuple) and isinstance(rule[0], str):
            ok = value in rule
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and rule[0] <= value <= rule[1]
        if not ok:
            raise ValueError(f"`{name}` of a {kind} network cannot be {value!r}")




@dataclass(frozen=True)
class Tensor:
    """One tensor of a network: its `state_dict` name and torch shape; `buffer` for what
    training leaves alone (an `ObsNorm`'s statistics)."""
    name: str
    shape: tuple[int, ...]
    buffer: bool = False


@dataclass(frozen=True)
class Linear:
    prefix: str
    inputs: int
    outputs: int
    init: str = "uniform"
    """"uniform" (torch's default for Linear and Conv2d), or "orthogonal:GAIN" (CleanRL's)"""
    input_major: bool = False
    """stored `[in, out]`, as `InputLayer`"""


@dataclass(frozen=True)
class Conv:
    prefix: str
    in_channels: int
    out_channels: int
    input: tuple[int, int]


@dataclass(frozen=True)
class Act:
    name: str


@dataclass(frozen=True)
class Norm:
    prefix: str
    size: int


@dataclass(frozen=True)
class Spec:
    """A network as layers: input features, trunk, policy head, value head; `log_std` for
    a Gaussian policy's per-value log standard deviations (and their initial value)."""
    inputs: int
    trunk: tuple
    policy_head: tuple
    value_head: tuple
    num_actions: int
    log_std: Optional[float] = None

    def tensors(self) -> list[Tensor]:
        """Every tensor, in `state_dict` order (a Gaussian's `log_std` first, as torch registers
        it on the module itself, then trunk, policy head, value head)."""
        out = [Tensor("log_std", (self.num_actions,))] if self.log_std is not None else []
        for layer in (*self.trunk, *self.policy_head, *self.value_head):
            out += _layer_tensors(layer)
        return out

    def rust_order(self) -> list[Tensor]:
        """The tensors in the Rust learner's order: trunk, policy head, value head, `log_std`."""
        tensors = self.tensors()
        return tensors[1:] + tensors[:1] if self.log_std is not None else tensors


def _layer_tensors(layer) -> list[Tensor]:
    if isinstance(layer, Linear):
        shape = (layer.inputs, layer.outputs) if layer.input_major else (layer.outputs, layer.inputs)
        return [Tensor(f"{layer.prefix}.weight", shape), Tensor(f"{layer.prefix}.bias", (layer.outputs,))]
    if isinstance(layer, Conv):
        return [Tensor(f"{layer.prefix}.weight", (layer.out_channels, layer.in_channels, 3, 3)),
                Tensor(f"{layer.prefix}.bias", (layer.out_channels,))]
    if isinstance(layer, Norm):
        return [Tensor(f"{layer.prefix}.mean", (layer.size,), True),
                Tensor(f"{layer.prefix}.inv_std", (layer.size,), True)]
    return []


def _mlp(prefix: str, sizes: list[int], activation: str, last_activation: bool, start: int = 0,
         gains: Optional[tuple[float, float]] = None) -> list:
    """`nets.mlp`'s layers: Linear, activation, ... named `prefix.K` by their index."""
    layers: list = []
    k = start
    count = len(sizes) - 1
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        init = "uniform" if gains is None else f"orthogonal:{gains[1] if i == count - 1 else gains[0]}"
        layers.append(Linear(f"{prefix}.{k}" if prefix else str(k), a, b, init))
        k += 1
        if last_activation or i < count - 1:
            layers.append(Act(activation))
            k += 1
    return layers


def spec(desc: dict) -> Spec:
    """The layers of the network a (checked) description names."""
    kind = desc["kind"]
    if kind == "basic":
        act = desc.get("activation", "relu")
        e, common = desc["embedding_size"], list(desc["common_layers"])
        width = common[-1] if common else e
        trunk = [Linear("embedding", desc["obs_size"], e, input_major=True), Act(act),
                 *_mlp("common", [e, *common], act, last_activation=True)]
        return Spec(desc["obs_size"], tuple(trunk), tuple(_mlp("policy_head", [width, desc["num_actions"]], act, False)),
                    tuple(_mlp("value_head", [width, 1], act, False)), desc["num_actions"])
    if kind == "conv":
        act = desc.get("activation", "relu")
        c, h, w = desc["obs_shape"]
        inputs = c * h * w
        trunk: list = []
        for k, out in enumerate(desc["channels"]):
            trunk += [Conv(f"trunk.{2 * k}", c, out, (h, w)), Act(act)]
            c = out
        common = list(desc["common_layers"])
        trunk += _mlp("trunk", [c * h * w, *common], act, True, start=2 * len(desc["channels"]) + 1)
        width = common[-1] if common else c * h * w
        return Spec(inputs, tuple(trunk),
                    (Linear("policy_head", width, desc["num_actions"]),), (Linear("value_head", width, 1),),
                    desc["num_actions"])
    if kind in ("actor_critic", "gaussian"):
        act = desc.get("activation", "tanh")
        n, hidden, a = desc["obs_size"], list(desc["hidden"]), desc["num_actions"]
        trunk = (Norm("trunk.0", n),) if desc.get("norm_obs") else ()
        return Spec(n, trunk, tuple(_mlp("policy_head", [n, *hidden, a], act, False, gains=(math.sqrt(2), 0.01))),
                    tuple(_mlp("value_head", [n, *hidden, 1], act, False, gains=(math.sqrt(2), 1.0))), a,
                    float(desc.get("init_log_std", 0.0)) if kind == "gaussian" else None)
    raise ValueError(f"unknown policy kind {kind!r}; expected basic, conv, actor_critic or gaussian")


def _orthogonal(rng: np.random.Generator, rows: int, cols: int, gain: float) -> np.ndarray:
    """A (semi-)orthogonal matrix, as `torch.nn.init.orthogonal_` draws one."""
    flat = rng.normal(size=(rows, cols)) if rows >= cols else rng.normal(size=(cols, rows))
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    return (gain * (q if rows >= cols else q.T)).astype(np.float32)


def init_state(s: Spec, seed: int) -> dict[str, np.ndarray]:
    """Fresh weights, drawn as torch initialises the same network (the values differ, the
    distributions do not)."""
    rng = np.random.default_rng([seed, 0x1E7])
    state: dict[str, np.ndarray] = {}
    if s.log_std is not None:
        state["log_std"] = np.full(s.num_actions, s.log_std, np.float32)
    for layer in (*s.trunk, *s.policy_head, *s.value_head):
        if isinstance(layer, (Linear, Conv)):
            fan_in = layer.inputs if isinstance(layer, Linear) else layer.in_channels * 9
            weight, bias = _layer_tensors(layer)
            bound = 1.0 / math.sqrt(fan_in)
            if isinstance(layer, Linear) and layer.init.startswith("orthogonal:"):
                gain = float(layer.init.split(":")[1])
                state[weight.name] = _orthogonal(rng, layer.outputs, layer.inputs, gain)
                state[bias.name] = np.zeros(layer.outputs, np.float32)
            else:
                state[weight.name] = rng.uniform(-bound, bound, weight.shape).astype(np.float32)
                state[bias.name] = rng.uniform(-bound, bound, bias.shape).astype(np.float32)
        elif isinstance(layer, Norm):
            state[f"{layer.prefix}.mean"] = np.zeros(layer.size, np.float32)
            state[f"{layer.prefix}.inv_std"] = np.ones(layer.size, np.float32)
    return state


def layer_tuples(s: Spec, state: dict[str, np.ndarray]) -> tuple[int, list, list, list]:
    """(input features, trunk, policy head, value head) as `twisterl._core.Policy` takes them."""
    def one(layer) -> list:
        if isinstance(layer, Linear):
            w = state[f"{layer.prefix}.weight"]
            return [("linear", np.ascontiguousarray(w.T if layer.input_major else w, np.float32),
                     np.ascontiguousarray(state[f"{layer.prefix}.bias"], np.float32))]
        if isinstance(layer, Conv):
            return [("conv2d", np.ascontiguousarray(state[f"{layer.prefix}.weight"], np.float32),
                     np.ascontiguousarray(state[f"{layer.prefix}.bias"], np.float32), (1, 1), (1, 1), layer.input)]
        if isinstance(layer, Norm):
            inv = state[f"{layer.prefix}.inv_std"].astype(np.float32)
            return [("linear", np.ascontiguousarray(np.diag(inv)), (-state[f"{layer.prefix}.mean"] * inv).astype(np.float32))]
        if isinstance(layer, Act):
            return [ACTIVATION_TUPLES[layer.name]]
        raise TypeError(f"unknown layer {layer!r}")

    return s.inputs, *([t for layer in part for t in one(layer)] for part in (s.trunk, s.policy_head, s.value_head))


class NumpyPolicy:
    """A built-in network as numpy arrays (no torch): what the Rust learner trains, checkpoints
    save and the runtime runs. `state_dict()` has torch's names and shapes."""

    def __init__(self, desc: dict, seed: int = 0):
        check_description(desc)
        self.desc = desc
        self.spec = spec(desc)
        self.state = init_state(self.spec, seed)
        self.obs_size = self.spec.inputs
        self.num_actions = self.spec.num_actions
        if desc["kind"] == "conv":
            self.obs_shape = tuple(desc["obs_shape"])

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.state)

    def load_state_dict(self, state: dict) -> None:
        """Replace every tensor; the names and shapes must be this network's (a ValueError
        names the first that is not)."""
        want = {t.name: t.shape for t in self.spec.tensors()}
        missing = sorted(set(want) - set(state))
        extra = sorted(set(state) - set(want))
        if missing or extra:
            raise ValueError(f"the weights do not fit the network: missing {missing}, unexpected {extra}")
        for name, shape in want.items():
            value = np.asarray(state[name], dtype=np.float32)
            if value.shape != shape:
                raise ValueError(f"the weights do not fit the network: {name} has shape {value.shape}, not {shape}")
            self.state[name] = value.copy()

    def layers(self) -> tuple[int, list, list, list]:
        return layer_tuples(self.spec, self.state)

    @property
    def log_std(self) -> Optional[np.ndarray]:
        """A Gaussian network's log standard deviations, None for others."""
        return self.state.get("log_std")

    def set_obs_norm(self, mean: np.ndarray, var: np.ndarray) -> None:
        for layer in self.spec.trunk:
            if isinstance(layer, Norm):
                self.state[f"{layer.prefix}.mean"] = np.asarray(mean, np.float32)
                self.state[f"{layer.prefix}.inv_std"] = (1.0 / np.sqrt(np.asarray(var) + 1e-8)).astype(np.float32)
