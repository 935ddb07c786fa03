"""The Python face of compiled environments: single envs, vector envs and their errors.

`twisterl.compile("examples/puzzle.twl")` returns an `EnvClass`; calling it with params
makes one Gymnasium-style `Env`, and `EnvClass.vector(...)` makes a batched `VectorEnv`
stepped in Rust on several threads.
"""

from __future__ import annotations

import difflib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import gymnasium
import numpy as np

from .. import _core

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
#: Most threads one batch may use (the runtime refuses more).
MAX_THREADS = 256


class EnvError(RuntimeError):
    """A run-time fault inside an environment (an index out of bounds, a value leaving its
    declared range, an illegal action...), with the `.twl` file and line it comes from."""

    def __init__(self, message: str, kind: str = "", path: str = "", line: int = 0, col: int = 0,
                 env_index: int = -1):
        super().__init__(message)
        self.kind, self.path, self.line, self.col, self.env_index = kind, path, line, col, env_index


class TooLargeError(MemoryError, ValueError):
    """A batch or array that cannot fit in this machine's memory, refused before allocating."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str  # int, float, bool, or enum:A,B,C
    default: Any
    lo: Optional[float]
    hi: Optional[float]


class EnvClass:
    """A compiled environment kind: make instances with `cls(**params)` or `cls.vector(...)`."""

    def __init__(self, plugin: Any, source_path: str, source_text: str, library: Path):
        self._plugin = plugin
        self.spec: dict = json.loads(plugin.spec)
        self.name: str = self.spec["name"]
        self.source_path = source_path
        self._lines = source_text.split("\n")
        self.library = library
        self.params: dict[str, ParamSpec] = {
            p["name"]: ParamSpec(p["name"], p["type"], p["default"], p["lo"], p["hi"]) for p in self.spec["params"]}
        self.players: int = plugin.players
        self.continuous: bool = plugin.continuous
        self.curriculum: bool = bool(self.spec.get("curriculum")) and self.players == 1
        """whether training can climb a curriculum: a single-player env whose dynamics read `difficulty`"""

    def __repr__(self) -> str:
        return f"<twisterl env {self.name} from {self.source_path}>"

    def __call__(self, *, difficulty: int = 0, seed: Optional[int] = None, illegal_action: str = "raise",
                 max_episode_steps: int = 0, **params: Any) -> "Env":
        """One env. `max_episode_steps` truncates episodes after that many steps, on top of
        the env's own endings (0: only those), like Gymnasium's `TimeLimit`."""
        env = Env(self, params, difficulty, seed, illegal_action)
        env.set_max_episode_steps(max_episode_steps)
        return env

    def vector(self, num_envs: int, *, seed: int = 0, num_threads: int = 1, difficulty: int = 0,
               autoreset: bool = True, max_episode_steps: int = 0, **params: Any) -> "VectorEnv":
        """`num_envs` envs stepped together (see `VectorEnv`); `max_episode_steps` as for one env."""
        vec = VectorEnv(self, num_envs, seed, num_threads, difficulty, autoreset, params)
        vec.set_max_episode_steps(max_episode_steps)
        return vec

    # ------------------------------------------------------------ helpers shared by envs

    def param_vector(self, params: dict[str, Any]) -> list[int | float]:
        """The values of every param, in declaration order: ints (ints, bools, enum
        variant numbers) as Python ints, floats as floats, each checked."""
        unknown = [k for k in params if k not in self.params]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(self.params), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            known = ", ".join(self.params) or "none"
            raise TypeError(f"{self.name} has no param `{unknown[0]}`{hint} (its params: {known})")
        values = []
        for spec in self.params.values():
            v = params.get(spec.name, spec.default)
            values.append(self._param_value(spec, v))
        return values

    def _param_value(self, spec: ParamSpec, v: Any) -> int | float:
        where = f"param `{spec.name}` of {self.name}"
        if spec.type.startswith("enum:"):
            variants = spec.type[5:].split(",")
            if isinstance(v, str):
                if v not in variants:
                    raise ValueError(f"{where} must be one of {', '.join(variants)}, not {v!r}")
                return variants.index(v)
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < len(variants):
                return int(v)
            raise ValueError(f"{where} must be one of {', '.join(variants)}, not {v!r}")
        if spec.type == "bool":
            if isinstance(v, (bool, np.bool_)):
                return int(bool(v))
            raise TypeError(f"{where} must be a bool, not {type(v).__name__} {v!r}")
        if spec.type == "int":
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                if isinstance(v, float) and v.is_integer() and abs(v) <= 2**53:
                    v = int(v)
                else:
                    raise TypeError(f"{where} must be an int, not {type(v).__name__} {v!r}")
            v = int(v)
            if not I64_MIN <= v <= I64_MAX:
                raise ValueError(f"{where} must fit in 64 bits ({I64_MIN}..={I64_MAX}), not {v}")
            # An unbounded side is stored as the i64 limit; it bounds nothing.
            lo = None if spec.lo is None or spec.lo <= I64_MIN else int(spec.lo)
            hi = None if spec.hi is None or spec.hi >= I64_MAX else int(spec.hi)
            if (lo is not None and v < lo) or (hi is not None and v >= hi):
                shown = f"{'' if lo is None else lo}..{'' if hi is None else hi}"
                raise ValueError(f"{where} must be in {shown} (hi excluded), not {v}")
            return v
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{where} must be a number, not {type(v).__name__} {v!r}")
        try:
            f = float(v)
        except OverflowError:
            raise ValueError(f"{where} must be a finite float, not {v}") from None
        if not np.isfinite(f):
            raise ValueError(f"{where} must be a finite float, not {v}")
        if (spec.lo is not None and f < spec.lo) or (spec.hi is not None and f > spec.hi):
            raise ValueError(f"{where} must be in [{spec.lo}, {spec.hi}], not {v}")
        return f

    def translate(self, exc: RuntimeError) -> EnvError:
        """A `_core` fault as an `EnvError` naming the `.twl` file and line."""
        if not isinstance(exc, _core.EnvFault):
            return EnvError(str(exc))
        message, kind, line, col, env_index = exc.message, exc.kind, exc.line, exc.col, exc.env
        if kind == "BadParam" and 0 <= exc.a < len(self.params):
            name = list(self.params)[exc.a]
            message = f"param `{name}` of {self.name} has a value the env cannot take"
        if line:
            text = self._lines[line - 1].rstrip() if 0 < line <= len(self._lines) else ""
            caret = " " * (col - 1) + "^" if col else ""
            full = f"{self.source_path}:{line}:{col}: {message}\n    {text}\n    {caret}"
        else:
            full = message
        if env_index >= 0 and kind not in ("BadParam",):
            full += f"\n(in env {env_index})" if env_index else ""
        return EnvError(full, kind, self.source_path, line, col, env_index)

    def create(self, params: dict, num_envs: int, seed: int, num_threads: int):
        values = self.param_vector(params)
        if isinstance(num_envs, (bool, np.bool_)) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, not {num_envs!r}")
        if isinstance(num_threads, (bool, np.bool_)) or not isinstance(num_threads, (int, np.integer)) \
                or not 1 <= num_threads <= MAX_THREADS:
            raise ValueError(f"num_threads must be an int in 1..={MAX_THREADS} (this machine has "
                             f"{os.cpu_count()} cores), not {num_threads!r}")
        seed = _check_seed(seed)
        try:
            if num_envs > 1024:
                self._check_memory(values, int(num_envs), seed)
            return self._plugin.create(values, int(num_envs), seed, int(num_threads))
        except RuntimeError as exc:
            error = self.translate(exc)
            if error.kind == "BadParam":
                raise ValueError(f"invalid params for {self.name}: {error}") from None
            raise error from None

    def _check_memory(self, values: list, num_envs: int, seed: int) -> None:
        """Refuse, before allocating, a batch that cannot fit in this machine's memory."""
        probe = self._plugin.create(values, 1, seed, 1)
        _, num_actions, obs_size, _, _ = probe.sizes
        # The envs themselves, plus the arrays one step returns for each.
        per_env = probe.env_bytes + 4 * obs_size + num_actions + 8 * self.players + 32
        need = per_env * num_envs
        have = _physical_memory()
        if have and need > have:
            raise TooLargeError(f"{self.name}.vector({num_envs}) would need about {_human_bytes(need)} "
                              f"({per_env} bytes per env), more than this machine's {_human_bytes(have)} of memory")

    def spaces(self, batch) -> tuple[Any, Any]:
        import gymnasium.spaces as spaces
        _, num_actions, obs_size, _, _ = batch.sizes
        if self.continuous:
            lows, highs = batch.value_bounds()
            action_space = spaces.Box(lows.astype(np.float32), highs.astype(np.float32), dtype=np.float32)
        else:
            action_space = spaces.Discrete(num_actions)
        kind = self.spec["observation"]["kind"]
        if kind == "planes":
            shape = tuple(int(x) for x in self.obs_shape(batch))
            observation_space = spaces.Box(0.0, 1.0, shape, dtype=np.float32)
        elif kind == "sparse":
            observation_space = spaces.Box(0.0, 1.0, (obs_size,), dtype=np.float32)
        else:
            observation_space = spaces.Box(-np.inf, np.inf, (obs_size,), dtype=np.float32)
        return action_space, observation_space

    def obs_shape(self, batch) -> tuple[int, ...]:
        _, _, obs_size, _, _ = batch.sizes
        if self.spec["observation"]["kind"] != "planes":
            return (obs_size,)
        return tuple(int(d) for d in batch.obs_shape)  # channels x rows x cols for these params


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} EB"


def nonnegative_int(name: str, value: Any) -> int:
    """`value` as an int in 0..=2**63-1, or a ValueError naming `name` (a bool, a float or
    a string is refused, not converted)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value <= I64_MAX:
        raise ValueError(f"{name} must be a non-negative int, not {value!r}")
    return int(value)


def check_difficulty(difficulty: Any) -> int:
    """A difficulty is a non-negative int."""
    return nonnegative_int("difficulty", difficulty)


def _check_seed(seed: Any) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0 or seed >= 2**64:
        raise ValueError(f"a seed must be an int in 0..2**64, not {seed!r}")
    return int(seed)


class _Calls:
    """Calls into the runtime, with its faults re-raised as `EnvError`s."""

    cls: EnvClass

    def set_max_episode_steps(self, steps: int) -> None:
        """Truncate episodes after `steps` steps on top of the env's own endings (0: only those)."""
        self._batch.set_step_limit(nonnegative_int("max_episode_steps", steps))

    @property
    def batch(self):
        """The runtime batch behind this env (a `twisterl._core.Batch`), for the runtime's own
        calls: rollouts, search and games. Stepping it directly bypasses this object's checks."""
        return self._batch

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as exc:
            raise self.cls.translate(exc) from None


class Env(_Calls, gymnasium.Env):
    """One environment with the Gymnasium API.

    `reset(seed=...)` returns `(obs, info)`; `step(action)` returns
    `(obs, reward, terminated, truncated, info)`. `info["action_mask"]` is the mask.
    A masked-out action raises `EnvError`, or with `illegal_action="noop"` is a step
    that changes nothing (for tools that sample actions without masks).
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, cls: EnvClass, params: dict, difficulty: int, seed: Optional[int],
                 illegal_action: str = "raise"):
        if illegal_action not in ("raise", "noop"):
            raise ValueError(f"illegal_action must be 'raise' or 'noop', not {illegal_action!r}")
        self._illegal_noop = illegal_action == "noop"
        self.cls = cls
        self.params = {**{k: v.default for k, v in cls.params.items()}, **params}
        self._batch = cls.create(params, 1, 0 if seed is None else seed, 1)
        self._seeded = seed is not None
        self.set_difficulty(difficulty)
        self.action_space, self.observation_space = cls.spaces(self._batch)
        self._shape = cls.obs_shape(self._batch)
        self._started = False
        self._last_player = 0
        self._action = np.zeros(1, dtype=np.int64)
        # One call at a time from Python threads (the runtime also serialises its own).
        self._lock = threading.Lock()
        self.render_mode = "ansi"

    def __repr__(self) -> str:
        return f"<{self.cls.name} env>"

    def set_difficulty(self, difficulty: int) -> None:
        self._batch.set_difficulty(check_difficulty(difficulty))

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        with self._lock:
            return self._reset(seed, options)

    def _reset(self, seed: Optional[int], options: Optional[dict]):
        if seed is not None:
            seed = _check_seed(seed)
        super().reset(seed=seed)
        if seed is not None:
            self._call(self._batch.reseed, seed)
        elif not self._seeded:
            self._call(self._batch.reseed, _check_seed(None))
            self._seeded = True
        if options and "difficulty" in options:
            self.set_difficulty(options["difficulty"])
        self._call(self._batch.reset)
        self._started = True
        return self._observation(), self._info()

    def step(self, action):
        with self._lock:
            return self._step(action)

    def _step(self, action):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actor = self._last_player  # whose move this is; the reward returned is theirs
        try:
            if self.cls.continuous:
                values = np.asarray(action, dtype=np.float64).reshape(1, -1)
                if values.shape[1] != self.action_space.shape[0]:
                    raise ValueError(f"this env takes {self.action_space.shape[0]} action value(s), "
                                     f"not {values.shape[1]}")
                result = self._batch.step_observe(values=values, autoreset=False)
            else:
                self._action[0] = _action_int(action, self.action_space.n)
                result = self._batch.step_observe(actions=self._action, autoreset=False,
                                                  illegal_noop=self._illegal_noop)
        except RuntimeError as exc:
            raise self.cls.translate(exc) from None
        obs, rewards, term, trunc, masks, success, player = result
        self._last_player = int(player[0])
        info = {"success": bool(success[0]), "player": self._last_player, "rewards": rewards[0]}
        if not self.cls.continuous:
            info["action_mask"] = masks[0]
        return obs[0].reshape(self._shape), float(rewards[0, actor]), bool(term[0]), bool(trunc[0]), info

    def _observation(self) -> np.ndarray:
        return self._call(self._batch.observe)[0].reshape(self._shape)

    def observe_indices(self) -> np.ndarray:
        """The sparse observation in compact form: the indices of its ones."""
        idx, counts = self._call(self._batch.observe_sparse)
        return idx[0, : counts[0]].copy()

    def action_mask(self) -> np.ndarray:
        return self._call(self._batch.masks)[0]

    def _info(self) -> dict:
        success, player, steps, _ = self._call(self._batch.status)
        self._last_player = int(player[0])
        info = {"success": bool(success[0]), "player": int(player[0]), "steps": int(steps[0])}
        if not self.cls.continuous:
            info["action_mask"] = self.action_mask()
        return info

    def render(self) -> str:
        return self._call(self._batch.render, 0)

    def twists(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each declared symmetry as (observation permutation, action permutation): feature
        `i` of an observation becomes feature `obs_perm[i]`, action `a` becomes `act_perm[a]`.
        Computed with this instance's params."""
        names = self.cls.spec.get("symmetries", [])
        return {name: self._call(self._batch.twist, 0, k) for k, name in enumerate(names)}

    def action_names(self) -> list[str]:
        """A readable name for each discrete action, in action-number order."""
        if self.cls.continuous:
            return []
        return [self._batch.action_label(0, a) for a in range(self.action_space.n)]

    def get_state(self, named: bool = False) -> np.ndarray | dict[str, Any]:
        """The state as a flat float64 vector: state variables in order, then player and
        steps. With `named=True`, a dict by state name instead (arrays flattened row-major,
        plus `player` and `steps`), which `set_state` also takes."""
        flat = self._call(self._batch.get_state, 0)
        return self._named(flat) if named else flat

    def set_state(self, state: Sequence[float] | dict[str, Any]) -> None:
        """Put a state back: a flat vector as `get_state()` gives, or a dict by state name
        (names left out keep their current values). Like `reset`, it starts an episode:
        endings are judged after each step, even when the state already satisfies `done`."""
        with self._lock:
            if isinstance(state, dict):
                state = self._flatten(state)
            try:
                arr = np.ascontiguousarray(state, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"a state is a flat vector of numbers or a dict by state name; {exc}") from None
            self._call(self._batch.set_state, 0, arr)
            self._info()
            self._started = True

    def _layout(self) -> list[tuple[str, int, str]]:
        """(name, length, type) of each part of the state vector, for this instance."""
        variables = self.cls.spec["state"]
        lengths = self._call(self._batch.state_lengths, 0, len(variables))
        return ([(v["name"], n, v["type"]) for v, n in zip(variables, lengths)]
                + [("player", 1, "int"), ("steps", 1, "int")])

    def _named(self, flat: np.ndarray) -> dict[str, Any]:
        named, k = {}, 0
        for name, n, type_ in self._layout():
            part = flat[k:k + n]
            k += n
            if type_.startswith("["):
                named[name] = part.copy()
            elif type_ == "bool":
                named[name] = bool(part[0])
            elif type_ == "float":
                named[name] = float(part[0])
            else:
                named[name] = int(part[0])
        return named

    def _flatten(self, state: dict[str, Any]) -> np.ndarray:
        layout = self._layout()
        names = [name for name, _, _ in layout]
        unknown = [k for k in state if k not in names]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), names, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise KeyError(f"{self.cls.name} has no state variable `{unknown[0]}`{hint} "
                           f"(its state: {', '.join(names)})")
        flat = self._call(self._batch.get_state, 0)
        k = 0
        for name, n, _ in layout:
            if name in state:
                try:
                    part = np.asarray(state[name], dtype=np.float64).reshape(-1)
                except (TypeError, ValueError):
                    raise TypeError(f"state `{name}` must be a number or an array of numbers, "
                                    f"not {state[name]!r}") from None
                if part.size != n:
                    raise ValueError(f"state `{name}` takes {n} value{'s' if n != 1 else ''}, not {part.size}")
                flat[k:k + n] = part
            k += n
        return flat

    def close(self) -> None:
        pass


def _action_int(action, n: int) -> int:
    if isinstance(action, np.ndarray) and action.shape == ():
        action = action.item()
    if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
        raise TypeError(f"an action must be an int in 0..{n}, not {type(action).__name__} {action!r}")
    if not 0 <= action < n:
        raise ValueError(f"action {action} is outside the action space 0..{n}")
    return int(action)


class VectorEnv(_Calls):
    """`num_envs` envs stepped together in Rust, with same-step auto-reset.

    `step(actions)` returns numpy arrays: obs [n, ...], reward [n], terminated [n],
    truncated [n] and info with `action_mask` [n, A], `rewards` [n, players], `success`.
    When an episode ends, the env is reset at once and the returned obs is the new
    episode's first observation.
    """

    def __init__(self, cls: EnvClass, num_envs: int, seed: int, num_threads: int, difficulty: int,
                 autoreset: bool, params: dict):
        self.cls = cls
        self.num_envs = int(num_envs)
        self.autoreset = autoreset
        difficulty = check_difficulty(difficulty)
        self._batch = cls.create(params, num_envs, seed, num_threads)
        self._batch.set_difficulty(difficulty)
        self.single_action_space, self.single_observation_space = cls.spaces(self._batch)
        self._shape = cls.obs_shape(self._batch)

    def set_difficulty(self, difficulty: int) -> None:
        self._batch.set_difficulty(check_difficulty(difficulty))

    def reset(self, *, seed: Optional[int] = None):
        if seed is not None:
            self._call(self._batch.reseed, _check_seed(seed))
        self._call(self._batch.reset)
        return self.observe(), self._info()

    def step(self, actions):
        """Step every env; one call into Rust steps, resets and observes them all."""
        if self.cls.continuous:
            values = np.ascontiguousarray(actions, dtype=np.float64).reshape(self.num_envs, -1)
            result = self._call(self._batch.step_observe, values=values, autoreset=self.autoreset)
        else:
            acts = np.ascontiguousarray(actions).reshape(-1)
            if acts.dtype.kind not in "iu":
                raise TypeError(f"actions must be integers, not {acts.dtype}")
            result = self._call(self._batch.step_observe, actions=acts.astype(np.int64, copy=False),
                                autoreset=self.autoreset)
        obs, rewards, term, trunc, masks, success, player = result
        info = {"success": success, "player": player, "rewards": rewards}
        if not self.cls.continuous:
            info["action_mask"] = masks
        return obs.reshape((self.num_envs, *self._shape)), rewards[:, 0], term, trunc, info

    def observe(self) -> np.ndarray:
        obs = self._call(self._batch.observe)
        return obs.reshape((self.num_envs, *self._shape))

    def observe_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Sparse observations in compact form: indices [n, nnz_max] and counts [n]."""
        return self._call(self._batch.observe_sparse)

    def _info(self) -> dict:
        success, player, steps, _ = self._call(self._batch.status)
        info = {"success": success, "player": player, "steps": steps}
        if not self.cls.continuous:
            info["action_mask"] = self._call(self._batch.masks)
        return info

    def render(self, i: int = 0) -> str:
        return self._call(self._batch.render, i)

    def twists(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The env's symmetries as (observation permutation, action permutation); see `Env.twists`."""
        names = self.cls.spec.get("symmetries", [])
        return {name: self._call(self._batch.twist, 0, k) for k, name in enumerate(names)}

    def random_steps(self, steps: int, seed: int = 0, observe: bool = False) -> dict:
        """Run `steps` random legal steps in every env, entirely in Rust, resetting finished
        episodes; with `observe`, each new state is also observed, as a training loop would.
        Returns totals: steps, episodes, successes, return_sum, length_sum."""
        keys = ("steps", "episodes", "successes", "return_sum", "length_sum")
        return dict(zip(keys, self._call(self._batch.random_steps, int(steps), _check_seed(seed),
                                         observe=bool(observe))))

    def random_episodes(self, episodes: int, seed: int = 0, max_length: int = 100_000) -> dict:
        """Exactly `episodes` whole episodes of random legal actions, spread over the envs,
        each from a reset, entirely in Rust. An episode still going after `max_length` steps
        is cut (counted in `cut`, not in `episodes`). Returns episodes, cut, steps,
        successes, length_sum and `returns`, the per-player sums of episode returns."""
        return self._call(self._batch.random_episodes, nonnegative_int("episodes", episodes), _check_seed(seed),
                          nonnegative_int("max_length", max_length))

    def close(self) -> None:
        pass
