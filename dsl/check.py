from .ir import Env
def check_module(m, s): return [], None
