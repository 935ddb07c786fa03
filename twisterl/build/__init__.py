"""The build stage: generated Rust to a native plugin through cargo, kept in a
content-addressed cache that is verified before every load (see `cache.py`)."""

from .cache import (MANIFEST, BuildError, Built, CacheError, Manifest, build, cache_dir, cache_key, cached_library,
                    cargo_failure, core_source_dir, lookup, spec_sha256)

__all__ = ["MANIFEST", "BuildError", "Built", "CacheError", "Manifest", "build", "cache_dir", "cache_key",
           "cached_library", "cargo_failure", "core_source_dir", "lookup", "spec_sha256"]
