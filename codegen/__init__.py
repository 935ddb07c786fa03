"""Stage 3: typed IR -> Rust. `lower.py` decides, `templates/` place, `emit.py` formats."""

__all__ = ["emit_rust", "write_crate"]


def __getattr__(name):
    if name in __all__:
        from . import emit
        return getattr(emit, name)
    raise AttributeError(name)
