"""Stage 3: typed IR -> Rust. `lower.py` decides, `templates/` place, `emit.py` formats."""

from .emit import emit_rust, write_crate

__all__ = ["emit_rust", "write_crate"]
