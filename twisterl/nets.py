"""Policy networks in torch, and their export to the Rust runtime.

`BasicPolicy` has TwisteRL's shape: a first layer that is an embedding bag over the
indices of a sparse one-hot observation (or a linear layer over a dense one), MLP common
layers, then a policy head (logits) and a value head. `export(module)` turns a network
made of supported layers into a `twisterl._core.Policy`, which runs the same forward pass
in Rust for rollouts; an unsupported module is a clear error.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import _core

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


# ---------------------------------------------------------------- export to Rust

SUPPORTED = "InputLayer, Linear, ReLU, Tanh, GELU(approximate='tanh'), LayerNorm, Sequential"


def _layers(module: nn.Module) -> list[tuple]:
    out: list[tuple] = []
    if isinstance(module, nn.Sequential):
        for child in module:
            out += _layers(child)
        return out
    if isinstance(module, InputLayer):
        return [("linear", _np(module.weight.t()), _np(module.bias))]
    if isinstance(module, nn.Linear):
        bias = module.bias if module.bias is not None else torch.zeros(module.out_features)
        return [("linear", _np(module.weight), _np(bias))]
    if isinstance(module, nn.ReLU):
        return [("relu",)]
    if isinstance(module, nn.Tanh):
        return [("tanh",)]
    if isinstance(module, nn.GELU):
        if module.approximate != "tanh":
            raise TypeError("only GELU(approximate='tanh') can be exported to the Rust policy")
        return [("gelu_tanh",)]
    if isinstance(module, nn.LayerNorm):
        if len(module.normalized_shape) != 1 or not module.elementwise_affine:
            raise TypeError("only a LayerNorm over the last dimension, with weights, can be exported")
        return [("layernorm", _np(module.weight), _np(module.bias), float(module.eps))]
    raise TypeError(f"{type(module).__name__} cannot be exported to the Rust policy; "
                    f"supported layers: {SUPPORTED}")


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


def export(policy: nn.Module, obs_size: Optional[int] = None) -> "_core.Policy":
    """The Rust twin of `policy`: a `BasicPolicy`, or any module with `trunk`,
    `policy_head` and `value_head` made of supported layers."""
    if isinstance(policy, BasicPolicy):
        trunk = _layers(policy.embedding) + _layers(policy.activation) + _layers(policy.common)
        obs_size = policy.obs_size
    elif all(hasattr(policy, name) for name in ("trunk", "policy_head", "value_head")):
        trunk = _layers(policy.trunk)
        if obs_size is None:
            obs_size = trunk[0][1].shape[1]
    else:
        raise TypeError(f"{type(policy).__name__} cannot be exported: use BasicPolicy, or give the module "
                        "`trunk`, `policy_head` and `value_head` made of " + SUPPORTED)
    return _core.Policy(obs_size, trunk, _layers(policy.policy_head), _layers(policy.value_head))
