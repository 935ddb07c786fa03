#!/usr/bin/env bash
# Make a Rust toolchain that builds for wasm32-unknown-unknown, and print its name.
#
#   runtime/wasm/setup-toolchain.sh        -> prints "stable" or "web" on the last line
#
# 1. The standard route: `rustup target add wasm32-unknown-unknown`.
# 2. Where that cannot reach the network (as on the project's machines): Debian's
#    rustc-web (1.96) with its vendored std sources builds a wasm32 std offline, which is
#    then linked as the rustup toolchain `web` (`cargo +web build --target wasm32-...`).
# Plain `cargo` stays on stable, so native builds are not affected.
set -euo pipefail
TARGET=wasm32-unknown-unknown
TC=${TWISTERL_WASM_TOOLCHAIN:-$HOME/.cache/twisterl/wasm-toolchain}
say() { echo "setup-toolchain: $*" >&2; }

has_std() {  # toolchain -> whether it has a wasm32 std
  local dir
  dir=$(rustup run "$1" rustc --print target-libdir --target $TARGET 2>/dev/null) || return 1
  compgen -G "$dir/libstd-*.rlib" > /dev/null
}

# TWISTERL_WASM_ROUTE=debian skips the rustup route (to test the fallback).
if [[ ${TWISTERL_WASM_ROUTE:-} != debian ]]; then
  if has_std stable; then echo stable; exit 0; fi
  if rustup target add $TARGET > /dev/null 2>&1 && has_std stable; then
    say "installed the $TARGET target with rustup"; echo stable; exit 0
  fi
fi
if rustup toolchain list 2>/dev/null | grep -q '^web' && has_std web; then echo web; exit 0; fi

say "rustup cannot fetch the $TARGET std here; building one from Debian's rustc-web"
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
if ! dpkg -s rustc-web rust-web-src lld-22 > /dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends rustc-web cargo-web rust-web-src lld-22 binaryen > /dev/null
fi
if dpkg -s libstd-rust-dev-wasm32 > /dev/null 2>&1; then
  say "removing libstd-rust-dev-wasm32: its old libraries break rustc-web builds"
  $SUDO apt-get purge -y -qq libstd-rust-dev-wasm32 > /dev/null
fi
SRC=/usr/lib/rustlib/src/rust
[[ -d $SRC/library/vendor ]] || { say "rust-web-src is missing $SRC/library/vendor"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/stub/src"
printf '[package]\nname = "stub"\nversion = "0.0.0"\nedition = "2021"\n[lib]\npath = "src/lib.rs"\n' > "$work/stub/Cargo.toml"
echo '#![no_std]' > "$work/stub/src/lib.rs"
say "building the $TARGET std (about 30 s)"
( cd "$work/stub" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
  RUSTFLAGS="-Cembed-bitcode=yes -Zforce-unstable-if-unmarked" \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld \
  /usr/bin/cargo build -q --release --target $TARGET \
    -Zbuild-std=std,panic_abort,panic_unwind,proc_macro \
    --config "source.crates-io.replace-with='rust-src-vendor'" \
    --config "source.rust-src-vendor.directory='$SRC/library/vendor'" )

rm -rf "$TC"
mkdir -p "$TC/bin" "$TC/lib/rustlib/$TARGET/lib" "$TC/lib/rustlib/x86_64-unknown-linux-gnu/bin" "$TC/lib/rustlib/src"
printf '#!/bin/sh\nexec /usr/bin/rustc --sysroot=%s "$@"\n' "$TC" > "$TC/bin/rustc"
chmod +x "$TC/bin/rustc"
ln -s /usr/bin/cargo "$TC/bin/cargo"
ln -s /usr/bin/rustdoc "$TC/bin/rustdoc"
for lib in "$work"/stub/target/$TARGET/release/deps/*.rlib; do
  case $(basename "$lib") in libstub-*) ;; *) cp "$lib" "$TC/lib/rustlib/$TARGET/lib/" ;; esac
done
ln -s /usr/lib/rustlib/x86_64-unknown-linux-gnu/lib "$TC/lib/rustlib/x86_64-unknown-linux-gnu/lib"
ln -s /usr/lib/llvm-22/bin/lld "$TC/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
ln -s "$(readlink -f $SRC)" "$TC/lib/rustlib/src/rust"
rustup toolchain link web "$TC"
has_std web || { say "the web toolchain still has no $TARGET std"; exit 1; }
say "linked the rustup toolchain 'web' at $TC"
echo web
