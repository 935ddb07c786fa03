"""Policy networks in torch, and their export to the Rust runtime.

Default networks, by observation and action kind:

- `BasicPolicy` (sparse one-hot or dense observations, discrete actions) has TwisteRL's
  shape: a first layer that is an embedding bag over the indices of a sparse one-hot
  observation (a plain linear layer over a dense one), MLP common layers, then a policy
  head (logits) and a value head.
- `ConvPolicy` (2-D planes): a small conv net, then the same common layers and heads.
- `GaussianPolicy` (continuous actions): separate actor and critic MLPs; the actor gives
  the means of a diagonal Gaussian whose log standard deviations are learned parameters.

`to_rust(module)` turns a network made of supported layers into a `twisterl._core.Policy`,
which runs the same forward pass in Rust for rollouts; an unsupported module is a clear
error. Custom networks export when they have `trunk`, `policy_head` and `value_head`
modules and an `obs_shape` (or `obs_size`), and reshape nothing but the flat observation.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import _core
from .netspec import check_description, describe_policy  # noqa: F401  (re-exported: the torch-free halves)

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": lambda: nn.GELU(approximate="tanh")}


class SparseObs:
    """A batch of sparse observations: `indices [B, nnz]` and `counts [B]` (TwisteRL's format)."""

    def __init__(self, indices: torch.Tensor, counts: torch.Tensor):
        self.indices = indices
        self.counts = counts

    def __len__(self) -> int:
        return self.indices.shape[0]

    def flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The indices of all rows back to back, and where each row starts."""
        nnz = self.indices.shape[1]
        keep = torch.arange(nnz, device=self.indices.device)[None, :] < self.counts[:, None]
        offsets = torch.zeros(len(self), dtype=torch.long, device=self.indices.device)
        offsets[1:] = torch.cumsum(self.counts.long(), 0)[:-1]
        return self.indices[keep].long(), offsets


class InputLayer(nn.Module):
    """A linear layer whose weight is stored input-major (`[in, out]`), so a sparse one-hot
    observation is an embedding bag: the sum of the rows of its ones, plus the bias."""

    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(inputs, outputs))
        self.bias = nn.Parameter(torch.empty(outputs))
        bound = 1.0 / math.sqrt(inputs)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, obs: Union[torch.Tensor, SparseObs]) -> torch.Tensor:
        if isinstance(obs, SparseObs):
            flat, offsets = obs.flat()
            return F.embedding_bag(flat, self.weight, offsets, mode="sum") + self.bias
        return obs @ self.weight + self.bias


def mlp(sizes: Sequence[int], activation: str, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or k < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """`x + body(x)`; by default the body is Linear, activation, Linear at the same width."""

    def __init__(self, width: int, activation: str = "relu", body: Optional[nn.Module] = None):
        super().__init__()
        self.body = body if body is not None else nn.Sequential(
            nn.Linear(width, width), ACTIVATIONS[activation](), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class BasicPolicy(nn.Module):
    """TwisteRL's BasicPolicy: embedding, common layers, policy and value heads."""

    def __init__(self, obs_size: int, num_actions: int, embedding_size: int = 512,
                 common_layers: Sequence[int] = (256,), policy_layers: Sequence[int] = (),
                 value_layers: Sequence[int] = (), activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
        self.obs_size, self.num_actions = obs_size, num_actions
        self.embedding = InputLayer(obs_size, embedding_size)
        self.common = mlp([embedding_size, *common_layers], activation, last_activation=True)
        self.activation = ACTIVATIONS[activation]()
        width = common_layers[-1] if common_layers else embedding_size
        self.policy_head = mlp([width, *policy_layers, num_actions], activation, last_activation=False)
        self.value_head = mlp([width, *value_layers, 1], activation, last_activation=False)

    def forward(self, obs: Union[torch.Tensor, SparseObs]) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.common(self.activation(self.embedding(obs)))
        return self.policy_head(h), self.value_head(h).squeeze(-1)


class ConvPolicy(nn.Module):
    """A small conv net for channels-first planes `[C, H, W]` (observations arrive flat):
    3x3 convolutions that keep the board size, then common layers and the two heads."""

    def __init__(self, obs_shape: Sequence[int], num_actions: int, channels: Sequence[int] = (32, 32),
                 common_layers: Sequence[int] = (256,), activation: str = "relu"):
        super().__init__()
        c, h, w = (int(v) for v in obs_shape)
        self.obs_shape = (c, h, w)
        self.obs_size = c * h * w
        self.num_actions = num_actions
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(c, out, kernel_size=3, padding=1), ACTIVATIONS[activation]()]
            c = out
        layers.append(nn.Flatten())
        self.trunk = nn.Sequential(*layers, *mlp([c * h * w, *common_layers], activation, last_activation=True))
        width = common_layers[-1] if common_layers else c * h * w
        self.policy_head = nn.Linear(width, num_actions)
        self.value_head = nn.Linear(width, 1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs.reshape(-1, *self.obs_shape))
        return self.policy_head(h), self.value_head(h).squeeze(-1)


class ObsNorm(nn.Module):
    """`(obs - mean) * inv_std`, per feature, with statistics the learner sets (buffers, saved
    with the weights); it exports as a diagonal linear layer."""

    def __init__(self, size: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("inv_std", torch.ones(size))

    def set_stats(self, mean: np.ndarray, var: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.inv_std.copy_(torch.as_tensor(1.0 / np.sqrt(np.asarray(var) + 1e-8), dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) * self.inv_std


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs over a dense observation, orthogonally initialised
    (gain sqrt(2), the actor's last layer 0.01, the critic's 1), as CleanRL's PPO; with
    `norm_obs`, both read the observation through an `ObsNorm`."""

    def __init__(self, obs_size: int, num_actions: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                 norm_obs: bool = False):
        super().__init__()
        self.obs_size, self.num_actions = obs_size, num_actions
        self.trunk = nn.Sequential(ObsNorm(obs_size)) if norm_obs else nn.Sequential()
        self.policy_head = mlp([obs_size, *hidden, num_actions], activation, last_activation=False)
        self.value_head = mlp([obs_size, *hidden, 1], activation, last_activation=False)
        for net, gain in ((self.policy_head, 0.01), (self.value_head, 1.0)):
            linears = [m for m in net if isinstance(m, nn.Linear)]
            for k, layer in enumerate(linears):
                nn.init.orthogonal_(layer.weight, gain if k == len(linears) - 1 else math.sqrt(2))
                nn.init.zeros_(layer.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = self.trunk(obs)
        return self.policy_head(obs), self.value_head(obs).squeeze(-1)


class GaussianPolicy(ActorCritic):
    """Continuous actions: the actor gives the means of a diagonal Gaussian, the critic the
    value; `log_std` is learned, one per action value."""

    def __init__(self, obs_size: int, num_values: int, hidden: Sequence[int] = (64, 64),
                 activation: str = "tanh", init_log_std: float = 0.0, norm_obs: bool = False):
        super().__init__(obs_size, num_values, hidden, activation, norm_obs)
        self.log_std = nn.Parameter(torch.full((num_values,), float(init_log_std)))


def build_policy(desc: dict) -> nn.Module:
    """The network a description (from `describe_policy`) names, freshly initialised; a
    description with a missing or bad field is a ValueError naming it."""
    check_description(desc)
    try:
        return _build(desc)
    except (RuntimeError, MemoryError) as exc:  # torch's allocator: too big for this machine
        raise ValueError(f"the {desc['kind']} network {desc} cannot be allocated: {str(exc).splitlines()[0]}") from None


def _build(desc: dict) -> nn.Module:
    kind = desc.get("kind")
    if kind == "basic":
        return BasicPolicy(desc["obs_size"], desc["num_actions"], desc["embedding_size"], desc["common_layers"],
                           activation=desc.get("activation", "relu"))
    if kind == "conv":
        return ConvPolicy(desc["obs_shape"], desc["num_actions"], desc["channels"], desc["common_layers"],
                          activation=desc.get("activation", "relu"))
    if kind == "actor_critic":
        return ActorCritic(desc["obs_size"], desc["num_actions"], desc["hidden"], desc["activation"],
                           norm_obs=desc.get("norm_obs", False))
    if kind == "gaussian":
        return GaussianPolicy(desc["obs_size"], desc["num_actions"], desc["hidden"],
                              init_log_std=desc.get("init_log_std", 0.0), norm_obs=desc.get("norm_obs", False))
    raise ValueError(f"unknown policy kind {kind!r}; expected basic, conv, actor_critic or gaussian")


# ---------------------------------------------------------------- export to Rust

SUPPORTED = ("InputLayer, ObsNorm, Linear, Conv2d (zero padding), Flatten, ReLU, Tanh, GELU(approximate='tanh'), "
             "LayerNorm, ResidualBlock, Sequential")

Shape = Tuple[int, ...]


def _layers(module: nn.Module, shape: Shape) -> tuple[list[tuple], Shape]:
    """The layer tuples of `module` and the shape of its output, given its input's shape
    (`(features,)` for flat rows, `(channels, height, width)` for planes)."""
    if isinstance(module, nn.Sequential):
        out: list[tuple] = []
        for child in module:
            layers, shape = _layers(child, shape)
            out += layers
        return out, shape
    if isinstance(module, ResidualBlock):
        body, body_shape = _layers(module.body, shape)
        if body_shape != shape:
            raise TypeError(f"a ResidualBlock's body must keep the shape {shape}, but gives {body_shape}")
        return [("residual", body)], shape
    if isinstance(module, ObsNorm):
        if len(shape) != 1 or shape[0] != module.mean.shape[0]:
            raise TypeError(f"an ObsNorm over {module.mean.shape[0]} features receives shape {shape}")
        scale = module.inv_std.detach()
        return [("linear", _np(torch.diag(scale)), _np(-module.mean.detach() * scale))], shape
    if isinstance(module, nn.Flatten):
        if module.start_dim != 1 or module.end_dim != -1:
            raise TypeError("only Flatten() over all but the batch dimension can be exported")
        return [], (math.prod(shape),)
    if isinstance(module, nn.Conv2d):
        return _conv(module, shape)
    if isinstance(module, (InputLayer, nn.Linear)):
        if len(shape) != 1:
            raise TypeError(f"a linear layer needs flat input, but receives shape {shape}; add nn.Flatten()")
        if isinstance(module, InputLayer):
            weight, bias, inputs = module.weight.t(), module.bias, module.weight.shape[0]
        else:
            weight, inputs = module.weight, module.in_features
            bias = module.bias if module.bias is not None else torch.zeros(module.out_features)
        if inputs != shape[0]:
            raise TypeError(f"a linear layer over {inputs} features receives {shape[0]}")
        return [("linear", _np(weight), _np(bias))], (weight.shape[0],)
    if isinstance(module, nn.ReLU):
        return [("relu",)], shape
    if isinstance(module, nn.Tanh):
        return [("tanh",)], shape
    if isinstance(module, nn.GELU):
        if module.approximate != "tanh":
            raise TypeError("only GELU(approximate='tanh') can be exported to the Rust policy")
        return [("gelu_tanh",)], shape
    if isinstance(module, nn.LayerNorm):
        if len(module.normalized_shape) != 1 or not module.elementwise_affine or len(shape) != 1:
            raise TypeError("only a LayerNorm over flat features, with weights, can be exported")
        return [("layernorm", _np(module.weight), _np(module.bias), float(module.eps))], shape
    raise TypeError(f"{type(module).__name__} cannot be exported to the Rust policy; supported layers: {SUPPORTED}")


def _conv(conv: nn.Conv2d, shape: Shape) -> tuple[list[tuple], Shape]:
    if len(shape) != 3:
        raise TypeError(f"Conv2d needs channels-first planes, but receives shape {shape}")
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise TypeError("only Conv2d with groups=1, dilation=1 and numeric zero padding can be exported")
    c, h, w = shape
    if c != conv.in_channels:
        raise TypeError(f"Conv2d over {conv.in_channels} channels receives {c}")
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    out = (conv.out_channels, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    return [("conv2d", _np(conv.weight), _np(bias), (sh, sw), (ph, pw), (h, w))], out


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


def to_rust(policy: nn.Module) -> "_core.Policy":
    """The Rust twin of `policy`: a `BasicPolicy`, `ConvPolicy` or `GaussianPolicy`, or any
    module with `trunk`, `policy_head`, `value_head` and `obs_shape` (or `obs_size`) made of
    supported layers."""
    from .netspec import NumpyPolicy
    if isinstance(policy, NumpyPolicy):
        return _core.Policy(*policy.layers())
    return _core.Policy(*policy_layers(policy))


def policy_layers(policy: nn.Module) -> tuple[int, list[tuple], list[tuple], list[tuple]]:
    """(input features, trunk, policy head, value head) of `policy` as layer tuples, the
    form `twisterl._core.Policy` (and the wasm runtime's policy file) is built from."""
    if isinstance(policy, BasicPolicy):
        shape: Shape = (policy.obs_size,)
        trunk, shape = _layers(nn.Sequential(policy.embedding, policy.activation, policy.common), shape)
    elif all(hasattr(policy, name) for name in ("trunk", "policy_head", "value_head")):
        shape = _input_shape(policy)
        trunk, shape = _layers(policy.trunk, shape)
    else:
        raise TypeError(f"{type(policy).__name__} cannot be exported: use BasicPolicy, or give the module "
                        "`trunk`, `policy_head`, `value_head` and `obs_shape` made of " + SUPPORTED)
    if len(shape) != 1:
        shape = (math.prod(shape),)  # the heads read the trunk's planes flattened
    policy_head, _ = _layers(policy.policy_head, shape)
    value_head, _ = _layers(policy.value_head, shape)
    return int(math.prod(_input_shape(policy))), trunk, policy_head, value_head


def _input_shape(policy: nn.Module) -> Shape:
    """The observation shape a policy reads: its `obs_shape` or `obs_size`, or the inputs of
    its first layer when that is linear."""
    if getattr(policy, "obs_shape", None) is not None:
        return tuple(int(v) for v in policy.obs_shape)
    if getattr(policy, "obs_size", None) is not None:
        return (int(policy.obs_size),)
    first = policy.trunk
    while isinstance(first, nn.Sequential) and len(first):
        first = first[0]
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    if isinstance(first, InputLayer):
        return (first.weight.shape[0],)
    raise TypeError(f"{type(policy).__name__} needs an `obs_shape` (or `obs_size`) attribute to be exported: "
                    "its first layer does not say how many features it reads")
