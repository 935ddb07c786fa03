"""TwisteRL: reinforcement-learning environments written in the .twl language."""

from .dsl import check_file, check_source

__all__ = ["check_file", "check_source"]
__version__ = "0.1.0"
