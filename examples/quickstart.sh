#!/usr/bin/env bash
# Quick start on the built-in data (EMT-labelled Cu/Ag/Au, examples/data):
# write an untrained level-8 MTP, fit it, evaluate it on held-out configurations.
# Usage: bash examples/quickstart.sh [OUTPUT_DIR]   (about a minute on 2 CPU cores)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-quickstart_out}"
mkdir -p "$out"
data="$here/data"

mtpjax init --level 8 --species 0 1 2 --cutoff 5.0 --min-dist 2.0 "$out/init.mtp"
mtpjax train "$out/init.mtp" "$data/CuAgAu_train.cfg" \
    --trained-pot-name "$out/pot.mtp" --max-iter 150 \
    --valid-cfgs "$data/CuAgAu_valid.cfg"
mtpjax level "$out/pot.mtp"
mtpjax calc-efs "$out/pot.mtp" "$data/CuAgAu_valid.cfg" "$out/valid_predicted.cfg"
echo "quickstart: trained potential $out/pot.mtp, predictions $out/valid_predicted.cfg"
