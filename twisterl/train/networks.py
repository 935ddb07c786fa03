"""A network in either form, the torch module (`nets.py`) or the numpy arrays
(`netspec.NumpyPolicy`): building one, and reading what the runtime needs from it. Torch is
imported only for a torch network."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .netspec import NumpyPolicy


def installed(name: str) -> bool:
    """Whether package `name` is installed (found, not imported: importing torch takes
    seconds); a package blocked with `sys.modules[name] = None` counts as missing."""
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def torch_available() -> bool:
    """Whether torch is installed (the `train` extra)."""
    return installed("torch")


def build_network(desc: dict, seed: int = 0, use_torch: Optional[bool] = None):
    """The network a description names: a torch module when `use_torch` (default: when torch
    is installed), else a `NumpyPolicy` initialised from `seed`."""
    if use_torch is None:
        use_torch = torch_available()
    if use_torch:
        from .nets import build_policy
        return build_policy(desc)
    return NumpyPolicy(desc, seed)


def export_layers(net) -> tuple[int, list, list, list]:
    """(input features, trunk, policy head, value head) of a torch network or a `NumpyPolicy`,
    as layer tuples (see `twisterl._core.Policy`)."""
    if isinstance(net, NumpyPolicy):
        return net.layers()
    from .nets import policy_layers
    return policy_layers(net)


def runtime_policy(net):
    """The Rust twin of a torch network or a `NumpyPolicy`: a `twisterl._core.Policy`."""
    from .. import _core
    return _core.Policy(*export_layers(net))


def log_std_of(net) -> Optional[np.ndarray]:
    """A Gaussian network's log standard deviations (float32), None for others."""
    if isinstance(net, NumpyPolicy):
        return net.log_std
    p = getattr(net, "log_std", None)
    return None if p is None else p.detach().cpu().numpy().astype(np.float32)
