"""The Rust forward pass equals the torch forward pass, for every supported architecture."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from twisterl.nets import BasicPolicy, InputLayer, SparseObs, export  # noqa: E402


def random_sparse(rng, batch, obs_size, nnz):
    counts = rng.integers(0, nnz + 1, size=batch).astype(np.uint32)
    idx = np.zeros((batch, nnz), dtype=np.uint32)
    for b in range(batch):
        idx[b, : counts[b]] = rng.choice(obs_size, size=counts[b], replace=False)
    return idx, counts


def close(rust, torch_out):
    np.testing.assert_allclose(rust, torch_out.detach().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
@pytest.mark.parametrize("common, heads", [((256,), ()), ((64, 32), (16,)), ((), ())])
def test_basic_policy_sparse_and_dense(activation, common, heads):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = BasicPolicy(81, 4, embedding_size=128, common_layers=common, policy_layers=heads, value_layers=heads,
                      activation=activation)
    rust = export(net)
    idx, counts = random_sparse(rng, 37, 81, 9)
    t_logits, t_values = net(SparseObs(torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(counts.astype(np.int64))))
    r_logits, r_values = rust.forward_sparse(idx, counts)
    close(r_logits, t_logits)
    close(r_values, t_values)
    dense = rng.normal(size=(19, 81)).astype(np.float32)
    t_logits, t_values = net(torch.from_numpy(dense))
    r_logits, r_values = rust.forward_dense(dense)
    close(r_logits, t_logits)
    close(r_values, t_values)


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(InputLayer(10, 32), nn.LayerNorm(32), nn.GELU(approximate="tanh"),
                                   nn.Linear(32, 32), nn.Tanh())
        self.policy_head = nn.Sequential(nn.Linear(32, 5))
        self.value_head = nn.Sequential(nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x):
        h = self.trunk(x)
        return self.policy_head(h), self.value_head(h).squeeze(-1)


def test_custom_architecture_with_layernorm():
    torch.manual_seed(1)
    net = Custom()
    with torch.no_grad():
        net.trunk[1].weight.uniform_(0.5, 1.5)
        net.trunk[1].bias.uniform_(-0.2, 0.2)
    rust = export(net)
    x = np.random.default_rng(2).normal(size=(23, 10)).astype(np.float32)
    t_logits, t_values = net(torch.from_numpy(x))
    r_logits, r_values = rust.forward_dense(x)
    close(r_logits, t_logits)
    close(r_values, t_values)


def test_unsupported_modules_are_refused_clearly():
    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))
            self.policy_head = nn.Linear(4, 2)
            self.value_head = nn.Linear(4, 1)

    with pytest.raises(TypeError, match="Dropout cannot be exported"):
        export(Conv())
    with pytest.raises(TypeError, match="only GELU"):
        export(_gelu_exact())
    with pytest.raises(TypeError, match="cannot be exported: use BasicPolicy"):
        export(nn.Linear(3, 3))


def _gelu_exact():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(4, 4), nn.GELU())
            self.policy_head = nn.Linear(4, 2)
            self.value_head = nn.Linear(4, 1)
    return Net()


def test_shape_mismatches_are_refused():
    from twisterl import _core
    w = np.zeros((8, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="the first layer must be linear"):
        _core.Policy(5, [("linear", w, np.zeros(8, np.float32))], [], [])
    rust = export(BasicPolicy(4, 2, 8, (8,)))
    with pytest.raises(ValueError, match="features"):
        rust.forward_dense(np.zeros((2, 5), dtype=np.float32))
