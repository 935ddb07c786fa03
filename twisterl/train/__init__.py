"""Training: the PPO and AlphaZero learners (`ppo.py`, `alphazero.py`, their configs in
`ppo_config.py` and `az_config.py`), one run driver for both (`driver.py`), run dirs and
checkpoints (`rundir.py`, `checkpoints.py`), networks (`nets.py`), evaluation
(`evaluation.py`, `run_eval.py`), symmetries (`twists.py`), progress (`monitor.py`),
hyperparameter search (`tune.py`) and training on Ray (`distributed.py`, `ray_workers.py`,
`ray_config.py`, `tune_ray.py`: the `ray` extra). Needs the `train` extra (torch).

Submodules are imported where they are used; this package imports none of them, so a
config can be checked without torch."""


def __getattr__(name: str):
    """`twisterl.train.nets` and the other submodules, imported on first use (PEP 562)."""
    import importlib
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
