#!/usr/bin/env bash
# Install the tools `twisterl export --wasm` and its tests need, at pinned versions:
#
#   runtime/wasm/setup-tools.sh            # wasm-bindgen-cli, wasm-pack, binaryen (wasm-opt)
#   runtime/wasm/setup-tools.sh --browser  # and Debian's chromium, for the browser tests
#
# The wasm32 toolchain itself comes from runtime/wasm/setup-toolchain.sh. Each step is
# skipped when the right version is already there; `twisterl doctor --wasm` checks them all.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { echo "setup-tools: $*" >&2; }

# The versions live in twisterl/wasm/export.py and codegen/wasm.py (the crate and the CLI must match).
BINDGEN=$(sed -n 's/^WASM_BINDGEN_VERSION = "\(.*\)"/\1/p' codegen/wasm.py)
PACK=$(sed -n 's/^WASM_PACK_VERSION = "\(.*\)"/\1/p' twisterl/wasm/export.py)
[[ -n $BINDGEN && -n $PACK ]] || { say "could not read the pinned versions"; exit 1; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

version_of() { "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1; }

if [[ $(version_of wasm-bindgen) != "$BINDGEN" ]]; then
  say "installing wasm-bindgen-cli $BINDGEN from crates.io (a few minutes)"
  cargo install wasm-bindgen-cli --version "$BINDGEN" --locked --quiet
fi
if [[ $(version_of wasm-pack) != "$PACK" ]]; then
  # The npm package downloads a binary from GitHub at install time; this builds from source.
  say "installing wasm-pack $PACK from crates.io (a few minutes)"
  cargo install wasm-pack --version "$PACK" --locked --quiet
fi

apt_install() {
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "$@" > /dev/null
}
if ! command -v wasm-opt > /dev/null; then
  say "installing binaryen (wasm-opt) with apt"
  apt_install binaryen
fi
if [[ ${1:-} == --browser ]] && ! command -v chromium > /dev/null; then
  say "installing Debian's chromium with apt (the browser tests drive it with Playwright)"
  apt_install chromium
fi
say "wasm-bindgen $(version_of wasm-bindgen), wasm-pack $(version_of wasm-pack), $(wasm-opt --version)"
