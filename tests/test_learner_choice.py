"""`learner: auto` picks the faster learner for the run's network by timing one minibatch
update in each, once per machine (the choice is cached), and says why."""

from __future__ import annotations

import json

import pytest

from twisterl.train import learner_choice
from twisterl.train.learner_choice import MARGIN, decide, synthetic_rollout, time_rust

DESC = {"kind": "basic", "obs_size": 81, "num_actions": 4, "embedding_size": 64, "common_layers": [64],
        "activation": "relu"}


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A build cache of the test's own, so that other tests' runs leave no choices in it."""
    monkeypatch.setenv("TWISTERL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_auto_times_both_learners_once_and_reuses_the_measurement(own_cache):
    pytest.importorskip("torch")
    first = decide(DESC, 256, 1, 1, sparse=True, nnz=9)
    assert first.rust_ms > 0 and first.torch_ms > 0
    assert first.learner == ("torch" if first.torch_ms < first.rust_ms * (1 - MARGIN) else "rust")
    assert "256-row minibatch" in first.reason and "measured now" in first.reason
    again = decide(DESC, 256, 1, 1, sparse=True, nnz=9)
    assert (again.learner, again.rust_ms, again.torch_ms) == (first.learner, first.rust_ms, first.torch_ms)
    assert "measured before on this machine" in again.reason
    # Another network, minibatch or thread count is measured on its own.
    other = decide(DESC, 128, 1, 1, sparse=True, nnz=9)
    assert "measured now" in other.reason
    saved = json.loads((own_cache / learner_choice.CACHE_FILE).read_text())
    assert len(saved) == 2


def test_a_corrupt_choice_cache_is_measured_again(own_cache):
    pytest.importorskip("torch")
    own_cache.mkdir()
    path = own_cache / learner_choice.CACHE_FILE
    for junk in ("{not json", "[1, 2]", json.dumps({"x": {"rust_ms": "fast", "torch_ms": -1}})):
        path.write_text(junk)
        d = decide(DESC, 64, 1, 1, sparse=True, nnz=9)
        assert "measured now" in d.reason and d.rust_ms > 0
        assert len(json.loads(path.read_text())) == 1


def test_without_torch_auto_is_rust_and_needs_no_timing(monkeypatch):
    from twisterl.train import networks
    monkeypatch.setattr(networks, "torch_available", lambda: False)
    d = decide(DESC, 4096, 2, 2, sparse=True, nnz=9)
    assert (d.learner, d.reason, d.rust_ms) == ("rust", "torch is not installed", None)


def test_the_timing_runs_every_network_kind():
    from twisterl.train.netspec import describe_policy
    kinds = [describe_policy("sparse", [81], 4, False, 32, [32]),
             describe_policy("planes", [2, 4, 4], 5, False, 16, [16], conv_channels=[4]),
             describe_policy("dense", [6], 3, False, 16, [16], network="actor_critic"),
             describe_policy("dense", [3], 2, True, 16, [16])]
    for desc in kinds:
        sparse = desc["kind"] == "basic"
        assert time_rust(desc, synthetic_rollout(desc, 32, sparse, 9), 1) > 0, desc


def test_the_run_header_says_why_auto_chose(tmp_path, build_cache, capsys):
    pytest.importorskip("torch")
    from twisterl.cli.main import main
    from wasm_support import ROOT
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"num_envs": 16, "num_steps": 8, "embedding_size": 32, "common_layers": [32]}))
    assert main(["train", str(ROOT / "examples" / "puzzle.twl"), "--config", str(config), "--iterations", "1",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "minibatch update took" in out and "(auto: " in out
    assert main(["train", str(ROOT / "examples" / "puzzle.twl"), "--config", str(config), "--iterations", "1",
                 "--learner", "rust", "--out", str(tmp_path / "run2")]) == 0
    assert "(auto: " not in capsys.readouterr().out


def test_huge_minibatches_are_timed_at_a_bounded_size(own_cache):
    pytest.importorskip("torch")
    d = decide(DESC, 10_000_000, 1, 1, sparse=True, nnz=9)
    assert f"{learner_choice.MAX_ROWS}-row minibatch" in d.reason
