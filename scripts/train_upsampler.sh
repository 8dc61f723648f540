#!/usr/bin/env bash
# Builds the dataset, fits the shipped upsampler (models/upsampler, a learned band extension) on the
# training split (music + real recordings; never the test split), and evaluates it against the
# baselines on the held-out split, writing the table into docs/models.md (issue 11).
#
#   scripts/train_upsampler.sh [DATA_DIR]        (default /work/data-cache/full; ~400 MB, outside the repo)
#
# Fitting is a closed-form ridge regression (one pass over the training clips, about 3 minutes on
# two cores); the whole evaluation takes about 10 minutes more. Deterministic: same data, same model.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${1:-/work/data-cache/full}"
cd "$ROOT"
[ -f "$DATA/manifest.tsv" ] || bash data/make.sh --preset full --out "$DATA"
cargo build -p adiff-trainer
target/debug/adiff eval --data "$DATA" --fit models/upsampler --out docs/models.md
