"""The code generator's version: part of every build's cache key."""

GENERATOR_VERSION = "0.1.0"
