"""The .twl front end: text -> source AST -> typed IR, with compiler-grade diagnostics.

    parse (parse.py) -> check (check.py) -> ir.Env

`check_source` and `check_file` run the whole front end.
"""

from .api import CheckResult, check_bytes, check_file, check_source
from .diagnostics import Diagnostic, Source, Span, TwlError

__all__ = ["check_bytes", "CheckResult", "Diagnostic", "Source", "Span", "TwlError", "check_file", "check_source"]
