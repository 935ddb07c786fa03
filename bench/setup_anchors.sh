#!/usr/bin/env bash
# Make the anchors' own virtual environments (their names clash with ours, or they pin
# other versions). Venvs go to $BENCH_VENVS (default ~/.cache/twisterl-bench).
set -euo pipefail
V=${BENCH_VENVS:-$HOME/.cache/twisterl-bench}
mkdir -p "$V"
want=${1:-all}
if [[ $want == all || $want == envpool ]] && [[ ! -x $V/envpool/bin/python ]]; then
  python3 -m venv "$V/envpool" && "$V/envpool/bin/pip" install -q envpool==1.2.5
fi
if [[ $want == all || $want == twisterl ]] && [[ ! -x $V/twisterl/bin/python ]]; then
  python3 -m venv "$V/twisterl" && "$V/twisterl/bin/pip" install -q torch==2.13.0 twisterl==0.5.1
fi
if [[ $want == all || $want == openspiel ]] && [[ ! -x $V/openspiel/bin/python ]]; then
  python3 -m venv "$V/openspiel" && "$V/openspiel/bin/pip" install -q open-spiel==2.0.2
fi
echo "anchor venvs in $V"
