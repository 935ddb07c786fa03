"""The `twisterl` command line: `main.py` parses and maps errors to exit codes, and each
command's module prints what the library returns."""

from .main import main

__all__ = ["main"]
