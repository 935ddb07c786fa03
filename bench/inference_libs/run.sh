#!/usr/bin/env bash
# Build and run the inference-library comparison (see README.md).
#
#   bench/inference_libs/run.sh            # native benchmark + both wasm size probes
#   bench/inference_libs/run.sh --quick    # shorter timing windows
#   NO_TRACT=1 bench/inference_libs/run.sh # ours vs candle only (skips tract's build)
#   SKIP_WASM=1 ...                        # native benchmark only
#
# Builds are niced and use one job (the machines are shared); the target dir is outside
# the repository. The benchmark itself runs single-threaded (RAYON_NUM_THREADS=1).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/inference_libs_target}
JOBS=${JOBS:-1}
build() { nice -n 19 cargo "$@" -j "$JOBS"; }

features=()
[[ -n ${NO_TRACT:-} ]] && features=(--no-default-features)
build build --release "${features[@]}"
RAYON_NUM_THREADS=1 "$CARGO_TARGET_DIR/release/inference_bench" "$@"

[[ -n ${SKIP_WASM:-} ]] && exit 0

# Wasm size probes: a cdylib each, exporting forward_puzzle(seed, batch).
TC=${WASM_TOOLCHAIN:-}
if [[ -z $TC ]]; then
  if [[ -d $(rustup run stable rustc --print target-libdir --target wasm32-unknown-unknown 2>/dev/null) ]] &&
     compgen -G "$(rustup run stable rustc --print target-libdir --target wasm32-unknown-unknown)/libstd-*.rlib" > /dev/null; then
    TC=stable
  else
    TC=$(../../runtime/wasm/setup-toolchain.sh | tail -1)
  fi
fi
WT="$CARGO_TARGET_DIR/wasm"  # its own dir, so it can build while the native one is locked
echo
echo "wasm32-unknown-unknown, toolchain '$TC':"
printf '| probe | profile | .wasm bytes | wasm-opt --all-features -Oz | wasm-opt -Oz (rustc default features + simd) | gzip -9 of that |\n|---|---|---:|---:|---:|---:|\n'
FEATS="--enable-simd --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals --enable-multivalue --enable-reference-types"
outs=()
for probe in wasm_ours wasm_candle; do
  for profile in release size; do
    (cd "$probe" && CARGO_TARGET_DIR=$WT build "+$TC" build --profile "$profile" --target wasm32-unknown-unknown -q)
    f="$WT/wasm32-unknown-unknown/$profile/$probe.wasm"
    all=-; mvp=-; gz=-
    if command -v wasm-opt > /dev/null; then
      wasm-opt --all-features -Oz "$f" -o "$f.all-Oz" 2> /dev/null && all=$(stat -c %s "$f.all-Oz")
      wasm-opt $FEATS -Oz "$f" -o "$f.Oz" 2> /dev/null && mvp=$(stat -c %s "$f.Oz") && outs+=("$f.Oz") &&
        gz=$(gzip -9 -c "$f.Oz" | wc -c)
    fi
    printf '| %s | %s | %s | %s | %s | %s |\n' "$probe" "$profile" "$(stat -c %s "$f")" "$all" "$mvp" "$gz"
    outs+=("$f")
  done
done
if command -v node > /dev/null; then
  echo
  node wasm_check.mjs "${outs[@]}"
fi
