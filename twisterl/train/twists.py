"""Symmetries as permutations, and policies averaged over them.

An env's `symmetry` blocks give twists: pairs (observation permutation, action
permutation) where feature `i` of an observation becomes feature `obs[i]` of the twisted
one and action `a` becomes action `act[a]`. `twist_group` closes the declared twists under
composition. `TwistAveraged` wraps a Rust policy so that its action distribution is the
mean over the whole group of the distributions of the twisted observations, mapped back;
such a policy is exactly equivariant: twisting the state twists its distribution.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Twist = tuple[np.ndarray, np.ndarray]


def twist_group(twists: Sequence[Twist], limit: int = 4096) -> list[Twist]:
    """The identity and every composition of `twists`, each once."""
    if not twists:
        return []
    obs_size, num_actions = len(twists[0][0]), len(twists[0][1])
    identity = (np.arange(obs_size, dtype=np.uint32), np.arange(num_actions, dtype=np.uint32))
    group = {_key(identity): identity}
    frontier = [identity]
    while frontier:
        nxt = []
        for g in frontier:
            for t in twists:
                # g, then t: feature i goes to g[i], then to t[g[i]].
                h = (np.asarray(t[0], np.uint32)[g[0]], np.asarray(t[1], np.uint32)[g[1]])
                if _key(h) not in group:
                    group[_key(h)] = h
                    nxt.append(h)
                    if len(group) > limit:
                        raise ValueError(f"the symmetries generate more than {limit} twists")
        frontier = nxt
    return list(group.values())


def _key(t: Twist) -> bytes:
    return t[0].tobytes() + b"|" + t[1].tobytes()


def twist_dense(obs: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Dense observations `[n, obs_size]` twisted: feature i moves to perm[i]."""
    out = np.empty_like(obs)
    out[:, perm] = obs
    return out


def twist_indices(indices: np.ndarray, counts: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Sparse observations twisted: each index of a one moves to perm[index]."""
    out = indices.copy()
    live = np.arange(indices.shape[1])[None, :] < counts[:, None]
    out[live] = perm[indices[live]]
    return out


def softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    z = np.where(mask, logits, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


class TwistAveraged:
    """A Rust policy whose action probabilities are averaged over a group of twists."""

    def __init__(self, policy, group: Sequence[Twist]):
        self.policy = policy
        self.group = list(group)

    def probs_dense(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        total = np.zeros(mask.shape, np.float64)
        for perm, act in self.group:
            logits, _ = self.policy.forward_dense(np.ascontiguousarray(twist_dense(obs, perm)))
            total += softmax(logits, twist_dense(mask, act))[:, act]
        return total / len(self.group)

    def probs_sparse(self, indices: np.ndarray, counts: np.ndarray, mask: np.ndarray) -> np.ndarray:
        total = np.zeros(mask.shape, np.float64)
        for perm, act in self.group:
            logits, _ = self.policy.forward_sparse(twist_indices(indices, counts, perm), counts)
            total += softmax(logits, twist_dense(mask, act))[:, act]
        return total / len(self.group)
