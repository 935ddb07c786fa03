"""WebAssembly: `export.py` builds an env (and a trained policy) into a wasm-pack package,
a raw C-ABI module and a static browser player; `doctor` checks the tools it needs."""
