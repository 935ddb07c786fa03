"""The Rust forward pass equals the torch forward pass, for every supported architecture."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from twisterl.train.nets import (BasicPolicy, ConvPolicy, GaussianPolicy, InputLayer, ResidualBlock,  # noqa: E402
                                 SparseObs, build_policy, describe_policy, to_rust)


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
    rust = to_rust(net)
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
    rust = to_rust(net)
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
        to_rust(Conv())
    with pytest.raises(TypeError, match="only GELU"):
        to_rust(_gelu_exact())
    with pytest.raises(TypeError, match="cannot be exported: use BasicPolicy"):
        to_rust(nn.Linear(3, 3))


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
    with pytest.raises(ValueError, match="expects 4 inputs but receives 5"):
        _core.Policy(5, [("linear", w, np.zeros(8, np.float32))], [], [])
    rust = to_rust(BasicPolicy(4, 2, 8, (8,)))
    with pytest.raises(ValueError, match="features"):
        rust.forward_dense(np.zeros((2, 5), dtype=np.float32))


def _randomise(net):
    torch.manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize("channels", [(8,), (6, 4)])
def test_conv_policy_on_planes(channels):
    net = _randomise(ConvPolicy((3, 6, 7), 7, channels=channels, common_layers=(32,)))
    rust = to_rust(net)
    x = (np.random.default_rng(4).random((13, 3 * 6 * 7)) < 0.3).astype(np.float32)
    t_logits, t_values = net(torch.from_numpy(x))
    r_logits, r_values = rust.forward_dense(x)
    close(r_logits, t_logits)
    close(r_values, t_values)


class StridedConv(nn.Module):
    """Strided, unpadded and rectangular kernels, a residual MLP block, LayerNorm."""

    obs_shape = (2, 9, 8)

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(2, 5, (3, 2), stride=(2, 1), padding=(1, 0)), nn.Tanh(),
                                   nn.Conv2d(5, 4, 2, stride=2, bias=False), nn.ReLU(), nn.Flatten(),
                                   nn.Linear(4 * 2 * 3, 24), nn.LayerNorm(24),
                                   ResidualBlock(24, "gelu"), ResidualBlock(24, body=nn.Sequential(
                                       nn.Linear(24, 24), nn.ReLU(), ResidualBlock(24, "tanh"))))
        self.policy_head = nn.Linear(24, 3)
        self.value_head = nn.Sequential(nn.Linear(24, 4), nn.Tanh(), nn.Linear(4, 1))

    def forward(self, x):
        h = self.trunk(x.reshape(-1, *self.obs_shape))
        return self.policy_head(h), self.value_head(h).squeeze(-1)


def test_strided_conv_and_nested_residual_blocks():
    net = _randomise(StridedConv())
    rust = to_rust(net)
    x = np.random.default_rng(5).normal(size=(11, 2 * 9 * 8)).astype(np.float32)
    t_logits, t_values = net(torch.from_numpy(x))
    r_logits, r_values = rust.forward_dense(x)
    close(r_logits, t_logits)
    close(r_values, t_values)


def test_gaussian_policy_has_separate_actor_and_critic():
    net = _randomise(GaussianPolicy(3, 2, hidden=(16, 8)))
    rust = to_rust(net)
    x = np.random.default_rng(6).normal(size=(9, 3)).astype(np.float32)
    t_mean, t_values = net(torch.from_numpy(x))
    r_mean, r_values = rust.forward_dense(x)
    close(r_mean, t_mean)
    close(r_values, t_values)


def test_default_networks_by_env_kind():
    assert isinstance(build_policy(describe_policy("sparse", (81,), 4, False, 64, [32])), BasicPolicy)
    assert isinstance(build_policy(describe_policy("dense", (4,), 2, False, 64, [32])), BasicPolicy)
    conv = build_policy(describe_policy("planes", (2, 6, 7), 7, False, 64, [32], conv_channels=[8]))
    assert isinstance(conv, ConvPolicy) and conv.obs_shape == (2, 6, 7)
    gauss = build_policy(describe_policy("dense", (3,), 1, True, 64, [64]))
    assert isinstance(gauss, GaussianPolicy) and gauss.log_std.shape == (1,)
    with pytest.raises(ValueError, match="unknown policy kind"):
        build_policy({"kind": "transformer"})


def test_bad_layer_geometry_is_refused_clearly():
    class FlatConv(nn.Module):
        obs_size = 12

        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Conv2d(1, 2, 3))
            self.policy_head = nn.Linear(2, 2)
            self.value_head = nn.Linear(2, 1)

    with pytest.raises(TypeError, match="Conv2d needs channels-first planes"):
        to_rust(FlatConv())

    class MissingFlatten(nn.Module):
        obs_shape = (1, 4, 4)

        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(8, 4))
            self.policy_head = nn.Linear(4, 2)
            self.value_head = nn.Linear(4, 1)

    with pytest.raises(TypeError, match="add nn.Flatten"):
        to_rust(MissingFlatten())

    class Widening(nn.Module):
        obs_size = 4

        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(ResidualBlock(4, body=nn.Linear(4, 5)))
            self.policy_head = nn.Linear(4, 2)
            self.value_head = nn.Linear(4, 1)

    with pytest.raises(TypeError, match="must keep the shape"):
        to_rust(Widening())

    class Dilated(nn.Module):
        obs_shape = (1, 5, 5)

        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2))
            self.policy_head = nn.Linear(1, 2)
            self.value_head = nn.Linear(1, 1)

    with pytest.raises(TypeError, match="dilation"):
        to_rust(Dilated())


def test_actor_critic_networks():
    from twisterl.train.nets import ActorCritic
    net = build_policy(describe_policy("dense", (4,), 2, False, 64, [64], activation="tanh", network="actor_critic"))
    assert isinstance(net, ActorCritic) and not hasattr(net, "log_std")
    _randomise(net)
    x = np.random.default_rng(7).normal(size=(5, 4)).astype(np.float32)
    t_logits, t_values = net(torch.from_numpy(x))
    r_logits, r_values = to_rust(net).forward_dense(x)
    close(r_logits, t_logits)
    close(r_values, t_values)
    with pytest.raises(ValueError, match="needs a dense observation"):
        describe_policy("sparse", (81,), 4, False, 64, [64], network="actor_critic")
    with pytest.raises(ValueError, match="network must be"):
        describe_policy("dense", (4,), 2, False, 64, [64], network="transformer")
