"""Policy files for the WebAssembly runtime: any network `nets.to_rust` takes, as the
safetensors file `runtime/wasm/src/agent.rs` reads (the format is described there)."""

from __future__ import annotations

from pathlib import Path


def save_policy(net, path: Path, info: dict) -> dict:
    """Write `net` (any network `nets.to_rust` takes: basic, conv, residual, actor-critic or
    Gaussian) as a policy file for the wasm runtime, with the metadata `info`; returns the
    metadata written. The format is in runtime/wasm/src/agent.rs."""
    import numpy as np
    from safetensors.numpy import save_file

    from ..train.networks import export_layers, log_std_of

    inputs, trunk, policy_head, value_head = export_layers(net)
    info = {**info, "format": "twisterl-policy-v1", "inputs": str(inputs)}
    tensors: dict[str, np.ndarray] = {}

    def f32(a) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    def put(part: str, layers: list) -> None:
        info[part] = ",".join(layer[0] for layer in layers)
        for k, layer in enumerate(layers):
            name, kind = f"{part}.{k}", layer[0]
            if kind in ("linear", "conv2d"):
                tensors[f"{name}.weight"], tensors[f"{name}.bias"] = f32(layer[1]), f32(layer[2])
            if kind == "conv2d":
                for key, pair in zip(("stride", "padding", "input"), layer[3:6]):
                    info[f"{name}.{key}"] = ",".join(str(int(v)) for v in pair)
            elif kind == "layernorm":
                tensors[f"{name}.gamma"], tensors[f"{name}.beta"] = f32(layer[1]), f32(layer[2])
                info[f"{name}.eps"] = repr(float(layer[3]))
            elif kind == "residual":
                put(name, layer[1])

    for part, layers in (("trunk", trunk), ("policy_head", policy_head), ("value_head", value_head)):
        put(part, layers)
    log_std = log_std_of(net)
    if log_std is not None:
        tensors["log_std"] = f32(log_std)
    save_file(tensors, str(path), metadata=info)
    return info
