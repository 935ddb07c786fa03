"""Shared fixtures: compiled examples in a private build cache for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory) -> Path:
    path = Path(os.environ.get("TWISTERL_TEST_CACHE") or tmp_path_factory.mktemp("twisterl-cache"))
    old = os.environ.get("TWISTERL_CACHE_DIR")
    os.environ["TWISTERL_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TWISTERL_CACHE_DIR", None)
    else:
        os.environ["TWISTERL_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def compiled(build_cache):
    """`compiled("puzzle")` -> the EnvClass of examples/puzzle.twl, built once per session."""
    import twisterl

    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = twisterl.compile(ROOT / "examples" / f"{name}.twl")
        return cache[name]

    return get
