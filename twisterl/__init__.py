"""TwisteRL: reinforcement-learning environments written in the .twl language.

    import twisterl
    Puzzle = twisterl.compile("examples/puzzle.twl")
    env = Puzzle(size=3, difficulty=5)
    obs, info = env.reset(seed=0)
"""

__version__ = "0.1.0"

# Submodules the docs use as `twisterl.<name>.…`: imported on first use (PEP 562), so
# `import twisterl` stays fast and `twisterl.gym.register(...)` works after it alone.
_SUBMODULES = frozenset({"agents", "build", "cli", "codegen", "dsl", "envs", "gym", "hub", "pettingzoo", "search",
                         "train", "wasm", "_core"})


def __getattr__(name):
    if name in _SUBMODULES:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    if name in ("check_file", "check_source"):
        from . import dsl
        return getattr(dsl, name)
    # The compiled runtime is imported only when it is used, so `twisterl check` works
    # even where the native module could not be built.
    if name in ("BuildError", "CacheError"):
        from . import build
        return getattr(build, name)
    if name in ("compile", "CheckError", "EnvError", "EnvClass", "Env", "VectorEnv", "TooLargeError"):
        from . import envs
        return getattr(envs, name)
    if name in ("load", "Pretrained"):  # the Hugging Face Hub, bundle folders and run dirs (twisterl[hub])
        from . import hub
        return getattr(hub, name)
    if name in ("mcts", "solve", "SearchResult"):
        from . import search
        return getattr(search, name)
    raise AttributeError(f"module 'twisterl' has no attribute {name!r}")


__all__ = ["check_file", "check_source", "compile", "CheckError", "BuildError", "CacheError", "EnvError",
           "EnvClass", "Env", "VectorEnv", "TooLargeError", "mcts", "solve", "SearchResult", "load", "Pretrained"]
