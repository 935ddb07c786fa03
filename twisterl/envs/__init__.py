"""Compiled environments: `compile` turns a .twl file into an `EnvClass`, whose instances
are Gymnasium-style `Env`s and whose `vector(...)` is a batched `VectorEnv`."""

from .compiler import CheckError, compile
from .env import Env, EnvClass, EnvError, TooLargeError, VectorEnv

__all__ = ["CheckError", "compile", "Env", "EnvClass", "EnvError", "TooLargeError", "VectorEnv"]
